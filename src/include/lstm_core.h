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
 * The cells.  The drivers run the cell their plan names (lstm_plan.h, gates): the LSTM
 *   (gates = 4), the GRU (gates = 3, torch.nn.GRU) and the vanilla RNN (gates = 1,
 *   torch.nn.RNN with tanh):
 *     RNN:  h_t = tanh(x_t w_ih^T + h_{t-1} w_hh^T + bias)       [B,H], G = H
 *   w_ih [H,I], w_hh [H,H], bias [H] = b_ih + b_hh.
 *     GRU:  gate order r, z, n; gi = x_t w_ih^T, gh = h_{t-1} w_hh^T    [B,3H], G = 3H
 *           r = sigma(gi_r + b_ir + gh_r + b_hr)    z = sigma(gi_z + b_iz + gh_z + b_hz)
 *           hn = gh_n + b_hn    n = tanh(gi_n + b_in + r * hn)    h_t = n + z (h_{t-1} - n)
 *   w_ih [3H,I], w_hh [3H,H] and two biases b_ih, b_hh [3H] (b_hn sits inside the reset
 *   product: they cannot be summed, and gh is computed apart from gi).  Its backward has two
 *   dL/dz that differ in their n block: of gi, [dr, dz, dn] (dx, dw_ih, db_ih), and of gh,
 *   [dr, dz, dn * r] (dh_{t-1}, dw_hh, db_hh).
 *   The GRU and the RNN have no cell state: they leave c0, c_n, dc_n and dc0 NULL, and the
 *   cache's c and tanh_c; the RNN's cache holds only h (gates NULL too): in training the
 *   forward writes each step's z into h's slot t + 1 and activates it there.  The rest of
 *   this header says "LSTM" for all three.
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
 *   caller-provided row-major GEMM, given in the plan's settings (in lstm_core it wraps
 *   scipy.linalg.cython_blas):
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
 *   The plan (lstm_plan.h) chooses the number of tasks and the way; the tasks run on the
 *   threads of lstm_runner.h (POSIX threads, each with subnormals flushed like the calling
 *   thread); the drivers set the float environment (lstm_float_env.h) for the whole call.
 *   Every output is computed by the same arithmetic whatever task computes it: results are
 *   the same bits for any `parts` above one.  The loop is split only when its products use
 *   the packed kernel: in the forward that includes the input projection (merged), and in
 *   the backward dx and the weight gradients (weight_products), which with one task are
 *   usually BLAS GEMMs, whose blocking of long sums may round differently.
 */
#ifndef LSTM_CORE_H
#define LSTM_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "lstm_plan.h"
#include "lstm_reduced_sizes.h"

/*
 * Reduced precision (inference, float32 only): the forward's two products with bfloat16 or
 * int8 operands, everything else in float32 (lstm_reduced.inc, docs/precision.rst).  The
 * weights are packed once by lstm_pack_reduced, the plan made reduced (lstm_plan_reduced),
 * and the forward reads them from lstm_weights_f32.reduced.
 *
 * Kernel levels: the best one the CPU has and this build implements, up to a cap (the
 * LSTM_CORE_MAX_ISA environment variable of the Python package), so that the tests run every
 * lower level on any machine.  Implemented: PORTABLE (C loops) and AVX2 (AVX2 + FMA).
 */
enum { LSTM_ISA_PORTABLE = 0, LSTM_ISA_AVX2 = 1, LSTM_ISA_AVX512 = 2, LSTM_ISA_AMX = 3 };
int lstm_reduced_isa(int cap);

/* The packed weights of one LSTM in a reduced precision, read by the kernels of `isa`:
 *   w_ih_panels, w_hh_panels  [lstm_reduced_panels_size(K, 4H)] for K = I, H: bfloat16 bits
 *                             (uint16_t) or int8 codes (int8_t), lstm_reduced.inc, Layout
 *   ih_scales, hh_scales      int8: [lstm_reduced_lanes(4H)] each gate row's scale, per lane
 *   ih_sums, hh_sums          int8: [lstm_reduced_lanes(4H)] its codes' sum, per lane
 *                             (bfloat16: all four NULL) */
typedef struct lstm_reduced_weights {
    int precision; /* LSTM_BFLOAT16 or LSTM_INT8 */
    int isa;       /* lstm_reduced_isa's answer when packed */
    const void *w_ih_panels, *w_hh_panels;
    const float *ih_scales, *hh_scales;
    const int32_t *ih_sums, *hh_sums;
} lstm_reduced_weights;

/* out[0:n] = in[0:n] rounded to bfloat16 (as float32 values), the rounding of the reduced
 * kernels and of mixed-precision training (out may alias in). */
void lstm_round_bfloat16(float *out, const float *in, ptrdiff_t n);

/* Pack one matrix W = w.T (w [N,K], N = 4H) for `precision`:
 *   panels       out  [lstm_reduced_panels_size(K, N)] uint16_t or int8_t
 *   lane_scales  out  int8: [lstm_reduced_lanes(N)], else NULL
 *   lane_sums    out  int8: [lstm_reduced_lanes(N)], else NULL
 *   codes        in   [N,K] bfloat16 bits (uint16_t) or int8 codes in [-127, 127] (int8_t)
 *   row_scales   in   int8: [N] the scale of each row of w, else NULL */
