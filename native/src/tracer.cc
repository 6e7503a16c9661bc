#include "tracer.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>

#include "errors.h"
#include "kernel_btf.h"
#include "libbpf_log.h"
#include "netns.h"

namespace vxtrace {

// Batches waiting for JavaScript are bounded (at most 16 x 1 MiB, counted until JavaScript says it
// handled them: done()): beyond that the polling thread waits, the ring buffer fills and the kernel
// counts what it cannot store.
static constexpr size_t kMaxBatchBytes = 1u << 20;
// A batch is flushed once it reaches kMaxBatchBytes: room for that and one record more.
static constexpr size_t kBatchCapacity = kMaxBatchBytes + 64 * 1024;
static constexpr size_t kMaxQueuedBatches = 16;
// The kernel wakes the polling thread per 64 KiB of records; a lone record waits at most this.
static constexpr int kPollMs = 10;
// tp_btf/kfree_skb needs the kernel's tracepoint to pass (skb, location, reason).
static constexpr int kKfreeSkbArgs = 3;

namespace {

struct Batch {
  std::vector<uint8_t> bytes;
  size_t records = 0;
};

// A number as a user typed it (5000, not 5000.000000).
std::string Num(double v) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

struct bpf_map* FindMap(struct bpf_object* obj, const char* name) { return bpf_object__find_map_by_name(obj, name); }

}  // namespace

Napi::Function Tracer::Init(Napi::Env env) {
  return DefineClass(env, "Tracer",
                     {
                         InstanceMethod<&Tracer::Configure>("configure"),
                         InstanceMethod<&Tracer::Load>("load"),
                         InstanceMethod<&Tracer::Attach>("attach"),
                         InstanceMethod<&Tracer::WatchNetns>("watchNetns"),
                         InstanceMethod<&Tracer::SetFilter>("setFilter"),
                         InstanceMethod<&Tracer::Start>("start"),
                         InstanceMethod<&Tracer::Stop>("stop"),
                         InstanceMethod<&Tracer::Done>("done"),
                         InstanceMethod<&Tracer::Stats>("stats"),
                         InstanceMethod<&Tracer::FlowCounters>("flowCounters"),
                         InstanceMethod<&Tracer::Attachments>("attachments"),
                         InstanceMethod<&Tracer::LoadedConfig>("loadedConfig"),
                         InstanceMethod<&Tracer::Close>("close"),
                     });
}

// new Tracer(objectPath): opens (does not load) the BPF object.
Tracer::Tracer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Tracer>(info) {
  Napi::Env env = info.Env();
  env_ = env;
  if (info.Length() < 1 || !info[0].IsString()) Throw(env, "new Tracer(objectPath): objectPath must be a string");
  objectPath_ = info[0].As<Napi::String>().Utf8Value();
  memset(&config_, 0, sizeof config_);
  config_.snaplen = VXT_DEFAULT_SNAPLEN;
  config_.track_drops = 1;
  config_.sample_first = VXT_DEFAULT_SAMPLE_FIRST;
  config_.sample_window_ns = VXT_DEFAULT_SAMPLE_WINDOW_NS;
  config_.shed_above = ~0ull;
  config_.count_flows = 1;
  const uint16_t defaultPorts[] = VXT_DEFAULT_VXLAN_PORTS;
  for (size_t i = 0; i < sizeof defaultPorts / sizeof defaultPorts[0]; i++) config_.vxlan_ports[i] = htons(defaultPorts[i]);
  OpenObject();
}

Tracer::~Tracer() {
  StopAndJoin();
  ReleaseAll();
}

void Tracer::OpenObject() {
  LibbpfLog log;
  if (access(objectPath_.c_str(), R_OK) != 0) {
    int err = errno;
    Throw(env_, "open BPF object " + objectPath_ + ": " + strerror(err) + " (build it with `npm run build`)");
  }
  obj_ = bpf_object__open_file(objectPath_.c_str(), nullptr);
  if (!obj_) {
    int err = errno;
    Throw(env_, "open BPF object " + objectPath_ + ": " + strerror(err) + "\n" + log.tail());
  }
  SetDropAutoload();
}

// Exactly one of the two kfree_skb programs loads (none without drop tracking).
void Tracer::SetDropAutoload() {
  struct bpf_program* btfProg = bpf_object__find_program_by_name(obj_, "vxt_kfree_skb");
  struct bpf_program* rawProg = bpf_object__find_program_by_name(obj_, "vxt_kfree_skb_raw");
  if (!btfProg || !rawProg) Throw(env_, "BPF object " + objectPath_ + " lacks the kfree_skb programs: rebuild it");
  bool drops = config_.track_drops != 0;
  bpf_program__set_autoload(btfProg, drops && !dropsViaRawTp_);
  bpf_program__set_autoload(rawProg, drops && dropsViaRawTp_);
}

void Tracer::RequireState(Napi::Env env, const char* what, bool wantLoaded) {
  if (closed_) Throw(env, std::string(what) + ": the tracer is closed");
  if (wantLoaded && !loaded_) Throw(env, std::string(what) + ": load() the tracer first");
  if (!wantLoaded && loaded_) Throw(env, std::string(what) + ": must come before load()");
}

// configure({snaplen, wholeUpTo, vxlanPorts, ringBytes, trackDrops, dropHook, countFlows, flowEntries,
// shedAbove, sampleFirst, sampleWindowNs}): load-time choices.
Napi::Value Tracer::Configure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, "configure", false);
  if (info.Length() < 1 || !info[0].IsObject()) Throw(env, "configure(options): options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  if (o.Has("snaplen")) {
    double v = o.Get("snaplen").ToNumber().DoubleValue();
    if (!(v >= 1 && v <= VXT_MAX_SNAPLEN) || v != static_cast<uint32_t>(v))
      Throw(env, "configure: snaplen " + Num(v) + " out of range 1.." + std::to_string(VXT_MAX_SNAPLEN));
    config_.snaplen = static_cast<uint32_t>(v);
  }
  if (o.Has("vxlanPorts")) {
    Napi::Value pv = o.Get("vxlanPorts");
    if (!pv.IsArray()) Throw(env, "configure: vxlanPorts must be an array of UDP ports");
    Napi::Array ports = pv.As<Napi::Array>();
    if (ports.Length() < 1 || ports.Length() > VXT_MAX_VXLAN_PORTS)
      Throw(env, "configure: vxlanPorts needs 1.." + std::to_string(VXT_MAX_VXLAN_PORTS) + " ports");
    memset(config_.vxlan_ports, 0, sizeof config_.vxlan_ports);
    for (uint32_t i = 0; i < ports.Length(); i++) {
      double p = ports.Get(i).ToNumber().DoubleValue();
      if (!(p >= 1 && p <= 65535) || p != static_cast<uint16_t>(p))
        Throw(env, "configure: VXLAN port " + Num(p) + " is not a UDP port");
      config_.vxlan_ports[i] = htons(static_cast<uint16_t>(p));
    }
  }
  if (o.Has("ringBytes")) {
    double v = o.Get("ringBytes").ToNumber().DoubleValue();
    uint64_t r = static_cast<uint64_t>(v);
    long page = sysconf(_SC_PAGESIZE);
    if (v != static_cast<double>(r) || r < static_cast<uint64_t>(page) || r > (1ull << 30) || (r & (r - 1)))
      Throw(env, "configure: ringBytes " + Num(v) + " must be a power of two between the page size (" +
                     std::to_string(page) + ") and 1 GiB");
    ringBytes_ = static_cast<uint32_t>(r);
  }
  auto whole = [&](const char* name, double lo, double hi) {
    double v = o.Get(name).ToNumber().DoubleValue();
    if (!(v >= lo && v <= hi) || v != static_cast<double>(static_cast<uint64_t>(v)))
      Throw(env, std::string("configure: ") + name + " " + Num(v) + " must be a whole number in " + Num(lo) + ".." + Num(hi));
    return static_cast<uint64_t>(v);
  };
  if (o.Has("wholeUpTo")) config_.whole_up_to = static_cast<uint32_t>(whole("wholeUpTo", 0, VXT_MAX_SNAPLEN));
  if (o.Has("countFlows")) config_.count_flows = o.Get("countFlows").ToBoolean().Value() ? 1 : 0;
  if (o.Has("flowEntries")) flowEntries_ = static_cast<uint32_t>(whole("flowEntries", 1, 1u << 24));
  if (o.Has("sampleFirst")) config_.sample_first = static_cast<uint32_t>(whole("sampleFirst", 0, 1u << 30));
  if (o.Has("sampleWindowNs")) config_.sample_window_ns = whole("sampleWindowNs", 1000, 3600e9);
  if (o.Has("shedAbove")) {
    // bytes waiting in the ring buffer beyond which records are shed; -1: never; 0: always
    double v = o.Get("shedAbove").ToNumber().DoubleValue();
    config_.shed_above = v < 0 ? ~0ull : whole("shedAbove", 0, 1u << 30);
    shedAboveSet_ = true;
  }
  if (o.Has("trackDrops")) config_.track_drops = o.Get("trackDrops").ToBoolean().Value() ? 1 : 0;
  if (o.Has("dropHook")) {
    std::string hook = o.Get("dropHook").ToString().Utf8Value();
    if (hook != "auto" && hook != "tp_btf" && hook != "raw_tp")
      Throw(env, "configure: dropHook must be auto, tp_btf or raw_tp");
    dropHookFixed_ = hook != "auto";
    dropsViaRawTp_ = hook == "raw_tp";
  }
  SetDropAutoload();
  return env.Undefined();
}

