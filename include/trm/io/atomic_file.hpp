// trm/io/atomic_file.hpp - crash-safe file replacement and whole-file reads.
//
// Writing a checkpoint in place is dangerous: a crash, a full disk or an
// exception half way through leaves a truncated file where a good one used to
// be. AtomicFileWriter instead writes to a temporary file in the destination's
// directory (same filesystem, so the final rename cannot degrade into a copy),
// fsyncs it, and renames it over the destination. Readers therefore see either
// the complete old file or the complete new one. If anything fails before the
// rename, the temporary is removed and the destination is untouched.
//
// POSIX only (open/write/fsync); the rest of trm::io builds on these helpers.
#pragma once

#include <atomic>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace trm::io {

namespace detail {

[[noreturn]] inline void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

// Writes all of `bytes`, retrying on EINTR and short writes.
inline void write_all(int fd, std::span<const std::byte> bytes, const std::filesystem::path& path) {
  const std::byte* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const ::ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "cannot write '" + path.string() + "'");
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

// Makes a completed rename durable. Best effort: some filesystems refuse to
// fsync directories, and the new file is already in place at this point.
inline void fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  (void)::close(fd);
}

}  // namespace detail

// A path that is not a regular file where one is read (see require_regular_file).
class NotAFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file that changed size while it was read (see read_file).
class FileChangedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Readers of whole files call this before open(): a FIFO without a writer blocks open() forever,
// /dev/zero never ends, a directory holds no data. stat() follows symbolic links, so a link to a
// regular file is fine. Throws NotAFileError naming the path and what it is; a path that cannot
// be stat'ed is left to the caller's open() and its usual error.
inline void require_regular_file(const std::filesystem::path& path) {
  struct ::stat st {};
  if (::stat(path.c_str(), &st) != 0) return;  // missing or unreadable: the caller's open() says so as before
  if (S_ISREG(st.st_mode)) return;
  const char* kind = S_ISDIR(st.st_mode)    ? "a directory"
                     : S_ISFIFO(st.st_mode) ? "a FIFO (named pipe)"
                     : S_ISCHR(st.st_mode)  ? "a character device"
                     : S_ISBLK(st.st_mode)  ? "a block device"
                     : S_ISSOCK(st.st_mode) ? "a socket"
                                            : "not a regular file";
  throw NotAFileError(path.string() + ": expected a regular file, found " + kind);
}

// Reads a whole regular file into memory. Throws NotAFileError, FileChangedError (it grew while
// read) or std::system_error, naming the path.
inline std::vector<std::byte> read_file(const std::filesystem::path& path) {
  require_regular_file(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) detail::throw_errno(errno, "cannot open '" + path.string() + "'");
  struct Closer {
    int fd;
    ~Closer() { (void)::close(fd); }
  } closer{fd};

  struct ::stat st {};
  if (::fstat(fd, &st) != 0) detail::throw_errno(errno, "cannot stat '" + path.string() + "'");
  // Checked again on the open descriptor: the path may have been replaced since the stat().
  if (!S_ISREG(st.st_mode)) throw NotAFileError(path.string() + ": expected a regular file, found another kind of file");

  std::vector<std::byte> bytes;
  const auto size_at_open = static_cast<std::uint64_t>(st.st_size);
  bytes.reserve(static_cast<std::size_t>(size_at_open));
  // Read until EOF, so a file that shrinks while being read is read up to where it ends (the
  // parsers then see a truncated file), but never past its size at opening: a file that keeps
  // growing (a log, a download in progress) would otherwise be read without bound.
  std::byte chunk[1 << 16];
  for (;;) {
    const ::ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      detail::throw_errno(errno, "cannot read '" + path.string() + "'");
    }
    if (n == 0) break;
    if (bytes.size() + static_cast<std::size_t>(n) > size_at_open)
      throw FileChangedError(path.string() + ": the file grew while it was read (it had " + std::to_string(size_at_open) +
                             " bytes when opened); read it again once it is complete");
    bytes.insert(bytes.end(), chunk, chunk + n);
  }
  return bytes;
}

// Writes a file atomically: construct, write(), then commit(). Destroying the
// writer without a successful commit() removes the temporary file, so the
// destination is only ever replaced by a complete, fsynced file.
//
// The new file is created with the default permissions (0666 & ~umask); the
// permissions of a replaced destination are not carried over.
class AtomicFileWriter {
 public:
  // Creates the temporary file next to `destination`. Throws std::system_error
  // if that is impossible (e.g. the directory does not exist); nothing is
  // created in that case.
  explicit AtomicFileWriter(std::filesystem::path destination) : destination_(std::move(destination)) {
    std::filesystem::path dir = destination_.parent_path();
    if (dir.empty()) dir = ".";
    // Unique within the process (counter) and across processes (pid);
    // O_EXCL plus retries guard against leftovers from crashed processes.
    static std::atomic<std::uint64_t> counter{0};
    const std::string base = "." + destination_.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-";
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::filesystem::path candidate = dir / (base + std::to_string(counter.fetch_add(1)));
      fd_ = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0) {
        temp_ = std::move(candidate);
        return;
      }
      if (errno != EEXIST) {
        detail::throw_errno(errno, "cannot create a temporary file for '" + destination_.string() + "'");
      }
    }
    detail::throw_errno(EEXIST, "cannot create a unique temporary file for '" + destination_.string() + "'");
  }

  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  ~AtomicFileWriter() {
    if (fd_ >= 0) (void)::close(fd_);
    if (!committed_ && !temp_.empty()) {
      std::error_code ignored;
      std::filesystem::remove(temp_, ignored);
    }
  }

  void write(std::span<const std::byte> bytes) {
    require_open();
    detail::write_all(fd_, bytes, temp_);
  }
  void write(std::string_view text) { write(std::as_bytes(std::span<const char>(text.data(), text.size()))); }

  // fsync, close and rename over the destination. On failure the temporary is
  // removed (by the destructor) and the destination keeps its old content.
  void commit() {
    require_open();
    if (::fsync(fd_) != 0) detail::throw_errno(errno, "cannot fsync '" + temp_.string() + "'");
    const int fd = std::exchange(fd_, -1);
    // close() can report deferred write errors (e.g. on NFS): do not ignore it.
    if (::close(fd) != 0) detail::throw_errno(errno, "cannot close '" + temp_.string() + "'");
    std::filesystem::rename(temp_, destination_);  // throws filesystem_error
    committed_ = true;
    std::filesystem::path dir = destination_.parent_path();
    detail::fsync_directory(dir.empty() ? std::filesystem::path(".") : dir);
  }

  const std::filesystem::path& destination() const noexcept { return destination_; }
  const std::filesystem::path& temp_path() const noexcept { return temp_; }

 private:
  void require_open() const {
    if (fd_ < 0) {
      throw std::logic_error("AtomicFileWriter for '" + destination_.string() + "' used after commit");
    }
  }

  std::filesystem::path destination_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Convenience: `fill(writer)` writes the content; the file is committed only if
// `fill` returns normally. Any exception propagates and leaves the destination
// untouched.
template <class Fill>
  requires std::invocable<Fill&, AtomicFileWriter&>
void write_file_atomically(const std::filesystem::path& destination, Fill&& fill) {
  AtomicFileWriter writer(destination);
  std::forward<Fill>(fill)(writer);
  writer.commit();
}

inline void write_file_atomically(const std::filesystem::path& destination, std::span<const std::byte> bytes) {
  write_file_atomically(destination, [&](AtomicFileWriter& w) { w.write(bytes); });
}

}  // namespace trm::io
