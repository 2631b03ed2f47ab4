// CPU kernels of the pyrobust ops: one pass over the batch, rows split across threads with
// at::parallel_for, each row vectorised with at::vec. A row reads its C logits, one row of the C x C table
// (row y of log_T_t, i.e. column y of T; or row y of T_inv) and writes its loss and its C gradients:
// O(C) per row, never the O(C^2) of softmax(h) @ T. Refinements, all checked against the float64
// reference by the tests: rows of few classes are processed W at a time, transposed (Tile; K-dimensional
// logits lie that way already, and both go through forward_lanes / backward_lanes); the forward correction
// uses one exp per element instead of two where T_t = exp(log_T_t) is at hand (forward_row_fast: cached by
// the loss modules, or computed once per call when C <= B); the gradient with respect to the table (a
// learnable T) is accumulated in the same pass, rows grouped by target class (forward_class_rows, shared with
// a learnable T). A row of the forward correction takes forward_row_fast, or forward_row_log where that
// cannot (forward_row), whether visited in memory order, by class, or as a K-dimensional position.
// Compiled once per instruction set, inside kernels/cpu/kernels.cpp, which sets at::vec's CPU_CAPABILITY
// first; the ops' CPU dispatch key forwards here through kernels/cpu/dispatch.cpp.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Reduction.h>
#include <ATen/core/Tensor.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/mul.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#include "pyrobust/checks.h"
#include "pyrobust/corrected_ce.h"

namespace pyrobust {
namespace {

using at::vec::Vectorized;

// Rows per task: enough work (~32k elements) per chunk to amortise the thread hand-off.
constexpr int64_t kGrainElements = 32768;
int64_t grain_rows(int64_t C) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(C, 1)); }

// The row sweeps of the forward correction and a learnable T's sweeps are [[gnu::flatten]]: GCC called exp_u20
// out of line in them once this file's inlining budget was spent (forward_row_fast<float, kAccLog>, a
// learnable T's rows, among them), a call per vector: 8 % of a learnable T's step and 15 % of the table
// gradient's at 4096 x 1000. (No call is left out of line in the three builds: objdump | grep exp_u20.)
template <typename scalar_t>
Vectorized<scalar_t> vexp(const Vectorized<scalar_t>& x) {
  return x.exp_u20();  // the exp of PyTorch's own softmax kernels; exp(-inf) = 0
}

template <typename scalar_t>
constexpr scalar_t kInf = std::numeric_limits<scalar_t>::infinity();
template <typename scalar_t>
constexpr scalar_t kNaN = std::numeric_limits<scalar_t>::quiet_NaN();

// A row whose largest logit is +inf or NaN (or whose logits are all -inf) has no number for a loss: NaN,
// with a NaN gradient, as F.cross_entropy gives. (-inf logits elsewhere are fine: masked classes.)
template <typename scalar_t>
bool finite_max(scalar_t max_h) {
  return max_h < kInf<scalar_t> && max_h > -kInf<scalar_t>;
}

// Targets are checked up front (cheap, B reads) so that the error names the offending row. An out-of-range
// class raises IndexError in Python (TORCH_CHECK_INDEX: c10::IndexError), as F.cross_entropy does on CPU
// and as pyrobust._checks.check_targets does, with the same message. Returns the number of rows not
// ignored, the divisor of a "mean".
int64_t check_targets(const int64_t* target, int64_t B, int64_t C, int64_t ignore_index) {
  int64_t count = 0;
  for (int64_t i = 0; i < B; ++i) {
    const int64_t y = target[i];
    TORCH_CHECK_INDEX(y == ignore_index || (0 <= y && y < C), "pyrobust: target[", i, "] = ", y,
                      " is out of range for ", C, " classes (ignore_index = ", ignore_index, ")");
    count += y != ignore_index;
  }
  return count;
}

template <typename scalar_t>
void ignore_row(scalar_t* loss, scalar_t* g, int64_t C) {
  *loss = scalar_t(0);
  std::fill(g, g + C, scalar_t(0));
}

template <typename scalar_t>
void nan_row(scalar_t* loss, scalar_t* g, int64_t C) {
  *loss = kNaN<scalar_t>;
  std::fill(g, g + C, kNaN<scalar_t>);
}

// Vector access to a row of C elements, W = Vec::size() at a time; the last vector is partial when W does
// not divide C. A partial load blends a full load with `fill` when the full load stays inside the buffer
// (every row but the buffer's last): with C = 10 the tail is a fifth of the row, and the memcpy-based
// partial loads of at::vec would dominate its cost.
template <typename scalar_t>
class Row {
 public:
  using Vec = Vectorized<scalar_t>;
  static constexpr int64_t W = Vec::size();

  explicit Row(int64_t C) : C(C), body_(C - C % W), tail_(C % W) {
    const Vec zero(0);
    mask_ = Vec::set(zero, zero == zero, tail_);  // all bits set in the lanes below tail_
  }

  Vec load(const scalar_t* p, int64_t j, const Vec& fill, const scalar_t* buffer_end) const {
    if (j < body_) return Vec::loadu(p + j);
    if (p + j + W <= buffer_end) return Vec::blendv(fill, Vec::loadu(p + j), mask_);
    return Vec::set(fill, Vec::loadu(p + j, tail_), tail_);
  }

  void store(const Vec& v, scalar_t* p, int64_t j) const {
    if (j < body_) v.store(p + j);
    else v.store(p + j, tail_);
  }

  const int64_t C;

 private:
  int64_t body_, tail_;
  Vec mask_;
};

template <typename scalar_t>
scalar_t reduce_max(const Vectorized<scalar_t>& v) {
  return at::vec::vec_reduce_all<scalar_t>([](auto& a, auto& b) { return at::vec::maximum(a, b); }, v);
}

template <typename scalar_t>
scalar_t reduce_sum(const Vectorized<scalar_t>& v) {
  return at::vec::vec_reduce_all<scalar_t>([](auto& a, auto& b) { return a + b; }, v);
}

// What a kernel call reads and writes; pointers of optional inputs are null when absent.
template <typename scalar_t>
struct Args {
  const scalar_t* h;       // logits (B, C)
  const int64_t* y;        // targets (B,)
  const scalar_t* table;   // log_T_t (forward) or T_inv (backward), (C, C)
  const scalar_t* T_t;     // forward: exp(log_T_t), (C, C), for the one-exp path; or null
  const scalar_t* weight;  // (C,) class weights, or null (all 1)
  const scalar_t* offset;  // backward: (C,) added to every table row, or null (all 0)
  const scalar_t* row_grad;  // (B,) incoming gradient of per-row losses (table gradient, reduction none)
  scalar_t* loss;          // (B,) per-row losses
  scalar_t* grad;          // (B, C) d loss / d logits
  int64_t B, C, ignore_index;
  scalar_t scale;  // 1 / (sum of the weights of the rows not ignored) for a mean, else 1

  const scalar_t* logits_end() const { return h + B * C; }
  const scalar_t* table_end() const { return table + C * C; }
  scalar_t class_weight(int64_t cls) const { return weight != nullptr ? weight[cls] : scalar_t(1); }
};

// ---- forward correction ---------------------------------------------------------------------------
//
// loss = w_y (lse(h) - lse(h + log T[:, y])), grad = s (softmax(h) - softmax(h + log T[:, y])) with
// s = w_y * scale. Table gradients (kAcc), accumulated into `acc` (row y of the table's gradient):
//   kAccLog:  d loss / d log T[j, y] = -s r_j,        r = softmax(h + log T[:, y])  (bounded, in [0, 1])
//   kAccProb: d loss / d T[j, y]     = -s p_j / q_y,  p = softmax(h), q_y = sum_j T[j, y] p_j
enum Acc { kAccNone = 0, kAccLog = 1, kAccProb = 2 };

// The forward correction with one exp per element instead of two, given the column T[:, y]: with
// e = exp(h - max h),
//   q_y = sum_j T[j, y] e_j / sum_j e_j,   grad = e / sum e - e T[:, y] / sum_j T[j, y] e_j.
// It drops the terms whose e_j underflows, which is exact to round-off only while sum_j T[j, y] e_j stays
// far above the underflow threshold (>= kFastMin; a dropped term is then < e^-48 of it). Otherwise the row
// returns false and takes the log-space path, as does a row without a finite maximum.
template <typename scalar_t>
scalar_t fast_path_min() {
  return std::exp(scalar_t(0.45) * std::log(std::numeric_limits<scalar_t>::min()));
}

