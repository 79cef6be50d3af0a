#pragma once
// trm/data/maze.hpp - Maze data for TRM (SPEC §6.3, §7.1): grids and the reference token
// encoding, a BFS solver with shortest-path counting and the valid-and-shortest checker, the
// reference's 8 dihedral augmentations with inverses, Maze-Hard CSV and plain-text readers, the
// reference dataset builder (build_maze_dataset.py) and a seeded generator.
//
// Everything lives in namespace trm::data::maze:
//   Cell, Pos, Maze, charset, pad_token .. path_token, vocab_size, encode, encode_into, decode
//   solve, SolveResult, shortest_distance, check_path, valid_and_shortest
//   dihedral, inverse_dihedral, dihedral_shape, dihedral_inverse
//   MazeExample, MazeCsvOptions, read_csv, parse_csv, to_csv, check_example, read_text, parse_text
//   MazeDatasetOptions, build_split, build_dataset
//   GenerateOptions, generate (corridor mazes); HardGenerateOptions, HardGenerateStats, UniqueBy,
//   hard_min_distance, generate_hard (the procedure that made Maze-Hard)
//   MazeFormatError (a trm::ValueError)
#include "trm/data/maze/grid.hpp"
#include "trm/data/maze/solver.hpp"
#include "trm/data/maze/augment.hpp"
#include "trm/data/maze/csv.hpp"
#include "trm/data/maze/dataset.hpp"
#include "trm/data/maze/generate.hpp"
