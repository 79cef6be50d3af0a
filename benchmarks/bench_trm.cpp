// Whole-model benchmarks on trm::cpu (float, 2 threads): one training call (Trainer::step with
// AdamATan2 and the EMA) and one 16-step inference (16 supervision steps forward only, recursion
// with record = false and the heads after every step, as an evaluation runs), against a
// cblas_sgemm 2048^3 baseline measured in the same process.
//
//   TRM-MLP Sudoku  9x9 grid (97 positions with the puzzle prefix), vocab 11, hidden 512, 2 layers,
//                   T = 3, n = 6, N_sup = 16;                       batch 1, 16, 64
//   TRM-Att 916     30x30 grid (916 positions), vocab 12, hidden 512, 8 heads, RoPE, 2 layers,
//                   T = 3, n = 4 (the reference's Maze/ARC setting), N_sup = 16;   batch 1, 8
//
// Counters:
//   FLOP/s        model GEMM flops (2 m n k per GEMM, counted exactly for the configuration, see
//                 net_call_flops) per second of wall-clock time. A training call is T(n+1) forward
//                 net calls + the backward of the n+1 recorded ones at 2x forward + the heads
//                 (forward + backward); an inference is 16 T(n+1) forward net calls + 16 heads.
//                 Work a layer chooses to redo (recomputation in backward) is not counted.
//   pct_of_sgemm  FLOP/s as a percentage of cblas_sgemm 2048^3 on the same thread count, measured
//                 (median of 5) immediately before each benchmark; sgemm_GFLOP/s shows that value.
//   peak_MB       (MB = 10^6 bytes) high-water mark of live heap bytes (malloc interposed in this binary) from before
//                 the model is built until the end of the timed calls, minus the live bytes before:
//                 parameters, gradients, optimiser moments, EMA, trainer buffers, tape, caches and
//                 every workspace. OpenBLAS's own buffers (mmap, a few tens of MB) are not included.
//   rss_MB        the process's resident-set high-water mark (VmHWM, reset through
//                 /proc/self/clear_refs before the benchmark) : everything, binary and libraries
//                 included.
//   ms_per_seq    wall time per sequence (per puzzle).
//
// Run (a few minutes; the long inference runs are opt-in, see below):
//   bench_trm                                  # every default benchmark, one pass
//   bench_trm --benchmark_filter='train/mlp'   # a subset
//   TRM_BENCH_LONG=1 bench_trm                 # also the 16-step inference at MLP batch 64 and
//                                              # Att batch 8 (about 3 minutes each)
//   bench_trm --trm_profile=train/mlp/64       # time per op class and memory per tensor class
//                                              # (no Google Benchmark run); also
//                                              # infer/mlp/<b>, train/att/<b>, infer/att/<b>
// TRM_BENCH_THREADS=n sets the thread count (default 2). With n = 1 every time (benchmarks, sgemm
// baseline, profile) is the calling thread's CPU time instead of wall-clock time: all work runs on
// that thread, and its CPU time is far less disturbed by other processes on a busy machine.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <string>
#include <trm/trm.hpp>
#include <utility>
#include <vector>

#include "model_flops.hpp"

#if defined(TRM_HAVE_CBLAS)
#include <cblas.h>
#endif

// ------------------------------------------------------------------------------------------------
// Heap accounting: malloc and friends are interposed for the whole process (the executable's
// definitions win over libc's), forwarding to glibc's __libc_* entry points and counting the
// usable size of every block.
// ------------------------------------------------------------------------------------------------
namespace heap {
std::atomic<long long> live{0}, peak{0}, allocs{0}, alloc_bytes{0};
inline void on_alloc(void* p) {
  if (!p) return;
  const long long n = static_cast<long long>(malloc_usable_size(p));
  allocs.fetch_add(1, std::memory_order_relaxed);
  alloc_bytes.fetch_add(n, std::memory_order_relaxed);
  const long long now = live.fetch_add(n, std::memory_order_relaxed) + n;
  long long pk = peak.load(std::memory_order_relaxed);
  while (now > pk && !peak.compare_exchange_weak(pk, now, std::memory_order_relaxed)) {
  }
}
inline void on_free(void* p) {
  if (p) live.fetch_sub(static_cast<long long>(malloc_usable_size(p)), std::memory_order_relaxed);
}
inline void reset_peak() { peak.store(live.load()); }
}  // namespace heap

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* __libc_valloc(size_t);
void* __libc_pvalloc(size_t);

