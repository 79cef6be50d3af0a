#pragma once
// trm::fit: the training driver of a run, for any task. It steps a Trainer on batches from a
// TrainingSource until a step or wall-clock budget ends, and does what a run needs around that:
//   - a progress bar on stderr (step, loss, accuracies, steps/s, ETA, the last evaluation);
//   - an evaluation every eval_every steps and at the end, of the EMA weights when the trainer
//     keeps them (trainer.ema_model(), as the reference evaluates and saves), with the caller's
//     evaluation function (e.g. trm::Evaluator over a held-out set);
//   - after each evaluation, atomic checkpoints in out_dir: model.safetensors (the evaluated
//     weights) and train_state.safetensors (weights, EMA, optimiser moments, carry, RNG), both
//     with metadata "trm.fit.state" (step, time, the source's position) and the caller's entries;
//     written in the order metrics.csv, model.safetensors, train_state.safetensors, so that the
//     state, which resume reads, is the commit point: a process killed anywhere in a save leaves
//     every file complete (each is replaced atomically), the state at the last completed save and
//     the other two at the same step or the next one, which the resumed run rewrites identically
//     (resume keeps the metrics rows up to the state's step). Tested by killing runs with SIGKILL
//     (tests/test_crash_safety.cpp);
//   - a NaN or infinity in the loss, the gradients or the weights (Trainer's check_finite) stops
//     the run with NonFiniteError naming the step and the tensor; nothing is saved after it, so
//     out_dir keeps the checkpoints of the last evaluation;
//   - resume: continue the run of out_dir, the trainer and the source where they were saved;
//   - metrics.csv (train rows every log_every steps, eval rows) and curve.png (gnuplot, when
//     installed; otherwise a note and the CSV);
//   - an optional cosine decay of the learning rate over the step budget or, without one, over the
//     time budget (Trainer::set_lr_scale);
//   - a clean stop on SIGINT/SIGTERM (or a caller's flag): the step in progress ends, the weights
//     are evaluated and saved, fit returns with interrupted = true; a second signal kills.
// Signal dispositions are process-wide by nature: fit installs its handlers for the duration of
// the call and puts the previous ones back before it returns.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <concepts>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <numbers>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "trm/io/checkpoint.hpp"
#include "trm/io/json.hpp"
#include "trm/io/safetensors.hpp"
#include "trm/io/train_state.hpp"
#include "trm/model/inference.hpp"
#include "trm/train/progress.hpp"
#include "trm/train/trainer.hpp"

#include <sys/resource.h>
#include <unistd.h>

