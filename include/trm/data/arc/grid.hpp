#pragma once
// ARC-AGI tasks (SPEC §6.4): grids of colours 0..9, 1..30 cells a side; a task is its
// demonstration ("train") pairs and its test pairs. Read from the two public layouts:
//   - one JSON file per task (the ARC-AGI repositories' data/<split>/<id>.json, ConceptARC's
//     corpus/<concept>/<id>.json): {"train": [{"input": g, "output": g}, ...], "test": [...]};
//     the id is the file stem;
//   - Kaggle's combined files arc-agi_<subset>_challenges.json ({id: task, ...}, test pairs
//     without outputs) with or without arc-agi_<subset>_solutions.json ({id: [g, ...], ...}).
// A test output that no file gives is a placeholder, [[0]] as the official builder writes it,
// and is marked (ArcPair::has_output false): it is trained on as the builder does, never scored.
//
// Everything is read in the file's order (tasks, and the train/test keys inside a task): the
// official builder's draws follow that order, so its ids do too. Anything malformed is an
// ArcFormatError naming the file, the task, the pair and the cell.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "trm/core/error.hpp"
#include "trm/io/atomic_file.hpp"
#include "trm/io/json.hpp"

namespace trm::data::arc {

class ArcFormatError : public ValueError {
 public:
  using ValueError::ValueError;
};

inline constexpr int max_grid_side = 30;  // the ARC-AGI rule (and the reference's ARCMaxGridSize)
inline constexpr int num_colours = 10;

// A rows x cols grid of colours, row-major.
struct Grid {
  int rows = 0, cols = 0;
  std::vector<std::uint8_t> cells;

  Grid() = default;
  Grid(int r, int c, std::uint8_t fill = 0) : rows(r), cols(c), cells(std::size_t(r) * std::size_t(c), fill) {}
  std::uint8_t& at(int r, int c) { return cells[std::size_t(r) * std::size_t(cols) + std::size_t(c)]; }
  std::uint8_t at(int r, int c) const { return cells[std::size_t(r) * std::size_t(cols) + std::size_t(c)]; }
  friend bool operator==(const Grid&, const Grid&) = default;
  friend auto operator<=>(const Grid& a, const Grid& b) {
    if (auto c = a.rows <=> b.rows; c != 0) return c;
    if (auto c = a.cols <=> b.cols; c != 0) return c;
    return a.cells <=> b.cells;
  }
};

struct Pair {
  Grid input, output;
  bool has_output = true;  // false: output is the [[0]] placeholder (no solution was given)
  friend bool operator==(const Pair&, const Pair&) = default;
};

struct Task {
  std::string id;
  std::vector<Pair> train;  // demonstrations
  std::vector<Pair> test;
  bool train_first = true;  // the key order in the file ("train" before "test"), which the builder follows
  friend bool operator==(const Task&, const Task&) = default;
};

// The placeholder output of a test pair without a solution (the official builder's [[0]]).
inline Grid placeholder_grid() { return Grid(1, 1, 0); }

// A JSON grid -> Grid. `where` names it in errors ("f.json: task 'x', train pair 2, input").
template <class Json>
Grid parse_grid(const Json& j, const std::string& where) {
  if (!j.is_array() || j.empty())
    throw ArcFormatError(where + ": expected a grid (a non-empty list of rows), found " + io::json_brief(j));
  const std::size_t rows = j.size();
  if (rows > std::size_t(max_grid_side))
    throw ArcFormatError(where + ": expected at most " + std::to_string(max_grid_side) + " rows, found " + std::to_string(rows));
  if (!j[0].is_array() || j[0].empty())
    throw ArcFormatError(where + ", row 0: expected a non-empty list of colours, found " + io::json_brief(j[0]));
  const std::size_t cols = j[0].size();
  if (cols > std::size_t(max_grid_side))
    throw ArcFormatError(where + ": expected at most " + std::to_string(max_grid_side) + " columns, found " + std::to_string(cols));
  Grid g{int(rows), int(cols)};
  for (std::size_t r = 0; r < rows; ++r) {
    const auto& row = j[r];
    if (!row.is_array() || row.size() != cols)
      throw ArcFormatError(where + ", row " + std::to_string(r) + ": expected a list of " + std::to_string(cols) +
                           " colours (the width of row 0), found " + io::json_brief(row));
    for (std::size_t c = 0; c < cols; ++c) {
      const auto& v = row[c];
      if (!v.is_number_integer() || v.template get<std::int64_t>() < 0 || v.template get<std::int64_t>() >= num_colours)
        throw ArcFormatError(where + ", row " + std::to_string(r) + ", column " + std::to_string(c) +
                             ": expected a colour 0..9, found " + io::json_brief(v));
      g.cells[r * cols + c] = std::uint8_t(v.template get<std::int64_t>());
    }
  }
  return g;
}

// Grid -> a JSON list of rows.
inline nlohmann::ordered_json grid_to_json(const Grid& g) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (int r = 0; r < g.rows; ++r) {
    nlohmann::ordered_json row = nlohmann::ordered_json::array();
    for (int c = 0; c < g.cols; ++c) row.push_back(int(g.at(r, c)));
    rows.push_back(std::move(row));
  }
  return rows;
}

