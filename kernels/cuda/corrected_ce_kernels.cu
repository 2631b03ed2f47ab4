// CUDA kernels of the pyrobust ops (declared in pyrobust/cuda_launchers.h). They compile with nvcc alone:
// raw pointers and a cudaStream_t in, no torch headers; kernels/cuda/binding.cpp is the torch side.
//
// One kernel serves both corrections; a policy (ForwardCorrection, BackwardCorrection in
// pyrobust/row_reduction.h, on the per-row math that the CPU kernels use too) says what a row reduces to
// and how its gradient follows. For each row i:
//   pass 1  reads the logits h_i and one row of the C x C table (log_T_t[y_i] = log T[:, y_i], or
//           T_inv[y_i]), and reduces them to an online log-sum-exp and the correction's statistics;
//   pass 2  writes the gradient row d loss_i / d h_i from the same values.
// A reduced loss (mean, sum) is reduced by the same kernel: each block adds up its rows, and the block
// that finishes last adds up the blocks. A one-block kernel before it counts the rows of a mean, whose
// gradient is then scaled as it is written. So a mean costs two launches, where reducing with torch ops
// cost seven (compare, count, clamp, reciprocal, kernel, sum, divide), and nothing synchronises with the
// host.
// The first kCached vectors a thread reads stay in its registers between the passes, so that for the
// sizes that matter the logits are read from DRAM once and the gradient written once; any rest of a
// very long row is read again in pass 2, from L2 where it was just loaded.
//
// Class weights (optional, (C,)): a forward row is weighed by that of its target, a backward term t_j by
// w_j (after adding the optional offset_j, label smoothing's share); a mean divides by the summed weights
// of the rows not ignored, counted by the prep kernel.
// Launch shapes, chosen per call from C (see dispatch_config):
//   * a warp per row (8 rows per 256-thread block) while each lane holds at most 8 vectors of the row
//     (4 for fp16/bf16): C <= 1024 with 16-byte vectors, C <= 256 with scalar accesses. The row is
//     reduced with warp shuffles alone, no barrier, and short rows (C = 10, 100: the paper's data sets)
//     keep many rows in flight per SM;
//   * a 512-thread block per row beyond: 16 warps reduce through shared memory; a thread caches 8
//     vectors (float32) or 4 (fp16/bf16), so rows up to C = 16384 are read from DRAM once, and each
//     thread has 4-8 independent 16-byte loads in flight, enough for one or two blocks per SM to reach
//     full bandwidth. Longer rows re-read their tail from L2 in pass 2.
// Loads and stores are 16 bytes per thread (4 x float32, 8 x fp16/bf16) and coalesced across the group
// whenever C is a multiple of the vector width and the pointers are 16-byte aligned; otherwise (and for
// float64) the same kernel runs with scalar accesses. Accumulation is in float32 (float64 for float64
// logits).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "pyrobust/cuda_launchers.h"
#include "pyrobust/row_reduction.h"

