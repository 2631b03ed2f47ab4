// The CPU kernels for AVX-512 F/BW/VL/DQ (Skylake-X and later): setup.py compiles this file with -mavx512f
// -mavx512bw -mavx512vl -mavx512dq -mfma.
#define PYROBUST_CPU_CAPABILITY avx512
#include "../kernels.cpp"
