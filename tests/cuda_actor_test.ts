// The host side of a GPU actor (src/backend/cuda/cuda_actor.ts) without a
// GPU: its memory comes from arenas over a fake driver's memory, and its
// launch runs an emulated pool block (tests/fixtures/emulated_pool.ts, tied
// to the header's layouts) instead of the device code. What the device code
// does itself runs on the CPU emulator of the driver, in the GPU tests.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BUILTIN_ACTORS } from "../src/actors/builtins.ts";
import echo from "../src/actors/echo.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { pollUntil } from "../src/async.ts";
import type {
  ActorExitReason,
  ActorHostEvents,
  ActorSpawnSpec,
} from "../src/backend/backend.ts";
import { readActorDescriptor } from "../src/backend/cuda/actor_block.ts";
import { Arena, type ArenaChunk } from "../src/backend/cuda/arena.ts";
import {
  CudaActorHost,
  type CudaActorServices,
  PoolLaunch,
} from "../src/backend/cuda/cuda_actor.ts";
import {
  ActorFlag,
  ActorKind,
  ROUTE_TABLE_BYTES,
} from "../src/backend/cuda/pool_layout.ts";
import type { CudaFunction, CudaStream } from "../src/cuda/driver.ts";
import { InvalidStateError, TimeoutError } from "../src/errors.ts";
import { createKernel, type Kernel, kernelInternals } from "../src/kernel.ts";
import {
  emulatePoolBlock,
  type PoolBehaviour,
} from "./fixtures/emulated_pool.ts";
import { FakeLibcuda } from "./fixtures/fake_libcuda.ts";

/** The tag on which the emulated handler fails (as rk_example_counter_pool's does). */
const FAILING_TAG = 0xdead;

/** A stream whose query says whether the emulated blocks launched on it ended. */
class FakeStream {
  running = 0;
  closed = false;
  query(): boolean {
    return this.running === 0;
  }
}

const fakeFunction = { name: "rk_actor_pool" } as unknown as CudaFunction;

/** The services a CudaBackend gives its hosts, over a fake driver's memory. */
function emulatedDevice(behaviour: PoolBehaviour = {}) {
  const memory = new FakeLibcuda();
  const chunk = (bytes: number, mapped: boolean): ArenaChunk => {
    const { deviceAddress, bytes: data } = memory.allocate(bytes, { mapped });
    return {
      byteLength: bytes,
      deviceAddress,
      buffer: mapped ? data.buffer as ArrayBuffer : undefined,
      release: () => memory.free(deviceAddress),
    };
  };
  const hostArena = new Arena({
    name: "mapped",
    chunkBytes: 4 << 20,
    alignment: 4096,
    allocateChunk: (bytes) => chunk(bytes, true),
  });
  const deviceArena = new Arena({
    name: "device",
    chunkBytes: 4 << 20,
    allocateChunk: (bytes) => chunk(bytes, false),
  });
  const routes = memory.allocate(ROUTE_TABLE_BYTES);
  const pending: {
    blocks: readonly { chunk: ArenaChunk }[];
    stopped: () => boolean;
  }[] = [];
  const launched: PoolLaunch[] = [];
  const flush = () => {
    for (let i = pending.length - 1; i >= 0; i--) {
      if (!pending[i].stopped()) continue;
      for (const block of pending[i].blocks) {
        (block.chunk.buffer ? hostArena : deviceArena).free(block as never);
      }
      pending.splice(i, 1);
    }
  };
  const services: CudaActorServices = {
    allocateMapped: (bytes) => hostArena.allocate(bytes),
    allocateDevice: (bytes) => deviceArena.allocate(bytes),
    release: (blocks, stopped, k2k) => {
      pending.push({ blocks: k2k ? [...blocks, k2k] : blocks, stopped });
      flush();
    },
    functionFor: () => fakeFunction,
    upload: (block, bytes) => {
      memory.resolve(block.deviceAddress, bytes.byteLength).set(bytes);
    },
    download: (block, target) => {
      target.set(memory.resolve(block.deviceAddress, target.byteLength));
    },
    sharedMapped: (_key, bytes) => hostArena.allocate(bytes),
    routeTable: routes.deviceAddress,
    startHosts: async (hosts, timeoutMs) => {
      const stream = new FakeStream();
      for (const host of hosts) {
        await host.prepareLaunch(stream as unknown as CudaStream);
      }
      const launch = new PoolLaunch(stream as unknown as CudaStream, hosts);
      launched.push(launch);
      for (const host of hosts) {
        host.attach(launch);
        stream.running++;
        emulatePoolBlock(memory, host.launchWord, behaviour).finally(() =>
          stream.running--
        );
      }
      await Promise.all(hosts.map((host) => host.awaitStarted(timeoutMs)));
    },
    forget: () => {},
    watch: (host) => {
      const timer = setInterval(() => {
        if (!host.poll()) clearInterval(timer);
      }, 1);
    },
  };
  return { memory, hostArena, deviceArena, services, flush, launched };
}

