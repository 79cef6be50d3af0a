#pragma once
// SwiGLU (SPEC §1.4): gate_up = x W_gu^T (fused [gate | up]), h = silu(gate) * up, y = h W_down^T.
// The intermediate width follows the reference: round(expansion * width * 2/3) rounded up to a
// multiple of 256.
#include "../core/concepts.hpp"
#include "param.hpp"

namespace trm {

constexpr index_t swiglu_intermediate(index_t width, index_t expansion_num, index_t expansion_den = 1) {
  // round(e * w * 2 / 3) with e = num/den, computed exactly in integers: round(x/q) = (2x + q) / 2q.
  index_t numer = expansion_num * width * 2, denom = expansion_den * 3;
  index_t rounded = (2 * numer + denom) / (2 * denom);
  return (rounded + 255) / 256 * 256;
}

template <index_t Width, index_t Expansion = 4, class T = float, Backend B = cpu>
class SwiGlu {
 public:
  using scalar_type = T;
  using backend_type = B;
  using space = typename B::memory_space;
  // A sequence layer over [batch, seq, width]; the matrix overloads below serve TokenMlp.
  using input_view = CTensor3View<T, space>;
  using output_view = Tensor3View<T, space>;
  static constexpr index_t width = Width;
  static constexpr index_t inter = swiglu_intermediate(Width, Expansion);
  template <class T2, Backend B2>
  using rebind = SwiGlu<Width, Expansion, T2, B2>;

  // The fused projection's output is all backward needs: the activation is recomputed from it
  // (one cheap elementwise pass) instead of being stored for every call.
  struct Cache {
    DynTensor<T, 2, space> gate_up;
  };
  // Scratch of one call: the activation h [rows, inter] (forward, and recomputed in backward), its
  // gradient [rows, inter] and the fused projection's gradient [rows, 2*inter] (backward).
  struct Workspace {
    DynTensor<T, 2, space> act, dact, dgate_up;
  };

  Param<T, space> gate_up_proj{{2 * inter, Width}};
  Param<T, space> down_proj{{Width, inter}};

  void init(Rng& rng) {
    trunc_normal_init<T>(gate_up_proj.value.span(), 1.0 / std::sqrt(double(Width)), rng);
    trunc_normal_init<T>(down_proj.value.span(), 1.0 / std::sqrt(double(inter)), rng);
  }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "gate_up_proj.weight"), gate_up_proj);
    f(join_name(prefix, "down_proj.weight"), down_proj);
  }

  void forward(CMatrixView<T, space> x, MatrixView<T, space> y, Cache& c, Workspace& ws) const {
    expect_shape("SwiGlu", "input", x, {x.extent(0), Width});
    expect_shape("SwiGlu", "output", y, {x.extent(0), Width});
    const index_t r = x.extent(0);
    c.gate_up.resize(r, 2 * inter);
    ws.act.resize(r, inter);
    B::gemm(Trans::N, Trans::T, T(1), x, gate_up_proj.value.cview(), T(0), c.gate_up.view());
    B::swiglu_forward(c.gate_up.cview(), ws.act.view());
    B::gemm(Trans::N, Trans::T, T(1), ws.act.cview(), down_proj.value.cview(), T(0), y);
  }

  void backward(CMatrixView<T, space> x, CMatrixView<T, space> /*y*/, const Cache& c, CMatrixView<T, space> dy,
                MatrixView<T, space> dx, Workspace& ws) {
    expect_shape("SwiGlu", "output gradient", dy, {x.extent(0), Width});
    const index_t r = x.extent(0);
    ws.act.resize(r, inter);
    ws.dact.resize(r, inter);
    ws.dgate_up.resize(r, 2 * inter);
    B::gemm(Trans::N, Trans::N, T(1), dy, down_proj.value.cview(), T(0), ws.dact.view());
    if constexpr (requires {
                    B::template swiglu_backward_act<T>(c.gate_up.cview(), ws.dact.cview(), ws.dgate_up.view(), ws.act.view());
                  }) {
      // Backend extension (trm::cpu): the activation is recomputed in the same pass as its gradient.
      B::template swiglu_backward_act<T>(c.gate_up.cview(), ws.dact.cview(), ws.dgate_up.view(), ws.act.view());
    } else {
      B::swiglu_forward(c.gate_up.cview(), ws.act.view());
      B::swiglu_backward(c.gate_up.cview(), ws.dact.cview(), ws.dgate_up.view());
    }
    B::gemm(Trans::T, Trans::N, T(1), dy, ws.act.cview(), T(1), down_proj.grad.view());
    B::gemm(Trans::T, Trans::N, T(1), ws.dgate_up.cview(), x, T(1), gate_up_proj.grad.view());
    if (dx.data() != nullptr) {
      expect_shape("SwiGlu", "input gradient", dx, {x.extent(0), Width});
      B::gemm(Trans::N, Trans::N, T(1), ws.dgate_up.cview(), gate_up_proj.value.cview(), T(1), dx);
    }
  }

  // [batch, seq, width] activations, treated as rows. Shapes are checked here, before flattening,
  // so that an error names the [batch, seq, width] shapes the caller passed.
  void forward(CTensor3View<T, space> x, Tensor3View<T, space> y, Cache& c, Workspace& ws) const {
    expect_shape("SwiGlu", "input", x, {x.extent(0), x.extent(1), Width});
    expect_shape("SwiGlu", "output", y, {x.extent(0), x.extent(1), Width});
    forward(as_matrix(x), as_matrix(y), c, ws);
  }
  void backward(CTensor3View<T, space> x, CTensor3View<T, space> /*y*/, const Cache& c, CTensor3View<T, space> dy,
                Tensor3View<T, space> dx, Workspace& ws) {
    expect_shape("SwiGlu", "output gradient", dy, {x.extent(0), x.extent(1), Width});
    if (dx.data()) expect_shape("SwiGlu", "input gradient", dx, {x.extent(0), x.extent(1), Width});
    backward(as_matrix(x), CMatrixView<T, space>(), c, as_matrix(dy),
             dx.data() ? as_matrix(dx) : MatrixView<T, space>(), ws);
  }
};

}  // namespace trm
