// GPU half of the HLC on every envelope: the host's sends to a GPU actor are
// stamped, the device's replies are stamped after the requests they answer
// and merged by the host, and the runtime's configured skew bound
// (maxClockSkewMs), not the default, is the one the device enforces.
// Skipped without a GPU (gpu_gate.ts); with RINGKERNEL_REQUIRE_GPU=1 they run
// (on the emulator when RINGKERNEL_LIBCUDA points at it).
import assert from "node:assert/strict";
import { describe } from "node:test";
import { EchoMessage } from "../src/actors/schemas.ts";
import { pollUntil } from "../src/async.ts";
import { kernelInternals } from "../src/kernel.ts";
import { ENVELOPE } from "../src/layout.ts";
import { gpuTest } from "./gpu_gate.ts";
import { assertAccounted, echo, settle, withRuntime } from "./helpers.ts";

type Echo = typeof EchoMessage.spec;
const TIMESTAMP = ENVELOPE.fields.timestamp.offset;

describe("HLC stamps between the host and GPU actors", () => {
  gpuTest("host sends are stamped; device replies follow them", async () => {
    await withRuntime({ backend: "cuda" }, async (rt) => {
      const k = await rt.launch<Echo, Echo>("echo", { actor: "echo" });
      const host = kernelInternals(k).host;
      await k.sendBatch([echo(1), echo(2), echo(3)]);
      await pollUntil(() => host.output.available() === 3, {
        timeoutMs: 10_000,
      });
      const out = host.output;
      const stamps = [0, 1, 2].map((i) =>
        out.view.getBigUint64(out.slotOffset(i) + TIMESTAMP, true)
      );
      const physical = Number(stamps[0] >> 16n);
      assert.ok(
        Math.abs(physical - Date.now()) < 10_000,
        `a device stamp near wall time: ${physical}`,
      );
      assert.ok(stamps[1] > stamps[0] && stamps[2] > stamps[1]);
      const replies = { count: 0 };
      await settle(k, replies);
      assert.equal(replies.count, 3);
      assert.equal((await k.call(echo(4))).seq, 4n);
      assertAccounted(k.metrics());
    });
  });

  gpuTest("the device enforces the runtime's maxClockSkewMs", async () => {
    await withRuntime(
      { backend: "cuda", maxClockSkewMs: 1_000 },
      async (rt) => {
        const k = await rt.launch<Echo, Echo>("echo", { actor: "echo" });
        const dead: string[] = [];
        rt.deadLetters.onDeadLetter((letter) => dead.push(letter.detail ?? ""));
        const payload = new Uint8Array(EchoMessage.size);
        EchoMessage.encode(new DataView(payload.buffer), 0, echo(1));
        const input = kernelInternals(k).host.input;
        // 5 s ahead: within the default bound (60 s), beyond this runtime's.
        assert.ok(input.tryEnqueueRaw({
          typeId: EchoMessage.typeId,
          timestamp: BigInt(Date.now() + 5_000) << 16n,
        }, payload));
        await pollUntil(() => dead.length === 1, { timeoutMs: 10_000 });
        assert.match(dead[0], /clock-skew/);
        assert.equal(rt.deadLetters.countOf("invalid-message"), 1);
        assert.equal((await k.call(echo(2))).seq, 2n);
      },
    );
  });
});
