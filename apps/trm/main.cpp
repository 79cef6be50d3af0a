// trm: the command line of the trm library: one driver over the tasks (trm::data::Task).
//
//   trm sudoku generate --box 2x3 --count 1000 --blanks 20 --seed 1 --out test.csv
//   trm sudoku train    --box 2x3 --minutes 7 --out run6      (see --help for every flag)
//   trm sudoku solve    --checkpoint run6/model.safetensors --input puzzles.csv [--early-exit] [--trace]
//   trm sudoku eval     --checkpoint run6/model.safetensors --input test.csv
//   trm maze generate   --size 30x30 --count 1000 --out mazes/train.csv
//   trm maze build      --input mazes --out data/maze [--aug]      (the official builder's arrays)
//   trm maze train      --size 9x9 --minutes 30 --out maze9   |   --size 30x30 --data data/maze ...
//   trm maze solve      --checkpoint maze9/model.safetensors --input mazes.txt
//   trm <task> plot     --run DIR
//
// Exit status (cli_common.hpp kExit*): 0 success, 1 error (bad input, checkpoint of another
// configuration, ...), 2 command-line usage error, 3 solve/eval did not solve every puzzle,
// 130 training interrupted (Ctrl-C or SIGTERM; the run is saved and can be resumed).
#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <trm/backend/cpu.hpp>
#include <trm/core/error.hpp>
#include <trm/core/rng.hpp>
#include <trm/data/arc.hpp>
#include <trm/data/maze.hpp>
#include <trm/data/sudoku.hpp>
#include <trm/io/atomic_file.hpp>
#include <trm/version.hpp>
#include <unordered_set>

#include "cli_common.hpp"
#include "entry.hpp"

#include <unistd.h>

#if defined(TRM_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace trmcli {

namespace sd = trm::data::sudoku;

// ---- generate -----------------------------------------------------------------------------------------
template <class Shape>
int generate(long count, int blanks, std::uint64_t seed, const std::string& out) {
  if (count < 1) throw CliError("--count must be >= 1, found " + std::to_string(count));
  if (blanks < 0 || blanks > Shape::cells)
    throw CliError("--blanks must be in [0, " + std::to_string(Shape::cells) + "] for " + Shape::name() + ", found " +
                   std::to_string(blanks));
  trm::Rng rng(seed);
  std::unordered_set<std::string> seen;
  std::string text;
  long misses = 0;
  while (long(seen.size()) < count) {
    sd::Example<Shape> ex;
    try {
      ex = sd::generate<Shape>(rng, blanks);
    } catch (const trm::ValueError& e) {
      throw CliError(std::string(e.what()) + " (--blanks " + std::to_string(blanks) + ")");
    }
    const std::string p = sd::to_string(ex.puzzle);
    if (!seen.insert(p).second) {
      if (++misses > 1000 + 100 * count)
        throw CliError("could only make " + std::to_string(seen.size()) + " distinct " + Shape::name() + " puzzles with " +
                       std::to_string(blanks) + " blanks (asked for " + std::to_string(count) + ")");
      continue;
    }
    text += p + "," + sd::to_string(ex.solution) + "\n";
  }
  if (out.empty() || out == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    try {
      trm::io::write_file_atomically(out, [&](trm::io::AtomicFileWriter& w) { w.write(text); });
    } catch (const std::exception& e) {
      throw CliError(out + ": cannot write the file: " + e.what());
    }
    std::fprintf(stderr, "wrote %ld %s puzzles with %d blanks (seed %llu) to %s\n", count, Shape::name().c_str(), blanks,
                 static_cast<unsigned long long>(seed), out.c_str());
  }
  return 0;
}

template <class F>
int by_box(const std::string& box, F&& f) {
  if (box == "2x2") return f.template operator()<2, 2>();
  if (box == "2x3") return f.template operator()<2, 3>();
  if (box == "3x3") return f.template operator()<3, 3>();
  throw CliError("--box " + box + " is not supported (supported: " + join_values(kSupportedBoxes) + ")");
}

template <class F>
int by_maze_size(const std::string& size, F&& f) {
  if (size == "9x9") return f.template operator()<9>();
  if (size == "30x30") return f.template operator()<30>();
  throw CliError("--size " + size + " is not supported for training, solving and evaluating (supported: " +
                 join_values(kSupportedMazeSizes) + "; model sizes are compile-time constants)");
}

// Runs f.template operator()<B>() with the backend of --device (kDeviceHelp). `gpu_size` says whether
// the GPU's entry points were compiled for the task's size (`what` names it).
template <class F>
int on_device(const std::string& device, bool gpu_size, const std::string& what, F&& f) {
  if (device == "cpu") return f.template operator()<trm::cpu>();
  if (device != "cuda") throw CliError("--device: expected cpu or cuda, found '" + device + "'");
  std::string why;
  if (!cuda_device_available(why)) throw CliError("--device cuda: " + why);
  if (!gpu_size)
    throw CliError("--device cuda: the GPU is compiled for Sudoku 3x3 boxes, 30x30 mazes and the 30x30 ARC canvas, not " + what);
  if constexpr (kCliHasCuda) return f.template operator()<GpuBackend>();
  return kExitError;  // not reached: cuda_device_available is false without CUDA
}

// "RxC" -> (R, C), each 5..30.
static std::pair<int, int> parse_maze_size(const std::string& size) {
  const auto x = size.find('x');
  int r = 0, c = 0;
  try {
    if (x == std::string::npos) throw std::invalid_argument("no x");
    std::size_t p1 = 0, p2 = 0;
    r = std::stoi(size.substr(0, x), &p1);
    c = std::stoi(size.substr(x + 1), &p2);
    if (p1 != x || p2 != size.size() - x - 1) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw CliError("--size " + size + ": expected ROWSxCOLS, e.g. 30x30");
  }
  if (r < trm::data::maze::min_side || r > trm::data::maze::max_side || c < trm::data::maze::min_side ||
      c > trm::data::maze::max_side)
    throw CliError("--size " + size + ": expected sides in " + std::to_string(trm::data::maze::min_side) + ".." +
                   std::to_string(trm::data::maze::max_side));
  return {r, c};
}

