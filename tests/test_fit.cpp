// trm::fit (the library's training driver), its data sources and trm::Evaluator: budgets, files,
// resume giving the same trajectory as an uninterrupted run, a caller's stop, the sampler's saved
// position, and the one-run evaluation against two separate Solver runs.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <limits>
#include <string>

#include <trm/data/maze/task.hpp>
#include <trm/data/sources.hpp>
#include <trm/data/sudoku/task.hpp>
#include <trm/train/fit.hpp>
#include <trm/trm.hpp>

#include <nlohmann/json.hpp>

#include "support/check_throws.hpp"
#include "support/fit_fixture.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace trm::test::fit_fixture;

int count_lines(const std::filesystem::path& p, const std::string& prefix) {
  std::ifstream in(p);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.rfind(prefix, 0) == 0;
  return n;
}

}  // namespace

TEST_CASE("fit: a step budget, periodic evaluation, checkpoints and metrics") {
  trm::test::TempDir dir("trm_fit");
  const Task4 task(6);
  const auto set = eval_set(task, 8);
  M model = make_model();
  trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
  trm::data::GeneratedSource<Task4> source(task, 8, 1);
  int evaluations = 0;
  trm::FitOptions o{.max_steps = 6, .eval_every = 3, .log_every = 2, .out_dir = dir.path(), .progress = false, .plot = false};
  const trm::FitResult r = trm::fit(trainer, source, [&](const M& w) { ++evaluations; return evaluate(w, task, set); }, o);
  CHECK(r.step == 6);
  CHECK(r.steps_this_run == 6);
  CHECK(evaluations == 2);  // steps 3 and 6 (the end coincides with the last periodic one)
  CHECK_FALSE(r.interrupted);
  CHECK(r.weights == "ema");
  CHECK(r.final_eval.count == 8);
  CHECK(r.final_eval.has_valid());
  CHECK(std::filesystem::exists(r.model_path));
  CHECK(std::filesystem::exists(r.state_path));
  CHECK(count_lines(r.metrics_path, "train,") == 3);
  CHECK(count_lines(r.metrics_path, "eval,") == 2);
  CHECK(count_lines(r.metrics_path, trm::fit_metrics_header) == 1);
  // Every row has the header's columns, and the eval row's values sit under their names.
  {
    auto split = [](const std::string& line) {
      std::vector<std::string> f;
      std::size_t a = 0;
      for (std::size_t b; (b = line.find(',', a)) != std::string::npos; a = b + 1) f.push_back(line.substr(a, b - a));
      f.push_back(line.substr(a));
      return f;
    };
    std::ifstream in(r.metrics_path);
    std::string line;
    std::getline(in, line);
    const auto header = split(line);
    std::vector<std::string> last_eval;
    while (std::getline(in, line)) {
      CHECK(split(line).size() == header.size());
      if (line.rfind("eval,", 0) == 0) last_eval = split(line);
    }
    REQUIRE(last_eval.size() == header.size());
    auto column = [&](const std::string& name) {
      const auto it = std::find(header.begin(), header.end(), name);
      REQUIRE(it != header.end());
      return last_eval[std::size_t(it - header.begin())];
    };
    CHECK(std::stod(column("eval_exact")) == doctest::Approx(r.final_eval.exact).epsilon(1e-4));
    CHECK(std::stod(column("eval_cells")) == doctest::Approx(r.final_eval.cells).epsilon(1e-4));
    CHECK(std::stod(column("eval_valid")) == doctest::Approx(r.final_eval.valid).epsilon(1e-4));
    CHECK(std::stoll(column("eval_count")) == 8);
    CHECK(column("eval_weights") == "ema");
    CHECK(std::stol(column("step")) == 6);
  }
  const auto st = trm::read_fit_state(r.model_path);
  REQUIRE(st);
  CHECK(st->at("step").get<long>() == 6);
  CHECK(st->at("weights").get<std::string>() == "ema");
  // The saved model is the evaluated (EMA) one.
  M loaded(trm::ModelArgs<Tiny>{.schedule = trm::TrmRecursion<>(1, 2), .halting = trm::BceHalting<>(2),
                                .puzzle_ids = trm::checkpoint_puzzle_ids(r.model_path)});
  trm::load_model(loaded, r.model_path);
  CHECK(weights_of(loaded) == weights_of(trainer.ema_model()));
}

