// MSL as C++ for the Metal emulator (test builds only; docs/METAL.md, "The emulator"): the types
// and functions of the MSL subset the kernels use, so a .metal file rewritten by msl_prepass.py
// compiles with g++ and runs on the emulator's fibers (emu_runtime.hpp).
//
// Choices, and why:
// - __METAL_VERSION__ is defined first: the shared headers (args.h, block_formats.h) switch on it.
// - `half` is _Float16 (IEEE binary16; float <-> half conversions round to nearest even). g++ 12
//   on x86-64 without AVX512-FP16 computes each half operation in float and rounds the result to
//   half, which is exactly rounded half arithmetic (MSL's). The kernels use half for storage only
//   (rule 9), so nothing depends on the finer points. A NaN converted to half keeps its sign and
//   is quiet; its payload bits are the compiler runtime's (the CPU's fp32_to_fp16 drops them).
// - `bfloat` is a software type (bits, float conversions rounding to nearest even, NaN quiet).
// - Vectors are classes, not compiler vector extensions: their conversions convert values
//   (float4(half4), int -> float), as MSL's do; swizzles are read-only methods (v.xy -> v.xy()).
// - The address-space qualifiers (device, constant, threadgroup, thread) and `kernel` are empty
//   macros defined at the very end, after every standard header: they would break those.
// - SIMD-group functions, simdgroup matrices and barriers are collective operations of the
//   runtime: the calling fiber blocks until its whole SIMD-group (threadgroup) is there, and the
//   call site (std::source_location, which follows the prepass's #line) is checked to be the same.
//   In the emulator every lane holds the whole 8x8 simdgroup matrix.
// A test TU that wants the types without the keyword macros defines EDGELLM_MSL_NO_KEYWORDS.
#pragma once
#ifndef EDGELLM_MSL_SHIM_HPP
#define EDGELLM_MSL_SHIM_HPP

#define __METAL_VERSION__ 230

#include <algorithm>
#include <bit>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <source_location>
#include <type_traits>

#include "emu_runtime.hpp"

// MSL's built-in scalar type names (glibc has uint / ushort / ulong already; same types).
typedef unsigned int uint;
typedef unsigned short ushort;
typedef unsigned char uchar;
typedef unsigned long ulong;
typedef _Float16 half;
static_assert(sizeof(ulong) == 8, "MSL's ulong is 64-bit");

namespace metal {

using ::half;
using ::uchar;
using ::uint;
using ::ulong;
using ::ushort;

// ---- bfloat ---------------------------------------------------------------------------------------
struct bfloat {
  uint16_t bits;
  bfloat() = default;
  static uint16_t from_float(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((x >> 16) | 0x40);  // NaN, quiet
    const uint32_t lsb = (x >> 16) & 1;
    return uint16_t((x + 0x7FFFu + lsb) >> 16);  // nearest even; overflow carries into Inf
  }
  bfloat(float f) : bits(from_float(f)) {}
  template <class U>
    requires(std::is_arithmetic_v<U> || std::is_same_v<U, half>)
  explicit bfloat(U v) : bits(from_float(float(v))) {}
  operator float() const { return std::bit_cast<float>(uint32_t(bits) << 16); }
  bfloat& operator+=(float o) { return *this = bfloat(float(*this) + o); }
  bfloat& operator-=(float o) { return *this = bfloat(float(*this) - o); }
  bfloat& operator*=(float o) { return *this = bfloat(float(*this) * o); }
  bfloat& operator/=(float o) { return *this = bfloat(float(*this) / o); }
};
static_assert(sizeof(bfloat) == 2);

// ---- traits ----------------------------------------------------------------------------------------
template <class T>
inline constexpr bool is_scalar_v = std::is_arithmetic_v<T> || std::is_same_v<T, half>;
template <class T>
inline constexpr bool is_fp_v = std::is_same_v<T, float> || std::is_same_v<T, half>;

template <class T, int N, bool Packed = false>
struct vec;

template <class T>
struct vec_traits {
  static constexpr bool is_vec = false;
  static constexpr int n = 1;
  using elem = T;
};
template <class T, int N, bool P>
struct vec_traits<vec<T, N, P>> {
  static constexpr bool is_vec = true;
  static constexpr int n = N;
  using elem = T;
};
template <class T>
inline constexpr bool is_vec_v = vec_traits<std::remove_cvref_t<T>>::is_vec;
template <class T>
using elem_t = typename vec_traits<std::remove_cvref_t<T>>::elem;
template <class T>
inline constexpr int ncomp_v = vec_traits<std::remove_cvref_t<T>>::n;

// ---- vectors ---------------------------------------------------------------------------------------
// Storage: MSL's sizes and alignments (a 3-vector takes the room of 4; packed ones are dense).
template <class T, int N, bool P>
struct vec_data;
template <class T, bool P>
struct alignas(P ? alignof(T) : 2 * sizeof(T)) vec_data<T, 2, P> {
  union {
    struct {
      T x, y;
    };
    T e_[2];
  };
};
template <class T, bool P>
struct alignas(P ? alignof(T) : 4 * sizeof(T)) vec_data<T, 3, P> {
  union {
    struct {
      T x, y, z;
    };
    T e_[P ? 3 : 4];
  };
};
template <class T, bool P>
struct alignas(P ? alignof(T) : 4 * sizeof(T)) vec_data<T, 4, P> {
  union {
    struct {
      T x, y, z, w;
    };
    T e_[4];
  };
};

template <class T, int N, bool P>
struct vec : vec_data<T, N, P> {
  using element_type = T;
  static constexpr int size = N;

  vec() = default;
  vec(const vec&) = default;
  // Swizzles are read-only (rule 6): no assignment to a temporary such as v.xy().
  vec& operator=(const vec&) & = default;

