#pragma once
// trm::cpu: the fast CPU backend. GEMMs go to OpenBLAS's cblas_?gemm when the library was
// configured with it (TRM_HAVE_CBLAS), otherwise to Eigen (whose GEMM only uses threads under
// OpenMP). Note: OpenBLAS 0.3.21 (Debian 12) falls back to its generic "Prescott" SSE kernels on
// CPUs it does not know (e.g. Xeon family 6 model 207), 5-8x slower than its AVX-512 ones; run with
// OPENBLAS_CORETYPE=SkylakeX there, or call cpu::use_fast_blas_kernels(argv) first thing in main()
// (cpu::blas_core() names the kernels in use).
// Elementwise work is done with vectorised Eigen expressions, one pass per fused op, spread over a
// small pool of persistent threads of our own (trm/backend/cpu_pool.hpp; same thread count as the
// GEMMs) when an op is big enough. Not OpenMP: its idle threads would spin next to OpenBLAS's.
// Deterministic for a fixed thread count: OpenBLAS partitions a GEMM the same way every call, and
// the elementwise ops give the same bits for any thread count.
#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <mutex>

#include "cpu_pool.hpp"
#if defined(__AVX__)
#include <immintrin.h>
#endif
#include "model_ops.hpp"
#include "ops.hpp"

#if defined(TRM_HAVE_CBLAS)
#include <cblas.h>
#endif
#if defined(TRM_HAVE_CBLAS)
#include <cstdlib>
#include <string>
#endif
#if defined(TRM_HAVE_CBLAS) && defined(__linux__)
#include <unistd.h>
#endif

namespace trm {

namespace detail {
template <class T>
using EigenRowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The layouts an Eigen map with an outer stride (and a BLAS leading dimension) can express: unit
// column stride and rows that do not overlap. Anything else (a transposed view, a broadcast view with
// row stride 0), which trm::reference handles by plain indexing, is rejected here instead of being
// read wrongly or out of bounds.
template <class T>
void check_cpu_layout(const MatrixView<T>& v) {
  if ((v.extent(1) > 1 && v.stride(1) != 1) || (v.extent(0) > 1 && v.stride(0) < v.extent(1)))
    throw ShapeError("cpu backend: the matrix view of shape " + format_shape(v.shape()) + " has strides " +
                     format_shape(v.strides()) +
                     "; cpu ops need unit column stride and non-overlapping rows (row stride >= width)");
}

// A unit-inner-stride matrix view as an Eigen map (row-major, outer stride = row stride).
template <class T>
auto emap(const MatrixView<T>& v) {
  check_cpu_layout(v);
  using M = std::conditional_t<std::is_const_v<T>, const EigenRowMat<std::remove_const_t<T>>, EigenRowMat<T>>;
  index_t outer = v.extent(0) > 1 ? v.stride(0) : v.extent(1);
  return Eigen::Map<M, Eigen::Unaligned, Eigen::OuterStride<>>(v.data(), v.extent(0), v.extent(1),
                                                                Eigen::OuterStride<>(std::max<index_t>(outer, v.extent(1))));
}

#if defined(__AVX__)
// dst[c * ds + r] (+)= src[r * ss + c] for an 8x8 block of floats (unit inner strides).
inline void transpose8x8_avx(const float* src, index_t ss, float* dst, index_t ds, bool accumulate) {
  __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ss), r2 = _mm256_loadu_ps(src + 2 * ss),
         r3 = _mm256_loadu_ps(src + 3 * ss), r4 = _mm256_loadu_ps(src + 4 * ss), r5 = _mm256_loadu_ps(src + 5 * ss),
         r6 = _mm256_loadu_ps(src + 6 * ss), r7 = _mm256_loadu_ps(src + 7 * ss);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
         t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
         t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
         u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
         u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
         u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  __m256 o[8] = {_mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
                 _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
                 _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
                 _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31)};
  for (int k = 0; k < 8; ++k) {
    float* d = dst + k * ds;
    _mm256_storeu_ps(d, accumulate ? _mm256_add_ps(_mm256_loadu_ps(d), o[k]) : o[k]);
  }
}
#endif

