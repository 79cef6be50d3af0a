// nvcc compile check of whole models on the GPU backends: every member function of Model, Trainer,
// Solver and Evaluator on trm::cuda and trm::cuda_bf16 is compiled (explicit instantiations; a
// member whose constraints need host memory, e.g. Model::embed(const Batch&), is left out by its
// `requires`). Built when TRM_ENABLE_CUDA=ON; run (one training call and one solve on the GPU) only
// where a CUDA device exists.
#include <cstdio>
#include <trm/cuda.hpp>
#include <trm/model/inference.hpp>

namespace trm_nvcc_model {
struct Mlp {
  static constexpr int rows = 4, cols = 4, vocab = 6, hidden = 16, layers = 2;
  using mixer = trm::TokenMlpMixer;
  using schedule = trm::TrmRecursion<2, 2>;
  using halting = trm::BceHalting<2>;
};
struct Att {
  static constexpr int rows = 3, cols = 3, vocab = 5, hidden = 16, layers = 1;
  static constexpr trm::ConfigOptions options{.puzzle_emb_len = 2};
  using mixer = trm::AttentionMixer<2>;
  using schedule = trm::TrmRecursion<>;
  using halting = trm::BceHalting<>;
};
struct Hrm {
  static constexpr int rows = 3, cols = 3, vocab = 5, hidden = 16, layers = 1;
  static constexpr trm::ConfigOptions options{.puzzle_emb_len = 1};
  using mixer = trm::AttentionMixer<2>;
  using schedule = trm::HrmRecursion<1, 2>;
  using halting = trm::QLearningHalting<2>;
};
}  // namespace trm_nvcc_model

template class trm::Model<trm_nvcc_model::Mlp, trm::cuda>;
template class trm::Model<trm_nvcc_model::Att, trm::cuda_bf16>;
template class trm::Model<trm_nvcc_model::Hrm, trm::cuda>;
template class trm::Trainer<trm::Model<trm_nvcc_model::Mlp, trm::cuda>, trm::AdamAtan2>;
template class trm::Trainer<trm::Model<trm_nvcc_model::Att, trm::cuda_bf16>, trm::AdamW>;
template class trm::Trainer<trm::Model<trm_nvcc_model::Hrm, trm::cuda>, trm::AdamAtan2>;
template class trm::Solver<trm::Model<trm_nvcc_model::Mlp, trm::cuda>>;
template class trm::Solver<trm::Model<trm_nvcc_model::Att, trm::cuda_bf16>>;
template class trm::Evaluator<trm::Model<trm_nvcc_model::Hrm, trm::cuda>>;

int main() {
  using M = trm::Model<trm_nvcc_model::Mlp, trm::cuda>;
  M model(0);
  trm::Batch batch;
  batch.inputs.resize(2, 16);
  batch.labels.resize(2, 16);
  batch.puzzle_identifiers.resize(2);
  for (trm::index_t i = 0; i < 32; ++i) {
    batch.inputs.data()[i] = 1 + i % 5;
    batch.labels.data()[i] = 2 + i % 4;
  }
  batch.puzzle_identifiers.zero();
  trm::Trainer trainer(model, trm::AdamAtan2{});
  const auto m = trainer.step(batch);
  trm::Solver<M> solver(model);
  const auto r = solver.solve(batch, trm::EarlyExit::on);
  std::printf("trm %s (nvcc model check on the GPU): one training call, loss %.4f; solve: %d steps\n", trm::version_string,
              m.total_loss, r.steps_used[0]);
  return m.total_loss > 0 ? 0 : 1;
}
