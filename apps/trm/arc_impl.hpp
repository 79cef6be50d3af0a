#pragma once
// `trm arc train|eval|submit` for one canvas side (training through driver.hpp; evaluation by
// the official evaluator's voting, trm/data/arc/evaluate.hpp); arc_<side>.cpp instantiate them.
#include <trm/data/arc.hpp>

#include "cli_common.hpp"
#include "driver.hpp"
#include "entry.hpp"

namespace trmcli {

namespace arc = trm::data::arc;

template <int Side>
inline constexpr bool attention_only_task<arc::CanvasTask<Side>> = true;

// Every test-split row of the first `variants` puzzles (0: all) of each group through the model
// (all steps, as the official evaluation), voted into `voter`. Returns the rows run.
template <class M>
std::int64_t vote_test_split(const M& model, const trm::data::PuzzleDataset& test, arc::Voter& voter, int batch, int steps,
                             int variants, bool progress) {
  trm::Solver<M> solver(model);
  const auto& s = test.sets.at(0);
  std::vector<std::int64_t> rows;
  std::vector<std::int32_t> puzzles;
  for (std::int64_t g = 0; g < s.num_groups(); ++g) {
    const std::int32_t p0 = s.group_indices[std::size_t(g)], p1 = s.group_indices[std::size_t(g + 1)];
    const std::int32_t pend = variants > 0 ? std::min(p1, p0 + variants) : p1;
    for (std::int32_t p = p0; p < pend; ++p)
      for (std::int32_t e = s.puzzle_indices[std::size_t(p)]; e < s.puzzle_indices[std::size_t(p + 1)]; ++e) {
        rows.push_back(e);
        puzzles.push_back(p);
      }
  }
  const auto start = std::chrono::steady_clock::now();
  const trm::index_t L = test.metadata.seq_len;
  for (std::size_t b0 = 0; b0 < rows.size(); b0 += std::size_t(batch)) {
    const std::size_t n = std::min(rows.size() - b0, std::size_t(batch));
    const trm::Batch b = test.collate(s, std::span<const std::int64_t>(rows).subspan(b0, n),
                                      std::span<const std::int32_t>(puzzles).subspan(b0, n));
    const auto res = solver.solve(b, trm::EarlyExit::off, steps);
    for (std::size_t r = 0; r < n; ++r)
      voter.add(b.puzzle_identifiers.data()[r], std::span<const std::int32_t>(&b.inputs(trm::index_t(r), 0), std::size_t(L)),
                std::span<const std::int32_t>(&res.predictions(trm::index_t(r), 0), std::size_t(L)), double(res.q_halt[r]));
    if (progress) {
      const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\r  %zu of %zu rows, %.1f rows/s   ", b0 + n, rows.size(), double(b0 + n) / std::max(sec, 1e-9));
      if (b0 + n == rows.size()) std::fprintf(stderr, "\n");
    }
  }
  return std::int64_t(rows.size());
}

inline void print_arc_scores(const arc::ArcScores& s) {
  std::printf("%-10s %14s %18s\n", "", "task mean", "test outputs");
  for (std::size_t i = 0; i < s.ks.size(); ++i)
    std::printf("pass@%-5d %14s %11lld of %lld\n", s.ks[i], percent(s.task_mean[i]).c_str(),
                static_cast<long long>(s.solved_inputs[i]), static_cast<long long>(s.scored_inputs));
  std::printf("scored: %lld tasks, %lld test inputs (%lld without a solution, not scored); %lld predictions voted\n",
              static_cast<long long>(s.scored_tasks), static_cast<long long>(s.scored_inputs),
              static_cast<long long>(s.unscored_inputs), static_cast<long long>(s.predictions));
  if (!s.fallbacks.empty()) {
    std::printf("no prediction for %zu test input(s); submitted their input grid instead:", s.fallbacks.size());
    for (std::size_t i = 0; i < s.fallbacks.size() && i < 10; ++i) std::printf(" %s%s", s.fallbacks[i].c_str(), i + 1 < s.fallbacks.size() ? "," : "");
    std::printf("%s\n", s.fallbacks.size() > 10 ? " ..." : "");
  }
}

inline void write_submission(const arc::ArcScores& s, const std::string& path) {
  const std::string text = trm::io::dump_like_python(s.submission);
  try {
    trm::io::write_file_atomically(path, [&](trm::io::AtomicFileWriter& w) { w.write(std::string_view(text)); });
  } catch (const std::exception& e) {
    throw CliError(path + ": cannot write the submission: " + e.what());
  }
  std::size_t entries = 0;
  for (const auto& item : s.submission.items()) entries += item.value().size();
  std::printf("submission: %s (%zu tasks, %zu test inputs, 2 attempts each)\n", path.c_str(), s.submission.size(), entries);
}

// pass@2 (the official score) on every scored input: exit 0; otherwise kExitUnsolved.
inline int arc_exit_status(const arc::ArcScores& s) {
  return s.scored_inputs > 0 && s.solved_inputs[s.k_index(2)] == s.scored_inputs ? kExitOk : kExitUnsolved;
}

template <int Side, class M>
int arc_eval_model(const ArcEvalArgs& a, const CheckpointInfo& info) {
  using TaskT = arc::CanvasTask<Side>;
  set_threads(a.threads);
  const TaskT task;
  const auto test = read_task_dataset(a.data, "test", task);
  std::vector<arc::Task> puzzles;
  try {
    puzzles = arc::read_test_puzzles(fs::path(a.data) / "test_puzzles.json");
  } catch (const std::exception& e) {
    throw CliError(std::string("--data ") + a.data + ": " + e.what());
  }
  if (test.identifiers.empty()) throw CliError("--data " + a.data + ": no identifiers.json (an ARC build has one)");
  arc::Voter voter(test.identifiers, puzzles, Side, std::int32_t(test.metadata.blank_identifier_id));
  std::printf("data: %s/test (%lld rows, %zu test tasks)%s\n", a.data.c_str(), static_cast<long long>(test.total_examples()),
              puzzles.size(), a.variants > 0 ? (", first " + std::to_string(a.variants) + " variants per test input").c_str() : "");
  arc::ArcScores last;
  for (std::size_t c = 0; c < a.checkpoints.size(); ++c) {
    const CheckpointInfo ci = c == 0 ? info : read_checkpoint_info(a.checkpoints[c]);
    if (ci.spec.to_json() != info.spec.to_json())
      throw CliError(a.checkpoints[c] + ": another model configuration than " + a.checkpoints[0] + " (" + ci.spec.describe() + ")");
    const M model = load_checkpoint_model<M>(a.checkpoints[c], ci.spec);
    if (model.num_puzzle_ids() < test.metadata.num_puzzle_identifiers)
      throw CliError(a.checkpoints[c] + ": its puzzle table has " + std::to_string(model.num_puzzle_ids()) + " rows, the data " +
                     std::to_string(test.metadata.num_puzzle_identifiers) + " ids: not a model of this build");
    const int steps = a.steps > 0 ? a.steps : model.max_steps();
    std::printf("checkpoint: %s (%s, step %s, %s weights), %d steps, %d threads\n", a.checkpoints[c].c_str(),
                ci.spec.describe().c_str(), step_of(ci).c_str(), weights_of(ci).c_str(), steps, trm::cpu::num_threads());
    std::fflush(stdout);
    if (a.separate) voter.clear();
    vote_test_split(model, test, voter, a.batch, steps, a.variants, true);
    if (a.separate || c + 1 == a.checkpoints.size()) {
      last = voter.result();
      if (a.checkpoints.size() > 1) std::printf("%s:\n", a.separate ? a.checkpoints[c].c_str() : "votes pooled over the checkpoints");
      print_arc_scores(last);
    }
  }
  if (!a.submission.empty()) write_submission(last, a.submission);
  return arc_exit_status(last);
}

template <int Side, class M, class Opt>
int arc_submit_model(const ArcSubmitArgs& a, const CheckpointInfo& info) {
  using TaskT = arc::CanvasTask<Side>;
  set_threads(a.threads);
  // 1. the new tasks, as a test set whose ids continue the checkpoint's table
  std::vector<arc::Task> tasks;
  try {
    std::optional<fs::path> sol;
    if (!a.solutions.empty()) sol = a.solutions;
    else if (fs::exists(arc::solutions_beside(a.challenges))) sol = arc::solutions_beside(a.challenges);
    tasks = arc::read_kaggle(a.challenges, sol);
    if (sol) std::printf("solutions: %s (the submission is scored)\n", sol->string().c_str());
  } catch (const std::exception& e) {
    throw CliError(e.what());
  }
  trm::index_t old_rows = 0;
  try {
    old_rows = trm::checkpoint_puzzle_ids(trm::io::SafetensorsFile::load(a.checkpoint));
  } catch (const std::exception& e) {
    throw CliError(a.checkpoint + ": " + e.what());
  }
  const fs::path out = a.out, data = out / "data";
  arc::Build build;
  try {
    build = arc::build_dataset<Side>({arc::Subset{"submit", tasks}},
                                     {.num_aug = a.num_aug, .seed = a.seed, .puzzle_identifiers_start = std::int32_t(old_rows),
                                      .test_set_names = {"submit"}, .skip_oversized = true});
    build.write(data);
  } catch (const std::exception& e) {
    throw CliError("building the tasks' dataset: " + std::string(e.what()));
  }
  std::printf("tasks: %zu from %s (%zu larger than the %dx%d canvas: they get the fallback), %d augmentations each; "
              "puzzle ids %lld..%lld continue the checkpoint's %lld; dataset: %s\n",
              tasks.size(), a.challenges.c_str(), build.report.skipped.size(), Side, Side, a.num_aug,
              static_cast<long long>(old_rows), static_cast<long long>(build.report.num_identifiers - 1),
              static_cast<long long>(old_rows), data.string().c_str());
  std::fflush(stdout);
  // 2. fine-tune on the new tasks' demonstrations (optional), from the checkpoint, table extended
  std::string weights = a.checkpoint;
  CheckpointInfo used = info;
  if (a.finetune_steps > 0) {
    TrainArgs ft;
    ft.model = info.spec;
    ft.data = data.string();
    ft.init = a.checkpoint;
    ft.out = (out / "finetune").string();
    ft.steps = a.finetune_steps;
    ft.minutes = a.finetune_minutes;
    ft.batch = a.finetune_batch;
    ft.lr = a.finetune_lr;
    ft.puzzle_emb_lr = 1e-2;  // the reference's ARC rate: the new tasks' rows start at the mean and must move
    if (info.train.is_object() && info.train.contains("puzzle_emb_lr") && info.train["puzzle_emb_lr"].is_number())
      ft.puzzle_emb_lr = info.train["puzzle_emb_lr"].get<double>();
    ft.warmup = a.finetune_warmup;
    ft.eval_every = 0;
    ft.eval_size = 64;
    ft.threads = a.threads;
    ft.quiet = a.quiet;
    ft.plot = false;
    if (fs::exists(fs::path(ft.out) / "train_state.safetensors"))
      throw CliError(ft.out + " already holds a fine-tuning run: choose another --out");
    const int rc = train_task<TaskT, M, Opt>(ft, std::nullopt, TaskT{}, {}, "ARC tasks' demonstrations (fine-tuning)");
    if (rc != kExitOk) return rc;
    weights = (fs::path(ft.out) / "model.safetensors").string();
    used = read_checkpoint_info(weights);
  }
  // 3. the model with the extended table, votes over the test split, submission.json
  M model(model_args<M>(used.spec, trm::index_t(build.report.num_identifiers), 0));
  init_from_checkpoint(model, weights);
  const int steps = a.steps > 0 ? a.steps : model.max_steps();
  arc::Voter voter(build.identifiers, tasks, Side);
  const auto* test = build.split("test");
  if (test) vote_test_split(model, *test, voter, a.batch, steps, a.variants, !a.quiet);
  const auto scores = voter.result();
  print_arc_scores(scores);
  write_submission(scores, (out / "submission.json").string());
  return kExitOk;
}

// ---- entry points (instantiated per canvas in arc_<side>.cpp) ---------------------------------------------
template <int Side, class B>
int arc_train(const TrainArgs& a, const std::optional<CheckpointInfo>& resume) {
  using TaskT = arc::CanvasTask<Side>;
  if (a.data.empty()) throw CliError("trm arc train: give --data DIR, an ARC build (`trm arc build` or the official builder's)");
  return with_model<TaskT, B>(a.model, [&]<class M>() {
    if (a.optimizer == "adam-atan2") return train_task<TaskT, M, trm::AdamAtan2>(a, resume, TaskT{}, {}, "ARC dataset");
    return train_task<TaskT, M, trm::AdamW>(a, resume, TaskT{}, {}, "ARC dataset");
  });
}
template <int Side, class B>
int arc_eval(const ArcEvalArgs& a, const CheckpointInfo& info) {
  return with_model<arc::CanvasTask<Side>, B>(info.spec, [&]<class M>() { return arc_eval_model<Side, M>(a, info); });
}
template <int Side, class B>
int arc_submit(const ArcSubmitArgs& a, const CheckpointInfo& info) {
  const bool atan2 = info.train.is_object() && info.train.contains("optimizer") && info.train["optimizer"] == "adam-atan2";
  return with_model<arc::CanvasTask<Side>, B>(info.spec, [&]<class M>() {
    if (atan2) return arc_submit_model<Side, M, trm::AdamAtan2>(a, info);
    return arc_submit_model<Side, M, trm::AdamW>(a, info);
  });
}

#define TRM_CLI_INSTANTIATE_ARC(S, B)                                                           \
  template int arc_train<S, B>(const TrainArgs&, const std::optional<CheckpointInfo>&);       \
  template int arc_eval<S, B>(const ArcEvalArgs&, const CheckpointInfo&);                     \
  template int arc_submit<S, B>(const ArcSubmitArgs&, const CheckpointInfo&);

}  // namespace trmcli
