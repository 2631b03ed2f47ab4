// The pyrobust custom ops: their schemas, in one place, and the autograd of the losses, which is the same
// for every device. Kernels register per device in kernels/cpu and kernels/cuda; fake tensors and autocast
// are registered from Python (pyrobust/_ops.py).
#include <Python.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/graph_task.h>
#include <torch/library.h>

#include <ATen/core/dispatch/Dispatcher.h>

// Importing pyrobust._C runs the static registrations below; the module itself is empty.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}

TORCH_LIBRARY(pyrobust, m) {
  // The losses, reduced as F.cross_entropy's `reduction` says (at::Reduction's codes: 0 none, (B,); 1 mean
  // over the rows whose target is not ignore_index; 2 sum), differentiable once with respect to the logits.
  // Forward correction: loss_i = lse(h_i) - lse(h_i + log T[:, y_i]), with log_T_t[y, j] = log T[j, y].
  m.def("forward_corrected_ce(Tensor logits, Tensor target, Tensor log_T_t, int ignore_index=-100, "
        "int reduction=1) -> Tensor");
  // Backward correction: loss_i = sum_j T_inv[y_i, j] (lse(h_i) - h_ij).
  m.def("backward_corrected_ce(Tensor logits, Tensor target, Tensor T_inv, int ignore_index=-100, "
        "int reduction=1) -> Tensor");
  // Their per-device kernels: the same loss and, from the same pass, grad = d loss / d logits, so that the
  // backward is at most one multiplication. Not differentiable themselves.
  m.def("_forward_corrected_ce(Tensor logits, Tensor target, Tensor log_T_t, int ignore_index, int reduction) "
        "-> (Tensor loss, Tensor grad)");
  m.def("_backward_corrected_ce(Tensor logits, Tensor target, Tensor T_inv, int ignore_index, int reduction) "
        "-> (Tensor loss, Tensor grad)");
  // The backward of both losses: grad * grad_loss[:, None], or grad * grad_loss for a scalar grad_loss.
  m.def("scale_grad(Tensor grad, Tensor grad_loss) -> Tensor");
  // grad *= grad_loss for a scalar grad_loss, in place; nothing at all where grad_loss is 1 (on CUDA the
  // kernel reads it on the device: no synchronisation).
  m.def("scale_grad_(Tensor(a!) grad, Tensor grad_loss) -> ()");
  // Inverted-dropout mask shaped like `self`: 1 / (1 - p) where kept (probability 1 - p), else 0; random,
  // from `generator` or torch's default one. Not differentiable (it reads only the shape of `self`).
  m.def("dropout_mask(Tensor self, float p, *, Generator? generator=None) -> Tensor");
}

namespace pyrobust {

// The kernels' names, template arguments of the autograd nodes below (hence not in the anonymous namespace).
inline constexpr char kForwardKernel[] = "pyrobust::_forward_corrected_ce";
inline constexpr char kBackwardKernel[] = "pyrobust::_backward_corrected_ce";

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

using KernelOp = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                     int64_t, int64_t);

template <const char* kKernelName>
std::tuple<at::Tensor, at::Tensor> call_kernel(const at::Tensor& logits, const at::Tensor& target,
                                               const at::Tensor& table, int64_t ignore_index, int64_t reduction) {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow(kKernelName, "").template typed<KernelOp>();
  return op.call(logits, target, table, ignore_index, reduction);
}

// Whether `g` is an ordinary CPU scalar equal to 1, the gradient that `loss.backward()` starts from. Its value
// may be read only for a plain tensor: fake, functional and functorch tensors (torch.compile, torch.func)
// carry dispatch keys beyond these, and a CUDA value would cost a device synchronisation. (Any other tensor
// is multiplied, which is always right.)
bool is_plain_cpu_one(const at::Tensor& g) {
  static const c10::DispatchKeySet plain_cpu{c10::DispatchKey::CPU, c10::DispatchKey::AutogradCPU,
                                             c10::DispatchKey::AutocastCPU, c10::DispatchKey::ADInplaceOrView};
  return g.dim() == 0 && g.key_set() == plain_cpu && g.item<double>() == 1.0;
}

