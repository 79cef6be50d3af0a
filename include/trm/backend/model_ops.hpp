#pragma once
// The model-level part of the op set: what the model, trainer and solver need above the layers
// (the batched embedding gather and its scatter, resets of halted rows, argmax, the token losses,
// the optimiser updates, the EMA, sign-SGD of the puzzle rows, the finiteness check). Every
// backend provides them as static members with the signatures below, so that nothing above
// backend/ reads or writes memory of a backend's space itself.
//
// This header holds their shared declarations (LossType, TokenLossResult, the optimisers' scalar
// factors, PuzzleRowSegments) and the host implementation, `host_model_ops<Backend>`, which
// trm::reference and trm::cpu inherit (one implementation: the CPU path is the one the fixtures
// pin down, bit for bit). trm::cuda implements the same contracts with kernels (cuda.hpp).
//
//   gather_rows3(table [V, D], ids [B, L], scale, out [B, L, D])        out[b,t] = scale table[ids[b,t]]
//   scatter_add_rows3(dout [B, L, D], ids [B, L], scale, dtable [V, D]) dtable[ids[b,t]] += scale dout[b,t]
//   broadcast_rows(row [1, D], out [R, D])                               every row of out = row
//   argmax_rows(logits [B, L, V], out [B, L])                            first index of the largest logit
//   token_loss(type, logits [B, L, V], labels [B, L], dlogits, grad_scale) -> TokenLossResult (on the host)
//   adam_atan2_update(p, g, m, v, AdamAtan2Step), adamw_update(p, g, m, v, AdamWStep)   flat, elementwise
//   axpby(a, x, b, y)                                                    y = a x + b y (the EMA)
//   sign_sgd_rows(table, row_grads [B, D], segments, decay, lr)         the puzzle table's update
//   first_non_finite(x) -> std::ptrdiff_t                                flat index of the first NaN/inf, or -1
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "cpu_pool.hpp"
#include "ops.hpp"

namespace trm {

enum class LossType { stablemax_cross_entropy, softmax_cross_entropy };

// Per-row results of a token loss (host memory, whatever the backend).
struct TokenLossResult {
  double loss = 0;                        // sum over rows of (sum of CE over supervised tokens / max(count,1))
  std::vector<std::int32_t> count;        // supervised tokens per row
  std::vector<std::uint8_t> seq_correct;  // every supervised token's argmax equals its label
  std::vector<double> accuracy;           // per row: correct / max(count, 1)
};

// The scalar factors of one AdamATan2 / AdamW step, rounded to the parameter type once (as the
// reference's fp32 kernels do); computed by the optimisers (train/optim.hpp).
template <class T>
struct AdamAtan2Step {
  T decay, a1, a2, inv_sqrt_bc2, step;
};
template <class T>
struct AdamWStep {
  T decay, b1, b2, step, sqrt_bc2, eps;
};

// The rows of a batch grouped by puzzle id, in a fixed order: ids ascending, and within an id
// the batch rows ascending. Built on the host from the batch's ids (which the host has: it made
// the batch), uploaded by the caller for a device backend. The sums of sign-SGD then follow this
// order on every backend, so results never depend on the order of atomics.
struct PuzzleRowSegments {
  std::vector<std::int32_t> ids;      // [U] distinct ids, ascending
  std::vector<std::int32_t> offsets;  // [U + 1] segment u = rows[offsets[u] .. offsets[u+1])
  std::vector<std::int32_t> rows;     // [B] batch rows, grouped by id

