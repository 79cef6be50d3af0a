#pragma once
// Maze grids and the reference's token encoding (SPEC §6.3, `build_maze_dataset.py`):
//   charset "# SGo" -> tokens 1..5: '#' wall 1, ' ' open 2, 'S' start 3, 'G' goal 4, 'o' path 5;
//   token 0 is PAD (never a cell); vocab 6. A maze is a rows x cols grid (each side 5..30),
//   stored row-major; its token sequence is the cells row by row (seq_len = rows * cols).
// Text forms: `to_text` / `parse` use one row per line; `to_field` / `from_field` use the CSV
// field form (rows * cols characters, row by row, no separators).
#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "trm/core/error.hpp"

namespace trm::data::maze {

// Malformed maze data (text, CSV, tokens).
class MazeFormatError : public ValueError {
 public:
  using ValueError::ValueError;
};

inline constexpr std::string_view charset = "# SGo";
inline constexpr std::uint8_t pad_token = 0;
inline constexpr std::uint8_t wall_token = 1;
inline constexpr std::uint8_t open_token = 2;
inline constexpr std::uint8_t start_token = 3;
inline constexpr std::uint8_t goal_token = 4;
inline constexpr std::uint8_t path_token = 5;
inline constexpr int vocab_size = 6;  // PAD + charset
inline constexpr int min_side = 5;
inline constexpr int max_side = 30;

// The value of a cell is its token.
enum class Cell : std::uint8_t { Wall = 1, Open = 2, Start = 3, Goal = 4, Path = 5 };

inline constexpr char to_char(Cell c) { return charset[std::size_t(c) - 1]; }
inline constexpr std::optional<Cell> cell_from_char(char ch) {
  const auto k = charset.find(ch);
  if (k == std::string_view::npos) return std::nullopt;
  return Cell(std::uint8_t(k + 1));
}
// Cells a path may go through: everything but walls.
inline constexpr bool passable(Cell c) { return c != Cell::Wall; }

struct Pos {
  int r = 0, c = 0;
  bool operator==(const Pos&) const = default;
};

namespace detail {
inline std::string show_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return "'" + std::string(1, c) + "'";
  static constexpr char hex[] = "0123456789abcdef";
  return std::string("byte 0x") + hex[u >> 4] + hex[u & 15];
}
inline std::string pos_name(int r, int c) { return "row " + std::to_string(r) + ", col " + std::to_string(c); }
inline void check_sides(int rows, int cols, const std::string& what) {
  if (rows < min_side || rows > max_side || cols < min_side || cols > max_side)
    throw MazeFormatError(what + ": expected sides in " + std::to_string(min_side) + ".." + std::to_string(max_side) +
                          ", found " + std::to_string(rows) + "x" + std::to_string(cols));
}
}  // namespace detail

class Maze {
 public:
  Maze() : Maze(min_side, min_side) {}
  Maze(int rows, int cols, Cell fill = Cell::Open) : rows_(rows), cols_(cols) {
    detail::check_sides(rows, cols, "Maze");
    cells_.assign(std::size_t(rows) * std::size_t(cols), fill);
  }

  int rows() const { return rows_; }
  int cols() const { return cols_; }
  int size() const { return rows_ * cols_; }
  bool square() const { return rows_ == cols_; }
  bool inside(int r, int c) const { return r >= 0 && r < rows_ && c >= 0 && c < cols_; }
  int index(int r, int c) const { return r * cols_ + c; }

  Cell& operator()(int r, int c) { return cells_[std::size_t(index(r, c))]; }
  Cell operator()(int r, int c) const { return cells_[std::size_t(index(r, c))]; }
  Cell& operator[](Pos p) { return (*this)(p.r, p.c); }
  Cell operator[](Pos p) const { return (*this)(p.r, p.c); }
  std::span<const Cell> cells() const { return cells_; }
  std::span<Cell> cells() { return cells_; }

  int count(Cell v) const { return int(std::count(cells_.begin(), cells_.end(), v)); }
  // The first cell (row-major) holding v.
  std::optional<Pos> find(Cell v) const {
    const auto it = std::find(cells_.begin(), cells_.end(), v);
    if (it == cells_.end()) return std::nullopt;
    const int k = int(it - cells_.begin());
    return Pos{k / cols_, k % cols_};
  }
  std::optional<Pos> start() const { return find(Cell::Start); }
  std::optional<Pos> goal() const { return find(Cell::Goal); }

  // The maze without its path: every 'o' becomes ' '.
  Maze without_path() const {
    Maze m = *this;
    std::replace(m.cells_.begin(), m.cells_.end(), Cell::Path, Cell::Open);
    return m;
  }

