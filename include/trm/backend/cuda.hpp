#pragma once
// trm::cuda: the CUDA backend. Device memory (space_allocator<device_space>), host <-> device copies
// of tensors, and every op of the op set documented on trm::reference (reference.hpp), with the same
// signatures and contracts, on views of device memory:
//  * gemm goes to cuBLAS (cublasSgemm / cublasDgemm, full fp32/fp64 math: no TF32);
//  * every other op is a plain CUDA kernel, written for correctness first: elementwise ops are
//    grid-stride loops, the row-wise ops (rmsnorm, softmax) run one block per row with a
//    shared-memory tree reduction, sum_rows one block per column, dot a fixed grid of blocks whose
//    partial sums are added on the host in a fixed order.
// Views may have any strides (like trm::reference), except gemm's operands, which need unit column
// stride and non-overlapping rows (a BLAS leading dimension), as on trm::cpu.
//
// Streams and synchronisation: every kernel, copy and cuBLAS call runs on the default stream, in
// issue order, so ops need no synchronisation between them. Ops return without waiting for the
// GPU, except where a result must come back to the host: dot (returns a double), and gather_rows /
// scatter_add_rows, which check their ids on the device and copy a flag back so that an
// out-of-range id throws trm::ValueError as in trm::reference. synchronize() waits for the GPU and
// reports any error of the work queued before it (an error in a kernel surfaces at the next call
// that synchronises).
//
// Determinism: results are bit-reproducible run to run, except scatter_add_rows, which adds rows
// that share an id with atomicAdd: the order of those additions, hence the rounding of the sum, can
// change from run to run (and differs from trm::reference's order of r).
//
// Errors: a failed CUDA or cuBLAS call throws std::runtime_error naming the call, the file and line
// and the CUDA error string; shape errors throw trm::ShapeError as on the other backends.
// Host threads: the ops may be called from one host thread at a time (the cuBLAS handle and the small
// scratch buffers are shared; the id checks and dot hold a mutex around their scratch buffer).
//
// Only translation units compiled by nvcc (.cu) can include this header: link them to trm::cuda.
#if !defined(__CUDACC__)
#error "trm/backend/cuda.hpp holds CUDA kernels: include it (or trm/cuda.hpp) from .cu files compiled by nvcc"
#endif

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/tensor.hpp"
#include "model_ops.hpp"
#include "ops.hpp"

namespace trm {

namespace detail {

[[noreturn]] inline void throw_cuda_error(const char* call, const char* file, int line, const std::string& what) {
  throw std::runtime_error(std::string("CUDA call ") + call + " failed at " + file + ":" + std::to_string(line) +
                           ": " + what);
}

inline void check_cuda(cudaError_t err, const char* call, const char* file, int line) {
  if (err == cudaSuccess) return;
  // A failed runtime call also records its error as the thread's "last error"; clear it (a no-op for
  // sticky errors, which keep the context unusable anyway) so that the next launch check does not
  // report this one again.
  (void)cudaGetLastError();
  throw_cuda_error(call, file, line, std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err));
}

inline void check_cublas(cublasStatus_t st, const char* call, const char* file, int line) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  const cudaError_t last = cudaGetLastError();
  std::string what = cublasGetStatusString(st);
  if (last != cudaSuccess) what += std::string(" (last CUDA error: ") + cudaGetErrorString(last) + ")";
  throw_cuda_error(call, file, line, what);
}

}  // namespace detail

}  // namespace trm

// Checks a CUDA runtime call; throws std::runtime_error naming the call, file:line and the error.
#define TRM_CUDA_CHECK(call) ::trm::detail::check_cuda((call), #call, __FILE__, __LINE__)
#define TRM_CUBLAS_CHECK(call) ::trm::detail::check_cublas((call), #call, __FILE__, __LINE__)
// After a kernel launch: reports launch errors (bad configuration, no device) without synchronising.
#define TRM_CUDA_CHECK_LAUNCH(kernel) ::trm::detail::check_cuda(cudaGetLastError(), "launch of " kernel, __FILE__, __LINE__)

namespace trm {

// ---------------------------------------------------------------------------------------------
// Device memory
// ---------------------------------------------------------------------------------------------
template <>
struct space_allocator<device_space> {
  // cudaMalloc returns 256-byte aligned memory.
  static constexpr std::size_t alignment = 256;
  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    TRM_CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
  }
  // noexcept (called from destructors): an error here belongs to earlier work and is reported by the
  // next call that checks, so it is not raised (nor cleared) here.
  static void deallocate(void* p) noexcept {
    if (p) (void)cudaFree(p);
  }
  // Device to device.
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes) TRM_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
  }
  static void zero(void* dst, std::size_t bytes) {
    if (bytes) TRM_CUDA_CHECK(cudaMemset(dst, 0, bytes));
  }
  // Host <-> device (synchronous with respect to the host for pageable host memory).
  static void copy_from_host(void* dst, const void* src, std::size_t bytes) {
    if (bytes) TRM_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
  }
  static void copy_to_host(void* dst, const void* src, std::size_t bytes) {
    if (bytes) TRM_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
  }
};

// ---------------------------------------------------------------------------------------------
// Host <-> device copies of tensors
// ---------------------------------------------------------------------------------------------
// A device copy of a host tensor (same shape).
template <class T, class Ext>
Tensor<T, Ext, device_space> to_device(const Tensor<T, Ext, host_space>& h) {
  Tensor<T, Ext, device_space> d(h.extents());
  space_allocator<device_space>::copy_from_host(d.data(), h.data(), h.bytes());
  return d;
}

// A host copy of a device tensor (same shape). Waits for the work queued before it.
template <class T, class Ext>
Tensor<T, Ext, host_space> to_host(const Tensor<T, Ext, device_space>& d) {
  Tensor<T, Ext, host_space> h(d.extents());
  space_allocator<device_space>::copy_to_host(h.data(), d.data(), d.bytes());
  return h;
}

// Into an existing tensor, resized to the source's shape (no allocation when it fits).
template <class T, class Ext>
void copy_to_device(const Tensor<T, Ext, host_space>& h, Tensor<T, Ext, device_space>& d) {
  d.resize(h.extents());
  space_allocator<device_space>::copy_from_host(d.data(), h.data(), h.bytes());
}
template <class T, class Ext>
void copy_to_host(const Tensor<T, Ext, device_space>& d, Tensor<T, Ext, host_space>& h) {
  h.resize(d.extents());
  space_allocator<device_space>::copy_to_host(h.data(), d.data(), d.bytes());
}

// Contiguous views of the same shape (a device view into a bigger tensor, say).
template <class T, class U, class Ext>
void copy_to_device(View<U, Ext, host_space> src, View<T, Ext, device_space> dst) {
  static_assert(std::is_same_v<std::remove_const_t<U>, T>, "copy_to_device: element types differ");
  if (src.shape() != dst.shape())
    throw ShapeError("copy_to_device: expected a destination of shape " + format_shape(src.shape()) + ", found " +
                     format_shape(dst.shape()));
  space_allocator<device_space>::copy_from_host(dst.data(), src.span().data(), dst.span().size() * sizeof(T));
}
template <class T, class U, class Ext>
void copy_to_host(View<U, Ext, device_space> src, View<T, Ext, host_space> dst) {
  static_assert(std::is_same_v<std::remove_const_t<U>, T>, "copy_to_host: element types differ");
  if (src.shape() != dst.shape())
    throw ShapeError("copy_to_host: expected a destination of shape " + format_shape(src.shape()) + ", found " +
                     format_shape(dst.shape()));
  space_allocator<device_space>::copy_to_host(dst.span().data(), src.span().data(), dst.span().size() * sizeof(T));
}

