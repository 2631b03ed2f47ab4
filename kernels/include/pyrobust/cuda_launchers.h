// Host-side launchers of the pyrobust CUDA kernels (kernels/cuda/corrected_ce_kernels.cu).
//
// Plain C++ over raw pointers so that the kernels compile with nvcc alone and the torch binding
// (kernels/cuda/binding.cpp) stays a thin layer of checks and allocations. Every launcher enqueues its work
// on `stream` and returns the launch status (cudaSuccess, or the error to raise); none synchronises.
//
// Types, by the logits' dtype:
//   Dtype::         logits / grad      log_T_t, T_inv, loss, grad_loss, scale (accumulation type)
//   kFloat32        float              float
//   kFloat16        __half (fp16)      float
//   kBFloat16       __nv_bfloat16      float
//   kFloat64        double             double
// All arrays are dense and row-major; logits and grad are (B, C), the tables (C, C), target and grad_loss
// (B,), weight and offset (C,) of the accumulation type.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace pyrobust {
namespace cuda {

enum class Dtype : int { kFloat32, kFloat64, kFloat16, kBFloat16 };

// How the per-row losses are reduced; the codes of at::Reduction (and F.cross_entropy's `reduction`).
enum class Reduction : int { kNone = 0, kMean = 1, kSum = 2 };

// Scratch bytes that a reduced loss (kMean, kSum) needs, for `batch` rows: the divisor of the mean and
// one partial sum per block of rows, so that the loss is reduced by the loss kernel itself, in a fixed
// order (the same bits on every run). The launchers initialise it; its contents need not be.
size_t reduced_loss_workspace_bytes(int64_t batch);

// Forward correction (paper eq. 5), one row per sample i with y = target[i] and w = weight[y] (1 if
// weight is null):
//   loss_i = w (lse(h_i) - lse(h_i + log_T_t[y]))    (log_T_t[y, j] = log T[j, y], -inf where T is 0)
//   grad[i] = w (softmax(h_i) - softmax(h_i + log_T_t[y])) / n
// kNone writes loss_i to loss[i] (n = 1); kSum writes sum_i loss_i to loss[0] (n = 1); kMean writes
// sum_i loss_i / n to loss[0], with n the number of rows not ignored, or the sum of their weights (the loss is
// 0 / 0 = nan, and the gradient 0, when every row is; n is counted on the device, so nothing synchronises).
// The reduced forms need `workspace` (reduced_loss_workspace_bytes(batch) bytes); kNone takes null. Rows
// with y == ignore_index get loss 0 and a zero gradient row. Any other y outside [0, C) is a device-side
// assertion, as in PyTorch's own cross-entropy: the caller validates targets when it wants a recoverable
// error. A row whose largest logit is +inf or NaN (or whose logits are all -inf) gets a NaN loss and
// gradient.
cudaError_t forward_corrected_ce(Dtype dtype, const void* logits, const int64_t* target, const void* log_T_t,
                                 const void* weight, int64_t batch, int64_t num_classes, int64_t ignore_index,
                                 Reduction reduction, void* workspace, void* loss, void* grad, cudaStream_t stream);

// Backward correction (Theorem 1), with t_j = (T_inv[y, j] + offset[j]) weight[j] (offset and weight (C,),
// each optional: 0 and 1 if null) and r = sum_j t_j:
//   loss_i = sum_j t_j (lse(h_i) - h_ij)             (a term with t_j = 0 is 0, also where h_ij = -inf)
//   grad[i] = (softmax(h_i) * r - t) / n
// Reductions (n: rows not ignored, or the sum of weight[y] over them), ignore_index, out-of-range targets
// and non-finite rows as for forward_corrected_ce.
cudaError_t backward_corrected_ce(Dtype dtype, const void* logits, const int64_t* target, const void* T_inv,
                                  const void* weight, const void* offset, int64_t batch, int64_t num_classes,
                                  int64_t ignore_index, Reduction reduction, void* workspace, void* loss, void* grad,
                                  cudaStream_t stream);

// out[i, j] = grad[i, j] * grad_loss[i]: the backward of both losses. `out` must not overlap `grad`.
cudaError_t scale_grad(Dtype dtype, const void* grad, const void* grad_loss, int64_t batch, int64_t num_classes,
                       void* out, cudaStream_t stream);

// grad[k] *= *scale for the numel elements of grad, in place; `scale` is one value of the accumulation
// type, on the device. Where *scale == 1 the array is not touched.
cudaError_t scale_grad_inplace(Dtype dtype, void* grad, const void* scale, int64_t numel, cudaStream_t stream);

}  // namespace cuda
}  // namespace pyrobust
