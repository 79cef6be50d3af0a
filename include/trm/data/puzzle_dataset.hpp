#pragma once
// The reference's on-disk puzzle dataset format for any task (SPEC §6.1), its batch sampler for
// training and its evaluation order (SPEC §6.5, §7), producing trm::Batch.
//
//   <dir>/identifiers.json                      ["<blank>", name1, ...]   (id -> name)
//   <dir>/<split>/dataset.json                  metadata (PuzzleDatasetMetadata)
//   <dir>/<split>/<set>__inputs.npy             uint8 [N_examples, seq_len]
//   <dir>/<split>/<set>__labels.npy             uint8 [N_examples, seq_len]
//   <dir>/<split>/<set>__puzzle_identifiers.npy int32 [N_puzzles]
//   <dir>/<split>/<set>__puzzle_indices.npy     int32 [N_puzzles + 1]  example offsets
//   <dir>/<split>/<set>__group_indices.npy      int32 [N_groups + 1]   puzzle offsets
//
// Several directories are concatenated as the reference loader does: for each set name s of the
// metadata and each directory i, one PuzzleSet named s (i = 0) or s + to_string(i); puzzle ids are
// not offset; the merged num_puzzle_identifiers, total_groups and total_puzzles are sums.
//
// Labels: in a batch, a stored label equal to ignore_label_id (when not null) becomes
// trm::ignore_label (-100), as the reference's collate does; inputs are widened to int32.
//
// Reading validates everything (JSON field types, dtypes and shapes, offsets, id and token
// ranges) and throws PuzzleDatasetError (an io::FormatError) naming the file, the field, what was
// expected and what was found. Array sizes are checked against the file size before anything is
// allocated, and each array is read once, straight into its final buffer. Writing validates first
// and writes every file atomically (AtomicFileWriter); write -> read -> write gives the same bytes.
#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "trm/core/config.hpp"
#include "trm/core/error.hpp"
#include "trm/core/rng.hpp"
#include "trm/io/json.hpp"
#include "trm/io/atomic_file.hpp"
#include "trm/io/npy.hpp"
#include "trm/model/model.hpp"

namespace trm::data {

// Malformed or inconsistent dataset files.
class PuzzleDatasetError : public io::FormatError {
 public:
  using io::FormatError::FormatError;
};

struct PuzzleDatasetMetadata {
  int pad_id = 0;
  std::optional<int> ignore_label_id = 0;
  int blank_identifier_id = 0;
  int vocab_size = 0;
  int seq_len = 0;
  std::int64_t num_puzzle_identifiers = 1;
  std::int64_t total_groups = 0;
  double mean_puzzle_examples = 1.0;
  std::optional<std::int64_t> total_puzzles;  // TRM writes it, HRM does not
  std::vector<std::string> sets{"all"};

  // The reference's field order.
  nlohmann::ordered_json to_json() const {
    nlohmann::ordered_json j;
    j["pad_id"] = pad_id;
    j["ignore_label_id"] = ignore_label_id ? nlohmann::ordered_json(*ignore_label_id) : nlohmann::ordered_json(nullptr);
    j["blank_identifier_id"] = blank_identifier_id;
    j["vocab_size"] = vocab_size;
    j["seq_len"] = seq_len;
    j["num_puzzle_identifiers"] = num_puzzle_identifiers;
    j["total_groups"] = total_groups;
    j["mean_puzzle_examples"] = mean_puzzle_examples;
    if (total_puzzles) j["total_puzzles"] = *total_puzzles;
    j["sets"] = sets;
    return j;
  }
  bool operator==(const PuzzleDatasetMetadata&) const = default;
};

// One set of one directory (the reference's self._data[set_name]).
struct PuzzleSet {
  std::string name;                              // "all", "all1", ...
  std::vector<std::uint8_t> inputs;              // [E * seq_len], row-major
  std::vector<std::uint8_t> labels;              // [E * seq_len]
  std::vector<std::int32_t> puzzle_identifiers;  // [P]
  std::vector<std::int32_t> puzzle_indices;      // [P + 1]
  std::vector<std::int32_t> group_indices;       // [G + 1]

