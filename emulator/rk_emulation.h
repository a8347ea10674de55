// rk_emulation.h — what the device sources in cuda/ need from CUDA, on the host.
//
// The CPU emulator compiles cuda/*.cu with g++ after this header: each block
// runs on its own OS thread, each of its threads is a fiber, and the fibers
// switch only at block and warp barriers (libcuda_emulator.cpp). That keeps
// the CUDA semantics the device code relies on (per-block shared memory,
// barriers, warp votes and shuffles, system-scope fences and atomics) while
// everything else runs as ordinary host code against the real queues.
#ifndef RK_EMULATION_H
#define RK_EMULATION_H

#define RK_EMULATION 1

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <type_traits>
#include <utility>

#define __host__
#define __device__
#define __global__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
// One OS thread runs one block, so a thread-local is exactly block-shared.
#define __shared__ static thread_local

/** What modules compiled at run time (the emulated NVRTC) link against in the emulator. */
#define RK_EMU_API __attribute__((visibility("default")))

/** CUDA's dim3 as the device code reads it. */
struct rk_emu_dim3 {
  unsigned int x, y, z;
};

extern RK_EMU_API thread_local rk_emu_dim3 rk_emu_thread_idx;
extern RK_EMU_API thread_local rk_emu_dim3 rk_emu_block_idx;
extern RK_EMU_API thread_local rk_emu_dim3 rk_emu_block_dim;
extern RK_EMU_API thread_local rk_emu_dim3 rk_emu_grid_dim;
extern RK_EMU_API thread_local void* rk_emu_dynamic_smem;

#define threadIdx rk_emu_thread_idx
#define blockIdx rk_emu_block_idx
#define blockDim rk_emu_block_dim
#define gridDim rk_emu_grid_dim

/** CUDA's 16-byte vector. */
struct alignas(16) uint4 {
  unsigned int x, y, z, w;
};

inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) { return uint4{x, y, z, w}; }

extern "C" {
/** Block barrier: the calling fiber waits until every live thread of the block arrives. */
RK_EMU_API void rk_emu_syncthreads(void);
/** Warp collective: every lane passes `value`; returns the values of the whole warp in `lanes`. */
RK_EMU_API void rk_emu_warp_exchange(unsigned long long value, unsigned long long lanes[32]);
/** Sleeps the block (once per block, not once per fiber). */
RK_EMU_API void rk_emu_nanosleep(unsigned int ns);
/** Monotonic nanoseconds, as %globaltimer. */
RK_EMU_API unsigned long long rk_emu_globaltimer_ns(void);
}

inline void __syncthreads() { rk_emu_syncthreads(); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __nanosleep(unsigned int ns) { rk_emu_nanosleep(ns); }

inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffs(unsigned int x) { return __builtin_ffs(static_cast<int>(x)); }
inline int __popc(unsigned int x) { return __builtin_popcount(x); }

inline uint4 __ldcv(const uint4* p) {
  uint4 v;
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  const volatile unsigned int* s = reinterpret_cast<const volatile unsigned int*>(p);
  v.x = s[0];
  v.y = s[1];
  v.z = s[2];
  v.w = s[3];
  return v;
}

inline void __stcs(uint4* p, uint4 v) {
  volatile unsigned int* d = reinterpret_cast<volatile unsigned int*>(p);
  d[0] = v.x;
  d[1] = v.y;
  d[2] = v.z;
  d[3] = v.w;
}

inline double __longlong_as_double(long long v) {
  double d;
  memcpy(&d, &v, sizeof d);
  return d;
}
inline long long __double_as_longlong(double v) {
  long long i;
  memcpy(&i, &v, sizeof i);
  return i;
}
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }

template <class T>
inline T atomicCAS(T* p, T expected, T desired) {
  __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return expected;
}
template <class T>
inline T atomicAdd(T* p, T v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
template <class T>
inline T atomicExch(T* p, T v) {
  return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}
template <class T>
inline T atomicMin(T* p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (v < old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return old;
}
template <class T>
inline T atomicMax(T* p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (v > old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return old;
}

/** Acquire load at system scope (what ld.acquire.sys does on the device). */
template <class T>
inline T rk_emu_load_acquire(const T* p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

inline unsigned int __ballot_sync(unsigned int, bool predicate) {
  unsigned long long lanes[32];
  rk_emu_warp_exchange(predicate ? 1ull : 0ull, lanes);
  unsigned int ballot = 0;
  for (unsigned int i = 0; i < 32; ++i) ballot |= (lanes[i] != 0 ? 1u : 0u) << i;
  return ballot;
}

template <class T>
inline T __shfl_down_sync(unsigned int, T value, unsigned int delta) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  unsigned long long word = 0;
  memcpy(&word, &value, sizeof(T));
  unsigned long long lanes[32];
  rk_emu_warp_exchange(word, lanes);
  const unsigned int source = (threadIdx.x & 31u) + delta;
  if (source >= 32u) return value;
  T out;
  memcpy(&out, &lanes[source], sizeof(T));
  return out;
}

/** A kernel as the emulator launches it: parameters copied from `kernelParams` at launch. */
struct rk_emu_kernel {
  const char* name;
  unsigned int param_count;
  const unsigned int* param_sizes;
  /** Copies the parameters; returns an object `run` and `release` take. */
  void* (*capture)(void** params);
  void (*run)(void* captured);
  void (*release)(void* captured);
};

extern "C" RK_EMU_API void rk_emu_register_kernel(const rk_emu_kernel* kernel);

template <auto Fn, class Signature>
struct rk_emu_launcher;

template <auto Fn, class... A>
struct rk_emu_launcher<Fn, void (*)(A...)> {
  typedef std::tuple<typename std::decay<A>::type...> Params;
  static constexpr unsigned int sizes[sizeof...(A) + 1] = {static_cast<unsigned int>(sizeof(A))..., 0u};

  template <size_t... I>
  static void* capture_at(void** params, std::index_sequence<I...>) {
    Params* p = new Params();
    (void)params;
    (memcpy(&std::get<I>(*p), params[I], sizeof(std::get<I>(*p))), ...);
    return p;
  }
  static void* capture(void** params) { return capture_at(params, std::index_sequence_for<A...>()); }
  static void run(void* captured) { std::apply(Fn, *static_cast<Params*>(captured)); }
  static void release(void* captured) { delete static_cast<Params*>(captured); }
  static constexpr rk_emu_kernel kernel(const char* name) {
    return rk_emu_kernel{name, sizeof...(A), sizes, &capture, &run, &release};
  }
};

/** Registers kernel `Fn` under `name` when the library loads. */
template <auto Fn>
struct rk_emu_registrar {
  explicit rk_emu_registrar(const char* name) {
    static const rk_emu_kernel kernel = rk_emu_launcher<Fn, decltype(Fn)>::kernel(name);
    rk_emu_register_kernel(&kernel);
  }
};

#define RK_EMU_CONCAT_(a, b) a##b
#define RK_EMU_CONCAT(a, b) RK_EMU_CONCAT_(a, b)
/** Registers kernel `kernel_name` when the library loads (again is harmless). */
#define RK_EMU_REGISTER(kernel_name) \
  static rk_emu_registrar<&kernel_name> RK_EMU_CONCAT(rk_emu_registrar_, __COUNTER__)(#kernel_name);

#endif  // RK_EMULATION_H
