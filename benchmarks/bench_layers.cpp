// Layer benchmarks on trm::cpu (float, 2 threads): forward + backward of each layer at the
// reference sizes, against an sgemm baseline measured in the same process.
//
//   Sudoku TRM-MLP:  [batch, 97, 512]   SwiGlu<512,4>, TokenMlp<97,4>, RmsNorm, Block<TokenMlp, SwiGlu>
//   attention:       [batch, 916, 512]  SelfAttention<512,8> with RoPE, Block<SelfAttention, SwiGlu>
//
// Counters:
//   FLOP/s        GEMM flops only (2*m*n*k per GEMM; forward + backward = 3x the forward GEMM
//                 flops, attention score/value GEMMs included), per second of wall-clock time.
//   pct_of_sgemm  FLOP/s as a percentage of the baseline: cblas_sgemm 2048^3 on the same thread
//                 count, measured once in main() before the benchmarks run (median of 7 calls).
// Every benchmark uses real (wall-clock) time: OpenBLAS's worker threads do not show up in the
// calling thread's CPU time.
//
//   bench_layers --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// (TRM_BENCH_THREADS=n overrides the thread count, default 2.)
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <trm/nn/attention.hpp>
#include <trm/nn/block.hpp>
#include <trm/nn/rmsnorm.hpp>
#include <trm/nn/rotary.hpp>
#include <trm/nn/swiglu.hpp>
#include <trm/nn/token_mlp.hpp>
#include <vector>

#if defined(TRM_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace {

using namespace trm;

int g_threads = 2;
double g_baseline_flops = 0;  // FLOP/s of cblas_sgemm 2048^3, measured in main()

void fill_uniform(std::span<float> v, Rng& rng, double scale = 1.0) {
  for (auto& x : v) x = static_cast<float>(scale * rng.uniform(-1.0, 1.0));
}

// Runs body() once per benchmark iteration and sets the counters: FLOP/s (a rate over the
// iterations' wall-clock time) and pct_of_sgemm, the same rate in percent of the baseline (a plain
// number, computed from the loop's own wall-clock time).
template <class F>
void flop_loop(benchmark::State& st, double flops_per_iter, F&& body) {
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : st) {
    body();
    benchmark::ClobberMemory();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (flops_per_iter <= 0) return;
  st.counters["FLOP/s"] = benchmark::Counter(flops_per_iter, benchmark::Counter::kIsIterationInvariantRate);
  if (g_baseline_flops > 0 && secs > 0)
    st.counters["pct_of_sgemm"] = 100.0 * flops_per_iter * double(st.iterations()) / secs / g_baseline_flops;
}

// ------------------------------------------------------------------------------------------------
// Baselines
// ------------------------------------------------------------------------------------------------
#if defined(TRM_HAVE_CBLAS)
struct SgemmData {
  explicit SgemmData(int n) : n(n), a(std::size_t(n) * n), b(std::size_t(n) * n), c(std::size_t(n) * n) {
    Rng rng(123);
    fill_uniform(a, rng);
    fill_uniform(b, rng);
  }
  void run() {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  }
  int n;
  std::vector<float> a, b, c;
};

