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
//   TrmPartialGradient<n, T, k>  TrmRecursion with gradient through only the last k of the n
//                            latent updates of the last pass and the answer update (paper appendix:
//                            "back-propagating only the last k of n+1 calls"). k = n is TrmRecursion.
//   TrmOneStepGradient<n, T> = TrmPartialGradient<n, T, 1>: HRM's 1-step gradient applied to TRM
//                            (paper Table 1 "w/ 1-step gradient", 56.5%). Recorded, back-propagated
//                            calls: exactly the last two of the step, the last latent update
//                            z <- net(z + (y + x)) and the answer update y <- net(y + z); the other
//                            T(n+1) - 2 calls run without gradient, so x gets gradient from one
//                            injection only (TRM gets it from n).
//
// For every variant the first T-1 passes run without gradient and the carry leaving the step is
// detached, as in TrmRecursion; unrecorded calls use the tape's cache[0] as scratch (the recorded
// calls overwrite it afterwards), as TrmRecursion does.
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
template <int N, int T>
struct TrmSingleZ {
  static_assert(N >= 1 && T >= 1, "TrmSingleZ<n, T>: n >= 1 latent updates per pass and T >= 1 passes");
  static constexpr int n = N, passes = T;
  static constexpr std::size_t num_nets = 1;
  static constexpr std::size_t latent_states = 0;  // the only state is the carry's y
  static constexpr int net_calls_per_step = T * (N + 1);
  static constexpr int recorded_calls = N + 1;
  static constexpr const char* net_name(std::size_t) { return "L_level"; }

  template <class M>
  struct Tape {
    using S = typename M::scalar_type;
    using space = typename M::space;
    std::array<DynTensor<S, 3, space>, N> in;  // z_i + x of the recorded latent updates
    std::array<DynTensor<S, 3, space>, N + 1> out;
    std::array<typename M::net_type::Cache, N + 1> cache;
    DynTensor<S, 3, space> sum, grad_a, grad_b;
    typename M::net_type::Workspace ws;  // scratch of the net calls, one at a time
    bool recorded = false;
  };

  // y is the single latent z (what the heads read); z must be empty.
  template <class M>
  static void forward(const M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> x,
                      Tensor3View<typename M::scalar_type, typename M::space> y,
                      Tensor3View<typename M::scalar_type, typename M::space>, bool record) {
    using Bk = typename M::backend_type;
    const auto& net = m.nets[0];
    const index_t b = x.extent(0), l = x.extent(1), d = x.extent(2);
    tape.sum.resize(b, l, d);
    auto sum = as_matrix(tape.sum.view());
    const int free_passes = record ? T - 1 : T;
    for (int t = 0; t < free_passes; ++t) {
      for (int i = 0; i < N; ++i) {
        Bk::add(as_matrix(y).as_const(), as_matrix(x), sum);
        net.forward(tape.sum.cview(), y, tape.cache[0], tape.ws);
      }
      Bk::copy(as_matrix(y).as_const(), sum);  // z <- net(z): the input is copied, not aliased
      net.forward(tape.sum.cview(), y, tape.cache[0], tape.ws);
    }
    tape.recorded = record;
    if (!record) return;
    for (int i = 0; i < N; ++i) tape.in[i].resize(b, l, d);
    for (int i = 0; i <= N; ++i) tape.out[i].resize(b, l, d);
    for (int i = 0; i < N; ++i) {
      auto zin = i == 0 ? as_matrix(y).as_const() : as_matrix(tape.out[i - 1].cview());
      Bk::add(zin, as_matrix(x), as_matrix(tape.in[i].view()));
      net.forward(tape.in[i].cview(), tape.out[i].view(), tape.cache[i], tape.ws);
    }
    net.forward(tape.out[N - 1].cview(), tape.out[N].view(), tape.cache[N], tape.ws);
    Bk::copy(as_matrix(tape.out[N].cview()), as_matrix(y));
  }

  template <class M>
  static void backward(M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> dy,
                       Tensor3View<typename M::scalar_type, typename M::space> dx) {
    using Bk = typename M::backend_type;
    using S = typename M::scalar_type;
    if (!tape.recorded) throw std::logic_error("TrmSingleZ::backward: the last forward did not record (record = false)");
    auto& net = m.nets[0];
    const index_t b = dy.extent(0), l = dy.extent(1), d = dy.extent(2);
    tape.grad_a.resize(b, l, d);
    tape.grad_b.resize(b, l, d);
    tape.grad_a.zero();
    net.backward(tape.out[N - 1].cview(), tape.out[N].cview(), tape.cache[N], dy, tape.grad_a.view(), tape.ws);
    auto* g = &tape.grad_a;  // gradient w.r.t. out[i]
    auto* h = &tape.grad_b;
    for (int i = N - 1; i >= 0; --i) {
      h->zero();
      net.backward(tape.in[i].cview(), tape.out[i].cview(), tape.cache[i], g->cview(), h->view(), tape.ws);
      Bk::axpy(S(1), as_matrix(h->cview()), as_matrix(dx));  // in[i] = out[i-1] + x
      std::swap(g, h);
    }
  }
};

