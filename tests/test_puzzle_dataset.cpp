// Tests for trm/data/puzzle_dataset.hpp: the reference's on-disk format for any task, its
// validation, the training sampler and the evaluation order.
#include <doctest/doctest.h>

#include <trm/data/puzzle_dataset.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "support/check_throws.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using trm::data::EvalSampler;
using trm::data::PuzzleDataset;
using trm::data::PuzzleDatasetError;
using trm::data::PuzzleSet;
using trm::data::SampledBatch;
using trm::data::TrainSampler;
using trm::test::TempDir;

namespace {

constexpr int L = 4, V = 6;

// A set of `groups` groups; group g has 1 + g % 3 puzzles, puzzle q of the set has
// examples_per(q) examples (0 allowed: an empty puzzle). Tokens 1..V-1, labels 0..V-1.
PuzzleSet make_set(std::string name, int groups, int id_mod, int (*examples_per)(int), int salt) {
  PuzzleSet s;
  s.name = std::move(name);
  s.puzzle_indices.push_back(0);
  s.group_indices.push_back(0);
  int q = 0, e = 0;
  for (int g = 0; g < groups; ++g) {
    for (int k = 0; k < 1 + g % 3; ++k, ++q) {
      s.puzzle_identifiers.push_back(q % id_mod);
      for (int x = 0; x < examples_per(q); ++x, ++e)
        for (int c = 0; c < L; ++c) {
          s.inputs.push_back(std::uint8_t(1 + (e * 7 + c * 3 + salt) % (V - 1)));
          s.labels.push_back(std::uint8_t((e * 5 + c + salt) % V));
        }
      s.puzzle_indices.push_back(e);
    }
    s.group_indices.push_back(q);
  }
  return s;
}

int varied(int q) { return q % 5 == 3 ? 0 : 1 + q % 3; }
int one(int) { return 1; }

PuzzleDataset make_dataset(int salt = 0) {
  PuzzleDataset d;
  d.metadata.pad_id = 0;
  d.metadata.ignore_label_id = 0;
  d.metadata.blank_identifier_id = 0;
  d.metadata.vocab_size = V;
  d.metadata.seq_len = L;
  d.metadata.num_puzzle_identifiers = 5;
  d.metadata.sets = {"all", "hard"};
  d.sets.push_back(make_set("all", 7, 5, varied, salt));
  d.sets.push_back(make_set("hard", 3, 4, one, salt + 1));
  std::int64_t groups = 0, puzzles = 0, examples = 0;
  for (const auto& s : d.sets) {
    groups += s.num_groups();
    puzzles += s.num_puzzles();
    examples += std::int64_t(s.inputs.size()) / L;
  }
  d.metadata.total_groups = groups;
  d.metadata.total_puzzles = puzzles;
  d.metadata.mean_puzzle_examples = double(examples) / double(puzzles);
  d.identifiers = {"<blank>", "a", "b", "c", "d"};
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void spit(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}

std::string error_reading(const fs::path& dir) {
  return trm::test::error_of<PuzzleDatasetError>([&] { (void)PuzzleDataset::read(dir, "train"); });
}

// Writes the good dataset, lets `mutate` spoil it, returns the reader's message.
template <class F>
std::string error_after(F&& mutate) {
  static const TempDir good("trm_pd_good");  // written (and fsynced) once, copied per case
  static const bool written = (make_dataset().write(good.path(), "train"), true);
  (void)written;
  TempDir dir("trm_pd_bad");
  fs::copy(good.path(), dir.path(), fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  mutate(dir.path() / "train");
  return error_reading(dir.path());
}

template <class T>
void save(const fs::path& p, std::vector<std::int64_t> shape, const std::vector<T>& v) {
  trm::io::save_npy(p, trm::io::make_npy<T>(std::move(shape), std::span<const T>(v)));
}
template <class T>
std::vector<T> load(const fs::path& p) {
  return trm::io::values<T>(trm::io::load_npy(p));
}

void check_message(const std::string& msg, std::initializer_list<const char*> parts) {
  for (const char* p : parts) {
    const std::string needle(p);
    CHECK_MESSAGE(msg.find(needle) != std::string::npos, needle, " not in: ", msg);
  }
}

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(slurp(p)); }
void write_json(const fs::path& p, const nlohmann::json& j) { spit(p, j.dump()); }

}  // namespace

TEST_CASE("puzzle dataset: write -> read round trip, two sets, byte-identical rewrite") {
  TempDir a("trm_pd_a"), b("trm_pd_b");
  const PuzzleDataset d = make_dataset();
  d.write(a.path(), "train");
  const PuzzleDataset r = PuzzleDataset::read(a.path(), "train");
  CHECK(r.metadata == d.metadata);
  REQUIRE(r.sets.size() == 2);
  CHECK(r.sets[0] == d.sets[0]);
  CHECK(r.sets[1] == d.sets[1]);
  CHECK(r.identifiers == d.identifiers);
  r.write(b.path(), "train");
  for (const char* f : {"train/dataset.json", "identifiers.json", "train/all__inputs.npy", "train/all__labels.npy",
                        "train/all__puzzle_identifiers.npy", "train/all__puzzle_indices.npy",
                        "train/all__group_indices.npy", "train/hard__inputs.npy", "train/hard__group_indices.npy"}) {
    CAPTURE(f);
    CHECK(slurp(a / f) == slurp(b / f));
  }
  // The arrays are what numpy's np.save writes (the strict io::npy reader agrees byte for byte).
  for (const auto& e : fs::directory_iterator(a / "train")) {
    if (e.path().extension() != ".npy") continue;
    const auto bytes = trm::io::serialize_npy(trm::io::load_npy(e.path()));
    CHECK(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()) == slurp(e.path()));
  }
  CHECK(load<std::uint8_t>(a / "train/hard__labels.npy") == d.sets[1].labels);
  // No temporary files left behind.
  for (const auto& e : fs::directory_iterator(a / "train")) CHECK(e.path().filename().string().front() != '.');
  // The reference's field order in dataset.json, spaced as Python's json.dump writes it.
  CHECK(slurp(a / "train/dataset.json").starts_with("{\"pad_id\": 0, \"ignore_label_id\": 0, \"blank_identifier_id\": 0, "));
}

