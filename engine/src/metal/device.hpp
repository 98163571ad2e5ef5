// The thin device interface under the Metal backend: the only code that calls the Metal API lives
// behind it. Everything else about running a step on the GPU (which kernel, grid and threadgroup
// sizes, threadgroup memory, buffer offsets, argument structs, dispatch order) is plain C++ in
// engine/src/metal/*.cpp, compiled and tested on Linux against the emulated device
// (tests/metal/emu), and run unchanged on Apple against the real one (device_apple.mm).
//
// Binding convention, the same for every kernel (shaders/args.h): buffer(0) is the kernel's
// argument struct (set by value), buffer(1) .. buffer(n) the buffers in DispatchDesc::buffers
// order, threadgroup(0) the threadgroup memory of tg_mem_bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

namespace edgellm::engine::metal {

using BufferId = uint32_t;  // 0: no buffer

// A buffer and a byte offset into it (the offset is 64-bit: weights past 4 GiB are reachable).
struct BufView {
  BufferId buf = 0;
  uint64_t offset = 0;
  BufView at(uint64_t bytes) const { return {buf, offset + bytes}; }
};

struct Size3 {
  uint32_t x = 1, y = 1, z = 1;
  uint64_t count() const { return uint64_t(x) * y * z; }
};

inline constexpr int kMaxBindings = 8;
inline constexpr uint32_t kMaxThreadgroupMemory = 32768;  // bytes: the least every Apple GPU has
inline constexpr uint32_t kMaxThreadsPerThreadgroup = 1024;
inline constexpr uint32_t kSimdWidth = 32;  // every Apple GPU's SIMD-group width

// One kernel dispatch: dispatchThreadgroups(grid, tg) of the kernel named `kernel` (its function
// name in the .metal sources).
struct DispatchDesc {
  const char* kernel = nullptr;
  const void* args = nullptr;        // buffer(0): copied at encode time
  uint32_t args_bytes = 0;
  BufView buffers[kMaxBindings] = {};  // buffer(1) .. buffer(n_buffers)
  int n_buffers = 0;
  uint32_t tg_mem_bytes = 0;         // threadgroup(0): a multiple of 16, <= kMaxThreadgroupMemory
  Size3 grid;                        // threadgroups per grid
  Size3 tg;                          // threads per threadgroup, count() <= kMaxThreadsPerThreadgroup
};

// A dispatch of `kernel` with its argument struct at buffer(0) (its address is kept: it must live
// until encode()) and `buffers` bound as buffer(1), buffer(2), ... in order; the caller sets grid,
// tg and tg_mem_bytes. (More than kMaxBindings buffers: n_buffers says so and encode() refuses it.)
template <typename Args>
DispatchDesc dispatch_of(const char* kernel, const Args& args, std::initializer_list<BufView> buffers) {
  DispatchDesc d;
  d.kernel = kernel;
  d.args = &args;
  d.args_bytes = sizeof(Args);
  for (const BufView& b : buffers) {
    if (d.n_buffers < kMaxBindings) d.buffers[d.n_buffers] = b;
    ++d.n_buffers;
  }
  return d;
}

class Device {
 public:
  virtual ~Device() = default;
  virtual std::string name() const = 0;          // "Apple M2", "emulated (forward schedule)"
  virtual uint32_t simd_width() const = 0;       // threadExecutionWidth; the kernels need 32

  // A read-only buffer over host memory, not copied (the model's mapping). `data` is page-aligned.
  virtual BufferId wrap(const void* data, size_t bytes) = 0;
  // A zero-filled buffer the host can also read and write (shared storage).
  virtual BufferId alloc(size_t bytes) = 0;
  virtual void* contents(BufferId buf) = 0;  // host address of an alloc()'d buffer

  // Records one dispatch into the step's command buffer; dispatches run in the order recorded,
  // each seeing the previous ones' writes. Throws edgellm::Error on a descriptor that breaks the
  // limits above or names no kernel.
  virtual void encode(const DispatchDesc& d) = 0;
  // Runs what was encoded and waits for it; throws edgellm::Error if the GPU reported an error.
  virtual void commit_and_wait() = 0;
};

// The device this build has: the system's default Metal GPU on Apple (EDGELLM_METAL), the
// emulator in a test build (EDGELLM_METAL_EMULATOR). Throws edgellm::Error(Unsupported) when there
// is none.
std::unique_ptr<Device> make_device();

}  // namespace edgellm::engine::metal
