// A user's own program that trains a Tiny Recursive Model to solve 11x11 mazes and evaluates it
// on unseen ones, through the library alone:
//   data      trm::data::maze::generate (the library's seeded generator, not the procedure that
//             made Maze-Hard), shortest paths by BFS, mazes kept only when their shortest path is
//             unique (so "exact" has one right answer); a held-out test set from another seed with
//             every training question excluded; both built into trm::data::PuzzleDataset with the
//             reference's layout (train: 8 dihedral transforms per maze), in memory or, with
//             --data-dir, written to disk and read back;
//   training  trm::fit (the library's training driver) stepping a trm::Trainer on
//             trm::data::DatasetSource (the reference's sampling, TrainSampler), for --steps N
//             optimiser steps and/or --minutes M of wall-clock time (whichever comes first), with
//             a progress bar and the test score every 250 steps;
//   eval      the EMA weights (trainer.ema_model()) run every supervision step (trm::Solver) on
//             the held-out mazes in trm::data::EvalSampler's order: exact accuracy (every cell
//             equal to the stored answer) and valid-and-shortest accuracy (the decoded prediction
//             is a simple S..G path of BFS length through open cells,
//             trm::data::maze::valid_and_shortest);
//   output    one solved test maze with the predicted path drawn, and the model saved with
//             trm::save_model, reloaded (checkpoint_puzzle_ids + load_model) and checked to give
//             the same predictions.
//
//   maze [--steps N] [--minutes M] [--train 2000] [--test 500] [--n 2] [--T 2] [--nsup 4]
//        [--batch 32] [--lr 2e-3] [--ema 0.99] [--loops 0.1] [--min-dist 10] [--aug 1]
//        [--seed 0] [--threads 0] [--data-dir DIR] [--save FILE]
//
// (defaults shown; without --steps or --minutes: --steps 300). docs/RESULTS.md, "Maze
// (examples/maze.cpp)", has a measured run.
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <unordered_set>
#include <vector>

#include <trm/data/maze.hpp>
#include <trm/data/puzzle_dataset.hpp>
#include <trm/data/sources.hpp>
#include <trm/train/fit.hpp>
#include <trm/trm.hpp>

namespace maze = trm::data::maze;

// ---- the configuration: sizes and types are compile-time, counts come from the flags ------------
struct Maze11 {
  static constexpr int rows = 11, cols = 11;  // 5 x 5 rooms inside the border
  static constexpr int vocab = maze::vocab_size;  // PAD + "# SGo"
  static constexpr int hidden = 64, layers = 2;
  using mixer = trm::TokenMlpMixer;      // TRM-MLP: the fast choice on 2 cores for 121 cells
  using schedule = trm::TrmRecursion<>;  // n, T from --n, --T
  using halting = trm::BceHalting<>;     // N_sup from --nsup
  static constexpr trm::ConfigOptions options{.puzzle_emb_len = 1};  // one (blank) puzzle id
};
static_assert(trm::ModelConfig<Maze11>);
using Model = trm::Model<Maze11>;

// ---- flags ------------------------------------------------------------------------------------
struct Options {
  long steps = 0;       // 0: no step limit
  double minutes = 0;   // 0: no time limit
  long train = 2000, test = 500;
  long n = 2, T = 2, nsup = 4, batch = 32;
  double lr = 2e-3, ema = 0.99, loops = 0.1;
  long min_dist = 10;
  long aug = 1;
  unsigned long long seed = 0;
  long threads = 0;
  std::string data_dir, save;
};

static const char* kUsage =
    "usage: %s [--steps N] [--minutes M] [--train 2000] [--test 500] [--n 2] [--T 2] [--nsup 4]\n"
    "          [--batch 32] [--lr 2e-3] [--ema 0.99] [--loops 0.1] [--min-dist 10] [--aug 1]\n"
    "          [--seed 0] [--threads 0] [--data-dir DIR] [--save FILE]\n";

struct BadValue {
  std::string message;
};

static long parse_long(const char* flag, const char* text, long lo, long hi) {
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (errno || end == text || *end || v < lo || v > hi)
    throw BadValue{std::string(flag) + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                   "], found '" + text + "'"};
  return v;
}
static double parse_double(const char* flag, const char* text, double lo, double hi) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (errno || end == text || *end || !(v >= lo && v <= hi))
    throw BadValue{std::string(flag) + ": expected a number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                   "], found '" + text + "'"};
  return v;
}

