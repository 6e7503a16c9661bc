// libbpf's messages (the verifier log among them) captured per thread, so that a failed step can
// put them into the exception it throws instead of printing them to stderr.
#pragma once
#include <string>

namespace vxtrace {

// Installs the libbpf print callback once; messages go to the innermost active LibbpfLog on
// this thread, or nowhere.
class LibbpfLog {
 public:
  LibbpfLog();
  ~LibbpfLog();
  LibbpfLog(const LibbpfLog&) = delete;
  LibbpfLog& operator=(const LibbpfLog&) = delete;
  // The warnings captured, trimmed to the last maxBytes (verifier logs end with the cause).
  std::string tail(size_t maxBytes = 6000) const;
  std::string text;

 private:
  LibbpfLog* outer_;
};

}  // namespace vxtrace