TEST_CASE("fit: stopped and resumed, the run continues the same trajectory bit for bit") {
  const Task4 task(6);
  const auto set = eval_set(task, 4);
  auto eval = [&](const M& w) { return evaluate(w, task, set); };
  std::vector<float> straight, straight_ema;
  {
    trm::test::TempDir dir("trm_fit_a");
    M model = make_model();
    trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
    trm::data::GeneratedSource<Task4> source(task, 8, 1);
    trm::fit(trainer, source, eval, {.max_steps = 8, .out_dir = dir.path(), .progress = false, .plot = false});
    straight = weights_of(model);
    straight_ema = weights_of(trainer.ema_model());
  }
  trm::test::TempDir dir("trm_fit_b");
  {
    M model = make_model();
    trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
    trm::data::GeneratedSource<Task4> source(task, 8, 1);
    const auto r = trm::fit(trainer, source, eval, {.max_steps = 5, .out_dir = dir.path(), .progress = false, .plot = false});
    CHECK(r.step == 5);
  }
  // A fresh process: new model, trainer and source, all restored from the directory.
  M model = make_model();
  trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
  trm::data::GeneratedSource<Task4> source(task, 8, 12345);  // another seed: its position comes from the state
  const auto r = trm::fit(trainer, source, eval,
                          {.max_steps = 8, .out_dir = dir.path(), .resume = true, .progress = false, .plot = false});
  CHECK(r.step == 8);
  CHECK(r.steps_this_run == 3);
  CHECK(weights_of(model) == straight);
  CHECK(weights_of(trainer.ema_model()) == straight_ema);
  CHECK(count_lines(r.metrics_path, "eval,") == 2);  // step 5 (first run) and step 8
}

TEST_CASE("fit: a caller's stop flag ends the run cleanly, with the weights evaluated and saved") {
  trm::test::TempDir dir("trm_fit_stop");
  const Task4 task(6);
  const auto set = eval_set(task, 4);
  M model = make_model();
  trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
  trm::data::GeneratedSource<Task4> source(task, 8, 1);
  std::atomic<bool> stop{false};
  int evals = 0;
  auto eval = [&](const M& w) {
    ++evals;
    return evaluate(w, task, set);
  };
  // The source raises the flag after 2 batches, as a signal would.
  struct StoppingSource {
    trm::data::GeneratedSource<Task4>& inner;
    std::atomic<bool>& stop;
    int calls = 0;
    const trm::Batch& next() {
      if (++calls == 2) stop = true;
      return inner.next();
    }
    std::string state() const { return inner.state(); }
    void restore(const std::string& s) { inner.restore(s); }
  } stopping{source, stop};
  static_assert(trm::TrainingSource<StoppingSource>);
  const auto r = trm::fit(trainer, stopping, eval,
                          {.max_steps = 100, .out_dir = dir.path(), .progress = false, .plot = false, .stop = &stop});
  CHECK(r.interrupted);
  CHECK(r.step == 2);
  CHECK(evals == 1);
  CHECK(std::filesystem::exists(r.model_path));
}

TEST_CASE("fit: bad options are refused before anything is written") {
  trm::test::TempDir dir("trm_fit_bad");
  const Task4 task(6);
  M model = make_model();
  trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
  trm::data::GeneratedSource<Task4> source(task, 8, 1);
  auto eval = [&](const M&) { return trm::EvalReport{}; };
  CHECK_THROWS_CONTAINING(trm::fit(trainer, source, eval, {.progress = false}), trm::ValueError, "give a training budget");
  CHECK_THROWS_CONTAINING(trm::fit(trainer, source, eval, {.max_steps = 1, .lr_min_ratio = 2, .progress = false}),
                          trm::ValueError, "lr_min_ratio", "[0, 1]", "found 2");
  CHECK_THROWS_CONTAINING(
      trm::fit(trainer, source, eval, {.max_steps = 1, .out_dir = dir / "nothing_here", .resume = true, .progress = false}),
      trm::ValueError, "no training state to resume");
  CHECK(trainer.step_count() == 0);
}

