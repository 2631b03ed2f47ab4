// The pyrobust custom ops: their schemas, in one place, and the autograd of the losses, which is the same
// for every device. Kernels register per device in kernels/cpu/dispatch.cpp (which forwards to the build of
// the CPU kernels for this CPU's instruction set) and kernels/cuda; fake tensors and autocast are registered
// from Python (pyrobust/_ops_fake.py).
#include <Python.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/graph_task.h>
#include <torch/library.h>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <optional>
#include <tuple>

#include "pyrobust/checks.h"

// Importing pyrobust._C runs the static registrations below; the module itself is empty.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}

TORCH_LIBRARY(pyrobust, m) {
  // The losses, reduced as F.cross_entropy's `reduction` says (at::Reduction's codes: 0 none, (B,); 1 mean;
  // 2 sum). A mean divides by the number of rows whose target is not ignore_index or, with `weight` (C,),
  // by the sum of their classes' weights, as F.cross_entropy does.
  // Forward correction: loss_i = w[y_i] (lse(h_i) - lse(h_i + log T[:, y_i])), with log_T_t[y, j] = log T[j, y].
  // T_t, if given, is exp(log_T_t): a cache that spares the CPU kernel C^2 exps per call (the loss modules
  // keep it). Differentiable with respect to the logits and to log_T_t or T_t (a learnable T; not both),
  // the table's gradient computed in the same pass as the loss (CPU).
  m.def("forward_corrected_ce(Tensor logits, Tensor target, Tensor log_T_t, int ignore_index=-100, "
        "int reduction=1, *, Tensor? T_t=None, Tensor? weight=None) -> Tensor");
  // Backward correction: loss_i = sum_j w[j] (T_inv[y_i, j] + offset[j]) (lse(h_i) - h_ij); `offset` (C,)
  // carries label smoothing (pyrobust.losses.corrected). Differentiable with respect to the logits.
  m.def("backward_corrected_ce(Tensor logits, Tensor target, Tensor T_inv, int ignore_index=-100, "
        "int reduction=1, *, Tensor? weight=None, Tensor? offset=None) -> Tensor");
  // Their per-device kernels: the same loss and, from the same pass, grad = d loss / d logits, so that the
  // backward is at most one multiplication. Not differentiable themselves.
  m.def("_forward_corrected_ce(Tensor logits, Tensor target, Tensor log_T_t, int ignore_index, int reduction, "
        "Tensor? T_t=None, Tensor? weight=None) -> (Tensor loss, Tensor grad)");
  // ... and with grad_table = d loss / d log_T_t (wrt_log) or d loss / d T_t, accumulated by target class
  // (deterministic). With row_grad (B,) (reduction 0 only), grad and grad_table are those of
  // sum_i row_grad[i] loss_i: the backward of a per-row loss.
  m.def("_forward_corrected_ce_table_grad(Tensor logits, Tensor target, Tensor log_T_t, int ignore_index, "
        "int reduction, Tensor? T_t, Tensor? weight, Tensor? row_grad, bool wrt_log) "
        "-> (Tensor loss, Tensor grad, Tensor grad_table)");
  m.def("_backward_corrected_ce(Tensor logits, Tensor target, Tensor T_inv, int ignore_index, int reduction, "
        "Tensor? weight=None, Tensor? offset=None) -> (Tensor loss, Tensor grad)");
  // The backward of both losses: grad * grad_loss[:, None], or grad * grad_loss for a scalar grad_loss.
  m.def("scale_grad(Tensor grad, Tensor grad_loss) -> Tensor");
  // grad *= grad_loss for a scalar grad_loss, in place; nothing at all where grad_loss is 1 (on CUDA the
  // kernel reads it on the device: no synchronisation).
  m.def("scale_grad_(Tensor(a!) grad, Tensor grad_loss) -> ()");
  // The forward correction with a learnable T = softmax(theta, dim=1), from theta_t = theta^T (C x C, the
  // layout the kernels read: column y of T is row y of theta_t): log T[j, y] = theta_t[y, j] - lse_j(theta_t[:,
  // j]). Differentiable with respect to the logits and theta_t, both gradients computed in the same pass as
  // the loss (CPU; no C x C table of T is written).
  m.def("forward_corrected_ce_learnable(Tensor logits, Tensor target, Tensor theta_t, int ignore_index=-100, "
        "int reduction=1, *, Tensor? weight=None) -> Tensor");
  // Its kernel: the loss, grad = d loss / d logits and grad_theta_t; with row_grad as the table-gradient
  // kernel's.
  m.def("_forward_corrected_ce_learnable(Tensor logits, Tensor target, Tensor theta_t, int ignore_index, "
        "int reduction, Tensor? weight, Tensor? row_grad) -> (Tensor loss, Tensor grad, Tensor grad_theta_t)");
  // Inverted-dropout mask shaped like `self`: 1 / (1 - p) where kept (probability 1 - p), else 0; random,
  // from `generator` or torch's default one. Not differentiable (it reads only the shape of `self`).
  m.def("dropout_mask(Tensor self, float p, *, Generator? generator=None) -> Tensor");
  // The instruction set of the CPU kernels in use (kernels/cpu/dispatch.cpp): default, avx2 or avx512, chosen
  // on the first call from the CPU, or from PYROBUST_CPU_CAPABILITY.
  m.def("cpu_capability() -> str");
  // Tests and benchmarks only: switch to the kernels of another capability, or to those of `library` (a build
  // of kernels/cpu/kernels.cpp named `capability`); returns the capability in use before.
  m.def("_use_cpu_kernels(str capability, str? library=None) -> str");
}