// Distinct mazes with a unique shortest path, as a Maze-Hard CSV.
// hard: Maze-Hard's procedure (maze::generate_hard: random walls, a long shortest path, ties
// walled off); otherwise the library's DFS-with-loops generator.
static int generate_mazes(const std::string& size, long count, double loops, int min_dist, bool hard, std::uint64_t seed,
                          const std::string& out) {
  namespace mz = trm::data::maze;
  const auto [rows, cols] = parse_maze_size(size);
  if (count < 1) throw CliError("--count must be >= 1, found " + std::to_string(count));
  if (!(loops >= 0 && loops <= 1)) throw CliError("--loops must be in [0, 1], found " + std::to_string(loops));
  if (min_dist < 0 || min_dist > rows * cols) throw CliError("--min-dist must be in [0, " + std::to_string(rows * cols) + "]");
  mz::GenerateOptions g{.rows = rows, .cols = cols, .loop_fraction = loops,
                        .min_distance = min_dist > 0 ? min_dist : std::max(2, std::min(rows, cols) * 4 / 3 - 6)};
  trm::Rng rng(seed);
  std::unordered_set<std::string> seen;
  std::vector<mz::MazeExample> mazes;
  long misses = 0;
  const mz::HardGenerateOptions h{.rows = rows, .cols = cols, .min_distance = min_dist > 0 ? min_dist : -1};
  while (long(mazes.size()) < count) {
    mz::MazeExample e;
    try {
      e = hard ? mz::generate_hard(rng, h) : mz::generate(rng, g);
    } catch (const trm::ValueError& err) {
      throw CliError(std::string("maze generate: ") + err.what());
    }
    if (!mz::solve(e.question).unique() || !seen.insert(e.question.to_field()).second) {
      if (++misses > 1000 + 100 * count)
        throw CliError("could only make " + std::to_string(mazes.size()) + " distinct " + size +
                       " mazes with a unique shortest path (asked for " + std::to_string(count) + "); lower --loops");
      continue;
    }
    mazes.push_back(std::move(e));
  }
  const std::string text = mz::to_csv(mazes);
  if (out.empty() || out == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    try {
      trm::io::write_file_atomically(out, [&](trm::io::AtomicFileWriter& w) { w.write(text); });
    } catch (const std::exception& e) {
      throw CliError(out + ": cannot write the file: " + e.what());
    }
    if (hard)
      std::fprintf(stderr, "wrote %ld %s mazes (Maze-Hard procedure, min distance %d, unique shortest paths, seed %llu) to %s\n",
                   count, size.c_str(), min_dist > 0 ? min_dist : mz::hard_min_distance(rows, cols),
                   static_cast<unsigned long long>(seed), out.c_str());
    else
      std::fprintf(stderr, "wrote %ld %s mazes (loops %.2f, min distance %d, unique shortest paths, seed %llu) to %s\n", count,
                   size.c_str(), loops, g.min_distance, static_cast<unsigned long long>(seed), out.c_str());
  }
  return 0;
}

// The flags of solve/eval that, when given, must match the checkpoint.
struct ExpectFlags {
  std::string size, mixer;
  int hidden = 0, layers = 0, prefix = 0, n = 0, T = 0, nsup = 0;
};

// Every training flag in its range (also the ones a resumed run takes from its saved state).
static void check_train_flags(const TrainArgs& ta) {
  auto bad = [](const std::string& flag, const std::string& expected, double found) {
    std::ostringstream os;
    os << flag << ": expected " << expected << ", found " << found;
    throw CliError(os.str());
  };
  if (ta.steps < 0) bad("--steps", ">= 0", double(ta.steps));
  if (!(ta.minutes >= 0 && ta.minutes <= 1e7)) bad("--minutes", "0..1e7", ta.minutes);
  if (ta.steps <= 0 && ta.minutes <= 0) throw CliError("give a training budget: --steps N and/or --minutes M");
  if (ta.batch < 1 || ta.batch > 65536) bad("--batch", "1..65536", ta.batch);
  if (!(ta.lr > 0 && ta.lr <= 1)) bad("--lr", "a value in (0, 1]", ta.lr);
  if (!(ta.lr_min_ratio >= 0 && ta.lr_min_ratio <= 1)) bad("--lr-min-ratio", "a value in [0, 1]", ta.lr_min_ratio);
  if (ta.warmup < 0) bad("--warmup", ">= 0", double(ta.warmup));
  if (!(ta.weight_decay >= 0 && ta.weight_decay <= 10)) bad("--weight-decay", "a value in [0, 10]", ta.weight_decay);
  // beta = 1 never forgets the first moment and divides by 1 - beta^t = 0: a NaN model.
  if (!(ta.puzzle_emb_lr >= 0 && ta.puzzle_emb_lr <= 1)) bad("--puzzle-emb-lr", "a value in [0, 1]", ta.puzzle_emb_lr);
  if (!(ta.puzzle_emb_wd >= 0 && ta.puzzle_emb_wd <= 10)) bad("--puzzle-emb-wd", "a value in [0, 10]", ta.puzzle_emb_wd);
  if (!(ta.beta1 >= 0 && ta.beta1 < 1)) bad("--beta1", "a value in [0, 1)", ta.beta1);
  if (!(ta.beta2 >= 0 && ta.beta2 < 1)) bad("--beta2", "a value in [0, 1)", ta.beta2);
  if (ta.log_every < 1) bad("--log-every", ">= 1", double(ta.log_every));
  if (ta.eval_every < 0) bad("--eval-every", ">= 0 (0: only at the end)", double(ta.eval_every));
  if (ta.eval_size < 1 || ta.eval_size > 10'000'000) bad("--eval-size", "1..10000000", ta.eval_size);
  if (ta.threads < 0 || ta.threads > 1024) bad("--threads", "0..1024 (0: all cores, at most 2)", ta.threads);
  if (!(ta.halt_explore >= 0 && ta.halt_explore <= 1)) bad("--halt-explore", "a probability in [0, 1]", ta.halt_explore);
  if (ta.optimizer != "adamw" && ta.optimizer != "adam-atan2")
    throw CliError("--optimizer " + ta.optimizer + " is not supported (supported: adamw, adam-atan2)");
  if (ta.loss != "stablemax" && ta.loss != "softmax")
    throw CliError("--loss " + ta.loss + " is not supported (supported: stablemax, softmax)");
  if (!(ta.ema >= 0 && ta.ema < 1)) bad("--ema", "a value in [0, 1)", ta.ema);
  if (!(ta.loops >= 0 && ta.loops <= 1)) bad("--loops", "a value in [0, 1]", ta.loops);
}

