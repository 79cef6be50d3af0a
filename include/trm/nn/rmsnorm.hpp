#pragma once
// RMSNorm without a learned scale (SPEC §1.4), over the hidden axis of [batch, seq, hidden]
// activations, or over the sequence axis (TRM-MLP's token mixer normalises each channel over the
// sequence: SPEC §1.5, §10.7).
#include "../core/concepts.hpp"
#include "param.hpp"

namespace trm {

enum class NormAxis { hidden, sequence };

template <NormAxis Axis = NormAxis::hidden, class T = float, Backend B = cpu>
class RmsNorm {
 public:
  using scalar_type = T;
  using backend_type = B;
  using space = typename B::memory_space;
  using input_view = CTensor3View<T, space>;
  using output_view = Tensor3View<T, space>;
  template <class T2, Backend B2>
  using rebind = RmsNorm<Axis, T2, B2>;

  struct Cache {
    DynTensor<T, 1, space> rstd;
    DynTensor<T, 2, space> y_t;  // sequence axis only: the normalised output in [B*D, S] layout
  };
  // Sequence axis only (unused over the hidden axis): the transposed input (dy^T in backward) and
  // the transposed input gradient, [B, D, S].
  struct Workspace {
    DynTensor<T, 3, space> xt, dxt;
  };

  T eps = T(1e-5);

  void init(Rng&) {}
  template <class F>
  void for_each_parameter(F&&, const std::string& = "") {}

  void forward(input_view x, output_view y, Cache& c, Workspace& ws) const {
    expect_shape("RmsNorm", "output", y, {x.extent(0), x.extent(1), x.extent(2)});
    if constexpr (Axis == NormAxis::hidden) {
      c.rstd.resize(x.extent(0) * x.extent(1));
      B::rmsnorm_forward(as_matrix(x), as_matrix(y), c.rstd.view(), eps);
    } else {
      const index_t b = x.extent(0), s = x.extent(1), d = x.extent(2);
      ws.xt.resize(b, d, s);
      c.y_t.resize(b * d, s);
      c.rstd.resize(b * d);
      B::transpose_batched(x, ws.xt.view(), false);
      B::rmsnorm_forward(as_matrix(ws.xt.cview()), c.y_t.view(), c.rstd.view(), eps);
      B::transpose_batched(reshape(c.y_t.cview(), DynExtents<3>{b, d, s}), y, false);
    }
  }

  void backward(input_view x, input_view y, const Cache& c, input_view dy, output_view dx, Workspace& ws) {
    if (dx.data() == nullptr) return;
    expect_shape("RmsNorm", "output gradient", dy, {x.extent(0), x.extent(1), x.extent(2)});
    if constexpr (Axis == NormAxis::hidden) {
      B::rmsnorm_backward(as_matrix(y), c.rstd.cview(), as_matrix(dy), as_matrix(dx), true);
    } else {
      const index_t b = x.extent(0), s = x.extent(1), d = x.extent(2);
      ws.xt.resize(b, d, s);
      ws.dxt.resize(b, d, s);
      B::transpose_batched(dy, ws.xt.view(), false);  // ws.xt holds dy^T here
      B::rmsnorm_backward(c.y_t.cview(), c.rstd.cview(), as_matrix(ws.xt.cview()), as_matrix(ws.dxt.view()), false);
      B::transpose_batched(ws.dxt.cview(), dx, true);
    }
  }
};

}  // namespace trm