// Rows visited out of memory order (grouped by class) hand the next row's logits and gradient as `next_h`
// and `next_g`: a line of each is prefetched per vector of the exp sweep, spread over the row's work (the
// hardware prefetcher follows streams within a page, not jumps between rows).
template <typename scalar_t, int kAcc>
[[gnu::flatten]]
bool forward_row_fast(const scalar_t* h, const scalar_t* T_col, scalar_t* g, scalar_t* loss, scalar_t* e_h,
                      const Row<scalar_t>& row, const scalar_t* logits_end, const scalar_t* table_end,
                      scalar_t fast_min, scalar_t scale, scalar_t w, scalar_t* acc, const scalar_t* next_h = nullptr,
                      scalar_t* next_g = nullptr) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  constexpr int64_t kLine = 64 / sizeof(scalar_t);
  const int64_t C = row.C;
  const Vec minus_inf(-kInf<scalar_t>), zero(0);
  Vec vmax = minus_inf;
  for (int64_t j = 0; j < C; j += W) vmax = at::vec::maximum(vmax, row.load(h, j, minus_inf, logits_end));
  const scalar_t max_h = reduce_max(vmax);
  if (!finite_max(max_h)) return false;
  const Vec vm(max_h);
  Vec vsum_h(0), vsum_q(0);
  for (int64_t j = 0; j < C; j += W) {
    if constexpr (kAcc != kAccNone) {
      if (next_h != nullptr && j % kLine == 0) {
        __builtin_prefetch(next_h + j, 0, 3);
        __builtin_prefetch(next_g + j, 1, 3);
      }
    }
    const Vec e = vexp(row.load(h, j, minus_inf, logits_end) - vm);
    e.store(e_h + j);
    vsum_h += e;
    vsum_q = at::vec::fmadd(e, row.load(T_col, j, zero, table_end), vsum_q);
  }
  const scalar_t sum_h = reduce_sum(vsum_h), sum_q = reduce_sum(vsum_q);
  if (!(sum_q >= fast_min)) return false;
  const Vec vinv_h(scale / sum_h), vinv_q(scale / sum_q);
  const scalar_t* acc_end = acc + C;
  for (int64_t j = 0; j < C; j += W) {
    const Vec e = Vec::loadu(e_h + j), t = row.load(T_col, j, zero, table_end);
    if constexpr (kAcc == kAccNone) {
      row.store(e * (vinv_h - t * vinv_q), g, j);
    } else if constexpr (kAcc == kAccLog) {
      const Vec r = e * t * vinv_q;  // s r_j
      row.store(e * vinv_h - r, g, j);
      row.store(row.load(acc, j, zero, acc_end) - r, acc, j);
    } else {
      const Vec pq = e * vinv_q;  // s p_j / q_y
      row.store(e * vinv_h - pq * t, g, j);
      row.store(row.load(acc, j, zero, acc_end) - pq, acc, j);
    }
  }
  *loss = w * forward_loss(max_h + std::log(sum_h), max_h + std::log(sum_q));
  return true;
}

// The forward correction of one row in log space; three sweeps over a row that stays in cache,
//   1. maxima of h and of h + log T[:, y];
//   2. exp(h - max) and exp(h + log T[:, y] - max') into two scratch rows, and their sums;
//   3. gradient = s (softmax(h) - softmax(h + log T[:, y])).
// Exact where T has zeros (log 0 = -inf, exp(-inf) = 0), with no clipping of probabilities. Padding lanes
// hold -inf, so they add exp(-inf) = 0 to the sums.
template <typename scalar_t, int kAcc>
[[gnu::flatten]]
void forward_row_log(const scalar_t* h, const scalar_t* lt, scalar_t* g, scalar_t* loss, scalar_t* e_h,
                     scalar_t* e_q, const Row<scalar_t>& row, const scalar_t* logits_end, const scalar_t* table_end,
                     scalar_t scale, scalar_t w, scalar_t* acc) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  const int64_t C = row.C;
  const Vec minus_inf(-kInf<scalar_t>), zero(0);
  const scalar_t* acc_end = acc + C;

  Vec vmax_h(-kInf<scalar_t>), vmax_q(-kInf<scalar_t>);
  for (int64_t j = 0; j < C; j += W) {
    const Vec hv = row.load(h, j, minus_inf, logits_end);
    vmax_h = at::vec::maximum(vmax_h, hv);
    vmax_q = at::vec::maximum(vmax_q, hv + row.load(lt, j, minus_inf, table_end));
  }
  const scalar_t max_h = reduce_max(vmax_h), max_q = reduce_max(vmax_q);
  if (!finite_max(max_h) || max_q == -kInf<scalar_t>) {
    // No finite maximum: NaN. Or column y of T is all zero: the observed label is impossible under T, the
    // loss is +inf and its gradient undefined.
    nan_row(loss, g, C);
    if (finite_max(max_h)) *loss = kInf<scalar_t>;
    if constexpr (kAcc != kAccNone) std::fill(acc, acc + C, kNaN<scalar_t>);
    return;
  }

  Vec vsum_h(0), vsum_q(0);
  const Vec vmh(max_h), vmq(max_q);
  for (int64_t j = 0; j < C; j += W) {
    const Vec hv = row.load(h, j, minus_inf, logits_end);
    const Vec eh = vexp(hv - vmh);
    const Vec eq = vexp(hv + row.load(lt, j, minus_inf, table_end) - vmq);
    eh.store(e_h + j);
    eq.store(e_q + j);
    vsum_h += eh;
    vsum_q += eq;
  }
  const scalar_t sum_h = reduce_sum(vsum_h), sum_q = reduce_sum(vsum_q);

  const Vec vinv_h(scale / sum_h), vinv_q(scale / sum_q);
  for (int64_t j = 0; j < C; j += W) {
    const Vec r = Vec::loadu(e_q + j) * vinv_q;  // s r_j
    row.store(Vec::loadu(e_h + j) * vinv_h - r, g, j);
    if constexpr (kAcc == kAccLog) {
      row.store(row.load(acc, j, zero, acc_end) - r, acc, j);
    } else if constexpr (kAcc == kAccProb) {
      // s p_j / q_y = s exp(h_j - lse(h + log T[:, y])): its own exp (rows on this path are rare)
      const Vec pq = vexp(row.load(h, j, minus_inf, logits_end) - vmq) * vinv_q;
      row.store(row.load(acc, j, zero, acc_end) - pq, acc, j);
    }
  }

  *loss = w * forward_loss(LogSumExp<scalar_t>{max_h, sum_h}.value(), LogSumExp<scalar_t>{max_q, sum_q}.value());
}

// Prefetches a row of logits (to read) and of the gradient (to write), a cache line at a time.
template <typename scalar_t>
void prefetch_row(const scalar_t* h, scalar_t* g, int64_t C) {
  constexpr int64_t kLine = 64 / sizeof(scalar_t);
  for (int64_t j = 0; j < C; j += kLine) {
    __builtin_prefetch(h + j, 0, 3);
    __builtin_prefetch(g + j, 1, 3);
  }
}

// Column y of T for the one-exp path (null: log space only) and of log T, each with its buffer's end.
// With log_shift (a learnable T: log = theta_t[y], log_shift = the lse of theta_t's columns), log T[:, y] is
// log - log_shift, formed only for the rows that take the log-space path.
template <typename scalar_t>
struct Column {
  const scalar_t *T, *T_end, *log, *log_end;
  const scalar_t* log_shift = nullptr;
};

// Column y of the call's tables: T_t (if at hand) and log_T_t.
template <typename scalar_t>
Column<scalar_t> table_column(const Args<scalar_t>& a, int64_t y) {
  const bool fast = a.T_t != nullptr;
  return {fast ? a.T_t + y * a.C : nullptr, fast ? a.T_t + a.C * a.C : nullptr, a.table + y * a.C, a.table_end()};
}

// What one thread's rows reuse: the vector view of a row, two scratch rows of exps and one of log T[:, y]
// (a Column with log_shift), padded for whole-vector access.
template <typename scalar_t>
struct RowScratch {
  static constexpr int64_t W = Vectorized<scalar_t>::size();
  explicit RowScratch(int64_t C) : row(C), exps(3 * (C + W)), fast_min(fast_path_min<scalar_t>()) {}
  scalar_t* e_h() { return exps.data(); }
  scalar_t* e_q() { return exps.data() + row.C + W; }

  // log T[:, y] of a Column with log_shift, formed once for the class's rows.
  const scalar_t* log_column(const Column<scalar_t>& col) {
    scalar_t* out = exps.data() + 2 * (row.C + W);
    if (shifted_ != col.log) {
      using Vec = Vectorized<scalar_t>;
      at::vec::map2([](Vec l, Vec m) { return l - m; }, out, col.log, col.log_shift, row.C);
      shifted_ = col.log;
    }
    return out;
  }

  const Row<scalar_t> row;
  std::vector<scalar_t> exps;
  const scalar_t fast_min;

 private:
  const scalar_t* shifted_ = nullptr;  // the column log_column holds
};

