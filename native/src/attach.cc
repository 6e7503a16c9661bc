#include "attach.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "errors.h"
#include "libbpf_log.h"
#include "netns.h"

namespace vxtrace {
namespace {

// libbpf 1.1's uapi header predates tcx (Linux 6.6).
constexpr int kBpfTcxIngress = 46;
constexpr int kBpfTcxEgress = 47;
// The clsact filter slots vxtrace uses: priority 1, handles kTcHandle .. kTcHandle + kClsactSlots - 1.
constexpr uint32_t kTcHandle = 0x7678;  // "vx"
constexpr uint32_t kTcPriority = 1;
constexpr uint32_t kClsactSlots = 16;
// Choosing a slot and taking it is one step among vxtrace tracers: they take this lock (an
// abstract socket of the device's network namespace) around it, for at most this long.
constexpr auto kLockWait = std::chrono::seconds(2);
const char* const kLockName = "vxtrace/clsact/lock";
// The tc programs of bpf/vxtrace.bpf.c (vxt_tc_ingress, vxt_tc_egress) as the kernel names them.
const char* const kProgramPrefix = "vxt_tc_";

std::string Hex(uint32_t v) {
  char buf[16];
  snprintf(buf, sizeof buf, "0x%x", v);
  return buf;
}

std::string ClaimName(uint32_t programId) { return "vxtrace/clsact/prog/" + std::to_string(programId); }

socklen_t AbstractAddress(const std::string& name, struct sockaddr_un* sun) {
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  size_t n = std::min(name.size(), sizeof sun->sun_path - 1);
  memcpy(sun->sun_path + 1, name.data(), n);  // sun_path[0] == 0: the abstract namespace
  return static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

// A socket bound to abstract name `name` in this thread's network namespace, or -errno.
int BindAbstract(const std::string& name) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct sockaddr_un sun;
  socklen_t len = AbstractAddress(name, &sun);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sun), len) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

// Whether some process holds abstract name `name` in this thread's network namespace. In doubt
// (anything but "nobody listens there"), yes: a filter is never taken on a guess.
bool NameHeld(const std::string& name) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  struct sockaddr_un sun;
  socklen_t len = AbstractAddress(name, &sun);
  bool held = connect(fd, reinterpret_cast<struct sockaddr*>(&sun), len) == 0 || errno != ECONNREFUSED;
  close(fd);
  return held;
}

