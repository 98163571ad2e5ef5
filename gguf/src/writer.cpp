// GGUF writer: the layout llama.cpp writes (header, metadata, tensor infos, zero padding to the
// alignment, then each tensor's data padded to the alignment), with tensor data streamed to disk.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "edgellm/gguf.hpp"

namespace edgellm::gguf {

namespace {

constexpr size_t kMaxTensorName = 63;  // llama.cpp keeps names in char[64]

bool power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }
uint64_t pad_to(uint64_t x, uint64_t alignment) { return x + (alignment - x % alignment) % alignment; }

void check_value(const Value& v, const std::string& key, int depth) {
  const Array* a = std::get_if<Array>(&v.v);
  if (!a) return;
  if (depth >= kMaxArrayDepth)
    throw GgufError("key '" + key + "' nests arrays deeper than " + std::to_string(kMaxArrayDepth));
  for (const Value& item : a->items) {
    if (item.type() != a->type)
      throw GgufError("key '" + key + "' is an array of " +
                      std::string(value_type_name(a->type)) + " with an element of type " +
                      std::string(value_type_name(item.type())));
    check_value(item, key, depth + 1);
  }
}

// Little-endian serialization into a byte buffer.
struct Bytes {
  std::vector<uint8_t>& out;
  template <class T>
  void put(T x) {
    const size_t at = out.size();
    out.resize(at + sizeof(T));
    std::memcpy(out.data() + at, &x, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out.insert(out.end(), s.begin(), s.end());
  }
  void put_value(const Value& v) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            put_string(x);
          } else if constexpr (std::is_same_v<T, Array>) {
            put<uint32_t>(static_cast<uint32_t>(x.type));
            put<uint64_t>(x.items.size());
            for (const Value& item : x.items) put_value(item);
          } else if constexpr (std::is_same_v<T, bool>) {
            put<uint8_t>(x ? 1 : 0);
          } else {
            put<T>(x);
          }
        },
        v.v);
  }
};

}  // namespace

static_assert(std::endian::native == std::endian::little, "the GGUF writer assumes little-endian");

struct Writer::Impl {
  uint32_t version;
  uint32_t alignment;
  std::vector<KeyValue> kv;
  std::unordered_map<std::string, size_t> kv_index;
  std::vector<TensorInfo> tensors;  // offsets set by layout()
  std::unordered_set<std::string> tensor_names;

  // Streaming state between begin() and finish().
  FILE* out = nullptr;
  std::string path;
  size_t current = 0;         // tensor being written
  uint64_t current_done = 0;  // bytes of it written so far

  void layout() {
    uint64_t offset = 0;
    for (TensorInfo& t : tensors) {
      t.offset = offset;
      offset = pad_to(offset + t.n_bytes, alignment);
    }
  }

  // Header, metadata and tensor infos, padded to the start of the data section.
  std::vector<uint8_t> head() {
    layout();
    std::vector<uint8_t> buf = {'G', 'G', 'U', 'F'};
    Bytes b{buf};
    b.put<uint32_t>(version);
    b.put<uint64_t>(tensors.size());
    b.put<uint64_t>(kv.size());
    for (const KeyValue& e : kv) {
      b.put_string(e.key);
      b.put<uint32_t>(static_cast<uint32_t>(e.value.type()));
      b.put_value(e.value);
    }
    for (const TensorInfo& t : tensors) {
      b.put_string(t.name);
      b.put<uint32_t>(t.n_dims);
      for (uint32_t d = 0; d < t.n_dims; ++d) b.put<uint64_t>(t.ne[d]);
      b.put<uint32_t>(static_cast<uint32_t>(t.type));
      b.put<uint64_t>(t.offset);
    }
    buf.resize(pad_to(buf.size(), alignment), 0);
    return buf;
  }

  void write(const void* data, size_t n) {
    if (n && std::fwrite(data, 1, n, out) != n)
      throw GgufError(path + ": write failed: " + std::strerror(errno));
  }
  void write_padding(uint64_t n_bytes) {
    static const uint8_t zeros[4096] = {};
    for (uint64_t n = pad_to(n_bytes, alignment) - n_bytes; n > 0;) {
      const size_t chunk = size_t(std::min<uint64_t>(n, sizeof zeros));
      write(zeros, chunk);
      n -= chunk;
    }
  }
};

Writer::Writer(uint32_t version, uint32_t alignment) : impl_(std::make_unique<Impl>()) {
  if (version != 2 && version != 3)
    throw GgufError("cannot write GGUF version " + std::to_string(version) + " (only 2 and 3)");
  impl_->version = version;
  impl_->alignment = 32;
  if (alignment != 32) set("general.alignment", alignment);
}

Writer::~Writer() {
  if (impl_->out) {  // begun but not finished: the file is incomplete, do not leave it behind
    std::fclose(impl_->out);
    std::remove(impl_->path.c_str());
  }
}

