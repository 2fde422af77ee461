/*
 * rnn_core.h -- the contract of the GRU kernels (the vanilla RNN runs on the LSTM's drivers,
 * lstm_core.h).
 *
 * NOTES
 *
 * Everything lstm_core.h says about dimensions (T, B, I spelled In, H; row-major; int sizes,
 * ptrdiff_t offsets), memory (caller-provided, no allocation, no failure, assert() only),
 * overwrite versus accumulate (weight and bias gradients are ACCUMULATED, the rest
 * overwritten), aliasing (only the pairs named "may alias"), the GEMM callback, precision,
 * threads and variable lengths holds here too; this header states only what differs.
 *
 * GRU (torch.nn.GRU), G = 3H rows, gate order r, z, n (reset, update, new):
 *     gi = x_t w_ih^T        gh = h_{t-1} w_hh^T                 [B,3H]
 *     r  = sigma(gi_r + b_ir + gh_r + b_hr)
 *     z  = sigma(gi_z + b_iz + gh_z + b_hz)
 *     hn = gh_n + b_hn                                              [B,H]
 *     n  = tanh(gi_n + b_in + r * hn)
 *     h_t = n + z * (h_{t-1} - n)          = (1 - z) * n + z * h_{t-1}
 *   w_ih [3H,I], w_hh [3H,H], and TWO biases b_ih [3H], b_hh [3H]: b_hn sits inside the
 *   reset product, so the biases cannot be summed.  gh is kept apart from gi for the same
 *   reason (one recurrent GEMM per step into a [B,3H] workspace).
 *
 * Backward.  With dz the gradient of a pre-activation, the GRU has two that differ in their
 *   n block only:
 *     dgi = [dr, dz, dn]        (gradient of gi + b_ih: feeds dx, dw_ih, db_ih)
 *     dgh = [dr, dz, dn * r]    (gradient of gh + b_hh: feeds dh_{t-1}, dw_hh, db_hh)
 *   where dr, dz, dn are the gradients of the three pre-activations.
 *
 * Variable lengths: as lstm_core.h.  Past a row's length h is carried unchanged, y is 0,
 *   the cached activations are 0, and the backward passes dh through untouched.
 */
#ifndef RNN_CORE_H
#define RNN_CORE_H

#include <stddef.h>

#include "lstm_plan.h" /* lstm_gemm_f32, lstm_gemm_f64 */

/* ------------------------------------------------------------------------------- GRU */

/* What the training forward saves per step; slot 0 of h holds h0. */
typedef struct {
    float *gates; /* [T,B,3H]  post-activation r, z, n of every step */
    float *hn;    /* [T,B,H]   gh_n + b_hn = h_{t-1} w_hn^T + b_hn */
    float *h;     /* [T+1,B,H] hidden states; h[0] = h0, h[t+1] = h_t */
} gru_cache_f32;

typedef struct {
    double *gates;
    double *hn;
    double *h;
} gru_cache_f64;

/*
 * gru_cell_forward: the fused pointwise part of step t, for B rows.
 *
 *   y      [B,H]   out     h_t on active rows, 0 on the others; NULL: not written
 *   h      [B,H]   in/out  h_{t-1} in, h_t out (unchanged on inactive rows)
 *   hn     [B,H]   out     gh_n + b_hn (0 on inactive rows)
 *   gates  [B,3H]  in/out  in: gi = x_t w_ih^T (no bias); out: r, z, n (0 on inactive rows)
 *   gh     [B,3H]  in/out  in: h_{t-1} w_hh^T (no bias); out: clobbered
 *   b_ih   [3H]    in      NULL: no input bias
 *   b_hh   [3H]    in      NULL: no recurrent bias
 *   lengths [B], t
 */
void gru_cell_forward_f32(float *y, float *h, float *hn, float *gates, float *gh,
                          const float *b_ih, const float *b_hh, const int *lengths, int t,
                          int B, int H);
void gru_cell_forward_f64(double *y, double *h, double *hn, double *gates, double *gh,
                          const double *b_ih, const double *b_hh, const int *lengths, int t,
                          int B, int H);