// What the configuration takes from the running kernel, before load: the two drop reasons that
// are not drops, and (dropHook auto) whether kfree_skb can take the BTF-typed program.
void Tracer::ReadKernelFacts(Napi::Env env) {
  if (!config_.track_drops) return;
  try {
    VmlinuxBtf btf("tell drops from frees");
    config_.reason_not_dropped_yet = btf.DropReason("NOT_DROPPED_YET");
    config_.reason_consumed = btf.DropReason("CONSUMED");
    if (!dropHookFixed_) dropsViaRawTp_ = btf.TracepointArgs("kfree_skb") < kKfreeSkbArgs;
  } catch (const std::runtime_error& e) {
    Throw(env, std::string("load: ") + e.what() + "; without drop reports, open the tracer with trackDrops: false");
  }
  SetDropAutoload();
}

// Writes config_ into vxt_cfg, found by name in the object's .rodata (its BTF says where).
void Tracer::ApplyConfig() {
  rodata_ = nullptr;
  struct bpf_map* m;
  bpf_object__for_each_map(m, obj_) {
    std::string name = bpf_map__name(m);
    if (name.size() >= 7 && name.compare(name.size() - 7, 7, ".rodata") == 0) rodata_ = m;
  }
  const struct btf* btf = bpf_object__btf(obj_);
  int sec = btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -1;
  bool found = false;
  if (sec > 0) {
    const struct btf_type* t = btf__type_by_id(btf, sec);
    const struct btf_var_secinfo* v = btf_var_secinfos(t);
    for (uint16_t i = 0; i < btf_vlen(t); i++, v++) {
      const struct btf_type* var = btf__type_by_id(btf, v->type);
      if (strcmp(btf__name_by_offset(btf, var->name_off), "vxt_cfg") != 0) continue;
      found = v->size == sizeof(struct vxt_config);
      cfgOffset_ = v->offset;
    }
  }
  size_t size = 0;
  // Writable until load (libbpf 1.1 declares it const).
  void* data = rodata_ ? const_cast<void*>(bpf_map__initial_value(rodata_, &size)) : nullptr;
  if (!data || !found || size < cfgOffset_ + sizeof(struct vxt_config))
    Throw(env_, "BPF object " + objectPath_ + " has no .rodata variable vxt_cfg of this addon's struct vxt_config: rebuild it (npm run build)");
  // Wake user space every 64 KiB of records (a quarter of a small ring buffer).
  config_.wakeup_bytes = std::min<uint32_t>(64u << 10, ringBytes_ / 4);
  // Shed once half the ring buffer waits: the other half takes what is kept meanwhile.
  if (!shedAboveSet_) config_.shed_above = ringBytes_ / 2;
  memcpy(static_cast<uint8_t*>(data) + cfgOffset_, &config_, sizeof config_);
  struct bpf_map* events = FindMap(obj_, "vxt_events");
  if (!events || bpf_map__set_max_entries(events, ringBytes_) != 0)
    Throw(env_, "BPF object " + objectPath_ + ": cannot size ring buffer vxt_events");
  struct bpf_map* flows = FindMap(obj_, "vxt_flows");
  if (!flows || bpf_map__set_max_entries(flows, flowEntries_) != 0)
    Throw(env_, "BPF object " + objectPath_ + ": cannot size the flow counters vxt_flows");
}

