# Declarations of src/lstm_core.h, one function per line; shapes and contracts are there.

cdef extern from "lstm_core.h" nogil:
    ctypedef void (*lstm_gemm_f32)(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int) noexcept nogil
    ctypedef void (*lstm_gemm_f64)(int, int, int, int, int, double, const double *, int, const double *, int, double, double *, int) noexcept nogil

    ctypedef struct lstm_team:
        int part
        int parts
        void (*wait)(const lstm_team *team) noexcept nogil
        void *shared
    ctypedef void (*lstm_task)(void *arg, const lstm_team *team) noexcept nogil
    ctypedef void (*lstm_parallel)(lstm_task task, void *arg, int parts) noexcept nogil

    ctypedef struct lstm_cache_f32:
        float *gates
        float *c
        float *tanh_c
        float *h

    ctypedef struct lstm_cache_f64:
        double *gates
        double *c
        double *tanh_c
        double *h

    void lstm_cell_forward_f32(float *y, float *h, float *c, float *tanh_c, float *z, const float *h_prev, const float *bias, const int *lengths, int t, int B, int H, int j0, int j1)
    void lstm_cell_forward_f64(double *y, double *h, double *c, double *tanh_c, double *z, const double *h_prev, const double *bias, const int *lengths, int t, int B, int H, int j0, int j1)
    void lstm_cell_backward_f32(float *dz, float *dh, float *dc, const float *dy, const float *gates, const float *c_prev, const float *tanh_c, const int *lengths, int t, int B, int H, int j0, int j1)
    void lstm_cell_backward_f64(double *dz, double *dh, double *dc, const double *dy, const double *gates, const double *c_prev, const double *tanh_c, const int *lengths, int t, int B, int H, int j0, int j1)
    Py_ssize_t lstm_panels_size_f32(int K, int N, int gated)
    Py_ssize_t lstm_panels_size_f64(int K, int N, int gated)
    void lstm_forward_f32(float *y, float *h_n, float *c_n, const lstm_cache_f32 *cache, float *work, const float *x, const float *h0, const float *c0, const float *w_ih, const float *w_hh, float *w_ih_panels, float *w_hh_panels, const float *bias, const int *lengths, int T, int B, int In, int H, int chunk, int merge, lstm_gemm_f32 gemm, int parts, int by_rows, lstm_parallel parallel)
    void lstm_forward_f64(double *y, double *h_n, double *c_n, const lstm_cache_f64 *cache, double *work, const double *x, const double *h0, const double *c0, const double *w_ih, const double *w_hh, double *w_ih_panels, double *w_hh_panels, const double *bias, const int *lengths, int T, int B, int In, int H, int chunk, int merge, lstm_gemm_f64 gemm, int parts, int by_rows, lstm_parallel parallel)
    void lstm_backward_f32(float *dx, float *dw_ih, float *dw_hh, float *dbias, float *dh0, float *dc0, float *dz, const float *dy, const float *dh_n, const float *dc_n, const lstm_cache_f32 *cache, const float *x, const float *w_ih, const float *w_hh, float *w_hh_panels, float *grad_panels, const int *lengths, int T, int B, int In, int H, lstm_gemm_f32 gemm, int parts, int by_rows, lstm_parallel parallel)
    void lstm_backward_f64(double *dx, double *dw_ih, double *dw_hh, double *dbias, double *dh0, double *dc0, double *dz, const double *dy, const double *dh_n, const double *dc_n, const lstm_cache_f64 *cache, const double *x, const double *w_ih, const double *w_hh, double *w_hh_panels, double *grad_panels, const int *lengths, int T, int B, int In, int H, lstm_gemm_f64 gemm, int parts, int by_rows, lstm_parallel parallel)