namespace detail {

using ojson = nlohmann::ordered_json;

inline ojson parse_json_text(std::string_view text, const std::string& what) {
  return io::parse_untrusted_json<ArcFormatError, ojson>(text, what, {.top_level_key = "task id"});
}

inline std::string read_text_file(const std::filesystem::path& path, const std::string& what) {
  std::vector<std::byte> bytes;
  try {
    bytes = io::read_file(path);
  } catch (const std::exception& e) {
    throw ArcFormatError(what + ": " + e.what());
  }
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

inline ojson read_json_file(const std::filesystem::path& path, const std::string& what) {
  return parse_json_text(read_text_file(path, what), what);
}

inline std::vector<Pair> parse_pairs(const ojson& j, const std::string& where, bool outputs_required) {
  if (!j.is_array()) throw ArcFormatError(where + ": expected a list of pairs, found " + io::json_brief(j));
  std::vector<Pair> pairs;
  pairs.reserve(j.size());
  for (std::size_t k = 0; k < j.size(); ++k) {
    const std::string at = where + " pair " + std::to_string(k);
    const auto& p = j[k];
    if (!p.is_object()) throw ArcFormatError(at + ": expected an object with \"input\" and \"output\", found " + io::json_brief(p));
    for (const auto& item : p.items())
      if (item.key() != "input" && item.key() != "output")
        throw ArcFormatError(at + ": expected only \"input\" and \"output\", found \"" + io::bounded_message(item.key(), 80) + "\"");
    if (!p.contains("input")) throw ArcFormatError(at + ": expected an \"input\" grid, found none");
    Pair pair;
    pair.input = parse_grid(p["input"], at + ", input");
    if (p.contains("output")) {
      pair.output = parse_grid(p["output"], at + ", output");
    } else if (outputs_required) {
      throw ArcFormatError(at + ": expected an \"output\" grid, found none");
    } else {
      pair.output = placeholder_grid();
      pair.has_output = false;
    }
    pairs.push_back(std::move(pair));
  }
  return pairs;
}

// {"train": [...], "test": [...]} (in either order; other keys, such as the "name" some ARC-AGI
// files carry, are ignored) -> Task. Test pairs may lack outputs.
inline Task parse_task(const ojson& j, std::string id, const std::string& where) {
  if (!j.is_object()) throw ArcFormatError(where + ": expected a task object {\"train\": [...], \"test\": [...]}, found " + io::json_brief(j));
  Task t;
  t.id = std::move(id);
  bool seen_train = false, seen_test = false;
  for (const auto& item : j.items()) {
    if (item.key() == "train") {
      t.train = parse_pairs(item.value(), where + ", train", true);
      seen_train = true;
      if (!seen_test) t.train_first = true;
    } else if (item.key() == "test") {
      t.test = parse_pairs(item.value(), where + ", test", false);
      seen_test = true;
      if (!seen_train) t.train_first = false;
    }
    // Other keys are metadata (11 ARC-AGI files carry a "name"): ignored.
  }
  if (!seen_train || t.train.empty()) throw ArcFormatError(where + ": expected at least one \"train\" pair, found none");
  if (!seen_test || t.test.empty()) throw ArcFormatError(where + ": expected at least one \"test\" pair, found none");
  return t;
}

inline std::string task_where(const std::string& file, const std::string& id) {
  return file + ": task '" + io::bounded_message(id, 80) + "'";
}

// {id: task, ...} (Kaggle's challenges, test_puzzles.json) -> tasks in the file's order; an
// empty object is an error unless allow_empty.
inline std::vector<Task> parse_task_object(const ojson& j, const std::string& file, bool allow_empty) {
  if (!j.is_object() || (j.empty() && !allow_empty))
    throw ArcFormatError(file + ": expected an object of tasks {\"<id>\": {\"train\": [...], \"test\": [...]}, ...}, found " +
                         io::json_brief(j));
  std::vector<Task> tasks;
  tasks.reserve(j.size());
  for (const auto& item : j.items()) tasks.push_back(parse_task(item.value(), item.key(), task_where(file, item.key())));
  return tasks;
}

}  // namespace detail

// One task's JSON text; `source` names it in errors.
inline Task parse_task_text(std::string_view text, const std::string& id, const std::string& source) {
  return detail::parse_task(detail::parse_json_text(text, source), id, detail::task_where(source, id));
}

// One task file; the id is the file's stem.
inline Task read_task_file(const std::filesystem::path& path) {
  const std::string file = path.string();
  return parse_task_text(detail::read_text_file(path, file), path.stem().string(), file);
}

// Every *.json under dir (recursively), in order of their paths relative to dir; ids (file
// stems) must be unique.
inline std::vector<Task> read_task_directory(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw ArcFormatError(dir.string() + ": expected a directory of ARC task files, found " +
                         (std::filesystem::exists(dir, ec) ? "something else" : "nothing"));
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end(), [&](const auto& a, const auto& b) {
    return std::filesystem::relative(a, dir).generic_string() < std::filesystem::relative(b, dir).generic_string();
  });
  if (files.empty()) throw ArcFormatError(dir.string() + ": expected ARC task files (*.json), found none");
  std::vector<Task> tasks;
  for (const auto& f : files) {
    tasks.push_back(read_task_file(f));
    for (std::size_t k = 0; k + 1 < tasks.size(); ++k)
      if (tasks[k].id == tasks.back().id)
        throw ArcFormatError(f.string() + ": expected unique task ids, found '" + tasks.back().id + "' again (" +
                             files[k].string() + ")");
  }
  return tasks;
}