// One row of the forward correction: the one-exp path where T's column is at hand and the row allows it,
// else log space. Rows visited out of memory order name the next one (next_h, next_g) to prefetch.
template <typename scalar_t, int kAcc>
void forward_row(const scalar_t* h, scalar_t* g, scalar_t* loss, const scalar_t* logits_end,
                 const Column<scalar_t>& col, scalar_t s, scalar_t w, scalar_t* acc, RowScratch<scalar_t>& k,
                 const scalar_t* next_h = nullptr, scalar_t* next_g = nullptr) {
  if (col.T != nullptr && forward_row_fast<scalar_t, kAcc>(h, col.T, g, loss, k.e_h(), k.row, logits_end, col.T_end,
                                                           k.fast_min, s, w, acc, next_h, next_g)) {
    return;
  }
  if (next_h != nullptr) prefetch_row(next_h, next_g, k.row.C);
  const bool shifted = col.log_shift != nullptr;
  const scalar_t* log = shifted ? k.log_column(col) : col.log;
  const scalar_t* log_end = shifted ? log + k.row.C + k.W : col.log_end;
  forward_row_log<scalar_t, kAcc>(h, log, g, loss, k.e_h(), k.e_q(), k.row, logits_end, log_end, s, w, acc);
}

// Rows [begin, end) of the B x C logits in memory order: an ignored row gets 0 loss and gradient, the others
// f(i, y, h, g).
template <typename scalar_t, typename F>
void for_rows(const Args<scalar_t>& a, int64_t begin, int64_t end, const F& f) {
  for (int64_t i = begin; i < end; ++i) {
    scalar_t* g = a.grad + i * a.C;
    if (a.y[i] == a.ignore_index) ignore_row(a.loss + i, g, a.C);
    else f(i, a.y[i], a.h + i * a.C, g);
  }
}

// Forward correction for rows [begin, end) of the B x C logits, row by row.
template <typename scalar_t>
void forward_rows(const Args<scalar_t>& a, int64_t begin, int64_t end) {
  RowScratch<scalar_t> k(a.C);
  for_rows(a, begin, end, [&](int64_t i, int64_t y, const scalar_t* h, scalar_t* g) {
    const scalar_t w = a.class_weight(y);
    forward_row<scalar_t, kAccNone>(h, g, a.loss + i, a.logits_end(), table_column(a, y), a.scale * w, w, nullptr, k);
  });
}

// The rows of class y, order[k0 .. k1) (ascending), one after the other: their table gradients are added into
// `acc` in that order, the same bits for any number of threads. Rows come in class order, not memory order:
// the next one's logits and gradient (up to order[k_end - 1]) are fetched while this one is computed, which
// the hardware prefetcher would not (it follows streams within a page, not jumps between rows).
template <typename scalar_t, int kAcc>
void forward_class_rows(const Args<scalar_t>& a, const int64_t* order, int64_t k0, int64_t k1, int64_t k_end,
                        int64_t y, const Column<scalar_t>& col, scalar_t* acc, RowScratch<scalar_t>& k) {
  const int64_t C = a.C;
  const scalar_t w = a.class_weight(y);
  for (int64_t n = k0; n < k1; ++n) {
    const int64_t i = order[n];
    const bool more = n + 1 < k_end;
    const scalar_t s = a.scale * w * (a.row_grad != nullptr ? a.row_grad[i] : scalar_t(1));
    forward_row<scalar_t, kAcc>(a.h + i * C, a.grad + i * C, a.loss + i, a.logits_end(), col, s, w, acc, k,
                                more ? a.h + order[n + 1] * C : nullptr, more ? a.grad + order[n + 1] * C : nullptr);
  }
}

// Rows grouped by target class, ascending within a class (a stable counting sort): class y has the rows
// order[start[y] .. start[y + 1]). Ignored rows are left out, their loss and gradient set to 0 here.
struct ClassRows {
  std::vector<int64_t> start, order;
};

template <typename scalar_t>
ClassRows group_by_class(const Args<scalar_t>& a) {
  ClassRows r{std::vector<int64_t>(a.C + 1, 0), {}};
  for (int64_t i = 0; i < a.B; ++i) {
    if (a.y[i] != a.ignore_index) ++r.start[a.y[i] + 1];
  }
  for (int64_t c = 0; c < a.C; ++c) r.start[c + 1] += r.start[c];
  r.order.resize(r.start[a.C]);
  std::vector<int64_t> next(r.start.begin(), r.start.end() - 1);
  for (int64_t i = 0; i < a.B; ++i) {
    if (a.y[i] == a.ignore_index) ignore_row(a.loss + i, a.grad + i * a.C, a.C);
    else r.order[next[a.y[i]]++] = i;
  }
  return r;
}

// Forward correction with the gradient with respect to the table, for the rows of classes [c_begin, c_end):
// row y of `grad_table` gets the table gradient of class y's rows.
template <typename scalar_t, int kAcc>
void forward_classes(const Args<scalar_t>& a, const ClassRows& rows, scalar_t* grad_table, int64_t c_begin,
                     int64_t c_end) {
  RowScratch<scalar_t> k(a.C);
  for (int64_t y = c_begin; y < c_end; ++y) {
    scalar_t* acc = grad_table + y * a.C;
    std::fill(acc, acc + a.C, scalar_t(0));
    forward_class_rows<scalar_t, kAcc>(a, rows.order.data(), rows.start[y], rows.start[y + 1], rows.start[c_end], y,
                                       table_column(a, y), acc, k);
  }
}

// ---- backward correction --------------------------------------------------------------------------
//
// loss = sum_j t_j (lse(h) - h_j), grad = s (softmax(h) sum_j t_j - t) with t = table[y] (+ offset)
// (* weight, element-wise) and s = scale. A term with t_j = 0 is 0 whatever h_j: a logit of -inf (a
// masked class) adds nothing, not 0 * inf = NaN.

// Backward correction for rows [begin, end): (1) max of h; (2) exp(h - max) into a scratch row, its sum,
// sum_k t_k and sum_k t_k (h_k - max); (3) gradient = scale (softmax(h) sum_k t_k - t).
// Padding lanes: h = -inf for the exp (adds 0), t = 0 and h - max = 0 for the sums. Not inlined into
// backward_all: compiled together with the tiles' code, GCC 12 allocated the exp sweep's registers well or
// with a spill (10-15 % apart at C = 100) depending on unrelated edits.
template <typename scalar_t, bool kOffset, bool kWeight>
__attribute__((noinline)) void backward_rows(const Args<scalar_t>& a, int64_t begin, int64_t end) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  const int64_t C = a.C;
  const Row<scalar_t> row(C);
  const Vec minus_inf(-kInf<scalar_t>), zero(0);
  const scalar_t* logits_end = a.logits_end();
  const scalar_t* table_end = a.table_end();
  std::vector<scalar_t> scratch(C + W);
  scalar_t* e = scratch.data();
  const scalar_t scale = a.scale;

  for (int64_t i = begin; i < end; ++i) {
    const scalar_t* h = a.h + i * C;
    scalar_t* g = a.grad + i * C;
    const int64_t y = a.y[i];
    if (y == a.ignore_index) {
      ignore_row(a.loss + i, g, C);
      continue;
    }
    const scalar_t* ti = a.table + y * C;
    auto table_row = [&](int64_t j) {
      Vec t = row.load(ti, j, zero, table_end);
      if constexpr (kOffset) t = t + row.load(a.offset, j, zero, a.offset + C);
      if constexpr (kWeight) t = t * row.load(a.weight, j, zero, a.weight + C);
      return t;
    };

    Vec vmax(-kInf<scalar_t>);
    for (int64_t j = 0; j < C; j += W) vmax = at::vec::maximum(vmax, row.load(h, j, minus_inf, logits_end));
    const scalar_t max_h = reduce_max(vmax);
    if (!finite_max(max_h)) {
      nan_row(a.loss + i, g, C);
      continue;
    }

    Vec vsum(0), vtsum(0), vdot(0);
    const Vec vm(max_h);
    for (int64_t j = 0; j < C; j += W) {
      const Vec t = table_row(j);
      const Vec s = Vec::blendv(row.load(h, j, vm, logits_end) - vm, zero, t == zero);
      const Vec ex = vexp(row.load(h, j, minus_inf, logits_end) - vm);
      ex.store(e + j);
      vsum += ex;
      vtsum += t;
      vdot = at::vec::fmadd(t, s, vdot);
    }
    const scalar_t sum = reduce_sum(vsum), tsum = reduce_sum(vtsum), dot = reduce_sum(vdot);

    const Vec vsoftmax_scale(scale * tsum / sum), vscale(scale);
    for (int64_t j = 0; j < C; j += W) {
      if constexpr (!kOffset && !kWeight) {
        row.store(Vec::loadu(e + j) * vsoftmax_scale - row.load(ti, j, zero, table_end) * vscale, g, j);
      } else {
        row.store(Vec::loadu(e + j) * vsoftmax_scale - table_row(j) * vscale, g, j);
      }
    }

    a.loss[i] = backward_loss(std::log(sum), tsum, dot);
  }
}

// ---- W rows at a time, transposed -----------------------------------------------------------------------
//
// Lane r of a vector holds row r: class j of the W rows is the vector at x + j * stride, and every reduction
// over classes is an element-wise vector op (no horizontal reductions, no scalar logs per row). Used for rows
// of few classes (Tile, copied in transposed) and for K-dimensional logits, which lie that way already.
// t[j * W + r] is the table value of class j for lane r's target.

