#pragma once
// A tiny persistent thread pool for trm::cpu's elementwise ops (swiglu, rmsnorm, add, transposes,
// softmax, ...). The GEMMs keep OpenBLAS's own pthread pool; this pool only runs between them.
//
// Why not OpenMP: libgomp's idle threads spin for a long time (GOMP_SPINCOUNT) and would steal
// the cores from OpenBLAS's threads during the GEMMs that follow. Here a worker spins only briefly
// after a job (TRM_CPU_SPIN_US, default 20 microseconds, so that back-to-back elementwise ops do
// not each pay a wake-up), then sleeps on a condition variable until the next job.
//
// The calling thread takes part in every job and claims tasks dynamically, so a worker that is late
// (asleep, or descheduled on a loaded machine) never holds the caller up: the caller then runs the
// tasks itself and only waits for tasks a worker has actually started.
//
// Determinism: a job is a set of independent tasks (disjoint ranges of rows or elements), each
// computed by exactly the same code whichever thread runs it, so results are bit-identical run to
// run and for any thread count.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define TRM_CPU_RELAX() _mm_pause()
#else
#define TRM_CPU_RELAX() std::this_thread::yield()
#endif

#include "../core/config.hpp"

namespace trm::detail {

class CpuPool {
 public:
  // The process-wide pool; `threads` counts the calling thread (1 = no workers).
  static CpuPool& instance() {
    static CpuPool pool;
    return pool;
  }

  int threads() const { return threads_.load(std::memory_order_relaxed); }

  // Sets the number of threads (calling thread included), joining or starting workers.
  void set_threads(int n) {
    n = n < 1 ? 1 : n;
    std::lock_guard<std::mutex> lock(run_mutex_);
    if (n == threads()) return;
    stop_workers();
    threads_.store(n, std::memory_order_relaxed);
    start_workers();
  }

  // Runs fn(t) for every t in [0, tasks) on the calling thread and the workers; returns when all
  // tasks are done. Tasks must be independent.
  template <class F>
  void run(int tasks, F&& fn) {
    if (tasks <= 0) return;
    // One job at a time: a nested call (from inside a task) or a call from a second user thread
    // while a job runs is executed serially on its own thread.
    std::unique_lock<std::mutex> lock(run_mutex_, std::try_to_lock);
    if (tasks == 1 || workers_.empty() || !lock.owns_lock()) {
      for (int t = 0; t < tasks; ++t) fn(t);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    Job job;
    job.ctx = const_cast<void*>(static_cast<const void*>(&fn));
    job.fn = [](void* ctx, int t) { (*static_cast<Fn*>(ctx))(t); };
    job.tasks = tasks;
    current_.store(&job);
    publish();
    work(job);
    // Every task is claimed now; wait for those a worker is still running.
    spin_until([&] { return job.done.load(std::memory_order_acquire) == tasks; });
    // Retire the job: a worker that entered it (active_ > 0) may still read its counters. One that
    // enters later finds current_ == nullptr (sequentially consistent current_ and active_).
    current_.store(nullptr);
    spin_until([&] { return active_.load() == 0; });
  }

  ~CpuPool() {
    std::lock_guard<std::mutex> lock(run_mutex_);
    stop_workers();
  }
  CpuPool(const CpuPool&) = delete;
  CpuPool& operator=(const CpuPool&) = delete;

 private:
  struct Job {
    void* ctx = nullptr;
    void (*fn)(void*, int) = nullptr;
    int tasks = 0;
    alignas(64) std::atomic<int> next{0};
    alignas(64) std::atomic<int> done{0};
  };

  CpuPool() {
    if (const char* s = std::getenv("TRM_CPU_SPIN_US")) spin_us_ = std::atoi(s);
  }

  // Claims and runs tasks of `job` until none is left.
  static void work(Job& job) {
    for (;;) {
      const int t = job.next.fetch_add(1, std::memory_order_relaxed);
      if (t >= job.tasks) return;
      job.fn(job.ctx, t);
      job.done.fetch_add(1, std::memory_order_release);
    }
  }

  template <class Pred>
  static void spin_until(Pred&& ready) {
    for (int i = 0; !ready(); ++i) {
      if (i < 2048)
        TRM_CPU_RELAX();
      else
        std::this_thread::yield();  // a descheduled worker may need this core
    }
  }

  // A new epoch: a spinning worker sees it at once; a sleeping one is woken. (Sequentially
  // consistent epoch_ and sleepers_: either the worker sees the new epoch before sleeping, or this
  // sees it registered as a sleeper and, taking the mutex, wakes it.)
  void publish() {
    epoch_.fetch_add(1);
    if (sleepers_.load() > 0) {
      { std::lock_guard<std::mutex> lock(sleep_mutex_); }
      sleep_cv_.notify_all();
    }
  }

  // `seen`: the epoch when the worker was started (read by start_workers, not by the new thread,
  // which might only run after the next job was published).
  void worker_loop(std::uint64_t seen) {
    for (;;) {
      // Spin briefly, then sleep until the epoch changes.
      auto t0 = std::chrono::steady_clock::now();
      std::uint64_t e;
      for (int i = 0;; ++i) {
        e = epoch_.load(std::memory_order_acquire);
        if (e != seen) break;
        if ((i & 63) == 63 && std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(spin_us_)) {
          std::unique_lock<std::mutex> lock(sleep_mutex_);
          sleepers_.fetch_add(1);
          while ((e = epoch_.load()) == seen) sleep_cv_.wait(lock);
          sleepers_.fetch_sub(1);
          break;
        }
        TRM_CPU_RELAX();
      }
      seen = e;
      if (stop_.load(std::memory_order_acquire)) return;
      active_.fetch_add(1);
      if (Job* job = current_.load()) work(*job);
      active_.fetch_sub(1);
    }
  }

  void start_workers() {
    stop_.store(false);
    const std::uint64_t e = epoch_.load();
    for (int i = 1; i < threads(); ++i) workers_.emplace_back([this, e] { worker_loop(e); });
  }
  void stop_workers() {
    if (workers_.empty()) return;
    stop_.store(true);
    publish();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::atomic<int> threads_{1};
  int spin_us_ = 20;
  std::mutex run_mutex_;  // held by the thread running a job (and by set_threads)
  std::vector<std::thread> workers_;
  std::atomic<bool> stop_{false};
  alignas(64) std::atomic<std::uint64_t> epoch_{0};
  alignas(64) std::atomic<Job*> current_{nullptr};
  alignas(64) std::atomic<int> active_{0};
  std::mutex sleep_mutex_;
  std::condition_variable sleep_cv_;
  std::atomic<int> sleepers_{0};
};

// Splits [0, n) into contiguous ranges of `grain` items (the last one shorter) and runs fn(begin,
// end) on each, on the pool when there is more than one. The ranges depend on n and grain only, not
// on the thread count, so an op whose per-element arithmetic depends on where a range starts (a
// vectorised loop's scalar tail) still gives the same bits for every thread count.
template <class F>
void parallel_ranges(index_t n, index_t grain, F&& fn) {
  if (n <= 0) return;
  const index_t chunk = grain > 0 ? grain : 1;
  const index_t tasks = (n + chunk - 1) / chunk;
  auto range = [&](index_t t) {
    const index_t b = t * chunk, e = b + chunk < n ? b + chunk : n;
    fn(b, e);
  };
  auto& pool = CpuPool::instance();
  if (tasks == 1 || pool.threads() == 1) {
    for (index_t t = 0; t < tasks; ++t) range(t);
    return;
  }
  pool.run(int(tasks), [&](int t) { range(index_t(t)); });
}

}  // namespace trm::detail
