! Fortran bindings of shardprop's C API (shardprop.h), through iso_c_binding.
!
! Handles are type(c_ptr); every function returns the status of shardprop.h (SHARDPROP_OK = 0).
! Strings are ordinary Fortran strings (trailing blanks are ignored). Arrays are the caller's and
! contiguous: features(feature_count, rows) and targets(target_width, rows), column-major, which
! is the row-major [rows, feature_count] layout the C API reads. Class targets of the "xent" loss
! are class indices 0..outputs-1 stored as reals.
module shardprop
  use, intrinsic :: iso_c_binding, only: c_ptr, c_null_ptr, c_int, c_int64_t, c_float, &
                                         c_double, c_char, c_null_char, c_associated, c_f_pointer
  implicit none
  private

  public :: c_ptr, c_null_ptr, c_associated
  public :: shardprop_trainer_settings, shardprop_metrics
  public :: shardprop_version, shardprop_last_error
  public :: shardprop_model_create, shardprop_model_load, shardprop_model_free
  public :: shardprop_model_inputs, shardprop_model_outputs, shardprop_model_target_width
  public :: shardprop_model_parameter_count, shardprop_model_copy_parameters
  public :: shardprop_model_predict, shardprop_model_evaluate
  public :: shardprop_trainer_settings_init, shardprop_trainer_create, shardprop_trainer_free
  public :: shardprop_trainer_step, shardprop_trainer_train_epoch, shardprop_trainer_progress
  public :: shardprop_checkpoint_save, shardprop_trainer_load_state
  public :: shardprop_mpi_available, shardprop_trainer_create_mpi
  public :: shardprop_trainer_train_epoch_part

  integer(c_int), parameter, public :: SHARDPROP_OK = 0
  integer(c_int), parameter, public :: SHARDPROP_ERROR_ARGUMENT = 1
  integer(c_int), parameter, public :: SHARDPROP_ERROR_DATA = 2
  integer(c_int), parameter, public :: SHARDPROP_ERROR_FILE = 3
  integer(c_int), parameter, public :: SHARDPROP_ERROR_MEMORY = 4
  integer(c_int), parameter, public :: SHARDPROP_ERROR_INTERNAL = 5
  integer(c_int), parameter, public :: SHARDPROP_PREDICT_RAW = 0
  integer(c_int), parameter, public :: SHARDPROP_PREDICT_PROBABILITIES = 1
  integer(c_int), parameter, public :: SHARDPROP_OPTIMIZER_SGD = 0
  integer(c_int), parameter, public :: SHARDPROP_OPTIMIZER_ADAM = 1
  integer(c_int), parameter, public :: SHARDPROP_SCHEDULE_CONSTANT = 0
  integer(c_int), parameter, public :: SHARDPROP_SCHEDULE_STEP = 1
  integer(c_int), parameter, public :: SHARDPROP_SCHEDULE_COSINE = 2

  ! The C struct shardprop_trainer_settings, field for field (see shardprop.h for each meaning).
  type, bind(c) :: shardprop_trainer_settings
    integer(c_int) :: threads
    integer(c_int) :: shards
    integer(c_int) :: batch_size
    real(c_float) :: learning_rate
    real(c_float) :: weight_decay
    integer(c_int64_t) :: seed
    integer(c_int) :: shuffle
    integer(c_int) :: optimizer
    real(c_float) :: momentum
    integer(c_int) :: nesterov
    real(c_float) :: adam_beta1
    real(c_float) :: adam_beta2
    real(c_float) :: adam_epsilon
    real(c_float) :: clip_grad_norm
    integer(c_int) :: schedule
    integer(c_int) :: schedule_step_epochs
    real(c_float) :: schedule_gamma
    integer(c_int) :: cosine_epochs
  end type shardprop_trainer_settings

  type, bind(c) :: shardprop_metrics
    real(c_double) :: loss
    real(c_double) :: accuracy
    real(c_double) :: rmse
    integer(c_int64_t) :: rows
  end type shardprop_metrics

  ! The C functions; the public names below wrap those that take strings.
  interface
    function c_version() bind(c, name="shardprop_version") result(text)
      import :: c_ptr
      type(c_ptr) :: text
    end function c_version

    function c_last_error() bind(c, name="shardprop_last_error") result(text)
      import :: c_ptr
      type(c_ptr) :: text
    end function c_last_error

    function c_strlen(text) bind(c, name="strlen") result(length)
      import :: c_ptr, c_int64_t
      type(c_ptr), value :: text
      integer(c_int64_t) :: length
    end function c_strlen

    function c_model_create(layers, inputs, loss, seed, model) &
        bind(c, name="shardprop_model_create") result(status)
      import :: c_char, c_int, c_int64_t, c_ptr
      character(kind=c_char), dimension(*), intent(in) :: layers, loss
      integer(c_int), value :: inputs
      integer(c_int64_t), value :: seed
      type(c_ptr), intent(out) :: model
      integer(c_int) :: status
    end function c_model_create

    function c_model_load(path, model) bind(c, name="shardprop_model_load") result(status)
      import :: c_char, c_int, c_ptr
      character(kind=c_char), dimension(*), intent(in) :: path
      type(c_ptr), intent(out) :: model
      integer(c_int) :: status
    end function c_model_load

    subroutine shardprop_model_free(model) bind(c, name="shardprop_model_free")
      import :: c_ptr
      type(c_ptr), value :: model
    end subroutine shardprop_model_free

    function shardprop_model_inputs(model, inputs) bind(c, name="shardprop_model_inputs") &
        result(status)
      import :: c_ptr, c_int
      type(c_ptr), value :: model
      integer(c_int), intent(out) :: inputs
      integer(c_int) :: status
    end function shardprop_model_inputs

    function shardprop_model_outputs(model, outputs) bind(c, name="shardprop_model_outputs") &
        result(status)
      import :: c_ptr, c_int
      type(c_ptr), value :: model
      integer(c_int), intent(out) :: outputs
      integer(c_int) :: status
    end function shardprop_model_outputs

    function shardprop_model_target_width(model, target_width) &
        bind(c, name="shardprop_model_target_width") result(status)
      import :: c_ptr, c_int
      type(c_ptr), value :: model
      integer(c_int), intent(out) :: target_width
      integer(c_int) :: status
    end function shardprop_model_target_width

    function shardprop_model_parameter_count(model, count) &
        bind(c, name="shardprop_model_parameter_count") result(status)
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: model
      integer(c_int64_t), intent(out) :: count
      integer(c_int) :: status
    end function shardprop_model_parameter_count

    function shardprop_model_copy_parameters(model, values, count) &
        bind(c, name="shardprop_model_copy_parameters") result(status)
      import :: c_ptr, c_int, c_int64_t, c_float
      type(c_ptr), value :: model
      real(c_float), dimension(*), intent(inout) :: values
      integer(c_int64_t), value :: count
      integer(c_int) :: status
    end function shardprop_model_copy_parameters

    function shardprop_model_predict(model, features, rows, feature_count, kind, outputs, &
                                     output_count, threads) &
        bind(c, name="shardprop_model_predict") result(status)
      import :: c_ptr, c_int, c_int64_t, c_float
      type(c_ptr), value :: model
      real(c_float), dimension(*), intent(in) :: features
      integer(c_int64_t), value :: rows
      integer(c_int), value :: feature_count, kind
      real(c_float), dimension(*), intent(inout) :: outputs
      integer(c_int64_t), value :: output_count
      integer(c_int), value :: threads
      integer(c_int) :: status
    end function shardprop_model_predict

    function shardprop_model_evaluate(model, features, targets, rows, feature_count, &
                                      target_width, threads, metrics) &
        bind(c, name="shardprop_model_evaluate") result(status)
      import :: c_ptr, c_int, c_int64_t, c_float, shardprop_metrics
      type(c_ptr), value :: model
      real(c_float), dimension(*), intent(in) :: features, targets
      integer(c_int64_t), value :: rows
      integer(c_int), value :: feature_count, target_width, threads
      type(shardprop_metrics), intent(out) :: metrics
      integer(c_int) :: status
    end function shardprop_model_evaluate

    function shardprop_trainer_settings_init(settings) &
        bind(c, name="shardprop_trainer_settings_init") result(status)
      import :: c_int, shardprop_trainer_settings
      type(shardprop_trainer_settings), intent(out) :: settings
      integer(c_int) :: status
    end function shardprop_trainer_settings_init

    function shardprop_trainer_create(model, settings, trainer) &
        bind(c, name="shardprop_trainer_create") result(status)
      import :: c_ptr, c_int, shardprop_trainer_settings
      type(c_ptr), value :: model
      type(shardprop_trainer_settings), intent(in) :: settings
      type(c_ptr), intent(out) :: trainer
      integer(c_int) :: status
    end function shardprop_trainer_create

    subroutine shardprop_trainer_free(trainer) bind(c, name="shardprop_trainer_free")
      import :: c_ptr
      type(c_ptr), value :: trainer
    end subroutine shardprop_trainer_free

    function shardprop_trainer_step(trainer, features, targets, rows, feature_count, &
                                    target_width, loss) &
        bind(c, name="shardprop_trainer_step") result(status)
      import :: c_ptr, c_int, c_int64_t, c_float, c_double
      type(c_ptr), value :: trainer
      real(c_float), dimension(*), intent(in) :: features, targets
      integer(c_int64_t), value :: rows
      integer(c_int), value :: feature_count, target_width
      real(c_double), intent(out) :: loss
      integer(c_int) :: status
    end function shardprop_trainer_step

    function shardprop_trainer_train_epoch(trainer, features, targets, rows, feature_count, &
                                           target_width, metrics) &
        bind(c, name="shardprop_trainer_train_epoch") result(status)
      import :: c_ptr, c_int, c_int64_t, c_float, shardprop_metrics
      type(c_ptr), value :: trainer
      real(c_float), dimension(*), intent(in) :: features, targets
      integer(c_int64_t), value :: rows
      integer(c_int), value :: feature_count, target_width
      type(shardprop_metrics), intent(out) :: metrics
      integer(c_int) :: status
    end function shardprop_trainer_train_epoch

    ! 1 when the library was built with MPI.
    function shardprop_mpi_available() bind(c, name="shardprop_mpi_available") result(available)
      import :: c_int
      integer(c_int) :: available
    end function shardprop_mpi_available

    ! On the ranks of an MPI communicator: pass the integer communicator (MPI_COMM_WORLD or
    ! your own) as a 64-bit integer, int(comm, c_int64_t).
    function shardprop_trainer_create_mpi(model, settings, mpi_comm, trainer) &
        bind(c, name="shardprop_trainer_create_mpi") result(status)
      import :: c_ptr, c_int, c_int64_t, shardprop_trainer_settings
      type(c_ptr), value :: model
      type(shardprop_trainer_settings), intent(in) :: settings
      integer(c_int64_t), value :: mpi_comm
      type(c_ptr), intent(out) :: trainer
      integer(c_int) :: status
    end function shardprop_trainer_create_mpi

    function shardprop_trainer_train_epoch_part(trainer, features, targets, rows, &
                                                feature_count, target_width, first_row, &
                                                total_rows, metrics) &
        bind(c, name="shardprop_trainer_train_epoch_part") result(status)
      import :: c_ptr, c_int, c_int64_t, c_float, shardprop_metrics
      type(c_ptr), value :: trainer
      real(c_float), dimension(*), intent(in) :: features, targets
      integer(c_int64_t), value :: rows
      integer(c_int), value :: feature_count, target_width
      integer(c_int64_t), value :: first_row, total_rows
      type(shardprop_metrics), intent(out) :: metrics
      integer(c_int) :: status
    end function shardprop_trainer_train_epoch_part

    function shardprop_trainer_progress(trainer, epochs, steps) &
        bind(c, name="shardprop_trainer_progress") result(status)
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: trainer
      integer(c_int), intent(out) :: epochs
      integer(c_int64_t), intent(out) :: steps
      integer(c_int) :: status
    end function shardprop_trainer_progress

    function c_checkpoint_save(model, trainer, path) bind(c, name="shardprop_checkpoint_save") &
        result(status)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: model, trainer
      character(kind=c_char), dimension(*), intent(in) :: path
      integer(c_int) :: status
    end function c_checkpoint_save

    function c_trainer_load_state(trainer, path) bind(c, name="shardprop_trainer_load_state") &
        result(status)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: trainer
      character(kind=c_char), dimension(*), intent(in) :: path
      integer(c_int) :: status
    end function c_trainer_load_state
  end interface

