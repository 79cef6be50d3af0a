// libFuzzer harness: trm::io::parse_npy (bytes of a .npy file: magic, version, header dict,
// data), then the accepted array decoded in its dtype, re-serialised (numpy's layout) and parsed
// back to the same array.
#include <cstddef>
#include <cstdint>
#include <span>

#include <trm/io/npy.hpp>

#include "fuzz_support.hpp"

namespace {

using namespace trm::io;

std::size_t decoded_count(const NpyArray& a) {
  switch (a.dtype) {
    case DType::F64: return values<double>(a).size();
    case DType::F32: return values<float>(a).size();
    case DType::F16: return values<f16>(a).size();
    case DType::I64: return values<std::int64_t>(a).size();
    case DType::I32: return values<std::int32_t>(a).size();
    case DType::I16: return values<std::int16_t>(a).size();
    case DType::I8: return values<std::int8_t>(a).size();
    case DType::U8: return values<std::uint8_t>(a).size();
    case DType::BOOL: return values<bool>(a).size();
    case DType::BF16: break;  // numpy has no bfloat16: parse_npy never returns it
  }
  trm_fuzz::invariant_failed("parse_npy returned a dtype npy cannot hold");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto bytes = std::as_bytes(std::span<const std::uint8_t>(data, size));
  trm_fuzz::expect_trm_errors([&] {
    const NpyArray a = parse_npy(bytes, "fuzz.npy");
    TRM_FUZZ_CHECK(std::size_t(a.numel()) * dtype_size(a.dtype) == a.data.size());
    TRM_FUZZ_CHECK(decoded_count(a) == std::size_t(a.numel()));
    const auto written = serialize_npy(a);
    const NpyArray b = parse_npy(written, "reserialized.npy");
    TRM_FUZZ_CHECK(b.dtype == a.dtype && b.shape == a.shape && b.data == a.data);
    TRM_FUZZ_CHECK(serialize_npy(b) == written);
  });
  return 0;
}
