/* cli_sweep.c — `kvsim sweep SPEC.ini [-j N] -o OUT.csv`: a grid of replays, one CSV row per
 * point (analysis/sweep.h describes the spec).
 *
 * Local parallelism: N worker processes (fork) take the points i with i mod N = their number
 * and write their rows to a part file each; the parent merges the rows in point order. Under
 * MPI (the binary of `make mpi`, run by mpirun -np N) rank r takes the points i mod N = r and
 * sends its rows to rank 0, which writes them in point order. Every replay is deterministic, so
 * OUT.csv is byte-identical for -j 1, -j N and any number of MPI ranks.
 */
#include "cli_sweep.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef KV_MPI
#include <mpi.h>
#endif

#include "cli.h"
#include "fs.h"
#include "report.h"
#include "run.h"
#include "sweep.h"

/* ------------------------------------------------------------------------------------------ */

enum { ROW_BYTES = 1024 };

static const char header[] =
    "point,label,strategy,size,model,gpu,rate_scale,output_tok_per_s,requests_per_s,"
    "ttft_p50_s,ttft_p99_s,tpot_p50_s,tpot_p99_s,goodput_share,batch_mean,batch_peak,"
    "preemptions,swap_bytes,token_share,reserved_share,internal_frag_share,"
    "external_frag_share,free_share,done,rejected\n";

static void usage(FILE *f)
{
    fprintf(f, "usage: kvsim sweep SPEC.ini [-j N] -o OUT.csv\n"
               "  Replay every point of the grid SPEC.ini describes ([sweep] trace, strategies,\n"
               "  rate_scales, models, gpus, block_tokens, chunk_kib, args) on N local cores,\n"
               "  or over MPI ranks with the `make mpi` binary under mpirun. One row per point,\n"
               "  identical whatever the parallelism.\n");
}

/* Run point i; its row (with a trailing newline) goes to row. Returns the exit code. */
static int run_point(const kv_sweep_spec *s, uint32_t i, const char *tmp, char *row)
{
    static kv_sweep_point p; /* large; one point at a time per process */
    kv_sweep_point_at(s, i, &p);
    size_t dir_bytes = strlen(tmp) + 32;
    char *dir = malloc(dir_bytes);
    if (dir == NULL)
        return KV_EXIT_FAIL;
    snprintf(dir, dir_bytes, "%s/point-%u", tmp, i);
    p.cfg.out_dir = dir;
    p.cfg.report.no_wall_time = true;
    p.cfg.report.timeline_interval_s = 1000000;
    p.cfg.progress = kv_cli_progress();
    kv_summary m;
    kv_err err = {{0}};
    kv_status st = kv_run(&p.cfg, NULL, &m, &err);
    free(dir);
    if (st != KV_OK) {
        fprintf(stderr, "kvsim sweep: point %u (%s at %gx) failed: %s\n", i, p.label,
                p.rate_scale, err.msg);
        return st == KV_ERR_INPUT ? KV_EXIT_USAGE : KV_EXIT_FAIL;
    }
    snprintf(row, ROW_BYTES,
             "%u,%s,%s,%s,%s,%s,%.9g,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.4f,%u,%llu,%llu,%.6f,"
             "%.6f,%.6f,%.6f,%.6f,%llu,%llu\n",
             i, p.label, p.strategy, p.size, p.model, p.gpu, p.rate_scale, m.output_tok_per_s,
             m.requests_per_s, m.ttft_p50_s, m.ttft_p99_s, m.tpot_p50_s, m.tpot_p99_s,
             m.goodput_share, m.batch_mean_seqs, m.batch_peak_seqs,
             (unsigned long long)m.preemptions,
             (unsigned long long)(m.swap_out_bytes + m.swap_in_bytes), m.share_token,
             m.share_reserved, m.share_internal, m.share_external, m.share_free,
             (unsigned long long)m.done, (unsigned long long)m.rejected);
    return 0;
}

static void rm_rf(const char *dir)
{
    kv_err err = {{0}};
    if (kv_fs_remove_tree(dir, &err) != KV_OK)
        fprintf(stderr, "kvsim sweep: %s\n", err.msg);
}

/* Rows of all points, in point order, from the worker part files. */
static int merge_parts(const char *tmp, int n_workers, uint32_t n_points, FILE *out)
{
    char **rows = calloc(n_points, sizeof *rows);
    if (rows == NULL)
        return KV_EXIT_FAIL;
    int rc = KV_EXIT_OK;
    for (int w = 0; w < n_workers && rc == KV_EXIT_OK; w++) {
        char path[700], line[ROW_BYTES];
        snprintf(path, sizeof path, "%s/part-%d.csv", tmp, w);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            rc = KV_EXIT_FAIL;
            break;
        }
        while (fgets(line, sizeof line, f)) {
            unsigned long i = strtoul(line, NULL, 10);
            if (i < n_points && rows[i] == NULL)
                rows[i] = strdup(line);
        }
        fclose(f);
    }
    fputs(header, out);
    for (uint32_t i = 0; i < n_points; i++) {
        if (rows[i] == NULL && rc == KV_EXIT_OK) {
            fprintf(stderr, "kvsim sweep: point %u has no result\n", i);
            rc = KV_EXIT_FAIL;
        }
        if (rows[i])
            fputs(rows[i], out);
        free(rows[i]);
    }
    free(rows);
    return rc;
}