double measure_sgemm_baseline(int n, int reps) {
  SgemmData d(n);
  d.run();  // warm up: thread pool start, page faults
  std::vector<double> rates;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    d.run();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(2.0 * n * double(n) * n / s);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

// cblas_sgemm 2048^3 with state.range(0) threads (restored afterwards).
void BM_sgemm_openblas(benchmark::State& st) {
  const int n = 2048;
  cpu::set_num_threads(int(st.range(0)));
  SgemmData d(n);
  flop_loop(st, 2.0 * n * double(n) * n, [&] { d.run(); });
  cpu::set_num_threads(g_threads);
}
BENCHMARK(BM_sgemm_openblas)->ArgName("threads")->Arg(2)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// The GEMM shapes of a Sudoku TRM-MLP block at batch 16 (rows = 16 * 97 = 1552 for the channel
// SwiGLU, 16 * 512 = 8192 for the token mixer), alone, as the layers call them (row-major, B
// transposed = the weight), and the token mixer's two forward GEMMs in the "weight on the left"
// layout (X = [97, B*512]) a rewrite of TokenMlp would use. Args: m, n, k, B transposed.
void BM_sgemm_shape(benchmark::State& st) {
  const int m = int(st.range(0)), n = int(st.range(1)), k = int(st.range(2));
  const bool bt = st.range(3) != 0;
  std::vector<float> a(std::size_t(m) * k, 0.5f), b(std::size_t(k) * n, 0.25f), c(std::size_t(m) * n);
  flop_loop(st, 2.0 * m * double(n) * k, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, bt ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a.data(), k, b.data(),
                bt ? k : n, 0.0f, c.data(), n);
  });
}
BENCHMARK(BM_sgemm_shape)
    ->ArgNames({"m", "n", "k", "bt"})
    ->Args({1552, 3072, 512, 1})  // channel SwiGLU gate_up
    ->Args({1552, 512, 1536, 1})  // channel SwiGLU down
    ->Args({8192, 1024, 97, 1})   // token mixer gate_up (97 on k)
    ->Args({8192, 97, 512, 1})    // token mixer down (97 on n)
    ->Args({1024, 8192, 97, 0})   // token mixer gate_up, weight on the left
    ->Args({97, 8192, 512, 0})    // token mixer down, weight on the left
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
#endif

// Eigen's own GEMM, 2048^3. Eigen parallelises its GEMM only under OpenMP, which this benchmark
// (like the library) is not built with: it runs on one thread.
void BM_sgemm_eigen(benchmark::State& st) {
  const int n = 2048;
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n), c(n, n);
  flop_loop(st, 2.0 * n * double(n) * n, [&] { c.noalias() = a * b; });
  st.SetLabel("1 thread (no OpenMP)");
}
BENCHMARK(BM_sgemm_eigen)->UseRealTime()->Unit(benchmark::kMillisecond);

// ------------------------------------------------------------------------------------------------
// Layers
// ------------------------------------------------------------------------------------------------
constexpr index_t kSudokuSeq = 97, kAttnSeq = 916, kHidden = 512;

// Forward GEMM flops of each layer for `rows` = batch * seq rows.
template <index_t W, index_t E>
double swiglu_fwd_flops(double rows) {
  constexpr double inter = double(swiglu_intermediate(W, E));
  return 2.0 * rows * W * (2 * inter) + 2.0 * rows * inter * W;
}
double attention_fwd_flops(double batch, double seq) {
  const double rows = batch * seq;
  return 2.0 * rows * kHidden * 3 * kHidden   // qkv projection
         + 2.0 * rows * kHidden * kHidden      // output projection
         + 2.0 * 2.0 * batch * seq * seq * kHidden;  // scores q k^T and P v, all heads
}

// One iteration = layer.forward(x, y, cache, ws) + layer.backward(x, y, cache, dy, dx, ws).
template <class L>
void run_layer(benchmark::State& st, L& layer, index_t batch, index_t seq, double fwd_flops) {
  Rng rng(42);
  DynTensor<float, 3> x(batch, seq, kHidden), y(batch, seq, kHidden), dy(batch, seq, kHidden),
      dx(batch, seq, kHidden);
  fill_uniform(x.span(), rng);
  fill_uniform(dy.span(), rng);
  dx.zero();
  typename L::Cache cache;
  typename L::Workspace ws;
  flop_loop(st, 3.0 * fwd_flops, [&] {
    layer.forward(x.cview(), y.view(), cache, ws);
    layer.backward(x.cview(), y.cview(), cache, dy.cview(), dx.view(), ws);
  });
  // Activations read or written at least once per iteration (x, y, dy, dx): a floor on the traffic.
  st.SetBytesProcessed(int64_t(st.iterations()) * 4 * x.size() * int64_t(sizeof(float)));
}

template <class L>
L& initialised() {
  static L layer = [] {
    L l;
    Rng rng(7);
    l.init(rng);
    return l;
  }();
  return layer;
}