  static PuzzleRowSegments of(std::span<const std::int32_t> batch_ids) {
    PuzzleRowSegments s;
    s.rows.resize(batch_ids.size());
    std::iota(s.rows.begin(), s.rows.end(), 0);
    std::stable_sort(s.rows.begin(), s.rows.end(), [&](std::int32_t a, std::int32_t b) { return batch_ids[a] < batch_ids[b]; });
    for (std::size_t i = 0; i < s.rows.size(); ++i) {
      const auto id = batch_ids[std::size_t(s.rows[i])];
      if (s.ids.empty() || s.ids.back() != id) {
        s.ids.push_back(id);
        s.offsets.push_back(std::int32_t(i));
      }
    }
    s.offsets.push_back(std::int32_t(s.rows.size()));
    return s;
  }
};

// s(v) = v + 1 (v >= 0), 1 / (1 - v + 1e-30) (v < 0); s'(v) = 1 (v >= 0), s(v)^2 (v < 0).
inline double stablemax_s(double v) { return v >= 0 ? v + 1.0 : 1.0 / (1.0 - v + 1e-30); }
inline double stablemax_ds(double v) {
  if (v >= 0) return 1.0;
  double s = 1.0 / (1.0 - v + 1e-30);
  return s * s;
}

namespace detail {

inline CVectorView<std::int32_t> id_row(CMatrixView<std::int32_t> ids, index_t b) {
  return CVectorView<std::int32_t>(ids.data() + b * ids.stride(0), DynExtents<1>{ids.extent(1)}, {ids.stride(1)});
}

inline void check_ids3(const char* op, index_t ids_b, index_t ids_l, index_t b, index_t l) {
  if (ids_b != b || ids_l != l)
    throw ShapeError(std::string(op) + ": ids must be [batch, positions] = " + format_shape({b, l}) + " of the rows, found " +
                     format_shape({ids_b, ids_l}));
}

// The shape checks of a token loss (labels [B, L], dlogits empty or [B, L, V]) and its empty
// result (every backend's token_loss starts here).
template <class Logits, class Labels, class Grad>
TokenLossResult token_loss_start(const Logits& logits, const Labels& labels, const Grad& dlogits) {
  const index_t b = logits.extent(0), l = logits.extent(1), v = logits.extent(2);
  check_shape("token_loss: labels", std::vector<index_t>{b, l}, labels.shape());
  if (dlogits.data() != nullptr) check_shape("token_loss: dlogits", std::vector<index_t>{b, l, v}, dlogits.shape());
  TokenLossResult res;
  res.count.assign(b, 0);
  res.seq_correct.assign(b, 1);
  res.accuracy.assign(b, 0.0);
  return res;
}

// The error of a label outside [0, V) that is not the ignore label, at [r, t].
[[noreturn]] inline void throw_bad_label(std::int32_t y, index_t r, index_t t, index_t v) {
  throw ValueError("token_loss: label " + std::to_string(y) + " at [" + std::to_string(r) + ", " + std::to_string(t) +
                   "] is outside [0, " + std::to_string(v) + ") and is not the ignore label -100");
}

// Token losses of SPEC §3, computed in double as the reference computes stablemax: per sequence,
// the mean over supervised tokens (label != ignore), summed over the batch. dlogits (may be
// empty) receives grad_scale * d(loss)/d(logits). Labels outside [0, V) other than ignore_label
// are an error.
template <class T>
TokenLossResult host_token_loss(LossType type, CTensor3View<T> logits, CMatrixView<std::int32_t> labels, Tensor3View<T> dlogits,
                                double grad_scale) {
  const index_t b = logits.extent(0), l = logits.extent(1), v = logits.extent(2);
  TokenLossResult res = token_loss_start(logits, labels, dlogits);
  const bool want_grad = dlogits.data() != nullptr;
  std::vector<double> s(v), p(v);
  for (index_t r = 0; r < b; ++r) {
    int count = 0, correct = 0;
    for (index_t t = 0; t < l; ++t) count += labels(r, t) != ignore_label;
    const double div = std::max(count, 1);
    double row_loss = 0;
    for (index_t t = 0; t < l; ++t) {
      const std::int32_t y = labels(r, t);
      if (y == ignore_label) {
        if (want_grad)
          for (index_t k = 0; k < v; ++k) dlogits(r, t, k) = T(0);
        continue;
      }
      if (y < 0 || y >= v) throw_bad_label(y, r, t, v);
      index_t argmax = 0;
      for (index_t k = 1; k < v; ++k)
        if (logits(r, t, k) > logits(r, t, argmax)) argmax = k;
      correct += argmax == y;
      double sum = 0;
      if (type == LossType::stablemax_cross_entropy) {
        for (index_t k = 0; k < v; ++k) sum += (s[k] = stablemax_s(double(logits(r, t, k))));
        row_loss += -std::log(s[y] / sum);
        if (want_grad) {
          // d(-log s_y + log sum)/dl_k = s'_k / sum - [k = y] s'_y / s_y
          for (index_t k = 0; k < v; ++k) {
            double lk = double(logits(r, t, k));
            double gk = stablemax_ds(lk) / sum - (k == y ? stablemax_ds(lk) / s[k] : 0.0);
            dlogits(r, t, k) = T(grad_scale * gk / div);
          }
        }
      } else {
        double mx = -std::numeric_limits<double>::infinity();
        for (index_t k = 0; k < v; ++k) mx = std::max(mx, double(logits(r, t, k)));
        for (index_t k = 0; k < v; ++k) sum += (p[k] = std::exp(double(logits(r, t, k)) - mx));
        row_loss += -(double(logits(r, t, y)) - mx - std::log(sum));
        if (want_grad)
          for (index_t k = 0; k < v; ++k) dlogits(r, t, k) = T(grad_scale * (p[k] / sum - (k == y)) / div);
      }
    }
    res.loss += row_loss / div;
    res.count[r] = count;
    res.seq_correct[r] = correct == count;
    res.accuracy[r] = correct / div;
  }
  return res;
}

// out[i] = sqrt(v[i]) / d, vectorised (Eigen's packet sqrt; a plain std::sqrt loop is not
// vectorised by GCC unless -fno-math-errno).
inline void sqrt_div(const float* v, float d, float* out, index_t n) {
  Eigen::Map<Eigen::ArrayXf>(out, n) = Eigen::Map<const Eigen::ArrayXf>(v, n).sqrt() / d;
}

// atan2(y, x) for x >= 0 (x = sqrt(v) here), branch-free so that a loop over it vectorises:
// Cephes' atanf (range reduction by tan(pi/8) and tan(3pi/8), degree-4 polynomial in t^2;
// relative error <= 2e-7) on t = |y| / x, sign of y restored. x = 0: t = inf gives pi/2; y = 0
// returns y itself (atan2(+-0, x) = +-0, also for x = 0, where t is NaN). trm::cuda's kernel uses
// the same function (it is plain arithmetic), so both backends round alike.
#if defined(__CUDACC__)
__host__ __device__
#endif
inline float atan2_nonneg_x(float y, float x) {
  const float t = fabsf(y) / x;
  const bool big = t > 2.414213562373095f, mid = t > 0.4142135623730950f;
  const float r = big ? -1.0f / t : (mid ? (t - 1.0f) / (t + 1.0f) : t);
  const float base = big ? 1.5707963267948966f : (mid ? 0.7853981633974483f : 0.0f);
  const float z = r * r;
  const float a = base + ((((8.05374449538e-2f * z - 1.38776856032e-1f) * z + 1.99777106478e-1f) * z -
                           3.33329491539e-1f) * z * r + r);
  return y == 0.0f ? y : (y < 0.0f ? -a : a);
}

template <class T>
void check_flat_same(const char* op, const char* name, const MatrixView<const T>& a, index_t n) {
  if (!a.is_contiguous() || a.size() != n)
    throw ShapeError(std::string(op) + ": " + name + " must be contiguous with " + std::to_string(n) + " elements, found shape " +
                     format_shape(a.shape()));
}

// Flat index of the first NaN or infinity in `v`, or -1. The clean case (every call) is one
// vectorised pass (Eigen's allFinite, at memory speed); only a bad tensor is scanned again.
template <class T>
std::ptrdiff_t first_non_finite(std::span<const T> v) {
  using A = Eigen::Array<T, Eigen::Dynamic, 1>;
  if (v.empty() || Eigen::Map<const A>(v.data(), Eigen::Index(v.size())).allFinite()) return -1;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) return std::ptrdiff_t(i);
  return -1;
}

}  // namespace detail

