/*
 * test_lstm.c -- one forward and one backward through the C API, without Python.
 *
 * The fast drivers (lstm_forward_f32/_f64, lstm_backward_f32/_f64), run as their plans say
 * for 1, 2 and 3 threads and both ways of splitting (inference with weights packed once),
 * against the plain float64 path
 * (lstm_plain.c) on a problem with non-zero biases and states and sequences of different
 * lengths.  The GEMM the drivers need is a plain triple loop here.  Exits 0 when every
 * output agrees to the dtype's tolerance, 1 (and says which) otherwise.
 *
 * Build and run: tests/c/run.sh (gcc, the sources of src/, -lpthread -lm).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lstm_core.h"

/* big enough that the plans split the loops 3 ways by columns (96 units: 3 panels) and 2
 * ways by rows (2 blocks of 8 rows) */
enum { T = 30, B = 16, IN = 13, H = 96, G = 4 * H };

/* c[m,n] = alpha op(a) op(b) + beta c, row-major (lstm_core.h, GEMM) */
#define PLAIN_GEMM(name, real)                                                                 \
    static void name(int trans_a, int trans_b, int m, int n, int k, real alpha, const real *a, \
                     int lda, const real *b, int ldb, real beta, real *c, int ldc)            \
    {                                                                                          \
        for (int i = 0; i < m; ++i) {                                                          \
            for (int j = 0; j < n; ++j) {                                                      \
                real sum = 0;                                                                  \
                for (int p = 0; p < k; ++p) {                                                  \
                    sum += (trans_a ? a[p * lda + i] : a[i * lda + p]) *                       \
                           (trans_b ? b[j * ldb + p] : b[p * ldb + j]);                        \
                }                                                                              \
                c[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j]);        \
            }                                                                                  \
        }                                                                                      \
    }
PLAIN_GEMM(gemm_f32, float)
PLAIN_GEMM(gemm_f64, double)

/* The problem, float64: x, w_ih, w_hh, bias, h0, c0, dy, dh_n, dc_n. */
static double x[T * B * IN], w_ih[G * IN], w_hh[G * H], bias[G], h0[B * H], c0[B * H];
static double dy[T * B * H], dh_n[B * H], dc_n[B * H];
static int lengths[B];

static double uniform(unsigned *state, double scale)
{
    *state = *state * 1103515245u + 12345u;
    return scale * ((double)(*state >> 8) / (double)(1u << 24) * 2 - 1);
}

static void fill(double *a, int n, unsigned *state, double scale)
{
    for (int k = 0; k < n; ++k) {
        a[k] = uniform(state, scale);
    }
}

/* The outputs of one run, in float64 whatever the dtype it ran in. */
typedef struct {
    double y[T * B * H], h_n[B * H], c_n[B * H];
    double dx[T * B * IN], dw_ih[G * IN], dw_hh[G * H], dbias[G], dh0[B * H], dc0[B * H];
} outputs;

static int failures = 0;

/* A loop that silently stayed on one thread would test nothing: check the plan's split. */
static void expect_split(const lstm_plan *plan, const lstm_settings *settings)
{
    const int by_rows = settings->split == LSTM_SPLIT_ROWS;
    if (plan->parts != settings->threads || (plan->parts > 1 && plan->by_rows != by_rows)) {
        printf("FAIL: a plan for %d threads chose %d parts (by rows: %d)\n", settings->threads,
               plan->parts, plan->by_rows);
        ++failures;
    }
}

static void compare(const char *what, const char *name, const double *got, const double *want,
                    int n, double tolerance)
{
    double worst = 0;
    for (int k = 0; k < n; ++k) {
        const double error = fabs(got[k] - want[k]) / (1 + fabs(want[k]));
        worst = error > worst || error != error ? error : worst;
    }
    if (!(worst <= tolerance)) {
        printf("FAIL %s: %s differs by %.3g (tolerance %.3g)\n", what, name, worst, tolerance);
        ++failures;
    }
}

static void compare_all(const char *what, const outputs *got, const outputs *want,
                        double tolerance, int inference)
{
    compare(what, "h_n", got->h_n, want->h_n, B * H, tolerance);
    compare(what, "c_n", got->c_n, want->c_n, B * H, tolerance);
    if (inference) {
        return; /* y of an inference call is compared too; no gradients */
    }
    compare(what, "y", got->y, want->y, T * B * H, tolerance);
    compare(what, "dx", got->dx, want->dx, T * B * IN, tolerance);
    compare(what, "dw_ih", got->dw_ih, want->dw_ih, G * IN, tolerance);
    compare(what, "dw_hh", got->dw_hh, want->dw_hh, G * H, tolerance);
    compare(what, "dbias", got->dbias, want->dbias, G, tolerance);
    compare(what, "dh0", got->dh0, want->dh0, B * H, tolerance);
    compare(what, "dc0", got->dc0, want->dc0, B * H, tolerance);
}