// ---------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------
namespace detail::cuda_kernels {

// A strided matrix as kernels see it.
template <class T>
struct Mat {
  T* p;
  index_t rows, cols, s0, s1;
  __device__ T& operator()(index_t i, index_t j) const { return p[i * s0 + j * s1]; }
};
template <class T>
Mat<T> mat(const MatrixView<T, device_space>& v) {
  return {v.data(), v.extent(0), v.extent(1), v.stride(0), v.stride(1)};
}
template <class T>
struct Vec {
  T* p;
  index_t n, s;
  __device__ T& operator()(index_t i) const { return p[i * s]; }
};
template <class T>
Vec<T> vec(const VectorView<T, device_space>& v) {
  return {v.data(), v.extent(0), v.stride(0)};
}
template <class T>
struct Ten3 {
  T* p;
  index_t d0, d1, d2, s0, s1, s2;
  __device__ T& operator()(index_t a, index_t b, index_t c) const { return p[a * s0 + b * s1 + c * s2]; }
};
template <class T>
Ten3<T> ten3(const View<T, DynExtents<3>, device_space>& v) {
  return {v.data(), v.extent(0), v.extent(1), v.extent(2), v.stride(0), v.stride(1), v.stride(2)};
}

constexpr int kThreads = 256;       // elementwise kernels
constexpr int kMaxReduceThreads = 256;  // row/column reductions (a power of two)
constexpr index_t kMaxBlocks = 65535;   // grid-stride loops cover the rest

inline unsigned grid_for(index_t n) {
  return static_cast<unsigned>(std::min<index_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
}
inline unsigned blocks_for_rows(index_t rows) { return static_cast<unsigned>(std::min<index_t>(rows, kMaxBlocks)); }
// Threads for a reduction over n elements: a power of two in [32, 256].
inline unsigned reduce_threads(index_t n) {
  unsigned t = 32;
  while (t < static_cast<unsigned>(kMaxReduceThreads) && static_cast<index_t>(t) < n) t *= 2;
  return t;
}

#define TRM_GRID_STRIDE(i, n) \
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += static_cast<index_t>(gridDim.x) * blockDim.x)

template <class T>
__device__ T dev_exp(T x) {
  if constexpr (std::is_same_v<T, float>)
    return expf(x);
  else
    return exp(x);
}

template <class A>
struct Sum {
  __device__ A operator()(A a, A b) const { return a + b; }
};
template <class A>
struct Max {
  __device__ A operator()(A a, A b) const { return a < b ? b : a; }  // std::max(a, b)
};

// Tree reduction in shared memory over the block (blockDim.x a power of two <= kMaxReduceThreads).
// Every thread gets the result; the buffer may be reused right after.
template <class A, class Op>
__device__ A block_reduce(A v, Op op) {
  __shared__ A buf[kMaxReduceThreads];
  const unsigned t = threadIdx.x;
  buf[t] = v;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) buf[t] = op(buf[t], buf[t + s]);
    __syncthreads();
  }
  A r = buf[0];
  __syncthreads();
  return r;
}

