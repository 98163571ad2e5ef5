// The Metal emulator's runtime: one dispatch, threadgroup after threadgroup (grid order z, y, x),
// every thread of a threadgroup a fiber that switches only at SIMD-group functions and
// barriers (see emu_runtime.hpp for why). The scheduler runs every runnable fiber in the
// schedule's order until it blocks or finishes, then resolves what can be resolved: a SIMD-group
// whose lanes all wait at the same collective, a threadgroup whose threads all wait at the same
// barrier. Anything else that blocks is divergence or a deadlock, reported with the kernel, the
// threadgroup and where each thread is.
//
// A switch is a few instructions of assembly on x86-64 (callee-saved registers, the stack pointer,
// MXCSR and the x87 control word: what the ABI says survives a call); ucontext's swapcontext
// elsewhere (it makes a system call per switch for the signal mask, which the emulator never
// changes). Exceptions never cross a context switch: a fiber catches what its kernel throws, records it and
// switches back, and the scheduler throws. Under AddressSanitizer every switch is announced
// (__sanitizer_start/finish_switch_fiber) so it tolerates the stack changes.
#include "emu_runtime.hpp"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <random>

#if defined(__SANITIZE_ADDRESS__)
#define EDGELLM_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDGELLM_EMU_ASAN 1
#endif
#endif
#if defined(EDGELLM_EMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace edgellm::metal_emu {

void register_all_kernels(KernelRegistry& r);  // kernel_registry.cpp (generated)

const char* schedule_name(Schedule s) {
  switch (s) {
    case Schedule::forward: return "forward";
    case Schedule::reverse: return "reverse";
    case Schedule::random: return "random";
  }
  return "?";
}

// ---- registry -----------------------------------------------------------------------------------

void KernelRegistry::add(const KernelInfo& k) { kernels.push_back(k); }

namespace {

struct Registry {
  std::vector<KernelInfo> sorted;  // by name
  std::string duplicate;           // a name two kernels share (a build defect, reported on lookup)
};

const Registry& registry() {
  static const Registry r = [] {
    KernelRegistry kr;
    register_all_kernels(kr);
    Registry out;
    out.sorted = std::move(kr.kernels);
    std::sort(out.sorted.begin(), out.sorted.end(),
              [](const KernelInfo& a, const KernelInfo& b) { return std::strcmp(a.name, b.name) < 0; });
    for (size_t i = 1; i < out.sorted.size(); ++i)
      if (std::strcmp(out.sorted[i - 1].name, out.sorted[i].name) == 0) out.duplicate = out.sorted[i].name;
    return out;
  }();
  return r;
}

}  // namespace

const KernelInfo* find_kernel(std::string_view name) {
  const Registry& r = registry();
  if (!r.duplicate.empty())
    throw std::logic_error("metal emulator: two .metal files define kernel " + r.duplicate);
  auto it = std::lower_bound(r.sorted.begin(), r.sorted.end(), name,
                             [](const KernelInfo& k, std::string_view n) { return std::string_view(k.name) < n; });
  if (it == r.sorted.end() || std::string_view(it->name) != name) return nullptr;
  return &*it;
}

std::vector<std::string> kernel_names() {
  std::vector<std::string> out;
  for (const KernelInfo& k : registry().sorted) out.emplace_back(k.name);
  return out;
}

// ---- errors -------------------------------------------------------------------------------------

// (Built by append: g++ 12's -Wrestrict misfires on "(" + std::string at -O3.)
static std::string tg_text(const uint32_t tg[3]) {
  std::string s = "(";
  s.append(std::to_string(tg[0])).append(",").append(std::to_string(tg[1])).append(",");
  s.append(std::to_string(tg[2])).append(")");
  return s;
}

DispatchError::DispatchError(std::string k, const uint32_t tg[3], std::string what)
    : std::runtime_error("kernel " + k + ", threadgroup " + tg_text(tg) + ": " + what),
      kernel(std::move(k)),
      tg_pos{tg[0], tg[1], tg[2]},
      detail(std::move(what)) {}

const void* ThreadCtx::args_ref(uint32_t bytes, const char* type_name) const {
  if (launch->args_bytes != bytes)
    throw std::runtime_error("the kernel binds " + std::string(type_name) + " (" + std::to_string(bytes) +
                             " bytes) at buffer(0), the dispatch set " + std::to_string(launch->args_bytes) +
                             " argument bytes");
  return launch->args;
}

