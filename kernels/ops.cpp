// The pyrobust custom ops: their schemas, in one place, and their autograd, which is the same for every
// device. Kernels register per device in kernels/cpu and kernels/cuda; fake tensors and autocast are
// registered from Python (pyrobust/_ops.py).
#include <Python.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <ATen/core/dispatch/Dispatcher.h>

// Importing pyrobust._C runs the static registrations below; the module itself is empty.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}

TORCH_LIBRARY(pyrobust, m) {
  // Both losses return the loss reduced as F.cross_entropy's `reduction` says (0 none: (B,), 1 mean over the
  // rows whose target is not ignore_index, 2 sum: scalars; at::Reduction's codes) and grad = d loss / d logits
  // of that loss, so that the backward is at most one multiplication.
  // Forward: loss_i = lse(h_i) - lse(h_i + log T[:, y_i]), with log_T_t[y, j] = log T[j, y].
  m.def("forward_corrected_ce(Tensor logits, Tensor target, Tensor log_T_t, int ignore_index=-100, "
        "int reduction=0) -> (Tensor loss, Tensor grad)");
  // Backward: loss_i = sum_j T_inv[y_i, j] (lse(h_i) - h_ij).
  m.def("backward_corrected_ce(Tensor logits, Tensor target, Tensor T_inv, int ignore_index=-100, "
        "int reduction=0) -> (Tensor loss, Tensor grad)");
  // grad * grad_loss[:, None], or grad * grad_loss for a scalar grad_loss: the backward of both losses (itself
  // not differentiable).
  m.def("scale_grad(Tensor grad, Tensor grad_loss) -> Tensor");
  // Inverted-dropout mask shaped like `self`: 1 / (1 - p) where kept (probability 1 - p), else 0; random,
  // from `generator` or torch's default one. Not differentiable (it reads only the shape of `self`).
  m.def("dropout_mask(Tensor self, float p, *, Generator? generator=None) -> Tensor");
}

namespace pyrobust {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using LossOp = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                                                   int64_t);

// Whether `g` is an ordinary CPU scalar equal to 1, the gradient that `loss.backward()` starts from. Its value
// may be read only for a plain tensor: fake, functional and functorch tensors (torch.compile, torch.func)
// carry dispatch keys beyond these, and a CUDA value would cost a device synchronisation. (Any other tensor
// takes scale_grad, which is always right.)
bool is_plain_cpu_one(const at::Tensor& g) {
  static const c10::DispatchKeySet plain_cpu{c10::DispatchKey::CPU, c10::DispatchKey::AutogradCPU,
                                             c10::DispatchKey::AutocastCPU, c10::DispatchKey::ADInplaceOrView};
  return g.dim() == 0 && g.key_set() == plain_cpu && g.item<double>() == 1.0;
}

// Autograd of both losses, in C++ so that a training step pays no Python per call. The forward kernel
// already returns d loss / d logits; the backward scales it by the incoming gradient, or returns it as it
// is when that gradient is 1 (a reduced loss on CPU): no pass over B x C at all. The saved gradient is
// saved as an input-like tensor, not as an output of the Function, so that autograd counts the reference
// the graph holds: it takes the buffer over (as logits.grad, or to accumulate into) only once the graph
// has released it, and copies it while the graph is retained.
template <const char* kOpName>
struct CorrectedCE : public torch::autograd::Function<CorrectedCE<kOpName>> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& target,
                               const at::Tensor& table, int64_t ignore_index, int64_t reduction,
                               at::Tensor* grad_out) {
    static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(kOpName, "").template typed<LossOp>();
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, grad] = op.call(logits, target, table, ignore_index, reduction);
    ctx->save_for_backward({grad});
    *grad_out = grad;
    return {loss};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    // The saved gradient is a constant to autograd: a second derivative would silently come out as 0.
    TORCH_CHECK(!at::GradMode::is_enabled(), "pyrobust: the fused corrected losses are differentiable once; "
                "double backward (create_graph=True: Hessians, gradient penalties) needs the pure-PyTorch "
                "formulas in pyrobust._reference");
    static const auto scale_grad = c10::Dispatcher::singleton()
                                       .findSchemaOrThrow("pyrobust::scale_grad", "")
                                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
    const at::Tensor grad = ctx->get_saved_variables()[0];
    const at::Tensor& grad_loss = grad_outputs[0];
    at::Tensor grad_logits;
    if (grad_loss.defined()) grad_logits = is_plain_cpu_one(grad_loss) ? grad : scale_grad.call(grad, grad_loss);
    return {grad_logits, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

constexpr char kForward[] = "pyrobust::forward_corrected_ce";
constexpr char kBackward[] = "pyrobust::backward_corrected_ce";

template <const char* kOpName>
std::tuple<at::Tensor, at::Tensor> corrected_ce_autograd(const at::Tensor& logits, const at::Tensor& target,
                                                         const at::Tensor& table, int64_t ignore_index,
                                                         int64_t reduction) {
  TORCH_CHECK(!table.requires_grad(), "pyrobust: the fused corrected losses do not differentiate with respect "
              "to T; pass a T that does not require grad (pyrobust's loss functions then use the reference)");
  at::Tensor grad;
  at::Tensor loss = CorrectedCE<kOpName>::apply(logits, target, table, ignore_index, reduction, &grad)[0];
  return {loss, grad};
}

}  // namespace

TORCH_LIBRARY_IMPL(pyrobust, Autograd, m) {
  m.impl("forward_corrected_ce", &corrected_ce_autograd<kForward>);
  m.impl("backward_corrected_ce", &corrected_ce_autograd<kBackward>);
  m.impl("dropout_mask", torch::CppFunction::makeFallthrough());  // a constant to autograd
}

}  // namespace pyrobust
