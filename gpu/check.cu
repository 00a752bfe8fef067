/* check.cu — `kvgpu test`: every kernel against a CPU float64 reference on random data, for
 * every strategy and KV format, at lengths that cross block and chunk boundaries: append, the
 * split-K decode attention (float and bf16 outputs, with a padding query of a decode graph),
 * and the fused causal prefill attention (every sequence's last PF_ROWS positions as one chunk,
 * all chunks in one launch, tiles crossing 128-row boundaries); the small-batch GEMV of the
 * model executor; then every sequence swapped out
 * and back in (per-copy one way, batched the other) over a pool filled with garbage, and
 * attention run again: it must give the same bits.
 *
 * The reference reads the device's raw rows back (one cudaMemcpy per row, addresses computed on
 * the host from the allocator's placement) and decodes them with its own decoders, so it shares
 * no code with the kernels but the address formula of kvgpu.h. */
#include "kvgpu.h"
#include "cuda_check.h"
#include "gpu_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

/* ------------------------------------------------------------------------ CPU decoders --- */

static double fp8_e4m3(unsigned char b)
{
    int s = b >> 7, e = (b >> 3) & 0xf, m = b & 7;
    if (e == 0xf && m == 7)
        return NAN;
    double v = e == 0 ? ldexp(m / 8.0, -6) : ldexp(1 + m / 8.0, e - 7);
    return s ? -v : v;
}

static double half_to_double(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m / 1024.0, -14) : ldexp(1 + m / 1024.0, e - 15);
    return s ? -v : v;
}

/* Element x of a row as stored, and the scale it was stored with (1 without groups). */
static double decode(const kvg_format *f, const unsigned char *row, uint32_t x, double *scale)
{
    double s = 1;
    if (f->group) {
        uint64_t data = f->row_bytes - (uint64_t)f->n_heads * f->head_dim / f->group * f->scale_bytes;
        const unsigned char *p = row + data + (uint64_t)(x / f->group) * f->scale_bytes;
        if (f->scale_bytes == 2) {
            uint16_t h;
            memcpy(&h, p, 2);
            s = half_to_double(h);
        } else {
            float v;
            memcpy(&v, p, 4);
            s = v;
        }
    }
    *scale = s;
    switch (f->dtype) {
    case KVG_BF16: {
        uint16_t b;
        memcpy(&b, row + 2 * x, 2);
        return bf16_to_float(b);
    }
    case KVG_FP8: return fp8_e4m3(row[x]) * s;
    case KVG_INT8: return (signed char)row[x] * s;
    case KVG_INT4: {
        int q = (row[x / 2] >> (4 * (x % 2))) & 0xf;
        return (q >= 8 ? q - 16 : q) * s;
    }
    }
    return NAN;
}

/* ------------------------------------------------------------------------------ cases --- */

typedef struct test_case {
    const char *name;
    kv_strategy strategy;
    kvg_dtype dtype;
    uint32_t layers, kv_heads, q_per_kv;
    uint32_t block_tokens, group, scale_bytes;
    kv_reserve reserve;
    kv_chunk_layout layout;
} test_case;

