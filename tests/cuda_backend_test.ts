// Tests of the CUDA backend that need no GPU: the pool ABI against the device
// header, the generated message structs, the bundle's entry points, the
// arenas, the actor memory block, the route table, GPU actor definitions,
// NVRTC's absence, and the host side of an actor driven by an emulated
// device over plain memory (the device protocol, in TypeScript).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { defineActor } from "../src/actor.ts";
import accumulator from "../src/actors/accumulator.ts";
import { BUILTIN_ACTORS } from "../src/actors/builtins.ts";
import echo from "../src/actors/echo.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { pollUntil } from "../src/async.ts";
import type {
  ActorExitReason,
  ActorHostEvents,
  ActorSpawnSpec,
} from "../src/backend/backend.ts";
import { createBackend } from "../src/backend/create.ts";
import {
  initialiseActorBlock,
  planGpuActorMemory,
  readActorDescriptor,
  writeActorDescriptor,
} from "../src/backend/cuda/actor_block.ts";
import { Arena, type ArenaChunk } from "../src/backend/cuda/arena.ts";
import {
  CudaActorHost,
  type CudaActorServices,
  PoolLaunch,
} from "../src/backend/cuda/cuda_actor.ts";
import {
  deviceMessagesBlock,
  findDeviceMessagesBlock,
} from "../src/backend/cuda/device_messages.ts";
import {
  defineGpuActor,
  gpuImplementationOf,
  resolveGpuActor,
} from "../src/backend/cuda/gpu_actor.ts";
import { encodeTargetConfig } from "../src/actors/target_config.ts";
import { CudaBackend } from "../src/backend/cuda/cuda_backend.ts";
import { DeviceSession } from "../src/backend/cuda/device_session.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import {
  ACTOR_CONFIG_BYTES,
  ACTOR_CONFIG_OFFSET,
  ActorFlag,
  ActorKind,
  DEAD_LETTER_CAPACITY,
  DeadLetterCode,
  deadLetterReasonOf,
  DeviceError,
  deviceErrorName,
  MAX_ROUTES,
  POOL_LAYOUTS,
  POOL_SHARED_BYTES,
  POOL_THREADS,
  ROUTE_TABLE,
  ROUTE_TABLE_BYTES,
  STAGE_BYTES,
} from "../src/backend/cuda/pool_layout.ts";
import {
  MAX_REDUCE_LENGTH,
  REDUCE_ACTOR_MODULE,
  reduceBufferOf,
  reduceRange,
} from "../src/actors/reduce.ts";
import {
  ReduceOp,
  type ReduceRequest,
  type ReduceResult,
} from "../src/actors/schemas.ts";
import { BENCH_ACTORS_MODULE } from "../bench/k2k_actors.ts";
import { RingKernel } from "../src/runtime.ts";
import {
  decodeRouteTable,
  emptyRouteTable,
  encodeRouteTableUpdate,
  nameHash,
} from "../src/backend/cuda/route_table.ts";
import { ControlBlockView } from "../src/control_block.ts";
import type { CudaFunction, CudaStream } from "../src/cuda/driver.ts";
import { packKernelParams } from "../src/cuda/params.ts";
import { readTypeId } from "../src/envelope.ts";
import {
  ActorModuleError,
  BackendUnavailableError,
  GpuResidencyError,
  InvalidOptionError,
  InvalidStateError,
  LibraryLoadError,
  RingKernelError,
  TimeoutError,
} from "../src/errors.ts";
import { Kernel } from "../src/kernel.ts";
import {
  ABI_VERSION,
  CONTROL_BLOCK,
  ENVELOPE,
  QUEUE_LINE,
  TELEMETRY_BUFFER,
} from "../src/layout.ts";
import { Ring } from "../src/ring.ts";
import { TelemetryView } from "../src/telemetry.ts";
import { CuResult, type LibcudaSymbols } from "../ffi/libcuda.ts";
import { addressOf, mapMemory } from "../ffi/memory.ts";
import {
  compileLayoutCheck,
  hasCompiler,
  headerStructMembers,
  layoutCheckSource,
  type LayoutConstant,
} from "../scripts/layout_header.ts";
import { gpu } from "./gpu_gate.ts";

const gxx = hasCompiler("g++");
const nvcc = hasCompiler("nvcc");
const gxxOptions = gxx ? {} : { skip: "g++ not found" };
const HEADER = readFileSync(
  new URL("../cuda/ringkernel.cuh", import.meta.url),
  "utf8",
);
const POOL_SOURCE = readFileSync(
  new URL("../cuda/actor_pool.cu", import.meta.url),
  "utf8",
);

function upperSnake(name: string): string {
  return name.replace(/[A-Z]/g, (c, i) => (i === 0 ? c : "_" + c))
    .toUpperCase();
}

/** Every pool constant the header must define, from src/backend/cuda/pool_layout.ts. */
function poolConstants(): LayoutConstant[] {
  const constants: LayoutConstant[] = [
    {
      expression: "RK_POOL_THREADS",
      value: POOL_THREADS,
      origin: "POOL_THREADS",
    },
    {
      expression: "RK_POOL_SHARED_BYTES",
      value: POOL_SHARED_BYTES,
      origin: "POOL_SHARED_BYTES",
    },
    { expression: "RK_STAGE_BYTES", value: STAGE_BYTES, origin: "STAGE_BYTES" },
    {
      expression: "RK_ACTOR_CONFIG_BYTES",
      value: ACTOR_CONFIG_BYTES,
      origin: "ACTOR_CONFIG_BYTES",
    },
    {
      expression: "offsetof(rk_actor_desc, config)",
      value: ACTOR_CONFIG_OFFSET,
      origin: "ACTOR_CONFIG_OFFSET",
    },
    { expression: "RK_MAX_ROUTES", value: MAX_ROUTES, origin: "MAX_ROUTES" },
    {
      expression: "RK_DEAD_LETTER_CAPACITY",
      value: DEAD_LETTER_CAPACITY,
      origin: "DEAD_LETTER_CAPACITY",
    },
  ];
  const group = (
    prefix: string,
    values: Record<string, number>,
    origin: string,
  ) => {
    for (const [key, value] of Object.entries(values)) {
      constants.push({
        expression: `${prefix}${upperSnake(key)}`,
        value,
        origin: `${origin}.${key}`,
      });
    }
  };
  group("RK_ACTOR_KIND_", ActorKind, "ActorKind");
  group("RK_ACTOR_FLAG_", ActorFlag, "ActorFlag");
  group("RK_ERROR_", DeviceError, "DeviceError");
  group("RK_DEAD_", DeadLetterCode, "DeadLetterCode");
  return constants;
}

