// The core as values: schedules and halting policies with static or dynamic counts, the model
// holding the values it was built with, puzzle tables sized at construction, the puzzle-embedding
// widths of the reference (puzzle_emb_ndim), the one save/load pair with its signature check,
// Batch::from_tokens, per-row means of the step metrics and the EMA copy.
#include <doctest/doctest.h>

#include <filesystem>
#include <thread>
#include <trm/trm.hpp>

#include "support/check_throws.hpp"
#include "support/temp_dir.hpp"

using namespace trm;

namespace {

template <class Sched, class Halt, class Mixer = TokenMlpMixer, int EmbNdim = -1, int EmbLen = 2>
struct Cfg {
  static constexpr int rows = 3, cols = 3, vocab = 6, hidden = 16, layers = 1;
  using mixer = Mixer;
  using schedule = Sched;
  using halting = Halt;
  static constexpr ConfigOptions options{.puzzle_emb_len = EmbLen, .puzzle_emb_ndim = EmbNdim};
};

Batch random_batch(Rng& rng, index_t b, int ids) {
  std::vector<std::int32_t> inputs(static_cast<std::size_t>(b * 9)), labels(inputs.size()), pid(static_cast<std::size_t>(b));
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    labels[i] = 2 + std::int32_t(rng.below(4));
    inputs[i] = rng.bernoulli(0.5) ? 1 : labels[i];
  }
  for (auto& v : pid) v = std::int32_t(rng.below(std::uint64_t(ids)));
  return Batch::from_tokens(inputs, labels, pid, 9);
}

TrainOptions options() {
  TrainOptions o;
  o.puzzle_emb_lr = 1e-2;
  o.halt_exploration_prob = 0.5;  // exercises the RNG as well
  o.seed = 3;
  return o;
}

// Losses and final weights of `calls` training calls; the model is built from `args`.
template <class C>
std::pair<std::vector<double>, std::vector<float>> train(ModelArgs<C> args, int calls) {
  Model<C> model(args);
  Trainer trainer(model, AdamAtan2{.lr = 3e-3}, options());
  Rng rng(11);
  std::vector<double> losses;
  for (int i = 0; i < calls; ++i) losses.push_back(trainer.step(random_batch(rng, 3, int(args.puzzle_ids))).total_loss);
  std::vector<float> weights;
  for_each_state_tensor(model, [&](const std::string&, const auto& p) {
    weights.insert(weights.end(), p.value.span().begin(), p.value.span().end());
  });
  return {losses, weights};
}


}  // namespace

TEST_CASE("counts: static ones cost nothing, dynamic ones are checked, equal counts compare equal") {
  static_assert(sizeof(TrmRecursion<6, 3>) == 1 && sizeof(TrmRecursion<>) == 3 * sizeof(int));
  static_assert(sizeof(BceHalting<16>) == sizeof(double));
  static_assert(TrmRecursion<6, 3>{}.net_calls_per_step() == 21 && TrmRecursion<6, 3>{}.recorded_calls() == 7);
  static_assert(TrmOneStepGradient<6, 3>{}.recorded_calls() == 2);
  CHECK(TrmRecursion<>(6, 3) == TrmRecursion<6, 3>{});
  CHECK(TrmRecursion<6, 3>{} == TrmRecursion<>(6, 3, 6));
  CHECK_FALSE(TrmRecursion<>(6, 3) == TrmRecursion<>(6, 2));
  CHECK(TrmRecursion<>(6, 3).describe() == TrmRecursion<6, 3>{}.describe());
  CHECK(TrmOneStepGradient<>(6, 3) == TrmRecursion<6, 3, 1>{});
  CHECK(TrmOneStepGradient<>(6, 3).describe() == "TrmRecursion<n=6,T=3,k=1>");
  CHECK(HrmRecursion<>(2, 2) == HrmRecursion<2, 2>{});
  CHECK(TrmSingleZ<>(2, 3) == TrmSingleZ<2, 3>{});
  CHECK(TrmMultiScaleZ<3>(2) == TrmMultiScaleZ<3, 2>{});
  CHECK(BceHalting<>(16).describe() == BceHalting<16>{}.describe());
  CHECK(QLearningHalting<>(4).max_steps() == 4);

  CHECK_THROWS_CONTAINING((TrmRecursion<>(0, 2)), ValueError, "TrmRecursion: n", "found 0");
  CHECK_THROWS_CONTAINING((TrmRecursion<3, 2>(4, 2)), ValueError, "fixed at 3 by the type, found 4");
  CHECK_THROWS_CONTAINING((TrmRecursion<>(3, 2, 4)), ValueError, "1 <= k <= n", "k = 4, n = 3");
  CHECK_THROWS_CONTAINING((TrmOneStepGradient<>(3, 0)), ValueError, "TrmRecursion: T");
  CHECK_THROWS_CONTAINING((HrmRecursion<>(2, -1)), ValueError, "HrmRecursion: L_cycles");
  CHECK_THROWS_CONTAINING((BceHalting<>(0)), ValueError, "BceHalting: N_sup");
  // A model refuses a dynamic schedule or policy whose counts were never given.
  using Dyn = Cfg<TrmRecursion<>, BceHalting<>>;
  CHECK_THROWS_CONTAINING((Model<Dyn>(0)), ValueError, "schedule's counts were not given", "TrmRecursion<n=0,T=0>");
  CHECK_THROWS_CONTAINING((Model<Dyn>({.schedule = TrmRecursion<>(2, 2)})), ValueError, "N_sup was not given");
  CHECK_THROWS_CONTAINING((Model<Dyn>({.schedule = TrmRecursion<>(2, 2), .halting = BceHalting<>(3), .puzzle_ids = 0})),
                          ValueError, "expected puzzle_ids in [1, 2^31]", "found 0");
}

