// SIGINT, SIGTERM and SIGUSR1 as requests to stop `shardprop train` at the next step boundary:
// the handlers only store the signal number in a flag the library reads (RunSettings::stop). A
// SIGINT while a stop is already pending aborts at once, with the default action.
#pragma once

#include <csignal>
#include <string>

#include "shardprop/trainer.hpp"

namespace shardprop::cli {

// The exit status of a run that stopped on a signal and wrote its checkpoint: EX_TEMPFAIL from
// sysexits.h ("try again later": resume it).
inline constexpr int kStoppedStatus = 75;

// Installs the handlers (sigaction) for the rest of the process, so that a signal arriving
// after the run has finished, while it exits, changes nothing; returns the flag they set: non-zero
// (the first signal's number) once one of the signals arrived.
const StopFlag* install_stop_signals();

// "SIGTERM", "SIGINT", "SIGUSR1", or "signal N".
std::string signal_name(int signal);

}  // namespace shardprop::cli
