#pragma once
// The TRM paper's recursion variants (SPEC §2.4, §8.2) as schedules over the same Model parts as
// TrmRecursion (one net, "L_level"):
//
//   TrmSingleZ<n, T>         one latent only (paper Table 2 "single z", 71.9%; reference
//                            trm_singlez.py). Per pass: n times z <- net(z + x), then z <- net(z)
//                            (no injection at all). Outputs and q read z. Carry: y is that z
//                            (starts from L_init, as the reference), the z tensor is empty.
//   TrmMultiScaleZ<K, T>     y and K latents z_1..z_K (paper "multi-scale z", 77.6%; reference
//                            trm_hier6.py with K = n = 6 hard-coded, generalised to any K here).
//                            Per pass: for i = 1..K: z_i <- net((z_1 + ... + z_K) + (y + x));
//                            then y <- net(y + (z_1 + ... + z_K)). Carry: y and z = [K*B, L, D].
// (The partial- and 1-step-gradient variants are counts of TrmRecursion: trm_recursion.hpp.)
// Counts are static or dynamic as in TrmRecursion: TrmSingleZ<2, 2> or TrmSingleZ<>{n, T};
// TrmMultiScaleZ<K, 2> or TrmMultiScaleZ<K>{T} (K fixes the number of carried latents and of
// initial-state buffers, so it is always static).
//
// For every variant the first T-1 passes run without gradient and the carry leaving the step is
// detached, as in TrmRecursion; unrecorded calls use the tape's cache[0] as scratch (the recorded
// calls overwrite it afterwards), as TrmRecursion does (CallTape).
#include <array>
#include <stdexcept>

#include "trm_recursion.hpp"

namespace trm {

namespace detail {
// Rows [k*b, (k+1)*b) of a [K*b, L, D] tensor: latent k of a stacked carry (contiguous).
template <class T, class Space>
View<T, DynExtents<3>, Space> latent_block(const View<T, DynExtents<3>, Space>& v, index_t k, index_t b) {
  if ((k + 1) * b > v.extent(0))
    throw ShapeError("latent_block: latent " + std::to_string(k) + " of batch " + std::to_string(b) +
                     " is outside a stacked carry of " + std::to_string(v.extent(0)) + " rows");
  return View<T, DynExtents<3>, Space>(v.data() + k * b * v.stride(0), DynExtents<3>{b, v.extent(1), v.extent(2)},
                                       v.strides());
}
}  // namespace detail

// ------------------------------------------------------------------------------------------------
template <index_t N = dynamic, index_t T = dynamic>
class TrmSingleZ {
 public:
  static constexpr std::size_t num_nets = 1;
  static constexpr std::size_t latent_states = 0;  // the only state is the carry's y
  static constexpr const char* net_name(std::size_t) { return "L_level"; }
  // Recorded: in[i] = z_i + x and out[i] of the n latent updates; the last update's input is
  // out[n-1] itself, so in[n] is unused.
  template <class M>
  using Tape = CallTape<M, detail::plus_one<N>()>;

  constexpr TrmSingleZ() = default;
  TrmSingleZ(index_t n, index_t t) : n_(n, "TrmSingleZ: n"), t_(t, "TrmSingleZ: T") {}
  constexpr int n() const { return n_.value(); }
  constexpr int passes() const { return t_.value(); }
  constexpr int net_calls_per_step() const { return passes() * (n() + 1); }
  constexpr int recorded_calls() const { return n() + 1; }
  std::string describe() const { return "TrmSingleZ<n=" + std::to_string(n()) + ",T=" + std::to_string(passes()) + ">"; }
  template <index_t N2, index_t T2>
  bool operator==(const TrmSingleZ<N2, T2>& o) const {
    return n() == o.n() && passes() == o.passes();
  }

  // y is the single latent z (what the heads read); z must be empty.
  template <class M>
  void forward(const M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> x,
               Tensor3View<typename M::scalar_type, typename M::space> y,
               Tensor3View<typename M::scalar_type, typename M::space>, bool record) const {
    using Bk = typename M::backend_type;
    const int n_ = n(), t_ = passes();
    const auto& net = m.nets[0];
    const index_t b = x.extent(0), l = x.extent(1), d = x.extent(2);
    tape.ensure(1);
    tape.sum.resize(b, l, d);
    auto sum = as_matrix(tape.sum.view());
    const int free_passes = record ? t_ - 1 : t_;
    for (int t = 0; t < free_passes; ++t) {
      for (int i = 0; i < n_; ++i) {
        Bk::add(as_matrix(y).as_const(), as_matrix(x), sum);
        net.forward(tape.sum.cview(), y, tape.cache[0], tape.ws);
      }
      Bk::copy(as_matrix(y).as_const(), sum);  // z <- net(z): the input is copied, not aliased
      net.forward(tape.sum.cview(), y, tape.cache[0], tape.ws);
    }
    tape.recorded_calls = 0;
    if (!record) return;
    tape.record(n_ + 1, b, l, d, /*inputs=*/n_);
    for (int i = 0; i < n_; ++i) {
      auto zin = i == 0 ? as_matrix(y).as_const() : as_matrix(tape.out[i - 1].cview());
      Bk::add(zin, as_matrix(x), as_matrix(tape.in[i].view()));
      net.forward(tape.in[i].cview(), tape.out[i].view(), tape.cache[i], tape.ws);
    }
    net.forward(tape.out[n_ - 1].cview(), tape.out[n_].view(), tape.cache[n_], tape.ws);
    Bk::copy(as_matrix(tape.out[n_].cview()), as_matrix(y));
  }

