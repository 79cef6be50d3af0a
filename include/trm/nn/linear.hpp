#pragma once
// Linear: y = x W^T (+ b). W is [out, in] as in the reference (PyTorch layout).
#include "../core/concepts.hpp"
#include "param.hpp"

namespace trm {

template <index_t In, index_t Out, bool HasBias = false, class T = float, Backend B = cpu>
class Linear {
 public:
  using scalar_type = T;
  using backend_type = B;
  using space = typename B::memory_space;
  using input_view = CMatrixView<T, space>;
  using output_view = MatrixView<T, space>;
  static constexpr index_t in_features = In, out_features = Out;
  static constexpr bool has_bias = HasBias;
  template <class T2, Backend B2>
  using rebind = Linear<In, Out, HasBias, T2, B2>;

  struct Cache {};      // the input, which backward needs, is passed back by the caller
  struct Workspace {};  // no scratch

  Param<T, space> weight{{Out, In}};
  Param<T, space> bias{HasBias ? std::vector<index_t>{Out} : std::vector<index_t>{0}};

  // Truncated LeCun normal (std 1/sqrt(in)); zero bias (SPEC §1.9).
  void init(Rng& rng) {
    static_assert(std::is_same_v<space, host_space>, "init on host; copy to the device afterwards");
    trunc_normal_init<T>(weight.value.span(), 1.0 / std::sqrt(double(In)), rng);
    if constexpr (HasBias) bias.value.zero();
  }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "weight"), weight);
    if constexpr (HasBias) f(join_name(prefix, "bias"), bias);
  }

  void forward(input_view x, output_view y, Cache&, Workspace&) const {
    expect_shape("Linear", "input", x, {x.extent(0), In});
    expect_shape("Linear", "output", y, {x.extent(0), Out});
    B::gemm(Trans::N, Trans::T, T(1), x, weight.value.cview(), T(0), y);
    if constexpr (HasBias)
      for (index_t r = 0; r < y.extent(0); ++r) B::axpy(T(1), bias.value.cview(), rows(y, r, 1));
  }

  // dx += dy W ; dW += dy^T x ; db += sum_rows(dy). An empty dx skips the input gradient.
  void backward(input_view x, input_view /*y*/, const Cache&, input_view dy, output_view dx, Workspace&) {
    expect_shape("Linear", "output gradient", dy, {x.extent(0), Out});
    B::gemm(Trans::T, Trans::N, T(1), dy, x, T(1), weight.grad.view());
    if constexpr (HasBias) B::sum_rows(dy, as_vector(bias.grad.view()), true);
    if (dx.data() != nullptr) {
      expect_shape("Linear", "input gradient", dx, {x.extent(0), In});
      B::gemm(Trans::N, Trans::N, T(1), dy, weight.value.cview(), T(1), dx);
    }
  }

 private:
  static VectorView<T, space> as_vector(MatrixView<T, space> m) {
    return VectorView<T, space>(m.data(), DynExtents<1>{m.size()});
  }
};

}  // namespace trm