void lstm_pack_reduced(int precision, void *panels, float *lane_scales, int32_t *lane_sums,
                       const void *codes, const float *row_scales, int K, int N);

/*
 * The arguments of the drivers, grouped, one set per dtype (real = float for _f32, double
 * for _f64).  Pointers marked "may be NULL" are optional; every other one is required.
 *
 * lstm_inputs:   x [T,B,I]; h0, c0 [B,H] the initial state; lengths [B] (may be NULL: all T
 *                steps, see Variable lengths)
 * lstm_weights:  w_ih [G,I]; w_hh [G,H]; bias [G] (may be NULL: no bias); w_ih_panels,
 *                w_hh_panels: both packed once by lstm_pack_weights, for a plan made
 *                prepacked (lstm_plan_prepacked), else NULL: the forward packs what its plan
 *                needs into its workspace
 * lstm_outputs:  y [T,B,H] h_t of every step, 0 past each row's length (inference only, may
 *                be NULL: not written, e.g. for a streaming step whose h_n is the output);
 *                h_n, c_n [B,H] each row's state at its length (h0, c0 when 0)
 * lstm_cache:    per-step activations that the training forward saves and the backward
 *                reads.  Slot 0 of h and c holds h0 and c0, so h[0:T] is one contiguous
 *                GEMM operand (the h_{t-1} of every step):
 *                gates [T,B,G] post-activation i, f, g, o; c [T+1,B,H] c[t+1] = c_t;
 *                tanh_c [T,B,H] tanh(c_t); h [T+1,B,H] h[t+1] = h_t
 * lstm_output_grads: dy [T,B,H], dh_n, dc_n [B,H]: dL/dy, dL/dh_n, dL/dc_n (each may be
 *                NULL: zero)
 * lstm_grads:    dx [T,B,I] overwritten; dw_ih [G,I], dw_hh [G,H], dbias [G] (may be NULL:
 *                not computed) ACCUMULATED; dh0, dc0 [B,H] overwritten
 *                reduced: the packed weights of a reduced-precision plan (float32), else NULL
 * The GRU's extra fields (NULL for the other cells): weights b_hh [G], its recurrent bias
 * (bias is then b_ih); cache hn [T,B,H], gh_n + b_hn of every step (gates holds r, z, n);
 * grads db_hh [G] ACCUMULATED (dbias is then db_ih).
 */
#define LSTM_ARGUMENT_TYPES(real, suffix)                                                     \
    typedef struct {                                                                          \
        const real *x, *h0, *c0;                                                              \
        const int *lengths;                                                                   \
    } lstm_inputs_##suffix;                                                                   \
    typedef struct {                                                                          \
        const real *w_ih, *w_hh, *bias;                                                       \
        const real *w_ih_panels, *w_hh_panels;                                                \
        const real *b_hh;                                                                     \
        const struct lstm_reduced_weights *reduced;                                           \
    } lstm_weights_##suffix;                                                                  \
    typedef struct {                                                                          \
        real *y, *h_n, *c_n;                                                                  \
    } lstm_outputs_##suffix;                                                                  \
    typedef struct {                                                                          \
        real *gates, *c, *tanh_c, *h;                                                         \
        real *hn;                                                                             \
    } lstm_cache_##suffix;                                                                    \
    typedef struct {                                                                          \
        const real *dy, *dh_n, *dc_n;                                                         \
    } lstm_output_grads_##suffix;                                                             \
    typedef struct {                                                                          \
        real *dx, *dw_ih, *dw_hh, *dbias, *dh0, *dc0;                                         \
        real *db_hh;                                                                          \
    } lstm_grads_##suffix;

LSTM_ARGUMENT_TYPES(float, f32)
LSTM_ARGUMENT_TYPES(double, f64)

/*
 * Variable lengths.  The drivers take `lengths` [B] (NULL: every sequence runs all T
 * steps).  Step t of row b is ACTIVE when t < lengths[b], with 0 <= lengths[b] <= T.  Past its
 * length a row keeps its state unchanged (h_t = h_{t-1}, c_t = c_{t-1}) and outputs zeros, so
 * h_n, c_n hold each row's state at its own length; the backward passes dh and dc through
 * such steps untouched and gives them zero dz.  The GEMMs still run over all B rows.
 */

/*
 * Packed recurrent products.  The BLAS repacks w_hh on every step's small product (B rows);
 * the drivers can instead use a built-in kernel that reads a copy of the weights they pack
 * once per call (each task of a split loop the panels it computes with) into panels of
 * PANEL columns (32 float32 or 16 float64, two 64-byte vectors), each K rows deep:
 *     packed[p][k][j] = W[k][column(p, j)], zero past the end.
 * Plain panels (gated = 0) take the columns in order: column(p, j) = p*PANEL + j.  The LSTM's
 * gate panels (gated = 4, for the forward's products into z, N = G) come in pairs over U =
 * PANEL/2 hidden units: panel 2u holds gates i and f, panel 2u+1 gates g and o, of units
 * u*U .. u*U + U-1, so a pair computes every gate of whole units (lstm_panels.inc, Layout).
 * The plan (lstm_plan.h) uses it when a call runs at least 8 rows of products (T * B >= 8).
 * The kernel fuses multiply-adds where the CPU has FMA (the last bits then depend on the
 * instruction set, as the BLAS's do; they do not depend on B or on the blocking).
 *
 *   lstm_panels_size: elements of the packed copy of a K x N matrix W, in gate panels
 *                     (gated = 4, N a multiple of 4) or plain ones (gated = 0)
 */