// ---- fibers -------------------------------------------------------------------------------------

thread_local ThreadCtx* tls_current = nullptr;

// ---- context switching ----------------------------------------------------------------------------

#if defined(__x86_64__)
extern "C" __attribute__((visibility("hidden"))) void edgellm_emu_switch(void** save_sp, void* new_sp);
// Saves the callee-saved state on the current stack, stores the stack pointer in *save_sp, and
// resumes the context whose stack pointer is new_sp (saved by the same code, or made by make_context).
asm(R"(
  .text
  .globl edgellm_emu_switch
  .hidden edgellm_emu_switch
  .type edgellm_emu_switch, @function
edgellm_emu_switch:
  .cfi_startproc
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .cfi_endproc
  .size edgellm_emu_switch, .-edgellm_emu_switch
)");
namespace {
struct Context {
  void* sp = nullptr;
};
inline void switch_context(Context& from, Context& to) { edgellm_emu_switch(&from.sp, to.sp); }
// A context that starts entry() on the stack [stack, stack + bytes); entry never returns.
void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  uintptr_t top = (uintptr_t(stack) + bytes) & ~uintptr_t(15);
  auto* p = reinterpret_cast<uint64_t*>(top);
  p[-1] = 0;                                 // entry's return address (it never returns)
  p[-2] = uint64_t(uintptr_t(entry));        // where edgellm_emu_switch's ret goes
  for (int i = 3; i <= 8; ++i) p[-i] = 0;    // rbp, rbx, r12 .. r15
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  p[-9] = uint64_t(mxcsr) | (uint64_t(fpucw) << 32);
  c.sp = p - 9;  // after the ret: rsp = top - 8, as after a call
}
}  // namespace
#else
namespace {
struct Context {
  ucontext_t uc;
  bool made = false;
};
inline void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  if (!c.made) {
    getcontext(&c.uc);
    c.made = true;
  }
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
}  // namespace
#endif

namespace {

#if defined(EDGELLM_EMU_ASAN)
constexpr size_t kStackBytes = 512 * 1024;  // ASan's redzones make frames several times larger
constexpr size_t kTopUnpoison = 16 * 1024;    // covers fiber_entry's frame and the final switch's
#else
constexpr size_t kStackBytes = 128 * 1024;
#endif

size_t page_size() {
  static const size_t p = size_t(sysconf(_SC_PAGESIZE));
  return p;
}

struct Fiber {
  Context ctx;
  char* map = nullptr;  // guard page, then the stack
  char* stack = nullptr;
  void* fake_stack = nullptr;  // ASan's fake stack of this fiber while it is switched out
};

}  // namespace

struct Runtime::Impl {
  Context sched_ctx;
  void* sched_fake_stack = nullptr;
  const void* sched_stack_bottom = nullptr;
  size_t sched_stack_size = 0;

  std::vector<ThreadCtx> threads;
  std::vector<std::unique_ptr<Fiber>> fibers;
  std::vector<int> order;
  std::vector<int> group_order;  // SIMD-groups, in the order collectives are resolved
  char* tg_map = nullptr;  // kMaxTgMemory bytes, then a PROT_NONE page
  size_t tg_map_bytes = 0;
  std::mt19937_64 rng;

  int running = -1;  // the fiber running now
  bool fiber_error = false;
  std::string fiber_error_text;

  ~Impl() {
    for (auto& f : fibers)
      if (f->map) {
#if defined(EDGELLM_EMU_ASAN)
        // The stack's shadow keeps the redzones of the frames left on it; memory mapped later at
        // these addresses would read as a stack overflow.
        __asan_unpoison_memory_region(f->stack, kStackBytes);
#endif
        munmap(f->map, kStackBytes + page_size());
      }
    if (tg_map) munmap(tg_map, tg_map_bytes);
  }
};

namespace {

thread_local Runtime::Impl* tls_runtime = nullptr;

void* map_or_throw(size_t bytes, const char* what) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error(std::string("metal emulator: cannot map ") + what);
  return p;
}

