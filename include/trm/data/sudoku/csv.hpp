#pragma once
// Readers for Sudoku puzzle lists (the tdoku lists in shared/data/sudoku and similar files).
//
// Accepted format, one puzzle per line:
//   PUZZLE              a puzzle alone: it is solved here (it must have exactly one solution)
//   PUZZLE,SOLUTION     a puzzle with its solution: both are checked
// PUZZLE has N*N characters, row by row: '1'..'N' for givens, '.' or '0' for blanks. SOLUTION has
// N*N digits '1'..'N'. Lines end with "\n" or "\r\n" (io::LineReader: a UTF-8 byte-order mark is
// skipped, lines over 64 KiB are refused). Empty lines and lines starting with '#'
// (tdoku's header comments) are skipped. An optional header on the first data line is recognised
// by its first character being a letter; its comma-separated names pick the columns: the puzzle
// is the column named puzzle/question/quizzes/quiz, the solution the one named
// solution/answer/solutions (optional); other columns are ignored, which also reads the
// Hugging Face "source,question,answer,rating" files. The shared lists have no header.
//
// Every problem throws SudokuFormatError (a trm::ValueError) whose message starts with
// "<file>:<line>: " and says what was expected and what was found: wrong field count or length,
// a bad character, givens that conflict, a puzzle with no or several solutions, a solution that is
// not a valid grid or that changes a given, a list with no puzzle at all.
#include <cctype>
#include <filesystem>
#include <fstream>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trm/core/error.hpp"
#include "trm/data/sudoku/grid.hpp"
#include "trm/data/sudoku/solver.hpp"
#include "trm/io/lines.hpp"

namespace trm::data::sudoku {

// Malformed Sudoku data (CSV lists and the on-disk reference dataset).
class SudokuFormatError : public ValueError {
 public:
  using ValueError::ValueError;
};

struct CsvOptions {
  // Check that every puzzle has exactly one solution (also when the file gives the solution).
  // Puzzle-only lines are always solved, and always rejected when they have no solution; with
  // require_unique = false a puzzle with several solutions keeps the first one found.
  bool require_unique = true;
};

namespace detail {

inline std::vector<std::string_view> split_commas(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, comma - start));
    start = comma + 1;
  }
}

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

inline std::string show_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return "'" + std::string(1, c) + "'";
  static constexpr char hex[] = "0123456789abcdef";
  return std::string("byte 0x") + hex[u >> 4] + hex[u & 15];
}

// Parses one grid field; `solution` fields may not have blanks.
template <class S>
Grid<S> parse_field(std::string_view field, bool solution, const std::string& where) {
  const char* what = solution ? "solution" : "puzzle";
  if (field.size() != static_cast<std::size_t>(S::cells)) {
    throw SudokuFormatError(where + what + ": expected " + std::to_string(S::cells) + " characters (" + S::name() +
                            "), found " + std::to_string(field.size()));
  }
  Grid<S> g{};
  for (int i = 0; i < S::cells; ++i) {
    const char c = field[static_cast<std::size_t>(i)];
    int v = -1;
    if (c >= '1' && c <= '9' && c - '0' <= S::n) v = c - '0';
    if (!solution && (c == '.' || c == '0')) v = 0;
    if (v < 0) {
      const std::string expected = solution ? "a digit 1-" + std::to_string(S::n)
                                            : "a digit 1-" + std::to_string(S::n) + " or '.'/'0' for a blank";
      throw SudokuFormatError(where + what + " " + cell_name<S>(i) + ": expected " + expected + ", found " +
                              show_char(c));
    }
    g[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v);
  }
  return g;
}

}  // namespace detail

