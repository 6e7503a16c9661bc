#include "kernel_btf.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "libbpf_log.h"

namespace vxtrace {
namespace {

std::string StripPrefix(const std::string& name) {
  for (const char* prefix : {"SKB_DROP_REASON_", "SKB_"}) {
    size_t n = strlen(prefix);
    if (name.compare(0, n, prefix) == 0) return name.substr(n);
  }
  return name;
}

}  // namespace

VmlinuxBtf::VmlinuxBtf(const std::string& purpose) {
  LibbpfLog log;
  btf_ = btf__load_vmlinux_btf();
  if (!btf_) {
    int err = errno;
    throw std::runtime_error("read kernel BTF (/sys/kernel/btf/vmlinux) to " + purpose + ": " + strerror(err) +
                             " (the kernel needs CONFIG_DEBUG_INFO_BTF=y)");
  }
}

VmlinuxBtf::~VmlinuxBtf() { btf__free(btf_); }

std::map<uint64_t, std::string> VmlinuxBtf::DropReasonNames() const {
  std::map<uint64_t, std::string> names;
  int id = btf__find_by_name_kind(btf_, "skb_drop_reason", BTF_KIND_ENUM);
  if (id < 0) id = btf__find_by_name_kind(btf_, "skb_drop_reason", BTF_KIND_ENUM64);
  if (id < 0)
    throw std::runtime_error("kernel BTF has no enum skb_drop_reason (kernel older than 5.17?): drop reasons cannot be named");
  const struct btf_type* t = btf__type_by_id(btf_, id);
  uint16_t vlen = btf_vlen(t);
  if (btf_is_enum(t)) {
    const struct btf_enum* e = btf_enum(t);
    for (uint16_t i = 0; i < vlen; i++, e++) {
      uint64_t v = static_cast<uint32_t>(e->val);
      names[v] = StripPrefix(btf__name_by_offset(btf_, e->name_off));
    }
  } else {
    const struct btf_enum64* e = btf_enum64(t);
    for (uint16_t i = 0; i < vlen; i++, e++) names[btf_enum64_value(e)] = StripPrefix(btf__name_by_offset(btf_, e->name_off));
  }
  // SKB_DROP_REASON_MAX is a bound, not a reason.
  for (auto it = names.begin(); it != names.end();) {
    if (it->second == "MAX") it = names.erase(it);
    else ++it;
  }
  return names;
}

uint32_t VmlinuxBtf::DropReason(const std::string& name) const {
  for (const auto& [value, n] : DropReasonNames())
    if (n == name) return static_cast<uint32_t>(value);
  throw std::runtime_error("kernel BTF's enum skb_drop_reason has no SKB_" + name + ": cannot tell drops from frees");
}

int VmlinuxBtf::TracepointArgs(const std::string& name) const {
  int id = btf__find_by_name_kind(btf_, ("btf_trace_" + name).c_str(), BTF_KIND_TYPEDEF);
  if (id < 0) return -1;
  const struct btf_type* t = btf__type_by_id(btf_, id);  // typedef -> pointer -> func proto
  for (int hops = 0; t && (btf_is_typedef(t) || btf_is_ptr(t)) && hops < 4; hops++) t = btf__type_by_id(btf_, t->type);
  if (!t || !btf_is_func_proto(t) || btf_vlen(t) < 1) return -1;
  return btf_vlen(t) - 1;
}

std::map<uint64_t, std::string> DropReasonNames() { return VmlinuxBtf("name drop reasons").DropReasonNames(); }

}  // namespace vxtrace
