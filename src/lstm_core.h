/*
 * lstm_core.h -- the contract of lstm_core's C kernels.
 *
 * NOTES
 *
 * Dimensions.  T time steps, B batch rows, I input size, H hidden size, G = 4H gate rows.
 *   Every array is dense and row-major (C order): the rightmost index is contiguous.
 *   In code I is spelled In: numpy's headers pull in complex.h, which defines the macro I.
 *   Sizes are int because the BLAS takes int; the caller guarantees that every GEMM
 *   dimension (T*B, G, I, H) fits in an int.  Offsets are computed in ptrdiff_t.
 *
 * Gate order along the G axis: i, f, g, o (input, forget, cell candidate, output).
 *     z   = x_t w_ih^T + h_{t-1} w_hh^T + bias            [B,G]
 *     i = sigma(z_i)  f = sigma(z_f)  g = tanh(z_g)  o = sigma(z_o)
 *     c_t = f * c_{t-1} + i * g
 *     h_t = o * tanh(c_t)
 *   Weights are in PyTorch's layout: w_ih [G,I], w_hh [G,H]; bias [G] is b_ih + b_hh.
 *
 * Memory.  Every buffer comes from the caller; no function here allocates, fails or reports
 *   an error.  The caller (the Cython boundary) has validated shapes and pointers; the kernels
 *   only assert() (debug builds).  A pointer may be NULL only where its line says so.
 *
 * Overwrite versus accumulate.  Outputs are overwritten, except the weight gradients
 *   dw_ih, dw_hh and dbias, which are ACCUMULATED (+=): the caller zeroes them first, or
 *   keeps adding over several sequences.
 *
 * Aliasing.  Only the pairs named "may alias" below may share memory; all other buffers
 *   are distinct and non-overlapping (the row kernels are declared restrict so that the
 *   compiler vectorises them: "in/out" buffers are updated in place instead of aliased).
 *
 * GEMM.  The matrix products that do not use the built-in kernels (the packed one, see
 *   Packed recurrent products, and for one row times weights given as they are, the matvec
 *   of lstm_matvec.inc, whose bits are the same in every dispatch clone) go through a
 *   caller-provided row-major GEMM (in lstm_core it wraps scipy.linalg.cython_blas):
 *     c[m,n] = alpha * op(a) @ op(b) + beta * c,   op(a) = a^T if trans_a else a
 *   with leading dimensions lda, ldb, ldc in elements.  It must accept zero sizes, and
 *   beta == 0 must ignore the previous content of c (NaN included).  The drivers call it
 *   from the thread they run on; it must be safe to call from several threads at once.
 *
 * Precision.  float32 (_f32) and float64 (_f64) are generated from one source; the
 *   activations are accurate to a few ulps of the dtype for every finite input and
 *   saturate to exactly 0 / +-1 without overflow (lstm_activations.h).
 *
 * Threads.  No global or static mutable state: concurrent calls on distinct outputs are safe.
 *   A driver may also share its own time loop between `parts` tasks, one per thread, in one
 *   of two ways:
 *   - by columns: the tasks meet at a barrier once per step.  Each computes its share of the
 *     panels of the step's products (see Packed recurrent products), which hold whole hidden
 *     units, and the pointwise pass of those units.  Each thread then streams only its share
 *     of the weights per step, which can stay in that core's cache.  The shares are claimed
 *     at run time, in chunks of whole units: a task done with its own chunks takes the last
 *     unclaimed chunks of the others;
 *   - by rows (by_rows): each task runs the whole loop over a range of batch rows (whole
 *     blocks of 8), all columns, with no barrier: each row is an independent sequence.
 *     Cheaper when every thread's cache holds all the weights.
 *   The caller provides the threads as a runner:
 *     parallel(task, arg, parts)   runs task(arg, team) for every part in [0, parts) on
 *                                  distinct threads, concurrently, and returns when all have
 *                                  returned; each task runs with subnormals flushed
 *                                  (lstm_float_env.h) like the calling thread.  team->part
 *                                  and team->parts say which part it is of how many (the
 *                                  runner may lower parts when it has fewer threads);
 *                                  team->wait(team) returns once every part has called it
 *                                  as many times.
 *   Every output is computed by the same arithmetic whatever task computes it: results are
 *   the same bits for any `parts` above one.  The loop is split only when its products use
 *   the packed kernel: in the forward that includes the input projection (w_ih_panels),
 *   and in the backward dx and the weight gradients (grad_panels), which with one task are
 *   usually BLAS GEMMs, whose blocking of long sums may round differently.
 */
