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
  // loss_i = lse(h_i) - lse(h_i + log T[:, y_i]); grad = d loss_i / d h_i. log_T_t[y, j] = log T[j, y].
  m.def("forward_corrected_ce(Tensor logits, Tensor target, Tensor log_T_t, int ignore_index) -> (Tensor loss, Tensor grad)");
  // loss_i = sum_j T_inv[y_i, j] (lse(h_i) - h_ij); grad = d loss_i / d h_i.
  m.def("backward_corrected_ce(Tensor logits, Tensor target, Tensor T_inv, int ignore_index) -> (Tensor loss, Tensor grad)");
  // grad * grad_loss[:, None]: the backward of both losses (itself not differentiable).
  m.def("scale_grad(Tensor grad, Tensor grad_loss) -> Tensor");
}

namespace pyrobust {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using LossOp = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t);

// Autograd of both losses, in C++ so that a training step pays no Python per call. The forward kernel
// already returns d loss_i / d logits_i; the backward only scales it by the incoming gradient.
template <const char* kOpName>
struct CorrectedCE : public torch::autograd::Function<CorrectedCE<kOpName>> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& target,
                               const at::Tensor& table, int64_t ignore_index) {
    static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(kOpName, "").template typed<LossOp>();
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, grad] = op.call(logits, target, table, ignore_index);
    ctx->save_for_backward({grad});
    ctx->mark_non_differentiable({grad});
    ctx->set_materialize_grads(false);  // else autograd fills a B x C zero gradient for `grad` each step
    return {loss, grad};
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
    if (!grad_outputs[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    return {scale_grad.call(grad, grad_outputs[0]), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

constexpr char kForward[] = "pyrobust::forward_corrected_ce";
constexpr char kBackward[] = "pyrobust::backward_corrected_ce";

template <const char* kOpName>
std::tuple<at::Tensor, at::Tensor> corrected_ce_autograd(const at::Tensor& logits, const at::Tensor& target,
                                                         const at::Tensor& table, int64_t ignore_index) {
  TORCH_CHECK(!table.requires_grad(), "pyrobust: the fused corrected losses do not differentiate with respect "
              "to T; pass a T that does not require grad (pyrobust's loss functions then use the reference)");
  auto out = CorrectedCE<kOpName>::apply(logits, target, table, ignore_index);
  return {out[0], out[1]};
}

}  // namespace

TORCH_LIBRARY_IMPL(pyrobust, Autograd, m) {
  m.impl("forward_corrected_ce", &corrected_ce_autograd<kForward>);
  m.impl("backward_corrected_ce", &corrected_ce_autograd<kBackward>);
}

}  // namespace pyrobust