TEST_CASE("fit: a diverged run stops with an error and saves nothing") {
  trm::test::TempDir dir("trm_fit_nan");
  const Task4 task(6);
  M model = make_model();
  // beta1 = 1: the bias correction divides by 1 - beta1^t = 0, the weights become NaN while the
  // gradients of the first call are finite.
  trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3, .beta1 = 1.0}, train_options());
  trm::data::GeneratedSource<Task4> source(task, 8, 1);
  auto eval = [&](const M&) { return trm::EvalReport{}; };
  // (error_of runs the call once: a second fit would continue from the NaN weights.)
  const std::string msg = trm::test::error_of<trm::NonFiniteError>(
      [&] { trm::fit(trainer, source, eval, {.max_steps = 5, .out_dir = dir.path(), .progress = false, .plot = false}); });
  INFO(msg);
  for (const char* part : {"fit: Trainer::step: step 1: the update made weight '", "non-finite: element 0 [", "] = nan",
                           "beta1 < 1", "nothing was saved after it; no checkpoint was written in"})
    CHECK(msg.find(part) != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "model.safetensors"));
  CHECK_FALSE(std::filesystem::exists(dir / "train_state.safetensors"));
}

TEST_CASE("fit: a run that diverges after a checkpoint keeps the last good one, byte for byte") {
  trm::test::TempDir dir("trm_fit_nan_later");
  const Task4 task(6);
  auto eval = [&](const M&) { return trm::EvalReport{}; };
  {
    M model = make_model();
    trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
    trm::data::GeneratedSource<Task4> source(task, 8, 1);
    trm::fit(trainer, source, eval, {.max_steps = 4, .eval_every = 2, .out_dir = dir.path(), .progress = false, .plot = false});
  }
  const auto model_bytes = trm::io::read_file(dir / "model.safetensors");
  const auto state_bytes = trm::io::read_file(dir / "train_state.safetensors");
  const auto metrics_bytes = trm::io::read_file(dir / "metrics.csv");
  // Resumed with beta1 = 1 (not part of the saved state): step 5's update makes the weights NaN.
  M model = make_model();
  trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3, .beta1 = 1.0}, train_options());
  trm::data::GeneratedSource<Task4> source(task, 8, 1);
  const std::string msg = trm::test::error_of<trm::NonFiniteError>([&] {
    trm::fit(trainer, source, eval,
             {.max_steps = 8, .eval_every = 2, .out_dir = dir.path(), .resume = true, .progress = false, .plot = false});
  });
  CHECK(msg.find("step 5: the update made weight '") != std::string::npos);
  CHECK(msg.find("keeps the checkpoints of step 4") != std::string::npos);
  CHECK(trm::io::read_file(dir / "model.safetensors") == model_bytes);
  CHECK(trm::io::read_file(dir / "train_state.safetensors") == state_bytes);
  CHECK(trm::io::read_file(dir / "metrics.csv") == metrics_bytes);
}