#ifndef LSTM_CORE_H
#define LSTM_CORE_H

#include <stddef.h>

typedef void (*lstm_gemm_f32)(int trans_a, int trans_b, int m, int n, int k, float alpha,
                              const float *a, int lda, const float *b, int ldb, float beta,
                              float *c, int ldc);
typedef void (*lstm_gemm_f64)(int trans_a, int trans_b, int m, int n, int k, double alpha,
                              const double *a, int lda, const double *b, int ldb, double beta,
                              double *c, int ldc);

/* One task's view of a loop shared between threads (see Threads). */
typedef struct lstm_team {
    int part, parts;
    void (*wait)(const struct lstm_team *team); /* the barrier of the parts */
    void *shared;                                /* the runner's state, for wait */
} lstm_team;
typedef void (*lstm_task)(void *arg, const lstm_team *team);
typedef void (*lstm_parallel)(lstm_task task, void *arg, int parts);

/*
 * Per-step activations that the training forward saves and the backward reads.
 * Slot 0 of h and c holds h0 and c0, so h[0:T] is one contiguous GEMM operand (the h_{t-1}
 * of every step).
 */
typedef struct {
    float *gates;  /* [T,B,G]   post-activation i, f, g, o of every step */
    float *c;      /* [T+1,B,H] cell states; c[0] = c0, c[t+1] = c_t */
    float *tanh_c; /* [T,B,H]   tanh(c_t) */
    float *h;      /* [T+1,B,H] hidden states; h[0] = h0, h[t+1] = h_t */
} lstm_cache_f32;

typedef struct {
    double *gates;
    double *c;
    double *tanh_c;
    double *h;
} lstm_cache_f64;

/*
 * Variable lengths.  Every function below takes `lengths` [B] (NULL: every sequence runs all T
 * steps).  Step t of row b is ACTIVE when t < lengths[b], with 0 <= lengths[b] <= T.  Past its
 * length a row keeps its state unchanged (h_t = h_{t-1}, c_t = c_{t-1}) and outputs zeros, so
 * h_n, c_n hold each row's state at its own length; the backward passes dh and dc through
 * such steps untouched and gives them zero dz.  The GEMMs still run over all B rows.
 */

/*
 * lstm_cell_forward: the fused pointwise part of step t, for B rows and the hidden units
 * [j0, j1) (0 <= j0 <= j1 <= H): only their elements below, in every gate of z, are read
 * or written (the tasks of a split loop each own a range of units).
 *
 *   y      [B,H]  out     h_t on active rows, 0 on the others; NULL: not written
 *   h      [B,H]  out     h_t (h_prev on inactive rows); may alias h_prev
 *   c      [B,H]  in/out  c_{t-1} in, c_t out (unchanged on inactive rows)
 *   tanh_c [B,H]  out     tanh(c_t) (0 on inactive rows)
 *   z      [B,G]  in/out  in: pre-activations without the bias, x_t w_ih^T + h_{t-1} w_hh^T;
 *                         out: the activated gates i, f, g, o (0 on inactive rows)
 *   h_prev [B,H]  in      h_{t-1}
 *   bias   [G]    in      added to z; NULL: no bias
 *   lengths [B], t        which rows are active (see Variable lengths)
 */
void lstm_cell_forward_f32(float *y, float *h, float *c, float *tanh_c, float *z,
                           const float *h_prev, const float *bias, const int *lengths, int t,
                           int B, int H, int j0, int j1);
void lstm_cell_forward_f64(double *y, double *h, double *c, double *tanh_c, double *z,
                           const double *h_prev, const double *bias, const int *lengths, int t,
                           int B, int H, int j0, int j1);

