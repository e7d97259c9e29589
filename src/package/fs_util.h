// File-system primitives for packages: whole-file reads, crash-safe writes and advisory locks.
//
// Crash-safe write (WriteFileAtomic): the bytes go to "<path>.tmp-<pid>-<n>" in the same folder,
// are fsync'ed, renamed over `path` (atomic on POSIX), and the folder is fsync'ed so that the
// rename itself survives a power cut. At any moment a reader sees the old file or the new one,
// never a mix; a crash leaves at most a stray temporary file (ignored and cleaned up later).
//
// FileLock wraps flock(2) on a lock file: the kernel releases it when its holder dies, so the
// lock of a killed process is taken over by the next TryAcquire without any stale-lock logic.
#pragma once

#include <optional>
#include <string>

#include "core/status.h"

namespace kiln {

Result<std::string> ReadFileBytes(const std::string& path);
// `durable` false skips the fsyncs: still atomic against a process crash (rename), but a power
// cut may lose the update (the ODC recorder's run counter, where a lost count is harmless).
Status WriteFileAtomic(const std::string& path, const std::string& bytes, bool durable = true);
// Copies `from` to `to` crash-safely (temporary name, fsync, rename, folder fsync).
Status CopyFileAtomic(const std::string& from, const std::string& to);
Status FsyncPath(const std::string& path);  // a file or a folder
// A temporary name next to `path`, unique in this process.
std::string TempNameFor(const std::string& path);
bool IsTempName(const std::string& file_name);

class FileLock {
 public:
  // Takes an exclusive lock on `path` (created if missing) without waiting; nullopt when
  // another process (or another FileLock in this one) holds it.
  static Result<std::optional<FileLock>> TryAcquire(const std::string& path);
  // Waits for the lock (short critical sections: the ODC recorder's state update).
  static Result<FileLock> Acquire(const std::string& path);
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock& operator=(FileLock&& o) noexcept;
  FileLock(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace kiln