// 0: parsed; 2: usage error (printed).
static int parse(int argc, char** argv, Options& o) {
  constexpr long big = std::numeric_limits<int>::max();
  try {
    for (int i = 1; i < argc; i += 2) {
      const char* f = argv[i];
      const bool known = !std::strcmp(f, "--steps") || !std::strcmp(f, "--minutes") || !std::strcmp(f, "--train") ||
                         !std::strcmp(f, "--test") || !std::strcmp(f, "--n") || !std::strcmp(f, "--T") ||
                         !std::strcmp(f, "--nsup") || !std::strcmp(f, "--batch") || !std::strcmp(f, "--lr") ||
                         !std::strcmp(f, "--ema") || !std::strcmp(f, "--loops") || !std::strcmp(f, "--min-dist") ||
                         !std::strcmp(f, "--aug") || !std::strcmp(f, "--seed") || !std::strcmp(f, "--threads") ||
                         !std::strcmp(f, "--data-dir") || !std::strcmp(f, "--save");
      if (!known) {
        std::fprintf(stderr, "%s: unknown option '%s'\n", argv[0], f);
        std::fprintf(stderr, kUsage, argv[0]);
        return 2;
      }
      if (i + 1 >= argc) throw BadValue{std::string(f) + ": expected a value"};
      const char* v = argv[i + 1];
      if (!std::strcmp(f, "--steps")) o.steps = parse_long(f, v, 1, big);
      else if (!std::strcmp(f, "--minutes")) o.minutes = parse_double(f, v, 1e-3, 1e6);
      else if (!std::strcmp(f, "--train")) o.train = parse_long(f, v, 1, 10'000'000);
      else if (!std::strcmp(f, "--test")) o.test = parse_long(f, v, 1, 10'000'000);
      else if (!std::strcmp(f, "--n")) o.n = parse_long(f, v, 1, 64);
      else if (!std::strcmp(f, "--T")) o.T = parse_long(f, v, 1, 64);
      else if (!std::strcmp(f, "--nsup")) o.nsup = parse_long(f, v, 1, 64);
      else if (!std::strcmp(f, "--batch")) o.batch = parse_long(f, v, 1, 65536);
      else if (!std::strcmp(f, "--lr")) o.lr = parse_double(f, v, 1e-8, 1.0);
      else if (!std::strcmp(f, "--ema")) o.ema = parse_double(f, v, 0.0, 0.999999);
      else if (!std::strcmp(f, "--loops")) o.loops = parse_double(f, v, 0.0, 1.0);
      else if (!std::strcmp(f, "--min-dist")) o.min_dist = parse_long(f, v, 0, Maze11::rows * Maze11::cols);
      else if (!std::strcmp(f, "--aug")) o.aug = parse_long(f, v, 0, 1);
      else if (!std::strcmp(f, "--seed")) o.seed = static_cast<unsigned long long>(parse_long(f, v, 0, std::numeric_limits<long>::max()));
      else if (!std::strcmp(f, "--threads")) o.threads = parse_long(f, v, 0, 256);
      else if (!std::strcmp(f, "--data-dir")) o.data_dir = v;
      else if (!std::strcmp(f, "--save")) o.save = v;
    }
  } catch (const BadValue& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.message.c_str());
    std::fprintf(stderr, kUsage, argv[0]);
    return 2;
  }
  if (o.steps == 0 && o.minutes == 0) o.steps = 300;
  return 0;
}

// ---- data -------------------------------------------------------------------------------------
// `count` mazes with a unique shortest path, drawn from one seeded Rng; questions listed in
// `exclude` (the training set, for the test set) are skipped, and so are repeats.
static std::vector<maze::MazeExample> make_mazes(std::uint64_t seed, long count, const Options& o,
                                                 std::unordered_set<std::string>& seen, long& rejected) {
  trm::Rng rng(seed);
  const maze::GenerateOptions g{.rows = Maze11::rows, .cols = Maze11::cols, .loop_fraction = o.loops,
                                .min_distance = int(o.min_dist)};
  std::vector<maze::MazeExample> out;
  out.reserve(std::size_t(count));
  const long max_tries = 100 * count + 1000;
  for (long tries = 0; long(out.size()) < count; ++tries) {
    if (tries >= max_tries)
      throw trm::ValueError("could not generate " + std::to_string(count) + " distinct mazes with a unique shortest path in " +
                            std::to_string(max_tries) + " tries (found " + std::to_string(out.size()) +
                            "); lower --loops or the set sizes");
    maze::MazeExample e = maze::generate(rng, g);
    if (!maze::solve(e.question).unique() || !seen.insert(e.question.to_field()).second) {
      ++rejected;
      continue;
    }
    out.push_back(std::move(e));
  }
  return out;
}

