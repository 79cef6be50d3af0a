#pragma once
// The `trm` command line: options, the curated set of compiled model configurations, and helpers
// shared by the subcommands (errors, puzzle input, progress bar, metrics CSV, gnuplot).
//
// Model sizes are compile-time constants in trm, so a runtime configuration is dispatched to one
// of a curated set of compiled instantiations (see kSupported* below and sudoku_impl.hpp); n, T
// and N_sup are run-time counts of the model's schedule and halting values (trm::TrmRecursion<>,
// trm::BceHalting<>), given to each model through trm::ModelArgs (model_args in sudoku_impl.hpp).
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <trm/io/atomic_file.hpp>
#include <trm/io/lines.hpp>
#include <trm/train/progress.hpp>

namespace trmcli {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// Exit statuses of `trm` (also in `trm --help` and README.md). Scripts can tell "ran, but some
// puzzles were not solved" (3) from "could not run" (1, 2).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;        // bad input, checkpoint of another configuration, I/O error, ...
inline constexpr int kExitUsage = 2;        // command-line usage error (unknown subcommand, bad flag)
inline constexpr int kExitUnsolved = 3;     // solve / eval ran, and at least one puzzle was not solved
inline constexpr int kExitInterrupted = 130;  // training stopped by SIGINT/SIGTERM (saved; --resume continues)
inline constexpr const char* kExitStatusHelp =
    "Exit status: 0 success (solve/eval: every puzzle solved); 1 error (bad input, a checkpoint of another "
    "configuration, I/O, a non-finite training state); 2 command-line usage error; 3 solve/eval ran but did not "
    "solve every puzzle; 130 training interrupted by SIGINT/SIGTERM (saved, --resume continues).";

// A user-facing error: printed as "trm: error: <message>", exit status 1.
struct CliError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A command-line usage error found after parsing (unknown task or subcommand): exit status 2.
struct UsageError : CliError {
  using CliError::CliError;
};

// ---- the curated set of compiled configurations --------------------------------------------------
// Keep in sync with the dispatch in sudoku_impl.hpp (with_model).
inline constexpr std::array<const char*, 3> kSupportedBoxes = {"2x2", "2x3", "3x3"};
// Maze sides: 9x9 trains on a laptop, 30x30 is Maze-Hard's (the reference's).
inline constexpr std::array<const char*, 2> kSupportedMazeSizes = {"9x9", "30x30"};
// ARC canvases: 10x10 trains on a laptop (the ARC tasks whose grids fit it), 30x30 is the
// reference's. ARC models are TRM-Att (the reference's ARC configuration).
inline constexpr std::array<const char*, 2> kSupportedArcSizes = {"10x10", "30x30"};
inline constexpr std::array<const char*, 2> kSupportedMixers = {"mlp", "att"};
inline constexpr std::array<int, 3> kSupportedHidden = {64, 128, 256};
inline constexpr std::array<int, 1> kSupportedLayers = {2};
inline constexpr std::array<int, 1> kSupportedPrefix = {4};
// Attention heads of the `att` mixer: head dimension 32.
inline constexpr int kHeadDim = 32;

template <class A>
std::string join_values(const A& values) {
  std::ostringstream os;
  bool first = true;
  for (const auto& v : values) {
    os << (first ? "" : ", ") << v;
    first = false;
  }
  return os.str();
}

// A model configuration chosen at run time.
struct ModelSpec {
  std::string task = "sudoku";  // sudoku, maze or arc
  std::string size = "2x3";     // sudoku: box rows x box cols (2x2: 4x4 grid, 2x3: 6x6, 3x3: 9x9); maze: rows x cols; arc: the canvas
  std::string mixer = "mlp";    // mlp (TRM-MLP, token mixing MLP) or att (self-attention, RoPE)
  int hidden = 64;
  int layers = 2;
  int prefix = 4;  // puzzle-embedding prefix positions (the reference's puzzle_emb_len is 16)
  int n = 2, T = 2, nsup = 4;

