// Training machinery beyond the parity fixtures: resuming a saved training state bit for bit,
// checkpoint validation, inference with and without early exit, the losses' gradients, the
// optimisers and the schedule.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <trm/io/train_state.hpp>
#include <trm/model/inference.hpp>
#include <trm/trm.hpp>

#include "support/temp_dir.hpp"

using namespace trm;
using trm::test::TempDir;

namespace {

struct Tiny {
  static constexpr int rows = 4, cols = 4, vocab = 6, hidden = 16, layers = 2;
  static constexpr ConfigOptions options{.puzzle_emb_len = 2};
  using mixer = TokenMlpMixer;
  using schedule = TrmRecursion<2, 2>;
  using halting = BceHalting<3>;
};
struct TinyAtt {
  static constexpr int rows = 4, cols = 4, vocab = 6, hidden = 16, layers = 1;
  static constexpr ConfigOptions options{.puzzle_emb_len = 2};
  using mixer = AttentionMixer<2>;
  using schedule = TrmRecursion<2, 2>;
  using halting = BceHalting<3>;
};

// The tiny models have a puzzle table of 2 rows (random_batch draws ids 0 and 1).
template <class C>
Model<C> tiny(std::uint64_t seed) {
  return Model<C>({.puzzle_ids = 2, .seed = seed});
}

Batch random_batch(Rng& rng, index_t b, index_t l, int vocab, int ids) {
  Batch batch;
  batch.inputs.resize(b, l);
  batch.labels.resize(b, l);
  batch.puzzle_identifiers.resize(b);
  for (index_t r = 0; r < b; ++r) {
    for (index_t t = 0; t < l; ++t) {
      batch.labels(r, t) = 2 + std::int32_t(rng.below(vocab - 2));
      batch.inputs(r, t) = rng.bernoulli(0.5) ? 1 : batch.labels(r, t);
    }
    batch.puzzle_identifiers(r) = std::int32_t(rng.below(ids));
  }
  return batch;
}

TrainOptions options() {
  TrainOptions o;
  o.schedule = LrSchedule{2, 20, 0.5};
  o.puzzle_emb_lr = 1e-2;
  o.halt_exploration_prob = 0.5;  // exercise the RNG, which must be restored on resume
  o.seed = 7;
  return o;
}

}  // namespace

TEST_CASE("resuming a saved training state reproduces the losses bit for bit") {
  TempDir dir;
  Rng data_rng(3);
  std::vector<Batch> batches;
  for (int i = 0; i < 8; ++i) batches.push_back(random_batch(data_rng, 3, 16, 6, 2));

  auto a = tiny<Tiny>(1);
  Trainer ta(a, AdamAtan2{.lr = 3e-3}, options());
  std::vector<double> losses;
  for (int i = 0; i < 8; ++i) {
    losses.push_back(ta.step(batches[i]).total_loss);
    if (i == 3) save_train_state(ta, dir / "state.safetensors");
  }
  auto b = tiny<Tiny>(99);  // different initial weights: everything must come from the file
  Trainer tb(b, AdamAtan2{.lr = 3e-3}, options());
  load_train_state(tb, dir / "state.safetensors");
  CHECK(tb.step_count() == 4);
  for (int i = 4; i < 8; ++i) {
    const double l = tb.step(batches[i]).total_loss;
    CHECK(l == losses[i]);  // exact: same data, same state, same summation order
  }
  a.for_each_parameter([&](const std::string& n, auto& p) {
    b.for_each_parameter([&](const std::string& n2, auto& p2) {
      if (n == n2) CHECK(std::equal(p.value.span().begin(), p.value.span().end(), p2.value.span().begin()));
    });
  });
}

TEST_CASE("a training state of another configuration or optimiser is refused, the trainer untouched") {
  TempDir dir;
  Rng rng(4);
  auto a = tiny<Tiny>(1);
  Trainer ta(a, AdamAtan2{}, options());
  ta.step(random_batch(rng, 2, 16, 6, 2));
  save_train_state(ta, dir / "s.safetensors");

  auto other = tiny<TinyAtt>(2);
  Trainer to(other, AdamAtan2{}, options());
  const float before = other.lm_head.weight.value(0, 0);
  CHECK_THROWS_WITH_AS(load_train_state(to, dir / "s.safetensors"), doctest::Contains("another model configuration"),
                       io::FormatError);
  CHECK(other.lm_head.weight.value(0, 0) == before);

  auto c = tiny<Tiny>(1);
  Trainer tc(c, AdamW{}, options());
  CHECK_THROWS_WITH_AS(load_train_state(tc, dir / "s.safetensors"), doctest::Contains("AdamW"), io::FormatError);

  // A truncated file is refused; nothing is loaded.
  auto bytes = std::filesystem::file_size(dir / "s.safetensors");
  std::filesystem::resize_file(dir / "s.safetensors", bytes / 2);
  auto d = tiny<Tiny>(5);
  Trainer td(d, AdamAtan2{}, options());
  const float d0 = d.lm_head.weight.value(0, 0);
  CHECK_THROWS_AS(load_train_state(td, dir / "s.safetensors"), io::FormatError);
  CHECK(d.lm_head.weight.value(0, 0) == d0);
}