static const test_case CASES[] = {
    {"contiguous-max bf16", KV_CONTIGUOUS, KVG_BF16, 2, 2, 4, 0, 0, 0, KV_RESERVE_MAX, KV_CHUNK_PER_LAYER},
    {"contiguous-oracle bf16 MHA", KV_CONTIGUOUS, KVG_BF16, 2, 4, 1, 0, 0, 0, KV_RESERVE_ORACLE, KV_CHUNK_PER_LAYER},
    {"paged-16 bf16", KV_PAGED, KVG_BF16, 2, 2, 4, 16, 0, 0, KV_RESERVE_MAX, KV_CHUNK_PER_LAYER},
    {"paged-5 bf16 GQA-8", KV_PAGED, KVG_BF16, 1, 1, 8, 5, 0, 0, KV_RESERVE_MAX, KV_CHUNK_PER_LAYER},
    {"paged-16 bf16 GQA-2", KV_PAGED, KVG_BF16, 2, 4, 2, 16, 0, 0, KV_RESERVE_MAX, KV_CHUNK_PER_LAYER},
    {"chunk-pool per-layer bf16", KV_CHUNK_POOL, KVG_BF16, 2, 2, 4, 0, 0, 0, KV_RESERVE_MAX, KV_CHUNK_PER_LAYER},
    {"chunk-pool fused bf16", KV_CHUNK_POOL, KVG_BF16, 2, 2, 4, 0, 0, 0, KV_RESERVE_MAX, KV_CHUNK_FUSED},
    {"compressed fp8", KV_COMPRESSED, KVG_FP8, 2, 2, 4, 16, 0, 0, KV_RESERVE_MAX, KV_CHUNK_PER_LAYER},
    {"compressed fp8 g32", KV_COMPRESSED, KVG_FP8, 2, 2, 4, 16, 32, 2, KV_RESERVE_MAX, KV_CHUNK_PER_LAYER},
    {"compressed int8 g32", KV_COMPRESSED, KVG_INT8, 2, 2, 4, 16, 32, 2, KV_RESERVE_MAX, KV_CHUNK_PER_LAYER},
    {"compressed int8 g64 f32", KV_COMPRESSED, KVG_INT8, 2, 2, 4, 16, 64, 4, KV_RESERVE_MAX, KV_CHUNK_PER_LAYER},
    {"compressed int4 g32", KV_COMPRESSED, KVG_INT4, 2, 2, 4, 32, 32, 2, KV_RESERVE_MAX, KV_CHUNK_PER_LAYER},
};

/* Lengths around block (5, 16, 32) and chunk (1024 fused, 4096 per-layer) boundaries. */
static const uint32_t LENGTHS[] = {1, 2, 5, 16, 17, 33, 100, 1023, 1025, 2049, 4097};
enum { N_SEQ = sizeof LENGTHS / sizeof LENGTHS[0], MAX_TOKENS = 4608, PREFILL_Q = 37, PF_ROWS = 130 };

typedef struct seq_state {
    kv_seq_id id;
    uint32_t n;
    std::vector<float> kv; /* [token][tensor][elems]: the values written, as bf16 floats */
} seq_state;

static kv_alloc_config case_config(const test_case *c)
{
    kv_shape sh = kv_shape_dense(c->layers, c->kv_heads, 128);
    kv_alloc_config ac;
    kv_alloc_config_default(&ac, c->strategy, &sh, 256ull << 20);
    ac.watermark = 0;
    ac.max_seqs = 32;
    ac.max_seq_tokens = MAX_TOKENS;
    ac.host_pool_bytes = 1ull << 30;
    ac.contiguous.reserve = c->reserve;
    ac.chunk.layout = c->layout;
    ac.paged.prefix_caching = false;
    if (c->block_tokens)
        ac.paged.block_tokens = c->block_tokens;
    if (c->strategy == KV_COMPRESSED) {
        ac.compressed.elem_bits = c->dtype == KVG_INT4 ? 4 : 8;
        ac.compressed.scale_group_elems = c->group;
        ac.compressed.scale_bytes = c->scale_bytes;
    }
    return ac;
}

