// Which Kiln this is: the version and the build identity that compiled plans are keyed by
// (plan/cache_key.h). The build id is the version plus the source commit at configure time, so
// that a plan compiled by another build of the kernels is recognised as such.
#pragma once

namespace kiln {

const char* KilnVersion();  // "0.5.0"
const char* KilnBuildId();  // "0.5.0+<commit>"

}  // namespace kiln