  std::int64_t num_puzzles() const { return std::int64_t(puzzle_identifiers.size()); }
  std::int64_t num_groups() const { return group_indices.empty() ? 0 : std::int64_t(group_indices.size()) - 1; }
  // The puzzle whose examples contain example e (e < number of examples).
  std::int32_t puzzle_of(std::int64_t e) const {
    auto it = std::upper_bound(puzzle_indices.begin(), puzzle_indices.end(), e,
                               [](std::int64_t v, std::int32_t o) { return v < std::int64_t(o); });
    return std::int32_t(it - puzzle_indices.begin() - 1);
  }
  bool operator==(const PuzzleSet&) const = default;
};

struct PuzzleDatasetReadOptions {
  // Require <dir>/identifiers.json (otherwise it is read and checked only when present).
  bool require_identifiers = false;
};

namespace detail::puzzle {

inline std::string str(const std::filesystem::path& p) { return p.string(); }

[[noreturn]] inline void fail(const std::string& file, const std::string& field, const std::string& expected,
                              const std::string& found) {
  throw PuzzleDatasetError(file + ": " + field + ": expected " + expected + ", found " + found);
}

// A read-only file: size from fstat, exact reads at offsets.
class InputFile {
 public:
  explicit InputFile(const std::filesystem::path& path) : path_(path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      throw PuzzleDatasetError(path.string() + ": file: expected a regular file, found " +
                               (std::filesystem::exists(path, ec) ? "something else" : "none (missing file)"));
    }
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) io::detail::throw_errno(errno, "cannot open '" + path.string() + "'");
    struct ::stat st {};
    if (::fstat(fd_, &st) != 0) io::detail::throw_errno(errno, "cannot stat '" + path.string() + "'");
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile() {
    if (fd_ >= 0) (void)::close(fd_);
  }
  std::uint64_t size() const { return size_; }
  // Reads exactly n bytes at offset; a short read means the file shrank: a FormatError.
  void read(std::uint64_t offset, void* out, std::size_t n) const {
    auto* p = static_cast<char*>(out);
    while (n > 0) {
      const std::size_t chunk = std::min<std::size_t>(n, std::size_t{1} << 30);
      const ::ssize_t got = ::pread(fd_, p, chunk, static_cast<off_t>(offset));
      if (got < 0) {
        if (errno == EINTR) continue;
        io::detail::throw_errno(errno, "cannot read '" + path_.string() + "'");
      }
      if (got == 0) throw PuzzleDatasetError(path_.string() + ": file: expected more bytes, found the end (file truncated while reading)");
      p += got;
      offset += static_cast<std::uint64_t>(got);
      n -= static_cast<std::size_t>(got);
    }
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// The header of an .npy file; data_offset + data_bytes == file size is checked here.
struct NpyInfo {
  std::filesystem::path path;
  io::DType dtype = io::DType::U8;
  std::vector<std::int64_t> shape;
  std::uint64_t data_offset = 0;
  std::uint64_t data_bytes = 0;
};

// The npy checks are io::detail::read_npy_layout's (the same as io::parse_npy), on the file read
// piecewise; its FormatErrors become PuzzleDatasetErrors with the same text.
inline NpyInfo read_npy_header(const InputFile& f, const std::filesystem::path& path) {
  io::detail::NpyLayout layout;
  try {
    layout = io::detail::read_npy_layout(
        f.size(), [&](std::uint64_t offset, void* dst, std::size_t n) { f.read(offset, dst, n); }, path.string());
  } catch (const PuzzleDatasetError&) {
    throw;
  } catch (const io::FormatError& e) {
    throw PuzzleDatasetError(e.what());
  }
  NpyInfo info;
  info.path = path;
  info.dtype = layout.dtype;
  info.shape = std::move(layout.shape);
  info.data_offset = layout.data_offset;
  info.data_bytes = layout.data_bytes;
  return info;
}

inline void expect_dtype(const NpyInfo& a, io::DType want) {
  if (a.dtype != want)
    fail(str(a.path), "dtype", std::string(io::dtype_name(want)) + " ('" + std::string(io::npy_descr(want)) + "')",
         std::string(io::dtype_name(a.dtype)));
}
inline void expect_rank(const NpyInfo& a, std::size_t rank, const std::string& shape_text) {
  if (a.shape.size() != rank) fail(str(a.path), "shape", shape_text, trm::format_shape(a.shape));
}

template <class T>
std::vector<T> read_npy_data(const InputFile& f, const NpyInfo& a) {
  std::vector<T> out(static_cast<std::size_t>(a.data_bytes / sizeof(T)));
  f.read(a.data_offset, out.data(), static_cast<std::size_t>(a.data_bytes));  // little-endian host (io/safetensors.hpp)
  return out;
}


// Writes header + data straight from `values` (no intermediate copy), atomically.
template <class T>
void write_npy(const std::filesystem::path& path, std::vector<std::int64_t> shape, std::span<const T> values) {
  const std::size_t nbytes = io::detail::checked_nbytes(shape, io::dtype_of_v<T>, path.string());
  if (values.size_bytes() != nbytes)
    fail(path.string(), "data", std::to_string(nbytes / sizeof(T)) + " values for shape " + trm::format_shape(shape),
         std::to_string(values.size()));
  const std::string header = io::npy_header(io::dtype_of_v<T>, shape);
  io::write_file_atomically(path, [&](io::AtomicFileWriter& w) {
    w.write(std::string_view(header));
    w.write(std::as_bytes(values));
  });
}

// As Python's json.dump writes it, so that our dataset.json and identifiers.json are byte-identical
// to the reference builders' files.
inline void write_json(const std::filesystem::path& path, const nlohmann::ordered_json& j) {
  const std::string text = io::dump_like_python(j);
  io::write_file_atomically(path, [&](io::AtomicFileWriter& w) { w.write(std::string_view(text)); });
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
  InputFile f(path);
  if (f.size() > (std::uint64_t{64} << 20)) fail(path.string(), "file size", "at most 64 MiB of JSON", std::to_string(f.size()) + " bytes");
  std::string text(static_cast<std::size_t>(f.size()), '\0');
  f.read(0, text.data(), text.size());
  return io::parse_untrusted_json<PuzzleDatasetError>(text, path.string() + ": JSON");
}

inline std::string json_found(const nlohmann::json& v) { return io::json_brief(v); }

// dataset.json -> metadata, every field checked for presence and type.
inline PuzzleDatasetMetadata parse_metadata(const nlohmann::json& j, const std::string& file) {
  if (!j.is_object()) fail(file, "top level", "a JSON object", json_found(j));
  auto field = [&](const char* name) -> const nlohmann::json& {
    if (!j.contains(name)) fail(file, std::string("field \"") + name + "\"", "present", "no such field");
    return j.at(name);
  };
  auto integer = [&](const char* name, std::int64_t lo, std::int64_t hi) -> std::int64_t {
    const nlohmann::json& v = field(name);
    if (!v.is_number_integer()) fail(file, std::string("field \"") + name + "\"", "an integer", json_found(v));
    std::int64_t x = 0;
    if (v.is_number_unsigned()) {
      const auto u = v.get<std::uint64_t>();
      if (u > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
        fail(file, std::string("field \"") + name + "\"", "an integer in " + std::to_string(lo) + ".." + std::to_string(hi), io::json_brief(v));
      x = std::int64_t(u);
    } else {
      x = v.get<std::int64_t>();
    }
    if (x < lo || x > hi)
      fail(file, std::string("field \"") + name + "\"", "an integer in " + std::to_string(lo) + ".." + std::to_string(hi),
           std::to_string(x));
    return x;
  };
  constexpr std::int64_t i32max = std::numeric_limits<std::int32_t>::max();
  PuzzleDatasetMetadata m;
  m.pad_id = int(integer("pad_id", 0, 255));
  {
    const nlohmann::json& v = field("ignore_label_id");
    if (v.is_null()) m.ignore_label_id.reset();
    else m.ignore_label_id = int(integer("ignore_label_id", 0, 255));
  }
  m.blank_identifier_id = int(integer("blank_identifier_id", 0, i32max));
  m.vocab_size = int(integer("vocab_size", 1, 256));  // tokens are stored as uint8
  m.seq_len = int(integer("seq_len", 1, i32max));
  m.num_puzzle_identifiers = integer("num_puzzle_identifiers", 1, i32max);
  m.total_groups = integer("total_groups", 0, i32max);
  {
    const nlohmann::json& v = field("mean_puzzle_examples");
    if (!v.is_number()) fail(file, "field \"mean_puzzle_examples\"", "a number", json_found(v));
    m.mean_puzzle_examples = v.get<double>();
  }
  if (j.contains("total_puzzles") && !j.at("total_puzzles").is_null())
    m.total_puzzles = integer("total_puzzles", 0, i32max);
  {
    const nlohmann::json& v = field("sets");
    if (!v.is_array() || v.empty()) fail(file, "field \"sets\"", "a non-empty list of set names", json_found(v));
    m.sets.clear();
    for (const nlohmann::json& s : v) {
      if (!s.is_string()) fail(file, "field \"sets\"", "a list of strings", "element " + json_found(s));
      const std::string name = s.get<std::string>();
      if (name.empty() || name.find('/') != std::string::npos || name.find('\0') != std::string::npos)
        fail(file, "field \"sets\"", "plain file-name prefixes", "\"" + name + "\"");
      if (std::find(m.sets.begin(), m.sets.end(), name) != m.sets.end())
        fail(file, "field \"sets\"", "distinct names", "\"" + name + "\" twice");
      m.sets.push_back(name);
    }
  }
  if (m.pad_id >= m.vocab_size)
    fail(file, "field \"pad_id\"", "a token < vocab_size (" + std::to_string(m.vocab_size) + ")", std::to_string(m.pad_id));
  if (m.blank_identifier_id >= m.num_puzzle_identifiers)
    fail(file, "field \"blank_identifier_id\"",
         "an id < num_puzzle_identifiers (" + std::to_string(m.num_puzzle_identifiers) + ")",
         std::to_string(m.blank_identifier_id));
  return m;
}

// The file names of one set of one split directory.
struct SetFiles {
  std::string inputs, labels, puzzle_identifiers, puzzle_indices, group_indices;
  static SetFiles in(const std::filesystem::path& split_dir, const std::string& set) {
    auto f = [&](const char* field) { return (split_dir / (set + "__" + field + ".npy")).string(); };
    return {f("inputs"), f("labels"), f("puzzle_identifiers"), f("puzzle_indices"), f("group_indices")};
  }
};

inline void check_offsets(std::span<const std::int32_t> off, std::int64_t end, const std::string& file,
                          const char* name, const std::string& end_what) {
  if (off.empty()) fail(file, std::string(name), "at least one offset (0)", "an empty array");
  if (off[0] != 0) fail(file, std::string(name) + "[0]", "0", std::to_string(off[0]));
  for (std::size_t i = 1; i < off.size(); ++i)
    if (off[i] < off[i - 1])
      fail(file, std::string(name) + "[" + std::to_string(i) + "]",
           "non-decreasing offsets (>= " + std::string(name) + "[" + std::to_string(i - 1) + "] = " +
               std::to_string(off[i - 1]) + ")",
           std::to_string(off[i]));
  if (off.back() != end)
    fail(file, std::string(name) + "[" + std::to_string(off.size() - 1) + "] (the last offset)",
         end_what + " (" + std::to_string(end) + ")", std::to_string(off.back()));
}

// Everything about one set that does not need the headers (those are checked while reading).
inline void validate_set(const PuzzleSet& s, const PuzzleDatasetMetadata& m, const SetFiles& f) {
  const auto L = static_cast<std::size_t>(m.seq_len);
  if (s.inputs.size() % L != 0)
    fail(f.inputs, "shape", "[N_examples, " + std::to_string(L) + "] (seq_len from dataset.json)",
         std::to_string(s.inputs.size()) + " values");
  if (s.labels.size() != s.inputs.size())
    fail(f.labels, "shape", "the shape of " + f.inputs + " (" + std::to_string(s.inputs.size()) + " values)",
         std::to_string(s.labels.size()) + " values");
  const auto E = static_cast<std::int64_t>(s.inputs.size() / L);
  const std::int64_t P = s.num_puzzles();
  if (std::int64_t(s.puzzle_indices.size()) != P + 1)
    fail(f.puzzle_indices, "shape", "[" + std::to_string(P + 1) + "] (N_puzzles + 1, N_puzzles from " + f.puzzle_identifiers + ")",
         "[" + std::to_string(s.puzzle_indices.size()) + "]");
  check_offsets(s.puzzle_indices, E, f.puzzle_indices, "puzzle_indices", "N_examples, the rows of " + f.inputs);
  check_offsets(s.group_indices, P, f.group_indices, "group_indices", "N_puzzles, the length of " + f.puzzle_identifiers);
  for (std::size_t p = 0; p < s.puzzle_identifiers.size(); ++p) {
    const auto id = s.puzzle_identifiers[p];
    if (id < 0 || id >= m.num_puzzle_identifiers)
      fail(f.puzzle_identifiers, "puzzle_identifiers[" + std::to_string(p) + "]",
           "an id in [0, num_puzzle_identifiers = " + std::to_string(m.num_puzzle_identifiers) + ")", std::to_string(id));
  }
  for (std::size_t k = 0; k < s.inputs.size(); ++k)
    if (s.inputs[k] >= m.vocab_size)
      fail(f.inputs, "inputs[" + std::to_string(k / L) + ", " + std::to_string(k % L) + "]",
           "a token < vocab_size (" + std::to_string(m.vocab_size) + ")", std::to_string(int(s.inputs[k])));
  for (std::size_t k = 0; k < s.labels.size(); ++k) {
    const int t = s.labels[k];
    if (t >= m.vocab_size && !(m.ignore_label_id && t == *m.ignore_label_id))
      fail(f.labels, "labels[" + std::to_string(k / L) + ", " + std::to_string(k % L) + "]",
           "a token < vocab_size (" + std::to_string(m.vocab_size) + ")" +
               (m.ignore_label_id ? " or ignore_label_id (" + std::to_string(*m.ignore_label_id) + ")" : std::string()),
           std::to_string(t));
  }
}

inline void validate_sum(const std::string& file, const char* field, std::int64_t declared, std::int64_t counted,
                         const std::string& what) {
  if (declared != counted) fail(file, std::string("field \"") + field + "\"", std::to_string(counted) + " (" + what + ")", std::to_string(declared));
}

inline std::vector<std::string> parse_identifiers(const nlohmann::json& j, const std::string& file, std::int64_t need) {
  if (!j.is_array()) fail(file, "top level", "a list of puzzle names (id -> name)", json_found(j));
  std::vector<std::string> out;
  out.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_string()) fail(file, "[" + std::to_string(i) + "]", "a string", json_found(j[i]));
    out.push_back(j[i].get<std::string>());
  }
  if (std::int64_t(out.size()) < need)
    fail(file, "length", "at least num_puzzle_identifiers (" + std::to_string(need) + ") names", std::to_string(out.size()));
  return out;
}

}  // namespace detail::puzzle

class PuzzleDataset {
 public:
  PuzzleDatasetMetadata metadata;     // merged over directories as the reference does
  std::vector<PuzzleSet> sets;        // in the reference's order: for each metadata set, each directory
  std::vector<std::string> identifiers;  // <dir>/identifiers.json of the first directory (empty if absent)