void Writer::set(std::string key, Value value) {
  if (key.empty()) throw GgufError("cannot write an empty key");
  if (impl_->out) throw GgufError("cannot set key '" + key + "' after begin()");
  check_value(value, key, 0);
  if (key == "general.alignment") {
    const uint32_t* a = std::get_if<uint32_t>(&value.v);
    if (!a) throw GgufError("general.alignment must be u32, not " + describe_type(value));
    if (!power_of_two(*a))
      throw GgufError("general.alignment " + std::to_string(*a) + " is not a power of two");
    impl_->alignment = *a;
  }
  auto it = impl_->kv_index.find(key);
  if (it != impl_->kv_index.end()) {
    impl_->kv[it->second].value = std::move(value);
    return;
  }
  impl_->kv_index.emplace(key, impl_->kv.size());
  impl_->kv.push_back({std::move(key), std::move(value)});
}

void Writer::add_tensor(std::string name, DType type, std::span<const uint64_t> ne) {
  const std::string what = "tensor '" + name + "'";
  if (impl_->out) throw GgufError("cannot add " + what + " after begin()");
  if (name.empty() || name.size() > kMaxTensorName)
    throw GgufError(what + ": names must have 1 to " + std::to_string(kMaxTensorName) + " bytes");
  if (impl_->tensor_names.count(name)) throw GgufError("duplicate tensor name '" + name + "'");
  if (ne.empty() || ne.size() > 4)
    throw GgufError(what + " has " + std::to_string(ne.size()) + " dimensions, expected 1 to 4");
  const auto info = dtype_info(type);
  if (!info) throw GgufError(what + " has unknown type id " + std::to_string(uint32_t(type)));
  TensorInfo t;
  t.name = name;
  t.type = type;
  t.n_dims = uint32_t(ne.size());
  uint64_t n = 1;
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] == 0 || ne[d] > uint64_t(INT64_MAX) / n)
      throw GgufError(what + " dimension " + std::to_string(d) + " is 0 or overflows");
    n *= ne[d];
    t.ne[d] = ne[d];
  }
  const auto row = dtype_row_bytes(type, ne[0]);
  if (!row)
    throw GgufError(what + ": a row of " + std::to_string(ne[0]) + " is not a whole number of " +
                    std::string(info->name) + " blocks");
  t.n_bytes = *row * (n / ne[0]);
  impl_->tensor_names.insert(name);
  impl_->tensors.push_back(std::move(t));
}

void Writer::begin(const std::string& path) {
  if (impl_->out) throw GgufError("begin() called twice");
  std::vector<uint8_t> head = impl_->head();
  impl_->out = std::fopen(path.c_str(), "wb");
  if (!impl_->out) throw GgufError(path + ": cannot create: " + std::strerror(errno));
  impl_->path = path;
  impl_->current = 0;
  impl_->current_done = 0;
  impl_->write(head.data(), head.size());
}

void Writer::write_tensor_data(const void* data, size_t n_bytes) {
  if (!impl_->out) throw GgufError("write_tensor_data() before begin()");
  const auto* p = static_cast<const uint8_t*>(data);
  while (n_bytes > 0) {
    if (impl_->current >= impl_->tensors.size())
      throw GgufError("write_tensor_data(): more data than the declared tensors hold");
    const TensorInfo& t = impl_->tensors[impl_->current];
    const uint64_t take = std::min<uint64_t>(n_bytes, t.n_bytes - impl_->current_done);
    impl_->write(p, take);
    p += take;
    n_bytes -= take;
    impl_->current_done += take;
    if (impl_->current_done == t.n_bytes) {
      impl_->write_padding(t.n_bytes);
      ++impl_->current;
      impl_->current_done = 0;
    }
  }
}

void Writer::finish() {
  if (!impl_->out) throw GgufError("finish() before begin()");
  if (impl_->current < impl_->tensors.size()) {
    const TensorInfo& t = impl_->tensors[impl_->current];
    throw GgufError("finish(): tensor '" + t.name + "' has " + std::to_string(impl_->current_done) +
                    " of its " + std::to_string(t.n_bytes) + " bytes written");
  }
  FILE* out = impl_->out;
  impl_->out = nullptr;
  const bool ok = std::fflush(out) == 0;
  const int err = errno;
  if (std::fclose(out) != 0 || !ok)
    throw GgufError(impl_->path + ": write failed: " + std::strerror(ok ? errno : err));
}

std::vector<uint8_t> Writer::to_bytes(std::span<const std::span<const uint8_t>> data) const {
  if (data.size() != impl_->tensors.size())
    throw GgufError("to_bytes(): " + std::to_string(data.size()) + " data buffers for " +
                    std::to_string(impl_->tensors.size()) + " tensors");
  std::vector<uint8_t> buf = impl_->head();
  for (size_t i = 0; i < data.size(); ++i) {
    const TensorInfo& t = impl_->tensors[i];
    if (data[i].size() != t.n_bytes)
      throw GgufError("to_bytes(): tensor '" + t.name + "' needs " + std::to_string(t.n_bytes) +
                      " bytes, got " + std::to_string(data[i].size()));
    buf.insert(buf.end(), data[i].begin(), data[i].end());
    buf.resize(pad_to(buf.size(), impl_->alignment), 0);
  }
  return buf;
}

}  // namespace edgellm::gguf
