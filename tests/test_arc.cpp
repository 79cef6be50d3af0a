// ARC (trm/data/arc.hpp): reading the public layouts with their errors, numpy's legacy stream,
// the augmentation and canvas, the dataset build against the official builder's output
// (tests/data/arc/official, made by build_arc_dataset.py; see tests/data/arc/README.md) and the
// evaluator (voting, pass@K, submission.json) on synthetic predictions.
#include <doctest/doctest.h>

#include <trm/data/arc.hpp>
#include <trm/trm.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "support/check_throws.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace trm::data::arc;
using trm::data::NumpyLegacyRandom;
using trm::test::TempDir;

namespace {

const fs::path kData = fs::path(TRM_TEST_DATA_DIR) / "arc";

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), p.string());
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

Grid grid_of(std::initializer_list<std::initializer_list<int>> rows) {
  Grid g{int(rows.size()), int(rows.begin()->size())};
  int r = 0;
  for (const auto& row : rows) {
    int c = 0;
    for (int v : row) g.at(r, c++) = std::uint8_t(v);
    ++r;
  }
  return g;
}

// The fixture's three subsets, as the official build read them (concept: no solutions file).
std::vector<Subset> fixture_subsets() {
  const fs::path k = kData / "kaggle";
  std::vector<Subset> subsets;
  for (const char* name : {"training", "evaluation", "concept"}) {
    const fs::path ch = k / (std::string("arc-agi_") + name + "_challenges.json");
    const fs::path so = solutions_beside(ch);
    subsets.push_back({name, read_kaggle(ch, fs::exists(so) ? std::optional<fs::path>(so) : std::nullopt)});
  }
  return subsets;
}

}  // namespace

