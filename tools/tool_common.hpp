// Small helpers shared by the command-line tools: argument values that fail with one clear line,
// and human-readable sizes. Tools use only the public API.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace edgellm::tools {

// A bad command line: main() prints "<tool>: error: <message>" and exits with 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Walks argv: `next()` gives the next argument, `value(opt)` the value that must follow opt.
class Args {
 public:
  Args(int argc, char** argv) : argc_(argc), argv_(argv) {}
  bool more() const { return i_ < argc_; }
  std::string next() { return argv_[i_++]; }
  std::string value(const std::string& opt) {
    if (i_ >= argc_) throw UsageError("option " + opt + " needs a value");
    return argv_[i_++];
  }
  long long integer(const std::string& opt, long long lo, long long hi) {
    std::string v = value(opt);
    errno = 0;
    char* end = nullptr;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno == ERANGE)
      throw UsageError("option " + opt + " needs an integer, got '" + v + "'");
    if (x < lo || x > hi)
      throw UsageError("option " + opt + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                       "], got " + v);
    return x;
  }
  float real(const std::string& opt, double lo, double hi) {
    std::string v = value(opt);
    errno = 0;
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(x))
      throw UsageError("option " + opt + " needs a number, got '" + v + "'");
    if (x < lo || x > hi) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "option %s must be in [%g, %g], got %s", opt.c_str(), lo, hi, v.c_str());
      throw UsageError(buf);
    }
    return static_cast<float>(x);
  }

 private:
  int argc_;
  char** argv_;
  int i_ = 1;
};

// 667737984 -> "636.81 MiB"
inline std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

// 1100048384 -> "1.10 B", 292000 -> "292.00 K"
inline std::string format_count(double n) {
  char buf[64];
  if (n >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2f B", n / 1e9);
  else if (n >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2f M", n / 1e6);
  else if (n >= 1e3)
    std::snprintf(buf, sizeof buf, "%.2f K", n / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

// Text from a file made safe for a terminal: valid UTF-8 is kept, except control characters (C0,
// DEL and the C1 range U+0080..U+009F, which include the 8-bit CSI); those and bytes that are not
// UTF-8 become \xNN, so a file cannot put escape sequences on the user's screen. Backslashes are
// kept as they are (text already escaped by gguf::to_string stays readable).
inline std::string terminal_safe(const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  auto escape = [&](unsigned char c) {
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 15];
  };
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7F) escape(c);
      else out += char(c);
      ++i;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      ok = (b & 0xC0) == 0x80;
      cp = (cp << 6) | (b & 0x3F);
    }
    ok = ok && !(n == 3 && cp < 0x800) && !(n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) &&
         !(cp >= 0xD800 && cp <= 0xDFFF) && !(cp >= 0x80 && cp <= 0x9F);
    if (!ok) {
      escape(c);
      ++i;
      continue;
    }
    out.append(s, i, n);
    i += n;
  }
  return out;
}

// JSON string literal.
inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace edgellm::tools
