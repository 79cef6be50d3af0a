#pragma once
// trm::cpu: the fast CPU backend. GEMMs go to OpenBLAS's cblas_?gemm when the library was
// configured with it (TRM_HAVE_CBLAS; about 25% faster than Eigen 3.4's own GEMM at the TRM shapes,
// and Eigen's GEMM only uses threads under OpenMP), otherwise to Eigen. Elementwise work is done
// with vectorised Eigen expressions, one pass per fused op, on the calling thread: it is memory
// bound and small next to the GEMMs, and keeping it off a second thread pool avoids the spinning
// OpenMP-beside-OpenBLAS contention that slows PyTorch down on small machines.
// Deterministic for a fixed thread count: OpenBLAS partitions a GEMM the same way every call.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ops.hpp"

#if defined(TRM_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace trm {

namespace detail {
template <class T>
using EigenRowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A unit-inner-stride matrix view as an Eigen map (row-major, outer stride = row stride).
template <class T>
auto emap(const MatrixView<T>& v) {
  using M = std::conditional_t<std::is_const_v<T>, const EigenRowMat<std::remove_const_t<T>>, EigenRowMat<T>>;
  index_t outer = v.extent(0) > 1 ? v.stride(0) : v.extent(1);
  return Eigen::Map<M, Eigen::Unaligned, Eigen::OuterStride<>>(v.data(), v.extent(0), v.extent(1),
                                                                Eigen::OuterStride<>(std::max<index_t>(outer, v.extent(1))));
}

inline int& cpu_thread_count() {
  static int n = 0;  // 0: not set by the user yet (the library default applies)
  return n;
}
}  // namespace detail

struct cpu {
  using memory_space = host_space;
  static constexpr const char* name = "cpu";

  // Threads used by the GEMMs (OpenBLAS's pool, or Eigen's when built with OpenMP).
  static void set_num_threads(int n) {
    n = std::max(1, n);
    detail::cpu_thread_count() = n;
#if defined(TRM_HAVE_CBLAS)
    openblas_set_num_threads(n);
#endif
    Eigen::setNbThreads(n);
  }
  static int num_threads() {
#if defined(TRM_HAVE_CBLAS)
    return openblas_get_num_threads();
#else
    return Eigen::nbThreads();
#endif
  }
  static void synchronize() {}

