#pragma once
// ARC evaluation as the official evaluator (evaluators/arc.py of TinyRecursiveModels, SPEC §7.2),
// in one process:
//   - every prediction of a test-split row (not the blank id's padding rows) is cropped
//     (canvas.hpp) and mapped back to its task's frame by the inverse of its variant's
//     augmentation (read from its puzzle name); the row's input, cropped and mapped back the same
//     way, says which test input of the task it answers;
//   - per (task, test input), each distinct predicted grid gets its vote count and the mean of
//     sigmoid(q_halt logit) of the last step; candidates rank by (count, mean) descending, ties
//     in order of first appearance (Python's stable sort);
//   - pass@K: the solution among the first K; two scores: the reference's (per task, the
//     fraction of its test inputs solved; then the mean over tasks) and Kaggle's (solved test
//     inputs over all test inputs);
//   - submission.json (Kaggle's format): for every task, for every test input in order,
//     {"attempt_1": grid, "attempt_2": grid} from the top two (the first repeated when there is
//     one; an empty crop is skipped there). The official code leaves out a test input that got
//     no prediction; here it gets a fallback (its own input grid, ARC's identity guess) and is
//     listed in `fallbacks`, so the file is never missing an entry.
// Pooling: a Voter keeps its votes until clear(): adding several evaluations (checkpoints of a
// run) pools them, the reference's default (aggregated_voting); clear() between them scores each
// alone. A test input whose output is a placeholder (no solution given) is voted on and
// submitted but not scored.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "trm/data/arc/augment.hpp"
#include "trm/data/arc/build.hpp"
#include "trm/data/arc/canvas.hpp"
#include "trm/data/arc/grid.hpp"

namespace trm::data::arc {

inline const std::vector<int>& reference_pass_ks() {
  static const std::vector<int> ks{1, 2, 5, 10, 100, 1000};
  return ks;
}

struct Candidate {
  Grid grid;
  std::int64_t votes = 0;
  double mean_q = 0.0;  // mean sigmoid(q_halt logit)
};

// The ranked candidates of one test input.
struct TestInputVotes {
  std::string task_id;
  int index = 0;          // the test input's position in its task
  bool scored = true;     // false: its output is a placeholder
  int rank_of_solution = -1;  // 0-based position of the solution among the candidates, -1 if absent
  std::vector<Candidate> candidates;
};

struct ArcScores {
  std::vector<int> ks;
  std::vector<double> task_mean;                // per K: mean over scored tasks of the fraction of test inputs solved
  std::vector<std::int64_t> solved_inputs;       // per K: scored test inputs solved
  std::int64_t scored_inputs = 0, scored_tasks = 0, unscored_inputs = 0;
  std::int64_t predictions = 0;                 // rows voted
  std::vector<std::string> fallbacks;           // "<task> test input <k>": no prediction, fallback submitted
  std::vector<TestInputVotes> inputs;           // in submission order
  nlohmann::ordered_json submission;            // Kaggle's submission.json

  double kaggle(std::size_t k_index) const {
    return scored_inputs > 0 ? double(solved_inputs[k_index]) / double(scored_inputs) : 0.0;
  }
  // The index of K in ks (ValueError when K was not asked for).
  std::size_t k_index(int k) const {
    for (std::size_t i = 0; i < ks.size(); ++i)
      if (ks[i] == k) return i;
    throw ValueError("ArcScores: pass@" + std::to_string(k) + " was not computed");
  }
};

class Voter {
 public:
  // identifiers: the dataset's id -> name table; test_puzzles: its test tasks (test_puzzles.json
  // or Build::test_puzzles); side: the canvas.
  Voter(std::vector<std::string> identifiers, std::vector<Task> test_puzzles, int side, std::int32_t blank_identifier_id = 0)
      : identifiers_(std::move(identifiers)), tasks_(std::move(test_puzzles)), side_(side), blank_(blank_identifier_id) {
    for (std::size_t t = 0; t < tasks_.size(); ++t) task_index_.emplace(tasks_[t].id, t);
    parsed_.resize(identifiers_.size());
  }

  // One row: its puzzle identifier, its input tokens and predicted tokens (side * side each) and
  // the q_halt logit of its last step. Rows of the blank id (batch padding) are skipped. A row of
  // a task that is not a test task, or whose input is none of its task's test inputs, is an
  // error: the dataset and the test puzzles do not belong together.
  template <class TokenIn, class TokenPred>
  void add(std::int32_t puzzle_identifier, std::span<const TokenIn> input, std::span<const TokenPred> prediction, double q_halt_logit) {
    if (puzzle_identifier == blank_) return;
    if (puzzle_identifier < 0 || std::size_t(puzzle_identifier) >= identifiers_.size())
      throw ValueError("arc::Voter: puzzle identifier " + std::to_string(puzzle_identifier) + " is outside the " +
                       std::to_string(identifiers_.size()) + " names of identifiers.json");
    auto& p = parsed_[std::size_t(puzzle_identifier)];
    if (!p) p = parse_name(identifiers_[std::size_t(puzzle_identifier)]);
    const auto it = task_index_.find(p->task_id);
    if (it == task_index_.end())
      throw ValueError("arc::Voter: puzzle '" + identifiers_[std::size_t(puzzle_identifier)] + "' is of task '" + p->task_id +
                       "', which is not among the " + std::to_string(tasks_.size()) + " test puzzles");
    const Grid in = invert(p->augmentation, crop(input, side_));
    const Task& task = tasks_[it->second];
    int which = -1;
    for (std::size_t k = 0; k < task.test.size() && which < 0; ++k)
      if (task.test[k].input == in) which = int(k);
    if (which < 0)
      throw ValueError("arc::Voter: a row of puzzle '" + identifiers_[std::size_t(puzzle_identifier)] +
                       "' has an input that is none of the test inputs of task '" + task.id + "'");
    const Grid pred = invert(p->augmentation, crop(prediction, side_));
    auto [gi, fresh] = grid_ids_.emplace(pred, std::int32_t(grids_.size()));
    if (fresh) grids_.push_back(pred);
    votes_[{std::int32_t(it->second), which}].push_back({gi->second, 1.0 / (1.0 + std::exp(-q_halt_logit))});
    ++predictions_;
  }