// A backend that runs whole models: the layer op set (Backend) and the model-level ops above,
// checked for float. Model, Trainer and Solver require it.
template <class B>
concept ModelBackend = Backend<B> &&
    requires(MatrixView<float, typename B::memory_space> m, CMatrixView<float, typename B::memory_space> c,
             CMatrixView<std::int32_t, typename B::memory_space> ids, MatrixView<std::int32_t, typename B::memory_space> out_ids,
             CVectorView<std::int32_t, typename B::memory_space> seg, Tensor3View<float, typename B::memory_space> t3,
             CTensor3View<float, typename B::memory_space> ct3) {
      B::template gather_rows3<float>(c, ids, 1.0f, t3);
      B::template scatter_add_rows3<float>(ct3, ids, 1.0f, m);
      B::template broadcast_rows<float>(c, m);
      B::template argmax_rows<float>(ct3, out_ids);
      { B::template token_loss<float>(LossType::stablemax_cross_entropy, ct3, ids, t3, 1.0) } -> std::same_as<TokenLossResult>;
      B::template adam_atan2_update<float>(m, c, m, m, AdamAtan2Step<float>{});
      B::template adamw_update<float>(m, c, m, m, AdamWStep<float>{});
      B::template axpby<float>(1.0f, c, 1.0f, m);
      B::template sign_sgd_rows<float>(m, c, seg, seg, seg, 1.0f, 1.0f);
      { B::template first_non_finite<float>(c) } -> std::convertible_to<std::ptrdiff_t>;
    };

