// The library's logger: spdlog, silent until a program installs a callback through the C API
// (edgellm_set_log_callback). It never writes to stdout or stderr by itself (not even about its
// own errors), and it is a private logger (not spdlog's default one), so a program's own spdlog
// set-up is left alone.
//
//   edgellm::log().info("loaded {} tensors", n);
//
// Threads: the (callback, user_data, min_level) triple changes as one; every line goes to the
// triple that was installed when it reached the sink, never to a callback with another's
// user_data. Callbacks run one at a time under a recursive lock that set_log_sink also takes, so
// once set_log_sink returns the replaced callback is not running and is never called again, and
// a callback may itself log or call set_log_sink on its own thread.
#pragma once

#include <spdlog/spdlog.h>

#include "edgellm/edgellm.h"

namespace edgellm {

spdlog::logger& log();

// min_level: the C API's edgellm_log_level (0 debug .. 3 error); fn == nullptr silences the logger.
void set_log_sink(edgellm_log_callback fn, int min_level, void* user_data);

}  // namespace edgellm