template <class T>
__global__ void copy_k(Mat<const T> x, Mat<T> y) {
  TRM_GRID_STRIDE(e, x.rows * x.cols) {
    index_t i = e / x.cols, j = e % x.cols;
    y(i, j) = x(i, j);
  }
}
template <class T>
__global__ void fill_k(Mat<T> y, T v) {
  TRM_GRID_STRIDE(e, y.rows * y.cols) { y(e / y.cols, e % y.cols) = v; }
}
template <class T>
__global__ void scale_k(Mat<T> y, T a) {
  TRM_GRID_STRIDE(e, y.rows * y.cols) { y(e / y.cols, e % y.cols) *= a; }
}
template <class T>
__global__ void axpy_k(T a, Mat<const T> x, Mat<T> y) {
  TRM_GRID_STRIDE(e, x.rows * x.cols) {
    index_t i = e / x.cols, j = e % x.cols;
    y(i, j) += a * x(i, j);
  }
}
template <class T>
__global__ void add_k(Mat<const T> a, Mat<const T> b, Mat<T> out) {
  TRM_GRID_STRIDE(e, a.rows * a.cols) {
    index_t i = e / a.cols, j = e % a.cols;
    out(i, j) = a(i, j) + b(i, j);
  }
}
// Over the elements of out [B, N, M]: out(b, j, i) (+)= in(b, i, j).
template <class T>
__global__ void transpose_batched_k(Ten3<const T> in, Ten3<T> out, bool accumulate) {
  const index_t nm = out.d1 * out.d2;
  TRM_GRID_STRIDE(e, out.d0 * nm) {
    index_t b = e / nm, r = e % nm, j = r / out.d2, i = r % out.d2;
    if (accumulate)
      out(b, j, i) += in(b, i, j);
    else
      out(b, j, i) = in(b, i, j);
  }
}
template <class T>
__global__ void swiglu_forward_k(Mat<const T> gu, Mat<T> out) {
  const index_t inter = out.cols;
  TRM_GRID_STRIDE(e, out.rows * inter) {
    index_t r = e / inter, j = e % inter;
    T g = gu(r, j), u = gu(r, j + inter);
    out(r, j) = g / (T(1) + dev_exp(-g)) * u;
  }
}
template <class T>
__global__ void swiglu_backward_k(Mat<const T> gu, Mat<const T> dout, Mat<T> dgu) {
  const index_t inter = dout.cols;
  TRM_GRID_STRIDE(e, dout.rows * inter) {
    index_t r = e / inter, j = e % inter;
    T g = gu(r, j), u = gu(r, j + inter), d = dout(r, j);
    T s = T(1) / (T(1) + dev_exp(-g));
    dgu(r, j) = d * u * s * (T(1) + g * (T(1) - s));
    dgu(r, j + inter) = d * g * s;
  }
}
template <class T>
__global__ void rope_k(Mat<T> x, Mat<const T> c, Mat<const T> s, bool transpose) {
  const index_t h = x.cols / 2;
  TRM_GRID_STRIDE(e, x.rows * h) {
    index_t r = e / h, i = e % h, p = r % c.rows;  // k sequences stacked: position r mod seq
    T a = x(r, i), b = x(r, i + h);
    if (!transpose) {
      x(r, i) = a * c(p, i) - b * s(p, i);
      x(r, i + h) = b * c(p, i + h) + a * s(p, i + h);
    } else {
      x(r, i) = a * c(p, i) + b * s(p, i + h);
      x(r, i + h) = b * c(p, i + h) - a * s(p, i);
    }
  }
}
template <class T>
__global__ void gather_rows_k(Mat<const T> table, Vec<const std::int32_t> ids, T scale, Mat<T> out) {
  TRM_GRID_STRIDE(e, out.rows * out.cols) {
    index_t r = e / out.cols, j = e % out.cols;
    out(r, j) = scale * table(ids(r), j);
  }
}
template <class T>
__global__ void scatter_add_rows_k(Mat<const T> dout, Vec<const std::int32_t> ids, T scale, Mat<T> dtable) {
  TRM_GRID_STRIDE(e, dout.rows * dout.cols) {
    index_t r = e / dout.cols, j = e % dout.cols;
    atomicAdd(&dtable(ids(r), j), scale * dout(r, j));
  }
}
// One block per row (grid-stride over rows); statistics in double as in trm::reference.
template <class T>
__global__ void rmsnorm_forward_k(Mat<const T> x, Mat<T> y, Vec<T> rstd, T eps) {
  for (index_t r = blockIdx.x; r < x.rows; r += gridDim.x) {
    double ss = 0;
    for (index_t j = threadIdx.x; j < x.cols; j += blockDim.x) ss += double(x(r, j)) * double(x(r, j));
    ss = block_reduce(ss, Sum<double>{});
    const T rs = T(1.0 / sqrt(ss / double(x.cols) + double(eps)));
    if (threadIdx.x == 0) rstd(r) = rs;
    // Each thread rewrites only the elements it read, after the reduction: y may alias x.
    for (index_t j = threadIdx.x; j < x.cols; j += blockDim.x) y(r, j) = x(r, j) * rs;
  }
}
template <class T>
__global__ void rmsnorm_backward_k(Mat<const T> y, Vec<const T> rstd, Mat<const T> dy, Mat<T> dx, bool accumulate) {
  for (index_t r = blockIdx.x; r < y.rows; r += gridDim.x) {
    double dot = 0;
    for (index_t j = threadIdx.x; j < y.cols; j += blockDim.x) dot += double(dy(r, j)) * double(y(r, j));
    dot = block_reduce(dot, Sum<double>{});
    const T mean = T(dot / double(y.cols));
    const T rs = rstd(r);
    for (index_t j = threadIdx.x; j < y.cols; j += blockDim.x) {
      T g = rs * (dy(r, j) - y(r, j) * mean);
      dx(r, j) = accumulate ? dx(r, j) + g : g;
    }
  }
}
// Numerically stable: the row's maximum of scale * s is subtracted before exp.
template <class T>
__global__ void softmax_rows_k(Mat<T> s, T scale) {
  for (index_t r = blockIdx.x; r < s.rows; r += gridDim.x) {
    T mx = T(-INFINITY);
    for (index_t j = threadIdx.x; j < s.cols; j += blockDim.x) mx = Max<T>{}(mx, scale * s(r, j));
    mx = block_reduce(mx, Max<T>{});
    T sum = 0;
    for (index_t j = threadIdx.x; j < s.cols; j += blockDim.x) {
      T e = dev_exp(scale * s(r, j) - mx);
      s(r, j) = e;
      sum += e;
    }
    sum = block_reduce(sum, Sum<T>{});
    for (index_t j = threadIdx.x; j < s.cols; j += blockDim.x) s(r, j) /= sum;
  }
}
template <class T>
__global__ void softmax_rows_backward_k(Mat<const T> p, Mat<const T> dp, Mat<T> ds, T scale) {
  for (index_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    T dot = 0;
    for (index_t j = threadIdx.x; j < p.cols; j += blockDim.x) dot += dp(r, j) * p(r, j);
    dot = block_reduce(dot, Sum<T>{});
    // ds may alias dp: each thread rewrites only the elements it read, after the reduction.
    for (index_t j = threadIdx.x; j < p.cols; j += blockDim.x) ds(r, j) = scale * p(r, j) * (dp(r, j) - dot);
  }
}
// One block per column (grid-stride over columns).
template <class T>
__global__ void sum_rows_k(Mat<const T> x, Vec<T> out, bool accumulate) {
  for (index_t j = blockIdx.x; j < x.cols; j += gridDim.x) {
    T acc = 0;
    for (index_t r = threadIdx.x; r < x.rows; r += blockDim.x) acc += x(r, j);
    acc = block_reduce(acc, Sum<T>{});
    if (threadIdx.x == 0) out(j) = accumulate ? out(j) + acc : acc;
  }
}
// partial[blockIdx.x] = this block's share of sum a * b, in double.
template <class T>
__global__ void dot_k(Mat<const T> a, Mat<const T> b, double* partial) {
  double acc = 0;
  TRM_GRID_STRIDE(e, a.rows * a.cols) {
    index_t i = e / a.cols, j = e % a.cols;
    acc += double(a(i, j)) * double(b(i, j));
  }
  acc = block_reduce(acc, Sum<double>{});
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// ---- model-level ops (backend/model_ops.hpp) ------------------------------------------------
// Products and sums rounded one at a time, as the host computes them (nvcc would contract a * b + c
// into one fused multiply-add, which rounds once): the optimiser and table updates then give the
// host's bits.
__device__ inline float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ inline float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ inline double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ inline float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ inline double sub_rn(double a, double b) { return __dsub_rn(a, b); }

// flag = the smallest flat index e = r * cols + c whose id is outside [0, limit) (flag starts at INT_MAX).
template <class I>
__global__ void check_id_matrix_k(Mat<const I> ids, index_t limit, int* flag) {
  TRM_GRID_STRIDE(e, ids.rows * ids.cols) {
    I id = ids(e / ids.cols, e % ids.cols);
    if (id < 0 || static_cast<index_t>(id) >= limit) atomicMin(flag, static_cast<int>(e));
  }
}
template <class T>
__global__ void gather_rows3_k(Mat<const T> table, Mat<const std::int32_t> ids, T scale, Ten3<T> out) {
  const index_t per_b = out.d1 * out.d2;
  TRM_GRID_STRIDE(e, out.d0 * per_b) {
    index_t b = e / per_b, r = e % per_b, t = r / out.d2, j = r % out.d2;
    out(b, t, j) = scale * table(ids(b, t), j);
  }
}
// Pass 1 of the deterministic scatter: block c sums, in position order, the rows of positions
// [c * chunk, (c + 1) * chunk) per id into shared memory (vocab x width values), then writes them
// to partial[c]. Pass 2 adds the chunks in order. No atomics: the same bits every run.
template <class T>
__global__ void scatter3_partial_k(Ten3<const T> dout, Mat<const std::int32_t> ids, index_t vocab, index_t chunk, T* partial) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* acc = reinterpret_cast<T*>(smem_raw);
  const index_t width = dout.d2, positions = dout.d0 * dout.d1;
  for (index_t i = threadIdx.x; i < vocab * width; i += blockDim.x) acc[i] = T(0);
  __syncthreads();
  const index_t p0 = static_cast<index_t>(blockIdx.x) * chunk, p1 = p0 + chunk < positions ? p0 + chunk : positions;
  for (index_t p = p0; p < p1; ++p) {
    const index_t b = p / dout.d1, t = p % dout.d1;
    const index_t id = ids(b, t);
    for (index_t j = threadIdx.x; j < width; j += blockDim.x) acc[id * width + j] += dout(b, t, j);
  }
  __syncthreads();
  T* out = partial + static_cast<index_t>(blockIdx.x) * vocab * width;
  for (index_t i = threadIdx.x; i < vocab * width; i += blockDim.x) out[i] = acc[i];
}
template <class T>
__global__ void scatter3_reduce_k(const T* partial, index_t chunks, T scale, Mat<T> dtable) {
  const index_t n = dtable.rows * dtable.cols;
  TRM_GRID_STRIDE(e, n) {
    T sum = 0;
    for (index_t c = 0; c < chunks; ++c) sum += partial[c * n + e];
    dtable(e / dtable.cols, e % dtable.cols) += scale * sum;
  }
}
template <class T>
__global__ void scatter_add_rows3_atomic_k(Ten3<const T> dout, Mat<const std::int32_t> ids, T scale, Mat<T> dtable) {
  const index_t per_b = dout.d1 * dout.d2;
  TRM_GRID_STRIDE(e, dout.d0 * per_b) {
    index_t b = e / per_b, r = e % per_b, t = r / dout.d2, j = r % dout.d2;
    atomicAdd(&dtable(ids(b, t), j), scale * dout(b, t, j));
  }
}
template <class T>
__global__ void broadcast_rows_k(Mat<const T> row, Mat<T> out) {
  TRM_GRID_STRIDE(e, out.rows * out.cols) { out(e / out.cols, e % out.cols) = row(0, e % out.cols); }
}
// One thread per position; the first index of the largest value (a NaN is never larger), as the
// host loop.
template <class T>
__device__ index_t argmax_at(const Ten3<const T>& x, index_t b, index_t t) {
  index_t best = 0;
  for (index_t k = 1; k < x.d2; ++k)
    if (x(b, t, k) > x(b, t, best)) best = k;
  return best;
}
template <class T>
__global__ void argmax_rows_k(Ten3<const T> logits, Mat<std::int32_t> out) {
  TRM_GRID_STRIDE(e, logits.d0 * logits.d1) {
    index_t b = e / logits.d1, t = e % logits.d1;
    out(b, t) = static_cast<std::int32_t>(argmax_at(logits, b, t));
  }
}
// Token loss, pass 1: per row, the supervised count; the smallest flat index of a label outside
// [0, V) that is not the ignore label goes to *bad (starts at INT_MAX).
// (Kernels are templates, as every kernel of this header-only backend: a non-template __global__
// function defined in a header would be defined again in every translation unit.)
template <class I>
__global__ void token_count_k(Mat<const I> labels, index_t vocab, I* count, int* bad) {
  for (index_t r = blockIdx.x; r < labels.rows; r += gridDim.x) {
    int n = 0;
    for (index_t t = threadIdx.x; t < labels.cols; t += blockDim.x) {
      const I y = labels(r, t);
      if (y != -100) {
        ++n;
        if (y < 0 || y >= vocab) atomicMin(bad, static_cast<int>(r * labels.cols + t));
      }
    }
    n = block_reduce(n, Sum<int>{});
    if (threadIdx.x == 0) count[r] = n;
  }
}
// Pass 2: one thread per position: its loss term (double, as the host), whether its argmax is the
// label, and its logits' gradient grad_scale * d/dl / max(count, 1) (zero for ignored positions).
template <class T>
__global__ void token_terms_k(int stablemax, Ten3<const T> logits, Mat<const std::int32_t> labels, const std::int32_t* count,
                              Ten3<T> dlogits, bool want_grad, double grad_scale, double* term, std::int32_t* correct) {
  const index_t L = logits.d1, V = logits.d2;
  TRM_GRID_STRIDE(e, logits.d0 * L) {
    const index_t r = e / L, t = e % L;
    const std::int32_t y = labels(r, t);
    term[e] = 0;
    correct[e] = 1;
    if (y == -100 || y < 0 || y >= V) {
      if (want_grad)
        for (index_t k = 0; k < V; ++k) dlogits(r, t, k) = T(0);
      continue;
    }
    const double div = count[r] > 1 ? double(count[r]) : 1.0;
    correct[e] = argmax_at(logits, r, t) == y;
    double sum = 0;
    if (stablemax) {
      double sy = 0;
      for (index_t k = 0; k < V; ++k) {
        const double v = double(logits(r, t, k));
        const double sk = v >= 0 ? v + 1.0 : 1.0 / (1.0 - v + 1e-30);
        sum += sk;
        if (k == y) sy = sk;
      }
      term[e] = -log(sy / sum);
      if (want_grad)
        for (index_t k = 0; k < V; ++k) {
          const double v = double(logits(r, t, k));
          const double sk = v >= 0 ? v + 1.0 : 1.0 / (1.0 - v + 1e-30);
          const double dk = v >= 0 ? 1.0 : sk * sk;
          const double gk = dk / sum - (k == y ? dk / sk : 0.0);
          dlogits(r, t, k) = T(grad_scale * gk / div);
        }
    } else {
      double mx = -INFINITY;
      for (index_t k = 0; k < V; ++k) mx = fmax(mx, double(logits(r, t, k)));
      for (index_t k = 0; k < V; ++k) sum += exp(double(logits(r, t, k)) - mx);
      term[e] = -(double(logits(r, t, y)) - mx - log(sum));
      if (want_grad)
        for (index_t k = 0; k < V; ++k)
          dlogits(r, t, k) = T(grad_scale * (exp(double(logits(r, t, k)) - mx) / sum - (k == y ? 1.0 : 0.0)) / div);
    }
  }
}
// Pass 3: one thread per row sums its terms and correct flags in position order (as the host).
struct TokenRow {
  double loss;         // sum of the row's terms / max(count, 1)
  std::int32_t count;  // supervised positions
  std::int32_t correct;
};
template <class I>
__global__ void token_rows_k(index_t rows, index_t L, const double* term, const I* correct, const I* count, TokenRow* out) {
  TRM_GRID_STRIDE(r, rows) {
    double loss = 0;
    std::int32_t ok = 0;
    for (index_t t = 0; t < L; ++t) {
      loss += term[r * L + t];
      ok += correct[r * L + t];
    }
    const double div = count[r] > 1 ? double(count[r]) : 1.0;
    // Ignored positions counted as correct above; the row's correct tokens are the supervised ones.
    out[r] = TokenRow{loss / div, count[r], static_cast<std::int32_t>(ok - (L - count[r]))};
  }
}
template <class T>
__global__ void adam_atan2_k(index_t n, T* p, const T* g, T* m, T* v, AdamAtan2Step<T> k) {
  TRM_GRID_STRIDE(i, n) {
    const T pi = mul_rn(p[i], k.decay);
    const T gi = g[i];
    const T mi = add_rn(m[i], mul_rn(k.a1, sub_rn(gi, m[i])));
    const T vi = add_rn(v[i], mul_rn(k.a2, sub_rn(mul_rn(gi, gi), v[i])));
    m[i] = mi;
    v[i] = vi;
    if constexpr (std::is_same_v<T, float>)
      p[i] = sub_rn(pi, mul_rn(k.step, detail::atan2_nonneg_x(mi, sqrtf(vi) / k.inv_sqrt_bc2)));
    else
      p[i] = sub_rn(pi, mul_rn(k.step, atan2(mi, sqrt(vi) / k.inv_sqrt_bc2)));
  }
}
template <class T>
__global__ void adamw_k(index_t n, T* p, const T* g, T* m, T* v, AdamWStep<T> k) {
  TRM_GRID_STRIDE(i, n) {
    const T pi = mul_rn(p[i], k.decay);
    const T gi = g[i];
    const T mi = add_rn(mul_rn(k.b1, m[i]), mul_rn(sub_rn(T(1), k.b1), gi));
    const T vi = add_rn(mul_rn(k.b2, v[i]), mul_rn(mul_rn(sub_rn(T(1), k.b2), gi), gi));
    m[i] = mi;
    v[i] = vi;
    p[i] = sub_rn(pi, mul_rn(k.step, mi) / add_rn(sqrt(vi) / k.sqrt_bc2, k.eps));
  }
}
template <class T>
__global__ void axpby_k(index_t n, T a, const T* x, T b, T* y) {
  TRM_GRID_STRIDE(i, n) { y[i] = add_rn(mul_rn(a, x[i]), mul_rn(b, y[i])); }
}
// One thread per (segment, column): the segment's rows summed in their order, then the update.
template <class T>
__global__ void sign_sgd_rows_k(Mat<T> table, Mat<const T> row_grads, Vec<const std::int32_t> seg_ids,
                                Vec<const std::int32_t> offsets, Vec<const std::int32_t> rows, T decay, T lr) {
  const index_t d = table.cols;
  TRM_GRID_STRIDE(e, seg_ids.n * d) {
    const index_t u = e / d, j = e % d;
    T g = 0;
    for (std::int32_t i = offsets(u); i < offsets(u + 1); ++i) g += row_grads(rows(i), j);
    const T sign = g > T(0) ? T(1) : (g < T(0) ? T(-1) : T(0));
    T& w = table(seg_ids(u), j);
    w = sub_rn(mul_rn(w, decay), mul_rn(lr, sign));
  }
}
// *first = the smallest flat index of a NaN or infinity (starts at LLONG_MAX).
template <class T>
__global__ void first_non_finite_k(Mat<const T> x, unsigned long long* first) {
  TRM_GRID_STRIDE(e, x.rows * x.cols) {
    if (!isfinite(x(e / x.cols, e % x.cols))) atomicMin(first, static_cast<unsigned long long>(e));
  }
}

