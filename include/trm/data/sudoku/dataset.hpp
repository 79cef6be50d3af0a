#pragma once
// The reference on-disk dataset format (SPEC §6.1) for Sudoku, as written by the reference's
// build_sudoku_dataset.py, and a validating reader.
//
//   <dir>/identifiers.json                 ["<blank>"]
//   <dir>/<split>/dataset.json             metadata (below)
//   <dir>/<split>/all__inputs.npy          uint8 [E, cells]  puzzle tokens (blank 1, digits 2..N+1)
//   <dir>/<split>/all__labels.npy          uint8 [E, cells]  solution tokens
//   <dir>/<split>/all__puzzle_identifiers.npy  int32 [P]     all 0 (the blank id)
//   <dir>/<split>/all__puzzle_indices.npy  int32 [P+1]       example offsets of each puzzle
//   <dir>/<split>/all__group_indices.npy   int32 [G+1]       puzzle offsets of each group
//
// As in the reference, each source puzzle is one group: the original followed by `num_aug`
// augmented copies (SPEC §6.2), each its own puzzle with one example, so E = P = G * (1 + num_aug).
// dataset.json, with the reference's field order: pad_id 0, ignore_label_id 0,
// blank_identifier_id 0, vocab_size N+2, seq_len N*N, num_puzzle_identifiers 1, total_groups G,
// mean_puzzle_examples E/P (1.0), total_puzzles (the reference Sudoku builder writes the number
// of groups here, not of puzzles; we do the same), sets ["all"].
//
// Every file is written atomically (temporary file + fsync + rename), so a crash leaves either the
// old or the new file, never a torn one. The reader checks everything (field types and values,
// seq_len and vocab against the compile-time shape, dtypes, shapes, monotone offsets, token
// ranges and, by default, that every label is a valid solution keeping its input's givens) and
// throws SudokuFormatError naming the file and what was expected vs found.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "trm/core/rng.hpp"
#include "trm/data/sudoku/augment.hpp"
#include "trm/data/sudoku/csv.hpp"
#include "trm/data/sudoku/grid.hpp"
#include "trm/data/sudoku/tokens.hpp"
#include "trm/io/atomic_file.hpp"
#include "trm/io/npy.hpp"

namespace trm::data::sudoku {

struct DatasetMetadata {
  int pad_id = 0;
  std::optional<int> ignore_label_id = 0;
  int blank_identifier_id = 0;
  int vocab_size = 0;
  int seq_len = 0;
  int num_puzzle_identifiers = 1;
  std::int64_t total_groups = 0;
  double mean_puzzle_examples = 1.0;
  std::optional<std::int64_t> total_puzzles;  // TRM writes it (Sudoku: = total_groups); HRM does not
  std::vector<std::string> sets{"all"};

  nlohmann::ordered_json to_json() const {
    nlohmann::ordered_json j;
    j["pad_id"] = pad_id;
    j["ignore_label_id"] = ignore_label_id ? nlohmann::ordered_json(*ignore_label_id) : nlohmann::ordered_json(nullptr);
    j["blank_identifier_id"] = blank_identifier_id;
    j["vocab_size"] = vocab_size;
    j["seq_len"] = seq_len;
    j["num_puzzle_identifiers"] = num_puzzle_identifiers;
    j["total_groups"] = total_groups;
    j["mean_puzzle_examples"] = mean_puzzle_examples;
    if (total_puzzles) j["total_puzzles"] = *total_puzzles;
    j["sets"] = sets;
    return j;
  }
};

template <SudokuShapeType S>
struct ReferenceDataset {
  DatasetMetadata metadata;
  std::vector<std::uint8_t> inputs;  // [E * cells], row-major
  std::vector<std::uint8_t> labels;  // [E * cells]
  std::vector<std::int32_t> puzzle_identifiers;  // [P]
  std::vector<std::int32_t> puzzle_indices;      // [P + 1]
  std::vector<std::int32_t> group_indices;       // [G + 1]

  std::size_t num_examples() const { return inputs.size() / S::cells; }
  std::size_t num_puzzles() const { return puzzle_identifiers.size(); }
  std::size_t num_groups() const { return group_indices.empty() ? 0 : group_indices.size() - 1; }

