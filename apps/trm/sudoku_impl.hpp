#pragma once
// `trm sudoku train|solve|eval` for one box shape; sudoku_<R>x<C>.cpp instantiate them, so the
// compiler spreads the model instantiations over several translation units.
#include <csignal>
#include <cstring>
#include <numbers>
#include <random>
#include <string_view>
#include <trm/trm.hpp>
#include <unordered_set>

#include "cli_common.hpp"
#include "sudoku_entry.hpp"

#include <sys/resource.h>
#include <unistd.h>

namespace trmcli {

namespace sd = trm::data::sudoku;

// The schedule and halting policy with run-time counts: every model gets n, T and N_sup of its
// ModelSpec through ModelArgs (model_args below), so nothing about them is process-wide.
using Schedule = trm::TrmRecursion<>;
using Halting = trm::BceHalting<>;

template <class Shape, class Mixer, int Hidden, int Layers, int Prefix>
struct SudokuConfig {
  static constexpr int rows = Shape::n, cols = Shape::n;
  static constexpr int vocab = Shape::vocab_size;  // pad 0, blank 1, digits 2..N+1
  static constexpr int hidden = Hidden, layers = Layers;
  static constexpr trm::ConfigOptions options{.puzzle_emb_len = Prefix};
  using mixer = Mixer;
  using schedule = Schedule;
  using halting = Halting;
};

// Puzzle identifiers of a model trained by this program: one, shared by every puzzle (id 0), as
// the reference's Sudoku data.
inline constexpr trm::index_t kTrainPuzzleIds = 1;

// What a model of `spec` is built with: the only place where a ModelSpec becomes the run-time part
// of a model (a fresh run, a resumed one and solve/eval all come through here, so that a stored
// spec reconstructs the same model).
template <class M>
trm::ModelArgs<typename M::config> model_args(const ModelSpec& spec, trm::index_t puzzle_ids, std::uint64_t seed) {
  return {.schedule = Schedule(spec.n, spec.T), .halting = Halting(spec.nsup), .puzzle_ids = puzzle_ids, .seed = seed};
}

template <int H>
using MlpFor = trm::TokenMlpMixer;
template <int H>
using AttFor = trm::AttentionMixer<H / kHeadDim>;

template <class Shape, class Mixer, int H, class F>
int by_prefix(const ModelSpec& s, F& f) {
  switch (s.prefix) {
    case 4: return f.template operator()<trm::Model<SudokuConfig<Shape, Mixer, H, 2, 4>>>();
  }
  throw CliError("internal error: prefix " + std::to_string(s.prefix) + " is not dispatched");
}
template <class Shape, template <int> class MixerFor, class F>
int by_hidden(const ModelSpec& s, F& f) {
  switch (s.hidden) {
    case 64: return by_prefix<Shape, MixerFor<64>, 64>(s, f);
    case 128: return by_prefix<Shape, MixerFor<128>, 128>(s, f);
    case 256: return by_prefix<Shape, MixerFor<256>, 256>(s, f);
  }
  throw CliError("internal error: hidden " + std::to_string(s.hidden) + " is not dispatched");
}

// Calls f.template operator()<Model>() with the compiled model for `s` (the curated set of
// cli_common.hpp: box x mixer x hidden x layers x prefix); anything else is a CliError listing
// the supported values.
template <class Shape, class F>
int with_model(const ModelSpec& s, F&& f) {
  s.validate();
  if (s.mixer == "mlp") return by_hidden<Shape, MlpFor>(s, f);
  return by_hidden<Shape, AttFor>(s, f);
}

// AdamW (Base = trm::AdamW) or Adam-atan2 (trm::AdamAtan2) with a run-time learning-rate factor
// (the CLI's cosine decay over steps or wall-clock time multiplies the trainer's warmup schedule).
// The trainer state records Base::name, so a run resumes only with the optimiser it was saved with.
template <class Base>
struct CliOptimizer {
  static constexpr const char* name = Base::name;
  double lr = 1e-3;
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95;
  const double* lr_factor = nullptr;

