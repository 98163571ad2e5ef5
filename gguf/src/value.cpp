// Metadata values: type names, errors, and text for people.
#include <charconv>
#include <cstdio>

#include "edgellm/gguf.hpp"

namespace edgellm::gguf {

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::U8: return "u8";
    case ValueType::I8: return "i8";
    case ValueType::U16: return "u16";
    case ValueType::I16: return "i16";
    case ValueType::U32: return "u32";
    case ValueType::I32: return "i32";
    case ValueType::F32: return "f32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::U64: return "u64";
    case ValueType::I64: return "i64";
    case ValueType::F64: return "f64";
  }
  return "unknown";
}

namespace {
std::string with_offset(const std::string& what, uint64_t offset) {
  if (offset == GgufError::npos) return what;
  return what + " (at byte " + std::to_string(offset) + ")";
}
}  // namespace

GgufError::GgufError(const std::string& what, uint64_t offset)
    : std::runtime_error(with_offset(what, offset)), offset_(offset) {}

GgufError::GgufError(const std::string& context, const GgufError& inner)
    : std::runtime_error(context + ": " + inner.what()), offset_(inner.offset()) {}

bool operator==(const Array& a, const Array& b) { return a.type == b.type && a.items == b.items; }
bool operator==(const Value& a, const Value& b) { return a.v == b.v; }

std::string describe_type(const Value& v) {
  if (const Array* a = std::get_if<Array>(&v.v))
    return "array of " + std::string(value_type_name(a->type));
  return std::string(value_type_name(v.type()));
}

namespace detail {
void throw_type_mismatch(std::string_view key, const Value& found, std::string_view expected) {
  std::string what = key.empty() ? std::string("value") : "key '" + std::string(key) + "'";
  throw GgufError(what + " is " + describe_type(found) + ", expected " + std::string(expected));
}
void throw_missing_key(std::string_view key) {
  throw GgufError("key '" + std::string(key) + "' not found");
}
}  // namespace detail

namespace {

template <class F>
std::string shortest(F x) {  // shortest text that reads back as the same float
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, r.ptr);
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace

std::string to_string(const Value& v, size_t max_items) {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return quoted(x);
        } else if constexpr (std::is_same_v<T, Array>) {
          std::string out = "[";
          const bool cut = x.items.size() > max_items;
          const size_t n = cut ? max_items : x.items.size();
          if (cut) {
            out += std::to_string(x.items.size());
            out += " x ";
            out += value_type_name(x.type);
            out += "] ";
          }
          for (size_t i = 0; i < n; ++i) {
            if (i) out += ", ";
            out += to_string(x.items[i], max_items);
          }
          if (cut) return out + (n ? ", ..." : "...");
          return out + "]";
        } else if constexpr (std::is_floating_point_v<T>) {
          return shortest(x);
        } else {
          return std::to_string(x);
        }
      },
      v.v);
}

}  // namespace edgellm::gguf