TEST_CASE("NumpyLegacyRandom reproduces numpy's legacy stream (tests/data/arc/numpy_random.json)") {
  const auto j = nlohmann::json::parse(slurp(kData / "numpy_random.json"));
  NumpyLegacyRandom rng(42);
  int checked = 0;
  for (const auto& c : j.at("calls")) {
    const std::string call = c.at("call");
    CAPTURE(call);
    CAPTURE(checked);
    if (call == "randint") {
      const auto args = c.at("args");
      CHECK(rng.randint(args[0].get<std::int64_t>(), args[1].get<std::int64_t>()) == c.at("result").get<std::int64_t>());
    } else if (call == "permutation9") {
      std::array<std::uint8_t, 9> p{1, 2, 3, 4, 5, 6, 7, 8, 9};
      rng.shuffle(std::span<std::uint8_t>(p));
      CHECK(std::vector<int>(p.begin(), p.end()) == c.at("result").get<std::vector<int>>());
    } else if (call == "shuffle10") {
      std::vector<int> v{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
      rng.shuffle(std::span<int>(v));
      CHECK(v == c.at("result").get<std::vector<int>>());
    } else {
      FAIL("unknown call in the fixture: " << call);
    }
    ++checked;
  }
  CHECK(checked >= 30);
  // randint(0, 2**32, dtype=uint32) of a fresh RandomState(42): its raw 32-bit outputs.
  NumpyLegacyRandom fresh(42);
  const auto& raw = j.at("fresh_state").at("randint_0_2pow32_uint32_x5");
  REQUIRE(raw.size() == 5);
  for (const auto& v : raw) CHECK(fresh.next_uint32() == v.get<std::uint32_t>());
}

TEST_CASE("ARC task files: both layouts read in file order; malformed files name the task, pair and cell") {
  TempDir dir("trm_arc_read");
  const fs::path d = dir.path();
  write_text(d / "abc.json", R"({"test": [{"input": [[1]], "output": [[2]]}], "train": [{"input": [[0, 1], [2, 3]], "output": [[4]]}]})");
  const Task t = read_task_file(d / "abc.json");
  CHECK(t.id == "abc");
  CHECK_FALSE(t.train_first);
  REQUIRE(t.train.size() == 1);
  CHECK(t.train[0].input == grid_of({{0, 1}, {2, 3}}));
  CHECK(t.test[0].has_output);

  // Kaggle: challenges without outputs; solutions fill them; without solutions: the placeholder.
  write_text(d / "x_challenges.json",
             R"({"t2": {"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[3]]}, {"input": [[4]]}]},)"
             R"( "t1": {"train": [{"input": [[5]], "output": [[6]]}], "test": [{"input": [[7]]}]}})");
  write_text(d / "x_solutions.json", R"({"t1": [[[8]]], "t2": [[[9]], [[0, 0]]]})");
  auto none = read_kaggle(d / "x_challenges.json");
  REQUIRE(none.size() == 2);
  CHECK(none[0].id == "t2");  // file order, not sorted
  CHECK_FALSE(none[0].test[1].has_output);
  CHECK(none[0].test[1].output == placeholder_grid());
  auto with = read_kaggle(d / "x_challenges.json", solutions_beside(d / "x_challenges.json"));
  CHECK(with[0].test[1].output == grid_of({{0, 0}}));
  CHECK(with[0].test[1].has_output);
  CHECK(with[1].test[0].output == grid_of({{8}}));

  auto bad = [&](const std::string& text) {
    write_text(d / "bad.json", text);
    return trm::test::error_of<ArcFormatError>([&] { (void)read_task_file(d / "bad.json"); });
  };
  const std::string ok_test = R"("test": [{"input": [[1]]}])";
  CHECK(bad(R"({"train": [{"input": [[1, 2], [3]], "output": [[1]]}], )" + ok_test + "}").find("task 'bad', train pair 0, input, row 1: expected a list of 2 colours") != std::string::npos);
  CHECK(bad(R"({"train": [{"input": [[1, 10]], "output": [[1]]}], )" + ok_test + "}").find("train pair 0, input, row 0, column 1: expected a colour 0..9, found number 10") != std::string::npos);
  CHECK(bad(R"({"train": [{"input": [[1, -1]], "output": [[1]]}], )" + ok_test + "}").find("column 1: expected a colour 0..9") != std::string::npos);
  CHECK(bad(R"({"train": [{"input": [[1, 2.5]], "output": [[1]]}], )" + ok_test + "}").find("column 1: expected a colour 0..9") != std::string::npos);
  CHECK(bad(R"({"train": [{"input": [[1]]}], )" + ok_test + "}").find("train pair 0: expected an \"output\" grid, found none") != std::string::npos);
  CHECK(bad(R"({"train": [{"input": [], "output": [[1]]}], )" + ok_test + "}").find("expected a grid (a non-empty list of rows)") != std::string::npos);
  CHECK(bad(R"({"train": [{"input": [[]], "output": [[1]]}], )" + ok_test + "}").find("row 0: expected a non-empty list of colours") != std::string::npos);
  std::string tall = "[";
  for (int r = 0; r < 31; ++r) tall += std::string(r ? "," : "") + "[1]";
  tall += "]";
  CHECK(bad(R"({"train": [{"input": )" + tall + R"(, "output": [[1]]}], )" + ok_test + "}").find("expected at most 30 rows, found 31") != std::string::npos);
  CHECK(bad(R"({"train": [], )" + ok_test + "}").find("expected at least one \"train\" pair") != std::string::npos);
  CHECK(bad(R"({"train": [{"input": [[1]], "output": [[1]]}]})").find("expected at least one \"test\" pair") != std::string::npos);
  // Other task keys are metadata (some ARC-AGI files have a "name"); other pair keys are errors.
  write_text(d / "named.json", R"({"name": "x", "train": [{"input": [[1]], "output": [[1]]}], )" + ok_test + "}");
  CHECK(read_task_file(d / "named.json").train.size() == 1);
  CHECK(bad(R"({"train": [{"input": [[1]], "output": [[1]], "extra": 1}], )" + ok_test + "}").find("expected only \"input\" and \"output\", found \"extra\"") != std::string::npos);
  CHECK(bad(R"({"train": [{"input": [[1]], "output": [[1]], "input": [[2]]}], )" + ok_test + "}").find("duplicate") != std::string::npos);
  CHECK(bad(R"({"train": [{"input": [[1]], "output": [[1]]}], )").find("expected valid JSON") != std::string::npos);

  // Solutions that do not match the challenges.
  write_text(d / "y_challenges.json", R"({"t": {"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[3]]}, {"input": [[4]]}]}})");
  write_text(d / "y_solutions.json", R"({"t": [[[9]]]})");
  CHECK_THROWS_CONTAINING(read_kaggle(d / "y_challenges.json", d / "y_solutions.json"), ArcFormatError,
                          "y_solutions.json: task 't': expected a list of 2 output grid(s) (one per test input)");
  write_text(d / "y_solutions.json", R"({"u": [[[9]]]})");
  CHECK_THROWS_CONTAINING(read_kaggle(d / "y_challenges.json", d / "y_solutions.json"), ArcFormatError,
                          "task 't': expected the solutions of this task");
  write_text(d / "y_solutions.json", R"({"t": [[[9]], [[1, 11]]]})");
  CHECK_THROWS_CONTAINING(read_kaggle(d / "y_challenges.json", d / "y_solutions.json"), ArcFormatError,
                          "task 't', test pair 1, output, row 0, column 1: expected a colour 0..9, found number 11");

  // A directory of task files: recursive, sorted by relative path, unique ids.
  fs::create_directories(d / "tree" / "b");
  write_text(d / "tree" / "b" / "z.json", slurp(d / "abc.json"));
  write_text(d / "tree" / "a.json", slurp(d / "abc.json"));
  const auto tasks = read_task_directory(d / "tree");
  REQUIRE(tasks.size() == 2);
  CHECK(tasks[0].id == "a");
  CHECK(tasks[1].id == "z");
  write_text(d / "tree" / "z.json", slurp(d / "abc.json"));
  CHECK_THROWS_CONTAINING(read_task_directory(d / "tree"), ArcFormatError, "expected unique task ids, found 'z' again");
}