describe("pool ABI: src/backend/cuda/pool_layout.ts against cuda/ringkernel.cuh", () => {
  test("the header declares exactly the layout fields (padding ends in _; config is the area after them)", () => {
    const members = headerStructMembers(HEADER);
    for (const layout of POOL_LAYOUTS) {
      const declared = members.get(layout.cName);
      assert.ok(declared, `${layout.cName} is not declared`);
      const named = declared.filter((n) => !n.endsWith("_") && n !== "config");
      const expected = Object.values(layout.fields).sort((a, b) =>
        a.offset - b.offset
      ).map((f) => f.cName);
      assert.deepEqual(named, expected, layout.cName);
    }
  });

  test(
    "compiles against the TS layouts and constants under g++",
    gxxOptions,
    () => {
      const names = ["", "a", "sink", "forwarder-target/with.dots"];
      const hashes = names.map((name) =>
        `static_assert(rk_fnv1a64(${JSON.stringify(name)}) == 0x${
          nameHash(name).toString(16)
        }ull, "fnv1a64 of ${name}");`
      );
      const source = layoutCheckSource({
        layouts: POOL_LAYOUTS,
        constants: poolConstants(),
      }) + hashes.join("\n") + "\n";
      const result = compileLayoutCheck({ source });
      assert.equal(result.ok, true, result.output);
    },
  );

  test(
    "a drifted constant or offset is rejected by g++, naming it",
    gxxOptions,
    () => {
      const constants = [{
        expression: "RK_POOL_SHARED_BYTES",
        value: 1,
        origin: "test",
      }];
      const wrong = compileLayoutCheck({
        source: layoutCheckSource({ layouts: [], constants }),
      });
      assert.equal(wrong.ok, false);
      assert.match(wrong.output, /RK_POOL_SHARED_BYTES must be 1/);
    },
  );

  test(
    "compiles as CUDA under nvcc (host and device passes)",
    nvcc ? { timeout: 120_000 } : { skip: "nvcc not found" },
    () => {
      const result = compileLayoutCheck({
        source: layoutCheckSource({
          layouts: POOL_LAYOUTS,
          constants: poolConstants(),
        }),
        compiler: "nvcc",
      });
      assert.equal(result.ok, true, result.output);
    },
  );

  test("the shared-memory plan fits a block without opt-in (48 KiB)", () => {
    assert.ok(POOL_SHARED_BYTES <= 48 * 1024);
    assert.ok(STAGE_BYTES * 2 < POOL_SHARED_BYTES);
    assert.equal(ROUTE_TABLE_BYTES, ROUTE_TABLE.size + MAX_ROUTES * 32);
  });

  test("device error codes have names, and dead-letter codes map to runtime reasons", () => {
    assert.equal(deviceErrorName(DeviceError.SchemaMismatch), "SchemaMismatch");
    assert.equal(deviceErrorName(99), "Error99");
    assert.equal(
      deadLetterReasonOf(DeadLetterCode.InvalidMessage),
      "invalid-message",
    );
    assert.equal(
      deadLetterReasonOf(DeadLetterCode.UnknownTarget),
      "unknown-target",
    );
    assert.equal(
      deadLetterReasonOf(DeadLetterCode.HandlerError),
      "handler-error",
    );
  });
});

describe("device message structs", () => {
  test("cuda/actor_pool.cu holds exactly the structs generated from the schemas", () => {
    const found = findDeviceMessagesBlock(POOL_SOURCE);
    assert.ok(found, "the generated block's markers are missing");
    assert.equal(found, deviceMessagesBlock());
  });

  test("a missing marker is reported as no block", () => {
    assert.equal(findDeviceMessagesBlock("// nothing here\n"), undefined);
  });
});

describe("bundle entry points", () => {
  const ptx = readFileSync(
    new URL("../cuda/bundle/ringkernel.compute_80.ptx", import.meta.url),
    "utf8",
  );
  const params = (kernel: string) => {
    const match = new RegExp(
      `\\.entry ${kernel}\\(([^)]*)\\)\\s*\\.maxntid (\\d+), 1, 1`,
    ).exec(ptx);
    assert.ok(
      match,
      `${kernel} is not in the bundle's PTX (or has no launch bounds)`,
    );
    return {
      types: [...match[1].matchAll(/\.param \.(\w+)/g)].map((m) => m[1]),
      maxThreads: Number(match[2]),
    };
  };

  for (
    const kernel of [
      "rk_actor_pool",
      "rk_example_double_pool",
      "rk_example_counter_pool",
    ]
  ) {
    test(`${kernel}(const rk_u64* descriptors, rk_u32 count), ${POOL_THREADS} threads`, () => {
      assert.deepEqual(params(kernel), {
        types: ["u64", "u32"],
        maxThreads: POOL_THREADS,
      });
    });
  }

  test("the host packs the pool parameters as the kernel declares them", () => {
    const packed = packKernelParams([
      { type: "ptr", value: 0x7f00_1234_5600n },
      { type: "u32", value: 3 },
    ]);
    const view = new DataView(packed.values.buffer);
    assert.equal(packed.count, 2);
    assert.equal(view.getBigUint64(0, true), 0x7f00_1234_5600n);
    assert.equal(view.getUint32(8, true), 3);
    assert.equal(view.getUint32(12, true), 0);
    assert.ok(
      packed.pointers !== null &&
        packed.pointers[1] - packed.pointers[0] === 8n,
    );
  });

  test("pool blocks take their shared memory dynamically", () => {
    assert.match(
      ptx,
      /\.extern \.shared \.align 16 \.b8 rk_pool_dynamic_smem\[\];/,
    );
  });
});

function plainChunks() {
  const released: number[] = [];
  let next = 0x1000_0000n;
  const allocate = (bytes: number): ArenaChunk => {
    const base = next;
    next += BigInt(bytes) + 0x1000n;
    const chunk: ArenaChunk = {
      byteLength: bytes,
      deviceAddress: base,
      buffer: new ArrayBuffer(bytes),
      release: () => released.push(bytes),
    };
    return chunk;
  };
  return { allocate, released };
}