// Forward correction with the one-exp path, t = T[:, y_r]: writes per lane max_h, the loss (weighted by w
// with kWeighted) and sum_q = sum_j T[j, y] e_j (rows with sum_q < fast_min need the log-space path), and g,
// the gradient scaled by scale (* w).
template <typename scalar_t, bool kWeighted>
void forward_lanes(const scalar_t* h, scalar_t* g, int64_t stride, const scalar_t* t, const scalar_t* w, int64_t C,
                   scalar_t scale, scalar_t* max_h, scalar_t* loss, scalar_t* sum_q) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  Vec vmax(-kInf<scalar_t>);
  for (int64_t j = 0; j < C; ++j) vmax = at::vec::maximum(vmax, Vec::loadu(h + j * stride));
  vmax.store(max_h);
  Vec sum_h(0), vsum_q(0);
  for (int64_t j = 0; j < C; ++j) {
    const Vec e = vexp(Vec::loadu(h + j * stride) - vmax);
    e.store(g + j * stride);
    sum_h += e;
    vsum_q = at::vec::fmadd(e, Vec::loadu(t + j * W), vsum_q);
  }
  Vec s(scale);
  if constexpr (kWeighted) s = s * Vec::loadu(w);
  const Vec inv_h = s / sum_h, inv_q = s / vsum_q;
  for (int64_t j = 0; j < C; ++j) {
    scalar_t* gj = g + j * stride;
    (Vec::loadu(gj) * (inv_h - Vec::loadu(t + j * W) * inv_q)).store(gj);
  }
  if constexpr (kWeighted) {
    ((sum_h.log() - vsum_q.log()) * Vec::loadu(w)).store(loss);
  } else {
    (sum_h.log() - vsum_q.log()).store(loss);
  }
  vsum_q.store(sum_q);
}

// Backward correction, t = the table row of y_r (+ offset, * weight): writes per lane max_h and the loss,
// and g, the gradient scaled by scale.
template <typename scalar_t>
void backward_lanes(const scalar_t* h, scalar_t* g, int64_t stride, const scalar_t* t, int64_t C, scalar_t scale,
                    scalar_t* max_h, scalar_t* loss) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  const Vec zero(0);
  Vec vmax(-kInf<scalar_t>);
  for (int64_t j = 0; j < C; ++j) vmax = at::vec::maximum(vmax, Vec::loadu(h + j * stride));
  vmax.store(max_h);
  Vec sum(0), tsum(0), dot(0);
  for (int64_t j = 0; j < C; ++j) {
    const Vec d = Vec::loadu(h + j * stride) - vmax;
    const Vec tj = Vec::loadu(t + j * W);
    const Vec e = vexp(d);
    e.store(g + j * stride);
    sum += e;
    tsum += tj;
    dot = at::vec::fmadd(tj, Vec::blendv(d, zero, tj == zero), dot);
  }
  const Vec softmax_scale = Vec(scale) * tsum / sum, vscale(scale);
  for (int64_t j = 0; j < C; ++j) {
    scalar_t* gj = g + j * stride;
    (Vec::loadu(gj) * softmax_scale - Vec::loadu(t + j * W) * vscale).store(gj);
  }
  (tsum * sum.log() - dot).store(loss);
}

// t[j * W + r] = row y_r of `table` (+ offset with kOffset, * weight with kWeight) for the W lanes r, with
// y_r = classes[r], and w[r] = the class weight of y_r. The rows are copied side by side into `rows` (W x C),
// then transposed into t by at::vec::transpose_mxn (shuffles in registers for float on AVX-512, element by
// element elsewhere): written into t element by element, they took ~40 % of a K-dimensional forward at
// C = 1000. Ignored positions and lanes past the chunk read row 0: their results are overwritten.
template <typename scalar_t, bool kOffset = false, bool kWeight = false>
void gather_lanes(const Args<scalar_t>& a, const scalar_t* table, const int64_t* classes, scalar_t* rows, scalar_t* t,
                  scalar_t* w) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  const int64_t C = a.C;
  for (int64_t r = 0; r < W; ++r) {
    const scalar_t* tr = table + classes[r] * C;
    scalar_t* out = rows + r * C;
    if constexpr (kOffset && kWeight) {
      at::vec::map3([](Vec v, Vec o, Vec u) { return (v + o) * u; }, out, tr, a.offset, a.weight, C);
    } else if constexpr (kOffset) {
      at::vec::map2([](Vec v, Vec o) { return v + o; }, out, tr, a.offset, C);
    } else if constexpr (kWeight) {
      at::vec::map2([](Vec v, Vec u) { return v * u; }, out, tr, a.weight, C);
    } else {
      std::copy(tr, tr + C, out);
    }
    w[r] = a.class_weight(classes[r]);
  }
  at::vec::transpose_mxn<scalar_t>(rows, C, t, W, static_cast<int>(W), static_cast<int>(C));
}

// The lane's class, or 0 for an ignored row.
template <typename scalar_t>
int64_t lane_class(const Args<scalar_t>& a, int64_t y) {
  return y == a.ignore_index ? 0 : y;
}

// Few classes (C <= kTileMaxC, e.g. MNIST's 10): a row is one or two vectors, mostly padding, and the
// per-row horizontal reductions and scalar logs cost more than the exps. Instead take W rows at a time,
// transposed.
constexpr int64_t kTileMaxC = 32;

template <typename scalar_t>
struct Tile {
  using Vec = Vectorized<scalar_t>;
  static constexpr int64_t W = Vec::size();
  alignas(64) scalar_t h[kTileMaxC * W];  // h[j * W + r] = logits[row r, class j]
  alignas(64) scalar_t t[kTileMaxC * W];  // t[j * W + r] = table[y_r, j] (backward: with offset, weight)
  alignas(64) scalar_t g[kTileMaxC * W];  // exps, then the gradient
  alignas(64) scalar_t loss[W];
  alignas(64) scalar_t sum_q[W];  // forward: sum_j T[j, y] e_j, to spot rows for the log-space path
  alignas(64) scalar_t max_h[W];  // rows without a finite maximum are NaN
  alignas(64) scalar_t w[W];      // forward: the weight of each row's class (1 without weights)

  // Rows with target == ignore_index read table row 0 here and are overwritten in store(). (The table's
  // transpose, fused with the logits' here: a tile of 10 classes is 5 % faster so.)
  template <bool kOffset = false, bool kWeight = false>
  void load(const Args<scalar_t>& a, const scalar_t* table, int64_t i0) {
    const int64_t C = a.C;
    for (int64_t r = 0; r < W; ++r) {
      const int64_t y = lane_class(a, a.y[i0 + r]);
      const scalar_t* hr = a.h + (i0 + r) * C;
      const scalar_t* tr = table + y * C;
      for (int64_t j = 0; j < C; ++j) {
        h[j * W + r] = hr[j];
        scalar_t tv = tr[j];
        if constexpr (kOffset) tv += a.offset[j];
        if constexpr (kWeight) tv *= a.weight[j];
        t[j * W + r] = tv;
      }
      w[r] = a.class_weight(y);
    }
  }

  void store(const Args<scalar_t>& a, int64_t i0) const {
    const int64_t C = a.C;
    for (int64_t r = 0; r < W; ++r) {
      scalar_t* gr = a.grad + (i0 + r) * C;
      if (a.y[i0 + r] == a.ignore_index) {
        ignore_row(a.loss + i0 + r, gr, C);
      } else if (!finite_max(max_h[r])) {
        nan_row(a.loss + i0 + r, gr, C);
      } else {
        a.loss[i0 + r] = loss[r];
        for (int64_t j = 0; j < C; ++j) gr[j] = g[j * W + r];
      }
    }
  }
};

// Forward correction of rows [begin, end): tiles of W rows when C is small and T is at hand (tile.t holds
// T[:, y], not its log), the rest row by row; a row of a tile that needs the log-space path is redone by
// forward_rows (rows without a finite maximum are NaN already).
template <typename scalar_t>
void forward_all(const Args<scalar_t>& a, int64_t begin, int64_t end) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  if (a.T_t != nullptr && a.C <= kTileMaxC) {
    const scalar_t fast_min = fast_path_min<scalar_t>();
    const Vec inf(kInf<scalar_t>);
    Tile<scalar_t> tile;
    for (; begin + W <= end; begin += W) {
      tile.load(a, a.T_t, begin);
      if (a.weight != nullptr) {
        forward_lanes<scalar_t, true>(tile.h, tile.g, W, tile.t, tile.w, a.C, a.scale, tile.max_h, tile.loss,
                                      tile.sum_q);
      } else {
        forward_lanes<scalar_t, false>(tile.h, tile.g, W, tile.t, tile.w, a.C, a.scale, tile.max_h, tile.loss,
                                       tile.sum_q);
      }
      tile.store(a, begin);
      // all lanes fast: sum_q >= fast_min (false for NaN) and a finite maximum
      const Vec max_h = Vec::loadu(tile.max_h);
      const Vec ok = (Vec::loadu(tile.sum_q) >= Vec(fast_min)) & (max_h < inf) & (max_h > -inf);
      alignas(64) scalar_t bits[W];
      ok.store(bits);
      if (std::all_of(bits, bits + W, [](scalar_t b) { return b != scalar_t(0); })) continue;  // 0: false
      for (int64_t i = begin; i < begin + W; ++i) {
        if (a.y[i] != a.ignore_index && finite_max(tile.max_h[i - begin]) && !(tile.sum_q[i - begin] >= fast_min)) {
          forward_rows<scalar_t>(a, i, i + 1);
        }
      }
    }
  }
  forward_rows<scalar_t>(a, begin, end);
}

