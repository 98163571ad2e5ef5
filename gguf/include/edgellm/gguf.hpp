// GGUF v2/v3 reader (memory-mapped, zero-copy tensor views) and streaming writer.
//
// A GGUF file is untrusted input: every length, count, offset and dimension is checked before it
// is used, and every failure is a GgufError that says what is wrong and at which byte offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "edgellm/dtype.hpp"

namespace edgellm::gguf {

struct Value;

namespace detail {
template <class T, class V, size_t I = 0>
constexpr size_t variant_index() {
  static_assert(I < std::variant_size_v<V>, "not a GGUF value type");
  if constexpr (std::is_same_v<T, std::variant_alternative_t<I, V>>) return I;
  else return variant_index<T, V, I + 1>();
}
[[noreturn]] void throw_type_mismatch(std::string_view key, const Value& found,
                                      std::string_view expected);
[[noreturn]] void throw_missing_key(std::string_view key);
}  // namespace detail

// Metadata value types, numbered as in the file.
enum class ValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
std::string_view value_type_name(ValueType t);  // "u32", "string", "array", ...

class GgufError : public std::runtime_error {
 public:
  // offset: byte position in the file the problem was found at (or npos when not file-related).
  // what() is `what`, followed by " (at byte N)" when the offset is known.
  GgufError(const std::string& what, uint64_t offset = npos);
  // The same error with `context` in front ("model.gguf: ..."), keeping its offset.
  GgufError(const std::string& context, const GgufError& inner);
  uint64_t offset() const { return offset_; }
  static constexpr uint64_t npos = ~uint64_t{0};

 private:
  uint64_t offset_;
};

// A file that cannot be opened, read or mapped, is not a regular file, or changed after it was
// opened (an I/O problem, not a format one: the engine reports it as Io).
class IoError : public GgufError {
 public:
  using GgufError::GgufError;
};

// `s` fit for an error message or a terminal: bytes outside printable ASCII, and the backslash, as
// \xNN (so a file's string cannot carry terminal escape sequences), cut after max_bytes with "...".
std::string printable(std::string_view s, size_t max_bytes = 64);

// Deepest nesting of arrays a file may use (an array of arrays of scalars has depth 2).
inline constexpr int kMaxArrayDepth = 8;

// An array value: all elements share one type (which may itself be ARRAY: nested arrays).
struct Array {
  ValueType type = ValueType::U8;
  std::vector<Value> items;
};

struct Value {
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool,
                               std::string, Array, uint64_t, int64_t, double>;
  Storage v;

  Value() = default;
  template <class T, class = std::enable_if_t<std::is_constructible_v<Storage, T&&>>>
  Value(T&& x) : v(std::forward<T>(x)) {}  // NOLINT: implicit on purpose, Value{uint32_t{3}}

  ValueType type() const { return static_cast<ValueType>(v.index()); }  // Storage is in id order
  // Typed access; throws GgufError naming the expected and the actual type.
  template <class T> const T& as() const;
};

// Same type and same value, recursively (array element types included).
bool operator==(const Array& a, const Array& b);
bool operator==(const Value& a, const Value& b);

// The ValueType that stores a C++ type (value_type_of<uint32_t> == ValueType::U32).
template <class T>
inline constexpr ValueType value_type_of =
    static_cast<ValueType>(detail::variant_index<T, Value::Storage>());

// "u32", "string", or "array of string" / "array of array" for arrays.
std::string describe_type(const Value& v);

// Value as text for people: strings quoted and escaped, arrays as [a, b, ...]; arrays longer
// than `max_items` show their first items, their count and element type.
std::string to_string(const Value& v, size_t max_items = SIZE_MAX);

struct KeyValue {
  std::string key;
  Value value;
};

// One tensor of the file. `data` points into the file image (the mapping, or the buffer the file
// was read into).
struct TensorInfo {
  std::string name;
  uint32_t n_dims = 0;
  uint64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) length, as ggml writes it
  DType type = DType::F32;
  uint64_t offset = 0;            // relative to the start of the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;

