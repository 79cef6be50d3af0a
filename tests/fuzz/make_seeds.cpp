// Writes the seed corpora of the harnesses (tests/fuzz/corpus/<harness>/lib_*) from the library
// itself, so that every seed is a valid file of today's formats: the fuzzer starts from inputs
// that pass each reader and mutates them into the deep checks. Re-run it after a format change:
//   cmake --build build-fuzz --target fuzz_make_seeds && build-fuzz/fuzz/fuzz_make_seeds tests/fuzz/corpus
// (tools/fuzz.sh builds it; the reproducers of past findings in the corpora are kept by hand).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <trm/data/maze/csv.hpp>
#include <trm/data/maze/generate.hpp>
#include <trm/data/sudoku/dataset.hpp>
#include <trm/io/npy.hpp>

#include "../support/temp_dir.hpp"
#include "fuzz_model.hpp"

namespace {

namespace fs = std::filesystem;
namespace sd = trm::data::sudoku;
namespace mz = trm::data::maze;
using namespace trm_fuzz;

fs::path out_root;

void put(const std::string& harness, const std::string& name, const std::string& bytes) {
  fs::create_directories(out_root / harness);
  std::ofstream(out_root / harness / ("lib_" + name), std::ios::binary) << bytes;
}
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
std::string as_text(const std::vector<std::byte>& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

void safetensors_and_npy() {
  trm::io::SafetensorsFile f;
  const std::vector<float> f32{1.5f, -2.0f, 0.0f, 3.25f, 1e-3f, 7.0f};
  const std::vector<double> f64{1.0, -1.0};
  const std::vector<std::int64_t> i64{1, -2, 3};
  const std::vector<std::int32_t> i32{4, 5, 6, 7};
  const std::vector<std::int16_t> i16{-8};
  const std::vector<std::int8_t> i8{9, -9};
  const std::vector<std::uint8_t> u8{0, 255};
  const bool b[] = {true, false, true};
  const trm::io::f16 h[] = {{0x3c00}, {0xc000}};
  const trm::io::bf16 bh[] = {{0x3f80}};
  f.add<float>("weights", {2, 3}, f32);
  f.add<double>("f64", {2}, f64);
  f.add<std::int64_t>("scalar_i64", {}, std::span<const std::int64_t>(i64.data(), 1));
  f.add<std::int64_t>("i64", {3}, i64);
  f.add<std::int32_t>("i32", {2, 2}, i32);
  f.add<std::int16_t>("i16", {1}, i16);
  f.add<std::int8_t>("i8", {2, 1}, i8);
  f.add<std::uint8_t>("u8", {2}, u8);
  f.add<bool>("flags", {3}, std::span<const bool>(b));
  f.add<trm::io::f16>("half", {2}, std::span<const trm::io::f16>(h));
  f.add<trm::io::bf16>("bhalf", {1}, std::span<const trm::io::bf16>(bh));
  f.add<float>("empty", {0, 4}, std::span<const float>());
  f.metadata = {{"format", "pt"}, {"note", "seed"}};
  put("safetensors", "all_dtypes.safetensors", as_text(f.serialize()));

  using trm::io::make_npy;
  using trm::io::serialize_npy;
  put("npy", "f32_2x3.npy", as_text(serialize_npy(make_npy<float>({2, 3}, f32))));
  put("npy", "f64.npy", as_text(serialize_npy(make_npy<double>({2}, f64))));
  put("npy", "i64_scalar.npy", as_text(serialize_npy(make_npy<std::int64_t>({}, std::span<const std::int64_t>(i64.data(), 1)))));
  put("npy", "i32_2x2.npy", as_text(serialize_npy(make_npy<std::int32_t>({2, 2}, i32))));
  put("npy", "i16.npy", as_text(serialize_npy(make_npy<std::int16_t>({1}, i16))));
  put("npy", "i8.npy", as_text(serialize_npy(make_npy<std::int8_t>({2, 1}, i8))));
  put("npy", "u8.npy", as_text(serialize_npy(make_npy<std::uint8_t>({2}, u8))));
  put("npy", "bool.npy", as_text(serialize_npy(make_npy<bool>({3}, std::span<const bool>(b)))));
  put("npy", "f16.npy", as_text(serialize_npy(make_npy<trm::io::f16>({2}, std::span<const trm::io::f16>(h)))));
  put("npy", "empty_0x4.npy", as_text(serialize_npy(make_npy<float>({0, 4}, std::span<const float>()))));
}

// A 4x4 reference dataset of 3 puzzles with 2 augmentations each, framed as fuzz_dataset reads it.
void dataset() {
  trm::test::TempDir dir("trm_fuzz_seeds");
  trm::Rng rng(11);
  std::vector<sd::Example<Shape4>> ex;
  for (int i = 0; i < 3; ++i) ex.push_back(sd::generate<Shape4>(rng, 6));
  const auto d = sd::write_reference_dataset<Shape4>(dir.path(), "train", ex, 2, rng);
  const char* files[] = {"train/dataset.json", "train/all__inputs.npy", "train/all__labels.npy",
                         "train/all__puzzle_identifiers.npy", "train/all__puzzle_indices.npy",
                         "train/all__group_indices.npy", "identifiers.json"};
  std::string framed;
  for (const char* f : files) framed += (framed.empty() ? "" : "--trm-fuzz-part--") + slurp(dir.path() / f);
  put("dataset", "sudoku4_framed", framed);
  const auto p = trm::data::PuzzleDataset::read(dir.path(), "train");
  trm::data::TrainSampler s(p, {.global_batch_size = 3, .seed = 5});
  (void)s.next();
  put("dataset", "sudoku4_framed_with_state", framed + "--trm-fuzz-part--" + s.state());
}

// A model and a training state written by trm::fit (two steps), for fuzz_checkpoint.
void checkpoints() {
  trm::test::TempDir dir("trm_fuzz_seeds");
  TinyModel model = make_model();
  TinyTrainer trainer(model, trm::AdamW{.lr = 1e-3}, train_options());
  trm::data::GeneratedSource<Task4> source(task(), 4, 1);
  const trm::FitOptions o{.max_steps = 2, .out_dir = dir.path(), .progress = false, .plot = false, .stop_on_signal = false};
  const auto r = trm::fit(trainer, source, [](const TinyModel& w) { return evaluate(w); }, o);
  put("checkpoint", "model.safetensors", slurp(r.model_path));
  put("checkpoint", "train_state.safetensors", slurp(r.state_path));
  put("safetensors", "model.safetensors", slurp(r.model_path));

  // The command line's metadata on a file with no tensors (read_checkpoint_info reads only it).
  const auto st = trm::io::SafetensorsFile::load(r.state_path);
  for (const char* spec : {R"({"task":"sudoku","size":"2x2","mixer":"mlp","hidden":64,"layers":2,"prefix":4,"n":2,"T":2,"N_sup":4})",
                           R"({"task":"maze","size":"30x30","mixer":"att","hidden":256,"layers":2,"prefix":4,"n":6,"T":3,"N_sup":16})"}) {
    trm::io::SafetensorsFile c;
    c.metadata = {{"trm.cli.model", spec},
                  {"trm.cli.train", R"({"batch":32,"lr":0.002,"optimizer":"adamw","seed":0,"ema":0.99,"data":"","holdout":[]})"},
                  {"trm.fit.state", st.metadata.at("trm.fit.state")}};
    put("cli_meta", std::string(spec).find("maze") != std::string::npos ? "maze30.safetensors" : "sudoku4.safetensors",
        as_text(c.serialize()));
  }
}

void puzzles() {
  trm::Rng rng(3);
  auto lines = [&]<class S>(int blanks, int count, bool with_solution) {
    std::string s;
    for (int i = 0; i < count; ++i) {
      const auto e = sd::generate<S>(rng, blanks);
      s += sd::to_string(e.puzzle) + (with_solution ? "," + sd::to_string(e.solution) : "") + "\n";
    }
    return s;
  };
  put("sudoku_csv", "4x4.csv", lines.template operator()<sd::Sudoku4>(6, 3, true));
  put("sudoku_csv", "6x6_puzzles_only.csv", lines.template operator()<sd::Sudoku6>(12, 2, false));
  put("sudoku_csv", "9x9_header.csv", "# tdoku-style comment\r\nsource,question,answer,rating\r\nx," +
                                          [&] {
                                            const auto e = sd::generate<sd::Sudoku9>(rng, 40);
                                            return sd::to_string(e.puzzle) + "," + sd::to_string(e.solution);
                                          }() + ",1\r\n");

  std::vector<mz::MazeExample> small, big;
  for (int i = 0; i < 2; ++i) small.push_back(mz::generate(rng, {.rows = 9, .cols = 9}));
  big.push_back(mz::generate(rng, {.rows = 30, .cols = 30}));
  put("maze", "9x9.csv", mz::to_csv(small));
  put("maze", "30x30.csv", mz::to_csv(big));
  put("maze", "9x9_quoted.csv", "source,question,answer,rating\n\"a\"\"b\",\"" + small[0].question.to_field() + "\"," +
                                    small[0].answer.to_field() + ",\"7\"\n");
  put("maze", "text.txt", "; two mazes\n" + small[0].question.to_text() + "\n" + small[1].answer.to_text());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (e.g. tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  out_root = argv[1];
  safetensors_and_npy();
  dataset();
  checkpoints();
  puzzles();
  return 0;
}