namespace pyrobust {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using OptTensor = std::optional<at::Tensor>;

namespace {

using ForwardKernel = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                         int64_t, int64_t, const OptTensor&, const OptTensor&);
using TableGradKernel = std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                       const at::Tensor&, int64_t, int64_t,
                                                                       const OptTensor&, const OptTensor&,
                                                                       const OptTensor&, bool);
using BackwardKernel = ForwardKernel;  // (logits, target, T_inv, ignore_index, reduction, weight, offset)
using LearnableKernel = std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                       const at::Tensor&, int64_t, int64_t,
                                                                       const OptTensor&, const OptTensor&);

template <typename Signature>
c10::TypedOperatorHandle<Signature> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

// The kernels, looked up once.
const c10::TypedOperatorHandle<ForwardKernel>& forward_kernel() {
  static const auto op = find_op<ForwardKernel>("pyrobust::_forward_corrected_ce");
  return op;
}
const c10::TypedOperatorHandle<TableGradKernel>& table_grad_kernel() {
  static const auto op = find_op<TableGradKernel>("pyrobust::_forward_corrected_ce_table_grad");
  return op;
}
const c10::TypedOperatorHandle<BackwardKernel>& backward_kernel() {
  static const auto op = find_op<BackwardKernel>("pyrobust::_backward_corrected_ce");
  return op;
}
const c10::TypedOperatorHandle<LearnableKernel>& learnable_kernel() {
  static const auto op = find_op<LearnableKernel>("pyrobust::_forward_corrected_ce_learnable");
  return op;
}

bool defined(const OptTensor& t) { return t.has_value() && t->defined(); }
OptTensor optional(const at::Tensor& t) { return t.defined() ? OptTensor(t) : std::nullopt; }

// Whether `g` is an ordinary CPU scalar equal to 1, the gradient that `loss.backward()` starts from. Its value
// may be read only for a plain tensor: fake, functional and functorch tensors (torch.compile, torch.func)
// carry dispatch keys beyond these, and a CUDA value would cost a device synchronisation. (Any other tensor
// is multiplied, which is always right.)
bool is_plain_cpu_one(const at::Tensor& g) {
  static const c10::DispatchKeySet plain_cpu{c10::DispatchKey::CPU, c10::DispatchKey::AutogradCPU,
                                             c10::DispatchKey::AutocastCPU, c10::DispatchKey::ADInplaceOrView};
  return g.dim() == 0 && g.key_set() == plain_cpu && g.item<double>() == 1.0;
}

