// How the addon reports a failed step: an exception whose message says what was attempted and
// the errno text, with what is missing when the kernel refused for want of privileges.
#pragma once
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace vxtrace {

inline std::string Errno(int err) {
  std::string s = strerror(err);
  if (err == EPERM || err == EACCES) s += " (need CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN: run as root)";
  return s;
}

[[noreturn]] inline void Throw(Napi::Env env, const std::string& msg) { throw Napi::Error::New(env, msg); }

}  // namespace vxtrace