// The host implementation of the model-level ops, for a host backend `Derived` (its 2-D
// gather/scatter are used for the rows of the batched versions).
template <class Derived>
struct host_model_ops {
  // C_i = alpha op(A_i) op(B_i) + beta C_i for i < count, X_i = X's view shifted by i * stride_x
  // elements (attention's heads of every batch row in one call): count calls of the backend's gemm.
  template <class T>
  static void gemm_batched(Trans ta, Trans tb, T alpha, CMatrixView<T> a, index_t stride_a, CMatrixView<T> b, index_t stride_b,
                           T beta, MatrixView<T> c, index_t stride_c, index_t count) {
    for (index_t i = 0; i < count; ++i)
      Derived::gemm(ta, tb, alpha, CMatrixView<T>(a.data() + i * stride_a, a.extents(), a.strides()),
                    CMatrixView<T>(b.data() + i * stride_b, b.extents(), b.strides()), beta,
                    MatrixView<T>(c.data() + i * stride_c, c.extents(), c.strides()));
  }
  template <class T>
  static void gather_rows3(CMatrixView<T> table, CMatrixView<std::int32_t> ids, T scale, Tensor3View<T> out) {
    detail::check_ids3("gather_rows3", ids.extent(0), ids.extent(1), out.extent(0), out.extent(1));
    for (index_t b = 0; b < out.extent(0); ++b) Derived::gather_rows(table, detail::id_row(ids, b), scale, slice0(out, b));
  }
  template <class T>
  static void scatter_add_rows3(CTensor3View<T> dout, CMatrixView<std::int32_t> ids, T scale, MatrixView<T> dtable) {
    detail::check_ids3("scatter_add_rows3", ids.extent(0), ids.extent(1), dout.extent(0), dout.extent(1));
    for (index_t b = 0; b < dout.extent(0); ++b)
      Derived::scatter_add_rows(slice0(dout, b), detail::id_row(ids, b), scale, dtable);
  }
  template <class T>
  static void broadcast_rows(CMatrixView<T> row, MatrixView<T> out) {
    if (row.extent(0) != 1 || row.extent(1) != out.extent(1))
      throw ShapeError("broadcast_rows: expected one row of width " + std::to_string(out.extent(1)) + ", found " +
                       format_shape(row.shape()));
    for (index_t r = 0; r < out.extent(0); ++r)
      for (index_t j = 0; j < out.extent(1); ++j) out(r, j) = row(0, j);
  }
  template <class T>
  static void argmax_rows(CTensor3View<T> logits, MatrixView<std::int32_t> out) {
    detail::check_ids3("argmax_rows", out.extent(0), out.extent(1), logits.extent(0), logits.extent(1));
    for (index_t b = 0; b < logits.extent(0); ++b)
      for (index_t t = 0; t < logits.extent(1); ++t) {
        index_t best = 0;
        for (index_t k = 1; k < logits.extent(2); ++k)
          if (logits(b, t, k) > logits(b, t, best)) best = k;
        out(b, t) = std::int32_t(best);
      }
  }
  template <class T>
  static TokenLossResult token_loss(LossType type, CTensor3View<T> logits, CMatrixView<std::int32_t> labels,
                                    Tensor3View<T> dlogits, double grad_scale) {
    return detail::host_token_loss<T>(type, logits, labels, dlogits, grad_scale);
  }

