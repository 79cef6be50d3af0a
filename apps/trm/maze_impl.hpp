#pragma once
// `trm maze train|solve|eval` for one maze side (training and evaluation through driver.hpp);
// maze_<side>.cpp instantiate them.
#include <trm/data/maze.hpp>
#include <trm/data/maze/task.hpp>

#include "cli_common.hpp"
#include "driver.hpp"
#include "entry.hpp"

namespace trmcli {

namespace mz = trm::data::maze;

// The generator of `trm maze train` and `trm maze generate` for a side: min_dist 0 means the
// side's default (6 at 9x9, 34 at 30x30).
inline mz::GenerateOptions maze_generator(int side, double loops, int min_dist) {
  return {.rows = side, .cols = side, .loop_fraction = loops, .min_distance = min_dist > 0 ? min_dist : std::max(2, side * 4 / 3 - 6)};
}

// A maze to solve: its question, the stored answer when the file has one, and where it came from.
struct MazeInput {
  mz::Maze question;
  std::optional<mz::Maze> answer;
  std::string where;
};

// Maze-Hard CSV (source,question,answer,rating) or plain-text mazes (blank-line separated); "-" is
// stdin. A file starting with the CSV header is CSV.
inline std::vector<MazeInput> read_maze_inputs(const std::string& input, int side) {
  const std::string src = input == "-" ? "<stdin>" : input;
  std::string text;
  {
    std::ifstream file;
    auto reader = input_lines(input, "mazes", file);
    for (std::string line; reader.next(line);) {
      text += line;
      text += '\n';
    }
  }
  std::vector<MazeInput> out;
  std::istringstream is(text);
  if (text.rfind("source,", 0) == 0) {
    for (auto& e : mz::parse_csv(is, src, mz::MazeCsvOptions{.rows = side, .cols = side}))
      out.push_back({e.question, e.answer, src + ":" + std::to_string(e.line)});
  } else {
    long k = 0;
    for (auto& m : mz::parse_text(is, src)) {
      ++k;
      if (m.rows() != side || m.cols() != side)
        throw CliError(src + ": maze " + std::to_string(k) + ": expected " + std::to_string(side) + "x" + std::to_string(side) +
                       " (the checkpoint's size), found " + std::to_string(m.rows()) + "x" + std::to_string(m.cols()));
      if (auto why = mz::detail::start_goal_problem(m, "question")) throw CliError(src + ": maze " + std::to_string(k) + ": " + *why);
      out.push_back({m.without_path(), std::nullopt, src + ": maze " + std::to_string(k)});
    }
  }
  return out;
}

template <int Side, class M>
int maze_solve_model(const SolveArgs& a, const CheckpointInfo& info) {
  using TaskT = mz::MazeTask<Side>;
  set_threads(a.threads);
  const M model = load_checkpoint_model<M>(a.checkpoint, info.spec);
  const int max_steps = a.steps > 0 ? a.steps : model.max_steps();
  const auto mazes = read_maze_inputs(a.input, Side);
  if (mazes.empty()) throw CliError((a.input == "-" ? std::string("<stdin>") : a.input) + ": no mazes");
  const TaskT task;
  trm::Solver<M> solver(model);
  std::printf("model: %s (%s, step %s)\n", info.spec.describe().c_str(), a.checkpoint.c_str(),
              step_of(info).c_str());
  int n_ok = 0, n_exact = 0;
  long total_steps = 0;
  constexpr int L = Side * Side;
  for (std::size_t start = 0; start < mazes.size(); start += std::size_t(a.batch)) {
    const std::size_t end = std::min(mazes.size(), start + std::size_t(a.batch));
    std::vector<trm::data::TaskExample<TaskT>> rows;
    for (std::size_t i = start; i < end; ++i) rows.push_back({mazes[i].question, mazes[i].answer.value_or(mazes[i].question)});
    trm::Batch batch = trm::data::make_batch(task, rows);
    const auto res = solver.solve(batch, a.early_exit ? trm::EarlyExit::on : trm::EarlyExit::off, max_steps);
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const MazeInput& in = mazes[start + r];
      const std::span<const std::int32_t> pred(&res.predictions(trm::index_t(r), 0), L);
      std::string verdict;
      std::optional<mz::Maze> answer;
      bool ok = false;
      try {
        answer = mz::decode(pred, Side, Side);
        const auto why = mz::check_path(in.question, *answer);
        ok = !why;
        const auto d = mz::shortest_distance(in.question);
        verdict = ok ? "valid and shortest (" + std::to_string(*d) + " moves)"
                     : "NOT valid and shortest: " + *why + (d ? " (shortest: " + std::to_string(*d) + " moves)" : "");
      } catch (const trm::ValueError& e) {
        verdict = std::string("NOT a maze: ") + e.what();
      }
      const bool exact = answer && in.answer && *answer == *in.answer;
      n_ok += ok;
      n_exact += exact;
      total_steps += res.steps_used[r];
      std::printf("maze %zu (%s): %s%s; %d supervision step%s (q_halt %+.2f)\n", start + r + 1, in.where.c_str(),
                  verdict.c_str(), in.answer ? (exact ? ", equal to the stored answer" : ", differs from the stored answer") : "",
                  res.steps_used[r], res.steps_used[r] == 1 ? "" : "s", res.q_halt[r]);
      // Question | the model's answer, the path drawn as 'o'; tokens that are not cells print '?'.
      const std::string q = in.question.to_text();
      for (int y = 0; y < Side; ++y) {
        std::string row;
        for (int x = 0; x < Side; ++x) {
          const std::int32_t t = pred[std::size_t(y * Side + x)];
          row.push_back(t >= 1 && t <= 5 ? mz::charset[std::size_t(t - 1)] : '?');
        }
        std::printf("  %s | %s\n", q.substr(std::size_t(y) * (Side + 1), Side).c_str(), row.c_str());
      }
    }
  }
  std::printf("solved %d of %zu mazes with a valid shortest path (%s)%s, mean %.2f supervision steps%s\n", n_ok, mazes.size(),
              percent(double(n_ok) / double(mazes.size())).c_str(),
              (", " + std::to_string(n_exact) + " equal to a stored answer").c_str(),
              double(total_steps) / double(mazes.size()), a.early_exit ? " (early exit)" : "");
  return std::size_t(n_ok) == mazes.size() ? kExitOk : kExitUnsolved;
}

