#pragma once
// HRM's hierarchical recursion (SPEC §5; sapientinc/HRM models/hrm/hrm_act_v1.py), as a schedule
// over the same parts as TRM: two nets of the Model, nets[0] = "H_level" (high level, slow) and
// nets[1] = "L_level" (low level, fast), each a Stack of the config's `layers` blocks, so the
// parameters are named H_level.layers.{i}... and L_level.layers.{i}... as in the reference.
//
// Carry mapping: the Model's carry is (y, z) and its heads read y, so y <-> z_H and z <-> z_L
// (H_init starts z_H, L_init starts z_L). One supervision step:
//
//   for h in 0..H_cycles-1:
//     for l in 0..L_cycles-1:
//       unless (h, l) is the last pair:  z_L <- L(z_L + (z_H + x))
//     unless h is the last cycle:        z_H <- H(z_H + z_L)
//   z_L <- L(z_L + (z_H + x))            \  "one-step gradient": only these two calls are recorded
//   z_H <- H(z_H + z_L)                  /  and back-propagated through
//
// i.e. H_cycles * (L_cycles + 1) net calls (6 for the default 2, 2), of which all but the last L
// and the last H update run without gradient. Backward: dz_H(out) -> H -> dz_L(new) -> L -> dx;
// the z_H and z_L that enter the recorded calls are treated as constants (detached), exactly as
// the reference's torch.no_grad() block makes them. HRM's usual companions are puzzle_emb_len = 1
// (a config member), the attention mixer with RoPE (its default positions) and QLearningHalting.
// Both nets have the config's `layers` layers (HRM: 4 + 4).
#include <array>
#include <stdexcept>

#include "trm_recursion.hpp"

namespace trm {

template <index_t HCycles = dynamic, index_t LCycles = dynamic>
class HrmRecursion {
 public:
  static constexpr std::size_t num_nets = 2;
  static constexpr std::size_t high = 0, low = 1;  // indices into Model::nets
  static constexpr std::size_t latent_states = 1;  // z = z_L
  static constexpr const char* net_name(std::size_t i) { return i == high ? "H_level" : "L_level"; }
  // [0]: the last L call, [1]: the last H call; unrecorded calls use cache[0] as scratch.
  template <class M>
  using Tape = CallTape<M, 2>;

  // HrmRecursion<2, 2> or HrmRecursion<>{H_cycles, L_cycles}.
  constexpr HrmRecursion() = default;
  HrmRecursion(index_t h_cycles, index_t l_cycles) : h_(h_cycles, "HrmRecursion: H_cycles"), l_(l_cycles, "HrmRecursion: L_cycles") {}
  constexpr int h_cycles() const { return h_.value(); }
  constexpr int l_cycles() const { return l_.value(); }
  constexpr int net_calls_per_step() const { return h_cycles() * (l_cycles() + 1); }
  static constexpr int recorded_calls() { return 2; }
  std::string describe() const {
    return "HrmRecursion<H=" + std::to_string(h_cycles()) + ",L=" + std::to_string(l_cycles()) + ">";
  }
  template <index_t H2, index_t L2>
  bool operator==(const HrmRecursion<H2, L2>& o) const {
    return h_cycles() == o.h_cycles() && l_cycles() == o.l_cycles();
  }

  // One supervision step; y (= z_H) and z (= z_L) are the carry, updated in place.
  template <class M>
  void forward(const M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> x,
                      Tensor3View<typename M::scalar_type, typename M::space> y,
                      Tensor3View<typename M::scalar_type, typename M::space> z, bool record) const {
    using Bk = typename M::backend_type;
    const auto& H = m.nets[high];
    const auto& L = m.nets[low];
    const int h_count = h_cycles(), l_count = l_cycles();
    tape.ensure(2);
    const index_t b = x.extent(0), l = x.extent(1), d = x.extent(2);
    tape.sum.resize(b, l, d);
    auto sum = as_matrix(tape.sum.view());
    auto low_input = [&](auto in, auto zl) {  // z_L + (z_H + x): the reference's order
      Bk::add(as_matrix(y).as_const(), as_matrix(x), in);
      Bk::add(zl, in.as_const(), in);
    };
    for (int h = 0; h < h_count; ++h) {
      for (int i = 0; i < l_count; ++i) {
        if (h == h_count - 1 && i == l_count - 1) continue;
        low_input(sum, as_matrix(z).as_const());
        L.forward(tape.sum.cview(), z, tape.cache[0], tape.ws);
      }
      if (h == h_count - 1) continue;
      Bk::add(as_matrix(y).as_const(), as_matrix(z).as_const(), sum);
      H.forward(tape.sum.cview(), y, tape.cache[0], tape.ws);
    }
    tape.recorded_calls = 0;
    if (!record) {
      low_input(sum, as_matrix(z).as_const());
      L.forward(tape.sum.cview(), z, tape.cache[0], tape.ws);
      Bk::add(as_matrix(y).as_const(), as_matrix(z).as_const(), sum);
      H.forward(tape.sum.cview(), y, tape.cache[0], tape.ws);
      return;
    }
    tape.record(2, b, l, d);
    low_input(as_matrix(tape.in[0].view()), as_matrix(z).as_const());
    L.forward(tape.in[0].cview(), tape.out[0].view(), tape.cache[0], tape.ws);
    Bk::add(as_matrix(y).as_const(), as_matrix(tape.out[0].cview()), as_matrix(tape.in[1].view()));
    H.forward(tape.in[1].cview(), tape.out[1].view(), tape.cache[1], tape.ws);
    Bk::copy(as_matrix(tape.out[0].cview()), as_matrix(z));
    Bk::copy(as_matrix(tape.out[1].cview()), as_matrix(y));
  }

  // dy: gradient w.r.t. the step's output z_H. Accumulates the gradients of both nets' parameters
  // and adds the gradient w.r.t. x into dx.
  template <class M>
  void backward(M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> dy,
                       Tensor3View<typename M::scalar_type, typename M::space> dx) const {
    using Bk = typename M::backend_type;
    using S = typename M::scalar_type;
    tape.require_recorded("HrmRecursion");
    const index_t b = dy.extent(0), l = dy.extent(1), d = dy.extent(2);
    tape.grad_a.resize(b, l, d);
    tape.grad_b.resize(b, l, d);
    // z_H' = H(z_H + z_L'): the gradient reaching z_L' is d(H input); z_H is detached.
    tape.grad_a.zero();
    m.nets[high].backward(tape.in[1].cview(), tape.out[1].cview(), tape.cache[1], dy, tape.grad_a.view(), tape.ws);
    // z_L' = L(z_L + z_H + x): x receives d(L input); z_L and z_H are detached.
    tape.grad_b.zero();
    m.nets[low].backward(tape.in[0].cview(), tape.out[0].cview(), tape.cache[0], tape.grad_a.cview(), tape.grad_b.view(), tape.ws);
    Bk::axpy(S(1), as_matrix(tape.grad_b.cview()), as_matrix(dx));
  }

 private:
  [[no_unique_address]] Count<HCycles, 0> h_{};
  [[no_unique_address]] Count<LCycles, 1> l_{};
};

}  // namespace trm
