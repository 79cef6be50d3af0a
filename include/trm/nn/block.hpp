#pragma once
// Post-norm residual sub-layers, the transformer Block of TRM/HRM (SPEC §1.4), and Stack.
//   ResidualNorm<F>:  h <- rms_norm(h + F(h)) over the hidden axis
//   Block<Mixer, Mlp>: h <- mixer sub-layer; h <- rms_norm(h + Mlp(h))
//   Stack<Block, L>:  L blocks in sequence (the reference's `layers.{i}`)
#include <array>

#include "../core/concepts.hpp"
#include "param.hpp"

namespace trm {

// A sequence layer: a Layer over [batch, seq, hidden] activations.
template <class L>
concept SequenceLayer = Layer<L> && std::same_as<typename L::input_view,
                                                 CTensor3View<typename L::scalar_type, typename L::backend_type::memory_space>>;

template <class L>
concept Mixer = SequenceLayer<L> && requires {
  { L::has_own_residual_norm } -> std::convertible_to<bool>;
};

template <class F>
  requires SequenceLayer<F>
class ResidualNorm {
 public:
  using scalar_type = typename F::scalar_type;
  using backend_type = typename F::backend_type;
  using T = scalar_type;
  using B = backend_type;
  using space = typename B::memory_space;
  using input_view = CTensor3View<T, space>;
  using output_view = Tensor3View<T, space>;
  static constexpr bool has_own_residual_norm = true;
  template <class T2, Backend B2>
  using rebind = ResidualNorm<typename F::template rebind<T2, B2>>;

  struct Cache {
    typename F::Cache inner;
    DynTensor<T, 1, space> rstd;
  };
  struct Workspace {
    typename F::Workspace inner;
    DynTensor<T, 3, space> ds;  // backward: the gradient of the sum h + F(h)
  };

  F inner;
  T eps = T(1e-5);

  void init(Rng& rng) { inner.init(rng); }
  template <class Fn>
  void for_each_parameter(Fn&& f, const std::string& prefix = "") {
    inner.for_each_parameter(f, prefix);
  }

  // The sum h + F(h) is formed in y, then normalised in place.
  void forward(input_view x, output_view y, Cache& c, Workspace& ws) const {
    inner.forward(x, y, c.inner, ws.inner);
    auto ym = as_matrix(y);
    B::add(as_matrix(x), ym.as_const(), ym);
    c.rstd.resize(ym.extent(0));
    B::rmsnorm_forward(ym.as_const(), ym, c.rstd.view(), eps);
  }

  void backward(input_view x, input_view y, const Cache& c, input_view dy, output_view dx, Workspace& ws) {
    ws.ds.resize(x.extent(0), x.extent(1), x.extent(2));
    B::rmsnorm_backward(as_matrix(y), c.rstd.cview(), as_matrix(dy), as_matrix(ws.ds.view()), false);
    // F's own output is not needed by any layer's backward here (they read their inputs and
    // caches), so an empty view stands in for it.
    inner.backward(x, input_view(), c.inner, ws.ds.cview(), dx, ws.inner);
    if (dx.data() != nullptr) B::axpy(T(1), as_matrix(ws.ds.cview()), as_matrix(dx));
  }
};

template <class M>
using mixer_sublayer_t = std::conditional_t<M::has_own_residual_norm, M, ResidualNorm<M>>;

template <Mixer MixerT, SequenceLayer MlpT>
  requires std::same_as<typename MixerT::scalar_type, typename MlpT::scalar_type> &&
           std::same_as<typename MixerT::backend_type, typename MlpT::backend_type>
class Block {
 public:
  using scalar_type = typename MlpT::scalar_type;
  using backend_type = typename MlpT::backend_type;
  using T = scalar_type;
  using B = backend_type;
  using space = typename B::memory_space;
  using input_view = CTensor3View<T, space>;
  using output_view = Tensor3View<T, space>;
  using mixer_type = mixer_sublayer_t<MixerT>;
  using mlp_type = ResidualNorm<MlpT>;
  static constexpr bool has_own_residual_norm = true;
  template <class T2, Backend B2>
  using rebind = Block<typename MixerT::template rebind<T2, B2>, typename MlpT::template rebind<T2, B2>>;

  struct Cache {
    typename mixer_type::Cache mixer;
    typename mlp_type::Cache mlp;
    DynTensor<T, 3, space> mid;  // the mixer sub-layer's output, the MLP's input
  };
  struct Workspace {
    typename mixer_type::Workspace mixer;
    typename mlp_type::Workspace mlp;
    DynTensor<T, 3, space> dmid;  // backward: the gradient of mid
  };

