// The CUDA backend (src/backend/cuda/cuda_backend.ts) without a GPU: over a
// fake libcuda (tests/fixtures/fake_libcuda.ts) the driver calls are the real
// driver layer's, mapped memory is JS memory mapped through FFI, and a launch
// of the pool kernel runs emulated blocks (tests/fixtures/emulated_pool.ts).
// The fake records every call, and the ones that must never happen while a
// kernel runs. On the device code itself: tests/cuda_backend_gpu_test.ts.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BUILTIN_ACTORS } from "../src/actors/builtins.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { pollUntil } from "../src/async.ts";
import type {
  ActorExitReason,
  ActorHostEvents,
} from "../src/backend/backend.ts";
import { readActorDescriptor } from "../src/backend/cuda/actor_block.ts";
import { CudaBackend } from "../src/backend/cuda/cuda_backend.ts";
import {
  POOL_SHARED_BYTES,
  POOL_THREADS,
  ROUTE_TABLE_BYTES,
} from "../src/backend/cuda/pool_layout.ts";
import { decodeRouteTable } from "../src/backend/cuda/route_table.ts";
import { CuStreamFlags } from "../ffi/libcuda.ts";
import { TimeoutError } from "../src/errors.ts";
import { type PoolBehaviour, poolKernel } from "./fixtures/emulated_pool.ts";
import { FAKE_DEVICE_NAME, FakeLibcuda } from "./fixtures/fake_libcuda.ts";

/** A backend over a fake libcuda whose pool kernel runs emulated blocks. */
function open() {
  const pool = {
    behaviour: {} as PoolBehaviour,
    launches: [] as { table: bigint; count: number }[],
  };
  const cuda = new FakeLibcuda({
    kernels: { rk_actor_pool: poolKernel(() => pool.behaviour, pool.launches) },
  });
  const backend = CudaBackend.open({
    driver: { library: cuda },
    hostArenaBytes: 1 << 20,
    deviceArenaBytes: 1 << 20,
  });
  return { cuda, pool, backend };
}

/** Nothing waited behind a running kernel, and every stream was non-blocking. */
function assertNoHazards(cuda: FakeLibcuda): void {
  assert.deepEqual(cuda.violations, []);
  assert.equal(cuda.calls.includes("cuCtxSynchronize"), false);
  assert.ok(
    cuda.streamFlags.every((flags) => flags === CuStreamFlags.NON_BLOCKING),
    `stream flags ${cuda.streamFlags}`,
  );
}

/** The bytes at a device address, as a view. */
function viewAt(cuda: FakeLibcuda, address: bigint, byteLength: number) {
  const bytes = cuda.resolve(address, byteLength);
  return new DataView(bytes.buffer, bytes.byteOffset, byteLength);
}

let nextId = 1;

function spawnOn(backend: CudaBackend, name: string) {
  const exits: ActorExitReason[] = [];
  const id = nextId++;
  const events: ActorHostEvents = {
    onDeadLetter: () => {},
    onCrash: () => {},
    onExit: (reason) => exits.push(reason),
    onPublish: () => {},
    onSubscription: () => {},
  };
  const host = backend.spawn({
    name,
    id,
    queue: { queueCapacity: 64, outputCapacity: 64, slotSize: 64 },
    module: BUILTIN_ACTORS.echo.module,
    exportName: "default",
    config: undefined,
    idleSpinMicros: 100,
    batchSize: 256,
  }, events);
  host.control.isActive = true;
  return { host, exits };
}

const message = (seq: number) => ({ seq: BigInt(seq), value: seq / 2, tag: 0 });