describe("arena", () => {
  test("hands out aligned blocks, reuses and coalesces freed ones", () => {
    const chunks = plainChunks();
    const arena = new Arena({
      name: "test",
      chunkBytes: 4096,
      alignment: 256,
      allocateChunk: chunks.allocate,
    });
    const a = arena.allocate(100);
    const b = arena.allocate(300);
    const c = arena.allocate(256);
    assert.deepEqual([a.offset, b.offset, c.offset], [0, 256, 768]);
    assert.equal(b.byteLength, 512);
    assert.equal(b.deviceAddress, a.deviceAddress + 256n);
    arena.free(a);
    arena.free(b);
    // a and b coalesced: a 768-byte request fits at 0.
    assert.equal(arena.allocate(700).offset, 0);
    assert.equal(arena.chunkCount, 1);
  });

  test("grows by a chunk when full, or refuses with the reason", () => {
    const chunks = plainChunks();
    const growth: { blocked?: string } = {};
    const arena = new Arena({
      name: "mapped",
      chunkBytes: 1024,
      allocateChunk: chunks.allocate,
      growthBlockedBecause: () => growth.blocked,
    });
    arena.allocate(1024);
    const big = arena.allocate(5000);
    assert.equal(big.offset, 0);
    assert.equal(arena.chunkCount, 2);
    assert.equal(arena.reservedBytes, 1024 + 5120);
    growth.blocked = "a kernel is running";
    assert.throws(
      () => arena.allocate(512),
      (e: unknown) =>
        e instanceof RingKernelError &&
        /mapped: no room for 512 bytes.*a kernel is running/.test(e.message),
    );
  });

  test("refuses a double free and bad sizes; releases empty chunks and everything at close", () => {
    const chunks = plainChunks();
    const arena = new Arena({
      name: "t",
      chunkBytes: 1024,
      allocateChunk: chunks.allocate,
    });
    const a = arena.allocate(1024);
    const b = arena.allocate(1024);
    arena.free(a);
    assert.throws(() => arena.free(a), InvalidStateError);
    assert.throws(() => arena.allocate(0), RangeError);
    assert.equal(arena.releaseEmptyChunks(0), 1);
    assert.equal(arena.chunkCount, 1);
    arena.free(b);
    arena.close();
    assert.equal(chunks.released.length, 2);
    assert.throws(() => arena.allocate(8), InvalidStateError);
  });

  test("a thousand allocate/free cycles of mixed sizes never grow it", () => {
    const chunks = plainChunks();
    const arena = new Arena({
      name: "t",
      chunkBytes: 1 << 20,
      allocateChunk: chunks.allocate,
    });
    const live = [];
    for (let i = 0; i < 1000; i++) {
      live.push(arena.allocate(1000 + (i * 7919) % 60000));
      if (live.length > 8) {
        arena.free(live.splice((i * 31) % live.length, 1)[0]);
      }
    }
    for (const block of live) arena.free(block);
    assert.equal(arena.chunkCount, 1);
    assert.equal(arena.usedBytes, 0);
    assert.equal(arena.liveBlocks, 0);
  });
});

describe("actor memory block", () => {
  const options = { queueCapacity: 64, outputCapacity: 32, slotSize: 256 };

  test("places every part aligned, in order, without overlap", () => {
    const plan = planGpuActorMemory(options);
    const parts = [
      [plan.control, CONTROL_BLOCK.size],
      [plan.telemetry, TELEMETRY_BUFFER.size],
      [plan.descriptor, 256],
      [plan.launch, 8],
      [plan.input, 512 + 64 * 256],
      [plan.inbox, 512 + 64 * 256],
      [plan.output, 512 + 32 * 256],
      [plan.deadLetters, 512 + DEAD_LETTER_CAPACITY * 256],
    ];
    for (let i = 1; i < parts.length; i++) {
      assert.ok(
        parts[i][0] >= parts[i - 1][0] + parts[i - 1][1],
        `part ${i} overlaps`,
      );
    }
    for (
      const offset of [
        plan.input,
        plan.inbox,
        plan.output,
        plan.deadLetters,
        plan.descriptor,
      ]
    ) {
      assert.equal(offset % QUEUE_LINE, 0);
    }
    assert.equal(
      plan.byteLength,
      plan.deadLetters + 512 + DEAD_LETTER_CAPACITY * 256,
    );
    assert.equal(plan.k2kBytes, 512 + 64 * 256);
  });

  test("initialises control block, telemetry and the four queues in any buffer", () => {
    const plan = planGpuActorMemory(options);
    const buffer = new ArrayBuffer(4096 + plan.byteLength);
    const views = initialiseActorBlock(buffer, 4096, plan, 7);
    assert.equal(views.control.abiVersion, ABI_VERSION);
    assert.equal(views.control.actorId, 7);
    assert.equal(views.telemetry.snapshot().minLatencyNanos, undefined);
    assert.equal(
      Ring.attach(buffer, { byteOffset: 4096 + plan.inbox }).kind,
      "mpsc",
    );
    assert.equal(
      Ring.attach(buffer, { byteOffset: 4096 + plan.deadLetters }).capacity,
      DEAD_LETTER_CAPACITY,
    );
    assert.equal(views.outputRing.capacity, 32);
    assert.throws(() => initialiseActorBlock(buffer, 100, plan, 1), RangeError);
  });

  test("a descriptor round-trips; bad fields are refused", () => {
    const view = new DataView(new ArrayBuffer(512));
    const fields = {
      control: 0x7000_0000_0000n,
      telemetry: 0x7000_0000_0080n,
      input: 1n,
      output: 2n,
      inbox: 3n,
      deadLetters: 4n,
      k2kInbox: 5n,
      routes: 6n,
      state: 7n,
      stateBytes: 16,
      kind: ActorKind.Accumulator,
      actorId: 9,
      inputTypeId: 0x524b0002,
      inputSize: 8,
      outputTypeId: 0x524b0003,
      outputSize: 16,
      maxBatch: 256,
      hostTimeNs: 1_700_000_000_000_000_000n,
      flags: ActorFlag.InitState | ActorFlag.InitK2k,
      abiVersion: ABI_VERSION,
      config: new Uint8Array([1, 2, 3]),
    };
    writeActorDescriptor(view, 128, fields);
    const back = readActorDescriptor(view, 128);
    assert.deepEqual({ ...back, config: back.config.subarray(0, 3) }, fields);
    assert.equal(back.config.length, ACTOR_CONFIG_BYTES);
    assert.throws(
      () =>
        writeActorDescriptor(view, 0, {
          ...fields,
          config: new Uint8Array(129),
        }),
      RangeError,
    );
    assert.throws(
      () => writeActorDescriptor(view, 0, { ...fields, kind: -1 }),
      RangeError,
    );
  });
});