  std::int64_t num_examples(const PuzzleSet& s) const { return std::int64_t(s.inputs.size()) / metadata.seq_len; }
  std::int64_t total_examples() const {
    std::int64_t n = 0;
    for (const auto& s : sets) n += num_examples(s);
    return n;
  }
  const PuzzleSet& set(std::string_view name) const {
    for (const auto& s : sets)
      if (s.name == name) return s;
    throw ValueError("PuzzleDataset: no set named \"" + std::string(name) + "\"");
  }

  // Reads <dir>/<split>/ (and <dir>/identifiers.json).
  static PuzzleDataset read(const std::filesystem::path& dir, std::string_view split,
                            const PuzzleDatasetReadOptions& opt = {}) {
    return read(std::span<const std::filesystem::path>(&dir, 1), split, opt);
  }

  // Reads and concatenates several directories (the reference's data_paths).
  static PuzzleDataset read(std::span<const std::filesystem::path> dirs, std::string_view split,
                            const PuzzleDatasetReadOptions& opt = {}) {
    namespace dp = detail::puzzle;
    if (dirs.empty()) throw ValueError("PuzzleDataset::read: expected at least one directory, found none");
    check_split(split);
    std::vector<PuzzleDatasetMetadata> metas;
    std::vector<std::string> json_files;
    for (const auto& dir : dirs) {
      const std::filesystem::path jp = dir / std::string(split) / "dataset.json";
      json_files.push_back(jp.string());
      metas.push_back(dp::parse_metadata(dp::read_json(jp), jp.string()));
    }
    // Directories must agree on everything but the counts (the reference asserts the same).
    for (std::size_t i = 1; i < metas.size(); ++i) {
      const auto& a = metas[0];
      const auto& b = metas[i];
      auto same = [&](const char* field, const std::string& x, const std::string& y) {
        if (x != y) dp::fail(json_files[i], std::string("field \"") + field + "\"", x + " (as in " + json_files[0] + ")", y);
      };
      auto opt_str = [](const std::optional<int>& v) { return v ? std::to_string(*v) : std::string("null"); };
      same("seq_len", std::to_string(a.seq_len), std::to_string(b.seq_len));
      same("vocab_size", std::to_string(a.vocab_size), std::to_string(b.vocab_size));
      same("pad_id", std::to_string(a.pad_id), std::to_string(b.pad_id));
      same("ignore_label_id", opt_str(a.ignore_label_id), opt_str(b.ignore_label_id));
      same("blank_identifier_id", std::to_string(a.blank_identifier_id), std::to_string(b.blank_identifier_id));
      same("num_puzzle_identifiers", std::to_string(a.num_puzzle_identifiers), std::to_string(b.num_puzzle_identifiers));
      same("sets", nlohmann::json(a.sets).dump(), nlohmann::json(b.sets).dump());
    }

    PuzzleDataset d;
    d.metadata = metas[0];
    const auto L = static_cast<std::int64_t>(d.metadata.seq_len);
    const std::string Ls = std::to_string(L);
    // Per directory: the headers of every array first (dtypes, shapes, file sizes), then the data.
    std::vector<std::vector<PuzzleSet>> per_dir(dirs.size());
    for (std::size_t i = 0; i < dirs.size(); ++i) {
      const std::filesystem::path split_dir = dirs[i] / std::string(split);
      std::int64_t groups = 0, puzzles = 0;
      for (const std::string& set_name : metas[i].sets) {
        const auto files = dp::SetFiles::in(split_dir, set_name);
        dp::InputFile fin(files.inputs), flab(files.labels), fpid(files.puzzle_identifiers), fpi(files.puzzle_indices),
            fgi(files.group_indices);
        const auto hin = dp::read_npy_header(fin, files.inputs);
        const auto hlab = dp::read_npy_header(flab, files.labels);
        const auto hpid = dp::read_npy_header(fpid, files.puzzle_identifiers);
        const auto hpi = dp::read_npy_header(fpi, files.puzzle_indices);
        const auto hgi = dp::read_npy_header(fgi, files.group_indices);
        dp::expect_dtype(hin, io::DType::U8);
        dp::expect_rank(hin, 2, "[N_examples, " + Ls + "] (seq_len from dataset.json)");
        if (hin.shape[1] != L) dp::fail(files.inputs, "shape", "[N_examples, " + Ls + "] (seq_len from dataset.json)", trm::format_shape(hin.shape));
        dp::expect_dtype(hlab, io::DType::U8);
        if (hlab.shape != hin.shape)
          dp::fail(files.labels, "shape", trm::format_shape(hin.shape) + " (the shape of " + files.inputs + ")", trm::format_shape(hlab.shape));
        dp::expect_dtype(hpid, io::DType::I32);
        dp::expect_rank(hpid, 1, "[N_puzzles]");
        dp::expect_dtype(hpi, io::DType::I32);
        if (hpi.shape.size() != 1 || hpi.shape[0] != hpid.shape[0] + 1)
          dp::fail(files.puzzle_indices, "shape",
                   "[" + std::to_string(hpid.shape[0] + 1) + "] (N_puzzles + 1, N_puzzles from " + files.puzzle_identifiers + ")",
                   trm::format_shape(hpi.shape));
        dp::expect_dtype(hgi, io::DType::I32);
        dp::expect_rank(hgi, 1, "[N_groups + 1]");
        PuzzleSet s;
        s.name = i == 0 ? set_name : set_name + std::to_string(i);
        s.inputs = dp::read_npy_data<std::uint8_t>(fin, hin);
        s.labels = dp::read_npy_data<std::uint8_t>(flab, hlab);
        s.puzzle_identifiers = dp::read_npy_data<std::int32_t>(fpid, hpid);
        s.puzzle_indices = dp::read_npy_data<std::int32_t>(fpi, hpi);
        s.group_indices = dp::read_npy_data<std::int32_t>(fgi, hgi);
        dp::validate_set(s, metas[i], files);
        groups += s.num_groups();
        puzzles += s.num_puzzles();
        per_dir[i].push_back(std::move(s));
      }
      dp::validate_sum(json_files[i], "total_groups", metas[i].total_groups, groups, "the groups of its sets' group_indices");
      (void)puzzles;  // total_puzzles is not checked: the reference Sudoku builder writes the number of groups there

      const std::filesystem::path ids = dirs[i] / "identifiers.json";
      std::error_code ec;
      if (std::filesystem::exists(ids, ec) || opt.require_identifiers) {
        auto names = dp::parse_identifiers(dp::read_json(ids), ids.string(), metas[i].num_puzzle_identifiers);
        if (i == 0) d.identifiers = std::move(names);
      }
    }
    // The reference's order: for each set name, each directory.
    for (std::size_t k = 0; k < d.metadata.sets.size(); ++k)
      for (std::size_t i = 0; i < dirs.size(); ++i) d.sets.push_back(std::move(per_dir[i][k]));
    // Merged counts, as the reference computes them (ids are not offset, yet the counts add up).
    if (dirs.size() > 1) {
      std::int64_t ids = 0, groups = 0, total_puzzles = 0;
      double mean = 0;
      for (std::size_t i = 0; i < metas.size(); ++i) {
        ids += metas[i].num_puzzle_identifiers;
        groups += metas[i].total_groups;
        const std::int64_t tp = metas[i].total_puzzles ? *metas[i].total_puzzles : per_dir_puzzles(d, i, dirs.size());
        total_puzzles += tp;
        mean += metas[i].mean_puzzle_examples * double(tp);
      }
      d.metadata.num_puzzle_identifiers = ids;
      d.metadata.total_groups = groups;
      d.metadata.total_puzzles = total_puzzles;
      d.metadata.mean_puzzle_examples = total_puzzles > 0 ? mean / double(total_puzzles) : 0.0;
    }
    return d;
  }

