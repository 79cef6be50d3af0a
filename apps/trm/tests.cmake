# CTest tests of the `trm` command line (a few seconds in all): a tiny training run on 4x4
# puzzles, resume, solve from stdin and with --trace, eval, and bad input that must fail with a
# clear message (the exit status of those is checked by trm_cli_exit_status).
set(TRM_CLI_WORK "${CMAKE_CURRENT_BINARY_DIR}/cli-tests")
set(TRM_CLI_DATA "${CMAKE_CURRENT_SOURCE_DIR}/testdata")
set(TRM_CLI_RUN "${TRM_CLI_WORK}/run4")
set(TRM_CLI_CKPT "${TRM_CLI_RUN}/model.safetensors")
set(_trm "$<TARGET_FILE:trm_cli>")

function(trm_cli_test name regex)
  add_test(NAME ${name} COMMAND ${ARGN})
  set_tests_properties(${name} PROPERTIES PASS_REGULAR_EXPRESSION "${regex}" WORKING_DIRECTORY "${TRM_CLI_WORK}"
                                          TIMEOUT 120)
endfunction()

# Set-up: a fresh work directory, generated puzzles and a tiny trained model.
add_test(NAME trm_cli_setup COMMAND ${CMAKE_COMMAND} -E rm -rf "${TRM_CLI_WORK}")
add_test(NAME trm_cli_setup_dir COMMAND ${CMAKE_COMMAND} -E make_directory "${TRM_CLI_WORK}")
set_tests_properties(trm_cli_setup PROPERTIES FIXTURES_SETUP trm_cli_dir)
set_tests_properties(trm_cli_setup_dir PROPERTIES FIXTURES_SETUP trm_cli_dir DEPENDS trm_cli_setup)

trm_cli_test(trm_cli_help "generate.*train.*solve.*eval" ${_trm} sudoku --help)
trm_cli_test(trm_cli_generate "wrote 20 Sudoku 4x4"
             ${_trm} sudoku generate --box 2x2 --count 20 --blanks 7 --seed 5 --out "${TRM_CLI_WORK}/gen4.csv")
trm_cli_test(trm_cli_train "held-out exact accuracy: [0-9.]+% after 2 steps.*checkpoint: "
             ${_trm} sudoku train --box 2x2 --hidden 64 --nsup 2 --steps 6 --batch 8 --blanks 7 --eval-every 3
             --eval-size 16 --log-every 2 --threads 1 --quiet --out "${TRM_CLI_RUN}" --holdout "${TRM_CLI_WORK}/gen4.csv")
trm_cli_test(trm_cli_train_resume "resuming at step 6.*trained 8 steps \\(2 in this run\\)"
             ${_trm} sudoku train --steps 8 --threads 1 --quiet --no-plot --out "${TRM_CLI_RUN}" --resume)
trm_cli_test(trm_cli_solve_stdin "puzzle 1 \\(<stdin>:1\\).*supervision step.*solved [0-5] of 5 puzzles"
             sh -c "\"$1\" sudoku solve --checkpoint \"$2\" --threads 1 < \"$3\"" sh ${_trm} "${TRM_CLI_CKPT}"
             "${TRM_CLI_DATA}/good4.csv")
trm_cli_test(trm_cli_solve_trace "puzzle:.*step 1: [0-9]+ cell\\(s\\) changed from the puzzle.*step 2: "
             ${_trm} sudoku solve --checkpoint "${TRM_CLI_CKPT}" --input "${TRM_CLI_DATA}/good4.csv" --trace --threads 1)
trm_cli_test(trm_cli_solve_early_exit "solved [0-5] of 5 puzzles \\(.*\\), mean [0-9.]+ supervision steps \\(early exit\\)"
             ${_trm} sudoku solve --checkpoint "${TRM_CLI_CKPT}" --input "${TRM_CLI_DATA}/good4.csv" --early-exit --threads 1)