  std::span<const std::uint8_t> input(std::size_t i) const {
    return std::span<const std::uint8_t>(inputs).subspan(i * S::cells, S::cells);
  }
  std::span<const std::uint8_t> label(std::size_t i) const {
    return std::span<const std::uint8_t>(labels).subspan(i * S::cells, S::cells);
  }
  Example<S> example(std::size_t i) const { return {decode<S>(input(i)), decode<S>(label(i), false)}; }
};

// The reference metadata for a Sudoku dataset of `groups` groups and `puzzles` one-example puzzles.
template <SudokuShapeType S>
DatasetMetadata sudoku_metadata(std::int64_t groups, std::int64_t puzzles, std::int64_t examples) {
  DatasetMetadata m;
  m.pad_id = pad_token;
  m.ignore_label_id = 0;
  m.blank_identifier_id = 0;
  m.vocab_size = S::vocab_size;
  m.seq_len = S::seq_len;
  m.num_puzzle_identifiers = 1;
  m.total_groups = groups;
  m.mean_puzzle_examples = puzzles > 0 ? double(examples) / double(puzzles) : 1.0;
  m.total_puzzles = groups;
  m.sets = {"all"};
  return m;
}

// Encodes `examples`, each followed by `num_aug` augmentations drawn from `rng` (the reference
// augments the training split only: pass num_aug = 0 for test). Examples must be valid (checked).
template <SudokuShapeType S>
ReferenceDataset<S> build_reference_dataset(const std::vector<Example<S>>& examples, int num_aug, Rng& rng) {
  if (num_aug < 0) throw ValueError("sudoku dataset: num_aug must be >= 0, found " + std::to_string(num_aug));
  const std::size_t per_group = static_cast<std::size_t>(num_aug) + 1;
  const std::size_t total = examples.size() * per_group;
  if (total > static_cast<std::size_t>(INT32_MAX)) {
    throw ValueError("sudoku dataset: " + std::to_string(total) + " examples do not fit the int32 offsets");
  }
  ReferenceDataset<S> d;
  d.inputs.resize(total * S::cells);
  d.labels.resize(total * S::cells);
  d.puzzle_identifiers.assign(total, 0);
  d.puzzle_indices.reserve(total + 1);
  d.group_indices.reserve(examples.size() + 1);
  d.puzzle_indices.push_back(0);
  d.group_indices.push_back(0);
  std::size_t e = 0;
  for (std::size_t g = 0; g < examples.size(); ++g) {
    const Example<S>& src = examples[g];
    const std::string where = "sudoku dataset: example " + std::to_string(g) + ": ";
    if (auto conflict = find_conflict(src.solution); conflict || count_blanks(src.solution) != 0) {
      throw ValueError(where + "solution is not a complete valid grid" + (conflict ? ": " + *conflict : ""));
    }
    if (auto cell = first_changed_given(src.puzzle, src.solution)) {
      throw ValueError(where + "solution does not keep the given at " + detail::cell_name<S>(*cell));
    }
    check_values(src.puzzle, where + "puzzle");
    for (std::size_t a = 0; a < per_group; ++a, ++e) {
      const Example<S> ex = a == 0 ? src : augment(src, rng);
      encode_into(ex.puzzle, std::span<std::uint8_t>(d.inputs).subspan(e * S::cells, S::cells));
      encode_into(ex.solution, std::span<std::uint8_t>(d.labels).subspan(e * S::cells, S::cells));
      d.puzzle_indices.push_back(static_cast<std::int32_t>(e + 1));
    }
    d.group_indices.push_back(static_cast<std::int32_t>(e));
  }
  d.metadata = sudoku_metadata<S>(static_cast<std::int64_t>(examples.size()), static_cast<std::int64_t>(total),
                                  static_cast<std::int64_t>(total));
  return d;
}

struct DatasetReadOptions {
  std::string set = "all";
  // Check that each label is a complete valid grid that keeps its input's givens (O(E * cells)).
  bool check_solutions = true;
  // Also check that each input has exactly one solution (runs the solver on every example).
  bool check_unique = false;
};

namespace detail {

template <class T>
std::string list_preview(const std::vector<T>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size() && i < 6; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  if (v.size() > 6) s += ", ...";
  return s + "]";
}

// Offsets: size count+1, start 0, non-decreasing, end `end`.
inline void check_offsets(const std::vector<std::int32_t>& off, std::int64_t end, const std::string& what,
                          const std::string& what_end) {
  if (off.empty()) throw SudokuFormatError(what + ": expected at least one offset (0), found none");
  if (off.front() != 0) throw SudokuFormatError(what + ": expected the first offset 0, found " + std::to_string(off.front()));
  for (std::size_t i = 1; i < off.size(); ++i) {
    if (off[i] < off[i - 1]) {
      throw SudokuFormatError(what + ": expected non-decreasing offsets, found " + std::to_string(off[i - 1]) +
                              " then " + std::to_string(off[i]) + " at index " + std::to_string(i));
    }
  }
  if (off.back() != end) {
    throw SudokuFormatError(what + ": expected the last offset to equal " + what_end + " (" + std::to_string(end) +
                            "), found " + std::to_string(off.back()));
  }
}

template <class S>
void check_tokens(std::span<const std::uint8_t> tok, int lo, const std::string& what, const std::string& note) {
  for (std::size_t k = 0; k < tok.size(); ++k) {
    const int t = tok[k];
    if (t < lo || t > S::n + 1) {
      throw SudokuFormatError(what + ": example " + std::to_string(k / S::cells) + ", " +
                              cell_name<S>(static_cast<int>(k % S::cells)) + ": expected a token in " +
                              std::to_string(lo) + ".." + std::to_string(S::n + 1) + " " + note + ", found " +
                              std::to_string(t));
    }
  }
}

template <class S>
void validate(const ReferenceDataset<S>& d, const std::string& ctx, const DatasetReadOptions& opt) {
  const DatasetMetadata& m = d.metadata;
  auto expect_eq = [&](const char* field, std::int64_t expected, std::int64_t found, const std::string& why) {
    if (expected != found) {
      throw SudokuFormatError(ctx + "dataset.json: " + field + ": expected " + std::to_string(expected) + why +
                              ", found " + std::to_string(found));
    }
  };
  expect_eq("seq_len", S::seq_len, m.seq_len, " (" + S::name() + ")");
  expect_eq("vocab_size", S::vocab_size, m.vocab_size, " (" + S::name() + ": pad, blank, " + std::to_string(S::n) + " digits)");
  expect_eq("pad_id", pad_token, m.pad_id, "");
  expect_eq("blank_identifier_id", 0, m.blank_identifier_id, "");
  if (m.ignore_label_id && *m.ignore_label_id != 0) {
    throw SudokuFormatError(ctx + "dataset.json: ignore_label_id: expected 0 or null, found " +
                            std::to_string(*m.ignore_label_id));
  }
  if (m.num_puzzle_identifiers < 1) {
    throw SudokuFormatError(ctx + "dataset.json: num_puzzle_identifiers: expected >= 1, found " +
                            std::to_string(m.num_puzzle_identifiers));
  }
  if (d.inputs.size() % S::cells != 0 || d.labels.size() != d.inputs.size()) {
    throw SudokuFormatError(ctx + "inputs/labels: expected two [E, " + std::to_string(S::cells) +
                            "] arrays of the same shape, found " + std::to_string(d.inputs.size()) + " and " +
                            std::to_string(d.labels.size()) + " values");
  }
  const auto E = static_cast<std::int64_t>(d.num_examples());
  const auto P = static_cast<std::int64_t>(d.puzzle_identifiers.size());
  if (static_cast<std::int64_t>(d.puzzle_indices.size()) != P + 1) {
    throw SudokuFormatError(ctx + opt.set + "__puzzle_indices.npy: expected shape [" + std::to_string(P + 1) +
                            "] (puzzles + 1), found [" + std::to_string(d.puzzle_indices.size()) + "]");
  }
  check_offsets(d.puzzle_indices, E, ctx + opt.set + "__puzzle_indices.npy", "the number of examples");
  check_offsets(d.group_indices, P, ctx + opt.set + "__group_indices.npy", "the number of puzzles");
  expect_eq("total_groups", static_cast<std::int64_t>(d.num_groups()), m.total_groups,
            " (the length of group_indices - 1)");
  for (std::size_t p = 0; p < d.puzzle_identifiers.size(); ++p) {
    const auto id = d.puzzle_identifiers[p];
    if (id < 0 || id >= m.num_puzzle_identifiers) {
      throw SudokuFormatError(ctx + opt.set + "__puzzle_identifiers.npy: puzzle " + std::to_string(p) +
                              ": expected an id in 0.." + std::to_string(m.num_puzzle_identifiers - 1) +
                              " (num_puzzle_identifiers " + std::to_string(m.num_puzzle_identifiers) + "), found " +
                              std::to_string(id));
    }
  }
  check_tokens<S>(d.inputs, blank_token, ctx + opt.set + "__inputs.npy", "(1 = blank, 2.. = digits; pad 0 is never used)");
  check_tokens<S>(d.labels, blank_token + 1, ctx + opt.set + "__labels.npy",
                  "(digits; every Sudoku cell is supervised, so no pad/ignore 0 and no blank 1)");
  if (opt.check_solutions || opt.check_unique) {
    for (std::size_t e = 0; e < d.num_examples(); ++e) {
      const Example<S> ex = d.example(e);
      const std::string where = ctx + "example " + std::to_string(e) + ": ";
      if (auto conflict = find_conflict(ex.solution)) {
        throw SudokuFormatError(where + "label is not a valid " + S::name() + ": " + *conflict);
      }
      if (auto cell = first_changed_given(ex.puzzle, ex.solution)) {
        const auto c = static_cast<std::size_t>(*cell);
        throw SudokuFormatError(where + "label does not keep the input's givens: " + cell_name<S>(*cell) +
                                ": expected digit " + std::to_string(int(ex.puzzle[c])) + ", found " +
                                std::to_string(int(ex.solution[c])));
      }
      if (opt.check_unique && count_solutions(ex.puzzle, 2) != 1) {
        throw SudokuFormatError(where + "input has several solutions, expected exactly one");
      }
    }
  }
}

template <class T>
io::NpyArray make_array(std::vector<std::int64_t> shape, const std::vector<T>& v) {
  return io::make_npy<T>(std::move(shape), std::span<const T>(v));
}

inline void write_json_atomically(const std::filesystem::path& path, const nlohmann::ordered_json& j) {
  const std::string text = j.dump();
  io::write_file_atomically(path, [&](io::AtomicFileWriter& w) { w.write(std::string_view(text)); });
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
  if (!std::filesystem::is_regular_file(path)) throw SudokuFormatError(path.string() + ": missing file");
  const auto bytes = io::read_file(path);
  try {
    return nlohmann::json::parse(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  } catch (const nlohmann::json::parse_error& e) {
    throw SudokuFormatError(path.string() + ": invalid JSON: " + e.what());
  }
}

template <class T>
std::vector<T> load_array(const std::filesystem::path& path, std::size_t rank, const std::string& expected_shape,
                          std::vector<std::int64_t>& shape) {
  if (!std::filesystem::is_regular_file(path)) throw SudokuFormatError(path.string() + ": missing file");
  io::NpyArray a;
  try {
    a = io::load_npy(path);
  } catch (const io::FormatError& e) {
    throw SudokuFormatError(e.what());
  }
  if (a.dtype != io::dtype_of_v<T>) {
    throw SudokuFormatError(path.string() + ": expected dtype " + std::string(io::dtype_name(io::dtype_of_v<T>)) +
                            ", found " + std::string(io::dtype_name(a.dtype)));
  }
  if (a.shape.size() != rank) {
    throw SudokuFormatError(path.string() + ": expected shape " + expected_shape + ", found " +
                            trm::format_shape(a.shape));
  }
  shape = a.shape;
  return io::values<T>(a, path.string());
}

}  // namespace detail

// Writes `d` under <dir>/<split>/ plus <dir>/identifiers.json, creating directories as needed.
// The dataset is validated first (as the reader would), so nothing invalid is written.
template <SudokuShapeType S>
void write_reference_dataset(const std::filesystem::path& dir, std::string_view split, const ReferenceDataset<S>& d) {
  if (split.empty() || split.find('/') != std::string_view::npos) {
    throw ValueError("sudoku dataset: split name must be a plain directory name, found \"" + std::string(split) + "\"");
  }
  const std::string set = d.metadata.sets.empty() ? std::string("all") : d.metadata.sets.front();
  if (d.metadata.sets.size() != 1) {
    throw ValueError("sudoku dataset: expected exactly one set name in the metadata, found " +
                     std::to_string(d.metadata.sets.size()));
  }
  DatasetReadOptions opt;
  opt.set = set;
  detail::validate(d, "sudoku dataset (before writing): ", opt);

  const std::filesystem::path split_dir = dir / std::string(split);
  std::filesystem::create_directories(split_dir);
  const auto E = static_cast<std::int64_t>(d.num_examples());
  io::save_npy(split_dir / (set + "__inputs.npy"), detail::make_array<std::uint8_t>({E, S::cells}, d.inputs));
  io::save_npy(split_dir / (set + "__labels.npy"), detail::make_array<std::uint8_t>({E, S::cells}, d.labels));
  io::save_npy(split_dir / (set + "__puzzle_identifiers.npy"),
               detail::make_array<std::int32_t>({static_cast<std::int64_t>(d.puzzle_identifiers.size())},
                                                d.puzzle_identifiers));
  io::save_npy(split_dir / (set + "__puzzle_indices.npy"),
               detail::make_array<std::int32_t>({static_cast<std::int64_t>(d.puzzle_indices.size())}, d.puzzle_indices));
  io::save_npy(split_dir / (set + "__group_indices.npy"),
               detail::make_array<std::int32_t>({static_cast<std::int64_t>(d.group_indices.size())}, d.group_indices));
  // dataset.json last: a reader that finds it finds complete arrays next to it.
  detail::write_json_atomically(split_dir / "dataset.json", d.metadata.to_json());
  detail::write_json_atomically(dir / "identifiers.json", nlohmann::ordered_json::array({"<blank>"}));
}

// Builds (see build_reference_dataset) and writes; returns what was written.
template <SudokuShapeType S>
ReferenceDataset<S> write_reference_dataset(const std::filesystem::path& dir, std::string_view split,
                                            const std::vector<Example<S>>& examples, int num_aug, Rng& rng) {
  ReferenceDataset<S> d = build_reference_dataset(examples, num_aug, rng);
  write_reference_dataset(dir, split, d);
  return d;
}

// Reads and validates <dir>/<split>/ (and <dir>/identifiers.json when present: it must be a list of
// strings starting with "<blank>" with at least num_puzzle_identifiers entries).
template <SudokuShapeType S>
ReferenceDataset<S> read_reference_dataset(const std::filesystem::path& dir, std::string_view split,
                                           const DatasetReadOptions& opt = {}) {
  const std::filesystem::path split_dir = dir / std::string(split);
  const std::filesystem::path json_path = split_dir / "dataset.json";
  const nlohmann::json j = detail::read_json(json_path);
  const std::string jctx = json_path.string() + ": ";
  if (!j.is_object()) throw SudokuFormatError(jctx + "expected a JSON object, found " + std::string(j.type_name()));

  auto field = [&](const char* name) -> const nlohmann::json& {
    if (!j.contains(name)) throw SudokuFormatError(jctx + "missing field \"" + name + "\"");
    return j.at(name);
  };
  auto integer = [&](const char* name) -> std::int64_t {
    const nlohmann::json& v = field(name);
    if (!v.is_number_integer()) {
      throw SudokuFormatError(jctx + name + ": expected an integer, found " + std::string(v.type_name()) + " " + v.dump());
    }
    return v.get<std::int64_t>();
  };
  auto small = [&](const char* name) -> int {
    const std::int64_t v = integer(name);
    if (v < INT32_MIN || v > INT32_MAX) throw SudokuFormatError(jctx + name + ": value " + std::to_string(v) + " out of range");
    return static_cast<int>(v);
  };

  ReferenceDataset<S> d;
  DatasetMetadata& m = d.metadata;
  m.pad_id = small("pad_id");
  {
    const nlohmann::json& v = field("ignore_label_id");
    if (v.is_null()) m.ignore_label_id.reset();
    else m.ignore_label_id = small("ignore_label_id");
  }
  m.blank_identifier_id = small("blank_identifier_id");
  m.vocab_size = small("vocab_size");
  m.seq_len = small("seq_len");
  m.num_puzzle_identifiers = small("num_puzzle_identifiers");
  m.total_groups = integer("total_groups");
  {
    const nlohmann::json& v = field("mean_puzzle_examples");
    if (!v.is_number()) throw SudokuFormatError(jctx + "mean_puzzle_examples: expected a number, found " + v.dump());
    m.mean_puzzle_examples = v.get<double>();
  }
  if (j.contains("total_puzzles")) m.total_puzzles = integer("total_puzzles");
  {
    const nlohmann::json& v = field("sets");
    if (!v.is_array()) throw SudokuFormatError(jctx + "sets: expected a list of names, found " + v.dump());
    m.sets.clear();
    for (const nlohmann::json& s : v) {
      if (!s.is_string()) throw SudokuFormatError(jctx + "sets: expected strings, found " + s.dump());
      m.sets.push_back(s.get<std::string>());
    }
    if (std::find(m.sets.begin(), m.sets.end(), opt.set) == m.sets.end()) {
      throw SudokuFormatError(jctx + "sets: expected it to contain \"" + opt.set + "\", found " + v.dump());
    }
  }
  // Check the metadata against the shape before reading large arrays.
  if (m.seq_len != S::seq_len) {
    throw SudokuFormatError(jctx + "seq_len: expected " + std::to_string(S::seq_len) + " (" + S::name() + "), found " +
                            std::to_string(m.seq_len));
  }

  const std::string prefix = opt.set + "__";
  const std::string cells = std::to_string(S::cells);
  std::vector<std::int64_t> in_shape, lab_shape, pid_shape, pi_shape, gi_shape;
  d.inputs = detail::load_array<std::uint8_t>(split_dir / (prefix + "inputs.npy"), 2, "[E, " + cells + "]", in_shape);
  d.labels = detail::load_array<std::uint8_t>(split_dir / (prefix + "labels.npy"), 2, "[E, " + cells + "]", lab_shape);
  d.puzzle_identifiers =
      detail::load_array<std::int32_t>(split_dir / (prefix + "puzzle_identifiers.npy"), 1, "[P]", pid_shape);
  d.puzzle_indices = detail::load_array<std::int32_t>(split_dir / (prefix + "puzzle_indices.npy"), 1, "[P + 1]", pi_shape);
  d.group_indices = detail::load_array<std::int32_t>(split_dir / (prefix + "group_indices.npy"), 1, "[G + 1]", gi_shape);
  if (in_shape[1] != S::cells) {
    throw SudokuFormatError((split_dir / (prefix + "inputs.npy")).string() + ": expected shape [E, " + cells + "] (" +
                            S::name() + "), found " + trm::format_shape(in_shape));
  }
  if (lab_shape != in_shape) {
    throw SudokuFormatError((split_dir / (prefix + "labels.npy")).string() + ": expected the inputs' shape " +
                            trm::format_shape(in_shape) + ", found " + trm::format_shape(lab_shape));
  }
  detail::validate(d, split_dir.string() + "/", opt);

  const std::filesystem::path ids_path = dir / "identifiers.json";
  if (std::filesystem::exists(ids_path)) {
    const nlohmann::json ids = detail::read_json(ids_path);
    const std::string ictx = ids_path.string() + ": ";
    if (!ids.is_array() || ids.empty() || !ids[0].is_string() || ids[0].get<std::string>() != "<blank>") {
      throw SudokuFormatError(ictx + "expected a list of names starting with \"<blank>\", found " + ids.dump());
    }
    if (static_cast<std::int64_t>(ids.size()) < m.num_puzzle_identifiers) {
      throw SudokuFormatError(ictx + "expected at least num_puzzle_identifiers (" +
                              std::to_string(m.num_puzzle_identifiers) + ") names, found " + std::to_string(ids.size()));
    }
  }
  return d;
}

}  // namespace trm::data::sudoku
