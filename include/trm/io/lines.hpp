#pragma once
// LineReader: the one line splitter of the text readers (Sudoku CSV, maze CSV and text, the
// command line's puzzle lists). It exists because std::getline has no bound: 10 MB of commas on
// one line, or /dev/zero given as stdin, is read into memory before any format check can look at
// it, and a file that keeps growing while it is read never ends. A LineReader
//   - ends a line at "\n" and drops one "\r" before it ("\r\n" files);
//   - skips a UTF-8 byte-order mark (EF BB BF) at the very start: spreadsheet programs write one,
//     and it is not part of the first field (without this the first puzzle is "3 characters too
//     long" for no visible reason);
//   - refuses a line longer than `max_line_bytes` (default 64 KiB, far above any valid line of the
//     formats read here: a 30x30 Maze-Hard line is about 1.9 KB) before storing more of it;
//   - with `size_limit` (the file's size when it was opened), refuses to read past it: a file
//     that grows while it is read is an error, not an endless read.
// Errors are thrown as `Error` (the reader's own format error type) and name the source and line.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <istream>
#include <optional>
#include <streambuf>
#include <string>
#include <system_error>

#include "trm/io/atomic_file.hpp"

namespace trm::io {

inline constexpr std::size_t default_max_line_bytes = std::size_t(1) << 16;

template <class Error>
class LineReader {
 public:
  LineReader(std::istream& in, std::string source_name, std::size_t max_line_bytes = default_max_line_bytes,
             std::optional<std::uint64_t> size_limit = std::nullopt)
      : in_(in), source_(std::move(source_name)), max_line_(max_line_bytes), size_limit_(size_limit) {}

  // Reads the next line into `line` (without its "\n" / "\r\n"). Returns false at the end of the
  // input. Throws Error on a line that is too long, on a read error, or past size_limit.
  bool next(std::string& line) {
    line.clear();
    std::streambuf* buf = in_.rdbuf();
    if (buf == nullptr || !in_.good()) return finish(false);
    bool any = false;
    for (;;) {
      const int c = buf->sbumpc();
      if (c == std::char_traits<char>::eof()) {
        in_.setstate(std::ios::eofbit);
        break;
      }
      ++consumed_;
      if (size_limit_ && consumed_ > *size_limit_)
        throw Error(source_ + ":" + std::to_string(line_no_ + 1) + ": the file grew while it was read (it had " +
                    std::to_string(*size_limit_) + " bytes when opened); read it again once it is complete");
      any = true;
      if (c == '\n') break;
      if (line.size() >= max_line_)
        throw Error(source_ + ":" + std::to_string(line_no_ + 1) + ": expected a line of at most " +
                    std::to_string(max_line_) + " bytes, found a longer one (not a text file of this format?)");
      line.push_back(static_cast<char>(c));
    }
    if (!any) return finish(false);
    ++line_no_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no_ == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) {
      line.erase(0, 3);
      had_bom_ = true;
    }
    return true;
  }

  long line_no() const { return line_no_; }     // lines returned so far (the last one's number)
  bool had_byte_order_mark() const { return had_bom_; }
  const std::string& source_name() const { return source_; }

 private:
  bool finish(bool r) {
    if (in_.bad()) throw Error(source_ + ": read error after line " + std::to_string(line_no_));
    return r;
  }

  std::istream& in_;
  std::string source_;
  std::size_t max_line_;
  std::optional<std::uint64_t> size_limit_;
  std::uint64_t consumed_ = 0;
  long line_no_ = 0;
  bool had_bom_ = false;
};

// Opens a regular file for a LineReader and returns its size at opening (the reader's size_limit).
// A FIFO, device or directory is refused before open() (require_regular_file); every error is an
// `Error` naming the path.
template <class Error>
std::uint64_t open_text_file(const std::filesystem::path& path, std::ifstream& in) {
  try {
    require_regular_file(path);  // a FIFO would block, /dev/zero never end
  } catch (const NotAFileError& e) {
    throw Error(e.what());
  }
  in.open(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open the file");
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(path.string() + ": cannot read the file size (" + ec.message() + ")");
  return size;
}

}  // namespace trm::io