// Checks one puzzle (and its solution, if given) and returns the example; `where` is the
// "<file>:<line>: " prefix for errors.
template <SudokuShapeType S>
Example<S> check_example(const Grid<S>& puzzle, const std::optional<Grid<S>>& solution, const std::string& where,
                         const CsvOptions& options = {}) {
  if (auto conflict = find_conflict(puzzle)) {
    throw SudokuFormatError(where + "puzzle givens conflict: " + *conflict +
                            "; expected each digit at most once per row, column and box");
  }
  Example<S> ex{puzzle, {}};
  if (solution) {
    if (auto conflict = find_conflict(*solution)) {
      throw SudokuFormatError(where + "solution is not a valid " + S::name() + ": " + *conflict +
                              "; expected each digit exactly once per row, column and box");
    }
    if (auto cell = first_changed_given(puzzle, *solution)) {
      const auto c = static_cast<std::size_t>(*cell);
      throw SudokuFormatError(where + "solution does not keep the givens: " + detail::cell_name<S>(*cell) +
                              " is given as " + std::to_string(int(puzzle[c])) + ", expected the same digit in the " +
                              "solution, found " + std::to_string(int((*solution)[c])));
    }
    ex.solution = *solution;
    if (options.require_unique) {
      const int n = count_solutions(puzzle, 2);
      if (n != 1) {
        throw SudokuFormatError(where + "puzzle has several solutions (at least 2), expected exactly one");
      }
    }
    return ex;
  }
  const auto r = solve_and_count(puzzle, options.require_unique ? 2 : 1);
  if (r.count == 0) throw SudokuFormatError(where + "puzzle has no solution, expected exactly one");
  if (r.count > 1) throw SudokuFormatError(where + "puzzle has several solutions (at least 2), expected exactly one");
  ex.solution = *r.solution;
  return ex;
}

namespace detail {
template <SudokuShapeType S>
std::vector<Example<S>> parse_csv_lines(io::LineReader<SudokuFormatError>& lines, const CsvOptions& options) {
  static_assert(S::n <= 9, "sudoku CSV: one character per cell needs N <= 9");
  const std::string& src = lines.source_name();
  std::vector<Example<S>> out;
  std::string line;
  bool first_data_line = true;
  std::size_t puzzle_col = 0;
  std::optional<std::size_t> solution_col;
  std::size_t min_fields = 1, max_fields = 2;  // without a header: PUZZLE[,SOLUTION]
  while (lines.next(line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::string where = src + ":" + std::to_string(lines.line_no()) + ": ";
    const auto fields = detail::split_commas(line);
    if (first_data_line) {
      first_data_line = false;
      if (std::isalpha(static_cast<unsigned char>(line[0]))) {
        std::optional<std::size_t> p;
        for (std::size_t k = 0; k < fields.size(); ++k) {
          const std::string name = detail::lower(fields[k]);
          if (!p && (name == "puzzle" || name == "question" || name == "quizzes" || name == "quiz")) p = k;
          if (!solution_col && (name == "solution" || name == "answer" || name == "solutions")) solution_col = k;
        }
        if (!p) {
          throw SudokuFormatError(where + "header: expected a column named puzzle, question or quizzes, found \"" +
                                  line + "\"");
        }
        puzzle_col = *p;
        min_fields = max_fields = fields.size();
        continue;
      }
    }
    if (fields.size() < min_fields || fields.size() > max_fields) {
      const std::string expected = min_fields == max_fields ? std::to_string(min_fields) + " comma-separated fields"
                                                            : "1 or 2 comma-separated fields (PUZZLE[,SOLUTION])";
      throw SudokuFormatError(where + "expected " + expected + ", found " + std::to_string(fields.size()));
    }
    const Grid<S> puzzle = detail::parse_field<S>(fields[puzzle_col], false, where);
    std::optional<Grid<S>> solution;
    const std::size_t sc = solution_col ? *solution_col : 1;
    if ((solution_col || min_fields == 1) && sc < fields.size()) {
      solution = detail::parse_field<S>(fields[sc], true, where);
    }
    out.push_back(check_example(puzzle, solution, where, options));
  }
  // An empty list is almost always a truncated or wrong file, not a request for no puzzles.
  if (out.empty())
    throw SudokuFormatError(src + ": expected at least one puzzle, found none (" +
                            (lines.line_no() == 0 ? std::string("an empty file") : "only comments, blank lines or a header") + ")");
  return out;
}
}  // namespace detail

// Reads a whole list from a stream; `source_name` names it in errors (e.g. "<stdin>").
template <SudokuShapeType S>
std::vector<Example<S>> parse_csv(std::istream& in, std::string_view source_name = "<stdin>",
                                  const CsvOptions& options = {}) {
  io::LineReader<SudokuFormatError> lines(in, std::string(source_name));
  return detail::parse_csv_lines<S>(lines, options);
}

template <SudokuShapeType S>
std::vector<Example<S>> read_csv(const std::filesystem::path& path, const CsvOptions& options = {}) {
  std::ifstream in;
  const std::uint64_t size = io::open_text_file<SudokuFormatError>(path, in);
  io::LineReader<SudokuFormatError> lines(in, path.string(), io::default_max_line_bytes, size);
  return detail::parse_csv_lines<S>(lines, options);
}

}  // namespace trm::data::sudoku