void* malloc(size_t n) {
  void* p = __libc_malloc(n);
  heap::on_alloc(p);
  return p;
}
void free(void* p) {
  heap::on_free(p);
  __libc_free(p);
}
void* calloc(size_t n, size_t s) {
  void* p = __libc_calloc(n, s);
  heap::on_alloc(p);
  return p;
}
void* realloc(void* old, size_t n) {
  const long long before = old ? static_cast<long long>(malloc_usable_size(old)) : 0;
  void* p = __libc_realloc(old, n);
  if (p) {
    heap::live.fetch_sub(before, std::memory_order_relaxed);
    heap::on_alloc(p);
  } else if (n == 0 && old) {
    heap::live.fetch_sub(before, std::memory_order_relaxed);
  }
  return p;
}
void* memalign(size_t a, size_t n) {
  void* p = __libc_memalign(a, n);
  heap::on_alloc(p);
  return p;
}
void* aligned_alloc(size_t a, size_t n) { return memalign(a, n); }
int posix_memalign(void** out, size_t a, size_t n) {
  void* p = __libc_memalign(a, n);
  if (!p) return ENOMEM;
  heap::on_alloc(p);
  *out = p;
  return 0;
}
void* valloc(size_t n) {
  void* p = __libc_valloc(n);
  heap::on_alloc(p);
  return p;
}
void* pvalloc(size_t n) {
  void* p = __libc_pvalloc(n);
  heap::on_alloc(p);
  return p;
}
}

namespace {

using namespace trm;
using namespace trm_bench;

int g_threads = 2;

// Configurations (SudokuMlp, ArcAtt) and the exact GEMM flops (Flops<Cfg>): model_flops.hpp.

// Wall-clock seconds, or with one thread (TRM_BENCH_THREADS=1) the calling thread's CPU time: all
// work then runs on it, and CPU time is not inflated by other processes on a busy machine.
bool g_cpu_clock = false;
double now_seconds() {
  if (g_cpu_clock) {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ------------------------------------------------------------------------------------------------
// Baseline and helpers
// ------------------------------------------------------------------------------------------------
#if defined(TRM_HAVE_CBLAS)
double sgemm_rate(int reps = 5) {
  const int n = 2048;
  static std::vector<float> a, b, c;
  if (a.empty()) {
    a.resize(std::size_t(n) * n);
    b.resize(std::size_t(n) * n);
    c.resize(std::size_t(n) * n);
    Rng rng(123);
    for (auto& v : a) v = float(rng.uniform(-1, 1));
    for (auto& v : b) v = float(rng.uniform(-1, 1));
  }
  auto run = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  };
  run();
  std::vector<double> r;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_seconds();
    run();
    r.push_back(2.0 * n * double(n) * n / (now_seconds() - t0));
  }
  std::sort(r.begin(), r.end());
  return r[r.size() / 2];
}
#else
double sgemm_rate(int = 5) { return 0; }
#endif

void reset_rss_peak() {
  std::ofstream f("/proc/self/clear_refs");
  if (f) f << "5";
}
double rss_peak_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) * 1024.0 / 1e6;  // kB (KiB)
  return 0;
}

template <class M>
Batch random_batch(index_t b, std::uint64_t seed) {
  Rng rng(seed);
  Batch batch;
  batch.inputs.resize(b, M::seq_len);
  batch.labels.resize(b, M::seq_len);
  batch.puzzle_identifiers.resize(b);
  for (index_t r = 0; r < b; ++r) {
    for (index_t j = 0; j < M::seq_len; ++j) {
      batch.inputs(r, j) = std::int32_t(1 + rng.below(M::vocab - 1));
      batch.labels(r, j) = std::int32_t(1 + rng.below(M::vocab - 1));
    }
    batch.puzzle_identifiers(r) = 0;
  }
  return batch;
}

// TRM_BENCH_KEEP_ROWS=n sets TokenMlp::keep_rows_max (the largest call, in B*D rows, whose SwiGLU
// cache is kept instead of recomputed in backward) on every block: 0 = always recompute;
// TRM_BENCH_CHUNK_ROWS=n sets TokenMlp::chunk_rows (row blocks of the recomputing calls).
template <class M>
void apply_env_overrides(M& model) {
  const char* k = std::getenv("TRM_BENCH_KEEP_ROWS");
  const char* c = std::getenv("TRM_BENCH_CHUNK_ROWS");
  for (auto& net : model.nets)
    for (auto& blk : net.layers) {
      if constexpr (requires { blk.mixer.keep_rows_max; })
        if (k) blk.mixer.keep_rows_max = std::atol(k);
      if constexpr (requires { blk.mixer.chunk_rows; })
        if (c) blk.mixer.chunk_rows = std::atol(c);
    }
}

