// Tests for trm/io: safetensors, npy and atomic file writes.
#include <doctest/doctest.h>

#include <trm/io/atomic_file.hpp>
#include <trm/io/npy.hpp>
#include <trm/io/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "support/check_throws.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace trm::io;
using trm::test::TempDir;

namespace {

std::vector<std::byte> to_bytes(std::string_view s) {
  std::vector<std::byte> out(s.size());
  if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());
  return out;
}

std::string to_string(const std::vector<std::byte>& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Runs `f`, which must throw FormatError; returns its message.
template <class F>
std::string format_error(F&& f) {
  return trm::test::error_of<FormatError>(std::forward<F>(f));
}

#define CHECK_CONTAINS(haystack, needle)                                                  \
  do {                                                                                    \
    const std::string check_contains_text = (haystack);                                   \
    CHECK_MESSAGE(check_contains_text.find(needle) != std::string::npos,                  \
                  "expected to find \"" << (needle) << "\" in: " << check_contains_text); \
  } while (0)

// A safetensors image with a hand-written header, for corruption tests.
std::vector<std::byte> raw_safetensors(std::string_view header, std::size_t data_bytes) {
  std::vector<std::byte> out(8);
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
  const auto h = to_bytes(header);
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), data_bytes, std::byte{0});
  return out;
}

std::string parse_error(std::string_view header, std::size_t data_bytes) {
  return format_error([&] { SafetensorsFile::parse(raw_safetensors(header, data_bytes), "bad.safetensors"); });
}

// One tensor of every dtype, including a scalar and an empty tensor.
SafetensorsFile make_sample(bool reverse_insertion = false) {
  std::vector<std::function<void(SafetensorsFile&)>> adders = {
      [](SafetensorsFile& f) {
        const std::vector<double> v = {1.5, -2.25, 1e300, -0.0};
        f.add<double>("weights.f64", {2, 2}, v);
      },
      [](SafetensorsFile& f) {
        const std::vector<float> v = {0.1f, -1e-30f, 3e38f};
        f.add<float>("a.f32", {3}, v);
      },
      [](SafetensorsFile& f) {
        const std::vector<f16> v = {f16{0x3c00}, f16{0xc100}};
        f.add<f16>("h.f16", {2}, v);
      },
      [](SafetensorsFile& f) {
        const std::vector<bf16> v = {bf16{0x3f80}, bf16{0xc020}};
        f.add<bf16>("h.bf16", {2, 1}, v);
      },
      [](SafetensorsFile& f) {
        const std::vector<std::int64_t> v = {123456789012};
        f.add<std::int64_t>("step", {}, v);
      },
      [](SafetensorsFile& f) { f.add<std::int32_t>("empty", {0, 3}, std::span<const std::int32_t>{}); },
      [](SafetensorsFile& f) {
        const std::vector<std::int16_t> v = {-32768, 0, 32767};
        f.add<std::int16_t>("i16", {3}, v);
      },
      [](SafetensorsFile& f) {
        const std::vector<std::int8_t> v = {-128, -1, 0, 127};
        f.add<std::int8_t>("i8", {2, 2}, v);
      },
      [](SafetensorsFile& f) {
        const std::vector<std::uint8_t> v = {0, 1, 200, 255};
        f.add<std::uint8_t>("u8", {1, 4}, v);
      },
      [](SafetensorsFile& f) {
        const bool v[] = {true, false, true};
        f.add<bool>("mask", {3}, v);
      },
  };
  if (reverse_insertion) std::reverse(adders.begin(), adders.end());
  SafetensorsFile file;
  for (auto& add : adders) add(file);
  file.metadata["format"] = "pt";
  file.metadata["note"] = "caf\xc3\xa9";  // UTF-8 survives
  return file;
}

void check_sample(const SafetensorsFile& f) {
  CHECK(f.names() == std::vector<std::string>{"a.f32", "empty", "h.bf16", "h.f16", "i16", "i8", "mask", "step", "u8",
                                              "weights.f64"});
  CHECK(f.values<double>("weights.f64") == std::vector<double>{1.5, -2.25, 1e300, -0.0});
  CHECK(std::signbit(f.values<double>("weights.f64")[3]));
  CHECK(f.values<float>("a.f32") == std::vector<float>{0.1f, -1e-30f, 3e38f});
  CHECK(f.values<f16>("h.f16") == std::vector<f16>{f16{0x3c00}, f16{0xc100}});
  CHECK(f.values<bf16>("h.bf16") == std::vector<bf16>{bf16{0x3f80}, bf16{0xc020}});
  CHECK(f.values<std::int64_t>("step") == std::vector<std::int64_t>{123456789012});
  CHECK(f.values<std::int32_t>("empty").empty());
  CHECK(f.values<std::int16_t>("i16") == std::vector<std::int16_t>{-32768, 0, 32767});
  CHECK(f.values<std::int8_t>("i8") == std::vector<std::int8_t>{-128, -1, 0, 127});
  CHECK(f.values<std::uint8_t>("u8") == std::vector<std::uint8_t>{0, 1, 200, 255});
  CHECK(f.values<bool>("mask") == std::vector<bool>{true, false, true});

  CHECK(f.at("weights.f64").dtype == DType::F64);
  CHECK(f.at("weights.f64").shape == std::vector<std::int64_t>{2, 2});
  CHECK(f.at("h.bf16").shape == std::vector<std::int64_t>{2, 1});
  CHECK(f.at("step").shape.empty());
  CHECK(f.at("step").numel() == 1);
  CHECK(f.at("empty").numel() == 0);
  CHECK(f.at("empty").shape == std::vector<std::int64_t>{0, 3});
  CHECK(f.at("mask").dtype == DType::BOOL);
  CHECK(f.metadata == std::map<std::string, std::string>{{"format", "pt"}, {"note", "caf\xc3\xa9"}});
}

fs::path npy_data_dir() {
#ifdef TRM_TEST_DATA_DIR
  return fs::path(TRM_TEST_DATA_DIR) / "npy";
#else
  // __FILE__ is absolute under CMake; for a relative compile, fall back to the
  // working directory being the repository root.
  const fs::path next_to_source = fs::path(__FILE__).parent_path() / "data" / "npy";
  if (fs::exists(next_to_source)) return next_to_source;
  return fs::current_path() / "tests" / "data" / "npy";
#endif
}

}  // namespace

// ---------------------------------------------------------------------------
// Common pieces
// ---------------------------------------------------------------------------

