/*
 * lstm_plan.h -- every strategy decision of one LSTM call, made once before it runs.
 *
 * A plan is made from the problem (shapes, dtype, training or inference, forward or
 * backward) and the settings of the process (threads, a forced split for the tests, the
 * caller's GEMM).  It records what the kernels then only carry out: how many tasks share
 * the time loop and how (by rows or by columns, lstm_core.h, Threads), whether the
 * recurrent products use the packed kernel, how the forward projects its input, how many
 * steps an inference projection covers, whether the backward's weight products run on the
 * loop's tasks, and how much workspace the call needs.  The kernels never re-decide; the
 * tests ask the plan what it chose (lstm_core._testing).  Making a plan reads the CPUs this
 * process may run on (lstm_runner.h) and nothing else: no allocation, no global state.
 */
#ifndef LSTM_PLAN_H
#define LSTM_PLAN_H

#include <stddef.h>

typedef void (*lstm_gemm_f32)(int trans_a, int trans_b, int m, int n, int k, float alpha,
                              const float *a, int lda, const float *b, int ldb, float beta,
                              float *c, int ldc);
typedef void (*lstm_gemm_f64)(int trans_a, int trans_b, int m, int n, int k, double alpha,
                              const double *a, int lda, const double *b, int ldb, double beta,
                              double *c, int ldc);

/* How a time loop is shared between threads (lstm_core.h, Threads). */
typedef enum { LSTM_SPLIT_AUTO = 0, LSTM_SPLIT_ROWS = 1, LSTM_SPLIT_COLUMNS = 2 } lstm_split;

/* How the forward computes its input projection x_t @ w_ih.T:
 *   GEMM    the caller's GEMM over many steps at once (all T in training);
 *   PACKED  the packed kernel over the same steps, w_ih packed too (small products, where
 *           a BLAS call costs more in waking its threads than they save);
 *   MERGED  the packed kernel, each step's projection in one pass with its recurrent
 *           product (split loops, and one thread whose packed weights stay in its cache).
 * The three round differently in the last bits; calls that merge agree bit for bit
 * whatever their thread count. */
typedef enum {
    LSTM_PROJECT_GEMM = 0,
    LSTM_PROJECT_PACKED = 1,
    LSTM_PROJECT_MERGED = 2
} lstm_projection;

/* The process's settings that a plan reads. */
typedef struct {
    int threads;       /* most threads a time loop may use, >= 1 */
    lstm_split split;  /* AUTO, or a way of splitting forced by the tests */
    int oversubscribe; /* allow more tasks than usable CPUs (the tests of 3 tasks on 2 CPUs) */
    lstm_gemm_f32 gemm_f32; /* the caller's row-major GEMM (lstm_core.h, GEMM) */
    lstm_gemm_f64 gemm_f64;
} lstm_settings;

typedef struct {
    /* the problem */
    int gates;     /* the cell: 4 the LSTM (i, f, g, o), 1 the vanilla RNN (lstm_core.h) */
    int T, B, In, H;
    int itemsize;  /* 4: float32, 8: float64 */
    int training;  /* forward: keep the cache; backward: always 1 */
    int backward;  /* a plan of lstm_backward, else of lstm_forward */
    /* the decisions */
    int parts;     /* tasks of the time loop, >= 1 */
    int by_rows;   /* with parts > 1: the tasks share the rows, else the columns */
    int packed;    /* the recurrent products use the packed kernel (w_hh packed) */
    lstm_projection projection; /* forward: how x is projected (GEMM when not packed) */
    int chunk;     /* forward, inference: steps per input projection (1 when merged) */
    int weight_products; /* backward: dx and the weight gradients on the loop's tasks
                            with the packed kernel, else the GEMM after the loop */
    int prepacked; /* forward: the weights come packed (lstm_pack_weights), so the
                      workspace holds no panels */
    int precision; /* forward: the products' operands (lstm_reduced_sizes.h): full, or
                      bfloat16 or int8 from weights packed by lstm_pack_reduced */
    ptrdiff_t operands; /* reduced, mixed: one task's operands of a step (float32 elements) */
    /* the workspace, in elements of the dtype: one buffer the kernels carve up */
    ptrdiff_t w_ih_panels; /* forward: w_ih.T in gate panels (projection != GEMM) */
    ptrdiff_t w_hh_panels; /* w_hh.T in gate panels (forward), w_hh in plain ones (backward) */
    ptrdiff_t work;        /* forward, inference: [chunk,B,G] projection + 2 [B,H] scratch
                              (reduced: + parts * operands); forward, mixed: parts *
                              operands; backward: dz [T,B,G] (GRU, mixed: two; G = gates
                              * H) */
    ptrdiff_t grad_panels; /* backward with weight_products: x, h[0:T] and w_ih packed */
    ptrdiff_t workspace;   /* the sum of the four */
    /* the caller's GEMM */
    lstm_gemm_f32 gemm_f32;
    lstm_gemm_f64 gemm_f64;
} lstm_plan;

/* The plan of lstm_forward (training or inference) of T steps, B rows, In inputs and H
 * hidden units in the dtype of `itemsize`, for the LSTM.  A streaming cell is a one-step
 * inference forward with settings->threads = 1. */
void lstm_plan_forward(lstm_plan *plan, const lstm_settings *settings, int T, int B, int In,
                       int H, int itemsize, int training);

/* The same for the cell of `gates` gate blocks: 4 the LSTM, 1 the vanilla RNN. */
void lstm_plan_forward_cell(lstm_plan *plan, const lstm_settings *settings, int gates, int T,
                            int B, int In, int H, int itemsize, int training);

/* Make a forward's plan use weights packed once by lstm_pack_weights: its workspace then
 * holds no panels. */
void lstm_plan_prepacked(lstm_plan *plan);

/* Make a prepacked inference plan of the LSTM in float32 run its products in a reduced
 * precision (LSTM_BFLOAT16 or LSTM_INT8, lstm_core.h): every step merges its projection
 * into its recurrent product, from weights packed by lstm_pack_reduced. */
void lstm_plan_reduced(lstm_plan *plan, int precision);

/* Make a float32 training plan of the LSTM, forward or backward, run its products with
 * bfloat16 operands and float32 sums (mixed precision; lstm_core/precision.py): the caller
 * gives x and the weights rounded to bfloat16 (and, to the backward, the cache's h); the
 * forward rounds each step's h_{t-1} (one [B,H] buffer per task), the backward each step's
 * dz (a second [T,B,G] buffer, which its products read; dbias sums the unrounded dz). */
void lstm_plan_mixed(lstm_plan *plan);

/* The plan of lstm_backward through a training forward of the same sizes (the LSTM, or the
 * cell of `gates` gate blocks). */
void lstm_plan_backward(lstm_plan *plan, const lstm_settings *settings, int T, int B, int In,
                        int H, int itemsize);
void lstm_plan_backward_cell(lstm_plan *plan, const lstm_settings *settings, int gates, int T,
                             int B, int In, int H, int itemsize);

/* The tasks of a time loop of T steps of step_flops each over B rows and H hidden units
 * whose packed weights take weight_bytes, as many as pay off (1 at least); sets *by_rows
 * when they should share the rows.  The plans' rule, exposed for its own tests. */
int lstm_loop_parts(const lstm_settings *settings, int B, int H, double step_flops, int T,
                    double weight_bytes, int *by_rows);

#endif /* LSTM_PLAN_H */
