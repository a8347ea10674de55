// Probe kernels: the smallest proofs that the host can launch device code and
// talk to a resident kernel through mapped host memory.
#include "ringkernel.cuh"

/** Does nothing: measures launch + synchronize overhead. */
extern "C" __global__ void rk_empty() {}

/**
 * Resident echo of one word: whenever the host-written `in` word changes, the
 * kernel copies it to `out` (which the host places on another 128-byte line)
 * and makes it visible system-wide. A negative value is echoed, then the kernel
 * exits. Launch with one thread; extra threads and blocks return at once.
 */
extern "C" __global__ void rk_echo_word(const rk_i32* in, rk_i32* out) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  rk_i32 last = 0;
  for (;;) {
    const rk_i32 value = rk_load_volatile(in);
    if (value != last) {
      last = value;
      rk_store_volatile(out, value);
      __threadfence_system();
      if (value < 0) return;
    }
  }
}
