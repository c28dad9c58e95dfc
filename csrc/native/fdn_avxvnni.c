/* AVX-VNNI (VEX-encoded vpdpbusd on 256-bit registers) row kernel. */
#include "fdn.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 11
#pragma GCC push_options
#pragma GCC target("avx2,avxvnni")
#define FDN_DOT(sum, x, w, safe) _mm256_dpbusd_avx_epi32((sum), (x), (w))
#include "fdn_avx256.h"
#define FDN_ENTRY fdn_conv_avxvnni
#include "fdn_layer.h"
#pragma GCC pop_options
const int fdn_avxvnni_compiled = 1;
#else
const int fdn_avxvnni_compiled = 0;
int fdn_conv_avxvnni(const fdn_conv_args *a) {
    (void)a;
    return -2; /* not compiled in */
}
#endif