// load(): verifies and loads the programs and maps, attaches the drop tracepoint.
Napi::Value Tracer::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, "load", false);
  ReadKernelFacts(env);
  {
    LibbpfLog log;
    ApplyConfig();
    int err = bpf_object__load(obj_);
    if (err) {
      err = -err;
      std::string msg = "load BPF programs from " + objectPath_ + ": " + Errno(err);
      // Not privileged (as opposed to a program the verifier rejected, which also says EACCES):
      // the reason is the whole message, libbpf's chatter would only hide it.
      bool verifierLog = log.text.find("PROG LOAD LOG") != std::string::npos;
      if ((err == EPERM || err == EACCES) && !verifierLog) Throw(env, msg);
      Throw(env, msg + "\nverifier/libbpf log:\n" + log.tail());
    }
  }
  loaded_ = true;
  auto progFd = [&](const char* name) {
    struct bpf_program* p = bpf_object__find_program_by_name(obj_, name);
    return p ? bpf_program__fd(p) : -1;
  };
  auto mapFd = [&](const char* name) {
    struct bpf_map* m = FindMap(obj_, name);
    return m ? bpf_map__fd(m) : -1;
  };
  progIngressFd_ = progFd("vxt_tc_ingress");
  progEgressFd_ = progFd("vxt_tc_egress");
  filterFd_ = mapFd("vxt_filter");
  pairsFd_ = mapFd("vxt_pairs");
  statsFd_ = mapFd("vxt_stats");
  netnsMapFd_ = mapFd("vxt_netns");
  eventsFd_ = mapFd("vxt_events");
  flowsFd_ = mapFd("vxt_flows");
  if (progIngressFd_ < 0 || progEgressFd_ < 0 || filterFd_ < 0 || pairsFd_ < 0 || statsFd_ < 0 ||
      netnsMapFd_ < 0 || eventsFd_ < 0 || flowsFd_ < 0)
    Throw(env, "BPF object " + objectPath_ + " lacks a program or map vxtrace needs: rebuild it");

  if (config_.track_drops) {
    LibbpfLog log;
    const char* name = dropsViaRawTp_ ? "vxt_kfree_skb_raw" : "vxt_kfree_skb";
    dropHook_ = dropsViaRawTp_ ? "raw_tp/kfree_skb" : "tp_btf/kfree_skb";
    dropLink_ = bpf_program__attach(bpf_object__find_program_by_name(obj_, name));
    if (!dropLink_) {
      int err = errno;
      Throw(env, "attach " + dropHook_ + " (drop reasons): " + Errno(err) + "\n" + log.tail());
    }
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("dropHook", dropHook_.empty() ? env.Null() : Napi::String::New(env, dropHook_));
  return r;
}