TEST_CASE("puzzle dataset: several directories concatenate as all, all1 (ids not offset, counts summed)") {
  TempDir a("trm_pd_a"), b("trm_pd_b");
  const PuzzleDataset da = make_dataset(0), db = make_dataset(3);
  da.write(a.path(), "test");
  db.write(b.path(), "test");
  const std::vector<fs::path> dirs{a.path(), b.path()};
  const PuzzleDataset r = PuzzleDataset::read(dirs, "test");
  REQUIRE(r.sets.size() == 4);
  CHECK(r.sets[0].name == "all");
  CHECK(r.sets[1].name == "all1");
  CHECK(r.sets[2].name == "hard");
  CHECK(r.sets[3].name == "hard1");
  CHECK(r.sets[1].inputs == db.sets[0].inputs);
  CHECK(r.sets[1].puzzle_identifiers == db.sets[0].puzzle_identifiers);  // not offset
  CHECK(r.sets[3].group_indices == db.sets[1].group_indices);
  CHECK(r.metadata.num_puzzle_identifiers == 10);
  CHECK(r.metadata.total_groups == 2 * da.metadata.total_groups);
  CHECK(r.metadata.total_puzzles == 2 * *da.metadata.total_puzzles);
  CHECK(r.metadata.sets == std::vector<std::string>{"all", "hard"});
  CHECK(r.total_examples() == 2 * (r.num_examples(da.sets[0]) + r.num_examples(da.sets[1])));

  // Directories must agree on seq_len, vocab, pad, ignore, blank id, the id count and the sets.
  auto j = read_json(b / "test/dataset.json");
  j["vocab_size"] = 7;
  write_json(b / "test/dataset.json", j);
  const std::string msg = trm::test::error_of<PuzzleDatasetError>([&] { (void)PuzzleDataset::read(dirs, "test"); });
  check_message(msg, {(b / "test/dataset.json").string().c_str(), "vocab_size", "expected 6", "found 7"});
}

