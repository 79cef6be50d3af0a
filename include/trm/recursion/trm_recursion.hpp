#pragma once
// TRM's recursion (SPEC §2.1): one supervision step is T passes of
//   { n times: z <- net(z + (y + x));  then y <- net(y + z) }
// The first T-1 passes record nothing (no gradient); the last pass records the inputs, outputs
// and caches of its last k latent updates and its answer update, and backward runs through those
// calls only. k = n (the default) is TRM; k = 1 is HRM's 1-step gradient applied to TRM (paper
// Table 1, "w/ 1-step gradient"); 1 < k < n back-propagates "only the last k of n+1 calls" (paper
// appendix). The carry (y, z) handed to the next supervision step is detached: gradients never
// cross a step.
//
// A schedule is a value. Its counts are static or dynamic, as mdspan's extents:
//   TrmRecursion<6, 3>            n = 6, T = 3 in the type; stores nothing
//   TrmRecursion<>{n, T}          n and T given at run time (e.g. from a command line)
//   TrmRecursion<>{n, T, k}       ... and the last k latent updates recorded
//   TrmOneStepGradient<6, 3>      = TrmRecursion<6, 3, 1>;  TrmOneStepGradient<>{n, T}
// Equal counts give equal describe() strings (and so equal model signatures) and bit-identical
// computations, whichever are static.
#include <array>
#include <concepts>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/concepts.hpp"
#include "../core/count.hpp"
#include "../core/tensor.hpp"