class ClsactLock {
 public:
  ClsactLock() {
    auto deadline = std::chrono::steady_clock::now() + kLockWait;
    for (;;) {
      fd_ = BindAbstract(kLockName);
      if (fd_ >= 0 || fd_ != -EADDRINUSE || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ~ClsactLock() {
    if (fd_ >= 0) close(fd_);
  }
  ClsactLock(const ClsactLock&) = delete;
  ClsactLock& operator=(const ClsactLock&) = delete;
  bool held() const { return fd_ >= 0; }
  int error() const { return fd_ < 0 ? -fd_ : 0; }

 private:
  int fd_ = -1;
};

std::string ProgramName(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return "";
  struct bpf_prog_info info;
  memset(&info, 0, sizeof info);
  uint32_t len = sizeof info;
  std::string name = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.name : "";
  close(fd);
  return name;
}

// A vxtrace tc program whose tracer is gone: its filter may be taken over.
bool Orphaned(uint32_t programId) {
  return ProgramName(programId).rfind(kProgramPrefix, 0) == 0 && !NameHeld(ClaimName(programId));
}

struct bpf_tc_hook TcHook(const Attachment& a) {
  struct bpf_tc_hook hook;
  memset(&hook, 0, sizeof hook);
  hook.sz = sizeof hook;
  hook.ifindex = a.ifindex;
  hook.attach_point = a.egress ? BPF_TC_EGRESS : BPF_TC_INGRESS;
  return hook;
}

struct bpf_tc_opts TcSlot(uint32_t handle) {
  struct bpf_tc_opts opts;
  memset(&opts, 0, sizeof opts);
  opts.sz = sizeof opts;
  opts.handle = handle;
  opts.priority = kTcPriority;
  return opts;
}

void AttachClsact(Napi::Env env, Attachment& a, int progFd, ClsactClaims& claims) {
  const char* dir = a.egress ? "egress" : "ingress";
  std::string what = std::string("attach clsact ") + dir + " on " + a.device + " " + Where(a.netns);
  LibbpfLog log;
  struct bpf_tc_hook hook = TcHook(a);
  int err = bpf_tc_hook_create(&hook);  // a clsact qdisc that exists already is fine
  if (err && err != -EEXIST) Throw(env, what + ": create clsact qdisc: " + Errno(-err));

  ClsactLock lock;
  if (!lock.held()) {
    if (lock.error() == EADDRINUSE)
      Throw(env, what + ": another vxtrace has been attaching in this network namespace for over " +
                     std::to_string(kLockWait.count()) + " s (it holds the abstract socket @" + kLockName + ")");
    Throw(env, what + ": bind the abstract socket @" + std::string(kLockName) + ": " + Errno(lock.error()));
  }
  // Alive before it is attached: from now on no other tracer takes this program's filters.
  claims.Claim(env, a.netnsCookie, a.programId, what);

  // What each slot holds. A query fails for an empty slot (ENOENT; EINVAL while the hook has no
  // filter chain at all) and for filters it cannot read (not eBPF): creating a filter there with
  // NLM_F_EXCL (no BPF_TC_F_REPLACE) tells the two apart without touching the filter.
  std::vector<uint32_t> maybeFree, orphans;
  for (uint32_t h = kTcHandle; h < kTcHandle + kClsactSlots; h++) {
    struct bpf_tc_opts q = TcSlot(h);
    if (bpf_tc_query(&hook, &q) != 0) maybeFree.push_back(h);
    else if (Orphaned(q.prog_id)) orphans.push_back(h);
  }
  uint32_t handle = 0;
  if (!orphans.empty()) {
    // A killed tracer's filter is taken over in place, so that stale filters do not pile up.
    struct bpf_tc_opts opts = TcSlot(orphans.front());
    opts.prog_fd = progFd;
    opts.flags = BPF_TC_F_REPLACE;
    err = bpf_tc_attach(&hook, &opts);
    if (err) Throw(env, what + ": replace the filter of a tracer that is gone (handle " + Hex(orphans.front()) + "): " + Errno(-err) + "\n" + log.tail());
    handle = orphans.front();
  } else {
    for (uint32_t h : maybeFree) {
      struct bpf_tc_opts opts = TcSlot(h);
      opts.prog_fd = progFd;
      err = bpf_tc_attach(&hook, &opts);
      if (err == -EEXIST) continue;  // somebody's filter after all
      if (err) Throw(env, what + ": " + Errno(-err) + "\n" + log.tail());
      handle = h;
      break;
    }
  }
  if (!handle)
    Throw(env, what + ": no free clsact filter slot (priority " + std::to_string(kTcPriority) + ", handles " + Hex(kTcHandle) + ".." +
                   Hex(kTcHandle + kClsactSlots - 1) + "): other tracers or programs hold them all (see tc filter show dev " + a.device + " " +
                   dir + ")");
  a.tcHandle = handle;
  a.tcPriority = kTcPriority;
  for (size_t i = 1; i < orphans.size(); i++) {
    struct bpf_tc_opts o = TcSlot(orphans[i]);
    bpf_tc_detach(&hook, &o);
  }
}

}  // namespace

void ClsactClaims::Claim(Napi::Env env, uint64_t netnsCookie, uint32_t programId, const std::string& what) {
  auto key = std::make_pair(netnsCookie, programId);
  if (fds_.count(key)) return;
  int fd = BindAbstract(ClaimName(programId));
  // Held by somebody already: the filters look alive to other tracers, which is all it is for.
  if (fd == -EADDRINUSE) return;
  if (fd < 0) Throw(env, what + ": bind the abstract socket @" + ClaimName(programId) + " that marks the filter as in use: " + Errno(-fd));
  fds_[key] = fd;
}

void ClsactClaims::Release() {
  for (auto& [key, fd] : fds_) close(fd);
  fds_.clear();
}

void AttachTc(Napi::Env env, Attachment& a, int progFd, const std::string& mode, ClsactClaims& claims) {
  const char* dir = a.egress ? "egress" : "ingress";
  if (mode != "clsact") {
    int fd = bpf_link_create(progFd, a.ifindex, static_cast<enum bpf_attach_type>(a.egress ? kBpfTcxEgress : kBpfTcxIngress), nullptr);
    if (fd >= 0) {
      a.tcx = true;
      a.linkFd = fd;
      a.linkId = LinkId(fd);
      return;
    }
    int err = -fd;
    if (mode == "tcx" || err == EPERM || err == EACCES)
      Throw(env, std::string("attach tcx ") + dir + " on " + a.device + " " + Where(a.netns) + ": " + Errno(err));
  }
  AttachClsact(env, a, progFd, claims);
}

void DetachTc(Attachment& a) {
  if (a.tcx) {
    if (a.linkFd >= 0) close(a.linkFd);  // the link's last fd: the kernel detaches it
    a.linkFd = -1;
  } else if (a.tcHandle) {
    NetnsSwitch sw(a.netnsFd);
    if (!sw.failed()) {
      LibbpfLog quiet;
      ClsactLock lock;  // best effort: detaching goes ahead without it
      struct bpf_tc_hook hook = TcHook(a);
      struct bpf_tc_opts q = TcSlot(a.tcHandle);
      // only our filter (the slot still holds our program); the qdisc stays
      if (bpf_tc_query(&hook, &q) == 0 && q.prog_id == a.programId) {
        struct bpf_tc_opts opts = TcSlot(a.tcHandle);
        bpf_tc_detach(&hook, &opts);
      }
    }
    a.tcHandle = 0;
  }
  if (a.netnsFd >= 0) close(a.netnsFd);
  a.netnsFd = -1;
}

uint32_t ProgramId(int progFd) {
  struct bpf_prog_info info;
  memset(&info, 0, sizeof info);
  uint32_t len = sizeof info;
  return bpf_obj_get_info_by_fd(progFd, &info, &len) == 0 ? info.id : 0;
}

uint32_t LinkId(int linkFd) {
  struct bpf_link_info info;
  memset(&info, 0, sizeof info);
  uint32_t len = sizeof info;
  return bpf_obj_get_info_by_fd(linkFd, &info, &len) == 0 ? info.id : 0;
}

}  // namespace vxtrace
