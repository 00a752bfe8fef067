/* cli.c — option value parsing for kvsim's subcommands. See cli.h. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */

const char *kv_cli_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "kvsim %s: option %s needs a value\n", cmd, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool kv_cli_u64(const char *cmd, const char *opt, const char *s, uint64_t lo, uint64_t hi,
                uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < lo || v > hi) {
        fprintf(stderr, "kvsim %s: option %s: expected an integer in %llu..%llu, got \"%s\"\n", cmd,
                opt, (unsigned long long)lo, (unsigned long long)hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool kv_cli_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                   double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "kvsim %s: option %s: expected a number in [%g, %g], got \"%s\"\n", cmd,
                opt, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool kv_cli_progress(void)
{
    return isatty(2) && !getenv("CI");
}
