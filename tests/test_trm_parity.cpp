// Parity with the PyTorch reference (tools/trm_reference.py, checked there against the official
// TinyRecursiveModels code): fixtures in tests/data/trm_{mlp,att}_h64.safetensors (hidden 64,
// batch 4, 9x9 grid, T=2, n=3, N_sup=4, fp32). See tests/data/README.md.
//
// Tolerances, the measured spread across GEMM kernels and why the final weights are compared
// element by element: tests/support/tolerances.hpp. The checks themselves (shared with the HRM
// test): tests/support/parity.hpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>
#include <trm/trm.hpp>

#include "support/fixture_configs.hpp"
#include "support/parity.hpp"

namespace {

using namespace trm;
using namespace trm::test;

struct SudokuMlp {
  static constexpr int rows = 9, cols = 9, vocab = 11, hidden = 512, layers = 2;
  using mixer = TokenMlpMixer;
  using schedule = TrmRecursion<6, 3>;
  using halting = BceHalting<16>;
};
struct SudokuAtt {
  static constexpr int rows = 9, cols = 9, vocab = 11, hidden = 512, layers = 2;
  using mixer = AttentionMixer<8>;
  using schedule = TrmRecursion<6, 3>;
  using halting = BceHalting<16>;
};

// recompute: the token MLP keeps no SwiGLU cache and recomputes it in backward, in blocks of 96
// rows (what large batches do; see TokenMlp::keep_rows_max).
template <class Cfg, bool recompute = false>
void check_single_call(const char* file_name) {
  const auto f = load_fixture(file_name);
  Model<Cfg> model({.puzzle_ids = 3});  // the fixture's puzzle table has 3 rows
  load_model(model, f, {"weights."}, /*allow_extra=*/true);
  if constexpr (recompute)
    for (auto& blk : model.nets[0].layers) {
      blk.mixer.keep_rows_max = 0;
      blk.mixer.chunk_rows = 96;
    }
  Trainer trainer(model, fixture_adam(f), fixture_options(f));
  const StepMetrics m = trainer.step(batch_from(f, "call."), /*update=*/false);
  check_call_outputs(trainer, f, m);
  CHECK(check_gradients(model, trainer, f).size() == 12);  // every trainable tensor has a reference gradient
}

}  // namespace

TEST_CASE("parity: TRM-MLP one supervision step (outputs, carry, losses, every gradient)") {
  check_single_call<MlpConfig>("trm_mlp_h64.safetensors");
}
TEST_CASE("parity: TRM-MLP one supervision step, token MLP recomputing its SwiGLU cache in row blocks") {
  check_single_call<MlpConfig, true>("trm_mlp_h64.safetensors");
}
TEST_CASE("parity: TRM-Att one supervision step (outputs, carry, losses, every gradient)") {
  check_single_call<AttConfig>("trm_att_h64.safetensors");
}
TEST_CASE("parity: TRM-MLP 20 training calls (AdamATan2, warmup + cosine, sign-SGD, EMA)") {
  check_fixture_trajectory<MlpConfig>("trm_mlp_h64.safetensors");
}
TEST_CASE("parity: TRM-Att 20 training calls (AdamATan2, warmup + cosine, sign-SGD, EMA)") {
  check_fixture_trajectory<AttConfig>("trm_att_h64.safetensors");
}
// tools/test.sh reruns this executable under OPENBLAS_CORETYPE=Prescott / Haswell / SkylakeX: the
// kernels in use must be the ones asked for (OpenBLAS falls back to others on a CPU that cannot run
// them; the tests never re-execute themselves through cpu::use_fast_blas_kernels). The name is
// compared case-insensitively: OPENBLAS_CORETYPE=CooperLake runs "Cooperlake".
TEST_CASE("GEMM kernels: the ones OPENBLAS_CORETYPE names, when it is set") {
  const std::string core = cpu::blas_core();
  MESSAGE("GEMM kernels: " << core);
  const char* want = std::getenv("OPENBLAS_CORETYPE");
  if (want == nullptr || core == "eigen") return;  // OpenBLAS's own choice, or no OpenBLAS
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
  };
  CHECK(lower(core) == lower(want));
}

TEST_CASE("parameter counts equal the reference's (SPEC §1.11)") {
  Model<SudokuMlp> mlp(0);
  CHECK(mlp.num_parameters() == 5028866);
  Model<SudokuAtt> att(0);
  CHECK(att.num_parameters() == 6828034);
}