  uint64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

// How File::open gets the bytes.
//  Map:  mmap read-only, zero-copy. Cheap, but the image IS the file: truncating it while it is
//        open makes reading the lost pages fault (SIGBUS), overwriting it in place changes the
//        tensors. check_unchanged() detects either afterwards (size / mtime / inode).
//  Read: read the whole file into an owned page-aligned buffer; the File keeps no descriptor and
//        no mapping, so what happens to the file afterwards does not matter.
enum class LoadMode { Map, Read };

class File {
 public:
  // Opens `path` (refusing anything but a regular file, without blocking on a FIFO) and parses it
  // (the File owns the mapping or buffer). Throws IoError (cannot open / read / map, not a
  // regular file) or GgufError, the message starting with the path. Rules checked:
  // docs/FORMATS.md, section GGUF.
  static File open(const std::string& path, LoadMode mode = LoadMode::Map);
  // Parses an in-memory image; the caller keeps `bytes` alive as long as the File. For tests and
  // fuzzing. Throws GgufError.
  static File parse(std::span<const uint8_t> bytes);

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  // Map mode: throws IoError when the file is no longer the one that was mapped (smaller, other
  // size, modified or replaced since open; one fstat of the kept descriptor). Read mode and parse:
  // nothing to check (the bytes are owned or the caller's).
  void check_unchanged() const;
  bool mapped() const;  // the image is a mapping of the file (Map mode)

  uint32_t version() const;
  uint32_t alignment() const;
  uint64_t data_offset() const;      // file offset of the data section (the file size for a
                                     // file without tensors that ends before the padding)
  uint64_t file_size() const;
  // The whole file image (the mapping or the owned buffer, page-aligned, for open; the caller's
  // bytes for parse):
  // every TensorInfo::data points into it.
  std::span<const uint8_t> image() const;

  const std::vector<KeyValue>& metadata() const;    // in file order
  const std::vector<TensorInfo>& tensors() const;   // in file order

  const Value* find(std::string_view key) const;          // nullptr when absent
  const TensorInfo* find_tensor(std::string_view name) const;

  // Typed look-up: throws GgufError naming the key and the type found when missing or mistyped.
  template <class T> const T& get(std::string_view key) const;
  // Typed look-up with a default for an absent key (a present key of another type still throws).
  template <class T> T get_or(std::string_view key, T fallback) const;
  // Array of scalars or strings as a vector: throws when absent or of another element type.
  template <class T> std::vector<T> get_array(std::string_view key) const;

 private:
  struct Impl;
  explicit File(std::unique_ptr<Impl>);
  std::unique_ptr<Impl> impl_;
};

// Streaming writer. Declare metadata and tensors first, then write each tensor's data in the
// order declared; tensor data never has to be in memory all at once.
//
//   Writer w;
//   w.set("general.architecture", std::string("llama"));
//   w.add_tensor("tok_embd.weight", DType::Q4_K, {2048, 32000});
//   w.begin("model.gguf");            // writes header, metadata, tensor infos, padding
//   w.write_tensor_data(ptr, bytes);  // any number of chunks, tensors in declaration order
//   w.finish();                        // checks every tensor was fully written
class Writer {
 public:
  explicit Writer(uint32_t version = 3, uint32_t alignment = 32);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void set(std::string key, Value value);  // replaces an existing key, keeps first position
  void add_tensor(std::string name, DType type, std::span<const uint64_t> ne);
  void add_tensor(std::string name, DType type, std::initializer_list<uint64_t> ne) {
    add_tensor(std::move(name), type, std::span<const uint64_t>(ne.begin(), ne.size()));
  }

  void begin(const std::string& path);
  void write_tensor_data(const void* data, size_t n_bytes);
  void finish();

  // Whole file as bytes (for tests and fuzz seeds): same layout begin/finish would write.
  // Tensor data comes from `data[i]` for tensor i (each must hold exactly its n_bytes).
  std::vector<uint8_t> to_bytes(std::span<const std::span<const uint8_t>> data) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- Template definitions ------------------------------------------------------------------------

template <class T>
const T& Value::as() const {
  if (const T* p = std::get_if<T>(&v)) return *p;
  detail::throw_type_mismatch({}, *this, value_type_name(value_type_of<T>));
}

template <class T>
const T& File::get(std::string_view key) const {
  const Value* value = find(key);
  if (!value) detail::throw_missing_key(key);
  if (const T* p = std::get_if<T>(&value->v)) return *p;
  detail::throw_type_mismatch(key, *value, value_type_name(value_type_of<T>));
}

template <class T>
T File::get_or(std::string_view key, T fallback) const {
  if (!find(key)) return fallback;
  return get<T>(key);
}

template <class T>
std::vector<T> File::get_array(std::string_view key) const {
  const Array& array = get<Array>(key);
  if (array.type != value_type_of<T>)
    detail::throw_type_mismatch(key, *find(key),
                                "array of " + std::string(value_type_name(value_type_of<T>)));
  std::vector<T> out;
  out.reserve(array.items.size());
  for (const Value& item : array.items) {
    const T* p = std::get_if<T>(&item.v);
    if (!p) detail::throw_type_mismatch(key, item, value_type_name(value_type_of<T>));
    out.push_back(*p);
  }
  return out;
}

}  // namespace edgellm::gguf