/*
 * lstm_cell_backward: the fused pointwise part of backward step t, for B rows and the
 * hidden units [j0, j1), as in lstm_cell_forward.
 *
 *   dz      [B,G]  out     dL/dz, the gradient of the gate pre-activations (0 on inactive rows)
 *   dh      [B,H]  in/out  in: dL/dh_t from the later steps (or dh_n), without dy.
 *                          out: the part of dL/dh_{t-1} that does not pass through z: 0 on
 *                          active rows, dL/dh_t on inactive ones.  The caller completes it
 *                          with dh += dz @ w_hh.
 *   dc      [B,H]  in/out  in: dL/dc_t; out: dL/dc_{t-1}
 *   dy      [B,H]  in      dL/dy_t from the output; NULL: zero
 *   gates   [B,G]  in      activated i, f, g, o of step t
 *   c_prev  [B,H]  in      c_{t-1}
 *   tanh_c  [B,H]  in      tanh(c_t)
 *   lengths [B], t         which rows are active
 */
void lstm_cell_backward_f32(float *dz, float *dh, float *dc, const float *dy, const float *gates,
                            const float *c_prev, const float *tanh_c, const int *lengths, int t,
                            int B, int H, int j0, int j1);
void lstm_cell_backward_f64(double *dz, double *dh, double *dc, const double *dy,
                            const double *gates, const double *c_prev, const double *tanh_c,
                            const int *lengths, int t, int B, int H, int j0, int j1);

/*
 * Packed recurrent products.  The BLAS repacks w_hh on every step's small product (B rows);
 * the drivers can instead use a built-in kernel that reads a copy of the weights they pack
 * once per call (each task of a split loop the panels it computes with) into panels of
 * PANEL columns (32 float32 or 16 float64, two 64-byte vectors), each K rows deep:
 *     packed[p][k][j] = W[k][column(p, j)], zero past the end.
 * Plain panels (gated = 0) take the columns in order: column(p, j) = p*PANEL + j.  Gate panels
 * (gated = 1, for the forward's products into z, N = G) take PANEL/4 hidden units of each
 * gate: column(p, j) = (j / U) * H + p*U + j % U with U = PANEL/4, so a panel computes every
 * gate of whole units (lstm_panels.inc, Layout).
 * The Cython boundary asks for it (gives the panels' workspace) when a call runs at least 8
 * rows of products (T * B >= 8).  The kernel fuses multiply-adds where the CPU has FMA (the
 * last bits then depend on the instruction set, as the BLAS's do; they do not depend on B
 * or on the blocking).
 *
 *   lstm_panels_size: elements of the packed copy of a K x N matrix W, in gate panels
 *                     (gated, N a multiple of 4) or plain ones
 */
ptrdiff_t lstm_panels_size_f32(int K, int N, int gated);
ptrdiff_t lstm_panels_size_f64(int K, int N, int gated);

/*
 * lstm_forward: a whole sequence.  Training mode when cache != NULL, inference otherwise.
 *
 *   y      [T,B,H]  out  h_t of every step, 0 past each row's length; NULL (inference only):
 *                        not written, e.g. for a single streaming step whose h_n is y[0]
 *   h_n    [B,H]    out  each row's h at its length (h0 when 0); inference: the running h
 *   c_n    [B,H]    out  each row's c at its length (c0 when 0); inference: the running c
 *   cache           out  training: every field written, see lstm_cache_*; NULL: inference
 *   work   [chunk*B*G + 2*B*H]  inference only: the input projection of `chunk` steps at
 *                        a time, then 2*B*H scratch, so memory stays O(chunk*B*H) whatever
 *                        T; NULL in training
 *   x      [T,B,I]  in
 *   h0, c0 [B,H]    in   initial state
 *   w_ih   [G,I]    in
 *   w_hh   [G,H]    in
 *   w_ih_panels     work [lstm_panels_size(I, G, 1)]: w_ih.T in gate panels, packed by
 *                        the tasks: the input projection uses the packed kernel, each task
 *                        the part of z it reads (used only with w_hh_panels); NULL: the GEMM
 *                        over many steps, and one task
 *   w_hh_panels     work [lstm_panels_size(H, G, 1)]: w_hh.T in gate panels, packed by
 *                        the tasks: the recurrent products use the packed kernel; NULL: the
 *                        GEMM
 *   bias   [G]      in   NULL: no bias
 *   lengths [B]     in   NULL: all T steps
 *   chunk           inference: steps per input projection, >= 1 (ignored in training,
 *                   where the projection covers all T steps into cache->gates)
 *   merge           with w_ih_panels: 1 projects each step inside its product (z = x_t @
 *                   w_ih.T + h_{t-1} @ w_hh.T, each output one sum over I + H products; then
 *                   chunk = 1 is enough); 0 projects `chunk` steps (all T in training) at a
 *                   time, then adds each step's recurrent product (a loop split by rows
 *                   always merges)
 *   parts, parallel the time loop in `parts` tasks through `parallel` (see Threads);
 *                   parallel NULL or parts <= 1: on the calling thread
 *   by_rows         the tasks share the batch rows instead of the columns (see Threads)
 */