#undef TRM_GRID_STRIDE

}  // namespace detail::cuda_kernels

namespace detail {

// The backend's cuBLAS handle: created on first use, on the default stream, destroyed at exit.
class CublasHandle {
 public:
  static cublasHandle_t get() {
    static CublasHandle h;
    return h.handle_;
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;

 private:
  CublasHandle() {
    TRM_CUBLAS_CHECK(cublasCreate(&handle_));
    TRM_CUBLAS_CHECK(cublasSetStream(handle_, 0));
    // Full-precision fp32: never TF32 tensor cores (results must match trm::reference's tolerances).
    TRM_CUBLAS_CHECK(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));
  }
  ~CublasHandle() { (void)cublasDestroy(handle_); }
  cublasHandle_t handle_ = nullptr;
};

// Small device scratch buffers (id-check flag, dot partial sums), allocated on first use.
struct CudaScratch {
  static constexpr int dot_blocks = 256;
  int* flag = nullptr;
  double* partial = nullptr;
  unsigned long long* index = nullptr;  // first_non_finite's result
  std::mutex mutex;
  // A device buffer of at least `bytes`, grown (never shrunk) on demand: the model-level ops'
  // scratch (token-loss terms, scatter partials), so that a training call allocates nothing after
  // the first. Valid until the next call of workspace(); call with the mutex held.
  void* workspace(std::size_t bytes) {
    if (bytes > workspace_bytes_) {
      void* p = nullptr;
      TRM_CUDA_CHECK(cudaMalloc(&p, bytes));
      if (workspace_) (void)cudaFree(workspace_);
      workspace_ = p;
      workspace_bytes_ = bytes;
    }
    return workspace_;
  }
  static CudaScratch& get() {
    static CudaScratch s;
    return s;
  }
  CudaScratch(const CudaScratch&) = delete;
  CudaScratch& operator=(const CudaScratch&) = delete;