  // A scalar: every component.
  template <class U>
    requires is_scalar_v<U>
  constexpr vec(U s) {
    for (int i = 0; i < N; ++i) this->e_[i] = T(s);
  }
  // Components and smaller vectors, in order: float4(a.xy, b, c), float4(v3, 1.0f).
  template <class... A>
    requires(sizeof...(A) >= 2 && ((is_scalar_v<A> || is_vec_v<A>) && ...) && (ncomp_v<A> + ...) == N)
  constexpr vec(const A&... a) {
    int k = 0;
    (put(k, a), ...);
  }
  // Another element type: converts each value (float4(half4), int4 -> float4).
  template <class U, bool Q>
    requires(!std::is_same_v<U, T>)
  constexpr explicit vec(const vec<U, N, Q>& o) {
    for (int i = 0; i < N; ++i) this->e_[i] = T(o[i]);
  }
  // packed <-> unpacked of the same element type: implicit, as in MSL.
  template <bool Q>
    requires(Q != P)
  constexpr vec(const vec<T, N, Q>& o) {
    for (int i = 0; i < N; ++i) this->e_[i] = o[i];
  }

  constexpr T& operator[](int i) { return this->e_[i]; }
  constexpr const T& operator[](int i) const { return this->e_[i]; }

  template <int... I>
  constexpr vec<T, int(sizeof...(I))> swz() const {
    return vec<T, int(sizeof...(I))>(this->e_[I]...);
  }
#include "msl_swizzles.inc"

#define EDGELLM_MSL_VEC_BINOP(op)                                    \
  friend constexpr vec operator op(const vec& a, const vec& b) {     \
    vec r;                                                           \
    for (int i = 0; i < N; ++i) r.e_[i] = T(a.e_[i] op b.e_[i]);     \
    return r;                                                        \
  }                                                                  \
  constexpr vec& operator op##=(const vec& b)& {                     \
    for (int i = 0; i < N; ++i) this->e_[i] = T(this->e_[i] op b.e_[i]); \
    return *this;                                                    \
  }
  EDGELLM_MSL_VEC_BINOP(+)
  EDGELLM_MSL_VEC_BINOP(-)
  EDGELLM_MSL_VEC_BINOP(*)
  EDGELLM_MSL_VEC_BINOP(/)
  EDGELLM_MSL_VEC_BINOP(%)
  EDGELLM_MSL_VEC_BINOP(&)
  EDGELLM_MSL_VEC_BINOP(|)
  EDGELLM_MSL_VEC_BINOP(^)
  EDGELLM_MSL_VEC_BINOP(<<)
  EDGELLM_MSL_VEC_BINOP(>>)
#undef EDGELLM_MSL_VEC_BINOP

#define EDGELLM_MSL_VEC_CMP(op)                                                \
  friend constexpr vec<bool, N> operator op(const vec& a, const vec& b) {      \
    vec<bool, N> r;                                                            \
    for (int i = 0; i < N; ++i) r[i] = a.e_[i] op b.e_[i];                     \
    return r;                                                                  \
  }
  EDGELLM_MSL_VEC_CMP(==)
  EDGELLM_MSL_VEC_CMP(!=)
  EDGELLM_MSL_VEC_CMP(<)
  EDGELLM_MSL_VEC_CMP(<=)
  EDGELLM_MSL_VEC_CMP(>)
  EDGELLM_MSL_VEC_CMP(>=)
  EDGELLM_MSL_VEC_CMP(&&)
  EDGELLM_MSL_VEC_CMP(||)
#undef EDGELLM_MSL_VEC_CMP

  friend constexpr vec operator-(const vec& a) {
    vec r;
    for (int i = 0; i < N; ++i) r.e_[i] = T(-a.e_[i]);
    return r;
  }
  friend constexpr vec operator+(const vec& a) { return a; }
  friend constexpr vec operator~(const vec& a) {
    vec r;
    for (int i = 0; i < N; ++i) r.e_[i] = T(~a.e_[i]);
    return r;
  }
  friend constexpr vec<bool, N> operator!(const vec& a) {
    vec<bool, N> r;
    for (int i = 0; i < N; ++i) r[i] = !a.e_[i];
    return r;
  }

 private:
  template <class A>
  constexpr void put(int& k, const A& a) {
    if constexpr (is_scalar_v<A>) {
      this->e_[k++] = T(a);
    } else {
      for (int i = 0; i < A::size; ++i) this->e_[k++] = T(a[i]);
    }
  }
};

#define EDGELLM_MSL_VEC_TYPES(t, name)             \
  using name##2 = vec<t, 2>;                       \
  using name##3 = vec<t, 3>;                       \
  using name##4 = vec<t, 4>;                       \
  using packed_##name##2 = vec<t, 2, true>;        \
  using packed_##name##3 = vec<t, 3, true>;        \
  using packed_##name##4 = vec<t, 4, true>;
EDGELLM_MSL_VEC_TYPES(float, float)
EDGELLM_MSL_VEC_TYPES(half, half)
EDGELLM_MSL_VEC_TYPES(int, int)
EDGELLM_MSL_VEC_TYPES(uint, uint)
EDGELLM_MSL_VEC_TYPES(short, short)
EDGELLM_MSL_VEC_TYPES(ushort, ushort)
EDGELLM_MSL_VEC_TYPES(char, char)
EDGELLM_MSL_VEC_TYPES(uchar, uchar)
EDGELLM_MSL_VEC_TYPES(bool, bool)
EDGELLM_MSL_VEC_TYPES(long, long)
EDGELLM_MSL_VEC_TYPES(ulong, ulong)
#undef EDGELLM_MSL_VEC_TYPES
static_assert(sizeof(float3) == 16 && alignof(float3) == 16 && sizeof(packed_float3) == 12);
static_assert(sizeof(half4) == 8 && sizeof(float4) == 16 && sizeof(uchar4) == 4);

// ---- matrices: C columns of R-vectors, m[i] is column i ---------------------------------------------
template <class T, int C, int R>
struct mat {
  vec<T, R> columns[C];

