// trm/io/crc32c.hpp - CRC-32C (Castagnoli) of a byte range, for the per-tensor checksums that
// trm writes into its safetensors files (see safetensors.hpp, key "trm.crc32c").
//
// Any 32-bit CRC detects every burst of errors up to 32 bits long (the fuzz finding that led to
// these checksums, 4 bytes overwritten inside a weight tensor, is one) and misses other random
// corruption with probability 2^-32. CRC-32C rather than zlib's CRC-32: it is the variant storage
// formats use for this purpose (iSCSI, ext4, Btrfs), with well-known check values. Computed in
// software, slicing by 8 (eight table look-ups per 8 bytes), so no CPU feature is required; the
// tables are compile-time constants, not state filled in at run time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace trm::io {

namespace detail {

inline constexpr std::uint32_t kCrc32cPolynomial = 0x82F63B78u;  // 0x1EDC6F41, bit-reversed

// table[0][b]: the CRC register after shifting in byte b; table[k][b]: the same followed by k
// zero bytes, which is what lets one step consume 8 bytes at once.
inline constexpr std::array<std::array<std::uint32_t, 256>, 8> kCrc32cTables = [] {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  for (std::uint32_t b = 0; b < 256; ++b) {
    std::uint32_t c = b;
    for (int i = 0; i < 8; ++i) c = (c >> 1) ^ (kCrc32cPolynomial & (0u - (c & 1u)));
    t[0][b] = c;
  }
  for (std::size_t k = 1; k < 8; ++k)
    for (std::size_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xffu];
  return t;
}();

inline std::uint32_t load_le32(const unsigned char* p) {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24;
}

}  // namespace detail

// CRC-32C of `data`. `crc` continues an earlier result: crc32c(b, crc32c(a)) == crc32c(a + b).
// crc32c("123456789") == 0xE3069283 (the standard check value).
inline std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t crc = 0) {
  const auto& t = detail::kCrc32cTables;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t n = data.size();
  crc = ~crc;
  for (; n >= 8; p += 8, n -= 8) {
    const std::uint32_t lo = detail::load_le32(p) ^ crc, hi = detail::load_le32(p + 4);
    crc = t[7][lo & 0xffu] ^ t[6][(lo >> 8) & 0xffu] ^ t[5][(lo >> 16) & 0xffu] ^ t[4][lo >> 24] ^ t[3][hi & 0xffu] ^
          t[2][(hi >> 8) & 0xffu] ^ t[1][(hi >> 16) & 0xffu] ^ t[0][hi >> 24];
  }
  for (; n > 0; ++p, --n) crc = (crc >> 8) ^ t[0][(crc ^ *p) & 0xffu];
  return ~crc;
}

}  // namespace trm::io