// grad * grad_loss, where grad is a buffer saved by the forward, which nothing but the graph holds:
//   * a reduced loss on CPU whose gradient is 1 (loss.backward()): grad itself, no pass over it at all;
//   * any other scalar gradient, unless the graph is retained: grad scaled in place (on CUDA by a kernel
//     that reads the scalar on the device and leaves the buffer alone when it is 1);
//   * otherwise (per-row gradients, retain_graph=True): scale_grad into a new buffer.
// Autograd then takes the buffer over (as logits.grad, or to accumulate into) only once the graph has
// released it: it counts the graph's reference, and copies the buffer while the graph is retained.
at::Tensor scale_saved_grad(const at::Tensor& grad, const at::Tensor& grad_loss) {
  using Scale = at::Tensor(const at::Tensor&, const at::Tensor&);
  using ScaleInPlace = void(const at::Tensor&, const at::Tensor&);
  static const auto scale_grad = find_op<Scale>("pyrobust::scale_grad");
  static const auto scale_grad_ = find_op<ScaleInPlace>("pyrobust::scale_grad_");
  if (is_plain_cpu_one(grad_loss)) return grad;
  if (grad_loss.dim() == 0 && !torch::autograd::get_current_graph_task_keep_graph()) {
    scale_grad_.call(grad, grad_loss);
    return grad;
  }
  return scale_grad.call(grad, grad_loss);
}

void check_once_differentiable() {
  // The saved gradients are constants to autograd: a second derivative would silently come out as 0.
  TORCH_CHECK(!at::GradMode::is_enabled(), "pyrobust: the fused corrected losses are differentiable once; "
              "double backward (create_graph=True: Hessians, gradient penalties) needs the pure-PyTorch "
              "formulas in pyrobust._reference");
}

// How the forward loss differentiates its table.
enum TableGrad : int64_t { kNoTableGrad = 0, kReducedTableGrad = 1, kPerRowTableGrad = 2 };

}  // namespace

// Autograd of the losses, in C++ so that a training step pays no Python per call. The kernels already
// return d loss / d logits (and d loss / d table), saved here and never handed out: the backward may scale
// them in place. The structs name the node that grad_fn shows, after its loss, as PyTorch names its own
// (NllLossBackward0).
struct ForwardCorrectedCrossEntropyBackward final
    : torch::autograd::Function<ForwardCorrectedCrossEntropyBackward> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& target,
                               const at::Tensor& log_T_t, int64_t ignore_index, int64_t reduction,
                               const OptTensor& T_t, const OptTensor& weight) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->set_materialize_grads(false);
    const bool wrt_log = log_T_t.requires_grad();
    const bool wrt_T = defined(T_t) && T_t->requires_grad();
    ctx->saved_data["wrt_log"] = wrt_log;
    ctx->saved_data["ignore_index"] = ignore_index;
    if (!wrt_log && !wrt_T) {
      auto [loss, grad] = forward_kernel().call(logits, target, log_T_t, ignore_index, reduction, T_t, weight);
      ctx->saved_data["table_grad"] = static_cast<int64_t>(kNoTableGrad);
      ctx->save_for_backward({grad});
      return {loss};
    }
    if (reduction != at::Reduction::None) {
      // One pass: the loss, its gradient for the logits and for the table, both scaled by the backward.
      auto [loss, grad, grad_table] = table_grad_kernel().call(logits, target, log_T_t, ignore_index, reduction, T_t,
                                                               weight, std::nullopt, wrt_log);
      ctx->saved_data["table_grad"] = static_cast<int64_t>(kReducedTableGrad);
      ctx->save_for_backward({grad, grad_table});
      return {loss};
    }
    // Per-row losses: the table's gradient weighs each row by its incoming gradient, known only in the
    // backward, which runs the kernel again with it.
    auto [loss, grad] = forward_kernel().call(logits, target, log_T_t, ignore_index, reduction, T_t, weight);
    ctx->saved_data["table_grad"] = static_cast<int64_t>(kPerRowTableGrad);
    ctx->save_for_backward({logits, target, log_T_t, defined(T_t) ? *T_t : at::Tensor(),
                            defined(weight) ? *weight : at::Tensor()});
    return {loss};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    check_once_differentiable();
    const at::Tensor& grad_loss = grad_outputs[0];
    const bool wrt_log = ctx->saved_data["wrt_log"].toBool();
    const auto kind = ctx->saved_data["table_grad"].toInt();
    const variable_list saved = ctx->get_saved_variables();
    at::Tensor grad_logits, grad_table;  // undefined where the loss received no gradient
    if (grad_loss.defined()) {
      if (kind == kPerRowTableGrad) {
        const at::Tensor row_grad = grad_loss.to(saved[2].scalar_type()).contiguous();
        auto [loss, grad, table] =
            table_grad_kernel().call(saved[0], saved[1], saved[2], ctx->saved_data["ignore_index"].toInt(),
                                     at::Reduction::None, optional(saved[3]), optional(saved[4]), row_grad, wrt_log);
        grad_logits = grad;
        grad_table = table;
      } else {
        grad_logits = scale_saved_grad(saved[0], grad_loss);
        if (kind == kReducedTableGrad) grad_table = scale_saved_grad(saved[1], grad_loss);
      }
    }
    return {grad_logits, at::Tensor(), wrt_log ? grad_table : at::Tensor(), at::Tensor(), at::Tensor(),
            wrt_log ? at::Tensor() : grad_table, at::Tensor()};
  }
};

