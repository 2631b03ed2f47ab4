// Argument checks of the pyrobust ops, shared by the CPU kernels and the CUDA binding (host code only:
// this header includes torch).
#pragma once

#include <ATen/core/Reduction.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace pyrobust {

// Checks logits (B, C), target (B,) int64, the C x C table (log_T_t or T_inv) and the reduction code
// (at::Reduction) of a corrected cross-entropy op; `table_name` names the table in messages. The Python
// exception types are those of F.cross_entropy and of pyrobust._checks: a wrong shape is a ValueError
// (TORCH_CHECK_VALUE), a wrong dtype a RuntimeError (TORCH_CHECK). Target values are checked by the CPU
// kernel (IndexError); the CUDA kernel stops with a device-side assertion, as F.cross_entropy on CUDA.
inline void check_loss_inputs(const at::Tensor& logits, const at::Tensor& target, const at::Tensor& table,
                              int64_t reduction, const char* table_name) {
  TORCH_CHECK(reduction == at::Reduction::None || reduction == at::Reduction::Mean || reduction == at::Reduction::Sum,
              "pyrobust: reduction must be 0 (none), 1 (mean) or 2 (sum), got ", reduction);
  TORCH_CHECK_VALUE(logits.dim() == 2, "pyrobust: logits must be 2-D (B, C), got shape ", logits.sizes());
  TORCH_CHECK_VALUE(target.dim() == 1 && target.size(0) == logits.size(0), "pyrobust: target must have shape (",
                    logits.size(0), ",) to match logits ", logits.sizes(), ", got ", target.sizes());
  TORCH_CHECK(target.scalar_type() == at::kLong, "pyrobust: target must be int64, got ", target.scalar_type());
  const int64_t C = logits.size(1);
  TORCH_CHECK_VALUE(table.dim() == 2 && table.size(0) == C && table.size(1) == C, "pyrobust: ", table_name,
                    " must be ", C, " x ", C, " for logits with ", C, " classes, got ", table.sizes());
  const auto table_dtype = logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(table.scalar_type() == table_dtype, "pyrobust: ", table_name, " must be ", table_dtype,
              " for ", logits.scalar_type(), " logits, got ", table.scalar_type());
  TORCH_CHECK(logits.device() == target.device() && logits.device() == table.device(),
              "pyrobust: logits, target and ", table_name, " must be on one device, got ", logits.device(),
              ", ", target.device(), ", ", table.device());
  TORCH_CHECK(logits.is_contiguous() && target.is_contiguous() && table.is_contiguous(),
              "pyrobust: logits, target and ", table_name, " must be contiguous");
}

inline void check_scale_grad_inputs(const at::Tensor& grad, const at::Tensor& grad_loss) {
  TORCH_CHECK(grad.dim() == 2, "pyrobust: scale_grad expects grad of shape (B, C), got ", grad.sizes());
  TORCH_CHECK(grad_loss.dim() == 0 || (grad_loss.dim() == 1 && grad_loss.size(0) == grad.size(0)),
              "pyrobust: scale_grad expects grad_loss of shape () or (", grad.size(0), ",), got ", grad_loss.sizes());
  TORCH_CHECK(grad.device() == grad_loss.device(), "pyrobust: grad and grad_loss must be on one device");
  TORCH_CHECK(grad_loss.is_floating_point(), "pyrobust: grad_loss must be floating point");
}

inline void check_scale_grad_inplace_inputs(const at::Tensor& grad, const at::Tensor& grad_loss) {
  check_scale_grad_inputs(grad, grad_loss);
  TORCH_CHECK(grad_loss.dim() == 0, "pyrobust: scale_grad_ expects a scalar grad_loss, got ", grad_loss.sizes());
  TORCH_CHECK(grad.is_contiguous(), "pyrobust: scale_grad_ expects a contiguous grad");
}

}  // namespace pyrobust
