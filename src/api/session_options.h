// kiln_session_options -> SessionOptions (and the precision the session converts the model to).
// Config keys by name follow DESIGN.md's table. For a bare model the keys of on-device
// compilation are refused (they need a package); for a package every key goes to the package's
// key table (package/config.h) over its config.cfg.
#pragma once

#include <optional>
#include <string>

#include "core/status.h"
#include "kiln/kiln.h"
#include "odc/serving_session.h"
#include "precision/convert.h"
#include "runtime/session.h"

namespace kiln::api {

struct ApiSessionOptions {
  SessionOptions session;
  std::optional<Precision> precision;  // convert the model to this at session creation
};

// Validates every field (threads range, enum values, backends list, each config entry).
Result<ApiSessionOptions> ToSessionOptions(const kiln_session_options& options);
// For a package: fields that differ from kiln_session_options_init's defaults and every config
// entry become config keys over the package's config.cfg (precision is refused: a package's
// precision is chosen by kiln_pack).
Result<ServeOptions> ToServeOptions(const kiln_session_options& options);
// One "Key = Value" setting; errors name the key and the allowed values.
Status SetSessionConfigKey(ApiSessionOptions& options, const std::string& key,
                           const std::string& value);

}  // namespace kiln::api
