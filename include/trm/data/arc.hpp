#pragma once
// trm/data/arc.hpp - ARC-AGI for TRM (SPEC §6.4, §7.2): tasks read from the ARC-AGI per-task
// JSON files or Kaggle's combined files, the reference's augmentations (dihedral x colour
// permutation) and token canvas, the official dataset build id for id (numpy's stream), the
// official evaluator's voting, pass@K and Kaggle submission, and a Task for the task layer.
//
// Everything lives in namespace trm::data::arc:
//   Grid, Pair, Task, ArcFormatError, parse_grid, read_task_file, read_task_directory,
//   read_kaggle, solutions_beside, grid_to_json, placeholder_grid
//   Augmentation, draw_augmentation, apply, invert, parse_name, ParsedName
//   pad_token, eos_token, vocab_size, encode_into, crop, fits_canvas
//   Subset, BuildOptions, BuildReport, Build, build_dataset<Side>, tasks_to_json
//   Voter, ArcScores, Candidate, TestInputVotes, reference_pass_ks, read_test_puzzles
//   CanvasTask<Side> (trm::data::Task, AugmentingTask)
#include "trm/data/arc/grid.hpp"
#include "trm/data/arc/augment.hpp"
#include "trm/data/arc/canvas.hpp"
#include "trm/data/arc/build.hpp"
#include "trm/data/arc/evaluate.hpp"
#include "trm/data/arc/task.hpp"
