#pragma once
// trm/data/sudoku.hpp - Sudoku data for TRM: shapes and grids, an exact solver with solution
// counting, a seeded generator, the reference's validity-preserving augmentation, the reference
// token encoding, CSV list readers and the reference on-disk dataset format (SPEC §6.1-6.2).
//
// Everything lives in namespace trm::data::sudoku:
//   SudokuShape<BoxRows, BoxCols>, Sudoku4 / Sudoku6 (2x3 boxes) / Sudoku9, Grid<S>, Example<S>
//   solve, count_solutions, solve_and_count, has_unique_solution, random_solution, generate
//   Transform<S>, random_transform, apply_transform, inverse, augment
//   encode, encode_into, decode, pad_token, blank_token
//   read_csv, parse_csv, check_example, SudokuFormatError
//   ReferenceDataset<S>, build_reference_dataset, write_reference_dataset, read_reference_dataset
//     (on trm::data::PuzzleDataset; ReferenceDataset::to_puzzle_dataset for its samplers)
//   SudokuTask<S>: all of the above as a trm::data::Task (data/task.hpp), with the inverse of the
//     augmentation (inverse(Transform))
#include "trm/data/sudoku/grid.hpp"
#include "trm/data/sudoku/solver.hpp"
#include "trm/data/sudoku/augment.hpp"
#include "trm/data/sudoku/tokens.hpp"
#include "trm/data/sudoku/csv.hpp"
#include "trm/data/sudoku/dataset.hpp"
#include "trm/data/sudoku/task.hpp"