// Sudoku settings (SPEC §4.5): lr 1e-4, weight decay 1.0, puzzle embedding lr 1e-4 / decay 1.0.
TrainOptions train_options(bool check_finite = true) {
  TrainOptions o;
  o.check_finite = check_finite;
  o.puzzle_emb_lr = 1e-4;
  o.puzzle_emb_weight_decay = 1.0;
  o.ema_rate = 0.999;
  o.halt_exploration_prob = 0.1;
  return o;
}
AdamAtan2 adam() { return AdamAtan2{.lr = 1e-4, .weight_decay = 1.0, .beta1 = 0.9, .beta2 = 0.95}; }

// An evaluation of one batch: every row starts from H_init / L_init and runs `steps` supervision
// steps forward (no recording); the heads run after every step as the reference's eval loop.
template <class M>
struct Inference {
  using S = typename M::scalar_type;
  typename M::schedule::template Tape<M> tape;
  typename M::HeadCache head_cache;
  DynTensor<S, 3> x, y, z, logits;
  DynTensor<S, 2> q;
  std::vector<std::uint8_t> all;

  void run(const M& model, const Batch& batch, int steps) {
    const index_t b = batch.size();
    x.resize(b, M::total_len, M::hidden);
    y.resize(b, M::total_len, M::hidden);
    z.resize(b * index_t(M::num_latents), M::total_len, M::hidden);
    logits.resize(b, M::seq_len, M::vocab);
    q.resize(b, 2);
    all.assign(b, 1);
    model.embed(batch, x.view());
    model.reset_states(all, y.view(), z.view());
    for (int s = 0; s < steps; ++s) {
      model.recursion().forward(model, tape, x.cview(), y.view(), z.view(), false);
      model.heads(y.cview(), logits.view(), q.view(), head_cache);
    }
  }
};

// `seconds`: the timed loop's time (wall-clock, or CPU time in the one-thread mode), measured
// alongside Google Benchmark's own so that the ratios print as plain numbers.
void set_counters(benchmark::State& st, double flops_per_iter, double sgemm, index_t batch, long long heap_before,
                  double seconds) {
  const double per_iter = seconds / double(std::max<benchmark::IterationCount>(st.iterations(), 1));
  st.counters["FLOP/s"] = benchmark::Counter(flops_per_iter, benchmark::Counter::kIsIterationInvariantRate);
  if (sgemm > 0) {
    st.counters["pct_of_sgemm"] = 100.0 * flops_per_iter / per_iter / sgemm;
    st.counters["sgemm_GFLOP/s"] = sgemm * 1e-9;
  }
  st.counters["ms_per_seq"] = 1e3 * per_iter / double(batch);
  st.counters["peak_MB"] = double(heap::peak.load() - heap_before) / 1e6;
  st.counters["rss_MB"] = rss_peak_mb();
}

// One iteration = one Trainer::step (forward, losses, backward, sign-SGD, AdamATan2, EMA) on the
// whole batch. One untimed warm-up call first (it allocates the tape and the optimiser state).
// Checked = false: without TrainOptions::check_finite (train_unchecked/..., to measure its cost).
template <class Cfg, bool Checked = true>
void BM_train(benchmark::State& st) {
  using M = Model<Cfg>;
  const index_t b = st.range(0);
  const double sgemm = sgemm_rate();
  reset_rss_peak();
  const long long before = heap::live.load();
  heap::reset_peak();
  double seconds = 0, flops = 0;
  {
    M model(0);
    apply_env_overrides(model);
    flops = Flops<Cfg>::train_call(model.recursion()) * double(b);
    Trainer trainer(model, adam(), train_options(Checked));
    const Batch batch = random_batch<M>(b, 1);
    trainer.step(batch);
    const double t0 = now_seconds();
    for (auto _ : st) {
      auto m = trainer.step(batch);
      benchmark::DoNotOptimize(m.total_loss);
    }
    seconds = now_seconds() - t0;
  }
  set_counters(st, flops, sgemm, b, before, seconds);
}