describe("CudaBackend over a fake driver", () => {
  test("opens with everything reserved up front, on non-blocking streams", async () => {
    const { cuda, backend } = open();
    assert.equal(backend.device.name, FAKE_DEVICE_NAME);
    assert.equal(backend.bundleImage, "ringkernel.sm_90.cubin");
    const stats = backend.stats();
    assert.equal(stats.mappedBytesReserved, 1 << 20);
    assert.equal(stats.deviceBytesReserved, 1 << 20);
    assert.ok(cuda.calls.includes("cuMemAllocAsync"));
    await backend.close();
    assertNoHazards(cuda);
  });

  test("an actor launches as a pool of one, answers, follows routes, stops and frees", async () => {
    const { cuda, pool, backend } = open();
    const a = spawnOn(backend, "echo-a");
    const b = spawnOn(backend, "echo-b");
    await a.host.start(5_000);
    assert.deepEqual(cuda.launches, [{
      name: "rk_actor_pool",
      grid: [1, 1, 1],
      block: [POOL_THREADS, 1, 1],
      sharedBytes: POOL_SHARED_BYTES,
    }]);
    assert.deepEqual(pool.launches, [{ table: a.host.launchWord, count: 1 }]);
    assert.ok(a.host.input.tryEnqueue(EchoMessage, message(4)));
    await pollUntil(() => a.host.output.available() > 0, { timeoutMs: 5_000 });
    assert.deepEqual(a.host.output.tryDequeue(EchoMessage)?.value, message(4));

    backend.updateRoutes(new Map([["echo-a", a.host], ["echo-b", b.host]]));
    const descriptor = cuda.resolve(a.host.descriptorAddress, 1);
    const routes = readActorDescriptor(
      new DataView(descriptor.buffer),
      descriptor.byteOffset,
    ).routes;
    const table = decodeRouteTable(cuda.resolve(routes, ROUTE_TABLE_BYTES));
    assert.equal(table.sequence, 2);
    assert.deepEqual(table.routes.map((r) => r.inbox), [
      a.host.k2kInbox,
      b.host.k2kInbox,
    ]);

    a.host.control.shouldTerminate = true;
    await pollUntil(() => a.exits.length === 1, { timeoutMs: 5_000 });
    assert.deepEqual(a.exits, ["terminated"]);
    const used = backend.stats().mappedBytesInUse;
    a.host.dispose();
    b.host.dispose();
    await pollUntil(
      () =>
        backend.stats().launches === 0 && backend.stats().pendingReleases === 0,
      {
        timeoutMs: 5_000,
      },
    );
    assert.ok(backend.stats().mappedBytesInUse < used);
    assert.equal(backend.stats().actors, 0);
    await backend.close();
    assertNoHazards(cuda);
  });

  test("startPool launches several actors as ONE kernel, one block each", async () => {
    const { cuda, pool, backend } = open();
    const actors = [0, 1, 2].map((i) => spawnOn(backend, `pool-${i}`));
    await backend.startPool(actors.map((a) => a.host));
    assert.equal(cuda.launches.length, 1);
    assert.deepEqual(cuda.launches[0].grid, [3, 1, 1]);
    assert.equal(pool.launches[0].count, 3);
    const view = viewAt(cuda, pool.launches[0].table, 24);
    assert.deepEqual(
      [0, 1, 2].map((i) => view.getBigUint64(8 * i, true)),
      actors.map((a) => a.host.descriptorAddress),
    );
    await assert.rejects(
      backend.startPool([actors[0].host]),
      /already running/,
    );
    for (const actor of actors) actor.host.control.shouldTerminate = true;
    await pollUntil(() => actors.every((a) => a.exits.length === 1), {
      timeoutMs: 5_000,
    });
    await backend.close();
    assertNoHazards(cuda);
  });

  test("a kernel that never stops keeps its memory and the context, and close says so", async () => {
    const { cuda, pool, backend } = open();
    let released = false;
    pool.behaviour = { neverStart: true, stuckUntil: () => released };
    const actor = spawnOn(backend, "stuck");
    await assert.rejects(actor.host.start(30), TimeoutError);
    const live = actor.host.control;
    assert.equal(live.shouldAbort, true);
    const closing = backend.close({ timeoutMs: 50 });
    await assert.rejects(closing, /did not stop within 50 ms/);
    assert.equal(cuda.calls.includes("cuMemFreeHost"), false);
    assertNoHazards(cuda);
    // Let the emulated kernel end, so the test leaves nothing running.
    released = true;
    await pollUntil(() => cuda.running === 0, { timeoutMs: 5_000 });
  });
});