TEST_CASE("model weights round trip; wrong shapes and missing tensors are named") {
  TempDir dir;
  auto a = tiny<Tiny>(1);
  save_model(a, dir / "w.safetensors");
  auto b = tiny<Tiny>(2);
  load_model(b, dir / "w.safetensors");
  CHECK(b.lm_head.weight.value(1, 3) == a.lm_head.weight.value(1, 3));
  CHECK(b.H_init.value(0, 5) == a.H_init.value(0, 5));

  // A reference-style state dict (prefixed names, no trm metadata) with one tensor of the wrong shape.
  io::SafetensorsFile f;
  for_each_state_tensor(a, [&](const std::string& n, auto& p) {
    std::vector<std::int64_t> shape(p.shape.begin(), p.shape.end());
    std::vector<float> v(p.value.span().begin(), p.value.span().end());
    if (n == "lm_head.weight") {
      shape = {7, 16};
      v.resize(7 * 16);
    }
    f.add<float>("_orig_mod.model.inner." + n, shape, std::span<const float>(v));
  });
  f.save(dir / "ref.safetensors");
  auto c = tiny<Tiny>(3);
  const float c0 = c.embed_tokens.weight.value(0, 0);
  CHECK_THROWS_WITH_AS(load_model(c, dir / "ref.safetensors"),
                       doctest::Contains("tensor 'lm_head.weight' (stored as '_orig_mod.model.inner.lm_head.weight'): expected shape [6, 16], found [7, 16]"),
                       io::FormatError);
  CHECK(c.embed_tokens.weight.value(0, 0) == c0);  // nothing loaded half

  auto att = tiny<TinyAtt>(1);
  CHECK_THROWS_WITH_AS(load_model(att, dir / "w.safetensors"), doctest::Contains("another model configuration"),
                       io::FormatError);
}

TEST_CASE("solver: all N_sup steps by default, early exit when q_halt > 0") {
  Rng rng(5);
  auto m = tiny<Tiny>(1);
  auto batch = random_batch(rng, 3, 16, 6, 2);
  Solver solver(m);
  auto full = solver.solve(batch);
  for (int s : full.steps_used) CHECK(s == 3);
  // q_head bias -5 and zero weight: q_halt = -5 everywhere, so early exit never triggers...
  auto early = solver.solve(batch, EarlyExit::on);
  for (int s : early.steps_used) CHECK(s == 3);
  CHECK(std::equal(full.predictions.span().begin(), full.predictions.span().end(), early.predictions.span().begin()));
  // ...with bias +5 every row stops after its first step.
  m.q_head.bias.value(0, 0) = 5.0f;
  int traced = 0;
  auto first = solver.solve(batch, EarlyExit::on, 3, [&](int, const auto&, const auto&) { ++traced; });
  for (int s : first.steps_used) CHECK(s == 1);
  CHECK(traced == 1);
  // Out-of-range tokens are refused with the position named.
  batch.inputs(1, 2) = 6;
  CHECK_THROWS_WITH_AS(solver.solve(batch), doctest::Contains("batch.inputs[1, 2] = 6: expected a token in [0, 6)"), ValueError);
}

TEST_CASE("stablemax and softmax cross-entropy gradients match finite differences") {
  Rng rng(6);
  DynTensor<double, 3> logits(2, 3, 5), dlogits(2, 3, 5);
  DynTensor<std::int32_t, 2> labels(2, 3);
  for (auto& v : logits.span()) v = rng.uniform(-3, 3);
  labels(0, 0) = 1; labels(0, 1) = ignore_label; labels(0, 2) = 4;
  labels(1, 0) = 0; labels(1, 1) = 2; labels(1, 2) = 2;
  for (auto type : {LossType::stablemax_cross_entropy, LossType::softmax_cross_entropy}) {
    auto r = token_loss<double>(type, logits.cview(), labels.cview(), dlogits.view(), 0.5);
    CHECK(r.count[0] == 2);
    CHECK(r.count[1] == 3);
    for (index_t i = 0; i < logits.size(); ++i) {
      const double saved = logits.data()[i], h = 1e-6;
      logits.data()[i] = saved + h;
      double lp = token_loss<double>(type, logits.cview(), labels.cview(), {}, 1).loss;
      logits.data()[i] = saved - h;
      double lm = token_loss<double>(type, logits.cview(), labels.cview(), {}, 1).loss;
      logits.data()[i] = saved;
      CHECK(dlogits.data()[i] == doctest::Approx(0.5 * (lp - lm) / (2 * h)).epsilon(1e-6));
    }
  }
  // stablemax by hand: logits [0, 1] -> s = [1, 2], p = [1/3, 2/3].
  DynTensor<double, 3> two(1, 1, 2);
  two(0, 0, 0) = 0; two(0, 0, 1) = 1;
  DynTensor<std::int32_t, 2> lab(1, 1);
  lab(0, 0) = 0;
  CHECK(token_loss<double>(LossType::stablemax_cross_entropy, two.cview(), lab.cview(), {}, 1).loss == doctest::Approx(std::log(3.0)));
  lab(0, 0) = 9;
  CHECK_THROWS_WITH_AS(token_loss<double>(LossType::stablemax_cross_entropy, two.cview(), lab.cview(), {}, 1),
                       doctest::Contains("label 9 at [0, 0] is outside [0, 2)"), ValueError);
}

