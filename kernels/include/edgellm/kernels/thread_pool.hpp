// A persistent pool of worker threads for the matrix kernels. The calling thread is worker 0 and
// takes part in every job; workers spin briefly between jobs (a decoded token issues hundreds of
// short jobs, too short to pay for a futex wake-up each), then sleep. Spinning pays only while
// every thread has a CPU of its own: a pool of more threads than the CPUs this process may run on
// never spins (its workers and the caller wait on condition variables), since a spinning thread
// would only keep the one it waits for off the CPU.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace edgellm::kernels {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads >= 1 (1 = run everything on the caller)
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const;
  // Whether the threads spin between jobs (size() <= available_cpu_count()) or only block.
  bool spins() const;

  // Runs fn(thread_index, n_threads) on every thread and returns when all are done.
  // Not reentrant: fn must not call run() on the same pool.
  void run(const std::function<void(int ith, int nth)>& fn);

  // Splits [0, n) into contiguous chunks, one per thread.
  static void split(int64_t n, int ith, int nth, int64_t& begin, int64_t& end);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Physical cores of this machine (the default thread count).
int physical_core_count();

// Logical CPUs this process may run on (its affinity mask; hyper-threads count): the most
// threads that can run at once.
int available_cpu_count();

}  // namespace edgellm::kernels