  bool is_maze() const { return task == "maze"; }
  bool is_arc() const { return task == "arc"; }
  // The flag that chooses the size, in messages.
  const char* size_flag() const { return task == "sudoku" ? "--box" : "--size"; }
  // Grid side: sudoku box rows x box cols; maze rows.
  // Grid side of a supported size, 0 for any other (validate() names it).
  int side() const {
    if (is_maze()) return size == "9x9" ? 9 : size == "30x30" ? 30 : 0;
    if (is_arc()) return size == "10x10" ? 10 : size == "30x30" ? 30 : 0;
    return size == "2x2" ? 4 : size == "2x3" ? 6 : size == "3x3" ? 9 : 0;
  }
  template <class A>
  static bool listed(const A& values, const std::string& v) {
    return std::find_if(values.begin(), values.end(), [&](const char* b) { return v == b; }) != values.end();
  }
  std::string supported_sizes() const {
    return is_maze() ? join_values(kSupportedMazeSizes) : is_arc() ? join_values(kSupportedArcSizes) : join_values(kSupportedBoxes);
  }

  // Throws CliError naming every unsupported value and the supported ones.
  void validate() const {
    std::vector<std::string> bad;
    auto check = [&](bool ok, const std::string& what) {
      if (!ok) bad.push_back(what);
    };
    check(task == "sudoku" || task == "maze" || task == "arc", "task " + task + " (supported: sudoku, maze, arc)");
    check(is_maze() ? listed(kSupportedMazeSizes, size) : is_arc() ? listed(kSupportedArcSizes, size) : listed(kSupportedBoxes, size),
          std::string(size_flag()) + " " + size + " (supported: " + supported_sizes() + ")");
    if (is_arc())
      check(mixer == "att", "--mixer " + mixer + " (supported for arc: att, the reference's ARC model)");
    else
      check(listed(kSupportedMixers, mixer), "--mixer " + mixer + " (supported: " + join_values(kSupportedMixers) + ")");
    check(std::find(kSupportedHidden.begin(), kSupportedHidden.end(), hidden) != kSupportedHidden.end(),
          "--hidden " + std::to_string(hidden) + " (supported: " + join_values(kSupportedHidden) + ")");
    check(std::find(kSupportedLayers.begin(), kSupportedLayers.end(), layers) != kSupportedLayers.end(),
          "--layers " + std::to_string(layers) + " (supported: " + join_values(kSupportedLayers) + ")");
    check(std::find(kSupportedPrefix.begin(), kSupportedPrefix.end(), prefix) != kSupportedPrefix.end(),
          "--prefix " + std::to_string(prefix) + " (supported: " + join_values(kSupportedPrefix) + ")");
    check(n >= 1 && n <= 16, "--n " + std::to_string(n) + " (expected 1..16)");
    check(T >= 1 && T <= 16, "--T " + std::to_string(T) + " (expected 1..16)");
    check(nsup >= 1 && nsup <= 64, "--nsup " + std::to_string(nsup) + " (expected 1..64)");
    if (!bad.empty()) {
      std::string msg = "unsupported model configuration: ";
      for (std::size_t i = 0; i < bad.size(); ++i) msg += (i ? "; " : "") + bad[i];
      msg += ".\n  Model sizes are compile-time constants in trm; this program is built for " + task + " " +
             std::string(size_flag()).substr(2) + " {" + supported_sizes() + "} x mixer {" + join_values(kSupportedMixers) +
             "} x hidden {" + join_values(kSupportedHidden) + "} x layers {" + join_values(kSupportedLayers) +
             "} x prefix {" + join_values(kSupportedPrefix) +
             "}; n, T and N_sup are free (add instantiations in apps/trm/model_dispatch.hpp).";
      throw CliError(msg);
    }
  }

  std::string describe() const {
    const int s = side();
    const std::string what = is_maze()  ? size + " maze"
                             : is_arc() ? "ARC on a " + size + " canvas"
                                        : std::to_string(s) + "x" + std::to_string(s) + " Sudoku (" + size + " boxes)";
    return what + ", TRM-" + (mixer == "mlp" ? std::string("MLP") : "Att") + " hidden " + std::to_string(hidden) + ", " +
           std::to_string(layers) + " layers, prefix " + std::to_string(prefix) + ", n=" + std::to_string(n) +
           " T=" + std::to_string(T) + " N_sup=" + std::to_string(nsup);
  }

