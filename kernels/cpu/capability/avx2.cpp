// The CPU kernels for AVX2 + FMA (Haswell and later): setup.py compiles this file with -mavx2 -mfma.
#define PYROBUST_CPU_CAPABILITY avx2
#include "../kernels.cpp"
