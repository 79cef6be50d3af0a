// Whole-model benchmarks on the GPU (built when TRM_ENABLE_CUDA=ON): one training call
// (Trainer::step: forward, backward, AdamATan2, sign-SGD, EMA) and one 16-step inference
// (Solver::solve, every row all 16 steps), on trm::cuda (fp32, no TF32) and trm::cuda_bf16 (bf16
// GEMM inputs on tensor cores, fp32 accumulation, as the reference's forward_dtype = bfloat16),
// beside the GPU's GEMM rates measured in the same process.
//
//   train/<mlp|att>/<cuda|cuda_bf16>/batch:B   Sudoku TRM-MLP (hidden 512, T=3, n=6) and TRM-Att
//                                              at 916 positions (30x30, 8 heads, RoPE, T=3, n=4)
//   infer/<mlp|att>/<cuda|cuda_bf16>/batch:B   16 supervision steps forward
//   gemm/<fp32|bf16>                           cublasSgemm / cublasGemmEx (bf16 in, fp32 compute)
//                                              8192^3: the rates the model's are compared with
//
// Counters:
//   sample_steps/s  training: batch rows / call time (one sample through one supervision call,
//                   forward + backward + update); inference: batch rows x 16 / solve time
//   FLOP/s          the model's GEMM flops (benchmarks/model_flops.hpp, as bench_trm) per second
//   pct_of_bf16     FLOP/s as a percentage of this GPU's measured bf16 GEMM rate (gemm/bf16)
//   pct_of_fp32     the same for the fp32 rate (gemm/fp32)
// Times are wall-clock around the call with a cudaDeviceSynchronize after it (manual time).
// The finiteness check of every call (TrainOptions::check_finite, one small copy per tensor) is
// off here, as a long run on a GPU would set it; bench "train_checked" cases keep it on.
//
// Run: bench_cuda [--benchmark_filter=train/att] [--benchmark_format=json]
#include <benchmark/benchmark.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <trm/cuda.hpp>
#include <trm/model/inference.hpp>
#include <vector>

#include "model_flops.hpp"

namespace trm_bench_gpu {
using namespace trm_bench;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

template <class V>
__global__ void init_k(V* p, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    p[i] = V(float((i * 2654435761u) % 1000) / 1000.0f - 0.5f);
}

// Median rate (flop/s) of an n^3 GEMM with inputs of `type` and cuBLAS compute type `compute`.
double gemm_rate(cudaDataType type, cublasComputeType_t compute, int n, int reps = 7) {
  const std::size_t elems = std::size_t(n) * n, in_bytes = type == CUDA_R_16BF ? 2 : 4;
  void *a = nullptr, *b = nullptr, *c = nullptr;
  TRM_CUDA_CHECK(cudaMalloc(&a, elems * in_bytes));
  TRM_CUDA_CHECK(cudaMalloc(&b, elems * in_bytes));
  TRM_CUDA_CHECK(cudaMalloc(&c, elems * 4));
  if (type == CUDA_R_16BF) {
    init_k<<<1024, 256>>>(static_cast<__nv_bfloat16*>(a), elems);
    init_k<<<1024, 256>>>(static_cast<__nv_bfloat16*>(b), elems);
  } else {
    init_k<<<1024, 256>>>(static_cast<float*>(a), elems);
    init_k<<<1024, 256>>>(static_cast<float*>(b), elems);
  }
  const float alpha = 1, beta = 0;
  cublasHandle_t h = detail::CublasHandle::get();
  auto run = [&] {
    TRM_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, type, n, b, type, n, &beta, c, CUDA_R_32F, n,
                                  compute, CUBLAS_GEMM_DEFAULT));
  };
  run();
  TRM_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> r;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now();
    run();
    TRM_CUDA_CHECK(cudaDeviceSynchronize());
    r.push_back(2.0 * n * double(n) * n / (now() - t0));
  }
  (void)cudaFree(a);
  (void)cudaFree(b);
  (void)cudaFree(c);
  std::sort(r.begin(), r.end());
  return r[r.size() / 2];
}
double bf16_rate() {
  static const double r = gemm_rate(CUDA_R_16BF, CUBLAS_COMPUTE_32F, 8192);
  return r;
}
double fp32_rate() {
  static const double r = gemm_rate(CUDA_R_32F, CUBLAS_COMPUTE_32F, 8192);
  return r;
}

void BM_gemm(benchmark::State& st, bool bf16) {
  for (auto _ : st) {
    const double rate = bf16 ? gemm_rate(CUDA_R_16BF, CUBLAS_COMPUTE_32F, 8192, 3) : gemm_rate(CUDA_R_32F, CUBLAS_COMPUTE_32F, 8192, 3);
    st.SetIterationTime(2.0 * 8192.0 * 8192.0 * 8192.0 / rate);
  }
  st.counters["FLOP/s"] = benchmark::Counter(2.0 * 8192.0 * 8192.0 * 8192.0, benchmark::Counter::kIsIterationInvariantRate);
}