// Switches from the running fiber back to the scheduler (final: the fiber is done for good).
void switch_to_scheduler(Runtime::Impl* rt, Fiber& f, bool final) {
#if defined(EDGELLM_EMU_ASAN)
  __sanitizer_start_switch_fiber(final ? nullptr : &f.fake_stack, rt->sched_stack_bottom, rt->sched_stack_size);
#else
  (void)final;
#endif
  switch_context(f.ctx, rt->sched_ctx);
#if defined(EDGELLM_EMU_ASAN)
  __sanitizer_finish_switch_fiber(f.fake_stack, &rt->sched_stack_bottom, &rt->sched_stack_size);
#endif
}

void fiber_entry() {
  Runtime::Impl* rt = tls_runtime;
#if defined(EDGELLM_EMU_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &rt->sched_stack_bottom, &rt->sched_stack_size);
#endif
  const int me = rt->running;
  ThreadCtx& t = rt->threads[size_t(me)];
  {
    std::string error;
    try {
      t.launch->kernel->launch(t);
    } catch (const std::exception& e) {
      error = e.what();
      if (error.empty()) error = "an exception";
    } catch (...) {
      error = "an exception of unknown type";
    }
    if (!error.empty()) {
      rt->fiber_error = true;
      rt->fiber_error_text = "thread " + std::to_string(me) + ": " + error;
    }
  }
  t.state = ThreadState::finished;
  switch_to_scheduler(rt, *rt->fibers[size_t(me)], true);
  __builtin_unreachable();  // never resumed
}

void yield_current(ThreadCtx& t) {
  Runtime::Impl* rt = tls_runtime;
  (void)t;
  switch_to_scheduler(rt, *rt->fibers[size_t(rt->running)], false);
}

}  // namespace

ThreadCtx& current_thread(const char* what) {
  if (!tls_current) throw std::logic_error(std::string(what) + " called outside a kernel dispatch");
  return *tls_current;
}

void simd_collective(const char* op, const std::source_location& loc, Resolver resolver, const void* in, void* out,
                     uint64_t arg) {
  ThreadCtx& t = current_thread(op);
  t.state = ThreadState::at_simd;
  t.op = op;
  t.file = loc.file_name();
  t.line = loc.line();
  t.column = loc.column();
  t.resolver = resolver;
  t.call = {in, out, arg};
  yield_current(t);
}

void threadgroup_barrier_wait(const std::source_location& loc) {
  ThreadCtx& t = current_thread("threadgroup_barrier");
  t.state = ThreadState::at_barrier;
  t.op = "threadgroup_barrier";
  t.file = loc.file_name();
  t.line = loc.line();
  t.column = loc.column();
  t.resolver = nullptr;
  yield_current(t);
}

// ---- the scheduler ------------------------------------------------------------------------------

namespace {

const char* base_name(const char* path) {
  if (!path) return "?";
  const char* s = std::strrchr(path, '/');
  return s ? s + 1 : path;
}

bool same_site(const ThreadCtx& a, const ThreadCtx& b) {
  if (a.state != b.state || a.line != b.line || a.column != b.column) return false;
  if (a.op != b.op && std::strcmp(a.op, b.op) != 0) return false;
  return a.file == b.file || std::strcmp(a.file, b.file) == 0;
}

std::string where(const ThreadCtx& t) {
  switch (t.state) {
    case ThreadState::finished: return "finished";
    case ThreadState::runnable: return "running";
    default: return "at " + std::string(t.op) + " (" + base_name(t.file) + ":" + std::to_string(t.line) + ")";
  }
}

// "0-15, 17, 20-31"
std::string ranges(const std::vector<int>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (!s.empty()) s += ", ";
    s += std::to_string(ids[i]);
    if (j > i) s.append("-").append(std::to_string(ids[j]));
    i = j + 1;
  }
  return s;
}

// Threads [begin, end) grouped by where they are: "lanes 0-15 at simd_sum (x.metal:12), lanes 16-31 finished".
std::string describe(const std::vector<ThreadCtx>& th, int begin, int end, const char* noun, int index_base) {
  std::vector<std::pair<std::string, std::vector<int>>> groups;
  for (int i = begin; i < end; ++i) {
    std::string w = where(th[size_t(i)]);
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == w; });
    if (it == groups.end()) {
      groups.push_back({w, {}});
      it = groups.end() - 1;
    }
    it->second.push_back(i - index_base);
  }
  std::string s;
  for (const auto& g : groups) {
    if (!s.empty()) s += ", ";
    s += std::string(noun) + " " + ranges(g.second) + " " + g.first;
  }
  return s;
}

}  // namespace