 private:
  CudaScratch() {
    TRM_CUDA_CHECK(cudaMalloc(&flag, sizeof(int)));
    TRM_CUDA_CHECK(cudaMalloc(&partial, dot_blocks * sizeof(double)));
    TRM_CUDA_CHECK(cudaMalloc(&index, sizeof(unsigned long long)));
  }
  ~CudaScratch() {
    (void)cudaFree(flag);
    (void)cudaFree(partial);
    (void)cudaFree(index);
    if (workspace_) (void)cudaFree(workspace_);
  }
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
};

// Checks ids [B, L] on the device (the batch's tokens; a vector of ids is a one-column matrix):
// throws ValueError for the first one outside [0, limit), named by [b, t], or by its row for one
// column (the reference's message). Waits for the GPU (the flag is copied back).
inline void cuda_check_id_matrix(const char* op, CMatrixView<std::int32_t, device_space> ids, index_t limit) {
  using namespace cuda_kernels;
  const index_t n = ids.size();
  if (n == 0) return;
  if (n >= INT_MAX)
    throw ShapeError(std::string(op) + ": at most " + std::to_string(INT_MAX - 1) + " ids, found " + std::to_string(n));
  auto& scratch = CudaScratch::get();
  std::lock_guard<std::mutex> lock(scratch.mutex);
  const int init = INT_MAX;
  TRM_CUDA_CHECK(cudaMemcpy(scratch.flag, &init, sizeof(int), cudaMemcpyHostToDevice));
  check_id_matrix_k<std::int32_t><<<grid_for(n), kThreads>>>(mat(ids), limit, scratch.flag);
  TRM_CUDA_CHECK_LAUNCH("check_id_matrix_k");
  int bad = INT_MAX;
  TRM_CUDA_CHECK(cudaMemcpy(&bad, scratch.flag, sizeof(int), cudaMemcpyDeviceToHost));
  if (bad == INT_MAX) return;
  const index_t b = bad / ids.extent(1), t = bad % ids.extent(1);
  std::int32_t id = 0;
  TRM_CUDA_CHECK(cudaMemcpy(&id, ids.data() + b * ids.stride(0) + t * ids.stride(1), sizeof(id), cudaMemcpyDeviceToHost));
  const std::string where = ids.extent(1) == 1 ? "row " + std::to_string(b) : "[" + std::to_string(b) + ", " + std::to_string(t) + "]";
  throw ValueError(std::string(op) + ": id " + std::to_string(id) + " at " + where + " is out of range [0, " +
                   std::to_string(limit) + ")");
}
inline void cuda_check_ids(const char* op, CVectorView<std::int32_t, device_space> ids, index_t limit) {
  cuda_check_id_matrix(op, CMatrixView<std::int32_t, device_space>(ids.data(), DynExtents<2>{ids.extent(0), 1}, {ids.stride(0), 1}),
                       limit);
}

template <class T>
void cuda_check_flat(const char* op, const char* name, const MatrixView<const T, device_space>& a, index_t n) {
  if (!a.is_contiguous() || a.size() != n)
    throw ShapeError(std::string(op) + ": " + name + " must be contiguous with " + std::to_string(n) + " elements, found shape " +
                     format_shape(a.shape()));
}

// gemm operands: unit column stride (checked by check_gemm), rows that do not overlap, int sizes.
template <class T>
int cublas_ld(const char* name, const MatrixView<T, device_space>& v) {
  if (v.extent(0) > 1 && v.stride(0) < v.extent(1))
    throw ShapeError(std::string("cuda gemm: ") + name + ": the matrix view of shape " + format_shape(v.shape()) +
                     " has strides " + format_shape(v.strides()) + "; rows must not overlap (row stride >= width)");
  const index_t ld = std::max<index_t>(v.extent(0) > 1 ? v.stride(0) : v.extent(1), std::max<index_t>(v.extent(1), 1));
  if (ld > INT_MAX || v.extent(0) > INT_MAX || v.extent(1) > INT_MAX)
    throw ShapeError(std::string("cuda gemm: ") + name + ": sizes and strides must fit in int, found shape " +
                     format_shape(v.shape()) + " and strides " + format_shape(v.strides()));
  return static_cast<int>(ld);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------------
struct cuda {
  using memory_space = device_space;
  static constexpr const char* name = "cuda";

  template <class T>
  using M = MatrixView<T, device_space>;
  template <class T>
  using CM = CMatrixView<T, device_space>;

  // The GPU sets the parallelism: these exist for the Backend interface only.
  static void set_num_threads(int) {}
  static int num_threads() { return 1; }

  // Waits for all queued work; throws if any of it failed.
  static void synchronize() {
    TRM_CUDA_CHECK(cudaDeviceSynchronize());
    TRM_CUDA_CHECK(cudaGetLastError());
  }

  // C = alpha * op(A) * op(B) + beta * C; beta == 0 never reads C. Row-major views are column-major
  // matrices transposed, so cuBLAS computes C^T = alpha * op(B)^T op(A)^T + beta * C^T, with each
  // view's row stride as its leading dimension.
  template <class T>
  static void gemm(Trans ta, Trans tb, T alpha, CM<T> a, CM<T> b, T beta, M<T> c) {
    gemm_with<T>(CUBLAS_COMPUTE_32F, ta, tb, alpha, a, b, beta, c);
  }
  // count GEMMs in one cuBLAS call (strided batched): X_i = X's view shifted by i * stride_x.
  template <class T>
  static void gemm_batched(Trans ta, Trans tb, T alpha, CM<T> a, index_t stride_a, CM<T> b, index_t stride_b, T beta, M<T> c,
                           index_t stride_c, index_t count) {
    gemm_batched_with<T>(CUBLAS_COMPUTE_32F, ta, tb, alpha, a, stride_a, b, stride_b, beta, c, stride_c, count);
  }

 protected:
  template <class T>
  static void gemm_batched_with(cublasComputeType_t compute, Trans ta, Trans tb, T alpha, CM<T> a, index_t stride_a, CM<T> b,
                                index_t stride_b, T beta, M<T> c, index_t stride_c, index_t count) {
    static_assert(Scalar<T>, "cuda::gemm_batched: float or double");
    detail::check_gemm(ta, tb, a, b, c);
    if (count < 0 || count > INT_MAX) throw ShapeError("cuda gemm_batched: expected 0 <= count < 2^31, found " + std::to_string(count));
    const int lda = detail::cublas_ld("A", a), ldb = detail::cublas_ld("B", b), ldc = detail::cublas_ld("C", c);
    const index_t m = c.extent(0), n = c.extent(1);
    const index_t k = ta == Trans::N ? a.extent(1) : a.extent(0);
    if (m == 0 || n == 0 || count == 0) return;
    if (k == 0) {
      for (index_t i = 0; i < count; ++i) {
        M<T> ci(c.data() + i * stride_c, c.extents(), c.strides());
        if (beta == T(0))
          fill(ci, T(0));
        else
          scale(ci, beta);
      }
      return;
    }
    const cublasOperation_t opa = ta == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T;
    const cublasOperation_t opb = tb == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T;
    cublasHandle_t h = detail::CublasHandle::get();
    if constexpr (std::is_same_v<T, float>) {
      if (compute == CUBLAS_COMPUTE_32F)
        TRM_CUBLAS_CHECK(cublasSgemmStridedBatched(h, opb, opa, int(n), int(m), int(k), &alpha, b.data(), ldb, stride_b, a.data(),
                                                   lda, stride_a, &beta, c.data(), ldc, stride_c, int(count)));
      else
        TRM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, opb, opa, int(n), int(m), int(k), &alpha, b.data(), CUDA_R_32F, ldb,
                                                    stride_b, a.data(), CUDA_R_32F, lda, stride_a, &beta, c.data(), CUDA_R_32F,
                                                    ldc, stride_c, int(count), compute, CUBLAS_GEMM_DEFAULT));
    } else {
      TRM_CUBLAS_CHECK(cublasDgemmStridedBatched(h, opb, opa, int(n), int(m), int(k), &alpha, b.data(), ldb, stride_b, a.data(),
                                                 lda, stride_a, &beta, c.data(), ldc, stride_c, int(count)));
    }
  }

  // float GEMMs with cuBLAS's compute type `compute` (CUBLAS_COMPUTE_32F: full fp32, what trm::cuda
  // uses; the FAST_16BF / FAST_TF32 types of cuda_bf16 / cuda_tf32: tensor cores, fp32 accumulation).
  template <class T>
  static void gemm_with(cublasComputeType_t compute, Trans ta, Trans tb, T alpha, CM<T> a, CM<T> b, T beta, M<T> c) {
    static_assert(Scalar<T>, "cuda::gemm: float or double");
    detail::check_gemm(ta, tb, a, b, c);
    const int lda = detail::cublas_ld("A", a), ldb = detail::cublas_ld("B", b), ldc = detail::cublas_ld("C", c);
    const index_t m = c.extent(0), n = c.extent(1);
    const index_t k = ta == Trans::N ? a.extent(1) : a.extent(0);
    if (m == 0 || n == 0) return;
    if (k == 0) {  // op(A) op(B) is zero
      if (beta == T(0))
        fill(c, T(0));
      else
        scale(c, beta);
      return;
    }
    const cublasOperation_t opa = ta == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T;
    const cublasOperation_t opb = tb == Trans::N ? CUBLAS_OP_N : CUBLAS_OP_T;
    cublasHandle_t h = detail::CublasHandle::get();
    if constexpr (std::is_same_v<T, float>) {
      if (compute == CUBLAS_COMPUTE_32F)
        TRM_CUBLAS_CHECK(cublasSgemm(h, opb, opa, int(n), int(m), int(k), &alpha, b.data(), ldb, a.data(), lda, &beta,
                                     c.data(), ldc));
      else
        TRM_CUBLAS_CHECK(cublasGemmEx(h, opb, opa, int(n), int(m), int(k), &alpha, b.data(), CUDA_R_32F, ldb, a.data(),
                                      CUDA_R_32F, lda, &beta, c.data(), CUDA_R_32F, ldc, compute, CUBLAS_GEMM_DEFAULT));
    } else {
      TRM_CUBLAS_CHECK(cublasDgemm(h, opb, opa, int(n), int(m), int(k), &alpha, b.data(), ldb, a.data(), lda, &beta,
                                   c.data(), ldc));
    }
  }

 public:
  template <class T>
  static void copy(CM<T> x, M<T> y) {
    using namespace detail::cuda_kernels;
    detail::check_same_shape("copy", "x", x, "y", y);
    if (x.empty()) return;
    copy_k<T><<<grid_for(x.size()), kThreads>>>(mat(x), mat(y));
    TRM_CUDA_CHECK_LAUNCH("copy_k");
  }

  template <class T>
  static void fill(M<T> y, T value) {
    using namespace detail::cuda_kernels;
    if (y.empty()) return;
    fill_k<T><<<grid_for(y.size()), kThreads>>>(mat(y), value);
    TRM_CUDA_CHECK_LAUNCH("fill_k");
  }