  // Checks the in-memory dataset as read() checks files (file names as under <dir>/<split>/).
  void validate(const std::filesystem::path& dir = "<dataset>", std::string_view split = "<split>") const {
    namespace dp = detail::puzzle;
    const std::filesystem::path split_dir = dir / std::string(split);
    const std::string json = (split_dir / "dataset.json").string();
    // Round-trip the metadata through its JSON to apply the same field checks.
    const PuzzleDatasetMetadata m = dp::parse_metadata(nlohmann::json::parse(metadata.to_json().dump()), json);
    if (sets.size() != m.sets.size())
      dp::fail(json, "field \"sets\"", std::to_string(sets.size()) + " names (one per PuzzleSet)", std::to_string(m.sets.size()));
    std::int64_t groups = 0;
    for (std::size_t k = 0; k < sets.size(); ++k) {
      if (sets[k].name != m.sets[k])
        dp::fail(json, "field \"sets\"[" + std::to_string(k) + "]", "\"" + sets[k].name + "\" (the PuzzleSet's name)", "\"" + m.sets[k] + "\"");
      dp::validate_set(sets[k], m, dp::SetFiles::in(split_dir, sets[k].name));
      groups += sets[k].num_groups();
    }
    dp::validate_sum(json, "total_groups", m.total_groups, groups, "the groups of its sets' group_indices");
    if (!identifiers.empty() && std::int64_t(identifiers.size()) < m.num_puzzle_identifiers)
      dp::fail((dir / "identifiers.json").string(), "length",
               "at least num_puzzle_identifiers (" + std::to_string(m.num_puzzle_identifiers) + ") names",
               std::to_string(identifiers.size()));
  }

