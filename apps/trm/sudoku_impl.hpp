#pragma once
// `trm sudoku train|solve|eval` for one box shape (training and evaluation through driver.hpp);
// sudoku_<R>x<C>.cpp instantiate them, so the compiler spreads the model instantiations over
// several translation units.
#include <csignal>
#include <cstring>
#include <numbers>
#include <random>
#include <string_view>
#include <trm/trm.hpp>
#include <unordered_set>

#include "cli_common.hpp"
#include "driver.hpp"
#include "entry.hpp"

#include <sys/resource.h>
#include <unistd.h>

namespace trmcli {

namespace sd = trm::data::sudoku;

// ---- puzzles ---------------------------------------------------------------------------------------
template <class Shape>
struct Puzzle {
  sd::Example<Shape> ex;
  std::string where;  // "file:line"
};


// Reads PUZZLE[,SOLUTION] lines (or a CSV with a header, see trm/data/sudoku/csv.hpp) from a file
// or "-" (stdin). With sample > 0, a seeded random sample of that many puzzles (in file order) is
// checked and returned; lines outside the sample are not parsed. Every error names the line.
template <class Shape>
std::vector<Puzzle<Shape>> read_puzzles(const std::string& input, long sample = 0, std::uint64_t seed = 0) {
  const std::string src = source_name(input);
  std::ifstream file;
  auto reader = input_lines(input, "puzzles", file);
  std::vector<std::pair<long, std::string>> lines;
  std::string line;
  bool header = false;
  while (reader.next(line)) {
    if (line.empty() || line[0] == '#') continue;
    if (lines.empty() && std::isalpha(static_cast<unsigned char>(line[0]))) header = true;
    lines.emplace_back(reader.line_no(), line);
  }
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
              step_of(info).c_str());
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
  return std::size_t(n_solved) == puzzles.size() ? kExitOk : kExitUnsolved;
}

// ---- eval ---------------------------------------------------------------------------------------------------------
template <class Shape, class M>
int eval_model(const EvalArgs& a, const CheckpointInfo& info) {
  set_threads(a.threads);
  const M model = load_checkpoint_model<M>(a.checkpoint, info.spec);
  const int max_steps = a.steps > 0 ? a.steps : model.max_steps();
  const sd::SudokuTask<Shape> task;
  std::vector<trm::data::TaskExample<sd::SudokuTask<Shape>>> examples;
  std::optional<trm::data::PuzzleDataset> test;
  std::vector<std::int64_t> picked;
  std::string from;
  if (!a.data.empty()) {
    test = read_task_dataset(a.data, "test", task);
    picked = sample_indices(test->num_examples(test->sets[0]), a.sample, a.seed);
    from = a.data + "/test";
  } else {
    for (const auto& p : read_puzzles<Shape>(a.input, a.sample, a.seed)) examples.push_back({p.ex.puzzle, p.ex.solution});
    from = source_name(a.input);
  }
  const std::size_t count = test ? picked.size() : examples.size();
  if (count == 0) throw CliError(from + ": no puzzles (expected one puzzle per line)");
  std::printf("model: %s\ncheckpoint: %s (step %s, %s weights)\npuzzles: %zu from %s%s, %d threads\n",
              info.spec.describe().c_str(), a.checkpoint.c_str(),
              step_of(info).c_str(),
              weights_of(info).c_str(), count, from.c_str(),
              a.sample > 0 ? (" (seeded sample, seed " + std::to_string(a.seed) + ")").c_str() : "",
              trm::cpu::num_threads());
  std::fflush(stdout);
  const trm::EvalReport r =
      test ? evaluate_dataset(model, task, *test, picked, a.batch, max_steps)
           : evaluate_examples(model, task, std::span<const trm::data::TaskExample<sd::SudokuTask<Shape>>>(examples), a.batch,
                               max_steps);
  print_eval_table(r, "valid");
  std::printf("exact accuracy: %s (%zu puzzles)\n", percent(a.early_exit_headline ? r.exact_early : r.exact).c_str(), count);
  return eval_exit_status(r, a.early_exit_headline);
}

// ---- entry points (instantiated per box shape in sudoku_<R>x<C>.cpp) ------------------------------------
template <int R, int C, class B>
int sudoku_train(const TrainArgs& a, const std::optional<CheckpointInfo>& resume) {
  using Shape = sd::SudokuShape<R, C>;
  using TaskT = sd::SudokuTask<Shape>;
  const TaskT task(a.blanks);
  // --holdout files: puzzles training never uses (e.g. the test set).
  std::unordered_set<std::string> held_out;
  for (const auto& h : a.holdout)
    for (const auto& p : read_puzzles<Shape>(h)) held_out.insert(trm::data::question_key(task, p.ex.puzzle));
  const std::string note = a.data.empty() ? std::to_string(a.blanks) + " blanks" : "reference dataset";
  return with_model<TaskT, B>(a.model, [&]<class M>() {
    if (a.optimizer == "adam-atan2") return train_task<TaskT, M, trm::AdamAtan2>(a, resume, task, held_out, note);
    return train_task<TaskT, M, trm::AdamW>(a, resume, task, held_out, note);
  });
}
template <int R, int C, class B>
int sudoku_solve(const SolveArgs& a, const CheckpointInfo& info) {
  using Shape = sd::SudokuShape<R, C>;
  return with_model<sd::SudokuTask<Shape>, B>(info.spec, [&]<class M>() { return solve_model<Shape, M>(a, info); });
}
template <int R, int C, class B>
int sudoku_eval(const EvalArgs& a, const CheckpointInfo& info) {
  using Shape = sd::SudokuShape<R, C>;
  return with_model<sd::SudokuTask<Shape>, B>(info.spec, [&]<class M>() { return eval_model<Shape, M>(a, info); });
}

#define TRM_CLI_INSTANTIATE(R, C, B)                                                                 \
  template int sudoku_train<R, C, B>(const TrainArgs&, const std::optional<CheckpointInfo>&);     \
  template int sudoku_solve<R, C, B>(const SolveArgs&, const CheckpointInfo&);                    \
  template int sudoku_eval<R, C, B>(const EvalArgs&, const CheckpointInfo&);

}  // namespace trmcli
