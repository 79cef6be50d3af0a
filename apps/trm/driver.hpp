#pragma once
// The task-neutral part of `trm <task> train|eval`: the compiled model set for a task, training
// through trm::fit (generated data or a reference-format dataset, --data), evaluation of a model
// on examples or on a dataset's test split. The task files (sudoku_impl.hpp, maze_impl.hpp) add
// reading and printing puzzles.
#include <algorithm>
#include <numeric>
#include <random>
#include <trm/data/puzzle_dataset.hpp>
#include <trm/data/sources.hpp>
#include <trm/train/fit.hpp>
#include <trm/trm.hpp>
#include <unordered_set>

#include "cli_common.hpp"
#include "entry.hpp"

#include <unistd.h>

namespace trmcli {

// The schedule and halting policy with run-time counts: every model gets n, T and N_sup of its
// ModelSpec through ModelArgs (model_args below), so nothing about them is process-wide.
using Schedule = trm::TrmRecursion<>;
using Halting = trm::BceHalting<>;

// The model configuration of a task: the sequence and vocabulary come from the Task type.
template <class TaskT, class Mixer, int Hidden, int Layers, int Prefix>
struct TaskModelConfig {
  static constexpr int rows = TaskT::rows, cols = TaskT::cols;
  static constexpr int vocab = TaskT::vocab_size;
  static constexpr int hidden = Hidden, layers = Layers;
  static constexpr trm::ConfigOptions options{.puzzle_emb_len = Prefix};
  using mixer = Mixer;
  using schedule = Schedule;
  using halting = Halting;
};

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

template <class TaskT, class Mixer, int H, class B, class F>
int by_prefix(const ModelSpec& s, F& f) {
  switch (s.prefix) {
    case 4: return f.template operator()<trm::Model<TaskModelConfig<TaskT, Mixer, H, 2, 4>, B>>();
  }
  throw CliError("internal error: prefix " + std::to_string(s.prefix) + " is not dispatched");
}
template <class TaskT, template <int> class MixerFor, class B, class F>
int by_hidden(const ModelSpec& s, F& f) {
  switch (s.hidden) {
    case 64: return by_prefix<TaskT, MixerFor<64>, 64, B>(s, f);
    case 128: return by_prefix<TaskT, MixerFor<128>, 128, B>(s, f);
    case 256: return by_prefix<TaskT, MixerFor<256>, 256, B>(s, f);
  }
  throw CliError("internal error: hidden " + std::to_string(s.hidden) + " is not dispatched");
}

// Tasks compiled with the attention mixer only (ARC: TRM-Att, as the reference).
template <class TaskT>
inline constexpr bool attention_only_task = false;

// Calls f.template operator()<Model>() with the compiled model for `s` (the curated set of
// cli_common.hpp: mixer x hidden x layers x prefix, for the task's size); anything else is a
// CliError listing the supported values.

// B: the backend the model runs on (trm::cpu, or the GPU's).
template <class TaskT, class B, class F>
int with_model(const ModelSpec& s, F&& f) {
  s.validate();
  if constexpr (attention_only_task<TaskT>) {
    return by_hidden<TaskT, AttFor, B>(s, f);
  } else {
    if (s.mixer == "mlp") return by_hidden<TaskT, MlpFor, B>(s, f);
    return by_hidden<TaskT, AttFor, B>(s, f);
  }
}

inline void set_threads(int threads) {
  if (threads <= 0) {
    const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
    threads = int(std::clamp<long>(cores, 1, 2));
  }
  trm::cpu::set_num_threads(threads);
}

inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream) {
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ull * (stream + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline json train_flags_json(const TrainArgs& a) {
  return json{{"batch", a.batch},        {"lr", a.lr},         {"lr_min_ratio", a.lr_min_ratio},
              {"warmup", a.warmup},      {"weight_decay", a.weight_decay},
              {"puzzle_emb_lr", a.puzzle_emb_lr}, {"puzzle_emb_wd", a.puzzle_emb_wd},
              {"beta1", a.beta1},        {"beta2", a.beta2},   {"optimizer", a.optimizer},
              {"loss", a.loss},          {"blanks", a.blanks}, {"loops", a.loops},
              {"min_dist", a.min_dist},  {"data", a.data},     {"init", a.init},     {"seed", a.seed},
              {"ema", a.ema},            {"halt_explore", a.halt_explore},
              {"eval_every", a.eval_every}, {"eval_size", a.eval_size},
              {"log_every", a.log_every}, {"holdout", a.holdout}};
}

// ---- evaluation ------------------------------------------------------------------------------------------
// Is `pred` (a model's tokens) a valid answer to `question` for the task; tokens that do not
// decode are not.
template <class TaskT>
bool valid_prediction(const TaskT& task, const typename TaskT::puzzle_type& question, std::span<const std::int32_t> pred) {
  trm::data::TaskTokens<TaskT> t{};
  if (pred.size() != t.size()) return false;
  for (std::size_t k = 0; k < t.size(); ++k) {
    if (pred[k] < 0 || pred[k] >= TaskT::vocab_size) return false;
    t[k] = std::uint8_t(pred[k]);
  }
  try {
    return task.is_valid_answer(question, task.decode(std::span<const std::uint8_t>(t)));
  } catch (const trm::ValueError&) {
    return false;
  }
}

// Every example through max_steps supervision steps (and early exit), in batches.
template <class M, class TaskT>
trm::EvalReport evaluate_examples(const M& model, const TaskT& task, std::span<const trm::data::TaskExample<TaskT>> set,
                                  int batch_size, int max_steps) {
  trm::Evaluator<M> ev(model, max_steps);
  for (std::size_t start = 0; start < set.size(); start += std::size_t(batch_size)) {
    const auto chunk = set.subspan(start, std::min(set.size() - start, std::size_t(batch_size)));
    const trm::Batch b = trm::data::make_batch(task, chunk);
    ev.add(b, trm::index_t(chunk.size()),
           [&](trm::index_t r, std::span<const std::int32_t> pred) { return valid_prediction(task, chunk[std::size_t(r)].question, pred); });
  }
  return ev.report();
}

// The examples `picked` (indices into set 0 of the dataset, in order) of a dataset split.
template <class M, class TaskT>
trm::EvalReport evaluate_dataset(const M& model, const TaskT& task, const trm::data::PuzzleDataset& d,
                                 const std::vector<std::int64_t>& picked, int batch_size, int max_steps) {
  trm::Evaluator<M> ev(model, max_steps);
  constexpr auto L = std::size_t(trm::data::task_seq_len<TaskT>);
  const auto& s = d.sets[0];  // the task datasets have one set per split ("all")
  for (std::size_t start = 0; start < picked.size(); start += std::size_t(batch_size)) {
    const std::vector<std::int64_t> rows(picked.begin() + std::ptrdiff_t(start),
                                         picked.begin() + std::ptrdiff_t(std::min(picked.size(), start + std::size_t(batch_size))));
    std::vector<std::int32_t> puzzles;
    for (auto e : rows) puzzles.push_back(s.puzzle_of(e));
    const trm::Batch b = d.collate(s, rows, puzzles);
    ev.add(b, trm::index_t(rows.size()), [&](trm::index_t r, std::span<const std::int32_t> pred) {
      trm::data::TaskTokens<TaskT> q{};
      for (std::size_t k = 0; k < L; ++k) q[k] = std::uint8_t(b.inputs(r, trm::index_t(k)));
      try {
        return valid_prediction(task, task.decode(std::span<const std::uint8_t>(q)), pred);
      } catch (const trm::ValueError&) {
        return false;
      }
    });
  }
  return ev.report();
}

// `count` example indices of [0, n) (all when count >= n), a seeded sample in increasing order.
inline std::vector<std::int64_t> sample_indices(std::int64_t n, std::int64_t count, std::uint64_t seed) {
  std::vector<std::int64_t> idx(std::size_t(std::max<std::int64_t>(n, 0)));
  std::iota(idx.begin(), idx.end(), std::int64_t{0});
  if (count > 0 && count < n) {
    std::mt19937_64 rng(seed);
    std::shuffle(idx.begin(), idx.end(), rng);
    idx.resize(std::size_t(count));
    std::sort(idx.begin(), idx.end());
  }
  return idx;
}

// A reference-format dataset split, read with its checks, for this task's sequence and vocabulary.
template <class TaskT>
trm::data::PuzzleDataset read_task_dataset(const std::string& dir, const std::string& split, const TaskT& task) {
  trm::data::PuzzleDataset d;
  try {
    d = trm::data::PuzzleDataset::read(dir, split);
  } catch (const std::exception& e) {
    throw CliError("--data " + dir + ": " + e.what());
  }
  const auto& m = d.metadata;
  if (m.seq_len != trm::data::task_seq_len<TaskT> || m.vocab_size > TaskT::vocab_size)
    throw CliError("--data " + dir + "/" + split + ": a dataset of seq_len " + std::to_string(m.seq_len) + " and vocab " +
                   std::to_string(m.vocab_size) + ", expected seq_len " + std::to_string(trm::data::task_seq_len<TaskT>) +
                   " and vocab <= " + std::to_string(TaskT::vocab_size) + " for " + task.name());
  if (d.sets.empty()) throw CliError("--data " + dir + "/" + split + ": no sets");
  return d;
}

// ---- training --------------------------------------------------------------------------------------------
// Fine-tuning's start: the weights of a checkpoint of the same configuration, its puzzle table
// extended to the model's rows (new rows: the mean of the old ones, trm::extend_puzzle_table).
template <class M>
void init_from_checkpoint(M& model, const std::string& path) {
  try {
    const auto file = trm::io::SafetensorsFile::load(path);
    const trm::index_t rows = trm::checkpoint_puzzle_ids(file);
    if (rows > model.num_puzzle_ids())
      throw CliError("its puzzle table has " + std::to_string(rows) + " rows, more than the " +
                     std::to_string(model.num_puzzle_ids()) + " puzzle ids of --data: a dataset built for another table "
                     "(build it with ids that continue the checkpoint's)");
    if (rows == model.num_puzzle_ids()) trm::load_model(model, file);
    else trm::load_model(model, trm::extend_puzzle_table(file, model.num_puzzle_ids()));
    std::printf("  init: %s (puzzle table %lld -> %lld rows, new rows the mean of the old)\n", path.c_str(),
                static_cast<long long>(rows), static_cast<long long>(model.num_puzzle_ids()));
  } catch (const std::exception& e) {
    throw CliError("--init " + path + ": " + e.what());
  }
}

// Trains a model of a.model on `task` through trm::fit: generated examples (task.generate, never
// one of `held_out`) or, with --data, the reference's sampling of DIR/train; evaluated on
// a.eval_size generated examples (a seed stream of their own, held out of training) or a seeded
// sample of DIR/test. Opt: trm::AdamW or trm::AdamAtan2.
template <class TaskT, class M, class Opt>
int train_task(const TrainArgs& a, const std::optional<CheckpointInfo>& resume, const TaskT& task,
               std::unordered_set<std::string> held_out, const std::string& data_note) {
  set_threads(a.threads);
  const bool from_data = !a.data.empty();
  std::optional<trm::data::PuzzleDataset> train_data, test_data;
  std::vector<trm::data::TaskExample<TaskT>> eval_set;
  std::vector<std::int64_t> eval_picked;
  if (from_data) {
    train_data = read_task_dataset(a.data, "train", task);
    test_data = read_task_dataset(a.data, "test", task);
    eval_picked = sample_indices(test_data->num_examples(test_data->sets[0]), a.eval_size, mix_seed(a.seed, 2));
  } else if constexpr (trm::data::GeneratingTask<TaskT>) {
    trm::Rng eval_rng(mix_seed(a.seed, 2));
    for (int i = 0; i < a.eval_size; ++i) {
      eval_set.push_back(task.generate(eval_rng));
      held_out.insert(trm::data::question_key(task, eval_set.back().question));
    }
  } else {
    throw CliError("trm " + a.model.task + " train: no generator for " + task.name() + ": give --data DIR (a reference-format dataset)");
  }
  const trm::index_t puzzle_ids = from_data ? trm::index_t(train_data->metadata.num_puzzle_identifiers) : 1;
  M model(model_args<M>(a.model, puzzle_ids, a.seed));
  if (!a.init.empty() && !resume) init_from_checkpoint(model, a.init);
  const Opt opt{.lr = a.lr, .weight_decay = a.weight_decay, .beta1 = a.beta1, .beta2 = a.beta2};
  trm::TrainOptions to;
  to.schedule = trm::LrSchedule{.warmup_steps = a.warmup, .total_steps = std::max<long>(a.steps, 1), .min_ratio = 1.0};
  to.ema_rate = a.ema;
  to.loss = a.loss == "softmax" ? trm::LossType::softmax_cross_entropy : trm::LossType::stablemax_cross_entropy;
  to.halt_exploration_prob = a.halt_explore;
  to.seed = mix_seed(a.seed, 3);
  to.puzzle_emb_lr = a.puzzle_emb_lr;
  to.puzzle_emb_weight_decay = a.puzzle_emb_wd;
  trm::Trainer<M, Opt> trainer(model, opt, to);

  std::printf("trm %s train: %s (backend %s)\n", a.model.task.c_str(), a.model.describe().c_str(), M::backend_type::name);
  std::printf("  %lld parameters; %d net calls per supervision step; batch %d, %s lr %g (warmup %ld%s), wd %g, "
              "EMA %g, %s loss, %s, seed %llu, %d thread(s)\n",
              static_cast<long long>(model.num_parameters()), model.recursion().net_calls_per_step(), a.batch, Opt::name,
              a.lr, a.warmup,
              a.lr_min_ratio < 1 ? (", cosine to x" + std::to_string(a.lr_min_ratio).substr(0, 4)).c_str() : "",
              a.weight_decay, a.ema, a.loss.c_str(), data_note.c_str(), static_cast<unsigned long long>(a.seed),
              trm::cpu::num_threads());
  if (from_data)
    std::printf("  data: %s (train: %lld examples, %lld puzzle ids; evaluation: %zu of %lld test examples)%s\n",
                a.data.c_str(), static_cast<long long>(train_data->total_examples()),
                static_cast<long long>(train_data->metadata.num_puzzle_identifiers), eval_picked.size(),
                static_cast<long long>(test_data->total_examples()),
                resume ? (", resuming at step " + step_of(*resume)).c_str() : "");
  std::printf("  budget: %s%s%s; held out: %zu questions (%zu for periodic evaluation)%s\n",
              a.steps > 0 ? ("until step " + std::to_string(a.steps)).c_str() : "", a.steps > 0 && a.minutes > 0 ? " or " : "",
              a.minutes > 0 ? (std::to_string(a.minutes).substr(0, 5) + " minutes").c_str() : "",
              from_data ? eval_picked.size() : held_out.size(), from_data ? eval_picked.size() : eval_set.size(),
              resume ? (", resuming at step " + step_of(*resume)).c_str() : "");
#if defined(TRM_HAVE_CBLAS)
  std::printf("  output: %s; OpenBLAS kernels: %s\n", a.out.c_str(), openblas_get_corename());
#else
  std::printf("  output: %s\n", a.out.c_str());
#endif
  std::fflush(stdout);

  trm::FitOptions fo;
  fo.max_steps = a.steps;
  fo.max_minutes = a.minutes;
  fo.eval_every = a.eval_every;
  fo.log_every = a.log_every;
  fo.lr_min_ratio = a.lr_min_ratio;
  fo.warmup_steps = a.warmup;
  fo.out_dir = a.out;
  fo.resume = resume.has_value();
  fo.progress = !a.quiet;
  fo.plot = a.plot;
  fo.title = a.model.describe();
  fo.metadata = {{kMetaModel, a.model.to_json().dump()}, {kMetaTrain, train_flags_json(a).dump()}};
  auto evaluate = [&](const M& weights) {
    if (from_data) return evaluate_dataset(weights, task, *test_data, eval_picked, a.eval_batch, weights.max_steps());
    return evaluate_examples(weights, task, std::span<const trm::data::TaskExample<TaskT>>(eval_set), a.eval_batch,
                             weights.max_steps());
  };
  trm::FitResult r;
  try {
    if (from_data) {
      trm::data::DatasetSource source(*train_data, {.global_batch_size = a.batch, .seed = mix_seed(a.seed, 1)});
      r = trm::fit(trainer, source, evaluate, fo);
    } else if constexpr (trm::data::GeneratingTask<TaskT>) {
      trm::data::GeneratedSource<TaskT> source(task, a.batch, mix_seed(a.seed, 1), std::move(held_out));
      r = trm::fit(trainer, source, evaluate, fo);
    }
  } catch (const CliError&) {
    throw;
  } catch (const std::exception& e) {
    throw CliError(e.what());
  }
  const auto& s = r.final_eval;
  if (r.interrupted) std::printf("interrupted at step %ld: saved\n", r.step);
  std::printf("trained %ld steps (%ld in this run) in %s; %.2f steps/s; CPU time %s (%.2f cores busy on average)\n", r.step,
              r.steps_this_run, format_duration(r.total_seconds).c_str(), double(r.steps_this_run) / std::max(r.seconds, 1e-9),
              format_duration(r.cpu_seconds).c_str(), r.cpu_seconds / std::max(r.total_seconds, 1e-9));
  std::printf("held-out exact accuracy: %s after %d steps, %s with early exit (mean %.2f steps), %lld %s, %s weights\n",
              percent(s.exact).c_str(), s.max_steps, percent(s.exact_early).c_str(), s.mean_steps_early,
              static_cast<long long>(s.count), a.model.is_maze() ? "mazes" : "puzzles", r.weights.c_str());
  if (s.has_valid())
    std::printf("held-out valid answers: %s after %d steps, %s with early exit%s\n", percent(s.valid).c_str(), s.max_steps,
                percent(s.valid_early).c_str(), a.model.is_maze() ? " (valid and shortest paths)" : " (valid solutions)");
  std::printf("checkpoint: %s\nmetrics: %s\n", r.model_path.string().c_str(), r.metrics_path.string().c_str());
  if (!r.plot_path.empty()) std::printf("curve: %s\n", r.plot_path.string().c_str());
  std::fflush(stdout);
  return r.interrupted ? kExitInterrupted : kExitOk;
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

// The table of `trm <task> eval`.
// The exit status of `eval`: kExitUnsolved unless every example was solved in the headline reading
// (valid answers where the task checks them, exact answers otherwise).
inline int eval_exit_status(const trm::EvalReport& r, bool early_exit_headline) {
  const double solved = r.has_valid() ? (early_exit_headline ? r.valid_early : r.valid)
                                      : (early_exit_headline ? r.exact_early : r.exact);
  return r.count > 0 && solved == 1.0 ? kExitOk : kExitUnsolved;
}

inline void print_eval_table(const trm::EvalReport& r, const char* valid_word) {
  const double n = double(std::max<std::int64_t>(r.count, 1));
  std::printf("%-22s %9s %14s %11s %11s %11s\n", "mode", "exact", "changed cells", valid_word, "mean steps", "ms/example");
  char label[64];
  std::snprintf(label, sizeof label, "all %d steps", r.max_steps);
  std::printf("%-22s %9s %14s %11s %11d %11.3f\n", label, percent(r.exact).c_str(), percent(r.cells, 2).c_str(),
              r.has_valid() ? percent(r.valid).c_str() : "-", r.max_steps, 1e3 * r.seconds / n);
  std::snprintf(label, sizeof label, "early exit (<= %d)", r.max_steps);
  std::printf("%-22s %9s %14s %11s %11.2f %11s\n", label, percent(r.exact_early).c_str(), percent(r.cells_early, 2).c_str(),
              r.has_valid() ? percent(r.valid_early).c_str() : "-", r.mean_steps_early, "(same run)");
}

}  // namespace trmcli