// attach({netns, device, direction, mode}) -> {ifindex, netnsCookie, netnsInode, mode}
Napi::Value Tracer::Attach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, "attach", true);
  if (info.Length() < 1 || !info[0].IsObject()) Throw(env, "attach(point): point must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  Attachment a;
  Napi::Value ns = o.Get("netns");
  if (ns.IsString()) a.netns = ns.As<Napi::String>().Utf8Value();
  if (!o.Get("device").IsString()) Throw(env, "attach(point): point.device must be an interface name");
  a.device = o.Get("device").As<Napi::String>().Utf8Value();
  std::string dir = o.Get("direction").IsString() ? o.Get("direction").As<Napi::String>().Utf8Value() : "";
  if (dir != "ingress" && dir != "egress") Throw(env, "attach(point): point.direction must be 'ingress' or 'egress'");
  a.egress = dir == "egress";
  std::string mode = o.Get("mode").IsString() ? o.Get("mode").As<Napi::String>().Utf8Value() : "auto";
  if (mode != "auto" && mode != "tcx" && mode != "clsact") Throw(env, "attach(point): mode must be auto, tcx or clsact");
  if (a.device.empty() || a.device.size() >= IF_NAMESIZE) Throw(env, "attach: '" + a.device + "' is not an interface name");

  std::string what = "attach " + dir + " on " + a.device + " " + Where(a.netns);
  NetnsSwitch sw(env, a.netns, what);
  a.ifindex = static_cast<int>(if_nametoindex(a.device.c_str()));
  if (a.ifindex == 0) Throw(env, what + ": interface " + a.device + " not found " + Where(a.netns));
  // The same device (by ifindex) once per direction; a device recreated under the same name (a
  // flanneld restart recreates flannel.1) has a new ifindex and is attached again.
  for (const Attachment& b : attachments_)
    if (b.netns == a.netns && b.ifindex == a.ifindex && b.egress == a.egress)
      Throw(env, "attach " + dir + " on " + a.device + " " + Where(a.netns) + ": already attached by this tracer");
  CurrentNetnsIdentity(&a.netnsCookie, &a.netnsInode);
  int progFd = a.egress ? progEgressFd_ : progIngressFd_;
  a.programId = ProgramId(progFd);
  AttachTc(env, a, progFd, mode, clsactClaims_);
  if (!a.netns.empty()) a.netnsFd = sw.TakeTarget();
  uint32_t one = 1;
  if (bpf_map_update_elem(netnsMapFd_, &a.netnsCookie, &one, BPF_ANY) != 0) {
    int err = errno;
    DetachTc(a);
    Throw(env, what + ": add the namespace (cookie " + std::to_string(a.netnsCookie) + ") to map vxt_netns, which says where drops are reported: " +
                   Errno(err) + (err == E2BIG ? " (a tracer watches at most 256 network namespaces)" : ""));
  }
  attachments_.push_back(a);

  Napi::Object r = Napi::Object::New(env);
  r.Set("ifindex", Napi::Number::New(env, a.ifindex));
  r.Set("netnsCookie", Napi::BigInt::New(env, a.netnsCookie));
  r.Set("netnsInode", Napi::Number::New(env, static_cast<double>(a.netnsInode)));
  r.Set("mode", Napi::String::New(env, a.tcx ? "tcx" : "clsact"));
  r.Set("programId", Napi::Number::New(env, a.programId));
  r.Set("linkId", Napi::Number::New(env, a.linkId));
  return r;
}