// One iteration = what TrainOptions::check_finite adds to a training call, alone: the scan of every
// parameter's gradient and value and of the puzzle table (the trainer's check_gradients and
// check_weights on finite tensors; the per-call puzzle-row gradient, [batch, 512], is left out).
template <class Cfg>
void BM_finite_check(benchmark::State& st) {
  using M = Model<Cfg>;
  M model(0);
  Trainer trainer(model, adam(), train_options());
  trainer.step(random_batch<M>(1, 1), /*update=*/false);  // gradients in place, as the check sees them
  double bytes = 0;
  for (auto _ : st) {
    std::ptrdiff_t bad = 0;
    bytes = 0;
    model.for_each_parameter([&](const std::string&, auto& p) {
      bad += trm::detail::first_non_finite(std::as_const(p.grad).span()) + trm::detail::first_non_finite(std::as_const(p.value).span());
      bytes += 2.0 * double(p.value.size() * sizeof(float));
    });
    bad += trm::detail::first_non_finite(std::as_const(model.puzzle_emb.value).span());
    bytes += double(model.puzzle_emb.value.size() * sizeof(float));
    benchmark::DoNotOptimize(bad);
  }
  st.counters["MB_read"] = bytes / 1e6;
  st.counters["GB/s"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

// One iteration = a whole 16-step inference of the batch. Model and buffers are built (and one
// supervision step warms them up) before the timed loop.
template <class Cfg>
void BM_infer(benchmark::State& st) {
  using M = Model<Cfg>;
  const index_t b = st.range(0);
  const double sgemm = sgemm_rate();
  reset_rss_peak();
  const long long before = heap::live.load();
  heap::reset_peak();
  double seconds = 0, flops = 0;
  {
    M model(0);
    apply_env_overrides(model);
    const int steps = model.max_steps();  // N_sup = 16
    flops = Flops<Cfg>::inference(model.recursion(), steps) * double(b);
    Inference<M> inf;
    const Batch batch = random_batch<M>(b, 2);
    inf.run(model, batch, 1);
    const double t0 = now_seconds();
    for (auto _ : st) {
      inf.run(model, batch, steps);
      benchmark::DoNotOptimize(inf.logits.data());
    }
    seconds = now_seconds() - t0;
  }
  set_counters(st, flops, sgemm, b, before, seconds);
}

#if defined(TRM_HAVE_CBLAS)
void BM_sgemm_2048(benchmark::State& st) {
  const int n = 2048;
  std::vector<float> a(std::size_t(n) * n, 0.5f), bm(std::size_t(n) * n, 0.25f), c(std::size_t(n) * n);
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, bm.data(), n, 0.0f, c.data(), n);
    benchmark::ClobberMemory();
  }
  st.counters["FLOP/s"] = benchmark::Counter(2.0 * n * double(n) * n, benchmark::Counter::kIsIterationInvariantRate);
}
#endif

void register_benchmarks() {
  const bool long_runs = std::getenv("TRM_BENCH_LONG") && std::atoi(std::getenv("TRM_BENCH_LONG")) != 0;
  // Wall-clock time with several threads (OpenBLAS's workers do not show in the calling thread's
  // CPU time); with one thread, its CPU time, which a busy machine inflates much less.
  auto unit = [](benchmark::internal::Benchmark* b) {
    if (!g_cpu_clock) b->UseRealTime();
    return b->Unit(benchmark::kMillisecond);
  };
#if defined(TRM_HAVE_CBLAS)
  unit(benchmark::RegisterBenchmark("sgemm_2048", BM_sgemm_2048))->MinTime(1.0);
#endif
  // Iteration counts keep each benchmark at a few seconds to ~20 s (times: 2 threads, this class
  // of machine). Google Benchmark's --benchmark_repetitions=n repeats each one n times.
  unit(benchmark::RegisterBenchmark("train/mlp", BM_train<SudokuMlp>))->ArgName("batch")->Arg(1)->Iterations(10);
  unit(benchmark::RegisterBenchmark("train_unchecked/mlp", BM_train<SudokuMlp, false>))->ArgName("batch")->Arg(1)->Iterations(10);
  unit(benchmark::RegisterBenchmark("finite_check/mlp", BM_finite_check<SudokuMlp>))->MinTime(0.5);
  unit(benchmark::RegisterBenchmark("train/mlp", BM_train<SudokuMlp>))->ArgName("batch")->Arg(16)->Iterations(3);
  unit(benchmark::RegisterBenchmark("train/mlp", BM_train<SudokuMlp>))->ArgName("batch")->Arg(64)->Iterations(1);
  unit(benchmark::RegisterBenchmark("infer/mlp", BM_infer<SudokuMlp>))->ArgName("batch")->Arg(1)->Iterations(2);
  unit(benchmark::RegisterBenchmark("infer/mlp", BM_infer<SudokuMlp>))->ArgName("batch")->Arg(16)->Iterations(1);
  if (long_runs)
    unit(benchmark::RegisterBenchmark("infer/mlp", BM_infer<SudokuMlp>))->ArgName("batch")->Arg(64)->Iterations(1);
  unit(benchmark::RegisterBenchmark("train/att", BM_train<ArcAtt>))->ArgName("batch")->Arg(1)->Iterations(2);
  unit(benchmark::RegisterBenchmark("train/att", BM_train<ArcAtt>))->ArgName("batch")->Arg(8)->Iterations(1);
  unit(benchmark::RegisterBenchmark("infer/att", BM_infer<ArcAtt>))->ArgName("batch")->Arg(1)->Iterations(1);
  if (long_runs)
    unit(benchmark::RegisterBenchmark("infer/att", BM_infer<ArcAtt>))->ArgName("batch")->Arg(8)->Iterations(1);
}