interface Harness {
  host: CudaActorHost;
  kernel: Kernel;
  exits: ActorExitReason[];
  crashes: string[];
  deadLetters: { reason: string; typeId: number }[];
}

let nextId = 1;

/** A host and its kernel over `device`, started unless `start` is false. */
async function launchEmulated(
  device: ReturnType<typeof emulatedDevice>,
  options: { start?: boolean } = {},
): Promise<Harness> {
  const id = nextId++;
  const spec: ActorSpawnSpec = {
    name: `actor${id}`,
    id,
    queue: { queueCapacity: 16, outputCapacity: 16, slotSize: 64 },
    module: BUILTIN_ACTORS.echo.module,
    exportName: "default",
    config: undefined,
    idleSpinMicros: 100,
    batchSize: 256,
  };
  const bound: { kernel?: Kernel } = {};
  const harness = {
    exits: [],
    crashes: [],
    deadLetters: [],
  } as unknown as Harness;
  const events: ActorHostEvents = {
    onDeadLetter: (reason, detail, slot, takenByHost) => {
      if (takenByHost && bound.kernel) {
        kernelInternals(bound.kernel).countHostDeadLetter();
      }
      harness.deadLetters.push({
        reason,
        typeId: new DataView(slot.buffer).getUint32(0, true),
      });
      if (bound.kernel) {
        kernelInternals(bound.kernel).onDeadLetter(reason, detail, slot);
      }
    },
    onCrash: (error) => harness.crashes.push(error.message),
    onExit: (reason) => {
      harness.exits.push(reason);
      if (bound.kernel) kernelInternals(bound.kernel).onExit(reason);
    },
    onPublish: () => {},
    onSubscription: () => {},
  };
  const host = new CudaActorHost({ spec, events, services: device.services });
  const kernel = createKernel({
    name: spec.name,
    id,
    backend: "cuda",
    definition: echo as never,
    host,
    services: {
      deadLetter: (_k, reason, _detail, slot) =>
        harness.deadLetters.push({
          reason,
          typeId: new DataView(slot.buffer, slot.byteOffset).getUint32(0, true),
        }),
      terminated: () => {},
    },
  });
  bound.kernel = kernel;
  Object.assign(harness, { host, kernel });
  if (options.start !== false) {
    host.control.isActive = true;
    await host.start(5_000);
    await kernel.activate();
  }
  return harness;
}

const message = (seq: number, tag = 0) => ({
  seq: BigInt(seq),
  value: seq / 2,
  tag,
});

/** The descriptor the host wrote for its launch. */
function descriptorOf(
  device: ReturnType<typeof emulatedDevice>,
  host: CudaActorHost,
) {
  const d = device.memory.resolve(host.descriptorAddress, 1);
  return readActorDescriptor(new DataView(d.buffer), d.byteOffset);
}

