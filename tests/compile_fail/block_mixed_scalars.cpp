// expect-error: same_as
// A Block's mixer and MLP must share the scalar type (and the backend): a double mixer with a float
// MLP fails the Block's std::same_as constraint.
#include <trm/trm.hpp>

trm::Block<trm::SelfAttention<8, 2, double>, trm::SwiGlu<8, 4, float>> block;

int main() {}
