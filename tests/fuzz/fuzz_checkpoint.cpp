// libFuzzer harness: the two checkpoint readers, each fed the same input file.
//  - trm::load_model (model.safetensors: signature, names, shapes, dtypes) into a small model
//    (fuzz_model.hpp); when it loads, one inference and one training step with the loaded weights.
//  - trm::fit with resume (train_state.safetensors): load_train_state (weights, EMA, optimiser
//    moments, step, RNG, the batched carry), the fit state in its metadata ("trm.fit.state":
//    elapsed_s, cpu_s, the data source's position) and GeneratedSource::restore of that position;
//    when it resumes, fit runs exactly one training step, evaluates (an inference) and saves, and
//    the state it saved must load again.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <string>

#include "fuzz_model.hpp"
#include "fuzz_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace trm_fuzz;

// The source fit resumes: generated 4x4 puzzles. Its next() raises the caller's stop flag, so fit
// stops after the step it is taking.
struct OneStepSource {
  trm::data::GeneratedSource<Task4> inner{task(), 4, 1};
  std::atomic<bool>* stop;
  const trm::Batch& next() {
    stop->store(true);
    return inner.next();
  }
  std::string state() const { return inner.state(); }
  void restore(const std::string& s) { inner.restore(s); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  const fs::path run = scratch() / "run";
  fs::remove_all(run);
  fs::create_directories(run);

  expect_trm_errors([&] {
    write_file(run / "model.safetensors", bytes);
    TinyModel model = make_model();
    trm::load_model(model, run / "model.safetensors");
    (void)evaluate(model);
    TinyTrainer trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
    static const auto train_set = examples(4, 1);
    (void)trainer.step(trm::data::make_batch(task(), train_set));
  });

  expect_trm_errors([&] {
    fs::remove(run / "model.safetensors");
    write_file(run / "train_state.safetensors", bytes);
    TinyModel model = make_model();
    TinyTrainer trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
    std::atomic<bool> stop{false};
    OneStepSource source{.stop = &stop};
    const trm::FitOptions o{.max_steps = std::numeric_limits<long>::max(), .out_dir = run, .resume = true,
                            .progress = false, .plot = false, .stop_on_signal = false, .stop = &stop};
    const trm::FitResult r = trm::fit(trainer, source, [](const TinyModel& w) { return evaluate(w); }, o);
    TRM_FUZZ_CHECK(r.steps_this_run == 1);
    TinyModel again = make_model();
    TinyTrainer reloaded(again, trm::AdamW{.lr = 1e-3}, train_options());
    trm::load_train_state(reloaded, r.state_path);
    TRM_FUZZ_CHECK(reloaded.step_count() == trainer.step_count());
  });
  return 0;
}
