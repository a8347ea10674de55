// GPU actor definitions (src/backend/cuda/gpu_actor.ts): the built-ins by
// module, defineGpuActor, and target configurations.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { defineActor } from "../src/actor.ts";
import { BUILTIN_ACTORS } from "../src/actors/builtins.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import {
  defineGpuActor,
  gpuImplementationOf,
  resolveGpuActor,
} from "../src/backend/cuda/gpu_actor.ts";
import { encodeTargetConfig } from "../src/actors/target_config.ts";
import { REDUCE_ACTOR_MODULE } from "../src/actors/reduce.ts";
import { nameHash } from "../src/backend/cuda/route_table.ts";
import { ActorModuleError, BackendUnavailableError } from "../src/errors.ts";

describe("GPU actor definitions", () => {
  test("built-in actors declare the bundle's handlers as their GPU side", async () => {
    assert.deepEqual(
      (await resolveGpuActor(BUILTIN_ACTORS.echo.module, "default")).source,
      { builtin: "echo" },
    );
    assert.deepEqual(
      (await resolveGpuActor(BUILTIN_ACTORS.saxpy.module, "default")).source,
      { builtin: "saxpy" },
    );
    await assert.rejects(
      resolveGpuActor(BUILTIN_ACTORS.echo.module, "other"),
      ActorModuleError,
    );
    assert.deepEqual(
      await resolveGpuActor(BUILTIN_ACTORS.accumulator.module, "default"),
      {
        source: { builtin: "accumulator" },
        stateBytes: 16,
      },
    );
    assert.deepEqual(
      (await resolveGpuActor(REDUCE_ACTOR_MODULE, "default")).source,
      { builtin: "reduce" },
    );
  });

  test("an actor without a GPU side is refused with the reason", async () => {
    const module = new URL("./fixtures/stage_actor.ts", import.meta.url).href;
    await assert.rejects(
      resolveGpuActor(module, "default"),
      (e: unknown) =>
        e instanceof BackendUnavailableError &&
        /has no GPU side: declare it with defineGpuActor/.test(e.reason),
    );
  });

  test("defineGpuActor keeps the GPU side and validates it", () => {
    const actor = defineGpuActor({
      input: EchoMessage,
      output: EchoMessage,
      gpu: {
        source: { ptx: ".version 8.0", entry: "my_pool" },
        stateBytes: 8,
      },
    });
    assert.equal(gpuImplementationOf(actor)?.stateBytes, 8);
    assert.equal(
      gpuImplementationOf(
        defineActor({ input: EchoMessage, handle: () => {} }),
      ),
      undefined,
    );
    assert.throws(
      () => actor.handle({ seq: 0n, value: 0, tag: 0 }, {} as never),
      BackendUnavailableError,
    );
    assert.throws(
      () =>
        defineGpuActor({
          input: EchoMessage,
          gpu: { source: { ptx: "", entry: "" } },
        }),
      /must name the pool kernel/,
    );
    assert.throws(
      () =>
        defineGpuActor({
          input: EchoMessage,
          gpu: { source: { builtin: "nope" as never } },
        }),
      /unknown built-in/,
    );
  });

  test("target configurations encode the target's name hash", () => {
    const bytes = encodeTargetConfig({ target: "sink" }, nameHash, true);
    assert.equal(
      new DataView(bytes.buffer).getBigUint64(0, true),
      nameHash("sink"),
    );
    assert.deepEqual(
      encodeTargetConfig(undefined, nameHash, false),
      new Uint8Array(8),
    );
    assert.throws(
      () => encodeTargetConfig({}, nameHash, true),
      /needs config.target/,
    );
  });
});
