// CPU kernels of the pyrobust ops: one pass over the batch, rows split across threads with
// at::parallel_for, each row vectorised with at::vec. A row reads its C logits, one row of the C x C table
// (row y of log_T_t, i.e. column y of T; or row y of T_inv) and writes its loss and its C gradients:
// O(C) per row, never the O(C^2) of softmax(h) @ T. Two refinements, both checked against the float64
// reference by the tests: rows of few classes are processed W at a time, transposed (Tile), and the forward
// correction uses one exp per element instead of two when C <= B (forward_row_fast).
// at::vec picks its SIMD implementation from the CPU_CAPABILITY macros, which PyTorch sets only for its own
// per-ISA builds of its kernels; without them Vectorized is a plain array with scalar std::exp. Derive them
// from what the compiler targets (setup.py passes -march=native unless PYROBUST_PORTABLE=1).
#if !defined(CPU_CAPABILITY)
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#elif defined(__AVX2__) && defined(__FMA__)
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#endif
#endif

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Reduction.h>
#include <ATen/core/Tensor.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/exp.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "pyrobust/checks.h"
#include "pyrobust/corrected_ce.h"

namespace pyrobust {
namespace {

using at::vec::Vectorized;

// Rows per task: enough work (~32k elements) per chunk to amortise the thread hand-off.
constexpr int64_t kGrainElements = 32768;
int64_t grain_rows(int64_t C) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(C, 1)); }

template <typename scalar_t>
Vectorized<scalar_t> vexp(const Vectorized<scalar_t>& x) {
  return x.exp_u20();  // the exp of PyTorch's own softmax kernels; exp(-inf) = 0
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

// The forward correction with one exp per element instead of two, given T_t = exp(log_T_t) (computed once
// per call when C <= B, so at most one B x C buffer): with e = exp(h - max h),
//   q_y = sum_j T[j, y] e_j / sum_j e_j,   grad = e / sum e - e T[:, y] / sum_j T[j, y] e_j.
// It drops the terms whose e_j underflows, which is exact to round-off only while sum_j T[j, y] e_j stays
// far above the underflow threshold (>= kFastMin; a dropped term is then < e^-48 of it). Otherwise the row
// returns false and takes the log-space path.
template <typename scalar_t>
scalar_t fast_path_min() {
  return std::exp(scalar_t(0.45) * std::log(std::numeric_limits<scalar_t>::min()));
}

template <typename scalar_t>
bool forward_row_fast(const scalar_t* h, const scalar_t* T_col, scalar_t* g, scalar_t* loss, scalar_t* e_h,
                      const Row<scalar_t>& row, const scalar_t* logits_end, const scalar_t* table_end,
                      scalar_t fast_min, scalar_t scale) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  const int64_t C = row.C;
  const Vec minus_inf(-std::numeric_limits<scalar_t>::infinity()), zero(0);
  Vec vmax = minus_inf;
  for (int64_t j = 0; j < C; j += W) vmax = at::vec::maximum(vmax, row.load(h, j, minus_inf, logits_end));
  const scalar_t max_h = reduce_max(vmax);
  const Vec vm(max_h);
  Vec vsum_h(0), vsum_q(0);
  for (int64_t j = 0; j < C; j += W) {
    const Vec e = vexp(row.load(h, j, minus_inf, logits_end) - vm);
    e.store(e_h + j);
    vsum_h += e;
    vsum_q = at::vec::fmadd(e, row.load(T_col, j, zero, table_end), vsum_q);
  }
  const scalar_t sum_h = reduce_sum(vsum_h), sum_q = reduce_sum(vsum_q);
  if (!(sum_q >= fast_min)) return false;
  const Vec vinv_h(scale / sum_h), vinv_q(scale / sum_q);
  for (int64_t j = 0; j < C; j += W) {
    row.store(Vec::loadu(e_h + j) * (vinv_h - row.load(T_col, j, zero, table_end) * vinv_q), g, j);
  }
  *loss = forward_loss(max_h + std::log(sum_h), max_h + std::log(sum_q));
  return true;
}

