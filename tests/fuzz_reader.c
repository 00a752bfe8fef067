/* fuzz_reader.c — libFuzzer target: any bytes through one trace reader must give rows or one
 * clear error, never a crash, a hang, a leak or undefined behaviour.
 *
 * Built four times by `make check`, with FUZZ_FORMAT set to each reader's kv_trace_format, and
 * run for a bounded time on the seed corpus in tests/fuzz/<format>/; inputs that once crashed
 * are kept there too, so every run replays them. The reader takes a path, so each input is
 * written to a file in $TMPDIR first.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reader.h"

#ifndef FUZZ_FORMAT
#define FUZZ_FORMAT KV_TRACE_AUTO
#endif

static char path[256];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (path[0] == '\0') {
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(path, sizeof path, "%s/kvsim-fuzz-%d-%d.trace", tmp, (int)FUZZ_FORMAT,
                 (int)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    for (int skip = 0; skip < 2; skip++) {
        kv_trace_opts o = {.format = FUZZ_FORMAT, .skip_bad_rows = skip};
        kv_trace *t = NULL;
        kv_err err = {{0}};
        kv_status st = kv_trace_open(path, &o, &t, &err);
        if (st != KV_OK) {
            if (err.msg[0] == '\0') /* every failure explains itself */
                abort();
            continue;
        }
        kv_request r;
        int64_t last = -1;
        while ((st = kv_trace_next(t, &r, &err)) == KV_OK) {
            if (r.prompt_tokens == 0 || r.t_arrival_us < last ||
                (r.n_prefix_hashes > 0 && r.prefix_hashes == NULL))
                abort();
            for (uint32_t i = 0; i < r.n_prefix_hashes; i++)
                last += 0 * (int64_t)r.prefix_hashes[i]; /* touch every hash */
            last = r.t_arrival_us;
        }
        if (st != KV_EOF && err.msg[0] == '\0')
            abort();
        kv_trace_close(&t);
    }
    unlink(path);
    return 0;
}
