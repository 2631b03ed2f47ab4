// The CPU kernels as a table of functions: what one instruction-set build of them (a library
// pyrobust/_cpu_<capability>*.so, built from kernels/cpu/kernels.cpp) hands to pyrobust._C, which
// registers the CPU dispatch key once and forwards to the table of the capability chosen at load
// (kernels/cpu/dispatch.cpp). Same signatures as the ops of kernels/ops.cpp.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <tuple>

namespace pyrobust {

using OptTensorRef = const std::optional<at::Tensor>&;

struct CpuKernels {
  // Layout check: a library from an older build of another table is refused, not called.
  uint32_t abi;
  const char* capability;  // "default", "avx2", "avx512" (or "native": benchmarks/cpu_dispatch.py)
  std::tuple<at::Tensor, at::Tensor> (*forward)(const at::Tensor& logits, const at::Tensor& target,
                                                const at::Tensor& log_T_t, int64_t ignore_index, int64_t reduction,
                                                OptTensorRef T_t, OptTensorRef weight);
  std::tuple<at::Tensor, at::Tensor, at::Tensor> (*table_grad)(const at::Tensor& logits, const at::Tensor& target,
                                                               const at::Tensor& log_T_t, int64_t ignore_index,
                                                               int64_t reduction, OptTensorRef T_t,
                                                               OptTensorRef weight, OptTensorRef row_grad,
                                                               bool wrt_log);
  std::tuple<at::Tensor, at::Tensor> (*backward)(const at::Tensor& logits, const at::Tensor& target,
                                                 const at::Tensor& T_inv, int64_t ignore_index, int64_t reduction,
                                                 OptTensorRef weight, OptTensorRef offset);
  std::tuple<at::Tensor, at::Tensor, at::Tensor> (*learnable)(const at::Tensor& logits, const at::Tensor& target,
                                                              const at::Tensor& theta_t, int64_t ignore_index,
                                                              int64_t reduction, OptTensorRef weight,
                                                              OptTensorRef row_grad);
  at::Tensor (*scale_grad)(const at::Tensor& grad, const at::Tensor& grad_loss);
  void (*scale_grad_)(const at::Tensor& grad, const at::Tensor& grad_loss);
  at::Tensor (*dropout_mask)(const at::Tensor& self, double p, std::optional<at::Generator> generator);
};

// Bump when CpuKernels changes.
constexpr uint32_t kCpuKernelsAbi = 1;

}  // namespace pyrobust

// Each library exports this one symbol (the rest is hidden), looked up with dlsym.
#define PYROBUST_CPU_KERNELS_SYMBOL "pyrobust_cpu_kernels"
extern "C" const pyrobust::CpuKernels* pyrobust_cpu_kernels();