// A predicted row as text; tokens outside "# SGo" (PAD) print as '?'.
static std::string row_text(const std::int32_t* tokens, int r) {
  std::string s;
  for (int c = 0; c < Maze11::cols; ++c) {
    const std::int32_t t = tokens[r * Maze11::cols + c];
    s.push_back(t >= 1 && t <= 5 ? maze::charset[std::size_t(t - 1)] : '?');
  }
  return s;
}

struct Score {
  long rows = 0, exact = 0, valid_shortest = 0;
  long shown = -1;  // index of a solved test maze, -1: none
  std::vector<std::int32_t> predictions;  // [rows * L] in evaluation order
};

// Every test maze through all N_sup supervision steps, in EvalSampler's order.
static Score evaluate(const Model& model, const trm::data::PuzzleDataset& test, trm::index_t batch_size) {
  constexpr int L = Maze11::rows * Maze11::cols;
  trm::Solver solver(model);
  trm::data::EvalSampler sampler(test, {.global_batch_size = batch_size});
  Score s;
  const trm::data::PuzzleSet& set = test.sets[0];
  while (auto b = sampler.next()) {
    const trm::SolveResult res = solver.solve(b->batch);
    for (trm::index_t r = 0; r < b->effective_size; ++r) {
      const std::int32_t* pred = res.predictions.data() + r * L;
      const std::int32_t* lab = b->batch.labels.data() + r * L;
      s.predictions.insert(s.predictions.end(), pred, pred + L);
      bool exact = true;
      for (int k = 0; k < L; ++k) exact = exact && pred[k] == lab[k];
      const std::int64_t e = b->examples[std::size_t(r)];
      const maze::Maze question =
          maze::decode(std::span<const std::uint8_t>(set.inputs.data() + e * L, L), Maze11::rows, Maze11::cols);
      bool ok = false;
      try {
        ok = maze::valid_and_shortest(question, maze::decode(std::span<const std::int32_t>(pred, L), Maze11::rows, Maze11::cols));
      } catch (const maze::MazeFormatError&) {
        ok = false;  // a PAD token in the prediction: not a maze
      }
      s.exact += exact;
      s.valid_shortest += ok;
      if (ok && s.shown < 0) s.shown = s.rows;
      ++s.rows;
    }
  }
  return s;
}

