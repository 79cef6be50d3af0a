// A small-scale version of the TRM paper's ablation (Table 1): the same parts composed into
// TRM-MLP, TRM with HRM's 1-step gradient, TRM with self-attention, TRM with 4 layers and n = 3,
// HRM (two 4-layer nets, one-step gradient, Q-learning ACT) and optionally TRM "w/ ACT", trained
// with equal budgets on generated 4x4 Sudoku (2x2 boxes) and evaluated on unseen puzzles.
//
//   ablation [--minutes-per-run M | --steps S] [--seeds 0,1] [--train 1000] [--test 256]
//            [--blanks 10] [--batch 32] [--only hrm,mlp,act,4layers,att,onestep] [--with-act]
//            [--markdown FILE]
//
// (defaults shown; without a budget: --steps 300). docs/RESULTS.md, "Ablation (issue 5)", has the
// table of `ablation --steps 300 --seeds 0` and of `--with-act --only act`.
//
// Budget: --steps S gives every run S optimiser steps (one supervision step each, the paper's
// equal-epochs protocol); --minutes-per-run M stops a run when its process CPU time (all threads,
// std::clock) reaches M minutes, which is insensitive to other load on the machine; both may be
// given (whichever comes first). Data: `--train` puzzles with `--blanks` blank cells and a unique
// solution (trm::data::sudoku::generate), re-augmented on every draw (digit relabelling, band /
// row / stack / column permutations), and `--test` other puzzles (different seed). Evaluation as
// the reference: every test puzzle runs N_sup supervision steps from the initial state; exact
// accuracy = all 16 cells right; TRM rows are evaluated with their EMA weights (rate 0.99, scaled
// down from 0.999 for runs of a few hundred steps), HRM without EMA (HRM has none).
// Depth = net calls per supervision step x layers per net (the paper's T(n+1) x layers);
// NFP = forward passes per optimiser step (2 with the Q-learning target's extra forward).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <type_traits>
#include <trm/data/sudoku.hpp>
#include <trm/trm.hpp>
#include <vector>

namespace sudoku = trm::data::sudoku;
using Shape = sudoku::Sudoku4;

struct Options {
  long steps = 0;            // 0 = no step limit
  double minutes = 0;        // 0 = no CPU-time limit
  std::vector<std::uint64_t> seeds{0};
  int train = 1000, test = 256, blanks = 10, batch = 32;
  std::vector<std::string> only;
  bool with_act = false;
  std::string markdown;
};

constexpr int n_sup = 8;
constexpr int hidden = 32;

// ---- the variants --------------------------------------------------------------------------------
template <class Mixer, class Schedule, class Halting, int Layers, int Prefix = 2>
struct SudokuCfg {
  static constexpr int rows = Shape::n, cols = Shape::n, vocab = Shape::vocab_size, hidden = ::hidden, layers = Layers;
  static constexpr trm::ConfigOptions options{.puzzle_emb_len = Prefix};
  using mixer = Mixer;
  using schedule = Schedule;
  using halting = Halting;
};
using Heads = trm::AttentionMixer<2>;  // head_dim 16
using TrmMlp = SudokuCfg<trm::TokenMlpMixer, trm::TrmRecursion<6, 3>, trm::BceHalting<n_sup>, 2>;
using TrmAct = SudokuCfg<trm::TokenMlpMixer, trm::TrmRecursion<6, 3>, trm::QLearningHalting<n_sup>, 2>;
using TrmOneStep = SudokuCfg<trm::TokenMlpMixer, trm::TrmOneStepGradient<6, 3>, trm::BceHalting<n_sup>, 2>;
using TrmAtt = SudokuCfg<Heads, trm::TrmRecursion<6, 3>, trm::BceHalting<n_sup>, 2>;
using Trm4Layers = SudokuCfg<trm::TokenMlpMixer, trm::TrmRecursion<3, 3>, trm::BceHalting<n_sup>, 4>;
using Hrm = SudokuCfg<Heads, trm::HrmRecursion<2, 2>, trm::QLearningHalting<n_sup>, 4, 1>;  // 4 + 4 layers

struct Row {
  std::string name, paper;  // paper: "acc / depth / NFP / params" from TRM Table 1
  int depth = 0, nfp = 0;
  long params = 0;
  std::vector<double> exact, token;
  std::vector<long> steps;
  std::vector<double> cpu_minutes;
};

// ---- data ------------------------------------------------------------------------------------
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
    batch.puzzle_identifiers(r) = 0;  // one shared puzzle id, as the reference's Sudoku data
  }
  return batch;
}