TEST_CASE("io: dtype names, sizes and lookup") {
  CHECK(dtype_name(DType::BF16) == "BF16");
  CHECK(dtype_name(DType::BOOL) == "BOOL");
  CHECK(dtype_size(DType::F64) == 8);
  CHECK(dtype_size(DType::F16) == 2);
  CHECK(dtype_size(DType::BOOL) == 1);
  for (DType t : kAllDTypes) CHECK(dtype_from_name(dtype_name(t)) == t);
  CHECK_FALSE(dtype_from_name("F8_E4M3").has_value());
  CHECK_FALSE(dtype_from_name("f32").has_value());
  CHECK(format_shape(std::vector<std::int64_t>{11, 64}) == "[11, 64]");
  CHECK(format_shape(std::vector<std::int64_t>{}) == "[]");
}

TEST_CASE("io: f16 and bf16 convert exactly to float") {
  CHECK(to_float(f16{0x3c00}) == 1.0f);
  CHECK(to_float(f16{0xc100}) == -2.5f);
  CHECK(to_float(f16{0x7bff}) == 65504.0f);
  CHECK(to_float(f16{0x0001}) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(to_float(f16{0x03ff}) == std::ldexp(1023.0f, -24));
  CHECK(to_float(f16{0x0400}) == std::ldexp(1.0f, -14));  // smallest normal
  CHECK(std::signbit(to_float(f16{0x8000})));
  CHECK(to_float(f16{0x7c00}) == std::numeric_limits<float>::infinity());
  CHECK(to_float(f16{0xfc00}) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(to_float(f16{0x7e00})));
  CHECK(to_float(bf16{0x3f80}) == 1.0f);
  CHECK(to_float(bf16{0xc020}) == -2.5f);
  CHECK(std::isnan(to_float(bf16{0x7fc0})));
}

// ---------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------

TEST_CASE("safetensors: round trip of all dtypes, scalar and empty tensors") {
  TempDir dir;
  const auto path = dir / "model.safetensors";
  make_sample().save(path);
  const SafetensorsFile loaded = SafetensorsFile::load(path);
  check_sample(loaded);
  CHECK(loaded.source_name() == path.string());
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});  // no temporaries left

  // Layout: 8-byte length, '{', header padded with spaces to a multiple of 8.
  const auto bytes = read_file(path);
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::to_integer<std::uint64_t>(bytes[static_cast<std::size_t>(i)]) << (8 * i);
  CHECK(n % 8 == 0);
  CHECK(static_cast<char>(bytes[8]) == '{');
  const std::string header = to_string(bytes).substr(8, n);
  CHECK(header.find_last_not_of(' ') + 1 > header.size() - 8);  // at most 7 padding spaces
  CHECK(header.find("\"__metadata__\":{\"format\":\"pt\"") != std::string::npos);
}

TEST_CASE("safetensors: output is deterministic and re-saving is byte-identical") {
  TempDir dir;
  const SafetensorsFile a = make_sample();
  const SafetensorsFile b = make_sample(/*reverse_insertion=*/true);
  CHECK(a.serialize() == b.serialize());

  a.save(dir / "first.safetensors");
  SafetensorsFile::load(dir / "first.safetensors").save(dir / "second.safetensors");
  const auto first = read_file(dir / "first.safetensors");
  CHECK(first == read_file(dir / "second.safetensors"));
  CHECK(first == a.serialize());

  // Data follows name order, so offsets increase with the sorted names.
  const std::string text = to_string(first);
  CHECK(text.find("\"a.f32\":{\"data_offsets\":[0,12]") != std::string::npos);
}

TEST_CASE("safetensors: empty file and metadata-only file") {
  SafetensorsFile empty;
  const auto bytes = empty.serialize();
  CHECK(bytes.size() == 16);  // length + "{}" padded to 8
  CHECK(SafetensorsFile::parse(bytes, "empty").size() == 0);

  SafetensorsFile meta;
  meta.metadata["k"] = "v";
  const SafetensorsFile back = SafetensorsFile::parse(meta.serialize(), "meta");
  CHECK(back.size() == 0);
  CHECK(back.metadata.at("k") == "v");
}

TEST_CASE("safetensors: at() and values<T>() errors name the tensor") {
  SafetensorsFile f = SafetensorsFile::parse(make_sample().serialize(), "ckpt.safetensors");
  CHECK(f.contains("a.f32"));
  CHECK_FALSE(f.contains("f32"));

  const std::string missing = format_error([&] { (void)f.at("f32"); });
  CHECK_CONTAINS(missing, "ckpt.safetensors");
  CHECK_CONTAINS(missing, "no tensor named 'f32'");
  CHECK_CONTAINS(missing, "'a.f32'");  // names ending like the request come first
  CHECK_CONTAINS(missing, "10 tensors");

  const std::string wrong = format_error([&] { (void)f.values<float>("weights.f64"); });
  CHECK_CONTAINS(wrong, "ckpt.safetensors");
  CHECK_CONTAINS(wrong, "tensor 'weights.f64'");
  CHECK_CONTAINS(wrong, "expected dtype F32, found F64");
  CHECK_CONTAINS(format_error([&] { (void)f.values<std::int32_t>("u8"); }), "expected dtype I32, found U8");
}

TEST_CASE("safetensors: add() validates names and sizes") {
  SafetensorsFile f;
  const std::vector<float> six(6, 1.0f);
  f.add<float>("w", {2, 3}, six);
  CHECK_CONTAINS(format_error([&] { f.add<float>("w", {6}, six); }), "tensor 'w': duplicate tensor name");
  CHECK_CONTAINS(format_error([&] { f.add<float>("x", {4, 2}, six); }), "shape [4, 2] needs 8 values, got 6");
  CHECK_CONTAINS(format_error([&] { f.add<float>("x", {-1, 6}, six); }), "negative dimension");
  CHECK_CONTAINS(format_error([&] { f.add<float>("__metadata__", {6}, six); }), "reserved");
  CHECK_CONTAINS(format_error([&] { f.add<float>("bad\xff", {6}, six); }), "UTF-8");
  CHECK_CONTAINS(format_error([&] {
                   f.add(TensorRecord{"raw", DType::F16, {3}, std::vector<std::byte>(4)});
                 }),
                 "needs 6 bytes, got 4");
  CHECK_CONTAINS(format_error([&] {
                   f.add(TensorRecord{"flags", DType::BOOL, {1}, {std::byte{2}}});
                 }),
                 "byte value 2");
  CHECK_CONTAINS(format_error([&] {
                   const std::int64_t huge = std::numeric_limits<std::int64_t>::max();
                   f.add(TensorRecord{"huge", DType::F64, {huge, huge}, {}});
                 }),
                 "too large");
  CHECK(f.names() == std::vector<std::string>{"w"});

  f.add(TensorRecord{"raw", DType::F16, {2}, std::vector<std::byte>(4)});
  CHECK(f.at("raw").data.size() == 4);
}

