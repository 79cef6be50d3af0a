// Tests for trm/data/sudoku: solver, generator, augmentation, tokens, CSV lists and the reference
// on-disk dataset format.
#include <doctest/doctest.h>

#include <trm/data/sudoku.hpp>
#include <trm/io/npy.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/check_throws.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;

// CHECK_MESSAGE_HAS(text, doctest::Contains("...")): `text` (an std::string) contains the string.
#define CHECK_MESSAGE_HAS(text, matcher) CHECK(doctest::String(std::string(text).c_str()) == (matcher))
using namespace trm::data::sudoku;
using trm::Rng;
using trm::test::error_of;
using trm::test::TempDir;

namespace {

const fs::path kSample = fs::path(TRM_TEST_DATA_DIR) / "sudoku" / "forum_hardest_1905_11plus_first50.csv";

// An independent, obviously-correct oracle: plain backtracking in cell order, no heuristics.
template <class S>
int naive_count(Grid<S> g, int limit) {
  int count = 0;
  std::function<void(int)> rec = [&](int i) {
    if (count >= limit) return;
    while (i < S::cells && g[static_cast<std::size_t>(i)] != 0) ++i;
    if (i == S::cells) {
      ++count;
      return;
    }
    for (int d = 1; d <= S::n; ++d) {
      bool ok = true;
      for (int j = 0; j < S::cells && ok; ++j) {
        if (g[static_cast<std::size_t>(j)] == d &&
            (S::row(j) == S::row(i) || S::col(j) == S::col(i) || S::box(j) == S::box(i))) {
          ok = false;
        }
      }
      if (!ok) continue;
      g[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(d);
      rec(i + 1);
      g[static_cast<std::size_t>(i)] = 0;
      if (count >= limit) return;
    }
  };
  if (!is_consistent(g)) return 0;
  rec(0);
  return count;
}

// The first 50 lines of the hard list, parsed without the library's CSV reader.
std::vector<std::pair<std::string, std::string>> sample_lines() {
  std::ifstream in(kSample);
  REQUIRE(in.good());
  std::vector<std::pair<std::string, std::string>> out;
  std::string line;
  while (std::getline(in, line)) out.emplace_back(line.substr(0, 81), line.substr(82));
  return out;
}

template <class S>
void check_example_valid(const Example<S>& ex) {
  CHECK(is_valid_solution(ex.solution));
  CHECK(is_consistent(ex.puzzle));
  CHECK(keeps_givens(ex.puzzle, ex.solution));
  CHECK(count_solutions(ex.puzzle, 2) == 1);
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TEST_CASE("shapes: sizes, bands, stacks and boxes") {
  static_assert(Sudoku4::n == 4 && Sudoku4::cells == 16 && Sudoku4::vocab_size == 6);
  static_assert(Sudoku6::n == 6 && Sudoku6::cells == 36 && Sudoku6::vocab_size == 8);
  static_assert(Sudoku9::n == 9 && Sudoku9::cells == 81 && Sudoku9::vocab_size == 11 && Sudoku9::seq_len == 81);
  static_assert(Sudoku6::bands == 3 && Sudoku6::stacks == 2 && !Sudoku6::square_boxes && Sudoku9::square_boxes);
  // 6x6 boxes are 2 rows x 3 columns, numbered row by row: box = (row / 2) * 2 + col / 3.
  CHECK(Sudoku6::box(Sudoku6::cell(0, 2)) == 0);
  CHECK(Sudoku6::box(Sudoku6::cell(1, 3)) == 1);
  CHECK(Sudoku6::box(Sudoku6::cell(2, 0)) == 2);
  CHECK(Sudoku6::box(Sudoku6::cell(5, 5)) == 5);
  CHECK(Sudoku9::box(Sudoku9::cell(4, 7)) == 5);
  Grid<Sudoku4> g{};
  g.at(1, 2) = 3;
  CHECK(g[6] == 3);
  CHECK(to_string(g) == "......3.........");
  CHECK(parse_grid<Sudoku4>("......3.........") == g);
  CHECK(parse_grid<Sudoku4>("000000300000000.") == g);
  CHECK_THROWS_WITH_AS(parse_grid<Sudoku4>("......5........."),
                       doctest::Contains("cell 6 (row 1, col 2): expected '.' or a digit 1..4, found '5'"),
                       trm::ValueError);
  CHECK_THROWS_AS(parse_grid<Sudoku4>("..."), trm::ValueError);
}

TEST_CASE("validity checks name the conflict") {
  auto g = parse_grid<Sudoku9>(std::string(81, '.'));
  CHECK(is_consistent(g));
  CHECK_FALSE(is_valid_solution(g));
  g.at(2, 1) = 7;
  g.at(2, 8) = 7;
  auto c = find_conflict(g);
  REQUIRE(c);
  CHECK(*c == "digit 7 appears twice in row 2 (cells 19 and 26)");
  g.at(2, 8) = 0;
  g.at(0, 2) = 7;  // same box 0
  REQUIRE(find_conflict(g));
  CHECK(find_conflict(g)->find("box 0") != std::string::npos);
  g.at(0, 2) = 10;
  CHECK(find_conflict(g)->find("value 10") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("solver: the hard sample is solved, with unique solutions") {
  const auto lines = sample_lines();
  REQUIRE(lines.size() == 50);
  for (const auto& [p, s] : lines) {
    const auto puzzle = parse_grid<Sudoku9>(p);
    const auto expected = parse_grid<Sudoku9>(s);
    const auto solved = solve(puzzle);
    REQUIRE(solved);
    CHECK(*solved == expected);
    CHECK(count_solutions(puzzle) == 1);
    CHECK(has_unique_solution(puzzle));
    const auto r = solve_and_count(puzzle, 5);
    CHECK(r.count == 1);
    CHECK(*r.solution == expected);
  }
}

TEST_CASE("solver: known small puzzles") {
  // 4x4 and 6x6 puzzles with their unique solutions.
  const auto p4 = parse_grid<Sudoku4>("..2.3...2.1.14..");
  CHECK(solve(p4) == parse_grid<Sudoku4>("4123324123141432"));
  CHECK(count_solutions(p4, 10) == 1);
  const auto p6 = parse_grid<Sudoku6>("..21.5....2.....345....6.354..4..3.2");
  CHECK(solve(p6) == parse_grid<Sudoku6>("362145154623621534543216235461416352"));
  CHECK(count_solutions(p6, 10) == 1);
  CHECK(is_valid_solution(*solve(p6)));
  // A complete grid solves to itself.
  const auto full = parse_grid<Sudoku9>("981752643752643819463198275514867932629431758837529164348976521296315487175284396");
  CHECK(solve(full) == full);
  CHECK(count_solutions(full) == 1);
}

TEST_CASE("solver: counting several solutions and none") {
  // The empty 4x4 grid has exactly 288 solutions.
  CHECK(count_solutions(Grid<Sudoku4>{}, 1000) == 288);
  CHECK(count_solutions(Grid<Sudoku4>{}, 2) == 2);  // capped at the limit
  CHECK(count_solutions(Grid<Sudoku4>{}, 1) == 1);
  CHECK(count_solutions(Grid<Sudoku9>{}, 2) == 2);
  // An under-constrained 9x9: the first sample puzzle (minimal, like most of the list) with its
  // first two givens removed.
  auto p = parse_grid<Sudoku9>(sample_lines()[0].first);
  int removed = 0;
  for (auto& v : p) {
    if (v != 0 && removed < 2) {
      v = 0;
      ++removed;
    }
  }
  const int n = count_solutions(p, 100000);
  INFO("solutions: ", n);
  CHECK(n >= 2);
  CHECK(n < 100000);
  CHECK(count_solutions(p, n + 1) == n);  // an exact count below the cap
  CHECK(count_solutions(p, 2) == 2);
  CHECK(solve(p).has_value());
  // A deadly rectangle: swapping two digits in a 2x2 rectangle spanning two boxes of one band.
  auto sol = parse_grid<Sudoku4>("4123324123141432");
  // rows 0,1 and columns 0,2: values 4,2 / 3,2 -> find a rectangle with a,b / b,a
  Grid<Sudoku4> holes = sol;
  int found = 0;
  for (int r1 = 0; r1 < 4 && !found; ++r1)
    for (int r2 = r1 + 1; r2 < 4 && !found; ++r2)
      for (int c1 = 0; c1 < 4 && !found; ++c1)
        for (int c2 = c1 + 1; c2 < 4 && !found; ++c2)
          if (sol.at(r1, c1) == sol.at(r2, c2) && sol.at(r1, c2) == sol.at(r2, c1) &&
              (Sudoku4::box(Sudoku4::cell(r1, c1)) == Sudoku4::box(Sudoku4::cell(r1, c2)) ||
               Sudoku4::box(Sudoku4::cell(r1, c1)) == Sudoku4::box(Sudoku4::cell(r2, c1)))) {
            holes.at(r1, c1) = holes.at(r1, c2) = holes.at(r2, c1) = holes.at(r2, c2) = 0;
            found = 1;
          }
  REQUIRE(found);
  CHECK(count_solutions(holes, 10) == 2);
  // No solution although no two givens conflict: cell (0,2) has no candidate left.
  const auto dead = parse_grid<Sudoku4>("12....3...4.....");
  CHECK(is_consistent(dead));
  CHECK(count_solutions(dead) == 0);
  CHECK_FALSE(solve(dead).has_value());
  // Conflicting givens: no solution, no exception.
  const auto conflict = parse_grid<Sudoku4>("11..............");
  CHECK(count_solutions(conflict) == 0);
  CHECK_FALSE(solve(conflict));
  // Bad values and limits throw.
  Grid<Sudoku4> bad{};
  bad[5] = 9;
  CHECK_THROWS_WITH_AS(solve(bad), doctest::Contains("cell 5 (row 1, col 1) has value 9"), trm::ValueError);
  CHECK_THROWS_AS(count_solutions(Grid<Sudoku4>{}, 0), trm::ValueError);
}

TEST_CASE_TEMPLATE("solver agrees with a naive backtracking oracle", S, Sudoku4, Sudoku6, Sudoku9) {
  Rng rng(11);
  const int max_blanks = S::n == 9 ? 40 : S::cells - 2;
  for (int trial = 0; trial < 30; ++trial) {
    Grid<S> g = random_solution<S>(rng);
    CHECK(is_valid_solution(g));
    std::array<int, S::cells> order{};
    for (int i = 0; i < S::cells; ++i) order[static_cast<std::size_t>(i)] = i;
    rng.shuffle(order.begin(), order.end());
    const int blanks = static_cast<int>(rng.below(static_cast<std::uint64_t>(max_blanks + 1)));
    for (int k = 0; k < blanks; ++k) g[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])] = 0;
    if (trial % 3 == 0) {  // sometimes break it: change a given to another digit
      for (auto& v : g)
        if (v) {
          v = static_cast<std::uint8_t>(v % S::n + 1);
          break;
        }
    }
    const int limit = 50;
    CHECK(count_solutions(g, limit) == naive_count(g, limit));
  }
}

// ---------------------------------------------------------------------------------------------
template <class S>
void check_generator(int blanks) {
  Rng rng(42);
  std::set<std::string> seen;
  for (int k = 0; k < 5; ++k) {
    const Example<S> ex = generate<S>(rng, blanks);
    CHECK(count_blanks(ex.puzzle) == blanks);
    check_example_valid(ex);
    seen.insert(to_string(ex.puzzle));
  }
  CHECK(seen.size() == 5);  // different puzzles from one stream
  Rng a(123), b(123), c(124);
  const auto ea = generate<S>(a, blanks), eb = generate<S>(b, blanks), ec = generate<S>(c, blanks);
  CHECK(ea == eb);  // same seed, same puzzle
  CHECK_FALSE(ea == ec);
}

TEST_CASE("generator: exact blanks, unique solution, seeded (4x4, 6x6, 9x9)") {
  check_generator<Sudoku4>(10);
  check_generator<Sudoku6>(22);
  check_generator<Sudoku9>(50);
  check_generator<Sudoku9>(0);
  Rng rng(5);
  const auto hard = generate<Sudoku9>(rng, 58, 10000);
  CHECK(count_blanks(hard.puzzle) == 58);
  check_example_valid(hard);
}

TEST_CASE("generator: errors") {
  Rng rng(1);
  CHECK_THROWS_WITH_AS(generate<Sudoku4>(rng, 17), doctest::Contains("blanks must be in [0, 16]"), trm::ValueError);
  CHECK_THROWS_WITH_AS(generate<Sudoku4>(rng, -1), doctest::Contains("found -1"), trm::ValueError);
  // A 4x4 puzzle needs at least 4 givens, so 13 blanks can never be unique.
  CHECK_THROWS_WITH_AS(generate<Sudoku4>(rng, 13, 20), doctest::Contains("in 20 attempts (the best attempt reached"),
                       trm::ValueError);
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("augmentation: transforms are permutations of the right kind") {
  Rng rng(3);
  int transposed = 0;
  for (int k = 0; k < 64; ++k) {
    const auto t9 = random_transform<Sudoku9>(rng);
    transposed += t9.transpose;
    CHECK(t9.digit_map[0] == 0);
    std::array<std::uint8_t, 9> d{}, r{}, c{};
    std::copy(t9.digit_map.begin() + 1, t9.digit_map.end(), d.begin());
    r = t9.row_perm;
    c = t9.col_perm;
    std::sort(d.begin(), d.end());
    std::sort(r.begin(), r.end());
    std::sort(c.begin(), c.end());
    for (int i = 0; i < 9; ++i) {
      CHECK(d[static_cast<std::size_t>(i)] == i + 1);
      CHECK(r[static_cast<std::size_t>(i)] == i);
      CHECK(c[static_cast<std::size_t>(i)] == i);
    }
    // Rows stay inside bands: rows 3i..3i+2 of the result come from one band.
    for (int b = 0; b < 3; ++b)
      for (int j = 0; j < 3; ++j) CHECK(t9.row_perm[static_cast<std::size_t>(3 * b + j)] / 3 == t9.row_perm[static_cast<std::size_t>(3 * b)] / 3);
    const auto t6 = random_transform<Sudoku6>(rng);
    CHECK_FALSE(t6.transpose);  // 2x3 boxes: never transposed
    for (int b = 0; b < 3; ++b)  // bands of 2 rows
      CHECK(t6.row_perm[static_cast<std::size_t>(2 * b)] / 2 == t6.row_perm[static_cast<std::size_t>(2 * b + 1)] / 2);
    for (int s = 0; s < 2; ++s)  // stacks of 3 columns
      for (int j = 0; j < 3; ++j)
        CHECK(t6.col_perm[static_cast<std::size_t>(3 * s + j)] / 3 == t6.col_perm[static_cast<std::size_t>(3 * s)] / 3);
  }
  CHECK(transposed > 10);
  CHECK(transposed < 54);
}

TEST_CASE("augmentation: the reference's mapping (transpose first, then new (r,c) = old (row_perm[r], col_perm[c]))") {
  const auto g = parse_grid<Sudoku4>("4123324123141432");
  auto t = Transform<Sudoku4>::identity();
  CHECK(apply_transform(t, g) == g);
  t.transpose = true;
  CHECK(apply_transform(t, g) == parse_grid<Sudoku4>("4321123424133142"));
  t = Transform<Sudoku4>::identity();
  t.row_perm = {2, 3, 0, 1};  // swap the two bands
  t.col_perm = {1, 0, 2, 3};  // swap columns 0 and 1
  t.digit_map = {0, 2, 1, 3, 4};  // swap digits 1 and 2
  const auto out = apply_transform(t, g);
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c)
      CHECK(out.at(r, c) == t.digit_map[g.at(t.row_perm[static_cast<std::size_t>(r)], t.col_perm[static_cast<std::size_t>(c)])]);
  CHECK(is_valid_solution(out));
}

template <class S>
void check_augmentation(int blanks) {
  Rng gen(9);
  for (int k = 0; k < 4; ++k) {
    const Example<S> ex = generate<S>(gen, blanks);
    Rng a(100 + k), b(100 + k);
    std::set<std::string> variants;
    for (int j = 0; j < 8; ++j) {
      const Example<S> aug = augment(ex, a);
      CHECK(aug == augment(ex, b));  // seeded
      CHECK(count_blanks(aug.puzzle) == blanks);
      check_example_valid(aug);
      CHECK(solve(aug.puzzle) == aug.solution);
      variants.insert(to_string(aug.puzzle));
    }
    CHECK(variants.size() >= 6);
  }
}

TEST_CASE("augmentation preserves validity and uniqueness, seeded (4x4, 6x6, 9x9)") {
  check_augmentation<Sudoku4>(10);
  check_augmentation<Sudoku6>(20);
  check_augmentation<Sudoku9>(55);
  // The hard sample too.
  Rng rng(77);
  for (const auto& [p, s] : sample_lines()) {
    const Example<Sudoku9> ex{parse_grid<Sudoku9>(p), parse_grid<Sudoku9>(s)};
    const auto aug = augment(ex, rng);
    CHECK(is_valid_solution(aug.solution));
    CHECK(keeps_givens(aug.puzzle, aug.solution));
    CHECK(count_blanks(aug.puzzle) == count_blanks(ex.puzzle));
  }
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("tokens: the reference encoding and its round trip") {
  const auto puzzle = parse_grid<Sudoku9>(sample_lines()[0].first);
  const auto t = encode(puzzle);
  CHECK(t[0] == 10);  // '9' -> 10
  CHECK(t[2] == 1);   // '.' -> blank 1
  CHECK(t[3] == 8);   // '7' -> 8
  CHECK(decode<Sudoku9>(t) == puzzle);
  CHECK(decode<Sudoku9>(std::span<const std::uint8_t>(t)) == puzzle);
  const auto g6 = parse_grid<Sudoku6>("362145154623621534543216235461416352");
  const auto t6 = encode(g6);
  for (int i = 0; i < 36; ++i) CHECK(t6[static_cast<std::size_t>(i)] == g6[static_cast<std::size_t>(i)] + 1);
  CHECK(decode<Sudoku6>(t6, /*allow_blank=*/false) == g6);
  CHECK(pad_token == 0);
  CHECK(blank_token == 1);
}

TEST_CASE("tokens: errors name the cell and the value") {
  Tokens<Sudoku4> t{};
  std::fill(t.begin(), t.end(), std::uint8_t{2});
  t[5] = 0;
  CHECK_THROWS_WITH_AS(decode<Sudoku4>(t), doctest::Contains("cell 5 (row 1, col 1) has token 0, expected 1..5"),
                       trm::ValueError);
  t[5] = 6;
  CHECK_THROWS_WITH_AS(decode<Sudoku4>(t), doctest::Contains("cell 5 (row 1, col 1) has token 6, expected 1..5"),
                       trm::ValueError);
  t[5] = 1;
  CHECK_NOTHROW(decode<Sudoku4>(t));
  CHECK_THROWS_WITH_AS(decode<Sudoku4>(t, false), doctest::Contains("cell 5 (row 1, col 1) has token 1, expected 2..5"),
                       trm::ValueError);
  const std::vector<std::uint8_t> short_tokens(15, 2);
  CHECK_THROWS_WITH_AS(decode<Sudoku4>(std::span<const std::uint8_t>(short_tokens)),
                       doctest::Contains("expected 16 tokens"), trm::ShapeError);
  Grid<Sudoku4> g{};
  g[12] = 5;
  CHECK_THROWS_WITH_AS(encode(g), doctest::Contains("cell 12 (row 3, col 0) has value 5"), trm::ValueError);
  std::vector<std::uint8_t> out(10);
  CHECK_THROWS_AS(encode_into(Grid<Sudoku4>{}, std::span<std::uint8_t>(out)), trm::ShapeError);
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("csv: the hard sample") {
  const auto examples = read_csv<Sudoku9>(kSample);
  const auto lines = sample_lines();
  REQUIRE(examples.size() == 50);
  for (std::size_t i = 0; i < examples.size(); ++i) {
    CHECK(to_string(examples[i].puzzle) == lines[i].first);
    CHECK(to_string(examples[i].solution) == lines[i].second);
  }
  // Puzzles only (first 10), from a stream: solved by the solver.
  std::stringstream only;
  for (std::size_t i = 0; i < 10; ++i) only << lines[i].first << "\n";
  const auto solved = parse_csv<Sudoku9>(only);
  REQUIRE(solved.size() == 10);
  for (std::size_t i = 0; i < 10; ++i) CHECK(solved[i] == examples[i]);
}

TEST_CASE("csv: accepted variants") {
  const std::string p = "..2.3...2.1.14..", s = "4123324123141432";
  std::string zeros = p;
  std::replace(zeros.begin(), zeros.end(), '.', '0');
  std::stringstream in("# a tdoku-style comment\r\n" + p + "," + s + "\r\n\n" + zeros + "\n" + p + "\n");
  const auto ex = parse_csv<Sudoku4>(in, "mem");
  REQUIRE(ex.size() == 3);
  for (const auto& e : ex) {
    CHECK(to_string(e.puzzle) == p);
    CHECK(to_string(e.solution) == s);
  }
  std::stringstream header("puzzle,solution\n" + p + "," + s + "\n");
  CHECK(parse_csv<Sudoku4>(header).size() == 1);
  // The Hugging Face sudoku-extreme layout: source,question,answer,rating.
  std::stringstream hf("source,question,answer,rating\nsrc," + p + "," + s + ",3\n");
  const auto hf_ex = parse_csv<Sudoku4>(hf);
  REQUIRE(hf_ex.size() == 1);
  CHECK(to_string(hf_ex[0].solution) == s);
  // Several solutions are accepted (first found) only when uniqueness is not required.
  std::stringstream many("....3...2.1.14..\n");
  const auto loose = parse_csv<Sudoku4>(many, "mem", CsvOptions{.require_unique = false});
  REQUIRE(loose.size() == 1);
  CHECK(is_valid_solution(loose[0].solution));
  CHECK(keeps_givens(loose[0].puzzle, loose[0].solution));
}

TEST_CASE("csv: malformed input names the file, the line and the expectation") {
  const std::string p = "..2.3...2.1.14..", s = "4123324123141432";
  auto err = [](const std::string& text) {
    return error_of<SudokuFormatError>([&] {
      std::stringstream in(text);
      parse_csv<Sudoku4>(in, "bad.csv");
    });
  };
  const std::string ok = p + "," + s + "\n";
  // Wrong lengths.
  CHECK_MESSAGE_HAS(err(ok + p.substr(1) + "," + s + "\n"), doctest::Contains("bad.csv:2: puzzle: expected 16 characters"));
  CHECK_MESSAGE_HAS(err(ok + p.substr(1) + "," + s + "\n"), doctest::Contains("found 15"));
  CHECK_MESSAGE_HAS(err(ok + ok + p + "," + s + "1\n"), doctest::Contains("bad.csv:3: solution: expected 16 characters"));
  // Bad characters and digits out of range.
  CHECK_MESSAGE_HAS(err("x" + p.substr(1) + "\n"),
             doctest::Contains("bad.csv:1: header: expected a column named puzzle, question or quizzes"));
  CHECK_MESSAGE_HAS(err(ok + ".x" + p.substr(2) + "\n"),
             doctest::Contains("bad.csv:2: puzzle cell 1 (row 0, col 1): expected a digit 1-4 or '.'/'0' for a blank, found 'x'"));
  CHECK_MESSAGE_HAS(err(ok + "5" + p.substr(1) + "\n"), doctest::Contains("bad.csv:2: puzzle cell 0 (row 0, col 0): expected a digit 1-4"));
  CHECK_MESSAGE_HAS(err(ok + p + "," + s.substr(0, 15) + ".\n"),
             doctest::Contains("bad.csv:2: solution cell 15 (row 3, col 3): expected a digit 1-4, found '.'"));
  CHECK_MESSAGE_HAS(err(ok + p + " ," + s + "\n"), doctest::Contains("bad.csv:2: puzzle: expected 16 characters"));
  // Field counts.
  CHECK_MESSAGE_HAS(err(ok + p + "," + s + ",1\n"),
             doctest::Contains("bad.csv:2: expected 1 or 2 comma-separated fields (PUZZLE[,SOLUTION]), found 3"));
  CHECK_MESSAGE_HAS(err("puzzle,solution\n" + p + "\n"), doctest::Contains("bad.csv:2: expected 2 comma-separated fields, found 1"));
  // Conflicting givens.
  CHECK_MESSAGE_HAS(err(ok + "11" + p.substr(2) + "\n"),
             doctest::Contains("bad.csv:2: puzzle givens conflict: digit 1 appears twice in row 0 (cells 0 and 1)"));
  CHECK_MESSAGE_HAS(err(ok + "11" + p.substr(2) + "\n"), doctest::Contains("expected each digit at most once"));
  // No solution, several solutions.
  CHECK_MESSAGE_HAS(err(ok + ok + "12....3...4.....\n"), doctest::Contains("bad.csv:3: puzzle has no solution, expected exactly one"));
  CHECK_MESSAGE_HAS(err(ok + "....3...2.1.14..\n"),
             doctest::Contains("bad.csv:2: puzzle has several solutions (at least 2), expected exactly one"));
  CHECK_MESSAGE_HAS(err(ok + "....3...2.1.14..," + s + "\n"), doctest::Contains("bad.csv:2: puzzle has several solutions"));
  // Solutions that are not valid grids or change a given.
  std::string broken = s;
  std::swap(broken[0], broken[1]);
  CHECK_MESSAGE_HAS(err(ok + "................," + broken + "\n"), doctest::Contains("bad.csv:2: solution is not a valid Sudoku 4x4"));
  const std::string other = "4132234132141423";  // s with digits 2 and 3 swapped: valid, but not this puzzle's
  CHECK_MESSAGE_HAS(err(ok + p + "," + other + "\n"),
             doctest::Contains("bad.csv:2: solution does not keep the givens: cell 2 (row 0, col 2) is given as 2, expected the same digit in the solution, found 3"));
  // 6x6: digits above 6 are rejected; a missing file is named.
  std::stringstream six("..21.5....2.....345....6.354..4..3.7\n");
  CHECK_THROWS_WITH_AS(parse_csv<Sudoku6>(six, "six.csv"),
                       doctest::Contains("six.csv:1: puzzle cell 35 (row 5, col 5): expected a digit 1-6 or '.'/'0' for a blank, found '7'"),
                       SudokuFormatError);
  CHECK_THROWS_WITH_AS(read_csv<Sudoku9>("/nonexistent/list.csv"), doctest::Contains("/nonexistent/list.csv: cannot open"),
                       SudokuFormatError);
  // The error type is a trm::ValueError.
  std::stringstream bad("1\n");
  CHECK_THROWS_AS(parse_csv<Sudoku4>(bad), trm::ValueError);
}

TEST_CASE("csv: a malformed file on disk is named in the error") {
  TempDir dir;
  const fs::path path = dir.path() / "list.csv";
  std::ifstream sample(kSample);
  std::string line, text;
  for (int i = 0; i < 3 && std::getline(sample, line); ++i) text += line + "\n";
  text += line.substr(0, 81) + "," + std::string(81, '1') + "\n";
  write_text(path, text);
  CHECK_THROWS_WITH_AS(read_csv<Sudoku9>(path), doctest::Contains((path.string() + ":4: solution is not a valid Sudoku 9x9").c_str()),
                       SudokuFormatError);
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("dataset: write and read back the reference format (9x9 with augmentation)") {
  TempDir dir;
  auto examples = read_csv<Sudoku9>(kSample);
  examples.resize(5);
  Rng rng(2024);
  const auto written = write_reference_dataset(dir.path(), "train", examples, /*num_aug=*/3, rng);

  // Files, and no temporaries left behind.
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path() / "train")) names.insert(e.path().filename().string());
  CHECK(names == std::set<std::string>{"dataset.json", "all__inputs.npy", "all__labels.npy", "all__puzzle_identifiers.npy",
                                       "all__puzzle_indices.npy", "all__group_indices.npy"});
  std::set<std::string> top;
  for (const auto& e : fs::directory_iterator(dir.path())) top.insert(e.path().filename().string());
  CHECK(top == std::set<std::string>{"identifiers.json", "train"});

  // dataset.json: the reference's fields, in the reference's order.
  std::ifstream jf(dir.path() / "train" / "dataset.json");
  const auto j = nlohmann::ordered_json::parse(jf);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  CHECK(keys == std::vector<std::string>{"pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size", "seq_len",
                                         "num_puzzle_identifiers", "total_groups", "mean_puzzle_examples",
                                         "total_puzzles", "sets"});
  CHECK(j["pad_id"] == 0);
  CHECK(j["ignore_label_id"] == 0);
  CHECK(j["blank_identifier_id"] == 0);
  CHECK(j["vocab_size"] == 11);
  CHECK(j["seq_len"] == 81);
  CHECK(j["num_puzzle_identifiers"] == 1);
  CHECK(j["total_groups"] == 5);
  CHECK(j["mean_puzzle_examples"].get<double>() == 1.0);
  CHECK(j["total_puzzles"] == 5);  // the reference Sudoku builder writes the group count here
  CHECK(j["sets"] == nlohmann::ordered_json::array({"all"}));
  std::ifstream idf(dir.path() / "identifiers.json");
  CHECK(nlohmann::json::parse(idf) == nlohmann::json::array({"<blank>"}));

  // npy dtypes and shapes.
  const auto in = trm::io::load_npy(dir.path() / "train" / "all__inputs.npy");
  CHECK(in.dtype == trm::io::DType::U8);
  CHECK(in.shape == std::vector<std::int64_t>{20, 81});
  const auto gi = trm::io::load_npy(dir.path() / "train" / "all__group_indices.npy");
  CHECK(gi.dtype == trm::io::DType::I32);
  CHECK(trm::io::values<std::int32_t>(gi) == std::vector<std::int32_t>{0, 4, 8, 12, 16, 20});
  const auto pi = trm::io::values<std::int32_t>(trm::io::load_npy(dir.path() / "train" / "all__puzzle_indices.npy"));
  REQUIRE(pi.size() == 21);
  for (int i = 0; i <= 20; ++i) CHECK(pi[static_cast<std::size_t>(i)] == i);
  const auto ids = trm::io::values<std::int32_t>(trm::io::load_npy(dir.path() / "train" / "all__puzzle_identifiers.npy"));
  CHECK(ids == std::vector<std::int32_t>(20, 0));

  // Read back: identical, and every example is a valid, unique puzzle; group heads are the originals.
  DatasetReadOptions opt;
  opt.check_unique = true;
  const auto back = read_reference_dataset<Sudoku9>(dir.path(), "train", opt);
  CHECK(back.inputs == written.inputs);
  CHECK(back.labels == written.labels);
  CHECK(back.puzzle_identifiers == written.puzzle_identifiers);
  CHECK(back.puzzle_indices == written.puzzle_indices);
  CHECK(back.group_indices == written.group_indices);
  CHECK(back.metadata.to_json() == written.metadata.to_json());
  REQUIRE(back.num_examples() == 20);
  CHECK(back.num_puzzles() == 20);
  CHECK(back.num_groups() == 5);
  for (std::size_t g = 0; g < 5; ++g) CHECK(back.example(4 * g) == examples[g]);
  for (std::size_t e = 0; e < 20; ++e) check_example_valid(back.example(e));

  // Seeded: the same seed writes the same arrays.
  TempDir dir2;
  Rng rng2(2024);
  const auto again = write_reference_dataset(dir2.path(), "train", examples, 3, rng2);
  CHECK(again.inputs == written.inputs);
  CHECK(again.labels == written.labels);
}

TEST_CASE("dataset: 4x4 and 6x6 round trips, test split without augmentation") {
  TempDir dir;
  Rng rng(8);
  std::vector<Example<Sudoku6>> ex6;
  for (int i = 0; i < 6; ++i) ex6.push_back(generate<Sudoku6>(rng, 20));
  write_reference_dataset(dir.path(), "train", ex6, 2, rng);
  write_reference_dataset(dir.path(), "test", ex6, 0, rng);
  const auto train = read_reference_dataset<Sudoku6>(dir.path(), "train");
  const auto test = read_reference_dataset<Sudoku6>(dir.path(), "test");
  CHECK(train.num_examples() == 18);
  CHECK(train.metadata.vocab_size == 8);
  CHECK(train.metadata.seq_len == 36);
  CHECK(test.num_examples() == 6);
  for (std::size_t i = 0; i < 6; ++i) CHECK(test.example(i) == ex6[i]);
  for (std::size_t i = 0; i < 18; ++i) check_example_valid(train.example(i));

  TempDir dir4;
  std::vector<Example<Sudoku4>> ex4;
  for (int i = 0; i < 3; ++i) ex4.push_back(generate<Sudoku4>(rng, 10));
  write_reference_dataset(dir4.path(), "train", ex4, 1, rng);
  const auto d4 = read_reference_dataset<Sudoku4>(dir4.path(), "train");
  CHECK(d4.num_examples() == 6);
  CHECK(d4.example(2) == ex4[1]);
  // An empty dataset is valid too.
  TempDir empty;
  write_reference_dataset(empty.path(), "test", std::vector<Example<Sudoku4>>{}, 0, rng);
  CHECK(read_reference_dataset<Sudoku4>(empty.path(), "test").num_examples() == 0);
}

TEST_CASE("dataset: the writer rejects invalid examples and arguments") {
  TempDir dir;
  Rng rng(1);
  auto ex = generate<Sudoku4>(rng, 8);
  std::vector<Example<Sudoku4>> bad{ex};
  bad[0].solution[0] = static_cast<std::uint8_t>(bad[0].solution[0] % 4 + 1);
  CHECK_THROWS_WITH_AS(write_reference_dataset(dir.path(), "train", bad, 0, rng),
                       doctest::Contains("example 0: solution is not a complete valid grid"), trm::ValueError);
  CHECK_THROWS_AS(write_reference_dataset(dir.path(), "train", std::vector<Example<Sudoku4>>{ex}, -1, rng),
                  trm::ValueError);
  CHECK_THROWS_AS(write_reference_dataset(dir.path(), "a/b", std::vector<Example<Sudoku4>>{ex}, 0, rng), trm::ValueError);
  CHECK(fs::is_empty(dir.path()));  // nothing written
}

TEST_CASE("dataset: the reader rejects malformed datasets with clear errors") {
  Rng rng(31);
  std::vector<Example<Sudoku4>> examples;
  for (int i = 0; i < 4; ++i) examples.push_back(generate<Sudoku4>(rng, 9));

  // Each case writes a fresh valid dataset, breaks one thing, and checks the message.
  auto broken = [&](const std::function<void(const fs::path& root, const fs::path& split)>& breakit) {
    TempDir dir;
    Rng r(5);
    write_reference_dataset(dir.path(), "train", examples, 1, r);
    breakit(dir.path(), dir.path() / "train");
    return error_of<SudokuFormatError>([&] { read_reference_dataset<Sudoku4>(dir.path(), "train"); });
  };
  using trm::io::NpyArray;
  auto load = [](const fs::path& p) { return trm::io::load_npy(p); };
  auto edit_json = [](const fs::path& p, const std::function<void(nlohmann::ordered_json&)>& f) {
    std::ifstream in(p);
    auto j = nlohmann::ordered_json::parse(in);
    in.close();
    f(j);
    write_text(p, j.dump());
  };

  // The format itself is checked by trm::data::PuzzleDataset, whose errors read
  // "<file>: <field>: expected ..., found ..." (rethrown as SudokuFormatError); the Sudoku reader
  // adds the checks against the compile-time shape, the token ranges and the solutions.
  // Shape mismatch with the compile-time shape.
  {
    TempDir dir;
    Rng r(5);
    write_reference_dataset(dir.path(), "train", examples, 0, r);
    CHECK_MESSAGE_HAS(error_of<SudokuFormatError>([&] { read_reference_dataset<Sudoku9>(dir.path(), "train"); }),
               doctest::Contains("dataset.json: seq_len: expected 81 (Sudoku 9x9 with 3x3 boxes), found 16"));
    CHECK_MESSAGE_HAS(error_of<SudokuFormatError>([&] { read_reference_dataset<Sudoku4>(dir.path(), "test"); }),
               doctest::Contains("test/dataset.json: file: expected a regular file, found none (missing file)"));
  }
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) { edit_json(s / "dataset.json", [](auto& j) { j["vocab_size"] = 11; }); }),
             doctest::Contains("dataset.json: vocab_size: expected 6 (Sudoku 4x4 with 2x2 boxes: pad, blank, 4 digits), found 11"));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) { edit_json(s / "dataset.json", [](auto& j) { j.erase("seq_len"); }); }),
             doctest::Contains("dataset.json: field \"seq_len\": expected present, found no such field"));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) { edit_json(s / "dataset.json", [](auto& j) { j["pad_id"] = "0"; }); }),
             doctest::Contains("field \"pad_id\": expected an integer, found string \"0\""));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) { edit_json(s / "dataset.json", [](auto& j) { j["total_groups"] = 3; }); }),
             doctest::Contains("field \"total_groups\": expected 4 (the groups of its sets' group_indices), found 3"));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) { edit_json(s / "dataset.json", [](auto& j) { j["sets"] = {"other"}; }); }),
             doctest::Contains("sets: expected it to contain \"all\""));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) { write_text(s / "dataset.json", "{\"pad_id\": 0,"); }),
             doctest::Contains("dataset.json: JSON: expected valid JSON, found a parse error"));
  // npy files: missing, wrong dtype, wrong shape.
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) { fs::remove(s / "all__labels.npy"); }),
             doctest::Contains("all__labels.npy: file: expected a regular file, found none (missing file)"));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) {
               const auto a = load(s / "all__labels.npy");
               std::vector<std::int64_t> wide(a.data.size());
               for (std::size_t i = 0; i < wide.size(); ++i) wide[i] = std::to_integer<int>(a.data[i]);
               trm::io::save_npy(s / "all__labels.npy", trm::io::make_npy<std::int64_t>(a.shape, std::span<const std::int64_t>(wide)));
             }),
             doctest::Contains("all__labels.npy: dtype: expected U8 ('|u1'), found I64"));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) {
               auto a = load(s / "all__inputs.npy");
               a.shape = {a.shape[0] * 2, 8};
               trm::io::save_npy(s / "all__inputs.npy", a);
             }),
             doctest::Contains("all__inputs.npy: shape: expected [N_examples, 16] (seq_len from dataset.json), found [16, 8]"));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) {
               auto a = load(s / "all__labels.npy");
               a.shape = {a.shape[0] / 2, 32};
               trm::io::save_npy(s / "all__labels.npy", a);
             }),
             doctest::Contains("all__labels.npy: shape: expected [8, 16] (the shape of "));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) { write_text(s / "all__inputs.npy", "not an npy file"); }),
             doctest::Contains("all__inputs.npy"));
  // Token ranges.
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) {
               auto a = load(s / "all__inputs.npy");
               a.data[16 * 3 + 5] = std::byte{0};
               trm::io::save_npy(s / "all__inputs.npy", a);
             }),
             doctest::Contains("all__inputs.npy: example 3, cell 5 (row 1, col 1): expected a token in 1..5"));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) {
               auto a = load(s / "all__labels.npy");
               a.data[16 * 2 + 15] = std::byte{6};
               trm::io::save_npy(s / "all__labels.npy", a);
             }),
             doctest::Contains("all__labels.npy: labels[2, 15]: expected a token < vocab_size (6) or ignore_label_id (0), found 6"));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) {
               auto a = load(s / "all__labels.npy");
               a.data[16 * 2 + 15] = std::byte{1};  // blank in a label
               trm::io::save_npy(s / "all__labels.npy", a);
             }),
             doctest::Contains("found 1"));
  // Offsets.
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) {
               auto v = trm::io::values<std::int32_t>(load(s / "all__puzzle_indices.npy"));
               std::swap(v[2], v[3]);
               trm::io::save_npy(s / "all__puzzle_indices.npy", trm::io::make_npy<std::int32_t>({static_cast<std::int64_t>(v.size())}, std::span<const std::int32_t>(v)));
             }),
             doctest::Contains("all__puzzle_indices.npy: puzzle_indices[3]: expected non-decreasing offsets (>= puzzle_indices[2] = 3), found 2"));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) {
               auto v = trm::io::values<std::int32_t>(load(s / "all__group_indices.npy"));
               v.back() = 7;
               trm::io::save_npy(s / "all__group_indices.npy", trm::io::make_npy<std::int32_t>({static_cast<std::int64_t>(v.size())}, std::span<const std::int32_t>(v)));
             }),
             doctest::Contains("all__group_indices.npy: group_indices[4] (the last offset): expected N_puzzles"));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) {
               auto v = trm::io::values<std::int32_t>(load(s / "all__puzzle_indices.npy"));
               v.pop_back();
               trm::io::save_npy(s / "all__puzzle_indices.npy", trm::io::make_npy<std::int32_t>({static_cast<std::int64_t>(v.size())}, std::span<const std::int32_t>(v)));
             }),
             doctest::Contains("all__puzzle_indices.npy: shape: expected [9] (N_puzzles + 1"));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) {
               auto v = trm::io::values<std::int32_t>(load(s / "all__puzzle_identifiers.npy"));
               v[1] = 1;
               trm::io::save_npy(s / "all__puzzle_identifiers.npy", trm::io::make_npy<std::int32_t>({static_cast<std::int64_t>(v.size())}, std::span<const std::int32_t>(v)));
             }),
             doctest::Contains("all__puzzle_identifiers.npy: puzzle_identifiers[1]: expected an id in [0, num_puzzle_identifiers = 1), found 1"));
  // Labels that do not solve their inputs.
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) {
               auto a = load(s / "all__labels.npy");
               std::swap(a.data[16 * 1 + 0], a.data[16 * 1 + 1]);  // breaks row 0 of example 1's box/cols
               trm::io::save_npy(s / "all__labels.npy", a);
             }),
             doctest::Contains("example 1: label"));
  CHECK_MESSAGE_HAS(broken([&](auto&, const fs::path& s) {
               // Relabel the solution of example 0 (still a valid grid) without touching its givens.
               auto a = load(s / "all__labels.npy");
               for (int i = 0; i < 16; ++i) {
                 const int t = std::to_integer<int>(a.data[static_cast<std::size_t>(i)]);
                 a.data[static_cast<std::size_t>(i)] = std::byte(static_cast<unsigned char>(t == 2 ? 3 : t == 3 ? 2 : t));
               }
               trm::io::save_npy(s / "all__labels.npy", a);
             }),
             doctest::Contains("example 0: label does not keep the input's givens"));
  // identifiers.json.
  CHECK_MESSAGE_HAS(broken([&](const fs::path& root, auto&) { write_text(root / "identifiers.json", "[\"x\"]"); }),
             doctest::Contains("identifiers.json: expected a list of names starting with \"<blank>\", found [\"x\"]"));
  // Still fine without identifiers.json.
  CHECK(broken([&](const fs::path& root, auto&) { fs::remove(root / "identifiers.json"); }) == "<no exception>");
}