double cpu_minutes_since(std::clock_t start) { return double(std::clock() - start) / CLOCKS_PER_SEC / 60.0; }

// N_sup supervision steps from the initial state, no gradient; exact and token accuracy.
template <class M>
std::pair<double, double> evaluate(const M& model, const std::vector<sudoku::Example<Shape>>& test) {
  long exact = 0, tokens = 0, total_tokens = 0;
  const std::size_t chunk = 64;
  typename M::schedule::template Tape<M> tape;
  typename M::HeadCache heads;
  for (std::size_t first = 0; first < test.size(); first += chunk) {
    std::vector<sudoku::Example<Shape>> part(test.begin() + first, test.begin() + std::min(test.size(), first + chunk));
    const trm::Batch batch = make_batch(part);
    const trm::index_t b = batch.size();
    trm::DynTensor<float, 3> x(b, M::total_len, M::hidden), y(b, M::total_len, M::hidden),
        z(b * trm::index_t(M::num_latents), M::total_len, M::hidden), logits(b, M::seq_len, M::vocab);
    trm::DynTensor<float, 2> q(b, 2);
    model.embed(batch, x.view());
    std::vector<std::uint8_t> all(b, 1);
    model.reset_states(all, y.view(), z.view());
    for (int step = 0; step < model.max_steps(); ++step)
      model.recursion().forward(model, tape, x.cview(), y.view(), z.view(), false);
    model.heads(y.cview(), logits.view(), q.view(), heads);
    for (trm::index_t r = 0; r < b; ++r) {
      int ok = 0;
      for (trm::index_t t = 0; t < M::seq_len; ++t) {
        trm::index_t best = 0;
        for (trm::index_t k = 1; k < M::vocab; ++k)
          if (logits(r, t, k) > logits(r, t, best)) best = k;
        ok += best == batch.labels(r, t);
      }
      exact += ok == M::seq_len;
      tokens += ok;
      total_tokens += M::seq_len;
    }
  }
  return {double(exact) / double(test.size()), double(tokens) / double(total_tokens)};
}

template <class Cfg>
void run(Row& row, bool use_ema, const Options& o, const std::vector<sudoku::Example<Shape>>& train,
         const std::vector<sudoku::Example<Shape>>& test) {
  using M = trm::Model<Cfg>;
  row.nfp = M::halting::needs_q_continue_target ? 2 : 1;
  for (auto seed : o.seeds) {
    M model(seed);  // static counts: the schedule and the policy are the config's types' defaults
    row.depth = model.recursion().net_calls_per_step() * Cfg::layers;
    row.params = model.num_parameters();
    trm::TrainOptions t;
    t.schedule = trm::LrSchedule{50, 1, 1.0};  // linear warmup over 50 steps, then constant (reference: min ratio 1)
    t.ema_rate = use_ema ? 0.99 : 0.0;
    t.puzzle_emb_lr = 1e-3;
    t.puzzle_emb_weight_decay = 0.1;
    t.halt_exploration_prob = 0.1;
    t.seed = seed;
    trm::Trainer trainer(model, trm::AdamAtan2{.lr = 1e-3, .weight_decay = 0.1}, t);
    trm::Rng rng(1000 + seed);
    const std::clock_t start = std::clock();
    long step = 0;
    double lm = 0;
    while (true) {
      if (o.steps > 0 && step >= o.steps) break;
      if (o.minutes > 0 && cpu_minutes_since(start) >= o.minutes) break;
      if (o.steps <= 0 && o.minutes <= 0) break;
      std::vector<sudoku::Example<Shape>> rows;
      for (int r = 0; r < o.batch; ++r) rows.push_back(sudoku::augment(train[rng.below(train.size())], rng));
      const auto m = trainer.step(make_batch(rows));
      ++step;
      lm += m.lm_loss / o.batch;
      if (step % 100 == 0) {
        std::fprintf(stderr, "  %-28s seed %llu step %5ld  lm_loss %.4f  cpu %.2f min\n", row.name.c_str(),
                     (unsigned long long)seed, step, lm / 100, cpu_minutes_since(start));
        lm = 0;
      }
    }
    row.steps.push_back(step);
    row.cpu_minutes.push_back(cpu_minutes_since(start));
    // The EMA weights live in a separate model (trainer.ema_model()); the trained one is untouched.
    const auto [exact, token] = use_ema ? evaluate(trainer.ema_model(), test) : evaluate(model, test);
    row.exact.push_back(exact);
    row.token.push_back(token);
    std::fprintf(stderr, "  %-28s seed %llu: %ld steps, %.2f CPU min, test exact %.3f, cells %.3f\n", row.name.c_str(),
                 (unsigned long long)seed, step, row.cpu_minutes.back(), exact, token);
  }
}

