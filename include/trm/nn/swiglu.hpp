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

  void forward(CMatrixView<T, space> x, MatrixView<T, space> y, Cache& c) const {
    expect_shape("SwiGlu", "input", x, {x.extent(0), Width});
    expect_shape("SwiGlu", "output", y, {x.extent(0), Width});
    const index_t r = x.extent(0);
    c.gate_up.resize(r, 2 * inter);
    act_.resize(r, inter);
    B::gemm(Trans::N, Trans::T, T(1), x, gate_up_proj.value.cview(), T(0), c.gate_up.view());
    B::swiglu_forward(c.gate_up.cview(), act_.view());
    B::gemm(Trans::N, Trans::T, T(1), act_.cview(), down_proj.value.cview(), T(0), y);
  }

  void backward(CMatrixView<T, space> x, CMatrixView<T, space> /*y*/, const Cache& c, CMatrixView<T, space> dy,
                MatrixView<T, space> dx) {
    expect_shape("SwiGlu", "output gradient", dy, {x.extent(0), Width});
    const index_t r = x.extent(0);
    act_.resize(r, inter);
    dact_.resize(r, inter);
    dgate_up_.resize(r, 2 * inter);
    B::gemm(Trans::N, Trans::N, T(1), dy, down_proj.value.cview(), T(0), dact_.view());
    if constexpr (requires { B::template swiglu_backward_act<T>(c.gate_up.cview(), dact_.cview(), dgate_up_.view(), act_.view()); }) {
      // Backend extension (trm::cpu): the activation is recomputed in the same pass as its gradient.
      B::template swiglu_backward_act<T>(c.gate_up.cview(), dact_.cview(), dgate_up_.view(), act_.view());
    } else {
      B::swiglu_forward(c.gate_up.cview(), act_.view());
      B::swiglu_backward(c.gate_up.cview(), dact_.cview(), dgate_up_.view());
    }
    B::gemm(Trans::T, Trans::N, T(1), dy, act_.cview(), T(1), down_proj.grad.view());
    B::gemm(Trans::T, Trans::N, T(1), dgate_up_.cview(), x, T(1), gate_up_proj.grad.view());
    if (dx.data() != nullptr) {
      expect_shape("SwiGlu", "input gradient", dx, {x.extent(0), Width});
      B::gemm(Trans::N, Trans::N, T(1), dgate_up_.cview(), gate_up_proj.value.cview(), T(1), dx);
    }
  }

  // [batch, seq, width] activations, treated as rows. Shapes are checked here, before flattening,
  // so that an error names the [batch, seq, width] shapes the caller passed.
  void forward(CTensor3View<T, space> x, Tensor3View<T, space> y, Cache& c) const {
    expect_shape("SwiGlu", "input", x, {x.extent(0), x.extent(1), Width});
    expect_shape("SwiGlu", "output", y, {x.extent(0), x.extent(1), Width});
    forward(as_matrix(x), as_matrix(y), c);
  }
  void backward(CTensor3View<T, space> x, CTensor3View<T, space> /*y*/, const Cache& c, CTensor3View<T, space> dy,
                Tensor3View<T, space> dx) {
    expect_shape("SwiGlu", "output gradient", dy, {x.extent(0), x.extent(1), Width});
    if (dx.data()) expect_shape("SwiGlu", "input gradient", dx, {x.extent(0), x.extent(1), Width});
    backward(as_matrix(x), CMatrixView<T, space>(), c, as_matrix(dy),
             dx.data() ? as_matrix(dx) : MatrixView<T, space>());
  }

 private:
  mutable DynTensor<T, 2, space> act_;
  DynTensor<T, 2, space> dact_, dgate_up_;
};

}  // namespace trm
