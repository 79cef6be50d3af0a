// expect-error: satisfaction of .?.?.Layer<
// A layer declares its per-call scratch as `Workspace` and takes it in forward and backward
// (trm::Layer, core/concepts.hpp): this one keeps the older three-argument forward without a
// Workspace, so a Stack of it is refused and the message names trm::Layer.
#include <trm/trm.hpp>

struct OldStyleBlock {
  using scalar_type = float;
  using backend_type = trm::cpu;
  using input_view = trm::CTensor3View<float>;
  using output_view = trm::Tensor3View<float>;
  struct Cache {};
  void forward(input_view, output_view, Cache&) const {}
  void backward(input_view, input_view, const Cache&, input_view, output_view) {}
};

trm::Stack<OldStyleBlock, 2> stack;

int main() {}
