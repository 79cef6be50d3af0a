#pragma once
// Entry points of `trm sudoku|maze train|solve|eval` per size (defined in sudoku_impl.hpp and
// maze_impl.hpp, instantiated in sudoku_<R>x<C>.cpp and maze_<side>.cpp, so the model
// instantiations compile in parallel), and the run configuration stored in checkpoints.
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>
#include <trm/io/safetensors.hpp>
#include <trm/io/json.hpp>
#include <trm/train/fit.hpp>

#include "cli_common.hpp"

// The backend of `--device cuda` (trm/backend/cuda.hpp, defined only where nvcc compiles): named
// here so that main.cpp, compiled by the C++ compiler, can call the entry points instantiated for it
// in the *_cuda.cu translation units.
namespace trm {
struct cuda_bf16;
}

namespace trmcli {

// `--device`: cpu (trm::cpu), or cuda: trm::cuda_bf16 (bf16 GEMM inputs on tensor cores, fp32
// accumulation, master weights and state: the reference's forward_dtype = bfloat16). The GPU is
// compiled in when trm is configured with CUDA (TRM_CLI_CUDA), for the official sizes: Sudoku 9x9
// (3x3 boxes), mazes 30x30, ARC 30x30.
using GpuBackend = trm::cuda_bf16;
inline constexpr const char* kDeviceHelp =
    "cpu, or cuda: the GPU with bf16 GEMMs and fp32 state (Sudoku 3x3 boxes, maze 30, ARC 30; needs a trm built with CUDA)";
#if defined(TRM_CLI_CUDA)
inline constexpr bool kCliHasCuda = true;
// Whether a CUDA device can be used; `why` says why not (defined in sudoku_3x3_cuda.cu).
bool cuda_device_available(std::string& why);
#else
inline constexpr bool kCliHasCuda = false;
inline bool cuda_device_available(std::string& why) {
  why = "this trm was built without CUDA (configure with -DTRM_ENABLE_CUDA=ON and nvcc on PATH)";
  return false;
}
#endif

// What `trm <task> train` stores in the metadata of its checkpoints.
struct CheckpointInfo {
  ModelSpec spec;
  json train;  // training flags (may be empty)
  json state;  // trm::fit's state: step, elapsed time, weights (ema|raw), data position
};

inline json parse_meta(const std::map<std::string, std::string>& meta, const char* key, const std::string& source,
                       bool required) {
  auto it = meta.find(key);
  if (it == meta.end()) {
    if (!required) return json::object();
    throw CliError(source + ": no '" + key +
                   "' entry in its metadata: not a checkpoint written by `trm <task> train`, so its model "
                   "configuration is unknown");
  }
  return trm::io::parse_untrusted_json<CliError>(it->second, source + ": metadata entry '" + key + "'");
}

inline CheckpointInfo read_checkpoint_info(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw CliError(path.string() + ": no such checkpoint file");
  if (fs::is_directory(path, ec))
    throw CliError(path.string() + ": is a directory, expected a checkpoint file (e.g. " +
                   (path / "model.safetensors").string() + ")");
  trm::io::SafetensorsFile file;
  try {
    file = trm::io::SafetensorsFile::load(path);
  } catch (const std::exception& e) {
    throw CliError(path.string() + ": cannot read the checkpoint: " + e.what());
  }
  CheckpointInfo info;
  info.spec = ModelSpec::from_json(parse_meta(file.metadata, kMetaModel, path.string(), true), path.string());
  info.train = parse_meta(file.metadata, kMetaTrain, path.string(), false);
  info.state = parse_meta(file.metadata, trm::fit_state_key, path.string(), false);
  return info;
}

// The training step a checkpoint was saved at, for messages ("?" when it does not say).
inline std::string step_of(const CheckpointInfo& info) {
  if (!info.state.is_object() || !info.state.contains("step") || !info.state["step"].is_number_integer()) return "?";
  return std::to_string(info.state["step"].get<long long>());
}

inline std::string weights_of(const CheckpointInfo& info) {
  if (!info.state.is_object() || !info.state.contains("weights") || !info.state["weights"].is_string()) return "?";
  return info.state["weights"].get<std::string>();
}

// One saved training flag (metadata "trm.cli.train", untrusted) as the field's type. Integers must
// be JSON integers in the field's range: nlohmann's get<int>() of 1e30 converts a double out of
// range (undefined behaviour) and of 2^32 + 64 wraps to 64; true is not a batch size either.
template <class T>
T saved_flag(const json& j, const char* key, const std::string& src) {
  const json& v = j.at(key);
  auto bad = [&](const std::string& expected) {
    std::string found = v.dump();  // bounded recursion: parse_untrusted_json bounded the nesting
    if (found.size() > 80) found = found.substr(0, 77) + "...";
    return CliError(src + ": malformed saved flag '" + key + "' (expected " + expected + ", found " + v.type_name() + " " +
                    found + ")");
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) throw bad("true or false");
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    const std::string range = "an integer in " + std::to_string(std::numeric_limits<T>::min()) + ".." +
                              std::to_string(std::numeric_limits<T>::max());
    if (!v.is_number_integer()) throw bad(range);
    const bool fits = v.is_number_unsigned()
                          ? v.get<std::uint64_t>() <= std::uint64_t(std::numeric_limits<T>::max())
                          : std::is_signed_v<T> && v.get<std::int64_t>() >= std::int64_t(std::numeric_limits<T>::min()) &&
                                v.get<std::int64_t>() <= std::int64_t(std::numeric_limits<T>::max());
    if (!fits) throw bad(range);
    return v.is_number_unsigned() ? T(v.get<std::uint64_t>()) : T(v.get<std::int64_t>());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) throw bad("a number");
    return v.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) throw bad("a string");
    return v.get<std::string>();
  } else {
    static_assert(std::is_same_v<T, std::vector<std::string>>, "saved_flag: a flag type without a check");
    if (!v.is_array()) throw bad("a list of strings");
    T out;
    for (const json& e : v) {
      if (!e.is_string()) throw bad("a list of strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }
}

// Training flags saved in a run, applied on --resume unless given again on the command line.
inline void apply_saved_flags(TrainArgs& a, const json& j, const std::set<std::string>& given, const std::string& src) {
  auto take = [&](const char* key, auto& field) {
    if (given.count(key) || !j.contains(key)) return;
    field = saved_flag<std::remove_reference_t<decltype(field)>>(j, key, src);
  };
  take("batch", a.batch);
  take("lr", a.lr);
  take("lr_min_ratio", a.lr_min_ratio);
  take("warmup", a.warmup);
  take("weight_decay", a.weight_decay);
  take("puzzle_emb_lr", a.puzzle_emb_lr);
  take("puzzle_emb_wd", a.puzzle_emb_wd);
  take("beta1", a.beta1);
  take("beta2", a.beta2);
  take("optimizer", a.optimizer);
  take("loss", a.loss);
  take("blanks", a.blanks);
  take("loops", a.loops);
  take("min_dist", a.min_dist);
  take("data", a.data);
  take("init", a.init);
  take("seed", a.seed);
  take("ema", a.ema);
  take("halt_explore", a.halt_explore);
  take("eval_every", a.eval_every);
  take("eval_size", a.eval_size);
  take("log_every", a.log_every);
  take("holdout", a.holdout);
  // What the saved state depends on cannot change.
  auto fixed = [&](const char* key, const auto& now) {
    if (!j.contains(key)) return;
    const auto saved = saved_flag<std::remove_cvref_t<decltype(now)>>(j, key, src);
    if (saved != now) {
      std::ostringstream os;
      os << src << ": cannot resume with --" << key << " " << now << ": the run was trained with " << saved
         << " (the saved state depends on it)";
      throw CliError(os.str());
    }
  };
  fixed("batch", a.batch);
  fixed("optimizer", a.optimizer);
  fixed("seed", a.seed);
  fixed("ema", a.ema);
  fixed("data", a.data);
}

// B: trm::cpu, or GpuBackend where compiled (TRM_CLI_INSTANTIATE* in the *_cuda.cu files).
template <int R, int C, class B>
int sudoku_train(const TrainArgs& a, const std::optional<CheckpointInfo>& resume);
template <int R, int C, class B>
int sudoku_solve(const SolveArgs& a, const CheckpointInfo& info);
template <int R, int C, class B>
int sudoku_eval(const EvalArgs& a, const CheckpointInfo& info);
template <int Side, class B>
int maze_train(const TrainArgs& a, const std::optional<CheckpointInfo>& resume);
template <int Side, class B>
int maze_solve(const SolveArgs& a, const CheckpointInfo& info);
template <int Side, class B>
int maze_eval(const EvalArgs& a, const CheckpointInfo& info);

}  // namespace trmcli

namespace trmcli {

// `trm arc eval`: the official evaluator over DIR/test of a reference-format ARC build.
struct ArcEvalArgs {
  std::vector<std::string> checkpoints;  // several: votes pooled across them (the reference's aggregated voting)
  bool separate = false;                 // score each checkpoint alone instead
  std::string data;
  int steps = 0;      // 0: the checkpoint's N_sup
  int batch = 64;
  int threads = 0;
  int variants = 0;   // per test input, the first this many variants of its group (0: all)
  std::string submission;  // write submission.json here
  std::string device = "cpu";
};

// `trm arc submit`: a challenges file and a checkpoint -> submission.json (the Kaggle flow).
struct ArcSubmitArgs {
  std::string checkpoint, challenges, solutions, out;
  int num_aug = 1000;
  std::uint32_t seed = 42;
  int variants = 0;
  int steps = 0;
  int batch = 64;
  int threads = 0;
  long finetune_steps = 0;  // 0: no fine-tuning (new tasks keep the mean puzzle row)
  int finetune_batch = 32;
  double finetune_lr = 1e-4;
  long finetune_warmup = 0;
  double finetune_minutes = 0;
  std::string device = "cpu";
  bool quiet = false;
};

template <int Side, class B>
int arc_train(const TrainArgs& a, const std::optional<CheckpointInfo>& resume);
template <int Side, class B>
int arc_eval(const ArcEvalArgs& a, const CheckpointInfo& info);
template <int Side, class B>
int arc_submit(const ArcSubmitArgs& a, const CheckpointInfo& info);

}  // namespace trmcli