std::string mean_pm(const std::vector<double>& v, double scale, int prec) {
  double m = 0;
  for (double x : v) m += x;
  m /= double(v.size());
  char buf[64];
  if (v.size() == 1) {
    std::snprintf(buf, sizeof buf, "%.*f", prec, m * scale);
    return buf;
  }
  double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
  std::snprintf(buf, sizeof buf, "%.*f (%.*f-%.*f)", prec, m * scale, prec, lo * scale, prec, hi * scale);
  return buf;
}

int main(int argc, char** argv) {
  Options o;
  auto split = [](const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
    return out;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--steps") o.steps = std::stol(next());
    else if (a == "--minutes-per-run") o.minutes = std::stod(next());
    else if (a == "--seeds") {
      o.seeds.clear();
      for (auto& s : split(next())) o.seeds.push_back(std::stoull(s));
    } else if (a == "--train") o.train = std::stoi(next());
    else if (a == "--test") o.test = std::stoi(next());
    else if (a == "--blanks") o.blanks = std::stoi(next());
    else if (a == "--batch") o.batch = std::stoi(next());
    else if (a == "--only") o.only = split(next());
    else if (a == "--with-act") o.with_act = true;
    else if (a == "--markdown") o.markdown = next();
    else {
      std::fprintf(stderr,
                   "usage: %s [--minutes-per-run M | --steps S] [--seeds 0,1] [--train N] [--test N] [--blanks B] "
                   "[--batch B] [--only NAME,...] [--with-act] [--markdown FILE]\n",
                   argv[0]);
      return 2;
    }
  }
  if (o.steps <= 0 && o.minutes <= 0) o.steps = 300;

  trm::Rng train_rng(12345), test_rng(54321);
  std::vector<sudoku::Example<Shape>> train, test;
  for (int i = 0; i < o.train; ++i) train.push_back(sudoku::generate<Shape>(train_rng, o.blanks));
  for (int i = 0; i < o.test; ++i) test.push_back(sudoku::generate<Shape>(test_rng, o.blanks));
  std::fprintf(stderr, "%dx%d Sudoku, %d blanks: %d training puzzles (augmented), %d test puzzles\n", Shape::n, Shape::n, o.blanks,
               o.train, o.test);

  std::vector<Row> rows;
  auto want = [&](const std::string& key) { return o.only.empty() || std::find(o.only.begin(), o.only.end(), key) != o.only.end(); };
  auto add = [&](const std::string& key, const std::string& name, const std::string& paper, auto tag, bool ema) {
    if (!want(key)) return;
    using Cfg = typename decltype(tag)::type;
    rows.push_back(Row{name, paper});
    run<Cfg>(rows.back(), ema, o, train, test);
  };
  add("hrm", "HRM (4+4 layers, H=2, L=2, ACT)", "55.0 / 24 / 2 / 27M", std::type_identity<Hrm>{}, false);
  add("mlp", "TRM-MLP (T=3, n=6)", "87.4 / 42 / 1 / 5M", std::type_identity<TrmMlp>{}, true);
  if (o.with_act) add("act", "TRM-MLP w/ ACT (Q-learning)", "86.1 / 42 / 2 / 5M", std::type_identity<TrmAct>{}, true);
  add("4layers", "TRM-MLP w/ 4 layers, n=3", "79.5 / 48 / 1 / 10M", std::type_identity<Trm4Layers>{}, true);
  add("att", "TRM w/ self-attention", "74.7 / 42 / 1 / 7M", std::type_identity<TrmAtt>{}, true);
  add("onestep", "TRM-MLP w/ 1-step gradient", "56.5 / 42 / 1 / 5M", std::type_identity<TrmOneStep>{}, true);

  std::ostringstream md;
  md << "| Variant | exact acc. % (test) | cell acc. % | Depth | NFP | Params | steps | CPU min | paper: Acc % / Depth / NFP / Params |\n"
     << "|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    std::vector<double> st(r.steps.begin(), r.steps.end());
    md << "| " << r.name << " | " << mean_pm(r.exact, 100, 1) << " | " << mean_pm(r.token, 100, 1) << " | " << r.depth << " | "
       << r.nfp << " | " << r.params << " | " << mean_pm(st, 1, 0) << " | " << mean_pm(r.cpu_minutes, 1, 1) << " | " << r.paper
       << " |\n";
  }
  std::printf("%s", md.str().c_str());
  if (!o.markdown.empty()) std::ofstream(o.markdown) << md.str();
  return 0;
}
