#pragma once
// Parameters: a value and its gradient, stored as a matrix, with the reference's shape and name.
#include <string>
#include <vector>

#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "../backend/cpu.hpp"
#include "../backend/reference.hpp"

namespace trm {

template <class T, MemorySpace Space = host_space>
struct Param {
  // `shape` is the logical shape under which the reference stores the tensor (a bias is [n]);
  // storage is always a row-major matrix [prod(shape[0..-2]), shape[-1]].
  std::vector<index_t> shape;
  DynTensor<T, 2, Space> value;
  DynTensor<T, 2, Space> grad;

  Param() = default;
  explicit Param(std::vector<index_t> logical_shape) : shape(std::move(logical_shape)) {
    index_t cols = shape.empty() ? 1 : shape.back();
    index_t rows = 1;
    for (std::size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
    value.resize(rows, cols);
    grad.resize(rows, cols);
    value.zero();
    grad.zero();
  }
  index_t numel() const { return value.size(); }
  void zero_grad() { grad.zero(); }
};

// Parameter counting over anything with for_each_parameter.
template <class L>
index_t count_parameters(L& layer) {
  index_t n = 0;
  layer.for_each_parameter([&](const std::string&, auto& p) { n += p.numel(); });
  return n;
}

template <class L>
void zero_grad(L& layer) {
  layer.for_each_parameter([](const std::string&, auto& p) { p.zero_grad(); });
}

inline std::string join_name(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// Shape helpers used by the layers: throw a ShapeError naming the argument and both shapes.
template <class V>
void expect_shape(const char* layer, const char* arg, const V& v, std::initializer_list<index_t> expected) {
  check_shape(std::string(layer) + ": " + arg, std::vector<index_t>(expected), v.shape());
}

}  // namespace trm
