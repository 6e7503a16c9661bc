#include "netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "errors.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace vxtrace {
namespace {

std::string NetnsPath(const std::string& netns) {
  return netns.find('/') != std::string::npos ? netns : "/run/netns/" + netns;
}

}  // namespace

std::string Where(const std::string& netns) {
  return netns.empty() ? "in this process's network namespace" : "in netns " + netns;
}

NetnsSwitch::NetnsSwitch(Napi::Env env, const std::string& netns, const std::string& what) {
  if (netns.empty()) return;
  orig_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (orig_ < 0) Throw(env, what + ": open /proc/thread-self/ns/net: " + Errno(errno));
  target_ = open(NetnsPath(netns).c_str(), O_RDONLY | O_CLOEXEC);
  if (target_ < 0) {
    int err = errno;
    close(orig_);
    orig_ = -1;
    if (err == ENOENT)
      Throw(env, what + ": network namespace " + netns + " not found (" + NetnsPath(netns) +
                     " does not exist; is the lab up? see `ip netns list`)");
    Throw(env, what + ": open " + NetnsPath(netns) + ": " + Errno(err));
  }
  if (setns(target_, CLONE_NEWNET) != 0) {
    int err = errno;
    close(orig_);
    close(target_);
    orig_ = target_ = -1;
    Throw(env, what + ": enter network namespace " + netns + ": " + Errno(err));
  }
}

NetnsSwitch::NetnsSwitch(int nsFd) {
  if (nsFd < 0) return;
  orig_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (orig_ < 0 || setns(nsFd, CLONE_NEWNET) != 0) {
    if (orig_ >= 0) close(orig_);
    orig_ = -1;
    failed_ = true;
  }
}

NetnsSwitch::~NetnsSwitch() {
  if (orig_ >= 0) {
    setns(orig_, CLONE_NEWNET);
    close(orig_);
  }
  if (target_ >= 0) close(target_);
}

int NetnsSwitch::TakeTarget() {
  int fd = target_;
  target_ = -1;
  return fd;
}

void CurrentNetnsIdentity(uint64_t* cookie, uint64_t* inode) {
  *cookie = 0;
  *inode = 0;
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s >= 0) {
    socklen_t len = sizeof *cookie;
    if (getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len) != 0) *cookie = 0;
    close(s);
  }
  struct stat st;
  if (stat("/proc/thread-self/ns/net", &st) == 0) *inode = st.st_ino;
}

}  // namespace vxtrace