namespace pyrobust {
namespace cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpPathThreads = 256;  // threads of a block that gives each of its warps one row
constexpr int kRowBlockThreads = 512;  // threads of a block that owns one row
constexpr int64_t kMaxBlocks = std::numeric_limits<int32_t>::max();

// How many 16-byte vectors of its row a thread keeps in registers, with the matching vectors of the
// table row (float even for 16-bit logits, hence fewer for those). Sized with `ptxas -v` for sm_80/sm_90:
// <= 128 registers at 512 threads (block path) and on the warp path, no spills but a few bytes in two
// float64 / bf16 instances. A lane that would hold more vectors sends its row to the block path.
template <typename scalar_t>
constexpr int max_warp_cached() {
  return sizeof(scalar_t) == 2 ? 4 : 8;
}
template <typename scalar_t>
constexpr int row_block_cached() {
  return sizeof(scalar_t) == 4 ? 8 : 4;
}

// ---- element types ------------------------------------------------------------------------------

// Accumulation type and the conversions of each logit type (explicit: torch builds with
// __CUDA_NO_HALF_CONVERSIONS__ and __CUDA_NO_BFLOAT16_CONVERSIONS__).
template <typename scalar_t>
struct Element;

template <>
struct Element<float> {
  using acc_t = float;
  __device__ __forceinline__ static float to_acc(float x) { return x; }
  __device__ __forceinline__ static float from_acc(float x) { return x; }
};

template <>
struct Element<double> {
  using acc_t = double;
  __device__ __forceinline__ static double to_acc(double x) { return x; }
  __device__ __forceinline__ static double from_acc(double x) { return x; }
};

template <>
struct Element<__half> {
  using acc_t = float;
  __device__ __forceinline__ static float to_acc(__half x) { return __half2float(x); }
  __device__ __forceinline__ static __half from_acc(float x) { return __float2half_rn(x); }
};

template <>
struct Element<__nv_bfloat16> {
  using acc_t = float;
  __device__ __forceinline__ static float to_acc(__nv_bfloat16 x) { return __bfloat162float(x); }
  __device__ __forceinline__ static __nv_bfloat16 from_acc(float x) { return __float2bfloat16_rn(x); }
};

template <typename scalar_t>
using acc_type = typename Element<scalar_t>::acc_t;

// N consecutive elements moved as one access: 16 bytes for the logit vectors (LDG.128 / STG.128).
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

// Packs of 16 or 32 bytes move as 16-byte words through the uint4 intrinsics, which emit one
// ld.global.nc.v4 / st.global.wb.v4 each: a plain struct copy was split into scalar stores by the
// compiler in the uncached tail loop.
template <int N, typename T>
__device__ __forceinline__ Pack<T, N> load_pack(const T* p) {
  Pack<T, N> x;
  if constexpr (sizeof(x) % sizeof(uint4) == 0) {
    uint4 words[sizeof(x) / sizeof(uint4)];
#pragma unroll
    for (int w = 0; w < int(sizeof(x) / sizeof(uint4)); ++w) words[w] = __ldg(reinterpret_cast<const uint4*>(p) + w);
    memcpy(&x, words, sizeof(x));
  } else {
    x = *reinterpret_cast<const Pack<T, N>*>(p);
  }
  return x;
}

template <int N, typename T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, N>& x) {
  if constexpr (sizeof(x) % sizeof(uint4) == 0) {
    uint4 words[sizeof(x) / sizeof(uint4)];
    memcpy(words, &x, sizeof(x));
#pragma unroll
    for (int w = 0; w < int(sizeof(x) / sizeof(uint4)); ++w) __stwb(reinterpret_cast<uint4*>(p) + w, words[w]);
  } else {
    *reinterpret_cast<Pack<T, N>*>(p) = x;
  }
}

// ---- reductions ---------------------------------------------------------------------------------

template <typename State>
__device__ __forceinline__ State shfl_xor(const State& s, int lane_mask) {
  static_assert(sizeof(State) % sizeof(int) == 0, "State must be whole 32-bit words");
  constexpr int kWords = sizeof(State) / sizeof(int);
  int w[kWords];
  memcpy(w, &s, sizeof(State));
#pragma unroll
  for (int k = 0; k < kWords; ++k) w[k] = __shfl_xor_sync(0xffffffffu, w[k], lane_mask);
  State out;
  memcpy(&out, w, sizeof(State));
  return out;
}

// Reduces a State over the kGroup threads of a row (a warp, or the whole block); every thread of the
// group returns the total.
template <class Loss, int kGroup, typename State>
__device__ __forceinline__ State group_reduce(State s, State* shared) {
#pragma unroll
  for (int mask = kWarp / 2; mask > 0; mask /= 2) s = Loss::combine(s, shfl_xor(s, mask));
  if constexpr (kGroup == kWarp) {
    return s;
  } else {
    constexpr int kWarps = kGroup / kWarp;
    if (threadIdx.x % kWarp == 0) shared[threadIdx.x / kWarp] = s;
    __syncthreads();
    State total = shared[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) total = Loss::combine(total, shared[w]);
    __syncthreads();  // `shared` is written again for the block's next row
    return total;
  }
}

// ---- the reduced loss -----------------------------------------------------------------------------

template <typename T>
struct Sum {
  __device__ __forceinline__ static T combine(T a, T b) { return a + b; }
};

// IEEE reciprocals: --use_fast_math would turn 1 / x into an approximation.
__device__ __forceinline__ float reciprocal(float x) { return __frcp_rn(x); }
__device__ __forceinline__ double reciprocal(double x) { return __drcp_rn(x); }

// The scratch of a reduced loss (reduced_loss_workspace_bytes): this header, then one partial sum per
// block of the loss kernel, in double whatever the logits, so that the order of the additions matters
// only far below float32's precision.
template <typename acc_t>
struct ReducedLoss {
  acc_t divisor;             // rows not ignored (mean) or 1 (sum): loss = sum / divisor
  acc_t grad_scale;          // 1 / max(divisor, 1), applied to the gradient as it is written
  unsigned int blocks_done;  // blocks of the loss kernel whose partial sum is stored
};
constexpr size_t kReducedLossHeader = 64;
static_assert(sizeof(ReducedLoss<double>) <= kReducedLossHeader, "the header outgrew its bytes");

