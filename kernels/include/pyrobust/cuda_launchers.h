// Host-side launchers of the pyrobust CUDA kernels (kernels/cuda/corrected_ce_kernels.cu).
//
// Plain C++ over raw pointers so that the kernels compile with nvcc alone and the torch binding
// (kernels/cuda/binding.cpp) stays a thin layer of checks and allocations. Every launcher enqueues its work
// on `stream` and returns the launch status (cudaSuccess, or the error to raise); none synchronises.
//
// Types, by the logits' dtype:
//   Dtype::         logits / grad      log_T_t, T_inv, loss, grad_loss, grad_scale (accumulation type)
//   kFloat32        float              float
//   kFloat16        __half (fp16)      float
//   kBFloat16       __nv_bfloat16      float
//   kFloat64        double             double
// All arrays are dense and row-major; logits and grad are (B, C), the tables (C, C), loss, target and
// grad_loss (B,); grad_scale is one value, or null for 1 (a device pointer: the divisor of a "mean" is
// counted on the device, without a synchronisation).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace pyrobust {
namespace cuda {

enum class Dtype : int { kFloat32, kFloat64, kFloat16, kBFloat16 };

// Forward correction (paper eq. 5), one row per sample i with y = target[i]:
//   loss[i] = lse(h_i) - lse(h_i + log_T_t[y])        (log_T_t[y, j] = log T[j, y], -inf where T is 0)
//   grad[i] = grad_scale * (softmax(h_i) - softmax(h_i + log_T_t[y]))
// Rows with y == ignore_index get loss 0 and a zero gradient row. Any other y outside [0, C) is a
// device-side assertion, as in PyTorch's own cross-entropy: the caller validates targets when it wants
// a recoverable error.
cudaError_t forward_corrected_ce(Dtype dtype, const void* logits, const int64_t* target, const void* log_T_t,
                                 int64_t batch, int64_t num_classes, int64_t ignore_index, const void* grad_scale,
                                 void* loss, void* grad, cudaStream_t stream);

// Backward correction (Theorem 1), with r = sum_j T_inv[y, j]:
//   loss[i] = sum_j T_inv[y, j] (lse(h_i) - h_ij)
//   grad[i] = grad_scale * (softmax(h_i) * r - T_inv[y])
// ignore_index and out-of-range targets as for forward_corrected_ce.
cudaError_t backward_corrected_ce(Dtype dtype, const void* logits, const int64_t* target, const void* T_inv,
                                  int64_t batch, int64_t num_classes, int64_t ignore_index, const void* grad_scale,
                                  void* loss, void* grad, cudaStream_t stream);

// out[i, j] = grad[i, j] * grad_loss[i]: the backward of both losses. `out` must not overlap `grad`.
cudaError_t scale_grad(Dtype dtype, const void* grad, const void* grad_loss, int64_t batch, int64_t num_classes,
                       void* out, cudaStream_t stream);

// grad[k] *= *scale for the numel elements of grad, in place; `scale` is one value of the accumulation
// type, on the device. Where *scale == 1 the array is not touched.
cudaError_t scale_grad_inplace(Dtype dtype, void* grad, const void* scale, int64_t numel, cudaStream_t stream);

}  // namespace cuda
}  // namespace pyrobust