static void plain(outputs *out)
{
    static double gates[T * B * G], c[(T + 1) * B * H], tanh_c[T * B * H], h[(T + 1) * B * H];
    static double dz[B * G];
    const lstm_inputs_f64 in = {x, h0, c0, lengths};
    const lstm_weights_f64 w = {w_ih, w_hh, bias, NULL, NULL, NULL, NULL};
    const lstm_outputs_f64 o = {out->y, out->h_n, out->c_n};
    const lstm_cache_f64 cache = {gates, c, tanh_c, h, NULL};
    const lstm_output_grads_f64 d = {dy, dh_n, dc_n};
    const lstm_grads_f64 g = {out->dx, out->dw_ih, out->dw_hh, out->dbias, out->dh0, out->dc0,
                              NULL};
    memset(out->dw_ih, 0, sizeof out->dw_ih);
    memset(out->dw_hh, 0, sizeof out->dw_hh);
    memset(out->dbias, 0, sizeof out->dbias);
    lstm_plain_forward_f64(&in, &w, &o, &cache, T, B, IN, H);
    lstm_plain_backward_f64(&in, &w, &cache, &d, &g, dz, T, B, IN, H);
}

/* A training forward and a backward, then an inference forward, of the fast drivers in
 * one dtype; the arrays of that dtype are converted from and to the float64 problem. */
