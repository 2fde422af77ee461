/*
 * lstm_plan.c -- the strategy of an LSTM call (lstm_plan.h): every rule and threshold that
 * chooses how a call runs lives here, and nowhere else.  The measurements behind the
 * thresholds are in docs/performance.rst.
 */
#include <assert.h>

#include "lstm_panel_sizes.h"
#include "lstm_plan.h"
#include "lstm_reduced_sizes.h"
#include "lstm_runner.h"

/* The recurrent products use the packed kernel whenever the call runs at least this many
 * rows of them (T steps of B rows): packing w_hh costs about one product with one row, so
 * below that the GEMM is cheaper (or, for one row, the matvec kernel, which reads the
 * weights as they are); above it, a BLAS repacks w_hh on every step and the packed kernel
 * does not.  The streaming cell (T = 1) therefore packs only for B >= 8, and a cell step
 * and a one-step sequence always take the same kernel (the same bits). */
#define PANELS_MIN_ROWS 8

/* One thread merges each step's projection into its recurrent product when both packed
 * weights stay in the core's cache and the batch fills a block of the packed kernel's rows:
 * z is then written once per step and read back from cache.  With weights that do not stay
 * cached, every step would stream w_ih from memory; with fewer rows, the kernel's small
 * blocks are slower than a GEMM over many steps.  A split loop always merges: each task
 * projects only its own columns, where a BLAS GEMM would run on the BLAS's threads, whose
 * idle workers then spin on the cores the loop needs. */
#define MERGED_MIN_ROWS 8

/* A product (the forward's projection, the backward's dx and weight gradients) below this
 * many flops skips the BLAS on a loop of one task: about what waking the BLAS's idle worker
 * threads costs. */
#define SMALL_PRODUCT_FLOPS 2e7

/* An inference forward that does not merge projects about this many rows (steps times
 * batch rows) at a time, so that its memory stays O(B*H) beyond the inputs and outputs. */
#define INFERENCE_CHUNK_ROWS 1024

/* Splitting a loop: a thread costs tens of microseconds to start and a barrier a fraction
 * of a microsecond, so a loop is split only when each part gets at least MIN_PART_FLOPS in
 * all and MIN_PART_STEP_FLOPS per step; by columns each part gets at least one float32
 * panel of hidden units, by rows one block of the packed kernel's rows.  The tasks share
 * the rows while the packed weights take at most ROWS_SPLIT_MAX_BYTES (half a core's L2
 * here), so each core keeps all of them with its share of the activations. */
#define MIN_PART_FLOPS 1e7
#define MIN_PART_STEP_FLOPS 2e5
#define MIN_PART_COLUMNS 32
#define MIN_PART_ROWS 8
#define ROWS_SPLIT_MAX_BYTES (1 << 20)

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

static int max_int(int a, int b)
{
    return a > b ? a : b;
}

int lstm_loop_parts(const lstm_settings *settings, int B, int H, double step_flops, int T,
                    double weight_bytes, int *by_rows)
{
    double by_work = step_flops * T / MIN_PART_FLOPS;
    if (step_flops / MIN_PART_STEP_FLOPS < by_work) {
        by_work = step_flops / MIN_PART_STEP_FLOPS;
    }
    const double limit = by_work < settings->threads ? by_work : settings->threads;
    int wanted = limit < 1 ? 1 : (int)limit;
    if (wanted > 1 && !settings->oversubscribe) {
        const int cpus = lstm_usable_cpus(); /* now: the affinity may have changed */
        if (cpus >= 1) {
            wanted = min_int(wanted, cpus);
        }
    }
    const int rows = settings->split == LSTM_SPLIT_ROWS;
    if (rows || (settings->split == LSTM_SPLIT_AUTO && weight_bytes <= ROWS_SPLIT_MAX_BYTES)) {
        if (B / MIN_PART_ROWS >= wanted || rows) {
            *by_rows = 1;
            return max_int(1, min_int(wanted, B / MIN_PART_ROWS));
        }
    }
    *by_rows = 0;
    return max_int(1, min_int(wanted, H / MIN_PART_COLUMNS));
}

/* Elements of a K x N matrix packed into panels of the plan's dtype: gate panels (gated = the
 * gate count) for the forward's products of a cell with several gates, plain ones
 * (gated = 0) otherwise (lstm_panels.inc, Layout). */
static ptrdiff_t panels_size(const lstm_plan *plan, int K, int N, int gated)
{
    const ptrdiff_t panel = plan->itemsize == 4 ? LSTM_PANEL_F32 : LSTM_PANEL_F64;
    return lstm_panels_count(N, gated, panel) * panel * K;
}

/* The problem's fields of a new plan; every decision starts at its simplest value. */
static void plan_problem(lstm_plan *plan, const lstm_settings *settings, int gates, int T,
                         int B, int In, int H, int itemsize)
{
    const lstm_plan empty = {0};
    *plan = empty;
    plan->gates = gates;
    plan->T = T;
    plan->B = B;
    plan->In = In;
    plan->H = H;
    plan->itemsize = itemsize;
    plan->parts = 1;
    plan->chunk = 1;
    plan->gemm_f32 = settings->gemm_f32;
    plan->gemm_f64 = settings->gemm_f64;
    plan->packed = (double)T * B >= PANELS_MIN_ROWS;
}

