// trm: the command line of the trm library.
//
//   trm sudoku generate --box 2x3 --count 1000 --blanks 20 --seed 1 --out test.csv
//   trm sudoku train    --box 2x3 --minutes 7 --out run6      (see --help for every flag)
//   trm sudoku solve    --checkpoint run6/model.safetensors --input puzzles.csv [--early-exit] [--trace]
//   trm sudoku eval     --checkpoint run6/model.safetensors --input test.csv
//
// Exit status: 0 success, 1 error (bad input, checkpoint of another configuration, ...),
// 2 command-line usage error, 130 training interrupted (Ctrl-C; the run is saved and can be resumed).
#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <set>
#include <trm/backend/cpu.hpp>
#include <trm/core/error.hpp>
#include <trm/core/rng.hpp>
#include <trm/data/sudoku.hpp>
#include <trm/io/atomic_file.hpp>
#include <unordered_set>

#include "cli_common.hpp"
#include "sudoku_entry.hpp"

#include <unistd.h>

#if defined(TRM_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace trmcli {

namespace sd = trm::data::sudoku;

static std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool plot_training_curve(const fs::path& metrics_csv, const fs::path& png, const std::string& title) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr,
                 "trm: gnuplot not found, skipping the training-curve PNG (Debian: apt-get install gnuplot-nox; the "
                 "metrics are in %s)\n",
                 metrics_csv.string().c_str());
    return false;
  }
  const fs::path script = png.parent_path() / "curve.gp";
  const fs::path tmp = png.parent_path() / ("." + png.filename().string() + ".tmp-" + std::to_string(::getpid()));
  auto gp_string = [](const std::string& s) {  // a gnuplot single-quoted string
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
    return q + "'";
  };
  std::string gp;
  gp += "# Training curve of `trm sudoku train` (generated; run: gnuplot curve.gp)\n";
  gp += "set terminal pngcairo size 900,640 font 'sans,10'\n";
  gp += "set output " + gp_string(tmp.string()) + "\n";
  gp += "set datafile separator ','\n";
  gp += "set datafile missing ''\n";
  // Train and eval rows come from the same CSV; grep splits them so that each line is continuous.
  const std::string csv = metrics_csv.string();
  auto gp_dq_string = [](const std::string& s) {  // a gnuplot double-quoted string (backslash escapes)
    std::string q = "\"";
    for (char c : s) {
      if (c == '\\' || c == '"') q += '\\';
      q += c;
    }
    return q + "\"";
  };
  gp += "tr = " + gp_dq_string("< grep ^train, " + quote(csv)) + "\n";
  gp += "ev = " + gp_dq_string("< grep ^eval, " + quote(csv)) + "\n";
  std::string t = title;
  for (std::size_t p = t.find("N_sup"); p != std::string::npos; p = t.find("N_sup", p + 1)) t.replace(p, 5, "N_{sup}");
  gp += "set multiplot layout 2,1 title " + gp_string(t) + "\n";
  gp += "set key bottom right\nset grid\nset ylabel 'accuracy (%)'\nset yrange [0:100]\n";
  gp += "set xlabel 'training time (minutes)'\n";
  gp += "plot ev using ($3/60):(100*$13) with linespoints lw 2 pt 7 title 'held-out exact (all N_{sup} steps)', \\\n";
  gp += "     ev using ($3/60):(100*$15) with linespoints lw 2 pt 5 title 'held-out exact (early exit)', \\\n";
  gp += "     tr using ($3/60):(100*$9) with lines lc rgb '#999999' title 'train exact (finished rows)', \\\n";
  gp += "     tr using ($3/60):(100*$8) with lines lc rgb '#cccccc' title 'train cell accuracy'\n";
  gp += "set yrange [*:*]\nset logscale y\nset format y '%g'\nset ylabel 'train loss'\nset key top right\n";
  gp += "set xlabel 'step'\n";
  gp += "plot tr using 2:5 with lines lw 1.5 title 'total loss', \\\n";
  gp += "     tr using 2:7 with lines lw 1 title 'q-halt loss'\n";
  gp += "unset multiplot\nset output\n";
  try {
    trm::io::write_file_atomically(script, [&](trm::io::AtomicFileWriter& w) { w.write(gp); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trm: cannot write %s: %s; skipping the plot\n", script.string().c_str(), e.what());
    return false;
  }
  const std::string cmd = "gnuplot " + quote(script.string()) + " 2>&1";
  if (std::system(cmd.c_str()) != 0 || !fs::exists(tmp)) {
    std::fprintf(stderr, "trm: gnuplot failed on %s; skipping the plot\n", script.string().c_str());
    std::error_code ec;
    fs::remove(tmp, ec);
    return false;
  }
  std::error_code ec;
  fs::rename(tmp, png, ec);
  if (ec) {
    std::fprintf(stderr, "trm: cannot rename the plot to %s: %s\n", png.string().c_str(), ec.message().c_str());
    fs::remove(tmp, ec);
    return false;
  }
  return true;
}

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

// Training flags saved in a run, applied on --resume unless given again on the command line.
static void apply_saved_flags(TrainArgs& a, const json& j, const std::set<std::string>& given, const std::string& src) {
  auto take = [&](const char* key, auto& field) {
    if (given.count(key) || !j.contains(key)) return;
    try {
      field = j.at(key).get<std::remove_reference_t<decltype(field)>>();
    } catch (const std::exception& e) {
      throw CliError(src + ": malformed saved flag '" + key + "' (" + e.what() + ")");
    }
  };
  take("batch", a.batch);
  take("lr", a.lr);
  take("lr_min_ratio", a.lr_min_ratio);
  take("warmup", a.warmup);
  take("weight_decay", a.weight_decay);
  take("beta1", a.beta1);
  take("beta2", a.beta2);
  take("optimizer", a.optimizer);
  take("loss", a.loss);
  take("blanks", a.blanks);
  take("seed", a.seed);
  take("ema", a.ema);
  take("halt_explore", a.halt_explore);
  take("eval_every", a.eval_every);
  take("eval_size", a.eval_size);
  take("log_every", a.log_every);
  take("holdout", a.holdout);
  // What the saved state depends on cannot change.
  auto fixed = [&](const char* key, const auto& now) {
    if (!j.contains(key)) return;
    const auto saved = j.at(key).get<std::remove_cvref_t<decltype(now)>>();
    if (saved != now) {
      std::ostringstream os;
      os << src << ": cannot resume with --" << key << " " << now << ": the run was trained with " << saved
         << " (the saved state depends on it)";
      throw CliError(os.str());
    }
  };
  fixed("batch", a.batch);
  fixed("optimizer", a.optimizer);
  fixed("seed", a.seed);
  fixed("ema", a.ema);
}

static int run(int argc, char** argv) {
  CLI::App app{"trm: Tiny Recursive Models from the command line (C++20, trm library)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print the help of every subcommand");
  auto* sudoku = app.add_subcommand("sudoku", "Sudoku: generate puzzles, train a TRM, solve and evaluate");
  sudoku->require_subcommand(1);

  // -- generate
  auto* gen = sudoku->add_subcommand("generate", "Generate unique-solution puzzles as PUZZLE,SOLUTION lines ('.' = blank)");
  std::string gen_box = "2x3", gen_out;
  long gen_count = 1000;
  int gen_blanks = 20;
  std::uint64_t gen_seed = 0;
  gen->add_option("--box", gen_box, "Box shape: 2x2 (4x4 grid), 2x3 (6x6), 3x3 (9x9)")->capture_default_str();
  gen->add_option("--count", gen_count, "Number of distinct puzzles")->capture_default_str();
  gen->add_option("--blanks", gen_blanks, "Blank cells per puzzle")->capture_default_str();
  gen->add_option("--seed", gen_seed, "Random seed")->capture_default_str();
  gen->add_option("--out", gen_out, "Output file, written atomically (default: stdout)");

  // -- train
  auto* train = sudoku->add_subcommand("train", "Train a TRM on freshly generated puzzles");
  TrainArgs ta;
  auto mflag = [&](CLI::App* sub, ModelSpec& s) {
    sub->add_option("--box", s.box, "Box shape: " + join_values(kSupportedBoxes))->capture_default_str();
    sub->add_option("--mixer", s.mixer, "Sequence mixer: mlp (TRM-MLP) or att (self-attention, head dim 32)")
        ->capture_default_str();
    sub->add_option("--hidden", s.hidden, "Hidden size: " + join_values(kSupportedHidden))->capture_default_str();
    sub->add_option("--layers", s.layers, "Layers of the network: " + join_values(kSupportedLayers))->capture_default_str();
    sub->add_option("--prefix", s.prefix, "Puzzle-embedding prefix positions: " + join_values(kSupportedPrefix))
        ->capture_default_str();
    sub->add_option("--n", s.n, "Latent updates per recursion pass (n)")->capture_default_str();
    sub->add_option("--T", s.T, "Recursion passes per supervision step (T)")->capture_default_str();
    sub->add_option("--nsup", s.nsup, "Supervision steps (N_sup)")->capture_default_str();
  };
  mflag(train, ta.model);
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
  train->add_option("--beta1", ta.beta1, "Adam beta1")->capture_default_str();
  train->add_option("--beta2", ta.beta2, "Adam beta2")->capture_default_str();
  train->add_option("--optimizer", ta.optimizer, "adamw or adam-atan2")->capture_default_str();
  train->add_option("--loss", ta.loss, "Token loss: stablemax or softmax")->capture_default_str();
  train->add_option("--blanks", ta.blanks, "Blank cells of every training and evaluation puzzle")->capture_default_str();
  train->add_option("--seed", ta.seed, "Seed of the weights, the data and the halting exploration")->capture_default_str();
  train->add_option("--ema", ta.ema, "EMA rate of the weights (0: off); evaluation and model.safetensors use the EMA")
      ->capture_default_str();
  train->add_option("--halt-explore", ta.halt_explore, "Halting exploration probability")->capture_default_str();
  train->add_option("--eval-every", ta.eval_every, "Evaluate and checkpoint every this many steps (0: only at the end)")
      ->capture_default_str();
  train->add_option("--eval-size", ta.eval_size, "Held-out generated puzzles of the periodic evaluation")
      ->capture_default_str();
  train->add_option("--log-every", ta.log_every, "Metrics CSV: one train row per this many steps")->capture_default_str();
  train->add_option("--out", ta.out,
                    "Output directory: model.safetensors, train_state.safetensors, metrics.csv, curve.png")
      ->capture_default_str();
  train->add_flag("--resume", ta.resume, "Continue the run saved in --out (its configuration and flags)");
  train->add_option("--holdout", ta.holdout, "CSV file(s) of puzzles never to train on (e.g. the test set)");
  train->add_flag("!--no-plot", ta.plot, "Do not draw curve.png with gnuplot");
  train->add_option("--threads", ta.threads, "CPU threads (0: all cores, at most 2)")->capture_default_str();
  train->add_flag("--quiet", ta.quiet, "No progress bar");

  // -- solve / eval
  // The model flags of solve/eval: optional, each checked against the checkpoint when given.
  // Each subcommand has its own values (`raw`, owned here); the returned function copies the
  // given ones into `e` after parsing.
  struct ExpectFlags {
    std::string box, mixer;
    int hidden = 0, layers = 0, prefix = 0, n = 0, T = 0, nsup = 0;
  };
  auto expect_flags = [&](CLI::App* sub, ExpectFlags& raw, ExpectedSpec& e) {
    auto* box = sub->add_option("--box", raw.box, "Expected box shape (checked against the checkpoint)");
    auto* mixer = sub->add_option("--mixer", raw.mixer, "Expected mixer (checked)");
    auto* hidden = sub->add_option("--hidden", raw.hidden, "Expected hidden size (checked)");
    auto* layers = sub->add_option("--layers", raw.layers, "Expected layers (checked)");
    auto* prefix = sub->add_option("--prefix", raw.prefix, "Expected prefix (checked)");
    auto* n = sub->add_option("--n", raw.n, "Expected n (checked)");
    auto* T = sub->add_option("--T", raw.T, "Expected T (checked)");
    auto* nsup = sub->add_option("--nsup", raw.nsup, "Expected N_sup (checked; --steps changes the steps run)");
    return [=, &raw, &e] {
      if (box->count()) e.box = raw.box;
      if (mixer->count()) e.mixer = raw.mixer;
      if (hidden->count()) e.hidden = raw.hidden;
      if (layers->count()) e.layers = raw.layers;
      if (prefix->count()) e.prefix = raw.prefix;
      if (n->count()) e.n = raw.n;
      if (T->count()) e.T = raw.T;
      if (nsup->count()) e.nsup = raw.nsup;
    };
  };
  auto* solve = sudoku->add_subcommand("solve", "Solve puzzles with a trained model");
  SolveArgs sa;
  ExpectFlags solve_flags;
  solve->add_option("--checkpoint", sa.checkpoint, "model.safetensors written by `trm sudoku train`")->required();
  solve->add_option("--input", sa.input, "Puzzles: CSV (PUZZLE[,SOLUTION]) or one puzzle per line; - = stdin")
      ->capture_default_str();
  solve->add_flag("--early-exit", sa.early_exit, "Stop each puzzle at the first step whose q_halt logit is > 0");
  solve->add_flag("--trace", sa.trace, "Show how the answer changes step by step");
  solve->add_option("--steps", sa.steps, "Supervision steps (default: the checkpoint's N_sup)");
  solve->add_option("--batch", sa.batch, "Puzzles per batch")->capture_default_str();
  solve->add_option("--threads", sa.threads, "CPU threads (0: all cores, at most 2)")->capture_default_str();
  auto solve_expect = expect_flags(solve, solve_flags, sa.expect);

  auto* eval = sudoku->add_subcommand("eval", "Exact and per-cell accuracy of a trained model on a puzzle file");
  EvalArgs ea;
  ExpectFlags eval_flags;
  eval->add_option("--checkpoint", ea.checkpoint, "model.safetensors written by `trm sudoku train`")->required();
  eval->add_option("--input", ea.input, "Puzzles: CSV (PUZZLE[,SOLUTION]) or one puzzle per line; - = stdin")->required();
  eval->add_option("--sample", ea.sample, "Evaluate a seeded random sample of this many puzzles (0: all)")
      ->capture_default_str();
  eval->add_option("--seed", ea.seed, "Seed of --sample")->capture_default_str();
  eval->add_option("--steps", ea.steps, "Supervision steps (default: the checkpoint's N_sup)");
  eval->add_option("--batch", ea.batch, "Puzzles per batch")->capture_default_str();
  eval->add_option("--threads", ea.threads, "CPU threads (0: all cores, at most 2)")->capture_default_str();
  eval->add_flag("--early-exit", ea.early_exit_headline, "Report early exit in the final 'exact accuracy' line");
  auto eval_expect = expect_flags(eval, eval_flags, ea.expect);

  auto* plot = sudoku->add_subcommand("plot", "Draw the training curve (PNG, gnuplot) of a run from its metrics.csv");
  std::string plot_run, plot_out;
  plot->add_option("--run", plot_run, "Output directory of `trm sudoku train`")->required();
  plot->add_option("--out", plot_out, "PNG file (default: <run>/curve.png)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints the help or the usage error
    return rc == 0 ? 0 : 2;
  }

  if (*plot) {
    const fs::path dir = plot_run, csv = dir / "metrics.csv";
    if (!fs::exists(csv)) throw CliError(csv.string() + ": no such file (not the output directory of a training run?)");
    std::string title = dir.string();
    if (fs::exists(dir / "model.safetensors")) title = read_checkpoint_info(dir / "model.safetensors").spec.describe();
    const fs::path png = plot_out.empty() ? dir / "curve.png" : fs::path(plot_out);
    if (!plot_training_curve(csv, png, title)) return 1;
    std::printf("curve: %s\n", png.string().c_str());
    return 0;
  }
  if (*gen) {
    return by_box(gen_box, [&]<int R, int C>() { return generate<sd::SudokuShape<R, C>>(gen_count, gen_blanks, gen_seed, gen_out); });
  }
  if (*train) {
    std::set<std::string> given;
    for (const auto* o : train->get_options())
      if (o->count() > 0) {
        std::string name = o->get_single_name();
        while (!name.empty() && name[0] == '-') name.erase(0, 1);
        for (auto& c : name) c = c == '-' ? '_' : c;
        given.insert(name);
      }
    for (const char* m : {"box", "mixer", "hidden", "layers", "prefix", "n", "T", "nsup"})
      if (given.count(m)) ta.model_flags_given = true;
    if (ta.steps <= 0 && ta.minutes <= 0) throw CliError("give a training budget: --steps N and/or --minutes M");
    if (ta.batch < 1) throw CliError("--batch must be >= 1, found " + std::to_string(ta.batch));
    if (!(ta.lr > 0)) throw CliError("--lr must be > 0");
    if (!(ta.lr_min_ratio >= 0 && ta.lr_min_ratio <= 1)) throw CliError("--lr-min-ratio must be in [0, 1]");
    if (ta.log_every < 1) throw CliError("--log-every must be >= 1");
    if (ta.eval_size < 1) throw CliError("--eval-size must be >= 1");
    if (ta.optimizer != "adamw" && ta.optimizer != "adam-atan2")
      throw CliError("--optimizer " + ta.optimizer + " is not supported (supported: adamw, adam-atan2)");
    if (ta.loss != "stablemax" && ta.loss != "softmax")
      throw CliError("--loss " + ta.loss + " is not supported (supported: stablemax, softmax)");
    if (!(ta.ema >= 0 && ta.ema < 1)) throw CliError("--ema must be in [0, 1)");
    std::optional<CheckpointInfo> resume;
    if (ta.resume) {
      const fs::path state = fs::path(ta.out) / "train_state.safetensors";
      if (!fs::exists(state))
        throw CliError("--resume: " + state.string() + " does not exist (train once with --out " + ta.out + " first)");
      resume = read_checkpoint_info(state);
      if (ta.model_flags_given) {
        ExpectedSpec e;
        if (given.count("box")) e.box = ta.model.box;
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
      const fs::path state = fs::path(ta.out) / "train_state.safetensors";
      if (fs::exists(state))
        throw CliError(ta.out + " already holds a run (" + state.string() +
                       "): pass --resume to continue it, or choose another --out");
    }
    if (ta.blanks < 1 || ta.blanks > ta.model.side() * ta.model.side())
      throw CliError("--blanks must be in [1, " + std::to_string(ta.model.side() * ta.model.side()) + "] for --box " +
                     ta.model.box + ", found " + std::to_string(ta.blanks));
    return by_box(ta.model.box, [&]<int R, int C>() { return sudoku_train<R, C>(ta, resume); });
  }
  if (*solve) {
    solve_expect();
    const auto info = read_checkpoint_info(sa.checkpoint);
    sa.expect.check(info.spec, sa.checkpoint);
    if (sa.batch < 1) throw CliError("--batch must be >= 1");
    if (sa.steps < 0) throw CliError("--steps must be >= 1");
    return by_box(info.spec.box, [&]<int R, int C>() { return sudoku_solve<R, C>(sa, info); });
  }
  if (*eval) {
    eval_expect();
    const auto info = read_checkpoint_info(ea.checkpoint);
    ea.expect.check(info.spec, ea.checkpoint);
    if (ea.batch < 1) throw CliError("--batch must be >= 1");
    if (ea.steps < 0) throw CliError("--steps must be >= 1");
    if (ea.sample < 0) throw CliError("--sample must be >= 0");
    return by_box(info.spec.box, [&]<int R, int C>() { return sudoku_eval<R, C>(ea, info); });
  }
  return 2;
}

}  // namespace trmcli

int main(int argc, char** argv) {
  trm::cpu::use_fast_blas_kernels(argv);  // generic OpenBLAS kernels on new Xeons: re-exec
  try {
    return trmcli::run(argc, argv);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "trm: error: %s\n", e.what());
    return 1;
  }
}
