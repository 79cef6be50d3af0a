#pragma once
// Maze-Hard CSV -> the reference's on-disk dataset (SPEC §6.1, §6.3), as the official
// dataset/build_maze_dataset.py writes it (checked against its output in tests/data/maze):
//   per split: one set "all"; for each maze, in CSV order, one group of 1 puzzle (8 with `aug`,
//   train only: dihedral transforms 0..7 of question and answer, in that order), each puzzle one
//   example; inputs = question tokens, labels = answer tokens (uint8, [E, rows*cols]);
//   puzzle_identifiers all 0; puzzle_indices 0..E; group_indices 0, k, 2k, ... (k = 1 or 8).
//   dataset.json: pad_id 0, ignore_label_id 0, blank_identifier_id 0, vocab_size 6,
//   seq_len rows*cols, num_puzzle_identifiers 1, total_groups N, mean_puzzle_examples 1.0,
//   total_puzzles N (the number of groups, also with aug: the reference writes it so), sets ["all"];
//   identifiers.json ["<blank>"].
// The reference infers square sides from the first question's length; here the sides come from
// the CSV options (any rows x cols; `aug` needs a square maze, since transposing changes the
// sides). The reference's --subsample-size (unseeded numpy choice) is not reproduced: select
// the examples before building.
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "trm/data/maze/augment.hpp"
#include "trm/data/maze/csv.hpp"
#include "trm/data/maze/grid.hpp"
#include "trm/data/puzzle_dataset.hpp"

namespace trm::data::maze {

struct MazeDatasetOptions {
  bool aug = false;  // the reference's --aug: 8 dihedral transforms per maze, train split only
};

// One split. `train` decides whether `aug` applies.
inline PuzzleDataset build_split(std::span<const MazeExample> examples, bool train, const MazeDatasetOptions& options = {}) {
  if (examples.empty()) throw ValueError("maze::build_split: expected at least one maze, found none");
  const int rows = examples[0].question.rows(), cols = examples[0].question.cols();
  const bool aug = train && options.aug;
  if (aug && rows != cols)
    throw ValueError("maze::build_split: aug: expected square mazes (dihedral transforms swap the sides), found " +
                     std::to_string(rows) + "x" + std::to_string(cols));
  const int k = aug ? num_dihedral : 1;
  const std::size_t L = std::size_t(rows) * std::size_t(cols);
  PuzzleDataset d;
  PuzzleSet s;
  s.name = "all";
  s.inputs.reserve(examples.size() * std::size_t(k) * L);
  s.labels.reserve(examples.size() * std::size_t(k) * L);
  s.puzzle_indices.push_back(0);
  s.group_indices.push_back(0);
  std::int32_t puzzles = 0;
  for (std::size_t i = 0; i < examples.size(); ++i) {
    const MazeExample& e = examples[i];
    for (const Maze* m : {&e.question, &e.answer})
      if (m->rows() != rows || m->cols() != cols)
        throw ValueError("maze::build_split: example " + std::to_string(i) + ": expected " + std::to_string(rows) + "x" +
                         std::to_string(cols) + " (the first maze's size), found " + std::to_string(m->rows()) + "x" +
                         std::to_string(m->cols()));
    for (int t = 0; t < k; ++t) {
      const auto q = encode(dihedral(e.question, t)), a = encode(dihedral(e.answer, t));
      s.inputs.insert(s.inputs.end(), q.begin(), q.end());
      s.labels.insert(s.labels.end(), a.begin(), a.end());
      ++puzzles;
      s.puzzle_indices.push_back(puzzles);
      s.puzzle_identifiers.push_back(0);
    }
    s.group_indices.push_back(puzzles);
  }
  const auto N = std::int64_t(examples.size());
  d.metadata.pad_id = pad_token;
  d.metadata.ignore_label_id = 0;
  d.metadata.blank_identifier_id = 0;
  d.metadata.vocab_size = vocab_size;
  d.metadata.seq_len = int(L);
  d.metadata.num_puzzle_identifiers = 1;
  d.metadata.total_groups = N;
  d.metadata.mean_puzzle_examples = 1.0;
  d.metadata.total_puzzles = N;
  d.metadata.sets = {"all"};
  d.sets.push_back(std::move(s));
  d.identifiers = {"<blank>"};
  return d;
}

// The reference's build: <in_dir>/train.csv and <in_dir>/test.csv -> <out_dir>/{train,test}/ and
// <out_dir>/identifiers.json.
inline void build_dataset(const std::filesystem::path& in_dir, const std::filesystem::path& out_dir,
                          const MazeDatasetOptions& options = {}, const MazeCsvOptions& csv = {}) {
  for (const char* split : {"train", "test"}) {
    const auto examples = read_csv(in_dir / (std::string(split) + ".csv"), csv);
    build_split(examples, std::string_view(split) == "train", options).write(out_dir, split);
  }
}

}  // namespace trm::data::maze
