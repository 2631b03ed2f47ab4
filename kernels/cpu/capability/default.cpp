// The CPU kernels for baseline x86-64 (and the only build on other architectures): no extra flags.
#define PYROBUST_CPU_CAPABILITY default
#include "../kernels.cpp"