template <typename acc_t>
__device__ __forceinline__ double* partial_sums(ReducedLoss<acc_t>* r) {
  return reinterpret_cast<double*>(reinterpret_cast<char*>(r) + kReducedLossHeader);
}

constexpr int kPrepThreads = 1024;

// Runs before the loss kernel of a reduced loss: computes the divisor of a mean (the rows not ignored or,
// with class weights, the sum of their classes' weights; 1 for a sum) and the gradient's scale, zeroes the
// count of finished blocks, and writes the loss of an empty batch (0 / divisor: nan for a mean, 0 for a sum),
// which stands where no loss kernel follows. One block: a batch's targets are a few kilobytes.
template <typename acc_t>
__global__ void __launch_bounds__(kPrepThreads)
    reduced_loss_prep_kernel(const int64_t* __restrict__ target, const acc_t* __restrict__ weight, int64_t batch,
                             int64_t ignore_index, bool mean, ReducedLoss<acc_t>* reduced, acc_t* loss) {
  __shared__ long long shared[kPrepThreads / kWarp];
  __shared__ double shared_weights[kPrepThreads / kWarp];
  long long count = 0;
  double weights = 0;
  if (mean) {
    for (int64_t i = threadIdx.x; i < batch; i += kPrepThreads) {
      const int64_t y = target[i];
      if (y == ignore_index) continue;
      ++count;
      if (weight != nullptr) weights += double(weight[y]);  // y is checked by the loss kernel
    }
  }
  count = group_reduce<Sum<long long>, kPrepThreads>(count, shared);
  if (weight != nullptr) weights = group_reduce<Sum<double>, kPrepThreads>(weights, shared_weights);
  if (threadIdx.x == 0) {
    if (weight == nullptr || !mean) {
      const acc_t divisor = mean ? acc_t(count) : acc_t(1);
      reduced->divisor = divisor;
      reduced->grad_scale = reciprocal(divisor > acc_t(1) ? divisor : acc_t(1));
    } else {
      // Weights summing to 0 give a nan loss and nan gradients, as F.cross_entropy's.
      reduced->divisor = acc_t(weights);
      reduced->grad_scale = acc_t(1.0 / weights);
    }
    reduced->blocks_done = 0;
    *loss = acc_t(0.0 / double(reduced->divisor));
  }
}

// The loss kernel's last step for a reduced loss. `loss_sum` is the sum of the losses of the rows a
// thread finished (0 but in the first thread of each row group). Each block adds these into its partial
// sum; the block that finishes last adds the partial sums, and writes the loss. Every addition is in a
// fixed order: the same bits on every run.
template <int kThreads, typename acc_t>
__device__ void reduce_over_grid(ReducedLoss<acc_t>* reduced, double loss_sum, acc_t* loss) {
  __shared__ double shared[kThreads / kWarp];
  __shared__ bool last_block;
  double* partials = partial_sums(reduced);
  const double block_sum = group_reduce<Sum<double>, kThreads>(loss_sum, shared);
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = block_sum;
    __threadfence();  // the partial sum is visible to every block before this block counts as finished
    last_block = atomicAdd(&reduced->blocks_done, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last_block) return;
  double total = 0;
  // From L2 (ld.global.cg): the partial sums were written by other SMs.
  for (unsigned int b = threadIdx.x; b < gridDim.x; b += kThreads) total += __ldcg(partials + b);
  total = group_reduce<Sum<double>, kThreads>(total, shared);
  if (threadIdx.x == 0) *loss = acc_t(total / double(reduced->divisor));
}

// ---- the corrected cross-entropy kernel ---------------------------------------------------------

template <int kGroup>
constexpr int block_threads() {
  return kGroup == kWarp ? kWarpPathThreads : kGroup;
}