/* Read every row of a sequence back to the host and decode it: [token][tensor][elems]. */
static kv_status read_back(const kv_alloc *a, kvg_pool *p, const kvg_format *f, uint32_t n_tensors,
                           const seq_state *s, std::vector<double> *vals, std::vector<double> *scales,
                           kv_err *err)
{
    kvg_seqdesc d;
    kv_status st = kvg_pool_sync(p, a, s->id, &d, err);
    if (st != KV_OK)
        return st;
    kv_placement pl;
    kv_alloc_placement(a, s->id, &pl);
    d.table = pl.kind == KV_PLACE_BLOCKS ? pl.block_table : NULL; /* host copy for the formula */
    uint32_t elems = f->n_heads * f->head_dim;
    std::vector<unsigned char> row(f->row_bytes);
    vals->assign((size_t)s->n * n_tensors * elems, 0);
    scales->assign(vals->size(), 1);
    for (uint32_t t = 0; t < s->n; t++)
        for (uint32_t j = 0; j < n_tensors; j++) {
            CUDA_TRY(cudaMemcpy(row.data(), (void *)kvg_row(&d, t, j), f->row_bytes,
                                cudaMemcpyDeviceToHost));
            for (uint32_t x = 0; x < elems; x++) {
                size_t k = ((size_t)t * n_tensors + j) * elems + x;
                (*vals)[k] = decode(f, row.data(), x, &(*scales)[k]);
            }
        }
    return KV_OK;
}

/* Attention of one query head over tokens 0..pos of layer, in float64. */
static void ref_attention(const std::vector<double> &kv, uint32_t n_tensors, uint32_t elems,
                          uint32_t layer, uint32_t kvh, uint32_t pos, const float *q, double *out)
{
    std::vector<double> sc(pos + 1);
    double mx = -INFINITY;
    for (uint32_t t = 0; t <= pos; t++) {
        const double *k = &kv[((size_t)t * n_tensors + 2 * layer) * elems + kvh * 128];
        double s = 0;
        for (int i = 0; i < 128; i++)
            s += (double)q[i] * k[i];
        sc[t] = s / sqrt(128.0);
        mx = fmax(mx, sc[t]);
    }
    double l = 0;
    for (uint32_t t = 0; t <= pos; t++)
        l += sc[t] = exp(sc[t] - mx);
    for (int i = 0; i < 128; i++)
        out[i] = 0;
    for (uint32_t t = 0; t <= pos; t++) {
        const double *v = &kv[((size_t)t * n_tensors + 2 * layer + 1) * elems + kvh * 128];
        for (int i = 0; i < 128; i++)
            out[i] += sc[t] / l * v[i];
    }
}

static int failures;

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("  FAIL %s:%d: ", __FILE__, __LINE__);                                          \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* Queries (decode at every sequence's last token, prefill over the last PREFILL_Q positions
 * of every sequence), run on the device; outputs in out. */
typedef struct queries {
    std::vector<uint32_t> seq, pos;
    std::vector<uint16_t> q;
    std::vector<float> out;
} queries;

static kv_status run_attention(const kvg_format *f, uint32_t n_qh, uint32_t layer,
                               const kvg_seqdesc *descs_d, queries *Q, kv_err *err)
{
    uint32_t nq = (uint32_t)Q->seq.size();
    dev_buf<uint32_t> qs(Q->seq), qp(Q->pos);
    dev_buf<uint16_t> qv(Q->q);
    dev_buf<float> out((size_t)nq * n_qh * 128);
    dev_buf<char> work(kvg_attention_work_bytes(f, n_qh, nq, MAX_TOKENS));
    kv_status st = kvg_attention(f, n_qh, layer, descs_d, qs.p, qp.p, nq, MAX_TOKENS, qv.p, out.p,
                                 work.p, err);
    if (st == KV_OK)
        st = cuda_sync(err, "attention");
    if (st == KV_OK)
        st = out.get(&Q->out, err);
    return st;
}

/* Decode queries once more with one padding query (KVG_NO_SEQ) appended, with float and with
 * bf16 output: the bf16 rows must be the float rows rounded, the padding row zeros in both.
 * (The split count depends on the number of queries, so the float run is repeated here.) */