describe("route table", () => {
  test("names hash with 64-bit FNV-1a", () => {
    assert.equal(nameHash(""), 0xcbf29ce484222325n);
    assert.equal(nameHash("a"), 0xaf63dc4c8601ec8cn);
    assert.notEqual(nameHash("sink"), nameHash("sinK"));
  });

  test("an update opens the seqlock, writes the entries and closes it", () => {
    const update = encodeRouteTableUpdate(4, [
      { name: "sink", actorId: 2, inbox: 0xd000n, slotSize: 64 },
      { name: "fwd", actorId: 3, inbox: 0xe000n, slotSize: 256 },
    ]);
    assert.equal(update.sequence, 6);
    const image = emptyRouteTable();
    assert.equal(decodeRouteTable(image).count, 0);
    image.set(update.open);
    assert.equal(update.open.byteLength, 4);
    assert.equal(decodeRouteTable(image).sequence % 2, 1);
    assert.equal(decodeRouteTable(image).count, 0); // the old count until closed
    image.set(update.entries, ROUTE_TABLE.size);
    image.set(update.close);
    const table = decodeRouteTable(image);
    assert.equal(table.sequence, 6);
    assert.deepEqual(table.routes, [
      { nameHash: nameHash("sink"), inbox: 0xd000n, actorId: 2, slotSize: 64 },
      { nameHash: nameHash("fwd"), inbox: 0xe000n, actorId: 3, slotSize: 256 },
    ]);
  });

  test("refuses an odd sequence, duplicate names and too many routes", () => {
    assert.throws(() => encodeRouteTableUpdate(1, []), RingKernelError);
    const twice = [{ name: "a", actorId: 1, inbox: 1n, slotSize: 64 }, {
      name: "a",
      actorId: 2,
      inbox: 2n,
      slotSize: 64,
    }];
    assert.throws(() => encodeRouteTableUpdate(0, twice), /two routes for "a"/);
    const many = Array.from(
      { length: MAX_ROUTES + 1 },
      (_, i) => ({ name: `a${i}`, actorId: i, inbox: 1n, slotSize: 64 }),
    );
    assert.throws(() => encodeRouteTableUpdate(0, many), RingKernelError);
  });
});

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
        source: { ptx: ".version 8.0", kernel: "my_pool" },
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
          gpu: { source: { ptx: "", kernel: "" } },
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

describe("reduce actor (CPU side and configuration)", () => {
  test("sum, min and max over a clamped range", () => {
    const data = Float32Array.from([3, -1, 4, 1, 5, 9, 2, 6]);
    assert.deepEqual(reduceRange(data, ReduceOp.Sum, 0, 8), {
      value: 29,
      count: 8,
      op: 0,
    });
    assert.deepEqual(reduceRange(data, ReduceOp.Min, 2, 3), {
      value: 1,
      count: 3,
      op: 1,
    });
    assert.deepEqual(reduceRange(data, ReduceOp.Max, 6, 100), {
      value: 6,
      count: 2,
      op: 2,
    });
    assert.deepEqual(reduceRange(data, ReduceOp.Sum, 50, 1), {
      value: 0,
      count: 0,
      op: 0,
    });
    assert.throws(() => reduceRange(data, 7, 0, 1), /unknown op 7/);
  });

  test("its buffer comes from config.data or config.length", () => {
    assert.deepEqual(
      reduceBufferOf({ data: [1, 2] }),
      Float32Array.from([1, 2]),
    );
    assert.equal(reduceBufferOf({ length: 5 }).length, 5);
    assert.equal(reduceBufferOf(undefined).length, 0);
    assert.throws(
      () => reduceBufferOf({ length: MAX_REDUCE_LENGTH + 1 }),
      RingKernelError,
    );
    assert.throws(() => reduceBufferOf({ data: 5 }), RingKernelError);
  });
});

describe("NVRTC", () => {
  test("its absence is a LibraryLoadError naming what was tried", () => {
    const candidates = ["libnvrtc-ringkernel-missing.so.0"];
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
  });

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

describe("createBackend", () => {
  test("cpu needs no FFI; an unknown kind is refused", async () => {
    assert.equal((await createBackend("cpu")).kind, "cpu");
    await assert.rejects(
      createBackend("tpu" as never),
      (e: unknown) => e instanceof InvalidOptionError && e.option === "backend",
    );
  });

  const driverPresent = gpu.available || gpu.driverVersion !== undefined;
  test(
    "cuda without a driver fails with a typed error that says why",
    driverPresent ? { skip: "a CUDA driver is present" } : {},
    async () => {
      await assert.rejects(
        createBackend("cuda"),
        (e: unknown) =>
          e instanceof BackendUnavailableError && /libcuda/.test(e.reason),
      );
    },
  );
});

// ---------------------------------------------------------------------------
// The host side of GPU actors, driven by an emulated device: plain
// ArrayBuffers stand in for mapped and device memory (fake device addresses
// resolve to them), and an emulated pool block follows the device protocol of
// cuda/ringkernel.cuh in TypeScript: descriptor, heartbeat, flags, batches,
// replies, dead letters with their reason in the stamp word, exit codes.
// ---------------------------------------------------------------------------

class FakeMemory {
  #next = 0x7f00_0000_0000n;
  readonly regions: { base: bigint; buffer: ArrayBuffer }[] = [];
  released = 0;

  chunk(bytes: number, hostVisible: boolean): ArenaChunk {
    const buffer = new ArrayBuffer(bytes);
    const base = this.#next;
    this.#next += BigInt(bytes) + 0x10000n;
    this.regions.push({ base, buffer });
    return {
      byteLength: bytes,
      deviceAddress: base,
      buffer: hostVisible ? buffer : undefined,
      release: () => this.released++,
    };
  }

  resolve(address: bigint): { buffer: ArrayBuffer; offset: number } {
    for (const { base, buffer } of this.regions) {
      if (address >= base && address < base + BigInt(buffer.byteLength)) {
        return { buffer, offset: Number(address - base) };
      }
    }
    throw new Error(`emulated device: bad address 0x${address.toString(16)}`);
  }
}

class FakeStream {
  running = 0;
  closed = false;
  query(): boolean {
    return this.running === 0;
  }
}

interface Behaviour {
  /** Never heartbeat; exit (relaunchable) once told to abort. */
  neverStart?: boolean;
  /** With neverStart: ignore the abort flag, exit only once this returns true. */
  stuckUntil?: () => boolean;
  /** Fail at startup with this device error code. */
  startError?: number;
}

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));
const STAMP = ENVELOPE.fields.stamp.offset;