TEST_CASE("ARC augmentation: names, apply and invert, and the refusal of malformed names") {
  Augmentation a;
  a.tid = 7;
  a.colour_map = {0, 3, 1, 2, 9, 8, 7, 6, 5, 4};
  CHECK(a.name_suffix() == "|||t7|||0312987654");
  const ParsedName p = parse_name("007bbfb7|||t7|||0312987654");
  CHECK(p.task_id == "007bbfb7");
  CHECK(p.augmentation == a);
  CHECK(parse_name("plain").augmentation.is_identity());
  const Grid g = grid_of({{0, 1, 2}, {3, 4, 5}});
  for (int tid = 0; tid < 8; ++tid) {
    a.tid = tid;
    const Grid m = apply(a, g);
    CHECK(invert(a, m) == g);
  }
  // t1 is numpy's rot90 (counter-clockwise) after the colour map.
  a.tid = 1;
  CHECK(apply(a, g) == grid_of({{1, 8}, {3, 9}, {0, 2}}));
  for (const char* bad : {"x|||t8|||0123456789", "x|||t1|||1023456789", "x|||t1|||012345678", "x|||t1|||0123456788", "x|||t1"})
    CHECK_THROWS_AS(parse_name(bad), ArcFormatError);
}

TEST_CASE("ARC canvas: EOS row and column, translation, and the evaluator's crop") {
  const Grid g = grid_of({{0, 1, 2}, {3, 4, 5}});
  std::vector<std::uint8_t> c(25);
  encode_into(g, 5, 1, 2, c);
  const std::vector<std::uint8_t> expect{0, 0, 0, 0, 0,  //
                                         0, 0, 2, 3, 4,  // no EOS column: the grid reaches the right edge
                                         0, 0, 5, 6, 7,  //
                                         0, 0, 1, 1, 1,  //
                                         0, 0, 0, 0, 0};
  CHECK(c == expect);
  encode_into(g, 5, 0, 0, c);
  CHECK(crop(std::span<const std::uint8_t>(c), 5) == g);
  // The crop keeps the largest top-left rectangle of colours, rows scanned from the top.
  const std::vector<int> ragged{2, 3, 4, 1, 0,  //
                                2, 3, 1, 0, 0,  //
                                2, 3, 5, 6, 0,  //
                                0, 0, 0, 0, 0,  //
                                0, 0, 0, 0, 0};
  CHECK(crop(std::span<const int>(ragged), 5) == grid_of({{0, 1}, {0, 1}, {0, 1}}));
  const std::vector<int> none(25, 1);
  CHECK(crop(std::span<const int>(none), 5).cells.empty());
  CHECK_THROWS_AS(encode_into(g, 5, 4, 0, c), trm::ValueError);
  static_assert(trm::data::Task<CanvasTask<10>> && trm::data::AugmentingTask<CanvasTask<30>>);
  const CanvasTask<10> task;
  CHECK(task.decode(task.encode(g)) == g);
}