// One task's subcommands and the values their flags write into (stable addresses: CLI11 keeps
// pointers to them).
struct TaskCommands {
  std::string task;  // sudoku or maze
  CLI::App *self = nullptr, *gen = nullptr, *build = nullptr, *train = nullptr, *solve = nullptr, *eval = nullptr,
           *plot = nullptr;
  std::string gen_size, gen_out;
  long gen_count = 1000;
  int gen_blanks = 20;
  double gen_loops = 0.1;
  int gen_min_dist = 0;
  bool gen_hard = false;
  std::uint64_t gen_seed = 0;
  std::string build_in, build_out;
  bool build_aug = false;
  TrainArgs ta;
  SolveArgs sa;
  EvalArgs ea;
  ExpectFlags solve_flags, eval_flags;
  std::function<void()> solve_expect, eval_expect;
  std::string plot_run, plot_out;
  bool maze() const { return task == "maze"; }
};

// The `train` subcommand of a task and its flags (sudoku, maze, arc).
static CLI::App* add_train_command(CLI::App* parent, TrainArgs& ta, const std::string& task) {
  const bool maze = task == "maze", arc = task == "arc";
  const char* size_flag = task == "sudoku" ? "--box" : "--size";
  const std::string sizes = maze ? join_values(kSupportedMazeSizes) : arc ? join_values(kSupportedArcSizes) : join_values(kSupportedBoxes);
  const std::string noun = maze ? "mazes" : "puzzles";
  auto* train = parent->add_subcommand("train", maze ? "Train a TRM on generated mazes or on a reference dataset (--data)"
                                                : arc  ? "Train a TRM-Att on an ARC build (--data: `trm arc build` or the official builder's)"
                                                       : "Train a TRM on freshly generated puzzles or on a reference dataset (--data)");
  train->add_option(size_flag, ta.model.size, (maze ? "Maze size: " : arc ? "Canvas: " : "Box shape: ") + sizes)->capture_default_str();
  train->add_option("--mixer", ta.model.mixer, "Sequence mixer: mlp (TRM-MLP) or att (self-attention, head dim 32)")
      ->capture_default_str();
  train->add_option("--hidden", ta.model.hidden, "Hidden size: " + join_values(kSupportedHidden))->capture_default_str();
  train->add_option("--layers", ta.model.layers, "Layers of the network: " + join_values(kSupportedLayers))->capture_default_str();
  train->add_option("--prefix", ta.model.prefix, "Puzzle-embedding prefix positions: " + join_values(kSupportedPrefix))
      ->capture_default_str();
  train->add_option("--n", ta.model.n, "Latent updates per recursion pass (n)")->capture_default_str();
  train->add_option("--T", ta.model.T, "Recursion passes per supervision step (T)")->capture_default_str();
  train->add_option("--nsup", ta.model.nsup, "Supervision steps (N_sup)")->capture_default_str();
  train->add_option("--steps", ta.steps, "Train until this step (total, also on --resume); 0: no step limit")
      ->capture_default_str();
  train->add_option("--minutes", ta.minutes, "Wall-clock budget of this run in minutes (0: none)")->capture_default_str();
  train->add_option("--batch", ta.batch, "Batch size")->capture_default_str();
  train->add_option("--lr", ta.lr, "Learning rate")->capture_default_str();
  train->add_option("--lr-min-ratio", ta.lr_min_ratio,
                    "Cosine decay after warmup to lr x this ratio at the end of the step (or time) budget; 1 = constant")
      ->capture_default_str();
  train->add_option("--warmup", ta.warmup, "Linear warmup steps")->capture_default_str();
  train->add_option("--weight-decay", ta.weight_decay, "Decoupled weight decay")->capture_default_str();
  train->add_option("--puzzle-emb-lr", ta.puzzle_emb_lr, "Learning rate of the puzzle table's sign-SGD")->capture_default_str();
  train->add_option("--puzzle-emb-wd", ta.puzzle_emb_wd, "Weight decay of the puzzle table")->capture_default_str();
  train->add_option("--beta1", ta.beta1, "Adam beta1")->capture_default_str();
  train->add_option("--beta2", ta.beta2, "Adam beta2")->capture_default_str();
  train->add_option("--optimizer", ta.optimizer, "adamw or adam-atan2")->capture_default_str();
  train->add_option("--loss", ta.loss, "Token loss: stablemax or softmax")->capture_default_str();
  if (maze) {
    train->add_option("--loops", ta.loops, "Generator: fraction of inner walls opened as loops")->capture_default_str();
    train->add_option("--min-dist", ta.min_dist, "Generator: minimum BFS distance S..G (0: the size's default)")
        ->capture_default_str();
  } else if (!arc) {
    train->add_option("--blanks", ta.blanks, "Blank cells of every training and evaluation puzzle")->capture_default_str();
  }
  train->add_option("--data", ta.data,
                    "Train on DIR/train and evaluate on DIR/test, a reference-format dataset (e.g. built by the official "
                    "builders) instead of generated " + noun);
  train->add_option("--init", ta.init,
                    "Start from this model.safetensors (same configuration; its puzzle table extended to --data's ids, new "
                    "rows the mean of the old): fine-tuning");
  train->add_option("--seed", ta.seed, "Seed of the weights, the data and the halting exploration")->capture_default_str();
  train->add_option("--ema", ta.ema, "EMA rate of the weights (0: off); evaluation and model.safetensors use the EMA")
      ->capture_default_str();
  train->add_option("--halt-explore", ta.halt_explore, "Halting exploration probability")->capture_default_str();
  train->add_option("--eval-every", ta.eval_every, "Evaluate and checkpoint every this many steps (0: only at the end)")
      ->capture_default_str();
  train->add_option("--eval-size", ta.eval_size, "Held-out " + noun + " of the periodic evaluation")->capture_default_str();
  train->add_option("--log-every", ta.log_every, "Metrics CSV: one train row per this many steps")->capture_default_str();
  train->add_option("--out", ta.out, "Output directory: model.safetensors, train_state.safetensors, metrics.csv, curve.png")
      ->capture_default_str();
  train->add_flag("--resume", ta.resume, "Continue the run saved in --out (its configuration and flags)");
  train->add_option("--holdout", ta.holdout, "File(s) of " + noun + " never to train on (e.g. the test set)");
  train->add_flag("!--no-plot", ta.plot, "Do not draw curve.png with gnuplot");
  train->add_option("--threads", ta.threads, "CPU threads (0: all cores, at most 2)")->capture_default_str();
  train->add_option("--device", ta.device, kDeviceHelp)->capture_default_str();
  train->add_flag("--quiet", ta.quiet, "No progress bar");
  return train;
}

