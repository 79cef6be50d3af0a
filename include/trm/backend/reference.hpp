#pragma once
// trm::reference: the plain-loop backend. Obviously correct and slow; it is the oracle the tests
// compare the fast backends against, and the proof that the backend seam holds more than one
// implementation. Every op of the set is documented here; trm::cpu and trm::cuda follow the same
// contracts.
#include <cmath>
#include <cstdint>
#include <limits>

#include "model_ops.hpp"
#include "ops.hpp"

namespace trm {

// The model-level ops (model_ops.hpp) come from host_model_ops, shared with trm::cpu.
struct reference : host_model_ops<reference> {
  using memory_space = host_space;
  static constexpr const char* name = "reference";

  static void set_num_threads(int) {}
  static int num_threads() { return 1; }
  static void synchronize() {}

  // C = alpha * op(A) * op(B) + beta * C. With beta == 0, C is overwritten and never read (so
  // uninitialised or NaN contents do not leak into the result).
  template <class T>
  static void gemm(Trans ta, Trans tb, T alpha, CMatrixView<T> a, CMatrixView<T> b, T beta, MatrixView<T> c) {
    detail::check_gemm(ta, tb, a, b, c);
    const index_t m = c.extent(0), n = c.extent(1);
    const index_t k = ta == Trans::N ? a.extent(1) : a.extent(0);
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) {
        T acc = 0;
        for (index_t p = 0; p < k; ++p) {
          T av = ta == Trans::N ? a(i, p) : a(p, i);
          T bv = tb == Trans::N ? b(p, j) : b(j, p);
          acc += av * bv;
        }
        c(i, j) = beta == T(0) ? alpha * acc : alpha * acc + beta * c(i, j);
      }
  }

  template <class T>
  static void copy(CMatrixView<T> x, MatrixView<T> y) {
    detail::check_same_shape("copy", "x", x, "y", y);
    for (index_t i = 0; i < x.extent(0); ++i)
      for (index_t j = 0; j < x.extent(1); ++j) y(i, j) = x(i, j);
  }

  template <class T>
  static void fill(MatrixView<T> y, T value) {
    for (index_t i = 0; i < y.extent(0); ++i)
      for (index_t j = 0; j < y.extent(1); ++j) y(i, j) = value;
  }

  // y *= alpha
  template <class T>
  static void scale(MatrixView<T> y, T alpha) {
    for (index_t i = 0; i < y.extent(0); ++i)
      for (index_t j = 0; j < y.extent(1); ++j) y(i, j) *= alpha;
  }

  // y += alpha * x
  template <class T>
  static void axpy(T alpha, CMatrixView<T> x, MatrixView<T> y) {
    detail::check_same_shape("axpy", "x", x, "y", y);
    for (index_t i = 0; i < x.extent(0); ++i)
      for (index_t j = 0; j < x.extent(1); ++j) y(i, j) += alpha * x(i, j);
  }

  // out = a + b (out may alias a or b)
  template <class T>
  static void add(CMatrixView<T> a, CMatrixView<T> b, MatrixView<T> out) {
    detail::check_same_shape("add", "a", a, "b", b);
    detail::check_same_shape("add", "a", a, "out", out);
    for (index_t i = 0; i < a.extent(0); ++i)
      for (index_t j = 0; j < a.extent(1); ++j) out(i, j) = a(i, j) + b(i, j);
  }

  // out[b] = in[b]^T for every b of [B, M, N] -> [B, N, M]; accumulate: out[b] += in[b]^T.
  template <class T>
  static void transpose_batched(Tensor3View<const T> in, Tensor3View<T> out, bool accumulate) {
    if (out.extent(0) != in.extent(0) || out.extent(1) != in.extent(2) || out.extent(2) != in.extent(1))
      throw ShapeError("transpose_batched: expected out of shape " +
                       format_shape({in.extent(0), in.extent(2), in.extent(1)}) + ", found " + format_shape(out.shape()));
    for (index_t b = 0; b < in.extent(0); ++b)
      for (index_t i = 0; i < in.extent(1); ++i)
        for (index_t j = 0; j < in.extent(2); ++j) {
          if (accumulate)
            out(b, j, i) += in(b, i, j);
          else
            out(b, j, i) = in(b, i, j);
        }
  }

  // SwiGLU activation on a fused projection: gate_up = [gate | up] (each [rows, inter]);
  // out = silu(gate) * up, silu(g) = g * sigmoid(g).
  template <class T>
  static void swiglu_forward(CMatrixView<T> gate_up, MatrixView<T> out) {
    detail::check_swiglu(gate_up, out, "out");
    const index_t inter = out.extent(1);
    for (index_t r = 0; r < out.extent(0); ++r)
      for (index_t j = 0; j < inter; ++j) {
        T g = gate_up(r, j), u = gate_up(r, j + inter);
        out(r, j) = g / (T(1) + std::exp(-g)) * u;
      }
  }