// Forward correction for rows [begin, end) of the B x C logits; three sweeps over a row that stays in cache,
//   1. maxima of h and of h + log T[:, y];
//   2. exp(h - max) and exp(h + log T[:, y] - max') into two scratch rows, and their sums;
//   3. gradient = scale * (softmax(h) - softmax(h + log T[:, y])).
// Working in log space keeps the loss exact where T has zeros (log 0 = -inf, exp(-inf) = 0), with no
// clipping of probabilities. Padding lanes hold -inf, so they add exp(-inf) = 0 to the sums.
template <typename scalar_t>
void forward_rows(const scalar_t* logits, const int64_t* target, const scalar_t* log_T_t, const scalar_t* T_t,
                  scalar_t* loss, scalar_t* grad, int64_t begin, int64_t end, int64_t B, int64_t C,
                  int64_t ignore_index, scalar_t scale) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  constexpr scalar_t inf = std::numeric_limits<scalar_t>::infinity();
  const Row<scalar_t> row(C);
  const Vec minus_inf(-inf);
  const scalar_t* logits_end = logits + B * C;
  const scalar_t* table_end = log_T_t + C * C;
  std::vector<scalar_t> scratch(2 * (C + W));  // padded: whole-vector access, never out of bounds
  scalar_t* e_h = scratch.data();
  scalar_t* e_q = e_h + C + W;
  const scalar_t fast_min = fast_path_min<scalar_t>();

  for (int64_t i = begin; i < end; ++i) {
    const scalar_t* h = logits + i * C;
    scalar_t* g = grad + i * C;
    const int64_t y = target[i];
    if (y == ignore_index) {
      ignore_row(loss + i, g, C);
      continue;
    }
    if (T_t != nullptr &&
        forward_row_fast(h, T_t + y * C, g, loss + i, e_h, row, logits_end, T_t + C * C, fast_min, scale)) {
      continue;
    }
    const scalar_t* lt = log_T_t + y * C;

    Vec vmax_h(-inf), vmax_q(-inf);
    for (int64_t j = 0; j < C; j += W) {
      const Vec hv = row.load(h, j, minus_inf, logits_end);
      vmax_h = at::vec::maximum(vmax_h, hv);
      vmax_q = at::vec::maximum(vmax_q, hv + row.load(lt, j, minus_inf, table_end));
    }
    const scalar_t max_h = reduce_max(vmax_h), max_q = reduce_max(vmax_q);
    if (max_q == -inf) {
      // Column y of T is all zero: the observed label is impossible under T. The loss is +inf and its
      // gradient undefined.
      loss[i] = inf;
      std::fill(g, g + C, std::numeric_limits<scalar_t>::quiet_NaN());
      continue;
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
      row.store(Vec::loadu(e_h + j) * vinv_h - Vec::loadu(e_q + j) * vinv_q, g, j);
    }

    loss[i] = forward_loss(LogSumExp<scalar_t>{max_h, sum_h}.value(), LogSumExp<scalar_t>{max_q, sum_q}.value());
  }
}

// Backward correction for rows [begin, end): (1) max of h; (2) exp(h - max) into a scratch row, its sum,
// sum_k Tinv[y,k] and sum_k Tinv[y,k] (h_k - max); (3) gradient = scale (softmax(h) sum_k Tinv[y,k] - Tinv[y]).
// Padding lanes: h = -inf for the exp (adds 0), Tinv = 0 and h - max = 0 for the sums.
template <typename scalar_t>
void backward_rows(const scalar_t* logits, const int64_t* target, const scalar_t* T_inv, scalar_t* loss,
                   scalar_t* grad, int64_t begin, int64_t end, int64_t B, int64_t C, int64_t ignore_index,
                   scalar_t scale) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  constexpr scalar_t inf = std::numeric_limits<scalar_t>::infinity();
  const Row<scalar_t> row(C);
  const Vec minus_inf(-inf), zero(0);
  const scalar_t* logits_end = logits + B * C;
  const scalar_t* table_end = T_inv + C * C;
  std::vector<scalar_t> scratch(C + W);
  scalar_t* e = scratch.data();

  for (int64_t i = begin; i < end; ++i) {
    const scalar_t* h = logits + i * C;
    scalar_t* g = grad + i * C;
    const int64_t y = target[i];
    if (y == ignore_index) {
      ignore_row(loss + i, g, C);
      continue;
    }
    const scalar_t* ti = T_inv + y * C;

    Vec vmax(-inf);
    for (int64_t j = 0; j < C; j += W) vmax = at::vec::maximum(vmax, row.load(h, j, minus_inf, logits_end));
    const scalar_t max_h = reduce_max(vmax);

    Vec vsum(0), vtsum(0), vdot(0);
    const Vec vm(max_h);
    for (int64_t j = 0; j < C; j += W) {
      const Vec s = row.load(h, j, vm, logits_end) - vm;
      const Vec t = row.load(ti, j, zero, table_end);
      const Vec ex = vexp(row.load(h, j, minus_inf, logits_end) - vm);
      ex.store(e + j);
      vsum += ex;
      vtsum += t;
      vdot = at::vec::fmadd(t, s, vdot);
    }
    const scalar_t sum = reduce_sum(vsum), tsum = reduce_sum(vtsum), dot = reduce_sum(vdot);

    const Vec vsoftmax_scale(scale * tsum / sum), vscale(scale);
    for (int64_t j = 0; j < C; j += W) {
      row.store(Vec::loadu(e + j) * vsoftmax_scale - row.load(ti, j, zero, table_end) * vscale, g, j);
    }

    loss[i] = backward_loss(std::log(sum), tsum, dot);
  }
}

