// trm/io/npy.hpp - strict reader/writer for NumPy .npy files.
//
// Format (numpy/lib/format.py, "NEP 1"):
//   "\x93NUMPY" major minor
//   header length: u16 LE (version 1.0) or u32 LE (2.0, 3.0)
//   header: a Python dict literal such as
//     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//   padded with spaces and a final '\n' so the data starts 64-byte aligned
//   data: numel * itemsize raw bytes
//
// Supported: versions 1.0/2.0/3.0; descr <f8 <f4 <f2 <i8 <i4 <i2 |i1 |u1 |b1
// (little-endian or byte-order-free); C order only. save_npy() writes the same
// bytes numpy's np.save does for these dtypes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <span>
#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "trm/io/atomic_file.hpp"
#include "trm/io/safetensors.hpp"  // DType, FormatError, f16, value helpers

namespace trm::io {

struct NpyArray {
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;  // () is a scalar
  std::vector<std::byte> data;      // C order, little-endian

  std::int64_t numel() const { return checked_numel(shape); }
  std::string shape_text() const { return format_shape(shape); }
};

// numpy's descr for a dtype; BF16 has none (numpy has no bfloat16).
inline std::string_view npy_descr(DType t) {
  switch (t) {
    case DType::F64: return "<f8";
    case DType::F32: return "<f4";
    case DType::F16: return "<f2";
    case DType::I64: return "<i8";
    case DType::I32: return "<i4";
    case DType::I16: return "<i2";
    case DType::I8: return "|i1";
    case DType::U8: return "|u1";
    case DType::BOOL: return "|b1";
    case DType::BF16: break;
  }
  throw FormatError("dtype " + std::string(dtype_name(t)) + " cannot be stored in .npy (numpy has no such dtype)");
}

namespace detail {

inline constexpr unsigned char kNpyMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

// Maps a descr string to a DType; nullopt with `why` set when unsupported.
inline std::optional<DType> dtype_from_npy_descr(std::string_view descr, std::string& why) {
  if (descr.size() < 3) {
    why = "unsupported dtype descr " + single_quoted(descr);
    return std::nullopt;
  }
  const char order = descr[0];
  const std::string_view code = descr.substr(1);
  for (DType t : kAllDTypes) {
    if (t == DType::BF16) continue;
    const std::string_view canonical = npy_descr(t);
    if (canonical.substr(1) != code) continue;
    // A single byte has no byte order: numpy writes '|', '<' means the same.
    // For wider types only little-endian '<' is accepted.
    if (order == '<' || (order == '|' && dtype_size(t) == 1)) return t;
    if (order == '>' || order == '=' || order == '|') {
      why = "dtype descr " + single_quoted(descr) + " is not little-endian" +
            (order == '>' ? " (big-endian data is not supported)" : " (byte order must be '<')");
      return std::nullopt;
    }
    break;
  }
  why = "unsupported dtype descr " + single_quoted(descr) + " (supported: <f8 <f4 <f2 <i8 <i4 <i2 |i1 |u1 |b1)";
  return std::nullopt;
}

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
};

inline constexpr std::size_t kMaxNpyRank = 64;  // numpy 2's NPY_MAXDIMS

// Parses exactly the dict literal numpy writes - string keys, string/bool/
// tuple-of-int values, optional trailing commas, arbitrary whitespace - and
// rejects everything else with a message pointing at the offending position.
// Python 2 era files may write long integers as "3L"; numpy still reads those
// for versions 1.0/2.0, so we do too.
class NpyHeaderParser {
 public:
  NpyHeaderParser(std::string_view text, std::string context, bool allow_long_suffix)
      : text_(text), context_(std::move(context)), allow_long_suffix_(allow_long_suffix) {}