namespace {

// The fixture for load_into: a checkpoint saved through torch.compile, whose
// names all carry "_orig_mod.model.inner.".
struct LoadFixture {
  SafetensorsFile file;
  std::vector<float> embed_src = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<float> head_src = {-1, -2, -3, -4, -5, -6};
  std::vector<std::int64_t> step_src = {42};

  // Destinations start as a 0xAB sentinel so untouched buffers are visible.
  std::vector<float> embed = std::vector<float>(8);
  std::vector<float> head = std::vector<float>(6);
  std::vector<std::int64_t> step = std::vector<std::int64_t>(1);

  explicit LoadFixture(const std::string& prefix = "_orig_mod.model.inner.") {
    file.add<float>(prefix + "embed", {4, 2}, embed_src);
    file.add<float>(prefix + "lm_head.weight", {3, 2}, head_src);
    file.add<std::int64_t>(prefix + "step", {}, step_src);
    file = SafetensorsFile::parse(file.serialize(), "ckpt.safetensors");
    reset();
  }
  template <class T>
  static std::span<std::byte> bytes_of(std::vector<T>& v) {
    return std::as_writable_bytes(std::span<T>(v));
  }
  void reset() {
    for (auto b : {bytes_of(embed), bytes_of(head), bytes_of(step)}) std::fill(b.begin(), b.end(), std::byte{0xAB});
  }
  bool untouched() {
    for (auto b : {bytes_of(embed), bytes_of(head), bytes_of(step)}) {
      if (!std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0xAB}; })) return false;
    }
    return true;
  }
  std::vector<ExpectedTensor> expected() {
    return {
        {"embed", DType::F32, {4, 2}, bytes_of(embed)},
        {"lm_head.weight", DType::F32, {3, 2}, bytes_of(head)},
        {"step", DType::I64, {}, bytes_of(step)},
    };
  }
  const std::vector<std::string> prefixes = {"_orig_mod.", "_orig_mod.model.inner."};
};

}  // namespace

TEST_CASE("load_into: binds strictly and strips accepted prefixes") {
  LoadFixture fx;

  SUBCASE("success copies every tensor; the longest accepted prefix wins") {
    const auto expected = fx.expected();
    load_into(fx.file, expected, fx.prefixes);
    CHECK(fx.embed == fx.embed_src);
    CHECK(fx.head == fx.head_src);
    CHECK(fx.step == fx.step_src);
  }

  SUBCASE("without the prefix every name is missing and every stored one unexpected") {
    const auto expected = fx.expected();
    const std::string msg = format_error([&] { load_into(fx.file, expected); });
    CHECK_CONTAINS(msg, "ckpt.safetensors");
    CHECK_CONTAINS(msg, "6 problems");
    CHECK_CONTAINS(msg, "tensor 'embed': missing (expected shape [4, 2], dtype F32)");
    CHECK_CONTAINS(msg, "tensor '_orig_mod.model.inner.step': unexpected (shape [], dtype I64)");
    CHECK_CONTAINS(msg, "accepted_prefixes");
    CHECK(fx.untouched());
  }

  SUBCASE("missing tensor") {
    auto expected = fx.expected();
    std::vector<float> bias(2);
    expected.push_back({"bias", DType::F32, {2}, std::as_writable_bytes(std::span<float>(bias))});
    const std::string msg = format_error([&] { load_into(fx.file, expected, fx.prefixes); });
    CHECK_CONTAINS(msg, "1 problem:");
    CHECK_CONTAINS(msg, "tensor 'bias': missing (expected shape [2], dtype F32)");
    CHECK(fx.untouched());  // the three valid tensors were not copied either
  }

  SUBCASE("extra tensor is an error unless allow_extra") {
    auto expected = fx.expected();
    expected.pop_back();  // do not ask for "step"
    const std::string msg = format_error([&] { load_into(fx.file, expected, fx.prefixes); });
    CHECK_CONTAINS(msg, "tensor 'step' (stored as '_orig_mod.model.inner.step'): unexpected (shape [], dtype I64)");
    CHECK(fx.untouched());

    load_into(fx.file, expected, fx.prefixes, /*allow_extra=*/true);
    CHECK(fx.embed == fx.embed_src);
    CHECK(fx.head == fx.head_src);
    CHECK(fx.step == std::vector<std::int64_t>{static_cast<std::int64_t>(0xABABABABABABABABull)});
  }

  SUBCASE("wrong shape") {
    auto expected = fx.expected();
    expected[1].shape = {2, 3};
    const std::string msg = format_error([&] { load_into(fx.file, expected, fx.prefixes); });
    CHECK_CONTAINS(msg, "tensor 'lm_head.weight' (stored as '_orig_mod.model.inner.lm_head.weight'): "
                        "expected shape [2, 3], found [3, 2]");
    CHECK(fx.untouched());
  }

  SUBCASE("wrong dtype") {
    auto expected = fx.expected();
    expected[2].dtype = DType::I32;
    expected[2].destination = expected[2].destination.first(4);
    const std::string msg = format_error([&] { load_into(fx.file, expected, fx.prefixes); });
    CHECK_CONTAINS(msg, "tensor 'step' (stored as '_orig_mod.model.inner.step'): expected dtype I32, found I64");
    CHECK(fx.untouched());
  }

  SUBCASE("destination of the wrong size") {
    auto expected = fx.expected();
    expected[0].destination = expected[0].destination.first(16);
    const std::string msg = format_error([&] { load_into(fx.file, expected, fx.prefixes); });
    CHECK_CONTAINS(msg, "destination holds 16 bytes, the tensor has 32");
    CHECK(fx.untouched());
  }

  SUBCASE("expected twice") {
    auto expected = fx.expected();
    expected.push_back(expected[0]);
    CHECK_CONTAINS(format_error([&] { load_into(fx.file, expected, fx.prefixes); }), "'embed' is expected twice");
    CHECK(fx.untouched());
  }
}

