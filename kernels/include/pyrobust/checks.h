// Argument checks of the pyrobust ops, shared by the CPU kernels and the CUDA binding (host code only:
// this header includes torch).
#pragma once

#include <ATen/core/Reduction.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>

namespace pyrobust {

// Checks logits (B, C) with target (B,) int64, or K-dimensional logits (N, C, S) (the positions d1 ... dK
// flattened into S) with target (N, S); the C x C table (log_T_t or T_inv) and the reduction code
// (at::Reduction) of a corrected cross-entropy op; `table_name` names the table in messages. The Python
// exception types are those of F.cross_entropy and of pyrobust._checks: a wrong shape is a ValueError
// (TORCH_CHECK_VALUE), a wrong dtype a RuntimeError (TORCH_CHECK). Target values are checked by the CPU
// kernel (IndexError); the CUDA kernel stops with a device-side assertion, as F.cross_entropy on CUDA.
inline void check_loss_inputs(const at::Tensor& logits, const at::Tensor& target, const at::Tensor& table,
                              int64_t reduction, const char* table_name) {
  TORCH_CHECK(reduction == at::Reduction::None || reduction == at::Reduction::Mean || reduction == at::Reduction::Sum,
              "pyrobust: reduction must be 0 (none), 1 (mean) or 2 (sum), got ", reduction);
  TORCH_CHECK_VALUE(logits.dim() == 2 || logits.dim() == 3, "pyrobust: logits must be 2-D (B, C) or 3-D (N, C, S), got shape ",
                    logits.sizes());
  if (logits.dim() == 2) {
    TORCH_CHECK_VALUE(target.dim() == 1 && target.size(0) == logits.size(0), "pyrobust: target must have shape (",
                      logits.size(0), ",) to match logits ", logits.sizes(), ", got ", target.sizes());
  } else {
    TORCH_CHECK_VALUE(target.dim() == 2 && target.size(0) == logits.size(0) && target.size(1) == logits.size(2),
                      "pyrobust: target must have shape (", logits.size(0), ", ", logits.size(2), ") to match logits ",
                      logits.sizes(), ", got ", target.sizes());
  }
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

// Checks the optional per-class inputs of a corrected cross-entropy op, after check_loss_inputs: T_t (C x C,
// forward only: exp(log_T_t), the cache of the one-exp path), weight and offset (C,: class weights;
// backward only: a row added to every row of T_inv), each of the table's dtype, on the logits' device and
// contiguous.
inline void check_class_inputs(const at::Tensor& logits, const at::Tensor& table, const std::optional<at::Tensor>& T_t,
                               const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& offset,
                               const char* table_name) {
  const int64_t C = logits.size(1);
  auto check = [&](const std::optional<at::Tensor>& t, const char* name, bool square) {
    if (!t.has_value() || !t->defined()) return;
    if (square) {
      TORCH_CHECK_VALUE(t->dim() == 2 && t->size(0) == C && t->size(1) == C, "pyrobust: ", name, " must be ", C,
                        " x ", C, " like ", table_name, ", got ", t->sizes());
    } else {
      TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == C, "pyrobust: ", name, " must have shape (", C,
                        ",) for logits with ", C, " classes, got ", t->sizes());
    }
    TORCH_CHECK(t->scalar_type() == table.scalar_type(), "pyrobust: ", name, " must be ", table.scalar_type(),
                " like ", table_name, ", got ", t->scalar_type());
    TORCH_CHECK(t->device() == logits.device(), "pyrobust: ", name, " must be on the logits' device ",
                logits.device(), ", got ", t->device());
    TORCH_CHECK(t->is_contiguous(), "pyrobust: ", name, " must be contiguous");
  };
  check(T_t, "T_t", true);
  check(weight, "weight", false);
  check(offset, "offset", false);
}

// row_grad, the incoming gradient of per-row losses (B,), of the table's dtype; only with reduction none.
inline void check_row_grad(const at::Tensor& logits, const at::Tensor& table, const std::optional<at::Tensor>& row_grad,
                           int64_t reduction) {
  if (!row_grad.has_value() || !row_grad->defined()) return;
  TORCH_CHECK(reduction == at::Reduction::None, "pyrobust: row_grad weighs per-row losses: reduction must be 0 (none)");
  TORCH_CHECK_VALUE(row_grad->dim() == 1 && row_grad->size(0) == logits.size(0), "pyrobust: row_grad must have shape (",
                    logits.size(0), ",), got ", row_grad->sizes());
  TORCH_CHECK(row_grad->scalar_type() == table.scalar_type(), "pyrobust: row_grad must be ", table.scalar_type(),
              ", got ", row_grad->scalar_type());
  TORCH_CHECK(row_grad->device() == logits.device() && row_grad->is_contiguous(),
              "pyrobust: row_grad must be contiguous, on the logits' device");
}

// grad (B, C) with grad_loss () or (B,); or grad (N, C, S) with grad_loss () or (N, S).
inline void check_scale_grad_inputs(const at::Tensor& grad, const at::Tensor& grad_loss) {
  TORCH_CHECK(grad.dim() == 2 || grad.dim() == 3, "pyrobust: scale_grad expects grad of shape (B, C) or (N, C, S), got ",
              grad.sizes());
  const bool per_row = grad.dim() == 2 ? (grad_loss.dim() == 1 && grad_loss.size(0) == grad.size(0))
                                       : (grad_loss.dim() == 2 && grad_loss.size(0) == grad.size(0) &&
                                          grad_loss.size(1) == grad.size(2));
  TORCH_CHECK(grad_loss.dim() == 0 || per_row, "pyrobust: scale_grad expects grad_loss of shape () or that of the ",
              "per-row losses for grad ", grad.sizes(), ", got ", grad_loss.sizes());
  TORCH_CHECK(grad.device() == grad_loss.device(), "pyrobust: grad and grad_loss must be on one device");
  TORCH_CHECK(grad_loss.is_floating_point(), "pyrobust: grad_loss must be floating point");
}

inline void check_scale_grad_inplace_inputs(const at::Tensor& grad, const at::Tensor& grad_loss) {
  check_scale_grad_inputs(grad, grad_loss);
  TORCH_CHECK(grad_loss.dim() == 0, "pyrobust: scale_grad_ expects a scalar grad_loss, got ", grad_loss.sizes());
  TORCH_CHECK(grad.is_contiguous(), "pyrobust: scale_grad_ expects a contiguous grad");
}

}  // namespace pyrobust
