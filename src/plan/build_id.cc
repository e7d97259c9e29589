#include "plan/build_id.h"

#ifndef KILN_VERSION_STRING
#define KILN_VERSION_STRING "0.5.0"
#endif
#ifndef KILN_BUILD_ID
#define KILN_BUILD_ID "0.5.0+unknown"
#endif

namespace kiln {

const char* KilnVersion() { return KILN_VERSION_STRING; }
const char* KilnBuildId() { return KILN_BUILD_ID; }

}  // namespace kiln
