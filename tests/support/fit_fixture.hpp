#pragma once
// The tiny training set-up of the trm::fit tests, shared by tests/test_fit.cpp, the crash-safety
// test and its child process (tests/support/crash_child.cpp), which must build the very same run:
// 4x4 Sudoku, TRM-MLP hidden 32, n = 1, T = 2, N_sup = 2, AdamW, EMA.
#include <string>
#include <vector>

#include <trm/data/sources.hpp>
#include <trm/data/sudoku/task.hpp>
#include <trm/train/fit.hpp>
#include <trm/trm.hpp>

namespace trm::test::fit_fixture {

using Shape = trm::data::sudoku::SudokuShape<2, 2>;
using Task4 = trm::data::sudoku::SudokuTask<Shape>;

struct Tiny {
  static constexpr int rows = 4, cols = 4, vocab = Shape::vocab_size, hidden = 32, layers = 2;
  static constexpr trm::ConfigOptions options{.puzzle_emb_len = 1};
  using mixer = trm::TokenMlpMixer;
  using schedule = trm::TrmRecursion<>;
  using halting = trm::BceHalting<>;
};
using M = trm::Model<Tiny>;

inline M make_model() {
  return M({.schedule = trm::TrmRecursion<>(1, 2), .halting = trm::BceHalting<>(2), .puzzle_ids = 1, .seed = 7});
}

inline trm::TrainOptions train_options() {
  trm::TrainOptions o;
  o.schedule = {.warmup_steps = 2, .total_steps = 100, .min_ratio = 1.0};
  o.ema_rate = 0.9;
  o.seed = 3;
  return o;
}

inline std::vector<trm::data::TaskExample<Task4>> eval_set(const Task4& task, int n) {
  trm::Rng rng(99);
  std::vector<trm::data::TaskExample<Task4>> out;
  for (int i = 0; i < n; ++i) out.push_back(task.generate(rng));
  return out;
}

inline trm::EvalReport evaluate(const M& m, const Task4& task, const std::vector<trm::data::TaskExample<Task4>>& set) {
  trm::Evaluator<M> ev(m);
  const trm::Batch b = trm::data::make_batch(task, set);
  ev.add(b, b.size(), [&](trm::index_t r, std::span<const std::int32_t> pred) {
    trm::data::TaskTokens<Task4> t{};
    for (std::size_t k = 0; k < t.size(); ++k) t[k] = std::uint8_t(pred[k]);
    try {
      return task.is_valid_answer(set[std::size_t(r)].question, task.decode(std::span<const std::uint8_t>(t)));
    } catch (const trm::ValueError&) {
      return false;
    }
  });
  return ev.report();
}

inline std::vector<float> weights_of(const M& m) {
  std::vector<float> w;
  trm::for_each_state_tensor(const_cast<M&>(m), [&](const std::string&, auto& p) {
    const auto s = p.value.span();
    w.insert(w.end(), s.begin(), s.end());
  });
  return w;
}

}  // namespace trm::test::fit_fixture
