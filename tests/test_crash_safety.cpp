// Crash safety of trm::fit (hardening issue, item 6): a training run killed with SIGKILL at
// seeded random moments (during a step) and at fixed points inside the save window (before and
// after each of the three files of a checkpoint, through FitOptions::on_save) always leaves a
// loadable latest checkpoint, and resuming from it, kill after kill, ends with the same losses
// (bit for bit, hex-float logs of every training call), the same metrics.csv and the same final
// weights, optimiser state and carry as a run that was never interrupted.
//
// The run is tests/support/crash_child.cpp (4x4 Sudoku, a 32-wide model, a checkpoint every 2
// steps), started as a separate process so that SIGKILL hits a real process with real files.
#include <doctest/doctest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/fit_fixture.hpp"
#include "support/temp_dir.hpp"

extern char** environ;

namespace {

using namespace trm::test::fit_fixture;
namespace fs = std::filesystem;

constexpr long kSteps = 40;     // the run's budget; a checkpoint every 2 steps (crash_child.cpp)
constexpr long kEveryEval = 2;

struct Child {
  pid_t pid = -1;
  int out = -1;  // the child's stdout

  // The next line the child prints, or "" at end of file (the child has exited).
  std::string line() {
    std::string s;
    char c;
    while (::read(out, &c, 1) == 1) {
      if (c == '\n') return s;
      s += c;
    }
    return s;
  }
  // Waits for the child; its wait status.
  int wait() {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ::close(out);
    return status;
  }
};

Child spawn(const std::vector<std::string>& args) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  Child c;
  const int rc = ::posix_spawn(&c.pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  REQUIRE_MESSAGE(rc == 0, "cannot start " << args[0]);
  c.out = fds[0];
  return c;
}

std::vector<std::string> child_args(const fs::path& dir, const fs::path& log, const std::string& block = "") {
  std::vector<std::string> a = {TRM_CRASH_CHILD, dir.string(), std::to_string(kSteps), log.string()};
  if (!block.empty()) a.insert(a.end(), {"--block", block});
  return a;
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// metrics.csv without the columns that measure time (elapsed_s, steps_per_s, cpu_s): what must be
// identical between two runs of the same training.
std::vector<std::string> metrics_without_times(const fs::path& p) {
  std::vector<std::string> out;
  for (const auto& line : lines_of(p)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    for (std::size_t col : {2u, 11u, 19u})
      if (col < f.size()) f[col].clear();
    std::string joined;
    for (const auto& x : f) joined += x + ",";
    out.push_back(joined);
  }
  return out;
}

// Every tensor of a safetensors file, by name (the metadata holds times, so files differ).
std::map<std::string, std::vector<std::byte>> tensors_of(const fs::path& p) {
  std::map<std::string, std::vector<std::byte>> out;
  const auto f = trm::io::SafetensorsFile::load(p);
  for (const auto& [name, rec] : f.tensors()) out[name] = rec.data;
  return out;
}

// After a kill: whatever the run had saved loads. Returns the step of the training state, or -1
// when the run had not completed a save yet.
long check_latest_checkpoint(const fs::path& dir) {
  const fs::path state = dir / "train_state.safetensors", model_path = dir / "model.safetensors";
  if (!fs::exists(state)) {  // killed before the first save completed; a model written before the kill loads
    if (fs::exists(model_path)) {
      M weights = make_model();
      CHECK_NOTHROW(trm::load_model(weights, model_path));
    }
    return -1;
  }
  M model = make_model();
  trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
  REQUIRE_NOTHROW(trm::load_train_state(trainer, state));
  const long step = trainer.step_count();
  CHECK(step % kEveryEval == 0);
  // metrics.csv, then the model, are written before the state: each at the state's step or at
  // the next save's, and never behind the file written after it.
  REQUIRE(fs::exists(model_path));
  M weights = make_model();
  REQUIRE_NOTHROW(trm::load_model(weights, model_path));
  const long model_step = trm::read_fit_state(model_path)->at("step").get<long>();
  CHECK((model_step == step || model_step == step + kEveryEval));
  const auto metrics = lines_of(dir / "metrics.csv");
  CHECK(metrics.size() >= 2);
  CHECK((!metrics.empty() && metrics.back().rfind("eval,", 0) == 0));  // a save ends the file with its evaluation
  if (metrics.size() < 2 || metrics.back().rfind("eval,", 0) != 0) return step;
  const long metrics_step = std::stol(metrics.back().substr(5));
  CHECK(metrics_step >= model_step);
  CHECK(metrics_step <= step + kEveryEval);
  return step;
}

}  // namespace

TEST_CASE("crash safety: SIGKILL during steps and saves, then resume, gives the uninterrupted run bit for bit") {
  trm::test::TempDir work("trm_crash");
  // The uninterrupted run, and the time of one of its steps (for the random kills).
  const auto t0 = std::chrono::steady_clock::now();
  {
    Child c = spawn(child_args(work / "straight", work / "straight.log"));
    std::string last, l;
    while (!(l = c.line()).empty()) last = l;
    const int status = c.wait();
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    CHECK(last == "DONE " + std::to_string(kSteps));
  }
  const double step_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / double(kSteps);

  // The kills, in order: a point in the save window (FILE:before|after:N = the N-th save of that
  // child process) or "random" (after 1-3 reported steps, a seeded delay of up to 3 steps, which
  // includes the saves every 2 steps). Each child resumes from what the previous one left.
  const std::vector<std::string> plan = {"metrics.csv:before:1",   "model.safetensors:before:2", "random",
                                         "train_state.safetensors:before:1", "random",
                                         "train_state.safetensors:after:1",  "random",
                                         "metrics.csv:after:1",    "model.safetensors:after:1",  "random",
                                         "random",                 "random"};
  std::mt19937_64 rng(20261201);
  const fs::path run = work / "killed";
  std::vector<fs::path> logs;
  int kills = 0;
  for (std::size_t k = 0; k < plan.size(); ++k) {
    logs.push_back(work / ("killed." + std::to_string(k) + ".log"));
    const bool random = plan[k] == "random";
    Child c = spawn(child_args(run, logs.back(), random ? "" : plan[k]));
    std::string l;
    if (random) {
      const long after = 1 + long(rng() % 3);
      for (long seen = 0; seen < after && (l = c.line()).rfind("STEP", 0) == 0;) ++seen;
      const auto delay = std::chrono::duration<double>(step_s * 3.0 * double(rng() % 1000) / 1000.0);
      std::this_thread::sleep_for(delay);
    } else {
      while (!(l = c.line()).empty() && l.rfind("BLOCKED", 0) != 0) {
      }
      REQUIRE_MESSAGE(l.rfind("BLOCKED", 0) == 0, "kill " << k << " (" << plan[k] << "): the child never reached the point");
    }
    ::kill(c.pid, SIGKILL);
    const int status = c.wait();
    if (WIFEXITED(status)) {  // a random kill that came after the end of the run
      CHECK(WEXITSTATUS(status) == 0);
      break;
    }
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    ++kills;
    const long saved = check_latest_checkpoint(run);
    MESSAGE("kill " << k << " (" << plan[k] << "): the training state is at step " << saved);
  }
  CHECK(kills >= 10);

  // Resume to the end.
  logs.push_back(work / "killed.final.log");
  {
    Child c = spawn(child_args(run, logs.back()));
    std::string last, l;
    while (!(l = c.line()).empty()) last = l;
    const int status = c.wait();
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    CHECK(last == "DONE " + std::to_string(kSteps));
  }

  // Losses: every training call of every process, repeated ones included, equals the
  // uninterrupted run's call of the same step (hex floats: bit for bit), and every step ran.
  std::map<long, std::string> straight;
  for (const auto& line : lines_of(work / "straight.log")) straight[std::stol(line)] = line;
  REQUIRE(straight.size() == std::size_t(kSteps));
  std::map<long, int> ran;
  for (const auto& log : logs)
    for (const auto& line : lines_of(log)) {
      const long step = std::stol(line);
      ++ran[step];
      CHECK_MESSAGE(line == straight[step], "step " << step << " in " << log.filename().string());
    }
  CHECK(ran.size() == std::size_t(kSteps));
  long repeated = 0;
  for (const auto& [step, n] : ran) repeated += n - 1;
  MESSAGE(kills << " kills; " << repeated << " training calls were run again after a kill");

  CHECK(metrics_without_times(run / "metrics.csv") == metrics_without_times(work / "straight" / "metrics.csv"));
  CHECK(tensors_of(run / "train_state.safetensors") == tensors_of(work / "straight" / "train_state.safetensors"));
  CHECK(tensors_of(run / "model.safetensors") == tensors_of(work / "straight" / "model.safetensors"));
}
