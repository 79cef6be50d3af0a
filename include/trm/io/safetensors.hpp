// trm/io/safetensors.hpp - strict in-memory reader/writer for .safetensors.
//
// Format (https://github.com/huggingface/safetensors):
//   [8 bytes: little-endian u64 N][N bytes: JSON header][data buffer]
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin,
// end]} (offsets relative to the data buffer) plus an optional "__metadata__"
// string-to-string map. Every byte of the buffer must belong to exactly one
// tensor.
//
// Checksums: every file save()/serialize() writes carries, in the metadata
// entry "trm.crc32c" (kChecksumKey), a JSON object mapping each tensor's name
// to the CRC-32C of its data bytes as 8 lower-case hex digits, e.g.
//   "trm.crc32c": "{\"lm_head.weight\":\"1a2b3c4d\",\"q_head.bias\":\"00ff00ff\"}"
// parse() verifies them: a tensor whose bytes do not match is a FormatError
// naming the file and the tensor, so a flipped byte is refused instead of
// loading as a silently different model. A file without the entry (written by
// the safetensors package, PyTorch, older trm) is read as before; an entry that
// is not such an object, or that misses a tensor or names one the file does
// not hold, is a FormatError. The entry is consumed by parse() (it is not in
// `metadata` afterwards; has_checksums() says whether it was there) and
// rewritten by every save, so it always describes the bytes it travels with.
//
// This header also holds what trm::io shares with npy.hpp: DType (whose names
// are the safetensors dtype strings), FormatError and the typed-value helpers.
// It deliberately knows nothing about the rest of trm; an adapter binds
// TensorRecord / load_into() to the model's tensors.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "trm/io/atomic_file.hpp"
#include "trm/io/crc32c.hpp"
#include "trm/io/json.hpp"

namespace trm::io {

// Both formats store little-endian data and tensors are copied byte for byte.
static_assert(std::endian::native == std::endian::little, "trm::io supports little-endian hosts only");

// Malformed or mismatching file content. The message names the file (or the
// source name given to parse()), the tensor and expected vs found values.
// Operating-system failures (open, write, rename) are std::system_error.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The metadata entry holding the per-tensor CRC-32C checksums (see the top of this file).
inline constexpr std::string_view kChecksumKey = "trm.crc32c";

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

inline constexpr DType kAllDTypes[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                                       DType::I32, DType::I16, DType::I8,  DType::U8,   DType::BOOL};

// The safetensors spelling: "F32", "BF16", "BOOL", ...
inline std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  throw std::invalid_argument("invalid trm::io::DType value " + std::to_string(static_cast<int>(t)));
}

inline std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64:
    case DType::I64: return 8;
    case DType::F32:
    case DType::I32: return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16: return 2;
    case DType::I8:
    case DType::U8:
    case DType::BOOL: return 1;
  }
  throw std::invalid_argument("invalid trm::io::DType value " + std::to_string(static_cast<int>(t)));
}

inline std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType t : kAllDTypes) {
    if (dtype_name(t) == name) return t;
  }
  return std::nullopt;
}

// Half-precision element types, stored as raw bits (C++20 has no standard
// 16-bit float). They make values<f16>() / add<bf16>() possible and convert
// exactly to float.
struct f16 {
  std::uint16_t bits = 0;
  friend constexpr bool operator==(f16, f16) = default;
};
struct bf16 {
  std::uint16_t bits = 0;
  friend constexpr bool operator==(bf16, bf16) = default;
};

inline float to_float(f16 h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
  const std::uint32_t exponent = (h.bits >> 10) & 0x1fu;
  const std::uint32_t mantissa = h.bits & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf/NaN
  return std::bit_cast<float>(sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13));
}

inline float to_float(bf16 h) { return std::bit_cast<float>(static_cast<std::uint32_t>(h.bits) << 16); }

// C++ element type <-> DType. Used by the typed values<T>() / add<T>().
template <class T>
struct dtype_of;  // undefined: unsupported element type
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<f16> { static constexpr DType value = DType::F16; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::BF16; };
template <> struct dtype_of<std::int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<std::int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<std::int16_t> { static constexpr DType value = DType::I16; };
template <> struct dtype_of<std::int8_t> { static constexpr DType value = DType::I8; };
template <> struct dtype_of<std::uint8_t> { static constexpr DType value = DType::U8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::BOOL; };