// watchNetns(netns|null) -> {netnsCookie, netnsInode}: report drops in it without attaching tc.
Napi::Value Tracer::WatchNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, "watchNetns", true);
  std::string netns = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  uint64_t cookie, inode;
  {
    NetnsSwitch sw(env, netns, "watch drops " + Where(netns));
    CurrentNetnsIdentity(&cookie, &inode);
  }
  uint32_t one = 1;
  if (bpf_map_update_elem(netnsMapFd_, &cookie, &one, BPF_ANY) != 0)
    Throw(env, "watch drops " + Where(netns) + ": " + Errno(errno));
  Napi::Object r = Napi::Object::New(env);
  r.Set("netnsCookie", Napi::BigInt::New(env, cookie));
  r.Set("netnsInode", Napi::Number::New(env, static_cast<double>(inode)));
  return r;
}

// setFilter(mode, rules): mode VXT_FILTER_NONE, _ALL or _RULES (layout().constants.FILTER_*); rules [{family, protocol, port,
// aAddr, aMask, bAddr, bMask}] with 16-byte network-order Buffers. A few rules are compared in place (one map value,
// looked up once per packet); beyond kInlineRules, the rules of two exact addresses (pod pairs) go to the hash map
// vxt_pairs (one lookup, whatever their number) and the others stay in place (at most VXT_MAX_RULES).
static constexpr uint32_t kInlineRules = 4;

Napi::Value Tracer::SetFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, "setFilter", true);
  uint32_t mode = info[0].ToNumber().Uint32Value();
  if (mode > VXT_FILTER_RULES) Throw(env, "setFilter: unknown mode " + std::to_string(mode));
  Napi::Array rules = info.Length() > 1 && info[1].IsArray() ? info[1].As<Napi::Array>() : Napi::Array::New(env);
  std::vector<struct vxt_rule> list;
  for (uint32_t i = 0; i < rules.Length(); i++) {
    Napi::Object r = rules.Get(i).As<Napi::Object>();
    struct vxt_rule rule;
    memset(&rule, 0, sizeof rule);
    rule.family = static_cast<uint8_t>(r.Get("family").ToNumber().Uint32Value());
    rule.protocol = static_cast<uint8_t>(r.Get("protocol").ToNumber().Uint32Value());
    rule.port = htons(static_cast<uint16_t>(r.Get("port").ToNumber().Uint32Value()));
    auto copy = [&](const char* key, __u32* dst) {
      Napi::Value v = r.Get(key);
      if (!v.IsBuffer() || v.As<Napi::Buffer<uint8_t>>().Length() != 16)
        Throw(env, std::string("setFilter: rule.") + key + " must be a 16-byte Buffer");
      memcpy(dst, v.As<Napi::Buffer<uint8_t>>().Data(), 16);
    };
    copy("aAddr", rule.a_addr);
    copy("aMask", rule.a_mask);
    copy("bAddr", rule.b_addr);
    copy("bMask", rule.b_mask);
    list.push_back(rule);
  }
  // Exact pairs to the hash only when there are more rules than are compared in place cheaply.
  auto exact = [](const struct vxt_rule& r) {
    if (r.family != 4 && r.family != 6) return false;
    int words = r.family == 4 ? 1 : 4;
    for (int w = 0; w < words; w++)
      if (r.a_mask[w] != 0xffffffffu || r.b_mask[w] != 0xffffffffu) return false;
    return true;
  };
  std::map<std::vector<uint8_t>, struct vxt_pair_rule> pairs;
  struct vxt_filter f;
  memset(&f, 0, sizeof f);
  f.mode = mode;
  auto keyOf = [](const __u32* s, const __u32* d, uint8_t family) {
    struct vxt_pair_key k;
    memset(&k, 0, sizeof k);
    memcpy(k.saddr, s, 16);
    memcpy(k.daddr, d, 16);
    k.family = family;
    const uint8_t* b = reinterpret_cast<const uint8_t*>(&k);
    return std::vector<uint8_t>(b, b + sizeof k);
  };
  for (const struct vxt_rule& r : list) {
    if (list.size() > kInlineRules && exact(r)) {
      struct vxt_pair_rule v = {r.protocol, 0, r.port};
      auto ab = keyOf(r.a_addr, r.b_addr, r.family), ba = keyOf(r.b_addr, r.a_addr, r.family);
      // one rule per pair in the hash; a second rule of the same pair is compared in place
      if (!pairs.count(ab)) {
        pairs[ab] = v;
        pairs[ba] = v;
        continue;
      }
    }
    if (f.nrules == VXT_MAX_RULES)
      Throw(env, "setFilter: " + std::to_string(list.size()) + " rules: at most " + std::to_string(VXT_MAX_RULES) +
                     " that are not one pod pair each (two exact addresses), and " + std::to_string(VXT_MAX_PAIRS / 2) + " pairs");
    f.rules[f.nrules++] = r;
  }
  if (pairs.size() > VXT_MAX_PAIRS)
    Throw(env, "setFilter: " + std::to_string(pairs.size() / 2) + " pod pairs, at most " + std::to_string(VXT_MAX_PAIRS / 2));
  f.npairs = static_cast<uint32_t>(pairs.size());
  // New pairs first, then the filter, then the pairs it no longer has: a packet never sees a
  // filter whose pairs are missing.
  for (const auto& [key, value] : pairs)
    if (bpf_map_update_elem(pairsFd_, key.data(), &value, BPF_ANY) != 0) Throw(env, "setFilter: add a pod pair: " + Errno(errno));
  uint32_t zero = 0;
  if (bpf_map_update_elem(filterFd_, &zero, &f, BPF_ANY) != 0) Throw(env, "setFilter: " + Errno(errno));
  std::vector<struct vxt_pair_key> now;
  for (const auto& [key, value] : pairs) {
    struct vxt_pair_key k;
    memcpy(&k, key.data(), sizeof k);
    now.push_back(k);
  }
  for (const struct vxt_pair_key& old : pairs_) {
    const uint8_t* b = reinterpret_cast<const uint8_t*>(&old);
    if (!pairs.count(std::vector<uint8_t>(b, b + sizeof old))) bpf_map_delete_elem(pairsFd_, &old);
  }
  pairs_ = now;
  return env.Undefined();
}