template <class Cfg>
Batch random_batch(index_t b) {
  using traits = config_traits<Cfg>;
  Rng rng(1);
  std::vector<std::int32_t> inputs(std::size_t(b * traits::seq_len)), labels(inputs.size()), ids(std::size_t(b), 0);
  for (auto& v : inputs) v = 1 + std::int32_t(rng.below(traits::vocab - 1));
  for (auto& v : labels) v = 1 + std::int32_t(rng.below(traits::vocab - 1));
  return Batch::from_tokens(inputs, labels, ids, traits::seq_len);
}

void set_counters(benchmark::State& st, double flops_per_iter, double samples_per_iter) {
  st.counters["sample_steps/s"] = benchmark::Counter(samples_per_iter, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["FLOP/s"] = benchmark::Counter(flops_per_iter, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bf16_peak_TFLOP/s"] = bf16_rate() * 1e-12;
  st.counters["fp32_peak_TFLOP/s"] = fp32_rate() * 1e-12;
}

template <class Cfg, class B, bool Checked>
void BM_train(benchmark::State& st) {
  const index_t b = st.range(0);
  const double peak16 = bf16_rate(), peak32 = fp32_rate();
  Model<Cfg, B> model(ModelArgs<Cfg>{.puzzle_ids = 1});
  TrainOptions o;
  o.check_finite = Checked;
  Trainer trainer(model, AdamAtan2{.lr = 1e-4, .weight_decay = 1.0}, o);
  const Batch batch = random_batch<Cfg>(b);
  trainer.step(batch);  // warm-up: buffers are allocated by the first call
  B::synchronize();
  double seconds = 0;
  long calls = 0;
  for (auto _ : st) {
    const double t0 = now();
    trainer.step(batch);
    B::synchronize();
    const double dt = now() - t0;
    st.SetIterationTime(dt);
    seconds += dt;
    ++calls;
  }
  const double flops = Flops<Cfg>::train_call(model.recursion()) * double(b);
  set_counters(st, flops, double(b));
  if (calls > 0) {
    const double rate = flops * double(calls) / seconds;
    st.counters["pct_of_bf16"] = 100.0 * rate / peak16;
    st.counters["pct_of_fp32"] = 100.0 * rate / peak32;
  }
}

template <class Cfg, class B>
void BM_infer(benchmark::State& st) {
  const index_t b = st.range(0);
  const int steps = 16;
  const double peak16 = bf16_rate(), peak32 = fp32_rate();
  Model<Cfg, B> model(ModelArgs<Cfg>{.puzzle_ids = 1});
  Solver<Model<Cfg, B>> solver(model);
  const Batch batch = random_batch<Cfg>(b);
  solver.solve(batch, EarlyExit::off, 1);  // warm-up
  B::synchronize();
  double seconds = 0;
  long calls = 0;
  for (auto _ : st) {
    const double t0 = now();
    solver.solve(batch, EarlyExit::off, steps);
    B::synchronize();
    const double dt = now() - t0;
    st.SetIterationTime(dt);
    seconds += dt;
    ++calls;
  }
  const double flops = Flops<Cfg>::inference(model.recursion(), steps) * double(b);
  set_counters(st, flops, double(b) * steps);
  if (calls > 0) {
    const double rate = flops * double(calls) / seconds;
    st.counters["pct_of_bf16"] = 100.0 * rate / peak16;
    st.counters["pct_of_fp32"] = 100.0 * rate / peak32;
  }
}

void register_all() {
  benchmark::RegisterBenchmark("gemm/fp32", BM_gemm, false)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("gemm/bf16", BM_gemm, true)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
  auto add = [](const std::string& name, auto fn, std::vector<long> batches, int iters) {
    for (long b : batches)
      benchmark::RegisterBenchmark(name.c_str(), fn)->Arg(b)->ArgName("batch")->UseManualTime()->Iterations(iters)->Unit(
          benchmark::kMillisecond);
  };
  // Batch sizes: the reference's global batch 768 for Sudoku; 64 and 128 rows of 916 positions for
  // Maze/ARC (the official ARC run: 768 over 8 GPUs = 96 per GPU).
  add("train/mlp/cuda", BM_train<SudokuMlp, cuda, false>, {256, 768}, 5);
  add("train/mlp/cuda_bf16", BM_train<SudokuMlp, cuda_bf16, false>, {256, 768}, 5);
  add("train_checked/mlp/cuda_bf16", BM_train<SudokuMlp, cuda_bf16, true>, {768}, 3);
  add("train/att/cuda", BM_train<ArcAtt, cuda, false>, {64}, 3);
  add("train/att/cuda_bf16", BM_train<ArcAtt, cuda_bf16, false>, {64, 128}, 3);
  add("infer/mlp/cuda", BM_infer<SudokuMlp, cuda>, {768}, 2);
  add("infer/mlp/cuda_bf16", BM_infer<SudokuMlp, cuda_bf16>, {768}, 2);
  add("infer/att/cuda_bf16", BM_infer<ArcAtt, cuda_bf16>, {64}, 2);
}

}  // namespace trm_bench_gpu

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "bench_cuda: no CUDA device\n");
    return 77;
  }
  trm_bench_gpu::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
