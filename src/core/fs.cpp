#include "v2m/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "v2m/error.h"

namespace v2m {

namespace {

std::string temp_name(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

void fsync_path(const std::string& p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string parent_dir(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

}  // namespace

void atomic_write(const std::string& path, const std::function<void(const std::string&)>& write) {
  const std::string tmp = temp_name(path);
  try {
    write(tmp);
    fsync_path(tmp);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      throw Error(describe("cannot write", path, std::strerror(errno)));
    }
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  fsync_path(parent_dir(path));
}

void atomic_write_bytes(const std::string& path, const void* data, size_t size) {
  atomic_write(path, [&](const std::string& tmp) {
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(describe("cannot write", path, std::strerror(errno)));
    size_t n = size ? std::fwrite(data, 1, size, f) : 0;
    int err = (n != size) ? errno : 0;
    if (std::fflush(f) != 0 && !err) err = errno;
    if (std::fclose(f) != 0 && !err) err = errno;
    if (n != size || err) throw Error(describe("cannot write", path, std::strerror(err ? err : EIO)));
  });
}

void require_regular_file(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(describe(what, path, "no such file"));
  if (S_ISDIR(st.st_mode)) throw Error(describe(what, path, "is a directory"));
  if (!S_ISREG(st.st_mode)) throw Error(describe(what, path, "not a regular file"));
  if (st.st_size == 0) throw Error(describe(what, path, "file is empty"));
}

}  // namespace v2m