  mat() = default;
  // MSL: a scalar gives a diagonal matrix.
  explicit constexpr mat(T d) {
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r) columns[c][r] = c == r ? d : T(0);
  }
  template <class... V>
    requires(sizeof...(V) == C && (std::is_same_v<std::remove_cvref_t<V>, vec<T, R>> && ...))
  constexpr mat(const V&... cols) : columns{cols...} {}
  template <class... S>
    requires(sizeof...(S) == C * R && C * R > C && (is_scalar_v<S> && ...))
  constexpr mat(S... s) {
    const T v[] = {T(s)...};
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r) columns[c][r] = v[c * R + r];
  }
  template <class U>
    requires(!std::is_same_v<U, T>)
  explicit constexpr mat(const mat<U, C, R>& o) {
    for (int c = 0; c < C; ++c) columns[c] = vec<T, R>(o[c]);
  }

  constexpr vec<T, R>& operator[](int i) { return columns[i]; }
  constexpr const vec<T, R>& operator[](int i) const { return columns[i]; }

  friend constexpr vec<T, R> operator*(const mat& m, const vec<T, C>& v) {
    vec<T, R> r(T(0));
    for (int c = 0; c < C; ++c) r += m.columns[c] * vec<T, R>(v[c]);
    return r;
  }
  friend constexpr vec<T, C> operator*(const vec<T, R>& v, const mat& m) {
    vec<T, C> r;
    for (int c = 0; c < C; ++c) {
      T s = T(0);
      for (int k = 0; k < R; ++k) s = T(s + v[k] * m.columns[c][k]);
      r[c] = s;
    }
    return r;
  }
  template <int K>
  friend constexpr mat<T, K, R> operator*(const mat& a, const mat<T, K, C>& b) {
    mat<T, K, R> r;
    for (int k = 0; k < K; ++k) r[k] = a * b[k];
    return r;
  }
  friend constexpr mat operator*(const mat& a, T s) {
    mat r;
    for (int c = 0; c < C; ++c) r.columns[c] = a.columns[c] * vec<T, R>(s);
    return r;
  }
  friend constexpr mat operator+(const mat& a, const mat& b) {
    mat r;
    for (int c = 0; c < C; ++c) r.columns[c] = a.columns[c] + b.columns[c];
    return r;
  }
  friend constexpr mat operator-(const mat& a, const mat& b) {
    mat r;
    for (int c = 0; c < C; ++c) r.columns[c] = a.columns[c] - b.columns[c];
    return r;
  }
};

#define EDGELLM_MSL_MAT_TYPES(t)                                                                 \
  using t##2x2 = mat<t, 2, 2>;                                                                   \
  using t##2x3 = mat<t, 2, 3>;                                                                   \
  using t##2x4 = mat<t, 2, 4>;                                                                   \
  using t##3x2 = mat<t, 3, 2>;                                                                   \
  using t##3x3 = mat<t, 3, 3>;                                                                   \
  using t##3x4 = mat<t, 3, 4>;                                                                   \
  using t##4x2 = mat<t, 4, 2>;                                                                   \
  using t##4x3 = mat<t, 4, 3>;                                                                   \
  using t##4x4 = mat<t, 4, 4>;
EDGELLM_MSL_MAT_TYPES(float)
EDGELLM_MSL_MAT_TYPES(half)
#undef EDGELLM_MSL_MAT_TYPES

template <class T, int C, int R>
constexpr mat<T, R, C> transpose(const mat<T, C, R>& m) {
  mat<T, R, C> t;
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r) t[r][c] = m[c][r];
  return t;
}

// ---- as_type: a bit cast between types of one size --------------------------------------------------
template <class To, class From>
inline To as_type(const From& f) {
  static_assert(sizeof(To) == sizeof(From), "as_type: the two types differ in size");
  return std::bit_cast<To>(f);
}

// ---- math ---------------------------------------------------------------------------------------------
namespace detail {
template <class A>
constexpr auto comp(const A& a, int i) {
  if constexpr (is_vec_v<A>) {
    return a[i];
  } else {
    return a;
  }
}
// The vector type of a component-wise call: the first vector argument's (unpacked).
template <class... A>
struct vec_of;
template <class A, class... R>
struct vec_of<A, R...> {
  using type = std::conditional_t<is_vec_v<A>, vec<elem_t<A>, ncomp_v<A>>, typename vec_of<R...>::type>;
};
template <>
struct vec_of<> {
  using type = void;
};
template <class... A>
using vec_of_t = typename vec_of<std::remove_cvref_t<A>...>::type;
template <class T>
inline float f(T x) {
  return float(x);
}
}  // namespace detail

// Component-wise versions of a scalar function `name` for any mix of vector and scalar arguments.
#define EDGELLM_MSL_VEC1(name)                                               \
  template <class A>                                                         \
    requires is_vec_v<A>                                                     \
  inline auto name(const A& a) {                                             \
    using V = vec<elem_t<A>, ncomp_v<A>>;                                    \
    using R = decltype(name(a[0]));                                          \
    vec<R, V::size> r;                                                       \
    for (int i = 0; i < V::size; ++i) r[i] = name(a[i]);                     \
    return r;                                                                \
  }
#define EDGELLM_MSL_VEC2(name)                                                         \
  template <class A, class B>                                                          \
    requires(is_vec_v<A> || is_vec_v<B>)                                               \
  inline auto name(const A& a, const B& b) {                                           \
    using V = detail::vec_of_t<A, B>;                                                  \
    using E = typename V::element_type;                                                \
    V r;                                                                               \
    for (int i = 0; i < V::size; ++i) r[i] = name(E(detail::comp(a, i)), E(detail::comp(b, i))); \
    return r;                                                                          \
  }
#define EDGELLM_MSL_VEC3(name)                                                                  \
  template <class A, class B, class C>                                                          \
    requires(is_vec_v<A> || is_vec_v<B> || is_vec_v<C>)                                         \
  inline auto name(const A& a, const B& b, const C& c) {                                        \
    using V = detail::vec_of_t<A, B, C>;                                                        \
    using E = typename V::element_type;                                                         \
    V r;                                                                                        \
    for (int i = 0; i < V::size; ++i)                                                           \
      r[i] = name(E(detail::comp(a, i)), E(detail::comp(b, i)), E(detail::comp(c, i)));         \
    return r;                                                                                   \
  }

