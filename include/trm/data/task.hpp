#pragma once
// Tasks: what a puzzle family must say for a Tiny Recursive Model to learn it, and generic helpers
// that work for any of them (batches for the model, scores of its answers).
//
// A task maps a puzzle, in the form people read and write (a Sudoku grid, a bit string), to the
// model's token sequence and back, and knows a correct answer when it sees one. Generating,
// solving, augmenting and reading files are optional capabilities, each its own concept, so a
// task provides only what it can.
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "trm/core/error.hpp"
#include "trm/core/rng.hpp"
#include "trm/model/model.hpp"

namespace trm::data {

// The token sequence of one puzzle of task T: T::rows * T::cols tokens, row by row.
template <class T>
using TaskTokens = std::array<std::uint8_t, std::size_t(T::rows) * std::size_t(T::cols)>;

// One question with its (reference) answer, both in the task's puzzle form.
template <class T>
struct TaskExample {
  typename T::puzzle_type question;
  typename T::puzzle_type answer;
  friend bool operator==(const TaskExample&, const TaskExample&) = default;
};

// A task is a value (it may carry settings, such as a generator's difficulty); its sizes are
// static, so the model configuration can be derived from the type.
//   T::rows, T::cols          the grid; the sequence is rows * cols tokens, row by row
//   T::vocab_size             token ids are 0 .. vocab_size - 1 (at most 256: tokens are uint8)
//   T::pad_token              the padding token (the reference's pad_id). In an answer's tokens,
//                             a position holding pad_token is not supervised: make_batch gives it
//                             the label trm::ignore_label (the reference's ignore_label_id = pad).
//   T::puzzle_type            the human form of a question or an answer (equality comparable)
//   t.name()                  the task in words (for messages)
//   t.encode(p)               puzzle -> TaskTokens<T>; a puzzle that cannot be encoded throws
//                             trm::ValueError naming the position
//   t.decode(tokens)          std::span<const std::uint8_t> of rows * cols tokens -> puzzle; a
//                             token that means nothing there throws trm::ValueError naming the
//                             position and the token (a wrong length: trm::ShapeError). decode
//                             inverts encode: decode(encode(p)) == p.
//   t.is_valid_answer(q, a)   true when a is a correct answer to question q (for Sudoku: a
//                             complete valid grid keeping q's givens, so any solution counts,
//                             not only the reference one)
template <class T>
concept Task =
    std::copyable<T> && std::equality_comparable<typename T::puzzle_type> &&
    requires {
      { T::rows } -> std::convertible_to<int>;
      { T::cols } -> std::convertible_to<int>;
      { T::vocab_size } -> std::convertible_to<int>;
      { T::pad_token } -> std::convertible_to<std::uint8_t>;
    } &&
    (T::rows >= 1 && T::cols >= 1 && T::vocab_size >= 1 && T::vocab_size <= 256 && int(T::pad_token) < T::vocab_size) &&
    requires(const T& t, const typename T::puzzle_type& p, std::span<const std::uint8_t> tokens) {
      { t.name() } -> std::convertible_to<std::string>;
      { t.encode(p) } -> std::same_as<TaskTokens<T>>;
      { t.decode(tokens) } -> std::same_as<typename T::puzzle_type>;
      { t.is_valid_answer(p, p) } -> std::same_as<bool>;
    };

// Seeded generator: the same Rng state gives the same example on every platform.
//   t.generate(rng)           -> TaskExample<T> (a question and its answer)
template <class T>
concept GeneratingTask = Task<T> && requires(const T& t, Rng& rng) {
  { t.generate(rng) } -> std::same_as<TaskExample<T>>;
};

// A solver: an answer to a question, or nullopt when there is none.
//   t.solve(q)                -> std::optional<puzzle_type>; when it has a value,
//                                is_valid_answer(q, *t.solve(q)) holds
template <class T>
concept SolvingTask = Task<T> && requires(const T& t, const typename T::puzzle_type& q) {
  { t.solve(q) } -> std::same_as<std::optional<typename T::puzzle_type>>;
};

// Answer-preserving augmentations with their inverses (the reference augments training data and,
// for ARC, votes over answers mapped back to the original frame).
//   T::augmentation_type      one augmentation k (copyable)
//   t.identity_augmentation() the k that changes nothing
//   t.random_augmentation(rng) a seeded random k
//   t.augment(p, k)           p transformed by k; applied to a question and to its answer alike it
//                             keeps the answer correct: is_valid_answer(augment(q,k), augment(a,k))
//   t.invert(tokens, k)       answer tokens in k's frame -> tokens in the original frame, for any
//                             tokens (a model's prediction need not be a valid answer):
//                             invert(encode(augment(p, k)), k) == encode(p)
template <class T>
concept AugmentingTask =
    Task<T> && std::copyable<typename T::augmentation_type> &&
    requires(const T& t, const typename T::puzzle_type& p, const typename T::augmentation_type& k, Rng& rng,
             std::span<const std::uint8_t> tokens) {
      { t.identity_augmentation() } -> std::same_as<typename T::augmentation_type>;
      { t.random_augmentation(rng) } -> std::same_as<typename T::augmentation_type>;
      { t.augment(p, k) } -> std::same_as<typename T::puzzle_type>;
      { t.invert(tokens, k) } -> std::same_as<TaskTokens<T>>;
    };

// Reads examples from a file in the task's own list format (Sudoku: CSV); errors name the file
// and the line.
//   t.read_examples(path)     -> std::vector<TaskExample<T>>
template <class T>
concept ReadingTask = Task<T> && requires(const T& t, const std::filesystem::path& path) {
  { t.read_examples(path) } -> std::same_as<std::vector<TaskExample<T>>>;
};

template <Task T>
inline constexpr int task_seq_len = T::rows * T::cols;

// A batch for the model: row r has the question's tokens as inputs, the answer's tokens as labels
// (pad_token -> trm::ignore_label) and puzzle_ids[r] as its identifier; puzzle_ids may be empty
// (every row gets identifier 0, the reference's blank puzzle) or hold one id per example.
template <Task T>
Batch make_batch(const T& task, std::span<const TaskExample<T>> examples, std::span<const std::int32_t> puzzle_ids = {}) {
  if (!puzzle_ids.empty() && puzzle_ids.size() != examples.size())
    throw ShapeError("make_batch (" + std::string(task.name()) + "): expected no puzzle ids or one per example (" +
                     std::to_string(examples.size()) + "), found " + std::to_string(puzzle_ids.size()));
  constexpr auto L = std::size_t(task_seq_len<T>);
  std::vector<std::int32_t> inputs(examples.size() * L), labels(examples.size() * L), ids(examples.size(), 0);
  for (std::size_t r = 0; r < examples.size(); ++r) {
    const TaskTokens<T> q = task.encode(examples[r].question);
    const TaskTokens<T> a = task.encode(examples[r].answer);
    for (std::size_t k = 0; k < L; ++k) {
      inputs[r * L + k] = q[k];
      labels[r * L + k] = a[k] == T::pad_token ? ignore_label : std::int32_t(a[k]);
    }
    if (!puzzle_ids.empty()) ids[r] = puzzle_ids[r];
  }
  return Batch::from_tokens(inputs, labels, ids, index_t(L));
}

template <Task T>
Batch make_batch(const T& task, const std::vector<TaskExample<T>>& examples, std::span<const std::int32_t> puzzle_ids = {}) {
  return make_batch(task, std::span<const TaskExample<T>>(examples), puzzle_ids);
}

struct TaskScore {
  std::int64_t count = 0;  // rows scored
  std::int64_t exact = 0;  // rows whose prediction equals the reference answer at every supervised position
  std::int64_t valid = 0;  // rows whose prediction decodes to an answer the task accepts (is_valid_answer)
  double exact_accuracy() const { return count > 0 ? double(exact) / double(count) : 0.0; }
  double valid_rate() const { return count > 0 ? double(valid) / double(count) : 0.0; }
};

// Scores predictions ([examples.size() * rows * cols] tokens, row-major, e.g. a Solver's argmax
// predictions) against the examples: exact match with the reference answer (positions where the
// answer's token is pad_token are not compared), and the rate of valid answers (a prediction that
// does not decode, a token out of range for instance, counts as invalid, not as an error).
template <Task T>
TaskScore score(const T& task, std::span<const TaskExample<T>> examples, std::span<const std::int32_t> predictions) {
  constexpr auto L = std::size_t(task_seq_len<T>);
  if (predictions.size() != examples.size() * L)
    throw ShapeError("score (" + std::string(task.name()) + "): expected " + std::to_string(examples.size()) + " x " +
                     std::to_string(L) + " predicted tokens, found " + std::to_string(predictions.size()));
  TaskScore s;
  s.count = std::int64_t(examples.size());
  TaskTokens<T> pred{};
  for (std::size_t r = 0; r < examples.size(); ++r) {
    const TaskTokens<T> ref = task.encode(examples[r].answer);
    bool exact = true, in_range = true;
    for (std::size_t k = 0; k < L; ++k) {
      const std::int32_t p = predictions[r * L + k];
      if (ref[k] != T::pad_token && p != std::int32_t(ref[k])) exact = false;
      if (p < 0 || p >= T::vocab_size) in_range = false;
      pred[k] = std::uint8_t(p);
    }
    s.exact += exact;
    if (!in_range) continue;
    try {
      s.valid += task.is_valid_answer(examples[r].question, task.decode(std::span<const std::uint8_t>(pred)));
    } catch (const ValueError&) {
      // does not decode: not a valid answer
    }
  }
  return s;
}

template <Task T>
TaskScore score(const T& task, const std::vector<TaskExample<T>>& examples, std::span<const std::int32_t> predictions) {
  return score(task, std::span<const TaskExample<T>>(examples), predictions);
}

}  // namespace trm::data
