# Declarations of src/include/rnn_core.h, one function per line; shapes and contracts are there.
from lstm_core._kernels cimport lstm_gemm_f32, lstm_gemm_f64

cdef extern from "rnn_core.h" nogil:
    ctypedef struct gru_cache_f32:
        float *gates
        float *hn
        float *h

    ctypedef struct gru_cache_f64:
        double *gates
        double *hn
        double *h

    void gru_cell_forward_f32(float *y, float *h, float *hn, float *gates, float *gh, const float *b_ih, const float *b_hh, const int *lengths, int t, int B, int H)
    void gru_cell_forward_f64(double *y, double *h, double *hn, double *gates, double *gh, const double *b_ih, const double *b_hh, const int *lengths, int t, int B, int H)
    void gru_cell_backward_f32(float *dgi, float *dgh, float *dh, const float *dy, const float *gates, const float *hn, const float *h_prev, const int *lengths, int t, int B, int H)
    void gru_cell_backward_f64(double *dgi, double *dgh, double *dh, const double *dy, const double *gates, const double *hn, const double *h_prev, const int *lengths, int t, int B, int H)
    void gru_forward_f32(float *y, float *h_n, const gru_cache_f32 *cache, float *work, const float *x, const float *h0, const float *w_ih, const float *w_hh, const float *b_ih, const float *b_hh, const int *lengths, int T, int B, int In, int H, int chunk, lstm_gemm_f32 gemm)
    void gru_forward_f64(double *y, double *h_n, const gru_cache_f64 *cache, double *work, const double *x, const double *h0, const double *w_ih, const double *w_hh, const double *b_ih, const double *b_hh, const int *lengths, int T, int B, int In, int H, int chunk, lstm_gemm_f64 gemm)
    void gru_backward_f32(float *dx, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh, float *dh0, float *dgi, float *dgh, const float *dy, const float *dh_n, const gru_cache_f32 *cache, const float *x, const float *w_ih, const float *w_hh, const int *lengths, int T, int B, int In, int H, lstm_gemm_f32 gemm)
    void gru_backward_f64(double *dx, double *dw_ih, double *dw_hh, double *db_ih, double *db_hh, double *dh0, double *dgi, double *dgh, const double *dy, const double *dh_n, const gru_cache_f64 *cache, const double *x, const double *w_ih, const double *w_hh, const int *lengths, int T, int B, int In, int H, lstm_gemm_f64 gemm)
