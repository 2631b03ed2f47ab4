// One instruction-set build of the CPU kernels: corrected_ce.cpp and dropout.cpp compiled into a library of
// their own, pyrobust/_cpu_<capability>*.so, that exports only their table (pyrobust/cpu_kernels.h).
// setup.py compiles it once per capability through the wrappers in kernels/cpu/capability/ (distinct source
// files, hence distinct objects), each with its own flags: default (baseline x86-64), avx2 (-mavx2 -mfma),
// avx512 (-mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma); pyrobust._C picks one at load
// (kernels/cpu/dispatch.cpp).
//
// Why libraries of their own, loaded with RTLD_LOCAL, rather than per-file flags or `#pragma GCC target` in
// one library: a file compiled with -mavx2 also emits AVX2 copies of every inline function it uses from
// headers (std::vector, c10), and the linker keeps one copy of each for the whole library, possibly the
// AVX2 one, which the baseline kernels would then call: SIGILL on an older CPU. Here each build links its
// own copies, hidden (-fvisibility=hidden), and its static initialisers run only once it is chosen.
//
// PYROBUST_CPU_CAPABILITY names the build (the wrappers define it; benchmarks/cpu_dispatch.py compiles this
// file with -march=native -DPYROBUST_CPU_CAPABILITY=native). at::vec picks its SIMD implementation from
// the CPU_CAPABILITY macros, which PyTorch sets only for its own per-ISA builds of its kernels: without
// them Vectorized is a plain array with scalar std::exp. They are derived here from what the compiler
// targets, and a wrapper whose flags do not match its name does not compile.
#if !defined(PYROBUST_CPU_CAPABILITY)
#error "define PYROBUST_CPU_CAPABILITY (default, avx2, avx512 or native): see kernels/cpu/capability/"
#endif

#define PYROBUST_CAPABILITY_ID_default 1
#define PYROBUST_CAPABILITY_ID_avx2 2
#define PYROBUST_CAPABILITY_ID_avx512 3
#define PYROBUST_CAPABILITY_ID_native 4
#define PYROBUST_CAT2(a, b) a##b
#define PYROBUST_CAT(a, b) PYROBUST_CAT2(a, b)
#define PYROBUST_CAPABILITY_ID PYROBUST_CAT(PYROBUST_CAPABILITY_ID_, PYROBUST_CPU_CAPABILITY)
#define PYROBUST_STR2(x) #x
#define PYROBUST_STR(x) PYROBUST_STR2(x)

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && \
    defined(__FMA__)
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#elif defined(__AVX2__) && defined(__FMA__)
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#else
#define CPU_CAPABILITY DEFAULT
#endif

#if PYROBUST_CAPABILITY_ID == PYROBUST_CAPABILITY_ID_avx2 && !defined(CPU_CAPABILITY_AVX2)
#error "the avx2 build needs -mavx2 -mfma (and not the AVX-512 flags)"
#elif PYROBUST_CAPABILITY_ID == PYROBUST_CAPABILITY_ID_avx512 && !defined(CPU_CAPABILITY_AVX512)
#error "the avx512 build needs -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma"
#elif PYROBUST_CAPABILITY_ID != PYROBUST_CAPABILITY_ID_default && \
    PYROBUST_CAPABILITY_ID != PYROBUST_CAPABILITY_ID_avx2 &&       \
    PYROBUST_CAPABILITY_ID != PYROBUST_CAPABILITY_ID_avx512 && PYROBUST_CAPABILITY_ID != PYROBUST_CAPABILITY_ID_native
#error "PYROBUST_CPU_CAPABILITY must be default, avx2, avx512 or native"
#endif

#include "pyrobust/cpu_kernels.h"

#include "corrected_ce.cpp"
#include "dropout.cpp"

extern "C" __attribute__((visibility("default"))) const pyrobust::CpuKernels* pyrobust_cpu_kernels() {
  static const pyrobust::CpuKernels table{
      pyrobust::kCpuKernelsAbi,
      PYROBUST_STR(PYROBUST_CPU_CAPABILITY),
      &pyrobust::forward_corrected_ce_cpu,
      &pyrobust::forward_corrected_ce_table_grad_cpu,
      &pyrobust::backward_corrected_ce_cpu,
      &pyrobust::forward_corrected_ce_learnable_cpu,
      &pyrobust::scale_grad_cpu,
      &pyrobust::scale_grad_inplace_cpu,
      &pyrobust::dropout_mask_cpu,
  };
  return &table;
}