static kv_status check_bf16_and_padding(const test_case *c, const kvg_format *f, uint32_t n_qh,
                                        uint32_t layer, const kvg_seqdesc *descs_d,
                                        const queries *Q, kv_err *err)
{
    std::vector<uint32_t> seq(Q->seq), pos(Q->pos);
    std::vector<uint16_t> q(Q->q);
    seq.push_back(KVG_NO_SEQ);
    pos.push_back(3);
    q.resize(q.size() + (size_t)n_qh * 128, float_to_bf16(1.0f));
    uint32_t nq = (uint32_t)seq.size();
    dev_buf<uint32_t> qs(seq), qp(pos);
    dev_buf<uint16_t> qv(q), out((size_t)nq * n_qh * 128);
    dev_buf<float> outf(out.n);
    dev_buf<char> work(kvg_attention_work_bytes(f, n_qh, nq, MAX_TOKENS));
    CUDA_TRY(cudaMemset(out.p, 0x7f, out.n * 2)); /* poison */
    CUDA_TRY(cudaMemset(outf.p, 0x7f, outf.n * 4));
    kv_status st = kvg_attention_on(f, n_qh, layer, descs_d, qs.p, qp.p, nq, MAX_TOKENS, qv.p,
                                    outf.p, NULL, work.p, 0, err);
    if (st == KV_OK)
        st = kvg_attention_on(f, n_qh, layer, descs_d, qs.p, qp.p, nq, MAX_TOKENS, qv.p, NULL,
                              out.p, work.p, 0, err);
    if (st == KV_OK)
        st = cuda_sync(err, "attention (bf16 out)");
    std::vector<uint16_t> o;
    std::vector<float> of;
    if (st == KV_OK)
        st = out.get(&o, err);
    if (st == KV_OK)
        st = outf.get(&of, err);
    if (st != KV_OK)
        return st;
    size_t n_real = Q->out.size(), bad = 0;
    for (size_t k = 0; k < o.size(); k++)
        bad += o[k] != float_to_bf16(of[k]) || (k >= n_real && of[k] != 0);
    EXPECT(bad == 0, "%s: layer %u: %zu bf16 outputs differ from the rounded float ones or a "
                     "padding query's zeros", c->name, layer, bad);
    return KV_OK;
}

/* The fused prefill attention: every sequence's last PF_ROWS positions (all of a shorter one)
 * as one chunk, every chunk in one launch, against the float64 reference over the stored KV.
 * Rows of other chunks interleave in q and out (row0 offsets); outputs are bf16 and P enters
 * the P V product in bf16, so the bound is 1e-2 (relative L2 per query head). */
static kv_status check_prefill(const test_case *c, const kvg_format *f, uint32_t n_qh,
                               uint32_t nt, uint32_t layer, const kvg_seqdesc *descs_d,
                               const std::vector<seq_state> &seqs,
                               const std::vector<std::vector<double>> &stored, rng *r,
                               double *worst_out, kv_err *err)
{
    std::vector<kvg_prefill_chunk> chunks;
    uint32_t rows = 0;
    for (uint32_t i = 0; i < N_SEQ; i++) {
        uint32_t n = seqs[i].n, from = n > PF_ROWS ? n - PF_ROWS : 0;
        chunks.push_back({i, rows, from, n - from});
        rows += n - from;
    }
    uint64_t stride = (uint64_t)n_qh * 128;
    std::vector<uint16_t> q((size_t)rows * stride);
    for (auto &x : q)
        x = float_to_bf16(rng_normal(r));
    std::vector<kvg_prefill_tile> tiles(kvg_prefill_max_tiles(rows, N_SEQ));
    uint32_t n_tiles = kvg_prefill_tiles(chunks.data(), N_SEQ, tiles.data());
    tiles.resize(n_tiles);
    dev_buf<kvg_prefill_tile> td(tiles);
    dev_buf<uint16_t> qd(q), out(q.size());
    CUDA_TRY(cudaMemset(out.p, 0xff, out.n * 2)); /* poison: NaN bf16 */
    kv_status st = kvg_prefill_attention(f, n_qh, layer, descs_d, td.p, n_tiles, qd.p, stride,
                                         out.p, stride, 0, err);
    if (st == KV_OK)
        st = cuda_sync(err, "prefill attention");
    std::vector<uint16_t> o;
    if (st == KV_OK)
        st = out.get(&o, err);
    if (st != KV_OK)
        return st;
    uint32_t elems = f->n_heads * 128;
    double worst = 0, ref[128];
    for (const kvg_prefill_chunk &ch : chunks)
        for (uint32_t k = 0; k < ch.n; k++)
            for (uint32_t qh = 0; qh < n_qh; qh++) {
                size_t base = (size_t)(ch.row0 + k) * stride + qh * 128;
                float qf[128];
                for (int x = 0; x < 128; x++)
                    qf[x] = bf16_to_float(q[base + x]);
                ref_attention(stored[ch.seq], nt, elems, layer, qh / c->q_per_kv, ch.first + k, qf,
                              ref);
                double num = 0, den = 0;
                for (int x = 0; x < 128; x++) {
                    double d = bf16_to_float(o[base + x]) - ref[x];
                    num += d * d;
                    den += ref[x] * ref[x];
                }
                double e = sqrt(num / den);
                worst = fmax(worst, isnan(e) ? INFINITY : e);
            }
    EXPECT(worst < 1e-2, "%s: layer %u: prefill attention error %.3g against the float64 "
                         "reference of the stored KV", c->name, layer, worst);
    *worst_out = fmax(*worst_out, worst);
    return KV_OK;
}

