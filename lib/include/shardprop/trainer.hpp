// Data-parallel minibatch SGD: one step splits the minibatch into shards, runs each shard's
// forward and backward pass as a TBB task into a gradient buffer it owns, reduces the buffers
// in a fixed order and applies one update.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "shardprop/communicator.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/dataset_part.hpp"
#include "shardprop/model.hpp"

namespace shardprop {

namespace detail {
class TrainerAccess;
}  // namespace detail

// torch.optim.SGD (with optional momentum / Nesterov, dampening 0) or torch.optim.Adam.
enum class Optimizer { sgd, adam };
// The learning rate of epoch e (0-based): constant η; step: η·γ^⌊e/step_epochs⌋ (StepLR);
// cosine: η·(1 + cos(π·e/cosine_epochs))/2 (CosineAnnealingLR with η_min = 0).
enum class LearningRateSchedule { constant, step, cosine };

// "sgd", "adam" / "constant", "step", "cosine". Throws Error on anything else.
Optimizer parse_optimizer(std::string_view name);
LearningRateSchedule parse_schedule(std::string_view name);
std::string_view to_string(Optimizer optimizer);
std::string_view to_string(LearningRateSchedule schedule);

struct TrainerSettings {
  // Worker threads. 0: run in the caller's current tbb::task_arena (the application decides).
  int threads = 0;
  // Shards per minibatch. 0: automatic, a function of the model and batch size only (never of
  // the thread count), so results do not change with threads. See docs/architecture.md.
  int shards = 0;
  int batch_size = 32;
  float learning_rate = 0.01f;
  float weight_decay = 0.0f;  // λ: ∂J/∂W += λW for weights, not biases
  std::uint64_t seed = 1;     // drives the per-epoch shuffle
  bool shuffle = true;        // false: minibatches are consecutive rows in dataset order
  // Streaming epochs shuffle through a buffer of this many bytes of rows (see train_epoch).
  std::size_t shuffle_buffer_bytes = std::size_t{64} << 20;

