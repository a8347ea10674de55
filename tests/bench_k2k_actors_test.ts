// The bench actors (bench/k2k_actors.ts) on the CPU backend;
// on the GPU they run in tests/cuda_backend_gpu_test.ts.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EchoMessage } from "../src/actors/schemas.ts";
import { BENCH_ACTORS_MODULE } from "../bench/k2k_actors.ts";
import { RingKernel } from "../src/runtime.ts";

describe("K2K bench actors on the CPU backend", () => {
  test("the K2K generator and counter run as CPU actors too", async () => {
    const rt = await RingKernel.create({ backend: "cpu", quiet: true });
    try {
      const sink = await rt.launch<
        typeof EchoMessage.spec,
        typeof EchoMessage.spec
      >("sink", {
        actor: { module: BENCH_ACTORS_MODULE, export: "k2kSink" },
      });
      const source = await rt.launch("source", {
        actor: { module: BENCH_ACTORS_MODULE, export: "k2kSource" },
        config: { target: "sink" },
      });
      await source.send({ seq: 50n, value: 0, tag: 0 });
      const first = await sink.receive({ timeoutMs: 10_000 });
      const last = await sink.receive({ timeoutMs: 10_000 });
      assert.deepEqual([first.value, first.tag, last.value, last.tag], [
        1,
        0,
        50,
        1,
      ]);
    } finally {
      await rt.shutdown();
    }
  });
});
