// Kernel tables and the run-time choice between them (see dispatch.hpp).
#include "edgellm/kernels/dispatch.hpp"

#include <cstring>
#include <cstdlib>
#include <string>
#include <vector>

#include "edgellm/gguf.hpp"  // printable()
#include "edgellm/kernels/ops.hpp"
#include "edgellm/kernels/quants.hpp"
#include "kernel_sets.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace edgellm::kernels {

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
  }
  return "unknown";
}

std::optional<Isa> parse_isa(std::string_view name) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon}) {
    if (name == isa_name(isa)) return isa;
  }
  return std::nullopt;
}

namespace {

void copy_row_f32(const float* x, void* y, int64_t k) { std::memcpy(y, x, static_cast<size_t>(k) * sizeof(float)); }
void dequantize_row_f32(const void* x, float* y, int64_t k) { std::memcpy(y, x, static_cast<size_t>(k) * sizeof(float)); }

// Activation rows for F16 / BF16 weights: floats rounded to the weight's precision.
void round_row_f16(const float* x, void* y, int64_t k) {
  auto* out = static_cast<float*>(y);
  for (int64_t i = 0; i < k; ++i) out[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}
void round_row_bf16(const float* x, void* y, int64_t k) {
  auto* out = static_cast<float*>(y);
  for (int64_t i = 0; i < k; ++i) out[i] = bf16_to_fp32(fp32_to_bf16(x[i]));
}

// One weight type's reference row: its activation form, reference kernels and gemv tile.
template <auto Dot, auto Dequantize, auto Quantize>
void set_ref_row(KernelSet& ks, DType t, ActForm act) {
  TypeKernels& row = ks.row(t);
  row.act = act;
  set_vec_dot<Dot>(row);
  set_dequantize<Dequantize>(row);
  row.quantize_row_ref = erased_quantize<Quantize>;
}

}  // namespace

KernelSet scalar_kernel_set() {
  KernelSet ks{};
  ks.isa = Isa::scalar;
  ks.name = "scalar";
  set_ref_row<vec_dot_q4_K_q8_K_ref, dequantize_row_q4_K_ref, quantize_row_q4_K_ref>(ks, DType::Q4_K, ActForm::q8_K);
  set_ref_row<vec_dot_q6_K_q8_K_ref, dequantize_row_q6_K_ref, quantize_row_q6_K_ref>(ks, DType::Q6_K, ActForm::q8_K);
  set_ref_row<vec_dot_q5_K_q8_K_ref, dequantize_row_q5_K_ref, quantize_row_q5_K_ref>(ks, DType::Q5_K, ActForm::q8_K);
  set_ref_row<vec_dot_q3_K_q8_K_ref, dequantize_row_q3_K_ref, quantize_row_q3_K_ref>(ks, DType::Q3_K, ActForm::q8_K);
  set_ref_row<vec_dot_q2_K_q8_K_ref, dequantize_row_q2_K_ref, quantize_row_q2_K_ref>(ks, DType::Q2_K, ActForm::q8_K);
  set_ref_row<vec_dot_iq4_xs_q8_K_ref, dequantize_row_iq4_xs_ref, quantize_row_iq4_xs_ref>(ks, DType::IQ4_XS, ActForm::q8_K);
  set_ref_row<vec_dot_q8_0_q8_0_ref, dequantize_row_q8_0_ref, quantize_row_q8_0_ref>(ks, DType::Q8_0, ActForm::q8_0);
  set_ref_row<vec_dot_q4_0_q8_0_ref, dequantize_row_q4_0_ref, quantize_row_q4_0_ref>(ks, DType::Q4_0, ActForm::q8_0);
  set_ref_row<vec_dot_q4_1_q8_1_ref, dequantize_row_q4_1_ref, quantize_row_q4_1_ref>(ks, DType::Q4_1, ActForm::q8_1);
  set_ref_row<vec_dot_iq4_nl_q8_0_ref, dequantize_row_iq4_nl_ref, quantize_row_iq4_nl_file_ref>(ks, DType::IQ4_NL, ActForm::q8_0);
  set_ref_row<vec_dot_q5_0_q8_0_ref, dequantize_row_q5_0_ref, quantize_row_q5_0_ref>(ks, DType::Q5_0, ActForm::q8_0);
  set_ref_row<vec_dot_q5_1_q8_1_ref, dequantize_row_q5_1_ref, quantize_row_q5_1_ref>(ks, DType::Q5_1, ActForm::q8_1);
  set_ref_row<vec_dot_f16_f32_ref, dequantize_row_f16_ref, quantize_row_f16_ref>(ks, DType::F16, ActForm::f16);
  set_ref_row<vec_dot_bf16_f32_ref, dequantize_row_bf16_ref, quantize_row_bf16_ref>(ks, DType::BF16, ActForm::bf16);
  {
    TypeKernels& f32 = ks.row(DType::F32);
    f32.act = ActForm::f32;
    set_vec_dot<vec_dot_f32_f32_ref>(f32);
    f32.dequantize_row = dequantize_row_f32;
    f32.quantize_row_ref = copy_row_f32;
  }
  ks.act(ActForm::f32) = {1, sizeof(float), nullptr};
  ks.act(ActForm::f16) = {1, sizeof(float), round_row_f16};
  ks.act(ActForm::bf16) = {1, sizeof(float), round_row_bf16};
  ks.act(ActForm::q8_0) = {QK8_0, sizeof(block_q8_0), erased_quantize<quantize_row_q8_0_act_ref>};
  ks.act(ActForm::q8_K) = {QK_K, sizeof(block_q8_K), erased_quantize<quantize_row_q8_K_ref>};
  ks.act(ActForm::q8_1) = {QK8_1, sizeof(block_q8_1), erased_quantize<quantize_row_q8_1_act_ref>};
  ks.matmul_kn_f16_f32 = matmul_kn_f16_f32_ref;
  ks.matmul_kn_f32_f32 = matmul_kn_f32_f32_ref;
  ks.rms_norm = rms_norm;
  ks.add = add;
  ks.rope_norm_with = rope_norm_with;
  ks.softmax_scaled = softmax_scaled;
  ks.silu_mul = silu_mul;
  return ks;
}

namespace {

#if defined(__x86_64__) || defined(_M_X64)
struct X86Features {
  bool avx2 = false;    // AVX2 + FMA + F16C, with the OS saving YMM state
  bool avx512 = false;  // AVX-512 F/BW/VL/DQ + VNNI, with the OS saving ZMM state
};

X86Features detect_x86() {
  X86Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28),
             f16c = c & (1u << 29);
  if (!osxsave || !avx) return f;
  unsigned xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool os_ymm = (xcr0_lo & 0x6) == 0x6;           // SSE and AVX state
  const bool os_zmm = (xcr0_lo & 0xe6) == 0xe6;         // plus opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512dq = b & (1u << 17),
             avx512bw = b & (1u << 30), avx512vl = b & (1u << 31), vnni = c & (1u << 11);
  f.avx2 = os_ymm && avx2 && fma && f16c;
  f.avx512 = f.avx2 && os_zmm && avx512f && avx512dq && avx512bw && avx512vl && vnni;
  return f;
}
#endif

// The table of one ISA if compiled in and runnable on this CPU.
const KernelSet* find_kernels(Isa isa) {
  static const KernelSet scalar = scalar_kernel_set();
#if defined(__x86_64__) || defined(_M_X64)
  static const X86Features cpu = detect_x86();
#endif
  switch (isa) {
    case Isa::scalar: return &scalar;
    case Isa::avx2:
#if defined(EDGELLM_HAVE_AVX2)
      return cpu.avx2 ? avx2_kernels() : nullptr;
#else
      return nullptr;
#endif
    case Isa::avx512:
#if defined(EDGELLM_HAVE_AVX512)
      return cpu.avx512 ? avx512_kernels() : nullptr;
#else
      return nullptr;
#endif
    case Isa::neon:
#if defined(EDGELLM_HAVE_NEON)
      return neon_kernels();
#else
      return nullptr;
#endif
  }
  return nullptr;
}

}  // namespace