trm_cli_test(trm_cli_eval "all 2 steps.*early exit.*exact accuracy: [0-9.]+% \\(20 puzzles\\)"
             ${_trm} sudoku eval --checkpoint "${TRM_CLI_CKPT}" --input "${TRM_CLI_WORK}/gen4.csv" --threads 1)
trm_cli_test(trm_cli_eval_sample "puzzles: 3 from .*exact accuracy: [0-9.]+% \\(3 puzzles\\)"
             ${_trm} sudoku eval --checkpoint "${TRM_CLI_CKPT}" --input "${TRM_CLI_WORK}/gen4.csv" --sample 3 --seed 1
             --threads 1)

# --device: a bad value is named; cuda without a GPU (or without CUDA compiled in) or for a size the
# GPU is not compiled for says so. On a GPU machine, a short 9x9 run on the GPU whose checkpoint is
# then evaluated on the CPU (the same files); elsewhere it reports the missing GPU and passes.
trm_cli_test(trm_cli_device_bad "trm: error: --device: expected cpu or cuda, found 'tpu'"
             ${_trm} sudoku solve --checkpoint "${TRM_CLI_CKPT}" --input "${TRM_CLI_DATA}/good4.csv" --device tpu)
trm_cli_test(trm_cli_device_cuda_size
             "trm: error: --device cuda: (no CUDA device|this trm was built without CUDA|the GPU is compiled for .* not --box 2x2)"
             ${_trm} sudoku solve --checkpoint "${TRM_CLI_CKPT}" --input "${TRM_CLI_DATA}/good4.csv" --device cuda)
trm_cli_test(trm_cli_device_cuda_train "skipped: no GPU|backend cuda_bf16.*checkpoint: .*exact accuracy: [0-9.]+% \\(4 puzzles\\)"
             sh -c "out=$(\"$1\" sudoku train --box 3x3 --hidden 64 --nsup 2 --steps 2 --batch 4 --eval-every 2 --eval-size 4 --quiet --no-plot --device cuda --out \"$2\" 2>&1)
echo \"$out\"
case \"$out\" in *'no CUDA device'*|*'built without CUDA'*) echo 'skipped: no GPU'
exit 0
esac
\"$1\" sudoku generate --box 3x3 --count 4 --blanks 10 --seed 3 --out \"$2/q.csv\" && \"$1\" sudoku eval --checkpoint \"$2/model.safetensors\" --input \"$2/q.csv\" --device cpu"
             sh ${_trm} "${TRM_CLI_WORK}/gpu9")

# Bad input: each must name the line or field and what was expected.
set(_solve ${_trm} sudoku solve --checkpoint "${TRM_CLI_CKPT}" --threads 1 --input)
trm_cli_test(trm_cli_bad_fields "trm: error: .*bad_fields.csv:2: expected 1 or 2 comma-separated fields \\(PUZZLE\\[,SOLUTION\\]\\), found 3"
             ${_solve} "${TRM_CLI_DATA}/bad_fields.csv")
trm_cli_test(trm_cli_bad_length "trm: error: .*bad_length.csv:1: puzzle: expected 16 characters \\(Sudoku 4x4 with 2x2 boxes\\), found 15"
             ${_solve} "${TRM_CLI_DATA}/bad_length.csv")
trm_cli_test(trm_cli_bad_digit "trm: error: .*bad_digit.csv:1: puzzle cell 3 \\(row 0, col 3\\): expected a digit 1-4 or '.'/'0' for a blank, found '7'"
             ${_solve} "${TRM_CLI_DATA}/bad_digit.csv")
trm_cli_test(trm_cli_no_solution "trm: error: .*no_solution.csv:1: puzzle has no solution, expected exactly one"
             ${_solve} "${TRM_CLI_DATA}/no_solution.csv")
trm_cli_test(trm_cli_several_solutions "trm: error: .*several.csv:1: puzzle has several solutions \\(at least 2\\), expected exactly one"
             ${_solve} "${TRM_CLI_DATA}/several.csv")