Runtime::Runtime(const Options& o) : opt_(o), impl_(std::make_unique<Impl>()) {
  if (o.simd_width < 1 || o.simd_width > kMaxSimdWidth)
    throw std::invalid_argument("metal emulator: simd_width " + std::to_string(o.simd_width) + " is not 1 .. " +
                                std::to_string(kMaxSimdWidth));
  impl_->rng.seed(o.seed);
  impl_->tg_map_bytes = kMaxTgMemory + page_size();
  impl_->tg_map = static_cast<char*>(map_or_throw(impl_->tg_map_bytes, "threadgroup memory"));
  if (mprotect(impl_->tg_map + kMaxTgMemory, page_size(), PROT_NONE) != 0)
    throw std::runtime_error("metal emulator: cannot protect the threadgroup memory's guard page");
}

Runtime::~Runtime() = default;

void Runtime::run(const Launch& l) {
  Impl& rt = *impl_;
  const KernelInfo& k = *l.kernel;
  const uint32_t w = opt_.simd_width;
  const uint64_t n64 = uint64_t(l.tg[0]) * l.tg[1] * l.tg[2];
  auto bad = [&](const std::string& what) { throw std::invalid_argument(std::string(k.name) + ": " + what); };
  if (l.grid[0] == 0 || l.grid[1] == 0 || l.grid[2] == 0) bad("a grid of zero threadgroups");
  if (n64 == 0) bad("a threadgroup of zero threads");
  if (n64 > kMaxTgThreads)
    bad(std::to_string(n64) + " threads per threadgroup, more than " + std::to_string(kMaxTgThreads));
  if (n64 % w != 0)
    bad(std::to_string(n64) + " threads per threadgroup, not a multiple of the SIMD width " + std::to_string(w));
  if (l.tg_mem_bytes % 16 != 0 || l.tg_mem_bytes > kMaxTgMemory)
    bad(std::to_string(l.tg_mem_bytes) + " bytes of threadgroup memory (a multiple of 16, at most " +
        std::to_string(kMaxTgMemory) + ")");
  const int n = int(n64);

  if (rt.threads.size() < size_t(n)) rt.threads.resize(size_t(n));
  while (rt.fibers.size() < size_t(n)) {
    auto f = std::make_unique<Fiber>();
    f->map = static_cast<char*>(map_or_throw(kStackBytes + page_size(), "a fiber stack"));
    if (mprotect(f->map, page_size(), PROT_NONE) != 0) {
      munmap(f->map, kStackBytes + page_size());
      throw std::runtime_error("metal emulator: cannot protect a fiber stack's guard page");
    }
    f->stack = f->map + page_size();
    rt.fibers.push_back(std::move(f));
  }
  char* tg_mem = rt.tg_map + (kMaxTgMemory - l.tg_mem_bytes);  // its end abuts the guard page

  struct Scope {  // tls state of this dispatch, reset on every exit
    Impl* prev_rt;
    ThreadCtx* prev_cur;
    Scope(Impl* r) : prev_rt(tls_runtime), prev_cur(tls_current) { tls_runtime = r; }
    ~Scope() {
      tls_runtime = prev_rt;
      tls_current = prev_cur;
    }
  } scope(&rt);

  const uint32_t tx = l.tg[0], ty = l.tg[1];
  for (uint32_t gz = 0; gz < l.grid[2]; ++gz)
    for (uint32_t gy = 0; gy < l.grid[1]; ++gy)
      for (uint32_t gx = 0; gx < l.grid[0]; ++gx) {
        const uint32_t tgpos[3] = {gx, gy, gz};
        auto fail = [&](const std::string& what) {
#if defined(EDGELLM_EMU_ASAN)
          // The abandoned fibers' frames leave poisoned redzones on the reused stacks.
          for (int i = 0; i < n; ++i) ASAN_UNPOISON_MEMORY_REGION(rt.fibers[size_t(i)]->stack, kStackBytes);
#endif
          rt.fiber_error = false;
          throw DispatchError(k.name, tgpos, what);
        };
        std::memset(tg_mem, 0xFF, l.tg_mem_bytes);  // NaN as float and as half
        for (int i = 0; i < n; ++i) {
          ThreadCtx& t = rt.threads[size_t(i)];
          const uint32_t lx = uint32_t(i) % tx, ly = (uint32_t(i) / tx) % ty, lz = uint32_t(i) / (tx * ty);
          auto set = [&](Attr a, uint32_t x, uint32_t y, uint32_t z) {
            t.attr[a][0] = x;
            t.attr[a][1] = y;
            t.attr[a][2] = z;
          };
          set(kThreadPositionInThreadgroup, lx, ly, lz);
          set(kThreadgroupPositionInGrid, gx, gy, gz);
          set(kThreadPositionInGrid, gx * l.tg[0] + lx, gy * l.tg[1] + ly, gz * l.tg[2] + lz);
          set(kThreadsPerThreadgroup, l.tg[0], l.tg[1], l.tg[2]);
          set(kThreadgroupsPerGrid, l.grid[0], l.grid[1], l.grid[2]);
          set(kThreadIndexInThreadgroup, uint32_t(i), 0, 0);
          set(kThreadIndexInSimdgroup, uint32_t(i) % w, 0, 0);
          set(kSimdgroupIndexInThreadgroup, uint32_t(i) / w, 0, 0);
          set(kThreadsPerSimdgroup, w, 0, 0);
          set(kSimdgroupsPerThreadgroup, uint32_t(n) / w, 0, 0);
          t.launch = &l;
          t.tg_memory = tg_mem;
          t.state = ThreadState::runnable;
          t.op = nullptr;

          Fiber& f = *rt.fibers[size_t(i)];
          f.fake_stack = nullptr;
#if defined(EDGELLM_EMU_ASAN)
          // A finished fiber's last frames (fiber_entry, the final switch) never returned, so their
          // redzones are still poisoned at the top of the stack this fiber reuses.
          ASAN_UNPOISON_MEMORY_REGION(f.stack + kStackBytes - kTopUnpoison, kTopUnpoison);
#endif
          make_context(f.ctx, f.stack, kStackBytes, fiber_entry);
        }

        rt.order.resize(size_t(n));
        for (int i = 0; i < n; ++i) rt.order[size_t(i)] = opt_.schedule == Schedule::reverse ? n - 1 - i : i;
        SimdCall* calls[kMaxSimdWidth];
        for (;;) {
          if (opt_.schedule == Schedule::random) std::shuffle(rt.order.begin(), rt.order.end(), rt.rng);
          // The SIMD-groups in this round's order (forward: ascending, reverse: descending,
          // random: shuffled). The forward schedule runs every runnable thread each round and
          // resolves every ready collective: the SIMD-groups move in step. The reverse and random
          // ones run the threads of one SIMD-group only (the first in the order with a runnable
          // thread) and resolve one collective per round, so a SIMD-group runs ahead, through
          // its collectives up to a threadgroup barrier, while the others have not started:
          // a missing barrier between one group's threadgroup-memory writes and another's reads
          // (simdgroup_load included) reads the NaN fill.
          const int n_groups = n / int(w);
          rt.group_order.resize(size_t(n_groups));
          for (int g = 0; g < n_groups; ++g)
            rt.group_order[size_t(g)] = opt_.schedule == Schedule::reverse ? n_groups - 1 - g : g;
          if (opt_.schedule == Schedule::random) std::shuffle(rt.group_order.begin(), rt.group_order.end(), rt.rng);
          int active = -1;  // the one SIMD-group that runs this round (-1: all)
          if (opt_.schedule != Schedule::forward) {
            for (int g : rt.group_order) {
              for (int i = g * int(w); active < 0 && i < (g + 1) * int(w); ++i)
                if (rt.threads[size_t(i)].state == ThreadState::runnable) active = g;
              if (active >= 0) break;
            }
          }
          for (int idx : rt.order) {
            ThreadCtx& t = rt.threads[size_t(idx)];
            if (t.state != ThreadState::runnable) continue;
            if (active >= 0 && idx / int(w) != active) continue;
            Fiber& f = *rt.fibers[size_t(idx)];
            rt.running = idx;
            tls_current = &t;
#if defined(EDGELLM_EMU_ASAN)
            __sanitizer_start_switch_fiber(&rt.sched_fake_stack, f.stack, kStackBytes);
#endif
            switch_context(rt.sched_ctx, f.ctx);
#if defined(EDGELLM_EMU_ASAN)
            __sanitizer_finish_switch_fiber(rt.sched_fake_stack, nullptr, nullptr);
#endif
            tls_current = nullptr;
            rt.running = -1;
            if (rt.fiber_error) fail(rt.fiber_error_text);
          }

          // Resolve the SIMD-groups whose lanes all wait at one collective: every such group
          // (forward), or only the group that just ran, at once, so it runs on next round
          // (reverse, random); when no group has a runnable thread, the first ready one.
          bool progress = false, all_finished = true;
          for (int g : rt.group_order) {
            if (active >= 0 && g != active) {
              all_finished = false;  // (not looked at)
              continue;
            }
            if (progress && opt_.schedule != Schedule::forward) {
              all_finished = false;  // (not looked at: the next round sees it)
              break;
            }
            const int g0 = g * int(w);
            int n_fin = 0, n_simd = 0;
            for (int i = g0; i < g0 + int(w); ++i) {
              const ThreadState s = rt.threads[size_t(i)].state;
              n_fin += s == ThreadState::finished;
              n_simd += s == ThreadState::at_simd;
            }
            if (n_fin < int(w)) all_finished = false;
            if (n_simd == 0) continue;
            const ThreadCtx& first = rt.threads[size_t(g0)];
            bool same = n_simd == int(w);
            for (int i = g0 + 1; same && i < g0 + int(w); ++i) same = same_site(first, rt.threads[size_t(i)]);
            if (!same) {
              if (n_fin == 0 && n_simd < int(w)) continue;  // lanes at a barrier too: a deadlock, below
              const ThreadCtx* at = &first;
              for (int i = g0; i < g0 + int(w); ++i)
                if (rt.threads[size_t(i)].state == ThreadState::at_simd) {
                  at = &rt.threads[size_t(i)];
                  break;
                }
              fail(std::string("divergent ") + at->op + " in SIMD-group " + std::to_string(g0 / int(w)) + ": " +
                   describe(rt.threads, g0, g0 + int(w), "lanes", g0));
            }
            for (int i = 0; i < int(w); ++i) calls[i] = &rt.threads[size_t(g0 + i)].call;
            try {
              first.resolver(calls, int(w));
            } catch (const std::exception& e) {
              fail(std::string(first.op) + " (" + base_name(first.file) + ":" + std::to_string(first.line) +
                   ") in SIMD-group " + std::to_string(g0 / int(w)) + ": " + e.what());
            }
            for (int i = g0; i < g0 + int(w); ++i) rt.threads[size_t(i)].state = ThreadState::runnable;
            progress = true;
          }
          if (all_finished) break;
          if (progress || active >= 0) continue;  // (other groups may still have runnable threads)

          // The threadgroup barrier: every thread there, at the same call, none finished.
          int n_bar = 0, n_fin = 0, first_bar = -1;
          for (int i = 0; i < n; ++i) {
            const ThreadState s = rt.threads[size_t(i)].state;
            if (s == ThreadState::at_barrier && first_bar < 0) first_bar = i;
            n_bar += s == ThreadState::at_barrier;
            n_fin += s == ThreadState::finished;
          }
          if (n_bar > 0) {
            const ThreadCtx& b = rt.threads[size_t(first_bar)];
            const std::string at = "threadgroup_barrier at " + std::string(base_name(b.file)) + ":" +
                                   std::to_string(b.line);
            if (n_fin > 0) fail(at + " not reached by every thread: " + describe(rt.threads, 0, n, "threads", 0));
            bool same = n_bar == n;
            for (int i = 0; same && i < n; ++i) same = same_site(b, rt.threads[size_t(i)]);
            if (same) {
              for (int i = 0; i < n; ++i) rt.threads[size_t(i)].state = ThreadState::runnable;
              continue;
            }
            if (n_bar == n) fail("threads at different threadgroup barriers: " + describe(rt.threads, 0, n, "threads", 0));
          }
          fail("deadlock (threads wait at calls the others never reach): " +
               describe(rt.threads, 0, n, "threads", 0));
        }
      }
}

}  // namespace edgellm::metal_emu