TEST_CASE("Trainer: a non-finite gradient is reported by parameter and first element, before any update") {
  const Task4 task(6);
  trm::data::GeneratedSource<Task4> source(task, 8, 1);
  const trm::Batch batch = source.next();
  // A weight of the output head at +inf: the forward pass and every gradient upstream of it go
  // non-finite. The gradients an unchecked call leaves in the parameters say which tensor and
  // element the check must name: the first bad element of the first bad parameter, in
  // for_each_parameter order (the checkpoint's names).
  auto poisoned = [] {
    M m = make_model();
    m.lm_head.weight.value(3, 5) = std::numeric_limits<float>::infinity();
    return m;
  };
  M reference = poisoned();
  trm::TrainOptions unchecked = train_options();
  unchecked.check_finite = false;
  trm::Trainer<M, trm::AdamW> probe(reference, trm::AdamW{.lr = 1e-3}, unchecked);
  probe.step(batch, /*update=*/false);
  std::string name;
  std::ptrdiff_t index = -1;
  reference.for_each_parameter([&](const std::string& n, auto& p) {
    if (index >= 0) return;
    const auto g = p.grad.span();
    for (std::size_t i = 0; i < g.size(); ++i)
      if (!std::isfinite(g[i])) {
        name = n;
        index = std::ptrdiff_t(i);
        break;
      }
  });
  REQUIRE(index >= 0);

  M model = poisoned();
  const auto before = weights_of(model);
  trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
  const std::string msg = trm::test::error_of<trm::NonFiniteError>([&] { trainer.step(batch); });
  INFO(msg);
  CHECK(msg.find("Trainer::step: step 1: the gradient of '" + name + "'") != std::string::npos);
  CHECK(msg.find("is not finite: element " + std::to_string(index) + " [") != std::string::npos);
  CHECK(msg.find("the weights were not updated") != std::string::npos);
  // Nothing was updated or counted, and the gradients were cleared.
  CHECK(trainer.step_count() == 0);
  CHECK(weights_of(model) == before);  // +inf == +inf: the poisoned weight compares equal
  model.for_each_parameter([](const std::string&, auto& p) {
    for (float g : p.grad.span()) CHECK(g == 0.0f);
  });
}

TEST_CASE("Trainer: the finite checks' element text, and check_finite = false turns them off") {
  using trm::detail::first_non_finite;
  using trm::detail::non_finite_element;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> v(37, 1.0f);
  CHECK(first_non_finite(std::span<const float>(v)) == -1);
  CHECK(first_non_finite(std::span<const float>()) == -1);
  v[30] = -inf;
  v[33] = nan;
  CHECK(first_non_finite(std::span<const float>(v)) == 30);
  v[30] = std::numeric_limits<float>::max();  // large but finite
  CHECK(first_non_finite(std::span<const float>(v)) == 33);
  const std::vector<double> d = {0.0, 1e308, std::numeric_limits<double>::infinity()};
  CHECK(first_non_finite(std::span<const double>(d)) == 2);
  CHECK(non_finite_element(4, {2, 3}, nan) == "element 4 [1, 1] = nan");
  CHECK(non_finite_element(23, {2, 3, 4}, -inf) == "element 23 [1, 2, 3] = -inf");
  CHECK(non_finite_element(6, {7}, inf) == "element 6 [6] = inf");

  // Off: the same beta1 = 1 run trains on with NaN weights (fit's loss check still stops it).
  M model = make_model();
  trm::TrainOptions o = train_options();
  o.check_finite = false;
  trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3, .beta1 = 1.0}, o);
  const Task4 task(6);
  trm::data::GeneratedSource<Task4> source(task, 8, 1);
  CHECK_NOTHROW(trainer.step(source.next()));
  CHECK(std::isnan(trainer.model().lm_head.weight.value(0, 0)));
  auto eval = [&](const M&) { return trm::EvalReport{}; };
  const std::string msg =
      trm::test::error_of<trm::NonFiniteError>([&] { trm::fit(trainer, source, eval, {.max_steps = 3, .progress = false, .plot = false}); });
  CHECK(msg.find("fit: the training loss is not finite (") != std::string::npos);
  CHECK(msg.find(") at step 2: the run diverged") != std::string::npos);
}

