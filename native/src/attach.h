// Attaching a tc program to one direction of a device, and detaching exactly what was attached.
//
// tcx (preferred): a BPF link, which dies with the process; several tracers' links coexist.
// clsact (fallback, or asked for): a `bpf` filter on the device's clsact qdisc (an existing qdisc
// is fine). Several vxtrace tracers may share a device, so each tracer's filter gets a slot of
// its own: priority 1 (before other filters: the chain stops at the first filter with a verdict,
// and an observer must see every packet) and the first free handle from 0x7678 ("vx"). A filter
// is replaced or removed only when its program is this tracer's (by kernel program id), or when
// it is a vxtrace program whose tracer is gone (killed: clsact filters outlive their process).
// A live tracer says so by holding, in each network namespace where it has clsact filters, an
// abstract unix socket named after each of its programs ("vxtrace/clsact/prog/ID"); the kernel
// releases it when the process dies, whatever killed it. Filters of other programs are never
// touched.
#pragma once
#include <napi.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace vxtrace {

struct Attachment {
  std::string netns;   // as given ("" = the process's own)
  int netnsFd = -1;    // kept open to detach clsact filters later
  std::string device;
  int ifindex = 0;
  bool egress = false;
  bool tcx = false;
  int linkFd = -1;     // tcx link
  uint32_t tcHandle = 0, tcPriority = 0;  // clsact filter
  uint64_t netnsCookie = 0;
  uint64_t netnsInode = 0;
  uint32_t programId = 0;  // kernel ids, for inspection with bpftool
  uint32_t linkId = 0;     // tcx only
};

// The abstract sockets by which one tracer's clsact filters are known to be alive: one per
// (network namespace, program). Closed by Release(), after the filters are detached.
class ClsactClaims {
 public:
  ClsactClaims() = default;
  ~ClsactClaims() { Release(); }
  ClsactClaims(const ClsactClaims&) = delete;
  ClsactClaims& operator=(const ClsactClaims&) = delete;
  // Claims programId in the network namespace this thread is in (cookie names it); once per pair.
  void Claim(Napi::Env env, uint64_t netnsCookie, uint32_t programId, const std::string& what);
  void Release();

 private:
  std::map<std::pair<uint64_t, uint32_t>, int> fds_;
};

// Attaches a.programId's program (progFd) to a.ifindex, a.egress, on a thread inside the
// device's network namespace: mode "auto" (tcx, else clsact), "tcx" or "clsact". Fills a.tcx and
// a.linkFd, or a.tcHandle and a.tcPriority. Throws, prefixed "attach tcx|clsact DIR on DEV ...".
void AttachTc(Napi::Env env, Attachment& a, int progFd, const std::string& mode, ClsactClaims& claims);

// Undoes AttachTc (entering a.netnsFd for clsact; closes it). Never throws: a clsact filter
// that is no longer this tracer's program is left alone.
void DetachTc(Attachment& a);

uint32_t ProgramId(int progFd);
uint32_t LinkId(int linkFd);

}  // namespace vxtrace