TEST_CASE("a static and a dynamic schedule of the same counts give bit-identical training calls") {
  using Static = Cfg<TrmRecursion<2, 2>, BceHalting<3>>;
  using Dynamic = Cfg<TrmRecursion<>, BceHalting<>>;
  const auto [ls, ws] = train<Static>({.puzzle_ids = 4, .seed = 5}, 6);
  const auto [ld, wd] = train<Dynamic>({.schedule = TrmRecursion<>(2, 2), .halting = BceHalting<>(3), .puzzle_ids = 4, .seed = 5}, 6);
  CHECK(ls == ld);  // exact: the same operations in the same order
  CHECK(ws == wd);
  // ... and so do the partial-gradient and HRM schedules.
  using OneS = Cfg<TrmOneStepGradient<3, 2>, BceHalting<3>>;
  using OneD = Cfg<TrmOneStepGradient<>, BceHalting<>>;
  CHECK(train<OneS>({.puzzle_ids = 2, .seed = 1}, 4) ==
        train<OneD>({.schedule = TrmOneStepGradient<>(3, 2), .halting = BceHalting<>(3), .puzzle_ids = 2, .seed = 1}, 4));
  using HrmS = Cfg<HrmRecursion<2, 1>, QLearningHalting<3>, AttentionMixer<2>>;
  using HrmD = Cfg<HrmRecursion<>, QLearningHalting<>, AttentionMixer<2>>;
  CHECK(train<HrmS>({.puzzle_ids = 2, .seed = 1}, 4) ==
        train<HrmD>({.schedule = HrmRecursion<>(2, 1), .halting = QLearningHalting<>(3), .puzzle_ids = 2, .seed = 1}, 4));
  // Different counts do differ (the comparison above is not vacuous).
  CHECK(train<Dynamic>({.schedule = TrmRecursion<>(2, 1), .halting = BceHalting<>(3), .puzzle_ids = 4, .seed = 5}, 6).first != ls);
}