  // dgate_up = d out / d [gate | up] applied to dout (overwrites dgate_up).
  // d/dg silu(g) = s * (1 + g * (1 - s)), s = sigmoid(g).
  template <class T>
  static void swiglu_backward(CMatrixView<T> gate_up, CMatrixView<T> dout, MatrixView<T> dgate_up) {
    detail::check_swiglu(gate_up, dout, "dout");
    detail::check_same_shape("swiglu_backward", "gate_up", gate_up, "dgate_up", dgate_up);
    const index_t inter = dout.extent(1);
    for (index_t r = 0; r < dout.extent(0); ++r)
      for (index_t j = 0; j < inter; ++j) {
        T g = gate_up(r, j), u = gate_up(r, j + inter), d = dout(r, j);
        T s = T(1) / (T(1) + std::exp(-g));
        dgate_up(r, j) = d * u * s * (T(1) + g * (T(1) - s));
        dgate_up(r, j + inter) = d * g * s;
      }
  }

  // RMSNorm without scale over each row: rstd[r] = 1/sqrt(mean_j x[r,j]^2 + eps); y = x * rstd.
  // Statistics in double for float inputs, as the reference computes its norm in fp32 from bf16.
  template <class T>
  static void rmsnorm_forward(CMatrixView<T> x, MatrixView<T> y, VectorView<T> rstd, T eps) {
    detail::check_same_shape("rmsnorm_forward", "x", x, "y", y);
    detail::check_vector_size("rmsnorm_forward", "rstd", rstd, x.extent(0));
    for (index_t r = 0; r < x.extent(0); ++r) {
      double ss = 0;
      for (index_t j = 0; j < x.extent(1); ++j) ss += double(x(r, j)) * double(x(r, j));
      T rs = T(1.0 / std::sqrt(ss / double(x.extent(1)) + double(eps)));
      rstd(r) = rs;
      for (index_t j = 0; j < x.extent(1); ++j) y(r, j) = x(r, j) * rs;
    }
  }

  // From the normalised output y and rstd: dx = rstd * (dy - y * mean_j(dy * y)).
  // accumulate: dx += that; else dx = that.
  template <class T>
  static void rmsnorm_backward(CMatrixView<T> y, CVectorView<T> rstd, CMatrixView<T> dy, MatrixView<T> dx,
                               bool accumulate) {
    detail::check_same_shape("rmsnorm_backward", "y", y, "dy", dy);
    detail::check_same_shape("rmsnorm_backward", "y", y, "dx", dx);
    detail::check_vector_size("rmsnorm_backward", "rstd", rstd, y.extent(0));
    for (index_t r = 0; r < y.extent(0); ++r) {
      double dot = 0;
      for (index_t j = 0; j < y.extent(1); ++j) dot += double(dy(r, j)) * double(y(r, j));
      T mean = T(dot / double(y.extent(1)));
      for (index_t j = 0; j < y.extent(1); ++j) {
        T g = rstd(r) * (dy(r, j) - y(r, j) * mean);
        dx(r, j) = accumulate ? dx(r, j) + g : g;
      }
    }
  }

  // In place: s[r,:] = softmax(scale * s[r,:]).
  template <class T>
  static void softmax_rows(MatrixView<T> s, T scale) {
    for (index_t r = 0; r < s.extent(0); ++r) {
      T mx = -std::numeric_limits<T>::infinity();
      for (index_t j = 0; j < s.extent(1); ++j) mx = std::max(mx, scale * s(r, j));
      T sum = 0;
      for (index_t j = 0; j < s.extent(1); ++j) {
        s(r, j) = std::exp(scale * s(r, j) - mx);
        sum += s(r, j);
      }
      for (index_t j = 0; j < s.extent(1); ++j) s(r, j) /= sum;
    }
  }

  // Backward of softmax_rows: ds = scale * p * (dp - sum_j dp*p). ds may alias dp.
  template <class T>
  static void softmax_rows_backward(CMatrixView<T> p, CMatrixView<T> dp, MatrixView<T> ds, T scale) {
    detail::check_same_shape("softmax_rows_backward", "p", p, "dp", dp);
    detail::check_same_shape("softmax_rows_backward", "p", p, "ds", ds);
    for (index_t r = 0; r < p.extent(0); ++r) {
      T dot = 0;
      for (index_t j = 0; j < p.extent(1); ++j) dot += dp(r, j) * p(r, j);
      for (index_t j = 0; j < p.extent(1); ++j) ds(r, j) = scale * p(r, j) * (dp(r, j) - dot);
    }
  }

