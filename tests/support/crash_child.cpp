// The child process of tests/test_crash_safety.cpp: one tiny training run through trm::fit in
// OUT_DIR (resumed when OUT_DIR holds a training state), which the test kills with SIGKILL.
//
//   trm_crash_child OUT_DIR STEPS LOSS_LOG [--block FILE:before|after:N]
//
// Every training call appends "step total_loss lm_loss q_halt_loss accuracy" to LOSS_LOG, the
// values in C99 hex-float (%a), so that the test compares losses bit for bit, and prints
// "STEP n" on stdout. --block stops the process inside the save window: at the N-th save of
// this process, just before (or just after) FILE is written, it prints "BLOCKED ..." and waits
// for the kill (the FitOptions::on_save hook). At the end it prints "DONE n".
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "fit_fixture.hpp"

int main(int argc, char** argv) {
  using namespace trm::test::fit_fixture;
  if (argc != 4 && argc != 6) {
    std::fprintf(stderr, "usage: %s OUT_DIR STEPS LOSS_LOG [--block FILE:before|after:N]\n", argv[0]);
    return 2;
  }
  const std::filesystem::path out = argv[1];
  const long steps = std::atol(argv[2]);
  std::string block_file;
  bool block_written = false;
  int block_nth = 0;
  if (argc == 6) {
    const std::string spec = argv[5];
    const auto a = spec.find(':'), b = spec.rfind(':');
    if (std::string(argv[4]) != "--block" || a == std::string::npos || a == b) {
      std::fprintf(stderr, "bad --block spec '%s'\n", spec.c_str());
      return 2;
    }
    block_file = spec.substr(0, a);
    block_written = spec.substr(a + 1, b - a - 1) == "after";
    block_nth = std::atoi(spec.c_str() + b + 1);
  }
  std::FILE* log = std::fopen(argv[3], "a");
  if (!log) {
    std::perror(argv[3]);
    return 1;
  }
  try {
    const Task4 task(6);
    const auto set = eval_set(task, 4);
    M model = make_model();
    trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
    trm::data::GeneratedSource<Task4> source(task, 8, 1);
    int seen = 0;
    trm::FitOptions o{.max_steps = steps,
                      .eval_every = 2,
                      .log_every = 1,
                      .out_dir = out,
                      .resume = std::filesystem::exists(out / "train_state.safetensors"),
                      .progress = false,
                      .plot = false,
                      .stop_on_signal = false};
    o.on_step = [&](long step, const trm::StepMetrics& m) {
      // One fprintf + fflush: one write(), so a line is in the file whole or not at all.
      std::fprintf(log, "%ld %a %a %a %a\n", step, m.total_loss, m.lm_loss, m.q_halt_loss, m.accuracy);
      std::fflush(log);
      std::printf("STEP %ld\n", step);
      std::fflush(stdout);
    };
    o.on_save = [&](const std::filesystem::path& file, bool written) {
      if (file.filename() != block_file || written != block_written || ++seen != block_nth) return;
      std::printf("BLOCKED %s %s\n", block_file.c_str(), written ? "after" : "before");
      std::fflush(stdout);
      for (;;) ::pause();  // until SIGKILL
    };
    const auto r = trm::fit(trainer, source, [&](const M& w) { return evaluate(w, task, set); }, o);
    std::printf("DONE %ld\n", r.step);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trm_crash_child: %s\n", e.what());
    return 1;
  }
  return 0;
}
