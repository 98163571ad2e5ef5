#include "log.hpp"

#include <memory>
#include <mutex>
#include <string>

#include <spdlog/sinks/base_sink.h>

namespace edgellm {
namespace {

// Forwards each formatted line to the program's callback.
class CallbackSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void set(LogFn fn, void* user) {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = fn;
    user_ = user;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (!fn_) return;
    int level = 0;
    switch (msg.level) {
      case spdlog::level::trace:
      case spdlog::level::debug: level = 0; break;
      case spdlog::level::info: level = 1; break;
      case spdlog::level::warn: level = 2; break;
      default: level = 3; break;
    }
    std::string text(msg.payload.data(), msg.payload.size());
    fn_(level, text.c_str(), user_);
  }
  void flush_() override {}

 private:
  LogFn fn_ = nullptr;
  void* user_ = nullptr;
};

struct Logger {
  std::shared_ptr<CallbackSink> sink = std::make_shared<CallbackSink>();
  spdlog::logger logger{"edgellm", sink};
  Logger() { logger.set_level(spdlog::level::off); }
};

Logger& instance() {
  static Logger l;
  return l;
}

}  // namespace

spdlog::logger& log() { return instance().logger; }

void set_log_sink(LogFn fn, int min_level, void* user_data) {
  Logger& l = instance();
  l.sink->set(fn, user_data);
  static const spdlog::level::level_enum levels[] = {spdlog::level::debug, spdlog::level::info,
                                                     spdlog::level::warn, spdlog::level::err};
  int i = min_level < 0 ? 0 : (min_level > 3 ? 3 : min_level);
  l.logger.set_level(fn ? levels[i] : spdlog::level::off);
}

}  // namespace edgellm
