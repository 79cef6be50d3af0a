#pragma once
// Embedding: y[r] = scale * W[ids[r]]. The reference multiplies token embeddings by sqrt(D).
#include "../core/concepts.hpp"
#include "param.hpp"

namespace trm {

template <index_t Vocab, index_t Dim, class T = float, Backend B = cpu>
class Embedding {
 public:
  using scalar_type = T;
  using backend_type = B;
  using space = typename B::memory_space;
  using ids_view = CVectorView<std::int32_t, space>;
  using output_view = MatrixView<T, space>;
  static constexpr index_t vocab = Vocab, dim = Dim;
  template <class T2, Backend B2>
  using rebind = Embedding<Vocab, Dim, T2, B2>;

  // Not a Layer (its input is token ids and it has no input gradient), but it follows the same
  // contract: forward is const and takes a per-call Cache and a per-thread Workspace.
  struct Cache {};
  struct Workspace {};

  Param<T, space> weight{{Vocab, Dim}};
  T scale = T(1);

  explicit Embedding(T scale_ = T(1)) : scale(scale_) {}

  // Truncated normal with std 1/sqrt(Dim) (SPEC §1.2).
  void init(Rng& rng) { trunc_normal_init<T>(weight.value.span(), 1.0 / std::sqrt(double(Dim)), rng); }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "embedding_weight"), weight);
  }

  void forward(ids_view ids, output_view y, Cache&, Workspace&) const {
    expect_shape("Embedding", "output", y, {ids.extent(0), Dim});
    B::gather_rows(weight.value.cview(), ids, scale, y);
  }
  // No input gradient (ids are discrete); dW[ids[r]] += scale * dy[r].
  void backward(ids_view ids, CMatrixView<T, space> /*y*/, const Cache&, CMatrixView<T, space> dy, Workspace&) {
    expect_shape("Embedding", "output gradient", dy, {ids.extent(0), Dim});
    B::scatter_add_rows(dy, ids, scale, weight.grad.view());
  }
};

}  // namespace trm
