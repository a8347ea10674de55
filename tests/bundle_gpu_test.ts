// GPU tests of the kernel bundle: it loads, its kernels launch, and the resident
// echo kernels answer through mapped memory and the shared queue layout.
// Skipped without a GPU (see gpu_gate.ts).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { after } from "node:test";
import { pollUntil } from "../src/async.ts";
import { KernelBundle } from "../src/cuda/bundle.ts";
import {
  type CudaContext,
  CudaDriver,
  type CudaModule,
  type CudaStream,
  type MappedHostMemory,
} from "../src/cuda/driver.ts";
import { TimeoutError } from "../src/errors.ts";
import {
  ABI_VERSION,
  CONTROL_BLOCK,
  ENVELOPE,
  QUEUE_HEADER,
  QUEUE_MAGIC,
  QueueKind,
  TerminationState,
} from "../src/layout.ts";
import { gpuTest } from "./gpu_gate.ts";

const WAIT_MS = 10_000;

/** Device error codes, read from the header rather than repeated here. */
const DEVICE_ERRORS: Record<string, number> = Object.fromEntries(
  [
    ...readFileSync(new URL("../cuda/ringkernel.cuh", import.meta.url), "utf8")
      .matchAll(/#define (RK_ERROR_\w+) (\d+)/g),
  ].map((m) => [m[1], Number(m[2])]),
);

interface Gpu {
  driver: CudaDriver;
  context: CudaContext;
  module: CudaModule;
  label: string;
}

let shared: Gpu | undefined;
/** Set when a resident kernel could not be confirmed stopped: freeing would block. */
let kernelMayRun = false;

function gpu(): Gpu {
  if (shared) return shared;
  const driver = CudaDriver.open();
  try {
    const context = driver.primaryContext(0);
    const cc = driver.device(0).computeCapability;
    const image = KernelBundle.open().loadImage(cc);
    const module = context.loadModule(image.data, { name: image.output.file });
    const label = `${
      driver.device(0).name
    } (sm_${cc.major}${cc.minor}), image ${image.output.file}`;
    shared = { driver, context, module, label };
    return shared;
  } catch (error) {
    driver.close();
    throw error;
  }
}

after(() => {
  if (!shared) return;
  if (kernelMayRun) {
    console.log(
      "bundle_gpu_test: a resident kernel may still run; leaving its memory to process exit",
    );
    return;
  }
  shared.driver.close();
});

/** Spins on `predicate` (host reads of mapped memory) until true; throws after `timeoutMs`. */
function spinUntil(
  predicate: () => boolean,
  what: string,
  timeoutMs = WAIT_MS,
): void {
  const deadline = performance.now() + timeoutMs;
  for (let spins = 1;; spins++) {
    if (predicate()) return;
    if ((spins & 0x3ff) === 0 && performance.now() > deadline) {
      throw new TimeoutError(what, timeoutMs);
    }
  }
}

/**
 * Runs `body` with a fresh stream and mapped memory; afterwards `stop()` asks
 * the resident kernel to exit and the stream must drain within the deadline
 * before anything is freed.
 */
async function withResident(
  byteLength: number,
  body: (
    ctx: { stream: CudaStream; memory: MappedHostMemory },
  ) => Promise<void> | void,
  stop: (memory: MappedHostMemory) => void,
): Promise<void> {
  const { context } = gpu();
  const stream = context.createStream();
  const memory = context.allocMappedHost(byteLength);
  new Uint8Array(memory.buffer).fill(0);
  let failure: unknown;
  try {
    await body({ stream, memory });
  } catch (error) {
    failure = error;
  }
  stop(memory);
  try {
    await stream.waitIdle({ timeoutMs: WAIT_MS });
  } catch (error) {
    kernelMayRun = true;
    throw failure ?? error;
  }
  memory.free();
  stream.close();
  if (failure) throw failure;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

gpuTest("the bundle loads on the device and exposes every kernel", () => {
  const { module, label, driver, context } = gpu();
  console.log(`bundle_gpu_test: ${label}`);
  const bundle = KernelBundle.open();
  for (const name of bundle.kernels) {
    assert.equal(module.getFunction(name).name, name);
  }
  // The PTX must load too: it is what newer devices JIT.
  const ptx = bundle.loadImage(driver.device(0).computeCapability, {
    preferPtx: true,
  });
  const jit = context.loadModule(ptx.data, { name: ptx.output.file });
  for (const name of bundle.kernels) jit.getFunction(name);
  jit.close();
});

gpuTest(
  "rk_empty launches and completes, from the cubin and from the PTX",
  async () => {
    const { context, module, driver } = gpu();
    const stream = context.createStream();
    const ptx = KernelBundle.open().loadImage(
      driver.device(0).computeCapability,
      { preferPtx: true },
    );
    const jit = context.loadModule(ptx.data, { name: ptx.output.file });
    try {
      for (const m of [module, jit]) {
        const empty = m.getFunction("rk_empty");
        for (let i = 0; i < 100; i++) {
          empty.launch({
            grid: 1,
            block: 32,
            stream,
          });
        }
        await stream.waitIdle({ timeoutMs: WAIT_MS });
      }
    } finally {
      jit.close();
      stream.close();
    }
  },
);

gpuTest("rk_echo_word echoes host writes through mapped memory", async () => {
  const { module } = gpu();
  const echo = module.getFunction("rk_echo_word");
  const OUT_WORD = 128 / 4; // its own 128-byte line
  const rounds = 5000;
  await withResident(256, ({ stream, memory }) => {
    const words = new Int32Array(memory.buffer);
    echo.launch({
      grid: 1,
      block: 1,
      stream,
      args: [
        { type: "ptr", value: memory.deviceAddress },
        { type: "ptr", value: memory.deviceAddress + BigInt(OUT_WORD * 4) },
      ],
    });
    const samples: number[] = [];
    for (let seq = 1; seq <= rounds; seq++) {
      const start = process.hrtime.bigint();
      Atomics.store(words, 0, seq);
      spinUntil(() => Atomics.load(words, OUT_WORD) === seq, `echo of ${seq}`);
      samples.push(Number(process.hrtime.bigint() - start) / 1000);
    }
    samples.sort((a, b) => a - b);
    console.log(
      `rk_echo_word round trip over ${rounds}: p50 ${
        percentile(samples, 0.5).toFixed(2)
      } µs, ` +
        `p99 ${percentile(samples, 0.99).toFixed(2)} µs, min ${
          samples[0].toFixed(2)
        } µs`,
    );
    Atomics.store(words, 0, -1);
    spinUntil(
      () => Atomics.load(words, OUT_WORD) === -1,
      "echo of the stop word",
    );
  }, (memory) => {
    if (memory.closed) return;
    Atomics.store(new Int32Array(memory.buffer), 0, -1);
  });
});

// ---------------------------------------------------------------------------
// rk_echo_queue over the shared layout
// ---------------------------------------------------------------------------

const CB = CONTROL_BLOCK.fields;
const QH = QUEUE_HEADER.fields;
const EV = ENVELOPE.fields;
const SLOT = 64;
const TYPE_ID = 0x4543484f; // "ECHO"

/** Control block at 0, H2K ring at 512, K2H ring after it, each `capacity` slots of 64 B. */
function queueLayout(capacity: number) {
  const ring = QUEUE_HEADER.size + capacity * SLOT;
  return { control: 0, h2k: 512, k2h: 512 + ring, byteLength: 512 + 2 * ring };
}

interface QueueRig {
  words: Int32Array;
  view: DataView;
  layout: ReturnType<typeof queueLayout>;
  capacity: number;
}

function initQueues(
  memory: MappedHostMemory,
  capacity: number,
  magic = QUEUE_MAGIC,
): QueueRig {
  const layout = queueLayout(capacity);
  const view = new DataView(memory.buffer);
  for (const base of [layout.h2k, layout.k2h]) {
    view.setUint32(base + QH.capacity.offset, capacity, true);
    view.setUint32(base + QH.slotSize.offset, SLOT, true);
    view.setUint32(base + QH.kind.offset, QueueKind.Spsc, true);
    view.setUint32(base + QH.magic.offset, magic, true);
  }
  view.setUint32(layout.control + CB.abiVersion.offset, ABI_VERSION, true);
  view.setUint32(layout.control + CB.actorId.offset, 7, true);
  return { words: new Int32Array(memory.buffer), view, layout, capacity };
}

const word = (byteOffset: number) => byteOffset / 4;

function controlWord(rig: QueueRig, field: keyof typeof CB): number {
  return Atomics.load(rig.words, word(rig.layout.control + CB[field].offset));
}

function setControl(
  rig: QueueRig,
  field: keyof typeof CB,
  value: number,
): void {
  Atomics.store(rig.words, word(rig.layout.control + CB[field].offset), value);
}

function launchEcho(
  memory: MappedHostMemory,
  stream: CudaStream,
  rig: QueueRig,
): void {
  const at = (offset: number) => ({
    type: "ptr" as const,
    value: memory.deviceAddress + BigInt(offset),
  });
  gpu().module.getFunction("rk_echo_queue").launch({
    grid: 1,
    block: 256,
    stream,
    args: [at(rig.layout.control), at(rig.layout.h2k), at(rig.layout.k2h)],
  });
}

/** Writes messages [first, first + n) into the H2K ring (envelope + payload in place), then publishes. */
function produce(rig: QueueRig, first: number, n: number): void {
  const { view, words, layout, capacity } = rig;
  const tail = Atomics.load(words, word(layout.h2k + QH.tail.offset));
  for (let k = 0; k < n; k++) {
    const seq = first + k;
    const slot = layout.h2k + QUEUE_HEADER.size +
      ((tail + k) & (capacity - 1)) * SLOT;
    view.setUint32(slot + EV.typeId.offset, TYPE_ID, true);
    view.setUint16(slot + EV.payloadLength.offset, 32, true);
    view.setUint16(slot + EV.flags.offset, 0, true);
    view.setBigUint64(slot + EV.correlationId.offset, BigInt(seq), true);
    view.setBigUint64(slot + EV.timestamp.offset, 0n, true);
    view.setUint32(slot + EV.sourceActor.offset, 1, true);
    view.setUint32(slot + EV.stamp.offset, 0, true);
    for (let w = 0; w < 8; w++) {
      view.setUint32(slot + ENVELOPE.size + w * 4, (seq * 8 + w) >>> 0, true);
    }
  }
  Atomics.store(words, word(layout.h2k + QH.tail.offset), (tail + n) | 0);
}

/** Free H2K slots as the producer sees them. */
function h2kFree(rig: QueueRig): number {
  const head = Atomics.load(rig.words, word(rig.layout.h2k + QH.head.offset));
  const tail = Atomics.load(rig.words, word(rig.layout.h2k + QH.tail.offset));
  return rig.capacity - ((tail - head) >>> 0);
}

/** Takes every echoed message from the K2H ring, checks it is message `expected`, `expected + 1`, …; returns the count. */
function consume(rig: QueueRig, expected: number): number {
  const { view, words, layout, capacity } = rig;
  const head = Atomics.load(words, word(layout.k2h + QH.head.offset));
  const tail = Atomics.load(words, word(layout.k2h + QH.tail.offset));
  const n = (tail - head) >>> 0;
  assert.ok(n <= capacity, `K2H holds ${n} > capacity ${capacity}`);
  for (let k = 0; k < n; k++) {
    const seq = expected + k;
    const slot = layout.k2h + QUEUE_HEADER.size +
      ((head + k) & (capacity - 1)) * SLOT;
    assert.equal(view.getUint32(slot + EV.typeId.offset, true), TYPE_ID);
    assert.equal(view.getUint16(slot + EV.payloadLength.offset, true), 32);
    assert.equal(
      view.getBigUint64(slot + EV.correlationId.offset, true),
      BigInt(seq),
    );
    for (let w = 0; w < 8; w++) {
      assert.equal(
        view.getUint32(slot + ENVELOPE.size + w * 4, true),
        (seq * 8 + w) >>> 0,
        `message ${seq} word ${w}`,
      );
    }
  }
  Atomics.store(words, word(layout.k2h + QH.head.offset), (head + n) | 0);
  return n;
}

function stopEcho(memory: MappedHostMemory, abort: boolean): void {
  if (memory.closed) return;
  const words = new Int32Array(memory.buffer);
  if (abort) Atomics.store(words, word(CB.shouldAbort.offset), 1);
  Atomics.store(words, word(CB.shouldTerminate.offset), 1);
}

gpuTest(
  "rk_echo_queue echoes N messages in order and terminates through the control block",
  async () => {
    const capacity = 1024;
    const total = 100_000; // many laps of both rings
    await withResident(
      queueLayout(capacity).byteLength,
      async ({ stream, memory }) => {
        const rig = initQueues(memory, capacity);
        setControl(rig, "isActive", 1);
        launchEcho(memory, stream, rig);
        let sent = 0;
        let received = 0;
        const deadline = performance.now() + 30_000;
        const start = process.hrtime.bigint();
        while (received < total) {
          const room = Math.min(h2kFree(rig), total - sent, 256);
          if (room > 0) {
            produce(rig, sent, room);
            sent += room;
          }
          received += consume(rig, received);
          if (performance.now() > deadline) {
            throw new TimeoutError(
              `echo of ${total} messages (got ${received})`,
              30_000,
            );
          }
        }
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        console.log(
          `rk_echo_queue: ${total} messages echoed in ${
            (seconds * 1000).toFixed(1)
          } ms`,
        );
        await pollUntil(
          () =>
            rig.view.getBigInt64(
              rig.layout.control + CB.messagesProcessed.offset,
              true,
            ) === BigInt(total),
          { timeoutMs: WAIT_MS, what: "messages_processed" },
        );
        assert.ok(
          rig.view.getBigInt64(
            rig.layout.control + CB.lastActivityTicks.offset,
            true,
          ) > 0n,
        );
        assert.equal(
          controlWord(rig, "hasTerminated"),
          TerminationState.Running,
        );

        setControl(rig, "shouldTerminate", 1);
        await pollUntil(
          () =>
            controlWord(rig, "hasTerminated") === TerminationState.Terminated,
          {
            timeoutMs: WAIT_MS,
            what: "has_terminated",
          },
        );
        await stream.waitIdle({ timeoutMs: WAIT_MS });
        assert.equal(controlWord(rig, "errorsEncountered"), 0);
        assert.equal(controlWord(rig, "lastErrorCode"), 0);
        assert.equal(
          Atomics.load(rig.words, word(rig.layout.h2k + QH.head.offset)),
          total,
        );
        assert.equal(
          Atomics.load(rig.words, word(rig.layout.k2h + QH.tail.offset)),
          total,
        );
      },
      (memory) => stopEcho(memory, true),
    );
  },
);

gpuTest(
  "rk_echo_queue waits while inactive and drains its input before terminating",
  async () => {
    const capacity = 256;
    const pending = 200;
    await withResident(
      queueLayout(capacity).byteLength,
      async ({ stream, memory }) => {
        const rig = initQueues(memory, capacity);
        launchEcho(memory, stream, rig); // is_active = 0
        produce(rig, 0, pending);
        await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal(
          Atomics.load(rig.words, word(rig.layout.h2k + QH.head.offset)),
          0,
          "consumed while inactive",
        );
        setControl(rig, "shouldTerminate", 1); // terminate drains even when inactive
        await pollUntil(
          () =>
            controlWord(rig, "hasTerminated") === TerminationState.Terminated,
          {
            timeoutMs: WAIT_MS,
            what: "has_terminated",
          },
        );
        await stream.waitIdle({ timeoutMs: WAIT_MS });
        assert.equal(consume(rig, 0), pending);
        assert.equal(
          rig.view.getBigInt64(
            rig.layout.control + CB.messagesProcessed.offset,
            true,
          ),
          BigInt(pending),
        );
      },
      (memory) => stopEcho(memory, true),
    );
  },
);

gpuTest(
  "rk_echo_queue rejects a bad queue header and reports it in the control block",
  async () => {
    const capacity = 64;
    await withResident(
      queueLayout(capacity).byteLength,
      async ({ stream, memory }) => {
        const rig = initQueues(memory, capacity, 0xdeadbeef);
        setControl(rig, "isActive", 1);
        launchEcho(memory, stream, rig);
        await pollUntil(
          () =>
            controlWord(rig, "hasTerminated") === TerminationState.Terminated,
          {
            timeoutMs: WAIT_MS,
            what: "has_terminated",
          },
        );
        await stream.waitIdle({ timeoutMs: WAIT_MS });
        assert.equal(
          controlWord(rig, "lastErrorCode"),
          DEVICE_ERRORS.RK_ERROR_BAD_QUEUE_MAGIC,
        );
        assert.equal(controlWord(rig, "errorsEncountered"), 1);
      },
      (memory) => stopEcho(memory, true),
    );
  },
);