// Rows are handled by groups of kGroup threads (a warp, or a whole block); thread `lane` of a group owns
// the kVec-wide vectors at columns (it * kGroup + lane) * kVec. A grid-stride loop over rows keeps the
// grid within CUDA's limits for any batch.
template <template <typename> class Policy, typename scalar_t, int kGroup, int kVec, int kCached>
__global__ void __launch_bounds__(block_threads<kGroup>())
    corrected_ce_kernel(const scalar_t* __restrict__ logits, const int64_t* __restrict__ target,
                        const acc_type<scalar_t>* __restrict__ table, const acc_type<scalar_t>* __restrict__ weight,
                        const acc_type<scalar_t>* __restrict__ offset, int64_t batch, int num_classes,
                        int64_t ignore_index, ReducedLoss<acc_type<scalar_t>>* reduced,
                        acc_type<scalar_t>* __restrict__ loss, scalar_t* __restrict__ grad) {
  using acc_t = acc_type<scalar_t>;
  using E = Element<scalar_t>;
  using Loss = Policy<acc_t>;
  using State = typename Loss::State;
  constexpr int kRowsPerBlock = block_threads<kGroup>() / kGroup;
  constexpr int kStride = kGroup * kVec;  // columns covered by one step of the whole group
  const int C = num_classes;
  const int lane = threadIdx.x % kGroup;
  // Per-row losses (reduced == null) go to loss[row]; a reduced loss is summed by each row's first thread.
  const acc_t scale = reduced == nullptr ? acc_t(1) : reduced->grad_scale;
  double loss_sum = 0;
  __shared__ State shared[kGroup == kWarp ? 1 : kGroup / kWarp];

  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kGroup; row < batch;
       row += int64_t(gridDim.x) * kRowsPerBlock) {
    const scalar_t* h_row = logits + row * C;
    scalar_t* grad_row = grad + row * C;
    const int64_t y = target[row];

    if (y == ignore_index) {
      Pack<scalar_t, kVec> zero;
#pragma unroll
      for (int k = 0; k < kVec; ++k) zero.v[k] = E::from_acc(acc_t(0));
      for (int col = lane * kVec; col < C; col += kStride) store_pack(grad_row + col, zero);
      if (lane == 0 && reduced == nullptr) loss[row] = acc_t(0);
      continue;  // uniform over the group: the block path's barriers stay matched
    }
    if (y < 0 || y >= C) {
      // An out-of-range target never yields a number: like PyTorch's nll_loss, stop with a device-side
      // assertion (independent of NDEBUG). Callers that want a recoverable error validate first.
      __assert_fail("pyrobust: target out of range [0, num_classes) and not ignore_index", __FILE__, __LINE__,
                    __func__);
    }
    const acc_t* t_row = table + y * C;
    // A forward row is weighed by its class's weight; a backward term by its own (terms_weighed, below).
    const acc_t row_weight = (!Loss::kWeighsTerms && weight != nullptr) ? weight[y] : acc_t(1);
    const acc_t row_scale = scale * row_weight;
    const bool terms_weighed = Loss::kWeighsTerms && (weight != nullptr || offset != nullptr);
    // t_j -> (t_j + offset_j) * weight_j for the backward correction's terms (uniform over the group).
    auto weigh = [&](Pack<acc_t, kVec>& t, int col) {
      if (!terms_weighed) return;
      if (offset != nullptr) {
        const Pack<acc_t, kVec> o = load_pack<kVec>(offset + col);
#pragma unroll
        for (int k = 0; k < kVec; ++k) t.v[k] += o.v[k];
      }
      if (weight != nullptr) {
        const Pack<acc_t, kVec> w = load_pack<kVec>(weight + col);
#pragma unroll
        for (int k = 0; k < kVec; ++k) t.v[k] *= w.v[k];
      }
    };

    // Pass 1: issue every cached load before the first use, then reduce.
    Pack<scalar_t, kVec> h_cache[kCached];
    Pack<acc_t, kVec> t_cache[kCached];
#pragma unroll
    for (int it = 0; it < kCached; ++it) {
      const int col = (it * kGroup + lane) * kVec;
      if (col < C) {
        h_cache[it] = load_pack<kVec>(h_row + col);
        t_cache[it] = load_pack<kVec>(t_row + col);
      }
    }
#pragma unroll
    for (int it = 0; it < kCached; ++it) {
      const int col = (it * kGroup + lane) * kVec;
      if (col < C) weigh(t_cache[it], col);
    }
    State state = Loss::empty();
#pragma unroll
    for (int it = 0; it < kCached; ++it) {
      const int col = (it * kGroup + lane) * kVec;
      if (col < C) {
        acc_t h[kVec];
#pragma unroll
        for (int k = 0; k < kVec; ++k) h[k] = E::to_acc(h_cache[it].v[k]);
        state = Loss::combine(state, Loss::chunk(h, t_cache[it].v));
      }
    }
    for (int col = (kCached * kGroup + lane) * kVec; col < C; col += kStride) {
      const Pack<scalar_t, kVec> hp = load_pack<kVec>(h_row + col);
      Pack<acc_t, kVec> tp = load_pack<kVec>(t_row + col);
      weigh(tp, col);
      acc_t h[kVec];
#pragma unroll
      for (int k = 0; k < kVec; ++k) h[k] = E::to_acc(hp.v[k]);
      state = Loss::combine(state, Loss::chunk(h, tp.v));
    }

    state = group_reduce<Loss, kGroup>(state, shared);
    acc_t row_loss;
    const typename Loss::Row r = Loss::finish(state, row_loss);
    if (!Loss::kWeighsTerms) row_loss *= row_weight;
    if (lane == 0) {
      if (reduced == nullptr) {
        loss[row] = row_loss;
      } else {
        loss_sum += row_loss;
      }
    }

    // Pass 2: the gradient row.
#pragma unroll
    for (int it = 0; it < kCached; ++it) {
      const int col = (it * kGroup + lane) * kVec;
      if (col < C) {
        Pack<scalar_t, kVec> g;
#pragma unroll
        for (int k = 0; k < kVec; ++k) {
          g.v[k] = E::from_acc(row_scale * Loss::grad(E::to_acc(h_cache[it].v[k]), t_cache[it].v[k], r));
        }
        store_pack(grad_row + col, g);
      }
    }
    for (int col = (kCached * kGroup + lane) * kVec; col < C; col += kStride) {
      const Pack<scalar_t, kVec> hp = load_pack<kVec>(h_row + col);
      Pack<acc_t, kVec> tp = load_pack<kVec>(t_row + col);
      weigh(tp, col);
      Pack<scalar_t, kVec> g;
#pragma unroll
      for (int k = 0; k < kVec; ++k) g.v[k] = E::from_acc(row_scale * Loss::grad(E::to_acc(hp.v[k]), tp.v[k], r));
      store_pack(grad_row + col, g);
    }
  }
  if (reduced != nullptr) reduce_over_grid<block_threads<kGroup>()>(reduced, loss_sum, loss);  // uniform branch
}

