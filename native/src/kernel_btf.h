// What vxtrace reads from the running kernel's BTF (/sys/kernel/btf/vmlinux): the names and
// values of enum skb_drop_reason, and whether a tracepoint can take a tp_btf program.
#pragma once
#include <cstdint>
#include <map>
#include <string>

struct btf;

namespace vxtrace {

class VmlinuxBtf {
 public:
  // Loads the kernel's BTF; throws std::runtime_error saying what it was needed `for`.
  explicit VmlinuxBtf(const std::string& purpose);
  ~VmlinuxBtf();
  VmlinuxBtf(const VmlinuxBtf&) = delete;
  VmlinuxBtf& operator=(const VmlinuxBtf&) = delete;

  // enum skb_drop_reason: value -> name without the SKB_DROP_REASON_ / SKB_ prefix
  // (NETFILTER_DROP, NO_SOCKET, CONSUMED, ...), without the bound MAX. Throws
  // std::runtime_error when the kernel has no such enum.
  std::map<uint64_t, std::string> DropReasonNames() const;

  // The value of a reason by its name as DropReasonNames() gives it. Throws when absent.
  uint32_t DropReason(const std::string& name) const;

  // Arguments a tp_btf program on tracepoint `name` gets (the parameters of the kernel's
  // btf_trace_<name> typedef after its leading context pointer), or -1 when there is no such
  // typedef (no tp_btf on this kernel).
  int TracepointArgs(const std::string& name) const;

 private:
  struct btf* btf_ = nullptr;
};

// VmlinuxBtf("name drop reasons").DropReasonNames().
std::map<uint64_t, std::string> DropReasonNames();

}  // namespace vxtrace