TEST_CASE("checkpoints: 4 bytes flipped inside a weight tensor are refused by name (fuzz finding)") {
  trm::test::TempDir dir("trm_ckpt_flip");
  M model = make_model();
  trm::save_model(model, dir / "model.safetensors");
  auto image = trm::io::read_file(dir / "model.safetensors");
  // Where lm_head.weight's bytes are: the header's offsets, after the 8-byte length and the header.
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::to_integer<std::uint64_t>(image[std::size_t(i)]) << (8 * i);
  const auto header = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(image.data()) + 8, n));
  const std::size_t begin = 8 + n + header.at("lm_head.weight").at("data_offsets")[0].get<std::size_t>();
  for (std::size_t k = 0; k < 4; ++k) image[begin + 40 + k] ^= std::byte{0x5a};  // a finite value stays finite
  trm::io::write_file_atomically(dir / "flipped.safetensors", image);
  M target = make_model();
  const auto before = weights_of(target);
  CHECK_THROWS_CONTAINING(trm::load_model(target, dir / "flipped.safetensors"), trm::io::FormatError,
                          "flipped.safetensors: tensor 'lm_head.weight': checksum mismatch");
  CHECK(weights_of(target) == before);
  CHECK_NOTHROW(trm::load_model(target, dir / "model.safetensors"));

  // The training state too: every tensor (weights, moments, carry, step, RNG) carries its sum.
  const Task4 task(6);
  trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
  trm::data::GeneratedSource<Task4> source(task, 8, 1);
  trainer.step(source.next());
  trm::save_train_state(trainer, dir / "state.safetensors");
  const auto state = trm::io::SafetensorsFile::load(dir / "state.safetensors");
  CHECK(state.has_checksums());
  auto simage = trm::io::read_file(dir / "state.safetensors");
  std::uint64_t sn = 0;
  for (int i = 0; i < 8; ++i) sn |= std::to_integer<std::uint64_t>(simage[std::size_t(i)]) << (8 * i);
  const auto sheader = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(simage.data()) + 8, sn));
  simage[8 + sn + sheader.at("optim.v.lm_head.weight").at("data_offsets")[0].get<std::size_t>()] ^= std::byte{1};
  trm::io::write_file_atomically(dir / "state_flipped.safetensors", simage);
  M other = make_model();
  trm::Trainer<M, trm::AdamW> loader(other, trm::AdamW{.lr = 1e-3}, train_options());
  CHECK_THROWS_CONTAINING(trm::load_train_state(loader, dir / "state_flipped.safetensors"), trm::io::FormatError,
                          "tensor 'optim.v.lm_head.weight': checksum mismatch");
  CHECK(loader.step_count() == 0);
}

TEST_CASE("TrainSampler: restore(state()) continues the same batches") {
  const trm::data::maze::MazeTask<5> task;
  trm::Rng rng(5);
  std::vector<trm::data::maze::MazeExample> mazes;
  for (int i = 0; i < 40; ++i) {
    const auto e = task.generate(rng);
    mazes.push_back({"t", e.question, e.answer, "0"});
  }
  const auto d = trm::data::maze::build_split(mazes, true, {.aug = true});
  trm::data::TrainSampler a(d, {.global_batch_size = 24, .seed = 11});
  for (int i = 0; i < 17; ++i) a.next();  // several passes (320 examples / 24 per batch)
  const std::string saved = a.state();
  trm::data::TrainSampler b(d, {.global_batch_size = 24, .seed = 11});
  b.restore(saved);
  for (int i = 0; i < 20; ++i) {
    const auto x = a.next(), y = b.next();
    CHECK(x.examples == y.examples);
    CHECK(x.iteration == y.iteration);
  }
  trm::data::TrainSampler other(d, {.global_batch_size = 16, .seed = 11});
  CHECK_THROWS_CONTAINING(other.restore(saved), trm::ValueError, "batch 24", "this one has batch 16");
  CHECK_THROWS_CONTAINING(other.restore("{"), trm::ValueError, "expected valid JSON");
  CHECK_THROWS_CONTAINING(other.restore(std::string(100000, '[')), trm::ValueError, "nested at most 64 levels");
  CHECK_THROWS_CONTAINING(other.restore("{\"iteration\": 1}"), trm::ValueError, "malformed state");
}