trm_cli_test(trm_cli_conflicting_givens "trm: error: .*conflict.csv:1: puzzle givens conflict"
             ${_solve} "${TRM_CLI_DATA}/conflict.csv")
trm_cli_test(trm_cli_bad_solution "trm: error: .*bad_solution.csv:1: solution is not a valid Sudoku 4x4"
             ${_trm} sudoku eval --checkpoint "${TRM_CLI_CKPT}" --threads 1 --input "${TRM_CLI_DATA}/bad_solution.csv")
trm_cli_test(trm_cli_missing_input "trm: error: .*nonexistent.csv: cannot open the file"
             ${_solve} "${TRM_CLI_WORK}/nonexistent.csv")
trm_cli_test(trm_cli_wrong_config "trm: error: .*checkpoint of another model configuration: --box 3x3 but the checkpoint has 2x2; --hidden 128 but the checkpoint has 64"
             ${_trm} sudoku solve --checkpoint "${TRM_CLI_CKPT}" --box 3x3 --hidden 128 --input "${TRM_CLI_DATA}/good4.csv")
trm_cli_test(trm_cli_not_a_checkpoint "trm: error: .*good4.csv: cannot read the checkpoint"
             ${_trm} sudoku eval --checkpoint "${TRM_CLI_DATA}/good4.csv" --input "${TRM_CLI_DATA}/good4.csv")
trm_cli_test(trm_cli_state_is_not_a_model "trm: error: .*train_state.safetensors: .*expected a trm model file, found kind 'train_state'"
             ${_trm} sudoku eval --checkpoint "${TRM_CLI_RUN}/train_state.safetensors" --input "${TRM_CLI_DATA}/good4.csv")
trm_cli_test(trm_cli_unsupported_config "trm: error: unsupported model configuration: --hidden 100 \\(supported: 64, 128, 256\\); --layers 3 \\(supported: 2\\)"
             ${_trm} sudoku train --hidden 100 --layers 3 --steps 1 --out "${TRM_CLI_WORK}/never")
trm_cli_test(trm_cli_resume_other_config "trm: error: .*checkpoint of another model configuration: --hidden 128 but the checkpoint has 64"
             ${_trm} sudoku train --hidden 128 --steps 9 --out "${TRM_CLI_RUN}" --resume)
trm_cli_test(trm_cli_run_exists "trm: error: .*already holds a run"
             ${_trm} sudoku train --box 2x2 --steps 1 --out "${TRM_CLI_RUN}")
trm_cli_test(trm_cli_no_budget "trm: error: give a training budget"
             ${_trm} sudoku train --box 2x2 --out "${TRM_CLI_WORK}/never")
# Flags out of range are refused before anything runs (a beta of 1 would train a NaN model).
trm_cli_test(trm_cli_bad_beta "trm: error: --beta1: expected a value in \\[0, 1\\), found 1"
             ${_trm} sudoku train --box 2x2 --steps 1 --beta1 1.0 --out "${TRM_CLI_WORK}/never")
trm_cli_test(trm_cli_bad_halt_explore "trm: error: --halt-explore: expected a probability in \\[0, 1\\], found 2"
             ${_trm} maze train --steps 1 --halt-explore 2 --out "${TRM_CLI_WORK}/never")
# Crafted checkpoints (fuzz findings 1, 4, 5, 8; testdata/fuzz): a clean error, never a crash.
trm_cli_test(trm_cli_fuzz_deep_header "trm: error: .*nested at most 64 levels deep"
             ${_trm} sudoku solve --checkpoint "${CMAKE_SOURCE_DIR}/tests/data/fuzz/deep_shape_10k_asan_stack_overflow.safetensors"
             --input "${TRM_CLI_DATA}/good4.csv")
foreach(f box_empty box_1char hidden_1e30 hidden_wrap)
  trm_cli_test(trm_cli_fuzz_meta_${f} "trm: error: .*${f}.safetensors: the model configuration in the metadata is malformed"
               ${_trm} sudoku eval --checkpoint "${TRM_CLI_DATA}/fuzz/${f}.safetensors" --input "${TRM_CLI_DATA}/good4.csv")