  json to_json() const {
    return json{{"task", task}, {"size", size},     {"mixer", mixer}, {"hidden", hidden}, {"layers", layers},
                {"prefix", prefix}, {"n", n},       {"T", T},         {"N_sup", nsup}};
  }
  // Every field is checked in its own type and range (a checkpoint's metadata is untrusted input:
  // 1e30, 2.9, true or 2^32 + 64 are not a hidden size).
  static ModelSpec from_json(const json& j, const std::string& source) {
    auto fail = [&](const std::string& why) -> void {
      throw CliError(source + ": the model configuration in the metadata is malformed: " + why);
    };
    if (!j.is_object()) fail("expected a JSON object, found " + std::string(j.type_name()));
    auto text = [&](const char* key) {
      if (!j.contains(key) || !j.at(key).is_string()) fail(std::string("'") + key + "': expected a string");
      return j.at(key).get<std::string>();
    };
    auto integer = [&](const char* key, long lo, long hi) {
      if (!j.contains(key) || !j.at(key).is_number_integer())
        fail(std::string("'") + key + "': expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
      const auto& v = j.at(key);
      const bool in_range = v.is_number_unsigned() ? v.get<std::uint64_t>() <= std::uint64_t(hi)
                                                   : (v.get<std::int64_t>() >= lo && v.get<std::int64_t>() <= hi);
      if (!in_range)
        fail(std::string("'") + key + "': expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
             ", found " + v.dump());
      return int(v.get<std::int64_t>());
    };
    ModelSpec s;
    s.task = text("task");
    s.size = text("size");
    s.mixer = text("mixer");
    s.hidden = integer("hidden", 1, 1 << 20);
    s.layers = integer("layers", 1, 1024);
    s.prefix = integer("prefix", 0, 1024);
    s.n = integer("n", 1, 1024);
    s.T = integer("T", 1, 1024);
    s.nsup = integer("N_sup", 1, 1024);
    try {
      s.validate();
    } catch (const CliError& e) {
      fail(std::string("a configuration this program is not built for (") + e.what() + ")");
    }
    return s;
  }
};

// Flags of solve/eval that, when given, must match the checkpoint.
struct ExpectedSpec {
  std::optional<std::string> size, mixer;
  std::optional<int> hidden, layers, prefix, n, T, nsup;
  // Throws CliError listing every flag that differs from the checkpoint's configuration.
  void check(const ModelSpec& s, const std::string& checkpoint) const {
    std::vector<std::string> diff;
    auto cmp = [&](const auto& want, const auto& have, const char* flag) {
      if (want && *want != have) {
        std::ostringstream os;
        os << flag << " " << *want << " but the checkpoint has " << have;
        diff.push_back(os.str());
      }
    };
    cmp(size, s.size, s.size_flag());
    cmp(mixer, s.mixer, "--mixer");
    cmp(hidden, s.hidden, "--hidden");
    cmp(layers, s.layers, "--layers");
    cmp(prefix, s.prefix, "--prefix");
    cmp(n, s.n, "--n");
    cmp(T, s.T, "--T");
    cmp(nsup, s.nsup, "--nsup");
    if (!diff.empty()) {
      std::string msg = checkpoint + ": checkpoint of another model configuration: ";
      for (std::size_t i = 0; i < diff.size(); ++i) msg += (i ? "; " : "") + diff[i];
      throw CliError(msg + "\n  the checkpoint is: " + s.describe());
    }
  }
};

struct TrainArgs {
  ModelSpec model;
  bool model_flags_given = false;  // any model flag on the command line (checked against --resume)
  long steps = 0;
  double minutes = 0;
  int batch = 32;
  double lr = 2e-3;
  double lr_min_ratio = 1.0;
  long warmup = 100;
  double weight_decay = 0.1;
  double puzzle_emb_lr = 1e-4;  // sign-SGD of the puzzle table (the reference: 1e-4 Sudoku/Maze, 1e-2 ARC)
  double puzzle_emb_wd = 0.1;
  double beta1 = 0.9, beta2 = 0.95;
  std::string optimizer = "adamw";
  std::string loss = "stablemax";
  int blanks = 20;           // sudoku: blank cells of generated puzzles
  double loops = 0.1;        // maze generator: fraction of inner walls opened as loops
  int min_dist = 0;          // maze generator: minimum BFS distance S..G (0: the size's default)
  std::string data;          // a reference-format dataset directory (train/ and test/) instead of generated data
  std::string init;          // start from this model.safetensors (its puzzle table extended to the data's ids: fine-tuning)
  std::uint64_t seed = 0;
  double ema = 0.99;
  double halt_explore = 0.1;
  long eval_every = 250;
  int eval_size = 500;
  int eval_batch = 256;
  long log_every = 10;
  std::string out = "trm-run";
  bool resume = false;
  std::vector<std::string> holdout;
  bool plot = true;
  int threads = 0;
  std::string device = "cpu";  // cpu | cuda (see kDeviceHelp)
  bool quiet = false;
};

struct SolveArgs {
  std::string checkpoint;
  std::string input = "-";
  bool early_exit = false;
  bool trace = false;
  int steps = 0;  // 0: the checkpoint's N_sup
  int batch = 64;
  int threads = 0;
  std::string device = "cpu";
  ExpectedSpec expect;
};

struct EvalArgs {
  std::string checkpoint;
  std::string input;
  long sample = 0;  // 0: every puzzle
  std::uint64_t seed = 0;
  int steps = 0;
  int batch = 256;
  int threads = 0;
  std::string device = "cpu";
  bool early_exit_headline = false;
  std::string data;  // evaluate on <data>/test (a reference-format dataset) instead of --input
  ExpectedSpec expect;
};

// ---- checkpoints written by `trm sudoku train` ---------------------------------------------------
inline constexpr const char* kMetaModel = "trm.cli.model";    // ModelSpec as JSON
inline constexpr const char* kMetaTrain = "trm.cli.train";    // training flags as JSON
// The run's state (step, elapsed time, weights, data position) is trm::fit's "trm.fit.state".

// ---- small helpers ---------------------------------------------------------------------------------
// The stream of an --input: "-" is stdin, otherwise `file` opened on the path. A directory, a FIFO
// (open() would block) or a device is refused first; `noun` names what the file should hold.
inline std::istream& open_input(const std::string& input, const char* noun, std::ifstream& file) {
  if (input == "-") return std::cin;
  std::error_code ec;
  if (fs::is_directory(input, ec)) throw CliError(input + ": is a directory, expected a file of " + noun);
  try {
    trm::io::require_regular_file(input);
  } catch (const trm::io::NotAFileError& e) {
    throw CliError(std::string(e.what()) + " of " + noun + " (or - for stdin)");
  }
  file.open(input, std::ios::binary);
  if (!file) throw CliError(input + ": cannot open the file (" + std::strerror(errno) + ")");
  return file;
}

inline std::string source_name(const std::string& input) { return input == "-" ? "<stdin>" : input; }

// The lines of an --input (see open_input), through the library's bounded line reader: a line over
// 64 KiB (/dev/zero as stdin, a binary file) is an error, and a file may not grow past its size at
// opening while it is read.
inline trm::io::LineReader<CliError> input_lines(const std::string& input, const char* noun, std::ifstream& file) {
  std::istream& in = open_input(input, noun, file);
  std::optional<std::uint64_t> size;
  if (&in == &file) {
    std::error_code ec;
    const auto bytes = fs::file_size(input, ec);
    if (!ec) size = bytes;
  }
  return trm::io::LineReader<CliError>(in, source_name(input), trm::io::default_max_line_bytes, size);
}

using trm::format_duration;
using trm::percent;

}  // namespace trmcli
