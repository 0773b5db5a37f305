// stb_image compiled into the image fuzz target, so that its decoders carry libFuzzer's coverage
// instrumentation and the sanitizers' checks: Debian's libstb is a prebuilt shared library, which the
// fuzzer would otherwise treat as one opaque call. The executable's definitions take precedence over
// the library's for the calls flowad makes. Fuzz builds only (the product links libstb).
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