// ------------------------------------------------------------------------------------------------
// --trm_profile: time per op class (a backend that times each cpu op) and memory per tensor class
// ------------------------------------------------------------------------------------------------
enum OpClass { kGemm, kTranspose, kSwiglu, kRmsnorm, kSoftmax, kRope, kAddCopy, kGatherScatter, kNumOpClasses };
const char* const kOpClassNames[] = {"GEMM",     "transpose", "swiglu (fwd+bwd)", "rmsnorm (fwd+bwd)",
                                     "softmax",  "rope",      "add/copy/axpy/fill/scale", "gather/scatter/sum_rows"};
double g_op_seconds[kNumOpClasses];
long long g_op_calls[kNumOpClasses];
double g_gemm_flops = 0;
struct GemmShapeStats {
  double seconds = 0, flops = 0;
  long calls = 0;
};
std::map<std::string, GemmShapeStats> g_gemm_shapes;

struct OpTimer {
  OpClass c;
  double t0 = now_seconds();
  explicit OpTimer(OpClass k) : c(k) {}
  ~OpTimer() {
    g_op_seconds[c] += now_seconds() - t0;
    ++g_op_calls[c];
  }
};

// trm::cpu with every op timed (same memory space, same kernels).
struct timed_cpu : cpu {
  static constexpr const char* name = "timed_cpu";
  // Batched GEMMs go through the timed gemm below, one by one (host_model_ops' loop).
  template <class T>
  static void gemm_batched(Trans ta, Trans tb, T alpha, CMatrixView<T> a, index_t sa, CMatrixView<T> b, index_t sb, T beta,
                           MatrixView<T> c, index_t sc, index_t count) {
    host_model_ops<timed_cpu>::gemm_batched(ta, tb, alpha, a, sa, b, sb, beta, c, sc, count);
  }
  template <class T>
  static void gemm(Trans ta, Trans tb, T alpha, CMatrixView<T> a, CMatrixView<T> b, T beta, MatrixView<T> c) {
    const double k = double(ta == Trans::N ? a.extent(1) : a.extent(0));
    const double t0 = now_seconds();
    {
      OpTimer t(kGemm);
      cpu::gemm(ta, tb, alpha, a, b, beta, c);
    }
    const double flops = 2.0 * double(c.extent(0)) * double(c.extent(1)) * k;
    g_gemm_flops += flops;
    char key[96];
    std::snprintf(key, sizeof key, "%c%c m=%ld n=%ld k=%ld%s", ta == Trans::N ? 'N' : 'T', tb == Trans::N ? 'N' : 'T',
                  long(c.extent(0)), long(c.extent(1)), long(k), beta == T(0) ? "" : " +=");
    auto& e = g_gemm_shapes[key];
    e.seconds += now_seconds() - t0;
    e.flops += flops;
    ++e.calls;
  }
  template <class T>
  static void copy(CMatrixView<T> x, MatrixView<T> y) { OpTimer t(kAddCopy); cpu::copy(x, y); }
  template <class T>
  static void fill(MatrixView<T> y, T v) { OpTimer t(kAddCopy); cpu::fill(y, v); }
  template <class T>
  static void scale(MatrixView<T> y, T a) { OpTimer t(kAddCopy); cpu::scale(y, a); }
  template <class T>
  static void axpy(T a, CMatrixView<T> x, MatrixView<T> y) { OpTimer t(kAddCopy); cpu::axpy(a, x, y); }
  template <class T>
  static void add(CMatrixView<T> a, CMatrixView<T> b, MatrixView<T> o) { OpTimer t(kAddCopy); cpu::add(a, b, o); }
  template <class T>
  static void transpose_batched(Tensor3View<const T> in, Tensor3View<T> out, bool acc) {
    OpTimer t(kTranspose);
    cpu::transpose_batched(in, out, acc);
  }
  template <class T>
  static void swiglu_forward(CMatrixView<T> gu, MatrixView<T> o) { OpTimer t(kSwiglu); cpu::swiglu_forward(gu, o); }
  template <class T>
  static void swiglu_backward(CMatrixView<T> gu, CMatrixView<T> d, MatrixView<T> dgu) {
    OpTimer t(kSwiglu);
    cpu::swiglu_backward(gu, d, dgu);
  }
  // The cpu backend's fused extension (activation recomputed with its gradient), when it has it.
  template <class T>
    requires requires(CMatrixView<T> c, MatrixView<T> m) { cpu::template swiglu_backward_act<T>(c, c, m, m); }
  static void swiglu_backward_act(CMatrixView<T> gu, CMatrixView<T> d, MatrixView<T> dgu, MatrixView<T> act) {
    OpTimer t(kSwiglu);
    cpu::template swiglu_backward_act<T>(gu, d, dgu, act);
  }
  template <class T>
  static void rmsnorm_forward(CMatrixView<T> x, MatrixView<T> y, VectorView<T> r, T eps) {
    OpTimer t(kRmsnorm);
    cpu::rmsnorm_forward(x, y, r, eps);
  }
  template <class T>
  static void rmsnorm_backward(CMatrixView<T> y, CVectorView<T> r, CMatrixView<T> dy, MatrixView<T> dx, bool acc) {
    OpTimer t(kRmsnorm);
    cpu::rmsnorm_backward(y, r, dy, dx, acc);
  }
  template <class T>
  static void softmax_rows(MatrixView<T> s, T scale) { OpTimer t(kSoftmax); cpu::softmax_rows(s, scale); }
  template <class T>
  static void softmax_rows_backward(CMatrixView<T> p, CMatrixView<T> dp, MatrixView<T> ds, T scale) {
    OpTimer t(kSoftmax);
    cpu::softmax_rows_backward(p, dp, ds, scale);
  }
  template <class T>
  static void rope(MatrixView<T> x, CMatrixView<T> c, CMatrixView<T> s, bool tr) { OpTimer t(kRope); cpu::rope(x, c, s, tr); }
  template <class T>
  static void gather_rows(CMatrixView<T> tb, CVectorView<std::int32_t> ids, T sc, MatrixView<T> o) {
    OpTimer t(kGatherScatter);
    cpu::gather_rows(tb, ids, sc, o);
  }
  template <class T>
  static void scatter_add_rows(CMatrixView<T> d, CVectorView<std::int32_t> ids, T sc, MatrixView<T> tb) {
    OpTimer t(kGatherScatter);
    cpu::scatter_add_rows(d, ids, sc, tb);
  }
  template <class T>
  static void sum_rows(CMatrixView<T> x, VectorView<T> o, bool acc) { OpTimer t(kGatherScatter); cpu::sum_rows(x, o, acc); }
};

