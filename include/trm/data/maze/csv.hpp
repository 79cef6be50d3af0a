#pragma once
// Readers for mazes.
//
// Maze-Hard CSV (the Hugging Face files sapientinc/maze-30x30-hard-1k {train,test}.csv):
//   source,question,answer,rating          header, required as written
//   <source>,<question>,<answer>,<rating>  one maze per line
// question and answer have rows * cols characters of "# SGo" (sides given by the caller, 30x30 by
// default). Fields may be double-quoted (RFC 4180, "" inside quotes); lines end with "\n" or
// "\r\n" (io::LineReader: a UTF-8 byte-order mark is skipped, lines over 64 KiB are refused); no
// empty lines (the reference's csv loop fails on them too). Each example is checked:
// exactly one 'S' and one 'G', no 'o' in the question, and an answer consistent with it (the
// same walls, S and G; 'o' only where the question is open). With require_shortest the answer
// must also be a valid shortest path (check_path).
//
// Plain text: one maze row per line, mazes separated by one or more empty lines; all rows of a
// maze have the same length (keep trailing spaces: ' ' is an open cell). Lines starting with ';'
// are comments.
//
// Every problem throws MazeFormatError whose message starts with "<file>:<line>: " and names the
// field, what was expected and what was found.
#include <filesystem>
#include <fstream>
#include <istream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "trm/data/maze/grid.hpp"
#include "trm/data/maze/solver.hpp"
#include "trm/io/lines.hpp"