static void add_task_commands(CLI::App& app, TaskCommands& t) {
  const bool maze = t.maze();
  const char* size_flag = maze ? "--size" : "--box";
  const std::string sizes = maze ? join_values(kSupportedMazeSizes) : join_values(kSupportedBoxes);
  const std::string noun = maze ? "mazes" : "puzzles";
  t.self = app.add_subcommand(t.task, maze ? "Mazes: generate, build the reference dataset, train a TRM, solve and evaluate"
                                           : "Sudoku: generate puzzles, train a TRM, solve and evaluate");
  t.self->require_subcommand(1);
  t.ta.model.task = t.task;
  t.ta.model.size = maze ? "9x9" : "2x3";
  if (maze) {
    t.ta.model.nsup = 8;
    t.ta.eval_size = 1000;
  }

  // -- generate
  if (maze) {
    t.gen = t.self->add_subcommand("generate", "Generate distinct mazes with a unique shortest path as a Maze-Hard CSV");
    t.gen_size = "30x30";
    t.gen->add_option("--size", t.gen_size, "ROWSxCOLS, any sides 5..30")->capture_default_str();
    t.gen->add_option("--loops", t.gen_loops, "Fraction of inner walls opened as loops")->capture_default_str();
    t.gen->add_option("--min-dist", t.gen_min_dist, "Minimum BFS distance S..G (0: the size's default)")->capture_default_str();
    t.gen->add_flag("--hard", t.gen_hard,
                    "Maze-Hard's procedure (random walls, shortest path >= 111 moves at 30x30, scaled at other sizes; "
                    "--loops does not apply)");
  } else {
    t.gen = t.self->add_subcommand("generate", "Generate unique-solution puzzles as PUZZLE,SOLUTION lines ('.' = blank)");
    t.gen_size = "2x3";
    t.gen->add_option("--box", t.gen_size, "Box shape: 2x2 (4x4 grid), 2x3 (6x6), 3x3 (9x9)")->capture_default_str();
    t.gen->add_option("--blanks", t.gen_blanks, "Blank cells per puzzle")->capture_default_str();
  }
  t.gen->add_option("--count", t.gen_count, "Number of distinct " + noun)->capture_default_str();
  t.gen->add_option("--seed", t.gen_seed, "Random seed")->capture_default_str();
  t.gen->add_option("--out", t.gen_out, "Output file, written atomically (default: stdout)");

  // -- build (maze): the official builder's dataset from a Maze-Hard CSV directory
  if (maze) {
    t.build = t.self->add_subcommand(
        "build", "Build the reference dataset (train/, test/, identifiers.json) from DIR/train.csv and DIR/test.csv");
    t.build->add_option("--input", t.build_in, "Directory with train.csv and test.csv (Maze-Hard layout)")->required();
    t.build->add_option("--out", t.build_out, "Output dataset directory")->required();
    t.build->add_flag("--aug", t.build_aug, "8 dihedral transforms per training maze (the builder's --aug)");
    t.gen_size = "30x30";
    t.build->add_option("--size", t.gen_size, "ROWSxCOLS of the mazes in the CSV")->capture_default_str();
  }

  // -- train
  t.train = add_train_command(t.self, t.ta, t.task);

  // -- solve / eval: the model flags are optional, each checked against the checkpoint when given.
  auto expect_flags = [size_flag](CLI::App* sub, ExpectFlags& raw, ExpectedSpec& e) {
    auto* size = sub->add_option(size_flag, raw.size, "Expected size (checked against the checkpoint)");
    auto* mixer = sub->add_option("--mixer", raw.mixer, "Expected mixer (checked)");
    auto* hidden = sub->add_option("--hidden", raw.hidden, "Expected hidden size (checked)");
    auto* layers = sub->add_option("--layers", raw.layers, "Expected layers (checked)");
    auto* prefix = sub->add_option("--prefix", raw.prefix, "Expected prefix (checked)");
    auto* n = sub->add_option("--n", raw.n, "Expected n (checked)");
    auto* T = sub->add_option("--T", raw.T, "Expected T (checked)");
    auto* nsup = sub->add_option("--nsup", raw.nsup, "Expected N_sup (checked; --steps changes the steps run)");
    return std::function<void()>([=, &raw, &e] {
      if (size->count()) e.size = raw.size;
      if (mixer->count()) e.mixer = raw.mixer;
      if (hidden->count()) e.hidden = raw.hidden;
      if (layers->count()) e.layers = raw.layers;
      if (prefix->count()) e.prefix = raw.prefix;
      if (n->count()) e.n = raw.n;
      if (T->count()) e.T = raw.T;
      if (nsup->count()) e.nsup = raw.nsup;
    });
  };
  const std::string input_help = maze ? "Mazes: Maze-Hard CSV (source,question,answer,rating) or plain-text mazes; - = stdin"
                                      : "Puzzles: CSV (PUZZLE[,SOLUTION]) or one puzzle per line; - = stdin";
  t.solve = t.self->add_subcommand("solve", maze ? "Solve mazes with a trained model: the path drawn, valid and shortest or not"
                                                 : "Solve puzzles with a trained model");
  t.solve->add_option("--checkpoint", t.sa.checkpoint, "model.safetensors written by `trm " + t.task + " train`")->required();
  t.solve->add_option("--input", t.sa.input, input_help)->capture_default_str();
  t.solve->add_flag("--early-exit", t.sa.early_exit, "Stop each " + std::string(maze ? "maze" : "puzzle") +
                                                         " at the first step whose q_halt logit is > 0");
  if (!maze) t.solve->add_flag("--trace", t.sa.trace, "Show how the answer changes step by step");
  t.solve->add_option("--steps", t.sa.steps, "Supervision steps (default: the checkpoint's N_sup)");
  t.solve->add_option("--batch", t.sa.batch, "Examples per batch")->capture_default_str();
  t.solve->add_option("--threads", t.sa.threads, "CPU threads (0: all cores, at most 2)")->capture_default_str();
  t.solve->add_option("--device", t.sa.device, kDeviceHelp)->capture_default_str();
  t.solve_expect = expect_flags(t.solve, t.solve_flags, t.sa.expect);

  t.eval = t.self->add_subcommand("eval", maze ? "Exact and valid-and-shortest accuracy of a trained model on mazes"
                                               : "Exact and per-cell accuracy of a trained model on a puzzle file");
  t.eval->add_option("--checkpoint", t.ea.checkpoint, "model.safetensors written by `trm " + t.task + " train`")->required();
  auto* in = t.eval->add_option("--input", t.ea.input, input_help);
  auto* data = t.eval->add_option("--data", t.ea.data, "Evaluate on DIR/test, a reference-format dataset");
  in->excludes(data);
  t.eval->add_option("--sample", t.ea.sample, "Evaluate a seeded random sample of this many " + noun + " (0: all)")
      ->capture_default_str();
  t.eval->add_option("--seed", t.ea.seed, "Seed of --sample")->capture_default_str();
  t.eval->add_option("--steps", t.ea.steps, "Supervision steps (default: the checkpoint's N_sup)");
  t.eval->add_option("--batch", t.ea.batch, "Examples per batch")->capture_default_str();
  t.eval->add_option("--threads", t.ea.threads, "CPU threads (0: all cores, at most 2)")->capture_default_str();
  t.eval->add_option("--device", t.ea.device, kDeviceHelp)->capture_default_str();
  t.eval->add_flag("--early-exit", t.ea.early_exit_headline, "Report early exit in the final 'exact accuracy' line");
  t.eval_expect = expect_flags(t.eval, t.eval_flags, t.ea.expect);

  t.plot = t.self->add_subcommand("plot", "Draw the training curve (PNG, gnuplot) of a run from its metrics.csv");
  t.plot->add_option("--run", t.plot_run, "Output directory of `trm " + t.task + " train`")->required();
  t.plot->add_option("--out", t.plot_out, "PNG file (default: <run>/curve.png)");
}