// A record is reserved with room for up to its size class (bpf/vxtrace.bpf.c): only its header and
// cap_len frame bytes are handed on.
int Tracer::OnSample(void* ctx, void* data, size_t size) {
  Tracer* self = static_cast<Tracer*>(ctx);
  if (size >= sizeof(struct vxt_hop)) {
    size_t used = sizeof(struct vxt_hop) + static_cast<const struct vxt_hop*>(data)->cap_len;
    if (used < size) size = used;
  }
  if (!self->batch_) self->batch_.reset(new std::vector<uint8_t>());
  std::vector<uint8_t>& b = *self->batch_;
  // One allocation of one size per batch (growing it record by record made a dozen of every size
  // on the way to 1 MiB): above the mmap threshold (addon.cc), freed batches go back to the kernel.
  if (b.capacity() == 0) b.reserve(kBatchCapacity);
  size_t padded = (size + VXT_RECORD_ALIGN - 1) & ~static_cast<size_t>(VXT_RECORD_ALIGN - 1);
  size_t at = b.size();
  b.resize(at + padded, 0);
  memcpy(b.data() + at, data, size);
  self->batchRecords_++;
  if (b.size() >= kMaxBatchBytes) self->Flush(false);
  return 0;
}

// Hands the current batch to JavaScript. When JS is behind (kMaxQueuedBatches not yet handled) the
// thread waits, the ring buffer fills and the kernel counts what it cannot store: loss is counted,
// never silent. Counting batches until JavaScript has handled them, not until the thread-safe
// function has called it, matters: N-API calls up to 1000 queued items in one turn of the event
// loop, and a queue refilled as fast as it empties kept timers, signals and the GC's finalizers
// (which free the batches) waiting for seconds under a flood.
void Tracer::Flush(bool stopping) {
  if (!batch_ || batch_->empty()) return;
  while (outstanding_.load() >= kMaxQueuedBatches && !abandon_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto* b = new Batch();
  b->bytes.swap(*batch_);
  b->records = batchRecords_;
  // Once queued, the batch belongs to the JavaScript thread, which frees it: count from a copy.
  const uint64_t records = batchRecords_;
  batchRecords_ = 0;
  auto call = [](Napi::Env env, Napi::Function fn, Batch* batch) {
    if (env == nullptr || fn.IsEmpty()) {
      delete batch;
      return;
    }
    auto* bytes = new std::vector<uint8_t>();
    bytes->swap(batch->bytes);
    delete batch;
    Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(
        env, bytes->data(), bytes->size(), [](Napi::Env, uint8_t*, std::vector<uint8_t>* v) { delete v; }, bytes);
    fn.Call({buf});
  };
  for (;;) {
    outstanding_++;
    napi_status st = tsfn_.NonBlockingCall(b, call);
    if (st == napi_ok) {
      delivered_ += records;
      return;
    }
    outstanding_--;
    if (st == napi_queue_full && !abandon_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    userLost_ += records;
    delete b;
    return;
  }
}

void Tracer::PollLoop() {
  while (running_) {
    int n = ring_buffer__poll(rb_, kPollMs);
    if (n < 0 && n != -EINTR) break;
    // records written without a wakeup (BPF_RB_NO_WAKEUP): poll's timeout does not consume them
    ring_buffer__consume(rb_);
    Flush(false);
  }
  ring_buffer__consume(rb_);
  Flush(true);
  tsfn_.Release();
}

// start(onBatch(buffer), onStopped()): starts the polling thread.
Napi::Value Tracer::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, "start", true);
  if (started_) Throw(env, "start: already started");
  if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsFunction())
    Throw(env, "start(onBatch, onStopped): two functions expected");
  rb_ = ring_buffer__new(eventsFd_, &Tracer::OnSample, this, nullptr);
  if (!rb_) Throw(env, "start: open ring buffer: " + Errno(errno));
  onStopped_ = Napi::Persistent(info[1].As<Napi::Function>());
  selfRef_ = Napi::Persistent(Value());
  tsfn_ = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "vxtrace-hop-records", kMaxQueuedBatches, 1,
                                        [this](Napi::Env env) {
                                          if (thread_.joinable()) thread_.join();
                                          if (rb_) ring_buffer__free(rb_);
                                          rb_ = nullptr;
                                          started_ = false;
                                          if (!onStopped_.IsEmpty()) {
                                            Napi::FunctionReference cb = std::move(onStopped_);
                                            selfRef_.Reset();
                                            cb.Call({});
                                          } else {
                                            selfRef_.Reset();
                                          }
                                        });
  if (!cleanupHookAdded_) {
    napi_add_env_cleanup_hook(env, &Tracer::OnEnvCleanup, this);
    cleanupHookAdded_ = true;
  }
  started_ = true;
  outstanding_ = 0;
  running_ = true;
  abandon_ = false;
  thread_ = std::thread([this] { PollLoop(); });
  return env.Undefined();
}