template <class T>
inline constexpr DType dtype_of_v = dtype_of<std::remove_cv_t<T>>::value;

// "[11, 64]"; a scalar is "[]".
inline std::string format_shape(std::span<const std::int64_t> shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

// Product of the dimensions (1 for a scalar). A zero dimension first: [2^62, 4, 0] holds nothing,
// and multiplying in order would overflow before reaching the 0. The readers check the product
// against the file's size; a shape built by hand that overflows is refused here.
inline std::int64_t checked_numel(std::span<const std::int64_t> shape) {
  for (std::int64_t d : shape)
    if (d == 0) return 0;
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0 || n > std::numeric_limits<std::int64_t>::max() / d)
      throw FormatError("numel: shape " + format_shape(shape) + ": expected non-negative dimensions whose product fits int64");
    n *= d;
  }
  return n;
}

struct TensorRecord {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> data;  // C order, little-endian

  // Product of the dimensions (1 for a scalar, 0 if any dimension is 0).
  std::int64_t numel() const { return checked_numel(shape); }
  std::string shape_text() const { return format_shape(shape); }
};

namespace detail {

// numel * dtype_size with every dimension checked (>= 0) and overflow
// detected, so a hostile header cannot make us allocate or index wrongly.
// `context` prefixes the error message (file and tensor).
inline std::size_t checked_nbytes(std::span<const std::int64_t> shape, DType dtype, const std::string& context) {
  constexpr auto limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::uint64_t bytes = dtype_size(dtype);
  for (std::int64_t d : shape) {
    if (d < 0) throw FormatError(context + ": negative dimension in shape " + format_shape(shape));
  }
  for (std::int64_t d : shape) {
    if (d == 0) return 0;
  }
  for (std::int64_t d : shape) {
    if (bytes > limit / static_cast<std::uint64_t>(d)) {
      throw FormatError(context + ": shape " + format_shape(shape) + " with dtype " +
                        std::string(dtype_name(dtype)) + " is too large");
    }
    bytes *= static_cast<std::uint64_t>(d);
  }
  if (bytes > std::numeric_limits<std::size_t>::max()) throw FormatError(context + ": tensor too large");
  return static_cast<std::size_t>(bytes);
}

// A bool stored as anything but 0/1 cannot be read into a C++ bool safely.
inline void check_bool_bytes(std::span<const std::byte> data, const std::string& context) {
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] != std::byte{0} && data[i] != std::byte{1}) {
      throw FormatError(context + ": BOOL element " + std::to_string(i) + " has byte value " +
                        std::to_string(std::to_integer<int>(data[i])) + " (must be 0 or 1)");
    }
  }
}

template <class T>
std::vector<T> decode_values(DType found, std::span<const std::byte> data, const std::string& context) {
  constexpr DType expected = dtype_of_v<T>;
  if (found != expected) {
    throw FormatError(context + ": expected dtype " + std::string(dtype_name(expected)) + ", found " +
                      std::string(dtype_name(found)));
  }
  static_assert(std::is_trivially_copyable_v<T>);
  if (data.size() % sizeof(T) != 0) throw FormatError(context + ": byte size is not a multiple of the element size");
  if constexpr (std::is_same_v<T, bool>) {
    check_bool_bytes(data, context);
    std::vector<bool> out(data.size());
    for (std::size_t i = 0; i < data.size(); ++i) out[i] = data[i] == std::byte{1};
    return out;
  } else {
    std::vector<T> out(data.size() / sizeof(T));
    if (!data.empty()) std::memcpy(out.data(), data.data(), data.size());
    return out;
  }
}