// Kaggle's combined layout: challenges ({id: task}) and, when given, solutions ({id: [output
// grid of each test input]}), one solution per test input of every task, and nothing else.
// The texts' sources name them in errors.
inline std::vector<Task> parse_kaggle_text(std::string_view challenges, const std::string& file,
                                           std::optional<std::string_view> solutions = std::nullopt,
                                           const std::string& sfile = "<solutions>") {
  const auto j = detail::parse_json_text(challenges, file);
  std::vector<Task> tasks = detail::parse_task_object(j, file, false);
  if (solutions) {
    const auto s = detail::parse_json_text(*solutions, sfile);
    if (!s.is_object())
      throw ArcFormatError(sfile + ": expected an object {\"<id>\": [output grid, ...], ...}, found " + io::json_brief(s));
    for (Task& t : tasks) {
      const std::string where = detail::task_where(sfile, t.id);
      if (!s.contains(t.id)) throw ArcFormatError(where + ": expected the solutions of this task of " + file + ", found none");
      const auto& grids = s[t.id];
      if (!grids.is_array() || grids.size() != t.test.size())
        throw ArcFormatError(where + ": expected a list of " + std::to_string(t.test.size()) + " output grid(s) (one per test input), found " +
                             io::json_brief(grids));
      for (std::size_t k = 0; k < t.test.size(); ++k) {
        t.test[k].output = parse_grid(grids[k], where + ", test pair " + std::to_string(k) + ", output");
        t.test[k].has_output = true;
      }
    }
    for (const auto& item : s.items())
      if (!j.contains(item.key()))
        throw ArcFormatError(detail::task_where(sfile, item.key()) + ": expected a task of " + file + ", found none there");
  }
  return tasks;
}

inline std::vector<Task> read_kaggle(const std::filesystem::path& challenges,
                                     const std::optional<std::filesystem::path>& solutions = std::nullopt) {
  const std::string file = challenges.string();
  const std::string text = detail::read_text_file(challenges, file);
  if (!solutions) return parse_kaggle_text(text, file);
  const std::string sfile = solutions->string();
  const std::string stext = detail::read_text_file(*solutions, sfile);
  return parse_kaggle_text(text, file, std::string_view(stext), sfile);
}

// The solutions file beside a challenges file (arc-agi_x_challenges.json -> arc-agi_x_solutions.json).
inline std::filesystem::path solutions_beside(const std::filesystem::path& challenges) {
  std::string name = challenges.filename().string();
  const std::string tag = "_challenges.json";
  if (name.size() > tag.size() && name.compare(name.size() - tag.size(), tag.size(), tag) == 0)
    name = name.substr(0, name.size() - tag.size()) + "_solutions.json";
  else
    name += ".solutions";
  return challenges.parent_path() / name;
}

}  // namespace trm::data::arc