#define EDGELLM_MSL_UNARY_F(name, expr)      \
  template <class T>                         \
    requires is_fp_v<T>                      \
  inline T name(T x) {                       \
    const float v = float(x);                \
    return T(expr);                          \
  }                                          \
  EDGELLM_MSL_VEC1(name)

EDGELLM_MSL_UNARY_F(exp, std::exp(v))
EDGELLM_MSL_UNARY_F(exp2, std::exp2(v))
EDGELLM_MSL_UNARY_F(exp10, std::pow(10.0f, v))
EDGELLM_MSL_UNARY_F(log, std::log(v))
EDGELLM_MSL_UNARY_F(log2, std::log2(v))
EDGELLM_MSL_UNARY_F(log10, std::log10(v))
EDGELLM_MSL_UNARY_F(sqrt, std::sqrt(v))
EDGELLM_MSL_UNARY_F(rsqrt, 1.0f / std::sqrt(v))
EDGELLM_MSL_UNARY_F(sin, std::sin(v))
EDGELLM_MSL_UNARY_F(cos, std::cos(v))
EDGELLM_MSL_UNARY_F(tan, std::tan(v))
EDGELLM_MSL_UNARY_F(asin, std::asin(v))
EDGELLM_MSL_UNARY_F(acos, std::acos(v))
EDGELLM_MSL_UNARY_F(atan, std::atan(v))
EDGELLM_MSL_UNARY_F(sinh, std::sinh(v))
EDGELLM_MSL_UNARY_F(cosh, std::cosh(v))
EDGELLM_MSL_UNARY_F(tanh, std::tanh(v))
EDGELLM_MSL_UNARY_F(floor, std::floor(v))
EDGELLM_MSL_UNARY_F(ceil, std::ceil(v))
EDGELLM_MSL_UNARY_F(round, std::round(v))
EDGELLM_MSL_UNARY_F(rint, std::nearbyint(v))
EDGELLM_MSL_UNARY_F(trunc, std::trunc(v))
EDGELLM_MSL_UNARY_F(fract, std::fmin(v - std::floor(v), 0x1.fffffep-1f))
EDGELLM_MSL_UNARY_F(fabs, std::fabs(v))
EDGELLM_MSL_UNARY_F(saturate, std::fmin(std::fmax(v, 0.0f), 1.0f))
EDGELLM_MSL_UNARY_F(sign, std::isnan(v) ? 0.0f : v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : v)
#undef EDGELLM_MSL_UNARY_F

template <class T>
  requires is_scalar_v<T>
inline T abs(T x) {
  if constexpr (is_fp_v<T>) {
    return T(std::fabs(float(x)));
  } else if constexpr (std::is_signed_v<T>) {
    return x < 0 ? T(-x) : x;
  } else {
    return x;
  }
}
EDGELLM_MSL_VEC1(abs)

#define EDGELLM_MSL_PRED(name, expr) \
  template <class T>                 \
    requires is_fp_v<T>              \
  inline bool name(T x) {            \
    const float v = float(x);        \
    return expr;                     \
  }                                  \
  EDGELLM_MSL_VEC1(name)
EDGELLM_MSL_PRED(isnan, std::isnan(v))
EDGELLM_MSL_PRED(isinf, std::isinf(v))
EDGELLM_MSL_PRED(isfinite, std::isfinite(v))
EDGELLM_MSL_PRED(signbit, std::signbit(v))
#undef EDGELLM_MSL_PRED

// min / max / fmin / fmax: MSL's fmin / fmax semantics for floats (a NaN argument gives the other).
template <class T>
  requires is_scalar_v<T>
inline T min(T a, T b) {
  if constexpr (is_fp_v<T>) {
    return T(std::fmin(float(a), float(b)));
  } else {
    return b < a ? b : a;
  }
}
template <class T>
  requires is_scalar_v<T>
inline T max(T a, T b) {
  if constexpr (is_fp_v<T>) {
    return T(std::fmax(float(a), float(b)));
  } else {
    return a < b ? b : a;
  }
}
template <class T>
  requires is_fp_v<T>
inline T fmin(T a, T b) {
  return min(a, b);
}
template <class T>
  requires is_fp_v<T>
inline T fmax(T a, T b) {
  return max(a, b);
}
template <class T>
  requires is_fp_v<T>
inline T pow(T a, T b) {
  return T(std::pow(float(a), float(b)));
}
template <class T>
  requires is_fp_v<T>
inline T powr(T a, T b) {
  return T(std::pow(float(a), float(b)));
}
template <class T>
  requires is_fp_v<T>
inline T fmod(T a, T b) {
  return T(std::fmod(float(a), float(b)));
}
template <class T>
  requires is_fp_v<T>
inline T atan2(T a, T b) {
  return T(std::atan2(float(a), float(b)));
}
template <class T>
  requires is_fp_v<T>
inline T copysign(T a, T b) {
  return T(std::copysign(float(a), float(b)));
}
template <class T>
  requires is_fp_v<T>
inline T step(T edge, T x) {
  return x < edge ? T(0) : T(1);
}
template <class T>
  requires is_fp_v<T>
inline T divide(T a, T b) {
  return T(float(a) / float(b));
}
EDGELLM_MSL_VEC2(min)
EDGELLM_MSL_VEC2(max)
EDGELLM_MSL_VEC2(fmin)
EDGELLM_MSL_VEC2(fmax)
EDGELLM_MSL_VEC2(pow)
EDGELLM_MSL_VEC2(powr)
EDGELLM_MSL_VEC2(fmod)
EDGELLM_MSL_VEC2(atan2)
EDGELLM_MSL_VEC2(copysign)
EDGELLM_MSL_VEC2(step)
EDGELLM_MSL_VEC2(divide)

template <class T>
  requires is_scalar_v<T>
inline T clamp(T x, T lo, T hi) {
  return min(max(x, lo), hi);
}
template <class T>
  requires is_fp_v<T>
