#pragma once
// Training data sources for trm::fit (train/fit.hpp, concept trm::TrainingSource): each hands out
// the next training batch and saves / restores its position, so a resumed run sees the batches the
// interrupted one would have seen.
//   DatasetSource     the reference's sampling of a PuzzleDataset (TrainSampler)
//   GeneratedSource   fresh examples from a GeneratingTask every call (an endless training set),
//                     never one whose question is in a held-out list
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "trm/core/error.hpp"
#include "trm/core/rng.hpp"
#include "trm/data/puzzle_dataset.hpp"
#include "trm/data/task.hpp"
#include "trm/io/json.hpp"

namespace trm::data {

// The reference's training batches of a dataset (SPEC §6.5). The dataset must outlive the source.
class DatasetSource {
 public:
  DatasetSource(const PuzzleDataset& dataset, TrainSamplerOptions options) : sampler_(dataset, options) {}
  const Batch& next() {
    batch_ = sampler_.next().batch;
    return batch_;
  }
  std::string state() const { return sampler_.state(); }
  void restore(const std::string& s) { sampler_.restore(s); }
  const TrainSampler& sampler() const { return sampler_; }

 private:
  TrainSampler sampler_;
  Batch batch_;
};

// The question of an example as a string key (its tokens), for held-out sets.
template <Task T>
std::string question_key(const T& task, const typename T::puzzle_type& question) {
  const TaskTokens<T> tokens = task.encode(question);
  return std::string(tokens.begin(), tokens.end());
}

// `batch_size` freshly generated examples per call, all with puzzle identifier 0 (the reference's
// blank puzzle: a generated example is its own puzzle). A generated example whose question is in
// `held_out` is drawn again (at most max_redraws times in a row, then a ValueError: the held-out
// set covers too much of what the generator makes).
template <GeneratingTask T>
class GeneratedSource {
 public:
  static constexpr int max_redraws = 10000;

  GeneratedSource(T task, index_t batch_size, std::uint64_t seed, std::unordered_set<std::string> held_out = {})
      : task_(std::move(task)), batch_size_(batch_size), rng_(seed), held_out_(std::move(held_out)) {
    if (batch_size < 1) throw ValueError("GeneratedSource: batch_size: expected >= 1, found " + std::to_string(batch_size));
    examples_.resize(std::size_t(batch_size));
  }

  const Batch& next() {
    for (auto& e : examples_) {
      int tries = 0;
      do {
        if (++tries > max_redraws)
          throw ValueError("GeneratedSource (" + std::string(task_.name()) + "): " + std::to_string(max_redraws) +
                           " generated examples in a row were held out; the held-out set (" +
                           std::to_string(held_out_.size()) + " questions) covers what the generator makes");
        e = task_.generate(rng_);
      } while (!held_out_.empty() && held_out_.count(question_key(task_, e.question)));
    }
    batch_ = make_batch(task_, examples_);
    return batch_;
  }

  std::string state() const {
    nlohmann::json r = nlohmann::json::array();
    for (auto v : rng_.state()) r.push_back(std::to_string(v));
    return nlohmann::json{{"generated", r}}.dump();
  }
  void restore(const std::string& text) {
    try {
      const auto j = io::parse_untrusted_json<ValueError>(text, "the saved state");
      const auto& r = j.at("generated");
      if (!r.is_array() || r.size() != 4) throw ValueError("expected 4 numbers in \"generated\"");
      std::array<std::uint64_t, 4> s{};
      for (std::size_t i = 0; i < 4; ++i) s[i] = std::stoull(r.at(i).get<std::string>());
      rng_.set_state(s);
    } catch (const std::exception& e) {
      throw ValueError("GeneratedSource::restore: expected the JSON text of GeneratedSource::state(): " +
                       std::string(e.what()));
    }
  }

  const T& task() const { return task_; }
  std::size_t held_out_size() const { return held_out_.size(); }

 private:
  T task_;
  index_t batch_size_;
  Rng rng_;
  std::unordered_set<std::string> held_out_;
  std::vector<TaskExample<T>> examples_;
  Batch batch_;
};

}  // namespace trm::data