// ---- scale_grad -----------------------------------------------------------------------------------

// out = grad * grad_loss[row], over the (B, C) array seen as packs of kVec elements that never straddle
// two rows (C % kVec == 0). index_t is 32-bit where the array allows it: the division by the row length
// then costs a few instructions instead of a 64-bit division.
template <typename scalar_t, int kVec, typename index_t>
__global__ void __launch_bounds__(256)
    scale_grad_kernel(const scalar_t* __restrict__ grad, const acc_type<scalar_t>* __restrict__ grad_loss,
                      index_t num_packs, index_t packs_per_row, scalar_t* out) {
  using E = Element<scalar_t>;
  for (index_t p = index_t(blockIdx.x) * blockDim.x + threadIdx.x; p < num_packs;
       p += index_t(gridDim.x) * blockDim.x) {
    const acc_type<scalar_t> s = grad_loss[p / packs_per_row];
    Pack<scalar_t, kVec> g = load_pack<kVec>(grad + int64_t(p) * kVec);
#pragma unroll
    for (int k = 0; k < kVec; ++k) g.v[k] = E::from_acc(E::to_acc(g.v[k]) * s);
    store_pack(out + int64_t(p) * kVec, g);
  }
}

// grad *= *scale in place, over the array seen as packs of kVec elements. The scale stays on the device
// (the host cannot read it without a synchronisation); when it is 1, the gradient that loss.backward()
// starts from, no thread touches the array.
template <typename scalar_t, int kVec, typename index_t>
__global__ void __launch_bounds__(256)
    scale_grad_inplace_kernel(scalar_t* grad, const acc_type<scalar_t>* __restrict__ scale, index_t num_packs) {
  using E = Element<scalar_t>;
  const acc_type<scalar_t> s = *scale;
  if (s == acc_type<scalar_t>(1)) return;
  for (index_t p = index_t(blockIdx.x) * blockDim.x + threadIdx.x; p < num_packs;
       p += index_t(gridDim.x) * blockDim.x) {
    Pack<scalar_t, kVec> g = load_pack<kVec>(grad + int64_t(p) * kVec);
#pragma unroll
    for (int k = 0; k < kVec; ++k) g.v[k] = E::from_acc(E::to_acc(g.v[k]) * s);
    store_pack(grad + int64_t(p) * kVec, g);
  }
}

// ---- host side ------------------------------------------------------------------------------------