TEST_CASE("ARC dataset build reproduces the official build_arc_dataset.py output, id for id") {
  const auto subsets = fixture_subsets();
  const char* arrays[] = {"all__inputs.npy", "all__labels.npy", "all__puzzle_identifiers.npy", "all__puzzle_indices.npy",
                          "all__group_indices.npy", "dataset.json"};
  for (int num_aug : {0, 3}) {
    CAPTURE(num_aug);
    const fs::path official = kData / "official" / ("aug" + std::to_string(num_aug));
    TempDir out("trm_arc_build");
    const Build b = build_dataset<30>(subsets, {.num_aug = num_aug, .test_set_names = {"evaluation"}});
    b.write(out.path());
    for (const std::string split : {"train", "test"})
      for (const std::string a : arrays) {
        CAPTURE(split);
        CAPTURE(a);
        CHECK(slurp(out.path() / split / a) == slurp(official / split / a));  // np.save's and json.dump's exact bytes
      }
    CHECK(slurp(out.path() / "identifiers.json") == slurp(official / "identifiers.json"));
    CHECK(slurp(out.path() / "test_puzzles.json") == slurp(official / "test_puzzles.json"));
    // And read back: the official files are a valid dataset of ours, test_puzzles.json our tasks.
    const auto ref = trm::data::PuzzleDataset::read(official, "train", {.require_identifiers = true});
    CHECK(ref.metadata == b.split("train")->metadata);
    CHECK(read_test_puzzles(official / "test_puzzles.json") == b.test_puzzles);
    CHECK(b.report.num_identifiers == std::int64_t(ref.identifiers.size()));
  }
}

TEST_CASE("ARC build: a smaller canvas leaves out (or refuses) tasks that do not fit, and ids can continue another table") {
  const auto subsets = fixture_subsets();
  CHECK_THROWS_CONTAINING(build_dataset<10>(subsets, {.num_aug = 1}), trm::ValueError, "larger than the 10x10 canvas");
  const Build b = build_dataset<10>(subsets, {.num_aug = 1, .puzzle_identifiers_start = 7, .skip_oversized = true});
  CHECK_FALSE(b.report.skipped.empty());
  CHECK(b.report.tasks + std::int64_t(b.report.skipped.size()) ==
        std::int64_t(subsets[0].tasks.size() + subsets[1].tasks.size() + subsets[2].tasks.size()));
  CHECK(b.identifiers[6] == "<blank>");
  CHECK(b.identifiers[7].find("|||") == std::string::npos);  // the first group's original
  const auto& s = b.split("train")->sets[0];
  CHECK(*std::min_element(s.puzzle_identifiers.begin(), s.puzzle_identifiers.end()) == 7);
}