// Bytes (allocated capacity) of every tensor in a tape, by class. Knows the caches of nn/ by
// their member names; a member it does not know is not counted (it shows up as "other heap").
struct MemTally {
  std::map<std::string, double> bytes;
  template <class Tn>
  void add(const std::string& k, const Tn& t) {
    bytes[k] += double(t.capacity()) * sizeof(typename Tn::value_type);
  }
  double total() const {
    double s = 0;
    for (auto& [k, v] : bytes) s += v;
    return s;
  }
};

template <class C>
void tally_cache(const C& c, const std::string& where, MemTally& t) {
  if constexpr (requires { c.blocks; })
    for (auto& b : c.blocks) tally_cache(b, "block", t);
  if constexpr (requires { c.outputs; })
    for (auto& o : c.outputs) t.add("Stack outputs (block 0 out)", o);
  if constexpr (requires { c.mid; }) t.add("Block mid (mixer out)", c.mid);
  if constexpr (requires { c.mixer; }) tally_cache(c.mixer, "mixer", t);
  if constexpr (requires { c.mlp; }) tally_cache(c.mlp, where == "mixer" ? "token_mlp" : "mlp", t);
  if constexpr (requires { c.inner; }) tally_cache(c.inner, where, t);
  if constexpr (requires { c.gate_up; }) t.add(where + " SwiGLU gate_up", c.gate_up);
  if constexpr (requires { c.y_t; }) t.add(where + " normalised output (transposed)", c.y_t);
  if constexpr (requires { c.rstd; }) t.add(where + " rstd", c.rstd);
  if constexpr (requires { c.qkv; }) t.add("attention qkv", c.qkv);
  if constexpr (requires { c.probs; }) t.add("attention probabilities", c.probs);
  if constexpr (requires { c.lse; }) t.add("attention logsumexp", c.lse);
  if constexpr (requires { c.attn; }) t.add("attention heads (before o_proj)", c.attn);
}