template <int Side, class M>
int maze_eval_model(const EvalArgs& a, const CheckpointInfo& info) {
  using TaskT = mz::MazeTask<Side>;
  set_threads(a.threads);
  const M model = load_checkpoint_model<M>(a.checkpoint, info.spec);
  const int max_steps = a.steps > 0 ? a.steps : model.max_steps();
  const TaskT task;
  std::vector<trm::data::TaskExample<TaskT>> examples;
  std::optional<trm::data::PuzzleDataset> test;
  std::vector<std::int64_t> picked;
  std::string from;
  if (!a.data.empty()) {
    test = read_task_dataset(a.data, "test", task);
    picked = sample_indices(test->num_examples(test->sets[0]), a.sample, a.seed);
    from = a.data + "/test";
  } else {
    auto inputs = read_maze_inputs(a.input, Side);
    for (auto i : sample_indices(std::int64_t(inputs.size()), a.sample, a.seed)) {
      auto& in = inputs[std::size_t(i)];
      if (!in.answer) {  // plain text: the BFS answer is the reference (with a unique path it is the only one)
        in.answer = mz::solve(in.question).answer;
        if (!in.answer) throw CliError(in.where + ": G cannot be reached from S");
      }
      examples.push_back({in.question, *in.answer});
    }
    from = a.input == "-" ? "<stdin>" : a.input;
  }
  const std::size_t count = test ? picked.size() : examples.size();
  if (count == 0) throw CliError(from + ": no mazes");
  std::printf("model: %s\ncheckpoint: %s (step %s, %s weights)\nmazes: %zu from %s%s, %d threads\n",
              info.spec.describe().c_str(), a.checkpoint.c_str(),
              step_of(info).c_str(),
              weights_of(info).c_str(), count, from.c_str(),
              a.sample > 0 ? (" (seeded sample, seed " + std::to_string(a.seed) + ")").c_str() : "", trm::cpu::num_threads());
  std::fflush(stdout);
  const trm::EvalReport r =
      test ? evaluate_dataset(model, task, *test, picked, a.batch, max_steps)
           : evaluate_examples(model, task, std::span<const trm::data::TaskExample<TaskT>>(examples), a.batch, max_steps);
  print_eval_table(r, "shortest");
  std::printf("exact accuracy: %s; valid and shortest: %s (%zu mazes)\n",
              percent(a.early_exit_headline ? r.exact_early : r.exact).c_str(),
              percent(a.early_exit_headline ? r.valid_early : r.valid).c_str(), count);
  return eval_exit_status(r, a.early_exit_headline);
}

// ---- entry points (instantiated per side in maze_<side>.cpp) ----------------------------------------------
template <int Side, class B>
int maze_train(const TrainArgs& a, const std::optional<CheckpointInfo>& resume) {
  using TaskT = mz::MazeTask<Side>;
  const TaskT task(maze_generator(Side, a.loops, a.min_dist), /*unique_paths=*/true);
  std::unordered_set<std::string> held_out;
  for (const auto& h : a.holdout)
    for (const auto& m : read_maze_inputs(h, Side)) held_out.insert(trm::data::question_key(task, m.question));
  char note[160];
  std::snprintf(note, sizeof note, "%s", a.data.empty() ? ("generated mazes (loops " + std::to_string(a.loops).substr(0, 4) +
                                                           ", min distance " + std::to_string(task.generator.min_distance) +
                                                           ", unique shortest paths)").c_str()
                                                        : "reference dataset");
  return with_model<TaskT, B>(a.model, [&]<class M>() {
    if (a.optimizer == "adam-atan2") return train_task<TaskT, M, trm::AdamAtan2>(a, resume, task, held_out, note);
    return train_task<TaskT, M, trm::AdamW>(a, resume, task, held_out, note);
  });
}
template <int Side, class B>
int maze_solve(const SolveArgs& a, const CheckpointInfo& info) {
  return with_model<mz::MazeTask<Side>, B>(info.spec, [&]<class M>() { return maze_solve_model<Side, M>(a, info); });
}
template <int Side, class B>
int maze_eval(const EvalArgs& a, const CheckpointInfo& info) {
  return with_model<mz::MazeTask<Side>, B>(info.spec, [&]<class M>() { return maze_eval_model<Side, M>(a, info); });
}

#define TRM_CLI_INSTANTIATE_MAZE(S, B)                                                            \
  template int maze_train<S, B>(const TrainArgs&, const std::optional<CheckpointInfo>&);        \
  template int maze_solve<S, B>(const SolveArgs&, const CheckpointInfo&);                       \
  template int maze_eval<S, B>(const EvalArgs&, const CheckpointInfo&);

}  // namespace trmcli