// Runs the subcommand of `t` that was given.
// --steps of solve/eval/submit: 0 is the "not given" default; an explicit --steps 0 is refused
// like any other value < 1.
static void check_steps_flag(CLI::App* sub, int steps) {
  if (steps < 0 || (steps == 0 && sub->get_option("--steps")->count() > 0))
    throw CliError("--steps: expected an integer >= 1, found " + std::to_string(steps));
}

// A checkpoint of another task is refused before any model is built.
static CheckpointInfo read_task_checkpoint(const std::string& path, const std::string& task) {
  auto info = read_checkpoint_info(path);
  if (info.spec.task != task)
    throw CliError(path + ": a checkpoint of a " + info.spec.task + " model (" + info.spec.describe() + "), expected a " + task +
                   " model; use `trm " + info.spec.task + " ...`");
  return info;
}

// `trm <task> train` after parsing: the budget, --resume (the saved configuration and flags, any
// model flag given checked against it) or a fresh --out, the flags' ranges, then `dispatch`.
template <class Dispatch>
static int run_train(CLI::App* train, TrainArgs& ta, const std::string& task, Dispatch&& dispatch_train) {
  const bool maze = task == "maze", sudoku = task == "sudoku";
  std::set<std::string> given;
  for (const auto* o : train->get_options())
    if (o->count() > 0) {
      std::string name = o->get_single_name();
      while (!name.empty() && name[0] == '-') name.erase(0, 1);
      for (auto& c : name) c = c == '-' ? '_' : c;
      given.insert(name);
    }
  const char* size_key = sudoku ? "box" : "size";
  for (const char* m : {size_key, "mixer", "hidden", "layers", "prefix", "n", "T", "nsup"})
    if (given.count(m)) ta.model_flags_given = true;
  if (ta.steps <= 0 && ta.minutes <= 0) throw CliError("give a training budget: --steps N and/or --minutes M");
  std::optional<CheckpointInfo> resume;
  const fs::path state = fs::path(ta.out) / "train_state.safetensors";
  if (ta.resume) {
    if (!fs::exists(state))
      throw CliError("--resume: " + state.string() + " does not exist (train once with --out " + ta.out + " first)");
    resume = read_task_checkpoint(state.string(), task);
    if (ta.model_flags_given) {
      ExpectedSpec e;
      if (given.count(size_key)) e.size = ta.model.size;
      if (given.count("mixer")) e.mixer = ta.model.mixer;
      if (given.count("hidden")) e.hidden = ta.model.hidden;
      if (given.count("layers")) e.layers = ta.model.layers;
      if (given.count("prefix")) e.prefix = ta.model.prefix;
      if (given.count("n")) e.n = ta.model.n;
      if (given.count("T")) e.T = ta.model.T;
      if (given.count("nsup")) e.nsup = ta.model.nsup;
      e.check(resume->spec, state.string());
    }
    ta.model = resume->spec;
    apply_saved_flags(ta, resume->train, given, state.string());
  } else {
    ta.model.validate();
    if (fs::exists(state))
      throw CliError(ta.out + " already holds a run (" + state.string() +
                     "): pass --resume to continue it, or choose another --out");
  }
  check_train_flags(ta);
  if (sudoku && (ta.blanks < 1 || ta.blanks > ta.model.side() * ta.model.side()))
    throw CliError("--blanks must be in [1, " + std::to_string(ta.model.side() * ta.model.side()) + "] for --box " +
                   ta.model.size + ", found " + std::to_string(ta.blanks));
  if (maze && (ta.min_dist < 0 || ta.min_dist > ta.model.side() * ta.model.side()))
    throw CliError("--min-dist must be in [0, " + std::to_string(ta.model.side() * ta.model.side()) + "]");
  return dispatch_train(ta, resume);
}