TEST_CASE("puzzle dataset: wrong dtypes name the file, the field, expected and found") {
  check_message(error_after([](const fs::path& t) { save<std::int32_t>(t / "all__inputs.npy", {1, 1}, {1}); }),
                {"all__inputs.npy", "dtype", "expected U8", "found I32"});
  check_message(error_after([](const fs::path& t) { save<std::int8_t>(t / "hard__labels.npy", {1, 1}, {1}); }),
                {"hard__labels.npy", "dtype", "expected U8", "found I8"});
  for (const char* f : {"all__puzzle_identifiers.npy", "all__puzzle_indices.npy", "all__group_indices.npy"}) {
    CAPTURE(f);
    check_message(error_after([&](const fs::path& t) { save<std::int64_t>(t / f, {1}, {0}); }),
                  {f, "dtype", "expected I32", "found I64"});
  }
}

TEST_CASE("puzzle dataset: wrong shapes") {
  check_message(error_after([](const fs::path& t) { save<std::uint8_t>(t / "all__inputs.npy", {2, L + 1}, std::vector<std::uint8_t>(2 * (L + 1), 1)); }),
                {"all__inputs.npy", "shape", "expected [N_examples, 4] (seq_len from dataset.json)", "found [2, 5]"});
  check_message(error_after([](const fs::path& t) { save<std::uint8_t>(t / "all__inputs.npy", {8}, std::vector<std::uint8_t>(8, 1)); }),
                {"all__inputs.npy", "shape", "expected [N_examples, 4]", "found [8]"});
  check_message(error_after([](const fs::path& t) {
                  auto v = load<std::uint8_t>(t / "all__labels.npy");
                  v.resize(v.size() - L);
                  save<std::uint8_t>(t / "all__labels.npy", {std::int64_t(v.size()) / L, L}, v);
                }),
                {"all__labels.npy", "shape", "expected [", "(the shape of", "all__inputs.npy", "found ["});
  check_message(error_after([](const fs::path& t) {
                  auto v = load<std::int32_t>(t / "all__puzzle_indices.npy");
                  v.push_back(v.back());
                  save<std::int32_t>(t / "all__puzzle_indices.npy", {std::int64_t(v.size())}, v);
                }),
                {"all__puzzle_indices.npy", "shape", "expected [14] (N_puzzles + 1", "found [15]"});
  check_message(error_after([](const fs::path& t) { save<std::int32_t>(t / "all__group_indices.npy", {1, 1}, {0}); }),
                {"all__group_indices.npy", "shape", "expected [N_groups + 1]", "found [1, 1]"});
}

TEST_CASE("puzzle dataset: offsets start at 0, do not decrease and end at the count") {
  auto edit = [](const char* file, auto&& change) {
    return error_after([&](const fs::path& t) {
      auto v = load<std::int32_t>(t / file);
      change(v);
      save<std::int32_t>(t / file, {std::int64_t(v.size())}, v);
    });
  };
  check_message(edit("all__puzzle_indices.npy", [](auto& v) { v[0] = 1; }),
                {"all__puzzle_indices.npy", "puzzle_indices[0]", "expected 0", "found 1"});
  check_message(edit("all__puzzle_indices.npy", [](auto& v) { v[2] = v[1] - 1; }),
                {"all__puzzle_indices.npy", "puzzle_indices[2]", "expected non-decreasing", "found"});
  check_message(edit("all__puzzle_indices.npy", [](auto& v) { v.back() += 1; }),
                {"all__puzzle_indices.npy", "puzzle_indices[13] (the last offset)", "expected N_examples", "all__inputs.npy", "found"});
  check_message(edit("all__group_indices.npy", [](auto& v) { v[0] = 2; }),
                {"all__group_indices.npy", "group_indices[0]", "expected 0", "found 2"});
  check_message(edit("all__group_indices.npy", [](auto& v) { std::swap(v[2], v[3]); }),
                {"all__group_indices.npy", "group_indices[3]", "expected non-decreasing", "found 3"});
  check_message(edit("hard__group_indices.npy", [](auto& v) { v.back() -= 1; }),
                {"hard__group_indices.npy", "group_indices[3] (the last offset)", "expected N_puzzles", "(6)", "found 5"});
}

