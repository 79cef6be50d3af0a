// expect-error: satisfaction of .?.?.Scalar<
// Layers are instantiated with float or double only: trm::Layer requires its scalar_type to satisfy
// trm::Scalar, so an int Linear is not a Layer. (The layer templates do not constrain T themselves:
// `trm::Linear<4, 4, false, int> l;` alone compiles; the constraint bites where a Layer is required.)
#include <trm/trm.hpp>

static_assert(trm::Layer<trm::Linear<4, 4, false, int>>);

int main() {}
