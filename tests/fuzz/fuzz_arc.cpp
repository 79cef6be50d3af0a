// libFuzzer harness: the ARC readers (trm/data/arc/grid.hpp, evaluate.hpp): the input as one
// task file, as test_puzzles.json, and as Kaggle's challenges + solutions (split at the first
// NUL byte, when there is one); then, for what was accepted, the grid round trip through JSON,
// the test_puzzles.json round trip through the Python-style writer, the augmentations and their
// inverses, the canvas and crop, a small dataset build and puzzle-name parsing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <trm/data/arc.hpp>

#include "fuzz_support.hpp"

namespace {

namespace arc = trm::data::arc;

void check_tasks(const std::vector<arc::Task>& tasks) {
  // test_puzzles.json as we write it reads back to the same tasks (placeholders become outputs).
  const std::string text = trm::io::dump_like_python(arc::tasks_to_json(tasks));
  const auto back = arc::parse_test_puzzles(text, "round-trip");
  TRM_FUZZ_CHECK(back.size() <= tasks.size());  // a repeated id keeps one entry
  arc::Augmentation a;
  a.tid = int(tasks.size() % 8);
  a.colour_map = {0, 9, 8, 7, 6, 5, 4, 3, 2, 1};
  std::size_t cells = 0;
  for (const auto& t : tasks)
    for (const auto* pairs : {&t.train, &t.test})
      for (const auto& p : *pairs)
        for (const auto* g : {&p.input, &p.output}) {
          cells += g->cells.size();
          TRM_FUZZ_CHECK(arc::parse_grid(arc::grid_to_json(*g), "grid") == *g);
          const arc::Grid m = arc::apply(a, *g);
          TRM_FUZZ_CHECK(arc::invert(a, m) == *g);
          std::vector<std::uint8_t> canvas(900);
          arc::encode_into(m, 30, 0, 0, canvas);
          TRM_FUZZ_CHECK(arc::crop(std::span<const std::uint8_t>(canvas), 30) == m);
        }
  // A build of a few variants (bounded: inputs may hold many large grids).
  if (cells <= 20000) {
    const arc::Build b = arc::build_dataset<30>({arc::Subset{"evaluation", tasks}}, {.num_aug = 2});
    TRM_FUZZ_CHECK(b.split("train") != nullptr);
    for (const auto& name : b.identifiers)
      if (name != "<blank>") TRM_FUZZ_CHECK(arc::parse_name(name).task_id.size() <= name.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  trm_fuzz::expect_trm_errors([&] { check_tasks({arc::parse_task_text(text, "fuzz", "fuzz.json")}); });
  trm_fuzz::expect_trm_errors([&] { check_tasks(arc::parse_test_puzzles(text, "test_puzzles.json")); });
  const auto nul = text.find('\0');
  trm_fuzz::expect_trm_errors([&] {
    if (nul == std::string_view::npos) check_tasks(arc::parse_kaggle_text(text, "challenges.json"));
    else check_tasks(arc::parse_kaggle_text(text.substr(0, nul), "challenges.json", text.substr(nul + 1), "solutions.json"));
  });
  trm_fuzz::expect_trm_errors([&] { (void)arc::parse_name(text); });
  return 0;
}