namespace trm {

// A recursion schedule: a copyable, comparable value that names its nets, says how many latent
// states it carries besides y, runs one supervision step forward (recording what its backward
// needs when asked to) and back-propagates through the recorded part into the parameters and the
// embedded input x. The tape is the caller's (one per trainer, solver or thread), so that a const
// model and a const schedule can serve several callers at once.
//   S::num_nets                      nets of the model (TRM 1, HRM 2), named by S::net_name(i)
//   S::latent_states                 latent states carried in z besides y (TRM 1, single-z 0)
//   s.net_calls_per_step()           net applications of one supervision step (forward)
//   s.describe()                     the counts as text; equal for equal schedules
//   s.forward(model, tape, x, y, z, record)   one step; y, z updated in place
//   s.backward(model, tape, dy, dx)  after a recorded forward: parameter grads += ..., dx += ...
template <class S, class M>
concept RecursionSchedule =
    std::copyable<S> && std::equality_comparable<S> &&
    requires(const S& s, const M& cm, M& m, typename S::template Tape<M>& tape,
             CTensor3View<typename M::scalar_type, typename M::space> cv,
             Tensor3View<typename M::scalar_type, typename M::space> v) {
      { S::num_nets } -> std::convertible_to<std::size_t>;
      { S::latent_states } -> std::convertible_to<std::size_t>;
      { S::net_name(std::size_t{}) } -> std::convertible_to<const char*>;
      { s.net_calls_per_step() } -> std::convertible_to<int>;
      { s.describe() } -> std::convertible_to<std::string>;
      s.forward(cm, tape, cv, v, v, true);
      s.backward(m, tape, cv, v);
    };

namespace detail {
// N slots when N is static, a vector sized on first use when it is dynamic.
template <class E, index_t N>
struct Slots {
  std::array<E, std::size_t(N)> items;
  void ensure(int) {}
  E& operator[](int i) { return items[std::size_t(i)]; }
  const E& operator[](int i) const { return items[std::size_t(i)]; }
  auto begin() const { return items.begin(); }
  auto end() const { return items.end(); }
  std::size_t size() const { return items.size(); }
};
template <class E>
struct Slots<E, dynamic> {
  std::vector<E> items;
  void ensure(int n) {
    if (int(items.size()) < n) items.resize(std::size_t(n));
  }
  E& operator[](int i) { return items[std::size_t(i)]; }
  const E& operator[](int i) const { return items[std::size_t(i)]; }
  auto begin() const { return items.begin(); }
  auto end() const { return items.end(); }
  std::size_t size() const { return items.size(); }
};

template <index_t A>
constexpr index_t plus_one() {
  return A == dynamic ? dynamic : A + 1;
}
}  // namespace detail

// What one supervision step records for its backward, for every schedule: the inputs, outputs and
// caches of its recorded net calls (Calls of them, static or dynamic), scratch for the sums that
// form the net inputs and for the gradients flowing back. The unrecorded calls (the no-grad
// passes, or every call with record = false) run with cache[0] as scratch: the recorded calls
// overwrite it afterwards, and a separate scratch cache would add a whole net call's activations
// to the peak memory.
template <class M, index_t Calls>
struct CallTape {
  using S = typename M::scalar_type;
  using space = typename M::space;
  detail::Slots<DynTensor<S, 3, space>, Calls> in, out;
  detail::Slots<typename M::net_type::Cache, Calls> cache;
  // The net's scratch, shared by all calls of a step (they run one after another); one per tape,
  // so several tapes (threads) can run one const model at once.
  typename M::net_type::Workspace ws;
  DynTensor<S, 3, space> sum, extra, grad_a, grad_b;
  int recorded_calls = 0;  // 0: the last forward did not record
  void ensure(int calls) {
    in.ensure(calls);
    out.ensure(calls);
    cache.ensure(calls);
  }
  // Sizes the recorded calls' buffers (inputs of the first `inputs` calls: a schedule whose last
  // call reads an earlier output directly keeps no copy of it) and marks the tape recorded.
  void record(int calls, index_t b, index_t l, index_t d, int inputs = -1) {
    ensure(calls);
    for (int i = 0; i < calls; ++i) {
      if (inputs < 0 || i < inputs) in[i].resize(b, l, d);
      out[i].resize(b, l, d);
    }
    recorded_calls = calls;
  }
  void require_recorded(const char* who) const {
    if (recorded_calls == 0) throw std::logic_error(std::string(who) + "::backward: the last forward did not record (record = false)");
  }
};

namespace detail {
// Backward through a chain of recorded calls 0..last where call i+1's input contains out[i] with
// coefficient 1 and every call's input contains x once: the answer update last, then the latent
// updates last-1..0 (TRM, TRM's partial gradient, single-z). dy: gradient of out[last].
template <class M, class Tape>
void backward_chain(M& m, Tape& tape, int last, CTensor3View<typename M::scalar_type, typename M::space> dy,
                    Tensor3View<typename M::scalar_type, typename M::space> dx,
                    const DynTensor<typename M::scalar_type, 3, typename M::space>& last_input) {
  using Bk = typename M::backend_type;
  using S = typename M::scalar_type;
  auto& net = m.nets[0];
  const index_t b = dy.extent(0), l = dy.extent(1), d = dy.extent(2);
  tape.grad_a.resize(b, l, d);
  tape.grad_b.resize(b, l, d);
  // The last call's input holds out[last-1]: its gradient is d(net input); the other terms of that
  // input (the carry that entered the step) are detached.
  tape.grad_a.zero();
  net.backward(last_input.cview(), tape.out[last].cview(), tape.cache[last], dy, tape.grad_a.view(), tape.ws);
  auto* g = &tape.grad_a;  // gradient w.r.t. out[i]
  auto* h = &tape.grad_b;
  for (int i = last - 1; i >= 0; --i) {
    h->zero();
    net.backward(tape.in[i].cview(), tape.out[i].cview(), tape.cache[i], g->cview(), h->view(), tape.ws);
    // in[i] = z_i + (y + x): x receives the gradient; z_i = out[i-1] too (for i > 0).
    Bk::axpy(S(1), as_matrix(h->cview()), as_matrix(dx));
    std::swap(g, h);
  }
}
}  // namespace detail

template <index_t N = dynamic, index_t T = dynamic, index_t K = N>
class TrmRecursion {
 public:
  static_assert(K == dynamic || N == dynamic || (K >= 1 && K <= N),
                "TrmRecursion<n, T, k>: 1 <= k <= n recorded latent updates");
  static constexpr std::size_t num_nets = 1;
  static constexpr std::size_t latent_states = 1;
  static constexpr const char* net_name(std::size_t) { return "L_level"; }
  template <class M>
  using Tape = CallTape<M, detail::plus_one<K>()>;

  // Static counts need no arguments; a dynamic count left unset is 0, which a Model refuses.
  constexpr TrmRecursion() = default;
  // n and T (k = n unless K is static).
  TrmRecursion(index_t n, index_t t) : n_(n, "TrmRecursion: n"), t_(t, "TrmRecursion: T") {
    if constexpr (K == dynamic) {
      k_ = Count<K, 2>(n_.value(), "TrmRecursion: k");
    } else if (K > n_.value()) {
      throw ValueError("TrmRecursion: k = " + std::to_string(K) + " recorded latent updates need n >= k, found n = " +
                       std::to_string(n));
    }
  }
  TrmRecursion(index_t n, index_t t, index_t k) : TrmRecursion(n, t) {
    k_ = Count<K, 2>(k, "TrmRecursion: k");
    if (k_.value() > n_.value())
      throw ValueError("TrmRecursion: expected 1 <= k <= n recorded latent updates, found k = " + std::to_string(k) +
                       ", n = " + std::to_string(n));
  }