// Few classes (C <= kTileMaxC, e.g. MNIST's 10): a row is one or two vectors, mostly padding, and the
// per-row horizontal reductions and scalar logs cost more than the exps. Instead take W rows at a time,
// transposed so that lane r holds row r: every reduction over classes becomes an element-wise vector op.
constexpr int64_t kTileMaxC = 32;

template <typename scalar_t>
struct Tile {
  using Vec = Vectorized<scalar_t>;
  static constexpr int64_t W = Vec::size();
  alignas(64) scalar_t h[kTileMaxC * W];    // h[j * W + r] = logits[row r, class j]
  alignas(64) scalar_t t[kTileMaxC * W];    // t[j * W + r] = table[y_r, j]
  alignas(64) scalar_t e[2][kTileMaxC * W];  // exps, then the gradient in e[0]
  alignas(64) scalar_t loss[W];
  alignas(64) scalar_t sum_q[W];  // forward: sum_j T[j, y] e_j, to spot rows for the log-space path

  // Rows with target == ignore_index read table row 0 here and are overwritten in store().
  void load(const scalar_t* logits, const int64_t* target, const scalar_t* table, int64_t i0, int64_t C,
            int64_t ignore_index) {
    for (int64_t r = 0; r < W; ++r) {
      const int64_t y = target[i0 + r] == ignore_index ? 0 : target[i0 + r];
      const scalar_t* hr = logits + (i0 + r) * C;
      const scalar_t* tr = table + y * C;
      for (int64_t j = 0; j < C; ++j) {
        h[j * W + r] = hr[j];
        t[j * W + r] = tr[j];
      }
    }
  }

  void store(scalar_t* loss_out, scalar_t* grad, const int64_t* target, int64_t i0, int64_t C,
             int64_t ignore_index) const {
    for (int64_t r = 0; r < W; ++r) {
      scalar_t* g = grad + (i0 + r) * C;
      if (target[i0 + r] == ignore_index) {
        ignore_row(loss_out + i0 + r, g, C);
      } else {
        loss_out[i0 + r] = loss[r];
        for (int64_t j = 0; j < C; ++j) g[j] = e[0][j * W + r];
      }
    }
  }
};

// forward_row_fast for a tile (tile.t holds T[:, y] here, not its log); tile.sum_q gets sum_j T[j, y] e_j.
template <typename scalar_t>
void forward_tile_fast(Tile<scalar_t>& tile, int64_t C, scalar_t scale) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  Vec max_h(-std::numeric_limits<scalar_t>::infinity());
  for (int64_t j = 0; j < C; ++j) max_h = at::vec::maximum(max_h, Vec::loadu(tile.h + j * W));
  Vec sum_h(0), sum_q(0);
  for (int64_t j = 0; j < C; ++j) {
    const Vec e = vexp(Vec::loadu(tile.h + j * W) - max_h);
    e.store(tile.e[0] + j * W);
    sum_h += e;
    sum_q = at::vec::fmadd(e, Vec::loadu(tile.t + j * W), sum_q);
  }
  const Vec inv_h = Vec(scale) / sum_h, inv_q = Vec(scale) / sum_q;
  for (int64_t j = 0; j < C; ++j) {
    (Vec::loadu(tile.e[0] + j * W) * (inv_h - Vec::loadu(tile.t + j * W) * inv_q)).store(tile.e[0] + j * W);
  }
  (sum_h.log() - sum_q.log()).store(tile.loss);
  sum_q.store(tile.sum_q);
}