  void clear() {
    votes_.clear();
    grid_ids_.clear();
    grids_.clear();
    predictions_ = 0;
  }
  std::int64_t predictions() const { return predictions_; }
  const std::vector<Task>& test_puzzles() const { return tasks_; }

  ArcScores result(const std::vector<int>& ks = reference_pass_ks(), int submission_k = 2) const {
    if (submission_k < 1) throw ValueError("arc::Voter::result: expected submission_k >= 1, found " + std::to_string(submission_k));
    ArcScores s;
    s.ks = ks;
    s.task_mean.assign(ks.size(), 0.0);
    s.solved_inputs.assign(ks.size(), 0);
    s.predictions = predictions_;
    s.submission = nlohmann::ordered_json::object();
    for (std::size_t t = 0; t < tasks_.size(); ++t) {
      const Task& task = tasks_[t];
      nlohmann::ordered_json attempts = nlohmann::ordered_json::array();
      std::vector<std::int64_t> solved(ks.size(), 0);
      std::int64_t scored = 0;
      for (std::size_t k = 0; k < task.test.size(); ++k) {
        const Pair& pair = task.test[k];
        TestInputVotes v;
        v.task_id = task.id;
        v.index = int(k);
        v.scored = pair.has_output;
        // Distinct grids in order of first appearance, then a stable sort by (votes, mean q).
        std::vector<std::int32_t> order;
        std::unordered_map<std::int32_t, std::size_t> slot;
        if (auto it = votes_.find({std::int32_t(t), int(k)}); it != votes_.end()) {
          for (const auto& [g, q] : it->second) {
            auto [si, fresh] = slot.emplace(g, v.candidates.size());
            if (fresh) v.candidates.push_back({grids_[std::size_t(g)], 0, 0.0});
            v.candidates[si->second].votes += 1;
            v.candidates[si->second].mean_q += q;
          }
        }
        for (auto& c : v.candidates) c.mean_q /= double(c.votes);
        std::stable_sort(v.candidates.begin(), v.candidates.end(), [](const Candidate& a, const Candidate& b) {
          return a.votes != b.votes ? a.votes > b.votes : a.mean_q > b.mean_q;
        });
        if (pair.has_output)
          for (std::size_t r = 0; r < v.candidates.size(); ++r)
            if (v.candidates[r].grid == pair.output) {
              v.rank_of_solution = int(r);
              break;
            }
        if (pair.has_output) {
          ++scored;
          for (std::size_t i = 0; i < ks.size(); ++i) solved[i] += v.rank_of_solution >= 0 && v.rank_of_solution < ks[i];
        } else {
          ++s.unscored_inputs;
        }
        // The attempts: the top candidates that are grids (an empty crop, no colour at the
        // top-left corner, ranks as the reference ranks it but is no answer Kaggle takes), the
        // first repeated when there are fewer; none at all: the fallback.
        nlohmann::ordered_json entry;
        std::vector<const Grid*> picks;
        for (const auto& c : v.candidates)
          if (c.grid.rows > 0 && int(picks.size()) < submission_k) picks.push_back(&c.grid);
        if (picks.empty()) {
          s.fallbacks.push_back(task.id + " test input " + std::to_string(k));
          picks.push_back(&pair.input);
        }
        for (int a = 0; a < submission_k; ++a)
          entry["attempt_" + std::to_string(a + 1)] = grid_to_json(*picks[std::size_t(a) < picks.size() ? std::size_t(a) : 0]);
        attempts.push_back(std::move(entry));
        s.inputs.push_back(std::move(v));
      }
      s.submission[task.id] = std::move(attempts);
      if (scored > 0) {
        ++s.scored_tasks;
        s.scored_inputs += scored;
        for (std::size_t i = 0; i < ks.size(); ++i) {
          s.solved_inputs[i] += solved[i];
          s.task_mean[i] += double(solved[i]) / double(scored);
        }
      }
    }
    if (s.scored_tasks > 0)
      for (auto& m : s.task_mean) m /= double(s.scored_tasks);
    return s;
  }

 private:
  struct Vote {
    std::int32_t grid;
    double q;
  };
  std::vector<std::string> identifiers_;
  std::vector<Task> tasks_;
  int side_;
  std::int32_t blank_;
  std::unordered_map<std::string, std::size_t> task_index_;
  std::vector<std::optional<ParsedName>> parsed_;
  std::map<std::pair<std::int32_t, int>, std::vector<Vote>> votes_;
  std::map<Grid, std::int32_t> grid_ids_;
  std::vector<Grid> grids_;
  std::int64_t predictions_ = 0;
};

// test_puzzles.json (as the builder writes it) -> tasks, in the file's order.
inline std::vector<Task> parse_test_puzzles(std::string_view text, const std::string& file) {
  return detail::parse_task_object(detail::parse_json_text(text, file), file, true);
}
inline std::vector<Task> read_test_puzzles(const std::filesystem::path& path) {
  return parse_test_puzzles(detail::read_text_file(path, path.string()), path.string());
}

}  // namespace trm::data::arc