TEST_CASE("load_into: exact message for an unprefixed shape mismatch") {
  SafetensorsFile f;
  f.add<float>("lm_head.weight", {12, 64}, std::vector<float>(12 * 64));
  f = SafetensorsFile::parse(f.serialize(), "model.safetensors");
  std::vector<float> dest(11 * 64, 7.0f);
  const std::vector<ExpectedTensor> expected = {
      {"lm_head.weight", DType::F32, {11, 64}, std::as_writable_bytes(std::span<float>(dest))}};
  const std::string msg = format_error([&] { load_into(f, expected); });
  CHECK_CONTAINS(msg, "model.safetensors");
  CHECK_CONTAINS(msg, "tensor 'lm_head.weight': expected shape [11, 64], found [12, 64]");
  CHECK(std::all_of(dest.begin(), dest.end(), [](float x) { return x == 7.0f; }));
}

TEST_CASE("load_into: two stored names mapping to one canonical name is an error") {
  SafetensorsFile f;
  const std::vector<float> one = {1.0f};
  f.add<float>("w", {1}, one);
  f.add<float>("_orig_mod.w", {1}, one);
  float dest = 0.0f;
  const std::vector<ExpectedTensor> expected = {
      {"w", DType::F32, {1}, std::as_writable_bytes(std::span<float>(&dest, 1))}};
  CHECK_CONTAINS(format_error([&] { load_into(f, expected, {"_orig_mod."}); }),
                 "tensors '_orig_mod.w' and 'w' both map to 'w'");
  CHECK(dest == 0.0f);
  // A name equal to a prefix is never stripped to nothing.
  SafetensorsFile g;
  g.add<float>("_orig_mod.", {1}, one);
  const std::vector<ExpectedTensor> whole = {
      {"_orig_mod.", DType::F32, {1}, std::as_writable_bytes(std::span<float>(&dest, 1))}};
  load_into(g, whole, {"_orig_mod."});
  CHECK(dest == 1.0f);
}

TEST_CASE("safetensors: truncated and corrupt files are rejected") {
  const std::vector<std::byte> good = make_sample().serialize();
  REQUIRE_NOTHROW(SafetensorsFile::parse(good, "good"));

  SUBCASE("every truncation fails cleanly") {
    for (std::size_t cut = 0; cut < good.size(); ++cut) {
      const std::span<const std::byte> prefix(good.data(), cut);
      CHECK_THROWS_AS(SafetensorsFile::parse(prefix, "cut"), FormatError);
    }
    CHECK_CONTAINS(format_error([&] { SafetensorsFile::parse(std::span(good).first(good.size() - 1), "t.st"); }),
                   "truncated file");
    CHECK_CONTAINS(format_error([&] { SafetensorsFile::parse(std::span(good).first(5), "t.st"); }),
                   "too small for the 8-byte header length");
  }

  SUBCASE("extra trailing bytes") {
    auto longer = good;
    longer.push_back(std::byte{0});
    CHECK_CONTAINS(format_error([&] { SafetensorsFile::parse(longer, "x"); }), "1 trailing bytes");
  }

  SUBCASE("corrupt header length") {
    auto bad = good;
    for (int i = 0; i < 8; ++i) bad[static_cast<std::size_t>(i)] = std::byte{0xff};
    const std::string msg = format_error([&] { SafetensorsFile::parse(bad, "len.safetensors"); });
    CHECK_CONTAINS(msg, "len.safetensors: header length 18446744073709551615 exceeds");

    // A length that ends inside the JSON text.
    bad = raw_safetensors(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4);
    bad[0] = static_cast<std::byte>(std::to_integer<int>(bad[0]) - 8);
    CHECK_CONTAINS(format_error([&] { SafetensorsFile::parse(bad, "x"); }), "header: expected valid JSON");
  }

  SUBCASE("header syntax") {
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32",})", 0), "bad.safetensors: header: expected valid JSON");
    CHECK_CONTAINS(parse_error("{\"a\xff\": 1}", 0), "header: expected valid JSON");
    CHECK_CONTAINS(parse_error(R"([])", 0), "does not start with '{'");
    CHECK_CONTAINS(parse_error(R"(  {})", 0), "does not start with '{'");
    CHECK_CONTAINS(parse_error("", 0), "does not start with '{'");
    CHECK_CONTAINS(parse_error(R"({} x)", 0), "header: expected valid JSON");
    CHECK_NOTHROW(SafetensorsFile::parse(raw_safetensors("{}      ", 0), "padded"));
  }

  SUBCASE("entries") {
    CHECK_CONTAINS(parse_error(R"({"a": 1})", 0), "tensor 'a': entry is not a JSON object");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [1]}})", 4), "tensor 'a': missing 'data_offsets'");
    CHECK_CONTAINS(parse_error(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", 4), "missing 'dtype'");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4), "missing 'shape'");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}})", 4),
                   "tensor 'a': unknown key 'x'");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}})", 1),
                   "tensor 'a': unsupported dtype 'F8_E4M3'");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": 3, "shape": [1], "data_offsets": [0, 4]}})", 4),
                   "dtype is not a string");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4),
                   "is not a list of non-negative integers");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}})", 4),
                   "is not a list of non-negative integers");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}})", 4),
                   "shape is not an array");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4),
                   "is not a pair of non-negative integers");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4),
                   "data_offsets [4, 0] are reversed");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8),
                   "tensor 'a': data_offsets [0, 8] span 8 bytes, but shape [3] with dtype F32 needs 12");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4),
                   "data_offsets [0, 8] exceed the data buffer of 4 bytes");
    CHECK_CONTAINS(
        parse_error(R"({"a": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", 8),
        "too large");
  }

  SUBCASE("duplicates") {
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                   "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                               4),
                   "duplicate tensor name 'a'");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4),
                   "duplicate key 'dtype' in entry 'a'");
  }

  SUBCASE("offsets must tile the data buffer") {
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                               12),
                   "tensor 'b' (bytes 4..12) overlaps tensor 'a' (bytes 0..8)");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                   "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                               4),
                   "overlaps");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                   "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                               12),
                   "bytes 4..8 of the data buffer belong to no tensor (gap before tensor 'b')");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8),
                   "bytes 0..4 of the data buffer belong to no tensor");
    CHECK_CONTAINS(parse_error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 8),
                   "4 trailing bytes");
    // Offsets need not follow name order, and empty tensors may sit anywhere.
    const auto ok = SafetensorsFile::parse(
        raw_safetensors(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
                            "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                            "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}})",
                        8),
        "ok");
    CHECK(ok.names() == std::vector<std::string>{"a", "b", "e"});
  }

  SUBCASE("metadata and values") {
    CHECK_CONTAINS(parse_error(R"({"__metadata__": {"k": 1}})", 0), "__metadata__ value for 'k' is not a string");
    CHECK_CONTAINS(parse_error(R"({"__metadata__": []})", 0), "__metadata__ is not a JSON object");
    auto bad_bool = raw_safetensors(R"({"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}})", 2);
    bad_bool.back() = std::byte{2};
    CHECK_CONTAINS(format_error([&] { SafetensorsFile::parse(bad_bool, "b.st"); }),
                   "b.st: tensor 'm': BOOL element 1 has byte value 2");
  }
}

