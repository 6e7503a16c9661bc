#include "libbpf_log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace vxtrace {

static thread_local LibbpfLog* current = nullptr;

static int Print(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG || !current) return 0;
  char buf[4096];
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  if (n > 0) current->text.append(buf, static_cast<size_t>(n) < sizeof buf ? static_cast<size_t>(n) : sizeof buf - 1);
  return 0;
}

LibbpfLog::LibbpfLog() : outer_(current) {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(Print); });
  current = this;
}

LibbpfLog::~LibbpfLog() { current = outer_; }

std::string LibbpfLog::tail(size_t maxBytes) const {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  if (t.size() > maxBytes) t = "..." + t.substr(t.size() - maxBytes);
  return t;
}

}  // namespace vxtrace