  template <class M>
  void backward(M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> dy,
                Tensor3View<typename M::scalar_type, typename M::space> dx) const {
    tape.require_recorded("TrmSingleZ");
    const int last = tape.recorded_calls - 1;
    detail::backward_chain(m, tape, last, dy, dx, tape.out[last - 1]);  // in[i] = out[i-1] + x
  }

 private:
  [[no_unique_address]] Count<N, 0> n_{};
  [[no_unique_address]] Count<T, 1> t_{};
};

// ------------------------------------------------------------------------------------------------
template <int K, index_t T = dynamic>
class TrmMultiScaleZ {
 public:
  static_assert(K >= 1, "TrmMultiScaleZ<K, T>: K >= 1 latents");
  static constexpr std::size_t num_nets = 1;
  static constexpr std::size_t latent_states = K;
  static constexpr const char* net_name(std::size_t) { return "L_level"; }
  template <class M>
  using Tape = CallTape<M, K + 1>;

  constexpr TrmMultiScaleZ() = default;
  explicit TrmMultiScaleZ(index_t t) : t_(t, "TrmMultiScaleZ: T") {}
  static constexpr int n() { return K; }
  constexpr int passes() const { return t_.value(); }
  constexpr int net_calls_per_step() const { return passes() * (K + 1); }
  static constexpr int recorded_calls() { return K + 1; }
  std::string describe() const { return "TrmMultiScaleZ<K=" + std::to_string(K) + ",T=" + std::to_string(passes()) + ">"; }
  template <int K2, index_t T2>
  bool operator==(const TrmMultiScaleZ<K2, T2>& o) const {
    return K == K2 && passes() == o.passes();
  }

  // y: the answer state; z: the K latents stacked along the batch axis ([K*B, L, D]).
  template <class M>
  void forward(const M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> x,
               Tensor3View<typename M::scalar_type, typename M::space> y,
               Tensor3View<typename M::scalar_type, typename M::space> z, bool record) const {
    using Bk = typename M::backend_type;
    const int t_ = passes();
    const auto& net = m.nets[0];
    const index_t b = x.extent(0), l = x.extent(1), d = x.extent(2);
    if (z.extent(0) != K * b) throw ShapeError("TrmMultiScaleZ::forward: z must hold K * batch rows");
    tape.sum.resize(b, l, d);
    tape.extra.resize(b, l, d);  // y + x
    auto zk = [&](int k) { return detail::latent_block(z, k, b); };
    // s = z_1 + ... + z_K, summed left to right as the reference
    auto latent_sum = [&](auto s) {
      Bk::copy(as_matrix(zk(0)).as_const(), s);
      for (int k = 1; k < K; ++k) Bk::add(s.as_const(), as_matrix(zk(k)).as_const(), s);
    };
    auto latent_input = [&](auto in) {  // (z_1 + ... + z_K) + (y + x)
      Bk::add(as_matrix(y).as_const(), as_matrix(x), as_matrix(tape.extra.view()));
      latent_sum(in);
      Bk::add(in.as_const(), as_matrix(tape.extra.cview()), in);
    };
    auto answer_input = [&](auto in) {  // y + (z_1 + ... + z_K)
      latent_sum(in);
      Bk::add(as_matrix(y).as_const(), in.as_const(), in);
    };
    auto sum = as_matrix(tape.sum.view());
    const int free_passes = record ? t_ - 1 : t_;
    for (int t = 0; t < free_passes; ++t) {
      for (int i = 0; i < K; ++i) {
        latent_input(sum);
        net.forward(tape.sum.cview(), zk(i), tape.cache[0], tape.ws);
      }
      answer_input(sum);
      net.forward(tape.sum.cview(), y, tape.cache[0], tape.ws);
    }
    tape.recorded_calls = 0;
    if (!record) return;
    tape.record(K + 1, b, l, d);
    for (int i = 0; i < K; ++i) {
      latent_input(as_matrix(tape.in[i].view()));
      net.forward(tape.in[i].cview(), tape.out[i].view(), tape.cache[i], tape.ws);
      Bk::copy(as_matrix(tape.out[i].cview()), as_matrix(zk(i)));  // later sums see the new z_i
    }
    answer_input(as_matrix(tape.in[K].view()));
    net.forward(tape.in[K].cview(), tape.out[K].view(), tape.cache[K], tape.ws);
    Bk::copy(as_matrix(tape.out[K].cview()), as_matrix(y));
  }

  // The new z_i enters the inputs of every later call of the pass (latent updates i+1..K and the
  // answer update), so its gradient is d(in[K]) + sum_{j>i} d(in[j]): one running sum A.
  template <class M>
  void backward(M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> dy,
                Tensor3View<typename M::scalar_type, typename M::space> dx) const {
    using Bk = typename M::backend_type;
    using S = typename M::scalar_type;
    tape.require_recorded("TrmMultiScaleZ");
    auto& net = m.nets[0];
    const index_t b = dy.extent(0), l = dy.extent(1), d = dy.extent(2);
    tape.grad_a.resize(b, l, d);
    tape.grad_b.resize(b, l, d);
    tape.grad_a.zero();
    net.backward(tape.in[K].cview(), tape.out[K].cview(), tape.cache[K], dy, tape.grad_a.view(), tape.ws);
    for (int i = K - 1; i >= 0; --i) {
      tape.grad_b.zero();
      net.backward(tape.in[i].cview(), tape.out[i].cview(), tape.cache[i], tape.grad_a.cview(), tape.grad_b.view(), tape.ws);
      Bk::axpy(S(1), as_matrix(tape.grad_b.cview()), as_matrix(dx));
      if (i > 0) Bk::axpy(S(1), as_matrix(tape.grad_b.cview()), as_matrix(tape.grad_a.view()));
    }
  }

 private:
  [[no_unique_address]] Count<T, 1> t_{};
};

}  // namespace trm