// Forward correction of rows [begin, end): tiles of W rows when C is small, the rest row by row; a row
// of a tile that needs the log-space path is redone by forward_rows.
template <typename scalar_t>
void forward_all(const scalar_t* h, const int64_t* y, const scalar_t* log_T_t, const scalar_t* T_t, scalar_t* l,
                 scalar_t* g, int64_t begin, int64_t end, int64_t B, int64_t C, int64_t ig, scalar_t scale) {
  constexpr int64_t W = Vectorized<scalar_t>::size();
  if (T_t != nullptr && C <= kTileMaxC) {
    const scalar_t fast_min = fast_path_min<scalar_t>();
    Tile<scalar_t> tile;
    for (; begin + W <= end; begin += W) {
      tile.load(h, y, T_t, begin, C, ig);
      forward_tile_fast(tile, C, scale);
      tile.store(l, g, y, begin, C, ig);
      for (int64_t r = 0; r < W; ++r) {
        if (y[begin + r] != ig && !(tile.sum_q[r] >= fast_min)) {
          forward_rows<scalar_t>(h, y, log_T_t, nullptr, l, g, begin + r, begin + r + 1, B, C, ig, scale);
        }
      }
    }
  }
  forward_rows<scalar_t>(h, y, log_T_t, T_t, l, g, begin, end, B, C, ig, scale);
}

template <typename scalar_t>
void backward_tile(Tile<scalar_t>& tile, int64_t C, scalar_t scale) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  Vec max_h(-std::numeric_limits<scalar_t>::infinity());
  for (int64_t j = 0; j < C; ++j) max_h = at::vec::maximum(max_h, Vec::loadu(tile.h + j * W));
  Vec sum(0), tsum(0), dot(0);
  for (int64_t j = 0; j < C; ++j) {
    const Vec s = Vec::loadu(tile.h + j * W) - max_h;
    const Vec t = Vec::loadu(tile.t + j * W);
    const Vec e = vexp(s);
    e.store(tile.e[0] + j * W);
    sum += e;
    tsum += t;
    dot = at::vec::fmadd(t, s, dot);
  }
  const Vec softmax_scale = Vec(scale) * tsum / sum, vscale(scale);
  for (int64_t j = 0; j < C; ++j) {
    (Vec::loadu(tile.e[0] + j * W) * softmax_scale - Vec::loadu(tile.t + j * W) * vscale).store(tile.e[0] + j * W);
  }
  (tsum * sum.log() - dot).store(tile.loss);
}

// Backward correction of rows [begin, end): tiles of W rows when C is small, the rest row by row.
template <typename scalar_t>
void backward_all(const scalar_t* h, const int64_t* y, const scalar_t* T_inv, scalar_t* l, scalar_t* g,
                  int64_t begin, int64_t end, int64_t B, int64_t C, int64_t ig, scalar_t scale) {
  constexpr int64_t W = Vectorized<scalar_t>::size();
  if (C <= kTileMaxC) {
    Tile<scalar_t> tile;
    for (; begin + W <= end; begin += W) {
      tile.load(h, y, T_inv, begin, C, ig);
      backward_tile(tile, C, scale);
      tile.store(l, g, y, begin, C, ig);
    }
  }
  backward_rows<scalar_t>(h, y, T_inv, l, g, begin, end, B, C, ig, scale);
}

