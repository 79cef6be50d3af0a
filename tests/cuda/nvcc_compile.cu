// nvcc compile check: the core, nn, model and training headers compile under nvcc (C++20), and
// their templates instantiate there, so layers and models need no change when the CUDA backend
// arrives. Built when TRM_ENABLE_CUDA=ON; run (a CPU forward/backward through a small model, plus
// a trivial kernel) only where a CUDA device exists.
#include <cstdio>
#include <trm/model/inference.hpp>
#include <trm/trm.hpp>

struct NvccMlp {
  static constexpr int rows = 4, cols = 4, vocab = 6, hidden = 16, layers = 2;
  using mixer = trm::TokenMlpMixer;
  using schedule = trm::TrmRecursion<2, 2>;
  using halting = trm::BceHalting<2>;
};
struct NvccAtt {
  static constexpr int rows = 3, cols = 3, vocab = 5, hidden = 16, layers = 1;
  using mixer = trm::AttentionMixer<2>;
  using schedule = trm::TrmRecursion<1, 2>;
  using halting = trm::FixedSteps<2>;
};
// Counts given at run time (what the command line uses).
struct NvccDynamic {
  static constexpr int rows = 3, cols = 3, vocab = 5, hidden = 16, layers = 1;
  using mixer = trm::TokenMlpMixer;
  using schedule = trm::TrmRecursion<>;
  using halting = trm::BceHalting<>;
  static constexpr trm::ConfigOptions options{.puzzle_emb_len = 2};
};
static_assert(trm::ModelConfig<NvccMlp> && trm::ModelConfig<NvccAtt> && trm::ModelConfig<NvccDynamic>);
static_assert(trm::Backend<trm::cpu> && trm::Backend<trm::reference>);
static_assert(trm::Layer<trm::SwiGlu<16, 4, double, trm::reference>>);

// Explicit instantiations: every member function is compiled by nvcc's host pass.
template class trm::Stack<trm::Block<trm::SelfAttention<16, 2>, trm::SwiGlu<16, 4>>, 2>;
template class trm::Stack<trm::Block<trm::TokenMlp<9, 4, double, trm::reference>, trm::SwiGlu<16, 4, double, trm::reference>>, 1>;
template class trm::Model<NvccMlp>;
template class trm::Model<NvccAtt>;
template class trm::Trainer<trm::Model<NvccMlp>, trm::AdamAtan2>;
template class trm::Solver<trm::Model<NvccAtt>>;
template class trm::Model<NvccDynamic>;
template class trm::Trainer<trm::Model<NvccDynamic>, trm::AdamW>;
template class trm::Solver<trm::Model<NvccDynamic>>;

__global__ void trm_nvcc_compile_kernel(float* out) { out[threadIdx.x] = static_cast<float>(threadIdx.x); }

int main() {
  trm::Model<NvccMlp> model(0);
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
  auto m = trainer.step(batch);
  trm::Model<NvccDynamic> dynamic({.schedule = trm::TrmRecursion<>(2, 1), .halting = trm::BceHalting<>(2), .puzzle_ids = 3});
  std::printf("trm %s (nvcc compile check): one training call, loss %.4f; %s\n", trm::version_string, m.total_loss,
              dynamic.signature().c_str());
  return m.total_loss > 0 ? 0 : 1;
}
