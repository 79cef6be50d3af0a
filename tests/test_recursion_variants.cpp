// The recursion schedules beyond TrmRecursion (HrmRecursion, TrmSingleZ, TrmMultiScaleZ,
// TrmPartialGradient / TrmOneStepGradient) and the Q-learning halting policy.
//
// Gradient checks of a whole supervision step, in double precision on the plain-loop reference
// backend (Model<Cfg, reference, double>): embed -> schedule forward -> heads -> loss
// (softmax CE + 0.5 BCE on both q logits against fixed targets) -> heads backward -> schedule
// backward -> embed backward, compared with central differences of the same loss.
// A step's gradient is, by design, not the derivative of its loss: the no-grad calls also depend
// on the weights (truncated back-propagation). So each schedule S is checked in two parts:
//  (1) "truncation": S's outputs and gradients from a carry c equal (to 1e-12) those of the fully
//      recorded schedule S1 run from c' = the state S's no-grad calls produce from c. That pins
//      down exactly which calls carry gradient (c' is computed by an independent route: the
//      schedule run with record = false, or the net calls spelled out in the test);
//  (2) "finite differences": S1 has no no-grad calls, so its gradient IS the derivative of the
//      loss; it is compared with central differences (tests/support/gradcheck.hpp: h = 1e-5,
//      bound 1e-6 relative) on elements of every parameter tensor, the puzzle rows included.
#include "support/gradcheck.hpp"

#include <map>
#include <string_view>
#include <typeinfo>

using namespace trm;
using trm::test::grad_tolerance;