  //   p <- p decay;  m <- m + a1 (g - m);  v <- v + a2 (g^2 - v);  p <- p - step atan2(m, sqrt(v) / inv_sqrt_bc2)
  template <class T>
  static void adam_atan2_update(MatrixView<T> p, CMatrixView<T> g, MatrixView<T> m, MatrixView<T> v, AdamAtan2Step<T> k) {
    const index_t n = p.size();
    check_flat<T>("adam_atan2_update", p, g, m, v);
    T* pv = p.data();
    const T* gv = g.data();
    T* mv = m.data();
    T* vv = v.data();
    if constexpr (std::is_same_v<T, float>) {
      // Vectorisable: blocks of kBlock elements, the moments' updates and sqrt in one pass, then a
      // branch-free atan2 (detail::atan2_nonneg_x, within 2e-7 of std::atan2; the update it scales
      // is at most lr * pi / 2) in a second pass over the block while it is in L1. With
      // std::atan2 this loop took ~100 ms per step for TRM's 5M parameters, half a batch-1
      // training call. Blocks are spread over the CPU pool (elementwise: same result for any split).
      constexpr index_t kBlock = 1024;
      const index_t blocks = (n + kBlock - 1) / kBlock;
      detail::parallel_ranges(blocks, 16, [&](index_t blk0, index_t blk1) {
        alignas(64) float den[kBlock];
        for (index_t i0 = blk0 * kBlock; i0 < std::min(n, blk1 * kBlock); i0 += kBlock) {
          const index_t len = std::min(kBlock, n - i0);
          float* __restrict pb = pv + i0;
          const float* __restrict gb = gv + i0;
          float* __restrict mb = mv + i0;
          float* __restrict vb = vv + i0;
          for (index_t i = 0; i < len; ++i) {
            pb[i] *= k.decay;
            mb[i] += k.a1 * (gb[i] - mb[i]);
            vb[i] += k.a2 * (gb[i] * gb[i] - vb[i]);
          }
          detail::sqrt_div(vb, k.inv_sqrt_bc2, den, len);
          for (index_t i = 0; i < len; ++i) pb[i] -= k.step * detail::atan2_nonneg_x(mb[i], den[i]);
        }
      });
    } else {
      for (index_t i = 0; i < n; ++i) {
        pv[i] *= k.decay;
        mv[i] += k.a1 * (gv[i] - mv[i]);
        vv[i] += k.a2 * (gv[i] * gv[i] - vv[i]);
        pv[i] -= k.step * std::atan2(mv[i], std::sqrt(vv[i]) / k.inv_sqrt_bc2);
      }
    }
  }