bool aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <typename scalar_t>
struct RowArgs {
  const scalar_t* logits;
  const int64_t* target;
  const acc_type<scalar_t>* table;
  const acc_type<scalar_t>* weight;  // (C,) or null
  const acc_type<scalar_t>* offset;  // (C,) or null (backward correction only)
  int64_t batch;
  int num_classes;
  int64_t ignore_index;
  ReducedLoss<acc_type<scalar_t>>* reduced;  // null for per-row losses
  acc_type<scalar_t>* loss;
  scalar_t* grad;
  cudaStream_t stream;
};

template <template <typename> class Policy, typename scalar_t, int kGroup, int kVec, int kCached>
cudaError_t launch_rows(const RowArgs<scalar_t>& a) {
  constexpr int kThreads = block_threads<kGroup>();
  constexpr int kRowsPerBlock = kThreads / kGroup;
  const int64_t blocks = std::min<int64_t>((a.batch + kRowsPerBlock - 1) / kRowsPerBlock, kMaxBlocks);
  corrected_ce_kernel<Policy, scalar_t, kGroup, kVec, kCached><<<static_cast<unsigned>(blocks), kThreads, 0, a.stream>>>(
      a.logits, a.target, a.table, a.weight, a.offset, a.batch, a.num_classes, a.ignore_index, a.reduced, a.loss,
      a.grad);
  return cudaGetLastError();
}

// Warp per row while a lane holds at most max_warp_cached vectors of the row (cached counts rounded up to
// a power of two, so that short rows do not carry unused registers), a block per row beyond.
template <template <typename> class Policy, typename scalar_t, int kVec>
cudaError_t dispatch_config(const RowArgs<scalar_t>& a) {
  const int64_t warp_steps = (a.num_classes + kWarp * kVec - 1) / (kWarp * kVec);
  if (warp_steps <= 1) return launch_rows<Policy, scalar_t, kWarp, kVec, 1>(a);
  if (warp_steps <= 2) return launch_rows<Policy, scalar_t, kWarp, kVec, 2>(a);
  if (warp_steps <= 4) return launch_rows<Policy, scalar_t, kWarp, kVec, 4>(a);
  if constexpr (max_warp_cached<scalar_t>() == 8) {
    if (warp_steps <= 8) return launch_rows<Policy, scalar_t, kWarp, kVec, 8>(a);
  }
  return launch_rows<Policy, scalar_t, kRowBlockThreads, kVec, row_block_cached<scalar_t>()>(a);
}

// 16-byte accesses where C and the pointers allow them. float64 serves gradcheck and comparisons with the
// reference, not speed: it takes the scalar kernels only, which keeps the build (and CI's compile test)
// shorter.
template <template <typename> class Policy, typename scalar_t>
cudaError_t dispatch_vec(const RowArgs<scalar_t>& a) {
  constexpr int kVec = std::is_same_v<scalar_t, double> ? 1 : 16 / sizeof(scalar_t);
  if constexpr (kVec == 1) {
    return dispatch_config<Policy, scalar_t, 1>(a);
  } else {
    constexpr int kTableAlign = sizeof(acc_type<scalar_t>) * kVec;
    const bool vectorisable = a.num_classes % kVec == 0 && aligned(a.logits, 16) && aligned(a.grad, 16) &&
                              aligned(a.table, kTableAlign) && aligned(a.weight, kTableAlign) &&
                              aligned(a.offset, kTableAlign);
    return vectorisable ? dispatch_config<Policy, scalar_t, kVec>(a) : dispatch_config<Policy, scalar_t, 1>(a);
  }
}

// A reduced loss first runs the prep kernel (divisor, scale, the loss of an empty batch), then the rows.
template <template <typename> class Policy, typename scalar_t>
cudaError_t corrected_ce_typed(const void* logits, const int64_t* target, const void* table, const void* weight,
                               const void* offset, int64_t batch, int C, int64_t ignore_index, Reduction reduction,
                               void* workspace, void* loss, void* grad, cudaStream_t stream) {
  using acc_t = acc_type<scalar_t>;
  const RowArgs<scalar_t> a{static_cast<const scalar_t*>(logits),
                            target,
                            static_cast<const acc_t*>(table),
                            static_cast<const acc_t*>(weight),
                            static_cast<const acc_t*>(offset),
                            batch,
                            C,
                            ignore_index,
                            reduction == Reduction::kNone ? nullptr : static_cast<ReducedLoss<acc_t>*>(workspace),
                            static_cast<acc_t*>(loss),
                            static_cast<scalar_t*>(grad),
                            stream};
  if (a.reduced != nullptr) {
    reduced_loss_prep_kernel<<<1, kPrepThreads, 0, stream>>>(target, a.weight, batch, ignore_index,
                                                              reduction == Reduction::kMean, a.reduced, a.loss);
    if (const cudaError_t status = cudaGetLastError(); status != cudaSuccess) return status;
  }
  if (batch == 0) return cudaSuccess;
  return dispatch_vec<Policy, scalar_t>(a);
}