template <class Tape>
MemTally tally_tape(const Tape& tape) {
  MemTally t;
  for (auto& x : tape.in) t.add("tape in (net inputs)", x);
  for (auto& x : tape.out) t.add("tape out (net outputs)", x);
  for (auto& c : tape.cache) tally_cache(c, "", t);
  return t;
}

template <class Cfg>
int profile(bool train, index_t b) {
  using M = Model<Cfg, timed_cpu>;
  std::printf("profile: %s, %s, batch %ld, %d threads (%s)\n", train ? "training call" : "16-step inference",
              is_attention_mixer_v<typename Cfg::mixer> ? "TRM-Att 916" : "TRM-MLP Sudoku", long(b), g_threads,
              g_cpu_clock ? "thread CPU time" : "wall-clock time");
  const double sgemm = sgemm_rate(7);
  const long long before = heap::live.load();
  heap::reset_peak();
  double total = 0, opt_seconds = 0, params_mb = 0, steady_mb = 0, peak_mb = 0, alloc_mb = 0;
  long long allocs = 0, faults = 0;
  double flops = 0;
  {
    M model(0);
    apply_env_overrides(model);
    const int steps = model.max_steps();
    flops = train ? Flops<Cfg>::train_call(model.recursion()) * double(b)
                  : Flops<Cfg>::inference(model.recursion(), steps) * double(b);
    params_mb = double(heap::live.load() - before) / 1e6;
    const Batch batch = random_batch<M>(b, 1);
    Trainer<M> trainer(model, adam(), train_options());
    Inference<M> inf;
    if (train)
      trainer.step(batch);
    else
      inf.run(model, batch, 1);
    std::fill(std::begin(g_op_seconds), std::end(g_op_seconds), 0.0);
    std::fill(std::begin(g_op_calls), std::end(g_op_calls), 0LL);
    g_gemm_flops = 0;
    g_gemm_shapes.clear();
    const long long allocs0 = heap::allocs.load(), alloc_bytes0 = heap::alloc_bytes.load();
    rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    const double t0 = now_seconds();
    if (train)
      trainer.step(batch);
    else
      inf.run(model, batch, steps);
    total = now_seconds() - t0;
    rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    faults = ru1.ru_minflt - ru0.ru_minflt;
    allocs = heap::allocs.load() - allocs0;
    alloc_mb = double(heap::alloc_bytes.load() - alloc_bytes0) / 1e6;
    steady_mb = double(heap::live.load() - before) / 1e6;
    peak_mb = double(heap::peak.load() - before) / 1e6;
    if (train) {
      // The optimiser part of a step timed alone: AdamATan2 over every parameter, then the EMA
      // (the sign-SGD of the puzzle rows is negligible).
      std::map<std::string, AdamState<float>> st;
      model.for_each_parameter([&](const std::string& n, auto& p) { adam().update(p.value, p.grad, st[n], 1e-4, 1); });
      const double t1 = now_seconds();
      model.for_each_parameter([&](const std::string& n, auto& p) { adam().update(p.value, p.grad, st[n], 1e-4, 2); });
      trainer.ema().update(model);
      opt_seconds = now_seconds() - t1;
    }
  }
  double ops = 0;
  for (double s : g_op_seconds) ops += s;
  std::printf("  wall %.3f s; model GEMM flops %.1f GFLOP -> %.1f GFLOP/s = %.1f%% of sgemm 2048^3 (%.1f GFLOP/s)\n",
              total, flops * 1e-9, flops / total * 1e-9, 100.0 * flops / total / sgemm, sgemm * 1e-9);
  std::printf("  GEMM flops executed %.1f GFLOP (%.1f%% of the model count)\n", g_gemm_flops * 1e-9,
              100.0 * g_gemm_flops / flops);
  std::printf("  %-28s %9s %7s %9s\n", "op class", "seconds", "share", "calls");
  for (int c = 0; c < kNumOpClasses; ++c)
    std::printf("  %-28s %9.3f %6.1f%% %9lld\n", kOpClassNames[c], g_op_seconds[c], 100.0 * g_op_seconds[c] / total,
                g_op_calls[c]);
  if (train) std::printf("  %-28s %9.3f %6.1f%%   (timed separately)\n", "optimiser (AdamATan2 + EMA)", opt_seconds,
                         100.0 * opt_seconds / total);
  const double rest = total - ops - opt_seconds;
  std::printf("  %-28s %9.3f %6.1f%%   (losses, heads' host loops, bookkeeping)\n", "other", rest, 100.0 * rest / total);
  std::printf("  GEMM rate inside GEMM calls: %.1f GFLOP/s = %.1f%% of sgemm\n", g_gemm_flops / g_op_seconds[kGemm] * 1e-9,
              100.0 * g_gemm_flops / g_op_seconds[kGemm] / sgemm);
  {
    std::vector<std::pair<std::string, GemmShapeStats>> v(g_gemm_shapes.begin(), g_gemm_shapes.end());
    std::sort(v.begin(), v.end(), [](auto& x, auto& y) { return x.second.seconds > y.second.seconds; });
    std::printf("  GEMM shapes by time (rate as %% of sgemm):\n");
    for (std::size_t i = 0; i < v.size() && i < 16; ++i)
      std::printf("    %-34s %6ld calls %8.3f s %5.1f%% of time %6.1f GFLOP/s %5.1f%%\n", v[i].first.c_str(),
                  v[i].second.calls, v[i].second.seconds, 100.0 * v[i].second.seconds / total,
                  v[i].second.flops / v[i].second.seconds * 1e-9, 100.0 * v[i].second.flops / v[i].second.seconds / sgemm);
  }
  std::printf("  heap: parameters %.1f MB; live after the call %.1f MB; peak %.1f MB; %lld allocations (%.1f MB) "
              "and %lld page faults during the timed call\n", params_mb, steady_mb, peak_mb, allocs, alloc_mb, faults);
  if (train) {
    // The recorded pass's tensors, from a recorded forward on a fresh tape (same shapes as the
    // trainer's own tape).
    M model(1);
    typename M::schedule::template Tape<M> tape;
    DynTensor<float, 3> x(b, M::total_len, M::hidden), y(b, M::total_len, M::hidden),
        z(b * index_t(M::num_latents), M::total_len, M::hidden);
    const Batch batch = random_batch<M>(b, 1);
    std::vector<std::uint8_t> all(b, 1);
    model.embed(batch, x.view());
    model.reset_states(all, y.view(), z.view());
    model.recursion().forward(model, tape, x.cview(), y.view(), z.view(), true);
    MemTally t = tally_tape(tape);
    std::printf("  recorded pass (tape), by tensor class:\n");
    for (auto& [k, v] : t.bytes)
      std::printf("    %-44s %9.1f MB  %7.3f MB/seq\n", k.c_str(), v / 1e6, v / 1e6 / double(b));
    std::printf("    %-44s %9.1f MB  %7.3f MB/seq\n", "total", t.total() / 1e6, t.total() / 1e6 / double(b));
  }
  return 0;
}

