// kiln_session_options -> SessionOptions (and the precision the session converts the model to).
// Config keys by name follow DESIGN.md's table; the keys of packages and on-device compilation
// are refused with a message until that part is in this build.
#pragma once

#include <optional>
#include <string>

#include "core/status.h"
#include "kiln/kiln.h"
#include "precision/convert.h"
#include "runtime/session.h"

namespace kiln::api {

struct ApiSessionOptions {
  SessionOptions session;
  std::optional<Precision> precision;  // convert the model to this at session creation
};

// Validates every field (threads range, enum values, backends list, each config entry).
Result<ApiSessionOptions> ToSessionOptions(const kiln_session_options& options);
// One "Key = Value" setting; errors name the key and the allowed values.
Status SetSessionConfigKey(ApiSessionOptions& options, const std::string& key,
                           const std::string& value);

}  // namespace kiln::api