/** One emulated pool block: the device actor loop of ringkernel.cuh, in TypeScript. */
async function emulateBlock(
  memory: FakeMemory,
  launchWord: bigint,
  behaviour: Behaviour,
): Promise<void> {
  const word = memory.resolve(launchWord);
  const at = (address: bigint) => memory.resolve(address);
  const d = at(new DataView(word.buffer).getBigUint64(word.offset, true));
  const desc = readActorDescriptor(new DataView(d.buffer), d.offset);
  const c = at(desc.control);
  const control = new ControlBlockView(c.buffer, c.offset);
  if (behaviour.neverStart) {
    const done = behaviour.stuckUntil ?? (() => control.shouldAbort);
    while (!done()) await tick();
    control.hasTerminated = 2;
    return;
  }
  if (behaviour.startError !== undefined || desc.abiVersion !== ABI_VERSION) {
    control.recordError(behaviour.startError ?? DeviceError.BadDescriptor);
    control.hasTerminated = 1;
    return;
  }
  const t = at(desc.telemetry);
  const telemetry = new TelemetryView(t.buffer, { byteOffset: t.offset });
  const ring = (address: bigint) =>
    Ring.attach(at(address).buffer, { byteOffset: at(address).offset });
  const input = ring(desc.input).consumer();
  const output = ring(desc.output).producer();
  const deadRing = ring(desc.deadLetters);
  const dead = deadRing.producer();
  const state = desc.state !== 0n
    ? new DataView(at(desc.state).buffer, at(desc.state).offset, 16)
    : undefined;
  if (state && (desc.flags & ActorFlag.InitState)) {
    state.setFloat64(0, 0, true);
    state.setBigUint64(8, 0n, true);
  }
  const heartbeat = () =>
    control.lastActivityTicks = BigInt(Math.round(performance.now() * 1e6)) +
      1n;
  heartbeat();
  let terminateSeen = false;
  for (;;) {
    await tick();
    if (control.shouldAbort) {
      control.hasTerminated = 2;
      return;
    }
    const terminate = control.shouldTerminate;
    let taken = 0;
    let failed = false;
    if (control.isActive || terminate) {
      const n = input.available();
      for (let i = 0; i < n; i++) {
        const offset = input.slotOffset(i);
        const view = input.view;
        const toDead = (code: number) => {
          if (dead.claim(1) === 0) return false;
          const to = dead.slotOffset(0);
          deadRing.bytes.set(
            input.ring.bytes.subarray(offset, offset + input.ring.slotSize),
            to,
          );
          deadRing.view.setUint32(to + STAMP, code, true);
          dead.publish(1);
          telemetry.recordDropped(1);
          return true;
        };
        if (
          readTypeId(view, offset) !== desc.inputTypeId ||
          view.getUint16(offset + 4, true) !== desc.inputSize
        ) {
          if (!toDead(DeadLetterCode.InvalidMessage)) break;
          taken++;
          continue;
        }
        if (
          desc.kind === ActorKind.Echo &&
          view.getUint32(offset + 32 + 16, true) === 0xdead
        ) {
          if (!toDead(DeadLetterCode.HandlerError)) break;
          taken++;
          failed = true;
          break;
        }
        if (output.claim(1) === 0) break;
        const to = output.slotOffset(0);
        const out = output.ring;
        out.bytes.set(
          input.ring.bytes.subarray(offset, offset + input.ring.slotSize),
          to,
        );
        out.view.setUint32(
          to + ENVELOPE.fields.sourceActor.offset,
          desc.actorId,
          true,
        );
        out.view.setUint32(to, desc.outputTypeId, true);
        out.view.setUint16(to + 4, desc.outputSize, true);
        if (desc.kind === ActorKind.Accumulator && state) {
          const total = state.getFloat64(0, true) +
            view.getFloat64(offset + 32, true);
          const count = state.getBigUint64(8, true) + 1n;
          state.setFloat64(0, total, true);
          state.setBigUint64(8, count, true);
          out.view.setFloat64(to + 32, total, true);
          out.view.setBigUint64(to + 40, count, true);
        }
        output.publish(1);
        control.addOneProcessed();
        telemetry.recordProcessed(1);
        taken++;
      }
      input.release(taken);
    } else if (control.pauseAck !== control.pauseRequest) {
      control.pauseAck = control.pauseRequest;
    }
    heartbeat();
    if (failed) {
      control.recordError(DeviceError.HandlerFailed);
      control.hasTerminated = 2;
      return;
    }
    if (taken === 0 && terminateSeen) {
      control.hasTerminated = 1;
      return;
    }
    if (terminate) terminateSeen = true;
  }
}

const fakeFunction = { name: "rk_actor_pool" } as unknown as CudaFunction;

function emulatedDevice(behaviour: Behaviour = {}) {
  const memory = new FakeMemory();
  const hostArena = new Arena({
    name: "mapped",
    chunkBytes: 4 << 20,
    alignment: 4096,
    allocateChunk: (bytes) => memory.chunk(bytes, true),
  });
  const deviceArena = new Arena({
    name: "device",
    chunkBytes: 4 << 20,
    allocateChunk: (bytes) => memory.chunk(bytes, false),
  });
  const routes = memory.chunk(ROUTE_TABLE_BYTES, false);
  const pending: {
    blocks: readonly ArenaBlockLike[];
    stopped: () => boolean;
  }[] = [];
  const launched: PoolLaunch[] = [];
  const timers = new Set<ReturnType<typeof setInterval>>();
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
      const target = memory.resolve(block.deviceAddress);
      new Uint8Array(target.buffer, target.offset, bytes.byteLength).set(bytes);
    },
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
        emulateBlock(memory, host.launchWord, behaviour).finally(() =>
          stream.running--
        );
      }
      await Promise.all(hosts.map((host) => host.awaitStarted(timeoutMs)));
    },
    forget: () => {},
    watch: (host) => {
      const timer = setInterval(() => {
        if (!host.poll()) {
          clearInterval(timer);
          timers.delete(timer);
        }
      }, 1);
      timers.add(timer);
    },
  };
  return {
    memory,
    hostArena,
    deviceArena,
    services,
    pending,
    flush,
    launched,
    timers,
  };
}

type ArenaBlockLike = { chunk: ArenaChunk };

interface Harness {
  host: CudaActorHost;
  kernel: Kernel;
  exits: ActorExitReason[];
  crashes: string[];
  deadLetters: { reason: string; typeId: number }[];
}

let nextId = 1;