contains

  ! A Fortran string as a NUL-terminated C string (trailing blanks dropped).
  pure function c_string(text) result(c_text)
    character(len=*), intent(in) :: text
    character(kind=c_char, len=len_trim(text) + 1) :: c_text
    c_text = trim(text) // c_null_char
  end function c_string

  ! A NUL-terminated C string as a Fortran string.
  function f_string(text) result(f_text)
    type(c_ptr), intent(in) :: text
    character(len=:), allocatable :: f_text
    character(kind=c_char), pointer :: chars(:)
    integer :: i, length
    length = int(c_strlen(text))
    call c_f_pointer(text, chars, [length])
    allocate (character(len=length) :: f_text)
    do i = 1, length
      f_text(i:i) = chars(i)
    end do
  end function f_string

  function shardprop_version() result(text)
    character(len=:), allocatable :: text
    text = f_string(c_version())
  end function shardprop_version

  ! The message of this thread's last failed call ("" if none).
  function shardprop_last_error() result(text)
    character(len=:), allocatable :: text
    text = f_string(c_last_error())
  end function shardprop_last_error

  ! layers: the layer text of docs/model-spec.md; loss: "mse", "xent" or "bce".
  function shardprop_model_create(layers, inputs, loss, seed, model) result(status)
    character(len=*), intent(in) :: layers, loss
    integer, intent(in) :: inputs
    integer(c_int64_t), intent(in) :: seed
    type(c_ptr), intent(out) :: model
    integer(c_int) :: status
    status = c_model_create(c_string(layers), int(inputs, c_int), c_string(loss), seed, model)
  end function shardprop_model_create

  function shardprop_model_load(path, model) result(status)
    character(len=*), intent(in) :: path
    type(c_ptr), intent(out) :: model
    integer(c_int) :: status
    status = c_model_load(c_string(path), model)
  end function shardprop_model_load

  ! trainer may be c_null_ptr: the weights only.
  function shardprop_checkpoint_save(model, trainer, path) result(status)
    type(c_ptr), intent(in) :: model, trainer
    character(len=*), intent(in) :: path
    integer(c_int) :: status
    status = c_checkpoint_save(model, trainer, c_string(path))
  end function shardprop_checkpoint_save

  function shardprop_trainer_load_state(trainer, path) result(status)
    type(c_ptr), intent(in) :: trainer
    character(len=*), intent(in) :: path
    integer(c_int) :: status
    status = c_trainer_load_state(trainer, c_string(path))
  end function shardprop_trainer_load_state

end module shardprop