// The thread count of cpu::set_num_threads; 0 until it is first set (by the user, or by the first
// op with the library default). Atomic: every op reads it, possibly on several threads while
// another one sets it.
inline std::atomic<int>& cpu_thread_count() {
  static std::atomic<int> n{0};
  return n;
}
// Serialises the setting of the thread count: OpenBLAS's openblas_set_num_threads (which may start
// its threads) is not safe to call concurrently, and two solvers' first ops may apply the default
// at the same time.
inline std::mutex& cpu_thread_count_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace detail

// The model-level ops (model_ops.hpp) come from host_model_ops, shared with trm::reference.
struct cpu : host_model_ops<cpu> {
  using memory_space = host_space;
  static constexpr const char* name = "cpu";

  // Threads used by the GEMMs (OpenBLAS's pool, or Eigen's when built with OpenMP) and by the
  // elementwise ops (CpuPool).
  static void set_num_threads(int n) {
    std::lock_guard<std::mutex> lock(detail::cpu_thread_count_mutex());
    apply_num_threads(n);
  }
  static int num_threads() {
#if defined(TRM_HAVE_CBLAS)
    return openblas_get_num_threads();
#else
    return Eigen::nbThreads();
#endif
  }
  static void synchronize() {}
  // The GEMM kernels in use: OpenBLAS's core name ("SkylakeX", "Haswell", "Prescott" = generic
  // SSE, ...), or "eigen" without OpenBLAS.
  static const char* blas_core() {
#if defined(TRM_HAVE_CBLAS)
    return openblas_get_corename();
#else
    return "eigen";
#endif
  }
  // OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons (e.g. family 6 model 207) and falls
  // back to its generic "Prescott" SSE kernels, 3-5x slower than its AVX-512 ones on these models'
  // GEMMs. better_blas_core() names the OPENBLAS_CORETYPE this CPU should have instead ("SkylakeX",
  // or "Haswell" on AVX2-only CPUs), or nullptr when OpenBLAS's choice is fine (or there is no
  // OpenBLAS, or the CPU is not x86).
  static const char* better_blas_core() {
#if defined(TRM_HAVE_CBLAS) && (defined(__x86_64__) || defined(__i386__))
    const std::string core = openblas_get_corename();
    if (core != "Prescott" && core != "Core2" && core != "Nehalem" && core != "Penryn" && core != "Dunnington")
      return nullptr;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? "SkylakeX"
           : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")      ? "Haswell"
                                                                                   : nullptr;
#else
    return nullptr;
#endif
  }
  // The kernel type can only be chosen before OpenBLAS loads, through OPENBLAS_CORETYPE, so this
  // re-executes the program (/proc/self/exe, same argv) once with it set to better_blas_core().
  // Call it first thing in main(); it returns when nothing needs doing: OpenBLAS chose proper
  // kernels, the user set OPENBLAS_CORETYPE (or TRM_KEEP_OPENBLAS_CORE=1), no OpenBLAS, not x86
  // Linux, or the re-execution failed (then with the generic kernels).
  static void use_fast_blas_kernels([[maybe_unused]] char** argv) {
#if defined(TRM_HAVE_CBLAS) && defined(__linux__)
    if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("TRM_KEEP_OPENBLAS_CORE")) return;
    const char* want = better_blas_core();
    if (!want) return;
    ::setenv("OPENBLAS_CORETYPE", want, 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure
    ::unsetenv("OPENBLAS_CORETYPE");
#endif
  }

 private:
  // Elements per parallel task. An op of at most kGrain elements runs on the calling thread alone:
  // a sleeping worker takes tens of microseconds to wake, about what 32k floats take to process
  // (the caller does not wait for it, but the wake-up is not free).
  static constexpr index_t kGrain = 32768;