template <typename RowFn>
std::tuple<at::Tensor, at::Tensor> corrected_ce(const at::Tensor& logits, const at::Tensor& target,
                                                const at::Tensor& table, int64_t ignore_index, int64_t reduction,
                                                const char* table_name, RowFn row_fn_tag) {
  check_loss_inputs(logits, target, table, reduction, table_name);
  TORCH_CHECK(logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kDouble,
              "pyrobust: the CPU kernels take float32 or float64 logits, got ", logits.scalar_type());
  const int64_t B = logits.size(0), C = logits.size(1);
  const int64_t count = check_targets(target.const_data_ptr<int64_t>(), B, C, ignore_index);
  at::Tensor rows = at::empty({B}, logits.options());
  at::Tensor grad = at::empty_like(logits);
  at::Tensor loss = reduction == at::Reduction::None ? rows : at::empty({}, logits.options());
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "pyrobust_corrected_ce_cpu", [&] {
    const scalar_t* h = logits.const_data_ptr<scalar_t>();
    const int64_t* y = target.const_data_ptr<int64_t>();
    const scalar_t* tab = table.const_data_ptr<scalar_t>();
    scalar_t* l = rows.mutable_data_ptr<scalar_t>();
    scalar_t* g = grad.mutable_data_ptr<scalar_t>();
    // The gradient of a mean is scaled in the pass that writes it; with every row ignored it is 0, as
    // F.cross_entropy's, while the loss is 0 / 0 = nan.
    const scalar_t scale = reduction == at::Reduction::Mean && count > 0 ? scalar_t(1) / scalar_t(count) : 1;
    at::parallel_for(0, B, grain_rows(C), [&](int64_t begin, int64_t end) {
      row_fn_tag.template operator()<scalar_t>(h, y, tab, l, g, begin, end, B, C, ignore_index, scale);
    });
    if (reduction != at::Reduction::None) {
      // Summed in double, in row order: a reduced loss that does not depend on the number of threads.
      double total = 0;
      for (int64_t i = 0; i < B; ++i) total += l[i];
      if (reduction == at::Reduction::Mean) total /= static_cast<double>(count);
      *loss.mutable_data_ptr<scalar_t>() = static_cast<scalar_t>(total);
    }
  });
  return {loss, grad};
}

struct ForwardRows {
  at::Tensor T_t;  // exp(log_T_t) for the one-exp path, or undefined

  template <typename scalar_t>
  void operator()(const scalar_t* h, const int64_t* y, const scalar_t* tab, scalar_t* l, scalar_t* g, int64_t b,
                  int64_t e, int64_t B, int64_t C, int64_t ig, scalar_t scale) const {
    const scalar_t* T = T_t.defined() ? T_t.const_data_ptr<scalar_t>() : nullptr;
    forward_all<scalar_t>(h, y, tab, T, l, g, b, e, B, C, ig, scale);
  }
};

struct BackwardRows {
  template <typename scalar_t>
  void operator()(const scalar_t* h, const int64_t* y, const scalar_t* tab, scalar_t* l, scalar_t* g, int64_t b,
                  int64_t e, int64_t B, int64_t C, int64_t ig, scalar_t scale) const {
    backward_all<scalar_t>(h, y, tab, l, g, b, e, B, C, ig, scale);
  }
};

std::tuple<at::Tensor, at::Tensor> forward_corrected_ce_cpu(const at::Tensor& logits, const at::Tensor& target,
                                                            const at::Tensor& log_T_t, int64_t ignore_index,
                                                            int64_t reduction) {
  // C^2 exps once beat B*C extra exps when C <= B (and cost at most one B x C buffer).
  const bool one_exp = log_T_t.dim() == 2 && logits.dim() == 2 && log_T_t.scalar_type() == logits.scalar_type() &&
                       log_T_t.size(0) <= std::max<int64_t>(logits.size(0), kTileMaxC);
  return corrected_ce(logits, target, log_T_t, ignore_index, reduction, "log_T_t",
                      ForwardRows{one_exp ? log_T_t.contiguous().exp() : at::Tensor()});
}

std::tuple<at::Tensor, at::Tensor> backward_corrected_ce_cpu(const at::Tensor& logits, const at::Tensor& target,
                                                             const at::Tensor& T_inv, int64_t ignore_index,
                                                             int64_t reduction) {
  return corrected_ce(logits, target, T_inv, ignore_index, reduction, "T_inv", BackwardRows{});
}

at::Tensor scale_grad_cpu(const at::Tensor& grad_in, const at::Tensor& grad_loss_in) {
  check_scale_grad_inputs(grad_in, grad_loss_in);
  TORCH_CHECK(grad_in.scalar_type() == at::kFloat || grad_in.scalar_type() == at::kDouble,
              "pyrobust: the CPU kernels take float32 or float64 gradients, got ", grad_in.scalar_type());
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

TORCH_LIBRARY_IMPL(pyrobust, CPU, m) {
  m.impl("_forward_corrected_ce", &forward_corrected_ce_cpu);
  m.impl("_backward_corrected_ce", &backward_corrected_ce_cpu);
  m.impl("scale_grad", &scale_grad_cpu);
  m.impl("scale_grad_", &scale_grad_inplace_cpu);
}

}  // namespace pyrobust