ptrdiff_t lstm_panels_size_f32(int K, int N, int gated);
ptrdiff_t lstm_panels_size_f64(int K, int N, int gated);

/*
 * lstm_pack_weights: w_ih.T and w_hh.T in the panels of the cell of `gates` gate blocks (4 the
 * LSTM, 3 the GRU, 1 the RNN: lstm_panels.inc, Layout), packed once for any number of
 * inference forwards (lc.pack_lstm, pack_gru, pack_rnn), whose plans are then made prepacked.
 *
 *   panels     out  [lstm_panels_size(In, G, gated) + lstm_panels_size(H, G, gated)]
 *                   (gated = gates, 0 for the RNN): w_ih.T's panels, then w_hh.T's
 *   w_ih, w_hh in   [G,I], [G,H]  (G = gates * H)
 */
void lstm_pack_weights_f32(float *panels, const float *w_ih, const float *w_hh, int In, int H,
                           int gates);
void lstm_pack_weights_f64(double *panels, const double *w_ih, const double *w_hh, int In,
                           int H, int gates);

/*
 * lstm_forward: a whole sequence, as `plan` (made by lstm_plan_forward for these sizes and
 * dtype) says.  Training mode when plan->training: cache must then be given and every field
 * of it is written; in inference cache is NULL and the running state lives in h_n, c_n, so
 * memory stays O(chunk*B*H) whatever T.
 *
 *   plan       in   lstm_plan_forward(plan, ..., T, B, In, H, sizeof(real), training)
 *   in, w      in   the sequence and the weights
 *   out        out  y, h_n, c_n
 *   cache      out  training only, else NULL
 *   workspace  work [plan->workspace]: the packed weights (the tasks pack them), then the
 *                   inference projection of plan->chunk steps and two [B,H] scratch rows
 */
void lstm_forward_f32(const lstm_plan *plan, const lstm_inputs_f32 *in,
                      const lstm_weights_f32 *w, const lstm_outputs_f32 *out,
                      const lstm_cache_f32 *cache, float *workspace);
void lstm_forward_f64(const lstm_plan *plan, const lstm_inputs_f64 *in,
                      const lstm_weights_f64 *w, const lstm_outputs_f64 *out,
                      const lstm_cache_f64 *cache, double *workspace);

/*
 * lstm_backward: backpropagation through a whole sequence, as `plan` (made by
 * lstm_plan_backward for the sizes of the forward) says.
 *
 *   plan       in   lstm_plan_backward(plan, ..., T, B, In, H, sizeof(real))
 *   in, w      in   x and lengths of the training forward (h0 and c0 are not read), its
 *                   weights
 *   cache      in   filled by that forward
 *   d_out      in   dL/dy, dL/dh_n, dL/dc_n
 *   grads      out  see lstm_grads; dh0 and dc0 also carry the running dL/dh and dL/dc
 *                   down the loop
 *   workspace  work [plan->workspace]: w_hh packed, x, h[0:T] and w_ih packed when the
 *                   loop's tasks compute the weight products, then dz [T,B,G]
 */
void lstm_backward_f32(const lstm_plan *plan, const lstm_inputs_f32 *in,
                       const lstm_weights_f32 *w, const lstm_cache_f32 *cache,
                       const lstm_output_grads_f32 *d_out, const lstm_grads_f32 *grads,
                       float *workspace);
void lstm_backward_f64(const lstm_plan *plan, const lstm_inputs_f64 *in,
                       const lstm_weights_f64 *w, const lstm_cache_f64 *cache,
                       const lstm_output_grads_f64 *d_out, const lstm_grads_f64 *grads,
                       double *workspace);

/*
 * The plain path: the same two functions written as directly as the math, one step after
 * the other with plain loops, no packing, no threads, no GEMM (lstm_plain.c).  It is the
 * C twin of lstm_core/reference.py (float64), for readers and for the C test that checks
 * the fast drivers of both dtypes against it.  The backward takes one step's dL/dz as
 * scratch: dz [B,G].
 */
void lstm_plain_forward_f64(const lstm_inputs_f64 *in, const lstm_weights_f64 *w,
                            const lstm_outputs_f64 *out, const lstm_cache_f64 *cache, int T,
                            int B, int In, int H);
void lstm_plain_backward_f64(const lstm_inputs_f64 *in, const lstm_weights_f64 *w,
                             const lstm_cache_f64 *cache, const lstm_output_grads_f64 *d_out,
                             const lstm_grads_f64 *grads, double *dz, int T, int B, int In,
                             int H);

#endif /* LSTM_CORE_H */
