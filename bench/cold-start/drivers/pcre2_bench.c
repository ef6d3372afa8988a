/* Cold-start corpus: a regex engine. Generates log-like text and runs a set
 * of PCRE2 patterns (Unicode, lookarounds, backreferences, alternations)
 * over it, counting matches and substituting; prints counts and checksums. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pcre2.h"

static unsigned long long rng = 0x13198a2e03707344ull;
static unsigned next_rand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (unsigned)(rng >> 16);
}

int main(int argc, char **argv) {
    int lines = argc > 1 ? atoi(argv[1]) : 20000;
    static const char *lvl[] = {"INFO", "WARN", "ERROR", "DEBUG"};
    static const char *who[] = {"alice", "bob", "carol", "dave", "émile", "zoë", "ünal", "jürgen"};
    size_t cap = (size_t)lines * 128, n = 0;
    char *text = malloc(cap);
    for (int i = 0; i < lines; i++) {
        unsigned r = next_rand();
        n += (size_t)snprintf(text + n, cap - n,
            "2026-%02u-%02u %02u:%02u:%02u [%s] user=%s ip=%u.%u.%u.%u req=/api/v%u/item/%u took %ums %s\n",
            1 + r % 12, 1 + (r >> 4) % 28, (r >> 8) % 24, (r >> 12) % 60, (r >> 18) % 60,
            lvl[next_rand() % 4], who[next_rand() % 8], next_rand() % 256, next_rand() % 256,
            next_rand() % 256, next_rand() % 256, 1 + next_rand() % 3, next_rand() % 100000,
            next_rand() % 5000, next_rand() % 5 == 0 ? "retry retry" : "ok");
    }
    static const char *pats[] = {
        "\\[(ERROR|WARN)\\] user=(\\w+)",
        "(?m)^\\d{4}-(0[1-6])-\\d\\d .*took (\\d{4})ms",
        "\\b(\\d{1,3})\\.(\\d{1,3})\\.\\1\\.\\d{1,3}\\b",
        "(?i)user=[\\p{L}]*[\\x{e9}\\x{eb}\\x{fc}][\\p{L}]*",
        "/api/v(?:1|2)/item/(\\d+)(?= took [0-9]{1,2}ms)",
        "(\\w+) \\1\\n",
        "(?<!\\d)(\\d{2}):(\\d{2}):(\\d{2})(?!\\d)",
        "(?:alice|bob|carol|dave)(?=\\s+ip=1\\d\\d\\.)",
    };
    for (size_t p = 0; p < sizeof pats / sizeof *pats; p++) {
        int err; PCRE2_SIZE eoff;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pats[p], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &eoff, 0);
        if (!re) { fprintf(stderr, "compile error %d at %zu in %s\n", err, (size_t)eoff, pats[p]); return 1; }
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, 0);
        PCRE2_SIZE off = 0;
        long count = 0;
        unsigned long long h = 1469598103934665603ull;
        for (;;) {
            /* the subject is valid UTF-8: check it once, not on every call */
            int rc = pcre2_match(re, (PCRE2_SPTR)text, n, off, off ? PCRE2_NO_UTF_CHECK : 0, md, 0);
            if (rc < 0) break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            count++;
            for (int g = 1; g < rc; g++)
                for (PCRE2_SIZE k = ov[2 * g]; k < ov[2 * g + 1]; k++) h = (h ^ (unsigned char)text[k]) * 1099511628211ull;
            off = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
            if (off > n) break;
        }
        printf("pattern %zu: %ld matches, groups fnv=%016llx\n", p, count, h);
        pcre2_match_data_free(md);
        pcre2_code_free(re);
    }
    /* global substitution */
    int err; PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)"ip=(\\d+)\\.(\\d+)\\.\\d+\\.\\d+", PCRE2_ZERO_TERMINATED, 0, &err, &eoff, 0);
    PCRE2_SIZE outlen = cap;
    PCRE2_UCHAR *out = malloc(cap);
    int rc = pcre2_substitute(re, (PCRE2_SPTR)text, n, 0, PCRE2_SUBSTITUTE_GLOBAL, 0, 0,
                              (PCRE2_SPTR)"ip=$2.$1.x.x", PCRE2_ZERO_TERMINATED, out, &outlen);
    unsigned long long h = 1469598103934665603ull;
    for (PCRE2_SIZE k = 0; k < outlen; k++) h = (h ^ out[k]) * 1099511628211ull;
    printf("substitute: %d replacements, %zu bytes, fnv=%016llx\n", rc, (size_t)outlen, h);
    return 0;
}