  // y *= alpha
  template <class T>
  static void scale(M<T> y, T alpha) {
    using namespace detail::cuda_kernels;
    if (y.empty()) return;
    scale_k<T><<<grid_for(y.size()), kThreads>>>(mat(y), alpha);
    TRM_CUDA_CHECK_LAUNCH("scale_k");
  }

  // y += alpha * x
  template <class T>
  static void axpy(T alpha, CM<T> x, M<T> y) {
    using namespace detail::cuda_kernels;
    detail::check_same_shape("axpy", "x", x, "y", y);
    if (x.empty()) return;
    axpy_k<T><<<grid_for(x.size()), kThreads>>>(alpha, mat(x), mat(y));
    TRM_CUDA_CHECK_LAUNCH("axpy_k");
  }

  // out = a + b (out may alias a or b)
  template <class T>
  static void add(CM<T> a, CM<T> b, M<T> out) {
    using namespace detail::cuda_kernels;
    detail::check_same_shape("add", "a", a, "b", b);
    detail::check_same_shape("add", "a", a, "out", out);
    if (a.empty()) return;
    add_k<T><<<grid_for(a.size()), kThreads>>>(mat(a), mat(b), mat(out));
    TRM_CUDA_CHECK_LAUNCH("add_k");
  }

  // out[b] = in[b]^T ([B, M, N] -> [B, N, M]); accumulate: out[b] += in[b]^T.
  template <class T>
  static void transpose_batched(Tensor3View<const T, device_space> in, Tensor3View<T, device_space> out,
                                bool accumulate) {
    using namespace detail::cuda_kernels;
    if (out.extent(0) != in.extent(0) || out.extent(1) != in.extent(2) || out.extent(2) != in.extent(1))
      throw ShapeError("transpose_batched: expected out of shape " +
                       format_shape({in.extent(0), in.extent(2), in.extent(1)}) + ", found " + format_shape(out.shape()));
    if (out.empty()) return;
    transpose_batched_k<T><<<grid_for(out.size()), kThreads>>>(ten3(in), ten3(out), accumulate);
    TRM_CUDA_CHECK_LAUNCH("transpose_batched_k");
  }

  // out = silu(gate) * up for gate_up = [gate | up].
  template <class T>
  static void swiglu_forward(CM<T> gate_up, M<T> out) {
    using namespace detail::cuda_kernels;
    detail::check_swiglu(gate_up, out, "out");
    if (out.empty()) return;
    swiglu_forward_k<T><<<grid_for(out.size()), kThreads>>>(mat(gate_up), mat(out));
    TRM_CUDA_CHECK_LAUNCH("swiglu_forward_k");
  }

  // dgate_up (overwritten) from dout.
  template <class T>
  static void swiglu_backward(CM<T> gate_up, CM<T> dout, M<T> dgate_up) {
    using namespace detail::cuda_kernels;
    detail::check_swiglu(gate_up, dout, "dout");
    detail::check_same_shape("swiglu_backward", "gate_up", gate_up, "dgate_up", dgate_up);
    if (dout.empty()) return;
    swiglu_backward_k<T><<<grid_for(dout.size()), kThreads>>>(mat(gate_up), mat(dout), mat(dgate_up));
    TRM_CUDA_CHECK_LAUNCH("swiglu_backward_k");
  }

  // rstd[r] = 1/sqrt(mean_j x[r,j]^2 + eps); y = x * rstd (y may alias x). One block per row.
  template <class T>
  static void rmsnorm_forward(CM<T> x, M<T> y, VectorView<T, device_space> rstd, T eps) {
    using namespace detail::cuda_kernels;
    detail::check_same_shape("rmsnorm_forward", "x", x, "y", y);
    detail::check_vector_size("rmsnorm_forward", "rstd", rstd, x.extent(0));
    if (x.extent(0) == 0) return;
    rmsnorm_forward_k<T><<<blocks_for_rows(x.extent(0)), reduce_threads(x.extent(1))>>>(mat(x), mat(y), vec(rstd), eps);
    TRM_CUDA_CHECK_LAUNCH("rmsnorm_forward_k");
  }

  // dx (+)= rstd * (dy - y * mean_j(dy * y)). One block per row.
  template <class T>
  static void rmsnorm_backward(CM<T> y, CVectorView<T, device_space> rstd, CM<T> dy, M<T> dx, bool accumulate) {
    using namespace detail::cuda_kernels;
    detail::check_same_shape("rmsnorm_backward", "y", y, "dy", dy);
    detail::check_same_shape("rmsnorm_backward", "y", y, "dx", dx);
    detail::check_vector_size("rmsnorm_backward", "rstd", rstd, y.extent(0));
    if (y.extent(0) == 0) return;
    rmsnorm_backward_k<T><<<blocks_for_rows(y.extent(0)), reduce_threads(y.extent(1))>>>(mat(y), vec(rstd), mat(dy),
                                                                                          mat(dx), accumulate);
    TRM_CUDA_CHECK_LAUNCH("rmsnorm_backward_k");
  }

  // In place: s[r,:] = softmax(scale * s[r,:]). One block per row.
  template <class T>
  static void softmax_rows(M<T> s, T scale) {
    using namespace detail::cuda_kernels;
    if (s.extent(0) == 0 || s.extent(1) == 0) return;
    softmax_rows_k<T><<<blocks_for_rows(s.extent(0)), reduce_threads(s.extent(1))>>>(mat(s), scale);
    TRM_CUDA_CHECK_LAUNCH("softmax_rows_k");
  }

  // ds = scale * p * (dp - sum_j dp*p); ds may alias dp. One block per row.
  template <class T>
  static void softmax_rows_backward(CM<T> p, CM<T> dp, M<T> ds, T scale) {
    using namespace detail::cuda_kernels;
    detail::check_same_shape("softmax_rows_backward", "p", p, "dp", dp);
    detail::check_same_shape("softmax_rows_backward", "p", p, "ds", ds);
    if (p.extent(0) == 0 || p.extent(1) == 0) return;
    softmax_rows_backward_k<T><<<blocks_for_rows(p.extent(0)), reduce_threads(p.extent(1))>>>(mat(p), mat(dp),
                                                                                                mat(ds), scale);
    TRM_CUDA_CHECK_LAUNCH("softmax_rows_backward_k");
  }

  // Rotary embedding (rotate-half), in place; transpose: the transposed map.
  template <class T>
  static void rope(M<T> x, CM<T> cos, CM<T> sin, bool transpose) {
    using namespace detail::cuda_kernels;
    detail::check_rope_tables(x, cos, sin);
    const index_t d = x.extent(1);
    if (d % 2 != 0) throw ShapeError("rope: head_dim must be even, found " + std::to_string(d));
    if (x.empty()) return;
    rope_k<T><<<grid_for(x.extent(0) * (d / 2)), kThreads>>>(mat(x), mat(cos), mat(sin), transpose);
    TRM_CUDA_CHECK_LAUNCH("rope_k");
  }

  // out[r,:] = scale * table[ids[r],:]. ids (device memory) are checked first: an id out of range
  // throws ValueError and out is left unchanged. Waits for the GPU (the check's flag).
  template <class T>
  static void gather_rows(CM<T> table, CVectorView<std::int32_t, device_space> ids, T scale, M<T> out) {
    using namespace detail::cuda_kernels;
    detail::check_vector_size("gather_rows", "ids", ids, out.extent(0));
    if (out.extent(1) != table.extent(1))
      throw ShapeError("gather_rows: expected out of width " + std::to_string(table.extent(1)) + ", found shape " +
                       format_shape(out.shape()));
    detail::cuda_check_ids("gather_rows", ids, table.extent(0));
    if (out.empty()) return;
    gather_rows_k<T><<<grid_for(out.size()), kThreads>>>(mat(table), vec(ids), scale, mat(out));
    TRM_CUDA_CHECK_LAUNCH("gather_rows_k");
  }

  // dtable[ids[r],:] += scale * dout[r,:]. ids are checked first (ValueError, dtable unchanged).
  // Rows sharing an id are added with atomicAdd in no fixed order: with repeated ids the result can
  // differ from run to run by rounding (trm::reference adds them in order of r).
  template <class T>
  static void scatter_add_rows(CM<T> dout, CVectorView<std::int32_t, device_space> ids, T scale, M<T> dtable) {
    using namespace detail::cuda_kernels;
    detail::check_vector_size("scatter_add_rows", "ids", ids, dout.extent(0));
    if (dout.extent(1) != dtable.extent(1))
      throw ShapeError("scatter_add_rows: expected dout of width " + std::to_string(dtable.extent(1)) +
                       ", found shape " + format_shape(dout.shape()));
    detail::cuda_check_ids("scatter_add_rows", ids, dtable.extent(0));
    if (dout.empty()) return;
    scatter_add_rows_k<T><<<grid_for(dout.size()), kThreads>>>(mat(dout), vec(ids), scale, mat(dtable));
    TRM_CUDA_CHECK_LAUNCH("scatter_add_rows_k");
  }

