#pragma once
// Optimisers, learning-rate schedule and EMA of SPEC §4, on host parameters.
#include <algorithm>
#include <Eigen/Core>
#include <cmath>
#include <map>
#include <numbers>
#include <string>
#include <type_traits>
#include <vector>

#include "../nn/param.hpp"

namespace trm {

// Moments of one parameter tensor.
template <class T>
struct AdamState {
  DynTensor<T, 2> m, v;
  void ensure(const DynTensor<T, 2>& like) {
    if (m.shape() != like.shape()) {
      m.resize(like.extents());
      v.resize(like.extents());
      m.zero();
      v.zero();
    }
  }
};

namespace detail {
// out[i] = sqrt(v[i]) / d, vectorised (Eigen's packet sqrt; a plain std::sqrt loop is not
// vectorised by GCC unless -fno-math-errno).
inline void sqrt_div(const float* v, float d, float* out, index_t n) {
  Eigen::Map<Eigen::ArrayXf>(out, n) = Eigen::Map<const Eigen::ArrayXf>(v, n).sqrt() / d;
}

// atan2(y, x) for x >= 0 (x = sqrt(v) here), branch-free so that a loop over it vectorises:
// Cephes' atanf (range reduction by tan(pi/8) and tan(3pi/8), degree-4 polynomial in t^2;
// relative error <= 2e-7) on t = |y| / x, sign of y restored. x = 0: t = inf gives pi/2; y = 0
// returns y itself (atan2(+-0, x) = +-0, also for x = 0, where t is NaN).
inline float atan2_nonneg_x(float y, float x) {
  const float t = std::fabs(y) / x;
  const bool big = t > 2.414213562373095f, mid = t > 0.4142135623730950f;
  const float r = big ? -1.0f / t : (mid ? (t - 1.0f) / (t + 1.0f) : t);
  const float base = big ? 1.5707963267948966f : (mid ? 0.7853981633974483f : 0.0f);
  const float z = r * r;
  const float a = base + ((((8.05374449538e-2f * z - 1.38776856032e-1f) * z + 1.99777106478e-1f) * z -
                           3.33329491539e-1f) * z * r + r);
  return y == 0.0f ? y : (y < 0.0f ? -a : a);
}
}  // namespace detail

// Adam-atan2 as the `adam-atan2` 0.0.3 package computes it (the version TRM imports; SPEC §4.1's
// text puts the first-moment bias correction inside atan2, as 0.0.2 did, which 0.0.3 reverted):
//   p <- p (1 - lr wd);  m <- lerp(m, g, 1 - b1);  v <- lerp(v, g^2, 1 - b2)
//   p <- p - (lr / (1 - b1^t)) atan2(m, sqrt(v) / sqrt(1 - b2^t))
// No epsilon: atan2 is bounded, so the step is at most lr * pi / 2 / (1 - b1^t).
struct AdamAtan2 {
  double lr = 1e-4;
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95;
  static constexpr const char* name = "AdamATan2";

  template <class T>
  void update(DynTensor<T, 2>& p, const DynTensor<T, 2>& g, AdamState<T>& s, double lr_now, long t) const {
    s.ensure(p);
    const double bc1 = 1.0 - std::pow(beta1, double(t)), bc2 = 1.0 - std::pow(beta2, double(t));
    // Scalar factors rounded to the parameter type once, as the reference's fp32 kernel does.
    const T decay = T(1.0 - lr_now * weight_decay), a1 = T(1.0 - beta1), a2 = T(1.0 - beta2);
    const T inv_sqrt_bc2 = T(std::sqrt(bc2)), step = T(lr_now / bc1);
    T* pv = p.data();
    const T* gv = g.data();
    T* mv = s.m.data();
    T* vv = s.v.data();
    if constexpr (std::is_same_v<T, float>) {
      // Vectorisable: blocks of kBlock elements, the moments' updates and sqrt in one pass, then a
      // branch-free atan2 (detail::atan2_nonneg_x, within 2e-7 of std::atan2; the update it scales
      // is at most lr * pi / 2) in a second pass over the block while it is in L1. With
      // std::atan2 this loop took ~100 ms per step for TRM's 5M parameters, half a batch-1
      // training call.
      // Blocks are spread over the CPU backend's thread pool (elementwise: same result for any split).
      constexpr index_t kBlock = 1024;
      const index_t blocks = (p.size() + kBlock - 1) / kBlock;
      detail::parallel_ranges(blocks, 16, [&](index_t blk0, index_t blk1) {
        alignas(64) float den[kBlock];
        for (index_t i0 = blk0 * kBlock; i0 < std::min(p.size(), blk1 * kBlock); i0 += kBlock) {
          const index_t n = std::min(kBlock, p.size() - i0);
          float* __restrict pb = pv + i0;
          const float* __restrict gb = gv + i0;
          float* __restrict mb = mv + i0;
          float* __restrict vb = vv + i0;
          for (index_t i = 0; i < n; ++i) {
            pb[i] *= decay;
            mb[i] += a1 * (gb[i] - mb[i]);
            vb[i] += a2 * (gb[i] * gb[i] - vb[i]);
          }
          detail::sqrt_div(vb, inv_sqrt_bc2, den, n);
          for (index_t i = 0; i < n; ++i) pb[i] -= step * detail::atan2_nonneg_x(mb[i], den[i]);
        }
      });
      return;
    }
    for (index_t i = 0; i < p.size(); ++i) {
      pv[i] *= decay;
      mv[i] += a1 * (gv[i] - mv[i]);
      vv[i] += a2 * (gv[i] * gv[i] - vv[i]);
      pv[i] -= step * std::atan2(mv[i], std::sqrt(vv[i]) / inv_sqrt_bc2);
    }
  }
};

// AdamW (decoupled weight decay), PyTorch's formula.
struct AdamW {
  double lr = 1e-3;
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  static constexpr const char* name = "AdamW";