namespace {
std::uint64_t header_length(const std::vector<std::byte>& image) {
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::to_integer<std::uint64_t>(image[static_cast<std::size_t>(i)]) << (8 * i);
  return n;
}
nlohmann::json header_of(const std::vector<std::byte>& image) {
  return nlohmann::json::parse(to_string(image).substr(8, header_length(image)));
}

// Byte range [begin, end) of a tensor's data inside a serialized safetensors image.
std::pair<std::size_t, std::size_t> data_range(const std::vector<std::byte>& image, const std::string& tensor) {
  const std::uint64_t n = header_length(image);
  const auto header = header_of(image);
  const auto& off = header.at(tensor).at("data_offsets");
  return {8 + n + off[0].get<std::size_t>(), 8 + n + off[1].get<std::size_t>()};
}

// The image with its "trm.crc32c" entry replaced by `entry` (the header is re-encoded).
std::vector<std::byte> with_checksum_entry(const std::vector<std::byte>& image, const nlohmann::json& entry) {
  const std::uint64_t n = header_length(image);
  auto header = header_of(image);
  if (entry.is_null())
    header["__metadata__"].erase(std::string(kChecksumKey));
  else
    header["__metadata__"][std::string(kChecksumKey)] = entry.is_string() ? entry.get<std::string>() : entry.dump();
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  auto out = raw_safetensors(text, 0);
  out.insert(out.end(), image.begin() + static_cast<std::ptrdiff_t>(8 + n), image.end());
  return out;
}
}  // namespace

TEST_CASE("crc32c: standard check values, and the 8-byte path agrees with the byte-wise one") {
  CHECK(crc32c(std::as_bytes(std::span<const char>("123456789", 9))) == 0xE3069283u);
  // RFC 3720 (iSCSI), appendix B.4: 32 bytes of zeros, of 0xff, and 0x00..0x1f.
  std::array<std::byte, 32> block{};
  CHECK(crc32c(block) == 0x8A9136AAu);
  block.fill(std::byte{0xff});
  CHECK(crc32c(block) == 0x62A8AB43u);
  for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<std::byte>(i);
  CHECK(crc32c(block) == 0x46DD794Eu);
  CHECK(crc32c({}) == 0u);
  // Every length and alignment up to 40 bytes: one call (8 bytes per step, then the tail) equals
  // the same bytes fed one at a time (only the tail loop), which the check values above pin down.
  std::vector<std::byte> data(48);
  std::uint32_t x = 12345;
  for (auto& b : data) b = static_cast<std::byte>((x = x * 1103515245u + 12345u) >> 24);
  for (std::size_t start = 0; start < 8; ++start)
    for (std::size_t len = 0; start + len <= 48 && len <= 40; ++len) {
      const auto part = std::span<const std::byte>(data).subspan(start, len);
      std::uint32_t bytewise = 0;
      for (std::byte b : part) bytewise = crc32c(std::span<const std::byte>(&b, 1), bytewise);
      CHECK(crc32c(part) == bytewise);
    }
}

TEST_CASE("safetensors checksums: written for every tensor, verified on load, consumed from the metadata") {
  const auto image = make_sample().serialize();
  const std::string text = to_string(image);
  CHECK(text.find("\"trm.crc32c\"") != std::string::npos);
  const SafetensorsFile back = SafetensorsFile::parse(image, "ck.safetensors");
  CHECK(back.has_checksums());
  check_sample(back);  // the metadata holds the caller's entries only
  CHECK(back.serialize() == image);
  // No tensors, no entry.
  SafetensorsFile meta;
  meta.metadata["k"] = "v";
  CHECK(to_string(meta.serialize()).find("trm.crc32c") == std::string::npos);
  // A caller's entry of that name is replaced by the real checksums.
  SafetensorsFile forged = make_sample();
  forged.metadata[std::string(kChecksumKey)] = "{\"a.f32\": \"00000000\"}";
  CHECK(forged.serialize() == image);
}

TEST_CASE("safetensors checksums: a changed byte in any tensor is refused, naming the file and the tensor") {
  const auto image = make_sample().serialize();
  for (const std::string& name : make_sample().names()) {
    const auto [begin, end] = data_range(image, name);
    if (begin == end) continue;  // "empty" holds no bytes
    for (std::size_t at : {begin, (begin + end) / 2, end - 1}) {
      auto bad = image;
      bad[at] ^= std::byte{0x10};
      const std::string msg = format_error([&] { SafetensorsFile::parse(bad, "flip.safetensors"); });
      CHECK_CONTAINS(msg, "flip.safetensors: tensor '" + name + "': checksum mismatch (stored CRC-32C ");
      CHECK_CONTAINS(msg, "corrupt file");
    }
  }
  // The same change in a file without checksums (e.g. from the safetensors package) is not detectable: it loads.
  auto plain = with_checksum_entry(image, nullptr);
  const auto [b, e] = data_range(plain, "a.f32");
  plain[b] ^= std::byte{0x10};
  const SafetensorsFile loaded = SafetensorsFile::parse(plain, "plain");
  CHECK_FALSE(loaded.has_checksums());
  CHECK(loaded.values<float>("a.f32")[0] != 0.1f);
}