TEST_CASE("puzzle dataset: ids and tokens in range, labels may be ignore_label_id") {
  auto edit_ids = [](std::int32_t value) {
    return error_after([&](const fs::path& t) {
      auto v = load<std::int32_t>(t / "all__puzzle_identifiers.npy");
      v[3] = value;
      save<std::int32_t>(t / "all__puzzle_identifiers.npy", {std::int64_t(v.size())}, v);
    });
  };
  check_message(edit_ids(5), {"all__puzzle_identifiers.npy", "puzzle_identifiers[3]", "expected an id in [0, num_puzzle_identifiers = 5)", "found 5"});
  check_message(edit_ids(-1), {"all__puzzle_identifiers.npy", "puzzle_identifiers[3]", "expected", "found -1"});
  check_message(error_after([](const fs::path& t) {
                  auto v = load<std::uint8_t>(t / "hard__inputs.npy");
                  v[L + 2] = V;
                  save<std::uint8_t>(t / "hard__inputs.npy", {std::int64_t(v.size()) / L, L}, v);
                }),
                {"hard__inputs.npy", "inputs[1, 2]", "expected a token < vocab_size (6)", "found 6"});
  check_message(error_after([](const fs::path& t) {
                  auto v = load<std::uint8_t>(t / "all__labels.npy");
                  v[3] = 200;
                  save<std::uint8_t>(t / "all__labels.npy", {std::int64_t(v.size()) / L, L}, v);
                }),
                {"all__labels.npy", "labels[0, 3]", "expected a token < vocab_size (6) or ignore_label_id (0)", "found 200"});

  // A label equal to ignore_label_id, even outside the vocabulary, is accepted and becomes -100.
  TempDir dir("trm_pd_ign");
  PuzzleDataset d = make_dataset();
  d.metadata.ignore_label_id = 200;
  d.sets[0].labels[1] = 200;
  d.write(dir.path(), "train");
  const PuzzleDataset r = PuzzleDataset::read(dir.path(), "train");
  const std::vector<std::int64_t> ex{0};
  const std::vector<std::int32_t> pz{0};
  const trm::Batch b = r.collate(r.sets[0], ex, pz);
  CHECK(b.labels.data()[1] == trm::ignore_label);
  CHECK(b.labels.data()[0] == d.sets[0].labels[0]);  // label 0 is a real class once ignore_label_id is 200
  // With ignore_label_id null, nothing is ignored.
  d.metadata.ignore_label_id.reset();
  d.sets[0].labels[1] = 0;
  d.write(dir.path(), "train");
  const PuzzleDataset r2 = PuzzleDataset::read(dir.path(), "train");
  CHECK(!r2.metadata.ignore_label_id.has_value());
  CHECK(r2.collate(r2.sets[0], ex, pz).labels.data()[1] == 0);
}