// grad * grad_loss, where grad is the buffer saved by the forward, which nothing but the graph holds:
//   * a reduced loss on CPU whose gradient is 1 (loss.backward()): grad itself, no pass over B x C at all;
//   * any other scalar gradient, unless the graph is retained: grad scaled in place (on CUDA by a kernel
//     that reads the scalar on the device and leaves the buffer alone when it is 1);
//   * otherwise (per-row gradients, retain_graph=True): scale_grad into a new buffer.
// Autograd then takes the buffer over (as logits.grad, or to accumulate into) only once the graph has
// released it: it counts the graph's reference, and copies the buffer while the graph is retained.
at::Tensor scale_saved_grad(const at::Tensor& grad, const at::Tensor& grad_loss) {
  using Scale = at::Tensor(const at::Tensor&, const at::Tensor&);
  using ScaleInPlace = void(const at::Tensor&, const at::Tensor&);
  static const auto scale_grad =
      c10::Dispatcher::singleton().findSchemaOrThrow("pyrobust::scale_grad", "").typed<Scale>();
  static const auto scale_grad_ =
      c10::Dispatcher::singleton().findSchemaOrThrow("pyrobust::scale_grad_", "").typed<ScaleInPlace>();
  if (is_plain_cpu_one(grad_loss)) return grad;
  if (grad_loss.dim() == 0 && !torch::autograd::get_current_graph_task_keep_graph()) {
    scale_grad_.call(grad, grad_loss);
    return grad;
  }
  return scale_grad.call(grad, grad_loss);
}

}  // namespace

// Autograd of both losses, in C++ so that a training step pays no Python per call. The kernel already
// returns d loss / d logits, saved here and never handed out: the backward may scale it in place. `Node`
// names the node that grad_fn shows, after its loss, as PyTorch names its own (NllLossBackward0).
template <class Node, const char* kKernelName>
struct CorrectedCE : public torch::autograd::Function<Node> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& target,
                               const at::Tensor& table, int64_t ignore_index, int64_t reduction) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, grad] = call_kernel<kKernelName>(logits, target, table, ignore_index, reduction);
    ctx->save_for_backward({grad});
    return {loss};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    // The saved gradient is a constant to autograd: a second derivative would silently come out as 0.
    TORCH_CHECK(!at::GradMode::is_enabled(), "pyrobust: the fused corrected losses are differentiable once; "
                "double backward (create_graph=True: Hessians, gradient penalties) needs the pure-PyTorch "
                "formulas in pyrobust._reference");
    const at::Tensor& grad_loss = grad_outputs[0];
    at::Tensor grad_logits;  // undefined where the loss received no gradient
    if (grad_loss.defined()) grad_logits = scale_saved_grad(ctx->get_saved_variables()[0], grad_loss);
    return {grad_logits, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct ForwardCorrectedCrossEntropyBackward final
    : CorrectedCE<ForwardCorrectedCrossEntropyBackward, kForwardKernel> {};
struct BackwardCorrectedCrossEntropyBackward final
    : CorrectedCE<BackwardCorrectedCrossEntropyBackward, kBackwardKernel> {};

namespace {

template <class Node>
at::Tensor corrected_ce_autograd(const at::Tensor& logits, const at::Tensor& target, const at::Tensor& table,
                                 int64_t ignore_index, int64_t reduction) {
  TORCH_CHECK(!table.requires_grad(), "pyrobust: the fused corrected losses do not differentiate with respect "
              "to T; pass a T that does not require grad (pyrobust's loss functions then use the reference)");
  return Node::apply(logits, target, table, ignore_index, reduction)[0];
}

// The kernels have no derivative of their own: differentiating through one is an error, not a silently
// wrong gradient. (The losses' autograd calls them below the autograd keys.)
template <const char* kKernelName>
std::tuple<at::Tensor, at::Tensor> kernel_autograd(const at::Tensor& logits, const at::Tensor& target,
                                                   const at::Tensor& table, int64_t ignore_index,
                                                   int64_t reduction) {
  TORCH_CHECK(!at::GradMode::is_enabled() || !(logits.requires_grad() || table.requires_grad()), kKernelName,
              " has no derivative: differentiate the loss op without the leading underscore");
  at::AutoDispatchBelowADInplaceOrView guard;
  return call_kernel<kKernelName>(logits, target, table, ignore_index, reduction);
}

// Where autograd is not in play (inference mode), the loss alone.
template <const char* kKernelName>
at::Tensor corrected_ce_loss(const at::Tensor& logits, const at::Tensor& target, const at::Tensor& table,
                             int64_t ignore_index, int64_t reduction) {
  return std::get<0>(call_kernel<kKernelName>(logits, target, table, ignore_index, reduction));
}

}  // namespace

TORCH_LIBRARY_IMPL(pyrobust, Autograd, m) {
  m.impl("forward_corrected_ce", &corrected_ce_autograd<ForwardCorrectedCrossEntropyBackward>);
  m.impl("backward_corrected_ce", &corrected_ce_autograd<BackwardCorrectedCrossEntropyBackward>);
  m.impl("_forward_corrected_ce", &kernel_autograd<kForwardKernel>);
  m.impl("_backward_corrected_ce", &kernel_autograd<kBackwardKernel>);
  m.impl("dropout_mask", torch::CppFunction::makeFallthrough());  // a constant to autograd
}

TORCH_LIBRARY_IMPL(pyrobust, CompositeExplicitAutograd, m) {
  m.impl("forward_corrected_ce", &corrected_ce_loss<kForwardKernel>);
  m.impl("backward_corrected_ce", &corrected_ce_loss<kBackwardKernel>);
}

}  // namespace pyrobust