void BM_SwiGlu512(benchmark::State& st) {
  const index_t b = st.range(0);
  run_layer(st, initialised<SwiGlu<512, 4>>(), b, kSudokuSeq, swiglu_fwd_flops<512, 4>(double(b) * kSudokuSeq));
}
void BM_TokenMlp97(benchmark::State& st) {
  const index_t b = st.range(0);
  // SwiGLU over the 97 positions of every (batch, channel) pair: rows = batch * 512.
  run_layer(st, initialised<TokenMlp<97, 4>>(), b, kSudokuSeq, swiglu_fwd_flops<97, 4>(double(b) * kHidden));
}
void BM_RmsNorm_hidden(benchmark::State& st) {
  run_layer(st, initialised<RmsNorm<NormAxis::hidden>>(), st.range(0), kSudokuSeq, 0.0);
}
void BM_RmsNorm_sequence(benchmark::State& st) {
  run_layer(st, initialised<RmsNorm<NormAxis::sequence>>(), st.range(0), kSudokuSeq, 0.0);
}
void BM_Block_TokenMlp97_SwiGlu512(benchmark::State& st) {
  const index_t b = st.range(0);
  using L = Block<TokenMlp<97, 4>, SwiGlu<512, 4>>;
  run_layer(st, initialised<L>(), b, kSudokuSeq,
            swiglu_fwd_flops<97, 4>(double(b) * kHidden) + swiglu_fwd_flops<512, 4>(double(b) * kSudokuSeq));
}

const RotaryEmbedding<64>& rope_table() {
  static RotaryEmbedding<64> r(kAttnSeq);
  return r;
}
void BM_SelfAttention512x8_rope(benchmark::State& st) {
  const index_t b = st.range(0);
  auto& l = initialised<SelfAttention<512, 8>>();
  l.rope = &rope_table();
  run_layer(st, l, b, kAttnSeq, attention_fwd_flops(double(b), kAttnSeq));
}
void BM_Block_SelfAttention512x8_SwiGlu512(benchmark::State& st) {
  const index_t b = st.range(0);
  auto& l = initialised<Block<SelfAttention<512, 8>, SwiGlu<512, 4>>>();
  l.mixer.inner.rope = &rope_table();
  run_layer(st, l, b, kAttnSeq,
            attention_fwd_flops(double(b), kAttnSeq) + swiglu_fwd_flops<512, 4>(double(b) * kAttnSeq));
}

#define TRM_SUDOKU_BENCH(fn) \
  BENCHMARK(fn)->ArgName("batch")->Arg(1)->Arg(16)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond)
TRM_SUDOKU_BENCH(BM_SwiGlu512);
TRM_SUDOKU_BENCH(BM_TokenMlp97);
TRM_SUDOKU_BENCH(BM_RmsNorm_hidden);
TRM_SUDOKU_BENCH(BM_RmsNorm_sequence);
TRM_SUDOKU_BENCH(BM_Block_TokenMlp97_SwiGlu512);
BENCHMARK(BM_SelfAttention512x8_rope)->ArgName("batch")->Arg(1)->Arg(4)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Block_SelfAttention512x8_SwiGlu512)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(4)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  trm::cpu::use_fast_blas_kernels(argv);  // re-exec with OPENBLAS_CORETYPE when OpenBLAS chose generic kernels
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (const char* t = std::getenv("TRM_BENCH_THREADS")) g_threads = std::max(1, std::atoi(t));
  cpu::set_num_threads(g_threads);
  benchmark::AddCustomContext("trm_threads", std::to_string(g_threads));
#if defined(TRM_HAVE_CBLAS)
  // Still generic OpenBLAS kernels (TRM_KEEP_OPENBLAS_CORE, or the re-execution failed): every
  // number below would measure them.
  const std::string core = openblas_get_corename();
  benchmark::AddCustomContext("openblas_core", core);
  if (const char* better = cpu::better_blas_core())
    std::fprintf(stderr, "WARNING: OpenBLAS runs its generic '%s' kernels: set OPENBLAS_CORETYPE=%s (see docs/PERFORMANCE.md)\n",
                 core.c_str(), better);
  g_baseline_flops = measure_sgemm_baseline(2048, 7);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", g_baseline_flops * 1e-9);
  benchmark::AddCustomContext("sgemm_2048_baseline_GFLOP/s", buf);
#else
  benchmark::AddCustomContext("sgemm_2048_baseline_GFLOP/s", "n/a (built without OpenBLAS)");
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