// done(n): JavaScript handled n more of the batches it was given (Flush).
Napi::Value Tracer::Done(const Napi::CallbackInfo& info) {
  uint32_t n = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 1;
  uint32_t had = outstanding_.load();
  while (!outstanding_.compare_exchange_weak(had, had > n ? had - n : 0)) {
  }
  return info.Env().Undefined();
}

// stop(): asks the polling thread to deliver what is left and end; onStopped runs after the last batch.
Napi::Value Tracer::Stop(const Napi::CallbackInfo& info) {
  running_ = false;
  return info.Env().Undefined();
}

void Tracer::StopAndJoin() {
  abandon_ = true;
  running_ = false;
  if (thread_.joinable()) thread_.join();
  if (rb_) {
    ring_buffer__free(rb_);
    rb_ = nullptr;
  }
}

void Tracer::OnEnvCleanup(void* arg) {
  Tracer* self = static_cast<Tracer*>(arg);
  self->cleanupHookAdded_ = false;
  self->StopAndJoin();
  self->ReleaseAll();
}

Napi::Value Tracer::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, "stats", true);
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) Throw(env, "stats: cannot count CPUs");
  std::vector<struct vxt_stats> per(static_cast<size_t>(ncpu));
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(statsFd_, &zero, per.data()) != 0) Throw(env, "stats: read vxt_stats: " + Errno(errno));
  Napi::Object r = Napi::Object::New(env);
  auto column = [&](const char* name, __u64 vxt_stats::*field) {
    Napi::Array a = Napi::Array::New(env, per.size());
    for (size_t i = 0; i < per.size(); i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(per[i].*field)));
    r.Set(name, a);
  };
  column("records", &vxt_stats::records);
  column("lost", &vxt_stats::lost);
  column("seen", &vxt_stats::seen);
  column("dropsSeen", &vxt_stats::drops_seen);
  column("followed", &vxt_stats::followed);
  column("sampled", &vxt_stats::sampled);
  column("pulled", &vxt_stats::pulled);
  r.Set("userLost", Napi::Number::New(env, static_cast<double>(userLost_.load())));
  r.Set("delivered", Napi::Number::New(env, static_cast<double>(delivered_.load())));
  return r;
}

// flowCounters() -> Buffer: every entry of vxt_flows, each a struct vxt_flow_key then a struct
// vxt_flow_stats summed over the CPUs (packets, bytes, records, sampled, lost added; first_ns the
// least non-zero, last_ns the greatest; window fields zero), back to back.
Napi::Value Tracer::FlowCounters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, "flowCounters", true);
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) Throw(env, "flowCounters: cannot count CPUs");
  std::vector<struct vxt_flow_stats> per(static_cast<size_t>(ncpu));
  std::vector<uint8_t> out;
  const size_t entry = sizeof(struct vxt_flow_key) + sizeof(struct vxt_flow_stats);
  struct vxt_flow_key key, next;
  bool first = true;
  for (;;) {
    if (bpf_map_get_next_key(flowsFd_, first ? nullptr : &key, &next) != 0) {
      if (errno == ENOENT) break;
      Throw(env, "flowCounters: read vxt_flows: " + Errno(errno));
    }
    first = false;
    key = next;
    if (bpf_map_lookup_elem(flowsFd_, &key, per.data()) != 0) continue;  // evicted meanwhile
    struct vxt_flow_stats sum;
    memset(&sum, 0, sizeof sum);
    for (const struct vxt_flow_stats& c : per) {
      sum.packets += c.packets;
      sum.bytes += c.bytes;
      sum.records += c.records;
      sum.sampled += c.sampled;
      sum.lost += c.lost;
      if (c.first_ns && (!sum.first_ns || c.first_ns < sum.first_ns)) sum.first_ns = c.first_ns;
      if (c.last_ns > sum.last_ns) sum.last_ns = c.last_ns;
    }
    size_t at = out.size();
    out.resize(at + entry);
    memcpy(out.data() + at, &key, sizeof key);
    memcpy(out.data() + at + sizeof key, &sum, sizeof sum);
  }
  return Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size());
}

