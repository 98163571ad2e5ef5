// edgellm-gguf FILE [--full] [--json]: lists a GGUF file (header, metadata, tensor table, totals).
// Long arrays are shortened to their first items unless --full; --json prints one JSON object.
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "edgellm/gguf.hpp"
#include "tool_common.hpp"

namespace gguf = edgellm::gguf;
using edgellm::tools::terminal_safe;  // every text from the file goes through it

namespace {

constexpr size_t kShortArray = 8;  // items shown of a long array without --full

std::string shape_text(const gguf::TensorInfo& t) {
  std::string s = "[";
  for (uint32_t d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
  return s + "]";
}

struct Totals {
  uint64_t parameters = 0, bytes = 0;
  double bits_per_weight() const { return parameters ? 8.0 * double(bytes) / double(parameters) : 0; }
};

Totals totals(const gguf::File& f) {
  Totals t;
  for (const auto& ti : f.tensors()) {
    t.parameters += ti.n_elements();
    t.bytes += ti.n_bytes;
  }
  return t;
}

void print_text(const std::string& path, const gguf::File& f, bool full) {
  std::printf("%s\n", path.c_str());
  std::printf("  version      %" PRIu32 "\n", f.version());
  std::printf("  alignment    %" PRIu32 "\n", f.alignment());
  std::printf("  metadata     %zu keys\n", f.metadata().size());
  std::printf("  tensors      %zu\n", f.tensors().size());
  std::printf("  data offset  %" PRIu64 "\n", f.data_offset());
  std::printf("  file size    %" PRIu64 "\n", f.file_size());

  size_t key_width = 0, type_width = 0;
  for (const auto& kv : f.metadata()) {
    key_width = std::max(key_width, terminal_safe(kv.key).size());
    type_width = std::max(type_width, gguf::describe_type(kv.value).size());
  }
  std::printf("\nmetadata:\n");
  for (const auto& kv : f.metadata()) {
    const std::string value = terminal_safe(gguf::to_string(kv.value, full ? SIZE_MAX : kShortArray));
    std::printf("  %-*s  %-*s  %s\n", int(key_width), terminal_safe(kv.key).c_str(), int(type_width),
                gguf::describe_type(kv.value).c_str(), value.c_str());
  }

  size_t name_width = 4;
  for (const auto& t : f.tensors()) name_width = std::max(name_width, terminal_safe(t.name).size());
  std::printf("\ntensors:\n");
  std::printf("  %-*s  %-7s  %-24s  %12s  %12s\n", int(name_width), "name", "type", "shape",
              "offset", "bytes");
  for (const auto& t : f.tensors())
    std::printf("  %-*s  %-7s  %-24s  %12" PRIu64 "  %12" PRIu64 "\n", int(name_width),
                terminal_safe(t.name).c_str(), edgellm::dtype_name(uint32_t(t.type)).c_str(),
                shape_text(t).c_str(), t.offset, t.n_bytes);

  const Totals tot = totals(f);
  std::printf("\ntotals:\n");
  std::printf("  parameters       %" PRIu64 "\n", tot.parameters);
  std::printf("  tensor bytes     %" PRIu64 "\n", tot.bytes);
  std::printf("  bits per weight  %.4f\n", tot.bits_per_weight());
}

// ---- JSON ------------------------------------------------------------------------------------

// Length of the valid UTF-8 sequence at s[i], or 0 when the bytes there are not one.
size_t utf8_length(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
  else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

// A JSON string literal; bytes that are not UTF-8 become U+FFFD; control characters (C0, DEL,
// C1) are \u escapes, so the output is also safe on a terminal.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = utf8_length(s, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) <= 0x9F) {  // U+0080..U+009F
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(s[i + 1]));
      out += buf;
    } else if (n > 1) {
      out.append(s, i, n);
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += char(c);
    }
    i += n;
  }
  return out + "\"";
}

template <class F>
std::string json_float(F x) {
  if (!std::isfinite(x)) return "null";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, r.ptr);
}

std::string json_value(const gguf::Value& v, bool full) {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return json_string(x);
        } else if constexpr (std::is_same_v<T, gguf::Array>) {
          const size_t n = full ? x.items.size() : std::min(x.items.size(), kShortArray);
          std::string out = "[";
          for (size_t i = 0; i < n; ++i) {
            if (i) out += ",";
            out += json_value(x.items[i], full);
          }
          return out + "]";
        } else if constexpr (std::is_floating_point_v<T>) {
          return json_float(x);
        } else {
          return std::to_string(x);
        }
      },
      v.v);
}

void print_json(const std::string& path, const gguf::File& f, bool full) {
  std::string out = "{";
  out += "\"file\":" + json_string(path);
  out += ",\"version\":" + std::to_string(f.version());
  out += ",\"alignment\":" + std::to_string(f.alignment());
  out += ",\"n_kv\":" + std::to_string(f.metadata().size());
  out += ",\"n_tensors\":" + std::to_string(f.tensors().size());
  out += ",\"data_offset\":" + std::to_string(f.data_offset());
  out += ",\"file_size\":" + std::to_string(f.file_size());
  out += ",\"metadata\":{";
  bool first = true;
  for (const auto& kv : f.metadata()) {
    if (!first) out += ",";
    first = false;
    out += json_string(kv.key) + ":{\"type\":\"" +
           std::string(gguf::value_type_name(kv.value.type())) + "\"";
    if (const auto* a = std::get_if<gguf::Array>(&kv.value.v)) {
      out += ",\"element_type\":\"" + std::string(gguf::value_type_name(a->type)) + "\"";
      out += ",\"count\":" + std::to_string(a->items.size());
      out += std::string(",\"truncated\":") +
             (!full && a->items.size() > kShortArray ? "true" : "false");
    }
    out += ",\"value\":" + json_value(kv.value, full) + "}";
  }
  out += "},\"tensors\":[";
  first = true;
  for (const auto& t : f.tensors()) {
    if (!first) out += ",";
    first = false;
    out += "{\"name\":" + json_string(t.name);
    out += ",\"type\":\"" + edgellm::dtype_name(uint32_t(t.type)) + "\"";
    out += ",\"shape\":" + shape_text(t);
    out += ",\"offset\":" + std::to_string(t.offset);
    out += ",\"n_bytes\":" + std::to_string(t.n_bytes) + "}";
  }
  const Totals tot = totals(f);
  out += "],\"totals\":{\"parameters\":" + std::to_string(tot.parameters);
  out += ",\"tensor_bytes\":" + std::to_string(tot.bytes);
  out += ",\"bits_per_weight\":" + json_float(tot.bits_per_weight()) + "}}";
  std::printf("%s\n", out.c_str());
}

int usage() {
  std::fprintf(stderr, "usage: edgellm-gguf FILE [--full] [--json]\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  bool full = false, json = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--full") == 0) full = true;
    else if (std::strcmp(argv[i], "--json") == 0) json = true;
    else if (argv[i][0] == '-' || !path.empty()) return usage();
    else path = argv[i];
  }
  if (path.empty()) return usage();
  try {
    const gguf::File f = gguf::File::open(path);
    if (json) print_json(path, f, full);
    else print_text(path, f, full);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgellm-gguf: %s\n", terminal_safe(e.what()).c_str());
    return 1;
  }
  return 0;
}