struct BackwardCorrectedCrossEntropyBackward final
    : torch::autograd::Function<BackwardCorrectedCrossEntropyBackward> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& target,
                               const at::Tensor& T_inv, int64_t ignore_index, int64_t reduction,
                               const OptTensor& weight, const OptTensor& offset) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, grad] = backward_kernel().call(logits, target, T_inv, ignore_index, reduction, weight, offset);
    ctx->save_for_backward({grad});
    return {loss};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    check_once_differentiable();
    const at::Tensor& grad_loss = grad_outputs[0];
    at::Tensor grad_logits;
    if (grad_loss.defined()) grad_logits = scale_saved_grad(ctx->get_saved_variables()[0], grad_loss);
    return {grad_logits, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct ForwardCorrectedCrossEntropyLearnableBackward final
    : torch::autograd::Function<ForwardCorrectedCrossEntropyLearnableBackward> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& target,
                               const at::Tensor& theta_t, int64_t ignore_index, int64_t reduction,
                               const OptTensor& weight) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->set_materialize_grads(false);
    ctx->saved_data["ignore_index"] = ignore_index;
    auto [loss, grad, grad_theta] =
        learnable_kernel().call(logits, target, theta_t, ignore_index, reduction, weight, std::nullopt);
    if (reduction != at::Reduction::None) {
      ctx->saved_data["per_row"] = false;
      ctx->save_for_backward({grad, grad_theta});
    } else {  // the per-row losses' gradients weigh each row by its incoming gradient: run again in the backward
      ctx->saved_data["per_row"] = true;
      ctx->save_for_backward({logits, target, theta_t, defined(weight) ? *weight : at::Tensor()});
    }
    return {loss};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    check_once_differentiable();
    const at::Tensor& grad_loss = grad_outputs[0];
    const variable_list saved = ctx->get_saved_variables();
    at::Tensor grad_logits, grad_theta;
    if (grad_loss.defined()) {
      if (ctx->saved_data["per_row"].toBool()) {
        const at::Tensor row_grad = grad_loss.to(saved[2].scalar_type()).contiguous();
        auto [loss, grad, table] = learnable_kernel().call(saved[0], saved[1], saved[2],
                                                           ctx->saved_data["ignore_index"].toInt(),
                                                           at::Reduction::None, optional(saved[3]), row_grad);
        grad_logits = grad;
        grad_theta = table;
      } else {
        grad_logits = scale_saved_grad(saved[0], grad_loss);
        grad_theta = scale_saved_grad(saved[1], grad_loss);
      }
    }
    return {grad_logits, at::Tensor(), grad_theta, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

namespace {

at::Tensor forward_corrected_ce_autograd(const at::Tensor& logits, const at::Tensor& target, const at::Tensor& log_T_t,
                                         int64_t ignore_index, int64_t reduction, const OptTensor& T_t,
                                         const OptTensor& weight) {
  TORCH_CHECK(!(log_T_t.requires_grad() && defined(T_t) && T_t->requires_grad()),
              "pyrobust: forward_corrected_ce differentiates with respect to log_T_t or to T_t, not both: T_t is "
              "exp(log_T_t); detach one of them");
  TORCH_CHECK(!(defined(weight) && weight->requires_grad()),
              "pyrobust: the fused corrected losses do not differentiate with respect to weight");
  return ForwardCorrectedCrossEntropyBackward::apply(logits, target, log_T_t, ignore_index, reduction, T_t, weight)[0];
}

at::Tensor backward_corrected_ce_autograd(const at::Tensor& logits, const at::Tensor& target, const at::Tensor& T_inv,
                                          int64_t ignore_index, int64_t reduction, const OptTensor& weight,
                                          const OptTensor& offset) {
  TORCH_CHECK(!T_inv.requires_grad() && !(defined(weight) && weight->requires_grad()) &&
                  !(defined(offset) && offset->requires_grad()),
              "pyrobust: the fused backward correction does not differentiate with respect to T_inv, weight or "
              "offset; pass tables that do not require grad (pyrobust's loss functions then use the reference)");
  return BackwardCorrectedCrossEntropyBackward::apply(logits, target, T_inv, ignore_index, reduction, weight, offset)[0];
}

at::Tensor forward_corrected_ce_learnable_autograd(const at::Tensor& logits, const at::Tensor& target,
                                                   const at::Tensor& theta_t, int64_t ignore_index, int64_t reduction,
                                                   const OptTensor& weight) {
  TORCH_CHECK(!(defined(weight) && weight->requires_grad()),
              "pyrobust: the fused corrected losses do not differentiate with respect to weight");
  return ForwardCorrectedCrossEntropyLearnableBackward::apply(logits, target, theta_t, ignore_index, reduction,
                                                              weight)[0];
}

// The kernels have no derivative of their own: differentiating through one is an error, not a silently
// wrong gradient. (The losses' autograd calls them below the autograd keys.)
void check_not_differentiated(const char* name, std::initializer_list<const at::Tensor*> inputs) {
  bool requires_grad = false;
  for (const at::Tensor* t : inputs) requires_grad = requires_grad || (t->defined() && t->requires_grad());
  TORCH_CHECK(!at::GradMode::is_enabled() || !requires_grad, name,
              " has no derivative: differentiate the loss op without the leading underscore");
}

const at::Tensor& or_undefined(const OptTensor& t) {
  static const at::Tensor undefined;
  return defined(t) ? *t : undefined;
}

std::tuple<at::Tensor, at::Tensor> forward_kernel_autograd(const at::Tensor& logits, const at::Tensor& target,
                                                           const at::Tensor& log_T_t, int64_t ignore_index,
                                                           int64_t reduction, const OptTensor& T_t,
                                                           const OptTensor& weight) {
  check_not_differentiated("pyrobust::_forward_corrected_ce", {&logits, &log_T_t, &or_undefined(T_t)});
  at::AutoDispatchBelowADInplaceOrView guard;
  return forward_kernel().call(logits, target, log_T_t, ignore_index, reduction, T_t, weight);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> table_grad_kernel_autograd(
    const at::Tensor& logits, const at::Tensor& target, const at::Tensor& log_T_t, int64_t ignore_index,
    int64_t reduction, const OptTensor& T_t, const OptTensor& weight, const OptTensor& row_grad, bool wrt_log) {
  check_not_differentiated("pyrobust::_forward_corrected_ce_table_grad", {&logits, &log_T_t, &or_undefined(T_t)});
  at::AutoDispatchBelowADInplaceOrView guard;
  return table_grad_kernel().call(logits, target, log_T_t, ignore_index, reduction, T_t, weight, row_grad, wrt_log);
}

std::tuple<at::Tensor, at::Tensor> backward_kernel_autograd(const at::Tensor& logits, const at::Tensor& target,
                                                            const at::Tensor& T_inv, int64_t ignore_index,
                                                            int64_t reduction, const OptTensor& weight,
                                                            const OptTensor& offset) {
  check_not_differentiated("pyrobust::_backward_corrected_ce", {&logits, &T_inv});
  at::AutoDispatchBelowADInplaceOrView guard;
  return backward_kernel().call(logits, target, T_inv, ignore_index, reduction, weight, offset);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> learnable_kernel_autograd(
    const at::Tensor& logits, const at::Tensor& target, const at::Tensor& theta_t, int64_t ignore_index,
    int64_t reduction, const OptTensor& weight, const OptTensor& row_grad) {
  check_not_differentiated("pyrobust::_forward_corrected_ce_learnable", {&logits, &theta_t});
  at::AutoDispatchBelowADInplaceOrView guard;
  return learnable_kernel().call(logits, target, theta_t, ignore_index, reduction, weight, row_grad);
}

// Where autograd is not in play (inference mode), the loss alone.
at::Tensor forward_corrected_ce_loss(const at::Tensor& logits, const at::Tensor& target, const at::Tensor& log_T_t,
                                     int64_t ignore_index, int64_t reduction, const OptTensor& T_t,
                                     const OptTensor& weight) {
  return std::get<0>(forward_kernel().call(logits, target, log_T_t, ignore_index, reduction, T_t, weight));
}

at::Tensor backward_corrected_ce_loss(const at::Tensor& logits, const at::Tensor& target, const at::Tensor& T_inv,
                                      int64_t ignore_index, int64_t reduction, const OptTensor& weight,
                                      const OptTensor& offset) {
  return std::get<0>(backward_kernel().call(logits, target, T_inv, ignore_index, reduction, weight, offset));
}

at::Tensor forward_corrected_ce_learnable_loss(const at::Tensor& logits, const at::Tensor& target,
                                               const at::Tensor& theta_t, int64_t ignore_index, int64_t reduction,
                                               const OptTensor& weight) {
  return std::get<0>(learnable_kernel().call(logits, target, theta_t, ignore_index, reduction, weight, std::nullopt));
}

}  // namespace

TORCH_LIBRARY_IMPL(pyrobust, Autograd, m) {
  m.impl("forward_corrected_ce", &forward_corrected_ce_autograd);
  m.impl("backward_corrected_ce", &backward_corrected_ce_autograd);
  m.impl("forward_corrected_ce_learnable", &forward_corrected_ce_learnable_autograd);
  m.impl("_forward_corrected_ce", &forward_kernel_autograd);
  m.impl("_forward_corrected_ce_table_grad", &table_grad_kernel_autograd);
  m.impl("_backward_corrected_ce", &backward_kernel_autograd);
  m.impl("_forward_corrected_ce_learnable", &learnable_kernel_autograd);
  m.impl("dropout_mask", torch::CppFunction::makeFallthrough());  // a constant to autograd
}

TORCH_LIBRARY_IMPL(pyrobust, CompositeExplicitAutograd, m) {
  m.impl("forward_corrected_ce", &forward_corrected_ce_loss);
  m.impl("backward_corrected_ce", &backward_corrected_ce_loss);
  m.impl("forward_corrected_ce_learnable", &forward_corrected_ce_learnable_loss);
}

}  // namespace pyrobust