static kv_status run_case(const test_case *c, rng *r, kv_err *err)
{
    kv_alloc_config ac = case_config(c);
    kv_alloc *a = NULL;
    kv_status st = kv_alloc_create(&ac, &a, err);
    if (st != KV_OK)
        return st;
    kvg_format f;
    if ((st = kvg_format_of(&ac, c->dtype, &f, err)) != KV_OK)
        return st;
    kvg_pool *p = NULL;
    if ((st = kvg_pool_create(a, &p, err)) != KV_OK)
        return st;
    uint32_t nt = kv_shape_n_tensors(&ac.shape), elems = f.n_heads * 128;
    uint32_t n_qh = f.n_heads * c->q_per_kv;
    std::vector<seq_state> seqs(N_SEQ);
    std::vector<kvg_seqdesc> descs(N_SEQ);

    /* admit n - 1 tokens and write them as a prefill; then one decode append each */
    for (int phase = 0; phase < 2 && st == KV_OK; phase++) {
        std::vector<uint32_t> sq, ps;
        std::vector<uint16_t> src;
        for (uint32_t i = 0; i < N_SEQ && st == KV_OK; i++) {
            seq_state *s = &seqs[i];
            uint32_t from = phase == 0 ? 0 : LENGTHS[i] - 1;
            uint32_t to = phase == 0 ? LENGTHS[i] - 1 : LENGTHS[i];
            if (phase == 0) {
                s->n = 0;
                if (to == 0) { /* a one-token sequence is admitted with its one token */
                    to = 1;
                }
                kv_admit_req req = {to, LENGTHS[i] + 8, NULL, 0};
                if ((st = kv_alloc_admit(a, &req, &s->id, NULL)) != KV_OK) {
                    kv_errorf(err, st, "%s: admit of %u tokens: %s", c->name, to,
                              kv_status_str(st));
                    break;
                }
            } else {
                if (s->n == LENGTHS[i])
                    continue;
                if ((st = kv_alloc_append(a, s->id, 1)) != KV_OK) {
                    kv_errorf(err, st, "%s: append: %s", c->name, kv_status_str(st));
                    break;
                }
            }
            if ((st = kv_alloc_check(a, err)) != KV_OK)
                break;
            for (uint32_t t = from; t < to; t++) {
                sq.push_back(i);
                ps.push_back(t);
                for (uint32_t k = 0; k < nt * elems; k++) {
                    uint16_t b = float_to_bf16(rng_normal(r));
                    src.push_back(b);
                    s->kv.push_back(bf16_to_float(b));
                }
            }
            s->n = to;
        }
        for (uint32_t i = 0; i < N_SEQ && st == KV_OK; i++)
            st = kvg_pool_sync(p, a, seqs[i].id, &descs[i], err);
        if (st != KV_OK)
            break;
        dev_buf<kvg_seqdesc> dd(descs);
        dev_buf<uint32_t> sqd(sq), psd(ps);
        dev_buf<uint16_t> srcd(src);
        st = kvg_append(&f, nt, dd.p, sqd.p, psd.p, (uint32_t)sq.size(), srcd.p, err);
        if (st == KV_OK)
            st = cuda_sync(err, "append");
    }
    if (st != KV_OK)
        return st;

    /* stored values against the written ones, within the format's rounding */
    std::vector<std::vector<double>> stored(N_SEQ);
    double worst_q = 0;
    for (uint32_t i = 0; i < N_SEQ && st == KV_OK; i++) {
        std::vector<double> sc;
        st = read_back(a, p, &f, nt, &seqs[i], &stored[i], &sc, err);
        for (size_t k = 0; st == KV_OK && k < stored[i].size(); k++) {
            double x = seqs[i].kv[k], y = stored[i][k], bound;
            switch (f.dtype) {
            case KVG_BF16: bound = 0; break;
            case KVG_FP8: bound = fabs(x) / 16 + sc[k] * ldexp(1, -10); break;
            default: bound = sc[k] * (0.5 + 1e-4); break; /* x / s rounds in float */
            }
            worst_q = fmax(worst_q, fabs(x - y));
            if (!(fabs(x - y) <= bound)) {
                EXPECT(false, "%s: seq %u elem %zu stored %g for %g (bound %g)", c->name, i, k, y,
                       x, bound);
                break;
            }
        }
    }
    if (st != KV_OK)
        return st;

    /* attention: decode at the last token, prefill over the last PREFILL_Q positions */
    queries Q;
    for (uint32_t i = 0; i < N_SEQ; i++) {
        uint32_t n = seqs[i].n, from = n > PREFILL_Q ? n - PREFILL_Q : 0;
        for (uint32_t pos = i % 2 ? from : n - 1; pos < n; pos++) {
            Q.seq.push_back(i);
            Q.pos.push_back(pos);
            for (uint32_t k = 0; k < n_qh * 128; k++)
                Q.q.push_back(float_to_bf16(rng_normal(r)));
        }
    }
    double worst = 0, worst_vs_written = 0, worst_pf = 0;
    std::vector<float> before[2];
    std::vector<std::vector<double>> written(N_SEQ);
    for (uint32_t i = 0; i < N_SEQ; i++)
        written[i].assign(seqs[i].kv.begin(), seqs[i].kv.end());
    for (uint32_t layer = 0; layer < c->layers && st == KV_OK; layer++) {
        dev_buf<kvg_seqdesc> dd(descs);
        if ((st = run_attention(&f, n_qh, layer, dd.p, &Q, err)) != KV_OK)
            break;
        before[layer % 2] = Q.out;
        if ((st = check_bf16_and_padding(c, &f, n_qh, layer, dd.p, &Q, err)) != KV_OK)
            break;
        if (layer == c->layers - 1 &&
            (st = check_prefill(c, &f, n_qh, nt, layer, dd.p, seqs, stored, r, &worst_pf, err)) !=
                KV_OK)
            break;
        double ref[128], ref2[128];
        for (size_t qi = 0; qi < Q.seq.size(); qi++) {
            uint32_t i = Q.seq[qi];
            for (uint32_t qh = 0; qh < n_qh; qh++) {
                float qf[128];
                for (int x = 0; x < 128; x++)
                    qf[x] = bf16_to_float(Q.q[(qi * n_qh + qh) * 128 + x]);
                ref_attention(stored[i], nt, elems, layer, qh / c->q_per_kv, Q.pos[qi], qf, ref);
                ref_attention(written[i], nt, elems, layer, qh / c->q_per_kv, Q.pos[qi], qf, ref2);
                const float *o = &Q.out[(qi * n_qh + qh) * 128];
                double num = 0, den = 0, num2 = 0;
                for (int x = 0; x < 128; x++) {
                    num += (o[x] - ref[x]) * (o[x] - ref[x]);
                    num2 += (o[x] - ref2[x]) * (o[x] - ref2[x]);
                    den += ref[x] * ref[x];
                }
                double e = sqrt(num / den), e2 = sqrt(num2 / den);
                worst = fmax(worst, isnan(e) ? INFINITY : e);
                worst_vs_written = fmax(worst_vs_written, e2);
            }
        }
    }
    EXPECT(worst < 1e-4, "%s: attention error %.3g against the float64 reference of the stored KV",
           c->name, worst);

    /* swap every sequence out (per-copy for even ones, batched for odd ones) and back in the
     * other way, over a device whose rows were overwritten with garbage meanwhile */
    kvg_swapper *sw = NULL;
    uint64_t host_bytes = 0;
    std::vector<uint64_t> host_off(N_SEQ), host_len(N_SEQ);
    for (uint32_t i = 0; i < N_SEQ; i++) {
        kvg_seqdesc h;
        host_off[i] = host_bytes;
        host_len[i] = kvg_host_desc(a, seqs[i].id, 0, &h);
        host_bytes += (host_len[i] + 255) / 256 * 256;
    }
    pinned_buf host(host_bytes);
    if (st == KV_OK)
        st = kvg_swapper_create(64ull << 20, &sw, err);
    if (st == KV_OK)
        st = host.alloc(err);
    uint64_t swapped = 0, copies = 0;
    for (int dir = 0; dir < 2 && st == KV_OK; dir++) {
        for (uint32_t i = 0; i < N_SEQ && st == KV_OK; i++) {
            kv_swap_stats ss;
            if (dir == 1) {
                if ((st = kv_alloc_swap_in(a, seqs[i].id, &ss)) != KV_OK)
                    break;
                if ((st = kvg_pool_sync(p, a, seqs[i].id, &descs[i], err)) != KV_OK)
                    break;
                if ((st = fill_garbage(&descs[i], nt, f.row_bytes, err)) != KV_OK)
                    break;
            }
            kv_placement pl;
            kv_alloc_placement(a, seqs[i].id, &pl);
            kvg_seqdesc h;
            kvg_host_desc(a, seqs[i].id, (uint64_t)(uintptr_t)host.p + host_off[i], &h);
            kvg_swap_mode mode = (i + dir) % 2 ? KVG_SWAP_BATCHED : KVG_SWAP_PER_COPY;
            kvg_swap_result res;
            st = kvg_swap(sw, mode, dir == 0, &descs[i],
                          pl.kind == KV_PLACE_BLOCKS ? pl.block_table : NULL, &h, nt, f.row_bytes,
                          &res, err);
            swapped += res.bytes;
            copies += res.copies;
            if (st == KV_OK && dir == 0) {
                if ((st = kv_alloc_swap_out(a, seqs[i].id, &ss)) == KV_OK)
                    st = kvg_pool_release(p, seqs[i].id, err);
            }
            if (st == KV_OK)
                st = kv_alloc_check(a, err);
        }
        if (st == KV_OK && dir == 0 && kvg_pool_arena(p))
            CUDA_TRY(cudaMemset((void *)kvg_pool_arena(p), 0x5a, ac.pool_bytes));
    }
    for (uint32_t layer = 0; layer < c->layers && st == KV_OK; layer++) {
        dev_buf<kvg_seqdesc> dd(descs);
        if ((st = run_attention(&f, n_qh, layer, dd.p, &Q, err)) != KV_OK)
            break;
        EXPECT(Q.out == before[layer % 2], "%s: layer %u: attention after the swap round trip differs",
               c->name, layer);
    }
    if (st == KV_OK)
        printf("  ok   %-28s %zu queries, attention error %.1e (vs written values %.1e), "
               "prefill (fused, bf16 out) %.1e, max quantization error %.3g, swap round trip "
               "%.1f MiB in %llu copies\n",
               c->name, Q.seq.size(), worst, worst_vs_written, worst_pf, worst_q,
               swapped / 1048576.0, (unsigned long long)copies);
    kvg_swapper_destroy(&sw);
    kvg_pool_destroy(&p);
    kv_alloc_destroy(&a);
    return st;
}

