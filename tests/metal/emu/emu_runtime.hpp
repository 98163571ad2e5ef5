// The Metal emulator's runtime (test builds only; docs/METAL.md, "The emulator"): runs one
// dispatch of a kernel compiled as C++ (msl_prepass.py) with every GPU thread a fiber.
//
// Why fibers: a GPU thread only observes other threads at SIMD-group functions and barriers, so
// a fiber switches exactly there and nowhere else. The order in which runnable fibers run
// between two such points is the schedule (forward, reverse, seeded random), which is how a
// missing barrier becomes a wrong result in at least one schedule. At every sync point the
// runtime checks that the SIMD-group (or threadgroup) reached the same call, and reports
// divergence, unreached barriers and deadlocks as errors naming the kernel and the line.
//
// This header is included by the generated kernel TUs (through msl_shim.hpp) before the MSL
// address-space macros exist, so it uses only the standard library and no word the shim turns
// into a macro (device, constant, thread, threadgroup, kernel). The fiber machinery (ucontext,
// stacks) lives in emu_runtime.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <source_location>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace edgellm::metal_emu {

// The order in which runnable threads run between sync points.
enum class Schedule { forward, reverse, random };
const char* schedule_name(Schedule s);

struct Options {
  Schedule schedule = Schedule::forward;
  uint64_t seed = 1;          // random schedule: the shuffles' seed
  uint32_t simd_width = 32;   // threads per SIMD-group (Apple GPUs: 32)
};

inline constexpr int kMaxBuffers = 8;          // buffer(1) .. buffer(8) (device.hpp's kMaxBindings)
inline constexpr uint32_t kMaxTgMemory = 32768;
inline constexpr uint32_t kMaxTgThreads = 1024;
inline constexpr uint32_t kMaxSimdWidth = 64;

// The position attributes of a kernel parameter (docs/METAL.md rule 2), in ThreadCtx::attr order.
enum Attr : int {
  kThreadPositionInGrid,
  kThreadPositionInThreadgroup,
  kThreadgroupPositionInGrid,
  kThreadsPerThreadgroup,
  kThreadgroupsPerGrid,
  kThreadIndexInThreadgroup,
  kThreadIndexInSimdgroup,
  kSimdgroupIndexInThreadgroup,
  kThreadsPerSimdgroup,
  kSimdgroupsPerThreadgroup,
  kAttrCount
};

struct ThreadCtx;
using Launcher = void (*)(ThreadCtx&);

// One kernel as the prepass registered it.
struct KernelInfo {
  const char* name = nullptr;
  Launcher launch = nullptr;
  const char* file = nullptr;  // the .metal file and the kernel's line, for messages
  int line = 0;
  // The argument struct the kernel binds by reference at buffer(0) (0: none, any args_bytes).
  uint32_t args_bytes = 0;
  bool args_by_ref = false;
  uint32_t buffer_mask = 0;   // bit i: the kernel binds buffer(i), i >= 1
  bool uses_tg_memory = false;
};

// All kernels of this build (the engine's shaders and the emulator's test kernels).
const KernelInfo* find_kernel(std::string_view name);
std::vector<std::string> kernel_names();

// Called by the generated registry (kernel_registry.cpp) for every generated TU.
class KernelRegistry {
 public:
  void add(const KernelInfo& k);
  std::vector<KernelInfo> kernels;
};

// A dispatch with its buffers resolved to host addresses.
struct Launch {
  const KernelInfo* kernel = nullptr;
  const void* args = nullptr;  // 8-byte aligned copy
  uint32_t args_bytes = 0;
  char* buffers[kMaxBuffers + 1] = {};  // [i]: buffer(i), i >= 1 (address + offset)
  uint32_t tg_mem_bytes = 0;
  uint32_t grid[3] = {1, 1, 1};
  uint32_t tg[3] = {1, 1, 1};
};

// A collective operation's arguments for one lane: `in` and `out` point into the lane's (suspended)
// stack, `arg` is a per-lane scalar (a shuffle's source lane, ...).
struct SimdCall {
  const void* in = nullptr;
  void* out = nullptr;
  uint64_t arg = 0;
};
// Computes a collective's results once every lane of the SIMD-group waits at it: lanes[i] is lane
// i's call, n the SIMD width. Throws std::runtime_error (message without location) on arguments
// that must be uniform and are not.
using Resolver = void (*)(SimdCall* const* lanes, int n);

enum class ThreadState : uint8_t { runnable, at_simd, at_barrier, finished };

// One GPU thread: what its kernel's launcher binds, and where it waits.
struct ThreadCtx {
  uint32_t attr[kAttrCount][3] = {};
  const Launch* launch = nullptr;
  char* tg_memory = nullptr;

  ThreadState state = ThreadState::runnable;
  const char* op = nullptr;  // the SIMD function or barrier it waits at
  const char* file = nullptr;
  uint32_t line = 0, column = 0;
  Resolver resolver = nullptr;
  SimdCall call;

  // For the launchers.
  char* buffer(int i) const { return launch->buffers[i]; }
  const void* args_ref(uint32_t bytes, const char* type_name) const;
  void* tg_mem() const { return tg_memory; }
  uint32_t lane() const { return attr[kThreadIndexInSimdgroup][0]; }
};

// The GPU thread running now (null outside a dispatch).
extern thread_local ThreadCtx* tls_current;
ThreadCtx& current_thread(const char* what);

// Blocks the calling GPU thread at a collective SIMD-group operation until every lane of its
// SIMD-group is there (then `resolver` has written every lane's `out`).
void simd_collective(const char* op, const std::source_location& loc, Resolver resolver, const void* in, void* out,
                     uint64_t arg);
// Blocks the calling GPU thread at threadgroup_barrier until every thread of the threadgroup is there.
void threadgroup_barrier_wait(const std::source_location& loc);

// A dispatch that failed: where (kernel, threadgroup) and what.
class DispatchError : public std::runtime_error {
 public:
  DispatchError(std::string kernel, const uint32_t tg[3], std::string what);
  std::string kernel;
  uint32_t tg_pos[3];
  std::string detail;
};

// Runs dispatches. Keeps its fiber stacks and threadgroup memory between them.
class Runtime {
 public:
  explicit Runtime(const Options& o);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Throws DispatchError (a kernel error) or std::invalid_argument (a launch breaking the limits).
  void run(const Launch& l);
  const Options& options() const { return opt_; }

  struct Impl;  // emu_runtime.cpp (public for its fiber functions)

 private:
  Options opt_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgellm::metal_emu