// Backward correction of rows [begin, end): tiles of W rows when C is small, the rest row by row.
template <typename scalar_t, bool kOffset, bool kWeight>
void backward_all(const Args<scalar_t>& a, int64_t begin, int64_t end) {
  constexpr int64_t W = Vectorized<scalar_t>::size();
  if (a.C <= kTileMaxC) {
    Tile<scalar_t> tile;
    for (; begin + W <= end; begin += W) {
      tile.template load<kOffset, kWeight>(a, a.table, begin);
      backward_lanes(tile.h, tile.g, W, tile.t, a.C, a.scale, tile.max_h, tile.loss);
      tile.store(a, begin);
    }
  }
  backward_rows<scalar_t, kOffset, kWeight>(a, begin, end);
}

// ---- K-dimensional inputs: logits (N, C, S), targets (N, S) ---------------------------------------------
//
// Position s of sample n has its C logits S apart, so W consecutive positions of one class are W contiguous
// values: the transposed layout of the tiles above, in place. Each chunk of W positions goes through
// forward_lanes / backward_lanes: the gradient is stored as it is computed, and nothing is copied to or from
// the (N, C, S) layout. A position that needs the log-space path (or is ignored, or has no finite maximum)
// is finished on its own afterwards, gathered into a contiguous row.

template <typename scalar_t>
struct KdimScratch {
  using Vec = Vectorized<scalar_t>;
  static constexpr int64_t W = Vec::size();
  explicit KdimScratch(int64_t C)
      : t(C * W), lane_rows(C * W), h(C * W), g(C * W), row(C + W), grow(C + W), rows(C) {}
  std::vector<scalar_t> t;          // t[j * W + r] = table value of class j for lane r's target
  std::vector<scalar_t> lane_rows;  // the lanes' table rows side by side, before their transpose into t
  std::vector<scalar_t> h, g;       // a partial chunk's logits and gradient, padded to W lanes
  std::vector<scalar_t> row, grow;  // one position's logits / gradient, contiguous (log-space path)
  RowScratch<scalar_t> rows;        // ... and what its row function reuses
  alignas(64) scalar_t w[W], loss[W], sum_q[W], max_h[W];
  int64_t classes[W];  // the lanes' targets (0 where ignored or past the chunk)
};

// The W positions [s0, s0 + lanes) of sample n: where their logits and gradients live (the chunk itself, or
// the padded scratch for the last, partial chunk of a row of positions) and their targets.
template <typename scalar_t>
struct KdimChunk {
  const scalar_t* h;  // class j of lane r at h[j * stride + r]
  scalar_t* g;
  int64_t stride, lanes;
  const scalar_t* h_mem;  // the chunk in memory: class j of lane r at h_mem[j * S + r]
  scalar_t* g_mem;
  const int64_t* y;
  scalar_t* loss;
};

template <typename scalar_t>
KdimChunk<scalar_t> kdim_chunk(const Args<scalar_t>& a, int64_t S, int64_t n, int64_t s0, KdimScratch<scalar_t>& k) {
  constexpr int64_t W = KdimScratch<scalar_t>::W;
  const int64_t C = a.C, lanes = std::min<int64_t>(W, S - s0);
  KdimChunk<scalar_t> c{};
  c.h_mem = a.h + n * C * S + s0;
  c.g_mem = a.grad + n * C * S + s0;
  c.y = a.y + n * S + s0;
  c.loss = a.loss + n * S + s0;
  c.lanes = lanes;
  if (lanes == W) {
    c.h = c.h_mem;
    c.g = c.g_mem;
    c.stride = S;
  } else {
    for (int64_t j = 0; j < C; ++j) {
      for (int64_t r = 0; r < W; ++r) k.h[j * W + r] = r < lanes ? c.h_mem[j * S + r] : scalar_t(0);
    }
    c.h = k.h.data();
    c.g = k.g.data();
    c.stride = W;
  }
  return c;
}

// After forward_lanes / backward_lanes on a chunk: copies a partial chunk's gradient to memory, then sets
// the loss of each lane (and the gradient of ignored positions and of those without a finite maximum);
// `redo(r, y)` finishes a position whose lane result does not stand (sum_q below the one-exp path's
// minimum, forward only: sum_q is null for the backward correction).
template <typename scalar_t, typename Redo>
void kdim_finish(const Args<scalar_t>& a, const KdimChunk<scalar_t>& c, int64_t S, const KdimScratch<scalar_t>& k,
                 const scalar_t* sum_q, const Redo& redo) {
  constexpr int64_t W = KdimScratch<scalar_t>::W;
  const int64_t C = a.C;
  if (c.g != c.g_mem) {
    for (int64_t j = 0; j < C; ++j) {
      for (int64_t r = 0; r < c.lanes; ++r) c.g_mem[j * S + r] = c.g[j * W + r];
    }
  }
  for (int64_t r = 0; r < c.lanes; ++r) {
    const int64_t y = c.y[r];
    if (y == a.ignore_index || !finite_max(k.max_h[r])) {
      const scalar_t v = y == a.ignore_index ? scalar_t(0) : kNaN<scalar_t>;
      c.loss[r] = v;
      for (int64_t j = 0; j < C; ++j) c.g_mem[j * S + r] = v;
    } else if (sum_q == nullptr || sum_q[r] >= k.rows.fast_min) {
      c.loss[r] = k.loss[r];
    } else {
      redo(r, y);
    }
  }
}

// The forward correction of K-dimensional logits with the one-exp path (a.T_t, required), chunk by chunk;
// a position that needs the log-space path is gathered into a contiguous row for forward_row_log.
template <typename scalar_t>
void forward_kdim(const Args<scalar_t>& a, int64_t S, int64_t unit_begin, int64_t unit_end) {
  constexpr int64_t W = KdimScratch<scalar_t>::W;
  const int64_t C = a.C, chunks = (S + W - 1) / W;
  KdimScratch<scalar_t> k(C);
  for (int64_t u = unit_begin; u < unit_end; ++u) {
    const KdimChunk<scalar_t> c = kdim_chunk(a, S, u / chunks, (u % chunks) * W, k);
    for (int64_t r = 0; r < W; ++r) k.classes[r] = r < c.lanes ? lane_class(a, c.y[r]) : 0;
    gather_lanes(a, a.T_t, k.classes, k.lane_rows.data(), k.t.data(), k.w);
    if (a.weight != nullptr) {
      forward_lanes<scalar_t, true>(c.h, c.g, c.stride, k.t.data(), k.w, C, a.scale, k.max_h, k.loss, k.sum_q);
    } else {
      forward_lanes<scalar_t, false>(c.h, c.g, c.stride, k.t.data(), k.w, C, a.scale, k.max_h, k.loss, k.sum_q);
    }
    kdim_finish(a, c, S, k, k.sum_q, [&](int64_t r, int64_t y) {
      for (int64_t j = 0; j < C; ++j) k.row[j] = c.h_mem[j * S + r];
      forward_row_log<scalar_t, kAccNone>(k.row.data(), a.table + y * C, k.grow.data(), c.loss + r, k.rows.e_h(),
                                          k.rows.e_q(), k.rows.row, k.row.data() + k.row.size(), a.table_end(),
                                          a.scale * k.w[r], k.w[r], nullptr);
      for (int64_t j = 0; j < C; ++j) c.g_mem[j * S + r] = k.grow[j];
    });
  }
}

// The backward correction of K-dimensional logits, chunk by chunk.
template <typename scalar_t, bool kOffset, bool kWeight>
void backward_kdim(const Args<scalar_t>& a, int64_t S, int64_t unit_begin, int64_t unit_end) {
  constexpr int64_t W = KdimScratch<scalar_t>::W;
  const int64_t chunks = (S + W - 1) / W;
  KdimScratch<scalar_t> k(a.C);
  for (int64_t u = unit_begin; u < unit_end; ++u) {
    const KdimChunk<scalar_t> c = kdim_chunk(a, S, u / chunks, (u % chunks) * W, k);
    for (int64_t r = 0; r < W; ++r) k.classes[r] = r < c.lanes ? lane_class(a, c.y[r]) : 0;
    gather_lanes<scalar_t, kOffset, kWeight>(a, a.table, k.classes, k.lane_rows.data(), k.t.data(), k.w);
    backward_lanes(c.h, c.g, c.stride, k.t.data(), a.C, a.scale, k.max_h, k.loss);
    kdim_finish(a, c, S, k, static_cast<const scalar_t*>(nullptr), [](int64_t, int64_t) {});
  }
}