template <class T>
std::vector<std::byte> encode_values(std::span<const T> values) {
  static_assert(std::is_trivially_copyable_v<T>);
  static_assert(sizeof(bool) == 1, "BOOL tensors are stored as one byte per element");
  std::vector<std::byte> out(values.size_bytes());
  if (!out.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// 'name' (built piecewise: "'" + std::string(s) + "'" trips a GCC 12
// -Wrestrict false positive at -O3).
// Names come from files, so the quoted text is made safe to print: bytes outside printable ASCII
// (a NUL would cut the message short where it is printed with %s, an escape sequence would drive
// the terminal) are written as \xNN, and at most 120 characters are kept.
inline std::string single_quoted(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  constexpr std::size_t keep = 120;
  std::string out;
  out.reserve(std::min(s.size(), keep) + 2);
  out += '\'';
  for (std::size_t i = 0; i < s.size() && i < keep; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > keep) out += "...";
  out += '\'';
  return out;
}

// Appends to a byte vector; the same interface as AtomicFileWriter::write.
struct VectorSink {
  std::vector<std::byte>& out;
  void write(std::span<const std::byte> bytes) { out.insert(out.end(), bytes.begin(), bytes.end()); }
  void write(std::string_view text) { write(std::as_bytes(std::span<const char>(text.data(), text.size()))); }
};

}  // namespace detail

// An in-memory safetensors file. Tensors are kept sorted by name.
class SafetensorsFile {
 public:
  using TensorMap = std::map<std::string, TensorRecord, std::less<>>;

  // Largest accepted JSON header, as in the reference implementation: guards
  // against absurd allocations from a corrupt length field.
  static constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
  static constexpr std::size_t kMaxRank = 64;  // numpy 2's NPY_MAXDIMS

  SafetensorsFile() = default;
  explicit SafetensorsFile(std::string source_name) : source_(std::move(source_name)) {}

  // Reads and fully validates a file (see parse()). Throws FormatError for bad
  // content and std::system_error if the file cannot be read.
  static SafetensorsFile load(const std::filesystem::path& path) { return parse(read_file(path), path.string()); }

  // Validates header length, JSON, every entry (dtype, shape, data_offsets),
  // offsets (ordered, in range, non-overlapping, covering the buffer exactly),
  // byte sizes, duplicate names/keys and BOOL byte values. `source_name` is
  // used in error messages.
  static SafetensorsFile parse(std::span<const std::byte> bytes, std::string_view source_name);

  // Atomic (see AtomicFileWriter). Output is deterministic: tensors in name
  // order, compact JSON with sorted keys, header space-padded to a multiple of
  // 8 bytes. Identical content gives byte-identical files.
  void save(const std::filesystem::path& path) const {
    write_file_atomically(path, [&](AtomicFileWriter& w) { write_to(w); });
  }
  // The exact bytes save() writes.
  std::vector<std::byte> serialize() const {
    std::vector<std::byte> out;
    detail::VectorSink sink{out};
    write_to(sink);
    return out;
  }

  const TensorRecord& at(std::string_view name) const;
  bool contains(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const auto& entry : tensors_) out.push_back(entry.first);
    return out;
  }
  std::size_t size() const { return tensors_.size(); }
  const TensorMap& tensors() const { return tensors_; }
  const std::string& source_name() const { return source_; }
  // Whether the parsed file carried the kChecksumKey entry (then every tensor was verified).
  bool has_checksums() const { return has_checksums_; }

  // The tensor's elements, C order. T must match the stored dtype exactly
  // (float <-> F32, double <-> F64, std::int32_t <-> I32, f16 <-> F16, ...).
  template <class T>
  std::vector<T> values(std::string_view name) const {
    const TensorRecord& record = at(name);
    return detail::decode_values<T>(record.dtype, record.data, context(name));
  }

  // Adds a tensor; throws FormatError on a duplicate name or when
  // values.size() differs from the shape's element count.
  template <class T>
  void add(std::string name, std::vector<std::int64_t> shape, std::span<const T> values) {
    const std::string ctx = context(name);
    const std::size_t nbytes = detail::checked_nbytes(shape, dtype_of_v<T>, ctx);
    if (values.size_bytes() != nbytes) {
      throw FormatError(ctx + ": shape " + format_shape(shape) + " needs " + std::to_string(nbytes / sizeof(T)) +
                        " values, got " + std::to_string(values.size()));
    }
    add(TensorRecord{std::move(name), dtype_of_v<T>, std::move(shape), detail::encode_values(values)});
  }

  // Adds a tensor given as raw little-endian bytes (validated like add<T>).
  void add(TensorRecord record);

  std::map<std::string, std::string> metadata;  // the "__metadata__" map

 private:
  std::string context(std::string_view tensor) const { return source_ + ": tensor " + detail::single_quoted(tensor); }
  std::string header_text() const;
  template <class Sink>
  void write_to(Sink& sink) const;

  std::string source_ = "<memory>";
  TensorMap tensors_;
  bool has_checksums_ = false;
};

