// CUDA implementations of the pyrobust ops: argument checks (shared with the CPU kernels), device guard,
// current stream, output allocation, then the launchers of corrected_ce_kernels.cu. Compiled only where
// torch is a CUDA build (setup.py); all arithmetic lives in the .cu file.
//
// Out-of-range targets are not checked here: a host-side check needs the targets on the host, i.e. a
// device-to-host copy and a stream synchronisation on every call, which would stall the CPU's queue of
// kernels and forbid CUDA-graph capture. The kernel stops with a device-side assertion instead, which is
// F.cross_entropy's behaviour on CUDA: no IndexError (that is the CPU's), but a RuntimeError ("device-side
// assert triggered") at the next synchronisation, after which the CUDA context is unusable. Callers that
// want a recoverable IndexError validate first (pyrobust._checks.check_targets).
//
// Not here: the gradient with respect to T (_forward_corrected_ce_table_grad), fused on CPU only; on CUDA
// pyrobust's losses run the reference for it (pyrobust._ops, with a one-time warning). The column
// log-softmax of a learnable T runs on CUDA as ATen ops (its CompositeExplicitAutograd kernel, ops.cpp).
#include <ATen/core/Reduction.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mul.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <tuple>

#include "pyrobust/checks.h"
#include "pyrobust/cuda_launchers.h"