#define FAST_RUN(name, real, sfx, itemsize)                                                    \
    static void name(outputs *out, outputs *inference, const lstm_settings *settings)         \
    {                                                                                          \
        static real rx[T * B * IN], rw_ih[G * IN], rw_hh[G * H], rbias[G], rh0[B * H];         \
        static real rc0[B * H], rdy[T * B * H], rdh_n[B * H], rdc_n[B * H];                    \
        static real y[T * B * H], h_n[B * H], c_n[B * H], dx[T * B * IN], dw_ih[G * IN];       \
        static real dw_hh[G * H], dbias[G], dh0[B * H], dc0[B * H];                            \
        static real gates[T * B * G], c[(T + 1) * B * H], tanh_c[T * B * H];                   \
        static real h[(T + 1) * B * H];                                                       \
        const struct { real *to; const double *from; int n; } inputs[] = {                    \
            {rx, x, T * B * IN}, {rw_ih, w_ih, G * IN}, {rw_hh, w_hh, G * H},                  \
            {rbias, bias, G}, {rh0, h0, B * H}, {rc0, c0, B * H}, {rdy, dy, T * B * H},        \
            {rdh_n, dh_n, B * H}, {rdc_n, dc_n, B * H}};                                       \
        for (size_t a = 0; a < sizeof inputs / sizeof inputs[0]; ++a) {                        \
            for (int k = 0; k < inputs[a].n; ++k) {                                            \
                inputs[a].to[k] = (real)inputs[a].from[k];                                     \
            }                                                                                  \
        }                                                                                      \
        memset(dw_ih, 0, sizeof dw_ih);                                                        \
        memset(dw_hh, 0, sizeof dw_hh);                                                        \
        memset(dbias, 0, sizeof dbias);                                                        \
        const lstm_inputs_##sfx in = {rx, rh0, rc0, lengths};                                  \
        const lstm_weights_##sfx w = {rw_ih, rw_hh, rbias, NULL, NULL, NULL, NULL};            \
        const lstm_outputs_##sfx o = {y, h_n, c_n};                                            \
        const lstm_cache_##sfx cache = {gates, c, tanh_c, h, NULL};                            \
        const lstm_output_grads_##sfx d = {rdy, rdh_n, rdc_n};                                 \
        const lstm_grads_##sfx g = {dx, dw_ih, dw_hh, dbias, dh0, dc0, NULL};                  \
        lstm_plan plan;                                                                        \
        lstm_plan_forward(&plan, settings, T, B, IN, H, itemsize, 1);                          \
        expect_split(&plan, settings);                                                         \
        real *work = malloc((size_t)plan.workspace * sizeof(real) + 1);                        \
        lstm_forward_##sfx(&plan, &in, &w, &o, &cache, work);                                  \
        free(work);                                                                            \
        lstm_plan_backward(&plan, settings, T, B, IN, H, itemsize);                            \
        expect_split(&plan, settings);                                                         \
        work = malloc((size_t)plan.workspace * sizeof(real) + 1);                              \
        lstm_backward_##sfx(&plan, &in, &w, &cache, &d, &g, work);                             \
        free(work);                                                                            \
        const struct { double *to; const real *from; int n; } results[] = {                   \
            {out->y, y, T * B * H}, {out->h_n, h_n, B * H}, {out->c_n, c_n, B * H},            \
            {out->dx, dx, T * B * IN}, {out->dw_ih, dw_ih, G * IN},                            \
            {out->dw_hh, dw_hh, G * H}, {out->dbias, dbias, G}, {out->dh0, dh0, B * H},        \
            {out->dc0, dc0, B * H}};                                                           \
        for (size_t a = 0; a < sizeof results / sizeof results[0]; ++a) {                      \
            for (int k = 0; k < results[a].n; ++k) {                                           \
                results[a].to[k] = (double)results[a].from[k];                                 \
            }                                                                                  \
        }                                                                                      \
        /* inference, with the weights packed once beforehand */                              \
        const ptrdiff_t ih = lstm_panels_size_##sfx(IN, G, 4);                                 \
        real *panels = malloc((size_t)(ih + lstm_panels_size_##sfx(H, G, 4)) * sizeof(real));   \
        lstm_pack_weights_##sfx(panels, rw_ih, rw_hh, IN, H, 4);                               \
        const lstm_weights_##sfx packed = {rw_ih, rw_hh, rbias, panels, panels + ih,           \
                                           NULL, NULL};                                        \
        lstm_plan_forward(&plan, settings, T, B, IN, H, itemsize, 0);                          \
        lstm_plan_prepacked(&plan);                                                            \
        work = malloc((size_t)plan.workspace * sizeof(real) + 1);                              \
        lstm_forward_##sfx(&plan, &in, &packed, &o, NULL, work);                               \
        free(work);                                                                            \
        free(panels);                                                                          \
        for (int k = 0; k < B * H; ++k) {                                                      \
            inference->h_n[k] = h_n[k];                                                        \
            inference->c_n[k] = c_n[k];                                                        \
        }                                                                                      \
    }
FAST_RUN(fast_f32, float, f32, 4)
FAST_RUN(fast_f64, double, f64, 8)

int main(void)
{
    static outputs want, got, inference;
    unsigned state = 12345u;
    fill(x, T * B * IN, &state, 1.0);
    fill(w_ih, G * IN, &state, 0.3);
    fill(w_hh, G * H, &state, 0.3);
    fill(bias, G, &state, 0.5);
    fill(h0, B * H, &state, 0.5);
    fill(c0, B * H, &state, 0.5);
    fill(dy, T * B * H, &state, 1.0);
    fill(dh_n, B * H, &state, 1.0);
    fill(dc_n, B * H, &state, 1.0);
    for (int b = 0; b < B; ++b) {
        lengths[b] = (b * 5) % (T + 1); /* 0 .. T: empty, partial and full sequences */
    }
    plain(&want);
    const struct { const char *name; int threads; lstm_split split; } runs[] = {
        {"1 thread", 1, LSTM_SPLIT_AUTO},
        {"2 threads by rows", 2, LSTM_SPLIT_ROWS},
        {"3 threads by columns", 3, LSTM_SPLIT_COLUMNS},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; ++r) {
        lstm_settings settings = {runs[r].threads, runs[r].split, 1, gemm_f32, gemm_f64};
        char what[64];
        fast_f64(&got, &inference, &settings);
        snprintf(what, sizeof what, "float64, %s", runs[r].name);
        compare_all(what, &got, &want, 1e-12, 0);
        compare_all(what, &inference, &want, 1e-12, 1);
        fast_f32(&got, &inference, &settings);
        snprintf(what, sizeof what, "float32, %s", runs[r].name);
        compare_all(what, &got, &want, 2e-5, 0);
        compare_all(what, &inference, &want, 2e-5, 1);
    }
    if (failures == 0) {
        printf("ok: the fast drivers agree with the plain path (float32, float64; 1-3 threads)\n");
    }
    return failures == 0 ? 0 : 1;
}