endforeach()
foreach(f state_elapsed_str state_array)  # a valid spec, a malformed state: refused by the weights check, no crash
  trm_cli_test(trm_cli_fuzz_meta_${f} "trm: error: .*${f}.safetensors: "
               ${_trm} sudoku eval --checkpoint "${TRM_CLI_DATA}/fuzz/${f}.safetensors" --input "${TRM_CLI_DATA}/good4.csv")
endforeach()
# A checkpoint with 4 bytes changed inside a weight tensor (fuzz finding: it loaded and scored 0 %,
# exit 0) is refused by its checksum, naming the tensor. q_head.weight is the last tensor of the
# file (tensors are stored in name order) and 512 bytes long, so the 4 bytes from 64 before the
# end are inside it.
trm_cli_test(trm_cli_flipped_weights "trm: error: .*flipped.safetensors: tensor 'q_head.weight': checksum mismatch.*STATUS 1"
             sh -c "cp \"$2\" \"$3\" && n=$(($(wc -c < \"$3\") - 64)) &&
printf '\\132\\132\\132\\132' | dd of=\"$3\" bs=1 seek=$n conv=notrunc 2>/dev/null &&
\"$1\" sudoku eval --checkpoint \"$3\" --input \"$4\" --threads 1 || echo STATUS $?"
             sh ${_trm} "${TRM_CLI_CKPT}" "${TRM_CLI_WORK}/flipped.safetensors" "${TRM_CLI_DATA}/good4.csv")
# A FIFO as input is refused before open() (which would block forever without a writer).
trm_cli_test(trm_cli_fifo_input "trm: error: .*pipe: expected a regular file, found a FIFO"
             sh -c "rm -f \"$2/pipe\" && mkfifo \"$2/pipe\" && timeout 20 \"$1\" sudoku solve --checkpoint \"$3\" --input \"$2/pipe\""
             sh ${_trm} "${TRM_CLI_WORK}" "${TRM_CLI_CKPT}")
trm_cli_test(trm_cli_version "^trm [0-9]+\\.[0-9]+\\.[0-9]+" ${_trm} --version)
# No half-written output: a failed generate leaves no file behind.
trm_cli_test(trm_cli_generate_fails_cleanly "trm: error: sudoku generate: could not make a unique.*NO_FILE_LEFT"
             sh -c "\"$1\" sudoku generate --box 2x2 --count 3 --blanks 15 --out \"$2\" || test -e \"$2\" || echo NO_FILE_LEFT"
             sh ${_trm} "${TRM_CLI_WORK}/impossible.csv")
trm_cli_test(trm_cli_generate_bad_dir "trm: error: .*no_such_dir/x.csv: cannot write the file"
             ${_trm} sudoku generate --box 2x2 --count 3 --blanks 6 --out "${TRM_CLI_WORK}/no_such_dir/x.csv")
trm_cli_test(trm_cli_generate_bad_box "trm: error: --box 5x5 is not supported \\(supported: 2x2, 2x3, 3x3\\)"
             ${_trm} sudoku generate --box 5x5 --count 3)
# Usage errors name the unknown word and list the known ones (exit status 2, checked below).
trm_cli_test(trm_cli_unknown_subcommand "trm: error: trm sudoku: unknown subcommand 'generat' \\(known: generate, train, solve, eval, plot;"
             ${_trm} sudoku generat --box 2x2)
trm_cli_test(trm_cli_unknown_task "trm: error: trm: unknown task 'mase' \\(known: sudoku, maze;"
             ${_trm} mase train)
trm_cli_test(trm_cli_missing_subcommand "trm: error: trm maze: missing subcommand \\(one of: generate, build, train, solve, eval, plot;"
             ${_trm} maze)
trm_cli_test(trm_cli_solve_steps_zero "trm: error: --steps: expected an integer >= 1, found 0"
             ${_solve} "${TRM_CLI_DATA}/good4.csv" --steps 0)
