// Run-time choice of the CPU kernels' instruction set, as ATen chooses its own (ATEN_CPU_CAPABILITY).
//
// pyrobust._C is compiled for baseline x86-64 and holds no kernel arithmetic: it registers the CPU dispatch
// key once, forwarding every call to the table of one build of the kernels (kernels/cpu/kernels.cpp, one
// library per capability next to _C, see there why). On the first call it takes the best capability the CPU
// supports (CPUID: __builtin_cpu_supports, which also asks the OS whether it saves the vector registers)
// or the one that PYROBUST_CPU_CAPABILITY names: default, avx2 or avx512. A value that is unknown or that
// this CPU lacks is an error naming what it supports, never a SIGILL. Other architectures have "default"
// only.
#include <dlfcn.h>
#include <torch/library.h>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "pyrobust/cpu_kernels.h"

namespace pyrobust {
namespace {

// The capabilities this CPU can run, from the least to the most capable.
std::vector<std::string> supported_capabilities() {
  std::vector<std::string> caps{"default"};
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2) caps.emplace_back("avx2");
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    caps.emplace_back("avx512");
  }
#endif
  return caps;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The capability that `requested` names (in any case) if this CPU supports it, else an error that says where
// the name came from (`source`).
std::string checked_capability(const std::string& requested, const char* source) {
  std::string name = requested;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  const auto caps = supported_capabilities();
  TORCH_CHECK(name == "default" || name == "avx2" || name == "avx512", "pyrobust: ", source, "=", requested,
              " is not a CPU capability: use default, avx2 or avx512 (this CPU supports ", joined(caps), ")");
  TORCH_CHECK(std::find(caps.begin(), caps.end(), name) != caps.end(), "pyrobust: ", source, "=", requested,
              " asks for instructions this CPU lacks; it supports ", joined(caps));
  return name;
}

// The library of a capability: _cpu_<capability> with _C's suffix, in _C's folder.
std::string library_path(const std::string& capability) {
  Dl_info info{};
  TORCH_CHECK(dladdr(reinterpret_cast<void*>(&supported_capabilities), &info) != 0 && info.dli_fname != nullptr,
              "pyrobust: cannot locate the pyrobust._C library to find its CPU kernels");
  const std::string self = info.dli_fname;
  const auto slash = self.rfind('/');
  const std::string folder = slash == std::string::npos ? "." : self.substr(0, slash);
  const std::string name = slash == std::string::npos ? self : self.substr(slash + 1);
  const auto dot = name.find('.');  // _C.cpython-311-x86_64-linux-gnu.so -> .cpython-311-x86_64-linux-gnu.so
  return folder + "/_cpu_" + capability + (dot == std::string::npos ? ".so" : name.substr(dot));
}

std::mutex load_mutex;
std::atomic<const CpuKernels*> current{nullptr};

// Loads a build of the kernels (once per path; never unloaded, its functions may be in use).
const CpuKernels* load(const std::string& path) {
  static std::map<std::string, const CpuKernels*> loaded;
  if (auto it = loaded.find(path); it != loaded.end()) return it->second;
  // RTLD_LOCAL: its symbols stay its own (see kernels/cpu/kernels.cpp).
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  TORCH_CHECK(handle != nullptr, "pyrobust: cannot load the CPU kernels ", path, ": ", dlerror(),
              "; rebuild with `pip install --no-build-isolation -e .`");
  using Entry = const CpuKernels* (*)();
  auto entry = reinterpret_cast<Entry>(dlsym(handle, PYROBUST_CPU_KERNELS_SYMBOL));
  TORCH_CHECK(entry != nullptr, "pyrobust: ", path, " holds no pyrobust CPU kernels");
  const CpuKernels* table = entry();
  TORCH_CHECK(table->abi == kCpuKernelsAbi, "pyrobust: ", path, " is from another build of pyrobust; rebuild with "
              "`pip install --no-build-isolation -e .`");
  return loaded[path] = table;
}

// The kernels in use, chosen on the first call. An error (a bad PYROBUST_CPU_CAPABILITY) is raised again by
// every call, since nothing gets chosen.
const CpuKernels& kernels() {
  if (const CpuKernels* k = current.load(std::memory_order_acquire)) return *k;
  std::lock_guard<std::mutex> lock(load_mutex);
  if (const CpuKernels* k = current.load(std::memory_order_acquire)) return *k;
  const char* env = std::getenv("PYROBUST_CPU_CAPABILITY");
  const std::string capability = env != nullptr && *env != '\0'
                                     ? checked_capability(env, "PYROBUST_CPU_CAPABILITY")
                                     : supported_capabilities().back();
  const CpuKernels* k = load(library_path(capability));
  current.store(k, std::memory_order_release);
  return *k;
}

std::string cpu_capability() { return kernels().capability; }

// For tests and benchmarks: switch to another build, by capability or from a library built elsewhere
// (benchmarks/cpu_dispatch.py's -march=native one). Returns the capability in use before ("" if none was
// chosen yet). Not to be called while kernels run.
std::string use_cpu_kernels(const std::string& capability, const std::optional<std::string>& library) {
  std::lock_guard<std::mutex> lock(load_mutex);
  const CpuKernels* k = library.has_value() ? load(*library)
                                            : load(library_path(checked_capability(capability, "capability")));
  if (library.has_value()) {
    TORCH_CHECK(capability == k->capability, "pyrobust: ", *library, " holds the ", k->capability,
                " kernels, not ", capability);
  }
  const CpuKernels* before = current.exchange(k, std::memory_order_acq_rel);
  return before != nullptr ? before->capability : "";
}

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& logits, const at::Tensor& target,
                                               const at::Tensor& log_T_t, int64_t ignore_index, int64_t reduction,
                                               OptTensorRef T_t, OptTensorRef weight) {
  return kernels().forward(logits, target, log_T_t, ignore_index, reduction, T_t, weight);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> table_grad_cpu(const at::Tensor& logits, const at::Tensor& target,
                                                              const at::Tensor& log_T_t, int64_t ignore_index,
                                                              int64_t reduction, OptTensorRef T_t, OptTensorRef weight,
                                                              OptTensorRef row_grad, bool wrt_log) {
  return kernels().table_grad(logits, target, log_T_t, ignore_index, reduction, T_t, weight, row_grad, wrt_log);
}

std::tuple<at::Tensor, at::Tensor> backward_cpu(const at::Tensor& logits, const at::Tensor& target,
                                                const at::Tensor& T_inv, int64_t ignore_index, int64_t reduction,
                                                OptTensorRef weight, OptTensorRef offset) {
  return kernels().backward(logits, target, T_inv, ignore_index, reduction, weight, offset);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> learnable_cpu(const at::Tensor& logits, const at::Tensor& target,
                                                             const at::Tensor& theta_t, int64_t ignore_index,
                                                             int64_t reduction, OptTensorRef weight,
                                                             OptTensorRef row_grad) {
  return kernels().learnable(logits, target, theta_t, ignore_index, reduction, weight, row_grad);
}

at::Tensor scale_grad_cpu(const at::Tensor& grad, const at::Tensor& grad_loss) {
  return kernels().scale_grad(grad, grad_loss);
}

void scale_grad_inplace_cpu(const at::Tensor& grad, const at::Tensor& grad_loss) {
  kernels().scale_grad_(grad, grad_loss);
}

at::Tensor dropout_mask_cpu(const at::Tensor& self, double p, std::optional<at::Generator> generator) {
  return kernels().dropout_mask(self, p, std::move(generator));
}

}  // namespace

TORCH_LIBRARY_IMPL(pyrobust, CPU, m) {
  m.impl("_forward_corrected_ce", &forward_cpu);
  m.impl("_forward_corrected_ce_table_grad", &table_grad_cpu);
  m.impl("_backward_corrected_ce", &backward_cpu);
  m.impl("_forward_corrected_ce_learnable", &learnable_cpu);
  m.impl("scale_grad", &scale_grad_cpu);
  m.impl("scale_grad_", &scale_grad_inplace_cpu);
  m.impl("dropout_mask", &dropout_mask_cpu);
}

// No tensor arguments: these run whatever the dispatch keys.
TORCH_LIBRARY_IMPL(pyrobust, CompositeImplicitAutograd, m) {
  m.impl("cpu_capability", &cpu_capability);
  m.impl("_use_cpu_kernels", &use_cpu_kernels);
}

}  // namespace pyrobust
