// CPU dropout masks from a counter-based generator (the trainer's Dropout, pyrobust/models.py).
//
// torch's CPU Bernoulli and uniform samplers run a Mersenne Twister one element at a time: on the paper's
// MNIST network the two dropout masks cost more than every operation of a training step but the matrix
// products. Here element i of a call is a pure function of (key, i): a 32-bit hash of the element's index
// under a 64-bit key drawn once per call from torch's generator. The loop vectorises, the work splits
// across threads without changing a bit, and torch.manual_seed still fixes every mask. Compiled once per
// instruction set, inside kernels/cpu/kernels.cpp (baseline x86-64 has no 32-bit vector multiply).
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <optional>

namespace pyrobust {
namespace {

// Wellons' "lowbias32" integer hash (hash-prospector): every output bit depends on every input bit, with
// the lowest bias of the two-multiply xorshift hashes he searched.
inline uint32_t lowbias32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// Writes the mask of elements [begin, end) of a call under `key`: element i gets the 24-bit uniform
// lowbias32(lowbias32(lo(i) ^ lo(key)) ^ hi(key) ^ hi(i)) >> 8 (24 bits, as torch.rand draws a float32) and
// is kept where that is >= threshold. Within a run of equal hi(i) the loop is plain 32-bit arithmetic,
// which the compiler vectorises.
template <typename scalar_t>
void write_mask(scalar_t* out, int64_t begin, int64_t end, uint64_t key, uint32_t threshold, scalar_t scale) {
  const auto key_lo = static_cast<uint32_t>(key), key_hi = static_cast<uint32_t>(key >> 32);
  while (begin < end) {
    const auto hi = static_cast<uint64_t>(begin) >> 32;
    const int64_t stop = std::min<int64_t>(end, static_cast<int64_t>((hi + 1) << 32));
    const auto lo = static_cast<uint32_t>(begin), mix = key_hi ^ static_cast<uint32_t>(hi);
    scalar_t* o = out + begin;
    for (int64_t j = 0, n = stop - begin; j < n; ++j) {
      const uint32_t u = lowbias32(lowbias32((lo + static_cast<uint32_t>(j)) ^ key_lo) ^ mix) >> 8;
      o[j] = u >= threshold ? scale : scalar_t(0);
    }
    begin = stop;
  }
}

at::Tensor dropout_mask_cpu(const at::Tensor& self, double p, std::optional<at::Generator> generator) {
  TORCH_CHECK(0.0 <= p && p < 1.0, "pyrobust: dropout_mask needs 0 <= p < 1, got ", p);
  TORCH_CHECK(self.scalar_type() == at::kFloat || self.scalar_type() == at::kDouble,
              "pyrobust: dropout_mask takes float32 or float64 tensors, got ", self.scalar_type());
  auto* gen = at::get_generator_or_default<at::CPUGeneratorImpl>(generator, at::detail::getDefaultCPUGenerator());
  uint64_t key;
  {
    std::lock_guard<std::mutex> lock(gen->mutex_);
    key = gen->random64();
  }
  // Kept where u >= p, u = uniform24 / 2^24: P(kept) = 1 - p exactly when p is a multiple of 2^-24.
  const auto threshold = static_cast<uint32_t>(std::ceil(p * double(1 << 24)));
  at::Tensor mask = at::empty_like(self, at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(self.scalar_type(), "pyrobust_dropout_mask_cpu", [&] {
    const auto scale = static_cast<scalar_t>(1.0 / (1.0 - p));
    scalar_t* out = mask.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, mask.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
      write_mask(out, begin, end, key, threshold, scale);
    });
  });
  return mask;
}

}  // namespace
}  // namespace pyrobust
