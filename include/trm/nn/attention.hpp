#pragma once
// Non-causal multi-head self-attention with a fused QKV projection (SPEC §1.4): qkv = x W_qkv^T
// laid out as [all q heads | all k heads | all v heads], RoPE on q and k (optional), softmax(q k^T /
// sqrt(head_dim)) v, output projection. No mask: every position attends to every position.
#include <cmath>
#include <optional>

#include "../core/concepts.hpp"
#include "param.hpp"
#include "rotary.hpp"

namespace trm {

template <index_t Hidden, index_t Heads, class T = float, Backend B = cpu>
class SelfAttention {
 public:
  static_assert(Hidden % Heads == 0, "SelfAttention: hidden size must be a multiple of the head count");
  using scalar_type = T;
  using backend_type = B;
  using space = typename B::memory_space;
  using input_view = CTensor3View<T, space>;
  using output_view = Tensor3View<T, space>;
  static constexpr index_t hidden = Hidden, heads = Heads, head_dim = Hidden / Heads;
  static constexpr bool has_own_residual_norm = false;
  template <class T2, Backend B2>
  using rebind = SelfAttention<Hidden, Heads, T2, B2>;

  struct Cache {
    DynTensor<T, 2, space> qkv;    // [B*S, 3*Hidden], q and k after RoPE
    DynTensor<T, 2, space> probs;  // [Heads*B*S, S] attention probabilities, head-major: (h, b) at rows (h*B + b)*S
    DynTensor<T, 2, space> attn;   // [B*S, Hidden] heads concatenated, before o_proj
  };
  // Backward's scratch (forward needs none): the gradients of attn [B*S, Hidden] and qkv
  // [B*S, 3*Hidden], and of one head's probabilities over the batch [B*S, S].
  struct Workspace {
    DynTensor<T, 2, space> dattn, dqkv, dp;
  };

  Param<T, space> qkv_proj{{3 * Hidden, Hidden}};
  Param<T, space> o_proj{{Hidden, Hidden}};
  // Shared RoPE tables (owned by the model); nullptr: no positional encoding here.
  const RotaryEmbedding<head_dim, T, B>* rope = nullptr;