inline T fma(T a, T b, T c) {
  return T(std::fma(float(a), float(b), float(c)));
}
template <class T>
  requires is_fp_v<T>
inline T mix(T x, T y, T a) {
  return T(float(x) + (float(y) - float(x)) * float(a));
}
template <class T>
  requires is_fp_v<T>
inline T smoothstep(T e0, T e1, T x) {
  const float t = std::fmin(std::fmax((float(x) - float(e0)) / (float(e1) - float(e0)), 0.0f), 1.0f);
  return T(t * t * (3.0f - 2.0f * t));
}
EDGELLM_MSL_VEC3(clamp)
EDGELLM_MSL_VEC3(fma)
EDGELLM_MSL_VEC3(mix)
EDGELLM_MSL_VEC3(smoothstep)

// select(a, b, c): c ? b : a, component-wise for a vector c.
template <class T>
  requires is_scalar_v<T>
inline T select(T a, T b, bool c) {
  return c ? b : a;
}
template <class T, int N, bool P, bool Q>
inline vec<T, N> select(const vec<T, N, P>& a, const vec<T, N, P>& b, const vec<bool, N, Q>& c) {
  vec<T, N> r;
  for (int i = 0; i < N; ++i) r[i] = c[i] ? b[i] : a[i];
  return r;
}
template <class T, int N, bool P>
inline vec<T, N> select(const vec<T, N, P>& a, const vec<T, N, P>& b, bool c) {
  return c ? vec<T, N>(b) : vec<T, N>(a);
}

