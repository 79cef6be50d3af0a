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
    DynTensor<T, 2, space> probs;  // [B*Heads*S, S] attention probabilities
    DynTensor<T, 2, space> attn;   // [B*S, Hidden] heads concatenated, before o_proj
  };
  // Backward's scratch (forward needs none): the gradients of attn [B*S, Hidden] and qkv
  // [B*S, 3*Hidden], and of one head's probabilities [S, S].
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

  void forward(input_view x, output_view y, Cache& c, Workspace& /*ws*/) const {
    const index_t b = x.extent(0), s = x.extent(1);
    expect_shape("SelfAttention", "input", x, {b, s, Hidden});
    expect_shape("SelfAttention", "output", y, {b, s, Hidden});
    c.qkv.resize(b * s, 3 * Hidden);
    c.probs.resize(b * Heads * s, s);
    c.attn.resize(b * s, Hidden);
    B::gemm(Trans::N, Trans::T, T(1), as_matrix(x), qkv_proj.value.cview(), T(0), c.qkv.view());
    const T scale = T(1) / std::sqrt(T(head_dim));
    for (index_t bi = 0; bi < b; ++bi)
      for (index_t h = 0; h < Heads; ++h) {
        auto q = head(c.qkv.view(), bi, s, h);
        auto k = head(c.qkv.view(), bi, s, Heads + h);
        auto v = head(c.qkv.view(), bi, s, 2 * Heads + h);
        if (rope) {
          rope->forward(q);
          rope->forward(k);
        }
        auto p = rows(c.probs.view(), (bi * Heads + h) * s, s);
        B::gemm(Trans::N, Trans::T, T(1), q.as_const(), k.as_const(), T(0), p);
        B::softmax_rows(p, scale);
        auto o = columns(rows(c.attn.view(), bi * s, s), h * head_dim, head_dim);
        B::gemm(Trans::N, Trans::N, T(1), p.as_const(), v.as_const(), T(0), o);
      }
    B::gemm(Trans::N, Trans::T, T(1), c.attn.cview(), o_proj.value.cview(), T(0), as_matrix(y));
  }

  void backward(input_view x, input_view /*y*/, const Cache& c, input_view dy, output_view dx, Workspace& ws) {
    const index_t b = x.extent(0), s = x.extent(1);
    expect_shape("SelfAttention", "output gradient", dy, {b, s, Hidden});
    ws.dattn.resize(b * s, Hidden);
    ws.dqkv.resize(b * s, 3 * Hidden);
    ws.dp.resize(s, s);
    auto dym = as_matrix(dy);
    B::gemm(Trans::T, Trans::N, T(1), dym, c.attn.cview(), T(1), o_proj.grad.view());
    B::gemm(Trans::N, Trans::N, T(1), dym, o_proj.value.cview(), T(0), ws.dattn.view());
    const T scale = T(1) / std::sqrt(T(head_dim));
    for (index_t bi = 0; bi < b; ++bi)
      for (index_t h = 0; h < Heads; ++h) {
        auto q = head(c.qkv.cview(), bi, s, h);
        auto k = head(c.qkv.cview(), bi, s, Heads + h);
        auto v = head(c.qkv.cview(), bi, s, 2 * Heads + h);
        auto dq = head(ws.dqkv.view(), bi, s, h);
        auto dk = head(ws.dqkv.view(), bi, s, Heads + h);
        auto dv = head(ws.dqkv.view(), bi, s, 2 * Heads + h);
        auto p = rows(c.probs.cview(), (bi * Heads + h) * s, s);
        auto dout = columns(rows(ws.dattn.cview(), bi * s, s), h * head_dim, head_dim);
        B::gemm(Trans::T, Trans::N, T(1), p, dout, T(0), dv);               // dv = P^T dO
        B::gemm(Trans::N, Trans::T, T(1), dout, v, T(0), ws.dp.view());      // dP = dO V^T
        B::softmax_rows_backward(p, ws.dp.cview(), ws.dp.view(), scale);     // dS (scale folded in)
        B::gemm(Trans::N, Trans::N, T(1), ws.dp.cview(), k, T(0), dq);        // dq = dS K
        B::gemm(Trans::T, Trans::N, T(1), ws.dp.cview(), q, T(0), dk);        // dk = dS^T Q
        if (rope) {
          rope->backward(dq);
          rope->backward(dk);
        }
      }
    B::gemm(Trans::T, Trans::N, T(1), ws.dqkv.cview(), as_matrix(x), T(1), qkv_proj.grad.view());
    if (dx.data() != nullptr)
      B::gemm(Trans::N, Trans::N, T(1), ws.dqkv.cview(), qkv_proj.value.cview(), T(1), as_matrix(dx));
  }

 private:
  // Head `slot` (0..3*Heads) of batch element bi: a strided [s, head_dim] view into qkv.
  template <class U>
  static MatrixView<U, space> head(MatrixView<U, space> qkv, index_t bi, index_t s, index_t slot) {
    return columns(rows(qkv, bi * s, s), slot * head_dim, head_dim);
  }
};

}  // namespace trm