  // out[j] (+)= sum_r x[r,j]. One block per column.
  template <class T>
  static void sum_rows(CM<T> x, VectorView<T, device_space> out, bool accumulate) {
    using namespace detail::cuda_kernels;
    detail::check_vector_size("sum_rows", "out", out, x.extent(1));
    if (x.extent(1) == 0) return;
    sum_rows_k<T><<<blocks_for_rows(x.extent(1)), reduce_threads(x.extent(0))>>>(mat(x), vec(out), accumulate);
    TRM_CUDA_CHECK_LAUNCH("sum_rows_k");
  }

  // sum of a * b over all elements, accumulated in double; per-block partial sums are added on the
  // host in block order (deterministic). Waits for the GPU.
  template <class T>
  static double dot(CM<T> a, CM<T> b) {
    using namespace detail::cuda_kernels;
    detail::check_same_shape("dot", "a", a, "b", b);
    if (a.empty()) return 0.0;
    auto& scratch = detail::CudaScratch::get();
    std::lock_guard<std::mutex> lock(scratch.mutex);
    const unsigned blocks = std::min<unsigned>(grid_for(a.size()), detail::CudaScratch::dot_blocks);
    dot_k<T><<<blocks, kMaxReduceThreads>>>(mat(a), mat(b), scratch.partial);
    TRM_CUDA_CHECK_LAUNCH("dot_k");
    std::vector<double> partial(blocks);
    TRM_CUDA_CHECK(cudaMemcpy(partial.data(), scratch.partial, blocks * sizeof(double), cudaMemcpyDeviceToHost));
    double acc = 0;
    for (double p : partial) acc += p;
    return acc;
  }

  // ---- model-level ops (contracts in backend/model_ops.hpp) --------------------------------
  // out[b,t,:] = scale * table[ids[b,t],:]. ids are checked first (ValueError naming [b, t]; out
  // unchanged). Waits for the GPU (the check's flag).
  template <class T>
  static void gather_rows3(CM<T> table, CMatrixView<std::int32_t, device_space> ids, T scale, Tensor3View<T, device_space> out) {
    using namespace detail::cuda_kernels;
    detail::check_ids3("gather_rows3", ids.extent(0), ids.extent(1), out.extent(0), out.extent(1));
    if (out.extent(2) != table.extent(1))
      throw ShapeError("gather_rows3: expected out of width " + std::to_string(table.extent(1)) + ", found shape " +
                       format_shape(out.shape()));
    detail::cuda_check_id_matrix("gather_rows3", ids, table.extent(0));
    if (out.empty()) return;
    gather_rows3_k<T><<<grid_for(out.size()), kThreads>>>(mat(table), mat(ids), scale, ten3(out));
    TRM_CUDA_CHECK_LAUNCH("gather_rows3_k");
  }

  // dtable[ids[b,t],:] += scale * dout[b,t,:]. Deterministic when the table fits in shared memory
  // (rows x width x sizeof(T) <= 40 KiB: the token table of every TRM task): chunks of positions
  // are summed per id in position order, then the chunks in order, then scaled and added (the
  // rounding differs from the host's row-by-row adds, not from run to run). A bigger table falls
  // back to atomicAdd (order, hence rounding, may vary run to run).
  template <class T>
  static void scatter_add_rows3(Tensor3View<const T, device_space> dout, CMatrixView<std::int32_t, device_space> ids, T scale,
                                M<T> dtable) {
    using namespace detail::cuda_kernels;
    detail::check_ids3("scatter_add_rows3", ids.extent(0), ids.extent(1), dout.extent(0), dout.extent(1));
    if (dout.extent(2) != dtable.extent(1))
      throw ShapeError("scatter_add_rows3: expected dout of width " + std::to_string(dtable.extent(1)) + ", found shape " +
                       format_shape(dout.shape()));
    detail::cuda_check_id_matrix("scatter_add_rows3", ids, dtable.extent(0));
    if (dout.empty()) return;
    const std::size_t shared = std::size_t(dtable.size()) * sizeof(T);
    if (shared > 40 * 1024 || !dtable.is_contiguous()) {
      scatter_add_rows3_atomic_k<T><<<grid_for(dout.size()), kThreads>>>(ten3(dout), mat(ids), scale, mat(dtable));
      TRM_CUDA_CHECK_LAUNCH("scatter_add_rows3_atomic_k");
      return;
    }
    const index_t positions = dout.extent(0) * dout.extent(1);
    // About 256 chunks of consecutive positions (one block each; the grid's parallelism).
    const index_t chunk = (positions + 255) / 256, chunks = (positions + chunk - 1) / chunk;
    auto& scratch = detail::CudaScratch::get();
    std::lock_guard<std::mutex> lock(scratch.mutex);
    T* partial = static_cast<T*>(scratch.workspace(std::size_t(chunks) * shared));
    scatter3_partial_k<T><<<unsigned(chunks), kThreads, shared>>>(ten3(dout), mat(ids), dtable.extent(0), chunk, partial);
    TRM_CUDA_CHECK_LAUNCH("scatter3_partial_k");
    scatter3_reduce_k<T><<<grid_for(dtable.size()), kThreads>>>(partial, chunks, scale, mat(dtable));
    TRM_CUDA_CHECK_LAUNCH("scatter3_reduce_k");
  }

  template <class T>
  static void broadcast_rows(CM<T> row, M<T> out) {
    using namespace detail::cuda_kernels;
    if (row.extent(0) != 1 || row.extent(1) != out.extent(1))
      throw ShapeError("broadcast_rows: expected one row of width " + std::to_string(out.extent(1)) + ", found " +
                       format_shape(row.shape()));
    if (out.empty()) return;
    broadcast_rows_k<T><<<grid_for(out.size()), kThreads>>>(mat(row), mat(out));
    TRM_CUDA_CHECK_LAUNCH("broadcast_rows_k");
  }

  template <class T>
  static void argmax_rows(Tensor3View<const T, device_space> logits, MatrixView<std::int32_t, device_space> out) {
    using namespace detail::cuda_kernels;
    detail::check_ids3("argmax_rows", out.extent(0), out.extent(1), logits.extent(0), logits.extent(1));
    if (out.empty()) return;
    argmax_rows_k<T><<<grid_for(out.size()), kThreads>>>(ten3(logits), mat(out));
    TRM_CUDA_CHECK_LAUNCH("argmax_rows_k");
  }

  // Three kernels (per-row counts and the label check; per-position terms and gradients; per-row
  // sums in position order) and one copy of [B] row results to the host, which returns them as
  // the host op does. Waits for the GPU.
  template <class T>
  static TokenLossResult token_loss(LossType type, Tensor3View<const T, device_space> logits,
                                    CMatrixView<std::int32_t, device_space> labels, Tensor3View<T, device_space> dlogits,
                                    double grad_scale) {
    using namespace detail::cuda_kernels;
    const index_t b = logits.extent(0), l = logits.extent(1), v = logits.extent(2);
    TokenLossResult res = detail::token_loss_start(logits, labels, dlogits);
    const bool want_grad = dlogits.data() != nullptr;
    if (b == 0 || l == 0) return res;
    if (b * l >= INT_MAX) throw ShapeError("token_loss: at most 2^31 - 2 positions on trm::cuda, found " + std::to_string(b * l));
    auto& scratch = detail::CudaScratch::get();
    std::lock_guard<std::mutex> lock(scratch.mutex);
    // Workspace layout: terms (double) [B*L], rows (TokenRow) [B], count [B], correct [B*L].
    const std::size_t n = std::size_t(b * l);
    const std::size_t off_rows = n * sizeof(double), off_count = off_rows + std::size_t(b) * sizeof(TokenRow),
                      off_correct = off_count + std::size_t(b) * sizeof(std::int32_t),
                      bytes = off_correct + n * sizeof(std::int32_t);
    auto* base = static_cast<unsigned char*>(scratch.workspace(bytes));
    auto* term = reinterpret_cast<double*>(base);
    auto* rows_out = reinterpret_cast<TokenRow*>(base + off_rows);
    auto* count = reinterpret_cast<std::int32_t*>(base + off_count);
    auto* correct = reinterpret_cast<std::int32_t*>(base + off_correct);
    const int init = INT_MAX;
    TRM_CUDA_CHECK(cudaMemcpy(scratch.flag, &init, sizeof(int), cudaMemcpyHostToDevice));
    token_count_k<<<blocks_for_rows(b), reduce_threads(l)>>>(mat(labels), v, count, scratch.flag);
    TRM_CUDA_CHECK_LAUNCH("token_count_k");
    token_terms_k<T><<<grid_for(b * l), kThreads>>>(type == LossType::stablemax_cross_entropy, ten3(logits), mat(labels), count,
                                                    ten3(dlogits), want_grad, grad_scale, term, correct);
    TRM_CUDA_CHECK_LAUNCH("token_terms_k");
    token_rows_k<<<grid_for(b), kThreads>>>(b, l, term, correct, count, rows_out);
    TRM_CUDA_CHECK_LAUNCH("token_rows_k");
    int bad = INT_MAX;
    TRM_CUDA_CHECK(cudaMemcpy(&bad, scratch.flag, sizeof(int), cudaMemcpyDeviceToHost));
    if (bad != INT_MAX) {
      const index_t r = bad / l, t = bad % l;
      std::int32_t y = 0;
      TRM_CUDA_CHECK(cudaMemcpy(&y, labels.data() + r * labels.stride(0) + t * labels.stride(1), sizeof(y), cudaMemcpyDeviceToHost));
      detail::throw_bad_label(y, r, t, v);
    }
    std::vector<TokenRow> rows_h(static_cast<std::size_t>(b));
    TRM_CUDA_CHECK(cudaMemcpy(rows_h.data(), rows_out, rows_h.size() * sizeof(TokenRow), cudaMemcpyDeviceToHost));
    for (index_t r = 0; r < b; ++r) {
      const auto& row = rows_h[std::size_t(r)];
      const double div = std::max(row.count, 1);
      res.loss += row.loss;
      res.count[r] = row.count;
      res.seq_correct[r] = row.correct == row.count;
      res.accuracy[r] = row.correct / div;
    }
    return res;
  }

