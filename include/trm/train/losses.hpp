#pragma once
// Token losses of SPEC §3 (stablemax / softmax cross-entropy with the ignore label), computed in
// double as the reference computes stablemax: per sequence, the mean over supervised tokens,
// summed over the batch. The implementation is a backend op (B::token_loss, backend/model_ops.hpp:
// the host one below, trm::cuda's kernels on the device); this is its host entry point.
#include "../backend/model_ops.hpp"

namespace trm {

// logits [B, L, V]; labels [B, L]. dlogits (same shape as logits, may be empty) receives
// grad_scale * d(loss)/d(logits). Labels outside [0, V) other than ignore_label are an error.
template <class T>
TokenLossResult token_loss(LossType type, View<const T, DynExtents<3>> logits, View<const std::int32_t, DynExtents<2>> labels,
                           View<T, DynExtents<3>> dlogits, double grad_scale) {
  return detail::host_token_loss<T>(type, logits, labels, dlogits, grad_scale);
}

}  // namespace trm
