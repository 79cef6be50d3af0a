#pragma once
// The official ARC dataset build (dataset/build_arc_dataset.py of TinyRecursiveModels), id for
// id: the same numpy stream (seed 42), so the same task order, augmentations, translations and
// puzzle identifiers, and the same files (SPEC §6.1, §6.4). Checked against the official
// builder's output in tests/test_arc.cpp (tests/data/arc/official).
//
// The steps, in the reference's order of draws:
//   1. for each subset in order: its tasks in file order, shuffled (np.random.shuffle); each
//      task's pairs go to a split: a task of a test set (test_set_names) sends its
//      demonstrations to train and its test pairs to test (and is recorded in test_puzzles);
//      every other task sends all its pairs to train, in the file's key order ("test" first in
//      Kaggle's files). Then num_aug distinct variants (up to 5 * num_aug draws of an
//      Augmentation; a variant whose multiset of (input, output) pairs over both splits equals
//      an earlier one's is rejected, as the reference's sorted-hash comparison does).
//   2. puzzle ids: 0 is <blank> (and ids below puzzle_identifiers_start); then every distinct
//      name in split order (train, test), group order, variant order.
//   3. for each split, each group, each puzzle: one example drawn to stay untranslated, then each
//      example at a random offset in [0, Side - max(h_in, h_out)] per axis (train only; the
//      test split is never translated), encoded on the canvas (canvas.hpp).
// Side is the canvas (30 in the reference); a grid larger than the canvas is an error, or with
// skip_oversized its task is left out (counted in the report) — the reference has no such case.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "trm/data/arc/augment.hpp"
#include "trm/data/arc/canvas.hpp"
#include "trm/data/arc/grid.hpp"
#include "trm/data/puzzle_dataset.hpp"
#include "trm/io/atomic_file.hpp"
#include "trm/io/json.hpp"

namespace trm::data::arc {

// The tasks of one subset ("training", "evaluation", "concept", ...), in file order.
struct Subset {
  std::string name;
  std::vector<Task> tasks;
};

struct BuildOptions {
  int num_aug = 1000;                    // variants per task besides the original
  std::uint32_t seed = 42;
  std::int32_t puzzle_identifiers_start = 1;  // > 1 to continue another dataset's (or a checkpoint's) ids
  // Subsets whose test pairs form the test split (the reference's test_set_name and
  // test_set_name2, whose default "your_test_set" matches nothing of the official data).
  std::vector<std::string> test_set_names{"evaluation", "your_test_set"};
  bool skip_oversized = false;
  int retries_factor = 5;                // the reference's ARCAugmentRetriesFactor
};

struct BuildReport {
  std::int64_t tasks = 0;                            // tasks built (all subsets)
  std::vector<std::string> skipped;                  // tasks left out (skip_oversized)
  std::vector<std::pair<std::string, int>> not_full; // tasks with fewer than num_aug + 1 variants: (id, variants)
  std::int64_t num_identifiers = 0;                  // including <blank>
};

// The dataset in memory: the splits (train, then test when a test set had tasks), the id -> name
// table and the test tasks (with solutions or placeholders), in the reference's order.
struct Build {
  std::vector<std::pair<std::string, PuzzleDataset>> splits;
  std::vector<std::string> identifiers;
  std::vector<Task> test_puzzles;
  BuildReport report;