template <class T, int N, bool P, bool Q>
inline T dot(const vec<T, N, P>& a, const vec<T, N, Q>& b) {
  float s = 0.0f;
  for (int i = 0; i < N; ++i) s += float(a[i]) * float(b[i]);
  return T(s);
}
template <class T, int N, bool P>
inline T length_squared(const vec<T, N, P>& a) {
  return dot(a, a);
}
template <class T, int N, bool P>
inline T length(const vec<T, N, P>& a) {
  return T(std::sqrt(float(dot(a, a))));
}
template <class T, int N, bool P, bool Q>
inline T distance(const vec<T, N, P>& a, const vec<T, N, Q>& b) {
  return length(vec<T, N>(a) - vec<T, N>(b));
}
template <class T, int N, bool P>
inline vec<T, N> normalize(const vec<T, N, P>& a) {
  return vec<T, N>(a) * vec<T, N>(T(1.0f / std::sqrt(float(dot(a, a)))));
}
template <class T, bool P, bool Q>
inline vec<T, 3> cross(const vec<T, 3, P>& a, const vec<T, 3, Q>& b) {
  return vec<T, 3>(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}

// Booleans of vectors.
template <int N, bool P>
inline bool all(const vec<bool, N, P>& v) {
  for (int i = 0; i < N; ++i)
    if (!v[i]) return false;
  return true;
}
template <int N, bool P>
inline bool any(const vec<bool, N, P>& v) {
  for (int i = 0; i < N; ++i)
    if (v[i]) return true;
  return false;
}
inline bool all(bool b) { return b; }
inline bool any(bool b) { return b; }

// Integers.
template <class T>
  requires std::is_integral_v<T>
inline T popcount(T x) {
  return T(std::popcount(std::make_unsigned_t<T>(x)));
}
template <class T>
  requires std::is_integral_v<T>
inline T clz(T x) {
  return T(std::countl_zero(std::make_unsigned_t<T>(x)));
}
template <class T>
  requires std::is_integral_v<T>
inline T ctz(T x) {
  return T(std::countr_zero(std::make_unsigned_t<T>(x)));
}
EDGELLM_MSL_VEC1(popcount)
EDGELLM_MSL_VEC1(clz)
EDGELLM_MSL_VEC1(ctz)

// metal::precise:: and metal::fast:: (the emulator computes both in float, as precisely as libm).
namespace precise {
using metal::acos, metal::asin, metal::atan, metal::atan2, metal::ceil, metal::copysign, metal::cos, metal::cosh,
    metal::divide, metal::exp, metal::exp10, metal::exp2, metal::fabs, metal::floor, metal::fma, metal::fmax,
    metal::fmin, metal::fmod, metal::fract, metal::log, metal::log10, metal::log2, metal::pow, metal::powr,
    metal::rint, metal::round, metal::rsqrt, metal::sin, metal::sinh, metal::sqrt, metal::tan, metal::tanh,
    metal::trunc, metal::max, metal::min, metal::clamp, metal::normalize, metal::length, metal::distance;
}  // namespace precise
namespace fast {
using namespace precise;
}  // namespace fast

// ---- synchronization -----------------------------------------------------------------------------------
enum class mem_flags : unsigned {
  mem_none = 0,
  mem_device = 1,
  mem_threadgroup = 2,
  mem_texture = 4,
  mem_threadgroup_imageblock = 8,
  mem_object_data = 16,
};
constexpr mem_flags operator|(mem_flags a, mem_flags b) { return mem_flags(unsigned(a) | unsigned(b)); }

inline void threadgroup_barrier(mem_flags, const std::source_location& loc = std::source_location::current()) {
  edgellm::metal_emu::threadgroup_barrier_wait(loc);
}

namespace detail {
using edgellm::metal_emu::SimdCall;
inline void resolve_nothing(SimdCall* const*, int) {}

template <class T>
const T& in_of(const SimdCall* c) {
  return *static_cast<const T*>(c->in);
}
template <class T>
T& out_of(SimdCall* c) {
  return *static_cast<T*>(c->out);
}

struct op_add {
  template <class T>
  T operator()(const T& a, const T& b) const {
    return T(a + b);
  }
};
struct op_mul {
  template <class T>
  T operator()(const T& a, const T& b) const {
    return T(a * b);
  }
};
struct op_min {
  template <class T>
  T operator()(const T& a, const T& b) const {
    return metal::min(a, b);
  }
};
struct op_max {
  template <class T>
  T operator()(const T& a, const T& b) const {
    return metal::max(a, b);
  }
};
struct op_and {
  template <class T>
  T operator()(const T& a, const T& b) const {
    return T(a & b);
  }
};
struct op_or {
  template <class T>
  T operator()(const T& a, const T& b) const {
    return T(a | b);
  }
};
struct op_xor {
  template <class T>
  T operator()(const T& a, const T& b) const {
    return T(a ^ b);
  }
};

template <class T, class F>
void resolve_reduce(SimdCall* const* c, int n) {
  T acc = in_of<T>(c[0]);
  for (int i = 1; i < n; ++i) acc = F{}(acc, in_of<T>(c[i]));
  for (int i = 0; i < n; ++i) out_of<T>(c[i]) = acc;
}
template <class T, class F, bool Inclusive>
void resolve_prefix(SimdCall* const* c, int n) {
  // Exclusive: lane 0 gets the identity (0 for a sum, 1 for a product).
  T acc = std::is_same_v<F, op_mul> ? T(1) : T(0);
  for (int i = 0; i < n; ++i) {
    const T x = in_of<T>(c[i]);
    if (Inclusive) acc = F{}(acc, x);
    out_of<T>(c[i]) = acc;
    if (!Inclusive) acc = F{}(acc, x);
  }
}

[[noreturn]] inline void lane_error(const char* what, uint64_t v, int n) {
  throw std::runtime_error(std::string(what) + " (" + std::to_string(v) + ", SIMD width " + std::to_string(n) + ")");
}

enum class shuffle_kind { index, down, up, xor_, rotate_down, rotate_up, broadcast, first };
template <class T, shuffle_kind K>
void resolve_shuffle(SimdCall* const* c, int n) {
  if (K == shuffle_kind::broadcast)
    for (int i = 1; i < n; ++i)
      if (c[i]->arg != c[0]->arg) lane_error("the broadcast lane differs across lanes", c[i]->arg, n);
  T tmp[edgellm::metal_emu::kMaxSimdWidth];
  for (int i = 0; i < n; ++i) {
    const uint64_t a = c[i]->arg;
    uint64_t src = uint64_t(i);
    switch (K) {
      case shuffle_kind::index:
      case shuffle_kind::broadcast:
        if (a >= uint64_t(n)) lane_error("source lane out of range", a, n);
        src = a;
        break;
      case shuffle_kind::down: src = uint64_t(i) + a < uint64_t(n) ? uint64_t(i) + a : uint64_t(i); break;
      case shuffle_kind::up: src = a <= uint64_t(i) ? uint64_t(i) - a : uint64_t(i); break;
      case shuffle_kind::xor_:
        src = uint64_t(i) ^ a;
        if (src >= uint64_t(n)) lane_error("lane ^ mask out of range for mask", a, n);
        break;
      case shuffle_kind::rotate_down: src = (uint64_t(i) + a) % uint64_t(n); break;
      case shuffle_kind::rotate_up: src = (uint64_t(i) + uint64_t(n) - a % uint64_t(n)) % uint64_t(n); break;
      case shuffle_kind::first: src = 0; break;
    }
    tmp[i] = in_of<T>(c[src]);
  }
  for (int i = 0; i < n; ++i) out_of<T>(c[i]) = tmp[i];
}
template <bool All>
void resolve_vote(SimdCall* const* c, int n) {
  bool r = All;
  for (int i = 0; i < n; ++i) r = All ? (r && in_of<bool>(c[i])) : (r || in_of<bool>(c[i]));
  for (int i = 0; i < n; ++i) out_of<bool>(c[i]) = r;
}
inline void resolve_ballot(SimdCall* const* c, int n) {
  uint64_t r = 0;
  for (int i = 0; i < n; ++i)
    if (in_of<bool>(c[i])) r |= uint64_t(1) << i;
  for (int i = 0; i < n; ++i) out_of<uint64_t>(c[i]) = r;
}

template <class T>
inline T collective(const char* op, const std::source_location& loc, edgellm::metal_emu::Resolver r, const T& x,
                    uint64_t arg = 0) {
  T out;
  edgellm::metal_emu::simd_collective(op, loc, r, &x, &out, arg);
  return out;
}
}  // namespace detail

#define EDGELLM_MSL_LOC const std::source_location& loc = std::source_location::current()

inline void simdgroup_barrier(mem_flags, EDGELLM_MSL_LOC) {
  const int dummy = 0;
  edgellm::metal_emu::simd_collective("simdgroup_barrier", loc, &detail::resolve_nothing, &dummy, nullptr, 0);
}

#define EDGELLM_MSL_REDUCE(name, F)                                                                 \
  template <class T>                                                                                \
  inline T name(T x, EDGELLM_MSL_LOC) {                                                             \
    return detail::collective<T>(#name, loc, &detail::resolve_reduce<T, detail::F>, x);             \
  }
EDGELLM_MSL_REDUCE(simd_sum, op_add)
EDGELLM_MSL_REDUCE(simd_product, op_mul)
EDGELLM_MSL_REDUCE(simd_min, op_min)
EDGELLM_MSL_REDUCE(simd_max, op_max)
EDGELLM_MSL_REDUCE(simd_and, op_and)
EDGELLM_MSL_REDUCE(simd_or, op_or)
EDGELLM_MSL_REDUCE(simd_xor, op_xor)
#undef EDGELLM_MSL_REDUCE

#define EDGELLM_MSL_PREFIX(name, F, incl)                                                           \
  template <class T>                                                                                \
  inline T name(T x, EDGELLM_MSL_LOC) {                                                             \
    return detail::collective<T>(#name, loc, &detail::resolve_prefix<T, detail::F, incl>, x);       \
  }
EDGELLM_MSL_PREFIX(simd_prefix_inclusive_sum, op_add, true)
EDGELLM_MSL_PREFIX(simd_prefix_exclusive_sum, op_add, false)
EDGELLM_MSL_PREFIX(simd_prefix_inclusive_product, op_mul, true)
EDGELLM_MSL_PREFIX(simd_prefix_exclusive_product, op_mul, false)
#undef EDGELLM_MSL_PREFIX

#define EDGELLM_MSL_SHUFFLE(name, K)                                                                           \
  template <class T>                                                                                           \
  inline T name(T x, ushort arg, EDGELLM_MSL_LOC) {                                                            \
    return detail::collective<T>(#name, loc, &detail::resolve_shuffle<T, detail::shuffle_kind::K>, x, arg);    \
  }
EDGELLM_MSL_SHUFFLE(simd_shuffle, index)
EDGELLM_MSL_SHUFFLE(simd_shuffle_down, down)
EDGELLM_MSL_SHUFFLE(simd_shuffle_up, up)
EDGELLM_MSL_SHUFFLE(simd_shuffle_xor, xor_)
EDGELLM_MSL_SHUFFLE(simd_shuffle_rotate_down, rotate_down)
EDGELLM_MSL_SHUFFLE(simd_shuffle_rotate_up, rotate_up)
EDGELLM_MSL_SHUFFLE(simd_broadcast, broadcast)
#undef EDGELLM_MSL_SHUFFLE

template <class T>
inline T simd_broadcast_first(T x, EDGELLM_MSL_LOC) {
  return detail::collective<T>("simd_broadcast_first", loc, &detail::resolve_shuffle<T, detail::shuffle_kind::first>,
                               x);
}
inline bool simd_all(bool x, EDGELLM_MSL_LOC) {
  return detail::collective<bool>("simd_all", loc, &detail::resolve_vote<true>, x);
}
inline bool simd_any(bool x, EDGELLM_MSL_LOC) {
  return detail::collective<bool>("simd_any", loc, &detail::resolve_vote<false>, x);
}
// The lanes whose predicate is true, bit i for lane i.
struct simd_vote {
  using vote_t = uint64_t;
  vote_t v = 0;
  explicit constexpr operator vote_t() const { return v; }
  bool all() const;
  bool any() const { return v != 0; }
};
inline simd_vote simd_ballot(bool x, EDGELLM_MSL_LOC) {
  uint64_t out = 0;
  edgellm::metal_emu::simd_collective("simd_ballot", loc, &detail::resolve_ballot, &x, &out, 0);
  return simd_vote{out};
}
inline bool simd_vote::all() const {
  const uint32_t n = edgellm::metal_emu::current_thread("simd_vote::all").attr[edgellm::metal_emu::kThreadsPerSimdgroup][0];
  return v == (n >= 64 ? ~uint64_t(0) : (uint64_t(1) << n) - 1);
}
// The first lane (all lanes are active in the kernels: rule 4). Not a collective.
inline bool simd_is_first() { return edgellm::metal_emu::current_thread("simd_is_first").lane() == 0; }

// ---- simdgroup matrices -----------------------------------------------------------------------------------
// Every lane holds the whole matrix; loads, stores and products are collective operations whose
// arguments (pointer, stride, origin, transpose; the operand matrices) must be the same in every lane.
template <class T, int Cols, int Rows>
struct simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "the emulator models 8x8 simdgroup matrices");
  T e[Rows][Cols];  // e[row][col]

  // Uninitialized in MSL: NaN here (0 for integers), so a use before a load shows.
  simdgroup_matrix() {
    for (auto& r : e)
      for (T& v : r) {
        if constexpr (is_fp_v<T> || std::is_same_v<T, bfloat>) {
          v = T(NAN);
        } else {
          v = T(0);
        }
      }
  }
  // MSL: a diagonal matrix of d.
  explicit simdgroup_matrix(T d) {
    for (int r = 0; r < Rows; ++r)
      for (int c = 0; c < Cols; ++c) e[r][c] = r == c ? d : T(0);
  }
};
using simdgroup_float8x8 = simdgroup_matrix<float, 8, 8>;
using simdgroup_half8x8 = simdgroup_matrix<half, 8, 8>;
using simdgroup_bfloat8x8 = simdgroup_matrix<bfloat, 8, 8>;

template <class T, int Cols, int Rows>
inline simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T v) {
  simdgroup_matrix<T, Cols, Rows> m(v);
  for (auto& r : m.e)
    for (T& x : r) x = v;
  return m;
}

namespace detail {
struct mat_mem_args {
  const void* p;
  uint64_t stride, ox, oy;
  bool transpose;
  bool operator==(const mat_mem_args&) const = default;
};
[[noreturn]] inline void matrix_error(const char* what, int lane) {
  throw std::runtime_error(std::string(what) + " " + std::to_string(lane));
}

template <class M>
void check_same_args(SimdCall* const* c, int n) {
  for (int i = 1; i < n; ++i)
    if (!(in_of<mat_mem_args>(c[i]) == in_of<mat_mem_args>(c[0])))
      matrix_error("the pointer, stride, origin or transpose differs from lane 0's in lane", i);
}
template <class T>
void resolve_load(SimdCall* const* c, int n) {
  check_same_args<T>(c, n);
  const mat_mem_args& a = in_of<mat_mem_args>(c[0]);
  const T* src = static_cast<const T*>(a.p);
  simdgroup_matrix<T, 8, 8> m;
  for (int r = 0; r < 8; ++r)
    for (int col = 0; col < 8; ++col) {
      // Source element (row i, column j) relative to the origin; transposed: m(r, c) = S(c, r).
      const uint64_t i = a.transpose ? uint64_t(col) : uint64_t(r), j = a.transpose ? uint64_t(r) : uint64_t(col);
      m.e[r][col] = src[(a.oy + i) * a.stride + a.ox + j];
    }
  for (int i = 0; i < n; ++i) *static_cast<simdgroup_matrix<T, 8, 8>*>(c[i]->out) = m;
}
// in: mat_mem_args, out: unused; arg: the address of the lane's matrix.
template <class T>
void resolve_store(SimdCall* const* c, int n) {
  check_same_args<T>(c, n);
  using M = simdgroup_matrix<T, 8, 8>;
  const M& m = *reinterpret_cast<const M*>(uintptr_t(c[0]->arg));
  for (int i = 1; i < n; ++i)
    if (std::memcmp(&m, reinterpret_cast<const M*>(uintptr_t(c[i]->arg)), sizeof(M)) != 0)
      matrix_error("the stored matrix differs from lane 0's in lane", i);
  const mat_mem_args& a = in_of<mat_mem_args>(c[0]);
  T* dst = static_cast<T*>(const_cast<void*>(a.p));
  for (int r = 0; r < 8; ++r)
    for (int col = 0; col < 8; ++col) {
      const uint64_t i = a.transpose ? uint64_t(col) : uint64_t(r), j = a.transpose ? uint64_t(r) : uint64_t(col);
      dst[(a.oy + i) * a.stride + a.ox + j] = m.e[r][col];
    }
}
struct mma_args {
  const void* a;
  const void* b;
  const void* c;  // null: a plain product
};
template <class TD, class TA, class TB, class TC>
void resolve_mma(SimdCall* const* c, int n) {
  using MA = simdgroup_matrix<TA, 8, 8>;
  using MB = simdgroup_matrix<TB, 8, 8>;
  using MC = simdgroup_matrix<TC, 8, 8>;
  const mma_args& x = in_of<mma_args>(c[0]);
  for (int i = 1; i < n; ++i) {
    const mma_args& y = in_of<mma_args>(c[i]);
    if (std::memcmp(x.a, y.a, sizeof(MA)) != 0 || std::memcmp(x.b, y.b, sizeof(MB)) != 0 ||
        (x.c && std::memcmp(x.c, y.c, sizeof(MC)) != 0))
      matrix_error("an operand matrix differs from lane 0's in lane", i);
  }
  const MA& a = *static_cast<const MA*>(x.a);
  const MB& b = *static_cast<const MB*>(x.b);
  const MC* cm = static_cast<const MC*>(x.c);
  simdgroup_matrix<TD, 8, 8> d;
  for (int r = 0; r < 8; ++r)
    for (int col = 0; col < 8; ++col) {
      float s = 0.0f;
      for (int k = 0; k < 8; ++k) s += float(a.e[r][k]) * float(b.e[k][col]);
      if (cm) s += float(cm->e[r][col]);
      d.e[r][col] = TD(s);
    }
  for (int i = 0; i < n; ++i) *static_cast<simdgroup_matrix<TD, 8, 8>*>(c[i]->out) = d;
}
}  // namespace detail

template <class T>
inline void simdgroup_load(simdgroup_matrix<T, 8, 8>& d, const T* src, ulong elements_per_row = 8,
                           ulong2 matrix_origin = ulong2(0), bool transpose_matrix = false, EDGELLM_MSL_LOC) {
  const detail::mat_mem_args a{src, elements_per_row, matrix_origin.x, matrix_origin.y, transpose_matrix};
  edgellm::metal_emu::simd_collective("simdgroup_load", loc, &detail::resolve_load<T>, &a, &d, 0);
}
template <class T>
inline void simdgroup_store(const simdgroup_matrix<T, 8, 8>& m, T* dst, ulong elements_per_row = 8,
                            ulong2 matrix_origin = ulong2(0), bool transpose_matrix = false, EDGELLM_MSL_LOC) {
  const detail::mat_mem_args a{dst, elements_per_row, matrix_origin.x, matrix_origin.y, transpose_matrix};
  edgellm::metal_emu::simd_collective("simdgroup_store", loc, &detail::resolve_store<T>, &a, nullptr,
                                      uint64_t(uintptr_t(&m)));
}
template <class TD, class TA, class TB, class TC>
inline void simdgroup_multiply_accumulate(simdgroup_matrix<TD, 8, 8>& d, const simdgroup_matrix<TA, 8, 8>& a,
                                          const simdgroup_matrix<TB, 8, 8>& b, const simdgroup_matrix<TC, 8, 8>& c,
                                          EDGELLM_MSL_LOC) {
  const detail::mma_args x{&a, &b, &c};
  edgellm::metal_emu::simd_collective("simdgroup_multiply_accumulate", loc, &detail::resolve_mma<TD, TA, TB, TC>, &x,
                                      &d, 0);
}
template <class TD, class TA, class TB>
inline void simdgroup_multiply(simdgroup_matrix<TD, 8, 8>& d, const simdgroup_matrix<TA, 8, 8>& a,
                               const simdgroup_matrix<TB, 8, 8>& b, EDGELLM_MSL_LOC) {
  const detail::mma_args x{&a, &b, nullptr};
  edgellm::metal_emu::simd_collective("simdgroup_multiply", loc, &detail::resolve_mma<TD, TA, TB, TD>, &x, &d, 0);
}

#undef EDGELLM_MSL_LOC
#undef EDGELLM_MSL_VEC1
#undef EDGELLM_MSL_VEC2
#undef EDGELLM_MSL_VEC3

}  // namespace metal

using namespace metal;

// MSL's constants.
#define MAXHALF ((half)65504.0f)
#define HALF_MAX ((half)65504.0f)
#define HALF_MIN ((half)6.103515625e-05f)
#define M_PI_F 3.14159265358979323846f
#define M_PI_H ((half)3.14159265358979323846f)

// For the launchers the prepass generates: a position attribute as the parameter's declared type.
namespace edgellm::metal_emu {
template <class T>
inline T attr_value(const uint32_t (&v)[3]) {
  if constexpr (metal::is_vec_v<T>) {
    T r;
    for (int i = 0; i < T::size; ++i) r[i] = typename T::element_type(v[i]);
    return r;
  } else {
    return T(v[0]);
  }
}
}  // namespace edgellm::metal_emu

// ---- additions (docs/METAL.md's subset, by kernel authors): put them here, in a marked block,
// inside namespace metal, before the keyword macros below (which would break standard headers) ----

#if !defined(EDGELLM_MSL_NO_KEYWORDS)
// MSL's address spaces and function qualifier: nothing in the emulator (rule 5: no overloads on
// them). Defined last, after every standard header.
#define device
#define constant
#define threadgroup
#define thread
#define kernel
#endif

#endif  // EDGELLM_MSL_SHIM_HPP