static int run_task(TaskCommands& t) {
  const bool maze = t.maze();
  // The GPU's entry points: Sudoku 3x3 boxes and 30x30 mazes (entry.hpp).
  auto gpu_size = [&](const std::string& size) { return maze ? size == "30x30" : size == "3x3"; };
  auto what = [&](const std::string& size) { return std::string(maze ? "--size " : "--box ") + size; };
  auto dispatch_train = [&](const TrainArgs& a, const std::optional<CheckpointInfo>& resume) {
    return on_device(a.device, gpu_size(a.model.size), what(a.model.size), [&]<class B>() {
      if constexpr (std::is_same_v<B, trm::cpu>) {
        if (maze) return by_maze_size(a.model.size, [&]<int S>() { return maze_train<S, B>(a, resume); });
        return by_box(a.model.size, [&]<int R, int C>() { return sudoku_train<R, C, B>(a, resume); });
      } else {
        return maze ? maze_train<30, B>(a, resume) : sudoku_train<3, 3, B>(a, resume);
      }
    });
  };
  auto read_info = [&](const std::string& path) { return read_task_checkpoint(path, t.task); };
  if (*t.plot) {
    const fs::path dir = t.plot_run, csv = dir / "metrics.csv";
    if (!fs::exists(csv)) throw CliError(csv.string() + ": no such file (not the output directory of a training run?)");
    std::string title = dir.string();
    if (fs::exists(dir / "model.safetensors")) title = read_checkpoint_info(dir / "model.safetensors").spec.describe();
    const fs::path png = t.plot_out.empty() ? dir / "curve.png" : fs::path(t.plot_out);
    if (!trm::plot_training_curve(csv, png, title)) return 1;
    std::printf("curve: %s\n", png.string().c_str());
    return 0;
  }
  if (*t.gen) {
    if (maze) return generate_mazes(t.gen_size, t.gen_count, t.gen_loops, t.gen_min_dist, t.gen_hard, t.gen_seed, t.gen_out);
    return by_box(t.gen_size,
                  [&]<int R, int C>() { return generate<sd::SudokuShape<R, C>>(t.gen_count, t.gen_blanks, t.gen_seed, t.gen_out); });
  }
  if (t.build && *t.build) {
    const auto [rows, cols] = parse_maze_size(t.gen_size);
    try {
      trm::data::maze::build_dataset(t.build_in, t.build_out, {.aug = t.build_aug}, {.rows = rows, .cols = cols});
    } catch (const std::exception& e) {
      throw CliError(e.what());
    }
    for (const char* split : {"train", "test"}) {
      const auto d = trm::data::PuzzleDataset::read(t.build_out, split);
      std::printf("%s/%s: %lld examples, %lld groups, seq_len %lld, vocab %lld\n", t.build_out.c_str(), split,
                  static_cast<long long>(d.total_examples()), static_cast<long long>(d.metadata.total_groups),
                  static_cast<long long>(d.metadata.seq_len), static_cast<long long>(d.metadata.vocab_size));
    }
    return 0;
  }
  if (*t.train) return run_train(t.train, t.ta, t.task, dispatch_train);
  if (*t.solve) {
    t.solve_expect();
    const auto info = read_info(t.sa.checkpoint);
    t.sa.expect.check(info.spec, t.sa.checkpoint);
    if (t.sa.batch < 1) throw CliError("--batch must be >= 1");
    check_steps_flag(t.solve, t.sa.steps);
    return on_device(t.sa.device, gpu_size(info.spec.size), what(info.spec.size), [&]<class B>() {
      if constexpr (std::is_same_v<B, trm::cpu>) {
        if (maze) return by_maze_size(info.spec.size, [&]<int S>() { return maze_solve<S, B>(t.sa, info); });
        return by_box(info.spec.size, [&]<int R, int C>() { return sudoku_solve<R, C, B>(t.sa, info); });
      } else {
        return maze ? maze_solve<30, B>(t.sa, info) : sudoku_solve<3, 3, B>(t.sa, info);
      }
    });
  }
  if (*t.eval) {
    t.eval_expect();
    if (t.ea.input.empty() && t.ea.data.empty()) throw CliError("eval: give --input FILE or --data DIR");
    const auto info = read_info(t.ea.checkpoint);
    t.ea.expect.check(info.spec, t.ea.checkpoint);
    if (t.ea.batch < 1) throw CliError("--batch must be >= 1");
    check_steps_flag(t.eval, t.ea.steps);
    if (t.ea.sample < 0) throw CliError("--sample must be >= 0");
    return on_device(t.ea.device, gpu_size(info.spec.size), what(info.spec.size), [&]<class B>() {
      if constexpr (std::is_same_v<B, trm::cpu>) {
        if (maze) return by_maze_size(info.spec.size, [&]<int S>() { return maze_eval<S, B>(t.ea, info); });
        return by_box(info.spec.size, [&]<int R, int C>() { return sudoku_eval<R, C, B>(t.ea, info); });
      } else {
        return maze ? maze_eval<30, B>(t.ea, info) : sudoku_eval<3, 3, B>(t.ea, info);
      }
    });
  }
  return kExitUsage;
}

// ---- trm arc build|train|eval|submit ----------------------------------------------------------------------
struct ArcCommands {
  CLI::App *self = nullptr, *build = nullptr, *train = nullptr, *eval = nullptr, *submit = nullptr;
  std::string input_prefix, out, size = "30x30";
  std::vector<std::string> subsets, subset_paths, test_sets{"evaluation"};
  int num_aug = 1000, ids_start = 1;
  std::uint32_t seed = 42;
  bool skip_oversized = false;
  TrainArgs ta;
  ArcEvalArgs ea;
  ExpectFlags eval_flags;
  ArcSubmitArgs sa;
};