// Work units of K-dimensional logits (N, C, S): one per W positions of a sample.
template <typename scalar_t, typename F>
void for_kdim_units(int64_t N, int64_t C, int64_t S, const F& f) {
  constexpr int64_t W = Vectorized<scalar_t>::size();
  const int64_t units = N * ((S + W - 1) / W);
  at::parallel_for(0, units, std::max<int64_t>(1, kGrainElements / std::max<int64_t>(C * W, 1)), f);
}

// ---- the ops ----------------------------------------------------------------------------------------


// The data pointer of an optional tensor, or null.
template <typename scalar_t>
const scalar_t* ptr(const std::optional<at::Tensor>& t) {
  return t.has_value() && t->defined() ? t->const_data_ptr<scalar_t>() : nullptr;
}

// Checks the targets and allocates the outputs of a loss kernel; `a` gets the pointers and the scale of
// the gradient (1 / divisor for a mean, where the divisor is the number of rows not ignored or, with
// weights, the sum of their classes' weights: F.cross_entropy's). Returns the divisor.
template <typename scalar_t>
double prepare(Args<scalar_t>& a, const at::Tensor& logits, const at::Tensor& target, const at::Tensor& rows,
               const at::Tensor& grad, int64_t ignore_index, int64_t reduction) {
  a.B = logits.dim() == 3 ? logits.size(0) * logits.size(2) : logits.size(0);  // rows, or positions
  a.C = logits.size(1);
  a.ignore_index = ignore_index;
  a.h = logits.const_data_ptr<scalar_t>();
  a.y = target.const_data_ptr<int64_t>();
  a.loss = rows.mutable_data_ptr<scalar_t>();
  a.grad = grad.mutable_data_ptr<scalar_t>();
  const int64_t count = check_targets(a.y, a.B, a.C, ignore_index);
  if (a.weight == nullptr) {
    // With every row ignored the gradient of a mean is 0, as F.cross_entropy's, while the loss is 0 / 0 = nan.
    a.scale = reduction == at::Reduction::Mean && count > 0 ? scalar_t(1) / scalar_t(count) : scalar_t(1);
    return static_cast<double>(count);
  }
  double total = 0;  // in row order: the same bits for any number of threads
  for (int64_t i = 0; i < a.B; ++i) {
    if (a.y[i] != ignore_index) total += static_cast<double>(a.weight[a.y[i]]);
  }
  // Weights summing to 0 give a nan loss and nan gradients, as F.cross_entropy's.
  a.scale = reduction == at::Reduction::Mean ? static_cast<scalar_t>(1.0 / total) : scalar_t(1);
  return total;
}

// The reduced loss: summed in double, in row order, so that it does not depend on the number of threads.
template <typename scalar_t>
void reduce_rows(const scalar_t* rows, int64_t B, int64_t reduction, double divisor, at::Tensor& loss) {
  if (reduction == at::Reduction::None) return;
  double total = 0;
  for (int64_t i = 0; i < B; ++i) total += rows[i];
  if (reduction == at::Reduction::Mean) total /= divisor;
  *loss.mutable_data_ptr<scalar_t>() = static_cast<scalar_t>(total);
}

void check_cpu_dtype(const at::Tensor& logits) {
  TORCH_CHECK(logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kDouble,
              "pyrobust: the CPU kernels take float32 or float64 logits, got ", logits.scalar_type());
}

// exp(log_T_t) for the one-exp path: the given cache T_t, else computed here when its C^2 exps cost less
// than the B C exps they save (C <= B; tiles of few classes always), else undefined.
at::Tensor one_exp_table(const at::Tensor& logits, const at::Tensor& log_T_t, const std::optional<at::Tensor>& T_t) {
  if (T_t.has_value() && T_t->defined()) return *T_t;
  const int64_t kTile = kTileMaxC;
  return log_T_t.size(0) <= std::max<int64_t>(logits.size(0), kTile) ? log_T_t.exp() : at::Tensor();
}

std::tuple<at::Tensor, at::Tensor> forward_corrected_ce_cpu(const at::Tensor& logits, const at::Tensor& target,
                                                            const at::Tensor& log_T_t, int64_t ignore_index,
                                                            int64_t reduction, const std::optional<at::Tensor>& T_t,
                                                            const std::optional<at::Tensor>& weight) {
  check_loss_inputs(logits, target, log_T_t, reduction, "log_T_t");
  check_class_inputs(logits, log_T_t, T_t, weight, std::nullopt, "log_T_t");
  check_cpu_dtype(logits);
  const bool kdim = logits.dim() == 3;
  // K-dimensional logits always take the one-exp path: their positions are usually many more than C.
  const at::Tensor T_exp = kdim && !(T_t.has_value() && T_t->defined()) ? log_T_t.exp() : one_exp_table(logits, log_T_t, T_t);
  at::Tensor rows = at::empty(target.sizes(), logits.options());
  at::Tensor grad = at::empty_like(logits);
  at::Tensor loss = reduction == at::Reduction::None ? rows : at::empty({}, logits.options());
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "pyrobust_forward_corrected_ce_cpu", [&] {
    Args<scalar_t> a{};
    a.table = log_T_t.const_data_ptr<scalar_t>();
    a.T_t = T_exp.defined() ? T_exp.const_data_ptr<scalar_t>() : nullptr;
    a.weight = ptr<scalar_t>(weight);
    const double divisor = prepare(a, logits, target, rows, grad, ignore_index, reduction);
    if (kdim) {
      const int64_t S = logits.size(2);
      for_kdim_units<scalar_t>(logits.size(0), a.C, S, [&](int64_t u0, int64_t u1) { forward_kdim<scalar_t>(a, S, u0, u1); });
    } else {
      at::parallel_for(0, a.B, grain_rows(a.C), [&](int64_t begin, int64_t end) { forward_all<scalar_t>(a, begin, end); });
    }
    reduce_rows(a.loss, a.B, reduction, divisor, loss);
  });
  return {loss, grad};
}

// The forward correction and its gradients with respect to the logits and to the table: d loss / d log_T_t
// (wrt_log) or d loss / d T_t. With row_grad (reduction none only), the incoming gradient of the per-row
// losses: grad and the table gradient are then those of sum_i row_grad[i] loss[i].
std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_corrected_ce_table_grad_cpu(
    const at::Tensor& logits, const at::Tensor& target, const at::Tensor& log_T_t, int64_t ignore_index,
    int64_t reduction, const std::optional<at::Tensor>& T_t, const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& row_grad, bool wrt_log) {
  check_loss_inputs(logits, target, log_T_t, reduction, "log_T_t");
  check_class_inputs(logits, log_T_t, T_t, weight, std::nullopt, "log_T_t");
  check_row_grad(logits, log_T_t, row_grad, reduction);
  check_cpu_dtype(logits);
  TORCH_CHECK_VALUE(logits.dim() == 2, "pyrobust: the table gradient takes logits (B, C); flatten K-dimensional ones");
  const at::Tensor T_exp = one_exp_table(logits, log_T_t, T_t);
  const int64_t B = logits.size(0), C = logits.size(1);
  at::Tensor rows = at::empty({B}, logits.options());
  at::Tensor grad = at::empty_like(logits);
  at::Tensor grad_table = at::empty_like(log_T_t);
  at::Tensor loss = reduction == at::Reduction::None ? rows : at::empty({}, logits.options());
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "pyrobust_forward_corrected_ce_table_grad_cpu", [&] {
    Args<scalar_t> a{};
    a.table = log_T_t.const_data_ptr<scalar_t>();
    a.T_t = T_exp.defined() ? T_exp.const_data_ptr<scalar_t>() : nullptr;
    a.weight = ptr<scalar_t>(weight);
    a.row_grad = ptr<scalar_t>(row_grad);
    const double divisor = prepare(a, logits, target, rows, grad, ignore_index, reduction);
    const ClassRows classes = group_by_class(a);
    scalar_t* gt = grad_table.mutable_data_ptr<scalar_t>();
    // Classes per task: about kGrainElements logits of work (a class has start[C] / C rows on average).
    const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(classes.start[C], 1));
    at::parallel_for(0, C, grain, [&](int64_t c_begin, int64_t c_end) {
      if (wrt_log) forward_classes<scalar_t, kAccLog>(a, classes, gt, c_begin, c_end);
      else forward_classes<scalar_t, kAccProb>(a, classes, gt, c_begin, c_end);
    });
    reduce_rows(a.loss, a.B, reduction, divisor, loss);
  });
  return {loss, grad, grad_table};
}

