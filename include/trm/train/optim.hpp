#pragma once
// Optimisers, learning-rate schedule and EMA of SPEC §4, on parameters of any backend.
#include <algorithm>
#include <Eigen/Core>
#include <cmath>
#include <map>
#include <numbers>
#include <string>
#include <type_traits>
#include <vector>

#include "../backend/model_ops.hpp"
#include "../nn/param.hpp"

namespace trm {

// Moments of one parameter tensor, in the parameter's memory space.
template <class T, MemorySpace Space = host_space>
struct AdamState {
  DynTensor<T, 2, Space> m, v;
  void ensure(const DynTensor<T, 2, Space>& like) {
    if (m.shape() != like.shape()) {
      m.resize(like.extents());
      v.resize(like.extents());
      m.zero();
      v.zero();
    }
  }
};

// The optimisers hold hyperparameters and compute each step's scalar factors; the elementwise
// work is the backend's (B::adam_atan2_update, B::adamw_update: backend/model_ops.hpp), so the
// same optimiser runs on every backend. B defaults to trm::cpu for host tensors.
//
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

  template <class B = cpu, class T, MemorySpace S>
  void update(DynTensor<T, 2, S>& p, const DynTensor<T, 2, S>& g, AdamState<T, S>& s, double lr_now, long t) const {
    static_assert(std::is_same_v<typename B::memory_space, S>, "AdamAtan2::update: the backend's memory space is not the tensors'");
    s.ensure(p);
    const double bc1 = 1.0 - std::pow(beta1, double(t)), bc2 = 1.0 - std::pow(beta2, double(t));
    // Scalar factors rounded to the parameter type once, as the reference's fp32 kernel does.
    const AdamAtan2Step<T> k{T(1.0 - lr_now * weight_decay), T(1.0 - beta1), T(1.0 - beta2), T(std::sqrt(bc2)), T(lr_now / bc1)};
    B::adam_atan2_update(p.view(), g.cview(), s.m.view(), s.v.view(), k);
  }
};

// AdamW (decoupled weight decay), PyTorch's formula.
struct AdamW {
  double lr = 1e-3;
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  static constexpr const char* name = "AdamW";

  template <class B = cpu, class T, MemorySpace S>
  void update(DynTensor<T, 2, S>& p, const DynTensor<T, 2, S>& g, AdamState<T, S>& s, double lr_now, long t) const {
    static_assert(std::is_same_v<typename B::memory_space, S>, "AdamW::update: the backend's memory space is not the tensors'");
    s.ensure(p);
    const double bc1 = 1.0 - std::pow(beta1, double(t)), bc2 = 1.0 - std::pow(beta2, double(t));
    const AdamWStep<T> k{T(1.0 - lr_now * weight_decay), T(beta1), T(beta2), T(lr_now / bc1), T(std::sqrt(bc2)), T(eps)};
    B::adamw_update(p.view(), g.cview(), s.m.view(), s.v.view(), k);
  }
};

template <class O>
concept Optimizer = requires(const O& o, DynTensor<float, 2>& p, const DynTensor<float, 2>& g, AdamState<float>& s) {
  o.update(p, g, s, 1.0, 1L);
  o.template update<reference>(p, g, s, 1.0, 1L);
  { o.lr } -> std::convertible_to<double>;
};

// The puzzle rows' segments (PuzzleRowSegments) in a backend's memory space: the scratch of
// SignSgd::update, kept by its caller so that a device update allocates nothing after the first.
template <MemorySpace S>
struct PuzzleRowSegmentBuffers {
  DynTensor<std::int32_t, 1, S> ids, offsets, rows;
};

// Sparse sign-SGD of the puzzle table (SPEC §4.2): gradients of repeated ids are summed; only the
// rows present in the batch are decayed and updated: w <- w (1 - lr wd) - lr sign(g_sum). The sums
// run in a fixed order (PuzzleRowSegments: ids ascending, rows ascending) on every backend.
struct SignSgd {
  double lr = 1e-4;
  double weight_decay = 0.1;

  // ids: the batch's puzzle ids on the host (one per row of row_grads).
  template <class B = cpu, class T, MemorySpace S>
  void update(DynTensor<T, 2, S>& table, std::span<const std::int32_t> ids, const DynTensor<T, 2, S>& row_grads, double lr_now,
              PuzzleRowSegmentBuffers<S>& scratch) const {
    static_assert(std::is_same_v<typename B::memory_space, S>, "SignSgd::update: the backend's memory space is not the tensors'");
    if (index_t(ids.size()) != row_grads.extent(0))
      throw ShapeError("SignSgd: expected one puzzle id per gradient row (" + std::to_string(row_grads.extent(0)) + "), found " +
                       std::to_string(ids.size()));
    const auto seg = PuzzleRowSegments::of(ids);
    auto put = [](const std::vector<std::int32_t>& v, DynTensor<std::int32_t, 1, S>& t) {
      t.resize(index_t(v.size()));
      upload(std::span<const std::int32_t>(v), t);
    };
    put(seg.ids, scratch.ids);
    put(seg.offsets, scratch.offsets);
    put(seg.rows, scratch.rows);
    B::sign_sgd_rows(table.view(), row_grads.cview(), scratch.ids.cview(), scratch.offsets.cview(), scratch.rows.cview(),
                     T(1.0 - lr_now * weight_decay), T(lr_now));
  }
  template <class B = cpu, class T, MemorySpace S>
  void update(DynTensor<T, 2, S>& table, std::span<const std::int32_t> ids, const DynTensor<T, 2, S>& row_grads,
              double lr_now) const {
    PuzzleRowSegmentBuffers<S> scratch;
    update<B>(table, ids, row_grads, lr_now, scratch);
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

// Exponential moving average of the trainable parameters: shadow <- (1 - rate) theta + rate shadow,
// in the model's memory space (B::axpby).
template <class T, MemorySpace Space = host_space>
struct Ema {
  double rate = 0.999;
  std::map<std::string, DynTensor<T, 2, Space>> shadow;

  template <class M>
  void init(M& model) {
    shadow.clear();
    model.for_each_parameter([&](const std::string& n, auto& p) { shadow.emplace(n, p.value); });
  }
  template <class M>
  void update(M& model) {
    using B = typename M::backend_type;
    const T a = T(1.0 - rate), r = T(rate);
    model.for_each_parameter([&](const std::string& n, auto& p) { B::axpby(a, p.value.cview(), r, shadow.at(n).view()); });
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