static void add_arc_commands(CLI::App& app, ArcCommands& c) {
  c.self = app.add_subcommand("arc", "ARC-AGI: build the reference dataset, train a TRM-Att, evaluate by votes (pass@K), "
                                     "write a Kaggle submission");
  c.self->require_subcommand(1);
  c.build = c.self->add_subcommand("build", "Build the official ARC dataset (build_arc_dataset.py, id for id): train/, test/, "
                                            "identifiers.json, test_puzzles.json");
  c.build->add_option("--input-prefix", c.input_prefix,
                      "Kaggle files PREFIX_<subset>_challenges.json (+ _solutions.json when present), as the official builder");
  c.build->add_option("--subsets", c.subsets, "Subsets read with --input-prefix, in order (e.g. training evaluation concept)");
  c.build->add_option("--subset", c.subset_paths,
                      "NAME=PATH, in order after --subsets: PATH a challenges file or a directory of per-task JSON files "
                      "(ARC-AGI data/<split>, ConceptARC corpus)");
  c.build->add_option("--test-set", c.test_sets, "Subsets whose test pairs form the test split")->capture_default_str();
  c.build->add_option("--num-aug", c.num_aug, "Augmented variants per task")->capture_default_str();
  c.build->add_option("--seed", c.seed, "numpy seed of the builder")->capture_default_str();
  c.build->add_option("--ids-start", c.ids_start, "First puzzle id (> 1 continues another table)")->capture_default_str();
  c.build->add_option("--size", c.size, "Canvas: " + join_values(kSupportedArcSizes))->capture_default_str();
  c.build->add_flag("--skip-oversized", c.skip_oversized, "Leave out tasks with a grid larger than the canvas (else an error)");
  c.build->add_option("--out", c.out, "Output dataset directory")->required();

  c.ta.model.task = "arc";
  c.ta.model.size = "10x10";
  c.ta.model.mixer = "att";
  c.ta.model.nsup = 8;
  c.ta.eval_size = 256;
  c.ta.puzzle_emb_lr = 1e-2;  // the reference's ARC configuration
  c.train = add_train_command(c.self, c.ta, "arc");

  ArcEvalArgs& ea = c.ea;
  c.eval = c.self->add_subcommand("eval", "The official evaluator on DIR/test: votes over augmentations, pass@K, submission.json");
  c.eval->add_option("--checkpoint", ea.checkpoints,
                     "model.safetensors of `trm arc train`; several: their votes are pooled (the reference's default)")
      ->required();
  c.eval->add_flag("--separate", ea.separate, "Score each checkpoint alone instead of pooling");
  c.eval->add_option("--data", ea.data, "An ARC build (`trm arc build` or the official builder's)")->required();
  c.eval->add_option("--variants", ea.variants, "Per test input, the first this many augmented variants (0: all)")->capture_default_str();
  c.eval->add_option("--steps", ea.steps, "Supervision steps (default: the checkpoint's N_sup)");
  c.eval->add_option("--batch", ea.batch, "Rows per batch")->capture_default_str();
  c.eval->add_option("--threads", ea.threads, "CPU threads (0: all cores, at most 2)")->capture_default_str();
  c.eval->add_option("--device", ea.device, kDeviceHelp)->capture_default_str();
  c.eval->add_option("--submission", ea.submission, "Write the Kaggle submission.json here");

  ArcSubmitArgs& sa = c.sa;
  c.submit = c.self->add_subcommand("submit", "A challenges file + a checkpoint -> submission.json: build the new tasks with ids "
                                              "continuing the checkpoint's, fine-tune on their demonstrations, vote");
  c.submit->add_option("--checkpoint", sa.checkpoint, "model.safetensors of `trm arc train`")->required();
  c.submit->add_option("--challenges", sa.challenges, "arc-agi_<subset>_challenges.json (Kaggle format)")->required();
  c.submit->add_option("--solutions", sa.solutions, "Its solutions, to score the submission (default: the _solutions.json beside it, if any)");
  c.submit->add_option("--out", sa.out, "Output directory: data/, finetune/, submission.json")->required();
  c.submit->add_option("--num-aug", sa.num_aug, "Augmented variants per task")->capture_default_str();
  c.submit->add_option("--seed", sa.seed, "numpy seed of the build")->capture_default_str();
  c.submit->add_option("--variants", sa.variants, "Per test input, the first this many variants voted (0: all)")->capture_default_str();
  c.submit->add_option("--steps", sa.steps, "Supervision steps (default: the checkpoint's N_sup)");
  c.submit->add_option("--batch", sa.batch, "Rows per batch")->capture_default_str();
  c.submit->add_option("--threads", sa.threads, "CPU threads (0: all cores, at most 2)")->capture_default_str();
  c.submit->add_option("--device", sa.device, kDeviceHelp)->capture_default_str();
  c.submit->add_option("--finetune-steps", sa.finetune_steps, "Fine-tuning steps on the tasks' demonstrations (0: none)")
      ->capture_default_str();
  c.submit->add_option("--finetune-minutes", sa.finetune_minutes, "Fine-tuning wall-clock budget (0: none)")->capture_default_str();
  c.submit->add_option("--finetune-batch", sa.finetune_batch, "Fine-tuning batch")->capture_default_str();
  c.submit->add_option("--finetune-lr", sa.finetune_lr, "Fine-tuning learning rate")->capture_default_str();
  c.submit->add_option("--finetune-warmup", sa.finetune_warmup, "Fine-tuning warmup steps")->capture_default_str();
  c.submit->add_flag("--quiet", sa.quiet, "No progress output");
}

template <class F>
int by_arc_size(const std::string& size, F&& f) {
  if (size == "10x10") return f.template operator()<10>();
  if (size == "30x30") return f.template operator()<30>();
  throw CliError("--size " + size + " is not supported for ARC (supported: " + join_values(kSupportedArcSizes) +
                 "; canvases are compile-time constants)");
}


static int arc_build(const ArcCommands& c) {
  namespace arc = trm::data::arc;
  if (c.subsets.empty() && c.subset_paths.empty()) throw CliError("arc build: give --input-prefix P --subsets A B ... and/or --subset NAME=PATH");
  if (!c.subsets.empty() && c.input_prefix.empty()) throw CliError("arc build: --subsets needs --input-prefix");
  if (c.num_aug < 0 || c.num_aug > 100000) throw CliError("--num-aug: expected 0..100000, found " + std::to_string(c.num_aug));
  if (c.ids_start < 1) throw CliError("--ids-start: expected >= 1 (0 is <blank>), found " + std::to_string(c.ids_start));
  const auto start = std::chrono::steady_clock::now();
  std::vector<arc::Subset> subsets;
  try {
    for (const auto& name : c.subsets) {
      const fs::path ch = c.input_prefix + "_" + name + "_challenges.json";
      const fs::path so = arc::solutions_beside(ch);
      const bool has = fs::exists(so);
      subsets.push_back({name, arc::read_kaggle(ch, has ? std::optional<fs::path>(so) : std::nullopt)});
      std::printf("%s: %zu tasks from %s%s\n", name.c_str(), subsets.back().tasks.size(), ch.string().c_str(),
                  has ? " with solutions" : " (no solutions file: test outputs are placeholders)");
    }
    for (const auto& spec : c.subset_paths) {
      const auto eq = spec.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) throw CliError("--subset " + spec + ": expected NAME=PATH");
      const std::string name = spec.substr(0, eq);
      const fs::path path = spec.substr(eq + 1);
      if (fs::is_directory(path)) {
        subsets.push_back({name, arc::read_task_directory(path)});
      } else {
        const fs::path so = arc::solutions_beside(path);
        subsets.push_back({name, arc::read_kaggle(path, fs::exists(so) ? std::optional<fs::path>(so) : std::nullopt)});
      }
      std::printf("%s: %zu tasks from %s\n", name.c_str(), subsets.back().tasks.size(), path.string().c_str());
    }
  } catch (const CliError&) {
    throw;
  } catch (const std::exception& e) {
    throw CliError(e.what());
  }
  std::fflush(stdout);
  const arc::BuildOptions opt{.num_aug = c.num_aug, .seed = c.seed, .puzzle_identifiers_start = c.ids_start,
                              .test_set_names = c.test_sets, .skip_oversized = c.skip_oversized};
  arc::BuildReport report;
  std::vector<std::pair<std::string, std::array<long long, 3>>> counts;
  try {
    by_arc_size(c.size, [&]<int S>() {
      const arc::Build b = arc::build_dataset<S>(subsets, opt);
      b.write(c.out);
      report = b.report;
      for (const auto& [name, d] : b.splits)
        counts.push_back({name, {static_cast<long long>(d.total_examples()), static_cast<long long>(d.sets[0].num_puzzles()),
                                 static_cast<long long>(d.sets[0].num_groups())}});
      return 0;
    });
  } catch (const CliError&) {
    throw;
  } catch (const std::exception& e) {
    throw CliError(e.what());
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("built %lld tasks on a %s canvas, %d augmentations each (seed %u), in %.1f s: %lld puzzle ids (with <blank>)\n",
              static_cast<long long>(report.tasks), c.size.c_str(), c.num_aug, c.seed, sec, static_cast<long long>(report.num_identifiers));
  for (const auto& [name, n] : counts)
    std::printf("  %s/%s: %lld examples, %lld puzzles, %lld groups\n", c.out.c_str(), name.c_str(), n[0], n[1], n[2]);
  if (!report.skipped.empty()) std::printf("  left out (larger than the canvas): %zu tasks\n", report.skipped.size());
  if (!report.not_full.empty())
    std::printf("  %zu tasks have fewer distinct variants than asked (symmetric grids), e.g. %s: %d\n", report.not_full.size(),
                report.not_full[0].first.c_str(), report.not_full[0].second);
  return kExitOk;
}


