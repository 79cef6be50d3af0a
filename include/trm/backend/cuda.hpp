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
    index_t r = e / h, i = e % h;
    T a = x(r, i), b = x(r, i + h);
    if (!transpose) {
      x(r, i) = a * c(r, i) - b * s(r, i);
      x(r, i + h) = b * c(r, i + h) + a * s(r, i + h);
    } else {
      x(r, i) = a * c(r, i) + b * s(r, i + h);
      x(r, i + h) = b * c(r, i + h) - a * s(r, i);
    }
  }
}
// flag = the smallest row whose id is outside [0, limit) (flag starts at INT_MAX).
template <class I>
__global__ void check_ids_k(Vec<const I> ids, index_t limit, int* flag) {
  TRM_GRID_STRIDE(r, ids.n) {
    I id = ids(r);
    if (id < 0 || static_cast<index_t>(id) >= limit) atomicMin(flag, static_cast<int>(r));
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
  std::mutex mutex;
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
  }
  ~CudaScratch() {
    (void)cudaFree(flag);
    (void)cudaFree(partial);
  }
};

// Checks ids on the device: throws ValueError (the reference's message) for the first row whose id is
// outside [0, limit). Waits for the GPU (the flag is copied back).
inline void cuda_check_ids(const char* op, CVectorView<std::int32_t, device_space> ids, index_t limit) {
  using namespace cuda_kernels;
  const index_t n = ids.extent(0);
  if (n == 0) return;
  if (n >= INT_MAX)
    throw ShapeError(std::string(op) + ": at most " + std::to_string(INT_MAX - 1) + " ids, found " + std::to_string(n));
  auto& scratch = CudaScratch::get();
  std::lock_guard<std::mutex> lock(scratch.mutex);
  const int init = INT_MAX;
  TRM_CUDA_CHECK(cudaMemcpy(scratch.flag, &init, sizeof(int), cudaMemcpyHostToDevice));
  check_ids_k<std::int32_t><<<grid_for(n), kThreads>>>(vec(ids), limit, scratch.flag);
  TRM_CUDA_CHECK_LAUNCH("check_ids_k");
  int bad = INT_MAX;
  TRM_CUDA_CHECK(cudaMemcpy(&bad, scratch.flag, sizeof(int), cudaMemcpyDeviceToHost));
  if (bad == INT_MAX) return;
  std::int32_t id = 0;
  TRM_CUDA_CHECK(cudaMemcpy(&id, ids.data() + bad * ids.stride(0), sizeof(id), cudaMemcpyDeviceToHost));
  throw ValueError(std::string(op) + ": id " + std::to_string(id) + " at row " + std::to_string(bad) +
                   " is out of range [0, " + std::to_string(limit) + ")");
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
    if constexpr (std::is_same_v<T, float>)
      TRM_CUBLAS_CHECK(cublasSgemm(h, opb, opa, int(n), int(m), int(k), &alpha, b.data(), ldb, a.data(), lda, &beta,
                                   c.data(), ldc));
    else
      TRM_CUBLAS_CHECK(cublasDgemm(h, opb, opa, int(n), int(m), int(k), &alpha, b.data(), ldb, a.data(), lda, &beta,
                                   c.data(), ldc));
  }

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
    detail::check_same_shape("rope", "x", x, "cos", cos);
    detail::check_same_shape("rope", "x", x, "sin", sin);
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
};

static_assert(Backend<cuda>, "trm::cuda must satisfy trm::Backend");

}  // namespace trm