int run_profile(const std::string& spec) {
  // spec: train|infer / mlp|att / batch
  auto a = spec.find('/'), c = spec.rfind('/');
  if (a == std::string::npos || c == a) {
    std::fprintf(stderr, "--trm_profile: expected train|infer/mlp|att/<batch>, found %s\n", spec.c_str());
    return 2;
  }
  const std::string what = spec.substr(0, a), model = spec.substr(a + 1, c - a - 1);
  const index_t b = std::atol(spec.c_str() + c + 1);
  if ((what != "train" && what != "infer") || (model != "mlp" && model != "att") || b < 1) {
    std::fprintf(stderr, "--trm_profile: expected train|infer/mlp|att/<batch>, found %s\n", spec.c_str());
    return 2;
  }
  return model == "mlp" ? profile<SudokuMlp>(what == "train", b) : profile<ArcAtt>(what == "train", b);
}

}  // namespace

int main(int argc, char** argv) {
  trm::cpu::use_fast_blas_kernels(argv);  // re-exec with OPENBLAS_CORETYPE when OpenBLAS chose generic kernels
  std::string prof;
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--trm_profile=", 14) == 0) {
      prof = argv[i] + 14;
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      --i;
    }
  if (const char* t = std::getenv("TRM_BENCH_THREADS")) g_threads = std::max(1, std::atoi(t));
  cpu::set_num_threads(g_threads);
  g_cpu_clock = g_threads == 1;
#if defined(TRM_HAVE_CBLAS)
  // Still generic OpenBLAS kernels (TRM_KEEP_OPENBLAS_CORE, or the re-execution failed): every
  // number would measure them.
  const std::string core = openblas_get_corename();
  if (const char* better = cpu::better_blas_core())
    std::fprintf(stderr, "WARNING: OpenBLAS runs its generic '%s' kernels: set OPENBLAS_CORETYPE=%s (see docs/PERFORMANCE.md)\n",
                 core.c_str(), better);
#endif
  if (!prof.empty()) return run_profile(prof);
#if defined(TRM_HAVE_CBLAS)
  benchmark::AddCustomContext("openblas_core", core);
#endif
  register_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("trm_threads", std::to_string(g_threads));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