describe("CudaActorHost over an emulated device", () => {
  test("the launch gets a complete descriptor; only the first start initialises the K2K inbox", async () => {
    const device = emulatedDevice();
    const { host, kernel } = await launchEmulated(device);
    const desc = descriptorOf(device, host);
    assert.equal(desc.kind, ActorKind.Echo);
    assert.equal(desc.inputTypeId, EchoMessage.typeId);
    assert.equal(desc.inputSize, EchoMessage.size);
    assert.equal(desc.outputTypeId, EchoMessage.typeId);
    assert.equal(desc.k2kInbox, host.k2kInbox);
    assert.equal(desc.routes, device.services.routeTable);
    assert.equal(desc.flags, ActorFlag.InitState | ActorFlag.InitK2k);
    assert.equal(desc.maxBatch, 256);
    assert.ok(desc.hostTimeNs > 1_600_000_000_000_000_000n);
    const w = device.memory.resolve(host.launchWord, 8);
    assert.equal(
      new DataView(w.buffer, w.byteOffset).getBigUint64(0, true),
      host.descriptorAddress,
    );
    await kernel.terminate({ timeoutMs: 5_000 });
  });

  test("a message the device rejects comes back as a dead letter with its reason", async () => {
    const device = emulatedDevice();
    const { host, kernel, deadLetters } = await launchEmulated(device);
    assert.ok(host.input.tryEnqueueRaw({ typeId: 0x1234 }, new Uint8Array(8)));
    await pollUntil(() => deadLetters.length === 1, { timeoutMs: 5_000 });
    assert.deepEqual(deadLetters[0], {
      reason: "invalid-message",
      typeId: 0x1234,
    });
    assert.equal(host.telemetry.snapshot().messagesDropped, 1);
    await kernel.terminate({ timeoutMs: 5_000 });
  });

  test("a handler failure is a crash: its message dead-lettered, the call failed, and a restart runs again", async () => {
    const device = emulatedDevice({ failOnTag: FAILING_TAG });
    const { host, kernel, exits, crashes, deadLetters } = await launchEmulated(
      device,
    );
    await assert.rejects(
      kernel.call(message(1, FAILING_TAG), { timeoutMs: 5_000 }),
      /crashed|handler/,
    );
    await pollUntil(() => exits.length === 1, { timeoutMs: 5_000 });
    assert.deepEqual(exits, ["crashed"]);
    assert.match(
      crashes[0],
      /handler failed \(device error 8, HandlerFailed\)/,
    );
    assert.equal(deadLetters[0].reason, "handler-error");
    assert.equal(host.running, false);
    host.kill();
    await host.start(5_000);
    assert.equal(host.starts, 2);
    assert.equal(descriptorOf(device, host).flags, ActorFlag.InitState);
    assert.deepEqual(
      await kernel.call(message(5), { timeoutMs: 5_000 }),
      message(5),
    );
    await kernel.terminate({ timeoutMs: 5_000 });
  });

  test("an actor that never starts times out, is told to abort, and keeps its memory until it stops", async () => {
    const device = emulatedDevice({ neverStart: true });
    const harness = await launchEmulated(device, { start: false });
    const { host } = harness;
    await assert.rejects(host.start(50), TimeoutError);
    assert.equal(host.control.shouldAbort, true);
    const launch = device.launched[0];
    host.dispose();
    await pollUntil(() => launch.idle(), { timeoutMs: 5_000 });
    device.flush();
    assert.equal(device.hostArena.usedBytes, 0);
    assert.equal(device.deviceArena.usedBytes, 0);
  });

  test("dispose waits for the kernel, then frees; the views keep the final counters", async () => {
    const device = emulatedDevice();
    const { host, kernel } = await launchEmulated(device);
    await kernel.call(message(1), { timeoutMs: 5_000 });
    await kernel.terminate({ timeoutMs: 5_000 });
    host.dispose();
    device.flush();
    assert.equal(device.hostArena.usedBytes, 0);
    assert.equal(device.deviceArena.usedBytes, 0);
    const m = kernel.metrics();
    assert.equal(m.processed, 1);
    assert.equal(m.sent, 1);
    assert.equal(m.inFlight, 0);
    await assert.rejects(host.start(100), InvalidStateError);
  });
});