  template <class T>
  void update(DynTensor<T, 2>& p, const DynTensor<T, 2>& g, AdamState<T>& s, double lr_now, long t) const {
    s.ensure(p);
    const double bc1 = 1.0 - std::pow(beta1, double(t)), bc2 = 1.0 - std::pow(beta2, double(t));
    const T decay = T(1.0 - lr_now * weight_decay), b1 = T(beta1), b2 = T(beta2);
    const T step = T(lr_now / bc1), sqrt_bc2 = T(std::sqrt(bc2)), e = T(eps);
    T* pv = p.data();
    const T* gv = g.data();
    T* mv = s.m.data();
    T* vv = s.v.data();
    for (index_t i = 0; i < p.size(); ++i) {
      pv[i] *= decay;
      mv[i] = b1 * mv[i] + (T(1) - b1) * gv[i];
      vv[i] = b2 * vv[i] + (T(1) - b2) * gv[i] * gv[i];
      pv[i] -= step * mv[i] / (std::sqrt(vv[i]) / sqrt_bc2 + e);
    }
  }
};

template <class O>
concept Optimizer = requires(const O& o, DynTensor<float, 2>& p, const DynTensor<float, 2>& g, AdamState<float>& s) {
  o.update(p, g, s, 1.0, 1L);
  { o.lr } -> std::convertible_to<double>;
};

// Sparse sign-SGD of the puzzle table (SPEC §4.2): gradients of repeated ids are summed; only the
// rows present in the batch are decayed and updated: w <- w (1 - lr wd) - lr sign(g_sum).
struct SignSgd {
  double lr = 1e-4;
  double weight_decay = 0.1;

  template <class T>
  void update(DynTensor<T, 2>& table, std::span<const std::int32_t> ids, const DynTensor<T, 2>& row_grads,
              double lr_now) const {
    const index_t d = table.extent(1);
    std::vector<std::int32_t> uniq(ids.begin(), ids.end());
    std::sort(uniq.begin(), uniq.end());
    uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
    std::vector<T> gsum(d);
    for (auto id : uniq) {
      if (id < 0 || id >= table.extent(0))
        throw ValueError("SignSgd: puzzle id " + std::to_string(id) + " outside [0, " + std::to_string(table.extent(0)) + ")");
      std::fill(gsum.begin(), gsum.end(), T(0));
      for (std::size_t r = 0; r < ids.size(); ++r)
        if (ids[r] == id)
          for (index_t j = 0; j < d; ++j) gsum[j] += row_grads(index_t(r), j);
      for (index_t j = 0; j < d; ++j) {
        T sign = gsum[j] > T(0) ? T(1) : (gsum[j] < T(0) ? T(-1) : T(0));
        table(id, j) = table(id, j) * T(1.0 - lr_now * weight_decay) - T(lr_now) * sign;
      }
    }
  }
};

// Linear warmup from 0, then cosine from base to base * min_ratio (SPEC §4.3). `step` counts
// optimiser steps from 1: the reference increments its counter before computing the rate.
struct LrSchedule {
  long warmup_steps = 0;
  long total_steps = 1;
  double min_ratio = 1.0;
  double operator()(double base, long step) const {
    if (step < warmup_steps) return base * double(step) / double(std::max(1L, warmup_steps));
    const double progress = double(step - warmup_steps) / double(std::max(1L, total_steps - warmup_steps));
    return base * (min_ratio + std::max(0.0, (1.0 - min_ratio) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress))));
  }
};

// Exponential moving average of the trainable parameters: shadow <- (1 - rate) theta + rate shadow.
template <class T>
struct Ema {
  double rate = 0.999;
  std::map<std::string, DynTensor<T, 2>> shadow;

  template <class M>
  void init(M& model) {
    shadow.clear();
    model.for_each_parameter([&](const std::string& n, auto& p) { shadow.emplace(n, p.value); });
  }
  template <class M>
  void update(M& model) {
    const T a = T(1.0 - rate), r = T(rate);
    model.for_each_parameter([&](const std::string& n, auto& p) {
      auto& s = shadow.at(n);
      T* sd = s.data();
      const T* pd = p.value.data();
      detail::parallel_ranges(s.size(), 16384, [&](index_t i0, index_t i1) {
        T* __restrict sv = sd;
        const T* __restrict pv = pd;
        for (index_t i = i0; i < i1; ++i) sv[i] = a * pv[i] + r * sv[i];
      });
    });
  }
  // A separate model with the averaged weights (everything else, buffers included, copied from
  // `live`): the live model is never overwritten, so the two cannot be confused.
  template <class M>
  M averaged_model(const M& live) const {
    if (shadow.empty()) throw std::logic_error("Ema::averaged_model: the EMA was never initialised (ema_rate = 0?)");
    M out = live;
    out.for_each_parameter([&](const std::string& n, auto& p) { p.value = shadow.at(n); });
    return out;
  }
};

}  // namespace trm