int main(int argc, char** argv) {
  Options o;
  if (const int rc = parse(argc, argv, o)) return rc;
  try {
    if (o.threads > 0) trm::cpu::set_num_threads(int(o.threads));
    const auto t0 = std::chrono::steady_clock::now();

    // Data: training mazes from seed, test mazes from another seed, disjoint by question.
    std::unordered_set<std::string> seen;
    long rejected_train = 0, rejected_test = 0;
    const auto train_mazes = make_mazes(o.seed * 2 + 1, o.train, o, seen, rejected_train);
    const auto test_mazes = make_mazes(o.seed * 2 + 2, o.test, o, seen, rejected_test);
    double mean_dist = 0;
    for (const auto& e : test_mazes) mean_dist += std::stod(e.rating);
    mean_dist /= double(test_mazes.size());
    trm::data::PuzzleDataset train = maze::build_split(train_mazes, /*train=*/true, {.aug = o.aug != 0});
    trm::data::PuzzleDataset test = maze::build_split(test_mazes, /*train=*/false);
    if (!o.data_dir.empty()) {  // the on-disk path: the reference's layout, written and read back
      train.write(o.data_dir, "train");
      test.write(o.data_dir, "test");
      train = trm::data::PuzzleDataset::read(o.data_dir, "train");
      test = trm::data::PuzzleDataset::read(o.data_dir, "test");
      std::printf("dataset written to and read back from %s/{train,test}\n", o.data_dir.c_str());
    }
    std::printf("%dx%d mazes (library generator, loops %.2f, min distance %ld, unique shortest paths): "
                "%ld train (%lld examples with augmentation), %ld test (mean path %.1f moves); "
                "%ld + %ld draws rejected (not unique or repeated)\n",
                Maze11::rows, Maze11::cols, o.loops, o.min_dist, o.train, static_cast<long long>(train.total_examples()),
                o.test, mean_dist, rejected_train, rejected_test);

    // Model and trainer.
    const int n = int(o.n), T = int(o.T), nsup = int(o.nsup);
    Model model({.schedule = trm::TrmRecursion<>(n, T), .halting = trm::BceHalting<>(nsup),
                 .puzzle_ids = train.metadata.num_puzzle_identifiers, .seed = o.seed});
    std::printf("TRM-MLP, hidden %d, %d layers, n=%d T=%d N_sup=%d: %lld parameters, %d net calls per supervision step; "
                "%d threads\n",
                Maze11::hidden, Maze11::layers, n, T, nsup, static_cast<long long>(model.num_parameters()),
                model.recursion().net_calls_per_step(), trm::cpu::num_threads());
    trm::TrainOptions opts;
    const long total = o.steps > 0 ? o.steps : std::numeric_limits<int>::max();
    opts.schedule = trm::LrSchedule{.warmup_steps = std::min(100L, std::max(1L, total / 10)), .total_steps = total,
                                    .min_ratio = 1.0};
    opts.ema_rate = o.ema;
    opts.seed = o.seed;
    trm::Trainer trainer(model, trm::AdamAtan2{.lr = o.lr, .weight_decay = 0.1}, opts);
    // The library's training driver: the step and/or time budget, a progress bar, the EMA weights
    // evaluated on the test mazes every 250 steps (exact and valid-and-shortest); nothing written
    // to disk here (FitOptions::out_dir would add checkpoints, resume, metrics.csv and a plot).
    trm::data::DatasetSource source(train, {.global_batch_size = trm::index_t(o.batch), .seed = o.seed});
    auto periodic_eval = [&](const Model& weights) {
      const Score s = evaluate(weights, test, trm::index_t(std::min(o.batch, 256L)));
      trm::EvalReport r;
      r.count = s.rows;
      r.max_steps = weights.max_steps();
      r.exact = double(s.exact) / double(std::max(1L, s.rows));
      r.valid = double(s.valid_shortest) / double(std::max(1L, s.rows));
      return r;
    };
    trm::FitOptions fit_options{.max_steps = o.steps, .max_minutes = o.minutes, .eval_every = 250};
    const trm::FitResult fitted = trm::fit(trainer, source, periodic_eval, fit_options);
    const long step = fitted.step;
    const double train_minutes = fitted.seconds / 60.0;
    std::printf("trained %ld steps (batch %ld) in %.2f min, %lld sampler passes\n", step, o.batch, train_minutes,
                static_cast<long long>(source.sampler().iteration()));

    // Evaluation of the EMA weights on the held-out mazes.
    const Model ema = trainer.ema_model();
    const Score s = evaluate(ema, test, trm::index_t(std::min(o.batch, 256L)));
    std::printf("test accuracy on %ld unseen mazes: exact %.1f%% (%ld), valid and shortest %.1f%% (%ld)\n", s.rows,
                100.0 * double(s.exact) / double(s.rows), s.exact, 100.0 * double(s.valid_shortest) / double(s.rows),
                s.valid_shortest);

    // One maze with its predicted path: a solved one when there is one.
    {
      constexpr int L = Maze11::rows * Maze11::cols;
      const long k = s.shown >= 0 ? s.shown : 0;
      const maze::Maze& q = test_mazes[std::size_t(k)].question;
      std::printf("\ntest maze %ld (%s moves), question | model's answer (%s)\n", k, test_mazes[std::size_t(k)].rating.c_str(),
                  s.shown >= 0 ? "a valid shortest path" : "no test maze solved yet; not a valid shortest path");
      const std::string qt = q.to_text();
      for (int r = 0; r < Maze11::rows; ++r)
        std::printf("  %s | %s\n", qt.substr(std::size_t(r) * (Maze11::cols + 1), Maze11::cols).c_str(),
                    row_text(s.predictions.data() + k * L, r).c_str());
      std::printf("\n");
    }

    // Save, reload (the table size comes from the file) and check the round trip.
    namespace fs = std::filesystem;
    const fs::path path = o.save.empty() ? fs::temp_directory_path() / ("trm_maze_example_" + std::to_string(o.seed) + ".safetensors")
                                         : fs::path(o.save);
    trm::save_model(ema, path, {{"task", "maze 11x11 (examples/maze.cpp)"}});
    Model restored({.schedule = trm::TrmRecursion<>(n, T), .halting = trm::BceHalting<>(nsup),
                    .puzzle_ids = trm::checkpoint_puzzle_ids(path)});
    trm::load_model(restored, path);
    const Score again = evaluate(restored, test, trm::index_t(std::min(o.batch, 256L)));
    const bool same = again.predictions == s.predictions;
    std::printf("saved %s; reloaded: predictions %s on the %ld test mazes\n", path.string().c_str(),
                same ? "identical" : "DIFFERENT", again.rows);
    if (o.save.empty()) fs::remove(path);
    std::printf("total %.2f min\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 60.0);
    return same ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", argv[0], e.what());
    return 1;
  }
}
