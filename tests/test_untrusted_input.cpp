// Untrusted input. Readers refuse what is not a regular file before opening it (a FIFO would
// block open() forever, /dev/zero never end). JSON from files is parsed through trm::io::parse_untrusted_json (io/json.hpp): nesting is
// bounded before nlohmann parses it (its dump(), used in error messages, recursed 100k levels
// deep and overflowed the stack), and every nlohmann exception becomes the reader's error with
// the file named. Regression inputs: tests/data/fuzz (fuzz findings 1 and 7).
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <trm/data/puzzle_dataset.hpp>
#include <trm/data/sources.hpp>
#include <trm/data/sudoku/task.hpp>
#include <trm/io/json.hpp>
#include <trm/io/lines.hpp>
#include <trm/io/npy.hpp>
#include <trm/data/maze/csv.hpp>
#include <trm/data/sudoku/csv.hpp>

#include <sys/stat.h>
#include <trm/io/safetensors.hpp>
#include <trm/train/fit.hpp>

#include "../apps/trm/entry.hpp"
#include "support/check_throws.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;

namespace {
const fs::path fuzz_dir = fs::path(TRM_TEST_DATA_DIR) / "fuzz";

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

// An npy 1.0 image with this header dict (written as given, padded) and data.
std::string npy_v1(const std::string& dict, const std::string& data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  return bytes + header + data;
}

// A safetensors file with this JSON header and no data.
void write_safetensors_header(const fs::path& p, const std::string& header) {
  std::string bytes(8, '\0');
  const std::uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  write_text(p, bytes + header);
}
}  // namespace