namespace trm::data::maze {

struct MazeExample {
  std::string source;
  Maze question;
  Maze answer;
  std::string rating;
  long line = 0;  // line in its file (0 when not read from a file)
  bool operator==(const MazeExample&) const = default;
};

struct MazeCsvOptions {
  int rows = 30;
  int cols = 30;
  bool require_shortest = false;  // also require check_path(question, answer) to pass
};

// Throws MazeFormatError (prefixed by `where`) unless question/answer form a consistent example.
inline void check_example(const Maze& question, const Maze& answer, const std::string& where, bool require_shortest = false) {
  if (auto why = detail::start_goal_problem(question, "question")) throw MazeFormatError(where + *why);
  if (const int o = question.count(Cell::Path); o != 0)
    throw MazeFormatError(where + "question: expected no 'o' (path) cells, found " + std::to_string(o) + " at " +
                          detail::pos_name(question.find(Cell::Path)->r, question.find(Cell::Path)->c));
  if (question.rows() != answer.rows() || question.cols() != answer.cols())
    throw MazeFormatError(where + "answer: expected " + std::to_string(question.rows()) + "x" + std::to_string(question.cols()) +
                          ", found " + std::to_string(answer.rows()) + "x" + std::to_string(answer.cols()));
  for (int r = 0; r < question.rows(); ++r)
    for (int c = 0; c < question.cols(); ++c) {
      const Cell q = question(r, c), a = answer(r, c);
      if (a == q || (q == Cell::Open && a == Cell::Path)) continue;
      const std::string expected = q == Cell::Open ? "' ' or 'o' (the question has ' ')"
                                                   : detail::show_char(to_char(q)) + " (as in the question)";
      throw MazeFormatError(where + "answer " + detail::pos_name(r, c) + ": expected " + expected + ", found " +
                            detail::show_char(to_char(a)) +
                            (a == Cell::Path ? " (path through a non-open cell)" : " (answer not consistent with the question)"));
    }
  if (require_shortest)
    if (auto why = check_path(question, answer)) throw MazeFormatError(where + "answer is not a valid shortest path: " + *why);
}

namespace detail {
// Splits one CSV record (no embedded newlines); nullopt on a malformed quote, with `why`.
inline std::optional<std::vector<std::string>> split_csv(std::string_view line, std::string& why) {
  std::vector<std::string> out;
  std::string field;
  std::size_t i = 0;
  for (;;) {
    field.clear();
    if (i < line.size() && line[i] == '"') {
      ++i;
      for (;;) {
        if (i >= line.size()) {
          why = "a closing '\"', found the end of the line";
          return std::nullopt;
        }
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field.push_back(line[i++]);
      }
      if (i < line.size() && line[i] != ',') {
        why = "',' after a quoted field, found " + show_char(line[i]);
        return std::nullopt;
      }
    } else {
      while (i < line.size() && line[i] != ',') field.push_back(line[i++]);
    }
    out.push_back(field);
    if (i >= line.size()) return out;
    ++i;  // ','
  }
}
}  // namespace detail

namespace detail {
inline std::vector<MazeExample> parse_csv_lines(io::LineReader<MazeFormatError>& lines, const MazeCsvOptions& options) {
  const std::string& src = lines.source_name();
  detail::check_sides(options.rows, options.cols, src + ": MazeCsvOptions");
  std::vector<MazeExample> out;
  std::string line;
  while (lines.next(line)) {
    const long line_no = lines.line_no();
    const std::string where = src + ":" + std::to_string(line_no) + ": ";
    if (line_no == 1) {
      if (line != "source,question,answer,rating")
        throw MazeFormatError(where + "header: expected \"source,question,answer,rating\", found \"" + line.substr(0, 80) + "\"");
      continue;
    }
    if (line.empty()) throw MazeFormatError(where + "expected 4 comma-separated fields, found an empty line");
    std::string why;
    const auto fields = detail::split_csv(line, why);
    if (!fields) throw MazeFormatError(where + "expected " + why);
    if (fields->size() != 4)
      throw MazeFormatError(where + "expected 4 comma-separated fields (source,question,answer,rating), found " +
                            std::to_string(fields->size()));
    MazeExample ex;
    ex.source = (*fields)[0];
    ex.question = Maze::from_field((*fields)[1], options.rows, options.cols, where + "question");
    ex.answer = Maze::from_field((*fields)[2], options.rows, options.cols, where + "answer");
    ex.rating = (*fields)[3];
    ex.line = line_no;
    check_example(ex.question, ex.answer, where, options.require_shortest);
    out.push_back(std::move(ex));
  }
  if (lines.line_no() == 0) throw MazeFormatError(src + ":1: header: expected \"source,question,answer,rating\", found an empty file");
  // A header alone is almost always a truncated file, not a request for no mazes.
  if (out.empty()) throw MazeFormatError(src + ": expected at least one maze after the header, found none");
  return out;
}
}  // namespace detail

inline std::vector<MazeExample> parse_csv(std::istream& in, std::string_view source_name = "<stdin>",
                                          const MazeCsvOptions& options = {}) {
  io::LineReader<MazeFormatError> lines(in, std::string(source_name));
  return detail::parse_csv_lines(lines, options);
}

inline std::vector<MazeExample> read_csv(const std::filesystem::path& path, const MazeCsvOptions& options = {}) {
  std::ifstream in;
  const std::uint64_t size = io::open_text_file<MazeFormatError>(path, in);
  io::LineReader<MazeFormatError> lines(in, path.string(), io::default_max_line_bytes, size);
  return detail::parse_csv_lines(lines, options);
}

// Writes the Maze-Hard CSV layout (no quoting is needed: no field may hold ',', '"' or a newline).
inline std::string to_csv(const std::vector<MazeExample>& examples) {
  std::string s = "source,question,answer,rating\n";
  for (const auto& e : examples) {
    for (const std::string* f : {&e.source, &e.rating})
      if (f->find_first_of(",\"\r\n") != std::string::npos)
        throw ValueError("maze::to_csv: expected source and rating without ',', '\"' or newlines, found \"" + *f + "\"");
    s += e.source + "," + e.question.to_field() + "," + e.answer.to_field() + "," + e.rating + "\n";
  }
  return s;
}

// Plain-text mazes (see the top of this file). Each maze is only checked for its characters and
// shape; use check_example / solve for more.
namespace detail {
inline std::vector<Maze> parse_text_lines(io::LineReader<MazeFormatError>& lines) {
  const std::string& src = lines.source_name();
  std::vector<Maze> out;
  std::string block;
  long first_line = 0, line_no = 0;
  int width = -1;
  auto flush = [&]() {
    if (block.empty()) return;
    out.push_back(Maze::parse(block, src + ":" + std::to_string(first_line) + ": maze " + std::to_string(out.size())));
    block.clear();
    width = -1;
  };
  std::string line;
  while (lines.next(line)) {
    line_no = lines.line_no();
    if (!line.empty() && line[0] == ';') continue;
    if (line.empty()) {
      flush();
      continue;
    }
    if (block.empty()) first_line = line_no;
    if (width >= 0 && int(line.size()) != width)
      throw MazeFormatError(src + ":" + std::to_string(line_no) + ": maze " + std::to_string(out.size()) + " row " +
                            std::to_string(line_no - first_line) + ": expected " + std::to_string(width) +
                            " characters (the width of its first row), found " + std::to_string(line.size()));
    for (std::size_t k = 0; k < line.size(); ++k)
      if (!cell_from_char(line[k]))
        throw MazeFormatError(src + ":" + std::to_string(line_no) + ": col " + std::to_string(k) +
                              ": expected one of \"# SGo\", found " + detail::show_char(line[k]));
    width = int(line.size());
    block += line;
    block += '\n';
  }
  flush();
  if (out.empty())
    throw MazeFormatError(src + ": expected at least one maze, found none (" +
                          (line_no == 0 ? std::string("an empty file") : "only comments and blank lines") + ")");
  return out;
}
}  // namespace detail

inline std::vector<Maze> parse_text(std::istream& in, std::string_view source_name = "<stdin>") {
  io::LineReader<MazeFormatError> lines(in, std::string(source_name));
  return detail::parse_text_lines(lines);
}

inline std::vector<Maze> read_text(const std::filesystem::path& path) {
  std::ifstream in;
  const std::uint64_t size = io::open_text_file<MazeFormatError>(path, in);
  io::LineReader<MazeFormatError> lines(in, path.string(), io::default_max_line_bytes, size);
  return detail::parse_text_lines(lines);
}

}  // namespace trm::data::maze