TEST_CASE("puzzle dataset: dataset.json and identifiers.json fields") {
  auto edit = [](auto&& change, const char* file = "dataset.json") {
    return error_after([&](const fs::path& t) {
      const fs::path p = std::string(file) == "dataset.json" ? t / file : t.parent_path() / file;
      auto j = read_json(p);
      change(j);
      write_json(p, j);
    });
  };
  const std::string json = "dataset.json";
  check_message(edit([](auto& j) { j.erase("seq_len"); }), {json.c_str(), "field \"seq_len\"", "expected present", "found no such field"});
  check_message(edit([](auto& j) { j["seq_len"] = "4"; }), {json.c_str(), "field \"seq_len\"", "expected an integer", "found string \"4\""});
  check_message(edit([](auto& j) { j["vocab_size"] = 4.5; }), {"field \"vocab_size\"", "expected an integer", "found number 4.5"});
  check_message(edit([](auto& j) { j["vocab_size"] = 300; }), {"field \"vocab_size\"", "expected an integer in 1..256", "found 300"});
  check_message(edit([](auto& j) { j["ignore_label_id"] = "none"; }), {"field \"ignore_label_id\"", "expected an integer", "found string"});
  check_message(edit([](auto& j) { j["mean_puzzle_examples"] = nullptr; }), {"field \"mean_puzzle_examples\"", "expected a number", "found null"});
  check_message(edit([](auto& j) { j["sets"] = "all"; }), {"field \"sets\"", "expected a non-empty list of set names", "found string"});
  check_message(edit([](auto& j) { j["sets"] = {"all", 3}; }), {"field \"sets\"", "expected a list of strings", "found element number 3"});
  check_message(edit([](auto& j) { j["total_groups"] = 11; }), {"field \"total_groups\"", "expected 10 (the groups", "found 11"});
  check_message(edit([](auto& j) { j["seq_len"] = 5; }), {"all__inputs.npy", "shape", "expected [N_examples, 5]", "found ["});
  check_message(edit([](auto& j) { j["pad_id"] = 6; }), {"field \"pad_id\"", "expected a token < vocab_size (6)", "found 6"});
  check_message(edit([](auto& j) { j = nlohmann::json::array(); }), {json.c_str(), "top level", "expected a JSON object", "found array"});
  check_message(edit([](auto& j) { j = {"<blank>", 1}; }, "identifiers.json"), {"identifiers.json", "[1]", "expected a string", "found number 1"});
  check_message(edit([](auto& j) { j = {"<blank>"}; }, "identifiers.json"), {"identifiers.json", "length", "expected at least num_puzzle_identifiers (5)", "found 1"});
  check_message(error_after([](const fs::path& t) { spit(t / "dataset.json", "{\"pad_id\": 0,"); }),
                {"dataset.json", "JSON", "expected valid JSON", "found a parse error"});
  check_message(error_after([](const fs::path& t) { fs::remove(t / "hard__puzzle_indices.npy"); }),
                {"hard__puzzle_indices.npy", "file", "expected a regular file", "found none (missing file)"});
}

TEST_CASE("puzzle dataset: sizes are checked against the file size before allocating") {
  // A header claiming 10^12 rows over a file of a few bytes: refused by size, nothing allocated.
  check_message(error_after([](const fs::path& t) {
                  std::string bytes = trm::io::npy_header(trm::io::DType::U8, {1000000000000, L});
                  spit(t / "all__inputs.npy", bytes + "abcd");
                }),
                {"all__inputs.npy", "needs 4000000000000 data bytes", "file has 4 (truncated file)"});
  check_message(error_after([](const fs::path& t) {
                  std::string s = slurp(t / "all__labels.npy");
                  spit(t / "all__labels.npy", s + "x");
                }),
                {"all__labels.npy", "data bytes, file has", "(trailing bytes)"});
  // The hand-written header is the one np.save / io::serialize_npy writes.
  const std::vector<std::int32_t> v{1, 2, 3};
  const auto ref = trm::io::serialize_npy(trm::io::make_npy<std::int32_t>({3}, std::span<const std::int32_t>(v)));
  const std::string mine = trm::io::npy_header(trm::io::DType::I32, {3});
  CHECK(std::string(reinterpret_cast<const char*>(ref.data()), mine.size()) == mine);
}

TEST_CASE("puzzle dataset: writing validates first") {
  TempDir dir("trm_pd_w");
  PuzzleDataset d = make_dataset();
  d.sets[1].inputs[0] = V;
  const std::string msg = trm::test::error_of<PuzzleDatasetError>([&] { d.write(dir.path(), "train"); });
  check_message(msg, {"hard__inputs.npy", "inputs[0, 0]", "expected a token < vocab_size (6)", "found 6"});
  CHECK(!fs::exists(dir / "train"));
  CHECK_THROWS_AS(make_dataset().write(dir.path(), "../x"), trm::ValueError);
}

