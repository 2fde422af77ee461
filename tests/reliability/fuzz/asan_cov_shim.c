/*
 * asan_cov_shim.c -- lets atheris's libFuzzer see coverage while gcc's ASan runtime is
 * preloaded (.ci/fuzz builds it and puts it first in LD_PRELOAD).
 *
 * gcc's libasan exports weak no-op definitions of the __sanitizer_cov_* callbacks.  Preloaded,
 * it comes before atheris's core_with_libfuzzer module in the symbol search order, so atheris's
 * own calls to __sanitizer_cov_8bit_counters_init and friends bind to those no-ops and libFuzzer
 * sees no coverage ("no interesting inputs were found").  (Atheris ships a merged
 * ASan+libFuzzer runtime only when it is built with clang, which this machine lacks.)
 *
 * This shim, preloaded before libasan, defines the callbacks and forwards each one to the
 * definition inside the module named by $ATHERIS_CORE.  Forwarding is a tail call (-O2), so
 * the return address that libFuzzer reads as the comparison's site is the caller's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void *resolve(const char *name)
{
    static void *core = NULL;
    if (core == NULL) {
        const char *path = getenv("ATHERIS_CORE");
        core = path ? dlopen(path, RTLD_LAZY | RTLD_NOLOAD) : NULL;
        if (core == NULL) {
            fprintf(stderr, "asan_cov_shim: $ATHERIS_CORE (%s) is not loaded\n",
                    path ? path : "unset");
            abort();
        }
    }
    void *fn = dlsym(core, name);
    if (fn == NULL) {
        fprintf(stderr, "asan_cov_shim: %s not found in $ATHERIS_CORE\n", name);
        abort();
    }
    return fn;
}

/* FORWARD(name, parameters, arguments): define name, forward to atheris's definition. */
#define FORWARD(name, params, args)                                                       \
    void name params                                                                      \
    {                                                                                     \
        static void(*target) params = NULL;                                               \
        if (target == NULL) {                                                             \
            target = (void(*) params)resolve(#name);                                      \
        }                                                                                 \
        target args;                                                                      \
    }

FORWARD(__sanitizer_cov_8bit_counters_init, (uint8_t *start, uint8_t *stop), (start, stop))
FORWARD(__sanitizer_cov_pcs_init, (const uintptr_t *begin, const uintptr_t *end), (begin, end))
FORWARD(__sanitizer_cov_trace_cmp1, (uint8_t a, uint8_t b), (a, b))
FORWARD(__sanitizer_cov_trace_cmp2, (uint16_t a, uint16_t b), (a, b))
FORWARD(__sanitizer_cov_trace_cmp4, (uint32_t a, uint32_t b), (a, b))
FORWARD(__sanitizer_cov_trace_cmp8, (uint64_t a, uint64_t b), (a, b))
FORWARD(__sanitizer_cov_trace_const_cmp1, (uint8_t a, uint8_t b), (a, b))
FORWARD(__sanitizer_cov_trace_const_cmp2, (uint16_t a, uint16_t b), (a, b))
FORWARD(__sanitizer_cov_trace_const_cmp4, (uint32_t a, uint32_t b), (a, b))
FORWARD(__sanitizer_cov_trace_const_cmp8, (uint64_t a, uint64_t b), (a, b))
FORWARD(__sanitizer_cov_trace_div4, (uint32_t value), (value))
FORWARD(__sanitizer_cov_trace_div8, (uint64_t value), (value))
FORWARD(__sanitizer_cov_trace_gep, (uintptr_t index), (index))
FORWARD(__sanitizer_cov_trace_pc_indir, (uintptr_t callee), (callee))
FORWARD(__sanitizer_cov_trace_switch, (uint64_t value, uint64_t *cases), (value, cases))
