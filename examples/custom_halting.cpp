// A user-defined halting policy, plugged into the library's Trainer without touching the library.
//
// StableAnswerHalting<N>: a sequence stops as soon as its predicted answer (the argmax of every
// cell) has not changed for two supervision steps, i.e. steps t-2, t-1 and t gave the same grid,
// or after N steps. Its loss trains the q head as TRM does (BCE of q_halt against "the answer is
// exactly right"), so the learned halting signal is still there for inference.
//
// What a halting policy provides (the trm::HaltingPolicy concept, include/trm/halting/halting.hpp):
// a copyable value with
//   int max_steps() const;                            N_sup
//   static constexpr bool needs_q_continue_target;    true only for Q-learning (extra forward)
//   std::string describe() const;                     the policy and its counts (model signature)
//   decide_training(HaltingInputs, Rng&, span<uint8_t> halted)   after every supervision step
//   loss(HaltingInputs, seq_correct, dq_halt, dq_continue, scale) -> double
// HaltingInputs carries the q logits, the per-row step counts and the argmax predictions of the
// step ([B * cells]). The Model holds the policy it was built with; the Trainer works on its own
// copy (trainer.halting()), so the policy may keep per-row state.
//
// The example trains a tiny TRM on generated 4x4 Sudoku puzzles and prints, every few calls, how
// many sequences stopped and why, then solves a few test puzzles with the same rule.
//
//   custom_halting [--steps 300] [--seed 0]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <trm/data/sudoku.hpp>
#include <trm/trm.hpp>
#include <vector>

namespace sudoku = trm::data::sudoku;
using Shape = sudoku::Sudoku4;

// ---- the user's policy ------------------------------------------------------------------------
template <int N>
struct StableAnswerHalting {
  static constexpr bool needs_q_continue_target = false;
  int max_steps() const { return N; }
  std::string describe() const { return "StableAnswerHalting<N_sup=" + std::to_string(N) + ">"; }

  // Per-row memory: the previous answer and for how many steps it has not changed.
  std::vector<std::int32_t> previous;
  std::vector<int> unchanged;
  // Statistics for the printout.
  long halted_by_rule = 0, halted_by_limit = 0, steps_by_rule = 0;

  void decide_training(const trm::HaltingInputs& in, trm::Rng&, std::span<std::uint8_t> halted) {
    const std::size_t b = halted.size(), cells = in.predictions.size() / b;
    previous.resize(in.predictions.size(), -1);
    unchanged.resize(b, 0);
    for (std::size_t r = 0; r < b; ++r) {
      auto now = in.predictions.subspan(r * cells, cells);
      auto before = std::span<std::int32_t>(previous).subspan(r * cells, cells);
      if (in.steps[r] == 1)
        unchanged[r] = 0;  // a new sequence: nothing to compare with yet
      else
        unchanged[r] = std::equal(now.begin(), now.end(), before.begin()) ? unchanged[r] + 1 : 0;
      std::copy(now.begin(), now.end(), before.begin());
      const bool stable = unchanged[r] >= 2, limit = in.steps[r] >= N;
      halted[r] = stable || limit;
      if (stable) {
        ++halted_by_rule;
        steps_by_rule += in.steps[r];
      } else if (limit) {
        ++halted_by_limit;
      }
    }
  }

  double loss(const trm::HaltingInputs& in, std::span<const std::uint8_t> seq_correct, std::span<float> dq_halt,
              std::span<float> dq_continue, double scale) const {
    double total = 0;
    for (std::size_t r = 0; r < dq_halt.size(); ++r) {
      const double x = in.q_halt[r], t = seq_correct[r] ? 1.0 : 0.0;
      total += trm::bce_with_logits(x, t);
      dq_halt[r] = float(scale * (trm::sigmoid(x) - t));
      dq_continue[r] = 0;
    }
    return total;
  }
};
static_assert(trm::HaltingPolicy<StableAnswerHalting<6>>);

// ---- the model --------------------------------------------------------------------------------
struct Sudoku4Config {
  static constexpr int rows = 4, cols = 4, vocab = Shape::vocab_size, hidden = 32, layers = 2;
  static constexpr trm::ConfigOptions options{.puzzle_emb_len = 2};
  using mixer = trm::TokenMlpMixer;
  using schedule = trm::TrmRecursion<2, 2>;  // n = 2 latent updates, T = 2 passes
  using halting = StableAnswerHalting<6>;    // at most 6 supervision steps
};
static_assert(trm::ModelConfig<Sudoku4Config>);
using Model = trm::Model<Sudoku4Config>;

trm::Batch make_batch(const std::vector<sudoku::Example<Shape>>& examples) {
  const trm::index_t b = trm::index_t(examples.size());
  trm::Batch batch;
  batch.inputs.resize(b, Shape::cells);
  batch.labels.resize(b, Shape::cells);
  batch.puzzle_identifiers.resize(b);
  for (trm::index_t r = 0; r < b; ++r) {
    const auto in = sudoku::encode(examples[std::size_t(r)].puzzle), out = sudoku::encode(examples[std::size_t(r)].solution);
    for (int c = 0; c < Shape::cells; ++c) {
      batch.inputs(r, c) = in[std::size_t(c)];
      batch.labels(r, c) = out[std::size_t(c)];
    }
    batch.puzzle_identifiers(r) = 0;
  }
  return batch;
}

