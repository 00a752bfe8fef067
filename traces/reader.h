/* reader.h — streaming request-trace reader: one request at a time, memory bounded by a fixed
 * read buffer whatever the file size.
 *
 * Formats (chosen from the header, or from the extension for JSON Lines; ".gz" is read through
 * zlib, which also passes plain files through):
 *   native    kvsim's own CSV (traces/FORMAT.md): arrival_us,prompt_tokens,output_tokens and
 *             optional columns;
 *   azure     Azure LLM inference traces 2023/2024: TIMESTAMP,ContextTokens,GeneratedTokens with
 *             absolute timestamps "YYYY-MM-DD HH:MM:SS.fffffff";
 *   burstgpt  BurstGPT: Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type,
 *             seconds from the start;
 *   mooncake  Mooncake JSON Lines: timestamp (ms), input_length, output_length, hash_ids (ids of
 *             512-token prefix blocks).
 * CSV goes through libcsv, JSON through jansson. CRLF and LF line ends and a UTF-8 byte order
 * mark are accepted; blank lines are not requests and are passed over.
 *
 * Bad input (a missing or extra column, a non-numeric or negative count, a timestamp going
 * backwards, an empty file, truncated gzip, an invalid JSON line, hash_ids inconsistent with
 * input_length) stops the read with one message naming file, line, column or key, and what was
 * expected — unless skip_bad_rows is set, in which case bad rows are counted and skipped, and
 * the first one's message is kept for the report. Errors of the file itself (unreadable, empty,
 * bad header, truncated gzip) are never skipped.
 *
 * Glossary: row = one request record; origin = the time arrivals are measured from (the first
 * row for absolute Azure timestamps, the file's zero otherwise).
 */
#ifndef KV_READER_H
#define KV_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

typedef enum kv_trace_format {
    KV_TRACE_AUTO = 0,
    KV_TRACE_NATIVE,
    KV_TRACE_AZURE,
    KV_TRACE_BURSTGPT,
    KV_TRACE_MOONCAKE,
} kv_trace_format;

/* Optional fields a trace carries (a bit set). */
enum {
    KV_FIELD_SESSION = 1u << 0,
    KV_FIELD_N = 1u << 1,
    KV_FIELD_BEAM = 1u << 2,
    KV_FIELD_PRIORITY = 1u << 3,
    KV_FIELD_PREFIX = 1u << 4, /* prefix_block_tokens and prefix_hashes */
};

/* The most tokens a prompt or an output may have (the allocator's longest sequence): readers
 * refuse larger counts with the file, line and field, so that prompt + output never wraps. */
#define KV_TRACE_MAX_TOKENS (1u << 30)

/* The latest arrival a trace may give, in microseconds (about 146,000 years): readers refuse
 * later ones with the file, line and field, so that no conversion to microseconds overflows. */
#define KV_TRACE_MAX_US (1ll << 62)

typedef struct kv_request {
    int64_t t_arrival_us;         /* microseconds from the trace's origin, never decreasing */
    uint32_t prompt_tokens;       /* >= 1 */
    uint32_t output_tokens;       /* >= 0 (BurstGPT's failed requests have 0) */
    uint32_t n_samples;           /* parallel samples, >= 1 */
    uint32_t beam_width;          /* >= 1 */
    int32_t priority;             /* lower is more urgent; 0 by default */
    uint64_t session_id;          /* 0 = none */
    uint32_t prefix_block_tokens; /* tokens per prefix hash; 0 when there are none */
    uint32_t n_prefix_hashes;
    const uint64_t *prefix_hashes; /* borrowed: valid until the next kv_trace_next */
} kv_request;

typedef struct kv_trace_opts {
    kv_trace_format format; /* KV_TRACE_AUTO to detect */
    bool skip_bad_rows;
} kv_trace_opts;

typedef struct kv_trace kv_trace;

const char *kv_trace_format_name(kv_trace_format f);

/* Open path and read its header. KV_OK with *out set (the caller owns it), or KV_ERR_IO /
 * KV_ERR_INPUT with a message naming the file. */
kv_status kv_trace_open(const char *path, const kv_trace_opts *opts, kv_trace **out, kv_err *err);

/* The next request: KV_OK, KV_EOF at the end, or KV_ERR_INPUT / KV_ERR_IO with a message
 * "file:line: column 'X': expected ..., got ...". After an error, further calls return it. */
kv_status kv_trace_next(kv_trace *t, kv_request *req, kv_err *err);

kv_trace_format kv_trace_format_of(const kv_trace *t);

/* The optional fields this trace's header declares (KV_FIELD_* bits). */
uint32_t kv_trace_fields(const kv_trace *t);

/* Rows read so far (accepted), and rows skipped under skip_bad_rows with the first reason. */
uint64_t kv_trace_rows(const kv_trace *t);
uint64_t kv_trace_skipped(const kv_trace *t);
const char *kv_trace_first_skip(const kv_trace *t);

/* Close; accepts NULL; *t is NULL afterwards. */
void kv_trace_close(kv_trace **t);

#endif
