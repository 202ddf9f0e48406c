// The signal handlers of install_stop_signals. Async-signal-safe: a lock-free atomic, write(2),
// sigaction and raise, nothing else.
#include "stop_signals.hpp"

#include <unistd.h>

#include <cstring>

namespace shardprop::cli {
namespace {

constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGUSR1};

// A handler can reach only globals.
StopFlag stop_requested{0};

void say(const char* text) {
  // Nothing to do if stderr is gone; the checkpoint message follows anyway.
  const ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

extern "C" void on_stop_signal(int signal) {
  int none = 0;
  if (stop_requested.compare_exchange_strong(none, signal)) {
    say(signal == SIGINT ? "\nshardprop: interrupted: stopping after this step to write a "
                           "checkpoint (Ctrl-C again aborts)\n"
                         : "shardprop: stop requested: stopping after this step to write a "
                           "checkpoint\n");
    return;
  }
  if (signal != SIGINT) return;  // already stopping
  // A second interrupt: the user wants out now. Files on disk are whole (writes are atomic).
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  ::sigaction(SIGINT, &default_action, nullptr);
  ::raise(SIGINT);
}

}  // namespace

const StopFlag* install_stop_signals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // reads and writes in progress carry on
  for (const int signal : kSignals) ::sigaction(signal, &action, nullptr);
  return &stop_requested;
}

std::string signal_name(int signal) {
  switch (signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGUSR1:
      return "SIGUSR1";
    default:
      return "signal " + std::to_string(signal);
  }
}

}  // namespace shardprop::cli
