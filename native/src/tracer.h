// Tracer: one loaded vxtrace BPF object, its attachments, its ring-buffer polling thread and the
// thread-safe function that hands batches of hop records to JavaScript. Nothing global: every
// resource belongs to one Tracer and is released by close() or the finaliser. Entering network
// namespaces is netns.h's; attaching to and detaching from a device (tcx, clsact) attach.h's.
#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "attach.h"

extern "C" {
#include "vxtrace.h"
}

struct bpf_object;
struct bpf_link;
struct bpf_map;
struct ring_buffer;

namespace vxtrace {

class Tracer : public Napi::ObjectWrap<Tracer> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Tracer(const Napi::CallbackInfo& info);
  ~Tracer() override;

 private:
  Napi::Value Configure(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Attach(const Napi::CallbackInfo& info);
  Napi::Value WatchNetns(const Napi::CallbackInfo& info);
  Napi::Value SetFilter(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Done(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value FlowCounters(const Napi::CallbackInfo& info);
  Napi::Value Attachments(const Napi::CallbackInfo& info);
  Napi::Value LoadedConfig(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  void OpenObject();
  void SetDropAutoload();
  void ReadKernelFacts(Napi::Env env);
  void ApplyConfig();
  void RequireState(Napi::Env env, const char* what, bool wantLoaded);
  void PollLoop();
  void Flush(bool stopping);
  void StopAndJoin();
  void ReleaseAll();
  static int OnSample(void* ctx, void* data, size_t size);
  static void OnEnvCleanup(void* arg);

  std::string objectPath_;
  struct vxt_config config_;
  uint32_t ringBytes_ = 4u << 20;
  uint32_t flowEntries_ = VXT_DEFAULT_FLOW_ENTRIES;
  bool shedAboveSet_ = false;  // configure({shedAbove}) chose it; else half the ring buffer
  bool dropsViaRawTp_ = false;
  bool dropHookFixed_ = false;  // configure({dropHook}) chose one: no probing
  std::string dropHook_;

  struct bpf_object* obj_ = nullptr;
  struct bpf_map* rodata_ = nullptr;  // holds vxt_cfg at cfgOffset_
  size_t cfgOffset_ = 0;
  bool loaded_ = false;
  bool closed_ = false;
  struct bpf_link* dropLink_ = nullptr;
  std::vector<Attachment> attachments_;
  ClsactClaims clsactClaims_;
  int progIngressFd_ = -1, progEgressFd_ = -1;
  int filterFd_ = -1, pairsFd_ = -1, statsFd_ = -1, netnsMapFd_ = -1, eventsFd_ = -1, flowsFd_ = -1;
  std::vector<struct vxt_pair_key> pairs_;  // what vxt_pairs holds now (setFilter replaces it)

  // Polling thread and delivery.
  struct ring_buffer* rb_ = nullptr;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> abandon_{false};   // close(): give up on batches JS cannot take now
  std::atomic<uint64_t> userLost_{0};  // records dropped in user space (only when closing)
  std::atomic<uint64_t> delivered_{0};
  // Batches handed to JavaScript and not yet handled (done()): queued in the thread-safe function
  // or waiting in JavaScript. At most kMaxQueuedBatches.
  std::atomic<uint32_t> outstanding_{0};
  std::unique_ptr<std::vector<uint8_t>> batch_;
  size_t batchRecords_ = 0;
  Napi::ThreadSafeFunction tsfn_;
  Napi::FunctionReference onStopped_;
  Napi::ObjectReference selfRef_;
  bool started_ = false;
  bool cleanupHookAdded_ = false;
  napi_env env_ = nullptr;
};

}  // namespace vxtrace