inline const TensorRecord& SafetensorsFile::at(std::string_view name) const {
  if (auto it = tensors_.find(name); it != tensors_.end()) return it->second;
  // List a few names, preferring ones that end with the requested name: the
  // usual cause is a prefix such as "_orig_mod." or "model.".
  std::vector<std::string_view> shown;
  for (const auto& [stored, record] : tensors_) {
    if (shown.size() < 5 && stored.size() > name.size() && stored.ends_with(name)) shown.push_back(stored);
  }
  for (const auto& [stored, record] : tensors_) {
    if (shown.size() >= 5) break;
    if (std::find(shown.begin(), shown.end(), stored) == shown.end()) shown.push_back(stored);
  }
  std::string msg = source_ + ": no tensor named " + detail::single_quoted(name) + " (" + std::to_string(tensors_.size()) +
                    " tensors";
  if (!shown.empty()) {
    msg += ", e.g. ";
    for (std::size_t i = 0; i < shown.size(); ++i) msg += (i ? ", " : "") + detail::single_quoted(shown[i]);
  }
  throw FormatError(msg + ")");
}

inline void SafetensorsFile::add(TensorRecord record) {
  const std::string ctx = context(record.name);
  if (record.name == "__metadata__") throw FormatError(ctx + ": the name is reserved for the metadata map");
  try {
    (void)nlohmann::json(record.name).dump();  // the name must be encodable in the JSON header
  } catch (const nlohmann::json::exception&) {
    throw FormatError(ctx + ": name is not valid UTF-8");
  }
  const std::size_t nbytes = detail::checked_nbytes(record.shape, record.dtype, ctx);
  if (record.data.size() != nbytes) {
    throw FormatError(ctx + ": shape " + format_shape(record.shape) + " with dtype " +
                      std::string(dtype_name(record.dtype)) + " needs " + std::to_string(nbytes) + " bytes, got " +
                      std::to_string(record.data.size()));
  }
  if (record.dtype == DType::BOOL) detail::check_bool_bytes(record.data, ctx);
  if (tensors_.contains(record.name)) throw FormatError(ctx + ": duplicate tensor name");
  std::string key = record.name;
  tensors_.emplace(std::move(key), std::move(record));
}

inline std::string SafetensorsFile::header_text() const {
  // nlohmann::json objects are std::maps, so keys come out sorted and dump()
  // is deterministic. Data is laid out in the same (name) order.
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, record] : tensors_) {
    nlohmann::json entry = nlohmann::json::object();
    entry["dtype"] = dtype_name(record.dtype);
    entry["shape"] = record.shape;
    entry["data_offsets"] = nlohmann::json::array({offset, offset + record.data.size()});
    header[name] = std::move(entry);
    offset += record.data.size();
  }
  // The checksums are computed here, from the bytes written next to them, so no caller can
  // forget them or leave a stale set behind; they replace any entry of that name in `metadata`.
  auto meta = metadata;
  if (!tensors_.empty()) {
    nlohmann::json sums = nlohmann::json::object();
    char hex[9];
    for (const auto& [name, record] : tensors_) {
      std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(crc32c(record.data)));
      sums[name] = hex;
    }
    meta[std::string(kChecksumKey)] = sums.dump();
  }
  if (!meta.empty()) header["__metadata__"] = meta;
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(source_ + ": cannot encode header (metadata must be valid UTF-8): " + e.what());
  }
  // Pad with spaces so the data buffer starts 8-byte aligned (8 + N).
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

template <class Sink>
void SafetensorsFile::write_to(Sink& sink) const {
  const std::string header = header_text();
  std::byte length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<std::byte>((header.size() >> (8 * i)) & 0xff);
  sink.write(std::span<const std::byte>(length, 8));
  sink.write(header);
  for (const auto& entry : tensors_) sink.write(std::span<const std::byte>(entry.second.data));
}