  template <class T>
  void update(trm::DynTensor<T, 2>& p, const trm::DynTensor<T, 2>& g, trm::AdamState<T>& s, double lr_now, long t) const {
    if (lr_factor) lr_now *= *lr_factor;
    Base{.lr = lr, .weight_decay = weight_decay, .beta1 = beta1, .beta2 = beta2}.update(p, g, s, lr_now, t);
  }
};

// ---- puzzles ---------------------------------------------------------------------------------------
template <class Shape>
struct Puzzle {
  sd::Example<Shape> ex;
  std::string where;  // "file:line"
};

inline std::string source_name(const std::string& input) { return input == "-" ? "<stdin>" : input; }

// Reads PUZZLE[,SOLUTION] lines (or a CSV with a header, see trm/data/sudoku/csv.hpp) from a file
// or "-" (stdin). With sample > 0, a seeded random sample of that many puzzles (in file order) is
// checked and returned; lines outside the sample are not parsed. Every error names the line.
template <class Shape>
std::vector<Puzzle<Shape>> read_puzzles(const std::string& input, long sample = 0, std::uint64_t seed = 0) {
  const std::string src = source_name(input);
  std::ifstream file;
  std::istream* in = &std::cin;
  if (input != "-") {
    std::error_code ec;
    if (fs::is_directory(input, ec)) throw CliError(input + ": is a directory, expected a file of puzzles");
    file.open(input, std::ios::binary);
    if (!file) throw CliError(input + ": cannot open the file (" + std::strerror(errno) + ")");
    in = &file;
  }
  std::vector<std::pair<long, std::string>> lines;
  std::string line;
  long line_no = 0;
  bool header = false;
  while (std::getline(*in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (lines.empty() && std::isalpha(static_cast<unsigned char>(line[0]))) header = true;
    lines.emplace_back(line_no, line);
  }
  if (in->bad()) throw CliError(src + ": read error after line " + std::to_string(line_no));
  std::vector<Puzzle<Shape>> out;
  if (header) {
    // A header names the columns: let the library's reader handle it, then sample.
    std::stringstream all;
    std::size_t k = 0;
    for (long l = 1; k < lines.size(); ++l) {
      if (lines[k].first == l) all << lines[k++].second;
      all << '\n';
    }
    auto examples = sd::parse_csv<Shape>(all, src);
    // lines[0] is the header; every later line holds one example.
    for (std::size_t i = 0; i < examples.size(); ++i)
      out.push_back({examples[i], src + ":" + std::to_string(i + 1 < lines.size() ? lines[i + 1].first : 0)});
    if (sample > 0 && std::size_t(sample) < out.size()) {
      std::mt19937_64 rng(seed);
      std::vector<std::size_t> idx(out.size());
      for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
      std::shuffle(idx.begin(), idx.end(), rng);
      idx.resize(std::size_t(sample));
      std::sort(idx.begin(), idx.end());
      std::vector<Puzzle<Shape>> picked;
      for (auto i : idx) picked.push_back(out[i]);
      out = std::move(picked);
    }
    return out;
  }
  std::vector<std::size_t> idx(lines.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  if (sample > 0 && std::size_t(sample) < lines.size()) {
    std::mt19937_64 rng(seed);
    std::shuffle(idx.begin(), idx.end(), rng);
    idx.resize(std::size_t(sample));
    std::sort(idx.begin(), idx.end());
  }
  for (auto i : idx) {
    const auto& [no, text] = lines[i];
    const std::string where = src + ":" + std::to_string(no) + ": ";
    auto fields = sd::detail::split_commas(text);
    if (fields.size() > 2)
      throw sd::SudokuFormatError(where + "expected 1 or 2 comma-separated fields (PUZZLE[,SOLUTION]), found " +
                                  std::to_string(fields.size()));
    const auto puzzle = sd::detail::parse_field<Shape>(fields[0], false, where);
    std::optional<sd::Grid<Shape>> solution;
    if (fields.size() == 2) solution = sd::detail::parse_field<Shape>(fields[1], true, where);
    out.push_back({sd::check_example(puzzle, solution, where), src + ":" + std::to_string(no)});
  }
  return out;
}

template <class Shape>
void encode_rows(const std::vector<const sd::Example<Shape>*>& rows, trm::Batch& batch) {
  const auto b = trm::index_t(rows.size());
  batch.inputs.resize(b, Shape::cells);
  batch.labels.resize(b, Shape::cells);
  batch.puzzle_identifiers.resize(b);
  for (trm::index_t r = 0; r < b; ++r) {
    const auto& ex = *rows[std::size_t(r)];
    for (int i = 0; i < Shape::cells; ++i) {
      batch.inputs(r, i) = ex.puzzle[std::size_t(i)] + 1;
      batch.labels(r, i) = ex.solution[std::size_t(i)] + 1;
    }
    batch.puzzle_identifiers(r) = 0;
  }
}

// Predicted tokens of row r as a grid (tokens outside the digits become blanks).
template <class Shape>
sd::Grid<Shape> decode_row(const trm::DynTensor<std::int32_t, 2>& pred, trm::index_t r) {
  sd::Grid<Shape> g{};
  for (int i = 0; i < Shape::cells; ++i) {
    const int t = pred(r, i);
    g[std::size_t(i)] = std::uint8_t(t >= 2 && t <= Shape::n + 1 ? t - 1 : 0);
  }
  return g;
}

template <class Shape>
bool solved(const sd::Example<Shape>& ex, const sd::Grid<Shape>& g) {
  return sd::is_valid_solution(g) && sd::keeps_givens(ex.puzzle, g);
}

// ---- evaluation: all N_sup steps and learned early exit in one pass -------------------------------
struct EvalScore {
  int count = 0;
  double exact_full = 0, cells_full = 0;    // after max_steps steps (the reference's evaluation)
  double exact_early = 0, cells_early = 0;  // at the first step with q_halt > 0 (or the last)
  double steps_early = 0;                   // mean steps used with early exit
  double seconds = 0;
};

// cells_*: accuracy over the blank cells of the puzzles (givens excluded); exact: every cell right.
template <class M, class Shape>
EvalScore evaluate(const M& model, const std::vector<sd::Example<Shape>>& set, int batch_size, int max_steps) {
  using S = typename M::scalar_type;
  EvalScore sc;
  const auto t0 = std::chrono::steady_clock::now();
  const auto& recursion = model.recursion();
  typename M::schedule::template Tape<M> tape;
  typename M::HeadCache hc;
  trm::DynTensor<S, 3> x, y, z, logits;
  trm::DynTensor<S, 2> q;
  trm::Batch batch;
  long blanks_total = 0, right_full = 0, right_early = 0;
  for (std::size_t start = 0; start < set.size(); start += std::size_t(batch_size)) {
    const std::size_t end = std::min(set.size(), start + std::size_t(batch_size));
    std::vector<const sd::Example<Shape>*> rows;
    for (std::size_t i = start; i < end; ++i) rows.push_back(&set[i]);
    encode_rows(rows, batch);
    const trm::index_t b = batch.size();
    x.resize(b, M::total_len, M::hidden);
    y.resize(b, M::total_len, M::hidden);
    z.resize(b * trm::index_t(M::num_latents), M::total_len, M::hidden);
    logits.resize(b, M::seq_len, M::vocab);
    q.resize(b, 2);
    model.embed(batch, x.view());
    std::vector<std::uint8_t> reset(std::size_t(b), 1), halted(std::size_t(b), 0);
    model.reset_states(reset, y.view(), z.view());
    std::vector<std::vector<std::int32_t>> early(std::size_t(b), std::vector<std::int32_t>(Shape::cells));
    std::vector<int> early_steps(std::size_t(b), max_steps);
    std::vector<std::int32_t> pred(std::size_t(b) * Shape::cells);
    for (int step = 1; step <= max_steps; ++step) {
      recursion.forward(model, tape, x.cview(), y.view(), z.view(), false);
      model.heads(y.cview(), logits.view(), q.view(), hc);
      for (trm::index_t r = 0; r < b; ++r) {
        for (int t = 0; t < Shape::cells; ++t) {
          int best = 0;
          for (int k = 1; k < M::vocab; ++k)
            if (logits(r, t, k) > logits(r, t, best)) best = k;
          pred[std::size_t(r) * Shape::cells + std::size_t(t)] = best;
        }
        if (!halted[std::size_t(r)] && (q(r, 0) > S(0) || step == max_steps)) {
          halted[std::size_t(r)] = 1;
          early_steps[std::size_t(r)] = step;
          std::copy_n(pred.begin() + std::ptrdiff_t(r) * Shape::cells, Shape::cells, early[std::size_t(r)].begin());
        }
      }
    }
    for (trm::index_t r = 0; r < b; ++r) {
      const auto& ex = *rows[std::size_t(r)];
      bool all_full = true, all_early = true;
      for (int t = 0; t < Shape::cells; ++t) {
        const int label = ex.solution[std::size_t(t)] + 1;
        const bool ok_full = pred[std::size_t(r) * Shape::cells + std::size_t(t)] == label;
        const bool ok_early = early[std::size_t(r)][std::size_t(t)] == label;
        all_full = all_full && ok_full;
        all_early = all_early && ok_early;
        if (ex.puzzle[std::size_t(t)] == 0) {
          ++blanks_total;
          right_full += ok_full;
          right_early += ok_early;
        }
      }
      sc.exact_full += all_full;
      sc.exact_early += all_early;
      sc.steps_early += early_steps[std::size_t(r)];
      ++sc.count;
    }
  }
  if (sc.count) {
    sc.exact_full /= sc.count;
    sc.exact_early /= sc.count;
    sc.steps_early /= sc.count;
  }
  if (blanks_total) {
    sc.cells_full = double(right_full) / double(blanks_total);
    sc.cells_early = double(right_early) / double(blanks_total);
  }
  sc.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sc;
}

inline void set_threads(int threads) {
  if (threads <= 0) {
    const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
    threads = int(std::clamp<long>(cores, 1, 2));
  }
  trm::cpu::set_num_threads(threads);
}

// ---- progress bar --------------------------------------------------------------------------------------
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(::isatty(2)) {}
  // fraction in [0, 1] (or < 0 when unknown)
  void update(const std::string& text, double fraction, bool force = false) {
    if (quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (!force && since < (tty_ ? 0.25 : 30.0)) return;
    last_ = now;
    std::string bar;
    if (fraction >= 0) {
      const int width = 24, full = int(std::clamp(fraction, 0.0, 1.0) * width);
      bar = "[" + std::string(std::size_t(full), '#') + std::string(std::size_t(width - full), '.') + "] ";
    }
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s%s", bar.c_str(), text.c_str());
      open_ = true;
    } else {
      std::fprintf(stderr, "%s%s\n", bar.c_str(), text.c_str());
    }
    std::fflush(stderr);
  }
  // A line of its own (the bar is redrawn at the next update).
  void line(const std::string& text) {
    if (open_) std::fprintf(stderr, "\r\033[K");
    open_ = false;
    std::fprintf(stderr, "%s\n", text.c_str());
    std::fflush(stderr);
    last_ = {};
  }
  void finish() {
    if (open_) std::fprintf(stderr, "\n");
    open_ = false;
  }

 private:
  bool quiet_, tty_;
  bool open_ = false;
  std::chrono::steady_clock::time_point last_{};
};

// ---- metrics CSV ------------------------------------------------------------------------------------------
inline const char* kMetricsHeader =
    "kind,step,elapsed_s,lr,loss,lm_loss,q_halt_loss,accuracy,exact_accuracy,q_halt_accuracy,mean_steps,steps_per_s,"
    "eval_exact,eval_cells,eval_exact_early_exit,eval_cells_early_exit,eval_mean_steps_early_exit,eval_count,"
    "eval_weights,cpu_s";

// CPU time of this process (all threads), seconds.
inline double process_cpu_seconds() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// ---- train ----------------------------------------------------------------------------------------------------
// SIGINT / SIGTERM during training: finish the step, evaluate, save, plot; a second one kills.
inline void on_sigint(int sig) {
  if (interrupted().exchange(true)) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream) {
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ull * (stream + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline json rng_to_json(const trm::Rng& r) {
  json a = json::array();
  for (auto v : r.state()) a.push_back(std::to_string(v));
  return a;
}
inline void rng_from_json(trm::Rng& r, const json& a, const std::string& source) {
  try {
    std::array<std::uint64_t, 4> s{};
    for (int i = 0; i < 4; ++i) s[std::size_t(i)] = std::stoull(a.at(std::size_t(i)).get<std::string>());
    r.set_state(s);
  } catch (const std::exception& e) {
    throw CliError(source + ": malformed data RNG state in the metadata (" + std::string(e.what()) + ")");
  }
}

inline json train_flags_json(const TrainArgs& a) {
  return json{{"batch", a.batch},        {"lr", a.lr},         {"lr_min_ratio", a.lr_min_ratio},
              {"warmup", a.warmup},      {"weight_decay", a.weight_decay},
              {"beta1", a.beta1},        {"beta2", a.beta2},   {"optimizer", a.optimizer},
              {"loss", a.loss},          {"blanks", a.blanks}, {"seed", a.seed},
              {"ema", a.ema},            {"halt_explore", a.halt_explore},
              {"eval_every", a.eval_every}, {"eval_size", a.eval_size},
              {"log_every", a.log_every}, {"holdout", a.holdout}};
}

// Opt: CliOptimizer<trm::AdamW> or CliOptimizer<trm::AdamAtan2> (--optimizer).
template <class Shape, class M, class Opt>
int train_model(const TrainArgs& a, const std::optional<CheckpointInfo>& resume_info) {
  using namespace std::chrono;
  set_threads(a.threads);
  const fs::path dir = a.out;
  const fs::path model_path = dir / "model.safetensors", state_path = dir / "train_state.safetensors",
                 metrics_path = dir / "metrics.csv", png_path = dir / "curve.png";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw CliError(dir.string() + ": cannot create the output directory (" + ec.message() + ")");

  // A resumed run rebuilds the same model from the spec stored in its state (a.model), and
  // load_train_state checks the signature before it overwrites the weights.
  M model(model_args<M>(a.model, kTrainPuzzleIds, a.seed));
  double lr_factor = 1.0;
  Opt opt{.lr = a.lr, .weight_decay = a.weight_decay, .beta1 = a.beta1, .beta2 = a.beta2, .lr_factor = &lr_factor};
  trm::TrainOptions to;
  to.schedule = trm::LrSchedule{.warmup_steps = a.warmup, .total_steps = std::max<long>(a.steps, 1), .min_ratio = 1.0};
  to.ema_rate = a.ema;
  to.loss = a.loss == "softmax" ? trm::LossType::softmax_cross_entropy : trm::LossType::stablemax_cross_entropy;
  to.halt_exploration_prob = a.halt_explore;
  to.seed = mix_seed(a.seed, 3);
  to.puzzle_emb_lr = 1e-4;
  to.puzzle_emb_weight_decay = 0.1;
  trm::Trainer<M, Opt> trainer(model, opt, to);

  trm::Rng data_rng(mix_seed(a.seed, 1));
  double elapsed_before = 0, cpu_before = 0;
  const double cpu_start = process_cpu_seconds();
  if (resume_info) {
    try {
      trm::load_train_state(trainer, state_path);
    } catch (const std::exception& e) {
      throw CliError(state_path.string() + ": cannot resume: " + e.what());
    }
    rng_from_json(data_rng, resume_info->state.value("data_rng", json::array()), state_path.string());
    elapsed_before = resume_info->state.value("elapsed_s", 0.0);
    cpu_before = resume_info->state.value("cpu_s", 0.0);
  }

  // Held-out puzzles: the periodic evaluation set (generated from its own seed stream) and any
  // --holdout files; training never uses a puzzle equal to one of them.
  std::unordered_set<std::string> excluded;
  for (const auto& h : a.holdout) {
    auto list = read_puzzles<Shape>(h);
    for (const auto& p : list) excluded.insert(sd::to_string(p.ex.puzzle));
  }
  std::vector<sd::Example<Shape>> eval_set;
  {
    trm::Rng eval_rng(mix_seed(a.seed, 2));
    for (int i = 0; i < a.eval_size; ++i) {
      eval_set.push_back(sd::generate<Shape>(eval_rng, a.blanks));
      excluded.insert(sd::to_string(eval_set.back().puzzle));
    }
  }

  std::printf("trm sudoku train: %s\n", a.model.describe().c_str());
  std::printf("  %lld parameters; %d net calls per supervision step; batch %d, %s lr %g (warmup %ld%s), wd %g, "
              "EMA %g, %s loss, %d blanks, seed %llu, %d thread(s)\n",
              static_cast<long long>(model.num_parameters()), model.recursion().net_calls_per_step(), a.batch,
              Opt::name, a.lr, a.warmup,
              a.lr_min_ratio < 1 ? (", cosine to x" + std::to_string(a.lr_min_ratio).substr(0, 4)).c_str() : "",
              a.weight_decay, a.ema, a.loss.c_str(), a.blanks, static_cast<unsigned long long>(a.seed),
              trm::cpu::num_threads());
  std::printf("  budget: %s%s%s; held out: %zu puzzles (%d for periodic evaluation)%s\n",
              a.steps > 0 ? ("until step " + std::to_string(a.steps)).c_str() : "",
              a.steps > 0 && a.minutes > 0 ? " or " : "",
              a.minutes > 0 ? (std::to_string(a.minutes).substr(0, 5) + " minutes").c_str() : "", excluded.size(),
              a.eval_size, resume_info ? (", resuming at step " + std::to_string(trainer.step_count())).c_str() : "");
#if defined(TRM_HAVE_CBLAS)
  std::printf("  output: %s; OpenBLAS kernels: %s\n", dir.string().c_str(), openblas_get_corename());
#else
  std::printf("  output: %s\n", dir.string().c_str());
#endif
  std::fflush(stdout);

  // Metrics CSV: rewritten atomically at every evaluation and at the end (a resumed run keeps the
  // rows up to its step).
  std::vector<std::string> csv_rows;
  if (resume_info) {
    std::ifstream old(metrics_path);
    std::string line;
    bool first = true;
    while (std::getline(old, line)) {
      if (first) {
        first = false;
        continue;
      }
      const auto c1 = line.find(','), c2 = line.find(',', c1 + 1);
      if (c1 == std::string::npos || c2 == std::string::npos) continue;
      if (std::stol(line.substr(c1 + 1, c2 - c1 - 1)) <= trainer.step_count()) csv_rows.push_back(line);
    }
  }
  auto write_metrics = [&] {
    trm::io::write_file_atomically(metrics_path, [&](trm::io::AtomicFileWriter& w) {
      w.write(std::string(kMetricsHeader) + "\n");
      for (const auto& r : csv_rows) w.write(r + "\n");
    });
  };

  const std::string weights = a.ema > 0 ? "ema" : "raw";
  auto meta = [&](double elapsed) {
    json st{{"step", trainer.step_count()},
            {"elapsed_s", elapsed},
            {"cpu_s", cpu_before + process_cpu_seconds() - cpu_start},
            {"weights", weights},
            {"data_rng", rng_to_json(data_rng)}};
    return std::map<std::string, std::string>{
        {kMetaModel, a.model.to_json().dump()}, {kMetaTrain, train_flags_json(a).dump()}, {kMetaState, st.dump()}};
  };
  // `weights`: the model evaluated and saved as model.safetensors, the live model or (--ema > 0)
  // a separate copy with the EMA weights (trainer.ema_model()); the live model is never changed.
  auto save = [&](const M& weights, double elapsed) {
    const auto m = meta(elapsed);
    trm::save_train_state(trainer, state_path, m);
    trm::save_model(weights, model_path, m);
  };

  interrupted() = false;
  auto old_handler = std::signal(SIGINT, on_sigint);
  auto old_term = std::signal(SIGTERM, on_sigint);
  Progress progress(a.quiet);
  const auto t_start = steady_clock::now();
  auto elapsed_now = [&] { return duration<double>(steady_clock::now() - t_start).count(); };
  const double budget_s = a.minutes * 60.0;
  const long target = a.steps > 0 ? a.steps : std::numeric_limits<long>::max();
  const long start_step = trainer.step_count();

  trm::Batch batch;
  std::vector<sd::Example<Shape>> fresh(std::size_t(a.batch));
  std::vector<const sd::Example<Shape>*> rows;
  for (auto& e : fresh) rows.push_back(&e);
  // Interval accumulators (train rows of the CSV).
  double acc_loss = 0, acc_lm = 0, acc_qh = 0, acc_acc = 0;
  long acc_count = 0, acc_exact = 0, acc_qacc = 0, acc_steps = 0, acc_calls = 0;
  double bar_loss = 0, bar_acc = 0, bar_exact = 0, bar_count = 0;
  long bar_n = 0;
  auto interval_t0 = steady_clock::now();
  double last_eval_exact = -1;
  long last_eval_step = -1;
  EvalScore last_score;

  auto eval_and_save_weights = [&](const M& eval_weights, long step) {
    progress.line("  evaluating " + std::to_string(eval_set.size()) + " held-out puzzles (" + weights + " weights)...");
    const double t_before = elapsed_now();
    const EvalScore s = evaluate(eval_weights, eval_set, a.eval_batch, eval_weights.max_steps());
    char row[512];
    std::snprintf(row, sizeof row, "eval,%ld,%.2f,,,,,,,,,,%.5f,%.5f,%.5f,%.5f,%.3f,%d,%s,%.1f", step,
                  elapsed_before + elapsed_now(), s.exact_full, s.cells_full, s.exact_early, s.cells_early,
                  s.steps_early, s.count, weights.c_str(), cpu_before + process_cpu_seconds() - cpu_start);
    csv_rows.push_back(row);
    char text[400];
    std::snprintf(text, sizeof text,
                  "  eval step %ld: exact %s (cells %s) after %d steps; early exit %s (cells %s, mean %.2f steps) "
                  "[%.1fs]",
                  step, percent(s.exact_full).c_str(), percent(s.cells_full, 2).c_str(), eval_weights.max_steps(),
                  percent(s.exact_early).c_str(), percent(s.cells_early, 2).c_str(), s.steps_early,
                  elapsed_now() - t_before);
    progress.line(text);
    last_eval_exact = s.exact_full;
    last_eval_step = step;
    last_score = s;
    save(eval_weights, elapsed_before + elapsed_now());
    write_metrics();
    return s;
  };
  auto eval_and_save = [&](long step) {
    if (a.ema > 0) return eval_and_save_weights(trainer.ema_model(), step);
    return eval_and_save_weights(model, step);
  };

  long step = trainer.step_count();
  while (step < target && !(budget_s > 0 && elapsed_now() >= budget_s) && !interrupted()) {
    // Cosine decay of the learning rate after warmup, over the step budget (or the time budget).
    if (a.lr_min_ratio < 1.0) {
      double progress_frac = 0;
      if (a.steps > 0) progress_frac = double(step - a.warmup) / double(std::max<long>(1, a.steps - a.warmup));
      else if (budget_s > 0) progress_frac = elapsed_now() / budget_s;
      progress_frac = std::clamp(progress_frac, 0.0, 1.0);
      lr_factor = a.lr_min_ratio + (1 - a.lr_min_ratio) * 0.5 * (1 + std::cos(std::numbers::pi * progress_frac));
    }
    for (auto& e : fresh) {
      do e = sd::generate<Shape>(data_rng, a.blanks);
      while (excluded.count(sd::to_string(e.puzzle)));
    }
    encode_rows(rows, batch);
    const trm::StepMetrics m = trainer.step(batch);
    ++step;
    const double inv_b = 1.0 / a.batch;
    acc_loss += m.total_loss * inv_b;
    acc_lm += m.lm_loss * inv_b;
    acc_qh += m.q_halt_loss * inv_b;
    acc_acc += m.accuracy;
    acc_count += m.count;
    acc_exact += m.exact_accuracy;
    acc_qacc += m.q_halt_accuracy;
    acc_steps += m.steps;
    ++acc_calls;
    if (step % a.log_every == 0 || step == target) {
      const double dt = duration<double>(steady_clock::now() - interval_t0).count();
      char row[512];
      const double c = std::max<long>(acc_count, 1);
      std::snprintf(row, sizeof row, "train,%ld,%.2f,%.6g,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.3f,%.3f,,,,,,,,%.1f", step,
                    elapsed_before + elapsed_now(), m.lr * lr_factor, acc_loss / acc_calls, acc_lm / acc_calls,
                    acc_qh / acc_calls, acc_acc / c, acc_exact / c, acc_qacc / c, acc_steps / c,
                    dt > 0 ? acc_calls / dt : 0.0, cpu_before + process_cpu_seconds() - cpu_start);
      csv_rows.push_back(row);
      acc_loss = acc_lm = acc_qh = acc_acc = 0;
      acc_count = acc_exact = acc_qacc = acc_steps = acc_calls = 0;
      interval_t0 = steady_clock::now();
    }
    // Progress bar: step, loss, accuracy and exact accuracy of the rows that finished their
    // sequence (moving averages over ~20 steps), steps/s, ETA.
    {
      const double w = bar_n == 0 ? 1.0 : 0.05;
      bar_loss += w * (m.total_loss * inv_b - bar_loss);
      bar_acc += w * (m.accuracy - bar_acc);
      bar_exact += w * (m.exact_accuracy - bar_exact);
      bar_count += w * (m.count - bar_count);
      ++bar_n;
      const double el = elapsed_now();
      const double rate = (step - start_step) / std::max(el, 1e-9);
      double frac = -1, eta = -1;
      if (a.steps > 0) {
        frac = double(step) / double(a.steps);
        eta = (a.steps - step) / std::max(rate, 1e-9);
      }
      if (budget_s > 0) {
        const double f2 = el / budget_s, eta2 = budget_s - el;
        if (frac < 0 || f2 > frac) frac = f2;
        if (eta < 0 || eta2 < eta) eta = eta2;
      }
      char text[300];
      const double c = std::max(bar_count, 1e-9);
      std::snprintf(text, sizeof text, "step %ld%s  loss %.4f  acc %.3f  exact %.3f  %.2f steps/s  ETA %s%s", step,
                    a.steps > 0 ? ("/" + std::to_string(a.steps)).c_str() : "", bar_loss, bar_acc / c, bar_exact / c,
                    rate, format_duration(eta).c_str(),
                    last_eval_exact >= 0 ? ("  eval " + percent(last_eval_exact)).c_str() : "");
      progress.update(text, frac);
    }
    if (a.eval_every > 0 && step % a.eval_every == 0) eval_and_save(step);
  }
  progress.finish();
  std::signal(SIGINT, old_handler);
  std::signal(SIGTERM, old_term);
  if (interrupted()) std::printf("interrupted at step %ld: saving\n", step);
  const EvalScore final_score = last_eval_step == step ? last_score : eval_and_save(step);
  const double total = elapsed_before + elapsed_now();
  const double cpu_run = process_cpu_seconds() - cpu_start;
  std::printf("trained %ld steps (%ld in this run) in %s; %.2f steps/s; CPU time %s (%.2f cores busy on average)\n", step,
              step - start_step, format_duration(total).c_str(), (step - start_step) / std::max(elapsed_now(), 1e-9),
              format_duration(cpu_before + cpu_run).c_str(), cpu_run / std::max(elapsed_now(), 1e-9));
  std::printf("held-out exact accuracy: %s after %d steps, %s with early exit (mean %.2f steps), %d puzzles, %s weights\n",
              percent(final_score.exact_full).c_str(), model.max_steps(), percent(final_score.exact_early).c_str(),
              final_score.steps_early, final_score.count, weights.c_str());
  std::printf("checkpoint: %s\nmetrics: %s\n", model_path.string().c_str(), metrics_path.string().c_str());
  if (a.plot) {
    if (plot_training_curve(metrics_path, png_path, a.model.describe()))
      std::printf("curve: %s\n", png_path.string().c_str());
  }
  std::fflush(stdout);
  return interrupted() ? 130 : 0;
}

// ---- solve ------------------------------------------------------------------------------------------------------
template <class Shape>
std::string pretty(const sd::Grid<Shape>& g, const sd::Grid<Shape>* mark_from = nullptr,
                   const sd::Grid<Shape>* wrong_vs = nullptr, const std::string& indent = "    ") {
  // Givens plain, changed cells (vs mark_from) marked '*', wrong cells (vs wrong_vs) marked '!'.
  std::string s;
  for (int r = 0; r < Shape::n; ++r) {
    if (r > 0 && r % Shape::box_rows == 0) {
      s += indent;
      for (int c = 0; c < Shape::n; ++c) s += (c > 0 && c % Shape::box_cols == 0) ? "+--" : "--";
      s += "\n";
    }
    s += indent;
    for (int c = 0; c < Shape::n; ++c) {
      if (c > 0 && c % Shape::box_cols == 0) s += "| ";
      const int v = g.at(r, c);
      s += v == 0 ? '.' : char('0' + v);
      char mark = ' ';
      if (wrong_vs && (*wrong_vs).at(r, c) != v) mark = '!';
      else if (mark_from && (*mark_from).at(r, c) != v) mark = '*';
      s += mark;
    }
    s += "\n";
  }
  return s;
}

// The model of a `solve`/`eval` checkpoint: built from the spec stored in it (model_args, with the
// puzzle-table size of the file) and loaded (load_model checks the file's signature against the
// model's); a file the loader refuses is an error naming it.
template <class M>
M load_checkpoint_model(const std::string& checkpoint, const ModelSpec& spec) {
  try {
    const auto file = trm::io::SafetensorsFile::load(checkpoint);
    M model(model_args<M>(spec, trm::checkpoint_puzzle_ids(file), 0));
    trm::load_model(model, file);
    return model;
  } catch (const std::exception& e) {
    throw CliError(checkpoint + ": " + e.what());
  }
}

template <class Shape, class M>
int solve_model(const SolveArgs& a, const CheckpointInfo& info) {
  set_threads(a.threads);
  const M model = load_checkpoint_model<M>(a.checkpoint, info.spec);
  const int max_steps = a.steps > 0 ? a.steps : model.max_steps();
  const auto puzzles = read_puzzles<Shape>(a.input);
  if (puzzles.empty()) throw CliError(source_name(a.input) + ": no puzzles (expected one puzzle per line)");
  trm::Solver<M> solver(model);
  int n_solved = 0;
  long total_steps = 0;
  std::printf("model: %s (%s, step %s)\n", info.spec.describe().c_str(), a.checkpoint.c_str(),
              info.state.contains("step") ? info.state["step"].dump().c_str() : "?");
  for (std::size_t start = 0; start < puzzles.size(); start += std::size_t(a.batch)) {
    const std::size_t end = std::min(puzzles.size(), start + std::size_t(a.batch));
    std::vector<const sd::Example<Shape>*> rows;
    for (std::size_t i = start; i < end; ++i) rows.push_back(&puzzles[i].ex);
    trm::Batch batch;
    encode_rows(rows, batch);
    std::vector<std::vector<sd::Grid<Shape>>> history(rows.size());
    trm::SolveTrace trace;
    if (a.trace)
      trace = [&](int, const trm::DynTensor<std::int32_t, 2>& pred, const std::vector<std::uint8_t>& active) {
        for (std::size_t r = 0; r < rows.size(); ++r)
          if (active[r]) history[r].push_back(decode_row<Shape>(pred, trm::index_t(r)));
      };
    const auto res = solver.solve(batch, a.early_exit ? trm::EarlyExit::on : trm::EarlyExit::off, max_steps, trace);
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const auto& p = puzzles[start + r];
      const auto g = decode_row<Shape>(res.predictions, trm::index_t(r));
      const bool ok = solved(p.ex, g);
      n_solved += ok;
      total_steps += res.steps_used[r];
      std::string verdict;
      if (ok) verdict = "valid solution, keeps the givens";
      else if (!sd::keeps_givens(p.ex.puzzle, g)) verdict = "NOT solved: changes a given";
      else if (auto c = sd::find_conflict(g)) verdict = "NOT solved: " + *c;
      else verdict = "NOT solved: has blanks";
      int wrong = 0;
      for (int i = 0; i < Shape::cells; ++i) wrong += g[std::size_t(i)] != p.ex.solution[std::size_t(i)];
      std::printf("puzzle %zu (%s): %s; %d supervision step%s (q_halt %+.2f)%s\n", start + r + 1, p.where.c_str(),
                  verdict.c_str(), res.steps_used[r], res.steps_used[r] == 1 ? "" : "s", res.q_halt[r],
                  ok ? "" : (", " + std::to_string(wrong) + " cell(s) differ from the solution").c_str());
      std::printf("  %s\n", sd::to_string(g).c_str());
      if (a.trace) {
        std::printf("  puzzle:\n%s", pretty<Shape>(p.ex.puzzle).c_str());
        const sd::Grid<Shape>* prev = &p.ex.puzzle;
        for (std::size_t s = 0; s < history[r].size(); ++s) {
          const auto& h = history[r][s];
          int changed = 0, bad = 0;
          for (int i = 0; i < Shape::cells; ++i) {
            changed += h[std::size_t(i)] != (*prev)[std::size_t(i)];
            bad += h[std::size_t(i)] != p.ex.solution[std::size_t(i)];
          }
          std::printf("  step %zu: %d cell(s) changed%s, %d wrong (* changed, ! wrong)\n", s + 1, changed,
                      s == 0 ? " from the puzzle" : "", bad);
          std::printf("%s", pretty<Shape>(h, prev, &p.ex.solution).c_str());
          prev = &h;
        }
      } else {
        std::printf("%s", pretty<Shape>(g, nullptr, &p.ex.solution).c_str());
      }
    }
  }
  std::printf("solved %d of %zu puzzles (%s), mean %.2f supervision steps%s\n", n_solved, puzzles.size(),
              percent(double(n_solved) / double(puzzles.size())).c_str(), double(total_steps) / double(puzzles.size()),
              a.early_exit ? " (early exit)" : "");
  return 0;
}

// ---- eval ---------------------------------------------------------------------------------------------------------
template <class Shape, class M>
int eval_model(const EvalArgs& a, const CheckpointInfo& info) {
  set_threads(a.threads);
  const M model = load_checkpoint_model<M>(a.checkpoint, info.spec);
  const int max_steps = a.steps > 0 ? a.steps : model.max_steps();
  const auto puzzles = read_puzzles<Shape>(a.input, a.sample, a.seed);
  if (puzzles.empty()) throw CliError(source_name(a.input) + ": no puzzles (expected one puzzle per line)");
  std::printf("model: %s\ncheckpoint: %s (step %s, %s weights)\npuzzles: %zu from %s%s, %d threads\n",
              info.spec.describe().c_str(), a.checkpoint.c_str(),
              info.state.contains("step") ? info.state["step"].dump().c_str() : "?",
              info.state.value("weights", std::string("?")).c_str(), puzzles.size(), source_name(a.input).c_str(),
              a.sample > 0 ? (" (seeded sample, seed " + std::to_string(a.seed) + ")").c_str() : "",
              trm::cpu::num_threads());
  std::fflush(stdout);
  trm::Solver<M> solver(model);
  struct Row {
    const char* name;
    trm::EarlyExit exit;
    int exact = 0;
    long cells = 0, right = 0, steps = 0;
    double seconds = 0;
  };
  std::vector<Row> modes = {{"all steps", trm::EarlyExit::off}, {"early exit", trm::EarlyExit::on}};
  for (auto& mode : modes) {
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t start = 0; start < puzzles.size(); start += std::size_t(a.batch)) {
      const std::size_t end = std::min(puzzles.size(), start + std::size_t(a.batch));
      std::vector<const sd::Example<Shape>*> rows;
      for (std::size_t i = start; i < end; ++i) rows.push_back(&puzzles[i].ex);
      trm::Batch batch;
      encode_rows(rows, batch);
      const auto res = solver.solve(batch, mode.exit, max_steps);
      for (std::size_t r = 0; r < rows.size(); ++r) {
        const auto g = decode_row<Shape>(res.predictions, trm::index_t(r));
        bool all = true;
        for (int i = 0; i < Shape::cells; ++i) {
          const bool ok = g[std::size_t(i)] == rows[r]->solution[std::size_t(i)];
          all = all && ok;
          if (rows[r]->puzzle[std::size_t(i)] == 0) {
            ++mode.cells;
            mode.right += ok;
          }
        }
        mode.exact += all;
        mode.steps += res.steps_used[r];
      }
    }
    mode.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double n = double(puzzles.size());
  std::printf("%-22s %9s %12s %11s %11s\n", "mode", "exact", "blank cells", "mean steps", "ms/puzzle");
  for (const auto& m : modes) {
    char label[64];
    if (m.exit == trm::EarlyExit::off) std::snprintf(label, sizeof label, "all %d steps", max_steps);
    else std::snprintf(label, sizeof label, "early exit (<= %d)", max_steps);
    std::printf("%-22s %9s %12s %11.2f %11.3f\n", label, percent(m.exact / n).c_str(),
                percent(m.cells ? double(m.right) / double(m.cells) : 1.0, 2).c_str(), double(m.steps) / n,
                1e3 * m.seconds / n);
  }
  const auto& head = modes[a.early_exit_headline ? 1 : 0];
  std::printf("exact accuracy: %s (%zu puzzles)\n", percent(head.exact / n).c_str(), puzzles.size());
  return 0;
}

// ---- entry points (instantiated per box shape in sudoku_<R>x<C>.cpp) ------------------------------------
template <int R, int C>
int sudoku_train(const TrainArgs& a, const std::optional<CheckpointInfo>& resume) {
  using Shape = sd::SudokuShape<R, C>;
  return with_model<Shape>(a.model, [&]<class M>() {
    if (a.optimizer == "adam-atan2") return train_model<Shape, M, CliOptimizer<trm::AdamAtan2>>(a, resume);
    return train_model<Shape, M, CliOptimizer<trm::AdamW>>(a, resume);
  });
}
template <int R, int C>
int sudoku_solve(const SolveArgs& a, const CheckpointInfo& info) {
  using Shape = sd::SudokuShape<R, C>;
  return with_model<Shape>(info.spec, [&]<class M>() { return solve_model<Shape, M>(a, info); });
}
template <int R, int C>
int sudoku_eval(const EvalArgs& a, const CheckpointInfo& info) {
  using Shape = sd::SudokuShape<R, C>;
  return with_model<Shape>(info.spec, [&]<class M>() { return eval_model<Shape, M>(a, info); });
}

#define TRM_CLI_INSTANTIATE(R, C)                                                                 \
  template int sudoku_train<R, C>(const TrainArgs&, const std::optional<CheckpointInfo>&);     \
  template int sudoku_solve<R, C>(const SolveArgs&, const CheckpointInfo&);                    \
  template int sudoku_eval<R, C>(const EvalArgs&, const CheckpointInfo&);

}  // namespace trmcli
