// The addon's two plain functions: layout() and dropReasons() (layout.cc).
#pragma once
#include <napi.h>

namespace vxtrace {

Napi::Function LayoutFunction(Napi::Env env);
Napi::Function DropReasonsFunction(Napi::Env env);

}  // namespace vxtrace