inline SafetensorsFile SafetensorsFile::parse(std::span<const std::byte> bytes, std::string_view source_name) {
  using nlohmann::json;
  SafetensorsFile file{std::string(source_name)};
  const std::string& src = file.source_;
  auto fail = [&](const std::string& msg) { return FormatError(src + ": " + msg); };

  if (bytes.size() < 8) {
    throw fail("file has " + std::to_string(bytes.size()) +
               " bytes, too small for the 8-byte header length (truncated or not a safetensors file)");
  }
  std::uint64_t header_len = 0;
  for (std::size_t i = 0; i < 8; ++i) header_len |= std::to_integer<std::uint64_t>(bytes[i]) << (8 * i);
  const std::uint64_t after_length = bytes.size() - 8;
  if (header_len > after_length) {
    throw fail("header length " + std::to_string(header_len) + " exceeds the " + std::to_string(after_length) +
               " bytes after it (corrupt header length or truncated file)");
  }
  if (header_len > kMaxHeaderBytes) {
    throw fail("header length " + std::to_string(header_len) + " exceeds the limit of " +
               std::to_string(kMaxHeaderBytes) + " bytes");
  }
  const auto* header_begin = reinterpret_cast<const char*>(bytes.data() + 8);
  const std::string_view header_text(header_begin, static_cast<std::size_t>(header_len));
  if (header_text.empty() || header_text.front() != '{') throw fail("header does not start with '{'");
  const std::span<const std::byte> buffer = bytes.subspan(8 + static_cast<std::size_t>(header_len));

  // Depth limit, duplicate keys at any level, parse errors: one implementation (io/json.hpp).
  // No array of a header is longer than a shape (numpy and safetensors allow 64 dimensions).
  const json header = parse_untrusted_json<FormatError>(
      header_text, src + ": header", JsonLimits{.max_array_length = kMaxRank, .top_level_key = "tensor name"});
  if (!header.is_object()) throw fail("header is not a JSON object");

  struct Entry {
    TensorRecord record;
    std::uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) throw fail("__metadata__ is not a JSON object");
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string()) throw fail("__metadata__ value for " + detail::single_quoted(key) + " is not a string");
        file.metadata.emplace(key, text.get<std::string>());
      }
      continue;
    }
    const std::string ctx = "tensor " + detail::single_quoted(name);
    if (!value.is_object()) throw fail(ctx + ": entry is not a JSON object");
    for (const auto& [key, unused] : value.items()) {
      if (key != "dtype" && key != "shape" && key != "data_offsets") throw fail(ctx + ": unknown key " + detail::single_quoted(key));
    }
    for (const char* key : {"dtype", "shape", "data_offsets"}) {
      if (!value.contains(key)) throw fail(ctx + ": missing " + detail::single_quoted(key));
    }
    Entry entry;
    entry.record.name = name;

    const json& dtype = value.at("dtype");
    if (!dtype.is_string()) throw fail(ctx + ": dtype is not a string");
    const auto parsed_dtype = dtype_from_name(dtype.get_ref<const std::string&>());
    if (!parsed_dtype) throw fail(ctx + ": unsupported dtype " + detail::single_quoted(dtype.get_ref<const std::string&>()));
    entry.record.dtype = *parsed_dtype;

    const json& shape = value.at("shape");
    if (!shape.is_array()) throw fail(ctx + ": shape is not an array");
    for (const json& dim : shape) {
      // is_number_unsigned() excludes negatives, fractions and huge values
      // that nlohmann stores as floating point.
      if (!dim.is_number_unsigned() || dim.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max())) {
        throw fail(ctx + ": shape " + json_brief(shape) + " is not a list of non-negative integers");
      }
      entry.record.shape.push_back(dim.get<std::int64_t>());
    }

    const json& offsets = value.at("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      throw fail(ctx + ": data_offsets " + json_brief(offsets) + " is not a pair of non-negative integers");
    }
    entry.begin = offsets[0].get<std::uint64_t>();
    entry.end = offsets[1].get<std::uint64_t>();
    const std::string offsets_text = "data_offsets [" + std::to_string(entry.begin) + ", " + std::to_string(entry.end) + "]";
    if (entry.begin > entry.end) throw fail(ctx + ": " + offsets_text + " are reversed");
    if (entry.end > buffer.size()) {
      throw fail(ctx + ": " + offsets_text + " exceed the data buffer of " + std::to_string(buffer.size()) +
                 " bytes (truncated file?)");
    }
    const std::size_t nbytes = detail::checked_nbytes(entry.record.shape, entry.record.dtype, src + ": " + ctx);
    if (entry.end - entry.begin != nbytes) {
      throw fail(ctx + ": " + offsets_text + " span " + std::to_string(entry.end - entry.begin) + " bytes, but shape " +
                 format_shape(entry.record.shape) + " with dtype " + std::string(dtype_name(entry.record.dtype)) +
                 " needs " + std::to_string(nbytes));
    }
    entries.push_back(std::move(entry));
  }

  // The tensors must tile the buffer: sorted by offset, each begins where the
  // previous one ended, and the last ends at the end of the file.
  std::vector<const Entry*> order;
  for (const Entry& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return std::tie(a->begin, a->end, a->record.name) < std::tie(b->begin, b->end, b->record.name);
  });
  std::uint64_t cursor = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : order) {
    if (e->begin < cursor) {
      throw fail("tensor " + detail::single_quoted(e->record.name) + " (bytes " + std::to_string(e->begin) + ".." +
                 std::to_string(e->end) + ") overlaps tensor " + detail::single_quoted(previous->record.name) + " (bytes " +
                 std::to_string(previous->begin) + ".." + std::to_string(previous->end) + ")");
    }
    if (e->begin > cursor) {
      throw fail("bytes " + std::to_string(cursor) + ".." + std::to_string(e->begin) +
                 " of the data buffer belong to no tensor (gap before tensor " + detail::single_quoted(e->record.name) + ")");
    }
    cursor = e->end;
    previous = e;
  }
  if (cursor != buffer.size()) {
    throw fail("data buffer has " + std::to_string(buffer.size() - cursor) + " trailing bytes after the last tensor");
  }

  // Checksums, when the file has them: the entry is checked for form first (a malformed one is
  // refused as such, not reported as corrupt tensors), then every tensor's bytes.
  std::map<std::string, std::uint32_t, std::less<>> sums;
  if (const auto it = file.metadata.find(std::string(kChecksumKey)); it != file.metadata.end()) {
    const std::string what = "metadata entry " + detail::single_quoted(kChecksumKey);
    const json j = parse_untrusted_json<FormatError>(it->second, src + ": " + what);
    if (!j.is_object())
      throw fail(what + ": expected a JSON object of tensor names to CRC-32C values, found " + json_brief(j));
    for (const auto& [name, value] : j.items()) {
      const std::string* text = value.is_string() ? &value.get_ref<const std::string&>() : nullptr;
      const bool hex8 = text && text->size() == 8 &&
                        std::all_of(text->begin(), text->end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
      if (!hex8)
        throw fail(what + ": tensor " + detail::single_quoted(name) + ": expected 8 lower-case hex digits, found " +
                   json_brief(value));
      sums.emplace(name, static_cast<std::uint32_t>(std::stoul(*text, nullptr, 16)));
    }
    for (const Entry& e : entries)
      if (!sums.contains(e.record.name))
        throw fail(what + ": no checksum for tensor " + detail::single_quoted(e.record.name) +
                   " (the entry must cover every tensor)");
    if (sums.size() != entries.size())
      for (const auto& named : sums) {
        const std::string& name = named.first;  // not a structured binding: clang 14 cannot capture one
        if (std::none_of(entries.begin(), entries.end(), [&](const Entry& e) { return e.record.name == name; }))
          throw fail(what + ": names tensor " + detail::single_quoted(name) + ", which the file does not hold");
      }
    file.metadata.erase(it);
    file.has_checksums_ = true;
  }

  for (Entry& e : entries) {
    const auto data = buffer.subspan(static_cast<std::size_t>(e.begin), static_cast<std::size_t>(e.end - e.begin));
    if (file.has_checksums_) {
      const std::uint32_t stored = sums.find(e.record.name)->second, found = crc32c(data);
      if (stored != found) {
        char text[80];
        std::snprintf(text, sizeof text, "stored CRC-32C %08x, computed %08x", static_cast<unsigned>(stored),
                      static_cast<unsigned>(found));
        throw fail("tensor " + detail::single_quoted(e.record.name) + ": checksum mismatch (" + text +
                   "): its bytes changed after the file was written (corrupt file)");
      }
    }
    if (e.record.dtype == DType::BOOL) detail::check_bool_bytes(data, src + ": tensor " + detail::single_quoted(e.record.name));
    e.record.data.assign(data.begin(), data.end());
    std::string key = e.record.name;
    file.tensors_.emplace(std::move(key), std::move(e.record));
  }
  return file;
}