int main(int argc, char** argv) {
  int steps = 300;
  std::uint64_t seed = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--steps")) steps = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seed")) seed = std::stoull(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--steps N] [--seed S]\n", argv[0]);
      return 2;
    }
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr, "usage: %s [--steps N] [--seed S]\n", argv[0]);
    return 2;
  }

  trm::Rng data_rng(seed + 1);
  std::vector<sudoku::Example<Shape>> train, test;
  for (int i = 0; i < 256; ++i) train.push_back(sudoku::generate<Shape>(data_rng, 8));
  for (int i = 0; i < 8; ++i) test.push_back(sudoku::generate<Shape>(data_rng, 8));

  Model model(seed);
  trm::TrainOptions options;
  options.schedule = trm::LrSchedule{20, steps, 1.0};
  options.ema_rate = 0;
  options.puzzle_emb_lr = 1e-2;
  trm::Trainer trainer(model, trm::AdamAtan2{.lr = 3e-3, .weight_decay = 0.01}, options);
  std::printf("StableAnswerHalting<%d> on 4x4 Sudoku (8 blanks): TRM-MLP hidden %d, %d params, %d calls\n",
              model.max_steps(), int(Model::hidden), int(model.num_parameters()), steps);

  const int batch_size = 16, report = std::max(1, steps / 10);
  long seen_rule = 0, seen_limit = 0, seen_steps = 0;
  double correct = 0, counted = 0;
  for (int call = 1; call <= steps; ++call) {
    std::vector<sudoku::Example<Shape>> rows;
    for (int r = 0; r < batch_size; ++r) rows.push_back(sudoku::augment(train[data_rng.below(train.size())], data_rng));
    const auto m = trainer.step(make_batch(rows));
    correct += m.exact_accuracy;
    counted += m.count;
    if (call % report == 0 || call == steps) {
      const auto& p = trainer.halting();
      const long by_rule = p.halted_by_rule - seen_rule, by_limit = p.halted_by_limit - seen_limit;
      std::printf("call %4d | lm_loss %.3f | finished %3ld sequences: %3ld answer stable for 2 steps (mean %.2f steps), "
                  "%3ld at N_sup=%d | exact %.2f\n",
                  call, m.lm_loss / batch_size, by_rule + by_limit, by_rule,
                  by_rule ? double(p.steps_by_rule - seen_steps) / double(by_rule) : 0.0, by_limit, model.max_steps(),
                  counted > 0 ? correct / counted : 0.0);
      seen_rule = p.halted_by_rule;
      seen_limit = p.halted_by_limit;
      seen_steps = p.steps_by_rule;
      correct = counted = 0;
    }
  }

  // Inference with the same rule: run supervision steps until the answer is stable.
  const trm::Batch batch = make_batch(test);
  const trm::index_t b = batch.size();
  trm::DynTensor<float, 3> x(b, Model::total_len, Model::hidden), y(b, Model::total_len, Model::hidden),
      z(b * trm::index_t(Model::num_latents), Model::total_len, Model::hidden), logits(b, Model::seq_len, Model::vocab);
  trm::DynTensor<float, 2> q(b, 2);
  model.embed(batch, x.view());
  std::vector<std::uint8_t> all(b, 1), halted(b, 0);
  model.reset_states(all, y.view(), z.view());
  Model::schedule::Tape<Model> tape;
  Model::HeadCache heads;
  Model::halting rule = model.halting_policy();  // a fresh copy: no per-row state from training
  std::vector<std::int32_t> used(b, 0), predictions(std::size_t(b * Model::seq_len)), answer = predictions;
  for (int step = 1; step <= model.max_steps(); ++step) {
    model.recursion().forward(model, tape, x.cview(), y.view(), z.view(), false);
    model.heads(y.cview(), logits.view(), q.view(), heads);
    for (trm::index_t r = 0; r < b; ++r)
      for (trm::index_t t = 0; t < Model::seq_len; ++t) {
        trm::index_t best = 0;
        for (trm::index_t k = 1; k < Model::vocab; ++k)
          if (logits(r, t, k) > logits(r, t, best)) best = k;
        predictions[std::size_t(r * Model::seq_len + t)] = std::int32_t(best);
      }
    std::vector<std::int32_t> step_counts(b, step);
    std::vector<float> qh(b), qc(b);
    std::vector<std::uint8_t> stop(b);
    trm::HaltingInputs in{qh, qc, step_counts};
    in.predictions = predictions;
    trm::Rng unused;
    rule.decide_training(in, unused, stop);
    for (trm::index_t r = 0; r < b; ++r)
      if (!halted[r]) {
        used[r] = step;
        std::copy_n(predictions.begin() + r * Model::seq_len, Model::seq_len, answer.begin() + r * Model::seq_len);
        halted[r] = stop[r];
      }
    if (std::all_of(halted.begin(), halted.end(), [](auto h) { return h != 0; })) break;
  }
  int solved = 0;
  for (trm::index_t r = 0; r < b; ++r) {
    bool ok = true;
    for (trm::index_t t = 0; t < Model::seq_len; ++t) ok = ok && answer[std::size_t(r * Model::seq_len + t)] == batch.labels(r, t);
    solved += ok;
    std::printf("test puzzle %d: stopped after %d step(s)%s, %s\n", int(r), used[r],
                used[r] < model.max_steps() ? " (answer stable)" : "", ok ? "solved" : "not solved");
  }
  std::printf("solved %d of %d test puzzles\n", solved, int(b));
  return 0;
}