  // Caller holds cpu_thread_count_mutex(). The count is published last, so that an op that reads
  // it non-zero finds the pool already set up.
  static void apply_num_threads(int n) {
    n = std::max(1, n);
#if defined(TRM_HAVE_CBLAS)
    openblas_set_num_threads(n);
#endif
    Eigen::setNbThreads(n);
    detail::CpuPool::instance().set_threads(n);
    detail::cpu_thread_count().store(n, std::memory_order_release);
  }
  static detail::CpuPool& pool() {
    // The pool follows set_num_threads(); until that is called, OpenBLAS's default thread count,
    // applied once even when the first ops run on several threads at once (checked again under
    // the mutex: another thread may have applied it, or the user set a count, meanwhile).
    if (detail::cpu_thread_count().load(std::memory_order_acquire) == 0) {
      std::lock_guard<std::mutex> lock(detail::cpu_thread_count_mutex());
      if (detail::cpu_thread_count().load(std::memory_order_relaxed) == 0) apply_num_threads(num_threads());
    }
    return detail::CpuPool::instance();
  }
  template <class T>
  static void transpose_elem(T& o, T v, bool accumulate) {
    o = accumulate ? o + v : v;
  }
  // fn(begin, end) over [0, n) split into tasks of `grain` items (detail::parallel_ranges).
  template <class F>
  static void parallel(index_t n, index_t grain, F&& fn) {
    pool();
    detail::parallel_ranges(n, grain, fn);
  }
  // fn(first_row, row_count) over the rows of a [rows, cols] matrix.
  template <class F>
  static void for_rows(index_t rows, index_t cols, F&& fn) {
    parallel(rows, std::max<index_t>(1, kGrain / std::max<index_t>(cols, 1)),
             [&](index_t b, index_t e) { fn(b, e - b); });
  }
  // fn(row, first_col, col_count) over the elements of a [rows, cols] matrix, split by element
  // count (a single long row is split too), each call within one row.
  template <class F>
  static void for_elements(index_t rows, index_t cols, F&& fn) {
    if (rows == 0 || cols == 0) return;
    parallel(rows * cols, kGrain, [&](index_t b, index_t e) {
      while (b < e) {
        const index_t r = b / cols, c = b % cols, n = std::min(cols - c, e - b);
        fn(r, c, n);
        b += n;
      }
    });
  }

 public:

