// Tests for trm/data/task.hpp: the Task concepts, Sudoku as a Task (encode/decode, augmentations
// and their inverses), the generic make_batch / score helpers, and a second, non-Sudoku task.
#include <doctest/doctest.h>

#include <trm/data/task.hpp>
#include <trm/data/sudoku.hpp>
#include <trm/data/puzzle_dataset.hpp>
#include <trm/io/npy.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"

using trm::Rng;
using namespace trm::data;
namespace sd = trm::data::sudoku;

namespace {

// A task that is not Sudoku-shaped: 1 x 8 bits, the answer is the question reversed. Values 0/1;
// 2 means "any" and is encoded as the pad token, so such an answer position is not supervised.
struct BitReversal {
  using puzzle_type = std::array<std::uint8_t, 8>;
  static constexpr int rows = 1, cols = 8;
  static constexpr int vocab_size = 3;  // pad 0, bit0 1, bit1 2
  static constexpr std::uint8_t pad_token = 0;

  std::string name() const { return "bit reversal 1x8"; }
  TaskTokens<BitReversal> encode(const puzzle_type& p) const {
    TaskTokens<BitReversal> t{};
    for (std::size_t i = 0; i < 8; ++i) {
      if (p[i] > 2) throw trm::ValueError("bit reversal encode: position " + std::to_string(i) + " has value " + std::to_string(p[i]));
      t[i] = p[i] == 2 ? pad_token : std::uint8_t(p[i] + 1);
    }
    return t;
  }
  puzzle_type decode(std::span<const std::uint8_t> t) const {
    if (t.size() != 8) throw trm::ShapeError("bit reversal decode: expected 8 tokens, found " + std::to_string(t.size()));
    puzzle_type p{};
    for (std::size_t i = 0; i < 8; ++i) {
      if (t[i] > 2) throw trm::ValueError("bit reversal decode: position " + std::to_string(i) + " has token " + std::to_string(t[i]));
      p[i] = t[i] == pad_token ? 2 : std::uint8_t(t[i] - 1);
    }
    return p;
  }
  bool is_valid_answer(const puzzle_type& q, const puzzle_type& a) const {
    for (std::size_t i = 0; i < 8; ++i)
      if (q[i] > 1 || a[i] != q[7 - i]) return false;
    return true;
  }
  TaskExample<BitReversal> generate(Rng& rng) const {
    TaskExample<BitReversal> e{};
    for (std::size_t i = 0; i < 8; ++i) e.question[i] = rng.bernoulli(0.5) ? 1 : 0;
    for (std::size_t i = 0; i < 8; ++i) e.answer[i] = e.question[7 - i];
    return e;
  }
};

struct NotATask {  // no is_valid_answer
  using puzzle_type = int;
  static constexpr int rows = 1, cols = 1, vocab_size = 2;
  static constexpr std::uint8_t pad_token = 0;
  std::string name() const { return "x"; }
  TaskTokens<NotATask> encode(int) const { return {}; }
  int decode(std::span<const std::uint8_t>) const { return 0; }
};

static_assert(Task<BitReversal> && GeneratingTask<BitReversal>);
static_assert(!SolvingTask<BitReversal> && !AugmentingTask<BitReversal> && !ReadingTask<BitReversal>);
static_assert(!Task<NotATask>);

template <class S>
using ST = sd::SudokuTask<S>;

// Every permutation of 0..n-1 that keeps groups of `size` consecutive indices together (a band
// order with an order inside each band), as random_transform draws them.
std::vector<std::vector<std::uint8_t>> grouped_perms(int groups, int size) {
  std::vector<std::vector<std::uint8_t>> out;
  std::vector<int> order(static_cast<std::size_t>(groups));
  std::iota(order.begin(), order.end(), 0);
  std::vector<int> inner(static_cast<std::size_t>(size));
  std::iota(inner.begin(), inner.end(), 0);
  std::vector<std::vector<int>> inners;
  do inners.push_back(inner);
  while (std::next_permutation(inner.begin(), inner.end()));
  do {
    // one inner permutation per group: a mixed-radix counter over inners.size()^groups
    std::size_t combos = 1;
    for (int g = 0; g < groups; ++g) combos *= inners.size();
    for (std::size_t c = 0; c < combos; ++c) {
      std::vector<std::uint8_t> perm;
      std::size_t rest = c;
      for (int g = 0; g < groups; ++g) {
        const auto& in = inners[rest % inners.size()];
        rest /= inners.size();
        for (int j = 0; j < size; ++j) perm.push_back(std::uint8_t(order[std::size_t(g)] * size + in[std::size_t(j)]));
      }
      out.push_back(perm);
    }
  } while (std::next_permutation(order.begin(), order.end()));
  return out;
}

// augment then invert is the identity, on grids (inverse) and on tokens (invert), and the
// augmented example is still a correct one.
template <class S>
void check_round_trip(const ST<S>& task, const sd::Transform<S>& k, const TaskExample<ST<S>>& ex) {
  const auto q = task.augment(ex.question, k), a = task.augment(ex.answer, k);
  CHECK(task.is_valid_answer(q, a));
  CHECK(task.invert(task.encode(q), k) == task.encode(ex.question));
  CHECK(task.invert(task.encode(a), k) == task.encode(ex.answer));
  CHECK(sd::apply_transform(sd::inverse(k), q) == ex.question);
  CHECK(sd::apply_transform(k, sd::apply_transform(sd::inverse(k), ex.answer)) == ex.answer);
}

template <class S>
std::vector<TaskExample<ST<S>>> some_examples(int count, int blanks, std::uint64_t seed) {
  const ST<S> task(blanks);
  Rng rng(seed);
  std::vector<TaskExample<ST<S>>> out;
  for (int i = 0; i < count; ++i) out.push_back(task.generate(rng));
  return out;
}

}  // namespace

