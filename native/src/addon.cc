// vxtrace_native: registers the exports and nothing else.
//   Tracer        the libbpf tracer (tracer.cc; attach.cc, netns.cc, kernel_btf.cc)
//   layout()      sizeof/offsetof of every hop record and fingerprint key field, and the
//                 constants and defaults of bpf/vxtrace.h (layout.cc)
//   dropReasons() enum skb_drop_reason value -> name, from the running kernel's BTF (layout.cc)
#include <napi.h>

#include "layout.h"
#include "tracer.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Tracer", vxtrace::Tracer::Init(env));
  exports.Set("layout", vxtrace::LayoutFunction(env));
  exports.Set("dropReasons", vxtrace::DropReasonsFunction(env));
  return exports;
}

NODE_API_MODULE(vxtrace_native, Init)
