// The two corrected cross-entropies as reductions over a row that is split among threads: each thread
// folds its share of the row into a State (chunk, combine), the States of a row are combined in any
// order (a warp's butterfly, then across warps), and finish/grad turn the total into the loss and the
// gradient. Used by the CUDA kernels (kernels/cuda/corrected_ce_kernels.cu); plain C++ with
// PYROBUST_HOST_DEVICE functions, so that tests/test_cuda_row_reduction.py can run the same code on the
// host, splitting rows as the kernels do.
//
// Math (pyrobust/corrected_ce.h, shared with the CPU kernels), for logits h, target y and a table row t:
//   forward  (t = log T[:, y]):  loss = lse(h) - lse(h + t),            grad = softmax(h) - softmax(h + t)
//   backward (t = T_inv[y]):     loss = sum_j t_j (lse(h) - h_j),       grad = softmax(h) sum_j t_j - t
// (the kernels weigh a forward row by the weight of its class, a backward term by that of its class: see
// kWeighsTerms). Non-finite logits: a row whose maximum is +inf or NaN, or whose logits are all -inf, has a
// NaN loss and gradient (F.cross_entropy's); a term t_j (h_j - max) of the backward correction with t_j = 0
// is 0 even where h_j = -inf (a masked class), its limit, rather than 0 * inf = NaN.
#pragma once

#include <cmath>
#include <limits>

#include "pyrobust/corrected_ce.h"

// Unrolled in device code only: the host compiler knows no `#pragma unroll` and would warn.
#if defined(__CUDA_ARCH__)
#define PYROBUST_UNROLL _Pragma("unroll")
#else
#define PYROBUST_UNROLL
#endif

namespace pyrobust {

template <typename acc_t>
PYROBUST_HOST_DEVICE acc_t neg_inf() {
  return -std::numeric_limits<acc_t>::infinity();
}

template <typename acc_t>
PYROBUST_HOST_DEVICE acc_t quiet_nan() {
  return std::numeric_limits<acc_t>::quiet_NaN();
}

// Whether a row's maximum logit leaves its loss a number: finite (not +inf, NaN, or -inf for a row of
// -inf logits only).
template <typename acc_t>
PYROBUST_HOST_DEVICE bool finite_max(acc_t max) {
  return max < -neg_inf<acc_t>() && max > neg_inf<acc_t>();
}

// max that propagates NaN (as at::vec::maximum does on the CPU), so a NaN logit makes a NaN loss.
template <typename acc_t>
PYROBUST_HOST_DEVICE acc_t nan_max(acc_t a, acc_t b) {
  return (a > b || a != a) ? a : b;
}

// Log-sum-exp of N values: one max, then N exponentials relative to it.
template <typename acc_t, int N>
PYROBUST_HOST_DEVICE LogSumExp<acc_t> log_sum_exp(const acc_t (&x)[N]) {
  acc_t m = x[0];
  PYROBUST_UNROLL
  for (int k = 1; k < N; ++k) m = nan_max(m, x[k]);
  if (m == neg_inf<acc_t>()) return LogSumExp<acc_t>::empty();  // all -inf: exp(-inf - -inf) would be NaN
  acc_t s = 0;
  PYROBUST_UNROLL
  for (int k = 0; k < N; ++k) s += std::exp(x[k] - m);
  return {m, s};
}

// ---- the two corrections ------------------------------------------------------------------------
// Each policy has a State reduced over the row (chunk() from N values, combine() of two partial
// states; combine is symmetric, so every lane of a butterfly reduction ends with the same bits), a Row
// of per-row constants (finish() also gives the loss), and grad() for one element.

// Forward correction: State = (lse of h, lse of h + log T[:, y]).
template <typename acc_t>
struct ForwardCorrection {
  struct State {
    LogSumExp<acc_t> h, q;
  };
  struct Row {
    acc_t max_h, inv_sum_h, max_q, inv_sum_q;
  };
  // Class weights weigh the whole row (that of its target), not its terms.
  static constexpr bool kWeighsTerms = false;

  PYROBUST_HOST_DEVICE static State empty() { return {LogSumExp<acc_t>::empty(), LogSumExp<acc_t>::empty()}; }

  template <int N>
  PYROBUST_HOST_DEVICE static State chunk(const acc_t (&h)[N], const acc_t (&log_t)[N]) {
    acc_t q[N];
    PYROBUST_UNROLL
    for (int k = 0; k < N; ++k) q[k] = h[k] + log_t[k];
    return {log_sum_exp(h), log_sum_exp(q)};
  }