template <template <typename> class Policy>
cudaError_t corrected_ce(Dtype dtype, const void* logits, const int64_t* target, const void* table, const void* weight,
                         const void* offset, int64_t batch, int64_t num_classes, int64_t ignore_index,
                         Reduction reduction, void* workspace, void* loss, void* grad, cudaStream_t stream) {
  // Column offsets are int: (it * kGroup + lane) * kVec stays below 2 C.
  if (batch < 0 || num_classes < 0 || num_classes > std::numeric_limits<int32_t>::max() / 2) {
    return cudaErrorInvalidValue;
  }
  if (reduction != Reduction::kNone && reduction != Reduction::kMean && reduction != Reduction::kSum) {
    return cudaErrorInvalidValue;
  }
  if (reduction != Reduction::kNone && workspace == nullptr) return cudaErrorInvalidValue;
  const int C = static_cast<int>(num_classes);
  switch (dtype) {
    case Dtype::kFloat32:
      return corrected_ce_typed<Policy, float>(logits, target, table, weight, offset, batch, C, ignore_index,
                                               reduction, workspace, loss, grad, stream);
    case Dtype::kFloat64:
      return corrected_ce_typed<Policy, double>(logits, target, table, weight, offset, batch, C, ignore_index,
                                               reduction, workspace, loss, grad, stream);
    case Dtype::kFloat16:
      return corrected_ce_typed<Policy, __half>(logits, target, table, weight, offset, batch, C, ignore_index,
                                               reduction, workspace, loss, grad, stream);
    case Dtype::kBFloat16:
      return corrected_ce_typed<Policy, __nv_bfloat16>(logits, target, table, weight, offset, batch, C, ignore_index,
                                               reduction, workspace, loss, grad, stream);
  }
  return cudaErrorInvalidValue;
}

template <typename scalar_t, int kVec, typename index_t>
cudaError_t launch_scale_grad(const scalar_t* grad, const acc_type<scalar_t>* grad_loss, int64_t num_packs,
                              int64_t packs_per_row, scalar_t* out, cudaStream_t stream) {
  constexpr int kThreads = 256;
  // A few packs per thread at most: enough blocks to fill any GPU, a grid-stride loop for the rest.
  const int64_t blocks = std::min<int64_t>((num_packs + kThreads - 1) / kThreads, 1 << 16);
  scale_grad_kernel<scalar_t, kVec, index_t><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      grad, grad_loss, static_cast<index_t>(num_packs), static_cast<index_t>(packs_per_row), out);
  return cudaGetLastError();
}

template <typename scalar_t, int kVec>
cudaError_t scale_grad_packs(const scalar_t* grad, const acc_type<scalar_t>* grad_loss, int64_t batch,
                             int64_t num_classes, scalar_t* out, cudaStream_t stream) {
  const int64_t num_packs = batch * num_classes / kVec, packs_per_row = num_classes / kVec;
  // 32-bit indices while p + grid stride (< 2^31 + 2^24) cannot wrap an unsigned int.
  if (num_packs < (int64_t(1) << 31)) {
    return launch_scale_grad<scalar_t, kVec, uint32_t>(grad, grad_loss, num_packs, packs_per_row, out, stream);
  }
  return launch_scale_grad<scalar_t, kVec, int64_t>(grad, grad_loss, num_packs, packs_per_row, out, stream);
}

template <typename scalar_t>
cudaError_t scale_grad_typed(const void* grad, const void* grad_loss, int64_t batch, int64_t num_classes, void* out,
                             cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(scalar_t);
  const auto* g = static_cast<const scalar_t*>(grad);
  const auto* s = static_cast<const acc_type<scalar_t>*>(grad_loss);
  auto* o = static_cast<scalar_t*>(out);
  if (num_classes % kVec == 0 && aligned(grad, 16) && aligned(out, 16)) {
    return scale_grad_packs<scalar_t, kVec>(g, s, batch, num_classes, o, stream);
  }
  return scale_grad_packs<scalar_t, 1>(g, s, batch, num_classes, o, stream);
}