  // Writes <dir>/<split>/ and <dir>/identifiers.json (["<blank>"] when `identifiers` is empty and
  // there is only the blank id). A dataset without names but with more ids (one read from a
  // directory without identifiers.json) is written without the file: ["<blank>"] alone would be
  // shorter than num_puzzle_identifiers, which read() refuses (found by tests/fuzz/fuzz_dataset:
  // write, then read, failed). The sets' names must be metadata.sets (one directory's layout).
  // Validated first; each file is atomic, dataset.json is written after the arrays and
  // identifiers.json last.
  void write(const std::filesystem::path& dir, std::string_view split) const {
    namespace dp = detail::puzzle;
    check_split(split);
    validate(dir, split);
    const std::filesystem::path split_dir = dir / std::string(split);
    std::filesystem::create_directories(split_dir);
    const auto L = static_cast<std::int64_t>(metadata.seq_len);
    for (const PuzzleSet& s : sets) {
      const auto f = dp::SetFiles::in(split_dir, s.name);
      const std::int64_t E = std::int64_t(s.inputs.size()) / L;
      dp::write_npy<std::uint8_t>(f.inputs, {E, L}, s.inputs);
      dp::write_npy<std::uint8_t>(f.labels, {E, L}, s.labels);
      dp::write_npy<std::int32_t>(f.puzzle_identifiers, {s.num_puzzles()}, s.puzzle_identifiers);
      dp::write_npy<std::int32_t>(f.puzzle_indices, {std::int64_t(s.puzzle_indices.size())}, s.puzzle_indices);
      dp::write_npy<std::int32_t>(f.group_indices, {std::int64_t(s.group_indices.size())}, s.group_indices);
    }
    dp::write_json(split_dir / "dataset.json", metadata.to_json());
    if (!identifiers.empty())
      dp::write_json(dir / "identifiers.json", nlohmann::ordered_json(identifiers));
    else if (metadata.num_puzzle_identifiers == 1)
      dp::write_json(dir / "identifiers.json", nlohmann::ordered_json::array({"<blank>"}));
  }