  NpyHeader parse() {
    NpyHeader header;
    std::set<std::string> keys;
    skip_ws();
    expect('{');
    skip_ws();
    while (!at('}')) {
      const std::string key = parse_string("a quoted key");
      if (!keys.insert(key).second) fail("duplicate key " + single_quoted(key));
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (at('[')) fail("structured dtypes (descr is a list) are not supported");
        header.descr = parse_string("a quoted dtype descr");
      } else if (key == "fortran_order") {
        header.fortran_order = parse_bool();
      } else if (key == "shape") {
        header.shape = parse_shape();
      } else {
        fail("unexpected key " + single_quoted(key) + " (expected 'descr', 'fortran_order', 'shape')");
      }
      skip_ws();
      if (at(',')) {
        ++pos_;
        skip_ws();
      } else if (!at('}')) {
        fail("expected ',' or '}'");
      }
    }
    ++pos_;  // '}'
    skip_ws();
    if (pos_ != text_.size()) fail("unexpected text after the header dict");
    for (const char* required : {"descr", "fortran_order", "shape"}) {
      if (!keys.contains(required)) fail(std::string("missing key '") + required + "'");
    }
    return header;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    std::string excerpt(text_.substr(0, 200));
    while (!excerpt.empty() && (excerpt.back() == ' ' || excerpt.back() == '\n')) excerpt.pop_back();
    throw FormatError(context_ + ": invalid npy header: " + msg + " at offset " + std::to_string(pos_) + " in \"" +
                      excerpt + "\"");
  }