namespace trm {

// Where training batches come from: next() gives the batch of the next call; state() and
// restore(state) save and put back the position (JSON text), so a resumed run continues the same
// sequence. trm::data::DatasetSource and trm::data::GeneratedSource are the library's.
template <class S>
concept TrainingSource = requires(S& s, const S& cs, const std::string& text) {
  { s.next() } -> std::convertible_to<const Batch&>;
  { cs.state() } -> std::convertible_to<std::string>;
  s.restore(text);
};

struct FitOptions {
  long max_steps = 0;          // train until the trainer's step count reaches this (resumed steps count); 0: none
  double max_minutes = 0;      // wall-clock budget of this call; 0: none (give at least one of the two)
  long eval_every = 0;         // evaluate and checkpoint every this many steps; 0: only at the end
  long log_every = 10;         // metrics.csv: one train row per this many steps
  double lr_min_ratio = 1.0;   // < 1: cosine decay after warmup_steps to lr x this at the end of the budget
  long warmup_steps = 0;       // where the cosine starts (the trainer's LrSchedule does the warmup itself)
  std::filesystem::path out_dir{};  // checkpoints, metrics.csv, curve.png; empty: nothing is written
  bool resume = false;         // continue the run saved in out_dir
  bool progress = true;        // the progress bar on stderr
  bool plot = true;            // curve.png (needs gnuplot)
  bool stop_on_signal = true;  // SIGINT / SIGTERM end the run cleanly (see above)
  const std::atomic<bool>* stop = nullptr;  // the caller's stop flag, read before every step
  std::string title{};         // of the plot
  std::map<std::string, std::string> metadata{};  // stored in both checkpoints
  // Observers (e.g. a custom log, a test). on_step: after every training call whose loss is
  // finite, with the step count and the call's metrics. on_save: around each file of a checkpoint
  // save, with its path, written = false before it is written and true once it is in place; the
  // crash-safety test blocks in it to be killed inside the save window.
  std::function<void(long step, const StepMetrics& metrics)> on_step{};
  std::function<void(const std::filesystem::path& file, bool written)> on_save{};
};

struct FitResult {
  long step = 0;             // the trainer's step count at the end
  long steps_this_run = 0;
  double seconds = 0;        // wall-clock of this call
  double total_seconds = 0;  // including the time of the resumed run(s)
  double cpu_seconds = 0;    // process CPU time, including resumed runs
  EvalReport final_eval;     // of the weights saved last
  std::string weights;       // "ema" or "raw"
  bool interrupted = false;  // stopped by a signal or the caller's flag
  std::filesystem::path model_path, state_path, metrics_path, plot_path;  // empty when not written
};

// The metrics.csv columns (the plot reads them by position).
inline constexpr const char* fit_metrics_header =
    "kind,step,elapsed_s,lr,loss,lm_loss,q_halt_loss,accuracy,exact_accuracy,q_halt_accuracy,mean_steps,steps_per_s,"
    "eval_exact,eval_cells,eval_exact_early_exit,eval_cells_early_exit,eval_mean_steps_early_exit,eval_count,"
    "eval_weights,cpu_s,eval_valid,eval_valid_early_exit";

inline constexpr const char* fit_state_key = "trm.fit.state";

namespace detail {

inline std::atomic<int>& fit_signal_count() {
  static std::atomic<int> count{0};  // the signal handler's only channel (see the header comment)
  return count;
}
inline void fit_on_signal(int sig) {
  if (fit_signal_count().fetch_add(1) >= 1) {  // the second one: the default action (terminate)
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

// Installs the handlers for a scope and restores the previous ones.
class FitSignalScope {
 public:
  explicit FitSignalScope(bool on) : on_(on) {
    if (!on_) return;
    fit_signal_count() = 0;
    old_int_ = std::signal(SIGINT, fit_on_signal);
    old_term_ = std::signal(SIGTERM, fit_on_signal);
  }
  ~FitSignalScope() {
    if (!on_) return;
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
  }
  bool signalled() const { return on_ && fit_signal_count() > 0; }
  FitSignalScope(const FitSignalScope&) = delete;
  FitSignalScope& operator=(const FitSignalScope&) = delete;

 private:
  bool on_;
  void (*old_int_)(int) = SIG_DFL;
  void (*old_term_)(int) = SIG_DFL;
};

inline double process_cpu_seconds() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

inline std::string csv_number(double v, const char* fmt = "%.5f") {
  if (!std::isfinite(v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// The metadata entry fit stores in its checkpoints, parsed (nullopt when absent).
inline std::optional<nlohmann::json> read_fit_state(const io::SafetensorsFile& file, const std::string& source) {
  auto it = file.metadata.find(fit_state_key);
  if (it == file.metadata.end()) return std::nullopt;
  auto j = io::parse_untrusted_json<ValueError>(it->second, source + ": metadata entry '" + std::string(fit_state_key) + "'");
  if (!j.is_object())
    throw ValueError(source + ": metadata entry '" + std::string(fit_state_key) + "': expected a JSON object, found " +
                     io::json_brief(j));
  return j;
}

}  // namespace detail

// The fit state stored in a checkpoint written by fit (step, elapsed_s, cpu_s, weights, source),
// or nullopt for a file fit did not write.
inline std::optional<nlohmann::json> read_fit_state(const std::filesystem::path& path) {
  return detail::read_fit_state(io::SafetensorsFile::load(path), path.string());
}

// Evaluate: a callable EvalReport(const M& weights).
template <class M, class Opt, TrainingSource Source, class Evaluate>
  requires std::invocable<Evaluate&, const M&> &&
           std::convertible_to<std::invoke_result_t<Evaluate&, const M&>, EvalReport>
FitResult fit(Trainer<M, Opt>& trainer, Source& source, Evaluate&& evaluate, const FitOptions& o) {
  using clock = std::chrono::steady_clock;
  namespace fs = std::filesystem;
  if (o.max_steps <= 0 && o.max_minutes <= 0)
    throw ValueError("fit: give a training budget: max_steps > 0 or max_minutes > 0 (found neither)");
  if (o.max_steps < 0 || o.max_minutes < 0 || !std::isfinite(o.max_minutes))
    throw ValueError("fit: expected max_steps >= 0 and a finite max_minutes >= 0, found " + std::to_string(o.max_steps) +
                     " and " + std::to_string(o.max_minutes));
  if (o.eval_every < 0 || o.log_every < 1)
    throw ValueError("fit: expected eval_every >= 0 and log_every >= 1, found " + std::to_string(o.eval_every) + " and " +
                     std::to_string(o.log_every));
  if (!(o.lr_min_ratio >= 0 && o.lr_min_ratio <= 1))
    throw ValueError("fit: lr_min_ratio: expected a value in [0, 1], found " + std::to_string(o.lr_min_ratio));

  FitResult res;
  const bool files = !o.out_dir.empty();
  if (files) {
    std::error_code ec;
    fs::create_directories(o.out_dir, ec);
    if (ec) throw ValueError(o.out_dir.string() + ": cannot create the output directory (" + ec.message() + ")");
    // Writable? Checked now rather than after the whole budget, at the first save.
    const fs::path probe = o.out_dir / (".trm-fit-probe-" + std::to_string(::getpid()));
    {
      std::ofstream p(probe);
      if (!p) throw ValueError(o.out_dir.string() + ": cannot write in the output directory (checked before training)");
    }
    fs::remove(probe, ec);
    res.model_path = o.out_dir / "model.safetensors";
    res.state_path = o.out_dir / "train_state.safetensors";
    res.metrics_path = o.out_dir / "metrics.csv";
  }
  const bool use_ema = !trainer.ema().shadow.empty();
  res.weights = use_ema ? "ema" : "raw";

  double elapsed_before = 0, cpu_before = 0;
  std::vector<std::string> csv_rows;
  if (o.resume) {
    if (!files) throw ValueError("fit: resume needs out_dir (the run to continue)");
    if (!fs::exists(res.state_path))
      throw ValueError(res.state_path.string() + ": no training state to resume (expected the file of an earlier run)");
    load_train_state(trainer, res.state_path);
    const auto st = read_fit_state(res.state_path);
    if (!st)
      throw ValueError(res.state_path.string() + ": no '" + std::string(fit_state_key) +
                       "' metadata: not a state written by trm::fit, so the data position is unknown");
    auto seconds = [&](const char* key) {
      if (!st->contains(key)) return 0.0;
      const auto& v = st->at(key);
      if (!v.is_number() || !(v.get<double>() >= 0) || !std::isfinite(v.get<double>()))
        throw ValueError(res.state_path.string() + ": metadata '" + std::string(fit_state_key) + "': '" + key +
                         "': expected a number of seconds >= 0, found " + io::json_brief(v));
      return v.get<double>();
    };
    elapsed_before = seconds("elapsed_s");
    cpu_before = seconds("cpu_s");
    if (st->contains("source")) {
      if (!st->at("source").is_string())
        throw ValueError(res.state_path.string() + ": metadata '" + std::string(fit_state_key) +
                         "': 'source': expected the data position as a string, found " + io::json_brief(st->at("source")));
      try {
        source.restore(st->at("source").get<std::string>());
      } catch (const std::exception& e) {
        throw ValueError(res.state_path.string() + ": cannot restore the run's data position: " + e.what());
      }
    }
    // The metrics of the resumed run up to its saved step.
    std::ifstream old(res.metrics_path);
    std::string line;
    for (bool header = true; std::getline(old, line); header = false) {
      if (header) continue;
      const auto c1 = line.find(','), c2 = line.find(',', c1 + 1);
      if (c1 == std::string::npos || c2 == std::string::npos) continue;
      try {
        if (std::stol(line.substr(c1 + 1, c2 - c1 - 1)) <= trainer.step_count()) csv_rows.push_back(line);
      } catch (const std::exception&) {
        // not a row of ours: dropped
      }
    }
  }

  const double cpu_start = detail::process_cpu_seconds();
  const auto t_start = clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(clock::now() - t_start).count(); };
  auto cpu_total = [&] { return cpu_before + detail::process_cpu_seconds() - cpu_start; };
  const double budget_s = o.max_minutes * 60.0;
  const long target = o.max_steps > 0 ? o.max_steps : std::numeric_limits<long>::max();
  const long start_step = trainer.step_count();

  auto write_metrics = [&] {
    if (!files) return;
    io::write_file_atomically(res.metrics_path, [&](io::AtomicFileWriter& w) {
      w.write(std::string(fit_metrics_header) + "\n");
      for (const auto& r : csv_rows) w.write(r + "\n");
    });
  };
  auto metadata = [&] {
    auto m = o.metadata;
    const nlohmann::json st{{"step", trainer.step_count()}, {"elapsed_s", elapsed_before + elapsed()},
                            {"cpu_s", cpu_total()},         {"weights", res.weights},
                            {"source", source.state()}};
    m[fit_state_key] = st.dump();
    return m;
  };

  Progress progress(!o.progress);
  EvalReport last;
  long last_eval_step = -1;
  auto eval_and_save = [&] {
    const long step = trainer.step_count();
    progress.line("  evaluating (" + res.weights + " weights) at step " + std::to_string(step) + "...");
    std::optional<M> ema;
    if (use_ema) ema.emplace(trainer.ema_model());
    const M& weights = use_ema ? *ema : trainer.model();
    last = evaluate(weights);
    last_eval_step = step;
    csv_rows.push_back("eval," + std::to_string(step) + "," + detail::csv_number(elapsed_before + elapsed(), "%.2f") +
                       ",,,,,,,,,," + detail::csv_number(last.exact) + "," + detail::csv_number(last.cells) + "," +
                       detail::csv_number(last.exact_early) + "," + detail::csv_number(last.cells_early) + "," +
                       detail::csv_number(last.mean_steps_early, "%.3f") + "," + std::to_string(last.count) + "," +
                       res.weights + "," + detail::csv_number(cpu_total(), "%.1f") + "," +
                       (last.has_valid() ? detail::csv_number(last.valid) : "") + "," +
                       (last.has_valid() ? detail::csv_number(last.valid_early) : ""));
    char text[400];
    std::snprintf(text, sizeof text,
                  "  eval step %ld: exact %s (changed cells %s)%s after %d steps; early exit %s (mean %.2f steps) [%.1fs]",
                  step, percent(last.exact).c_str(), percent(last.cells, 2).c_str(),
                  last.has_valid() ? (", valid " + percent(last.valid)).c_str() : "", last.max_steps,
                  percent(last.exact_early).c_str(), last.mean_steps_early, last.seconds);
    progress.line(text);
    if (files) {
      // The state last: it is what resume reads (see the header comment).
      auto saving = [&](const fs::path& file, auto&& write) {
        if (o.on_save) o.on_save(file, false);
        write();
        if (o.on_save) o.on_save(file, true);
      };
      const auto m = metadata();
      saving(res.metrics_path, write_metrics);
      saving(res.model_path, [&] { save_model(weights, res.model_path, m); });
      saving(res.state_path, [&] { save_train_state(trainer, res.state_path, m); });
    }
  };

  detail::FitSignalScope signals(o.stop_on_signal);
  auto stopping = [&] { return signals.signalled() || (o.stop && o.stop->load()); };

  // Interval accumulators (train rows of the CSV) and moving averages (the bar).
  double acc_loss = 0, acc_lm = 0, acc_qh = 0, acc_acc = 0;
  long acc_count = 0, acc_exact = 0, acc_qacc = 0, acc_steps = 0, acc_calls = 0;
  double bar_loss = 0, bar_acc = 0, bar_exact = 0, bar_count = 0;
  long bar_n = 0;
  auto interval_t0 = clock::now();
  long step = trainer.step_count();
  while (step < target && !(budget_s > 0 && elapsed() >= budget_s) && !stopping()) {
    if (o.lr_min_ratio < 1.0) {
      double frac = 0;
      if (o.max_steps > 0) frac = double(step - o.warmup_steps) / double(std::max<long>(1, o.max_steps - o.warmup_steps));
      else frac = elapsed() / budget_s;
      frac = std::clamp(frac, 0.0, 1.0);
      trainer.set_lr_scale(o.lr_min_ratio + (1 - o.lr_min_ratio) * 0.5 * (1 + std::cos(std::numbers::pi * frac)));
    }
    const Batch& batch = source.next();
    // A diverged run (a NaN or infinity in the loss, or in the gradients or weights, found by the
    // trainer) stops here: nothing of it is evaluated or saved, the files of the last evaluation
    // stay as they were.
    auto kept = [&]() -> std::string {
      if (!files) return "";
      if (last_eval_step < 0 && !o.resume) return "; no checkpoint was written in " + o.out_dir.string();
      return "; " + o.out_dir.string() + " keeps the checkpoints of step " + std::to_string(std::max(last_eval_step, start_step));
    };
    StepMetrics m;
    try {
      m = trainer.step(batch);
    } catch (const NonFiniteError& e) {
      throw NonFiniteError(std::string("fit: ") + e.what() + "; nothing was saved after it" + kept());
    }
    ++step;
    if (!std::isfinite(m.total_loss))
      throw NonFiniteError("fit: the training loss is not finite (" + std::to_string(m.total_loss) + ") at step " +
                           std::to_string(step) + ": the run diverged; nothing was saved after it" + kept() +
                           " (lower the learning rate or check the optimiser settings)");
    if (o.on_step) o.on_step(step, m);
    acc_loss += m.mean_total_loss();
    acc_lm += m.mean_lm_loss();
    acc_qh += m.batch_rows > 0 ? m.q_halt_loss / m.batch_rows : 0.0;
    acc_acc += m.accuracy;
    acc_count += m.count;
    acc_exact += m.exact_accuracy;
    acc_qacc += m.q_halt_accuracy;
    acc_steps += m.steps;
    ++acc_calls;
    if (step % o.log_every == 0 || step == target) {
      const double dt = std::chrono::duration<double>(clock::now() - interval_t0).count();
      const double c = double(std::max<long>(acc_count, 1));
      char row[512];
      std::snprintf(row, sizeof row, "train,%ld,%.2f,%.6g,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.3f,%.3f,,,,,,,,%.1f,,", step,
                    elapsed_before + elapsed(), m.lr, acc_loss / double(acc_calls), acc_lm / double(acc_calls),
                    acc_qh / double(acc_calls), acc_acc / c, double(acc_exact) / c, double(acc_qacc) / c,
                    double(acc_steps) / c, dt > 0 ? double(acc_calls) / dt : 0.0, cpu_total());
      csv_rows.push_back(row);
      acc_loss = acc_lm = acc_qh = acc_acc = 0;
      acc_count = acc_exact = acc_qacc = acc_steps = acc_calls = 0;
      interval_t0 = clock::now();
    }
    {
      const double w = bar_n == 0 ? 1.0 : 0.05;
      bar_loss += w * (m.mean_total_loss() - bar_loss);
      bar_acc += w * (m.accuracy - bar_acc);
      bar_exact += w * (double(m.exact_accuracy) - bar_exact);
      bar_count += w * (double(m.count) - bar_count);
      ++bar_n;
      const double el = elapsed();
      const double rate = double(step - start_step) / std::max(el, 1e-9);
      double frac = -1, eta = -1;
      if (o.max_steps > 0) {
        frac = double(step) / double(o.max_steps);
        eta = double(o.max_steps - step) / std::max(rate, 1e-9);
      }
      if (budget_s > 0) {
        const double f2 = el / budget_s, eta2 = budget_s - el;
        if (frac < 0 || f2 > frac) frac = f2;
        if (eta < 0 || eta2 < eta) eta = eta2;
      }
      const double c = std::max(bar_count, 1e-9);
      char text[300];
      std::snprintf(text, sizeof text, "step %ld%s  loss %.4f  acc %.3f  exact %.3f  %.2f steps/s  ETA %s%s", step,
                    o.max_steps > 0 ? ("/" + std::to_string(o.max_steps)).c_str() : "", bar_loss, bar_acc / c,
                    bar_exact / c, rate, format_duration(eta).c_str(),
                    last_eval_step >= 0 ? ("  eval " + percent(last.has_valid() ? last.valid : last.exact)).c_str() : "");
      progress.update(text, frac);
    }
    if (o.eval_every > 0 && step % o.eval_every == 0) eval_and_save();
  }
  progress.finish();
  res.interrupted = stopping();
  if (last_eval_step != trainer.step_count()) eval_and_save();
  res.final_eval = last;
  res.step = trainer.step_count();
  res.steps_this_run = res.step - start_step;
  res.seconds = elapsed();
  res.total_seconds = elapsed_before + res.seconds;
  res.cpu_seconds = cpu_total();
  if (files && o.plot) {
    const fs::path png = o.out_dir / "curve.png";
    if (plot_training_curve(res.metrics_path, png, o.title.empty() ? std::string("trm training run") : o.title))
      res.plot_path = png;
  }
  return res;
}

}  // namespace trm