TEST_CASE("safetensors checksums: a malformed entry is a clear error") {
  const auto image = make_sample().serialize();
  auto err = [&](const nlohmann::json& entry) {
    return format_error([&] { SafetensorsFile::parse(with_checksum_entry(image, entry), "m.safetensors"); });
  };
  CHECK_CONTAINS(err("{"), "m.safetensors: metadata entry 'trm.crc32c': expected valid JSON");
  CHECK_CONTAINS(err("[1, 2]"), "metadata entry 'trm.crc32c': expected a JSON object of tensor names to CRC-32C values, found");
  const auto sums = nlohmann::json::parse(header_of(image)["__metadata__"].at("trm.crc32c").get<std::string>());
  REQUIRE(sums.size() == 10);
  auto changed = [&](const std::string& name, const nlohmann::json& value) {
    auto s = sums;
    if (value.is_null()) s.erase(name);
    else s[name] = value;
    return s;
  };
  CHECK_CONTAINS(err(changed("a.f32", 12)), "tensor 'a.f32': expected 8 lower-case hex digits, found");
  CHECK_CONTAINS(err(changed("a.f32", "1234567")), "tensor 'a.f32': expected 8 lower-case hex digits");
  CHECK_CONTAINS(err(changed("a.f32", "ABCDEF01")), "tensor 'a.f32': expected 8 lower-case hex digits");
  CHECK_CONTAINS(err(changed("a.f32", "0x123456")), "tensor 'a.f32': expected 8 lower-case hex digits");
  CHECK_CONTAINS(err(changed("a.f32", nullptr)), "no checksum for tensor 'a.f32' (the entry must cover every tensor)");
  CHECK_CONTAINS(err(changed("ghost", "00000000")), "names tensor 'ghost', which the file does not hold");
  CHECK_CONTAINS(err(std::string(100000, '[')), "nested at most 64 levels");
}

TEST_CASE("safetensors: a missing path raises std::system_error, a directory trm::io::NotAFileError") {
  TempDir dir;
  CHECK_THROWS_AS(SafetensorsFile::load(dir / "missing.safetensors"), std::system_error);
  CHECK_THROWS_AS(SafetensorsFile::load(dir.path()), trm::io::NotAFileError);
}

// ---------------------------------------------------------------------------
// Atomic writes
// ---------------------------------------------------------------------------

TEST_CASE("atomic save: a missing directory throws and creates nothing") {
  TempDir dir;
  const auto target = dir / "no_such_dir";
  CHECK_THROWS_AS(make_sample().save(target / "model.safetensors"), std::system_error);
  const std::vector<float> v = {1.0f};
  CHECK_THROWS_AS(save_npy(target / "a.npy", make_npy<float>({1}, v)), std::system_error);
  CHECK_FALSE(fs::exists(target));
  CHECK(dir.entries().empty());
}

TEST_CASE("atomic save: a failing write leaves the destination unchanged") {
  TempDir dir;
  const auto dest = dir / "state.bin";
  write_file_atomically(dest, to_bytes("old content"));
  CHECK(to_string(read_file(dest)) == "old content");

  fs::path temp_seen;
  CHECK_THROWS_WITH_AS(write_file_atomically(dest,
                                             [&](AtomicFileWriter& w) {
                                               w.write("new, but half");
                                               temp_seen = w.temp_path();
                                               CHECK(temp_seen.parent_path() == dir.path());
                                               CHECK(fs::exists(temp_seen));
                                               throw std::runtime_error("serialization failed");
                                             }),
                       "serialization failed", std::runtime_error);
  CHECK(to_string(read_file(dest)) == "old content");
  CHECK_FALSE(fs::exists(temp_seen));
  CHECK(dir.entries() == std::vector<std::string>{"state.bin"});

  // A successful write replaces the content and leaves no temporary behind.
  write_file_atomically(dest, [](AtomicFileWriter& w) { w.write("new content"); });
  CHECK(to_string(read_file(dest)) == "new content");
  CHECK(dir.entries() == std::vector<std::string>{"state.bin"});
}

TEST_CASE("atomic save: a failing rename removes the temporary") {
  TempDir dir;
  // The destination is a non-empty directory, so the final rename fails.
  const auto blocker = dir / "model.safetensors";
  fs::create_directories(blocker / "inside");
  CHECK_THROWS_AS(make_sample().save(blocker), std::system_error);
  CHECK(fs::is_directory(blocker / "inside"));
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("atomic save: writer misuse and overwrite of existing files") {
  TempDir dir;
  AtomicFileWriter w(dir / "x");
  w.write("abc");
  w.commit();
  CHECK_THROWS_AS(w.commit(), std::logic_error);
  CHECK_THROWS_AS(w.write("more"), std::logic_error);
  CHECK(to_string(read_file(dir / "x")) == "abc");

  // save() over an existing file replaces it.
  make_sample().save(dir / "x");
  check_sample(SafetensorsFile::load(dir / "x"));
  CHECK(dir.entries() == std::vector<std::string>{"x"});
}

// ---------------------------------------------------------------------------
// npy
// ---------------------------------------------------------------------------

namespace {

// An npy image with a hand-written header (padded like numpy does).
std::vector<std::byte> raw_npy(std::string header, std::size_t data_bytes, int major = 1) {
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  header += '\n';
  std::vector<std::byte> out = to_bytes("\x93NUMPY");
  out.push_back(static_cast<std::byte>(major));
  out.push_back(std::byte{0});
  for (std::size_t i = 0; i < length_bytes; ++i) out.push_back(static_cast<std::byte>((header.size() >> (8 * i)) & 0xff));
  const auto h = to_bytes(header);
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), data_bytes, std::byte{0});
  return out;
}

std::string npy_error(const std::string& header, std::size_t data_bytes, int major = 1) {
  return format_error([&] { parse_npy(raw_npy(header, data_bytes, major), "bad.npy"); });
}

template <class T>
void check_npy_round_trip(const TempDir& dir, std::vector<std::int64_t> shape, std::initializer_list<T> init) {
  const std::vector<T> v(init);  // for comparison (also works for std::vector<bool>)
  const NpyArray a = make_npy<T>(shape, std::span<const T>(init.begin(), init.size()));
  const auto path = dir / ("rt_" + std::string(dtype_name(a.dtype)) + "_" + std::to_string(shape.size()) + ".npy");
  save_npy(path, a);
  const NpyArray b = load_npy(path);
  CHECK(b.dtype == a.dtype);
  CHECK(b.shape == shape);
  CHECK(b.data == a.data);
  CHECK(values<T>(b) == v);
  // Re-saving what was loaded gives the same bytes.
  CHECK(serialize_npy(b) == read_file(path));
  // numpy aligns the data to 64 bytes and ends the header with '\n'.
  const auto bytes = read_file(path);
  const std::size_t data_start = bytes.size() - a.data.size();
  CHECK(data_start % 64 == 0);
  CHECK(static_cast<char>(bytes[data_start - 1]) == '\n');
}

}  // namespace