  template <class T>
  static void gemm(Trans ta, Trans tb, T alpha, CMatrixView<T> a, CMatrixView<T> b, T beta, MatrixView<T> c) {
    detail::check_gemm(ta, tb, a, b, c);
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

  template <class T>
  static void copy(CMatrixView<T> x, MatrixView<T> y) {
    detail::check_same_shape("copy", "x", x, "y", y);
    detail::emap(y) = detail::emap(x);
  }
  template <class T>
  static void fill(MatrixView<T> y, T value) {
    detail::emap(y).setConstant(value);
  }
  template <class T>
  static void scale(MatrixView<T> y, T alpha) {
    detail::emap(y) *= alpha;
  }
  template <class T>
  static void axpy(T alpha, CMatrixView<T> x, MatrixView<T> y) {
    detail::check_same_shape("axpy", "x", x, "y", y);
    detail::emap(y) += alpha * detail::emap(x);
  }
  template <class T>
  static void add(CMatrixView<T> a, CMatrixView<T> b, MatrixView<T> out) {
    detail::check_same_shape("add", "a", a, "b", b);
    detail::check_same_shape("add", "a", a, "out", out);
    detail::emap(out) = detail::emap(a) + detail::emap(b);
  }

  template <class T>
  static void transpose_batched(Tensor3View<const T> in, Tensor3View<T> out, bool accumulate) {
    if (out.extent(0) != in.extent(0) || out.extent(1) != in.extent(2) || out.extent(2) != in.extent(1))
      throw ShapeError("transpose_batched: expected out of shape " +
                       format_shape({in.extent(0), in.extent(2), in.extent(1)}) + ", found " + format_shape(out.shape()));
    // Blocked so that both the rows read and the rows written stay in cache.
    constexpr index_t blk = 32;
    const index_t M = in.extent(1), N = in.extent(2);
    for (index_t b = 0; b < in.extent(0); ++b) {
      const T* src = in.data() + b * in.stride(0);
      T* dst = out.data() + b * out.stride(0);
      const index_t si = in.stride(1), sj = in.stride(2), di = out.stride(1), dj = out.stride(2);
      for (index_t i0 = 0; i0 < M; i0 += blk)
        for (index_t j0 = 0; j0 < N; j0 += blk) {
          const index_t i1 = std::min(M, i0 + blk), j1 = std::min(N, j0 + blk);
          for (index_t j = j0; j < j1; ++j)
            for (index_t i = i0; i < i1; ++i) {
              T v = src[i * si + j * sj];
              T& o = dst[j * di + i * dj];
              o = accumulate ? o + v : v;
            }
        }
    }
  }

  template <class T>
  static void swiglu_forward(CMatrixView<T> gate_up, MatrixView<T> out) {
    detail::check_swiglu(gate_up, out, "out");
    const index_t inter = out.extent(1);
    auto gu = detail::emap(gate_up);
    auto o = detail::emap(out);
    for (index_t r = 0; r < out.extent(0); ++r) {
      auto g = gu.row(r).head(inter).array();
      auto u = gu.row(r).tail(inter).array();
      o.row(r).array() = g / (T(1) + (-g).exp()) * u;
    }
  }

  template <class T>
  static void swiglu_backward(CMatrixView<T> gate_up, CMatrixView<T> dout, MatrixView<T> dgate_up) {
    detail::check_swiglu(gate_up, dout, "dout");
    detail::check_same_shape("swiglu_backward", "gate_up", gate_up, "dgate_up", dgate_up);
    const index_t inter = dout.extent(1);
    auto gu = detail::emap(gate_up);
    auto d = detail::emap(dout);
    auto dgu = detail::emap(dgate_up);
    Eigen::Array<T, 1, Eigen::Dynamic> s(inter);
    for (index_t r = 0; r < dout.extent(0); ++r) {
      auto g = gu.row(r).head(inter).array();
      auto u = gu.row(r).tail(inter).array();
      auto dr = d.row(r).array();
      s = T(1) / (T(1) + (-g).exp());
      dgu.row(r).tail(inter).array() = dr * g * s;
      dgu.row(r).head(inter).array() = dr * u * s * (T(1) + g * (T(1) - s));
    }
  }

  template <class T>
  static void rmsnorm_forward(CMatrixView<T> x, MatrixView<T> y, VectorView<T> rstd, T eps) {
    detail::check_same_shape("rmsnorm_forward", "x", x, "y", y);
    detail::check_vector_size("rmsnorm_forward", "rstd", rstd, x.extent(0));
    auto X = detail::emap(x);
    auto Y = detail::emap(y);
    const T inv_n = T(1) / T(x.extent(1));
    for (index_t r = 0; r < x.extent(0); ++r) {
      T rs = T(1) / std::sqrt(X.row(r).squaredNorm() * inv_n + eps);
      rstd(r) = rs;
      Y.row(r) = X.row(r) * rs;
    }
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
    for (index_t r = 0; r < y.extent(0); ++r) {
      T mean = DY.row(r).dot(Y.row(r)) * inv_n;
      if (accumulate)
        DX.row(r) += rstd(r) * (DY.row(r) - mean * Y.row(r));
      else
        DX.row(r) = rstd(r) * (DY.row(r) - mean * Y.row(r));
    }
  }

  template <class T>
  static void softmax_rows(MatrixView<T> s, T scale) {
    auto S = detail::emap(s);
    for (index_t r = 0; r < s.extent(0); ++r) {
      T mx = S.row(r).maxCoeff() * scale;
      if (scale < T(0)) mx = S.row(r).minCoeff() * scale;
      S.row(r) = (S.row(r).array() * scale - mx).exp().matrix();
      S.row(r) /= S.row(r).sum();
    }
  }

  template <class T>
  static void softmax_rows_backward(CMatrixView<T> p, CMatrixView<T> dp, MatrixView<T> ds, T scale) {
    detail::check_same_shape("softmax_rows_backward", "p", p, "dp", dp);
    detail::check_same_shape("softmax_rows_backward", "p", p, "ds", ds);
    auto P = detail::emap(p);
    auto DP = detail::emap(dp);
    auto DS = detail::emap(ds);
    for (index_t r = 0; r < p.extent(0); ++r) {
      T dot = DP.row(r).dot(P.row(r));
      DS.row(r).array() = scale * P.row(r).array() * (DP.row(r).array() - dot);
    }
  }

  template <class T>
  static void rope(MatrixView<T> x, CMatrixView<T> cos, CMatrixView<T> sin, bool transpose) {
    detail::check_same_shape("rope", "x", x, "cos", cos);
    detail::check_same_shape("rope", "x", x, "sin", sin);
    const index_t d = x.extent(1), h = d / 2;
    if (d % 2 != 0) throw ShapeError("rope: head_dim must be even, found " + std::to_string(d));
    auto X = detail::emap(x);
    auto C = detail::emap(cos);
    auto S = detail::emap(sin);
    Eigen::Array<T, 1, Eigen::Dynamic> a(h), b(h);
    for (index_t r = 0; r < x.extent(0); ++r) {
      a = X.row(r).head(h).array();
      b = X.row(r).tail(h).array();
      if (!transpose) {
        X.row(r).head(h).array() = a * C.row(r).head(h).array() - b * S.row(r).head(h).array();
        X.row(r).tail(h).array() = b * C.row(r).tail(h).array() + a * S.row(r).tail(h).array();
      } else {
        X.row(r).head(h).array() = a * C.row(r).head(h).array() + b * S.row(r).tail(h).array();
        X.row(r).tail(h).array() = b * C.row(r).tail(h).array() - a * S.row(r).head(h).array();
      }
    }
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
      T acc = X.col(j).sum();
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