TEST_CASE("save_model / load_model: static <-> dynamic load both ways; other counts, N_sup or table sizes are refused") {
  test::TempDir dir("trm_model_values");
  using Static = Cfg<TrmRecursion<2, 2>, BceHalting<3>>;
  using Dynamic = Cfg<TrmRecursion<>, BceHalting<>>;
  const Model<Static> s({.puzzle_ids = 7, .seed = 1});
  save_model(s, dir / "static.safetensors");  // the model is taken by const reference
  Model<Dynamic> d({.schedule = TrmRecursion<>(2, 2), .halting = BceHalting<>(3), .puzzle_ids = 7, .seed = 2});
  CHECK(d.signature() == s.signature());
  load_model(d, dir / "static.safetensors");
  CHECK(d.lm_head.weight.value(1, 2) == s.lm_head.weight.value(1, 2));
  save_model(d, dir / "dynamic.safetensors");
  Model<Static> s2({.puzzle_ids = 7, .seed = 3});
  load_model(s2, dir / "dynamic.safetensors");
  CHECK(s2.H_init.value(0, 3) == s.H_init.value(0, 3));
  CHECK(checkpoint_puzzle_ids(dir / "static.safetensors") == 7);

  // n = 2 into n = 3, N_sup 3 into 4, a 7-row table into a 5-row one: refused with both signatures.
  Model<Dynamic> n3({.schedule = TrmRecursion<>(3, 2), .halting = BceHalting<>(3), .puzzle_ids = 7});
  const float before = n3.lm_head.weight.value(0, 0);
  CHECK_THROWS_CONTAINING((load_model(n3, dir / "static.safetensors")), io::FormatError, "another model configuration",
                          "expected: ", "schedule=TrmRecursion<n=3,T=2>", "found:    ", "schedule=TrmRecursion<n=2,T=2>");
  CHECK(n3.lm_head.weight.value(0, 0) == before);
  Model<Dynamic> nsup4({.schedule = TrmRecursion<>(2, 2), .halting = BceHalting<>(4), .puzzle_ids = 7});
  CHECK_THROWS_CONTAINING((load_model(nsup4, dir / "static.safetensors")), io::FormatError, "halting=BceHalting<N_sup=4>",
                          "halting=BceHalting<N_sup=3>");
  Model<Dynamic> ids5({.schedule = TrmRecursion<>(2, 2), .halting = BceHalting<>(3), .puzzle_ids = 5});
  CHECK_THROWS_CONTAINING((load_model(ids5, dir / "static.safetensors")), io::FormatError, "puzzle_ids=5", "puzzle_ids=7");
  // The 1-step-gradient variant is another schedule of the same weights' shapes: refused too.
  Model<Dynamic> one({.schedule = TrmRecursion<>(2, 2, 1), .halting = BceHalting<>(3), .puzzle_ids = 7});
  CHECK_THROWS_CONTAINING((load_model(one, dir / "static.safetensors")), io::FormatError, "TrmRecursion<n=2,T=2,k=1>");
}