/*
 * gru_cell_backward: the fused pointwise part of backward step t.
 *
 *   dgi    [B,3H]  out     [dr, dz, dn] (0 on inactive rows)
 *   dgh    [B,3H]  out     [dr, dz, dn * r] (0 on inactive rows)
 *   dh     [B,H]   in/out  in: dL/dh_t from later steps, without dy; out: the part of
 *                          dL/dh_{t-1} that bypasses the GEMM: dL/dh_t * z on active rows,
 *                          unchanged on inactive ones.  The caller adds dgh @ w_hh.
 *   dy     [B,H]   in      NULL: zero
 *   gates  [B,3H]  in      r, z, n of step t
 *   hn     [B,H]   in      gh_n + b_hn of step t
 *   h_prev [B,H]   in      h_{t-1}
 *   lengths [B], t
 */
void gru_cell_backward_f32(float *dgi, float *dgh, float *dh, const float *dy,
                           const float *gates, const float *hn, const float *h_prev,
                           const int *lengths, int t, int B, int H);
void gru_cell_backward_f64(double *dgi, double *dgh, double *dh, const double *dy,
                           const double *gates, const double *hn, const double *h_prev,
                           const int *lengths, int t, int B, int H);

/*
 * gru_forward: a whole sequence.  Training mode when cache != NULL, inference otherwise.
 *
 *   y      [T,B,H]  out  h_t of every step, 0 past each row's length; NULL (inference only)
 *   h_n    [B,H]    out  each row's h at its length; inference: the running h
 *   cache           out  training: every field written (gates first receives the input
 *                        projection of all T steps, one GEMM); NULL: inference
 *   work            training: [B*3H], the recurrent product of one step;
 *                   inference: [chunk*B*3H + B*3H + B*H], the input projection of `chunk`
 *                   steps, the recurrent product, and scratch for hn
 *   x      [T,B,I]  in
 *   h0     [B,H]    in
 *   w_ih   [3H,I]   in
 *   w_hh   [3H,H]   in
 *   b_ih   [3H]     in   NULL: no input bias
 *   b_hh   [3H]     in   NULL: no recurrent bias
 *   lengths [B]     in   NULL: all T steps
 *   chunk           inference: steps per input GEMM, >= 1 (ignored in training)
 */
void gru_forward_f32(float *y, float *h_n, const gru_cache_f32 *cache, float *work,
                     const float *x, const float *h0, const float *w_ih, const float *w_hh,
                     const float *b_ih, const float *b_hh, const int *lengths, int T, int B,
                     int In, int H, int chunk, lstm_gemm_f32 gemm);
void gru_forward_f64(double *y, double *h_n, const gru_cache_f64 *cache, double *work,
                     const double *x, const double *h0, const double *w_ih,
                     const double *w_hh, const double *b_ih, const double *b_hh,
                     const int *lengths, int T, int B, int In, int H, int chunk,
                     lstm_gemm_f64 gemm);

/*
 * gru_backward: backpropagation through a whole sequence.
 *
 *   dx     [T,B,I]   out  overwritten
 *   dw_ih  [3H,I]    out  ACCUMULATED
 *   dw_hh  [3H,H]    out  ACCUMULATED
 *   db_ih  [3H]      out  ACCUMULATED; NULL: not computed
 *   db_hh  [3H]      out  ACCUMULATED; NULL: not computed
 *   dh0    [B,H]     out  overwritten; also the running dL/dh during the loop
 *   dgi    [T,B,3H]  work gradient of gi + b_ih of every step
 *   dgh    [T,B,3H]  work gradient of gh + b_hh of every step
 *   dy     [T,B,H]   in   NULL: zero
 *   dh_n   [B,H]     in   NULL: zero
 *   cache            in   filled by gru_forward in training mode with the same inputs
 *   x      [T,B,I]   in
 *   w_ih   [3H,I]    in
 *   w_hh   [3H,H]    in
 *   lengths [B]      in   the lengths of the forward call (NULL: all T steps)
 */
void gru_backward_f32(float *dx, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh,
                      float *dh0, float *dgi, float *dgh, const float *dy, const float *dh_n,
                      const gru_cache_f32 *cache, const float *x, const float *w_ih,
                      const float *w_hh, const int *lengths, int T, int B, int In, int H,
                      lstm_gemm_f32 gemm);
void gru_backward_f64(double *dx, double *dw_ih, double *dw_hh, double *db_ih, double *db_hh,
                      double *dh0, double *dgi, double *dgh, const double *dy,
                      const double *dh_n, const gru_cache_f64 *cache, const double *x,
                      const double *w_ih, const double *w_hh, const int *lengths, int T, int B,
                      int In, int H, lstm_gemm_f64 gemm);

#endif /* RNN_CORE_H */