TEST_CASE("Evaluator: one run scores both readings as two Solver runs would") {
  const Task4 task(8);
  const auto set = eval_set(task, 12);
  M model = make_model();
  {  // a few steps so the halting head is not at its initial value
    trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 3e-3}, train_options());
    trm::data::GeneratedSource<Task4> source(task, 8, 2);
    for (int i = 0; i < 10; ++i) trainer.step(source.next());
  }
  const trm::Batch b = trm::data::make_batch(task, set);
  trm::Solver<M> solver(model);
  const auto full = solver.solve(b, trm::EarlyExit::off);
  const auto early = solver.solve(b, trm::EarlyExit::on);
  const auto both = solver.solve_both(b);
  CHECK(both.all_steps.predictions.span().size() == full.predictions.span().size());
  CHECK(std::equal(full.predictions.span().begin(), full.predictions.span().end(), both.all_steps.predictions.span().begin()));
  CHECK(std::equal(early.predictions.span().begin(), early.predictions.span().end(), both.early_exit.predictions.span().begin()));
  CHECK(early.steps_used == both.early_exit.steps_used);
  // The report: exact over every label, cells over the positions the answer changes (the blanks).
  long exact = 0, cells = 0, right = 0;
  for (trm::index_t r = 0; r < b.size(); ++r) {
    bool all = true;
    for (trm::index_t t = 0; t < b.inputs.extent(1); ++t) {
      const bool ok = full.predictions(r, t) == b.labels(r, t);
      all = all && ok;
      if (b.inputs(r, t) != b.labels(r, t)) ++cells, right += ok;
    }
    exact += all;
  }
  const auto rep = evaluate(model, task, set);
  CHECK(rep.count == 12);
  CHECK(rep.exact == doctest::Approx(double(exact) / 12));
  CHECK(rep.cells == doctest::Approx(double(right) / double(cells)));
  CHECK(cells == 12 * 8);  // 8 blanks per puzzle
  CHECK(rep.valid >= rep.exact);  // an exact answer is a valid one
  CHECK_THROWS_CONTAINING(trm::Evaluator<M>(model).add(b, b.size() + 1), trm::ValueError, "real rows");
}

TEST_CASE("MazeTask: a Task with generator, solver, augmentations and inverses") {
  using T = trm::data::maze::MazeTask<7>;
  static_assert(trm::data::GeneratingTask<T> && trm::data::SolvingTask<T> && trm::data::AugmentingTask<T>);
  const T task;
  trm::Rng rng(1);
  for (int i = 0; i < 10; ++i) {
    const auto e = task.generate(rng);
    CHECK(trm::data::maze::solve(e.question).unique());
    CHECK(task.is_valid_answer(e.question, e.answer));
    CHECK(task.solve(e.question) == std::optional(e.answer));
    for (int k = 0; k < 8; ++k) {
      const auto q = task.augment(e.question, k), a = task.augment(e.answer, k);
      CHECK(task.is_valid_answer(q, a));
      CHECK(task.invert(task.encode(a), k) == task.encode(e.answer));
    }
  }
  CHECK_THROWS_CONTAINING(task.encode(trm::data::maze::Maze(9, 9)), trm::ShapeError, "expected a 7x7 maze, found 9x9");
  using Wide = trm::data::maze::MazeTask<5, 7>;
  CHECK_THROWS_CONTAINING(Wide().augment(trm::data::maze::Maze(5, 7), 1), trm::ValueError, "swaps the sides");
}