TEST_CASE("train sampler: exact batch size, each group once per epoch, deterministic") {
  PuzzleDataset d = make_dataset();
  d.sets = {make_set("all", 12, 5, one, 0)};  // 12 groups of 1-3 one-example puzzles
  d.metadata.sets = {"all"};
  d.metadata.total_groups = 12;
  std::vector<int> group_of(std::size_t(d.sets[0].num_puzzles()));
  for (int g = 0; g < 12; ++g)
    for (int p = d.sets[0].group_indices[g]; p < d.sets[0].group_indices[g + 1]; ++p) group_of[std::size_t(p)] = g;

  for (int epochs : {1, 2}) {
    CAPTURE(epochs);
    TrainSampler s(d, {.global_batch_size = 4, .epochs_per_iter = epochs, .seed = 7});
    for (int pass = 1; pass <= 3; ++pass) {
      std::map<int, int> visits;
      for (int k = 0; k < 3 * epochs; ++k) {
        const SampledBatch b = s.next();
        CHECK(b.iteration == pass);
        CHECK(b.batch.size() == 4);
        CHECK(b.effective_size == 4);
        for (std::size_t r = 0; r < 4; ++r) {
          ++visits[group_of[std::size_t(b.puzzles[r])]];
          CHECK(b.batch.puzzle_identifiers.data()[r] == d.sets[0].puzzle_identifiers[std::size_t(b.puzzles[r])]);
          for (int c = 0; c < L; ++c) {
            const int lab = d.sets[0].labels[std::size_t(b.examples[r] * L + c)];
            CHECK(b.batch.inputs.data()[r * L + c] == d.sets[0].inputs[std::size_t(b.examples[r] * L + c)]);
            CHECK(b.batch.labels.data()[r * L + c] == (lab == 0 ? trm::ignore_label : lab));
          }
        }
      }
      CHECK(visits.size() == 12);
      for (auto [g, n] : visits) CHECK(n == epochs);
    }
  }

  // Same seed -> same batches; another seed -> other batches.
  auto run = [&](std::uint64_t seed) {
    TrainSampler s(d, {.global_batch_size = 5, .seed = seed});
    std::vector<std::int64_t> ex;
    for (int k = 0; k < 8; ++k) {
      const SampledBatch b = s.next();
      ex.insert(ex.end(), b.examples.begin(), b.examples.end());
      ex.push_back(-b.iteration);
    }
    return ex;
  };
  CHECK(run(3) == run(3));
  CHECK(run(3) != run(4));
  // 12 groups, batches of 5: 2 full batches per pass, the short one is dropped.
  const auto ex = run(3);
  CHECK(std::count(ex.begin(), ex.end(), -1) == 2);
  CHECK(std::count(ex.begin(), ex.end(), -4) == 2);
}

TEST_CASE("train sampler: multi-example puzzles are truncated to fill the batch; sets take turns") {
  const PuzzleDataset d = make_dataset();  // "all": puzzles of 0-3 examples; "hard": 1 example each
  TrainSampler s(d, {.global_batch_size = 3, .seed = 1});
  std::set<std::size_t> sets_seen;
  std::int64_t last_iteration = 0;
  for (int k = 0; k < 40; ++k) {
    const SampledBatch b = s.next();
    CHECK(b.batch.size() == 3);
    REQUIRE(b.examples.size() == 3);
    CHECK(b.iteration >= last_iteration);
    if (b.iteration != last_iteration) CHECK(b.set == std::size_t(b.iteration - 1) % 2);
    last_iteration = b.iteration;
    sets_seen.insert(b.set);
    const PuzzleSet& ps = d.sets[b.set];
    for (std::size_t r = 0; r < 3; ++r) {
      const auto p = std::size_t(b.puzzles[r]);
      CHECK(b.examples[r] >= ps.puzzle_indices[p]);
      CHECK(b.examples[r] < ps.puzzle_indices[p + 1]);
      // Rows of one puzzle are distinct examples (drawn without replacement).
      for (std::size_t q = 0; q < r; ++q)
        if (b.puzzles[q] == b.puzzles[r]) CHECK(b.examples[q] != b.examples[r]);
    }
  }
  CHECK(sets_seen.size() == 2);
  CHECK_THROWS_AS(TrainSampler(d, {.global_batch_size = 1000}).next(), trm::ValueError);
}