namespace pyrobust {
namespace {

static_assert(static_cast<int>(cuda::Reduction::kNone) == at::Reduction::None &&
                  static_cast<int>(cuda::Reduction::kMean) == at::Reduction::Mean &&
                  static_cast<int>(cuda::Reduction::kSum) == at::Reduction::Sum,
              "the launchers' reduction codes are at::Reduction's");

cuda::Dtype kernel_dtype(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return cuda::Dtype::kFloat32;
    case at::kDouble:
      return cuda::Dtype::kFloat64;
    case at::kHalf:
      return cuda::Dtype::kFloat16;
    case at::kBFloat16:
      return cuda::Dtype::kBFloat16;
    default:
      TORCH_CHECK(false, "pyrobust: the CUDA kernels take float32, float64, float16 or bfloat16 logits, got ", type);
  }
}

// Losses (and the loss gradient) are float64 for float64 logits and float32 otherwise: 16-bit logits
// accumulate in float32.
at::ScalarType accumulate_type(at::ScalarType type) { return type == at::kDouble ? at::kDouble : at::kFloat; }

// Both corrections through one launcher signature (the forward correction takes no offset).
using CorrectedCELauncher = cudaError_t (*)(cuda::Dtype, const void*, const int64_t*, const void*, const void*,
                                            const void*, int64_t, int64_t, int64_t, cuda::Reduction, void*, void*,
                                            void*, cudaStream_t);

cudaError_t launch_forward(cuda::Dtype dtype, const void* logits, const int64_t* target, const void* table,
                           const void* weight, const void* /*offset*/, int64_t batch, int64_t num_classes,
                           int64_t ignore_index, cuda::Reduction reduction, void* workspace, void* loss, void* grad,
                           cudaStream_t stream) {
  return cuda::forward_corrected_ce(dtype, logits, target, table, weight, batch, num_classes, ignore_index, reduction,
                                    workspace, loss, grad, stream);
}

const void* data_or_null(const std::optional<at::Tensor>& t) {
  return t.has_value() && t->defined() ? t->const_data_ptr() : nullptr;
}

std::tuple<at::Tensor, at::Tensor> corrected_ce_cuda(const at::Tensor& logits, const at::Tensor& target,
                                                     const at::Tensor& table, int64_t ignore_index, int64_t reduction,
                                                     const std::optional<at::Tensor>& T_t,
                                                     const std::optional<at::Tensor>& weight,
                                                     const std::optional<at::Tensor>& offset, const char* table_name,
                                                     CorrectedCELauncher launch) {
  check_loss_inputs(logits, target, table, reduction, table_name);
  check_class_inputs(logits, table, T_t, weight, offset, table_name);  // T_t: a CPU cache, unused here
  TORCH_CHECK(logits.is_cuda(), "pyrobust: the CUDA kernels need CUDA tensors, got ", logits.device());
  TORCH_CHECK_VALUE(logits.dim() == 2, "pyrobust: the CUDA kernels take logits (B, C), got ", logits.sizes(),
                    "; pyrobust's losses flatten K-dimensional logits for them");
  const cuda::Dtype dtype = kernel_dtype(logits.scalar_type());
  const int64_t B = logits.size(0), C = logits.size(1);
  TORCH_CHECK(C <= std::numeric_limits<int32_t>::max() / 2, "pyrobust: the CUDA kernels take at most ",
              std::numeric_limits<int32_t>::max() / 2, " classes, got ", C);

  const c10::cuda::CUDAGuard device_guard(logits.device());
  // The kernels reduce the loss themselves (and count a mean's rows on the device): no torch ops here, so
  // a call is two launches, with nothing to synchronise.
  const bool reduced = reduction != at::Reduction::None;
  const auto acc = logits.options().dtype(accumulate_type(logits.scalar_type()));
  at::Tensor loss = reduced ? at::empty({}, acc) : at::empty({B}, acc);
  at::Tensor grad = at::empty({B, C}, logits.options());
  at::Tensor workspace;
  if (reduced) {
    const auto bytes = static_cast<int64_t>(cuda::reduced_loss_workspace_bytes(B));
    workspace = at::empty({bytes}, logits.options().dtype(at::kByte));
  }
  C10_CUDA_CHECK(launch(dtype, logits.const_data_ptr(), target.const_data_ptr<int64_t>(), table.const_data_ptr(),
                        data_or_null(weight), data_or_null(offset), B, C, ignore_index,
                        static_cast<cuda::Reduction>(reduction), reduced ? workspace.mutable_data_ptr() : nullptr,
                        loss.mutable_data_ptr(), grad.mutable_data_ptr(), c10::cuda::getCurrentCUDAStream()));
  return {loss, grad};
}

std::tuple<at::Tensor, at::Tensor> forward_corrected_ce_cuda(const at::Tensor& logits, const at::Tensor& target,
                                                             const at::Tensor& log_T_t, int64_t ignore_index,
                                                             int64_t reduction, const std::optional<at::Tensor>& T_t,
                                                             const std::optional<at::Tensor>& weight) {
  return corrected_ce_cuda(logits, target, log_T_t, ignore_index, reduction, T_t, weight, std::nullopt, "log_T_t",
                           &launch_forward);
}

std::tuple<at::Tensor, at::Tensor> backward_corrected_ce_cuda(const at::Tensor& logits, const at::Tensor& target,
                                                              const at::Tensor& T_inv, int64_t ignore_index,
                                                              int64_t reduction, const std::optional<at::Tensor>& weight,
                                                              const std::optional<at::Tensor>& offset) {
  return corrected_ce_cuda(logits, target, T_inv, ignore_index, reduction, std::nullopt, weight, offset, "T_inv",
                           &cuda::backward_corrected_ce);
}

at::Tensor scale_grad_cuda(const at::Tensor& grad_in, const at::Tensor& grad_loss_in) {
  check_scale_grad_inputs(grad_in, grad_loss_in);
  if (grad_in.dim() == 3) {  // (N, C, S): not produced by the CUDA kernels; plain ATen for completeness
    return at::mul(grad_in, grad_loss_in.to(grad_in.scalar_type()).reshape({grad_loss_in.dim() == 0 ? 1 : grad_in.size(0), 1,
                                                                     grad_loss_in.dim() == 0 ? 1 : grad_in.size(2)}));
  }
  TORCH_CHECK(grad_in.is_cuda(), "pyrobust: the CUDA kernels need CUDA tensors, got ", grad_in.device());
  const cuda::Dtype dtype = kernel_dtype(grad_in.scalar_type());
  const c10::cuda::CUDAGuard device_guard(grad_in.device());
  const at::Tensor grad = grad_in.contiguous();
  // A scalar (reduced loss) or an expanded one (the gradient of a "mean" taken in Python) becomes a plain
  // (B,) vector: one small copy.
  const at::Tensor grad_loss = grad_loss_in.expand({grad.size(0)}).to(accumulate_type(grad.scalar_type())).contiguous();
  at::Tensor out = at::empty(grad.sizes(), grad.options());
  C10_CUDA_CHECK(cuda::scale_grad(dtype, grad.const_data_ptr(), grad_loss.const_data_ptr(), grad.size(0),
                                  grad.size(1), out.mutable_data_ptr(), c10::cuda::getCurrentCUDAStream()));
  return out;
}

void scale_grad_inplace_cuda(const at::Tensor& grad, const at::Tensor& grad_loss_in) {
  check_scale_grad_inplace_inputs(grad, grad_loss_in);
  TORCH_CHECK(grad.is_cuda(), "pyrobust: the CUDA kernels need CUDA tensors, got ", grad.device());
  const cuda::Dtype dtype = kernel_dtype(grad.scalar_type());
  const c10::cuda::CUDAGuard device_guard(grad.device());
  const at::Tensor grad_loss = grad_loss_in.to(accumulate_type(grad.scalar_type()));
  C10_CUDA_CHECK(cuda::scale_grad_inplace(dtype, grad.mutable_data_ptr(), grad_loss.const_data_ptr(), grad.numel(),
                                          c10::cuda::getCurrentCUDAStream()));
}

}  // namespace

TORCH_LIBRARY_IMPL(pyrobust, CUDA, m) {
  m.impl("_forward_corrected_ce", &forward_corrected_ce_cuda);
  m.impl("_backward_corrected_ce", &backward_corrected_ce_cuda);
  m.impl("scale_grad", &scale_grad_cuda);
  m.impl("scale_grad_", &scale_grad_inplace_cuda);
}

}  // namespace pyrobust