  bool at(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
  static bool is_word_char(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  }
  void skip_ws() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  void expect(char c) {
    if (!at(c)) fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  std::string parse_string(const char* what) {
    if (!at('\'') && !at('"')) fail(std::string("expected ") + what);
    const char quote = text_[pos_++];
    const std::size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\') fail("escape sequences are not supported in header strings");
      if (text_[pos_] == '\n') fail("unterminated string");
      ++pos_;
    }
    if (pos_ == text_.size()) fail("unterminated string");
    return std::string(text_.substr(start, pos_++ - start));
  }

  bool parse_bool() {
    for (const auto& [word, value] : {std::pair{std::string_view("True"), true}, std::pair{std::string_view("False"), false}}) {
      if (text_.substr(pos_).starts_with(word) &&
          (pos_ + word.size() == text_.size() || !is_word_char(text_[pos_ + word.size()]))) {
        pos_ += word.size();
        return value;
      }
    }
    fail("fortran_order must be True or False");
  }

  std::int64_t parse_dimension() {
    if (at('-')) fail("negative dimension");
    if (!(pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9')) fail("expected a dimension (integer)");
    std::int64_t value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      const int digit = text_[pos_] - '0';
      if (value > (std::numeric_limits<std::int64_t>::max() - digit) / 10) fail("dimension too large");
      value = value * 10 + digit;
      ++pos_;
    }
    if (allow_long_suffix_ && (at('L') || at('l'))) ++pos_;
    if (pos_ < text_.size() && is_word_char(text_[pos_])) fail("malformed integer");
    return value;
  }

  // "()", "(3,)", "(2, 3)", "(2, 3,)"; "(3)" is an int in Python, not a tuple.
  std::vector<std::int64_t> parse_shape() {
    if (!at('(')) fail("shape must be a tuple");
    ++pos_;
    skip_ws();
    std::vector<std::int64_t> shape;
    bool trailing_comma = false;
    while (!at(')')) {
      if (shape.size() == kMaxNpyRank) fail("shape has more than " + std::to_string(kMaxNpyRank) + " dimensions");
      shape.push_back(parse_dimension());
      skip_ws();
      trailing_comma = at(',');
      if (trailing_comma) {
        ++pos_;
        skip_ws();
      } else if (!at(')')) {
        fail("expected ',' or ')' in shape");
      }
    }
    ++pos_;
    if (shape.size() == 1 && !trailing_comma) fail("shape (n) is not a tuple; a 1-D shape is written (n,)");
    return shape;
  }

  std::string_view text_;
  std::string context_;
  bool allow_long_suffix_;
  std::size_t pos_ = 0;
};

// Python's repr() of a shape tuple: "()", "(3,)", "(2, 3)".
inline std::string npy_shape_repr(std::span<const std::int64_t> shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + (shape.size() == 1 ? ",)" : ")");
}

}  // namespace detail

namespace detail {
// Where an npy file's data lies and what it holds, validated against the file's size.
struct NpyLayout {
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t data_offset = 0;
  std::uint64_t data_bytes = 0;
};

// Larger than any header numpy writes (numpy itself refuses headers over 10,000 bytes by default).
inline constexpr std::uint64_t max_npy_header_bytes = std::uint64_t{1} << 20;

// The one validation of an npy header, for a whole image in memory (parse_npy) and for a file read
// piecewise (data::PuzzleDataset, which does not load its arrays to check them). read_at(offset,
// dst, n) reads exactly n bytes at offset. Every size is checked against file_size before it is
// used; errors are FormatErrors starting with `src`.
template <class ReadAt>
NpyLayout read_npy_layout(std::uint64_t file_size, ReadAt&& read_at, const std::string& src) {
  auto fail = [&](const std::string& msg) { return FormatError(src + ": " + msg); };
  if (file_size < 10) throw fail("file has " + std::to_string(file_size) + " bytes, too small for an npy header");
  unsigned char pre[12] = {};
  read_at(0, pre, static_cast<std::size_t>(std::min<std::uint64_t>(file_size, 12)));
  for (std::size_t i = 0; i < 6; ++i)
    if (pre[i] != kNpyMagic[i]) throw fail("not an npy file (bad magic string)");
  const unsigned major = pre[6], minor = pre[7];
  if (major < 1 || major > 3 || minor != 0) {
    throw fail("unsupported npy format version " + std::to_string(major) + "." + std::to_string(minor) +
               " (supported: 1.0, 2.0, 3.0)");
  }
  // Version 1.0 stores the header length in 2 bytes, 2.0 and 3.0 in 4.
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  if (file_size < 8 + length_bytes) throw fail("file truncated inside the header length");
  std::uint64_t header_len = 0;
  for (std::size_t i = 0; i < length_bytes; ++i) header_len |= std::uint64_t{pre[8 + i]} << (8 * i);
  const std::uint64_t data_start = 8 + length_bytes;
  if (header_len > file_size - data_start) {
    throw fail("header length " + std::to_string(header_len) + " exceeds the " + std::to_string(file_size - data_start) +
               " bytes after it (corrupt header or truncated file)");
  }
  if (header_len > max_npy_header_bytes)
    throw fail("header length " + std::to_string(header_len) + " exceeds the limit of " +
               std::to_string(max_npy_header_bytes) + " bytes");
  // Versions 1.0/2.0 are latin-1, 3.0 is UTF-8; a valid header for the supported dtypes is plain
  // ASCII either way, which the parser enforces.
  std::string text(static_cast<std::size_t>(header_len), '\0');
  read_at(data_start, text.data(), text.size());
  const NpyHeader header = NpyHeaderParser(text, src, major <= 2).parse();

  std::string why;
  const auto dtype = dtype_from_npy_descr(header.descr, why);
  if (!dtype) throw fail(why);
  if (header.fortran_order) {
    throw fail("fortran_order is True; only C-order arrays are supported (save with np.ascontiguousarray)");
  }
  NpyLayout layout{*dtype, header.shape, data_start + header_len, 0};
  layout.data_bytes = checked_nbytes(layout.shape, layout.dtype, src);
  const std::uint64_t have = file_size - layout.data_offset;
  if (have != layout.data_bytes) {
    throw fail("shape " + npy_shape_repr(layout.shape) + " with descr " + single_quoted(header.descr) + " needs " +
               std::to_string(layout.data_bytes) + " data bytes, file has " + std::to_string(have) +
               (have < layout.data_bytes ? " (truncated file)" : " (trailing bytes)"));
  }
  return layout;
}
}  // namespace detail

// Parses and validates a complete .npy image. `source_name` appears in errors.
inline NpyArray parse_npy(std::span<const std::byte> bytes, std::string_view source_name) {
  const std::string src(source_name);
  const detail::NpyLayout layout = detail::read_npy_layout(
      bytes.size(), [&](std::uint64_t offset, void* dst, std::size_t n) { std::memcpy(dst, bytes.data() + offset, n); }, src);
  NpyArray array{layout.dtype, layout.shape, {}};
  const auto data = bytes.subspan(static_cast<std::size_t>(layout.data_offset), static_cast<std::size_t>(layout.data_bytes));
  if (array.dtype == DType::BOOL) detail::check_bool_bytes(data, src);
  array.data.assign(data.begin(), data.end());
  return array;
}

inline NpyArray load_npy(const std::filesystem::path& path) { return parse_npy(read_file(path), path.string()); }

// The header numpy's np.save writes for (dtype, shape): version 1.0 (2.0 only if the header needs
// more than 65535 bytes), keys sorted, a spare run of spaces so the shape can grow in place,
// padded to 64 bytes. The data follows it directly.
inline std::string npy_header(DType dtype, const std::vector<std::int64_t>& shape) {
  if (shape.size() > detail::kMaxNpyRank)  // the readers (ours and numpy's) refuse it
    throw FormatError("npy: shape " + format_shape(shape).substr(0, 80) + ": expected at most " +
                      std::to_string(detail::kMaxNpyRank) + " dimensions, found " + std::to_string(shape.size()));
  std::string dict = "{'descr': '" + std::string(npy_descr(dtype)) +
                     "', 'fortran_order': False, 'shape': " + detail::npy_shape_repr(shape) + ", }";
  // numpy reserves room for the first axis to grow to 21 digits.
  if (!shape.empty()) dict.append(21 - std::to_string(shape[0]).size(), ' ');
  const std::size_t hlen = dict.size() + 1;  // + '\n'
  std::size_t length_bytes = 2;
  std::size_t padding = 64 - (6 + 2 + length_bytes + hlen) % 64;
  if (hlen + padding > 0xffff) {
    length_bytes = 4;
    padding = 64 - (6 + 2 + length_bytes + hlen) % 64;
  }
  const std::uint64_t header_len = hlen + padding;
  std::string out;
  for (unsigned char c : detail::kNpyMagic) out.push_back(static_cast<char>(c));
  out.push_back(static_cast<char>(length_bytes == 2 ? 1 : 2));
  out.push_back('\0');
  for (std::size_t i = 0; i < length_bytes; ++i) out.push_back(static_cast<char>((header_len >> (8 * i)) & 0xff));
  out += dict;
  out.append(padding, ' ');
  out.push_back('\n');
  return out;
}

// The bytes numpy's np.save writes for the same array (npy_header, then the data).
inline std::vector<std::byte> serialize_npy(const NpyArray& array) {
  const std::string context = "npy array";
  const std::size_t nbytes = detail::checked_nbytes(array.shape, array.dtype, context);
  if (array.data.size() != nbytes) {
    throw FormatError(context + ": shape " + format_shape(array.shape) + " with dtype " +
                      std::string(dtype_name(array.dtype)) + " needs " + std::to_string(nbytes) + " bytes, got " +
                      std::to_string(array.data.size()));
  }
  if (array.dtype == DType::BOOL) detail::check_bool_bytes(array.data, context);

  const std::string header = npy_header(array.dtype, array.shape);
  std::vector<std::byte> out;
  out.reserve(header.size() + nbytes);
  for (char c : header) out.push_back(static_cast<std::byte>(c));
  out.insert(out.end(), array.data.begin(), array.data.end());
  return out;
}

// Atomic (see AtomicFileWriter).
inline void save_npy(const std::filesystem::path& path, const NpyArray& array) {
  const std::vector<std::byte> bytes = serialize_npy(array);  // validates before touching the disk
  write_file_atomically(path, std::span<const std::byte>(bytes));
}

// The elements, C order; T must match the dtype exactly (see dtype_of).
template <class T>
std::vector<T> values(const NpyArray& array, std::string_view what = "npy array") {
  return detail::decode_values<T>(array.dtype, array.data, std::string(what));
}

template <class T>
NpyArray make_npy(std::vector<std::int64_t> shape, std::span<const T> values) {
  const std::size_t nbytes = detail::checked_nbytes(shape, dtype_of_v<T>, "npy array");
  if (values.size_bytes() != nbytes) {
    throw FormatError("npy array: shape " + format_shape(shape) + " needs " + std::to_string(nbytes / sizeof(T)) +
                      " values, got " + std::to_string(values.size()));
  }
  return NpyArray{dtype_of_v<T>, std::move(shape), detail::encode_values(values)};
}

}  // namespace trm::io
