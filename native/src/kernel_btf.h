// Names from the running kernel's BTF (/sys/kernel/btf/vmlinux).
#pragma once
#include <cstdint>
#include <map>
#include <string>

namespace vxtrace {

// enum skb_drop_reason: value -> name without the SKB_DROP_REASON_ / SKB_ prefix
// (NETFILTER_DROP, NO_SOCKET, CONSUMED, ...). Throws std::runtime_error when there is no BTF.
std::map<uint64_t, std::string> DropReasonNames();

}  // namespace vxtrace