TEST_CASE("the puzzle table is sized by the data: rows, id checks, and a table of a million rows") {
  using C = Cfg<TrmRecursion<1, 1>, BceHalting<1>>;
  Model<C> m({.puzzle_ids = 1'000'000});
  CHECK(m.num_puzzle_ids() == 1'000'000);
  CHECK(m.puzzle_emb.shape == std::vector<index_t>{1'000'000, 16});
  std::vector<std::int32_t> tokens(9, 2), ids{999'999};
  Solver solver(m);
  CHECK(solver.solve(Batch::from_tokens(tokens, {}, ids, 9)).steps_used[0] == 1);
  ids[0] = 1'000'000;
  CHECK_THROWS_CONTAINING((solver.solve(Batch::from_tokens(tokens, {}, ids, 9))), ValueError,
                          "batch.puzzle_identifiers[0] = 1000000", "expected an id in [0, 1000000)");
  ids[0] = -1;
  CHECK_THROWS_CONTAINING((solver.solve(Batch::from_tokens(tokens, {}, ids, 9))), ValueError, "= -1");
}

TEST_CASE("puzzle_emb_ndim: none (0), narrower than hidden, and wider than hidden spread over prefix rows") {
  Rng rng(4);
  // 0: no puzzle table at all (no buffer in the state dict), the prefix stays zero; training works.
  {
    using C = Cfg<TrmRecursion<2, 1>, BceHalting<2>, TokenMlpMixer, 0, 2>;
    Model<C> m({.puzzle_ids = 3});
    std::vector<std::string> buffers;
    m.for_each_buffer([&](const std::string& n, const auto&) { buffers.push_back(n); });
    CHECK(buffers == std::vector<std::string>{"H_init", "L_init"});
    Trainer t(m, AdamAtan2{}, options());
    const auto metrics = t.step(random_batch(rng, 2, 3));
    CHECK(std::isfinite(metrics.total_loss));
    CHECK(t.puzzle_row_grad().size() == 0);
  }
  // 0 with puzzle_emb_len = 0: no prefix, the q head reads the first token (HRM's behaviour).
  {
    using C = Cfg<TrmRecursion<1, 1>, BceHalting<2>, AttentionMixer<2>, 0, 0>;
    static_assert(Model<C>::prefix_len == 0 && Model<C>::total_len == 9);
    Model<C> m;
    Trainer t(m, AdamAtan2{}, options());
    CHECK(std::isfinite(t.step(random_batch(rng, 2, 1)).total_loss));
  }
  // 24 values with hidden 16 and puzzle_emb_len = 0: ceil(24 / 16) = 2 prefix rows; the row fills
  // the first 24 of their 32 values (the reference's zero-pad and view), the rest stays zero.
  {
    using C = Cfg<TrmRecursion<1, 1>, BceHalting<2>, TokenMlpMixer, 24, 0>;
    using M = Model<C>;
    static_assert(M::prefix_len == 2 && M::puzzle_emb_ndim == 24);
    M m({.puzzle_ids = 2});
    for (index_t j = 0; j < 24; ++j) m.puzzle_emb.value(1, j) = float(j + 1);
    std::vector<std::int32_t> tokens(9, 2), ids{1};
    const Batch batch = Batch::from_tokens(tokens, {}, ids, 9);
    DynTensor<float, 3> x(1, M::total_len, M::hidden);
    m.embed(batch, x.view());
    const float scale = M::embed_scale();
    for (index_t j = 0; j < 16; ++j) CHECK(x(0, 0, j) == float(j + 1) * scale);
    for (index_t j = 0; j < 8; ++j) CHECK(x(0, 1, j) == float(j + 17) * scale);
    for (index_t j = 8; j < 16; ++j) CHECK(x(0, 1, j) == 0.0f);
    // backward: the row's gradient is the prefix gradient's first 24 values, times the scale
    DynTensor<float, 3> dx(1, M::total_len, M::hidden);
    for (index_t i = 0; i < dx.size(); ++i) dx.data()[i] = float(i % 7) - 3.0f;
    DynTensor<float, 2> row_grad(1, 24);
    m.embed_backward(batch, dx.cview(), row_grad.view());
    for (index_t j = 0; j < 24; ++j) CHECK(row_grad(0, j) == doctest::Approx(scale * dx.data()[j]));
    Trainer t(m, AdamAtan2{}, options());
    CHECK(std::isfinite(t.step(random_batch(rng, 2, 2)).total_loss));
  }
}

TEST_CASE("Batch::from_tokens checks its sizes; StepMetrics means; the EMA model is a separate copy") {
  std::vector<std::int32_t> tokens(18, 2), ids{0, 0};
  CHECK_THROWS_CONTAINING((Batch::from_tokens(std::span(tokens).first(17), {}, ids, 9)), ShapeError,
                          "expected 2 x 9 = 18 input tokens", "found 17");
  CHECK_THROWS_CONTAINING((Batch::from_tokens(tokens, std::span(tokens).first(9), ids, 9)), ShapeError, "as many labels");
  const Batch b = Batch::from_tokens(tokens, {}, ids, 9);
  CHECK(b.labels(1, 8) == ignore_label);

  using C = Cfg<TrmRecursion<1, 1>, BceHalting<2>>;
  Model<C> m({.puzzle_ids = 2});
  TrainOptions o = options();
  o.ema_rate = 0.5;
  Trainer t(m, AdamAtan2{.lr = 1e-2}, o);
  Rng rng(2);
  StepMetrics s;
  for (int i = 0; i < 3; ++i) s = t.step(random_batch(rng, 4, 2));
  CHECK(s.batch_rows == 4);
  CHECK(s.mean_total_loss() == doctest::Approx(s.total_loss / 4));
  if (s.count > 0) CHECK(s.mean_accuracy() == doctest::Approx(s.accuracy / s.count));
  const Model<C> ema = t.ema_model();
  // the live weights stay live; the copy holds the averages
  const float live = m.lm_head.weight.value(0, 0), averaged = ema.lm_head.weight.value(0, 0);
  CHECK(live != averaged);
  CHECK(averaged == t.ema().shadow.at("lm_head.weight")(0, 0));
  CHECK(ema.signature() == m.signature());
}

TEST_CASE("a const Model is shared by solvers on two threads: results identical to one thread") {
  // Each solver owns its states, tape and head workspaces; the layers hold parameters only, so
  // concurrent forwards through one const model do not touch shared memory (checked once under
  // ThreadSanitizer: see docs/ARCHITECTURE.md).
  auto check = [](auto args) {
    using C = typename decltype(args)::config;
    Model<C> trained(args);
    Trainer trainer(trained, AdamAtan2{.lr = 1e-2}, options());
    Rng rng(9);
    for (int i = 0; i < 3; ++i) trainer.step(random_batch(rng, 4, 3));  // non-trivial weights
    const Model<C>& model = trained;
    const Batch a = random_batch(rng, 5, 3), b = random_batch(rng, 3, 3);
    const SolveResult ra = Solver(model).solve(a), rb = Solver(model).solve(b, EarlyExit::on, 4);
    SolveResult ta, tb;
    for (int round = 0; round < 3; ++round) {
      std::exception_ptr e1, e2;  // a race may also show as a shape error: report it, do not abort
      std::thread t1([&] {
        try {
          ta = Solver(model).solve(a);
        } catch (...) {
          e1 = std::current_exception();
        }
      });
      std::thread t2([&] {
        try {
          tb = Solver(model).solve(b, EarlyExit::on, 4);
        } catch (...) {
          e2 = std::current_exception();
        }
      });
      t1.join();
      t2.join();
      REQUIRE_FALSE(e1);
      REQUIRE_FALSE(e2);
      CHECK(std::equal(ta.predictions.span().begin(), ta.predictions.span().end(), ra.predictions.span().begin()));
      CHECK(std::equal(tb.predictions.span().begin(), tb.predictions.span().end(), rb.predictions.span().begin()));
      CHECK(ta.q_halt == ra.q_halt);
      CHECK(tb.q_halt == rb.q_halt);
      CHECK(tb.steps_used == rb.steps_used);
    }
  };
  check(ModelArgs<Cfg<TrmRecursion<2, 2>, BceHalting<3>>>{.puzzle_ids = 3, .seed = 8});
  check(ModelArgs<Cfg<HrmRecursion<>, QLearningHalting<>, AttentionMixer<2>>>{
      .schedule = HrmRecursion<>(2, 2), .halting = QLearningHalting<>(3), .puzzle_ids = 3, .seed = 8});
}

// Hidden 64: with a batch of 64 rows (11 positions each) an activation has 45,056 elements, more
// than the CPU pool's grain (32,768), so the elementwise ops are split into pool jobs.
struct WideCfg {
  static constexpr int rows = 3, cols = 3, vocab = 6, hidden = 64, layers = 1;
  using mixer = TokenMlpMixer;
  using schedule = TrmRecursion<2, 2>;
  using halting = BceHalting<3>;
  static constexpr ConfigOptions options{.puzzle_emb_len = 2, .puzzle_emb_ndim = -1};
};

TEST_CASE("solvers on three threads share a const model while the CPU pool runs their ops") {
  // The test above stays below the pool's grain; this one makes every solver submit pool jobs at
  // once: one of them holds the pool, the others' jobs run serially on their own threads
  // (CpuPool::run). Results must not depend on which. tools/sanitize.sh runs it under TSan.
  const int saved = cpu::num_threads();
  cpu::set_num_threads(2);
  Model<WideCfg> model_rw(ModelArgs<WideCfg>{.puzzle_ids = 3, .seed = 4});
  const Model<WideCfg>& model = model_rw;
  Rng rng(5);
  std::vector<Batch> batches;
  for (int i = 0; i < 3; ++i) batches.push_back(random_batch(rng, 64, 3));
  std::vector<SolveResult> ref;
  for (const Batch& b : batches) ref.push_back(Solver(model).solve(b));
  std::vector<SolveResult> got(batches.size());
  std::vector<std::exception_ptr> errors(batches.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < batches.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        for (int rep = 0; rep < 2; ++rep) got[i] = Solver(model).solve(batches[i]);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  cpu::set_num_threads(saved);
  for (std::size_t i = 0; i < batches.size(); ++i) {
    REQUIRE_FALSE(errors[i]);
    CHECK(std::equal(got[i].predictions.span().begin(), got[i].predictions.span().end(),
                     ref[i].predictions.span().begin()));
    CHECK(got[i].q_halt == ref[i].q_halt);
    CHECK(got[i].steps_used == ref[i].steps_used);
  }
}
