#pragma once
// Token losses of SPEC §3, computed in double as the reference computes stablemax: per sequence,
// the mean over supervised tokens (label != ignore), summed over the batch.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace trm {

enum class LossType { stablemax_cross_entropy, softmax_cross_entropy };

struct TokenLossResult {
  double loss = 0;                        // sum over rows of (sum of CE over supervised tokens / max(count,1))
  std::vector<std::int32_t> count;        // supervised tokens per row
  std::vector<std::uint8_t> seq_correct;  // every supervised token's argmax equals its label
  std::vector<double> accuracy;           // per row: correct / max(count, 1)
};

// s(v) = v + 1 (v >= 0), 1 / (1 - v + 1e-30) (v < 0); s'(v) = 1 (v >= 0), s(v)^2 (v < 0).
inline double stablemax_s(double v) { return v >= 0 ? v + 1.0 : 1.0 / (1.0 - v + 1e-30); }
inline double stablemax_ds(double v) {
  if (v >= 0) return 1.0;
  double s = 1.0 / (1.0 - v + 1e-30);
  return s * s;
}

// logits [B, L, V]; labels [B, L]. dlogits (same shape as logits, may be empty) receives
// grad_scale * d(loss)/d(logits). Labels outside [0, V) other than ignore_label are an error.
template <class T>
TokenLossResult token_loss(LossType type, View<const T, DynExtents<3>> logits, View<const std::int32_t, DynExtents<2>> labels,
                           View<T, DynExtents<3>> dlogits, double grad_scale) {
  const index_t b = logits.extent(0), l = logits.extent(1), v = logits.extent(2);
  check_shape("token_loss: labels", std::vector<index_t>{b, l}, labels.shape());
  const bool want_grad = dlogits.data() != nullptr;
  if (want_grad) check_shape("token_loss: dlogits", std::vector<index_t>{b, l, v}, dlogits.shape());
  TokenLossResult res;
  res.count.assign(b, 0);
  res.seq_correct.assign(b, 1);
  res.accuracy.assign(b, 0.0);
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
      if (y < 0 || y >= v)
        throw ValueError("token_loss: label " + std::to_string(y) + " at [" + std::to_string(r) + ", " + std::to_string(t) +
                         "] is outside [0, " + std::to_string(v) + ") and is not the ignore label -100");
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

}  // namespace trm