async function launchEmulated(
  device: ReturnType<typeof emulatedDevice>,
  options: { module?: string; definition?: unknown; start?: boolean } = {},
): Promise<Harness> {
  const id = nextId++;
  const spec: ActorSpawnSpec = {
    name: `actor${id}`,
    id,
    queue: { queueCapacity: 16, outputCapacity: 16, slotSize: 64 },
    module: options.module ?? BUILTIN_ACTORS.echo.module,
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
      if (takenByHost) bound.kernel?.countHostDeadLetter();
      harness.deadLetters.push({
        reason,
        typeId: new DataView(slot.buffer).getUint32(0, true),
      });
      bound.kernel?.onDeadLetter(reason, detail, slot);
    },
    onCrash: (error) => harness.crashes.push(error.message),
    onExit: (reason) => {
      harness.exits.push(reason);
      bound.kernel?.onExit(reason);
    },
    onPublish: () => {},
    onSubscription: () => {},
  };
  const host = new CudaActorHost({ spec, events, services: device.services });
  const kernel = new Kernel({
    name: spec.name,
    id,
    backend: "cuda",
    definition: (options.definition ?? echo) as never,
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

describe("CudaActorHost over an emulated device", () => {
  test("echo: call and send/receive through the mapped queues", async () => {
    const device = emulatedDevice();
    const { kernel } = await launchEmulated(device);
    assert.deepEqual(
      await kernel.call(message(1), { timeoutMs: 5_000 }),
      message(1),
    );
    await kernel.send(message(2));
    assert.deepEqual(await kernel.receive({ timeoutMs: 5_000 }), message(2));
    await kernel.terminate({ timeoutMs: 5_000 });
    assert.equal(kernel.state, "terminated");
  });

  test("the launch gets a complete descriptor; only the first start initialises the K2K inbox", async () => {
    const device = emulatedDevice();
    const { host, kernel } = await launchEmulated(device);
    const d = device.memory.resolve(host.descriptorAddress);
    const desc = readActorDescriptor(new DataView(d.buffer), d.offset);
    assert.equal(desc.kind, ActorKind.Echo);
    assert.equal(desc.inputTypeId, EchoMessage.typeId);
    assert.equal(desc.inputSize, EchoMessage.size);
    assert.equal(desc.outputTypeId, EchoMessage.typeId);
    assert.equal(desc.k2kInbox, host.k2kInbox);
    assert.equal(desc.routes, device.services.routeTable);
    assert.equal(desc.flags, ActorFlag.InitState | ActorFlag.InitK2k);
    assert.equal(desc.maxBatch, 256);
    assert.ok(desc.hostTimeNs > 1_600_000_000_000_000_000n);
    const w = device.memory.resolve(host.launchWord);
    assert.equal(
      new DataView(w.buffer).getBigUint64(w.offset, true),
      host.descriptorAddress,
    );
    await kernel.terminate({ timeoutMs: 5_000 });
  });

  test("the accumulator keeps its state in device memory", async () => {
    const device = emulatedDevice();
    const { kernel } = await launchEmulated(device, {
      module: BUILTIN_ACTORS.accumulator.module,
      definition: accumulator,
    });
    await kernel.call({ value: 1.5 }, { timeoutMs: 5_000 });
    assert.deepEqual(await kernel.call({ value: 2.25 }, { timeoutMs: 5_000 }), {
      total: 3.75,
      count: 2n,
    });
    await kernel.terminate({ timeoutMs: 5_000 });
  });

  test("terminate drains what is queued, even when deactivated", async () => {
    const device = emulatedDevice();
    const { kernel, exits } = await launchEmulated(device);
    await kernel.deactivate();
    await kernel.sendBatch([message(1), message(2), message(3)]);
    await kernel.terminate({ timeoutMs: 5_000 });
    assert.deepEqual(exits, ["terminated"]);
    const m = kernel.metrics();
    assert.equal(m.processed, 3);
    assert.equal(m.sent, m.processed + m.deadLettered + m.inFlight);
  });

  test("abort stops at once; what was queued is dead-lettered as aborted", async () => {
    const device = emulatedDevice();
    const { kernel, exits, deadLetters } = await launchEmulated(device);
    await kernel.deactivate();
    await kernel.sendBatch([message(1), message(2)]);
    await kernel.terminate({ abort: true, timeoutMs: 5_000 });
    assert.deepEqual(exits, ["aborted"]);
    assert.deepEqual(deadLetters.map((d) => d.reason), ["aborted", "aborted"]);
    const m = kernel.metrics();
    assert.equal(m.sent, 2);
    assert.equal(m.deadLettered, 2);
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
    const device = emulatedDevice();
    const { host, kernel, exits, crashes, deadLetters } = await launchEmulated(
      device,
    );
    await assert.rejects(
      kernel.call(message(1, 0xdead), { timeoutMs: 5_000 }),
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
    const d = device.memory.resolve(host.descriptorAddress);
    assert.equal(
      readActorDescriptor(new DataView(d.buffer), d.offset).flags,
      ActorFlag.InitState,
    );
    assert.deepEqual(
      await kernel.call(message(5), { timeoutMs: 5_000 }),
      message(5),
    );
    await kernel.terminate({ timeoutMs: 5_000 });
  });

  test("a device error at startup fails the start, naming the error", async () => {
    const device = emulatedDevice({ startError: DeviceError.SchemaMismatch });
    await assert.rejects(
      launchEmulated(device),
      (e: unknown) =>
        e instanceof RingKernelError &&
        /failed to start on the GPU: SchemaMismatch \(device error 6\)/.test(
          e.message,
        ),
    );
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

  test("a hundred launch/terminate/dispose cycles leave no memory behind", async () => {
    const device = emulatedDevice();
    for (let i = 0; i < 100; i++) {
      const { host, kernel } = await launchEmulated(device);
      if (i % 10 === 0) await kernel.call(message(i), { timeoutMs: 5_000 });
      await kernel.terminate({ timeoutMs: 5_000 });
      host.dispose();
    }
    device.flush();
    assert.equal(device.hostArena.usedBytes, 0);
    assert.equal(device.deviceArena.usedBytes, 0);
    assert.equal(device.hostArena.chunkCount, 1);
    assert.equal(device.timers.size, 0);
  });
});

// ---------------------------------------------------------------------------
// CudaBackend over a stand-in libcuda: the driver calls are real driver-layer
// code; pinned "mapped" memory is JS memory mapped through FFI; a launch of
// the pool kernel starts emulated blocks. The stand-in records every call,
// and flags the ones that must never happen while a kernel runs.
// ---------------------------------------------------------------------------

class StandInCuda {
  readonly path = "stand-in-libcuda.so.1";
  readonly missing: string[] = ["cuModuleLoadDataEx"];
  readonly memory = new FakeMemory();
  readonly calls: string[] = [];
  readonly violations: string[] = [];
  readonly launches: {
    grid: number;
    block: number;
    shared: number;
    table: bigint;
    count: number;
  }[] = [];
  readonly #keep = new Map<bigint, Uint8Array>();
  readonly #streams = new Map<bigint, { running: number }>();
  #next = 0x100n;
  readonly symbols: LibcudaSymbols;
  behaviour: Behaviour = {};

  constructor() {
    const ok = CuResult.SUCCESS;
    const running = () =>
      [...this.#streams.values()].some((s) => s.running > 0);
    const guard = (call: string) => {
      if (running()) this.violations.push(`${call} while a kernel runs`);
    };
    const handle = () => (this.#next += 0x10n);
    const table: Record<string, (...args: never[]) => number> = {
      cuInit: () => ok,
      cuDriverGetVersion: (out: Int32Array) => (out[0] = 13000, ok),
      cuGetErrorName: () => CuResult.ERROR_INVALID_VALUE,
      cuGetErrorString: () => CuResult.ERROR_INVALID_VALUE,
      cuDeviceGetCount: (out: Int32Array) => (out[0] = 1, ok),
      cuDeviceGet: (out: Int32Array, ordinal: number) => (out[0] = ordinal, ok),
      cuDeviceGetName: (
        out: Uint8Array,
      ) => (out.set(new TextEncoder().encode("Stand-in H200\0")), ok),
      cuDeviceGetAttribute: (out: Int32Array, attribute: number) => {
        out[0] = attribute === 75
          ? 9
          : attribute === 76
          ? 0
          : attribute === 16
          ? 132
          : attribute === 39
          ? 2048
          : attribute === 106
          ? 32
          : 1;
        return ok;
      },
      cuDevicePrimaryCtxRetain: (out: BigUint64Array) => (out[0] = 0xc0n, ok),
      cuDevicePrimaryCtxRelease_v2:
        () => (guard("cuDevicePrimaryCtxRelease"), ok),
      cuCtxSetCurrent: () => ok,
      cuCtxSynchronize: () => (this.violations.push("cuCtxSynchronize"), ok),
      cuModuleLoadData: (out: BigUint64Array) => (out[0] = handle(), ok),
      cuModuleGetFunction: (out: BigUint64Array) => (out[0] = handle(), ok),
      cuModuleUnload: () => (guard("cuModuleUnload"), ok),
      cuStreamCreate: (out: BigUint64Array, flags: number) => {
        if (flags !== 1) this.violations.push("a blocking stream");
        out[0] = handle();
        this.#streams.set(out[0], { running: 0 });
        return ok;
      },
      cuStreamQuery: (stream: bigint) =>
        (this.#streams.get(stream)?.running ?? 0) > 0
          ? CuResult.ERROR_NOT_READY
          : ok,
      cuStreamSynchronize: (stream: bigint) => {
        if ((this.#streams.get(stream)?.running ?? 0) > 0) {
          this.violations.push(
            "cuStreamSynchronize on a stream with a resident kernel",
          );
        }
        return ok;
      },
      cuStreamDestroy_v2: (
        stream: bigint,
      ) => (this.#streams.delete(stream), ok),
      cuMemHostAlloc: (out: BigUint64Array, size: number) => {
        const bytes = new Uint8Array(size);
        out[0] = addressOf(bytes);
        this.#keep.set(out[0], bytes);
        this.memory.regions.push({ base: out[0], buffer: bytes.buffer });
        return ok;
      },
      cuMemHostGetDevicePointer_v2: (
        out: BigUint64Array,
        host: bigint,
      ) => (out[0] = host, ok),
      cuMemFreeHost: (
        host: bigint,
      ) => (guard("cuMemFreeHost"), this.#keep.delete(host), ok),
      cuMemAllocAsync: (
        out: BigUint64Array,
        size: number,
      ) => (out[0] = this.memory.chunk(size, false).deviceAddress, ok),
      cuMemAlloc_v2: (out: BigUint64Array, size: number) => {
        guard("cuMemAlloc");
        out[0] = this.memory.chunk(size, false).deviceAddress;
        return ok;
      },
      cuMemFreeAsync: () => ok,
      cuMemFree_v2: () => (guard("cuMemFree"), ok),
      cuMemsetD8_v2: () => (guard("cuMemsetD8"), ok),
      cuMemcpyHtoD_v2: (target: bigint, bytes: Uint8Array) => {
        guard("cuMemcpyHtoD (legacy stream)");
        return this.#copy(target, bytes);
      },
      cuMemcpyHtoDAsync_v2: (target: bigint, bytes: Uint8Array) =>
        this.#copy(target, bytes),
      cuMemcpyDtoH_v2: () => (guard("cuMemcpyDtoH (legacy stream)"), ok),
      cuLaunchKernel: (
        _fn: bigint,
        gx: number,
        _gy: number,
        _gz: number,
        bx: number,
        _by: number,
        _bz: number,
        shared: number,
        stream: bigint,
        params: BigUint64Array,
      ) => {
        const arg = (i: number) => new DataView(mapMemory(params[i], 8));
        const tableAddress = arg(0).getBigUint64(0, true);
        const count = arg(1).getUint32(0, true);
        this.launches.push({
          grid: gx,
          block: bx,
          shared,
          table: tableAddress,
          count,
        });
        const s = this.#streams.get(stream)!;
        for (let b = 0; b < gx; b++) {
          s.running++;
          emulateBlock(
            this.memory,
            tableAddress + BigInt(8 * b),
            this.behaviour,
          ).finally(() => s.running--);
        }
        return ok;
      },
    };
    this.symbols = new Proxy(table, {
      get: (target, key: string) => {
        if (key === "cuModuleLoadDataEx") return undefined;
        const fn = target[key];
        if (fn === undefined) return undefined;
        return (...args: never[]) => {
          this.calls.push(key);
          return fn(...args);
        };
      },
    }) as unknown as LibcudaSymbols;
  }

  #copy(target: bigint, bytes: Uint8Array): number {
    const to = this.memory.resolve(target);
    new Uint8Array(to.buffer, to.offset, bytes.byteLength).set(bytes);
    return CuResult.SUCCESS;
  }

  get running(): number {
    let n = 0;
    for (const s of this.#streams.values()) n += s.running;
    return n;
  }
}

function spawnOn(
  backend: CudaBackend,
  name: string,
  config?: unknown,
  module = BUILTIN_ACTORS.echo.module,
) {
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
    module,
    exportName: "default",
    config,
    idleSpinMicros: 100,
    batchSize: 256,
  }, events);
  host.control.isActive = true;
  return { host, exits };
}

describe("CudaBackend over a stand-in driver", () => {
  const open = () => {
    const cuda = new StandInCuda();
    const backend = CudaBackend.open({
      driver: { library: cuda },
      hostArenaBytes: 1 << 20,
      deviceArenaBytes: 1 << 20,
    });
    return { cuda, backend };
  };

  test("opens with everything reserved up front, on non-blocking streams", async () => {
    const { cuda, backend } = open();
    assert.equal(backend.device.name, "Stand-in H200");
    assert.equal(backend.bundleImage, "ringkernel.sm_90.cubin");
    const stats = backend.stats();
    assert.equal(stats.mappedBytesReserved, 1 << 20);
    assert.equal(stats.deviceBytesReserved, 1 << 20);
    assert.ok(cuda.calls.includes("cuMemAllocAsync"));
    await backend.close();
    assert.deepEqual(cuda.violations, []);
  });

  test("a device keeps at most 128 grids resident: the 129th launch is refused up front", async () => {
    const { cuda, backend } = open();
    const session = DeviceSession.acquire({
      driver: { library: cuda },
      reserve: false,
    });
    try {
      const fn = session.poolFunction;
      let running = true;
      const tokens = Array.from({ length: 128 }, () =>
        session.admit({
          fn,
          blocks: 1,
          threads: POOL_THREADS,
          sharedBytes: POOL_SHARED_BYTES,
          stopped: () => !running,
        }));
      assert.equal(session.residency().grids, 128);
      const refused = (() => {
        try {
          session.admit({
            fn,
            blocks: 1,
            threads: POOL_THREADS,
            sharedBytes: POOL_SHARED_BYTES,
            stopped: () => false,
          });
        } catch (error) {
          return error;
        }
      })();
      assert.ok(refused instanceof GpuResidencyError);
      assert.equal(refused.limit, "grids");
      assert.match(refused.message, /at most|the most a device keeps/);
      // A refused launch is not counted; ended ones are forgotten.
      assert.equal(session.residency().grids, 128);
      tokens[0].cancel();
      assert.equal(session.residency().grids, 127);
      running = false;
      assert.equal(session.residency().grids, 0);
    } finally {
      session.release();
      await backend.close();
    }
    assert.deepEqual(cuda.violations, []);
  });

  test("an actor launches as a pool of one, answers, follows routes, stops and frees", async () => {
    const { cuda, backend } = open();
    const a = spawnOn(backend, "echo-a");
    const b = spawnOn(backend, "echo-b");
    await a.host.start(5_000);
    assert.deepEqual(cuda.launches[0], {
      grid: 1,
      block: POOL_THREADS,
      shared: POOL_SHARED_BYTES,
      table: a.host.launchWord,
      count: 1,
    });
    assert.ok(a.host.input.tryEnqueue(EchoMessage, message(4)));
    await pollUntil(() => a.host.output.available() > 0, { timeoutMs: 5_000 });
    assert.deepEqual(a.host.output.tryDequeue(EchoMessage)?.value, message(4));

    backend.updateRoutes(new Map([["echo-a", a.host], ["echo-b", b.host]]));
    const image = cuda.memory.resolve(
      readActorDescriptor(
        new DataView(cuda.memory.resolve(a.host.descriptorAddress).buffer),
        cuda.memory.resolve(a.host.descriptorAddress).offset,
      ).routes,
    );
    const table = decodeRouteTable(
      new Uint8Array(image.buffer, image.offset, ROUTE_TABLE_BYTES),
    );
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
    assert.deepEqual(cuda.violations, []);
  });

  test("startPool launches several actors as ONE kernel, one block each", async () => {
    const { cuda, backend } = open();
    const actors = [0, 1, 2].map((i) => spawnOn(backend, `pool-${i}`));
    await backend.startPool(actors.map((a) => a.host));
    assert.equal(cuda.launches.length, 1);
    const launch = cuda.launches[0];
    assert.equal(launch.grid, 3);
    assert.equal(launch.count, 3);
    const words = cuda.memory.resolve(launch.table);
    const view = new DataView(words.buffer, words.offset, 24);
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
    assert.deepEqual(cuda.violations, []);
  });

  test("close aborts running actors and frees only after their kernels stopped", async () => {
    const { cuda, backend } = open();
    const actor = spawnOn(backend, "running");
    await actor.host.start(5_000);
    assert.equal(cuda.running, 1);
    await backend.close({ timeoutMs: 5_000 });
    assert.equal(cuda.running, 0);
    assert.ok(cuda.calls.includes("cuMemFreeHost"));
    assert.deepEqual(cuda.violations, []);
    assert.throws(() => spawnOn(backend, "late"), InvalidStateError);
  });

  test("a kernel that never stops keeps its memory and the context, and close says so", async () => {
    const { cuda, backend } = open();
    let released = false;
    cuda.behaviour = { neverStart: true, stuckUntil: () => released };
    const actor = spawnOn(backend, "stuck");
    await assert.rejects(actor.host.start(30), TimeoutError);
    const live = actor.host.control;
    assert.equal(live.shouldAbort, true);
    const closing = backend.close({ timeoutMs: 50 });
    await assert.rejects(closing, /did not stop within 50 ms/);
    assert.equal(cuda.calls.includes("cuMemFreeHost"), false);
    assert.deepEqual(cuda.violations, []);
    // Let the emulated kernel end, so the test leaves nothing running.
    released = true;
    await pollUntil(() => cuda.running === 0, { timeoutMs: 5_000 });
  });
});

describe("GPU actor modules on the CPU backend", () => {
  test("reduce and the K2K generator/counter run as CPU actors too", async () => {
    const rt = await RingKernel.create({ backend: "cpu", quiet: true });
    try {
      const reduce = await rt.launch<
        typeof ReduceRequest.spec,
        typeof ReduceResult.spec
      >("reduce", {
        actor: { module: REDUCE_ACTOR_MODULE },
        config: { data: [3, -1, 4, 1, 5] },
      });
      assert.deepEqual(
        await reduce.call({ op: ReduceOp.Max, offset: 1, count: 3 }, {
          timeoutMs: 10_000,
        }),
        {
          value: 4,
          count: 3,
          op: ReduceOp.Max,
        },
      );
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