const KernelSet* kernels_for(Isa isa) { return find_kernels(isa); }

std::span<const Isa> available_isas() {
  static const std::vector<Isa> isas = [] {
    std::vector<Isa> v;
    for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon}) {
      if (find_kernels(isa)) v.push_back(isa);
    }
    return v;
  }();
  return isas;
}

Isa choose_isa(const char* env_value, bool* fell_back) {
  const auto isas = available_isas();
  const Isa best = isas.back();  // ordered from scalar up
  if (fell_back) *fell_back = false;
  if (env_value == nullptr || *env_value == '\0') return best;
  const auto wanted = parse_isa(env_value);
  if (wanted && find_kernels(*wanted)) return *wanted;
  if (fell_back) *fell_back = true;
  return best;
}

namespace {

struct ActiveChoice {
  const KernelSet* set;
  std::string note;  // isa_fallback_note()
};

const ActiveChoice& active_choice() {
  static const ActiveChoice choice = [] {
    const char* env = std::getenv("EDGELLM_ISA");
    bool fell_back = false;
    const Isa isa = choose_isa(env, &fell_back);
    std::string note;
    if (fell_back) {
      // The variable may hold anything: escaped as every other outside text in a message.
      note = "EDGELLM_ISA=" + gguf::printable(env, 32) + " is not available on this CPU/build; using " +
             std::string(isa_name(isa));
    }
    return ActiveChoice{find_kernels(isa), std::move(note)};
  }();
  return choice;
}

}  // namespace

const KernelSet& active_kernels() { return *active_choice().set; }

std::string_view isa_fallback_note() { return active_choice().note; }

}  // namespace edgellm::kernels