TEST_CASE("npy: round trip of several dtypes and shapes") {
  TempDir dir;
  check_npy_round_trip<float>(dir, {2, 3}, {0.0f, 1.5f, -2.25f, 3e-8f, 1e30f, -0.0f});
  check_npy_round_trip<double>(dir, {}, {3.25});
  check_npy_round_trip<f16>(dir, {2}, {f16{0x3c00}, f16{0x0001}});
  check_npy_round_trip<std::int64_t>(dir, {3, 1, 2}, {-3, -2, -1, 0, 1, 1LL << 40});
  check_npy_round_trip<std::int32_t>(dir, {0, 3}, {});
  check_npy_round_trip<std::int16_t>(dir, {2}, {-32768, 32767});
  check_npy_round_trip<std::int8_t>(dir, {1, 1, 1, 3}, {-128, 0, 127});
  check_npy_round_trip<std::uint8_t>(dir, {4}, {0, 1, 200, 255});
  check_npy_round_trip<bool>(dir, {2, 2}, {true, false, false, true});
  // Only the round-trip files, no temporaries.
  CHECK(dir.entries().size() == 9);
}

TEST_CASE("npy: typed access and unsupported dtypes") {
  const std::vector<float> v = {1.0f, 2.0f};
  const NpyArray a = make_npy<float>({2}, v);
  CHECK_CONTAINS(format_error([&] { (void)values<double>(a); }), "expected dtype F64, found F32");
  CHECK_CONTAINS(format_error([&] { (void)values<double>(a, "x.npy"); }), "x.npy");
  CHECK_CONTAINS(format_error([&] { (void)make_npy<float>({3}, v); }), "shape [3] needs 3 values, got 2");
  CHECK_CONTAINS(format_error([&] { (void)serialize_npy(NpyArray{DType::F32, {3}, std::vector<std::byte>(8)}); }),
                 "needs 12 bytes, got 8");
  const std::vector<bf16> h = {bf16{0x3f80}};
  CHECK_CONTAINS(format_error([&] { (void)serialize_npy(make_npy<bf16>({1}, h)); }), "BF16 cannot be stored in .npy");
}

TEST_CASE("npy: reads numpy-written files and writes identical bytes") {
  const fs::path dir = npy_data_dir();
  REQUIRE_MESSAGE(fs::exists(dir / "f32_2x3.npy"),
                  "test data not found at " << dir << "; compile with -DTRM_TEST_DATA_DIR=\"<repo>/tests/data\"");

  auto check_same_bytes = [&](const std::string& name) {
    const auto bytes = read_file(dir / name);
    CHECK_MESSAGE(serialize_npy(parse_npy(bytes, name)) == bytes, name);
  };

  const NpyArray f32 = load_npy(dir / "f32_2x3.npy");
  CHECK(f32.dtype == DType::F32);
  CHECK(f32.shape == std::vector<std::int64_t>{2, 3});
  CHECK(values<float>(f32) == std::vector<float>{0.0f, 1.5f, -2.25f, 3.0e-8f, 1.0e30f, -0.0f});

  CHECK(values<double>(load_npy(dir / "f64_vec.npy")) == std::vector<double>{1.0 / 3.0, -2.5, 1.0e300});

  const auto halves = values<f16>(load_npy(dir / "f16_vec.npy"));
  REQUIRE(halves.size() == 4);
  CHECK(to_float(halves[0]) == 1.0f);
  CHECK(to_float(halves[1]) == -2.5f);
  CHECK(to_float(halves[2]) == 65504.0f);
  CHECK(to_float(halves[3]) == std::ldexp(1.0f, -24));

  CHECK(values<std::int64_t>(load_npy(dir / "i64_vec.npy")) == std::vector<std::int64_t>{-3, 0, 7, 1LL << 40});
  const NpyArray i32 = load_npy(dir / "i32_3x1x2.npy");
  CHECK(i32.shape == std::vector<std::int64_t>{3, 1, 2});
  CHECK(values<std::int32_t>(i32) == std::vector<std::int32_t>{-3, -2, -1, 0, 1, 2});
  CHECK(values<std::int16_t>(load_npy(dir / "i16_vec.npy")) == std::vector<std::int16_t>{-32768, 32767});
  CHECK(values<std::int8_t>(load_npy(dir / "i8_vec.npy")) == std::vector<std::int8_t>{-128, 127, 0});
  const NpyArray u8 = load_npy(dir / "u8_scalar.npy");
  CHECK(u8.shape.empty());
  CHECK(values<std::uint8_t>(u8) == std::vector<std::uint8_t>{200});
  CHECK(values<bool>(load_npy(dir / "bool_2x2.npy")) == std::vector<bool>{true, false, false, true});
  const NpyArray empty = load_npy(dir / "f32_empty_0x3.npy");
  CHECK(empty.shape == std::vector<std::int64_t>{0, 3});
  CHECK(empty.data.empty());

  for (const char* name : {"f32_2x3.npy", "f64_vec.npy", "f16_vec.npy", "i64_vec.npy", "i32_3x1x2.npy", "i16_vec.npy",
                           "i8_vec.npy", "u8_scalar.npy", "bool_2x2.npy", "f32_empty_0x3.npy"}) {
    check_same_bytes(name);
  }

  // Format versions 2.0 and 3.0.
  const NpyArray v2 = load_npy(dir / "i16_v2.npy");
  CHECK(v2.shape == std::vector<std::int64_t>{2, 2});
  CHECK(values<std::int16_t>(v2) == std::vector<std::int16_t>{1, -2, 3, -4});
  CHECK(values<double>(load_npy(dir / "f64_v3.npy")) == std::vector<double>{0.5, -0.25});

  // What numpy can write but we refuse.
  CHECK_CONTAINS(format_error([&] { load_npy(dir / "f32_fortran.npy"); }), "fortran_order is True");
  CHECK_CONTAINS(format_error([&] { load_npy(dir / "f32_bigendian.npy"); }), "'>f4' is not little-endian");
}