  template <class T>
  static void adam_atan2_update(M<T> p, CM<T> g, M<T> m, M<T> v, AdamAtan2Step<T> k) {
    using namespace detail::cuda_kernels;
    const index_t n = p.size();
    check_flat<T>("adam_atan2_update", p, g, m, v);
    if (n == 0) return;
    adam_atan2_k<T><<<grid_for(n), kThreads>>>(n, p.data(), g.data(), m.data(), v.data(), k);
    TRM_CUDA_CHECK_LAUNCH("adam_atan2_k");
  }
  template <class T>
  static void adamw_update(M<T> p, CM<T> g, M<T> m, M<T> v, AdamWStep<T> k) {
    using namespace detail::cuda_kernels;
    const index_t n = p.size();
    check_flat<T>("adamw_update", p, g, m, v);
    if (n == 0) return;
    adamw_k<T><<<grid_for(n), kThreads>>>(n, p.data(), g.data(), m.data(), v.data(), k);
    TRM_CUDA_CHECK_LAUNCH("adamw_k");
  }
  template <class T>
  static void axpby(T a, CM<T> x, T b, M<T> y) {
    using namespace detail::cuda_kernels;
    detail::check_same_shape("axpby", "y", y, "x", x);
    if (!x.is_contiguous() || !y.is_contiguous()) throw ShapeError("axpby: expected contiguous x and y");
    if (y.empty()) return;
    axpby_k<T><<<grid_for(y.size()), kThreads>>>(y.size(), a, x.data(), b, y.data());
    TRM_CUDA_CHECK_LAUNCH("axpby_k");
  }
  // Segment ids are checked first (ValueError; the table unchanged). Waits for the GPU.
  template <class T>
  static void sign_sgd_rows(M<T> table, CM<T> row_grads, CVectorView<std::int32_t, device_space> seg_ids,
                            CVectorView<std::int32_t, device_space> offsets, CVectorView<std::int32_t, device_space> rows, T decay,
                            T lr) {
    using namespace detail::cuda_kernels;
    if (row_grads.extent(1) != table.extent(1))
      throw ShapeError("sign_sgd_rows: expected row gradients of width " + std::to_string(table.extent(1)) + ", found " +
                       format_shape(row_grads.shape()));
    detail::check_vector_size("sign_sgd_rows", "offsets", offsets, seg_ids.extent(0) + 1);
    detail::cuda_check_ids("SignSgd", seg_ids, table.extent(0));
    if (seg_ids.extent(0) == 0 || table.extent(1) == 0) return;
    sign_sgd_rows_k<T><<<grid_for(seg_ids.extent(0) * table.extent(1)), kThreads>>>(mat(table), mat(row_grads), vec(seg_ids),
                                                                                    vec(offsets), vec(rows), decay, lr);
    TRM_CUDA_CHECK_LAUNCH("sign_sgd_rows_k");
  }
  // Waits for the GPU (the index is copied back).
  template <class T>
  static std::ptrdiff_t first_non_finite(CM<T> x) {
    using namespace detail::cuda_kernels;
    if (x.empty()) return -1;
    auto& scratch = detail::CudaScratch::get();
    std::lock_guard<std::mutex> lock(scratch.mutex);
    const unsigned long long none = ~0ull;
    TRM_CUDA_CHECK(cudaMemcpy(scratch.index, &none, sizeof(none), cudaMemcpyHostToDevice));
    first_non_finite_k<T><<<grid_for(x.size()), kThreads>>>(mat(x), scratch.index);
    TRM_CUDA_CHECK_LAUNCH("first_non_finite_k");
    unsigned long long first = none;
    TRM_CUDA_CHECK(cudaMemcpy(&first, scratch.index, sizeof(first), cudaMemcpyDeviceToHost));
    if (first == none) return -1;
    // A flat index of the view's logical (row-major) order; contiguous tensors are what callers pass.
    return static_cast<std::ptrdiff_t>(first);
  }

 private:
  template <class T>
  static void check_flat(const char* op, M<T> p, CM<T> g, CM<T> m, CM<T> v) {
    const index_t n = p.size();
    detail::cuda_check_flat<T>(op, "p", p, n);
    detail::cuda_check_flat<T>(op, "g", g, n);
    detail::cuda_check_flat<T>(op, "m", m, n);
    detail::cuda_check_flat<T>(op, "v", v, n);
  }
};

static_assert(Backend<cuda>, "trm::cuda must satisfy trm::Backend");
static_assert(ModelBackend<cuda>, "trm::cuda must satisfy trm::ModelBackend");

// trm::cuda with the float GEMMs on tensor cores, as the reference trains (forward_dtype =
// bfloat16: bf16 GEMM inputs, fp32 accumulation), while everything else stays as in trm::cuda:
// fp32 storage of activations, master weights, gradients, optimiser state, and the losses. cuBLAS
// rounds each GEMM's inputs to bf16 (CUBLAS_COMPUTE_32F_FAST_16BF). Not exact: results differ from
// fp32 by bf16's rounding (8 significant bits), see tests/test_model_cuda.cu for the bound.
// The reference also stores its activations in bf16, which halves their memory traffic; this
// backend does not (yet): docs/CUDA.md.
struct cuda_bf16 : cuda {
  static constexpr const char* name = "cuda_bf16";
  template <class T>
  static void gemm(Trans ta, Trans tb, T alpha, CM<T> a, CM<T> b, T beta, M<T> c) {
    gemm_with<T>(CUBLAS_COMPUTE_32F_FAST_16BF, ta, tb, alpha, a, b, beta, c);
  }
  template <class T>
  static void gemm_batched(Trans ta, Trans tb, T alpha, CM<T> a, index_t stride_a, CM<T> b, index_t stride_b, T beta, M<T> c,
                           index_t stride_c, index_t count) {
    gemm_batched_with<T>(CUBLAS_COMPUTE_32F_FAST_16BF, ta, tb, alpha, a, stride_a, b, stride_b, beta, c, stride_c, count);
  }
};
// The same with TF32 inputs (10 significant bits), cuBLAS's CUBLAS_COMPUTE_32F_FAST_TF32.
struct cuda_tf32 : cuda {
  static constexpr const char* name = "cuda_tf32";
  template <class T>
  static void gemm(Trans ta, Trans tb, T alpha, CM<T> a, CM<T> b, T beta, M<T> c) {
    gemm_with<T>(CUBLAS_COMPUTE_32F_FAST_TF32, ta, tb, alpha, a, b, beta, c);
  }
  template <class T>
  static void gemm_batched(Trans ta, Trans tb, T alpha, CM<T> a, index_t stride_a, CM<T> b, index_t stride_b, T beta, M<T> c,
                           index_t stride_c, index_t count) {
    gemm_batched_with<T>(CUBLAS_COMPUTE_32F_FAST_TF32, ta, tb, alpha, a, stride_a, b, stride_b, beta, c, stride_c, count);
  }
};
static_assert(ModelBackend<cuda_bf16> && ModelBackend<cuda_tf32>);

}  // namespace trm
