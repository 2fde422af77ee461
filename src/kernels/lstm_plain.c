/*
 * lstm_plain.c -- the LSTM written as directly as the math (lstm_core.h, The plain path).
 *
 * One step after the other, plain loops, libm's exp and tanh, float64, no packing, no
 * threads, no GEMM: the version of the drivers that a reader checks against the equations,
 * and that the C test checks the fast drivers against.  Same arguments, layouts and
 * variable lengths as lstm_forward / lstm_backward (lstm_core.h).
 */
#include <math.h>
#include <stddef.h>

#include "lstm_core.h"

static double sigmoid(double z)
{
    return 1.0 / (1.0 + exp(-z));
}

static int active(const int *lengths, int t, int b)
{
    return lengths == NULL || t < lengths[b];
}

void lstm_plain_forward_f64(const lstm_inputs_f64 *in, const lstm_weights_f64 *w,
                            const lstm_outputs_f64 *out, const lstm_cache_f64 *cache, int T,
                            int B, int In, int H)
{
    const ptrdiff_t G = 4 * (ptrdiff_t)H, BH = (ptrdiff_t)B * H;
    for (ptrdiff_t k = 0; k < BH; ++k) {
        cache->h[k] = in->h0[k];
        cache->c[k] = in->c0[k];
    }
    for (int t = 0; t < T; ++t) {
        const double *h_prev = cache->h + t * BH, *c_prev = cache->c + t * BH;
        double *h = cache->h + (t + 1) * BH, *c = cache->c + (t + 1) * BH;
        for (int b = 0; b < B; ++b) {
            double *gates = cache->gates + ((ptrdiff_t)t * B + b) * G;   /* [G] */
            double *tanh_c = cache->tanh_c + (ptrdiff_t)t * BH + (ptrdiff_t)b * H;
            const double *x = in->x + ((ptrdiff_t)t * B + b) * In;        /* [I] */
            if (!active(in->lengths, t, b)) {
                /* past the sequence's end: state carried, output and caches 0 */
                for (int j = 0; j < H; ++j) {
                    h[b * H + j] = h_prev[b * H + j];
                    c[b * H + j] = c_prev[b * H + j];
                    tanh_c[j] = 0;
                    out->y[(ptrdiff_t)t * BH + b * H + j] = 0;
                }
                for (ptrdiff_t r = 0; r < G; ++r) {
                    gates[r] = 0;
                }
                continue;
            }
            /* z = x_t w_ih^T + h_{t-1} w_hh^T + bias */
            for (ptrdiff_t r = 0; r < G; ++r) {
                double z = w->bias != NULL ? w->bias[r] : 0.0;
                for (int k = 0; k < In; ++k) {
                    z += x[k] * w->w_ih[r * In + k];
                }
                for (int k = 0; k < H; ++k) {
                    z += h_prev[b * H + k] * w->w_hh[r * H + k];
                }
                /* i, f, o: sigma; g: tanh */
                gates[r] = r / H == 2 ? tanh(z) : sigmoid(z);
            }
            for (int j = 0; j < H; ++j) {
                const double i = gates[j], f = gates[H + j], g = gates[2 * H + j];
                const double o = gates[3 * H + j];
                c[b * H + j] = f * c_prev[b * H + j] + i * g;
                tanh_c[j] = tanh(c[b * H + j]);
                h[b * H + j] = o * tanh_c[j];
                out->y[(ptrdiff_t)t * BH + b * H + j] = h[b * H + j];
            }
        }
    }
    for (ptrdiff_t k = 0; k < BH; ++k) {
        out->h_n[k] = cache->h[T * BH + k];
        out->c_n[k] = cache->c[T * BH + k];
    }
}

void lstm_plain_backward_f64(const lstm_inputs_f64 *in, const lstm_weights_f64 *w,
                             const lstm_cache_f64 *cache, const lstm_output_grads_f64 *d_out,
                             const lstm_grads_f64 *grads, double *dz, int T, int B, int In,
                             int H)
{
    const ptrdiff_t G = 4 * (ptrdiff_t)H, BH = (ptrdiff_t)B * H;
    double *dh = grads->dh0, *dc = grads->dc0; /* dL/dh_t, dL/dc_t, running down the loop */
    for (ptrdiff_t k = 0; k < BH; ++k) {
        dh[k] = d_out->dh_n != NULL ? d_out->dh_n[k] : 0.0;
        dc[k] = d_out->dc_n != NULL ? d_out->dc_n[k] : 0.0;
    }
    for (int t = T - 1; t >= 0; --t) {
        for (int b = 0; b < B; ++b) {
            double *dh_b = dh + (ptrdiff_t)b * H, *dc_b = dc + (ptrdiff_t)b * H;
            double *dz_b = dz + (ptrdiff_t)b * G;                                 /* [G] */
            const double *gates = cache->gates + ((ptrdiff_t)t * B + b) * G;
            const double *c_prev = cache->c + (ptrdiff_t)t * BH + (ptrdiff_t)b * H;
            const double *tanh_c = cache->tanh_c + (ptrdiff_t)t * BH + (ptrdiff_t)b * H;
            const double *h_prev = cache->h + (ptrdiff_t)t * BH + (ptrdiff_t)b * H;
            const double *x = in->x + ((ptrdiff_t)t * B + b) * In;
            double *dx = grads->dx + ((ptrdiff_t)t * B + b) * In;
            for (int k = 0; k < In; ++k) {
                dx[k] = 0;
            }
            if (!active(in->lengths, t, b)) {
                continue; /* h and c were carried: dh and dc pass through */
            }
            for (int j = 0; j < H; ++j) {
                const double i = gates[j], f = gates[H + j], g = gates[2 * H + j];
                const double o = gates[3 * H + j];
                const double dh_t = dh_b[j] + (d_out->dy != NULL
                                               ? d_out->dy[(ptrdiff_t)t * BH + b * H + j] : 0.0);
                /* h_t = o tanh(c_t);  c_t = f c_{t-1} + i g */
                const double dc_t = dc_b[j] + dh_t * o * (1 - tanh_c[j] * tanh_c[j]);
                dz_b[j] = dc_t * g * i * (1 - i);
                dz_b[H + j] = dc_t * c_prev[j] * f * (1 - f);
                dz_b[2 * H + j] = dc_t * i * (1 - g * g);
                dz_b[3 * H + j] = dh_t * tanh_c[j] * o * (1 - o);
                dc_b[j] = dc_t * f;
            }
            /* dh_{t-1} = dz w_hh;  dx_t = dz w_ih;  weight gradients += outer products */
            for (int k = 0; k < H; ++k) {
                dh_b[k] = 0;
            }
            for (ptrdiff_t r = 0; r < G; ++r) {
                for (int k = 0; k < H; ++k) {
                    dh_b[k] += dz_b[r] * w->w_hh[r * H + k];
                    grads->dw_hh[r * H + k] += dz_b[r] * h_prev[k];
                }
                for (int k = 0; k < In; ++k) {
                    dx[k] += dz_b[r] * w->w_ih[r * In + k];
                    grads->dw_ih[r * In + k] += dz_b[r] * x[k];
                }
                if (grads->dbias != NULL) {
                    grads->dbias[r] += dz_b[r];
                }
            }
        }
    }
}