  // The reference's collate: rows `examples` of `s` with the ids of `puzzles` (one per row),
  // tokens widened to int32, labels equal to ignore_label_id -> trm::ignore_label, then padded to
  // `pad_to` rows (inputs pad_id, labels ignore_label, ids blank_identifier_id) when larger.
  Batch collate(const PuzzleSet& s, std::span<const std::int64_t> examples, std::span<const std::int32_t> puzzles,
                index_t pad_to = 0) const {
    if (examples.size() != puzzles.size())
      throw ShapeError("PuzzleDataset::collate: expected one puzzle per example (" + std::to_string(examples.size()) +
                       "), found " + std::to_string(puzzles.size()));
    const index_t n = index_t(examples.size());
    const index_t B = std::max(n, pad_to);
    const index_t L = metadata.seq_len;
    Batch b;
    b.inputs.resize(B, L);
    b.labels.resize(B, L);
    b.puzzle_identifiers.resize(B);
    const std::int64_t E = num_examples(s);
    for (index_t r = 0; r < n; ++r) {
      const std::int64_t e = examples[std::size_t(r)];
      const std::int32_t p = puzzles[std::size_t(r)];
      if (e < 0 || e >= E || p < 0 || p >= s.num_puzzles())
        throw ValueError("PuzzleDataset::collate: row " + std::to_string(r) + ": expected an example < " + std::to_string(E) +
                         " and a puzzle < " + std::to_string(s.num_puzzles()) + ", found " + std::to_string(e) + " and " +
                         std::to_string(p));
      const std::uint8_t* in = s.inputs.data() + e * L;
      const std::uint8_t* lab = s.labels.data() + e * L;
      std::int32_t* oi = b.inputs.data() + r * L;
      std::int32_t* ol = b.labels.data() + r * L;
      for (index_t k = 0; k < L; ++k) {
        oi[k] = in[k];
        ol[k] = (metadata.ignore_label_id && int(lab[k]) == *metadata.ignore_label_id) ? ignore_label : std::int32_t(lab[k]);
      }
      b.puzzle_identifiers.data()[r] = s.puzzle_identifiers[std::size_t(p)];
    }
    std::fill(b.inputs.data() + n * L, b.inputs.data() + B * L, std::int32_t(metadata.pad_id));
    std::fill(b.labels.data() + n * L, b.labels.data() + B * L, ignore_label);
    std::fill(b.puzzle_identifiers.data() + n, b.puzzle_identifiers.data() + B, std::int32_t(metadata.blank_identifier_id));
    return b;
  }