TEST_CASE_TEMPLATE("the Sudoku task satisfies every concept", S, sd::Sudoku4, sd::Sudoku6, sd::Sudoku9) {
  static_assert(Task<ST<S>> && GeneratingTask<ST<S>> && SolvingTask<ST<S>> && AugmentingTask<ST<S>> && ReadingTask<ST<S>>);
  static_assert(ST<S>::rows == S::n && ST<S>::cols == S::n && task_seq_len<ST<S>> == S::seq_len);
  static_assert(ST<S>::vocab_size == S::vocab_size && ST<S>::pad_token == sd::pad_token);
  const ST<S> task;
  CHECK(task.name() == S::name());
}

TEST_CASE_TEMPLATE("Sudoku task: generate, solve, encode/decode round trip", S, sd::Sudoku4, sd::Sudoku6, sd::Sudoku9) {
  const ST<S> task(S::n == 9 ? 40 : S::cells / 2);
  Rng rng(11);
  for (int i = 0; i < 3; ++i) {
    const auto ex = task.generate(rng);
    CHECK(sd::count_blanks(ex.question) == task.blanks);
    CHECK(task.is_valid_answer(ex.question, ex.answer));
    CHECK_FALSE(task.is_valid_answer(ex.question, ex.question));  // blanks
    CHECK(task.decode(task.encode(ex.question)) == ex.question);
    CHECK(task.decode(task.encode(ex.answer)) == ex.answer);
    CHECK(task.encode(ex.question) == sd::encode(ex.question));  // the reference encoding
    const auto solved = task.solve(ex.question);
    REQUIRE(solved.has_value());
    CHECK(*solved == ex.answer);
    CHECK(task.is_valid_answer(ex.question, *solved));
  }
  // Same seed, same examples (the task's generator is sudoku::generate).
  Rng a(5), b(5);
  const auto e = task.generate(a);
  const auto f = sd::generate<S>(b, task.blanks);
  CHECK(e.question == f.puzzle);
  CHECK(e.answer == f.solution);
}

TEST_CASE("Sudoku task: decode names the position, encode the cell") {
  const ST<sd::Sudoku4> task;
  auto t = task.encode(sd::Grid<sd::Sudoku4>{});
  t[5] = 0;
  CHECK_THROWS_WITH_AS(task.decode(t), doctest::Contains("cell 5 (row 1, col 1) has token 0"), trm::ValueError);
  t[5] = 9;
  CHECK_THROWS_WITH_AS(task.decode(t), doctest::Contains("cell 5 (row 1, col 1) has token 9"), trm::ValueError);
  CHECK_THROWS_AS(task.decode(std::span<const std::uint8_t>(t).first(15)), trm::ShapeError);
  sd::Grid<sd::Sudoku4> g{};
  g[7] = 5;
  CHECK_THROWS_WITH_AS(task.encode(g), doctest::Contains("cell 7 (row 1, col 3) has value 5"), trm::ValueError);
}

