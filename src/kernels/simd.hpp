// Function multiversioning for hot elementwise kernels: the library is built for the baseline ISA,
// and these kernels get AVX-512 and AVX2 clones chosen at load time (GCC/Clang ifunc). `flatten`
// inlines everything a kernel calls into each clone: a helper left out of line (a template, a lambda)
// is compiled once for the baseline ISA, and the clone would only dispatch to SSE code.
// GCC only: clang 14 refuses target_clones together with flatten (the one clang build, the fuzz targets of
// scripts/fuzz.sh, runs under sanitizers anyway). Not under the sanitizers: the ifunc resolvers run while
// the program is being relocated, before the sanitizer's runtime is up, and ThreadSanitizer's
// instrumentation of them crashes at start-up.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__) && defined(__ELF__)
#define FLOWAD_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), flatten))
#else
#define FLOWAD_SIMD_CLONES
#endif