  constexpr int n() const { return n_.value(); }
  constexpr int passes() const { return t_.value(); }
  constexpr int recorded_latent_updates() const { return k_.value(); }
  constexpr int net_calls_per_step() const { return passes() * (n() + 1); }
  constexpr int recorded_calls() const { return recorded_latent_updates() + 1; }
  std::string describe() const {
    std::string s = "TrmRecursion<n=" + std::to_string(n()) + ",T=" + std::to_string(passes());
    if (recorded_latent_updates() != n()) s += ",k=" + std::to_string(recorded_latent_updates());
    return s + ">";
  }
  template <index_t N2, index_t T2, index_t K2>
  bool operator==(const TrmRecursion<N2, T2, K2>& o) const {
    return n() == o.n() && passes() == o.passes() && recorded_latent_updates() == o.recorded_latent_updates();
  }

  // One supervision step; y and z are the carry, updated in place. With record = false nothing is
  // kept for backward (inference, or the no-grad passes).
  template <class M>
  void forward(const M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> x,
               Tensor3View<typename M::scalar_type, typename M::space> y,
               Tensor3View<typename M::scalar_type, typename M::space> z, bool record) const {
    using Bk = typename M::backend_type;
    const int n_ = n(), t_ = passes(), k = recorded_latent_updates();
    const auto& net = m.nets[0];
    const index_t b = x.extent(0), l = x.extent(1), d = x.extent(2);
    tape.ensure(1);
    tape.sum.resize(b, l, d);
    auto sum = as_matrix(tape.sum.view());
    // Unrecorded calls: all of them, or (record) all but the last k latent updates of the last
    // pass and its answer update.
    for (int t = 0; t < t_; ++t) {
      const bool recorded_pass = record && t == t_ - 1;
      for (int i = 0; i < (recorded_pass ? n_ - k : n_); ++i) {
        Bk::add(as_matrix(y).as_const(), as_matrix(x), sum);  // (y + x), then z + (y + x): the reference's order
        Bk::add(as_matrix(z).as_const(), sum.as_const(), sum);
        net.forward(tape.sum.cview(), z, tape.cache[0], tape.ws);
      }
      if (recorded_pass) break;
      Bk::add(as_matrix(y).as_const(), as_matrix(z).as_const(), sum);
      net.forward(tape.sum.cview(), y, tape.cache[0], tape.ws);
    }
    tape.recorded_calls = 0;
    if (!record) return;
    tape.record(k + 1, b, l, d);
    for (int i = 0; i < k; ++i) {
      auto zin = i == 0 ? as_matrix(z).as_const() : as_matrix(tape.out[i - 1].cview());
      auto in = as_matrix(tape.in[i].view());
      Bk::add(as_matrix(y).as_const(), as_matrix(x), in);
      Bk::add(zin, in.as_const(), in);
      net.forward(tape.in[i].cview(), tape.out[i].view(), tape.cache[i], tape.ws);
    }
    Bk::add(as_matrix(y).as_const(), as_matrix(tape.out[k - 1].cview()), as_matrix(tape.in[k].view()));
    net.forward(tape.in[k].cview(), tape.out[k].view(), tape.cache[k], tape.ws);
    Bk::copy(as_matrix(tape.out[k - 1].cview()), as_matrix(z));
    Bk::copy(as_matrix(tape.out[k].cview()), as_matrix(y));
  }

  // dy: gradient of the loss w.r.t. the step's output y. Accumulates parameter gradients and adds
  // the gradient w.r.t. the embedded input x into dx. The carry that entered the step is detached.
  template <class M>
  void backward(M& m, Tape<M>& tape, CTensor3View<typename M::scalar_type, typename M::space> dy,
                Tensor3View<typename M::scalar_type, typename M::space> dx) const {
    tape.require_recorded("TrmRecursion");
    const int last = tape.recorded_calls - 1;
    detail::backward_chain(m, tape, last, dy, dx, tape.in[last]);
  }

 private:
  [[no_unique_address]] Count<N, 0> n_{};
  [[no_unique_address]] Count<T, 1> t_{};
  [[no_unique_address]] Count<K, 2> k_{};
};

// TRM with the last k of its n latent updates back-propagated (paper appendix).
template <index_t N = dynamic, index_t T = dynamic, index_t K = dynamic>
using TrmPartialGradient = TrmRecursion<N, T, K>;
// HRM's 1-step gradient applied to TRM (paper Table 1 "w/ 1-step gradient", 56.5%): recorded,
// back-propagated calls are exactly the last two of the step, the last latent update
// z <- net(z + (y + x)) and the answer update y <- net(y + z); the other T(n+1) - 2 calls run
// without gradient, so x gets gradient from one injection only (TRM gets it from n).
template <index_t N = dynamic, index_t T = dynamic>
using TrmOneStepGradient = TrmRecursion<N, T, 1>;

}  // namespace trm