TEST_CASE("Sudoku task: every 4x4 augmentation is inverted exactly") {
  using S = sd::Sudoku4;
  const ST<S> task;
  const auto examples = some_examples<S>(3, 9, 3);
  const auto perms = grouped_perms(S::bands, S::box_rows);  // square boxes: rows and columns alike
  REQUIRE(perms.size() == 8);
  std::array<std::uint8_t, S::n> digits{1, 2, 3, 4};
  int kinds = 0;
  do {
    for (int tr = 0; tr < 2; ++tr)
      for (const auto& rp : perms)
        for (const auto& cp : perms) {
          sd::Transform<S> k = sd::Transform<S>::identity();
          for (int d = 1; d <= S::n; ++d) k.digit_map[std::size_t(d)] = digits[std::size_t(d - 1)];
          k.transpose = tr == 1;
          std::copy(rp.begin(), rp.end(), k.row_perm.begin());
          std::copy(cp.begin(), cp.end(), k.col_perm.begin());
          for (const auto& ex : examples) check_round_trip(task, k, ex);
          ++kinds;
        }
  } while (std::next_permutation(digits.begin(), digits.end()));
  CHECK(kinds == 24 * 2 * 8 * 8);  // 4! digit maps x transpose x band/row orders x stack/column orders
}

TEST_CASE_TEMPLATE("Sudoku task: each kind of augmentation, and random ones, are inverted exactly", S, sd::Sudoku6, sd::Sudoku9) {
  const ST<S> task;
  const auto examples = some_examples<S>(3, S::n == 9 ? 45 : 18, 17);
  Rng rng(99);
  std::vector<sd::Transform<S>> ks;
  // One kind at a time: digits only, transpose only (square boxes), rows only, columns only.
  auto only = [&](int kind) {
    const sd::Transform<S> r = task.random_augmentation(rng);
    sd::Transform<S> k = task.identity_augmentation();
    if (kind == 0) k.digit_map = r.digit_map;
    if (kind == 1) k.transpose = S::square_boxes;
    if (kind == 2) k.row_perm = r.row_perm;
    if (kind == 3) k.col_perm = r.col_perm;
    return k;
  };
  for (int kind = 0; kind < 4; ++kind)
    for (int i = 0; i < 3; ++i) ks.push_back(only(kind));
  for (int i = 0; i < 40; ++i) ks.push_back(task.random_augmentation(rng));
  ks.push_back(task.identity_augmentation());
  for (const auto& k : ks)
    for (const auto& ex : examples) check_round_trip(task, k, ex);

  // invert works on any tokens (a model's prediction), not only on valid grids.
  for (const auto& k : ks) {
    sd::Tokens<S> t{};
    for (auto& v : t) v = std::uint8_t(rng.below(S::vocab_size + 2));  // pad, blank, digits, out of range
    CHECK(task.invert(ST<S>::transform_tokens(k, t), k) == t);
  }

  // random_augmentation is the reference augmentation: the same draws as sudoku::augment.
  Rng a(7), b(7);
  const sd::Example<S> src{examples[0].question, examples[0].answer};
  const auto k = task.random_augmentation(a);
  const auto aug = sd::augment(src, b);
  CHECK(task.augment(src.puzzle, k) == aug.puzzle);
  CHECK(task.augment(src.solution, k) == aug.solution);
}

