// A user-defined configuration: a 5x5 grid (Latin squares with blanks), n = 2 latent updates per
// answer update, T = 3 passes, 3 supervision steps. Everything about the model is a compile-time
// choice in one struct (sizes, mixer, schedule and halting types with static counts, optional
// settings in `options`); the library checks it with the ModelConfig concept.
//
//   custom_config [--steps N] [--batch B] [--seed S]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <trm/trm.hpp>

struct LatinSquare5 {
  static constexpr int rows = 5, cols = 5;
  static constexpr int vocab = 7;  // 0 pad, 1 blank, 2..6 the symbols
  static constexpr int hidden = 32, layers = 2;
  static constexpr trm::ConfigOptions options{.puzzle_emb_len = 4};  // 4 puzzle-prefix positions
  using mixer = trm::TokenMlpMixer;
  using schedule = trm::TrmRecursion<2, 3>;  // n = 2, T = 3
  using halting = trm::BceHalting<3>;        // N_sup = 3
};
static_assert(trm::ModelConfig<LatinSquare5>);

// A random Latin square: L[i][j] = perm[(a i + j + c) mod 5] with rows and columns shuffled;
// about `blank_fraction` of the cells are blanked out in the input.
static void make_batch(trm::Rng& rng, trm::Batch& batch, trm::index_t size, double blank_fraction) {
  constexpr int n = 5;
  batch.inputs.resize(size, n * n);
  batch.labels.resize(size, n * n);
  batch.puzzle_identifiers.resize(size);
  for (trm::index_t b = 0; b < size; ++b) {
    int perm[n] = {0, 1, 2, 3, 4}, rows[n] = {0, 1, 2, 3, 4}, cols[n] = {0, 1, 2, 3, 4};
    rng.shuffle(perm, perm + n);
    rng.shuffle(rows, rows + n);
    rng.shuffle(cols, cols + n);
    const int a = 1 + int(rng.below(n - 1)), c = int(rng.below(n));
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        const int symbol = perm[(a * rows[i] + cols[j] + c) % n];
        batch.labels(b, i * n + j) = 2 + symbol;
        batch.inputs(b, i * n + j) = rng.bernoulli(blank_fraction) ? 1 : 2 + symbol;
      }
    batch.puzzle_identifiers(b) = 0;
  }
}

int main(int argc, char** argv) {
  int steps = 300, batch_size = 32;
  std::uint64_t seed = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--batch")) batch_size = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seed")) seed = std::strtoull(argv[i + 1], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: %s [--steps N] [--batch B] [--seed S]\n", argv[0]);
      return 2;
    }
  }
  trm::Model<LatinSquare5> model(seed);  // static schedule and halting: only the seed is needed
  std::printf("TRM for 5x5 Latin squares: %lld parameters, %d net calls per supervision step\n",
              static_cast<long long>(model.num_parameters()), model.recursion().net_calls_per_step());
  trm::TrainOptions opts;
  opts.schedule = trm::LrSchedule{.warmup_steps = 20, .total_steps = steps, .min_ratio = 1.0};
  opts.ema_rate = 0.99;
  opts.seed = seed;
  trm::Trainer trainer(model, trm::AdamW{.lr = 3e-3, .weight_decay = 0.1}, opts);
  trm::Rng data(seed + 1);
  trm::Batch batch;
  for (int s = 1; s <= steps; ++s) {
    make_batch(data, batch, batch_size, 0.4);
    auto m = trainer.step(batch);
    if ((s % 50 == 0 || s == steps) && m.count > 0)  // metrics cover rows that finished their sequence
      std::printf("step %4d  loss %.4f  accuracy %.3f  exact %.3f\n", s, m.mean_total_loss(), m.mean_accuracy(),
                  m.mean_exact_accuracy());
  }
  // Evaluate the EMA weights on fresh puzzles, all N_sup steps, as the reference does: a separate
  // model holds them (the live model keeps training's weights).
  const auto ema_model = trainer.ema_model();
  trm::Batch test;
  make_batch(data, test, 200, 0.4);
  trm::Solver solver(ema_model);
  auto result = solver.solve(test);
  auto score = trm::score_predictions(result.predictions, test.labels, result.steps_used);
  std::printf("exact accuracy: %.1f%% (%d puzzles), cell accuracy %.1f%%\n", 100 * score.exact_accuracy, score.count,
              100 * score.token_accuracy);
  return 0;
}