TEST_CASE("load_train_state: crafted values and carry shapes are refused before anything is committed (findings 2, 3)") {
  trm::test::TempDir dir("trm_state_crafted");
  const Task4 task(6);
  M model = make_model();
  trm::Trainer<M, trm::AdamW> trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
  trm::data::GeneratedSource<Task4> source(task, 8, 1);
  trainer.step(source.next());
  trm::save_train_state(trainer, dir / "good.safetensors");
  const auto good = trm::io::SafetensorsFile::load(dir / "good.safetensors");
  // A copy of the good state with one tensor replaced.
  auto crafted = [&](const std::string& name, trm::io::TensorRecord rec) {
    trm::io::SafetensorsFile f;
    f.metadata = good.metadata;
    for (const auto& n : good.names()) f.add(n == name ? rec : good.at(n));
    const auto p = dir / ("crafted_" + name + ".safetensors");
    f.save(p);
    return p;
  };
  auto i64 = [](std::string name, std::vector<std::int64_t> shape, std::vector<std::int64_t> v) {
    return trm::io::TensorRecord{std::move(name), trm::io::DType::I64, std::move(shape),
                                 std::vector<std::byte>(reinterpret_cast<const std::byte*>(v.data()),
                                                        reinterpret_cast<const std::byte*>(v.data() + v.size()))};
  };
  auto i32 = [](std::string name, std::vector<std::int64_t> shape, std::vector<std::int32_t> v) {
    return trm::io::TensorRecord{std::move(name), trm::io::DType::I32, std::move(shape),
                                 std::vector<std::byte>(reinterpret_cast<const std::byte*>(v.data()),
                                                        reinterpret_cast<const std::byte*>(v.data() + v.size()))};
  };
  M other = make_model();
  trm::Trainer<M, trm::AdamW> loader(other, trm::AdamW{.lr = 1e-3}, train_options());
  const auto before = weights_of(other);
  CHECK_THROWS_CONTAINING(trm::load_train_state(loader, crafted("state.step", i64("state.step", {1}, {-1}))),
                          trm::io::FormatError, "state.step: expected 0..2^53, found -1");
  CHECK_THROWS_CONTAINING(
      trm::load_train_state(loader, crafted("state.step", i64("state.step", {1}, {std::numeric_limits<std::int64_t>::max()}))),
      trm::io::FormatError, "state.step");
  CHECK_THROWS_CONTAINING(trm::load_train_state(loader, crafted("state.rng", i64("state.rng", {4}, {0, 0, 0, 0}))),
                          trm::io::FormatError, "state.rng", "all zeros");
  CHECK_THROWS_CONTAINING(trm::load_train_state(loader, crafted("carry.steps", i32("carry.steps", {std::int64_t(1) << 40, 0}, {}))),
                          trm::io::FormatError, "carry.steps: expected an I32 tensor of shape [B]", "[1099511627776, 0]");
  // A valid carry.steps of 2^16 rows (256 KB) asked for 2^16 * total_len * hidden floats of
  // carry.y and carry.z before their shapes were checked (tests/fuzz: size amplification): now
  // refused before any allocation, naming the shape carry.steps implies.
  CHECK_THROWS_CONTAINING(
      trm::load_train_state(loader, crafted("carry.steps", i32("carry.steps", {65536}, std::vector<std::int32_t>(65536, 0)))),
      trm::io::FormatError, "carry.y: expected an F32 tensor of shape [65536, ", "(B = 65536 from carry.steps), found F32 [8, ");
  std::vector<std::int32_t> steps(8, 0);
  steps[3] = std::numeric_limits<std::int32_t>::max();
  CHECK_THROWS_CONTAINING(trm::load_train_state(loader, crafted("carry.steps", i32("carry.steps", {8}, steps))),
                          trm::io::FormatError, "carry.steps[3]: expected 0..2 (N_sup), found 2147483647");
  std::vector<std::int32_t> inputs(8 * 16, 2);
  inputs[5] = 99;
  CHECK_THROWS_CONTAINING(trm::load_train_state(loader, crafted("carry.inputs", i32("carry.inputs", {8, 16}, inputs))),
                          trm::io::FormatError, "carry.inputs[5]", "found 99");
  CHECK(weights_of(other) == before);  // nothing committed
  CHECK(loader.step_count() == 0);
  CHECK_NOTHROW(trm::load_train_state(loader, dir / "good.safetensors"));
  CHECK(loader.step_count() == 1);
}
