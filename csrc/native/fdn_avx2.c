/* AVX2 row kernel: vpmaddubsw (u8 x s8 pairs, saturating int16) then vpmaddwd into int32.
 * Exact when 2 * max input * max |w| <= 32767 (codes); otherwise each input byte is split into
 * its low 7 bits and its top bit (x = lo + 128 * hi), each pair sum then fits int16. */
#include "fdn.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 9
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx2")

static inline __attribute__((always_inline)) __m256i fdn_dot_avx2(__m256i sum, __m256i x, __m256i w, int safe) {
    const __m256i ones = _mm256_set1_epi16(1);
    if (safe) return _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), ones));
    const __m256i low = _mm256_and_si256(x, _mm256_set1_epi8(0x7f));
    const __m256i high = _mm256_and_si256(_mm256_srli_epi16(x, 7), _mm256_set1_epi8(1));
    sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(low, w), ones));
    return _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(high, w), _mm256_set1_epi16(128)));
}

#define FDN_DOT(sum, x, w, safe) fdn_dot_avx2((sum), (x), (w), (safe))
#include "fdn_avx256.h"
#define FDN_ENTRY fdn_conv_avx2
#include "fdn_layer.h"
#pragma GCC pop_options
const int fdn_avx2_compiled = 1;
#else
const int fdn_avx2_compiled = 0;
int fdn_conv_avx2(const fdn_conv_args *a) {
    (void)a;
    return -2; /* not compiled in */
}
#endif
