// libFuzzer harness: the reference dataset directory (trm::data::PuzzleDataset::read: dataset.json,
// the five npy arrays of set "all", identifiers.json), its samplers and the sampler's saved
// position (TrainSampler::restore), and the Sudoku reference reader on the same directory.
//
// Framing: the input is split at each occurrence of the separator below (in the dictionary, so
// the fuzzer keeps the parts apart); part k is written to file k of kFiles, and files beyond the
// last part are not written at all (a missing file is one of the cases). Part 7, if present, is
// the saved sampler position (JSON text), restored into a sampler of the dataset read.
//   0 train/dataset.json        3 train/all__puzzle_identifiers.npy   6 identifiers.json
//   1 train/all__inputs.npy     4 train/all__puzzle_indices.npy       7 (sampler state)
//   2 train/all__labels.npy     5 train/all__group_indices.npy
// An accepted dataset is sampled (every evaluation batch, a few training batches), written out
// and read back to the same content, and restore(state()) must continue the same batches.
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <trm/data/puzzle_dataset.hpp>
#include <trm/data/sudoku/dataset.hpp>

#include "fuzz_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace td = trm::data;

constexpr std::string_view kSeparator = "--trm-fuzz-part--";
constexpr std::array<const char*, 7> kFiles = {
    "train/dataset.json",           "train/all__inputs.npy",         "train/all__labels.npy",
    "train/all__puzzle_identifiers.npy", "train/all__puzzle_indices.npy", "train/all__group_indices.npy",
    "identifiers.json"};

std::vector<std::string_view> split_parts(std::string_view in) {
  std::vector<std::string_view> parts;
  for (;;) {
    const auto k = in.find(kSeparator);
    if (k == std::string_view::npos) {
      parts.push_back(in);
      return parts;
    }
    parts.push_back(in.substr(0, k));
    in.remove_prefix(k + kSeparator.size());
  }
}

bool same_batch(const td::SampledBatch& a, const td::SampledBatch& b) {
  auto eq = [](const auto& x, const auto& y) {
    return x.size() == y.size() && std::equal(x.span().begin(), x.span().end(), y.span().begin());
  };
  return a.set == b.set && a.iteration == b.iteration && a.examples == b.examples && a.puzzles == b.puzzles &&
         eq(a.batch.inputs, b.batch.inputs) && eq(a.batch.labels, b.batch.labels) &&
         eq(a.batch.puzzle_identifiers, b.batch.puzzle_identifiers);
}

void use(const td::PuzzleDataset& d, const fs::path& dir, const std::vector<std::string_view>& parts) {
  d.validate(dir, "train");
  {
    td::EvalSampler eval(d, {.global_batch_size = 4});
    std::int64_t rows = 0;
    while (auto b = eval.next()) rows += b->effective_size;
    TRM_FUZZ_CHECK(rows == d.total_examples());
  }
  // What read() accepted, write() writes and read() reads back to the same content: any error
  // there is a finding (outside expect_trm_errors, an error is not a normal outcome here).
  try {
    const fs::path copy = trm_fuzz::scratch() / "copy";
    fs::remove_all(copy);
    d.write(copy, "train");
    const auto e = td::PuzzleDataset::read(copy, "train");
    TRM_FUZZ_CHECK(e.metadata == d.metadata && e.sets == d.sets);
    TRM_FUZZ_CHECK(d.identifiers.empty() || e.identifiers == d.identifiers);  // none: write() makes ["<blank>"]
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trm_fuzz: write/read round trip of an accepted dataset failed: %s\n", e.what());
    trm_fuzz::invariant_failed("PuzzleDataset::write then read");
  }
  trm_fuzz::expect_trm_errors([&] {  // a dataset the reference cannot sample (an empty group) is refused here
    td::TrainSampler a(d, {.global_batch_size = 3, .seed = 5});
    (void)a.next();
    const std::string saved = a.state();
    td::TrainSampler b(d, {.global_batch_size = 3, .seed = 5});
    b.restore(saved);
    TRM_FUZZ_CHECK(same_batch(a.next(), b.next()));
    if (parts.size() > 7) {
      b.restore(std::string(parts[7]));
      (void)b.next();
      (void)b.state();
    }
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto parts = split_parts(input);
  const fs::path dir = trm_fuzz::scratch() / "dataset";
  fs::remove_all(dir);
  fs::create_directories(dir / "train");
  for (std::size_t k = 0; k < parts.size() && k < kFiles.size(); ++k) trm_fuzz::write_file(dir / kFiles[k], parts[k]);

  trm_fuzz::expect_trm_errors([&] { use(td::PuzzleDataset::read(dir, "train"), dir, parts); });
  trm_fuzz::expect_trm_errors([&] {
    (void)td::sudoku::read_reference_dataset<td::sudoku::Sudoku4>(dir, "train", {.check_unique = true});
  });
  return 0;
}
