// Network namespaces: entering one on the calling thread for the length of a step, and telling
// which one the thread is in (SO_NETNS_COOKIE, the same cookie the BPF programs read from
// skb->dev, and the inode `ip netns identify` and /proc/PID/ns/net show).
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

namespace vxtrace {

// "in netns NAME" or "in this process's network namespace", for messages.
std::string Where(const std::string& netns);

// Enters a network namespace on this thread; returns to the original one when destroyed.
class NetnsSwitch {
 public:
  // netns: a name under /run/netns or an absolute path; "" stays where the thread is. Throws,
  // prefixed with `what`, when the namespace does not exist or cannot be entered.
  NetnsSwitch(Napi::Env env, const std::string& netns, const std::string& what);
  // Enters an already open namespace fd (for detaching: never throws, see failed()).
  explicit NetnsSwitch(int nsFd);
  ~NetnsSwitch();
  NetnsSwitch(const NetnsSwitch&) = delete;
  NetnsSwitch& operator=(const NetnsSwitch&) = delete;
  // The namespace fd, detached from this guard (caller owns it).
  int TakeTarget();
  bool failed() const { return failed_; }

 private:
  int orig_ = -1;
  int target_ = -1;
  bool failed_ = false;
};

// Cookie (SO_NETNS_COOKIE) and inode of the network namespace this thread is in (0 when unknown).
void CurrentNetnsIdentity(uint64_t* cookie, uint64_t* inode);

}  // namespace vxtrace
