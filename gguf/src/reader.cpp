// GGUF reader: parses an untrusted image (memory-mapped file or caller's bytes) into metadata
// values and zero-copy tensor views. Every count, length, offset and dimension is checked against
// the bytes actually present before anything is allocated or read.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <numeric>
#include <unordered_map>

#include "edgellm/gguf.hpp"

namespace edgellm::gguf {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes little-endian");

namespace {

constexpr uint32_t kDefaultAlignment = 32;
// Array elements the metadata may hold in all (each costs a Value, about 40 bytes, in memory):
// 16M is 30 times the largest vocabulary seen, and caps a hostile file's use at under 1 GB.
constexpr uint64_t kMaxArrayItems = uint64_t{1} << 24;

// The ARM-repacked types llama.cpp once wrote to files (ggml ids 31-33: Q4_0_4_4, Q4_0_4_8,
// Q4_0_8_8; 36-38: IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8) and no longer reads: it repacks Q4_0 and
// IQ4_NL at load time instead. What to tell the owner of such a file, or "" for other ids.
std::string removed_repacked_type_note(uint32_t id) {
  const char* names[] = {"Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "", "", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8"};
  if (id < 31 || id > 38 || names[id - 31][0] == '\0') return "";
  const std::string base = id <= 33 ? "Q4_0" : "IQ4_NL";
  return std::string(" (") + names[id - 31] + ", an ARM-repacked " + base +
         " that llama.cpp removed from the file format; re-download the " + base + " file)";
}

// Fewest bytes a value of each type takes in the file (an array: its element type and count).
uint64_t min_encoded_size(ValueType t) {
  switch (t) {
    case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
    case ValueType::STRING: return 8;
    case ValueType::ARRAY: return 12;
  }
  return 1;
}

bool known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::F64); }