std::tuple<at::Tensor, at::Tensor> backward_corrected_ce_cpu(const at::Tensor& logits, const at::Tensor& target,
                                                             const at::Tensor& T_inv, int64_t ignore_index,
                                                             int64_t reduction, const std::optional<at::Tensor>& weight,
                                                             const std::optional<at::Tensor>& offset) {
  check_loss_inputs(logits, target, T_inv, reduction, "T_inv");
  check_class_inputs(logits, T_inv, std::nullopt, weight, offset, "T_inv");
  check_cpu_dtype(logits);
  at::Tensor rows = at::empty(target.sizes(), logits.options());
  at::Tensor grad = at::empty_like(logits);
  at::Tensor loss = reduction == at::Reduction::None ? rows : at::empty({}, logits.options());
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "pyrobust_backward_corrected_ce_cpu", [&] {
    Args<scalar_t> a{};
    a.table = T_inv.const_data_ptr<scalar_t>();
    a.weight = ptr<scalar_t>(weight);
    a.offset = ptr<scalar_t>(offset);
    const double divisor = prepare(a, logits, target, rows, grad, ignore_index, reduction);
    if (logits.dim() == 3) {
      const int64_t S = logits.size(2);
      for_kdim_units<scalar_t>(logits.size(0), a.C, S, [&](int64_t u0, int64_t u1) {
        if (a.offset == nullptr && a.weight == nullptr) backward_kdim<scalar_t, false, false>(a, S, u0, u1);
        else if (a.offset == nullptr) backward_kdim<scalar_t, false, true>(a, S, u0, u1);
        else if (a.weight == nullptr) backward_kdim<scalar_t, true, false>(a, S, u0, u1);
        else backward_kdim<scalar_t, true, true>(a, S, u0, u1);
      });
    } else {
      at::parallel_for(0, a.B, grain_rows(a.C), [&](int64_t begin, int64_t end) {
        if (a.offset == nullptr && a.weight == nullptr) backward_all<scalar_t, false, false>(a, begin, end);
        else if (a.offset == nullptr) backward_all<scalar_t, false, true>(a, begin, end);
        else if (a.weight == nullptr) backward_all<scalar_t, true, false>(a, begin, end);
        else backward_all<scalar_t, true, true>(a, begin, end);
      });
    }
    reduce_rows(a.loss, a.B, reduction, divisor, loss);
  });
  return {loss, grad};
}

// ---- a learnable T: T = row-softmax of free logits theta ----------------------------------------------
//
// The kernels read columns of T, so the loss module keeps theta column-major and hands theta_t = theta^T
// (contiguous) here: log T[j, y] = theta_t[y, j] - lse_j with lse_j the log-sum-exp of column j of theta_t.
// One op computes the loss, d loss / d logits and d loss / d theta_t:
//   1. lse: column maxima and sums of exp of blocks of rows, combined in block order: one sweep over theta_t;
//   2. the rows, grouped by target class, in fixed chunks of classes: for class y, its column of T, then its
//      rows (forward_row_fast; log T[:, y] = theta_t[y] - lse is formed only for rows that take
//      forward_row_log), whose gradient with respect to log T[:, y], G[y] = -sum_i s_i r_i, accumulates in
//      row y of the output; each chunk also adds its rows of G into its partial column sums;
//   3. the column sums cs = sum_y G[y] (the chunks' partials, in chunk order) and, class by class,
//      d loss / d theta_t[y] = G[y] - T[:, y] * cs (log-softmax's backward).
// No C x C table of T or log T is written: steps 2 and 3 take T's exps again, which measured faster than
// keeping step 1's exps in a table and reading them back (4096 x 1000, 2 threads). Where C > B most classes
// have no row: step 2 skips them and step 3 writes their -T[:, y] * cs without reading G. Chunks depend on C
// alone: the same bits for any number of threads.
//
// Step 1 splits the rows of theta_t into kLseBlocks blocks (fewer for a small T), each a contiguous stretch of
// memory that one thread streams whole, and combines the blocks' column maxima and sums in block order:
// blocks depend on C alone, so the lse has the same bits for any number of threads. (Stripes of columns, one
// per thread, read half rows at a stride and measured slower.)
constexpr int64_t kLseBlocks = 32;

// Column maxima m[j] and sums s[j] = sum_k exp(x[k, j] - m[j]) over the rows [k0, k1) of x (K x N), in chunks
// of rows that stay in cache (about kGrainElements entries): the chunk's maxima, then the running sums rescaled
// to them, then the chunk's exps. m and s hold N + W (whole-vector access). A column all -inf so far has the
// sum 0 and the maximum 0 as the exps' shift (exp(-inf - 0) = 0, where -inf - -inf is NaN), but -inf as the
// next chunk's starting maximum: a stand-in 0 there would stay the maximum of a chunk whose values all lie
// below -88 (float) and underflow every exp. A NaN makes its column's maximum NaN.
template <typename scalar_t>
[[gnu::flatten]]
void column_max_sum(const scalar_t* x, int64_t K, int64_t N, int64_t k0, int64_t k1, scalar_t* m,
                    scalar_t* s) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  const Row<scalar_t> row(N);
  const scalar_t* x_end = x + K * N;
  constexpr int64_t kLine = 64 / sizeof(scalar_t);
  const int64_t chunk = std::max<int64_t>(16, kGrainElements / std::max<int64_t>(N, 1));
  std::vector<scalar_t> cm(N + W);  // the chunk's maxima
  std::fill(m, m + N + W, -kInf<scalar_t>);
  std::fill(s, s + N + W, scalar_t(0));
  const Vec zero(0), minus_inf(-kInf<scalar_t>);
  for (int64_t c0 = k0; c0 < k1; c0 += chunk) {
    const int64_t c1 = std::min<int64_t>(k1, c0 + chunk);
    for (int64_t j = 0; j < N; j += W) {
      Vec::blendv(Vec::loadu(m + j), minus_inf, Vec::loadu(s + j) == zero).store(cm.data() + j);
    }
    for (int64_t k = c0; k < c1; ++k) {
      for (int64_t j = 0; j < N; j += W) {
        at::vec::maximum(Vec::loadu(cm.data() + j), row.load(x + k * N, j, minus_inf, x_end)).store(cm.data() + j);
      }
    }
    // The new maxima (a column still all -inf: 0), and the running sums rescaled to them (an empty sum stays 0:
    // its maximum may be a placeholder).
    for (int64_t j = 0; j < N; j += W) {
      const Vec c = Vec::loadu(cm.data() + j), mj = Vec::blendv(c, zero, c == minus_inf), sj = Vec::loadu(s + j);
      if (c0 != k0) Vec::blendv(sj * vexp(Vec::loadu(m + j) - mj), zero, sj == zero).store(s + j);
      mj.store(m + j);
    }
    for (int64_t k = c0; k < c1; ++k) {
      // the row a chunk on (this block's next chunk or the next block's first), a line per vector: fetched
      // while these exps are taken
      const scalar_t* next = k + chunk < K ? x + (k + chunk) * N : nullptr;
      for (int64_t j = 0; j < N; j += W) {
        if (next != nullptr && j % kLine == 0) __builtin_prefetch(next + j, 0, 3);
        (Vec::loadu(s + j) + vexp(row.load(x + k * N, j, minus_inf, x_end) - Vec::loadu(m + j))).store(s + j);
      }
    }
  }
}

// lse[j] = log sum_k exp(x[k, j]) over the K rows of x (K x N): column_max_sum of each block of rows, then
// lse = M + log sum_b s_b exp(m_b - M), M = max_b m_b over the blocks with a nonzero sum, in block order. A
// column all -inf has lse -inf, one with a NaN NaN, one with +inf +inf or NaN: not finite, all of them.
template <typename scalar_t>
[[gnu::flatten]]
void column_lse(const scalar_t* x, scalar_t* lse, int64_t K, int64_t N) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  const int64_t blocks = std::clamp<int64_t>((K + 15) / 16, 1, kLseBlocks);  // >= 16 rows a block; C = 0: 1
  const int64_t per = (K + blocks - 1) / blocks, stride = N + W;
  std::vector<scalar_t> partial(2 * blocks * stride);  // block b: maxima at 2 b stride, sums after them
  const auto max_of = [&](int64_t b) { return partial.data() + 2 * b * stride; };
  const auto sum_of = [&](int64_t b) { return partial.data() + (2 * b + 1) * stride; };
  at::parallel_for(0, blocks, K * N < kGrainElements ? blocks : 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      column_max_sum(x, K, N, std::min(K, b * per), std::min(K, (b + 1) * per), max_of(b), sum_of(b));
    }
  });
  const Vec zero(0), minus_inf(-kInf<scalar_t>);
  for (int64_t j = 0; j < N; j += W) {
    // a block whose sum is 0 (its columns all -inf, or no rows) counts as maximum -inf
    const auto block_max = [&](int64_t b) {
      return Vec::blendv(Vec::loadu(max_of(b) + j), minus_inf, Vec::loadu(sum_of(b) + j) == zero);
    };
    Vec M = minus_inf;
    for (int64_t b = 0; b < blocks; ++b) M = at::vec::maximum(M, block_max(b));
    M = Vec::blendv(M, zero, M == minus_inf);
    Vec S = zero;
    for (int64_t b = 0; b < blocks; ++b) S = at::vec::fmadd(Vec::loadu(sum_of(b) + j), vexp(block_max(b) - M), S);
    (M + S.log()).store(lse + j, std::min<int64_t>(W, N - j));
  }
}