TEST_CASE("json_nesting_depth counts arrays and objects, not brackets inside strings") {
  CHECK(trm::io::json_nesting_depth("{}") == 1);
  CHECK(trm::io::json_nesting_depth(R"({"a": [1, {"b": [[]]}]})") == 5);
  CHECK(trm::io::json_nesting_depth(R"({"a": "[[[[[[", "b": "\"[["})") == 1);
  CHECK(trm::io::json_nesting_depth(std::string(100000, '['), 64) == 65);  // stops counting
}

TEST_CASE("parse_untrusted_json: deep nesting and out-of-range numbers are errors naming the source") {
  CHECK(trm::io::parse_untrusted_json<trm::ValueError>(R"({"a": [1, 2]})", "x")["a"][1] == 2);
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK_THROWS_CONTAINING(trm::io::parse_untrusted_json<trm::ValueError>(deep, "my.json"), trm::ValueError, "my.json",
                          "nested at most 64 levels deep");
  CHECK_THROWS_CONTAINING(trm::io::parse_untrusted_json<trm::ValueError>("[1e400]", "my.json"), trm::ValueError,
                          "my.json: expected valid JSON");
  CHECK_THROWS_CONTAINING(trm::io::parse_untrusted_json<trm::ValueError>("{", "my.json"), trm::ValueError,
                          "my.json: expected valid JSON");
  // 64 levels are fine.
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  CHECK_NOTHROW(trm::io::parse_untrusted_json<trm::ValueError>(ok, "ok.json"));
}

TEST_CASE("safetensors: a shape nested 10k (reproducer) or 100k deep is a FormatError, not a stack overflow") {
  CHECK_THROWS_CONTAINING(trm::io::SafetensorsFile::load(fuzz_dir / "deep_shape_10k_asan_stack_overflow.safetensors"),
                          trm::io::FormatError, "nested at most 64 levels deep");
  trm::test::TempDir dir("trm_untrusted_json");
  write_safetensors_header(dir / "deep100k.safetensors", R"({"a":{"dtype":"F32","shape":)" + std::string(100000, '[') +
                                                             std::string(100000, ']') + R"(,"data_offsets":[0,0]}})");
  CHECK_THROWS_CONTAINING(trm::io::SafetensorsFile::load(dir / "deep100k.safetensors"), trm::io::FormatError,
                          "nested at most 64 levels deep");
  // Shallow but wrong: the message shows a bounded excerpt of the value.
  write_safetensors_header(dir / "wide.safetensors",
                           R"({"a":{"dtype":"F32","shape":[)" + std::string(20000, '1').insert(1, ",") + R"(,-1],"data_offsets":[0,0]}})");
  try {
    trm::io::SafetensorsFile::load(dir / "wide.safetensors");
    FAIL("expected a FormatError");
  } catch (const trm::io::FormatError& e) {
    CHECK(std::string(e.what()).size() < 400);
  }
}

TEST_CASE("dataset.json: 1e400 (reproducer) and 100k-deep sets are PuzzleDatasetErrors naming the file") {
  CHECK_THROWS_CONTAINING(trm::data::PuzzleDataset::read(fuzz_dir / "json_number_overflow", "train"),
                          trm::data::PuzzleDatasetError, "dataset.json", "expected valid JSON");
  trm::test::TempDir dir("trm_untrusted_dataset");
  fs::copy(fuzz_dir / "json_number_overflow", dir.path(), fs::copy_options::recursive);
  for (auto& e : fs::recursive_directory_iterator(dir.path())) fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  write_text(dir / "train" / "dataset.json",
             R"({"pad_id":0,"ignore_label_id":0,"blank_identifier_id":0,"vocab_size":6,"seq_len":16,)"
             R"("num_puzzle_identifiers":1,"total_groups":3,"mean_puzzle_examples":1,"total_puzzles":3,"sets":)" +
                 std::string(100000, '[') + std::string(100000, ']') + "}");
  CHECK_THROWS_CONTAINING(trm::data::PuzzleDataset::read(dir.path(), "train"), trm::data::PuzzleDatasetError,
                          "dataset.json", "nested at most 64 levels deep");
}

TEST_CASE("saved positions and fit state: deep or malformed JSON is a clean error") {
  trm::test::TempDir dir("trm_untrusted_state");
  trm::io::SafetensorsFile f;
  f.metadata[trm::fit_state_key] = std::string(100000, '[') + std::string(100000, ']');
  f.save(dir / "state.safetensors");
  CHECK_THROWS_CONTAINING(trm::read_fit_state(dir / "state.safetensors"), trm::ValueError, "trm.fit.state",
                          "nested at most 64 levels deep");
  f.metadata[trm::fit_state_key] = "[1, 2]";
  f.save(dir / "state.safetensors");
  CHECK_THROWS_CONTAINING(trm::read_fit_state(dir / "state.safetensors"), trm::ValueError, "expected a JSON object",
                          "found array [1,2]");
}

TEST_CASE("numel of crafted shapes: a zero dimension first, overflow refused (finding 6)") {
  trm::io::NpyArray a;
  a.shape = {std::int64_t(1) << 62, 4, 0};
  CHECK(a.numel() == 0);
  a.shape = {std::int64_t(1) << 62, 4, 1};
  CHECK_THROWS_CONTAINING(a.numel(), trm::io::FormatError, "product fits int64");
  trm::io::TensorRecord r;
  r.shape = {0, std::int64_t(1) << 62, 4};
  CHECK(r.numel() == 0);
  r.shape = {3, 5};
  CHECK(r.numel() == 15);
  // The reproducers: parsed cleanly (a zero-element array) or refused, never undefined behaviour.
  for (const char* name : {"numel_signed_overflow.npy", "numel_overflow.min.npy"}) {
    CAPTURE(name);
    try {
      const auto x = trm::io::load_npy(fuzz_dir / name);
      CHECK(x.numel() == 0);
    } catch (const trm::io::FormatError& e) {
      CHECK(std::string(e.what()).size() < 400);
    }
  }
}

TEST_CASE("readers refuse a FIFO, a device and a directory before opening them (they would block or never end)") {
  trm::test::TempDir dir("trm_not_a_file");
  const fs::path fifo = dir / "pipe";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_CONTAINING(trm::io::SafetensorsFile::load(fifo), trm::io::NotAFileError, "pipe: expected a regular file, found a FIFO");
  CHECK_THROWS_CONTAINING(trm::io::load_npy(fifo), trm::io::NotAFileError, "found a FIFO");
  CHECK_THROWS_CONTAINING(trm::io::load_npy("/dev/zero"), trm::io::NotAFileError, "/dev/zero: expected a regular file, found a character device");
  using Shape = trm::data::sudoku::SudokuShape<2, 2>;
  CHECK_THROWS_CONTAINING(trm::data::sudoku::read_csv<Shape>(fifo), trm::data::sudoku::SudokuFormatError, "found a FIFO");
  CHECK_THROWS_CONTAINING(trm::data::sudoku::read_csv<Shape>(dir.path()), trm::data::sudoku::SudokuFormatError, "found a directory");
  CHECK_THROWS_CONTAINING(trm::data::maze::read_csv(fifo), trm::data::maze::MazeFormatError, "found a FIFO");
  CHECK_THROWS_CONTAINING(trm::data::maze::read_text("/dev/zero"), trm::data::maze::MazeFormatError, "character device");
  // A dataset whose dataset.json is a FIFO.
  fs::create_directories(dir / "ds" / "train");
  REQUIRE(::mkfifo((dir / "ds" / "train" / "dataset.json").c_str(), 0600) == 0);
  CHECK_THROWS_CONTAINING(trm::data::PuzzleDataset::read(dir / "ds", "train"), trm::data::PuzzleDatasetError,
                          "dataset.json", "expected a regular file");
  // A missing file keeps its usual error.
  CHECK_THROWS_AS(trm::io::SafetensorsFile::load(dir / "missing.safetensors"), std::system_error);
}

// ---- text readers: one bounded line reader (io/lines.hpp) -------------------------------------------
TEST_CASE("LineReader: \\r\\n, a UTF-8 byte-order mark, overlong lines and a file that grows are handled") {
  using Reader = trm::io::LineReader<trm::ValueError>;
  std::istringstream in("\xEF\xBB\xBF" "first\r\nsecond\n\nlast");
  Reader r(in, "mem");
  std::string line;
  REQUIRE(r.next(line));
  CHECK(line == "first");
  CHECK(r.had_byte_order_mark());
  REQUIRE(r.next(line));
  CHECK(line == "second");
  REQUIRE(r.next(line));
  CHECK(line.empty());
  REQUIRE(r.next(line));
  CHECK(line == "last");
  CHECK(r.line_no() == 4);
  CHECK_FALSE(r.next(line));
  // A byte-order mark is only one at the very start.
  std::istringstream later("a\n\xEF\xBB\xBF" "b\n");
  Reader r2(later, "mem");
  REQUIRE(r2.next(line));
  REQUIRE(r2.next(line));
  CHECK(line == "\xEF\xBB\xBF" "b");
  // 10 MB of commas (the fuzz finding: 476 MB before the field-count error) stops at the bound.
  std::istringstream commas(std::string(10 << 20, ','));
  Reader r3(commas, "commas.csv", 1 << 16);
  CHECK_THROWS_CONTAINING(r3.next(line), trm::ValueError, "commas.csv:1: expected a line of at most 65536 bytes");
  CHECK(line.capacity() < (1 << 18));
  // More bytes than the file had when it was opened: it grew while read.
  std::istringstream grown(std::string(40, 'x') + "\n" + std::string(40, 'y') + "\n");
  Reader r4(grown, "grows.csv", 1 << 16, 50);
  REQUIRE(r4.next(line));
  CHECK_THROWS_CONTAINING(r4.next(line), trm::ValueError, "grows.csv:2: the file grew while it was read",
                          "50 bytes when opened");
}

TEST_CASE("Sudoku and maze readers: a BOM is skipped, empty lists and overlong lines are errors") {
  namespace sd = trm::data::sudoku;
  namespace mz = trm::data::maze;
  using Shape = sd::SudokuShape<2, 2>;
  trm::test::TempDir dir("trm_text_readers");
  write_text(dir / "bom.csv", "\xEF\xBB\xBF.234341221434321\n");
  const auto ex = sd::read_csv<Shape>(dir / "bom.csv");
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].solution[0] == 1);
  write_text(dir / "bom_header.csv", "\xEF\xBB\xBFquestion,answer\n.234341221434321,1234341221434321\n");
  CHECK(sd::read_csv<Shape>(dir / "bom_header.csv").size() == 1);
  write_text(dir / "empty.csv", "");
  CHECK_THROWS_CONTAINING(sd::read_csv<Shape>(dir / "empty.csv"), sd::SudokuFormatError,
                          "empty.csv: expected at least one puzzle, found none (an empty file)");
  write_text(dir / "comments.csv", "# only a comment\n\n");
  CHECK_THROWS_CONTAINING(sd::read_csv<Shape>(dir / "comments.csv"), sd::SudokuFormatError, "found none (only comments");
  write_text(dir / "commas.csv", std::string(1 << 20, ',') + "\n");
  CHECK_THROWS_CONTAINING(sd::read_csv<Shape>(dir / "commas.csv"), sd::SudokuFormatError,
                          "commas.csv:1: expected a line of at most 65536 bytes");

  write_text(dir / "header_only.csv", "\xEF\xBB\xBFsource,question,answer,rating\n");
  CHECK_THROWS_CONTAINING(mz::read_csv(dir / "header_only.csv"), mz::MazeFormatError,
                          "header_only.csv: expected at least one maze after the header");
  write_text(dir / "m.txt", "\xEF\xBB\xBF#####\n#S G#\n#   #\n#   #\n#####\n");
  CHECK(mz::read_text(dir / "m.txt").size() == 1);
  write_text(dir / "none.txt", "; a comment\n\n");
  CHECK_THROWS_CONTAINING(mz::read_text(dir / "none.txt"), mz::MazeFormatError, "expected at least one maze, found none");
}

TEST_CASE("duplicate keys in untrusted JSON are refused (nlohmann keeps the last one silently)") {
  CHECK_THROWS_CONTAINING(trm::io::parse_untrusted_json<trm::ValueError>(R"({"seq_len": 81, "seq_len": 900})", "dataset.json"),
                          trm::ValueError, "dataset.json: expected unique keys, found a duplicate key 'seq_len'");
  CHECK_THROWS_CONTAINING(trm::io::parse_untrusted_json<trm::ValueError>(R"({"a": {"b": 1, "b": 2}})", "x"), trm::ValueError,
                          "found a duplicate key 'b' in entry 'a'");
  CHECK(trm::io::parse_untrusted_json<trm::ValueError>(R"({"a": {"b": 1}, "c": {"b": 2}})", "x")["c"]["b"] == 2);
  // Through the dataset reader.
  trm::test::TempDir dir("trm_untrusted_dup");
  fs::copy(fuzz_dir / "json_number_overflow", dir.path(), fs::copy_options::recursive);
  for (auto& e : fs::recursive_directory_iterator(dir.path())) fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  write_text(dir / "train" / "dataset.json",
             R"({"pad_id":0,"ignore_label_id":0,"blank_identifier_id":0,"vocab_size":6,"seq_len":16,"seq_len":900,)"
             R"("num_puzzle_identifiers":1,"total_groups":3,"mean_puzzle_examples":1,"total_puzzles":3,"sets":["all"]})");
  CHECK_THROWS_CONTAINING(trm::data::PuzzleDataset::read(dir.path(), "train"), trm::data::PuzzleDatasetError,
                          "dataset.json", "duplicate key 'seq_len'");
}

TEST_CASE("names from files are quoted printably: a NUL in an npy descr no longer cuts the message short") {
  const std::string dict = std::string("{'descr': '<f4") + '\0' + "x', 'fortran_order': False, 'shape': (1,), }";
  const std::string bytes = npy_v1(dict, std::string(4, '\0'));
  try {
    (void)trm::io::parse_npy(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())), "nul.npy");
    FAIL("expected a FormatError");
  } catch (const trm::io::FormatError& e) {
    const std::string shown = e.what();  // what a %s print shows: up to the first NUL
    CAPTURE(shown);
    CHECK(shown.find("nul.npy") == 0);
    CHECK(shown.find("\\x00") != std::string::npos);
  }
  CHECK(trm::io::detail::single_quoted(std::string("a\0b\x1b[31m", 8)) == "'a\\x00b\\x1b[31m'");
}

TEST_CASE("read_file never reads past a file's size at opening (a file that grows while read)") {
  // Files of /proc are regular files of size 0 whose content appears when read: the same as a
  // file that grows after it was opened, deterministically.
  CHECK_THROWS_CONTAINING(trm::io::read_file("/proc/self/status"), trm::io::FileChangedError,
                          "/proc/self/status: the file grew while it was read (it had 0 bytes when opened)");
  trm::test::TempDir dir("trm_read_file");
  write_text(dir / "ok.bin", "12345");
  CHECK(trm::io::read_file(dir / "ok.bin").size() == 5);
}

TEST_CASE("shapes of more than 64 dimensions are refused while parsing (33M zero dimensions took 1.4 GB)") {
  trm::test::TempDir dir("trm_rank");
  std::string dims = "0";
  for (int i = 0; i < 100000; ++i) dims += ",0";
  write_safetensors_header(dir / "rank.safetensors", R"({"w": {"dtype": "F32", "shape": [)" + dims + R"(], "data_offsets": [0, 0]}})");
  CHECK_THROWS_CONTAINING(trm::io::SafetensorsFile::load(dir / "rank.safetensors"), trm::io::FormatError,
                          "rank.safetensors: header: expected arrays of at most 64 elements, found a longer one in entry 'shape'");
  // 64 dimensions are fine.
  std::string d64 = "1";
  for (int i = 1; i < 64; ++i) d64 += ",1";
  const std::string h64 = R"({"w": {"dtype": "U8", "shape": [)" + d64 + R"(], "data_offsets": [0, 1]}})";
  std::string file64(8, '\0');
  const std::uint64_t n64 = h64.size();
  std::memcpy(file64.data(), &n64, 8);
  write_text(dir / "r64.safetensors", file64 + h64 + "\x01");
  CHECK(trm::io::SafetensorsFile::load(dir / "r64.safetensors").at("w").shape.size() == 64);
  std::string d65 = "1";
  for (int i = 1; i < 65; ++i) d65 += ", 1";
  const std::string npy = npy_v1("{'descr': '|u1', 'fortran_order': False, 'shape': (" + d65 + "), }", "\x01");
  CHECK_THROWS_CONTAINING(trm::io::parse_npy(std::as_bytes(std::span<const char>(npy.data(), npy.size())), "rank.npy"),
                          trm::io::FormatError, "more than 64 dimensions");
}

namespace {
// One set of three groups, each one puzzle of one example (seq_len 2).
trm::data::PuzzleDataset three_group_dataset() {
  trm::data::PuzzleDataset d;
  d.metadata.vocab_size = 3;
  d.metadata.seq_len = 2;
  d.metadata.total_groups = 3;
  trm::data::PuzzleSet s;
  s.name = "all";
  s.inputs = {1, 2, 1, 2, 1, 2};
  s.labels = s.inputs;
  s.puzzle_identifiers = {0, 0, 0};
  s.puzzle_indices = {0, 1, 2, 3};
  s.group_indices = {0, 1, 2, 3};
  d.sets.push_back(s);
  d.validate();
  return d;
}
}  // namespace

// Found by tests/fuzz/fuzz_dataset: an all-zero RNG in a saved position made below(3) loop forever
// (xoshiro's fixed point), iteration 2^63 - 1 overflowed at the next pass, and counts given as
// floats (1e30) were converted to integers out of range (undefined behaviour) or -1 wrapped.
TEST_CASE("TrainSampler::restore: a dead RNG, counts near int64's maximum and non-integer counts are ValueErrors") {
  const auto d = three_group_dataset();
  trm::data::TrainSampler a(d, {.global_batch_size = 1, .seed = 5});
  (void)a.next();
  const auto saved = nlohmann::json::parse(a.state());
  auto with = [&](const char* key, const nlohmann::json& v) {
    auto j = saved;
    j[key] = v;
    return j.dump();
  };
  trm::data::TrainSampler b(d, {.global_batch_size = 1, .seed = 5});
  CHECK_THROWS_CONTAINING(b.restore(with("rng", {"0", "0", "0", "0"})), trm::ValueError, "TrainSampler::restore",
                          "rng: expected a live xoshiro256** state, found all zeros");
  CHECK_THROWS_CONTAINING(b.restore(with("iteration", std::numeric_limits<std::int64_t>::max())), trm::ValueError,
                          "iteration: expected an integer in 0..9007199254740992");
  CHECK_THROWS_CONTAINING(b.restore(with("batch", 1e30)), trm::ValueError, "batch: expected an integer");
  CHECK_THROWS_CONTAINING(b.restore(with("pos", -1)), trm::ValueError, "pos: expected an integer");
  CHECK_THROWS_CONTAINING(b.restore(with("set", 2.5)), trm::ValueError, "set: expected an integer");
  // The largest accepted pass count still runs: the next pass is counted without overflow.
  b.restore(with("iteration", trm::data::TrainSampler::max_iteration));
  for (int k = 0; k < 4; ++k) (void)b.next();
  CHECK(b.iteration() > trm::data::TrainSampler::max_iteration);
  // And the position itself continues the same batches.
  trm::data::TrainSampler c(d, {.global_batch_size = 1, .seed = 5});
  c.restore(saved.dump());
  CHECK(c.next().examples == a.next().examples);
}

TEST_CASE("Rng::set_state refuses the all-zero state; GeneratedSource::restore reports it as a ValueError") {
  trm::Rng r(1);
  CHECK_THROWS_CONTAINING(r.set_state({0, 0, 0, 0}), trm::ValueError, "all zeros");
  CHECK_NOTHROW(r.set_state({0, 0, 0, 1}));
  using Task4 = trm::data::sudoku::SudokuTask<trm::data::sudoku::SudokuShape<2, 2>>;
  trm::data::GeneratedSource<Task4> source(Task4(6), 2, 1);
  CHECK_THROWS_CONTAINING(source.restore(R"({"generated": ["0", "0", "0", "0"]})"), trm::ValueError,
                          "GeneratedSource::restore", "all zeros");
  CHECK_NOTHROW((void)source.next());  // the source keeps its own state
}

// The command line's saved training flags (metadata "trm.cli.train", read on `train --resume`):
// nlohmann's get<int>() of 1e30 was a float-to-integer conversion out of range (undefined
// behaviour), 2^32 + 64 wrapped to 64, and a wrongly typed flag given again on the command line
// escaped as a raw nlohmann type_error. Found while adding tests/fuzz/fuzz_cli_meta.
TEST_CASE("apply_saved_flags: saved flags must have the field's type and range, a CliError otherwise") {
  const std::string src = "run/train_state.safetensors";
  auto apply = [&](const char* text, const std::set<std::string>& given = {}) {
    trmcli::TrainArgs a;
    trmcli::apply_saved_flags(a, trmcli::json::parse(text), given, src);
    return a;
  };
  CHECK_THROWS_CONTAINING(apply(R"({"batch": 1e30})"), trmcli::CliError, "run/train_state.safetensors", "malformed saved flag 'batch'",
                          "expected an integer in -2147483648..2147483647, found number 1e+30");
  CHECK_THROWS_CONTAINING(apply(R"({"batch": 4294967360})"), trmcli::CliError, "saved flag 'batch'");
  CHECK_THROWS_CONTAINING(apply(R"({"batch": true})"), trmcli::CliError, "saved flag 'batch'");
  CHECK_THROWS_CONTAINING(apply(R"({"seed": -1})"), trmcli::CliError, "saved flag 'seed'");
  CHECK_THROWS_CONTAINING(apply(R"({"lr": "fast"})"), trmcli::CliError, "saved flag 'lr'", "expected a number");
  CHECK_THROWS_CONTAINING(apply(R"({"holdout": ["a", 1]})"), trmcli::CliError, "saved flag 'holdout'");
  // Given again on the command line, the saved value is still read (to compare) and checked.
  CHECK_THROWS_CONTAINING(apply(R"({"batch": "32"})", {"batch"}), trmcli::CliError, "saved flag 'batch'", "found string");
  CHECK_THROWS_CONTAINING(apply(R"({"batch": 16})", {"batch"}), trmcli::CliError, "cannot resume with --batch 32");
  const auto a = apply(R"({"batch": 16, "seed": 18446744073709551615, "lr": 1, "holdout": ["h.csv"], "ema": 0.5})");
  CHECK(a.batch == 16);
  CHECK(a.seed == 18446744073709551615ull);
  CHECK(a.lr == 1.0);
  CHECK(a.holdout == std::vector<std::string>{"h.csv"});
  CHECK(a.ema == 0.5);
}

// Found by tests/fuzz/fuzz_dataset: a dataset read from a directory without identifiers.json (it is
// optional) but with 2 puzzle ids was written with identifiers.json = ["<blank>"], which read()
// then refused (fewer names than num_puzzle_identifiers).
TEST_CASE("PuzzleDataset::write: a dataset without names reads back, with or without identifiers.json") {
  trm::test::TempDir dir("trm_untrusted_write");
  auto d = three_group_dataset();
  d.metadata.num_puzzle_identifiers = 2;
  d.sets[0].puzzle_identifiers = {0, 1, 1};
  d.write(dir / "two_ids", "train");
  CHECK_FALSE(fs::exists(dir / "two_ids" / "identifiers.json"));
  const auto back = trm::data::PuzzleDataset::read(dir / "two_ids", "train");
  CHECK(back.metadata == d.metadata);
  CHECK(back.sets == d.sets);
  // With only the blank id, ["<blank>"] is complete and written as before.
  three_group_dataset().write(dir / "one_id", "train");
  CHECK(trm::data::PuzzleDataset::read(dir / "one_id", "train", {.require_identifiers = true}).identifiers ==
        std::vector<std::string>{"<blank>"});
}