 private:
  static void check_split(std::string_view split) {
    if (split.empty() || split.find('/') != std::string_view::npos || split == "." || split == "..")
      throw ValueError("PuzzleDataset: split must be a plain directory name (\"train\", \"test\"), found \"" +
                       std::string(split) + "\"");
  }
  // Puzzles of directory i (sets are stored set-major: set k of directory i is at k * ndirs + i).
  static std::int64_t per_dir_puzzles(const PuzzleDataset& d, std::size_t i, std::size_t ndirs) {
    std::int64_t n = 0;
    for (std::size_t k = i; k < d.sets.size(); k += ndirs) n += d.sets[k].num_puzzles();
    return n;
  }
};

// ---------------------------------------------------------------------------------------------
// Sampling

struct TrainSamplerOptions {
  index_t global_batch_size = 768;
  int epochs_per_iter = 1;  // group permutations concatenated per pass
  std::uint64_t seed = 0;
};

struct SampledBatch {
  Batch batch;
  std::size_t set = 0;                 // index into PuzzleDataset::sets
  std::int64_t iteration = 0;          // the pass it belongs to (1, 2, ...; the reference's _iters)
  index_t effective_size = 0;          // rows that are real examples (the rest is padding)
  std::vector<std::int64_t> examples;  // example index (within the set) of each real row
  std::vector<std::int32_t> puzzles;   // puzzle index (within the set) of each real row
};

// The reference's training order (SPEC §6.5), deterministic: pass k (k = 1, 2, ...) goes over one
// set (the sets in turn, cyclically) with an Rng seeded seed + k: epochs_per_iter permutations
// of its groups, concatenated; for each group in that order one puzzle uniformly, then that
// puzzle's examples in random order without replacement, truncated to what the batch still
// holds (the rest of that puzzle is dropped, nothing carries over). A batch closes at exactly
// global_batch_size rows; the short batch at the end of a pass is dropped and the next pass
// begins. The reference draws the example order from numpy's global (unseeded) RNG; here it
// comes from the same seeded Rng.
class TrainSampler {
 public:
  TrainSampler(const PuzzleDataset& d, TrainSamplerOptions opt) : d_(&d), opt_(opt) {
    if (opt.global_batch_size < 1)
      throw ValueError("TrainSampler: global_batch_size: expected >= 1, found " + std::to_string(opt.global_batch_size));
    if (opt.epochs_per_iter < 1)
      throw ValueError("TrainSampler: epochs_per_iter: expected >= 1, found " + std::to_string(opt.epochs_per_iter));
    if (d.sets.empty()) throw ValueError("TrainSampler: expected a dataset with at least one set, found none");
    for (const PuzzleSet& s : d.sets)
      for (std::int64_t g = 0; g < s.num_groups(); ++g)
        if (s.group_indices[std::size_t(g + 1)] == s.group_indices[std::size_t(g)])
          throw ValueError("TrainSampler: set \"" + s.name + "\", group " + std::to_string(g) +
                           ": expected at least one puzzle, found none (the reference cannot sample it either)");
    set_ = d.sets.size() - 1;  // the first pass moves to set 0
  }

  // The next full batch of global_batch_size rows.
  SampledBatch next() {
    std::size_t empty_passes = 0;
    for (;;) {
      if (pos_ >= order_.size() || ended_) {
        begin_pass();
        if (++empty_passes > d_->sets.size() + 1)
          throw ValueError("TrainSampler: no pass over any set fills one batch of " +
                           std::to_string(opt_.global_batch_size) + " examples");
      }
      if (auto b = sample()) return std::move(*b);
      ended_ = true;  // short batch: dropped, the pass ends
    }
  }

  std::int64_t iteration() const { return iteration_; }
  const TrainSamplerOptions& options() const { return opt_; }
  // The largest count restore() accepts (iteration, set, pos, batch). Passes are counted in an
  // int64 the next pass increments: a saved count near its maximum would overflow it; 2^53 is
  // beyond any run (as the trainer's step bound).
  static constexpr std::int64_t max_iteration = std::int64_t(1) << 53;