// At most 8 blocks of 256 threads per SM (full occupancy), striding over the rest: where the scale is 1
// every block exits at once, and the launch costs about what an empty kernel does.
template <typename scalar_t, int kVec, typename index_t>
cudaError_t launch_scale_grad_inplace(scalar_t* grad, const acc_type<scalar_t>* scale, int64_t num_packs,
                                      cudaStream_t stream) {
  constexpr int kThreads = 256;
  int device = 0, sms = 0;
  cudaError_t status = cudaGetDevice(&device);
  if (status == cudaSuccess) status = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (status != cudaSuccess) return status;
  const int64_t blocks = std::min<int64_t>((num_packs + kThreads - 1) / kThreads, int64_t(8) * std::max(sms, 1));
  scale_grad_inplace_kernel<scalar_t, kVec, index_t>
      <<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(grad, scale, static_cast<index_t>(num_packs));
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t scale_grad_inplace_typed(void* grad, const void* scale, int64_t numel, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(scalar_t);
  auto* g = static_cast<scalar_t*>(grad);
  const auto* s = static_cast<const acc_type<scalar_t>*>(scale);
  constexpr int64_t k32Bit = int64_t(1) << 31;  // 32-bit indices while p + grid stride cannot wrap
  if (numel % kVec == 0 && aligned(grad, 16)) {
    const int64_t packs = numel / kVec;
    return packs < k32Bit ? launch_scale_grad_inplace<scalar_t, kVec, uint32_t>(g, s, packs, stream)
                          : launch_scale_grad_inplace<scalar_t, kVec, int64_t>(g, s, packs, stream);
  }
  return numel < k32Bit ? launch_scale_grad_inplace<scalar_t, 1, uint32_t>(g, s, numel, stream)
                        : launch_scale_grad_inplace<scalar_t, 1, int64_t>(g, s, numel, stream);
}

}  // namespace

size_t reduced_loss_workspace_bytes(int64_t batch) {
  // The loss kernel has at most one block per row.
  return kReducedLossHeader + sizeof(double) * static_cast<size_t>(std::max<int64_t>(batch, 1));
}

cudaError_t forward_corrected_ce(Dtype dtype, const void* logits, const int64_t* target, const void* log_T_t,
                                 const void* weight, int64_t batch, int64_t num_classes, int64_t ignore_index,
                                 Reduction reduction, void* workspace, void* loss, void* grad, cudaStream_t stream) {
  return corrected_ce<ForwardCorrection>(dtype, logits, target, log_T_t, weight, nullptr, batch, num_classes,
                                         ignore_index, reduction, workspace, loss, grad, stream);
}

cudaError_t backward_corrected_ce(Dtype dtype, const void* logits, const int64_t* target, const void* T_inv,
                                  const void* weight, const void* offset, int64_t batch, int64_t num_classes,
                                  int64_t ignore_index, Reduction reduction, void* workspace, void* loss, void* grad,
                                  cudaStream_t stream) {
  return corrected_ce<BackwardCorrection>(dtype, logits, target, T_inv, weight, offset, batch, num_classes,
                                          ignore_index, reduction, workspace, loss, grad, stream);
}

cudaError_t scale_grad(Dtype dtype, const void* grad, const void* grad_loss, int64_t batch, int64_t num_classes,
                       void* out, cudaStream_t stream) {
  if (batch < 0 || num_classes < 0) return cudaErrorInvalidValue;
  if (batch == 0 || num_classes == 0) return cudaSuccess;
  switch (dtype) {
    case Dtype::kFloat32:
      return scale_grad_typed<float>(grad, grad_loss, batch, num_classes, out, stream);
    case Dtype::kFloat64:
      return scale_grad_typed<double>(grad, grad_loss, batch, num_classes, out, stream);
    case Dtype::kFloat16:
      return scale_grad_typed<__half>(grad, grad_loss, batch, num_classes, out, stream);
    case Dtype::kBFloat16:
      return scale_grad_typed<__nv_bfloat16>(grad, grad_loss, batch, num_classes, out, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t scale_grad_inplace(Dtype dtype, void* grad, const void* scale, int64_t numel, cudaStream_t stream) {
  if (numel < 0) return cudaErrorInvalidValue;
  if (numel == 0) return cudaSuccess;
  switch (dtype) {
    case Dtype::kFloat32:
      return scale_grad_inplace_typed<float>(grad, scale, numel, stream);
    case Dtype::kFloat64:
      return scale_grad_inplace_typed<double>(grad, scale, numel, stream);
    case Dtype::kFloat16:
      return scale_grad_inplace_typed<__half>(grad, scale, numel, stream);
    case Dtype::kBFloat16:
      return scale_grad_inplace_typed<__nv_bfloat16>(grad, scale, numel, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace cuda
}  // namespace pyrobust