  Optimizer optimizer = Optimizer::sgd;
  float momentum = 0.0f;  // SGD: buf ← μ·buf + g, step along buf; in [0, 1)
  bool nesterov = false;  // SGD: step along g + μ·buf (needs momentum > 0)
  float adam_beta1 = 0.9f, adam_beta2 = 0.999f, adam_epsilon = 1e-8f;
  // > 0: the minibatch gradient (summed over shards, before weight decay) is scaled so its L2
  // norm over all trained tensors is at most this, as torch.nn.utils.clip_grad_norm_ does.
  float clip_grad_norm = 0.0f;
  LearningRateSchedule schedule = LearningRateSchedule::constant;
  int schedule_step_epochs = 10;  // step: multiply by schedule_gamma every this many epochs
  float schedule_gamma = 0.1f;
  int cosine_epochs = 0;  // cosine: the epoch count over which η falls to 0 (> 0 for cosine)
  // Several ranks: send each layer's gradient on while the backward pass computes the layers
  // below it (a communication thread; needs MPI_THREAD_MULTIPLE, else the exchange follows the
  // pass). false: always after the pass, leaving every core to it. Results are the same.
  bool overlap_exchange = true;
  // Time the parts of every step into Trainer::step_profile() (see StepProfile). Off, a step
  // reads no clock: it costs a pointer check per timed piece of a layer (one to three). On, one
  // clock read per piece. Results are the same bits either way.
  bool profile_phases = false;
};

// What a step or an epoch is told of, for progress displays. Runs on the driving thread.
// rows_done: rows of this epoch trained so far; rows_total: the epoch's rows (-1 if unknown,
// as when streaming).
using ProgressCallback = std::function<void(std::int64_t rows_done, std::int64_t rows_total)>;

// Mean loss over the rows of an epoch or an evaluation, and the matching quality measures.
// From evaluate(): the current model in inference mode. From train_epoch(): running metrics,
// taken from each training step's own forward pass (training mode: dropout masks and batch
// statistics applied) on weights that change after every step, so they describe the epoch,
// not the model at its end; evaluate() gives the latter.
struct Metrics {
  double loss = 0.0;      // data loss averaged over rows (weight decay term not included)
  double accuracy = 0.0;  // xent: argmax == class; bce: (logit > 0) == (target > 0.5), per output
  double rmse = 0.0;  // root mean squared error over all outputs (mse; probabilities for xent/bce)
  std::int64_t rows = 0;
};

// Where this rank's training steps spent their time, summed over steps since the trainer was
// built or last reset (Trainer::step_profile). The counts are always kept; the seconds only
// with TrainerSettings::profile_phases (else they are 0).
//
// A step runs its shards in parallel regions (one per phase: one region without batch norm,
// 2K + 1 with K batch-norm layers) on `slots` = min(threads, this rank's shards) worker slots
// (1 when the shards run inline), and between the regions on the driving thread. The four
// pass fields and `idle` are measured per shard in thread-seconds and reported already divided
// by the step's slot count, i.e. as wall-clock seconds: within each step
//   forward_gemm + forward_elementwise + backward_gemm + backward_elementwise + idle
//     = the wall time of its parallel regions (exactly, by the definition of idle),
// and thread-seconds are these × slots. The other fields are wall time on the driving thread.
// So forward_gemm + … + idle + batch_norm_sync + reduction_update + exchange ≈ total; the
// rest of total is the step's bookkeeping (setting up the shards' passes, gathering their
// losses, saving batch-norm running statistics), normally well under a tenth.
struct StepProfile {
  std::int64_t steps = 0;
  std::int64_t training_rows = 0;     // rows this rank's shards ran through training passes
  std::int64_t evaluated_rows = 0;    // data rows evaluate() ran through inference on this rank
  double forward_gemm = 0.0;          // the dense layers' z += x·Wᵀ
  double forward_elementwise = 0.0;   // bias rows copied into z (the product adds onto them),
                                      // activations, dropout, batch-norm moments and normalize,
                                      // the loss and δ = dL/dy, the step's metric sums
  double backward_gemm = 0.0;         // dW = δᵀ·x and dx = δ·W
  double backward_elementwise = 0.0;  // activation, dropout and batch-norm backward, bias
                                      // gradients Σ_rows δ
  double idle = 0.0;  // per region, wall × slots − the shards' busy time: worker slots that
                      // waited at the region's end (uneven shards, scheduling), / slots
  double batch_norm_sync = 0.0;  // merging the shards' (and ranks') batch-norm moments and
                                 // backward sums between regions
  // The reduction of the shards' gradients and the optimizer update: one fused pass over the
  // parameters (each element summed over shards in order, then stepped), so one number. When
  // the shards run in parallel in a single region (no batch norm, one rank, no clipping) it
  // runs as tasks of that region, each layer's as soon as its gradients are complete; then
  // it is their thread-seconds / slots, and counts with the pass fields and idle towards the
  // region's wall time.
  double reduction_update = 0.0;
  double exchange = 0.0;  // several ranks: waiting for the gradient exchange to finish (0 in
                          // one process); exchange overlapped with the pass is not counted
  double total = 0.0;     // wall time of the steps
};

// Where an unfinished epoch stands after a step: what a checkpoint taken inside an epoch records so
// that the rest of the epoch, resumed, gives the weights and the running metrics of an
// uninterrupted one bitwise. step == 0: at an epoch boundary (nothing else is meaningful).
struct EpochPosition {
  std::int64_t step = 0;  // minibatch steps of the epoch done
  std::int64_t rows = 0;  // rows they trained
  // The epoch's running sums so far, in the order they are added (opaque to callers: store
  // and restore them as they are): Σ step loss × rows, then the metric sums of loss, correct
  // predictions, predictions, squared error and outputs.
  std::array<double, 6> sums{};
};

// A request to stop training at the next step boundary. Any thread, or a signal handler, may
// store a non-zero value (a signal number, say): the type is lock-free, so storing is
// async-signal-safe. The trainer only reads it.
using StopFlag = std::atomic<int>;
static_assert(StopFlag::is_always_lock_free, "a stop flag must be settable from a signal handler");

// Thread safety: one thread drives a Trainer; it parallelises internally.
class Trainer {
 public:
  // Validates the settings against the model and sizes every workspace once; throws Error.
  // The model must outlive the trainer.
  //
  // With a communicator of several ranks, every rank constructs its trainer with the same
  // model and settings, and makes the same calls in the same order (each is collective).
  // batch_size and shards are global: rank r runs a contiguous group of each minibatch's shards
  // on the matching rows, and gradients, batch-norm statistics and metrics are combined in
  // global shard order, so the weights are bitwise those of one process with the same settings.
  // The shard count must be at least the rank count (automatic: raised to it).
  Trainer(Model& model, const TrainerSettings& settings, const Communicator& comm = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // One SGD step on a minibatch of 1..batch_size rows (at least 2 with batch norm); with several
  // ranks, every rank passes the same whole minibatch and runs its own shards of it.
  // features: [rows, inputs]; targets: [rows, target width] (class indices for xent). Returns
  // the minibatch's mean loss before the update. Batch-norm layers use the statistics of the
  // whole minibatch, however it is sharded, and update their running statistics. No allocation.
  double step(std::span<const float> features, std::span<const float> targets);

  // One pass over the dataset in minibatches (the last may be smaller), shuffled by
  // (seed, epoch) unless shuffle is off. With batch norm, a last minibatch of a single row is
  // skipped. Returns running metrics (see Metrics): the mean of the step losses weighted by
  // rows, and accuracy and RMSE of the steps' outputs, summed in shard and step order, so they
  // are bitwise the same for any thread count (Metrics::rows = rows used). They cost no extra
  // forward pass.
  // Throws Error naming the epoch and step if the loss or the gradient is not finite (the model
  // is unchanged for a non-finite loss; after a non-finite gradient it is not usable).
  // With several ranks, every rank passes the same whole dataset.
  Metrics train_epoch(const Dataset& data, const ProgressCallback& progress = {});
  // The same epoch over a dataset spread across the ranks (read_csv_part): the same permutation
  // of the whole's rows as train_epoch(Dataset) of the whole, each minibatch's rows sent to the
  // ranks whose shards hold them. Bitwise the weights of train_epoch on the whole dataset.
  Metrics train_epoch(const DatasetPart& part, const ProgressCallback& progress = {});

  // One pass over a stream too large for memory. With shuffle on, rows go through a buffer of
  // K = shuffle_buffer_bytes / row size rows: each incoming row replaces a uniformly drawn
  // buffered row, which joins the minibatch; the rest leave in random order at the end. A
  // pure function of (seed, epoch, row index), whatever the chunking.
  Metrics train_epoch(DataStream& stream, const ProgressCallback& progress = {});
  // The same epoch over a stream spread across the ranks: the whole's rows pass through one
  // shuffle buffer exactly as train_epoch(DataStream&) of the whole would pass them (every rank
  // follows the buffer's row indices; each holds the data of the rows it read), so the weights
  // are bitwise those of one process streaming the whole. A bad chunk on any rank fails the
  // epoch on every rank at the next step (CollectiveError). The part's stream must hand out the
  // same rows every epoch, as a file does: in one process, when all of them fit in the buffer,
  // later epochs over the same part shuffle the rows the buffer holds instead of reading again.
  Metrics train_epoch(const StreamPart& part, const ProgressCallback& progress = {});
  // evaluate() over a stream.
  Metrics evaluate(DataStream& stream) const;
  // evaluate() over a stream spread across the ranks. Collective.
  Metrics evaluate(const StreamPart& part) const;

  // Loss and accuracy/RMSE of the current model on a dataset, in inference mode (batch norm
  // uses its running statistics and does not change them).
  Metrics evaluate(const Dataset& data) const;
  // evaluate() of a dataset spread across the ranks: each evaluates its rows; the sums are
  // exact, so the metrics are bitwise those of the whole dataset in one process. Collective.
  Metrics evaluate(const DatasetPart& part) const;

  int shard_count() const;
  int epochs_completed() const;
  std::int64_t steps_completed() const;  // Adam's t, and the dropout masks' step key
  // The learning rate the next epoch uses (the schedule at epochs_completed()).
  double learning_rate() const;
  // L2 norm of the last step's minibatch gradient (summed over shards, before clipping and
  // weight decay); 0 before the first step.
  double last_gradient_norm() const;
  const TrainerSettings& settings() const;
  const Communicator& communicator() const;
  // Seconds this rank spent blocked exchanging gradients, and bytes it sent for them, since
  // construction (0 in one process).
  double communication_seconds() const;
  std::uint64_t communication_bytes() const;
  // The steps' time profile and row counts (see StepProfile) since construction or the last
  // reset_step_profile(). evaluate() adds its rows to it, although it is const.
  StepProfile step_profile() const;
  void reset_step_profile();

  // --- Stopping inside an epoch ------------------------------------------------------------
  // Every step reads *flag (nullptr: no flag) before it updates the weights; with several
  // ranks they agree on the largest value read in that step (it travels with the step's metric
  // sums, at no extra message), so all stop at the same step even if one alone was asked.
  // A non-zero value ends train_epoch after that step, unless it was the epoch's last (then
  // the epoch ends as usual and stop_request() says it was asked): the epoch stays unfinished
  // (epoch_position().step > 0, epochs_completed() unchanged), the returned Metrics cover the rows
  // trained so far, and the next train_epoch call continues it where it stopped (in memory by
  // skipping the minibatches done; a stream by reading it again from its start and passing the rows
  // done through the shuffle buffer without training on them: it costs re-parsing that part, not
  // re-training it). The flag is the caller's: the trainer never clears it.
  void set_stop_flag(const StopFlag* flag);
  // The value the ranks agreed on after the last step (0: no stop requested).
  int stop_request() const;
  // Called on every rank after every step of an epoch that does not end it, before the stop
  // check, with the epoch's position updated: a place to write a checkpoint inside an epoch
  // (save_run_checkpoint records the position). Collective calls made here must be made on
  // every rank alike. Empty: none.
  void set_step_callback(std::function<void()> after_step);
  // Where the current epoch stands (step 0 between epochs).
  EpochPosition epoch_position() const;

  // --- Resuming ------------------------------------------------------------------------
  // save_checkpoint and load_training_state (checkpoint.hpp) save and restore the optimizer's
  // buffers and the epoch and step counters through an internal accessor; train_run
  // (training_run.hpp) also records and restores the epoch position.

 private:
  friend class detail::TrainerAccess;
  struct State;
  std::unique_ptr<State> state_;
};

// The shard count chosen when TrainerSettings::shards is 0.
int default_shard_count(const ModelSpec& spec, int batch_size);

}  // namespace shardprop