namespace {

template <class Sched, class Mixer = AttentionMixer<2>, class Halt = BceHalting<3>, int Layers = 1>
struct Tiny {
  static constexpr int rows = 2, cols = 3, vocab = 5, hidden = 8, layers = Layers;
  static constexpr ConfigOptions options{.puzzle_emb_len = 2};
  using mixer = Mixer;
  using schedule = Sched;
  using halting = Halt;
};

template <class Sched, class Mixer = AttentionMixer<2>>
using DModel = Model<Tiny<Sched, Mixer>, reference, double>;

Batch tiny_batch(Rng& rng, index_t b = 2) {
  Batch batch;
  batch.inputs.resize(b, 6);
  batch.labels.resize(b, 6);
  batch.puzzle_identifiers.resize(b);
  for (index_t r = 0; r < b; ++r) {
    for (index_t t = 0; t < 6; ++t) {
      batch.labels(r, t) = 2 + std::int32_t(rng.below(3));
      batch.inputs(r, t) = rng.bernoulli(0.5) ? 1 : batch.labels(r, t);
    }
    batch.puzzle_identifiers(r) = std::int32_t(r % 2);
  }
  batch.labels(0, 1) = ignore_label;
  return batch;
}

// Non-trivial weights: the model's own init plus random q head and puzzle rows (the reference's
// zero q weight and zero puzzle table would hide their gradients' paths).
template <class M>
void randomize(M& m, std::uint64_t seed) {
  Rng rng(seed);
  test::fill_random(m.q_head.weight.value.span(), rng, 0.3);
  test::fill_random(m.q_head.bias.value.span(), rng, 0.3);
  test::fill_random(m.puzzle_emb.value.span(), rng, 0.2);
}

template <class Src, class Dst>
void copy_state(Src& src, Dst& dst) {
  std::map<std::string, const DynTensor<double, 2>*> values;
  src.for_each_parameter([&](const std::string& n, auto& p) { values[n] = &p.value; });
  src.for_each_buffer([&](const std::string& n, auto& p) { values[n] = &p.value; });
  auto copy = [&](const std::string& n, auto& p) {
    REQUIRE(values.count(n) == 1);
    p.value = *values.at(n);
  };
  dst.for_each_parameter(copy);
  dst.for_each_buffer(copy);
}

struct Carry2 {
  DynTensor<double, 3> y, z;
};

// The initial carry of a sequence, perturbed so that every position differs.
template <class M>
Carry2 start_carry(const M& m, index_t b, std::uint64_t seed) {
  Carry2 c;
  c.y.resize(b, M::total_len, M::hidden);
  c.z.resize(b * index_t(M::num_latents), M::total_len, M::hidden);
  std::vector<std::uint8_t> all(b, 1);
  m.reset_states(all, c.y.view(), c.z.view());
  Rng rng(seed);
  for (auto& v : c.y.span()) v += rng.uniform(-0.5, 0.5);
  for (auto& v : c.z.span()) v += rng.uniform(-0.5, 0.5);
  return c;
}

// Net calls spelled out by hand, independently of any schedule, on carry c: for each letter of
// `calls`, 'z' is z <- nets[latent_net](z + (y + x)) and 'y' is y <- nets[answer_net](y + z).
template <class M>
void run_calls_by_hand(const M& m, const Batch& batch, Carry2& c, std::string_view calls, std::size_t latent_net,
                       std::size_t answer_net) {
  DynTensor<double, 3> x(batch.size(), M::total_len, M::hidden), in(batch.size(), M::total_len, M::hidden);
  m.embed(batch, x.view());
  typename M::net_type::Cache cache;
  typename M::net_type::Workspace ws;
  for (char call : calls) {
    const bool latent = call == 'z';
    for (index_t i = 0; i < in.size(); ++i)
      in.data()[i] = latent ? c.z.data()[i] + (c.y.data()[i] + x.data()[i]) : c.y.data()[i] + c.z.data()[i];
    m.nets[latent ? latent_net : answer_net].forward(in.cview(), latent ? c.z.view() : c.y.view(), cache, ws);
  }
}

struct StepResult {
  double loss = 0;
  DynTensor<double, 3> y, z, logits;
  std::map<std::string, std::vector<double>> grads;  // parameters + "puzzle_rows"
};

constexpr double q_halt_target[2] = {1.0, 0.0};
constexpr double q_continue_target[2] = {0.3, 0.8};

// One supervision step from carry c; with `grads` the backward too.
template <class M>
StepResult run_step(M& m, const Batch& batch, const Carry2& c, bool grads) {
  using S = typename M::schedule;
  const index_t b = batch.size();
  StepResult res;
  res.y = c.y;
  res.z = c.z;
  DynTensor<double, 3> x(b, M::total_len, M::hidden);
  m.embed(batch, x.view());
  typename S::template Tape<M> tape;
  m.recursion().forward(m, tape, x.cview(), res.y.view(), res.z.view(), grads);
  res.logits.resize(b, M::seq_len, M::vocab);
  DynTensor<double, 2> q(b, 2), dq(b, 2);
  typename M::HeadCache hc;
  m.heads(res.y.cview(), res.logits.view(), q.view(), hc);
  DynTensor<double, 3> dlogits(b, M::seq_len, M::vocab);
  auto tl = token_loss<double>(LossType::softmax_cross_entropy, res.logits.cview(), batch.labels.cview(),
                               grads ? dlogits.view() : View<double, DynExtents<3>>(), 1.0);
  res.loss = tl.loss;
  for (index_t r = 0; r < b; ++r) {
    res.loss += 0.5 * (bce_with_logits(q(r, 0), q_halt_target[r]) + bce_with_logits(q(r, 1), q_continue_target[r]));
    dq(r, 0) = 0.5 * (sigmoid(q(r, 0)) - q_halt_target[r]);
    dq(r, 1) = 0.5 * (sigmoid(q(r, 1)) - q_continue_target[r]);
  }
  if (!grads) return res;
  zero_grad(m);
  DynTensor<double, 3> dy(b, M::total_len, M::hidden), dx(b, M::total_len, M::hidden);
  dy.zero();
  dx.zero();
  m.heads_backward(res.y.cview(), hc, dlogits.cview(), dq.cview(), dy.view());
  m.recursion().backward(m, tape, dy.cview(), dx.view());
  DynTensor<double, 2> rows_grad(b, M::puzzle_emb_ndim);
  m.embed_backward(batch, dx.cview(), rows_grad.view());
  m.for_each_parameter([&](const std::string& n, auto& p) { res.grads[n].assign(p.grad.span().begin(), p.grad.span().end()); });
  res.grads["puzzle_rows"].assign(rows_grad.span().begin(), rows_grad.span().end());
  return res;
}

double max_rel(std::span<const double> a, std::span<const double> b) {
  REQUIRE(a.size() == b.size());
  double d = 0, s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::abs(a[i] - b[i]));
    s = std::max(s, std::abs(b[i]));
  }
  return s > 0 ? d / s : d;
}