TEST_CASE("eval sampler: every example once, in order, last batch padded or short") {
  const PuzzleDataset d = make_dataset();
  for (bool pad : {true, false}) {
    CAPTURE(pad);
    EvalSampler s(d, {.global_batch_size = 4, .pad_last = pad});
    std::vector<std::int64_t> seen[2];
    while (auto b = s.next()) {
      const PuzzleSet& ps = d.sets[b->set];
      CHECK(b->batch.size() == (pad ? 4 : b->effective_size));
      for (trm::index_t r = 0; r < b->effective_size; ++r) {
        const auto e = b->examples[std::size_t(r)];
        seen[b->set].push_back(e);
        const auto p = std::size_t(b->puzzles[std::size_t(r)]);
        CHECK(e >= ps.puzzle_indices[p]);
        CHECK(e < ps.puzzle_indices[p + 1]);  // never an empty puzzle
        CHECK(b->batch.puzzle_identifiers.data()[r] == ps.puzzle_identifiers[p]);
        CHECK(b->batch.inputs.data()[r * L] == ps.inputs[std::size_t(e * L)]);
      }
      for (trm::index_t r = b->effective_size; r < b->batch.size(); ++r) {
        CHECK(b->batch.inputs.data()[r * L] == d.metadata.pad_id);
        CHECK(b->batch.labels.data()[r * L + 1] == trm::ignore_label);
        CHECK(b->batch.puzzle_identifiers.data()[r] == d.metadata.blank_identifier_id);
      }
    }
    for (std::size_t k = 0; k < 2; ++k) {
      std::vector<std::int64_t> all(std::size_t(d.num_examples(d.sets[k])));
      std::iota(all.begin(), all.end(), 0);
      CHECK(seen[k] == all);
    }
  }
}

TEST_CASE("puzzle dataset: truncated or corrupted files give a FormatError, never a crash") {
  TempDir dir("trm_pd_fuzz");
  make_dataset().write(dir.path(), "train");
  trm::Rng rng(11);
  int errors = 0, accepted = 0;
  for (const char* name : {"train/all__inputs.npy", "train/all__puzzle_indices.npy", "train/hard__group_indices.npy",
                           "train/dataset.json", "identifiers.json"}) {
    const fs::path p = dir / name;
    const std::string good = slurp(p);
    auto attempt = [&](const std::string& bytes, bool must_fail) {
      spit(p, bytes);
      std::string outcome = "ok";
      try {
        (void)PuzzleDataset::read(dir.path(), "train");
        ++accepted;
      } catch (const trm::io::FormatError&) {
        ++errors;
        outcome = "format error";
      } catch (const std::exception& e) {
        outcome = std::string("other exception: ") + e.what();
      }
      CAPTURE(name);
      CHECK(outcome != (must_fail ? "ok" : "-"));
      CHECK(outcome.find("other exception") == std::string::npos);
    };
    for (std::size_t n = 0; n < good.size(); n += 1 + n / 8) attempt(good.substr(0, n), true);
    for (int k = 0; k < 60; ++k) {
      std::string bad = good;
      const std::size_t at = std::size_t(rng.below(std::min<std::size_t>(bad.size(), 140)));
      bad[at] = char(rng.below(256));
      attempt(bad, false);
    }
    spit(p, good);
  }
  CHECK(errors > 0);
  CHECK_NOTHROW((void)PuzzleDataset::read(dir.path(), "train"));
  MESSAGE(errors << " format errors, " << accepted << " corrupted files still valid");
}