TEST_CASE("ARC evaluator: votes ranked by count then mean q, pass@K, both scores, submission with fallbacks") {
  // Two test tasks: "a" (two test inputs) and "b" (one input, no solution given).
  Task a{"a", {{grid_of({{1}}), grid_of({{2}}), true}}, {{grid_of({{1, 2}}), grid_of({{3, 4}}), true}, {grid_of({{5}}), grid_of({{6}}), true}}, true};
  Task b{"b", {{grid_of({{1}}), grid_of({{2}}), true}}, {{grid_of({{7, 7}, {0, 7}}), placeholder_grid(), false}}, true};
  Augmentation flip;  // transpose with 1 <-> 2 swapped, 3 -> 4 -> 3
  flip.tid = 6;
  flip.colour_map = {0, 2, 1, 4, 3, 5, 6, 7, 8, 9};
  const std::vector<std::string> ids{"<blank>", "a", "a" + flip.name_suffix(), "b"};
  Voter v(ids, {a, b}, 5);
  auto canvas = [](const Grid& g) {
    std::vector<std::uint8_t> c(25);
    encode_into(g, 5, 0, 0, c);
    return c;
  };
  auto add = [&](int id, const Grid& in, const Grid& pred, double q) {
    const auto ci = canvas(in), cp = canvas(pred);
    v.add(id, std::span<const std::uint8_t>(ci), std::span<const std::uint8_t>(cp), q);
  };
  // Input 0 of "a": the right answer twice (once in the flipped frame), a wrong one twice with lower q, noise once.
  const Grid right = grid_of({{3, 4}}), wrong = grid_of({{4, 3}});
  add(1, a.test[0].input, wrong, -2.0);
  add(1, a.test[0].input, right, 1.0);
  add(2, apply(flip, a.test[0].input), apply(flip, right), 3.0);
  add(2, apply(flip, a.test[0].input), apply(flip, wrong), -2.0);
  add(1, a.test[0].input, grid_of({{9}}), 5.0);
  add(0, a.test[0].input, right, 9.0);  // the blank id: batch padding, skipped
  // Input 1 of "a": no predictions at all -> fallback. "b": one prediction, not scored.
  add(3, b.test[0].input, grid_of({{7}}), 0.0);
  add(3, b.test[0].input, Grid{}, 0.0);  // an empty crop: ranked, never submitted
  add(3, b.test[0].input, Grid{}, 0.0);
  CHECK(v.predictions() == 8);

  const ArcScores s = v.result();
  REQUIRE(s.inputs.size() == 3);
  const auto& c0 = s.inputs[0].candidates;
  REQUIRE(c0.size() == 3);
  CHECK(c0[0].grid == right);  // 2 votes, mean q higher than the wrong grid's
  CHECK(c0[0].votes == 2);
  CHECK(c0[0].mean_q == doctest::Approx((1 / (1 + std::exp(-1.0)) + 1 / (1 + std::exp(-3.0))) / 2));
  CHECK(c0[1].grid == wrong);
  CHECK(c0[2].grid == grid_of({{9}}));  // 1 vote, though the highest q
  CHECK(s.inputs[0].rank_of_solution == 0);
  CHECK(s.inputs[1].candidates.empty());
  CHECK_FALSE(s.inputs[2].scored);
  CHECK(s.scored_inputs == 2);
  CHECK(s.scored_tasks == 1);
  CHECK(s.unscored_inputs == 1);
  CHECK(s.solved_inputs[s.k_index(1)] == 1);
  CHECK(s.task_mean[s.k_index(1)] == doctest::Approx(0.5));  // task "a": 1 of its 2 inputs
  CHECK(s.kaggle(s.k_index(2)) == doctest::Approx(0.5));
  REQUIRE(s.fallbacks.size() == 1);
  CHECK(s.fallbacks[0] == "a test input 1");
  // submission.json: every test input of every task, in order, two attempts each.
  const auto& sub = s.submission;
  REQUIRE(sub.size() == 2);
  REQUIRE(sub["a"].size() == 2);
  CHECK(sub["a"][0]["attempt_1"] == grid_to_json(right));
  CHECK(sub["a"][0]["attempt_2"] == grid_to_json(wrong));
  CHECK(sub["a"][1]["attempt_1"] == grid_to_json(a.test[1].input));  // the fallback
  CHECK(s.inputs[2].candidates[0].grid.cells.empty());  // 2 votes: first in the ranking
  CHECK(sub["b"][0]["attempt_1"] == grid_to_json(grid_of({{7}})));
  CHECK(sub["b"][0]["attempt_2"] == grid_to_json(grid_of({{7}})));  // one grid candidate: repeated

  // Pooling: a second evaluation adds its votes; clear() starts over.
  add(1, a.test[0].input, grid_of({{9}}), 5.0);
  add(1, a.test[0].input, grid_of({{9}}), 5.0);
  CHECK(v.result().inputs[0].candidates[0].grid == grid_of({{9}}));
  CHECK(v.result().inputs[0].rank_of_solution == 1);
  CHECK(v.result().solved_inputs[0] == 0);  // pass@1 lost, pass@2 kept
  CHECK(v.result().solved_inputs[1] == 1);
  v.clear();
  CHECK(v.result().fallbacks.size() == 3);

  // Rows that do not belong to the test puzzles are errors.
  const auto ci = canvas(grid_of({{4}}));
  CHECK_THROWS_CONTAINING(v.add(1, std::span<const std::uint8_t>(ci), std::span<const std::uint8_t>(ci), 0.0), trm::ValueError,
                          "none of the test inputs of task 'a'");
  CHECK_THROWS_CONTAINING(v.add(9, std::span<const std::uint8_t>(ci), std::span<const std::uint8_t>(ci), 0.0), trm::ValueError,
                          "outside the 4 names");
}

