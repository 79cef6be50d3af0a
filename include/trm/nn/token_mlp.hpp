#pragma once
// TokenMlp: TRM-MLP's sequence mixer (SPEC §1.5). With h of shape [B, S, D]:
//   t = h^T ([B, D, S]);  t = rms_norm_over_S(t + SwiGLU_S(t));  h = t^T
// A SwiGLU across the S positions of each channel, with its own residual and a post-norm that
// normalises over the sequence axis. Because the residual and the norm live in the transposed
// layout, this mixer carries them itself (has_own_residual_norm), unlike SelfAttention.
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

  struct Cache {
    typename mlp_type::Cache mlp;
    DynTensor<T, 2, space> y_t;  // normalised output in [B*D, S] layout
    DynTensor<T, 1, space> rstd;
  };

  mlp_type mlp;
  T eps = T(1e-5);

  void init(Rng& rng) { mlp.init(rng); }
  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    mlp.for_each_parameter(f, prefix);
  }

  void forward(input_view x, output_view y, Cache& c) const {
    const index_t b = x.extent(0), d = x.extent(2);
    expect_shape("TokenMlp", "input", x, {b, Seq, d});
    expect_shape("TokenMlp", "output", y, {b, Seq, d});
    xt_.resize(b * d, Seq);
    sum_.resize(b * d, Seq);
    c.y_t.resize(b * d, Seq);
    c.rstd.resize(b * d);
    B::transpose_batched(x, t3(xt_.view(), b, d), false);
    mlp.forward(xt_.cview(), sum_.view(), c.mlp);
    B::add(sum_.cview(), xt_.cview(), sum_.view());
    B::rmsnorm_forward(sum_.cview(), c.y_t.view(), c.rstd.view(), eps);
    B::transpose_batched(t3(c.y_t.cview(), b, d), y, false);
  }

  void backward(input_view x, input_view /*y*/, const Cache& c, input_view dy, output_view dx) {
    const index_t b = x.extent(0), d = x.extent(2);
    expect_shape("TokenMlp", "output gradient", dy, {b, Seq, d});
    xt_.resize(b * d, Seq);
    sum_.resize(b * d, Seq);
    ds_.resize(b * d, Seq);
    B::transpose_batched(dy, t3(sum_.view(), b, d), false);  // sum_ holds dy^T
    B::rmsnorm_backward(c.y_t.cview(), c.rstd.cview(), sum_.cview(), ds_.view(), false);
    B::transpose_batched(x, t3(xt_.view(), b, d), false);  // the mlp's input, recomputed
    const bool want_dx = dx.data() != nullptr;
    if (want_dx) B::copy(ds_.cview(), sum_.view());  // residual path; sum_ becomes d(x^T)
    mlp.backward(xt_.cview(), CMatrixView<T, space>(), c.mlp, ds_.cview(),
                 want_dx ? sum_.view() : MatrixView<T, space>());
    if (want_dx) B::transpose_batched(t3(sum_.cview(), b, d), dx, true);
  }

 private:
  template <class U>
  static View<U, DynExtents<3>, space> t3(MatrixView<U, space> m, index_t b, index_t d) {
    return reshape(m, DynExtents<3>{b, d, Seq});
  }
  mutable DynTensor<T, 2, space> xt_, sum_;
  DynTensor<T, 2, space> ds_;
};

}  // namespace trm