TEST_CASE("make_batch and score on Sudoku") {
  using S = sd::Sudoku4;
  const ST<S> task;
  auto examples = some_examples<S>(3, 10, 21);
  // A question with several answers: the reference answer is one of them.
  const auto full = *task.solve(sd::Grid<S>{});
  examples.push_back({sd::Grid<S>{}, full});
  const std::vector<std::int32_t> ids{0, 1, 2, 1};
  const trm::Batch b = make_batch(task, examples, ids);
  REQUIRE(b.inputs.extent(0) == 4);
  REQUIRE(b.inputs.extent(1) == 16);
  for (std::size_t r = 0; r < 4; ++r) {
    const auto q = task.encode(examples[r].question), a = task.encode(examples[r].answer);
    for (int k = 0; k < 16; ++k) {
      CHECK(b.inputs(trm::index_t(r), k) == q[std::size_t(k)]);
      CHECK(b.labels(trm::index_t(r), k) == a[std::size_t(k)]);  // every Sudoku cell is supervised
    }
    CHECK(b.puzzle_identifiers(trm::index_t(r)) == ids[r]);
  }
  CHECK(make_batch(task, examples).puzzle_identifiers(3) == 0);
  CHECK_THROWS_AS(make_batch(task, examples, std::vector<std::int32_t>{1}), trm::ShapeError);

  // Predictions: row 0 exact; row 1 one wrong cell; row 2 garbage tokens; row 3 a different valid
  // answer (digits 1 and 2 swapped) of the open question.
  std::vector<std::int32_t> pred(b.labels.data(), b.labels.data() + 4 * 16);
  pred[16 + 3] = pred[16 + 3] == 2 ? 3 : 2;
  pred[32 + 0] = 0;
  pred[32 + 1] = 99;
  for (int k = 0; k < 16; ++k) {
    auto& v = pred[std::size_t(48 + k)];
    v = v == 2 ? 3 : v == 3 ? 2 : v;
  }
  const TaskScore s = score(task, examples, pred);
  CHECK(s.count == 4);
  CHECK(s.exact == 1);
  CHECK(s.valid == 2);
  CHECK(s.exact_accuracy() == doctest::Approx(0.25));
  CHECK(s.valid_rate() == doctest::Approx(0.5));
  CHECK_THROWS_AS(score(task, examples, std::span<const std::int32_t>(pred).first(10)), trm::ShapeError);

  // The reference-format dataset of the same examples gives the same batch through PuzzleDataset.
  Rng rng(1);
  const auto d = sd::build_reference_dataset(ST<S>::to_sudoku_examples(examples), 0, rng);
  const PuzzleDataset p = d.to_puzzle_dataset();
  EvalSampler eval(p, {.global_batch_size = 4});
  const auto eb = eval.next();
  REQUIRE(eb.has_value());
  const trm::Batch mb = make_batch(task, examples);
  CHECK(std::equal(eb->batch.inputs.data(), eb->batch.inputs.data() + 64, mb.inputs.data()));
  CHECK(std::equal(eb->batch.labels.data(), eb->batch.labels.data() + 64, mb.labels.data()));
}

TEST_CASE("a second task: 1x8 bit reversal, with an unsupervised position") {
  const BitReversal task;
  Rng rng(4);
  std::vector<TaskExample<BitReversal>> examples;
  for (int i = 0; i < 3; ++i) examples.push_back(task.generate(rng));
  examples[2].answer[0] = 2;  // "any": not supervised
  for (const auto& e : examples) CHECK(task.decode(task.encode(e.question)) == e.question);
  CHECK(task.is_valid_answer(examples[0].question, examples[0].answer));
  CHECK_THROWS_WITH_AS(task.decode(std::vector<std::uint8_t>{1, 1, 1, 7, 1, 1, 1, 1}),
                       doctest::Contains("position 3 has token 7"), trm::ValueError);

  const trm::Batch b = make_batch(task, examples);
  CHECK(b.inputs.extent(1) == 8);
  CHECK(b.labels(2, 0) == trm::ignore_label);
  CHECK(b.labels(2, 1) == std::int32_t(task.encode(examples[2].answer)[1]));

  // Row 2 predicts the wrong bit at the unsupervised position: still exact, and the decoded
  // answer (the true reversal) is valid; row 1 is wrong at one position.
  std::vector<std::int32_t> pred;
  for (const auto& e : examples) {
    TaskExample<BitReversal> t{e.question, {}};
    for (std::size_t i = 0; i < 8; ++i) t.answer[i] = e.question[7 - i];
    const auto tok = task.encode(t.answer);
    pred.insert(pred.end(), tok.begin(), tok.end());
  }
  pred[8 + 4] = pred[8 + 4] == 1 ? 2 : 1;
  const TaskScore s = score(task, examples, pred);
  CHECK(s.count == 3);
  CHECK(s.exact == 2);
  CHECK(s.valid == 2);
}

TEST_CASE("the Sudoku reference dataset, now written by PuzzleDataset, has the bytes io::save_npy wrote") {
  using S = sd::Sudoku4;
  const auto examples = ST<S>::to_sudoku_examples(some_examples<S>(4, 8, 6));
  trm::test::TempDir dir;
  Rng rng(3);
  const auto d = sd::write_reference_dataset(dir.path(), "train", examples, 2, rng);
  for (const char* f : {"inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices"}) {
    const auto path = dir.path() / "train" / (std::string("all__") + f + ".npy");
    CHECK_MESSAGE(trm::io::read_file(path) == trm::io::serialize_npy(trm::io::load_npy(path)), f);
  }
  // And PuzzleDataset reads it back as the Sudoku reader does.
  const PuzzleDataset p = PuzzleDataset::read(dir.path(), "train");
  const PuzzleDataset q = d.to_puzzle_dataset();
  CHECK(p.metadata == q.metadata);
  CHECK(p.sets == q.sets);
  CHECK(p.identifiers == std::vector<std::string>{"<blank>"});
}