namespace {
// A tiny ARC model on a 5x5 canvas (the test of the puzzle-table extension).
struct TinyArc {
  static constexpr int rows = 5, cols = 5, vocab = vocab_size, hidden = 32, layers = 2;
  static constexpr trm::ConfigOptions options{.puzzle_emb_len = 1};
  using mixer = trm::AttentionMixer<1>;
  using schedule = trm::TrmRecursion<>;
  using halting = trm::BceHalting<>;
};
using TinyArcModel = trm::Model<TinyArc>;
TinyArcModel tiny_arc(trm::index_t puzzle_ids, std::uint64_t seed) {
  return TinyArcModel({.schedule = trm::TrmRecursion<>(1, 1), .halting = trm::BceHalting<>(2), .puzzle_ids = puzzle_ids, .seed = seed});
}
}  // namespace

TEST_CASE("extend_puzzle_table: old rows kept, new rows the mean of the old, signature updated; shrinking refused") {
  TinyArcModel small = tiny_arc(3, 1);
  // Distinct rows, so that the mean is not a row.
  auto table = small.puzzle_emb.value.span();
  const std::size_t width = table.size() / 3;
  for (std::size_t k = 0; k < table.size(); ++k) table[k] = float(k % 7) - 2.5f + float(k / width);
  TempDir dir("trm_arc_extend");
  trm::save_model(small, dir.path() / "m.safetensors");
  const auto file = trm::io::SafetensorsFile::load(dir.path() / "m.safetensors");
  TinyArcModel big = tiny_arc(5, 2);
  CHECK_THROWS_AS(trm::load_model(big, file), trm::io::FormatError);  // the signature says 3 rows
  trm::load_model(big, trm::extend_puzzle_table(file, 5));
  const auto rows = big.puzzle_emb.value.span();
  for (std::size_t k = 0; k < 3 * width; ++k) CHECK(rows[k] == table[k]);
  for (std::size_t c = 0; c < width; ++c) {
    const double mean = (double(table[c]) + table[width + c] + table[2 * width + c]) / 3;
    CHECK(rows[3 * width + c] == doctest::Approx(mean).epsilon(1e-6));  // float of a double mean
    CHECK(rows[4 * width + c] == rows[3 * width + c]);
  }
  // The extended file carries the bigger model's signature.
  CHECK(big.signature() == trm::extend_puzzle_table(file, 5).metadata.at("trm.signature"));
  CHECK_THROWS_CONTAINING(trm::extend_puzzle_table(file, 2), trm::io::FormatError, "cannot shrink it to 2");
}

