// NVRTC (src/backend/cuda/nvrtc.ts): its absence, and a compile where it is
// installed (or is the CPU emulator's, in \`deno task test:emulated\`).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import { LibraryLoadError } from "../src/errors.ts";
import { LIBNVRTC_ENV_VAR, libnvrtcCandidates } from "../ffi/libnvrtc.ts";
import { withEnv } from "./helpers.ts";

describe("NVRTC", () => {
  test("its absence is a LibraryLoadError naming what was tried", () => {
    const candidates = ["libnvrtc-ringkernel-missing.so.0"];
    // $RINGKERNEL_LIBNVRTC is tried before any candidate: unset it here.
    withEnv(LIBNVRTC_ENV_VAR, undefined, () => absent(candidates));
  });

  test("$RINGKERNEL_LIBNVRTC is tried first, as $RINGKERNEL_LIBCUDA is for libcuda", () => {
    withEnv(LIBNVRTC_ENV_VAR, "/nonexistent/libnvrtc-override.so", () => {
      assert.deepEqual(libnvrtcCandidates({ candidates: ["a.so"] }), [
        "/nonexistent/libnvrtc-override.so",
        "a.so",
      ]);
    });
  });

  function absent(candidates: string[]): void {
    assert.throws(
      () => Nvrtc.open({ candidates }),
      (e: unknown) =>
        e instanceof LibraryLoadError &&
        e.tried.some((t) => t.startsWith("libnvrtc-ringkernel-missing.so.0")) &&
        /PTX and cubin actors do not need it/.test(e.message),
    );
    const probe = Nvrtc.probe({ candidates });
    assert.equal(probe.available, false);
    assert.match(probe.reason ?? "", /libnvrtc/);
  }

  const real = Nvrtc.probe();
  test(
    "compiles a user actor written against ringkernel.cuh",
    real.available
      ? { timeout: 60_000 }
      : { skip: `libnvrtc not installed: ${real.reason?.split("\n")[0]}` },
    () => {
      const nvrtc = Nvrtc.open();
      try {
        const source = `#include "ringkernel.cuh"
struct msg { unsigned long long seq; double value; unsigned int tag; };
__device__ rk_i32 twice(const msg& in, msg& out, rk_actor_ctx&) { out = in; out.value *= 2.0; return RK_REPLY; }
RK_DEFINE_ACTOR(twice_pool, msg, msg, twice)
`;
        const { ptx } = nvrtc.compile(source, { arch: "compute_80" });
        assert.match(ptx, /\.entry twice_pool\(/);
        assert.throws(
          () => nvrtc.compile("this is not C++"),
          /nvrtcCompileProgram failed/,
        );
      } finally {
        nvrtc.close();
      }
    },
  );
});
