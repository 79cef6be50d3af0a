// libFuzzer harness: trm::io::SafetensorsFile::parse (bytes of a .safetensors file), then what a
// caller does with an accepted file: every tensor decoded in its dtype, the file re-serialised and
// parsed back to the same content, load_into() binding each tensor to a buffer of its size, and
// checkpoint_puzzle_ids (which reads a shape from the file).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <trm/io/checkpoint.hpp>
#include <trm/io/safetensors.hpp>

#include "fuzz_support.hpp"

namespace {

using namespace trm::io;

// The decoded element count must match the shape: values<T> of the stored dtype.
std::size_t decoded_count(const SafetensorsFile& f, const std::string& name, DType t) {
  switch (t) {
    case DType::F64: return f.values<double>(name).size();
    case DType::F32: return f.values<float>(name).size();
    case DType::F16: {
      const auto v = f.values<f16>(name);
      for (auto h : v) (void)to_float(h);
      return v.size();
    }
    case DType::BF16: {
      const auto v = f.values<bf16>(name);
      for (auto h : v) (void)to_float(h);
      return v.size();
    }
    case DType::I64: return f.values<std::int64_t>(name).size();
    case DType::I32: return f.values<std::int32_t>(name).size();
    case DType::I16: return f.values<std::int16_t>(name).size();
    case DType::I8: return f.values<std::int8_t>(name).size();
    case DType::U8: return f.values<std::uint8_t>(name).size();
    case DType::BOOL: return f.values<bool>(name).size();
  }
  trm_fuzz::invariant_failed("a parsed tensor has a DType outside the enum");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto bytes = std::as_bytes(std::span<const std::uint8_t>(data, size));
  trm_fuzz::expect_trm_errors([&] {
    const SafetensorsFile file = SafetensorsFile::parse(bytes, "fuzz.safetensors");
    std::vector<std::vector<std::byte>> buffers;
    std::vector<ExpectedTensor> expected;
    for (const auto& [name, record] : file.tensors()) {
      TRM_FUZZ_CHECK(std::size_t(record.numel()) * dtype_size(record.dtype) == record.data.size());
      TRM_FUZZ_CHECK(decoded_count(file, name, record.dtype) == std::size_t(record.numel()));
      buffers.emplace_back(record.data.size());
    }
    std::size_t k = 0;
    for (const auto& [name, record] : file.tensors())
      expected.push_back({name, record.dtype, record.shape, std::span<std::byte>(buffers[k++])});
    load_into(file, expected);
    k = 0;
    for (const auto& [name, record] : file.tensors()) TRM_FUZZ_CHECK(buffers[k++] == record.data);

    // What parse accepts, the writer writes and parse reads back unchanged.
    const std::vector<std::byte> written = file.serialize();
    const SafetensorsFile again = SafetensorsFile::parse(written, "reserialized");
    TRM_FUZZ_CHECK(again.metadata == file.metadata);
    TRM_FUZZ_CHECK(again.names() == file.names());
    for (const auto& [name, record] : file.tensors()) {
      const TensorRecord& r = again.at(name);
      TRM_FUZZ_CHECK(r.dtype == record.dtype && r.shape == record.shape && r.data == record.data);
    }
    TRM_FUZZ_CHECK(again.serialize() == written);

    (void)trm::checkpoint_puzzle_ids(file);
  });
  return 0;
}