/* kvg_gemv_bf16 (the executor's small-batch linear layer) against a float64 reference, for
 * 1..KVG_GEMV_MAX_M rows, a row count that is not a multiple of the block's 8 rows, with and
 * without accumulation into the output; bf16 output, so the bound is 1e-2 (relative L2). */
static kv_status check_gemv(rng *r, kv_err *err)
{
    const uint32_t n = 203, k = 1032;
    double worst = 0;
    for (uint32_t m = 1; m <= KVG_GEMV_MAX_M; m++)
        for (int acc = 0; acc < 2; acc++) {
            std::vector<uint16_t> x((size_t)m * k), w((size_t)n * k), y0((size_t)m * n);
            for (auto &v : x)
                v = float_to_bf16(rng_normal(r));
            for (auto &v : w)
                v = float_to_bf16(rng_normal(r) * 0.03f);
            for (auto &v : y0)
                v = float_to_bf16(acc ? rng_normal(r) : 1e30f); /* poison when overwritten */
            dev_buf<uint16_t> xd(x), wd(w), yd(y0);
            kv_status st = kvg_gemv_bf16(xd.p, wd.p, yd.p, m, n, k, acc != 0, 0, err);
            if (st == KV_OK)
                st = cuda_sync(err, "gemv");
            std::vector<uint16_t> y;
            if (st == KV_OK)
                st = yd.get(&y, err);
            if (st != KV_OK)
                return st;
            double num = 0, den = 0;
            for (uint32_t i = 0; i < m; i++)
                for (uint32_t j = 0; j < n; j++) {
                    double ref = acc ? bf16_to_float(y0[(size_t)i * n + j]) : 0;
                    for (uint32_t t = 0; t < k; t++)
                        ref += (double)bf16_to_float(x[(size_t)i * k + t]) *
                               bf16_to_float(w[(size_t)j * k + t]);
                    double d = bf16_to_float(y[(size_t)i * n + j]) - ref;
                    num += d * d;
                    den += ref * ref;
                }
            double e = sqrt(num / den);
            worst = fmax(worst, isnan(e) ? INFINITY : e);
        }
    EXPECT(worst < 1e-2, "gemv: error %.3g against the float64 reference", worst);
    printf("  ok   %-28s rows 1..%d, %u x %u weights, with and without accumulation, error %.1e\n",
           "gemv (small-batch linear)", KVG_GEMV_MAX_M, n, k, worst);
    return KV_OK;
}

int kvgpu_check_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("kvgpu test: skipped: no CUDA device\n");
        return 0;
    }
    rng r = {0x6b766770u};
    kv_err err = {{0}};
    printf("kvgpu test: %zu cases, lengths 1..4097 crossing blocks and chunks, random data\n",
           sizeof CASES / sizeof CASES[0]);
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        memset(&err, 0, sizeof err);
        kv_status st = run_case(&CASES[i], &r, &err);
        if (st != KV_OK) {
            failures++;
            printf("  FAIL %s: %s\n", CASES[i].name, err.msg);
        }
    }
    memset(&err, 0, sizeof err);
    if (check_gemv(&r, &err) != KV_OK) {
        failures++;
        printf("  FAIL gemv: %s\n", err.msg);
    }
    printf("kvgpu test: %d failure%s\n", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