  PYROBUST_HOST_DEVICE static State combine(const State& a, const State& b) {
    return {merge(a.h, b.h), merge(a.q, b.q)};
  }

  // If column y of T is all zero, q is empty: the loss is +inf and the gradient NaN, as on the CPU.
  PYROBUST_HOST_DEVICE static Row finish(const State& s, acc_t& loss) {
    if (!finite_max(s.h.max)) {
      loss = quiet_nan<acc_t>();
      return {quiet_nan<acc_t>(), quiet_nan<acc_t>(), quiet_nan<acc_t>(), quiet_nan<acc_t>()};
    }
    loss = forward_loss(s.h.value(), s.q.value());
    return {s.h.max, acc_t(1) / s.h.sum, s.q.max, acc_t(1) / s.q.sum};
  }

  PYROBUST_HOST_DEVICE static acc_t grad(acc_t h, acc_t log_t, const Row& r) {
    return std::exp(h - r.max_h) * r.inv_sum_h - std::exp(h + log_t - r.max_q) * r.inv_sum_q;
  }
};

// Backward correction: State = (lse of h, sum_k Tinv[y,k], sum_k Tinv[y,k] (h_k - lse.max)). The dot
// product is kept relative to the running maximum, as the CPU kernel keeps it relative to the row
// maximum, so logits of +-100 lose no digits to cancellation.
template <typename acc_t>
struct BackwardCorrection {
  struct State {
    LogSumExp<acc_t> h;
    acc_t tinv_sum, dot;
  };
  struct Row {
    acc_t max_h, scale;  // scale = sum_k Tinv[y,k] / sum_k exp(h_k - max_h)
  };
  // Class weights weigh each term (t_j w_j), the row as a whole keeps weight 1.
  static constexpr bool kWeighsTerms = true;

  PYROBUST_HOST_DEVICE static State empty() { return {LogSumExp<acc_t>::empty(), acc_t(0), acc_t(0)}; }

  template <int N>
  PYROBUST_HOST_DEVICE static State chunk(const acc_t (&h)[N], const acc_t (&tinv)[N]) {
    const LogSumExp<acc_t> lse = log_sum_exp(h);
    acc_t tinv_sum = 0, dot = 0;
    // Logits all -inf (a masked chunk): their terms are +-inf whatever the shift, kept unshifted.
    const acc_t shift = lse.max == neg_inf<acc_t>() ? acc_t(0) : lse.max;
    PYROBUST_UNROLL
    for (int k = 0; k < N; ++k) {
      tinv_sum += tinv[k];
      if (tinv[k] != acc_t(0)) dot += tinv[k] * (h[k] - shift);
    }
    return {lse, tinv_sum, dot};
  }

  // dot re-expressed relative to `max`; an empty state holds nothing to shift (and -inf - max is no
  // number to multiply by its zero tinv_sum), nor does a state of -inf logits only (its terms are +-inf).
  PYROBUST_HOST_DEVICE static acc_t shifted_dot(const State& s, acc_t max) {
    if (s.h.max == max || s.h.max == neg_inf<acc_t>() || (s.tinv_sum == acc_t(0) && s.dot == acc_t(0))) return s.dot;
    return s.dot + s.tinv_sum * (s.h.max - max);
  }

  PYROBUST_HOST_DEVICE static State combine(const State& a, const State& b) {
    const LogSumExp<acc_t> h = merge(a.h, b.h);
    if (h.max != h.max) return {h, quiet_nan<acc_t>(), quiet_nan<acc_t>()};  // a NaN logit: one state, any order
    return {h, a.tinv_sum + b.tinv_sum, shifted_dot(a, h.max) + shifted_dot(b, h.max)};
  }

  PYROBUST_HOST_DEVICE static Row finish(const State& s, acc_t& loss) {
    if (!finite_max(s.h.max)) {
      loss = quiet_nan<acc_t>();
      return {quiet_nan<acc_t>(), quiet_nan<acc_t>()};
    }
    loss = backward_loss(std::log(s.h.sum), s.tinv_sum, s.dot);
    return {s.h.max, s.tinv_sum / s.h.sum};
  }

  PYROBUST_HOST_DEVICE static acc_t grad(acc_t h, acc_t tinv, const Row& r) {
    return std::exp(h - r.max_h) * r.scale - tinv;
  }
};

}  // namespace pyrobust
