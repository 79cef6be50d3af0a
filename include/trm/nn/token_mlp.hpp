#pragma once
// TokenMlp: TRM-MLP's sequence mixer (SPEC §1.5). With h of shape [B, S, D]:
//   t = h^T ([B, D, S]);  t = rms_norm_over_S(t + SwiGLU_S(t));  h = t^T
// A SwiGLU across the S positions of each channel, with its own residual and a post-norm that
// normalises over the sequence axis. Because the residual and the norm live in the transposed
// layout, this mixer carries them itself (has_own_residual_norm), unlike SelfAttention.
#include <algorithm>

#include "../core/concepts.hpp"
#include "param.hpp"
#include "swiglu.hpp"

namespace trm {

template <index_t Seq, index_t Expansion = 4, class T = float, Backend B = cpu>
class TokenMlp {
 public:
  using scalar_type = T;
  using backend_type = B;
  using space = typename B::memory_space;
  using input_view = CTensor3View<T, space>;
  using output_view = Tensor3View<T, space>;
  using mlp_type = SwiGlu<Seq, Expansion, T, B>;
  static constexpr index_t seq = Seq;
  static constexpr bool has_own_residual_norm = true;
  template <class T2, Backend B2>
  using rebind = TokenMlp<Seq, Expansion, T2, B2>;

  // Memory: this layer's SwiGLU runs on B*D rows of width S, and its fused projection gate_up
  // [B*D, 2*inter] (the SwiGLU's cache) is ~10x the activation: 28 MB per Sudoku sequence over
  // TRM's 7 recorded calls, most of a training call's memory. Calls with more than
  // `keep_rows_max` rows do not keep it: backward recomputes gate_up = x^T W_gu^T (one GEMM, a
  // third of this mixer's forward flops, +3% of a Sudoku training call's). The normalised output
  // the norm's backward needs is read back from y. Everything else a call touches is scratch in the
  // Workspace (one per thread, not per call): the transposed input and sum, the sum's gradient, the
  // SwiGLU's workspace and, in calls that recompute, the SwiGLU cache of one block of rows.
  struct Cache {
    typename mlp_type::Cache mlp;  // the SwiGLU's cache when kept; empty when backward recomputes it
    DynTensor<T, 1, space> rstd;
  };
  struct Workspace {
    // [B*D, S] each. xt: x^T, then the normalised y^T (forward); y^T, then x^T again (backward).
    // sum: x^T + SwiGLU(x^T) (forward); dy^T, then d(x^T) (backward). ds: d(sum) (backward).
    DynTensor<T, 2, space> xt, sum, ds;
    typename mlp_type::Cache chunk;    // calls that recompute: the SwiGLU cache of the block of rows being processed
    typename mlp_type::Workspace mlp;  // the SwiGLU's own scratch
  };

  mlp_type mlp;
  T eps = T(1e-5);
  // Keep the SwiGLU's cache for calls of at most this many rows (B*D; 8192 = Sudoku batch 16).
  index_t keep_rows_max = 8192;
  // Calls that recompute run the SwiGLU on blocks of at most this many rows, so that its scratch
  // (Workspace::chunk and Workspace::mlp: gate_up, activation and their gradients of one block,
  // ~16 MB at S = 97) stays bounded at any batch size; 4096 rows keep every GEMM as efficient as
  // one big GEMM.
  index_t chunk_rows = 4096;

  void init(Rng& rng) { mlp.init(rng); }
  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    mlp.for_each_parameter(f, prefix);
  }