  // One row per line, each line ending with '\n'.
  std::string to_text() const {
    std::string s;
    s.reserve(std::size_t(rows_) * std::size_t(cols_ + 1));
    for (int r = 0; r < rows_; ++r) {
      for (int c = 0; c < cols_; ++c) s.push_back(to_char((*this)(r, c)));
      s.push_back('\n');
    }
    return s;
  }
  // rows * cols characters, row by row (the CSV field).
  std::string to_field() const {
    std::string s;
    s.reserve(cells_.size());
    for (Cell c : cells_) s.push_back(to_char(c));
    return s;
  }

  // rows * cols characters of the charset; `what` prefixes errors ("<file>:<line>: question").
  static Maze from_field(std::string_view field, int rows, int cols, const std::string& what = "maze") {
    detail::check_sides(rows, cols, what);
    const std::size_t n = std::size_t(rows) * std::size_t(cols);
    if (field.size() != n)
      throw MazeFormatError(what + ": expected " + std::to_string(n) + " characters (" + std::to_string(rows) + "x" +
                            std::to_string(cols) + "), found " + std::to_string(field.size()));
    Maze m(rows, cols);
    for (std::size_t k = 0; k < n; ++k) {
      const auto cell = cell_from_char(field[k]);
      if (!cell)
        throw MazeFormatError(what + ": " + detail::pos_name(int(k) / cols, int(k) % cols) + " (character " +
                              std::to_string(k) + "): expected one of \"# SGo\", found " + detail::show_char(field[k]));
      m.cells_[k] = *cell;
    }
    return m;
  }

  // Rows separated by '\n' (a final '\n' and "\r\n" endings accepted); all rows the same length.
  static Maze parse(std::string_view text, const std::string& what = "maze") {
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    while (start < text.size()) {
      std::size_t end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      std::string_view line = text.substr(start, end - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      lines.push_back(line);
      start = end + 1;
    }
    if (lines.empty()) throw MazeFormatError(what + ": expected " + std::to_string(min_side) + ".." +
                                             std::to_string(max_side) + " rows, found an empty text");
    const int rows = int(lines.size()), cols = int(lines[0].size());
    detail::check_sides(rows, cols, what);
    std::string field;
    for (int r = 0; r < rows; ++r) {
      if (int(lines[std::size_t(r)].size()) != cols)
        throw MazeFormatError(what + ": row " + std::to_string(r) + ": expected " + std::to_string(cols) +
                              " characters (the width of row 0), found " + std::to_string(lines[std::size_t(r)].size()));
      field += lines[std::size_t(r)];
    }
    return from_field(field, rows, cols, what);
  }

  bool operator==(const Maze&) const = default;

 private:
  int rows_, cols_;
  std::vector<Cell> cells_;
};

// Tokens (row-major, 1..5) of the maze.
inline void encode_into(const Maze& m, std::span<std::uint8_t> out) {
  if (out.size() != std::size_t(m.size()))
    throw ShapeError("maze::encode_into: expected " + std::to_string(m.size()) + " tokens, found room for " +
                     std::to_string(out.size()));
  const auto cells = m.cells();
  for (std::size_t k = 0; k < cells.size(); ++k) out[k] = std::uint8_t(cells[k]);
}
inline std::vector<std::uint8_t> encode(const Maze& m) {
  std::vector<std::uint8_t> out(std::size_t(m.size()));
  encode_into(m, out);
  return out;
}

// The maze of a token sequence (any integer type: stored uint8 tokens, int32 predictions).
template <class T>
Maze decode(std::span<const T> tokens, int rows, int cols) {
  detail::check_sides(rows, cols, "maze::decode");
  if (tokens.size() != std::size_t(rows) * std::size_t(cols))
    throw ShapeError("maze::decode: expected " + std::to_string(rows * cols) + " tokens (" + std::to_string(rows) + "x" +
                     std::to_string(cols) + "), found " + std::to_string(tokens.size()));
  Maze m(rows, cols);
  for (std::size_t k = 0; k < tokens.size(); ++k) {
    const auto t = static_cast<long long>(tokens[k]);
    if (t < 1 || t > 5)
      throw MazeFormatError("maze::decode: token " + std::to_string(k) + " (" + detail::pos_name(int(k) / cols, int(k) % cols) +
                            "): expected 1..5 (\"# SGo\"), found " + std::to_string(t) + (t == 0 ? " (PAD)" : ""));
    m.cells()[k] = Cell(std::uint8_t(t));
  }
  return m;
}
template <class T>
Maze decode(const std::vector<T>& tokens, int rows, int cols) {
  return decode(std::span<const T>(tokens), rows, cols);
}

}  // namespace trm::data::maze