  mixer_type mixer;
  mlp_type mlp;

  // Reference names: the attention mixer is `self_attn`, the token MLP `mlp_t`, the channel MLP `mlp`.
  static constexpr const char* mixer_name = MixerT::has_own_residual_norm ? "mlp_t" : "self_attn";

  void init(Rng& rng) {
    mixer.init(rng);
    mlp.init(rng);
  }
  template <class Fn>
  void for_each_parameter(Fn&& f, const std::string& prefix = "") {
    mixer.for_each_parameter(f, join_name(prefix, mixer_name));
    mlp.for_each_parameter(f, join_name(prefix, "mlp"));
  }

  void forward(input_view x, output_view y, Cache& c, Workspace& ws) const {
    c.mid.resize(x.extent(0), x.extent(1), x.extent(2));
    mixer.forward(x, c.mid.view(), c.mixer, ws.mixer);
    mlp.forward(c.mid.cview(), y, c.mlp, ws.mlp);
  }

  void backward(input_view x, input_view y, const Cache& c, input_view dy, output_view dx, Workspace& ws) {
    ws.dmid.resize(x.extent(0), x.extent(1), x.extent(2));
    ws.dmid.zero();
    mlp.backward(c.mid.cview(), y, c.mlp, dy, ws.dmid.view(), ws.mlp);
    mixer.backward(x, c.mid.cview(), c.mixer, ws.dmid.cview(), dx, ws.mixer);
  }
};

template <SequenceLayer BlockT, std::size_t NumLayers>
  requires(NumLayers >= 1)
class Stack {
 public:
  using scalar_type = typename BlockT::scalar_type;
  using backend_type = typename BlockT::backend_type;
  using T = scalar_type;
  using B = backend_type;
  using space = typename B::memory_space;
  using input_view = CTensor3View<T, space>;
  using output_view = Tensor3View<T, space>;
  using block_type = BlockT;
  static constexpr std::size_t num_layers = NumLayers;
  static constexpr bool has_own_residual_norm = true;
  template <class T2, Backend B2>
  using rebind = Stack<typename BlockT::template rebind<T2, B2>, NumLayers>;

  struct Cache {
    std::array<typename BlockT::Cache, NumLayers> blocks;
    std::array<DynTensor<T, 3, space>, NumLayers - 1> outputs;  // inputs of blocks 1..L-1
  };
  // The blocks run one after another, so one block workspace serves all of them.
  struct Workspace {
    typename BlockT::Workspace block;
    std::array<DynTensor<T, 3, space>, 2> grads;  // backward: the gradients between blocks, alternately
  };

  std::array<BlockT, NumLayers> layers;

  void init(Rng& rng) {
    for (auto& l : layers) l.init(rng);
  }
  template <class Fn>
  void for_each_parameter(Fn&& f, const std::string& prefix = "") {
    for (std::size_t i = 0; i < NumLayers; ++i) layers[i].for_each_parameter(f, join_name(prefix, "layers." + std::to_string(i)));
  }

  void forward(input_view x, output_view y, Cache& c, Workspace& ws) const {
    input_view in = x;
    for (std::size_t i = 0; i < NumLayers; ++i) {
      if (i + 1 < NumLayers) {
        c.outputs[i].resize(x.extent(0), x.extent(1), x.extent(2));
        layers[i].forward(in, c.outputs[i].view(), c.blocks[i], ws.block);
        in = c.outputs[i].cview();
      } else {
        layers[i].forward(in, y, c.blocks[i], ws.block);
      }
    }
  }

  void backward(input_view x, input_view y, const Cache& c, input_view dy, output_view dx, Workspace& ws) {
    ws.grads[0].resize(x.extent(0), x.extent(1), x.extent(2));
    ws.grads[1].resize(x.extent(0), x.extent(1), x.extent(2));
    input_view d = dy;
    for (std::size_t i = NumLayers; i-- > 0;) {
      input_view in = i == 0 ? x : c.outputs[i - 1].cview();
      input_view out = i + 1 == NumLayers ? y : c.outputs[i].cview();
      if (i == 0) {
        layers[i].backward(in, out, c.blocks[i], d, dx, ws.block);
      } else {
        auto& g = ws.grads[i % 2];
        g.zero();
        layers[i].backward(in, out, c.blocks[i], d, g.view(), ws.block);
        d = g.cview();
      }
    }
  }
};

}  // namespace trm
