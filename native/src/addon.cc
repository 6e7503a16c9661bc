// vxtrace_native: registers the exports and nothing else.
//   Tracer        the libbpf tracer (tracer.cc; attach.cc, netns.cc, kernel_btf.cc)
//   layout()      sizeof/offsetof of every hop record and fingerprint key field, and the
//                 constants and defaults of bpf/vxtrace.h (layout.cc)
//   dropReasons() enum skb_drop_reason value -> name, from the running kernel's BTF (layout.cc)
#include <malloc.h>
#include <napi.h>

#include "layout.h"
#include "tracer.h"

// The record batches (1 MiB each, a hundred a second at full rate) are freed on the JavaScript
// thread whenever the GC collects their Buffers. glibc's default mmap threshold rises to the size of
// the first large block freed, after which such blocks come from the heap, which keeps the pages of
// freed batches mapped (RSS grew past 2 GiB under a 45 s flood). A fixed threshold keeps every block
// of 256 KiB or more in its own mapping, returned to the kernel when freed.
static constexpr int kMmapThreshold = 256 * 1024;

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  exports.Set("Tracer", vxtrace::Tracer::Init(env));
  exports.Set("layout", vxtrace::LayoutFunction(env));
  exports.Set("dropReasons", vxtrace::DropReasonsFunction(env));
  return exports;
}

NODE_API_MODULE(vxtrace_native, Init)