// One tensor load_into() should fill. `destination` must hold exactly
// numel(shape) * dtype_size(dtype) bytes.
struct ExpectedTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::span<std::byte> destination;
};

// Strictly binds `expected` to the file's tensors and copies their bytes.
//
// Stored names are first mapped to canonical names by removing the longest
// matching prefix from `accepted_prefixes` (e.g. "_orig_mod." left by
// torch.compile); names without such a prefix are used unchanged. Then every
// expected tensor must be present with identical dtype and shape, its
// destination must have the right size, and - unless `allow_extra` - no stored
// tensor may go unused. All problems are collected and reported together in
// one FormatError; because the check runs before any copy, a failed call
// leaves every destination untouched.
inline void load_into(const SafetensorsFile& file, std::span<const ExpectedTensor> expected,
                      const std::vector<std::string>& accepted_prefixes = {}, bool allow_extra = false) {
  std::vector<std::string> problems;
  std::size_t missing = 0, extra = 0;

  struct Stored {
    const TensorRecord* record;
    bool used = false;
  };
  std::map<std::string, Stored, std::less<>> by_name;  // canonical name -> stored tensor
  for (const auto& [stored_name, record] : file.tensors()) {
    std::string_view canonical = stored_name;
    std::size_t best = 0;
    for (const std::string& prefix : accepted_prefixes) {
      if (prefix.size() > best && stored_name.size() > prefix.size() && stored_name.starts_with(prefix)) {
        best = prefix.size();
      }
    }
    canonical.remove_prefix(best);
    auto [it, inserted] = by_name.emplace(std::string(canonical), Stored{&record});
    if (!inserted) {
      problems.push_back("tensors " + detail::single_quoted(it->second.record->name) + " and " + detail::single_quoted(stored_name) +
                         " both map to " + detail::single_quoted(canonical) + " after prefix stripping");
    }
  }
  auto label = [](const std::string& name, const TensorRecord& record) {
    std::string s = "tensor " + detail::single_quoted(name);
    if (record.name != name) s += " (stored as " + detail::single_quoted(record.name) + ")";
    return s;
  };

  std::set<std::string_view> seen;
  for (const ExpectedTensor& want : expected) {
    if (!seen.insert(want.name).second) {
      problems.push_back("tensor " + detail::single_quoted(want.name) + " is expected twice");
      continue;
    }
    const auto it = by_name.find(want.name);
    if (it == by_name.end()) {
      ++missing;
      problems.push_back("tensor " + detail::single_quoted(want.name) + ": missing (expected shape " + format_shape(want.shape) +
                         ", dtype " + std::string(dtype_name(want.dtype)) + ")");
      continue;
    }
    it->second.used = true;
    const TensorRecord& found = *it->second.record;
    const std::string who = label(want.name, found);
    if (found.shape != want.shape) {
      problems.push_back(who + ": expected shape " + format_shape(want.shape) + ", found " + format_shape(found.shape));
    }
    if (found.dtype != want.dtype) {
      problems.push_back(who + ": expected dtype " + std::string(dtype_name(want.dtype)) + ", found " +
                         std::string(dtype_name(found.dtype)));
    }
    if (found.shape == want.shape && found.dtype == want.dtype && want.destination.size() != found.data.size()) {
      problems.push_back(who + ": destination holds " + std::to_string(want.destination.size()) +
                         " bytes, the tensor has " + std::to_string(found.data.size()));
    }
  }
  if (!allow_extra) {
    for (const auto& [name, stored] : by_name) {
      if (stored.used) continue;
      ++extra;
      problems.push_back(label(name, *stored.record) + ": unexpected (shape " + format_shape(stored.record->shape) +
                         ", dtype " + std::string(dtype_name(stored.record->dtype)) + ")");
    }
  }

  if (!problems.empty()) {
    constexpr std::size_t kShown = 20;
    std::string msg = file.source_name() + ": cannot load tensors, " + std::to_string(problems.size()) +
                      (problems.size() == 1 ? " problem:" : " problems:");
    for (std::size_t i = 0; i < problems.size() && i < kShown; ++i) msg += "\n  " + problems[i];
    if (problems.size() > kShown) msg += "\n  ... and " + std::to_string(problems.size() - kShown) + " more";
    if (missing > 0 && extra > 0) {
      msg += "\n  (both missing and unexpected tensors: is a name prefix missing from accepted_prefixes?)";
    }
    throw FormatError(msg);
  }

  for (const ExpectedTensor& want : expected) {
    const TensorRecord& found = *by_name.find(want.name)->second.record;
    if (!found.data.empty()) std::memcpy(want.destination.data(), found.data.data(), found.data.size());
  }
}

}  // namespace trm::io
