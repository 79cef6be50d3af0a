#pragma once
// Rotary position embedding, rotate-half (non-interleaved) layout (SPEC §1.3):
// inv_freq_i = theta^(-2i/d), angle(p, i) = p * inv_freq_i, tables [positions, d] hold the d/2
// angles twice. Applied in place to [seq, head_dim] views of q and k; backward applies the
// transposed map (a rotation by the opposite angle).
#include <cmath>

#include "../core/concepts.hpp"
#include "param.hpp"

namespace trm {

template <index_t HeadDim, class T = float, Backend B = cpu>
class RotaryEmbedding {
 public:
  static_assert(HeadDim % 2 == 0, "RotaryEmbedding: head_dim must be even");
  using scalar_type = T;
  using backend_type = B;
  using space = typename B::memory_space;
  template <class T2, Backend B2>
  using rebind = RotaryEmbedding<HeadDim, T2, B2>;

  RotaryEmbedding() = default;
  explicit RotaryEmbedding(index_t max_positions, double theta = 10000.0) { build(max_positions, theta); }

  // Tables are computed in double and rounded once (the reference computes them in fp32). They are
  // built on the host; a backend in another memory space gets a copy (space_allocator::copy_from_host).
  void build(index_t max_positions, double theta = 10000.0) {
    DynTensor<T, 2, host_space> cos_h(max_positions, HeadDim), sin_h(max_positions, HeadDim);
    constexpr index_t half = HeadDim / 2;
    for (index_t p = 0; p < max_positions; ++p)
      for (index_t i = 0; i < half; ++i) {
        // inv_freq in fp32 as the reference (1 / theta^(arange(0,d,2)/d) in float32), angle in fp32.
        float inv_freq = 1.0f / std::pow(float(theta), float(2 * i) / float(HeadDim));
        float angle = float(p) * inv_freq;
        cos_h(p, i) = cos_h(p, i + half) = T(std::cos(double(angle)));
        sin_h(p, i) = sin_h(p, i + half) = T(std::sin(double(angle)));
      }
    if constexpr (std::is_same_v<space, host_space>) {
      cos_ = std::move(cos_h);
      sin_ = std::move(sin_h);
    } else {
      cos_.resize(max_positions, HeadDim);
      sin_.resize(max_positions, HeadDim);
      space_allocator<space>::copy_from_host(cos_.data(), cos_h.data(), cos_h.bytes());
      space_allocator<space>::copy_from_host(sin_.data(), sin_h.data(), sin_h.bytes());
    }
  }
  index_t max_positions() const { return cos_.extent(0); }

  // x: one sequence [seq, head_dim], or k sequences of `seq` positions stacked [k seq, head_dim].
  void forward(MatrixView<T, space> x) const { apply(x, x.extent(0), false); }
  void backward(MatrixView<T, space> dx) const { apply(dx, dx.extent(0), true); }
  void forward(MatrixView<T, space> x, index_t seq) const { apply(x, seq, false); }
  void backward(MatrixView<T, space> dx, index_t seq) const { apply(dx, seq, true); }

 private:
  void apply(MatrixView<T, space> x, index_t seq, bool transpose) const {
    if (x.extent(1) != HeadDim || seq > max_positions() || (x.extent(0) > 0 && (seq < 1 || x.extent(0) % seq != 0)))
      throw ShapeError("RotaryEmbedding: expected [seq <= " + std::to_string(max_positions()) + ", " + std::to_string(HeadDim) +
                       "], or k such sequences stacked (seq = " + std::to_string(seq) + "), found " + format_shape(x.shape()));
    B::rope(x, rows(cos_.cview(), 0, seq), rows(sin_.cview(), 0, seq), transpose);
  }
  DynTensor<T, 2, space> cos_, sin_;
};

}  // namespace trm