void lstm_forward_f32(float *y, float *h_n, float *c_n, const lstm_cache_f32 *cache,
                      float *work, const float *x, const float *h0, const float *c0,
                      const float *w_ih, const float *w_hh, float *w_ih_panels,
                      float *w_hh_panels, const float *bias, const int *lengths, int T,
                      int B, int In, int H, int chunk, int merge, lstm_gemm_f32 gemm,
                      int parts, int by_rows, lstm_parallel parallel);
void lstm_forward_f64(double *y, double *h_n, double *c_n, const lstm_cache_f64 *cache,
                      double *work, const double *x, const double *h0, const double *c0,
                      const double *w_ih, const double *w_hh, double *w_ih_panels,
                      double *w_hh_panels, const double *bias, const int *lengths, int T,
                      int B, int In, int H, int chunk, int merge, lstm_gemm_f64 gemm,
                      int parts, int by_rows, lstm_parallel parallel);

/*
 * lstm_backward: backpropagation through a whole sequence.
 *
 *   dx     [T,B,I]  out  overwritten
 *   dw_ih  [G,I]    out  ACCUMULATED
 *   dw_hh  [G,H]    out  ACCUMULATED
 *   dbias  [G]      out  ACCUMULATED; NULL: not computed
 *   dh0    [B,H]    out  overwritten; also the running dL/dh during the loop
 *   dc0    [B,H]    out  overwritten; also the running dL/dc during the loop
 *   dz     [T,B,G]  work dL/dz of every step (kept for the weight GEMMs after the loop)
 *   dy     [T,B,H]  in   NULL: zero
 *   dh_n   [B,H]    in   NULL: zero
 *   dc_n   [B,H]    in   NULL: zero
 *   cache           in   filled by lstm_forward in training mode with the same inputs
 *   x      [T,B,I]  in
 *   w_ih   [G,I]    in
 *   w_hh   [G,H]    in
 *   w_hh_panels     work [lstm_panels_size(G, H, 0)]: w_hh in plain panels, packed by the
 *                        tasks: the per-step dh products use the packed kernel; NULL: the
 *                        GEMM
 *   grad_panels     work [lstm_panels_size(T*B, I, 0) + lstm_panels_size(T*B, H, 0) +
 *                        lstm_panels_size(G, I, 0)]: x, h[0:T] and w_ih packed by the loop's
 *                        tasks, which then share dx, dw_ih, dw_hh and dbias with the packed
 *                        kernel (a loop of one task computes them all); NULL: the GEMMs on
 *                        the calling thread after the loop
 *   lengths [B]     in   the lengths of the forward call (NULL: all T steps)
 *   parts, parallel, by_rows   as for lstm_forward: the time loop in tasks (with
 *                   w_hh_panels only)
 */
void lstm_backward_f32(float *dx, float *dw_ih, float *dw_hh, float *dbias, float *dh0,
                       float *dc0, float *dz, const float *dy, const float *dh_n,
                       const float *dc_n, const lstm_cache_f32 *cache, const float *x,
                       const float *w_ih, const float *w_hh, float *w_hh_panels,
                       float *grad_panels, const int *lengths, int T, int B, int In, int H,
                       lstm_gemm_f32 gemm, int parts, int by_rows, lstm_parallel parallel);
void lstm_backward_f64(double *dx, double *dw_ih, double *dw_hh, double *dbias, double *dh0,
                       double *dc0, double *dz, const double *dy, const double *dh_n,
                       const double *dc_n, const lstm_cache_f64 *cache, const double *x,
                       const double *w_ih, const double *w_hh, double *w_hh_panels,
                       double *grad_panels, const int *lengths, int T, int B, int In, int H,
                       lstm_gemm_f64 gemm, int parts, int by_rows, lstm_parallel parallel);

#endif /* LSTM_CORE_H */