trm_cli_test(trm_cli_help_exit_status "Exit status: 0 success.*3 solve/eval ran but did not solve every puzzle" ${_trm} --help)
# solve and eval: status 0 when every puzzle was solved, 3 when some were not (which of the two
# depends on how well the tiny model trained, so the test checks that the status agrees with the count).
# No ';' in the script: CMake splits arguments on it.
trm_cli_test(trm_cli_unsolved_status "SOLVE_STATUS_AGREES.*EVAL_STATUS_AGREES"
             sh -c "out=$(\"$1\" sudoku solve --checkpoint \"$2\" --input \"$3\" --threads 1)
rc=$?
want=3
if echo \"$out\" | grep -q 'solved 5 of 5 puzzles'
then want=0
fi
test $rc = $want && echo SOLVE_STATUS_AGREES
out=$(\"$1\" sudoku eval --checkpoint \"$2\" --input \"$3\" --threads 1)
rc=$?
want=3
if echo \"$out\" | grep -q 'exact accuracy: 100.0%'
then want=0
fi
test $rc = $want && echo EVAL_STATUS_AGREES"
             sh ${_trm} "${TRM_CLI_CKPT}" "${TRM_CLI_DATA}/good4.csv")
# Exit statuses: 0 on success, 1 on an error, 2 on a usage error (a bad flag, an unknown subcommand).
# The training curve of the tiny run, redrawn from its metrics.csv (gnuplot: tools/install_deps.sh).
trm_cli_test(trm_cli_plot "curve: .*plot4.png.*PNG_OK"
             sh -c "\"$1\" sudoku plot --run \"$2\" --out \"$3\" && test -s \"$3\" && echo PNG_OK"
             sh ${_trm} "${TRM_CLI_RUN}" "${TRM_CLI_WORK}/plot4.png")
trm_cli_test(trm_cli_exit_status "STATUS 0 1 1 2 2 2"
             sh -c "\"$1\" sudoku generate --box 2x2 --count 1 --blanks 4 >/dev/null 2>&1
a=$?
\"$1\" sudoku solve --checkpoint \"$2\" --input \"$3\" >/dev/null 2>&1
b=$?
\"$1\" sudoku generate --box 5x5 >/dev/null 2>&1
c=$?
\"$1\" sudoku train --bogus >/dev/null 2>&1
d=$?
\"$1\" sudoku generat >/dev/null 2>&1
e=$?
\"$1\" maze >/dev/null 2>&1
f=$?
echo STATUS $a $b $c $d $e $f"
             sh ${_trm} "${TRM_CLI_CKPT}" "${TRM_CLI_DATA}/several.csv")

# ---- maze: the same driver over MazeTask ----------------------------------------------------------------
set(TRM_CLI_MAZE_RUN "${TRM_CLI_WORK}/maze_run")
set(TRM_CLI_MAZE_CKPT "${TRM_CLI_MAZE_RUN}/model.safetensors")
trm_cli_test(trm_cli_maze_generate "wrote 12 9x9 mazes \\(loops 0.10, min distance 6, unique shortest paths"
             ${_trm} maze generate --size 9x9 --count 12 --seed 3 --out "${TRM_CLI_WORK}/maze9.csv")
trm_cli_test(trm_cli_maze_generate_hard "^source,question,answer,rating\ntrm-generate-hard,[# SGo]+,[# SGo]+,[0-9]+\ntrm-generate-hard,[# SGo]+,[# SGo]+,[0-9]+\ntrm-generate-hard,[# SGo]+,[# SGo]+,[0-9]+\n$"
             ${_trm} maze generate --size 7x7 --hard --count 3 --seed 1)
# The reference dataset from a CSV directory (train.csv, test.csv), with the builder's --aug.
trm_cli_test(trm_cli_maze_build "maze_data/train: 64 examples, 8 groups, seq_len 81, vocab 6.*maze_data/test: 4 examples"
             sh -c "mkdir -p \"$2/maze_csv\" && \"$1\" maze generate --size 9x9 --count 8 --seed 4 --out \"$2/maze_csv/train.csv\" &&
\"$1\" maze generate --size 9x9 --count 4 --seed 5 --out \"$2/maze_csv/test.csv\" &&
\"$1\" maze build --size 9x9 --input \"$2/maze_csv\" --out \"$2/maze_data\" --aug" sh ${_trm} "${TRM_CLI_WORK}")
trm_cli_test(trm_cli_maze_train "held-out exact accuracy: [0-9.]+% after 2 steps.*8 mazes.*held-out valid answers: .*valid and shortest paths"
             ${_trm} maze train --size 9x9 --nsup 2 --steps 4 --batch 8 --eval-every 2 --eval-size 8 --threads 1 --quiet
             --no-plot --out "${TRM_CLI_MAZE_RUN}" --holdout "${TRM_CLI_WORK}/maze9.csv")
trm_cli_test(trm_cli_maze_train_data "data: .*maze_data \\(train: 64 examples, 1 puzzle ids; evaluation: 4 of 4 test examples\\).*trained 3 steps"
             ${_trm} maze train --size 9x9 --nsup 2 --steps 3 --batch 8 --threads 1 --quiet --no-plot
             --data "${TRM_CLI_WORK}/maze_data" --out "${TRM_CLI_WORK}/maze_run_data")
trm_cli_test(trm_cli_maze_solve "maze 1 \\(.*maze9.csv:2\\): .*supervision step.*solved [0-9]+ of 12 mazes with a valid shortest path"
             ${_trm} maze solve --checkpoint "${TRM_CLI_MAZE_CKPT}" --input "${TRM_CLI_WORK}/maze9.csv" --threads 1)
trm_cli_test(trm_cli_maze_eval "all 2 steps.*early exit.*exact accuracy: [0-9.]+%; valid and shortest: [0-9.]+% \\(12 mazes\\)"
             ${_trm} maze eval --checkpoint "${TRM_CLI_MAZE_CKPT}" --input "${TRM_CLI_WORK}/maze9.csv" --threads 1)
trm_cli_test(trm_cli_maze_eval_data "mazes: 4 from .*maze_data/test.*\\(4 mazes\\)"
             ${_trm} maze eval --checkpoint "${TRM_CLI_MAZE_CKPT}" --data "${TRM_CLI_WORK}/maze_data" --threads 1)
trm_cli_test(trm_cli_maze_wrong_task "trm: error: .*a checkpoint of a maze model .*expected a sudoku model; use `trm maze ...`"
             ${_trm} sudoku solve --checkpoint "${TRM_CLI_MAZE_CKPT}" --input "${TRM_CLI_DATA}/good4.csv")
trm_cli_test(trm_cli_maze_unsupported_size "trm: error: unsupported model configuration: --size 11x11 \\(supported: 9x9, 30x30\\)"
             ${_trm} maze train --size 11x11 --steps 1 --out "${TRM_CLI_WORK}/never")
trm_cli_test(trm_cli_maze_bad_size "trm: error: --size 4x9: expected sides in 5..30"
             ${_trm} maze generate --size 4x9 --count 1)

# ARC: the official build from the fixture's Kaggle files (byte-identical to the official
# builder's output in tests/data/arc/official/aug3), a 10x10 build, a few training steps, the
# voting evaluator with a submission, and the whole submit flow (build with continued ids,
# fine-tune, vote, submission.json with every test input).
set(TRM_ARC_DATA "${PROJECT_SOURCE_DIR}/tests/data/arc")
trm_cli_test(trm_cli_arc_build "built 10 tasks on a 30x30 canvas, 3 augmentations each \\(seed 42\\).*: 41 puzzle ids"
             ${_trm} arc build --input-prefix "${TRM_ARC_DATA}/kaggle/arc-agi" --subsets training evaluation concept
             --test-set evaluation --num-aug 3 --out "${TRM_CLI_WORK}/arc30")
add_test(NAME trm_cli_arc_build_identical COMMAND sh -c "set -e
cd \"$1\"
for f in identifiers.json test_puzzles.json train/dataset.json test/dataset.json train/all__inputs.npy train/all__labels.npy \
  train/all__puzzle_identifiers.npy train/all__puzzle_indices.npy train/all__group_indices.npy test/all__inputs.npy \
  test/all__labels.npy test/all__puzzle_identifiers.npy test/all__puzzle_indices.npy test/all__group_indices.npy
do cmp \"$f\" \"$2/$f\"
done
echo all 14 files identical" sh "${TRM_CLI_WORK}/arc30" "${TRM_ARC_DATA}/official/aug3")
trm_cli_test(trm_cli_arc_build10 "left out \\(larger than the canvas\\): 3 tasks"
             ${_trm} arc build --subset "training=${TRM_ARC_DATA}/kaggle/arc-agi_training_challenges.json"
             --subset "evaluation=${TRM_ARC_DATA}/kaggle/arc-agi_evaluation_challenges.json"
             --subset "concept=${TRM_ARC_DATA}/kaggle/arc-agi_concept_challenges.json"
             --num-aug 2 --size 10x10 --skip-oversized --out "${TRM_CLI_WORK}/arc10")
trm_cli_test(trm_cli_arc_train "ARC on a 10x10 canvas, TRM-Att hidden 64.*trained 4 steps.*checkpoint: "
             ${_trm} arc train --size 10x10 --hidden 64 --n 1 --T 1 --nsup 2 --steps 4 --batch 8 --eval-every 0 --eval-size 8
             --threads 1 --quiet --no-plot --data "${TRM_CLI_WORK}/arc10" --out "${TRM_CLI_WORK}/arcrun")
trm_cli_test(trm_cli_arc_eval "pass@1 .*pass@2 .*pass@1000 .*scored: 2 tasks, 3 test inputs.*submission: .*\\(2 tasks, 3 test inputs, 2 attempts each\\)"
             ${_trm} arc eval --checkpoint "${TRM_CLI_WORK}/arcrun/model.safetensors" --data "${TRM_CLI_WORK}/arc10" --threads 1
             --submission "${TRM_CLI_WORK}/arc10_submission.json")
trm_cli_test(trm_cli_arc_submit "puzzle ids [0-9]+\\.\\.[0-9]+ continue the checkpoint's.*init: .*new rows the mean.*no prediction for 1 test input.*submission: .*\\(3 tasks, 4 test inputs, 2 attempts each\\)"
             ${_trm} arc submit --checkpoint "${TRM_CLI_WORK}/arcrun/model.safetensors"
             --challenges "${TRM_ARC_DATA}/kaggle/arc-agi_evaluation_challenges.json" --out "${TRM_CLI_WORK}/arcsubmit"
             --num-aug 2 --finetune-steps 2 --finetune-batch 4 --threads 1 --quiet)
trm_cli_test(trm_cli_arc_bad_task "trm: error: .*bad_arc.json: task 'bad_arc', train pair 0, input, row 1, column 0: expected a colour 0..9, found number 12"
             ${_trm} arc build --subset "x=${TRM_CLI_DATA}/arc_bad" --out "${TRM_CLI_WORK}/arc_bad_out")
trm_cli_test(trm_cli_arc_bad_warmup "trm: error: --finetune-warmup: expected >= 0, found -1"
             ${_trm} arc submit --checkpoint "${TRM_CLI_WORK}/arcrun/model.safetensors" --finetune-warmup -1
             --challenges "${TRM_ARC_DATA}/kaggle/arc-agi_evaluation_challenges.json" --out "${TRM_CLI_WORK}/never")
trm_cli_test(trm_cli_arc_bad_threads "trm: error: --threads: expected 0..1024"
             ${_trm} arc eval --checkpoint "${TRM_CLI_WORK}/arcrun/model.safetensors" --data "${TRM_CLI_WORK}/arc10" --threads 5000)
trm_cli_test(trm_cli_arc_wrong_task "a checkpoint of a sudoku model .*use `trm sudoku"
             ${_trm} arc eval --checkpoint "${TRM_CLI_CKPT}" --data "${TRM_CLI_WORK}/arc10")


get_property(_trm_cli_tests DIRECTORY PROPERTY TESTS)
foreach(t IN LISTS _trm_cli_tests)
  if(NOT t MATCHES "^trm_cli_setup")
    set_tests_properties(${t} PROPERTIES FIXTURES_REQUIRED trm_cli_dir)
  endif()
endforeach()
# The tiny runs are the fixtures of everything that reads their checkpoints.
set_tests_properties(trm_cli_generate PROPERTIES FIXTURES_SETUP trm_cli_puzzles)
set_tests_properties(trm_cli_train PROPERTIES FIXTURES_SETUP trm_cli_model FIXTURES_REQUIRED "trm_cli_dir;trm_cli_puzzles")
foreach(t IN LISTS _trm_cli_tests)
  if(NOT t MATCHES "^trm_cli_(setup|help|version|generate|train$|unsupported|no_budget|bad_beta|bad_halt|maze|fuzz|arc)")
    set_tests_properties(${t} PROPERTIES FIXTURES_REQUIRED "trm_cli_dir;trm_cli_puzzles;trm_cli_model")
  endif()
endforeach()
set_tests_properties(trm_cli_train_resume PROPERTIES FIXTURES_SETUP trm_cli_resumed)
foreach(t trm_cli_resume_other_config trm_cli_run_exists trm_cli_plot)
  set_tests_properties(${t} PROPERTIES DEPENDS trm_cli_train_resume)
endforeach()
set_tests_properties(trm_cli_maze_generate PROPERTIES FIXTURES_SETUP trm_cli_mazes)
set_tests_properties(trm_cli_maze_build PROPERTIES FIXTURES_SETUP trm_cli_maze_data)
set_tests_properties(trm_cli_maze_train PROPERTIES FIXTURES_SETUP trm_cli_maze_model FIXTURES_REQUIRED "trm_cli_dir;trm_cli_mazes")
set_tests_properties(trm_cli_maze_train_data PROPERTIES FIXTURES_REQUIRED "trm_cli_dir;trm_cli_maze_data")
foreach(t trm_cli_maze_solve trm_cli_maze_eval trm_cli_maze_wrong_task)
  set_tests_properties(${t} PROPERTIES FIXTURES_REQUIRED "trm_cli_dir;trm_cli_mazes;trm_cli_maze_model")
endforeach()
set_tests_properties(trm_cli_maze_eval_data PROPERTIES FIXTURES_REQUIRED "trm_cli_dir;trm_cli_maze_data;trm_cli_maze_model")
set_tests_properties(trm_cli_arc_build PROPERTIES FIXTURES_SETUP trm_cli_arc30)
set_tests_properties(trm_cli_arc_build_identical PROPERTIES FIXTURES_REQUIRED "trm_cli_dir;trm_cli_arc30"
                     PASS_REGULAR_EXPRESSION "all 14 files identical")
set_tests_properties(trm_cli_arc_build10 PROPERTIES FIXTURES_SETUP trm_cli_arc10)
set_tests_properties(trm_cli_arc_train PROPERTIES FIXTURES_SETUP trm_cli_arcrun FIXTURES_REQUIRED "trm_cli_dir;trm_cli_arc10")
foreach(t trm_cli_arc_eval trm_cli_arc_submit trm_cli_arc_bad_warmup trm_cli_arc_bad_threads)
  set_tests_properties(${t} PROPERTIES FIXTURES_REQUIRED "trm_cli_dir;trm_cli_arc10;trm_cli_arcrun")
endforeach()
set_tests_properties(trm_cli_arc_wrong_task PROPERTIES FIXTURES_REQUIRED "trm_cli_dir;trm_cli_arc10;trm_cli_model")