  //   p <- p decay;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  p <- p - step m / (sqrt(v) / sqrt_bc2 + eps)
  template <class T>
  static void adamw_update(MatrixView<T> p, CMatrixView<T> g, MatrixView<T> m, MatrixView<T> v, AdamWStep<T> k) {
    check_flat<T>("adamw_update", p, g, m, v);
    T* pv = p.data();
    const T* gv = g.data();
    T* mv = m.data();
    T* vv = v.data();
    for (index_t i = 0; i < p.size(); ++i) {
      pv[i] *= k.decay;
      mv[i] = k.b1 * mv[i] + (T(1) - k.b1) * gv[i];
      vv[i] = k.b2 * vv[i] + (T(1) - k.b2) * gv[i] * gv[i];
      pv[i] -= k.step * mv[i] / (std::sqrt(vv[i]) / k.sqrt_bc2 + k.eps);
    }
  }

  // y = a x + b y, elementwise over contiguous tensors of the same shape.
  template <class T>
  static void axpby(T a, CMatrixView<T> x, T b, MatrixView<T> y) {
    detail::check_same_shape("axpby", "y", y, "x", x);
    if (!x.is_contiguous() || !y.is_contiguous()) throw ShapeError("axpby: expected contiguous x and y");
    T* yd = y.data();
    const T* xd = x.data();
    detail::parallel_ranges(y.size(), 16384, [&](index_t i0, index_t i1) {
      T* __restrict yv = yd;
      const T* __restrict xv = xd;
      for (index_t i = i0; i < i1; ++i) yv[i] = a * xv[i] + b * yv[i];
    });
  }

  // Sparse sign-SGD (SPEC §4.2): for each segment u (ids ascending), g = the sum of its rows'
  // gradients in row order, table[id_u] <- table[id_u] decay - lr sign(g). seg_ids / offsets /
  // rows are PuzzleRowSegments in the backend's space; ids are checked against the table.
  template <class T>
  static void sign_sgd_rows(MatrixView<T> table, CMatrixView<T> row_grads, CVectorView<std::int32_t> seg_ids,
                            CVectorView<std::int32_t> offsets, CVectorView<std::int32_t> rows, T decay, T lr) {
    const index_t d = table.extent(1);
    if (row_grads.extent(1) != d)
      throw ShapeError("sign_sgd_rows: expected row gradients of width " + std::to_string(d) + ", found " +
                       format_shape(row_grads.shape()));
    std::vector<T> gsum(static_cast<std::size_t>(d));
    for (index_t u = 0; u < seg_ids.extent(0); ++u) {
      const auto id = seg_ids(u);
      if (id < 0 || id >= table.extent(0))
        throw ValueError("SignSgd: puzzle id " + std::to_string(id) + " outside [0, " + std::to_string(table.extent(0)) + ")");
      std::fill(gsum.begin(), gsum.end(), T(0));
      for (auto i = offsets(u); i < offsets(u + 1); ++i)
        for (index_t j = 0; j < d; ++j) gsum[std::size_t(j)] += row_grads(rows(i), j);
      for (index_t j = 0; j < d; ++j) {
        const T g = gsum[std::size_t(j)];
        const T sign = g > T(0) ? T(1) : (g < T(0) ? T(-1) : T(0));
        table(id, j) = table(id, j) * decay - lr * sign;
      }
    }
  }

  template <class T>
  static std::ptrdiff_t first_non_finite(CMatrixView<T> x) {
    return detail::first_non_finite(std::span<const T>(x.span()));
  }

 private:
  template <class T>
  static void check_flat(const char* op, MatrixView<T> p, CMatrixView<T> g, CMatrixView<T> m, CMatrixView<T> v) {
    const index_t n = p.size();
    detail::check_flat_same<T>(op, "p", p, n);
    detail::check_flat_same<T>(op, "g", g, n);
    detail::check_flat_same<T>(op, "m", m, n);
    detail::check_flat_same<T>(op, "v", v, n);
  }
};

}  // namespace trm