TEST_CASE("ARC evaluator on the official build's test split: the right answer under some variants, noise under the others") {
  const fs::path official = kData / "official" / "aug3";
  const auto test = trm::data::PuzzleDataset::read(official, "test", {.require_identifiers = true});
  const auto puzzles = read_test_puzzles(official / "test_puzzles.json");
  const auto& s = test.sets[0];
  REQUIRE(s.num_groups() == 3);  // the 3 evaluation tasks, 4 variants each
  // Each row's prediction: variants 0 and 2 of its group answer right (the solution in the
  // variant's frame), the others a grid of their own (noise: distinct, 1 vote each).
  auto run = [&](int right_variants) {
    Voter v(test.identifiers, puzzles, 30);
    std::uint8_t noise = 0;
    for (std::int64_t g = 0; g < s.num_groups(); ++g)
      for (std::int32_t p = s.group_indices[std::size_t(g)]; p < s.group_indices[std::size_t(g + 1)]; ++p) {
        const int variant = p - s.group_indices[std::size_t(g)];
        const ParsedName name = parse_name(test.identifiers[std::size_t(s.puzzle_identifiers[std::size_t(p)])]);
        for (std::int32_t e = s.puzzle_indices[std::size_t(p)]; e < s.puzzle_indices[std::size_t(p + 1)]; ++e) {
          const std::span<const std::uint8_t> in(s.inputs.data() + e * 900, 900);
          // The solution in the variant's frame: the stored label's crop.
          const Grid label = crop(std::span<const std::uint8_t>(s.labels.data() + e * 900, 900), 30);
          const bool right = (right_variants == 2 && (variant == 0 || variant == 2)) || (right_variants == 1 && variant == 1);
          Grid pred = label;
          if (!right) pred = Grid(2, 3, std::uint8_t(++noise % 10));
          if (!right && right_variants == 1) pred = Grid(1, 1, std::uint8_t(9));  // the same wrong grid twice or more
          std::vector<std::uint8_t> c(900);
          encode_into(pred, 30, 0, 0, c);
          v.add(s.puzzle_identifiers[std::size_t(p)], in, std::span<const std::uint8_t>(c), variant == 0 ? 1.0 : -1.0);
          CHECK(invert(name.augmentation, crop(in, 30)).rows > 0);
        }
      }
    return v.result();
  };
  const ArcScores two = run(2);
  CHECK(two.scored_inputs == 4);
  CHECK(two.scored_tasks == 3);
  CHECK(two.solved_inputs[two.k_index(1)] == 4);
  CHECK(two.task_mean[two.k_index(1)] == doctest::Approx(1.0));
  for (const auto& in : two.inputs) {
    CHECK(in.rank_of_solution == 0);
    CHECK(in.candidates[0].votes == 2);
    CHECK(in.candidates.size() == 3);
  }
  CHECK(two.fallbacks.empty());
  std::size_t entries = 0;
  for (const auto& t : puzzles) {
    REQUIRE(two.submission.contains(t.id));
    CHECK(two.submission[t.id].size() == t.test.size());
    for (std::size_t k = 0; k < t.test.size(); ++k) {
      CHECK(two.submission[t.id][k]["attempt_1"] == grid_to_json(t.test[k].output));
      ++entries;
    }
  }
  CHECK(entries == 4);
  // One right vote against a wrong grid voted 3 times: pass@1 lost, pass@2 kept.
  const ArcScores one = run(1);
  CHECK(one.solved_inputs[one.k_index(1)] == 0);
  CHECK(one.solved_inputs[one.k_index(2)] == 4);
  CHECK(one.kaggle(one.k_index(2)) == doctest::Approx(1.0));
  for (const auto& in : one.inputs) CHECK(in.rank_of_solution == 1);
}