  void forward(input_view x, output_view y, Cache& c, Workspace& ws) const {
    const index_t b = x.extent(0), d = x.extent(2);
    expect_shape("TokenMlp", "input", x, {b, Seq, d});
    expect_shape("TokenMlp", "output", y, {b, Seq, d});
    ws.xt.resize(b * d, Seq);
    ws.sum.resize(b * d, Seq);
    c.rstd.resize(b * d);
    B::transpose_batched(x, t3(ws.xt.view(), b, d), false);
    if (b * d <= keep_rows_max) {
      mlp.forward(ws.xt.cview(), ws.sum.view(), c.mlp, ws.mlp);
    } else {
      if (c.mlp.gate_up.capacity() > 0) c.mlp.gate_up = DynTensor<T, 2, space>();  // release a kept one
      for_chunks(b * d, [&](index_t r0, index_t n) {
        mlp.forward(rows(ws.xt.cview(), r0, n), rows(ws.sum.view(), r0, n), ws.chunk, ws.mlp);
      });
    }
    B::add(ws.sum.cview(), ws.xt.cview(), ws.sum.view());
    B::rmsnorm_forward(ws.sum.cview(), ws.xt.view(), c.rstd.view(), eps);  // ws.xt now holds the normalised y^T
    B::transpose_batched(t3(ws.xt.cview(), b, d), y, false);
  }

  // y (this layer's output) is required: the norm's backward reads the normalised output from it.
  void backward(input_view x, input_view y, const Cache& c, input_view dy, output_view dx, Workspace& ws) {
    const index_t b = x.extent(0), d = x.extent(2);
    expect_shape("TokenMlp", "output gradient", dy, {b, Seq, d});
    if (y.data() == nullptr)
      throw ValueError("TokenMlp::backward: the forward output y is required (the norm's backward reads it)");
    expect_shape("TokenMlp", "output", y, {b, Seq, d});
    ws.xt.resize(b * d, Seq);
    ws.sum.resize(b * d, Seq);
    ws.ds.resize(b * d, Seq);
    B::transpose_batched(dy, t3(ws.sum.view(), b, d), false);  // ws.sum holds dy^T
    B::transpose_batched(y, t3(ws.xt.view(), b, d), false);    // ws.xt holds y^T (the normalised sum)
    B::rmsnorm_backward(ws.xt.cview(), c.rstd.cview(), ws.sum.cview(), ws.ds.view(), false);
    B::transpose_batched(x, t3(ws.xt.view(), b, d), false);  // the mlp's input, recomputed
    const bool want_dx = dx.data() != nullptr;
    if (want_dx) B::copy(ws.ds.cview(), ws.sum.view());  // residual path; ws.sum becomes d(x^T)
    if (c.mlp.gate_up.extent(0) == b * d) {  // kept by forward
      mlp.backward(ws.xt.cview(), CMatrixView<T, space>(), c.mlp, ws.ds.cview(),
                   want_dx ? ws.sum.view() : MatrixView<T, space>(), ws.mlp);
    } else {
      for_chunks(b * d, [&](index_t r0, index_t n) {
        auto xc = rows(ws.xt.cview(), r0, n);
        // The SwiGLU's cache is its fused projection's output (swiglu.hpp): recompute it.
        ws.chunk.gate_up.resize(n, 2 * mlp_type::inter);
        B::gemm(Trans::N, Trans::T, T(1), xc, mlp.gate_up_proj.value.cview(), T(0), ws.chunk.gate_up.view());
        mlp.backward(xc, CMatrixView<T, space>(), ws.chunk, rows(ws.ds.cview(), r0, n),
                     want_dx ? rows(ws.sum.view(), r0, n) : MatrixView<T, space>(), ws.mlp);
      });
    }
    if (want_dx) B::transpose_batched(t3(ws.sum.cview(), b, d), dx, true);
  }

 private:
  template <class F>
  void for_chunks(index_t n_rows, F&& f) const {
    const index_t limit = std::max<index_t>(chunk_rows, 1);
    const index_t chunks = std::max<index_t>(1, (n_rows + limit - 1) / limit);
    const index_t per = (n_rows + chunks - 1) / chunks;  // equal blocks: no small tail GEMM
    for (index_t r0 = 0; r0 < n_rows; r0 += per) f(r0, std::min(per, n_rows - r0));
  }
  template <class U>
  static View<U, DynExtents<3>, space> t3(MatrixView<U, space> m, index_t b, index_t d) {
    return reshape(m, DynExtents<3>{b, d, Seq});
  }
};

}  // namespace trm
