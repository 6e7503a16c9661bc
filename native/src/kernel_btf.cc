#include "kernel_btf.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "libbpf_log.h"

namespace vxtrace {

static std::string StripPrefix(const std::string& name) {
  for (const char* prefix : {"SKB_DROP_REASON_", "SKB_"}) {
    size_t n = strlen(prefix);
    if (name.compare(0, n, prefix) == 0) return name.substr(n);
  }
  return name;
}

std::map<uint64_t, std::string> DropReasonNames() {
  LibbpfLog log;
  struct btf* btf = btf__load_vmlinux_btf();
  if (!btf) {
    int err = errno;
    throw std::runtime_error(std::string("read kernel BTF (/sys/kernel/btf/vmlinux) to name drop reasons: ") +
                             strerror(err) + " (the kernel needs CONFIG_DEBUG_INFO_BTF=y)");
  }
  std::map<uint64_t, std::string> names;
  int id = btf__find_by_name_kind(btf, "skb_drop_reason", BTF_KIND_ENUM);
  if (id < 0) id = btf__find_by_name_kind(btf, "skb_drop_reason", BTF_KIND_ENUM64);
  if (id < 0) {
    btf__free(btf);
    throw std::runtime_error("kernel BTF has no enum skb_drop_reason (kernel older than 5.17?): drop reasons cannot be named");
  }
  const struct btf_type* t = btf__type_by_id(btf, id);
  uint16_t vlen = btf_vlen(t);
  if (btf_is_enum(t)) {
    const struct btf_enum* e = btf_enum(t);
    for (uint16_t i = 0; i < vlen; i++, e++) {
      uint64_t v = static_cast<uint32_t>(e->val);
      names[v] = StripPrefix(btf__name_by_offset(btf, e->name_off));
    }
  } else {
    const struct btf_enum64* e = btf_enum64(t);
    for (uint16_t i = 0; i < vlen; i++, e++) {
      names[btf_enum64_value(e)] = StripPrefix(btf__name_by_offset(btf, e->name_off));
    }
  }
  btf__free(btf);
  // SKB_DROP_REASON_MAX is a bound, not a reason.
  for (auto it = names.begin(); it != names.end();) {
    if (it->second == "MAX") it = names.erase(it);
    else ++it;
  }
  return names;
}

}  // namespace vxtrace