// (1) S from c == S1 from c1, outputs and every gradient.
template <class MA, class MB>
void check_truncation(MA& a, const Carry2& c, MB& b1, const Carry2& c1, const Batch& batch) {
  auto ra = run_step(a, batch, c, true);
  auto rb = run_step(b1, batch, c1, true);
  CHECK(std::abs(ra.loss - rb.loss) <= 1e-12 * std::abs(rb.loss));
  CHECK(max_rel(ra.y.span(), rb.y.span()) < 1e-12);
  CHECK(max_rel(ra.z.span(), rb.z.span()) < 1e-12);
  CHECK(ra.grads.size() == rb.grads.size());
  for (auto& entry : rb.grads) {  // not a binding: INFO's lambda captures it (clang < 16 refuses)
    const auto& name = entry.first;
    auto& g = entry.second;
    INFO(name);
    REQUIRE(ra.grads.count(name) == 1);
    CHECK(max_rel(ra.grads[name], g) < 1e-12);
  }
}

// (2) central differences of the loss of a fully recorded schedule, on ~6 elements per tensor.
template <class M>
void check_finite_differences(M& m, const Carry2& c, const Batch& batch) {
  auto base = run_step(m, batch, c, true);
  auto loss = [&] { return run_step(m, batch, c, false).loss; };
  test::GradCheckResult r;
  int tensors = 0;
  m.for_each_parameter([&](const std::string& n, auto& p) {
    auto values = p.value.span();
    const std::size_t stride = std::max<std::size_t>(1, values.size() / 6);
    std::vector<double> sub_analytic;
    for (std::size_t i = 0; i < values.size(); i += stride) {
      std::span<double> one(&values[i], 1);
      std::vector<double> g{base.grads.at(n)[i]};
      test::check_elements(n + "[" + std::to_string(i) + "]", one, g, loss, r);
    }
    ++tensors;
  });
  // puzzle rows: the table element's derivative is the sum over batch rows with that id
  for (index_t id = 0; id < 2; ++id)
    for (index_t j = 0; j < M::hidden; j += 3) {
      double g = 0;
      for (index_t row = 0; row < batch.size(); ++row)
        if (batch.puzzle_identifiers(row) == id) g += base.grads.at("puzzle_rows")[std::size_t(row * M::hidden + j)];
      std::span<double> one(&m.puzzle_emb.value(id, j), 1);
      std::vector<double> gv{g};
      test::check_elements("puzzle_emb[" + std::to_string(id) + "," + std::to_string(j) + "]", one, gv, loss, r);
    }
  INFO(r.worst);
  CHECK(tensors >= 7);
  CHECK(r.max_rel_error < grad_tolerance);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TEST_CASE("TrmRecursion: truncation (T = 3 vs the last pass) and finite differences of a whole step") {
  Rng rng(11);
  const Batch batch = tiny_batch(rng);
  DModel<TrmRecursion<2, 3>, TokenMlpMixer> a({.puzzle_ids = 2, .seed = 1});
  randomize(a, 2);
  DModel<TrmRecursion<2, 1>, TokenMlpMixer> full({.puzzle_ids = 2, .seed = 0});
  copy_state(a, full);
  const Carry2 c = start_carry(a, 2, 3);
  // c1: the first T-1 = 2 passes, without gradient
  Carry2 c1 = c;
  {
    DModel<TrmRecursion<2, 2>, TokenMlpMixer> prefix({.puzzle_ids = 2, .seed = 0});
    copy_state(a, prefix);
    DynTensor<double, 3> x(2, prefix.total_len, prefix.hidden);
    prefix.embed(batch, x.view());
    TrmRecursion<2, 2>::Tape<decltype(prefix)> tape;
    prefix.recursion().forward(prefix, tape, x.cview(), c1.y.view(), c1.z.view(), false);
  }
  check_truncation(a, c, full, c1, batch);
  check_finite_differences(full, c1, batch);
}

TEST_CASE("HrmRecursion<2,3>: gradient through the last L and H calls only; finite differences of HrmRecursion<1,1>") {
  using Hrm = HrmRecursion<2, 3>;
  static_assert(Hrm::num_nets == 2 && Hrm{}.net_calls_per_step() == 8 && Hrm::recorded_calls() == 2);
  Rng rng(12);
  const Batch batch = tiny_batch(rng);
  DModel<Hrm> a({.puzzle_ids = 2, .seed = 1});
  randomize(a, 2);
  DModel<HrmRecursion<1, 1>> full({.puzzle_ids = 2, .seed = 0});
  copy_state(a, full);
  const Carry2 c = start_carry(a, 2, 3);
  // c1 spelled out: L, L, L, H, L, L (SPEC §5's cycle order without the last L and H update)
  Carry2 c1 = c;
  run_calls_by_hand(a, batch, c1, "zzzyzz", /*latent net=*/Hrm::low, /*answer net=*/Hrm::high);
  check_truncation(a, c, full, c1, batch);
  check_finite_differences(full, c1, batch);
}

TEST_CASE("TrmSingleZ: one carried state read by the heads; truncation and finite differences") {
  Rng rng(13);
  const Batch batch = tiny_batch(rng);
  DModel<TrmSingleZ<2, 2>> a({.puzzle_ids = 2, .seed = 1});
  static_assert(decltype(a)::num_latents == 0);
  randomize(a, 2);
  DModel<TrmSingleZ<2, 1>> full({.puzzle_ids = 2, .seed = 0});
  copy_state(a, full);
  const Carry2 c = start_carry(a, 2, 3);
  CHECK(c.z.size() == 0);
  Carry2 c1 = c;
  {
    DynTensor<double, 3> x(2, a.total_len, a.hidden);
    a.embed(batch, x.view());
    TrmSingleZ<2, 1>::Tape<decltype(full)> tape;
    full.recursion().forward(full, tape, x.cview(), c1.y.view(), c1.z.view(), false);
  }
  check_truncation(a, c, full, c1, batch);
  check_finite_differences(full, c1, batch);
}

TEST_CASE("TrmMultiScaleZ: K latents stacked in z, own initial states; truncation and finite differences") {
  using Ms = TrmMultiScaleZ<3, 2>;
  Rng rng(14);
  const Batch batch = tiny_batch(rng);
  DModel<Ms, TokenMlpMixer> a({.puzzle_ids = 2, .seed = 1});
  static_assert(decltype(a)::num_latents == 3);
  std::vector<std::string> buffers;
  a.for_each_buffer([&](const std::string& n, auto&) { buffers.push_back(n); });
  CHECK(buffers == std::vector<std::string>{"puzzle_emb.weights", "H_init", "L_init", "L2_init", "L3_init"});
  randomize(a, 2);
  // reset: latent k of row r starts from its own init
  Carry2 fresh = start_carry(a, 2, 99);
  {
    std::vector<std::uint8_t> all(2, 1);
    a.reset_states(all, fresh.y.view(), fresh.z.view());
    CHECK(fresh.z(2 * 2 + 1, 4, 5) == a.extra_L_init[1].value(0, 5));
    CHECK(fresh.z(1 * 2 + 0, 0, 0) == a.extra_L_init[0].value(0, 0));
    CHECK(fresh.z(1, 3, 2) == a.L_init.value(0, 2));
    CHECK(fresh.y(1, 3, 2) == a.H_init.value(0, 2));
  }
  DModel<TrmMultiScaleZ<3, 1>, TokenMlpMixer> full({.puzzle_ids = 2, .seed = 0});
  copy_state(a, full);
  const Carry2 c = start_carry(a, 2, 3);
  Carry2 c1 = c;
  {
    DynTensor<double, 3> x(2, a.total_len, a.hidden);
    a.embed(batch, x.view());
    TrmMultiScaleZ<3, 1>::Tape<decltype(full)> tape;
    full.recursion().forward(full, tape, x.cview(), c1.y.view(), c1.z.view(), false);
  }
  check_truncation(a, c, full, c1, batch);
  check_finite_differences(full, c1, batch);
}

TEST_CASE("TrmOneStepGradient<3,2>: gradient through the last latent and the answer update only") {
  using One = TrmOneStepGradient<3, 2>;
  static_assert(One{}.recorded_calls() == 2 && One{}.net_calls_per_step() == 8);
  Rng rng(15);
  const Batch batch = tiny_batch(rng);
  DModel<One> a({.puzzle_ids = 2, .seed = 1});
  randomize(a, 2);
  DModel<TrmRecursion<1, 1>> full({.puzzle_ids = 2, .seed = 0});  // exactly one latent update and one answer update, both recorded
  copy_state(a, full);
  const Carry2 c = start_carry(a, 2, 3);
  // c1: one whole pass (3 latent updates + answer), then the first 2 latent updates of the last pass
  Carry2 c1 = c;
  run_calls_by_hand(a, batch, c1, "zzzyzz", 0, 0);
  check_truncation(a, c, full, c1, batch);
  check_finite_differences(full, c1, batch);
}

TEST_CASE("TrmPartialGradient<n, T, n> is TrmRecursion<n, T> exactly; k = 2 of 3 records 3 calls") {
  Rng rng(16);
  const Batch batch = tiny_batch(rng);
  DModel<TrmPartialGradient<3, 2, 3>> a({.puzzle_ids = 2, .seed = 1});
  randomize(a, 2);
  DModel<TrmRecursion<3, 2>> b({.puzzle_ids = 2, .seed = 0});
  copy_state(a, b);
  const Carry2 c = start_carry(a, 2, 3);
  auto ra = run_step(a, batch, c, true);
  auto rb = run_step(b, batch, c, true);
  CHECK(ra.loss == rb.loss);
  for (auto& [name, g] : rb.grads) CHECK(max_rel(ra.grads[name], g) == 0.0);
  static_assert(TrmPartialGradient<3, 2, 2>{}.recorded_calls() == 3);
  // k = 2: gradient == TrmRecursion<2, 1> from the state after pass 1 and one latent update
  DModel<TrmPartialGradient<3, 2, 2>> p({.puzzle_ids = 2, .seed = 1});
  copy_state(a, p);
  DModel<TrmRecursion<2, 1>> full({.puzzle_ids = 2, .seed = 0});
  copy_state(a, full);
  Carry2 c1 = c;
  {
    DynTensor<double, 3> x(2, a.total_len, a.hidden);
    a.embed(batch, x.view());
    DModel<TrmPartialGradient<3, 1, 1>> pass({.puzzle_ids = 2, .seed = 0});  // record=false: 3 latent updates + answer update
    copy_state(a, pass);
    TrmPartialGradient<3, 1, 1>::Tape<decltype(pass)> tape;
    pass.recursion().forward(pass, tape, x.cview(), c1.y.view(), c1.z.view(), false);
    DModel<TrmRecursion<1, 1>> one({.puzzle_ids = 2, .seed = 0});
    copy_state(a, one);
    // one latent update without the answer update: run TrmRecursion<1,1> and keep only z
    DynTensor<double, 3> ytmp = c1.y;
    TrmRecursion<1, 1>::Tape<decltype(one)> t2;
    one.recursion().forward(one, t2, x.cview(), ytmp.view(), c1.z.view(), false);
  }
  check_truncation(p, c, full, c1, batch);
}

TEST_CASE("record = false gives the same step as record = true, for every schedule") {
  Rng rng(17);
  const Batch batch = tiny_batch(rng);
  auto same = [&](auto& m) {
    using M = std::remove_reference_t<decltype(m)>;
    using S = typename M::schedule;
    randomize(m, 4);
    const Carry2 c = start_carry(m, 2, 5);
    Carry2 r1 = c, r2 = c;
    DynTensor<double, 3> x(2, M::total_len, M::hidden);
    m.embed(batch, x.view());
    typename S::template Tape<M> t1, t2;
    m.recursion().forward(m, t1, x.cview(), r1.y.view(), r1.z.view(), true);
    m.recursion().forward(m, t2, x.cview(), r2.y.view(), r2.z.view(), false);
    CHECK(max_rel(r1.y.span(), r2.y.span()) == 0.0);
    CHECK(max_rel(r1.z.span(), r2.z.span()) == 0.0);
    DynTensor<double, 3> dy(2, M::total_len, M::hidden), dx(2, M::total_len, M::hidden);
    CHECK_THROWS_AS(m.recursion().backward(m, t2, dy.cview(), dx.view()), std::logic_error);
  };
  DModel<HrmRecursion<2, 2>> h({.puzzle_ids = 2, .seed = 1});
  same(h);
  DModel<TrmSingleZ<2, 2>> s({.puzzle_ids = 2, .seed = 1});
  same(s);
  DModel<TrmMultiScaleZ<2, 2>> ms({.puzzle_ids = 2, .seed = 1});
  same(ms);
  DModel<TrmOneStepGradient<3, 2>> o({.puzzle_ids = 2, .seed = 1});
  same(o);
}

// ---------------------------------------------------------------------------------------------
namespace {
struct HrmSudoku {
  static constexpr int rows = 9, cols = 9, vocab = 11, hidden = 512, layers = 4;
  static constexpr ConfigOptions options{.puzzle_emb_len = 1};
  using mixer = AttentionMixer<8>;
  using schedule = HrmRecursion<2, 2>;
  using halting = QLearningHalting<16>;
};
}  // namespace

TEST_CASE("HRM model: two nets with the reference's names; 4+4 layers at D=512 has 27,275,266 parameters") {
  static_assert(ModelConfig<HrmSudoku>);
  Model<HrmSudoku> m(0);
  CHECK(m.num_parameters() == 27275266);  // SPEC §1.11, HRM issue #12
  std::vector<std::string> names;
  m.for_each_parameter([&](const std::string& n, auto&) { names.push_back(n); });
  CHECK(names.size() == 4 + 2 * 4 * 4);
  CHECK(std::find(names.begin(), names.end(), "H_level.layers.3.self_attn.qkv_proj.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "L_level.layers.0.mlp.down_proj.weight") != names.end());
  CHECK(m.total_len == 82);
}

TEST_CASE("QLearningHalting: decision, Q-continue target and loss") {
  QLearningHalting<4> h;
  h.exploration_prob = 0;
  std::vector<float> qh{-1.0f, 0.5f, 0.2f, -3.0f}, qc{-2.0f, 1.0f, 0.1f, -1.0f};
  std::vector<std::int32_t> steps{1, 2, 3, 4};
  std::vector<std::uint8_t> halted(4);
  Rng rng(0);
  h.decide_training(HaltingInputs{qh, qc, steps}, rng, halted);
  CHECK(halted == std::vector<std::uint8_t>{1, 0, 1, 1});  // q_halt > q_continue, or steps >= 4
  // target: sigmoid(next q_halt) at the last step, else sigmoid(max(next q_halt, next q_continue))
  std::vector<float> nqh{0.3f, -1.0f, 2.0f, 0.7f}, nqc{0.1f, 0.4f, -5.0f, 3.0f}, target(4);
  h.q_continue_target(HaltingInputs{nqh, nqc, steps}, target);
  CHECK(target[0] == doctest::Approx(sigmoid(0.3)));
  CHECK(target[1] == doctest::Approx(sigmoid(0.4)));
  CHECK(target[2] == doctest::Approx(sigmoid(2.0)));
  CHECK(target[3] == doctest::Approx(sigmoid(0.7)));  // steps 4 = N: next q_halt even though q_continue is larger
  std::vector<std::uint8_t> correct{1, 0, 0, 1};
  std::vector<float> dqh(4), dqc(4);
  HaltingInputs in{qh, qc, steps};
  in.target_q_continue = target;
  const HaltingLoss l = h.loss(in, correct, dqh, dqc, 0.5);
  double eh = 0, ec = 0;
  for (int r = 0; r < 4; ++r) {
    eh += bce_with_logits(qh[r], correct[r]);
    ec += bce_with_logits(qc[r], target[r]);
    CHECK(dqh[r] == doctest::Approx(0.5 * (sigmoid(qh[r]) - correct[r])));
    CHECK(dqc[r] == doctest::Approx(0.5 * (sigmoid(qc[r]) - target[r])));
  }
  CHECK(l.q_halt == doctest::Approx(eh));
  CHECK(l.q_continue == doctest::Approx(ec));
  CHECK(double(l) == doctest::Approx(eh + ec));
  // with N = 1 only the step limit counts
  QLearningHalting<1> one;
  std::vector<std::uint8_t> h1(4);
  std::vector<std::int32_t> s1{1, 1, 1, 1};
  one.decide_training(HaltingInputs{qh, qc, s1}, rng, h1);
  CHECK(h1 == std::vector<std::uint8_t>{1, 1, 1, 1});
}

namespace {
template <class Sched>
struct ActCfg {
  static constexpr int rows = 2, cols = 3, vocab = 5, hidden = 16, layers = 1;
  static constexpr ConfigOptions options{.puzzle_emb_len = 1};
  using mixer = AttentionMixer<2>;
  using schedule = Sched;
  using halting = QLearningHalting<4>;
};

// Trainer with QLearningHalting: the target equals sigmoid(max(next q)) of a separate no-grad
// step from the new carry, computed here by hand; the total loss has the 0.5 q_continue term.
template <class Sched>
void check_act_trainer() {
  using M = Model<ActCfg<Sched>>;
  M model({.puzzle_ids = 2, .seed = 3});
  Rng rng(4);
  for (auto& v : model.q_head.weight.value.span()) v = float(rng.uniform(-0.3, 0.3));
  TrainOptions o;
  o.halt_exploration_prob = 0;
  o.ema_rate = 0;
  Trainer trainer(model, AdamAtan2{.lr = 1e-3}, o);
  Rng data_rng(5);
  for (int call = 0; call < 3; ++call) {
    const Batch batch = tiny_batch(data_rng, 4);
    auto m = trainer.step(batch, /*update=*/false);
    INFO("call " << call);
    // by hand: one more step from the new carry, same data, same weights
    const auto& carry = trainer.carry();
    DynTensor<float, 3> y = carry.y, z = carry.z, x(4, M::total_len, M::hidden), logits(4, M::seq_len, M::vocab);
    DynTensor<float, 2> q(4, 2);
    model.embed(carry.data, x.view());
    typename Sched::template Tape<M> tape;
    model.recursion().forward(model, tape, x.cview(), y.view(), z.view(), false);
    typename M::HeadCache hc;
    model.heads(y.cview(), logits.view(), q.view(), hc);
    REQUIRE(trainer.target_q_continue().size() == 4);
    double qc_loss = 0;
    for (index_t r = 0; r < 4; ++r) {
      const double next = carry.steps[r] >= 4 ? q(r, 0) : std::max(q(r, 0), q(r, 1));
      CHECK(trainer.target_q_continue()[r] == doctest::Approx(sigmoid(next)).epsilon(1e-6));
      qc_loss += bce_with_logits(trainer.q()(r, 1), trainer.target_q_continue()[r]);
      CHECK(bool(carry.halted[r]) == (carry.steps[r] >= 4 || trainer.q()(r, 0) > trainer.q()(r, 1)));
    }
    CHECK(m.q_continue_loss == doctest::Approx(qc_loss).epsilon(1e-5));
    CHECK(m.total_loss == doctest::Approx(m.lm_loss + 0.5 * (m.q_halt_loss + m.q_continue_loss)));
    CHECK(std::isfinite(m.total_loss));
    // the halting gradient reached the q_continue row of the q head
    double g = 0;
    for (auto v : model.q_head.bias.grad.span()) g += std::abs(v);
    CHECK(g > 0);
    zero_grad(model);
  }
}
}  // namespace

TEST_CASE("TRM + QLearningHalting (the paper's 'w/ ACT') and HRM + QLearningHalting train through the Trainer") {
  check_act_trainer<TrmRecursion<2, 2>>();
  check_act_trainer<HrmRecursion<2, 2>>();
}

TEST_CASE("every variant trains: the Trainer allocates its carry and the loss falls on a fixed batch") {
  auto run = [](auto tag) {
    using Sched = decltype(tag);
    using M = Model<Tiny<Sched, AttentionMixer<2>, BceHalting<2>, 1>>;
    M model({.puzzle_ids = 2, .seed = 7});
    TrainOptions o;
    o.halt_exploration_prob = 0;
    Trainer trainer(model, AdamAtan2{.lr = 3e-3, .weight_decay = 0.0}, o);
    Rng rng(8);
    const Batch batch = tiny_batch(rng, 4);
    double first = 0, last = 0;
    for (int i = 0; i < 40; ++i) {
      auto m = trainer.step(batch);
      if (i < 2) first += m.lm_loss;
      if (i >= 38) last += m.lm_loss;
    }
    CHECK(trainer.carry().z.extent(0) == 4 * index_t(M::num_latents));
    INFO(typeid(Sched).name() << ": first " << first << ", last " << last);
    CHECK(last < 0.7 * first);
  };
  run(TrmRecursion<2, 2>{});
  run(HrmRecursion<2, 2>{});
  run(TrmSingleZ<2, 2>{});
  run(TrmMultiScaleZ<2, 2>{});
  run(TrmOneStepGradient<2, 2>{});
}