// A read position in the image; every read checks the bytes are there.
class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return bytes_.size() - pos_; }

  // `what` (and `part`) name the item for the error; strings are only built on failure.
  void need(uint64_t n, const std::string& what, const char* part = "") const {
    if (n > left())
      throw GgufError("file truncated in " + what + part + ": needs " + std::to_string(n) +
                          " bytes, only " + std::to_string(left()) + " left",
                      pos_);
  }

  template <class T>
  T read(const std::string& what, const char* part = "") {
    need(sizeof(T), what, part);
    T x;
    std::memcpy(&x, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return x;
  }

  std::string read_string(const std::string& what) {
    const uint64_t at = pos_;
    const uint64_t n = read<uint64_t>(what, " (length)");
    if (n > left())
      throw GgufError(what + " has length " + std::to_string(n) + ", more than the " +
                          std::to_string(left()) + " bytes left in the file",
                      at);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  std::span<const uint8_t> bytes_;
  uint64_t pos_ = 0;

 public:
  uint64_t array_items_left = kMaxArrayItems;
};

template <class T>
void read_items(Cursor& c, Array& a, uint64_t n, const std::string& what) {
  for (uint64_t i = 0; i < n; ++i) a.items.emplace_back(c.read<T>(what));
}

Value read_value(Cursor& c, ValueType type, int depth, const std::string& what);

Array read_array(Cursor& c, int depth, const std::string& what) {
  const uint64_t at = c.pos();
  const uint32_t raw_type = c.read<uint32_t>(what, " (element type)");
  if (!known_value_type(raw_type))
    throw GgufError(what + " has unknown element type " + std::to_string(raw_type), at);
  Array a;
  a.type = static_cast<ValueType>(raw_type);
  if (a.type == ValueType::ARRAY && depth + 1 >= kMaxArrayDepth)
    throw GgufError(what + " nests arrays deeper than " + std::to_string(kMaxArrayDepth), at);
  const uint64_t count_at = c.pos();
  const uint64_t n = c.read<uint64_t>(what, " (count)");
  // Check the count against the bytes left before allocating anything for it.
  if (n > c.left() / min_encoded_size(a.type))
    throw GgufError(what + " has " + std::to_string(n) + " elements of " +
                        std::string(value_type_name(a.type)) + ", more than the " +
                        std::to_string(c.left()) + " bytes left in the file can hold",
                    count_at);
  if (n > c.array_items_left)
    throw GgufError(what + " has " + std::to_string(n) + " elements, over the limit of " +
                        std::to_string(kMaxArrayItems) + " array elements in all the metadata",
                    count_at);
  c.array_items_left -= n;
  a.items.reserve(n);
  const std::string item = what + " element";
  switch (a.type) {  // plain loops for the common scalar arrays (token scores and types)
    case ValueType::F32: read_items<float>(c, a, n, item); break;
    case ValueType::I32: read_items<int32_t>(c, a, n, item); break;
    case ValueType::U32: read_items<uint32_t>(c, a, n, item); break;
    default:
      for (uint64_t i = 0; i < n; ++i) a.items.push_back(read_value(c, a.type, depth + 1, item));
  }
  return a;
}

Value read_value(Cursor& c, ValueType type, int depth, const std::string& what) {
  switch (type) {
    case ValueType::U8: return c.read<uint8_t>(what);
    case ValueType::I8: return c.read<int8_t>(what);
    case ValueType::U16: return c.read<uint16_t>(what);
    case ValueType::I16: return c.read<int16_t>(what);
    case ValueType::U32: return c.read<uint32_t>(what);
    case ValueType::I32: return c.read<int32_t>(what);
    case ValueType::F32: return c.read<float>(what);
    case ValueType::BOOL: return c.read<uint8_t>(what) != 0;
    case ValueType::STRING: return c.read_string(what);
    case ValueType::ARRAY: return read_array(c, depth, what);
    case ValueType::U64: return c.read<uint64_t>(what);
    case ValueType::I64: return c.read<int64_t>(what);
    case ValueType::F64: return c.read<double>(what);
  }
  return {};
}

std::string shape_text(const TensorInfo& t) {
  std::string s = "[";
  for (uint32_t d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
  return s + "]";
}

}  // namespace

struct File::Impl {
  void* map = nullptr;  // owned read-only mapping (open, Map), or nullptr
  size_t map_size = 0;
  void* buffer = nullptr;  // owned page-aligned copy of the file (open, Read), or nullptr
  int fd = -1;             // kept open while mapped, for check_unchanged()
  struct stat st {};       // the file as it was when opened (Map)
  std::string path;
  std::span<const uint8_t> bytes;

  uint32_t version = 0;
  uint32_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;
  std::vector<KeyValue> kv;
  std::vector<TensorInfo> tensors;
  // Views into the names in kv / tensors: both vectors are sized once, so they never move.
  std::unordered_map<std::string_view, size_t> kv_index, tensor_index;

  ~Impl() {
    if (map) munmap(map, map_size);
    std::free(buffer);
    if (fd >= 0) ::close(fd);
  }

  void parse();
};

void File::Impl::parse() {
  Cursor c(bytes);
  if (bytes.empty()) throw GgufError("empty file (0 bytes), not a GGUF file", 0);
  c.need(4, "the magic");
  if (std::memcmp(bytes.data(), "GGUF", 4) != 0)
    throw GgufError("bad magic: the file does not start with \"GGUF\"", 0);
  c.read<uint32_t>("the magic");

  const uint64_t version_at = c.pos();
  version = c.read<uint32_t>("the version");
  if (version == 1)
    throw GgufError("GGUF version 1 is not supported (only versions 2 and 3)", version_at);
  if (version != 2 && version != 3)
    throw GgufError("unsupported GGUF version " + std::to_string(version) +
                        (version > 0xffff ? " (a big-endian file?)" : "") +
                        "; only versions 2 and 3 are supported",
                    version_at);

  const uint64_t n_tensors_at = c.pos();
  const uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  const uint64_t n_kv_at = c.pos();
  const uint64_t n_kv = c.read<uint64_t>("the metadata count");
  // A key-value pair takes at least 13 bytes, a tensor info at least 32.
  if (n_kv > c.left() / 13)
    throw GgufError("metadata count " + std::to_string(n_kv) + " is more than the " +
                        std::to_string(c.left()) + " bytes left in the file can hold",
                    n_kv_at);
  if (n_tensors > c.left() / 32)
    throw GgufError("tensor count " + std::to_string(n_tensors) + " is more than the " +
                        std::to_string(c.left()) + " bytes left in the file can hold",
                    n_tensors_at);

  kv.reserve(n_kv);
  kv_index.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t key_at = c.pos();
    std::string key = c.read_string("key " + std::to_string(i));
    if (key.empty()) throw GgufError("key " + std::to_string(i) + " is empty", key_at);
    const std::string shown = printable(key);
    if (kv_index.count(key)) throw GgufError("duplicate key '" + shown + "'", key_at);
    const std::string what = "value of key '" + shown + "'";
    const uint64_t type_at = c.pos();
    const uint32_t raw_type = c.read<uint32_t>("type of key '" + shown + "'");
    if (!known_value_type(raw_type))
      throw GgufError("key '" + shown + "' has unknown value type " + std::to_string(raw_type),
                      type_at);
    const uint64_t value_at = c.pos();
    Value value = read_value(c, static_cast<ValueType>(raw_type), 0, what);
    if (key == "general.alignment") {
      const uint32_t* a = std::get_if<uint32_t>(&value.v);
      if (!a) throw GgufError("general.alignment is " + describe_type(value) + ", expected u32",
                              type_at);
      if (*a == 0 || (*a & (*a - 1)) != 0)
        throw GgufError("general.alignment " + std::to_string(*a) + " is not a power of two",
                        value_at);
      alignment = *a;
    }
    kv.push_back({std::move(key), std::move(value)});
    kv_index.emplace(kv.back().key, kv.size() - 1);
  }

  std::vector<uint64_t> offset_field_at(n_tensors);  // where each tensor's offset was read
  tensors.reserve(n_tensors);
  tensor_index.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t;
    const uint64_t name_at = c.pos();
    t.name = c.read_string("name of tensor " + std::to_string(i));
    const std::string what = "tensor '" + printable(t.name) + "'";
    if (tensor_index.count(t.name)) throw GgufError("duplicate tensor name '" + printable(t.name) + "'", name_at);

    const uint64_t dims_at = c.pos();
    t.n_dims = c.read<uint32_t>(what, " (dimension count)");
    if (t.n_dims == 0 || t.n_dims > 4)
      throw GgufError(what + " has " + std::to_string(t.n_dims) + " dimensions, expected 1 to 4",
                      dims_at);
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < t.n_dims; ++d) {
      const uint64_t ne_at = c.pos();
      t.ne[d] = c.read<uint64_t>(what, " (dimensions)");
      if (t.ne[d] == 0)
        throw GgufError(what + " has dimension " + std::to_string(d) + " of size 0", ne_at);
      // ggml keeps sizes in int64_t: the element count must stay below 2^63.
      if (t.ne[d] > uint64_t(INT64_MAX) / n_elements)
        throw GgufError(what + " has too many elements: its dimensions overflow 64 bits", ne_at);
      n_elements *= t.ne[d];
    }

    const uint64_t type_at = c.pos();
    const uint32_t raw_type = c.read<uint32_t>(what, " (type)");
    const auto info = dtype_info(raw_type);
    if (!info)
      throw GgufError(what + " has unknown tensor type id " + std::to_string(raw_type) +
                          removed_repacked_type_note(raw_type),
                      type_at);
    t.type = static_cast<DType>(raw_type);
    if (t.ne[0] % info->block_size != 0)
      throw GgufError(what + " of type " + std::string(info->name) + " has rows of " +
                          std::to_string(t.ne[0]) + " elements, not a whole number of " +
                          std::to_string(info->block_size) + "-element blocks",
                      type_at);
    const auto row_bytes = dtype_row_bytes(t.type, t.ne[0]);
    const uint64_t rows = n_elements / t.ne[0];
    if (!row_bytes || rows > UINT64_MAX / *row_bytes)
      throw GgufError(what + " size in bytes overflows 64 bits", type_at);
    t.n_bytes = *row_bytes * rows;

    offset_field_at[i] = c.pos();
    t.offset = c.read<uint64_t>(what, " (data offset)");
    if (t.offset % alignment != 0)
      throw GgufError(what + " data offset " + std::to_string(t.offset) +
                          " is not a multiple of the alignment " + std::to_string(alignment),
                      offset_field_at[i]);
    tensors.push_back(std::move(t));
    tensor_index.emplace(tensors.back().name, tensors.size() - 1);
  }

  // The data section starts at the next multiple of the alignment. A file without tensors may
  // end before it (vocabulary-only files do).
  const uint64_t header_end = c.pos();
  data_offset = header_end + (alignment - header_end % alignment) % alignment;
  if (data_offset > bytes.size()) {
    if (n_tensors > 0)
      throw GgufError("file truncated before the data section, which starts at byte " +
                          std::to_string(data_offset),
                      bytes.size());
    data_offset = bytes.size();
  }

  const uint64_t data_size = bytes.size() - data_offset;
  for (size_t i = 0; i < tensors.size(); ++i) {
    TensorInfo& t = tensors[i];
    if (t.offset > data_size || t.n_bytes > data_size - t.offset)
      throw GgufError("tensor '" + printable(t.name) + "' data (" + std::to_string(t.n_bytes) +
                          " bytes at data offset " + std::to_string(t.offset) +
                          ") runs past the end of the file (" + std::to_string(data_size) +
                          " data bytes)",
                      offset_field_at[i]);
    t.data = bytes.data() + data_offset + t.offset;
  }

  // Tensors may be stored in any order, but must not share bytes.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors[a].offset < tensors[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const TensorInfo& prev = tensors[order[k - 1]];
    const TensorInfo& t = tensors[order[k]];
    if (t.offset < prev.offset + prev.n_bytes)
      throw GgufError("tensor '" + printable(t.name) + "' " + shape_text(t) + " at data offset " +
                          std::to_string(t.offset) + " overlaps tensor '" + printable(prev.name) +
                          "' (data offsets " + std::to_string(prev.offset) + " to " +
                          std::to_string(prev.offset + prev.n_bytes) + ")",
                      offset_field_at[order[k]]);
  }
}

