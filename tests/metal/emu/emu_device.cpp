// The emulated Metal device (see emu_device.hpp) and, in an EDGELLM_METAL_EMULATOR build, the
// engine's make_device().
//
// alloc() buffers are exactly the size asked for, with a guard right after the end: in a normal
// build the buffer lies in its own mapping that ends in a PROT_NONE page (the data 16-byte
// aligned, as a GPU buffer is, so the end abuts the page when the size is a multiple of 16 and
// the up to 15 bytes between are a canary checked after every dispatch); in an ASan build a plain
// heap block of the exact size, whose redzones ASan checks. Mappings are MAP_NORESERVE, so a
// buffer of many GiB costs only the pages a test touches.
#include "emu_device.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "edgellm/gguf.hpp"  // printable
#include "error.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define EDGELLM_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDGELLM_EMU_ASAN 1
#endif
#endif

namespace edgellm::metal_emu {

using engine::metal::BufferId;
using engine::metal::DispatchDesc;

namespace {

constexpr unsigned char kCanary = 0xA5;

[[noreturn]] void invalid(const std::string& what) {
  throw Error(Error::Kind::InvalidArgument, "metal (emulated): " + what);
}

#if !defined(EDGELLM_EMU_ASAN)
size_t page_size() {
  static const size_t p = size_t(sysconf(_SC_PAGESIZE));
  return p;
}
#endif

}  // namespace

Options options_from_schedule_text(const char* value) {
  Options o;
  if (!value || !*value) return o;
  const std::string v = value;
  if (v == "forward") {
    o.schedule = Schedule::forward;
  } else if (v == "reverse") {
    o.schedule = Schedule::reverse;
  } else if (v == "random") {
    o.schedule = Schedule::random;
  } else if (v.rfind("random:", 0) == 0 && v.size() > 7 && v.size() <= 7 + 20 &&
             v.find_first_not_of("0123456789", 7) == std::string::npos) {
    errno = 0;
    const unsigned long long seed = std::strtoull(v.c_str() + 7, nullptr, 10);
    if (errno == ERANGE)
      throw Error(Error::Kind::InvalidArgument, "EDGELLM_METAL_EMU_SCHEDULE='" + gguf::printable(v) +
                                                    "': the seed does not fit in 64 bits");
    o.schedule = Schedule::random;
    o.seed = seed;
  } else {
    throw Error(Error::Kind::InvalidArgument, "EDGELLM_METAL_EMU_SCHEDULE='" + gguf::printable(v) +
                                                  "' is not forward, reverse, random or random:SEED");
  }
  return o;
}

EmuDevice::EmuDevice(const Options& o) : runtime_(o) {
  if (o.simd_width == 0 || o.simd_width > kMaxSimdWidth)
    invalid("SIMD width " + std::to_string(o.simd_width) + " is not 1 .. " + std::to_string(kMaxSimdWidth));
}

EmuDevice::~EmuDevice() {
  for (Buffer& b : buffers_) {
    if (!b.owned) continue;
    if (b.map) {
      munmap(b.map, b.map_bytes);
    } else {
      std::free(b.data);
    }
  }
}

std::string EmuDevice::name() const {
  return std::string("emulated Metal device (") + schedule_name(runtime_.options().schedule) + " schedule)";
}

BufferId EmuDevice::wrap(const void* data, size_t bytes) {
  if (!data && bytes) invalid("wrap: no memory to wrap");
  Buffer b;
  b.data = static_cast<char*>(const_cast<void*>(data));
  b.bytes = bytes;
  buffers_.push_back(b);
  return BufferId(buffers_.size());
}

BufferId EmuDevice::alloc(size_t bytes) {
  Buffer b;
  b.bytes = bytes;
  b.owned = true;
#if defined(EDGELLM_EMU_ASAN)
  b.data = static_cast<char*>(std::calloc(bytes ? bytes : 1, 1));
  if (!b.data)
    throw Error(Error::Kind::OutOfMemory, "metal (emulated): cannot allocate a buffer of " + std::to_string(bytes) +
                                              " bytes");
#else
  const size_t page = page_size();
  if (bytes > SIZE_MAX - 2 * page)
    throw Error(Error::Kind::OutOfMemory, "metal (emulated): a buffer of " + std::to_string(bytes) + " bytes");
  const size_t span = (bytes + 15 + page - 1) / page * page;  // data, slack
  b.map_bytes = span + page;
  void* m = mmap(nullptr, b.map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED)
    throw Error(Error::Kind::OutOfMemory, "metal (emulated): cannot map a buffer of " + std::to_string(bytes) +
                                              " bytes");
  b.map = static_cast<char*>(m);
  if (mprotect(b.map + span, page, PROT_NONE) != 0) {
    munmap(b.map, b.map_bytes);
    throw Error(Error::Kind::OutOfMemory, "metal (emulated): cannot protect a buffer's guard page");
  }
  const uintptr_t end = uintptr_t(b.map + span);
  b.data = reinterpret_cast<char*>((end - bytes) & ~uintptr_t(15));
  b.slack = size_t(end - uintptr_t(b.data)) - bytes;
  std::memset(b.data + bytes, kCanary, b.slack);
#endif
  buffers_.push_back(b);
  return BufferId(buffers_.size());
}

EmuDevice::Buffer& EmuDevice::buffer(BufferId id, const char* what) {
  if (id == 0 || id > buffers_.size())
    invalid(std::string(what) + ": no buffer " + std::to_string(id) + " (" + std::to_string(buffers_.size()) +
            " exist)");
  return buffers_[id - 1];
}

void* EmuDevice::contents(BufferId id) { return buffer(id, "contents").data; }

size_t EmuDevice::buffer_bytes(BufferId id) const {
  if (id == 0 || id > buffers_.size()) invalid("buffer_bytes: no buffer " + std::to_string(id));
  return buffers_[id - 1].bytes;
}

void EmuDevice::encode(const DispatchDesc& d) {
  if (!d.kernel) invalid("encode: a dispatch without a kernel name");
  const std::string kname = gguf::printable(d.kernel, 128);
  auto bad = [&](const std::string& what) { invalid(kname + ": " + what); };
  const KernelInfo* k = find_kernel(d.kernel);
  if (!k) bad("no such kernel in the .metal sources");
  if (d.n_buffers < 0 || d.n_buffers > engine::metal::kMaxBindings)
    bad(std::to_string(d.n_buffers) + " buffers bound (0 .. " + std::to_string(engine::metal::kMaxBindings) + ")");
  if (d.args_bytes > 0 && !d.args) bad(std::to_string(d.args_bytes) + " argument bytes but no argument pointer");
  if (k->args_by_ref && d.args_bytes != k->args_bytes)
    bad("its argument struct at buffer(0) is " + std::to_string(k->args_bytes) + " bytes, the dispatch sets " +
        std::to_string(d.args_bytes));

  auto p = std::make_unique<Pending>();
  for (int i = 0; i < d.n_buffers; ++i) {
    const engine::metal::BufView v = d.buffers[i];
    const int slot = i + 1;
    const bool used = (k->buffer_mask >> slot) & 1u;
    if (v.buf == 0) {
      if (used) bad("buffer(" + std::to_string(slot) + ") is bound to no buffer (id 0)");
      continue;
    }
    if (v.buf > buffers_.size())
      bad("buffer(" + std::to_string(slot) + "): no buffer " + std::to_string(v.buf) + " (" +
          std::to_string(buffers_.size()) + " exist)");
    const Buffer& b = buffers_[v.buf - 1];
    if (v.offset > b.bytes)
      bad("buffer(" + std::to_string(slot) + "): offset " + std::to_string(v.offset) + " past the end of buffer " +
          std::to_string(v.buf) + " (" + std::to_string(b.bytes) + " bytes)");
    p->ids[slot] = v.buf;
    p->offsets[slot] = v.offset;
    p->launch.buffers[slot] = b.data + v.offset;
  }
  for (int slot = 1; slot <= kMaxBuffers; ++slot)
    if (((k->buffer_mask >> slot) & 1u) && p->ids[slot] == 0)
      bad("the kernel reads buffer(" + std::to_string(slot) + "), the dispatch binds " +
          (p->ids[slot] == 0 && slot <= d.n_buffers ? std::string("no buffer there")
                                                    : std::to_string(d.n_buffers) + " buffers"));
  if (d.tg_mem_bytes % 16 != 0 || d.tg_mem_bytes > engine::metal::kMaxThreadgroupMemory)
    bad(std::to_string(d.tg_mem_bytes) + " bytes of threadgroup memory: a multiple of 16, at most " +
        std::to_string(engine::metal::kMaxThreadgroupMemory));
  if (k->uses_tg_memory && d.tg_mem_bytes == 0) bad("the kernel uses threadgroup(0), the dispatch gives it 0 bytes");
  const uint64_t n = d.tg.count();
  if (d.tg.x == 0 || d.tg.y == 0 || d.tg.z == 0) bad("a threadgroup of zero threads");
  if (n > engine::metal::kMaxThreadsPerThreadgroup)
    bad(std::to_string(n) + " threads per threadgroup, more than " +
        std::to_string(engine::metal::kMaxThreadsPerThreadgroup));
  if (n % simd_width() != 0)
    bad(std::to_string(n) + " threads per threadgroup, not a multiple of the SIMD width " +
        std::to_string(simd_width()));
  if (d.grid.x == 0 || d.grid.y == 0 || d.grid.z == 0) bad("a grid with no threadgroups");

  p->args.assign((d.args_bytes + 7) / 8, 0);
  if (d.args_bytes) std::memcpy(p->args.data(), d.args, d.args_bytes);
  p->launch.kernel = k;
  p->launch.args = p->args.data();
  p->launch.args_bytes = d.args_bytes;
  p->launch.tg_mem_bytes = d.tg_mem_bytes;
  p->launch.grid[0] = d.grid.x;
  p->launch.grid[1] = d.grid.y;
  p->launch.grid[2] = d.grid.z;
  p->launch.tg[0] = d.tg.x;
  p->launch.tg[1] = d.tg.y;
  p->launch.tg[2] = d.tg.z;
  pending_.push_back(std::move(p));
}

void EmuDevice::check_canaries(const Pending& p) {
  for (int slot = 1; slot <= kMaxBuffers; ++slot) {
    if (p.ids[slot] == 0) continue;
    const Buffer& b = buffers_[p.ids[slot] - 1];
    for (size_t i = 0; i < b.slack; ++i)
      if (static_cast<unsigned char>(b.data[b.bytes + i]) != kCanary)
        invalid(std::string("kernel ") + p.launch.kernel->name + " wrote past the end of buffer " +
                std::to_string(p.ids[slot]) + " (" + std::to_string(b.bytes) + " bytes; at byte " +
                std::to_string(b.bytes + i) + ")");
  }
}

void EmuDevice::commit_and_wait() {
  std::vector<std::unique_ptr<Pending>> todo;
  todo.swap(pending_);  // cleared whatever happens
  for (const auto& p : todo) {
    try {
      runtime_.run(p->launch);
    } catch (const DispatchError& e) {
      invalid(e.what());
    } catch (const std::invalid_argument& e) {
      invalid(e.what());
    }
    check_canaries(*p);
  }
}

std::unique_ptr<engine::metal::Device> make_emulated_device(const Options& o) { return std::make_unique<EmuDevice>(o); }

}  // namespace edgellm::metal_emu

namespace edgellm::engine::metal {

std::unique_ptr<Device> make_device() {
  return metal_emu::make_emulated_device(metal_emu::options_from_schedule_text(std::getenv("EDGELLM_METAL_EMU_SCHEDULE")));
}

}  // namespace edgellm::engine::metal
