#pragma once
// The small model the checkpoint harness loads files into, and the seed maker saves (so that the
// seeds carry the signature the harness's model checks): TRM-Att (2 heads, RoPE) on 4x4 Sudoku,
// hidden 16, one layer, n = 1, T = 2, N_sup = 2. Attention rather than the token MLP because the
// SwiGLU widths round up to 256: the token MLP would double the parameters (and every input the
// fuzzer mutates: weights, EMA and both optimiser moments are in a training state).
#include <span>
#include <vector>

#include <trm/data/sources.hpp>
#include <trm/data/sudoku/task.hpp>
#include <trm/train/fit.hpp>
#include <trm/trm.hpp>

namespace trm_fuzz {

using Shape4 = trm::data::sudoku::SudokuShape<2, 2>;
using Task4 = trm::data::sudoku::SudokuTask<Shape4>;

struct TinyConfig {
  static constexpr int rows = 4, cols = 4, vocab = Shape4::vocab_size, hidden = 16, layers = 1;
  static constexpr trm::ConfigOptions options{.puzzle_emb_len = 1};
  using mixer = trm::AttentionMixer<2>;
  using schedule = trm::TrmRecursion<>;
  using halting = trm::BceHalting<>;
};
using TinyModel = trm::Model<TinyConfig>;
using TinyTrainer = trm::Trainer<TinyModel, trm::AdamW>;

inline TinyModel make_model() {
  return TinyModel({.schedule = trm::TrmRecursion<>(1, 2), .halting = trm::BceHalting<>(2), .puzzle_ids = 1, .seed = 7});
}

inline trm::TrainOptions train_options() {
  trm::TrainOptions o;
  o.schedule = {.warmup_steps = 2, .total_steps = 100, .min_ratio = 1.0};
  o.ema_rate = 0.9;
  o.seed = 3;
  return o;
}

inline const Task4& task() {
  static const Task4 t(6);  // 6 blanks
  return t;
}

inline std::vector<trm::data::TaskExample<Task4>> examples(int n, std::uint64_t seed) {
  trm::Rng rng(seed);
  std::vector<trm::data::TaskExample<Task4>> out;
  for (int i = 0; i < n; ++i) out.push_back(task().generate(rng));
  return out;
}

// An inference over a few puzzles (all N_sup steps and early exit), scored as the CLI scores it.
inline trm::EvalReport evaluate(const TinyModel& m) {
  static const auto set = examples(4, 99);
  trm::Evaluator<TinyModel> ev(m);
  const trm::Batch b = trm::data::make_batch(task(), set);
  ev.add(b, b.size(), [&](trm::index_t r, std::span<const std::int32_t> pred) {
    trm::data::TaskTokens<Task4> t{};
    for (std::size_t k = 0; k < t.size(); ++k) t[k] = std::uint8_t(pred[k]);
    try {
      return task().is_valid_answer(set[std::size_t(r)].question, task().decode(std::span<const std::uint8_t>(t)));
    } catch (const trm::ValueError&) {
      return false;  // a prediction that is not a grid (e.g. a PAD token) is simply wrong
    }
  });
  return ev.report();
}

}  // namespace trm_fuzz