static int run_arc(ArcCommands& c) {
  if (*c.build) return arc_build(c);
  if (*c.train)
    return run_train(c.train, c.ta, "arc", [](const TrainArgs& a, const std::optional<CheckpointInfo>& resume) {
                       return on_device(a.device, a.model.size == "30x30", "--size " + a.model.size, [&]<class B>() {
                         if constexpr (std::is_same_v<B, trm::cpu>)
                           return by_arc_size(a.model.size, [&]<int S>() { return arc_train<S, B>(a, resume); });
                         else
                           return arc_train<30, B>(a, resume);
                       });
                     });
  if (*c.eval) {
    auto& a = c.ea;
    const auto info = read_task_checkpoint(a.checkpoints.at(0), "arc");
    if (a.batch < 1) throw CliError("--batch must be >= 1");
    if (a.variants < 0) throw CliError("--variants must be >= 0");
    if (a.threads < 0 || a.threads > 1024) throw CliError("--threads: expected 0..1024 (0: all cores, at most 2), found " + std::to_string(a.threads));
    check_steps_flag(c.eval, a.steps);
    return on_device(a.device, info.spec.size == "30x30", "--size " + info.spec.size, [&]<class B>() {
      if constexpr (std::is_same_v<B, trm::cpu>)
        return by_arc_size(info.spec.size, [&]<int S>() { return arc_eval<S, B>(a, info); });
      else
        return arc_eval<30, B>(a, info);
    });
  }
  if (*c.submit) {
    auto& a = c.sa;
    const auto info = read_task_checkpoint(a.checkpoint, "arc");
    if (a.batch < 1 || a.finetune_batch < 1) throw CliError("--batch and --finetune-batch must be >= 1");
    if (a.variants < 0 || a.num_aug < 0 || a.finetune_steps < 0) throw CliError("--variants, --num-aug and --finetune-steps must be >= 0");
    if (!(a.finetune_lr > 0 && a.finetune_lr <= 1)) throw CliError("--finetune-lr: expected a value in (0, 1]");
    if (a.num_aug > 100000) throw CliError("--num-aug: expected 0..100000, found " + std::to_string(a.num_aug));
    if (a.finetune_warmup < 0) throw CliError("--finetune-warmup: expected >= 0, found " + std::to_string(a.finetune_warmup));
    if (!(a.finetune_minutes >= 0 && a.finetune_minutes <= 1e7))
      throw CliError("--finetune-minutes: expected 0..1e7, found " + std::to_string(a.finetune_minutes));
    if (a.threads < 0 || a.threads > 1024) throw CliError("--threads: expected 0..1024 (0: all cores, at most 2), found " + std::to_string(a.threads));
    check_steps_flag(c.submit, a.steps);
    return on_device(a.device, info.spec.size == "30x30", "--size " + info.spec.size, [&]<class B>() {
      if constexpr (std::is_same_v<B, trm::cpu>)
        return by_arc_size(info.spec.size, [&]<int S>() { return arc_submit<S, B>(a, info); });
      else
        return arc_submit<30, B>(a, info);
    });
  }
  return kExitUsage;
}

// CLI11 reports a mistyped task or subcommand as "A subcommand is required" or as an unexpected
// argument; name the word and list the known ones instead. Walks the leading words of argv down the
// command tree and stops at the first option (the rest is CLI11's to check).
static void check_command_words(const CLI::App& app, int argc, char** argv) {
  const auto all = [](const CLI::App* a) { return !a->get_name().empty(); };
  const CLI::App* level = &app;
  std::string path = "trm";
  int i = 1;
  for (; i < argc; ++i) {
    const std::string word = argv[i];
    const auto subs = level->get_subcommands(all);
    if (subs.empty() || word.empty() || word[0] == '-') break;
    const CLI::App* next = nullptr;
    std::string known;
    for (const auto* s : subs) {
      known += (known.empty() ? "" : ", ") + s->get_name();
      if (s->check_name(word)) next = s;
    }
    if (!next)
      throw UsageError(path + ": unknown " + (level == &app ? "task" : "subcommand") + " '" + word + "' (known: " +
                       known + "; " + path + " --help lists them)");
    level = next;
    path += " " + word;
  }
  if (i == argc && level->get_subcommands(all).size() > 0) {
    std::string known;
    for (const auto* s : level->get_subcommands(all)) known += (known.empty() ? "" : ", ") + s->get_name();
    throw UsageError(path + ": missing " + (level == &app ? "task" : "subcommand") + " (one of: " + known + "; " +
                     path + " --help lists them)");
  }
}

static int run(int argc, char** argv) {
  CLI::App app{"trm: Tiny Recursive Models from the command line (C++20, trm library)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print the help of every subcommand");
  app.set_version_flag("--version", std::string("trm ") + trm::version_string);
  app.footer(kExitStatusHelp);
  std::vector<std::unique_ptr<TaskCommands>> tasks;
  for (const char* name : {"sudoku", "maze"}) {
    tasks.push_back(std::make_unique<TaskCommands>());
    tasks.back()->task = name;
    add_task_commands(app, *tasks.back());
  }
  ArcCommands arc_commands;
  add_arc_commands(app, arc_commands);
  check_command_words(app, argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints the help or the usage error
    return rc == 0 ? kExitOk : kExitUsage;
  }
  for (auto& t : tasks)
    if (*t->self) return run_task(*t);
  if (*arc_commands.self) return run_arc(arc_commands);
  return kExitUsage;
}

}  // namespace trmcli

int main(int argc, char** argv) {
  trm::cpu::use_fast_blas_kernels(argv);  // generic OpenBLAS kernels on new Xeons: re-exec
  try {
    return trmcli::run(argc, argv);
  } catch (const trmcli::UsageError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "trm: error: %s\n", e.what());
    return trmcli::kExitUsage;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "trm: error: %s\n", e.what());
    return trmcli::kExitError;
  }
}