File::File(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

File File::parse(std::span<const uint8_t> bytes) {
  auto impl = std::make_unique<Impl>();
  impl->bytes = bytes;
  impl->parse();
  return File(std::move(impl));
}

namespace {

// Closes a descriptor unless released.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

}  // namespace

File File::open(const std::string& path, LoadMode mode) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever. Cleared
  // again once fstat has shown a regular file.
  FdGuard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (fd.fd < 0) throw IoError(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd.fd, &st) != 0) throw IoError(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISFIFO(st.st_mode)  ? "a FIFO"
                       : S_ISDIR(st.st_mode) ? "a directory"
                       : S_ISCHR(st.st_mode) ? "a character device"
                       : S_ISBLK(st.st_mode) ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    throw IoError(path + ": not a regular file (" + kind + "); a model must be a regular file");
  }
  if (const int flags = fcntl(fd.fd, F_GETFL); flags < 0 || fcntl(fd.fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
    throw IoError(path + ": cannot clear O_NONBLOCK: " + std::strerror(errno));
  if (st.st_size < 0 || uint64_t(st.st_size) > uint64_t(SIZE_MAX) / 2)
    throw IoError(path + ": file size " + std::to_string(st.st_size) + " is out of range");
  const size_t size = size_t(st.st_size);

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->st = st;
  if (size > 0 && mode == LoadMode::Map) {
    void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
    if (map == MAP_FAILED) throw IoError(path + ": cannot map: " + std::strerror(errno));
    impl->map = map;
    impl->map_size = size;
    impl->bytes = {static_cast<const uint8_t*>(map), size};
    impl->fd = fd.release();
  } else if (size > 0) {
    // Page-aligned like a mapping, so the tensors keep the alignment the file gives them.
    const long page = sysconf(_SC_PAGESIZE);
    const size_t align = page > 0 ? size_t(page) : 4096;
    const size_t rounded = (size + align - 1) / align * align;
    impl->buffer = std::aligned_alloc(align, rounded);
    if (!impl->buffer)
      throw IoError(path + ": cannot allocate " + std::to_string(size) + " bytes to read it into");
    auto* dst = static_cast<uint8_t*>(impl->buffer);
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pread(fd.fd, dst + done, size - done, off_t(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw IoError(path + ": cannot read: " + std::strerror(errno));
      if (n == 0)
        throw IoError(path + ": the file shrank while it was read (" + std::to_string(done) + " of " +
                      std::to_string(size) + " bytes)");
      done += size_t(n);
    }
    impl->bytes = {dst, size};
  }
  try {
    impl->parse();
  } catch (const GgufError& e) {
    throw GgufError(path, e);
  }
  return File(std::move(impl));
}

void File::check_unchanged() const {
  const Impl& m = *impl_;
  if (m.fd < 0) return;
  struct stat now {};
  if (fstat(m.fd, &now) != 0) throw IoError(m.path + ": cannot stat the mapped file: " + std::strerror(errno));
  std::string what;
  if (now.st_size < m.st.st_size) what = "was truncated";
  else if (now.st_size != m.st.st_size) what = "changed size";
  else if (now.st_mtim.tv_sec != m.st.st_mtim.tv_sec || now.st_mtim.tv_nsec != m.st.st_mtim.tv_nsec)
    what = "was modified";
  if (what.empty()) return;
  throw IoError(m.path + ": the model file " + what + " after it was loaded (" + std::to_string(m.st.st_size) +
                " bytes then, " + std::to_string(now.st_size) +
                " now); its weights are mapped, so it cannot be used any more: load it again (or load with "
                "use_mmap = false to read it into memory)");
}

bool File::mapped() const { return impl_->map != nullptr; }

std::string printable(std::string_view s, size_t max_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  const size_t n = s.size() < max_bytes ? s.size() : max_bytes;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b >= 0x20 && b < 0x7F && b != '\\') {
      out += static_cast<char>(b);
    } else {
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 0xF];
    }
  }
  if (s.size() > n) out += "...";
  return out;
}

uint32_t File::version() const { return impl_->version; }
uint32_t File::alignment() const { return impl_->alignment; }
uint64_t File::data_offset() const { return impl_->data_offset; }
uint64_t File::file_size() const { return impl_->bytes.size(); }
std::span<const uint8_t> File::image() const { return impl_->bytes; }
const std::vector<KeyValue>& File::metadata() const { return impl_->kv; }
const std::vector<TensorInfo>& File::tensors() const { return impl_->tensors; }

const Value* File::find(std::string_view key) const {
  auto it = impl_->kv_index.find(key);
  return it == impl_->kv_index.end() ? nullptr : &impl_->kv[it->second].value;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = impl_->tensor_index.find(name);
  return it == impl_->tensor_index.end() ? nullptr : &impl_->tensors[it->second];
}

}  // namespace edgellm::gguf