TEST_CASE("npy: header dict parsing") {
  const std::string f32_23 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

  SUBCASE("accepted variants") {
    CHECK(parse_npy(raw_npy(f32_23, 24), "a").shape == std::vector<std::int64_t>{2, 3});
    // Double quotes, any key order, no trailing commas, odd whitespace.
    const NpyArray b = parse_npy(raw_npy("{\"shape\":(2,3),\"fortran_order\":False,\"descr\":\"<f4\"}", 24), "b");
    CHECK(b.shape == std::vector<std::int64_t>{2, 3});
    CHECK(parse_npy(raw_npy("  {'descr' : '<f4' ,\n 'fortran_order':False,'shape':( 4 , )}  ", 16), "c").shape ==
          std::vector<std::int64_t>{4});
    CHECK(parse_npy(raw_npy("{'descr': '<u1', 'fortran_order': False, 'shape': ()}", 1), "d").dtype == DType::U8);
    CHECK(parse_npy(raw_npy("{'descr': '|b1', 'fortran_order': False, 'shape': (2, 3,)}", 6), "e").numel() == 6);
    // Python 2 long suffix, which numpy still reads for versions 1.0 and 2.0.
    CHECK(parse_npy(raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }", 24), "f").shape ==
          std::vector<std::int64_t>{2, 3});
    CHECK(parse_npy(raw_npy(f32_23, 24, 2), "v2").shape == std::vector<std::int64_t>{2, 3});
    CHECK(parse_npy(raw_npy(f32_23, 24, 3), "v3").shape == std::vector<std::int64_t>{2, 3});
  }

  SUBCASE("rejected headers") {
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'shape': (2,)}", 8), "bad.npy: invalid npy header: missing key 'fortran_order'");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8),
                   "unexpected key 'x'");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", 8),
                   "duplicate key 'descr'");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2)}", 8), "not a tuple");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", 8), "shape must be a tuple");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", 8), "negative dimension");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,)}", 8), "expected ',' or ')'");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", 8),
                   "dimension too large");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2L,)}", 8, 3), "malformed integer");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", 8), "True or False");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,)}", 8), "True or False");
    CHECK_CONTAINS(npy_error("{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", 8), "expected ',' or '}'");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", 8), "expected ',' or '}'");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", 8), "unexpected text");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2,),,}", 8), "expected a quoted key");
    CHECK_CONTAINS(npy_error("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", 8),
                   "structured dtypes");
    CHECK_CONTAINS(npy_error("{'descr': '<u2', 'fortran_order': False, 'shape': (2,)}", 4), "unsupported dtype descr '<u2'");
    CHECK_CONTAINS(npy_error("{'descr': '|f4', 'fortran_order': False, 'shape': (2,)}", 8), "byte order must be '<'");
    CHECK_CONTAINS(npy_error("{'descr': '<f4', 'fortran_order': True, 'shape': (2,)}", 8), "fortran_order is True");
    CHECK_CONTAINS(npy_error("{'descr': 'a\\'b', 'fortran_order': False, 'shape': (2,)}", 8), "escape sequences");
    CHECK_CONTAINS(npy_error("", 0), "expected '{'");
  }

  SUBCASE("framing and data size") {
    auto bytes = raw_npy(f32_23, 24);
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
      CHECK_THROWS_AS(parse_npy(std::span(bytes).first(cut), "cut"), FormatError);
    }
    CHECK_CONTAINS(format_error([&] { parse_npy(std::span(bytes).first(bytes.size() - 1), "t.npy"); }),
                   "needs 24 data bytes, file has 23 (truncated file)");
    bytes.push_back(std::byte{0});
    CHECK_CONTAINS(format_error([&] { parse_npy(bytes, "t.npy"); }), "(trailing bytes)");

    auto bad_magic = raw_npy(f32_23, 24);
    bad_magic[1] = std::byte{'X'};
    CHECK_CONTAINS(format_error([&] { parse_npy(bad_magic, "m.npy"); }), "m.npy: not an npy file");
    auto bad_version = raw_npy(f32_23, 24);
    bad_version[6] = std::byte{4};
    CHECK_CONTAINS(format_error([&] { parse_npy(bad_version, "v.npy"); }), "unsupported npy format version 4.0");
    bad_version[6] = std::byte{1};
    bad_version[7] = std::byte{1};
    CHECK_CONTAINS(format_error([&] { parse_npy(bad_version, "v.npy"); }), "unsupported npy format version 1.1");
    auto bad_length = raw_npy(f32_23, 24);
    bad_length[8] = std::byte{0xff};
    bad_length[9] = std::byte{0xff};
    CHECK_CONTAINS(format_error([&] { parse_npy(bad_length, "l.npy"); }), "header length 65535 exceeds");

    auto bad_bool = raw_npy("{'descr': '|b1', 'fortran_order': False, 'shape': (2,)}", 2);
    bad_bool.back() = std::byte{7};
    CHECK_CONTAINS(format_error([&] { parse_npy(bad_bool, "b.npy"); }), "BOOL element 1 has byte value 7");
  }
}

TEST_CASE("npy: format 2.0 headers are read; shapes of more than 64 dimensions are refused") {
  // numpy writes 2.0 only for headers over 65535 bytes, which no shape of <= 64 dimensions needs:
  // the same array rewritten by hand as 2.0 (4-byte header length) reads the same.
  const std::vector<std::uint8_t> one = {9};
  const std::vector<std::int64_t> shape = {1, 1, 1};
  const auto v1 = serialize_npy(make_npy<std::uint8_t>(shape, one));
  REQUIRE(std::to_integer<int>(v1[6]) == 1);
  const std::size_t hlen = std::to_integer<std::size_t>(v1[8]) | std::to_integer<std::size_t>(v1[9]) << 8;
  std::vector<std::byte> v2(v1.begin(), v1.begin() + 8);
  v2[6] = std::byte{2};
  const std::size_t hlen2 = hlen + 62;  // keeps 64-byte alignment: 12 + hlen2 = 10 + hlen + 64
  for (int i = 0; i < 4; ++i) v2.push_back(std::byte(static_cast<unsigned char>(hlen2 >> (8 * i))));
  v2.insert(v2.end(), v1.begin() + 10, v1.begin() + 10 + std::ptrdiff_t(hlen) - 1);  // the dict without '\n'
  v2.insert(v2.end(), 62, std::byte{' '});
  v2.push_back(std::byte{'\n'});
  v2.insert(v2.end(), v1.begin() + 10 + std::ptrdiff_t(hlen), v1.end());
  const NpyArray back = parse_npy(v2, "v2");
  CHECK(back.shape == shape);
  CHECK(values<std::uint8_t>(back) == one);
  // The writer refuses what the readers would refuse.
  CHECK_THROWS_AS(npy_header(DType::U8, std::vector<std::int64_t>(65, 1)), FormatError);
  CHECK(npy_header(DType::U8, std::vector<std::int64_t>(64, 1)).size() % 64 == 0);
}