// Column y of a learnable T for the rows of step 2: T's, exp(theta_t[y] - lse), computed into `col` (C + W:
// whole-vector access); log T's left as theta_t[y] shifted by lse, formed only by rows that need it.
template <typename scalar_t>
[[gnu::flatten]]
Column<scalar_t> learned_column(const scalar_t* theta, const scalar_t* lse, int64_t C, int64_t y,
                                scalar_t* col) {
  using Vec = Vectorized<scalar_t>;
  at::vec::map2([](Vec t, Vec l) { return vexp(t - l); }, col, theta + y * C, lse, C);
  return {col, col + C + Vec::size(), theta + y * C, theta + C * C, lse};
}

// Step 3 for class y: g = d loss / d theta_t[y] = G[y] - T[:, y] * cs, G[y] read from g where the class has
// rows, else 0 (most classes when C > B), with T[:, y] = exp(theta_t[y] - lse).
template <typename scalar_t>
[[gnu::flatten]]
void theta_grad_row(scalar_t* g, const scalar_t* theta_y, const scalar_t* lse, const scalar_t* cs, int64_t C,
                    bool has_rows) {
  using Vec = Vectorized<scalar_t>;
  if (has_rows) {
    at::vec::map4([](Vec x, Vec th, Vec l, Vec c) { return x - vexp(th - l) * c; }, g, g, theta_y, lse, cs, C);
  } else {
    at::vec::map3([](Vec th, Vec l, Vec c) { return -(vexp(th - l) * c); }, g, theta_y, lse, cs, C);
  }
}

// Classes per chunk of step 2: a function of C only (the chunks' partial column sums are added in chunk
// order), at most 64 chunks, so that even a few classes spread over the threads (C = 10: ten chunks of one;
// a floor of 16 classes a chunk left all of them to one thread).
int64_t class_chunk(int64_t C) { return std::max<int64_t>(1, (C + 63) / 64); }

std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_corrected_ce_learnable_cpu(
    const at::Tensor& logits, const at::Tensor& target, const at::Tensor& theta_t, int64_t ignore_index,
    int64_t reduction, const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& row_grad) {
  check_loss_inputs(logits, target, theta_t, reduction, "theta_t");
  check_class_inputs(logits, theta_t, std::nullopt, weight, std::nullopt, "theta_t");
  check_row_grad(logits, theta_t, row_grad, reduction);
  check_cpu_dtype(logits);
  TORCH_CHECK_VALUE(logits.dim() == 2, "pyrobust: a learnable T takes logits (B, C); flatten K-dimensional ones");
  const int64_t B = logits.size(0), C = logits.size(1);
  at::Tensor rows = at::empty({B}, logits.options());
  at::Tensor grad = at::empty_like(logits);
  at::Tensor grad_theta = at::empty_like(theta_t);
  at::Tensor loss = reduction == at::Reduction::None ? rows : at::empty({}, logits.options());
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "pyrobust_forward_corrected_ce_learnable_cpu", [&] {
    using Vec = Vectorized<scalar_t>;
    constexpr int64_t W = Vec::size();
    Args<scalar_t> a{};
    const scalar_t* theta = theta_t.const_data_ptr<scalar_t>();
    a.weight = ptr<scalar_t>(weight);
    a.row_grad = ptr<scalar_t>(row_grad);
    const double divisor = prepare(a, logits, target, rows, grad, ignore_index, reduction);
    // 1. the columns' log-sum-exps
    std::vector<scalar_t> lse(C);
    column_lse(theta, lse.data(), C, C);
    // A row of T with a NaN or +inf logit, or only -inf ones, is NaN (log_softmax's), and so is every row's
    // loss (q sums all of T[:, y]): said here, as the exps below would not say it (float's exp_u20 of NaN is +inf).
    // Ignored rows keep 0; d loss / d theta_t is NaN throughout (with every row ignored, autograd through
    // log_softmax would leave 0 outside T's NaN rows: stricter, on purpose).
    if (!std::all_of(lse.begin(), lse.end(), [](scalar_t v) { return std::isfinite(v); })) {
      for_rows(a, 0, a.B, [&](int64_t i, int64_t, const scalar_t*, scalar_t* g) { nan_row(a.loss + i, g, C); });
      std::fill_n(grad_theta.mutable_data_ptr<scalar_t>(), C * C, kNaN<scalar_t>);
      reduce_rows(a.loss, a.B, reduction, divisor, loss);
      return;
    }
    // 2. rows grouped by target class
    const ClassRows classes = group_by_class(a);
    const std::vector<int64_t>& start = classes.start;
    scalar_t* gt = grad_theta.mutable_data_ptr<scalar_t>();
    const int64_t chunk = class_chunk(C), chunks = (C + chunk - 1) / chunk;
    std::vector<scalar_t> partial(chunks * C);
    at::parallel_for(0, chunks, 1, [&](int64_t b0, int64_t b1) {
      RowScratch<scalar_t> k(C);
      std::vector<scalar_t> col(C + W);
      for (int64_t b = b0; b < b1; ++b) {
        scalar_t* cs = partial.data() + b * C;
        std::fill(cs, cs + C, scalar_t(0));
        for (int64_t y = b * chunk; y < std::min<int64_t>(C, (b + 1) * chunk); ++y) {
          if (start[y] == start[y + 1]) continue;  // no row of this class: G[y] = 0, written by step 3
          scalar_t* acc = gt + y * C;
          std::fill(acc, acc + C, scalar_t(0));
          forward_class_rows<scalar_t, kAccLog>(a, classes.order.data(), start[y], start[y + 1], start[C], y,
                                                learned_column(theta, lse.data(), C, y, col.data()), acc, k);
          at::vec::map2([](Vec x, Vec g) { return x + g; }, cs, cs, acc, C);
        }
      }
    });
    // 3. column sums, then d loss / d theta_t[y] = G[y] - T[:, y] * cs
    std::vector<scalar_t> cs(C, scalar_t(0));
    for (int64_t b = 0; b < chunks; ++b) {
      for (int64_t j = 0; j < C; ++j) cs[j] += partial[b * C + j];
    }
    at::parallel_for(0, C, std::max<int64_t>(1, kGrainElements / std::max<int64_t>(C, 1)), [&](int64_t y0, int64_t y1) {
      for (int64_t y = y0; y < y1; ++y) {
        theta_grad_row(gt + y * C, theta + y * C, lse.data(), cs.data(), C, start[y] != start[y + 1]);
      }
    });
    reduce_rows(a.loss, a.B, reduction, divisor, loss);
  });
  return {loss, grad, grad_theta};
}

at::Tensor scale_grad_cpu(const at::Tensor& grad_in, const at::Tensor& grad_loss_in) {
  check_scale_grad_inputs(grad_in, grad_loss_in);
  TORCH_CHECK(grad_in.scalar_type() == at::kFloat || grad_in.scalar_type() == at::kDouble,
              "pyrobust: the CPU kernels take float32 or float64 gradients, got ", grad_in.scalar_type());
  if (grad_in.dim() == 3) {  // K-dimensional (N, C, S) by per-position losses (N, S): rarely on a hot path
    return at::mul(grad_in, grad_loss_in.to(grad_in.scalar_type()).reshape({grad_loss_in.dim() == 0 ? 1 : grad_in.size(0), 1,
                                                                     grad_loss_in.dim() == 0 ? 1 : grad_in.size(2)}));
  }
  const at::Tensor grad = grad_in.contiguous();
  const int64_t B = grad.size(0), C = grad.size(1);
  // A scalar (reduced loss) or an expanded one (the gradient of a "mean" taken in Python) becomes a plain
  // (B,) vector: one small copy.
  const at::Tensor grad_loss = grad_loss_in.expand({B}).to(grad.scalar_type()).contiguous();
  at::Tensor out = at::empty_like(grad);
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "pyrobust_scale_grad_cpu", [&] {
    using Vec = Vectorized<scalar_t>;
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const scalar_t* s = grad_loss.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, B, grain_rows(C), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const Vec scale(s[i]);
        at::vec::map([&](Vec x) { return x * scale; }, o + i * C, g + i * C, C);
      }
    });
  });
  return out;
}

void scale_grad_inplace_cpu(const at::Tensor& grad, const at::Tensor& grad_loss) {
  check_scale_grad_inplace_inputs(grad, grad_loss);
  const double scale = grad_loss.item<double>();
  if (scale != 1.0) grad.mul_(scale);
}

}  // namespace

}  // namespace pyrobust