  template <class T>
  static void gemm(Trans ta, Trans tb, T alpha, CMatrixView<T> a, CMatrixView<T> b, T beta, MatrixView<T> c) {
    detail::check_gemm(ta, tb, a, b, c);
    detail::check_cpu_layout(a);
    detail::check_cpu_layout(b);
    detail::check_cpu_layout(c);
    const index_t m = c.extent(0), n = c.extent(1);
    const index_t k = ta == Trans::N ? a.extent(1) : a.extent(0);
    if (m == 0 || n == 0) return;
    if (k == 0) {
      if (beta == T(0))
        detail::emap(c).setZero();
      else
        detail::emap(c) *= beta;
      return;
    }
#if defined(TRM_HAVE_CBLAS)
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      auto ld = [](const auto& v) { return static_cast<int>(std::max<index_t>(v.extent(0) > 1 ? v.stride(0) : v.extent(1), std::max<index_t>(v.extent(1), 1))); };
      const auto cta = ta == Trans::N ? CblasNoTrans : CblasTrans;
      const auto ctb = tb == Trans::N ? CblasNoTrans : CblasTrans;
      if constexpr (std::is_same_v<T, float>)
        cblas_sgemm(CblasRowMajor, cta, ctb, int(m), int(n), int(k), alpha, a.data(), ld(a), b.data(), ld(b), beta,
                    c.data(), ld(c));
      else
        cblas_dgemm(CblasRowMajor, cta, ctb, int(m), int(n), int(k), alpha, a.data(), ld(a), b.data(), ld(b), beta,
                    c.data(), ld(c));
      return;
    }
#endif
    auto A = detail::emap(a);
    auto B = detail::emap(b);
    auto C = detail::emap(c);
    auto run = [&](const auto& opa, const auto& opb) {
      if (beta == T(0))
        C.noalias() = alpha * (opa * opb);
      else {
        if (beta != T(1)) C *= beta;
        C.noalias() += alpha * (opa * opb);
      }
    };
    if (ta == Trans::N && tb == Trans::N) run(A, B);
    else if (ta == Trans::N) run(A, B.transpose());
    else if (tb == Trans::N) run(A.transpose(), B);
    else run(A.transpose(), B.transpose());
  }

  // Elementwise ops run on CpuPool (trm/backend/cpu_pool.hpp) when they are big enough to pay for
  // a second thread; every row or element is computed by the same code on whichever thread, so the
  // results do not depend on the split.
  template <class T>
  static void copy(CMatrixView<T> x, MatrixView<T> y) {
    detail::check_same_shape("copy", "x", x, "y", y);
    auto X = detail::emap(x);
    auto Y = detail::emap(y);
    for_rows(x.extent(0), x.extent(1), [&](index_t r0, index_t n) { Y.middleRows(r0, n) = X.middleRows(r0, n); });
  }
  template <class T>
  static void fill(MatrixView<T> y, T value) {
    auto Y = detail::emap(y);
    for_rows(y.extent(0), y.extent(1), [&](index_t r0, index_t n) { Y.middleRows(r0, n).setConstant(value); });
  }
  template <class T>
  static void scale(MatrixView<T> y, T alpha) {
    auto Y = detail::emap(y);
    for_rows(y.extent(0), y.extent(1), [&](index_t r0, index_t n) { Y.middleRows(r0, n) *= alpha; });
  }
  template <class T>
  static void axpy(T alpha, CMatrixView<T> x, MatrixView<T> y) {
    detail::check_same_shape("axpy", "x", x, "y", y);
    auto X = detail::emap(x);
    auto Y = detail::emap(y);
    for_rows(x.extent(0), x.extent(1),
             [&](index_t r0, index_t n) { Y.middleRows(r0, n) += alpha * X.middleRows(r0, n); });
  }
  template <class T>
  static void add(CMatrixView<T> a, CMatrixView<T> b, MatrixView<T> out) {
    detail::check_same_shape("add", "a", a, "b", b);
    detail::check_same_shape("add", "a", a, "out", out);
    auto A = detail::emap(a);
    auto Bm = detail::emap(b);
    auto O = detail::emap(out);
    for_rows(a.extent(0), a.extent(1),
             [&](index_t r0, index_t n) { O.middleRows(r0, n) = A.middleRows(r0, n) + Bm.middleRows(r0, n); });
  }

  template <class T>
  static void transpose_batched(Tensor3View<const T> in, Tensor3View<T> out, bool accumulate) {
    if (out.extent(0) != in.extent(0) || out.extent(1) != in.extent(2) || out.extent(2) != in.extent(1))
      throw ShapeError("transpose_batched: expected out of shape " +
                       format_shape({in.extent(0), in.extent(2), in.extent(1)}) + ", found " + format_shape(out.shape()));
    // Tiles of blk x blk, so that both the rows read and the rows written stay in L1; the tiles
    // (over batch and row blocks of the input) are spread over the pool. Pure moves (or one add
    // each), so the result is the same bits whatever the tiling.
    constexpr index_t blk = 32;
    const index_t nb = in.extent(0), M = in.extent(1), N = in.extent(2);
    const index_t si = in.stride(1), sj = in.stride(2), di = out.stride(1), dj = out.stride(2);
    const index_t mblocks = (M + blk - 1) / blk;
    auto tile_rows = [&](index_t t0, index_t t1) {
      for (index_t t = t0; t < t1; ++t) {
        const index_t b = t / mblocks, i0 = (t % mblocks) * blk, i1 = std::min(M, i0 + blk);
        const T* src = in.data() + b * in.stride(0);
        T* dst = out.data() + b * out.stride(0);
        for (index_t j0 = 0; j0 < N; j0 += blk) {
          const index_t j1 = std::min(N, j0 + blk);
          index_t i8 = i0, j8 = j0;  // the part done with 8x8 register transposes
#if defined(__AVX__)
          if constexpr (std::is_same_v<T, float>) {
            if (sj == 1 && dj == 1) {
              i8 = i0 + (i1 - i0) / 8 * 8;
              j8 = j0 + (j1 - j0) / 8 * 8;
              for (index_t i = i0; i < i8; i += 8)
                for (index_t j = j0; j < j8; j += 8)
                  detail::transpose8x8_avx(src + i * si + j, si, dst + j * di + i, di, accumulate);
            }
          }
#endif
          // The remaining columns of every row, then the remaining rows (nothing when the AVX
          // kernel is not used: i8 == i0, j8 == j0, and the first loop covers the whole tile).
          for (index_t j = j8; j < j1; ++j)
            for (index_t i = i0; i < i1; ++i) transpose_elem(dst[j * di + i * dj], src[i * si + j * sj], accumulate);
          for (index_t j = j0; j < j8; ++j)
            for (index_t i = i8; i < i1; ++i) transpose_elem(dst[j * di + i * dj], src[i * si + j * sj], accumulate);
        }
      }
    };
    parallel(nb * mblocks, std::max<index_t>(1, kGrain / std::max<index_t>(1, blk * N)), tile_rows);
  }

  template <class T>
  static void swiglu_forward(CMatrixView<T> gate_up, MatrixView<T> out) {
    detail::check_swiglu(gate_up, out, "out");
    using A = Eigen::Array<T, Eigen::Dynamic, 1>;
    detail::check_cpu_layout(gate_up);
    detail::check_cpu_layout(out);
    for_elements(out.extent(0), out.extent(1), [&](index_t r, index_t c0, index_t n) {
      const T* g = gate_up.data() + r * gate_up.stride(0) + c0;
      Eigen::Map<const A> G(g, n), U(g + out.extent(1), n);
      Eigen::Map<A> O(out.data() + r * out.stride(0) + c0, n);
      O = G / (T(1) + (-G).exp()) * U;
    });
  }

  template <class T>
  static void swiglu_backward(CMatrixView<T> gate_up, CMatrixView<T> dout, MatrixView<T> dgate_up) {
    detail::check_swiglu(gate_up, dout, "dout");
    detail::check_same_shape("swiglu_backward", "gate_up", gate_up, "dgate_up", dgate_up);
    using A = Eigen::Array<T, Eigen::Dynamic, 1>;
    const index_t inter = dout.extent(1);
    detail::check_cpu_layout(gate_up);
    detail::check_cpu_layout(dout);
    detail::check_cpu_layout(dgate_up);
    for_elements(dout.extent(0), inter, [&](index_t r, index_t c0, index_t n) {
      constexpr index_t piece = 256;  // sigmoid of a piece stays in L1 between its two uses
      alignas(64) T sbuf[piece];
      for (index_t p = 0; p < n; p += piece) {
        const index_t m = std::min(piece, n - p);
        const T* g = gate_up.data() + r * gate_up.stride(0) + c0 + p;
        T* dg = dgate_up.data() + r * dgate_up.stride(0) + c0 + p;
        Eigen::Map<const A> G(g, m), U(g + inter, m), D(dout.data() + r * dout.stride(0) + c0 + p, m);
        Eigen::Map<A> S(sbuf, m), DG(dg, m), DU(dg + inter, m);
        S = T(1) / (T(1) + (-G).exp());
        DU = D * G * S;
        DG = D * U * S * (T(1) + G * (T(1) - S));
      }
    });
  }

  // Not part of the op set (an optional cpu extension, detected by SwiGlu::backward): swiglu_backward
  // that also writes the activation act = silu(gate) * up, which the down projection's weight
  // gradient needs. One pass over gate_up and one exp per element, instead of swiglu_forward (to
  // recompute act) followed by swiglu_backward. dgate_up is bit-identical to swiglu_backward's.
  template <class T>
  static void swiglu_backward_act(CMatrixView<T> gate_up, CMatrixView<T> dout, MatrixView<T> dgate_up,
                                  MatrixView<T> act) {
    detail::check_swiglu(gate_up, dout, "dout");
    detail::check_same_shape("swiglu_backward", "gate_up", gate_up, "dgate_up", dgate_up);
    detail::check_same_shape("swiglu_backward", "dout", dout, "act", act);
    detail::check_cpu_layout(gate_up);
    detail::check_cpu_layout(dout);
    detail::check_cpu_layout(dgate_up);
    detail::check_cpu_layout(act);
    using A = Eigen::Array<T, Eigen::Dynamic, 1>;
    const index_t inter = dout.extent(1);
    for_elements(dout.extent(0), inter, [&](index_t r, index_t c0, index_t n) {
      constexpr index_t piece = 256;
      alignas(64) T sbuf[piece];
      for (index_t p = 0; p < n; p += piece) {
        const index_t m = std::min(piece, n - p);
        const T* g = gate_up.data() + r * gate_up.stride(0) + c0 + p;
        T* dg = dgate_up.data() + r * dgate_up.stride(0) + c0 + p;
        Eigen::Map<const A> G(g, m), U(g + inter, m), D(dout.data() + r * dout.stride(0) + c0 + p, m);
        Eigen::Map<A> S(sbuf, m), DG(dg, m), DU(dg + inter, m), O(act.data() + r * act.stride(0) + c0 + p, m);
        S = T(1) / (T(1) + (-G).exp());
        O = G * S * U;  // swiglu_forward's value up to rounding (it divides by 1 + exp(-g))
        DU = D * G * S;
        DG = D * U * S * (T(1) + G * (T(1) - S));
      }
    });
  }

  template <class T>
  static void rmsnorm_forward(CMatrixView<T> x, MatrixView<T> y, VectorView<T> rstd, T eps) {
    detail::check_same_shape("rmsnorm_forward", "x", x, "y", y);
    detail::check_vector_size("rmsnorm_forward", "rstd", rstd, x.extent(0));
    auto X = detail::emap(x);
    auto Y = detail::emap(y);
    const T inv_n = T(1) / T(x.extent(1));
    for_rows(x.extent(0), x.extent(1), [&](index_t r0, index_t nr) {
      for (index_t r = r0; r < r0 + nr; ++r) {
        T rs = T(1) / std::sqrt(X.row(r).squaredNorm() * inv_n + eps);
        rstd(r) = rs;
        Y.row(r) = X.row(r) * rs;
      }
    });
  }

  template <class T>
  static void rmsnorm_backward(CMatrixView<T> y, CVectorView<T> rstd, CMatrixView<T> dy, MatrixView<T> dx,
                               bool accumulate) {
    detail::check_same_shape("rmsnorm_backward", "y", y, "dy", dy);
    detail::check_same_shape("rmsnorm_backward", "y", y, "dx", dx);
    detail::check_vector_size("rmsnorm_backward", "rstd", rstd, y.extent(0));
    auto Y = detail::emap(y);
    auto DY = detail::emap(dy);
    auto DX = detail::emap(dx);
    const T inv_n = T(1) / T(y.extent(1));
    for_rows(y.extent(0), y.extent(1), [&](index_t r0, index_t nr) {
      for (index_t r = r0; r < r0 + nr; ++r) {
        T mean = DY.row(r).dot(Y.row(r)) * inv_n;
        if (accumulate)
          DX.row(r) += rstd(r) * (DY.row(r) - mean * Y.row(r));
        else
          DX.row(r) = rstd(r) * (DY.row(r) - mean * Y.row(r));
      }
    });
  }

  template <class T>
  static void softmax_rows(MatrixView<T> s, T scale) {
    auto S = detail::emap(s);
    for_rows(s.extent(0), s.extent(1), [&](index_t r0, index_t nr) {
      for (index_t r = r0; r < r0 + nr; ++r) {
        T mx = S.row(r).maxCoeff() * scale;
        if (scale < T(0)) mx = S.row(r).minCoeff() * scale;
        S.row(r) = (S.row(r).array() * scale - mx).exp().matrix();
        S.row(r) /= S.row(r).sum();
      }
    });
  }

  template <class T>
  static void softmax_rows_backward(CMatrixView<T> p, CMatrixView<T> dp, MatrixView<T> ds, T scale) {
    detail::check_same_shape("softmax_rows_backward", "p", p, "dp", dp);
    detail::check_same_shape("softmax_rows_backward", "p", p, "ds", ds);
    auto P = detail::emap(p);
    auto DP = detail::emap(dp);
    auto DS = detail::emap(ds);
    for_rows(p.extent(0), p.extent(1), [&](index_t r0, index_t nr) {
      for (index_t r = r0; r < r0 + nr; ++r) {
        T dot = DP.row(r).dot(P.row(r));
        DS.row(r).array() = scale * P.row(r).array() * (DP.row(r).array() - dot);
      }
    });
  }

  template <class T>
  static void rope(MatrixView<T> x, CMatrixView<T> cos, CMatrixView<T> sin, bool transpose) {
    detail::check_rope_tables(x, cos, sin);
    const index_t d = x.extent(1), h = d / 2;
    if (d % 2 != 0) throw ShapeError("rope: head_dim must be even, found " + std::to_string(d));
    if (x.empty()) return;
    auto X = detail::emap(x);
    auto C = detail::emap(cos);
    auto S = detail::emap(sin);
    const index_t n = cos.extent(0);
    for_rows(x.extent(0), d, [&](index_t r0, index_t nr) {
      Eigen::Array<T, 1, Eigen::Dynamic> a(h), b(h);
      for (index_t r = r0; r < r0 + nr; ++r) {
        const index_t p = r % n;
        a = X.row(r).head(h).array();
        b = X.row(r).tail(h).array();
        if (!transpose) {
          X.row(r).head(h).array() = a * C.row(p).head(h).array() - b * S.row(p).head(h).array();
          X.row(r).tail(h).array() = b * C.row(p).tail(h).array() + a * S.row(p).tail(h).array();
        } else {
          X.row(r).head(h).array() = a * C.row(p).head(h).array() + b * S.row(p).tail(h).array();
          X.row(r).tail(h).array() = b * C.row(p).tail(h).array() - a * S.row(p).head(h).array();
        }
      }
    });
  }

  template <class T>
  static void gather_rows(CMatrixView<T> table, CVectorView<std::int32_t> ids, T scale, MatrixView<T> out) {
    detail::check_vector_size("gather_rows", "ids", ids, out.extent(0));
    if (out.extent(1) != table.extent(1))
      throw ShapeError("gather_rows: expected out of width " + std::to_string(table.extent(1)) + ", found shape " +
                       format_shape(out.shape()));
    auto Tb = detail::emap(table);
    auto O = detail::emap(out);
    for (index_t r = 0; r < out.extent(0); ++r) {
      auto id = ids(r);
      if (id < 0 || id >= table.extent(0))
        throw ValueError("gather_rows: id " + std::to_string(id) + " at row " + std::to_string(r) +
                         " is out of range [0, " + std::to_string(table.extent(0)) + ")");
      O.row(r) = scale * Tb.row(id);
    }
  }

  template <class T>
  static void scatter_add_rows(CMatrixView<T> dout, CVectorView<std::int32_t> ids, T scale, MatrixView<T> dtable) {
    detail::check_vector_size("scatter_add_rows", "ids", ids, dout.extent(0));
    if (dout.extent(1) != dtable.extent(1))
      throw ShapeError("scatter_add_rows: expected dout of width " + std::to_string(dtable.extent(1)) +
                       ", found shape " + format_shape(dout.shape()));
    auto D = detail::emap(dout);
    auto Tb = detail::emap(dtable);
    for (index_t r = 0; r < dout.extent(0); ++r) {
      auto id = ids(r);
      if (id < 0 || id >= dtable.extent(0))
        throw ValueError("scatter_add_rows: id " + std::to_string(id) + " at row " + std::to_string(r) +
                         " is out of range [0, " + std::to_string(dtable.extent(0)) + ")");
      Tb.row(id) += scale * D.row(r);
    }
  }

  template <class T>
  static void sum_rows(CMatrixView<T> x, VectorView<T> out, bool accumulate) {
    detail::check_vector_size("sum_rows", "out", out, x.extent(1));
    auto X = detail::emap(x);
    for (index_t j = 0; j < x.extent(1); ++j) {
      // No rows: the sum is 0, and X.col(j) would offset a null pointer (an empty tensor has no
      // storage), undefined behaviour that UBSan reports (tools/sanitize.sh).
      const T acc = x.extent(0) == 0 ? T(0) : X.col(j).sum();
      out(j) = accumulate ? out(j) + acc : acc;
    }
  }

  template <class T>
  static double dot(CMatrixView<T> a, CMatrixView<T> b) {
    detail::check_same_shape("dot", "a", a, "b", b);
    auto A = detail::emap(a);
    auto B = detail::emap(b);
    double acc = 0;
    for (index_t r = 0; r < a.extent(0); ++r) acc += double(A.row(r).dot(B.row(r)));
    return acc;
  }
};

}  // namespace trm