  // The sampler's position as JSON text (the pass, the set, the place in it and the Rng), so that
  // a resumed run continues the same sequence of batches: restore(state()) on a sampler of the
  // same dataset and options gives the batches this one would have given next.
  std::string state() const {
    nlohmann::json j;
    j["iteration"] = iteration_;
    j["set"] = set_;
    j["pos"] = pos_;
    j["ended"] = ended_;
    j["batch"] = opt_.global_batch_size;
    j["seed"] = std::to_string(opt_.seed);
    auto& r = j["rng"] = nlohmann::json::array();
    for (auto v : rng_.state()) r.push_back(std::to_string(v));
    return j.dump();
  }
  void restore(const std::string& text) {
    auto fail = [&](const std::string& why) {
      throw ValueError("TrainSampler::restore: " + why);
    };
    const nlohmann::json j = io::parse_untrusted_json<ValueError>(text, "TrainSampler::restore: the saved state");
    try {
      // Counts must be JSON integers: nlohmann's get<integer>() of a number like 1e30 is a
      // float-to-integer conversion out of range (undefined behaviour), of -1 a wrap to 2^64 - 1.
      auto count = [&](const char* key) -> std::int64_t {
        const auto& v = j.at(key);
        if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(max_iteration)) ||
            v.get<std::int64_t>() < 0)
          fail(std::string(key) + ": expected an integer in 0.." + std::to_string(max_iteration) + ", found " + io::json_brief(v));
        return v.get<std::int64_t>();
      };
      const std::int64_t iteration = count("iteration");
      const auto set = std::size_t(count("set"));
      const auto pos = std::size_t(count("pos"));
      const bool ended = j.at("ended").get<bool>();
      auto show = [](const nlohmann::json& v) { return v.is_primitive() ? v.dump() : io::json_brief(v); };
      if (count("batch") != opt_.global_batch_size || j.at("seed").get<std::string>() != std::to_string(opt_.seed))
        fail("the state is of a sampler with batch " + show(j.at("batch")) + " and seed " + show(j.at("seed")) +
             ", this one has batch " + std::to_string(opt_.global_batch_size) + " and seed " + std::to_string(opt_.seed));
      std::array<std::uint64_t, 4> rs{};
      const auto& r = j.at("rng");
      if (!r.is_array() || r.size() != 4) fail("rng: expected 4 numbers");
      for (std::size_t i = 0; i < 4; ++i) rs[i] = std::stoull(r.at(i).get<std::string>());
      if (rs == std::array<std::uint64_t, 4>{}) fail("rng: expected a live xoshiro256** state, found all zeros");
      if (set >= d_->sets.size())
        fail("set " + std::to_string(set) + " out of range for a dataset of " + std::to_string(d_->sets.size()) + " set(s)");
      if (iteration == 0) {
        iteration_ = 0, set_ = d_->sets.size() - 1, order_.clear(), pos_ = 0, ended_ = true;
        return;
      }
      // Rebuild the pass's group order (it depends only on the seed and the pass), then put back
      // the Rng as it was at the saved place.
      iteration_ = iteration - 1;
      set_ = (set + d_->sets.size() - 1) % d_->sets.size();
      begin_pass();
      if (pos > order_.size()) fail("pos " + std::to_string(pos) + " beyond the pass's " + std::to_string(order_.size()) + " groups");
      pos_ = pos;
      ended_ = ended;
      rng_.set_state(rs);
    } catch (const ValueError&) {
      throw;
    } catch (const std::exception& e) {
      fail(std::string("malformed state (") + e.what() + ")");
    }
  }

 private:
  void begin_pass() {
    ++iteration_;
    set_ = (set_ + 1) % d_->sets.size();
    rng_ = Rng(opt_.seed + std::uint64_t(iteration_));
    const PuzzleSet& s = d_->sets[set_];
    const auto G = static_cast<std::size_t>(s.num_groups());
    order_.clear();
    order_.reserve(G * std::size_t(opt_.epochs_per_iter));
    for (int e = 0; e < opt_.epochs_per_iter; ++e) {
      const std::size_t start = order_.size();
      for (std::size_t g = 0; g < G; ++g) order_.push_back(std::int32_t(g));
      rng_.shuffle(order_.begin() + std::ptrdiff_t(start), order_.end());
    }
    pos_ = 0;
    ended_ = false;
  }

  std::optional<SampledBatch> sample() {
    const PuzzleSet& s = d_->sets[set_];
    const auto B = static_cast<std::size_t>(opt_.global_batch_size);
    SampledBatch out;
    out.examples.reserve(B);
    out.puzzles.reserve(B);
    while (pos_ < order_.size() && out.examples.size() < B) {
      const std::int32_t g = order_[pos_++];
      const std::int32_t p0 = s.group_indices[std::size_t(g)], p1 = s.group_indices[std::size_t(g) + 1];
      const auto p = std::int32_t(p0 + std::int64_t(rng_.below(std::uint64_t(p1 - p0))));
      const std::int64_t e0 = s.puzzle_indices[std::size_t(p)];
      const auto size = static_cast<std::size_t>(s.puzzle_indices[std::size_t(p) + 1] - e0);
      const std::size_t take = std::min(size, B - out.examples.size());
      // take of size without replacement, in random order (partial Fisher-Yates).
      scratch_.resize(size);
      std::iota(scratch_.begin(), scratch_.end(), std::int64_t{0});
      for (std::size_t i = 0; i < take; ++i) {
        std::swap(scratch_[i], scratch_[i + std::size_t(rng_.below(size - i))]);
        out.examples.push_back(e0 + scratch_[i]);
        out.puzzles.push_back(p);
      }
    }
    if (out.examples.size() < B) return std::nullopt;
    out.batch = d_->collate(s, out.examples, out.puzzles);
    out.set = set_;
    out.iteration = iteration_;
    out.effective_size = index_t(B);
    return out;
  }

  const PuzzleDataset* d_;
  TrainSamplerOptions opt_;
  std::size_t set_ = 0;
  std::int64_t iteration_ = 0;
  Rng rng_{0};
  std::vector<std::int32_t> order_;
  std::size_t pos_ = 0;
  bool ended_ = true;
  std::vector<std::int64_t> scratch_;
};

struct EvalSamplerOptions {
  index_t global_batch_size = 768;
  bool pad_last = true;  // the reference pads the last batch to full size (pad_id, ignore_label, blank id)
};

// The reference's evaluation order: the sets in turn, every example once, in order, in batches of
// global_batch_size consecutive examples; each row gets the id of the puzzle that holds it; the
// last batch of a set is short, padded to full size by default. effective_size counts real rows.
class EvalSampler {
 public:
  EvalSampler(const PuzzleDataset& d, EvalSamplerOptions opt) : d_(&d), opt_(opt) {
    if (opt.global_batch_size < 1)
      throw ValueError("EvalSampler: global_batch_size: expected >= 1, found " + std::to_string(opt.global_batch_size));
  }

  // The next batch, or nullopt after the last example of the last set.
  std::optional<SampledBatch> next() {
    while (set_ < d_->sets.size() && start_ >= d_->num_examples(d_->sets[set_])) {
      ++set_;
      start_ = 0;
    }
    if (set_ >= d_->sets.size()) return std::nullopt;
    const PuzzleSet& s = d_->sets[set_];
    const std::int64_t end = std::min(d_->num_examples(s), start_ + std::int64_t(opt_.global_batch_size));
    SampledBatch out;
    std::int32_t p = s.puzzle_of(start_);
    for (std::int64_t e = start_; e < end; ++e) {
      while (e >= s.puzzle_indices[std::size_t(p) + 1]) ++p;
      out.examples.push_back(e);
      out.puzzles.push_back(p);
    }
    out.batch = d_->collate(s, out.examples, out.puzzles, opt_.pad_last ? opt_.global_batch_size : 0);
    out.set = set_;
    out.effective_size = index_t(end - start_);
    start_ = end;
    return out;
  }

  void reset() { set_ = 0, start_ = 0; }

 private:
  const PuzzleDataset* d_;
  EvalSamplerOptions opt_;
  std::size_t set_ = 0;
  std::int64_t start_ = 0;
};

}  // namespace trm::data
