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

namespace trmcli {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// A user-facing error: printed as "trm: error: <message>", exit status 1.
struct CliError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- the curated set of compiled configurations --------------------------------------------------
// Keep in sync with the dispatch in sudoku_impl.hpp (with_model).
inline constexpr std::array<const char*, 3> kSupportedBoxes = {"2x2", "2x3", "3x3"};
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
  std::string box = "2x3";    // box rows x box cols: 2x2 (4x4 grid), 2x3 (6x6), 3x3 (9x9)
  std::string mixer = "mlp";  // mlp (TRM-MLP, token mixing MLP) or att (self-attention, RoPE)
  int hidden = 64;
  int layers = 2;
  int prefix = 4;  // puzzle-embedding prefix positions (the reference's puzzle_emb_len is 16)
  int n = 2, T = 2, nsup = 4;

  int side() const { return (box[0] - '0') * (box[2] - '0'); }

  // Throws CliError naming every unsupported value and the supported ones.
  void validate() const {
    std::vector<std::string> bad;
    auto check = [&](bool ok, const std::string& what) {
      if (!ok) bad.push_back(what);
    };
    check(std::find_if(kSupportedBoxes.begin(), kSupportedBoxes.end(), [&](const char* b) { return box == b; }) !=
              kSupportedBoxes.end(),
          "--box " + box + " (supported: " + join_values(kSupportedBoxes) + ")");
    check(std::find_if(kSupportedMixers.begin(), kSupportedMixers.end(), [&](const char* m) { return mixer == m; }) !=
              kSupportedMixers.end(),
          "--mixer " + mixer + " (supported: " + join_values(kSupportedMixers) + ")");
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
      msg +=
          ".\n  Model sizes are compile-time constants in trm; this program is built for box {" +
          join_values(kSupportedBoxes) + "} x mixer {" + join_values(kSupportedMixers) + "} x hidden {" +
          join_values(kSupportedHidden) + "} x layers {" + join_values(kSupportedLayers) + "} x prefix {" +
          join_values(kSupportedPrefix) + "}; n, T and N_sup are free (add instantiations in apps/trm/sudoku_impl.hpp).";
      throw CliError(msg);
    }
  }

  std::string describe() const {
    const int s = side();
    return std::to_string(s) + "x" + std::to_string(s) + " Sudoku (" + box + " boxes), TRM-" +
           (mixer == "mlp" ? std::string("MLP") : "Att") + " hidden " + std::to_string(hidden) + ", " +
           std::to_string(layers) + " layers, prefix " + std::to_string(prefix) + ", n=" + std::to_string(n) +
           " T=" + std::to_string(T) + " N_sup=" + std::to_string(nsup);
  }

  json to_json() const {
    return json{{"box", box}, {"mixer", mixer}, {"hidden", hidden}, {"layers", layers},
                {"prefix", prefix}, {"n", n},       {"T", T},           {"N_sup", nsup}};
  }
  static ModelSpec from_json(const json& j, const std::string& source) {
    ModelSpec s;
    try {
      s.box = j.at("box").get<std::string>();
      s.mixer = j.at("mixer").get<std::string>();
      s.hidden = j.at("hidden").get<int>();
      s.layers = j.at("layers").get<int>();
      s.prefix = j.at("prefix").get<int>();
      s.n = j.at("n").get<int>();
      s.T = j.at("T").get<int>();
      s.nsup = j.at("N_sup").get<int>();
    } catch (const std::exception& e) {
      throw CliError(source + ": the model configuration in the metadata is incomplete or malformed (" + e.what() + ")");
    }
    return s;
  }
};

// Flags of solve/eval that, when given, must match the checkpoint.
struct ExpectedSpec {
  std::optional<std::string> box, mixer;
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
    cmp(box, s.box, "--box");
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
  double beta1 = 0.9, beta2 = 0.95;
  std::string optimizer = "adamw";
  std::string loss = "stablemax";
  int blanks = 20;
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
  bool early_exit_headline = false;
  ExpectedSpec expect;
};

// ---- checkpoints written by `trm sudoku train` ---------------------------------------------------
inline constexpr const char* kMetaModel = "trm.cli.model";    // ModelSpec as JSON
inline constexpr const char* kMetaTrain = "trm.cli.train";    // training flags as JSON
inline constexpr const char* kMetaState = "trm.cli.state";    // step, elapsed time, data RNG, weights

// ---- small helpers ---------------------------------------------------------------------------------
inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  long s = long(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

inline std::string percent(double x, int decimals = 1) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f%%", decimals, 100.0 * x);
  return buf;
}

// Set by SIGINT during training: stop after the current step, save, plot.
inline std::atomic<bool>& interrupted() {
  static std::atomic<bool> flag{false};
  return flag;
}

// Writes a gnuplot script next to `png` and runs gnuplot on it. Returns false (after saying why
// on stderr) when gnuplot is missing or fails; the PNG is written atomically by gnuplot into a
// temporary name and renamed.
bool plot_training_curve(const fs::path& metrics_csv, const fs::path& png, const std::string& title);

}  // namespace trmcli
