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
// Reading and writing are trm::data::PuzzleDataset's (data/puzzle_dataset.hpp): every file is
// written atomically (temporary file + fsync + rename), so a crash leaves either the old or the new
// file, never a torn one, and the reader checks the format (field types, dtypes, shapes against
// the file sizes before allocating, monotone offsets, id and token ranges). On top of that this
// file checks what is Sudoku's: seq_len and vocab against the compile-time shape, pad and blank
// ids, token ranges (inputs 1..N+1, labels 2..N+1) and, by default, that every label is a valid
// solution keeping its input's givens. Every error is a SudokuFormatError naming the file (and
// field) and what was expected vs found; PuzzleDataset's errors keep their text.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include <utility>

#include <nlohmann/json.hpp>

#include "trm/core/rng.hpp"
#include "trm/data/puzzle_dataset.hpp"
#include "trm/data/sudoku/augment.hpp"
#include "trm/data/sudoku/csv.hpp"
#include "trm/data/sudoku/grid.hpp"
#include "trm/data/sudoku/tokens.hpp"

namespace trm::data::sudoku {

// The reference metadata (dataset.json); the same struct as every task's.
using DatasetMetadata = PuzzleDatasetMetadata;

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

  // The task-neutral form (one set, named metadata.sets[0]), e.g. for TrainSampler / EvalSampler.
  PuzzleDataset to_puzzle_dataset() const {
    PuzzleDataset p;
    p.metadata = metadata;
    p.sets.push_back(PuzzleSet{metadata.sets.empty() ? std::string("all") : metadata.sets.front(), inputs, labels,
                               puzzle_identifiers, puzzle_indices, group_indices});
    return p;
  }
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

// What is Sudoku's (the format itself is checked by PuzzleDataset): metadata against the shape,
// token ranges, and with check_solutions / check_unique the labels as solutions of the inputs.
template <class S>
void validate_sudoku(const ReferenceDataset<S>& d, const std::string& ctx, const DatasetReadOptions& opt) {
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

// Runs f, turning PuzzleDataset's format errors into SudokuFormatError (same text).
template <class F>
decltype(auto) as_sudoku_error(F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const PuzzleDatasetError& e) {
    throw SudokuFormatError(e.what());
  }
}

}  // namespace detail

// Writes `d` under <dir>/<split>/ plus <dir>/identifiers.json, creating directories as needed.
// The dataset is validated first (as the reader would), so nothing invalid is written.
template <SudokuShapeType S>
void write_reference_dataset(const std::filesystem::path& dir, std::string_view split, const ReferenceDataset<S>& d) {
  if (d.metadata.sets.size() != 1) {
    throw ValueError("sudoku dataset: expected exactly one set name in the metadata, found " +
                     std::to_string(d.metadata.sets.size()));
  }
  const PuzzleDataset p = d.to_puzzle_dataset();
  DatasetReadOptions opt;
  opt.set = d.metadata.sets.front();
  detail::as_sudoku_error([&] { p.validate(dir, split); });
  detail::validate_sudoku(d, "sudoku dataset (before writing): ", opt);
  detail::as_sudoku_error([&] { p.write(dir, split); });
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
  namespace dp = trm::data::detail::puzzle;
  const std::filesystem::path split_dir = dir / std::string(split);
  const std::filesystem::path json_path = split_dir / "dataset.json";
  const std::string jctx = json_path.string() + ": ";
  // The metadata against the shape before any array is read.
  const DatasetMetadata m =
      detail::as_sudoku_error([&] { return dp::parse_metadata(dp::read_json(json_path), json_path.string()); });
  if (std::find(m.sets.begin(), m.sets.end(), opt.set) == m.sets.end()) {
    throw SudokuFormatError(jctx + "sets: expected it to contain \"" + opt.set + "\", found " +
                            nlohmann::json(m.sets).dump());
  }
  if (m.seq_len != S::seq_len) {
    throw SudokuFormatError(jctx + "seq_len: expected " + std::to_string(S::seq_len) + " (" + S::name() + "), found " +
                            std::to_string(m.seq_len));
  }
  PuzzleDataset p = detail::as_sudoku_error([&] { return PuzzleDataset::read(dir, split); });
  ReferenceDataset<S> d;
  d.metadata = std::move(p.metadata);
  for (PuzzleSet& s : p.sets) {
    if (s.name != opt.set) continue;
    d.inputs = std::move(s.inputs);
    d.labels = std::move(s.labels);
    d.puzzle_identifiers = std::move(s.puzzle_identifiers);
    d.puzzle_indices = std::move(s.puzzle_indices);
    d.group_indices = std::move(s.group_indices);
  }
  detail::validate_sudoku(d, split_dir.string() + "/", opt);
  if (!p.identifiers.empty() && p.identifiers.front() != "<blank>") {
    throw SudokuFormatError((dir / "identifiers.json").string() +
                            ": expected a list of names starting with \"<blank>\", found " +
                            nlohmann::json(p.identifiers).dump());
  }
  return d;
}

}  // namespace trm::data::sudoku