TEST_CASE("AdamATan2, AdamW, sign-SGD and the LR schedule by hand") {
  DynTensor<float, 2> p(1, 2), g(1, 2);
  p(0, 0) = 1.0f; p(0, 1) = -2.0f;
  g(0, 0) = 0.5f; g(0, 1) = -0.25f;
  AdamState<float> st;
  AdamAtan2{.lr = 0.1, .weight_decay = 0.5}.update(p, g, st, 0.1, 1);
  // t = 1: m = 0.1 g, v = 0.05 g^2, bc1 = 0.1, bc2 = 0.05: step = 0.1/0.1 * atan2(0.1 g, |g|) = atan2(0.1, 1) sign(g)
  CHECK(p(0, 0) == doctest::Approx(1.0 * (1 - 0.05) - std::atan2(0.1, 1.0)).epsilon(1e-6));
  CHECK(p(0, 1) == doctest::Approx(-2.0 * (1 - 0.05) + std::atan2(0.1, 1.0)).epsilon(1e-6));

  DynTensor<float, 2> q(1, 1), gq(1, 1);
  q(0, 0) = 1.0f; gq(0, 0) = 2.0f;
  AdamState<float> sq;
  AdamW{.lr = 0.1, .weight_decay = 0.0, .eps = 0.0}.update(q, gq, sq, 0.1, 1);
  CHECK(q(0, 0) == doctest::Approx(0.9f));  // the first Adam step moves by lr * sign(g)

  DynTensor<float, 2> table(3, 2), rows_g(3, 2);
  table.zero();
  table(1, 0) = 1.0f;
  rows_g(0, 0) = 1.0f; rows_g(0, 1) = -1.0f;   // id 1
  rows_g(1, 0) = -3.0f; rows_g(1, 1) = 2.0f;   // id 1 again: sums to (-2, 1)
  rows_g(2, 0) = 0.0f; rows_g(2, 1) = 5.0f;    // id 2
  std::vector<std::int32_t> ids{1, 1, 2};
  SignSgd{.lr = 0.1, .weight_decay = 1.0}.update(table, ids, rows_g, 0.1);
  CHECK(table(1, 0) == doctest::Approx(1.0 * 0.9 + 0.1));
  CHECK(table(1, 1) == doctest::Approx(-0.1));
  CHECK(table(2, 0) == 0.0f);  // zero gradient: no step
  CHECK(table(2, 1) == doctest::Approx(-0.1));
  CHECK(table(0, 0) == 0.0f);  // absent id untouched

  LrSchedule s{.warmup_steps = 5, .total_steps = 20, .min_ratio = 0.1};
  CHECK(s(1e-3, 1) == doctest::Approx(2e-4));
  CHECK(s(1e-3, 5) == doctest::Approx(1e-3));
  CHECK(s(1e-3, 20) == doctest::Approx(1e-4));
  CHECK(s(1e-3, 12) == doctest::Approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + std::cos(3.14159265358979 * 7.0 / 15.0)))));
}

TEST_CASE("BCE halting: max steps, q_halt > 0, exploration keeps rows going") {
  BceHalting<4> h;
  h.exploration_prob = 0.0;
  Rng rng(1);
  std::vector<float> qh{-1.0f, 0.5f, -2.0f}, qc(3, 0.0f);
  std::vector<std::int32_t> steps{1, 1, 4};
  std::vector<std::uint8_t> halted(3);
  h.decide_training({qh, qc, steps}, rng, halted);
  CHECK(halted == std::vector<std::uint8_t>{0, 1, 1});
  h.exploration_prob = 1.0;  // every row draws a minimum of 2..4 steps: step 1 can never halt
  h.decide_training({qh, qc, steps}, rng, halted);
  CHECK(halted[1] == 0);
  CHECK(halted[2] == 1);  // the step limit always wins
  std::vector<std::uint8_t> correct{1, 0, 1};
  std::vector<float> dqh(3), dqc(3);
  double loss = h.loss({qh, qc, steps}, correct, dqh, dqc, 1.0);
  CHECK(loss == doctest::Approx(std::log1p(std::exp(1.0)) + std::log1p(std::exp(0.5)) + std::log1p(std::exp(2.0))));
  CHECK(dqh[0] == doctest::Approx(1.0 / (1.0 + std::exp(1.0)) - 1.0));
}
