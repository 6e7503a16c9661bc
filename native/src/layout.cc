// layout(): sizeof/offsetof of every field of the hop record, the fingerprint key and the flow
// counters (key and value) as this compiler lays out bpf/vxtrace.h, and the header's constants and defaults;
// test/unit/datapath-layout compares them with the TypeScript decoder.
// dropReasons(): enum skb_drop_reason of the running kernel, value -> name.
#include "layout.h"

#include <cstddef>
#include <stdexcept>

#include "kernel_btf.h"

extern "C" {
#include "vxtrace.h"
}

namespace vxtrace {
namespace {

Napi::Object Field(Napi::Env env, size_t offset, size_t size) {
  Napi::Object f = Napi::Object::New(env);
  f.Set("offset", Napi::Number::New(env, static_cast<double>(offset)));
  f.Set("size", Napi::Number::New(env, static_cast<double>(size)));
  return f;
}

#define VXT_FIELD(obj, type, field) obj.Set(#field, Field(env, offsetof(type, field), sizeof(((type*)0)->field)))

Napi::Value Layout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object hop = Napi::Object::New(env);
  VXT_FIELD(hop, struct vxt_hop, ts_ns);
  VXT_FIELD(hop, struct vxt_hop, netns_cookie);
  VXT_FIELD(hop, struct vxt_hop, fingerprint);
  VXT_FIELD(hop, struct vxt_hop, drop_location);
  VXT_FIELD(hop, struct vxt_hop, ifindex);
  VXT_FIELD(hop, struct vxt_hop, skb_len);
  VXT_FIELD(hop, struct vxt_hop, cap_len);
  VXT_FIELD(hop, struct vxt_hop, drop_reason);
  VXT_FIELD(hop, struct vxt_hop, kind);
  VXT_FIELD(hop, struct vxt_hop, direction);
  VXT_FIELD(hop, struct vxt_hop, flags);
  VXT_FIELD(hop, struct vxt_hop, vxlan_vni);
  VXT_FIELD(hop, struct vxt_hop, outer);
  VXT_FIELD(hop, struct vxt_hop, inner);
  VXT_FIELD(hop, struct vxt_hop, outer_src_mac);
  VXT_FIELD(hop, struct vxt_hop, outer_dst_mac);
  VXT_FIELD(hop, struct vxt_hop, inner_src_mac);
  VXT_FIELD(hop, struct vxt_hop, inner_dst_mac);
  VXT_FIELD(hop, struct vxt_hop, outer_udp_csum);
  VXT_FIELD(hop, struct vxt_hop, ip_id);
  VXT_FIELD(hop, struct vxt_hop, ip_len);
  VXT_FIELD(hop, struct vxt_hop, icmp_type);
  VXT_FIELD(hop, struct vxt_hop, icmp_code);
  VXT_FIELD(hop, struct vxt_hop, icmp_id);
  VXT_FIELD(hop, struct vxt_hop, icmp_seq);
  VXT_FIELD(hop, struct vxt_hop, tcp_seq);
  VXT_FIELD(hop, struct vxt_hop, flow_label);
  VXT_FIELD(hop, struct vxt_hop, tcp_flags);
  VXT_FIELD(hop, struct vxt_hop, gso_size);
  VXT_FIELD(hop, struct vxt_hop, gso_segs);
  Napi::Object l3 = Napi::Object::New(env);
  VXT_FIELD(l3, struct vxt_l3, saddr);
  VXT_FIELD(l3, struct vxt_l3, daddr);
  VXT_FIELD(l3, struct vxt_l3, sport);
  VXT_FIELD(l3, struct vxt_l3, dport);
  VXT_FIELD(l3, struct vxt_l3, family);
  VXT_FIELD(l3, struct vxt_l3, protocol);
  VXT_FIELD(l3, struct vxt_l3, ttl);
  Napi::Object fp = Napi::Object::New(env);
  VXT_FIELD(fp, struct vxt_fp_key, saddr);
  VXT_FIELD(fp, struct vxt_fp_key, daddr);
  VXT_FIELD(fp, struct vxt_fp_key, sport);
  VXT_FIELD(fp, struct vxt_fp_key, dport);
  VXT_FIELD(fp, struct vxt_fp_key, ip_id);
  VXT_FIELD(fp, struct vxt_fp_key, ip_len);
  VXT_FIELD(fp, struct vxt_fp_key, tcp_seq);
  VXT_FIELD(fp, struct vxt_fp_key, flow_label);
  VXT_FIELD(fp, struct vxt_fp_key, icmp_id);
  VXT_FIELD(fp, struct vxt_fp_key, icmp_seq);
  VXT_FIELD(fp, struct vxt_fp_key, family);
  VXT_FIELD(fp, struct vxt_fp_key, protocol);
  VXT_FIELD(fp, struct vxt_fp_key, icmp_type);
  Napi::Object fk = Napi::Object::New(env);
  VXT_FIELD(fk, struct vxt_flow_key, saddr);
  VXT_FIELD(fk, struct vxt_flow_key, daddr);
  VXT_FIELD(fk, struct vxt_flow_key, netns_cookie);
  VXT_FIELD(fk, struct vxt_flow_key, ifindex);
  VXT_FIELD(fk, struct vxt_flow_key, drop_reason);
  VXT_FIELD(fk, struct vxt_flow_key, sport);
  VXT_FIELD(fk, struct vxt_flow_key, dport);
  VXT_FIELD(fk, struct vxt_flow_key, family);
  VXT_FIELD(fk, struct vxt_flow_key, protocol);
  VXT_FIELD(fk, struct vxt_flow_key, kind);
  VXT_FIELD(fk, struct vxt_flow_key, direction);
  Napi::Object fs = Napi::Object::New(env);
  VXT_FIELD(fs, struct vxt_flow_stats, packets);
  VXT_FIELD(fs, struct vxt_flow_stats, bytes);
  VXT_FIELD(fs, struct vxt_flow_stats, first_ns);
  VXT_FIELD(fs, struct vxt_flow_stats, last_ns);
  VXT_FIELD(fs, struct vxt_flow_stats, records);
  VXT_FIELD(fs, struct vxt_flow_stats, sampled);
  VXT_FIELD(fs, struct vxt_flow_stats, lost);
  VXT_FIELD(fs, struct vxt_flow_stats, window);
  VXT_FIELD(fs, struct vxt_flow_stats, window_packets);

