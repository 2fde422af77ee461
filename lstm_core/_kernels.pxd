# Declarations of src/include/lstm_plan.h and lstm_core.h, one function per line; shapes
# and contracts are there.

cdef extern from "lstm_plan.h" nogil:
    ctypedef void (*lstm_gemm_f32)(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int) noexcept nogil
    ctypedef void (*lstm_gemm_f64)(int, int, int, int, int, double, const double *, int, const double *, int, double, double *, int) noexcept nogil

    ctypedef enum lstm_split:
        LSTM_SPLIT_AUTO
        LSTM_SPLIT_ROWS
        LSTM_SPLIT_COLUMNS

    ctypedef enum lstm_projection:
        LSTM_PROJECT_GEMM
        LSTM_PROJECT_PACKED
        LSTM_PROJECT_MERGED

    ctypedef struct lstm_settings:
        int threads
        lstm_split split
        int oversubscribe
        lstm_gemm_f32 gemm_f32
        lstm_gemm_f64 gemm_f64

    ctypedef struct lstm_plan:
        int gates, T, B, In, H, itemsize, training, backward
        int parts, by_rows, packed
        lstm_projection projection
        int chunk, weight_products, prepacked, precision
        Py_ssize_t operands, w_ih_panels, w_hh_panels, work, grad_panels, workspace

    void lstm_plan_forward(lstm_plan *plan, const lstm_settings *settings, int T, int B, int In, int H, int itemsize, int training)
    void lstm_plan_forward_cell(lstm_plan *plan, const lstm_settings *settings, int gates, int T, int B, int In, int H, int itemsize, int training)
    void lstm_plan_prepacked(lstm_plan *plan)
    void lstm_plan_backward(lstm_plan *plan, const lstm_settings *settings, int T, int B, int In, int H, int itemsize)
    void lstm_plan_backward_cell(lstm_plan *plan, const lstm_settings *settings, int gates, int T, int B, int In, int H, int itemsize)
    void lstm_plan_reduced(lstm_plan *plan, int precision)
    void lstm_plan_mixed(lstm_plan *plan)
    int lstm_loop_parts(const lstm_settings *settings, int B, int H, double step_flops, int T, double weight_bytes, int *by_rows)

cdef extern from "lstm_reduced_sizes.h" nogil:
    enum:
        LSTM_FULL_PRECISION
        LSTM_BFLOAT16
        LSTM_INT8
    Py_ssize_t lstm_reduced_panels_size(Py_ssize_t K, Py_ssize_t N)
    Py_ssize_t lstm_reduced_lanes(Py_ssize_t N)

cdef extern from "lstm_core.h" nogil:
    enum:
        LSTM_ISA_PORTABLE
        LSTM_ISA_AVX2
        LSTM_ISA_AVX512
        LSTM_ISA_AMX
    int lstm_reduced_isa(int cap)
    ctypedef struct lstm_reduced_weights:
        int precision, isa
        const void *w_ih_panels
        const void *w_hh_panels
        const float *ih_scales
        const float *hh_scales
        const int *ih_sums
        const int *hh_sums
    void lstm_round_bfloat16(float *out, const float *inp, Py_ssize_t n)
    void lstm_pack_reduced(int precision, void *panels, float *lane_scales, int *lane_sums, const void *codes, const float *row_scales, int K, int N)
    ctypedef struct lstm_inputs_f32:
        const float *x
        const float *h0
        const float *c0
        const int *lengths
    ctypedef struct lstm_inputs_f64:
        const double *x
        const double *h0
        const double *c0
        const int *lengths
    ctypedef struct lstm_weights_f32:
        const float *w_ih
        const float *w_hh
        const float *bias
        const float *w_ih_panels
        const float *w_hh_panels
        const float *b_hh
        const lstm_reduced_weights *reduced
    ctypedef struct lstm_weights_f64:
        const double *w_ih
        const double *w_hh
        const double *bias
        const double *w_ih_panels
        const double *w_hh_panels
        const double *b_hh
        const lstm_reduced_weights *reduced
    ctypedef struct lstm_outputs_f32:
        float *y
        float *h_n
        float *c_n
    ctypedef struct lstm_outputs_f64:
        double *y
        double *h_n
        double *c_n
    ctypedef struct lstm_cache_f32:
        float *gates
        float *c
        float *tanh_c
        float *h
        float *hn
    ctypedef struct lstm_cache_f64:
        double *gates
        double *c
        double *tanh_c
        double *h
        double *hn
    ctypedef struct lstm_output_grads_f32:
        const float *dy
        const float *dh_n
        const float *dc_n
    ctypedef struct lstm_output_grads_f64:
        const double *dy
        const double *dh_n
        const double *dc_n
    ctypedef struct lstm_grads_f32:
        float *dx
        float *dw_ih
        float *dw_hh
        float *dbias
        float *dh0
        float *dc0
        float *db_hh
    ctypedef struct lstm_grads_f64:
        double *dx
        double *dw_ih
        double *dw_hh
        double *dbias
        double *dh0
        double *dc0
        double *db_hh

    Py_ssize_t lstm_panels_size_f32(int K, int N, int gated)
    Py_ssize_t lstm_panels_size_f64(int K, int N, int gated)
    void lstm_pack_weights_f32(float *panels, const float *w_ih, const float *w_hh, int In, int H, int gates)
    void lstm_pack_weights_f64(double *panels, const double *w_ih, const double *w_hh, int In, int H, int gates)
    void lstm_forward_f32(const lstm_plan *plan, const lstm_inputs_f32 *inputs, const lstm_weights_f32 *w, const lstm_outputs_f32 *out, const lstm_cache_f32 *cache, float *workspace)
    void lstm_forward_f64(const lstm_plan *plan, const lstm_inputs_f64 *inputs, const lstm_weights_f64 *w, const lstm_outputs_f64 *out, const lstm_cache_f64 *cache, double *workspace)
    void lstm_backward_f32(const lstm_plan *plan, const lstm_inputs_f32 *inputs, const lstm_weights_f32 *w, const lstm_cache_f32 *cache, const lstm_output_grads_f32 *d_out, const lstm_grads_f32 *grads, float *workspace)
    void lstm_backward_f64(const lstm_plan *plan, const lstm_inputs_f64 *inputs, const lstm_weights_f64 *w, const lstm_cache_f64 *cache, const lstm_output_grads_f64 *d_out, const lstm_grads_f64 *grads, double *workspace)

cdef extern from "lstm_runner.h" nogil:
    int lstm_usable_cpus()