// ------------------------------------------------------------------------------------------------
template <int K, int T>
struct TrmMultiScaleZ {
  static_assert(K >= 1 && T >= 1, "TrmMultiScaleZ<K, T>: K >= 1 latents and T >= 1 passes");
  static constexpr int n = K, passes = T;
  static constexpr std::size_t num_nets = 1;
  static constexpr std::size_t latent_states = K;
  static constexpr int net_calls_per_step = T * (K + 1);
  static constexpr int recorded_calls = K + 1;
  static constexpr const char* net_name(std::size_t) { return "L_level"; }

  template <class M>
  struct Tape {
    using S = typename M::scalar_type;
    using space = typename M::space;
    std::array<DynTensor<S, 3, space>, K + 1> in, out;
    std::array<typename M::net_type::Cache, K + 1> cache;
    DynTensor<S, 3, space> sum, yx, grad_a, grad_b;
    typename M::net_type::Workspace ws;  // scratch of the net calls, one at a time
    bool recorded = false;
  };

  // y: the answer state; z: the K latents stacked along the batch axis ([K*B, L, D]).
  template <class M>
  static void forward(const M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> x,
                      Tensor3View<typename M::scalar_type, typename M::space> y,
                      Tensor3View<typename M::scalar_type, typename M::space> z, bool record) {
    using Bk = typename M::backend_type;
    const auto& net = m.nets[0];
    const index_t b = x.extent(0), l = x.extent(1), d = x.extent(2);
    if (z.extent(0) != K * b) throw ShapeError("TrmMultiScaleZ::forward: z must hold K * batch rows");
    tape.sum.resize(b, l, d);
    tape.yx.resize(b, l, d);
    auto zk = [&](int k) { return detail::latent_block(z, k, b); };
    // s = z_1 + ... + z_K, summed left to right as the reference
    auto latent_sum = [&](auto s) {
      Bk::copy(as_matrix(zk(0)).as_const(), s);
      for (int k = 1; k < K; ++k) Bk::add(s.as_const(), as_matrix(zk(k)).as_const(), s);
    };
    auto latent_input = [&](auto in) {  // (z_1 + ... + z_K) + (y + x)
      Bk::add(as_matrix(y).as_const(), as_matrix(x), as_matrix(tape.yx.view()));
      latent_sum(in);
      Bk::add(in.as_const(), as_matrix(tape.yx.cview()), in);
    };
    auto answer_input = [&](auto in) {  // y + (z_1 + ... + z_K)
      latent_sum(in);
      Bk::add(as_matrix(y).as_const(), in.as_const(), in);
    };
    auto sum = as_matrix(tape.sum.view());
    const int free_passes = record ? T - 1 : T;
    for (int t = 0; t < free_passes; ++t) {
      for (int i = 0; i < K; ++i) {
        latent_input(sum);
        net.forward(tape.sum.cview(), zk(i), tape.cache[0], tape.ws);
      }
      answer_input(sum);
      net.forward(tape.sum.cview(), y, tape.cache[0], tape.ws);
    }
    tape.recorded = record;
    if (!record) return;
    for (int i = 0; i <= K; ++i) {
      tape.in[i].resize(b, l, d);
      tape.out[i].resize(b, l, d);
    }
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
  static void backward(M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> dy,
                       Tensor3View<typename M::scalar_type, typename M::space> dx) {
    using Bk = typename M::backend_type;
    using S = typename M::scalar_type;
    if (!tape.recorded) throw std::logic_error("TrmMultiScaleZ::backward: the last forward did not record (record = false)");
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
};

// ------------------------------------------------------------------------------------------------
template <int N, int T, int KRecorded>
struct TrmPartialGradient {
  static_assert(N >= 1 && T >= 1, "TrmPartialGradient<n, T, k>: n >= 1 and T >= 1");
  static_assert(KRecorded >= 1 && KRecorded <= N, "TrmPartialGradient<n, T, k>: 1 <= k <= n recorded latent updates");
  static constexpr int n = N, passes = T, recorded_latent_updates = KRecorded;
  static constexpr std::size_t num_nets = 1;
  static constexpr int net_calls_per_step = T * (N + 1);
  static constexpr int recorded_calls = KRecorded + 1;
  static constexpr const char* net_name(std::size_t) { return "L_level"; }

  template <class M>
  struct Tape {
    using S = typename M::scalar_type;
    using space = typename M::space;
    std::array<DynTensor<S, 3, space>, KRecorded + 1> in, out;
    std::array<typename M::net_type::Cache, KRecorded + 1> cache;
    DynTensor<S, 3, space> sum, grad_a, grad_b;
    typename M::net_type::Workspace ws;  // scratch of the net calls, one at a time
    bool recorded = false;
  };

  template <class M>
  static void forward(const M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> x,
                      Tensor3View<typename M::scalar_type, typename M::space> y,
                      Tensor3View<typename M::scalar_type, typename M::space> z, bool record) {
    using Bk = typename M::backend_type;
    const auto& net = m.nets[0];
    const index_t b = x.extent(0), l = x.extent(1), d = x.extent(2);
    tape.sum.resize(b, l, d);
    auto sum = as_matrix(tape.sum.view());
    auto latent_update = [&] {
      Bk::add(as_matrix(y).as_const(), as_matrix(x), sum);  // z + (y + x), the reference's order
      Bk::add(as_matrix(z).as_const(), sum.as_const(), sum);
      net.forward(tape.sum.cview(), z, tape.cache[0], tape.ws);
    };
    auto answer_update = [&] {
      Bk::add(as_matrix(y).as_const(), as_matrix(z).as_const(), sum);
      net.forward(tape.sum.cview(), y, tape.cache[0], tape.ws);
    };
    // Unrecorded calls: all of them, or (record) all but the last k latent updates of the last
    // pass and its answer update.
    for (int t = 0; t < T; ++t) {
      const bool recorded_pass = record && t == T - 1;
      for (int i = 0; i < (recorded_pass ? N - KRecorded : N); ++i) latent_update();
      if (!recorded_pass) answer_update();
    }
    tape.recorded = record;
    if (!record) return;
    for (int i = 0; i <= KRecorded; ++i) {
      tape.in[i].resize(b, l, d);
      tape.out[i].resize(b, l, d);
    }
    for (int i = 0; i < KRecorded; ++i) {
      auto zin = i == 0 ? as_matrix(z).as_const() : as_matrix(tape.out[i - 1].cview());
      auto in = as_matrix(tape.in[i].view());
      Bk::add(as_matrix(y).as_const(), as_matrix(x), in);
      Bk::add(zin, in.as_const(), in);
      net.forward(tape.in[i].cview(), tape.out[i].view(), tape.cache[i], tape.ws);
    }
    Bk::add(as_matrix(y).as_const(), as_matrix(tape.out[KRecorded - 1].cview()), as_matrix(tape.in[KRecorded].view()));
    net.forward(tape.in[KRecorded].cview(), tape.out[KRecorded].view(), tape.cache[KRecorded], tape.ws);
    Bk::copy(as_matrix(tape.out[KRecorded - 1].cview()), as_matrix(z));
    Bk::copy(as_matrix(tape.out[KRecorded].cview()), as_matrix(y));
  }

  template <class M>
  static void backward(M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> dy,
                       Tensor3View<typename M::scalar_type, typename M::space> dx) {
    using Bk = typename M::backend_type;
    using S = typename M::scalar_type;
    if (!tape.recorded) throw std::logic_error("TrmPartialGradient::backward: the last forward did not record (record = false)");
    auto& net = m.nets[0];
    const index_t b = dy.extent(0), l = dy.extent(1), d = dy.extent(2);
    tape.grad_a.resize(b, l, d);
    tape.grad_b.resize(b, l, d);
    tape.grad_a.zero();
    net.backward(tape.in[KRecorded].cview(), tape.out[KRecorded].cview(), tape.cache[KRecorded], dy, tape.grad_a.view(), tape.ws);
    auto* g = &tape.grad_a;
    auto* h = &tape.grad_b;
    for (int i = KRecorded - 1; i >= 0; --i) {
      h->zero();
      net.backward(tape.in[i].cview(), tape.out[i].cview(), tape.cache[i], g->cview(), h->view(), tape.ws);
      Bk::axpy(S(1), as_matrix(h->cview()), as_matrix(dx));
      std::swap(g, h);
    }
  }
};

template <int N, int T>
using TrmOneStepGradient = TrmPartialGradient<N, T, 1>;

}  // namespace trm