Napi::Value Tracer::Attachments(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array arr = Napi::Array::New(env, attachments_.size());
  for (size_t i = 0; i < attachments_.size(); i++) {
    const Attachment& a = attachments_[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("netns", a.netns.empty() ? env.Null() : Napi::String::New(env, a.netns));
    o.Set("device", a.device);
    o.Set("direction", a.egress ? "egress" : "ingress");
    o.Set("ifindex", a.ifindex);
    o.Set("mode", a.tcx ? "tcx" : "clsact");
    o.Set("netnsCookie", Napi::BigInt::New(env, a.netnsCookie));
    o.Set("netnsInode", Napi::Number::New(env, static_cast<double>(a.netnsInode)));
    o.Set("programId", Napi::Number::New(env, a.programId));
    o.Set("linkId", Napi::Number::New(env, a.linkId));
    arr.Set(static_cast<uint32_t>(i), o);
  }
  return arr;
}

void Tracer::ReleaseAll() {
  for (Attachment& a : attachments_) DetachTc(a);
  attachments_.clear();
  clsactClaims_.Release();  // after the filters are gone: until then they are ours
  if (dropLink_) bpf_link__destroy(dropLink_);
  dropLink_ = nullptr;
  if (obj_) bpf_object__close(obj_);
  obj_ = nullptr;
  loaded_ = false;
}

// loadedConfig() -> vxt_cfg as the loaded programs hold it (read back from the kernel's .rodata).
Napi::Value Tracer::LoadedConfig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, "loadedConfig", true);
  std::vector<uint8_t> value(bpf_map__value_size(rodata_));
  uint32_t zero = 0;
  if (value.size() < cfgOffset_ + sizeof(struct vxt_config) || bpf_map_lookup_elem(bpf_map__fd(rodata_), &zero, value.data()) != 0)
    Throw(env, "loadedConfig: read .rodata of the loaded programs: " + Errno(errno));
  struct vxt_config c;
  memcpy(&c, value.data() + cfgOffset_, sizeof c);
  Napi::Object r = Napi::Object::New(env);
  r.Set("snaplen", Napi::Number::New(env, c.snaplen));
  r.Set("trackDrops", Napi::Boolean::New(env, c.track_drops != 0));
  Napi::Array ports = Napi::Array::New(env);
  for (uint32_t i = 0; i < VXT_MAX_VXLAN_PORTS; i++)
    if (c.vxlan_ports[i]) ports.Set(ports.Length(), Napi::Number::New(env, ntohs(c.vxlan_ports[i])));
  r.Set("vxlanPorts", ports);
  r.Set("wakeupBytes", Napi::Number::New(env, c.wakeup_bytes));
  r.Set("reasonNotDroppedYet", Napi::Number::New(env, c.reason_not_dropped_yet));
  r.Set("reasonConsumed", Napi::Number::New(env, c.reason_consumed));
  r.Set("countFlows", Napi::Boolean::New(env, c.count_flows != 0));
  r.Set("wholeUpTo", Napi::Number::New(env, c.whole_up_to));
  r.Set("shedAbove", Napi::Number::New(env, c.shed_above == ~0ull ? -1 : static_cast<double>(c.shed_above)));
  r.Set("sampleFirst", Napi::Number::New(env, c.sample_first));
  r.Set("sampleWindowNs", Napi::Number::New(env, static_cast<double>(c.sample_window_ns)));
  return r;
}

// close(): stops the thread, detaches everything this tracer attached, frees the BPF object.
Napi::Value Tracer::Close(const Napi::CallbackInfo& info) {
  StopAndJoin();
  ReleaseAll();
  closed_ = true;
  if (cleanupHookAdded_) {
    napi_remove_env_cleanup_hook(info.Env(), &Tracer::OnEnvCleanup, this);
    cleanupHookAdded_ = false;
  }
  return info.Env().Undefined();
}

}  // namespace vxtrace