  // Rotary embedding, rotate-half layout, in place on the rows of x ([k seq, head_dim], strided:
  // k >= 1 sequences stacked, tables [seq, head_dim], row r of x at position r mod seq):
  // x'[i] = x[i] cos[i] - x[i+h] sin[i] (i < h), x'[i] = x[i] cos[i] + x[i-h] sin[i] (i >= h).
  // transpose = true applies the transposed map (the backward of the forward map).
  template <class T>
  static void rope(MatrixView<T> x, CMatrixView<T> cos, CMatrixView<T> sin, bool transpose) {
    detail::check_rope_tables(x, cos, sin);
    const index_t d = x.extent(1), h = d / 2;
    if (d % 2 != 0) throw ShapeError("rope: head_dim must be even, found " + std::to_string(d));
    for (index_t r = 0; r < x.extent(0); ++r)
      for (index_t i = 0; i < h; ++i) {
        const index_t p = r % cos.extent(0);
        T a = x(r, i), b = x(r, i + h);
        if (!transpose) {
          x(r, i) = a * cos(p, i) - b * sin(p, i);
          x(r, i + h) = b * cos(p, i + h) + a * sin(p, i + h);
        } else {
          x(r, i) = a * cos(p, i) + b * sin(p, i + h);
          x(r, i + h) = b * cos(p, i + h) - a * sin(p, i);
        }
      }
  }

  // out[r,:] = scale * table[ids[r],:]; ids out of range throw.
  template <class T>
  static void gather_rows(CMatrixView<T> table, CVectorView<std::int32_t> ids, T scale, MatrixView<T> out) {
    detail::check_vector_size("gather_rows", "ids", ids, out.extent(0));
    if (out.extent(1) != table.extent(1))
      throw ShapeError("gather_rows: expected out of width " + std::to_string(table.extent(1)) + ", found shape " +
                       format_shape(out.shape()));
    for (index_t r = 0; r < out.extent(0); ++r) {
      auto id = ids(r);
      if (id < 0 || id >= table.extent(0))
        throw ValueError("gather_rows: id " + std::to_string(id) + " at row " + std::to_string(r) +
                         " is out of range [0, " + std::to_string(table.extent(0)) + ")");
      for (index_t j = 0; j < out.extent(1); ++j) out(r, j) = scale * table(id, j);
    }
  }

  // dtable[ids[r],:] += scale * dout[r,:] (rows of repeated ids accumulate in order of r).
  template <class T>
  static void scatter_add_rows(CMatrixView<T> dout, CVectorView<std::int32_t> ids, T scale, MatrixView<T> dtable) {
    detail::check_vector_size("scatter_add_rows", "ids", ids, dout.extent(0));
    if (dout.extent(1) != dtable.extent(1))
      throw ShapeError("scatter_add_rows: expected dout of width " + std::to_string(dtable.extent(1)) +
                       ", found shape " + format_shape(dout.shape()));
    for (index_t r = 0; r < dout.extent(0); ++r) {
      auto id = ids(r);
      if (id < 0 || id >= dtable.extent(0))
        throw ValueError("scatter_add_rows: id " + std::to_string(id) + " at row " + std::to_string(r) +
                         " is out of range [0, " + std::to_string(dtable.extent(0)) + ")");
      for (index_t j = 0; j < dout.extent(1); ++j) dtable(id, j) += scale * dout(r, j);
    }
  }

  // Column sums: out[j] = sum_r x[r,j] (accumulate: +=). Bias gradients.
  template <class T>
  static void sum_rows(CMatrixView<T> x, VectorView<T> out, bool accumulate) {
    detail::check_vector_size("sum_rows", "out", out, x.extent(1));
    for (index_t j = 0; j < x.extent(1); ++j) {
      T acc = 0;
      for (index_t r = 0; r < x.extent(0); ++r) acc += x(r, j);
      out(j) = accumulate ? out(j) + acc : acc;
    }
  }

  // sum of a * b over all elements, accumulated in double.
  template <class T>
  static double dot(CMatrixView<T> a, CMatrixView<T> b) {
    detail::check_same_shape("dot", "a", a, "b", b);
    double acc = 0;
    for (index_t i = 0; i < a.extent(0); ++i)
      for (index_t j = 0; j < a.extent(1); ++j) acc += double(a(i, j)) * double(b(i, j));
    return acc;
  }
};

}  // namespace trm
