// Per-row math of the corrected cross-entropies, shared by the CPU and CUDA kernels.
//
// Plain C++ (no torch headers) so that nvcc can include it. For one row h (C logits), target y and
// lse(v) = log sum_j exp(v_j):
//   forward  (paper eq. 5):   loss = lse(h) - lse(h + log T[:, y])
//                              grad_j = exp(h_j - lse(h)) - exp(h_j + log T[j, y] - lse(h + log T[:, y]))
//   backward (Theorem 1):     loss = sum_j Tinv[y, j] (lse(h) - h_j)
//                              grad_j = softmax(h)_j * sum_k Tinv[y, k] - Tinv[y, j]
// A log-sum-exp is carried as (max, sum of exp(v - max)); the kernels choose how to reduce it.
#pragma once

#include <cmath>
#include <limits>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define PYROBUST_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define PYROBUST_HOST_DEVICE inline
#endif

namespace pyrobust {

// Running log-sum-exp: sum_j exp(v_j) = sum * exp(max). An empty set (or all v_j = -inf) is
// (max = -inf, sum = 0).
template <typename acc_t>
struct LogSumExp {
  acc_t max;
  acc_t sum;

  PYROBUST_HOST_DEVICE static LogSumExp empty() {
    return {-std::numeric_limits<acc_t>::infinity(), acc_t(0)};
  }

  PYROBUST_HOST_DEVICE acc_t value() const { return max + std::log(sum); }
};

// Merge two partial log-sum-exps (online softmax); exact for -inf maxima, where exp(-inf - -inf)
// would be NaN. A NaN maximum (a NaN logit) gives the one NaN state whatever the order of the arguments,
// so that a reduction over lanes in any order ends with the same bits in every lane.
template <typename acc_t>
PYROBUST_HOST_DEVICE LogSumExp<acc_t> merge(LogSumExp<acc_t> a, LogSumExp<acc_t> b) {
  if (a.max != a.max || b.max != b.max) {
    return {std::numeric_limits<acc_t>::quiet_NaN(), std::numeric_limits<acc_t>::quiet_NaN()};
  }
  if (a.max < b.max) {
    LogSumExp<acc_t> t = a;
    a = b;
    b = t;
  }
  if (b.sum == acc_t(0)) return a;
  return {a.max, a.sum + b.sum * std::exp(b.max - a.max)};
}

// Loss of one row of the forward correction from lse(h) and lse(h + log T[:, y]). If column y of T is
// all zero (the noisy label y is impossible under T) the loss is +inf, as the formula says.
template <typename acc_t>
PYROBUST_HOST_DEVICE acc_t forward_loss(acc_t lse_h, acc_t lse_q) {
  return lse_h - lse_q;
}

// Loss of one row of the backward correction, written as sum_k Tinv[y,k] * log(sum) - sum_k Tinv[y,k] *
// (h_k - max): every term is formed after subtracting the row maximum, so +-100 logits lose no digits.
template <typename acc_t>
PYROBUST_HOST_DEVICE acc_t backward_loss(acc_t log_sum, acc_t tinv_sum, acc_t tinv_dot_shifted_h) {
  return tinv_sum * log_sum - tinv_dot_shifted_h;
}

}  // namespace pyrobust
