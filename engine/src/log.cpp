#include "log.hpp"

#include <memory>
#include <mutex>
#include <string>

#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>

namespace edgellm {
namespace {

// What edgellm_set_log_callback installed; read and written only under Logger::mutex.
struct Config {
  edgellm_log_callback fn = nullptr;
  void* user = nullptr;
  int min_level = 0;
};

struct Logger;
Logger& instance();

// Forwards each formatted line to the program's callback. spdlog's own sink lock is a null
// mutex: the one lock is Logger::mutex (recursive, see log.hpp), taken here around the callback.
class CallbackSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}
};

struct Logger {
  std::recursive_mutex mutex;
  Config config;
  std::shared_ptr<CallbackSink> sink = std::make_shared<CallbackSink>();
  spdlog::logger logger{"edgellm", sink};
  Logger() {
    logger.set_level(spdlog::level::off);
    // spdlog's default reports its own errors (a bad format string, ...) on stderr.
    logger.set_error_handler([](const std::string&) {});
  }
};

Logger& instance() {
  static Logger l;
  return l;
}

int c_level(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return EDGELLM_LOG_DEBUG;
    case spdlog::level::info: return EDGELLM_LOG_INFO;
    case spdlog::level::warn: return EDGELLM_LOG_WARN;
    default: return EDGELLM_LOG_ERROR;
  }
}

void CallbackSink::sink_it_(const spdlog::details::log_msg& msg) {
  Logger& l = instance();
  const int level = c_level(msg.level);
  std::lock_guard<std::recursive_mutex> lock(l.mutex);
  const Config c = l.config;  // the triple as one
  if (!c.fn || level < c.min_level) return;
  const std::string text(msg.payload.data(), msg.payload.size());
  c.fn(static_cast<edgellm_log_level>(level), text.c_str(), c.user);
}

}  // namespace

spdlog::logger& log() { return instance().logger; }

void set_log_sink(edgellm_log_callback fn, int min_level, void* user_data) {
  Logger& l = instance();
  const int i = min_level < 0 ? 0 : (min_level > 3 ? 3 : min_level);
  static const spdlog::level::level_enum levels[] = {spdlog::level::debug, spdlog::level::info,
                                                     spdlog::level::warn, spdlog::level::err};
  std::lock_guard<std::recursive_mutex> lock(l.mutex);
  l.config = Config{fn, user_data, i};
  // Only a fast path for lines nobody wants: the sink filters by the config's own min_level.
  l.logger.set_level(fn ? levels[i] : spdlog::level::off);
}

}  // namespace edgellm