  Napi::Object r = Napi::Object::New(env);
  r.Set("hopSize", Napi::Number::New(env, sizeof(struct vxt_hop)));
  r.Set("l3Size", Napi::Number::New(env, sizeof(struct vxt_l3)));
  r.Set("hop", hop);
  r.Set("l3", l3);
  r.Set("fpKeySize", Napi::Number::New(env, sizeof(struct vxt_fp_key)));
  r.Set("fpKey", fp);
  r.Set("flowKeySize", Napi::Number::New(env, sizeof(struct vxt_flow_key)));
  r.Set("flowKey", fk);
  r.Set("flowStatsSize", Napi::Number::New(env, sizeof(struct vxt_flow_stats)));
  r.Set("flowStats", fs);
  r.Set("recordAlign", Napi::Number::New(env, VXT_RECORD_ALIGN));
  r.Set("defaultSnaplen", Napi::Number::New(env, VXT_DEFAULT_SNAPLEN));
  r.Set("headersSnaplen", Napi::Number::New(env, VXT_HEADERS_SNAPLEN));
  r.Set("maxSnaplen", Napi::Number::New(env, VXT_MAX_SNAPLEN));
  r.Set("maxRules", Napi::Number::New(env, VXT_MAX_RULES));
  r.Set("maxPairs", Napi::Number::New(env, VXT_MAX_PAIRS / 2));
  r.Set("defaultFlowEntries", Napi::Number::New(env, VXT_DEFAULT_FLOW_ENTRIES));
  r.Set("defaultSampleFirst", Napi::Number::New(env, VXT_DEFAULT_SAMPLE_FIRST));
  r.Set("defaultSampleWindowNs", Napi::Number::New(env, static_cast<double>(VXT_DEFAULT_SAMPLE_WINDOW_NS)));
  r.Set("maxVxlanPorts", Napi::Number::New(env, VXT_MAX_VXLAN_PORTS));
  const uint16_t defaultPorts[] = VXT_DEFAULT_VXLAN_PORTS;
  Napi::Array ports = Napi::Array::New(env);
  for (uint16_t p : defaultPorts) ports.Set(ports.Length(), Napi::Number::New(env, p));
  r.Set("defaultVxlanPorts", ports);
  Napi::Object k = Napi::Object::New(env);
  k.Set("KIND_TC", Napi::Number::New(env, VXT_KIND_TC));
  k.Set("KIND_DROP", Napi::Number::New(env, VXT_KIND_DROP));
  k.Set("DIR_INGRESS", Napi::Number::New(env, VXT_DIR_INGRESS));
  k.Set("DIR_EGRESS", Napi::Number::New(env, VXT_DIR_EGRESS));
  k.Set("F_ENCAP", Napi::Number::New(env, VXT_F_ENCAP));
  k.Set("F_DF", Napi::Number::New(env, VXT_F_DF));
  k.Set("F_FRAGMENT", Napi::Number::New(env, VXT_F_FRAGMENT));
  k.Set("F_L3_START", Napi::Number::New(env, VXT_F_L3_START));
  k.Set("F_HAS_L4", Napi::Number::New(env, VXT_F_HAS_L4));
  k.Set("F_SHEDDING", Napi::Number::New(env, VXT_F_SHEDDING));
  k.Set("F_SAMPLED", Napi::Number::New(env, VXT_F_SAMPLED));
  k.Set("FILTER_NONE", Napi::Number::New(env, VXT_FILTER_NONE));
  k.Set("FILTER_ALL", Napi::Number::New(env, VXT_FILTER_ALL));
  k.Set("FILTER_RULES", Napi::Number::New(env, VXT_FILTER_RULES));
  r.Set("constants", k);
  return r;
}

Napi::Value DropReasons(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::map<uint64_t, std::string> names;
  try {
    names = DropReasonNames();
  } catch (const std::runtime_error& e) {
    throw Napi::Error::New(env, e.what());
  }
  Napi::Object r = Napi::Object::New(env);
  for (const auto& [value, name] : names) r.Set(Napi::Number::New(env, static_cast<double>(value)), name);
  return r;
}

}  // namespace

Napi::Function LayoutFunction(Napi::Env env) { return Napi::Function::New(env, Layout, "layout"); }
Napi::Function DropReasonsFunction(Napi::Env env) { return Napi::Function::New(env, DropReasons, "dropReasons"); }

}  // namespace vxtrace
