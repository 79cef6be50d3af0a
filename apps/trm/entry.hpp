#pragma once
// Entry points of `trm sudoku|maze train|solve|eval` per size (defined in sudoku_impl.hpp and
// maze_impl.hpp, instantiated in sudoku_<R>x<C>.cpp and maze_<side>.cpp, so the model
// instantiations compile in parallel), and the run configuration stored in checkpoints.
#include <optional>
#include <trm/io/safetensors.hpp>
#include <trm/io/json.hpp>
#include <trm/train/fit.hpp>

#include "cli_common.hpp"

namespace trmcli {

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

template <int R, int C>
int sudoku_train(const TrainArgs& a, const std::optional<CheckpointInfo>& resume);
template <int R, int C>
int sudoku_solve(const SolveArgs& a, const CheckpointInfo& info);
template <int R, int C>
int sudoku_eval(const EvalArgs& a, const CheckpointInfo& info);
template <int Side>
int maze_train(const TrainArgs& a, const std::optional<CheckpointInfo>& resume);
template <int Side>
int maze_solve(const SolveArgs& a, const CheckpointInfo& info);
template <int Side>
int maze_eval(const EvalArgs& a, const CheckpointInfo& info);

}  // namespace trmcli