static int sweep_local(const kv_sweep_spec *s, int jobs, const char *tmp, FILE *out)
{
    uint32_t n = kv_sweep_n_points(s);
    if (jobs > (int)n)
        jobs = (int)n;
    pid_t *pids = calloc((size_t)jobs, sizeof *pids);
    if (pids == NULL)
        return KV_EXIT_FAIL;
    fflush(NULL);
    for (int w = 0; w < jobs; w++) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "kvsim sweep: fork: %s\n", strerror(errno));
            jobs = w;
            break;
        }
        if (pid == 0) { /* worker w */
            char path[700], row[ROW_BYTES];
            snprintf(path, sizeof path, "%s/part-%d.csv", tmp, w);
            FILE *f = fopen(path, "w");
            int rc = f ? 0 : KV_EXIT_FAIL;
            for (uint32_t i = (uint32_t)w; i < n && rc == 0; i += (uint32_t)jobs)
                if ((rc = run_point(s, i, tmp, row)) == 0)
                    fputs(row, f);
            if (f && fclose(f) != 0)
                rc = KV_EXIT_FAIL;
            _exit(rc);
        }
        pids[w] = pid;
    }
    int rc = KV_EXIT_OK;
    for (int w = 0; w < jobs; w++) {
        int status = 0;
        if (waitpid(pids[w], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            rc = KV_EXIT_FAIL;
    }
    free(pids);
    return rc == KV_EXIT_OK ? merge_parts(tmp, jobs, n, out) : rc;
}

#ifdef KV_MPI
/* Rank r runs its share; rank 0 gathers every row (tag = point index) and writes them. */
static int sweep_mpi(const kv_sweep_spec *s, const char *tmp, FILE *out, int rank, int size)
{
    uint32_t n = kv_sweep_n_points(s);
    char row[ROW_BYTES];
    int rc = 0;
    if (rank != 0) {
        for (uint32_t i = (uint32_t)rank; i < n; i += (uint32_t)size) {
            if (rc == 0)
                rc = run_point(s, i, tmp, row);
            if (rc != 0)
                snprintf(row, sizeof row, "FAILED\n");
            MPI_Send(row, (int)strlen(row) + 1, MPI_CHAR, 0, (int)i, MPI_COMM_WORLD);
        }
        return rc;
    }
    char **rows = calloc(n, sizeof *rows);
    if (rows == NULL)
        MPI_Abort(MPI_COMM_WORLD, 1);
    for (uint32_t i = 0; i < n; i++) {
        if ((int)(i % (uint32_t)size) == 0) {
            if (rc == 0)
                rc = run_point(s, i, tmp, row);
            if (rc != 0)
                snprintf(row, sizeof row, "FAILED\n");
        } else {
            MPI_Recv(row, ROW_BYTES, MPI_CHAR, (int)(i % (uint32_t)size), (int)i, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
        }
        rows[i] = strdup(row);
    }
    fputs(header, out);
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(rows[i], "FAILED\n") == 0)
            rc = KV_EXIT_FAIL;
        else
            fputs(rows[i], out);
        free(rows[i]);
    }
    free(rows);
    return rc;
}
#endif

int kv_cli_sweep_main(int argc, char **argv)
{
    const char *spec_path = NULL, *out_path = NULL;
    uint64_t jobs = 1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return KV_EXIT_OK;
        } else if (strcmp(argv[i], "-o") == 0) {
            if ((out_path = kv_cli_value("sweep", argc, argv, &i)) == NULL)
                return KV_EXIT_USAGE;
        } else if (strcmp(argv[i], "-j") == 0) {
            if (!(v = kv_cli_value("sweep", argc, argv, &i)) ||
                !kv_cli_u64("sweep", "-j", v, 1, 1024, &jobs))
                return KV_EXIT_USAGE;
        } else if (argv[i][0] != '-' && spec_path == NULL) {
            spec_path = argv[i];
        } else {
            fprintf(stderr, "kvsim sweep: unexpected argument %s\n", argv[i]);
            return KV_EXIT_USAGE;
        }
    }
    if (spec_path == NULL || out_path == NULL) {
        usage(stderr);
        return KV_EXIT_USAGE;
    }
    int rank = 0, size = 1;
#ifdef KV_MPI
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
#endif
    kv_sweep_spec s;
    kv_err err = {{0}};
    if (kv_sweep_load(spec_path, &s, &err) != KV_OK) {
        if (rank == 0)
            fprintf(stderr, "kvsim sweep: %s\n", err.msg);
#ifdef KV_MPI
        MPI_Finalize();
#endif
        return KV_EXIT_USAGE;
    }
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/kvsim-sweep-%d-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid(), rank);
    FILE *out = NULL;
    int rc = KV_EXIT_OK;
    if (kv_fs_mkdirs(tmp, &err) != KV_OK) {
        fprintf(stderr, "kvsim sweep: %s\n", err.msg);
        rc = KV_EXIT_FAIL;
    }
    if (rc == KV_EXIT_OK && rank == 0 && (out = fopen(out_path, "w")) == NULL) {
        fprintf(stderr, "kvsim sweep: %s: cannot create: %s\n", out_path, strerror(errno));
        rc = KV_EXIT_FAIL;
    }
    if (rc == KV_EXIT_OK) {
#ifdef KV_MPI
        rc = size > 1 ? sweep_mpi(&s, tmp, out, rank, size) : sweep_local(&s, (int)jobs, tmp, out);
#else
        rc = sweep_local(&s, (int)jobs, tmp, out);
#endif
    }
    if (out && fclose(out) != 0)
        rc = KV_EXIT_FAIL;
    rm_rf(tmp);
    if (rank == 0 && rc == KV_EXIT_OK)
        fprintf(stderr, "kvsim sweep: %u points (%d %s) -> %s\n", kv_sweep_n_points(&s),
                size > 1 ? size : (int)jobs, size > 1 ? "MPI ranks" : "local workers", out_path);
#ifdef KV_MPI
    MPI_Finalize();
#endif
    return rc;
}
