/* writer.h — writes requests in kvsim's native trace format (traces/FORMAT.md).
 *
 * The header lists arrival_us,prompt_tokens,output_tokens and then the optional columns the
 * caller asks for (KV_FIELD_* bits of reader.h), in a fixed order. A path ending in ".gz" is
 * written gzip-compressed. Output is buffered; integers are formatted by hand, since printf
 * would dominate the cost of writing ten million rows.
 */
#ifndef KV_WRITER_H
#define KV_WRITER_H

#include <stdint.h>

#include "reader.h"
#include "status.h"

typedef struct kv_trace_writer kv_trace_writer;

/* Create path and write the header. KV_OK, or KV_ERR_IO naming the file. */
kv_status kv_trace_writer_open(const char *path, uint32_t fields, kv_trace_writer **out,
                               kv_err *err);

/* Append one request (its optional fields as the header declares). KV_OK or KV_ERR_IO. */
kv_status kv_trace_write(kv_trace_writer *w, const kv_request *r, kv_err *err);

/* Flush and close; KV_OK or KV_ERR_IO (a failed flush loses data: report it). Accepts NULL.
 * *w is NULL afterwards. */
kv_status kv_trace_writer_close(kv_trace_writer **w, kv_err *err);

#endif
