// expect-error: satisfaction of .?.?.SequenceLayer<
// A Block's MLP must be a SequenceLayer. This struct has the layer's types but neither forward nor
// backward, so trm::Layer (and hence trm::SequenceLayer) is not satisfied.
#include <trm/trm.hpp>

struct TypesOnly {
  using scalar_type = float;
  using backend_type = trm::cpu;
  using input_view = trm::CTensor3View<float>;
  using output_view = trm::Tensor3View<float>;
  struct Cache {};
  struct Workspace {};
};

trm::Block<trm::SelfAttention<8, 2>, TypesOnly> block;

int main() {}