  const PuzzleDataset* split(std::string_view name) const {
    for (const auto& [n, d] : splits)
      if (n == name) return &d;
    return nullptr;
  }
  // <dir>/{train,test}/..., identifiers.json and test_puzzles.json; each file is atomic,
  // test_puzzles.json last.
  void write(const std::filesystem::path& dir) const;
};

// test_puzzles.json's value: {id: {"train"/"test" in the task's key order: [{"input", "output"}]}}.
inline nlohmann::ordered_json tasks_to_json(const std::vector<Task>& tasks) {
  nlohmann::ordered_json all = nlohmann::ordered_json::object();
  for (const Task& t : tasks) {
    auto pairs = [](const std::vector<Pair>& ps) {
      nlohmann::ordered_json a = nlohmann::ordered_json::array();
      for (const Pair& p : ps) {
        nlohmann::ordered_json o;
        o["input"] = grid_to_json(p.input);
        o["output"] = grid_to_json(p.output);
        a.push_back(std::move(o));
      }
      return a;
    };
    nlohmann::ordered_json o;
    if (t.train_first) {
      o["train"] = pairs(t.train);
      o["test"] = pairs(t.test);
    } else {
      o["test"] = pairs(t.test);
      o["train"] = pairs(t.train);
    }
    all[t.id] = std::move(o);
  }
  return all;
}

inline void Build::write(const std::filesystem::path& dir) const {
  for (const auto& [name, d] : splits) d.write(dir, name);
  // PuzzleDataset::write wrote identifiers.json already (the same table for both splits).
  const std::string tp = io::dump_like_python(tasks_to_json(test_puzzles));
  io::write_file_atomically(dir / "test_puzzles.json", [&](io::AtomicFileWriter& w) { w.write(std::string_view(tp)); });
}

namespace detail {

// A task's pairs in one split, and the variants of the task (the first is the identity).
struct Group {
  std::string id;
  std::vector<const Pair*> train_pairs, test_pairs;  // into the task (kept alive by the caller)
  std::vector<Augmentation> variants;
  bool test_task = false;
};

// The reference's puzzle hash compares the sorted list of per-pair hashes: equal exactly when
// the multisets of (input, output) pairs are equal. The key is that multiset, serialised.
inline std::string variant_key(const Group& g, const Augmentation& a) {
  std::vector<std::string> pairs;
  auto add = [&](const Pair* p) {
    std::string s;
    for (const Grid* grid : {&p->input, &p->output}) {
      const Grid m = apply(a, *grid);
      s += char(m.rows);
      s += char(m.cols);
      s.append(m.cells.begin(), m.cells.end());
    }
    pairs.push_back(std::move(s));
  };
  for (const Pair* p : g.train_pairs) add(p);
  for (const Pair* p : g.test_pairs) add(p);
  std::sort(pairs.begin(), pairs.end());
  std::string key;
  for (const auto& s : pairs) {
    key += std::to_string(s.size());
    key += ':';
    key += s;
  }
  return key;
}

inline std::string variant_name(const Group& g, const Augmentation& a, bool first) {
  return first ? g.id : g.id + a.name_suffix();
}

}  // namespace detail

template <int Side>
Build build_dataset(const std::vector<Subset>& subsets, const BuildOptions& opt = {}) {
  static_assert(Side >= 1 && Side <= 255, "ARC canvas side");
  constexpr int L = Side * Side;
  if (opt.num_aug < 0) throw ValueError("arc::build_dataset: expected num_aug >= 0, found " + std::to_string(opt.num_aug));
  if (opt.puzzle_identifiers_start < 1)
    throw ValueError("arc::build_dataset: expected puzzle_identifiers_start >= 1 (0 is <blank>), found " +
                     std::to_string(opt.puzzle_identifiers_start));
  NumpyLegacyRandom rng(opt.seed);
  Build out;
  std::vector<detail::Group> groups;
  std::vector<std::string> test_order;  // test task ids in insertion order (the reference's dict)
  std::unordered_map<std::string, const Task*> test_tasks;
  bool any_test = false;

  // 1. shuffle, split, augment
  for (const Subset& subset : subsets) {
    std::vector<const Task*> order;
    for (const Task& t : subset.tasks) order.push_back(&t);
    rng.shuffle(std::span<const Task*>(order));
    const bool is_test = std::find(opt.test_set_names.begin(), opt.test_set_names.end(), subset.name) != opt.test_set_names.end();
    for (const Task* t : order) {
      bool fits = true;
      for (const auto* pairs : {&t->train, &t->test})
        for (const Pair& p : *pairs) fits = fits && fits_canvas(p.input, Side) && fits_canvas(p.output, Side);
      if (!fits) {
        if (!opt.skip_oversized)
          throw ValueError("arc::build_dataset: task '" + t->id + "' of subset '" + subset.name + "' has a grid larger than the " +
                           std::to_string(Side) + "x" + std::to_string(Side) + " canvas");
        out.report.skipped.push_back(t->id);
        continue;
      }
      if (is_test) {
        any_test = true;
        if (test_tasks.emplace(t->id, t).second) test_order.push_back(t->id);
        else test_tasks[t->id] = t;  // a dict assignment: the later task, at the first one's place
      }
      detail::Group g;
      g.id = t->id;
      g.test_task = is_test;
      // The file's key order decides which pairs come first in a split holding both.
      const auto& first = t->train_first ? t->train : t->test;
      const auto& second = t->train_first ? t->test : t->train;
      for (const auto* pairs : {&first, &second})
        for (const Pair& p : *pairs) {
          const bool demo = pairs == &t->train;
          (is_test && !demo ? g.test_pairs : g.train_pairs).push_back(&p);
        }
      g.variants.push_back(Augmentation{});
      if (opt.num_aug > 0) {
        std::unordered_set<std::string> seen{detail::variant_key(g, g.variants[0])};
        for (long trial = 0; trial < long(opt.retries_factor) * opt.num_aug; ++trial) {
          const Augmentation a = draw_augmentation(rng);
          if (seen.insert(detail::variant_key(g, a)).second) g.variants.push_back(a);
          if (int(g.variants.size()) >= opt.num_aug + 1) break;
        }
        if (int(g.variants.size()) < opt.num_aug + 1) out.report.not_full.emplace_back(g.id, int(g.variants.size()));
      }
      groups.push_back(std::move(g));
      ++out.report.tasks;
    }
  }
  if (groups.empty()) throw ValueError("arc::build_dataset: no tasks to build");

  // 2. identifiers: train split, then test
  std::unordered_map<std::string, std::int32_t> ids;
  for (std::int32_t k = 0; k < opt.puzzle_identifiers_start; ++k) out.identifiers.push_back("<blank>");
  auto assign = [&](const std::string& name) {
    if (ids.emplace(name, std::int32_t(out.identifiers.size())).second) out.identifiers.push_back(name);
  };
  const bool splits_have[2] = {true, any_test};
  for (int s = 0; s < 2; ++s) {
    if (!splits_have[s]) continue;
    for (const auto& g : groups) {
      if (s == 1 && !g.test_task) continue;
      for (std::size_t v = 0; v < g.variants.size(); ++v) assign(detail::variant_name(g, g.variants[v], v == 0));
    }
  }
  out.report.num_identifiers = std::int64_t(out.identifiers.size());

  // 3. examples
  for (int s = 0; s < 2; ++s) {
    if (!splits_have[s]) continue;
    const bool train = s == 0;
    PuzzleDataset d;
    PuzzleSet set;
    set.name = "all";
    set.puzzle_indices.push_back(0);
    set.group_indices.push_back(0);
    std::int64_t examples = 0;
    for (const auto& g : groups) {
      const auto& pairs = train ? g.train_pairs : g.test_pairs;
      if (!train && !g.test_task) continue;
      examples += std::int64_t(pairs.size() * g.variants.size());
    }
    set.inputs.reserve(std::size_t(examples) * L);
    set.labels.reserve(std::size_t(examples) * L);
    std::array<std::uint8_t, L> in{}, lab{};
    for (const auto& g : groups) {
      if (!train && !g.test_task) continue;
      const auto& pairs = train ? g.train_pairs : g.test_pairs;
      for (std::size_t v = 0; v < g.variants.size(); ++v) {
        const Augmentation& a = g.variants[v];
        const std::int64_t untranslated = rng.randint(0, std::int64_t(pairs.size()));
        for (std::size_t k = 0; k < pairs.size(); ++k) {
          const Grid gi = apply(a, pairs[k]->input), go = apply(a, pairs[k]->output);
          int r0 = 0, c0 = 0;
          if (train && std::int64_t(k) != untranslated) {
            r0 = int(rng.randint(0, Side - std::max(gi.rows, go.rows) + 1));
            c0 = int(rng.randint(0, Side - std::max(gi.cols, go.cols) + 1));
          }
          encode_into(gi, Side, r0, c0, in);
          encode_into(go, Side, r0, c0, lab);
          set.inputs.insert(set.inputs.end(), in.begin(), in.end());
          set.labels.insert(set.labels.end(), lab.begin(), lab.end());
        }
        set.puzzle_indices.push_back(std::int32_t(set.inputs.size() / L));
        set.puzzle_identifiers.push_back(ids.at(detail::variant_name(g, a, v == 0)));
      }
      set.group_indices.push_back(std::int32_t(set.puzzle_identifiers.size()));
    }
    auto& m = d.metadata;
    m.pad_id = pad_token;
    m.ignore_label_id = 0;
    m.blank_identifier_id = 0;
    m.vocab_size = vocab_size;
    m.seq_len = L;
    m.num_puzzle_identifiers = std::int64_t(out.identifiers.size());
    m.total_groups = set.num_groups();
    m.total_puzzles = set.num_puzzles();
    m.mean_puzzle_examples = double(set.inputs.size() / L) / double(set.num_puzzles());
    m.sets = {"all"};
    d.sets.push_back(std::move(set));
    d.identifiers = out.identifiers;
    out.splits.emplace_back(train ? "train" : "test", std::move(d));
  }
  for (const auto& id : test_order) out.test_puzzles.push_back(*test_tasks.at(id));
  return out;
}

}  // namespace trm::data::arc
