#pragma once
// TRM's recursion (SPEC §2.1): one supervision step is T passes of
//   { n times: z <- net(z + (y + x));  then y <- net(y + z) }
// The first T-1 passes record nothing (no gradient); the last pass records the inputs, outputs
// and caches of its n+1 net calls, and backward runs through that pass only. The carry (y, z)
// handed to the next supervision step is detached: gradients never cross a step.
#include <array>
#include <string>

#include "../core/concepts.hpp"
#include "../core/tensor.hpp"

namespace trm {

// A recursion schedule: names its nets, runs one supervision step forward (recording what its
// backward needs when asked to) and back-propagates through the recorded part into the
// parameters and the embedded input x. See TrmRecursion for the reference model of it.
template <class S, class M>
concept RecursionSchedule = requires(const M& cm, M& m, typename S::template Tape<M>& tape,
                                     CTensor3View<typename M::scalar_type, typename M::space> cv,
                                     Tensor3View<typename M::scalar_type, typename M::space> v) {
  { S::num_nets } -> std::convertible_to<std::size_t>;
  { S::net_calls_per_step } -> std::convertible_to<int>;
  S::forward(cm, tape, cv, v, v, true);
  S::backward(m, tape, cv, v);
};

template <int N, int T>
struct TrmRecursion {
  static_assert(N >= 1 && T >= 1, "TrmRecursion<n, T>: n >= 1 latent updates per pass and T >= 1 passes");
  static constexpr int n = N, passes = T;
  static constexpr std::size_t num_nets = 1;
  static constexpr int net_calls_per_step = T * (N + 1);
  static constexpr int recorded_calls = N + 1;
  static constexpr const char* net_name(std::size_t) { return "L_level"; }
  static std::string describe() { return "TrmRecursion<n=" + std::to_string(N) + ",T=" + std::to_string(T) + ">"; }

  template <class M>
  struct Tape {
    using S = typename M::scalar_type;
    using space = typename M::space;
    std::array<DynTensor<S, 3, space>, N + 1> in, out;
    // The unrecorded calls (the no-grad passes, or every call with record = false) run with
    // cache[0] as scratch: the recorded pass overwrites it afterwards, and a separate scratch
    // cache would add a whole net call's activations to the peak memory.
    std::array<typename M::net_type::Cache, N + 1> cache;
    DynTensor<S, 3, space> sum, grad_a, grad_b;
    typename M::net_type::Workspace ws;  // scratch of the net calls, one at a time
    bool recorded = false;
  };

  // One supervision step; y and z are the carry, updated in place. With record = false nothing is
  // kept for backward (inference, or the no-grad passes).
  template <class M>
  static void forward(const M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> x,
                      Tensor3View<typename M::scalar_type, typename M::space> y,
                      Tensor3View<typename M::scalar_type, typename M::space> z, bool record) {
    using S = typename M::scalar_type;
    using Bk = typename M::backend_type;
    const auto& net = m.nets[0];
    const index_t b = x.extent(0), l = x.extent(1), d = x.extent(2);
    tape.sum.resize(b, l, d);
    auto sum = as_matrix(tape.sum.view());
    const int free_passes = record ? T - 1 : T;
    for (int t = 0; t < free_passes; ++t) {
      for (int i = 0; i < N; ++i) {
        Bk::add(as_matrix(y).as_const(), as_matrix(x), sum);  // (y + x), then z + (y + x): the reference's order
        Bk::add(as_matrix(z).as_const(), sum.as_const(), sum);
        net.forward(tape.sum.cview(), z, tape.cache[0], tape.ws);
      }
      Bk::add(as_matrix(y).as_const(), as_matrix(z).as_const(), sum);
      net.forward(tape.sum.cview(), y, tape.cache[0], tape.ws);
    }
    tape.recorded = record;
    if (!record) return;
    for (int i = 0; i <= N; ++i) {
      tape.in[i].resize(b, l, d);
      tape.out[i].resize(b, l, d);
    }
    for (int i = 0; i < N; ++i) {
      auto zin = i == 0 ? as_matrix(z).as_const() : as_matrix(tape.out[i - 1].cview());
      auto in = as_matrix(tape.in[i].view());
      Bk::add(as_matrix(y).as_const(), as_matrix(x), in);
      Bk::add(zin, in.as_const(), in);
      net.forward(tape.in[i].cview(), tape.out[i].view(), tape.cache[i], tape.ws);
    }
    Bk::add(as_matrix(y).as_const(), as_matrix(tape.out[N - 1].cview()), as_matrix(tape.in[N].view()));
    net.forward(tape.in[N].cview(), tape.out[N].view(), tape.cache[N], tape.ws);
    Bk::copy(as_matrix(tape.out[N - 1].cview()), as_matrix(z));
    Bk::copy(as_matrix(tape.out[N].cview()), as_matrix(y));
    (void)sizeof(S);
  }

  // dy: gradient of the loss w.r.t. the step's output y. Accumulates parameter gradients and adds
  // the gradient w.r.t. the embedded input x into dx. The carry that entered the step is detached.
  template <class M>
  static void backward(M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> dy,
                       Tensor3View<typename M::scalar_type, typename M::space> dx) {
    using Bk = typename M::backend_type;
    using S = typename M::scalar_type;
    if (!tape.recorded) throw std::logic_error("TrmRecursion::backward: the last forward did not record (record = false)");
    auto& net = m.nets[0];
    const index_t b = dy.extent(0), l = dy.extent(1), d = dy.extent(2);
    tape.grad_a.resize(b, l, d);
    tape.grad_b.resize(b, l, d);
    // y_out = net(y_in + z_N): the gradient reaching z_N is d(net input); y_in is detached.
    tape.grad_a.zero();
    net.backward(tape.in[N].cview(), tape.out[N].cview(), tape.cache[N], dy, tape.grad_a.view(), tape.ws);
    auto* g = &tape.grad_a;  // gradient w.r.t. out[i] (z_{i+1})
    auto* h = &tape.grad_b;
    for (int i = N - 1; i >= 0; --i) {
      h->zero();
      net.backward(tape.in[i].cview(), tape.out[i].cview(), tape.cache[i], g->cview(), h->view(), tape.ws);
      // in[i] = z_i + y + x: x receives the gradient; z_i = out[i-1] too (for i > 0).
      Bk::axpy(S(1), as_matrix(h->cview()), as_matrix(dx));
      std::swap(g, h);
    }
  }
};

}  // namespace trm
