// The library's logger: spdlog, silent until a program installs a callback through the C API
// (edgellm_set_log_callback). It never writes to stdout or stderr by itself, and it is a private
// logger (not spdlog's default one), so a program's own spdlog set-up is left alone.
//
//   edgellm::log().info("loaded {} tensors", n);
#pragma once

#include <spdlog/spdlog.h>

namespace edgellm {

spdlog::logger& log();

// level: the C API's edgellm_log_level (0 debug .. 3 error); fn == nullptr silences the logger.
using LogFn = void (*)(int level, const char* message, void* user_data);
void set_log_sink(LogFn fn, int min_level, void* user_data);

}  // namespace edgellm