void lstm_plan_forward(lstm_plan *plan, const lstm_settings *settings, int T, int B, int In,
                       int H, int itemsize, int training)
{
    lstm_plan_forward_cell(plan, settings, 4, T, B, In, H, itemsize, training);
}

void lstm_plan_forward_cell(lstm_plan *plan, const lstm_settings *settings, int gates, int T,
                            int B, int In, int H, int itemsize, int training)
{
    const int G = gates * H, gated = gates == 1 ? 0 : gates;
    const double weight_bytes = (double)G * ((double)H + In) * itemsize;
    plan_problem(plan, settings, gates, T, B, In, H, itemsize);
    plan->training = training;
    int by_rows = 0;
    const int parts = lstm_loop_parts(settings, B, H, 2.0 * B * G * ((double)H + In), T,
                                      weight_bytes, &by_rows);
    if (plan->packed) {
        /* the GEMMs compute whole products: only a packed loop is split */
        plan->parts = parts;
        plan->by_rows = parts > 1 && by_rows;
        if (parts > 1 || (B >= MERGED_MIN_ROWS && weight_bytes <= ROWS_SPLIT_MAX_BYTES)) {
            plan->projection = LSTM_PROJECT_MERGED;
        }
        else if (2.0 * T * B * In * G < SMALL_PRODUCT_FLOPS) {
            plan->projection = LSTM_PROJECT_PACKED;
        }
        plan->w_hh_panels = panels_size(plan, H, G, gated);
        if (plan->projection != LSTM_PROJECT_GEMM) {
            plan->w_ih_panels = panels_size(plan, In, G, gated);
        }
    }
    if (!training) {
        if (plan->projection != LSTM_PROJECT_MERGED) {
            plan->chunk = max_int(1, min_int(T, INFERENCE_CHUNK_ROWS / max_int(B, 1)));
        }
        plan->work = (ptrdiff_t)plan->chunk * B * G + 2 * (ptrdiff_t)B * H;
    }
    if (gates == 3) {
        /* the GRU's step keeps its recurrent product apart [B,G], and in inference its hn */
        plan->work += (ptrdiff_t)B * G + (training ? 0 : (ptrdiff_t)B * H);
    }
    plan->workspace = plan->w_ih_panels + plan->w_hh_panels + plan->work;
}

void lstm_plan_prepacked(lstm_plan *plan)
{
    plan->prepacked = 1;
    plan->workspace -= plan->w_ih_panels + plan->w_hh_panels;
    plan->w_ih_panels = plan->w_hh_panels = 0;
}

void lstm_plan_reduced(lstm_plan *plan, int precision)
{
    assert(plan->prepacked && !plan->training && plan->itemsize == 4 && plan->gates == 4);
    const ptrdiff_t B = plan->B, H = plan->H;
    plan->precision = precision;
    plan->packed = 1; /* the reduced weights exist only in panels */
    plan->projection = LSTM_PROJECT_MERGED;
    plan->chunk = 1;
    plan->operands = lstm_reduced_operands_size(precision, B, plan->In, H);
    plan->work = B * 4 * H + 2 * B * H + plan->parts * plan->operands;
    plan->workspace = plan->work;
}

void lstm_plan_mixed(lstm_plan *plan)
{
    assert(plan->training && plan->itemsize == 4 && plan->gates == 4);
    const ptrdiff_t T = plan->T, B = plan->B, H = plan->H;
    plan->precision = LSTM_BFLOAT16;
    if (plan->backward) {
        plan->work += T * B * 4 * H; /* dz rounded */
    }
    else {
        plan->operands = B * H;
        plan->work += plan->parts * plan->operands;
    }
    plan->workspace = plan->w_ih_panels + plan->w_hh_panels + plan->work + plan->grad_panels;
}

void lstm_plan_backward(lstm_plan *plan, const lstm_settings *settings, int T, int B, int In,
                        int H, int itemsize)
{
    lstm_plan_backward_cell(plan, settings, 4, T, B, In, H, itemsize);
}

void lstm_plan_backward_cell(lstm_plan *plan, const lstm_settings *settings, int gates, int T,
                             int B, int In, int H, int itemsize)
{
    const int G = gates * H;
    plan_problem(plan, settings, gates, T, B, In, H, itemsize);
    plan->training = 1;
    plan->backward = 1;
    int by_rows = 0;
    const int parts = lstm_loop_parts(settings, B, H, 2.0 * B * G * H, T,
                                      (double)G * H * itemsize, &by_rows);
    plan->work = (ptrdiff_t)T * B * G * (gates == 3 ? 2 : 1); /* dz (the GRU's two) */
    if (plan->packed) {
        plan->parts = parts;
        plan->by_rows = parts > 1 && by_rows;
        plan->w_hh_panels = panels_size(plan, G, H, 0);
        if (parts > 1 || 2.0 * T * B * G * (2.0 * In + H) < SMALL_PRODUCT_FLOPS) {
            plan->weight_products = 1;
            plan->grad_panels = panels_size(plan, T * B, In, 0) + panels_size(plan, T * B, H, 0)
                                + panels_size(plan, G, In, 0);
        }
    }
    plan->workspace = plan->w_hh_panels + plan->work + plan->grad_panels;
}