  void init(Rng& rng) {
    trunc_normal_init<T>(qkv_proj.value.span(), 1.0 / std::sqrt(double(Hidden)), rng);
    trunc_normal_init<T>(o_proj.value.span(), 1.0 / std::sqrt(double(Hidden)), rng);
  }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "qkv_proj.weight"), qkv_proj);
    f(join_name(prefix, "o_proj.weight"), o_proj);
  }

  // Per head, one batched GEMM over the batch rows for each product (B::gemm_batched: one cuBLAS
  // call on the GPU, a loop of GEMMs on the host), RoPE over every row of the head at once, and one
  // softmax over all probabilities.
  void forward(input_view x, output_view y, Cache& c, Workspace& /*ws*/) const {
    const index_t b = x.extent(0), s = x.extent(1);
    expect_shape("SelfAttention", "input", x, {b, s, Hidden});
    expect_shape("SelfAttention", "output", y, {b, s, Hidden});
    c.qkv.resize(b * s, 3 * Hidden);
    c.probs.resize(Heads * b * s, s);
    c.attn.resize(b * s, Hidden);
    B::gemm(Trans::N, Trans::T, T(1), as_matrix(x), qkv_proj.value.cview(), T(0), c.qkv.view());
    const T scale = T(1) / std::sqrt(T(head_dim));
    const index_t qkv_seq = s * 3 * Hidden, p_seq = s * s, attn_seq = s * Hidden;
    for (index_t h = 0; h < Heads; ++h) {
      auto q = slot(c.qkv.view(), h);  // [B*S, head_dim]
      auto k = slot(c.qkv.view(), Heads + h);
      if (rope) {
        rope->forward(q, s);
        rope->forward(k, s);
      }
      auto p = rows(c.probs.view(), h * b * s, s);  // (h, b = 0); b at + b * S * S
      B::gemm_batched(Trans::N, Trans::T, T(1), rows(q, 0, s).as_const(), qkv_seq, rows(k, 0, s).as_const(), qkv_seq, T(0), p,
                      p_seq, b);
    }
    B::softmax_rows(c.probs.view(), scale);
    for (index_t h = 0; h < Heads; ++h) {
      auto v = slot(c.qkv.view(), 2 * Heads + h);
      auto o = columns(rows(c.attn.view(), 0, s), h * head_dim, head_dim);
      B::gemm_batched(Trans::N, Trans::N, T(1), rows(c.probs.cview(), h * b * s, s), p_seq, rows(v, 0, s).as_const(), qkv_seq,
                      T(0), o, attn_seq, b);
    }
    B::gemm(Trans::N, Trans::T, T(1), c.attn.cview(), o_proj.value.cview(), T(0), as_matrix(y));
  }

  void backward(input_view x, input_view /*y*/, const Cache& c, input_view dy, output_view dx, Workspace& ws) {
    const index_t b = x.extent(0), s = x.extent(1);
    expect_shape("SelfAttention", "output gradient", dy, {b, s, Hidden});
    ws.dattn.resize(b * s, Hidden);
    ws.dqkv.resize(b * s, 3 * Hidden);
    ws.dp.resize(b * s, s);
    auto dym = as_matrix(dy);
    B::gemm(Trans::T, Trans::N, T(1), dym, c.attn.cview(), T(1), o_proj.grad.view());
    B::gemm(Trans::N, Trans::N, T(1), dym, o_proj.value.cview(), T(0), ws.dattn.view());
    const T scale = T(1) / std::sqrt(T(head_dim));
    const index_t qkv_seq = s * 3 * Hidden, p_seq = s * s, attn_seq = s * Hidden;
    auto first = [s](auto m) { return rows(m, 0, s); };
    for (index_t h = 0; h < Heads; ++h) {
      const auto q = slot(c.qkv.cview(), h), k = slot(c.qkv.cview(), Heads + h), v = slot(c.qkv.cview(), 2 * Heads + h);
      auto dq = slot(ws.dqkv.view(), h);
      auto dk = slot(ws.dqkv.view(), Heads + h);
      auto dv = slot(ws.dqkv.view(), 2 * Heads + h);
      const auto p = rows(c.probs.cview(), h * b * s, b * s);  // this head's [B*S, S]
      const auto dout = columns(ws.dattn.cview(), h * head_dim, head_dim);
      // dv = P^T dO, dP = dO V^T, dS (scale folded in), dq = dS K, dk = dS^T Q: each batched over the rows
      B::gemm_batched(Trans::T, Trans::N, T(1), first(p), p_seq, first(dout), attn_seq, T(0), first(dv), qkv_seq, b);
      B::gemm_batched(Trans::N, Trans::T, T(1), first(dout), attn_seq, first(v), qkv_seq, T(0), first(ws.dp.view()), p_seq, b);
      B::softmax_rows_backward(p, ws.dp.cview(), ws.dp.view(), scale);
      B::gemm_batched(Trans::N, Trans::N, T(1), first(ws.dp.cview()), p_seq, first(k), qkv_seq, T(0), first(dq), qkv_seq, b);
      B::gemm_batched(Trans::T, Trans::N, T(1), first(ws.dp.cview()), p_seq, first(q), qkv_seq, T(0), first(dk), qkv_seq, b);
      if (rope) {
        rope->backward(dq, s);
        rope->backward(dk, s);
      }
    }
    B::gemm(Trans::T, Trans::N, T(1), ws.dqkv.cview(), as_matrix(x), T(1), qkv_proj.grad.view());
    if (dx.data() != nullptr)
      B::gemm(Trans::N, Trans::N, T(1), ws.dqkv.cview(), qkv_proj.value.cview(), T(1), as_matrix(dx));
  }

 private:
  // Head `slot` (0..3*Heads) of every batch row: a strided [B*S, head_dim] view into qkv.
  template <class U>
  static MatrixView<U, space> slot(MatrixView<U, space> qkv, index_t slot) {
    return columns(qkv, slot * head_dim, head_dim);
  }
};

}  // namespace trm
