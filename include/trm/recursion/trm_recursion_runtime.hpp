#pragma once
// TRM's recursion (SPEC §2.1) with n and T chosen at run time: the same computation as
// TrmRecursion<n, T>, for programs that pick the schedule from a command line or a file without
// compiling one instantiation per (n, T) (the `trm` command line does).
//
//   struct MyTag {};
//   using schedule = trm::TrmRecursionRuntime<MyTag>;
//   schedule::set(/*n=*/2, /*T=*/2);          // before any forward
//
// n and T are process-wide settings of the schedule type (static members, like TrmRecursion's
// template arguments): every model using TrmRecursionRuntime<Tag> runs with the values last set.
// Use a distinct Tag for models that need different values in one process. Change them only
// while no forward or backward of such a model is running, and not between a recorded forward
// and its backward.
//
// describe() gives the same text as TrmRecursion<n, T>::describe(), so model_signature() of a
// model with this schedule equals that of the compile-time schedule with the same n and T: the
// weights mean the same thing, and checkpoints are interchangeable.
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "trm_recursion.hpp"

namespace trm {

template <class Tag = void>
struct TrmRecursionRuntime {
  static inline int n = 2, passes = 2;
  static constexpr std::size_t num_nets = 1;
  static inline int net_calls_per_step = passes * (n + 1);
  static inline int recorded_calls = n + 1;
  static constexpr const char* net_name(std::size_t) { return "L_level"; }
  static std::string describe() { return "TrmRecursion<n=" + std::to_string(n) + ",T=" + std::to_string(passes) + ">"; }

  // n >= 1 latent updates per pass, T >= 1 passes.
  static void set(int n_latent, int t_passes) {
    if (n_latent < 1 || t_passes < 1)
      throw ValueError("TrmRecursionRuntime::set: expected n >= 1 and T >= 1, found n = " + std::to_string(n_latent) +
                       ", T = " + std::to_string(t_passes));
    n = n_latent;
    passes = t_passes;
    net_calls_per_step = passes * (n + 1);
    recorded_calls = n + 1;
  }

  template <class M>
  struct Tape {
    using S = typename M::scalar_type;
    using space = typename M::space;
    std::vector<DynTensor<S, 3, space>> in, out;
    // As TrmRecursion: the unrecorded calls use cache[0] as scratch.
    std::vector<typename M::net_type::Cache> cache;
    DynTensor<S, 3, space> sum, grad_a, grad_b;
    typename M::net_type::Workspace ws;  // scratch of the net calls, one at a time
    bool recorded = false;
    int recorded_n = 0;  // n of the recorded forward (backward checks it did not change)
    void ensure(int calls) {
      if (int(cache.size()) < calls) {
        in.resize(std::size_t(calls));
        out.resize(std::size_t(calls));
        cache.resize(std::size_t(calls));
      }
    }
  };

  template <class M>
  static void forward(const M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> x,
                      Tensor3View<typename M::scalar_type, typename M::space> y,
                      Tensor3View<typename M::scalar_type, typename M::space> z, bool record) {
    using Bk = typename M::backend_type;
    const int N = n, T = passes;
    const auto& net = m.nets[0];
    const index_t b = x.extent(0), l = x.extent(1), d = x.extent(2);
    tape.ensure(N + 1);
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
    tape.recorded_n = N;
    if (!record) return;
    for (int i = 0; i <= N; ++i) {
      tape.in[std::size_t(i)].resize(b, l, d);
      tape.out[std::size_t(i)].resize(b, l, d);
    }
    for (int i = 0; i < N; ++i) {
      auto zin = i == 0 ? as_matrix(z).as_const() : as_matrix(tape.out[std::size_t(i - 1)].cview());
      auto in = as_matrix(tape.in[std::size_t(i)].view());
      Bk::add(as_matrix(y).as_const(), as_matrix(x), in);
      Bk::add(zin, in.as_const(), in);
      net.forward(tape.in[std::size_t(i)].cview(), tape.out[std::size_t(i)].view(), tape.cache[std::size_t(i)], tape.ws);
    }
    Bk::add(as_matrix(y).as_const(), as_matrix(tape.out[std::size_t(N - 1)].cview()), as_matrix(tape.in[std::size_t(N)].view()));
    net.forward(tape.in[std::size_t(N)].cview(), tape.out[std::size_t(N)].view(), tape.cache[std::size_t(N)], tape.ws);
    Bk::copy(as_matrix(tape.out[std::size_t(N - 1)].cview()), as_matrix(z));
    Bk::copy(as_matrix(tape.out[std::size_t(N)].cview()), as_matrix(y));
  }

  template <class M>
  static void backward(M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> dy,
                       Tensor3View<typename M::scalar_type, typename M::space> dx) {
    using Bk = typename M::backend_type;
    using S = typename M::scalar_type;
    if (!tape.recorded)
      throw std::logic_error("TrmRecursionRuntime::backward: the last forward did not record (record = false)");
    const int N = tape.recorded_n;
    auto& net = m.nets[0];
    const index_t b = dy.extent(0), l = dy.extent(1), d = dy.extent(2);
    tape.grad_a.resize(b, l, d);
    tape.grad_b.resize(b, l, d);
    tape.grad_a.zero();
    net.backward(tape.in[std::size_t(N)].cview(), tape.out[std::size_t(N)].cview(), tape.cache[std::size_t(N)], dy,
                 tape.grad_a.view(), tape.ws);
    auto* g = &tape.grad_a;
    auto* h = &tape.grad_b;
    for (int i = N - 1; i >= 0; --i) {
      h->zero();
      net.backward(tape.in[std::size_t(i)].cview(), tape.out[std::size_t(i)].cview(), tape.cache[std::size_t(i)], g->cview(),
                   h->view(), tape.ws);
      Bk::axpy(S(1), as_matrix(h->cview()), as_matrix(dx));
      std::swap(g, h);
    }
  }
};

}  // namespace trm
