#include "package/fs_util.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

namespace kiln {

namespace {

std::string Errno() { return std::strerror(errno); }

Status WriteAll(int fd, const char* p, size_t n, const std::string& what) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot write " + what + ": " + Errno());
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

std::string Parent(const std::string& path) {
  std::string p = std::filesystem::path(path).parent_path().string();
  return p.empty() ? "." : p;
}

}  // namespace

Result<std::string> ReadFileBytes(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound("cannot open " + path + ": " + Errno());
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof(buf));
    if (r < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return IoError("cannot read " + path + ": " + Errno());
    }
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  return out;
}

std::string TempNameFor(const std::string& path) {
  static std::atomic<int> counter{0};
  return path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

bool IsTempName(const std::string& file_name) {
  return file_name.find(".tmp-") != std::string::npos;
}

Status FsyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open " + path + " to sync it: " + Errno());
  const int r = ::fsync(fd);
  ::close(fd);
  if (r != 0) return IoError("cannot sync " + path + ": " + Errno());
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const std::string& bytes, bool durable) {
  const std::string tmp = TempNameFor(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot create " + tmp + ": " + Errno());
  Status s = WriteAll(fd, bytes.data(), bytes.size(), tmp);
  if (s.ok() && durable && ::fsync(fd) != 0) s = IoError("cannot sync " + tmp + ": " + Errno());
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = IoError("cannot rename " + tmp + " to " + path + ": " + Errno());
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return durable ? FsyncPath(Parent(path)) : Status::Ok();
}

Status CopyFileAtomic(const std::string& from, const std::string& to) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return NotFound("cannot open " + from + ": " + Errno());
  const std::string tmp = TempNameFor(to);
  const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    ::close(in);
    return IoError("cannot create " + tmp + ": " + Errno());
  }
  Status s;
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t r = ::read(in, buf.data(), buf.size());
    if (r < 0) {
      if (errno == EINTR) continue;
      s = IoError("cannot read " + from + ": " + Errno());
      break;
    }
    if (r == 0) break;
    s = WriteAll(out, buf.data(), static_cast<size_t>(r), tmp);
    if (!s.ok()) break;
  }
  if (s.ok() && ::fsync(out) != 0) s = IoError("cannot sync " + tmp + ": " + Errno());
  ::close(in);
  ::close(out);
  if (s.ok() && ::rename(tmp.c_str(), to.c_str()) != 0) {
    s = IoError("cannot rename " + tmp + " to " + to + ": " + Errno());
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return FsyncPath(Parent(to));
}

Result<std::optional<FileLock>> FileLock::TryAcquire(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot open lock file " + path + ": " + Errno());
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(fd);
    if (e == EWOULDBLOCK) return std::optional<FileLock>();
    return IoError("cannot lock " + path + ": " + std::strerror(e));
  }
  return std::optional<FileLock>(FileLock(fd));
}

Result<FileLock> FileLock::Acquire(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot open lock file " + path + ": " + Errno());
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    const std::string e = Errno();
    ::close(fd);
    return IoError("cannot lock " + path + ": " + e);
  }
  return FileLock(fd);
}

FileLock& FileLock::operator=(FileLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

}  // namespace kiln
