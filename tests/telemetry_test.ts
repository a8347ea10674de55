import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  TELEMETRY_MIN_LATENCY_UNSET,
  TelemetryView,
} from "../src/telemetry.ts";
import { TELEMETRY_BUFFER } from "../src/layout.ts";
import { RingKernelError } from "../src/errors.ts";

const F = TELEMETRY_BUFFER.fields;
const SIZE = TELEMETRY_BUFFER.size;

/** Reads the raw fields with a DataView at the declared offsets. */
function raw(buffer: ArrayBufferLike, base: number) {
  const view = new DataView(buffer, base, SIZE);
  return {
    messagesProcessed: view.getBigUint64(F.messagesProcessed.offset, true),
    messagesDropped: view.getBigUint64(F.messagesDropped.offset, true),
    lastProcessedTimestamp: view.getBigInt64(
      F.lastProcessedTimestamp.offset,
      true,
    ),
    queueDepth: view.getInt32(F.queueDepth.offset, true),
    totalLatencyNanos: view.getBigUint64(F.totalLatencyNanos.offset, true),
    maxLatencyNanos: view.getBigUint64(F.maxLatencyNanos.offset, true),
    minLatencyNanos: view.getBigUint64(F.minLatencyNanos.offset, true),
    errorCode: view.getInt32(F.errorCode.offset, true),
  };
}

const fixedClock = () => 1_700_000_000_000_000_000n;

for (const kind of ["ArrayBuffer", "SharedArrayBuffer"] as const) {
  describe(`TelemetryView on a ${kind}`, () => {
    const make = (bytes: number) =>
      kind === "ArrayBuffer"
        ? new ArrayBuffer(bytes)
        : new SharedArrayBuffer(bytes);

    test("writes the declared fields at the declared offsets only", () => {
      const base = 128;
      const buffer = make(base + SIZE + 64);
      new Uint8Array(buffer).fill(0xab);
      const telemetry = new TelemetryView(buffer, {
        byteOffset: base,
        clock: fixedClock,
      });
      assert.equal(telemetry.buffer, buffer);
      assert.equal(telemetry.byteOffset, base);
      telemetry.reset();
      telemetry.recordProcessed(3, {
        totalLatencyNs: 3000,
        minLatencyNs: 500,
        maxLatencyNs: 2000,
      });
      telemetry.recordDropped(2);
      telemetry.setQueueDepth(17);
      telemetry.setErrorCode(-5);
      assert.deepEqual(raw(buffer, base), {
        messagesProcessed: 3n,
        messagesDropped: 2n,
        lastProcessedTimestamp: fixedClock(),
        queueDepth: 17,
        totalLatencyNanos: 3000n,
        maxLatencyNanos: 2000n,
        minLatencyNanos: 500n,
        errorCode: -5,
      });
      const bytes = new Uint8Array(buffer);
      for (let i = 0; i < bytes.length; i++) {
        if (i < base || i >= base + SIZE) {
          assert.equal(bytes[i], 0xab, `byte ${i} outside the block changed`);
        }
      }
    });

    test("reset zeroes the block and marks the minimum unset", () => {
      const buffer = make(SIZE);
      new Uint8Array(buffer).fill(0xff);
      const telemetry = new TelemetryView(buffer);
      telemetry.reset();
      const fields = raw(buffer, 0);
      assert.equal(fields.minLatencyNanos, TELEMETRY_MIN_LATENCY_UNSET);
      assert.equal(fields.messagesProcessed, 0n);
      assert.equal(fields.errorCode, 0);
      assert.deepEqual(telemetry.snapshot(), {
        messagesProcessed: 0,
        messagesDropped: 0,
        lastProcessedTimestamp: 0n,
        queueDepth: 0,
        totalLatencyNanos: 0,
        maxLatencyNanos: 0,
        minLatencyNanos: undefined,
        errorCode: 0,
      });
    });

    test("accumulates counts, latency sums and extremes", () => {
      let now = 10n;
      const telemetry = new TelemetryView(make(SIZE), { clock: () => now });
      telemetry.reset();
      telemetry.recordMessage(700);
      now = 20n;
      telemetry.recordProcessed(4, {
        totalLatencyNs: 2000,
        minLatencyNs: 100,
        maxLatencyNs: 900,
      });
      now = 30n;
      // Without min and max, the batch mean stands for both.
      telemetry.recordProcessed(2, { totalLatencyNs: 1000 });
      const snapshot = telemetry.snapshot();
      assert.equal(snapshot.messagesProcessed, 7);
      assert.equal(snapshot.totalLatencyNanos, 3700);
      assert.equal(snapshot.minLatencyNanos, 100);
      assert.equal(snapshot.maxLatencyNanos, 900);
      assert.equal(snapshot.lastProcessedTimestamp, 30n);
      telemetry.recordProcessed(1, { totalLatencyNs: 5, timestampNs: 99n });
      assert.equal(telemetry.snapshot().minLatencyNanos, 5);
      assert.equal(telemetry.snapshot().lastProcessedTimestamp, 99n);
      telemetry.recordProcessed(0, { totalLatencyNs: 1, timestampNs: 1n });
      assert.equal(telemetry.snapshot().messagesProcessed, 8);
      assert.equal(telemetry.snapshot().lastProcessedTimestamp, 99n);
    });

    test("counts without latencies leave the minimum unset", () => {
      const telemetry = new TelemetryView(make(SIZE), { clock: fixedClock });
      telemetry.reset();
      telemetry.recordProcessed(5);
      const snapshot = telemetry.snapshot();
      assert.equal(snapshot.messagesProcessed, 5);
      assert.equal(snapshot.minLatencyNanos, undefined);
      assert.equal(snapshot.maxLatencyNanos, 0);
      assert.equal(snapshot.totalLatencyNanos, 0);
      assert.equal(snapshot.lastProcessedTimestamp, fixedClock());
      telemetry.recordMessage(40);
      assert.equal(telemetry.snapshot().minLatencyNanos, 40);
    });

    test("a zeroed block that was never reset still records a correct minimum", () => {
      const telemetry = new TelemetryView(make(SIZE), { clock: fixedClock });
      assert.equal(telemetry.snapshot().minLatencyNanos, undefined);
      telemetry.recordMessage(250);
      telemetry.recordMessage(300);
      assert.equal(telemetry.snapshot().minLatencyNanos, 250);
      assert.equal(telemetry.snapshot().maxLatencyNanos, 300);
    });

    test("a new writer takes over the counts of the previous one", () => {
      const buffer = make(SIZE);
      const first = new TelemetryView(buffer, { clock: fixedClock });
      first.reset();
      first.recordProcessed(3, {
        totalLatencyNs: 300,
        minLatencyNs: 50,
        maxLatencyNs: 200,
      });
      first.recordDropped(1);
      const second = new TelemetryView(buffer, { clock: fixedClock });
      second.recordProcessed(2, {
        totalLatencyNs: 200,
        minLatencyNs: 60,
        maxLatencyNs: 140,
      });
      second.recordDropped(1);
      const snapshot = first.snapshot();
      assert.equal(snapshot.messagesProcessed, 5);
      assert.equal(snapshot.totalLatencyNanos, 500);
      assert.equal(snapshot.minLatencyNanos, 50);
      assert.equal(snapshot.maxLatencyNanos, 200);
      assert.equal(snapshot.messagesDropped, 2);
      second.recordMessage(10);
      assert.equal(first.snapshot().minLatencyNanos, 10);
    });

    test("the default clock gives nanoseconds since the epoch", () => {
      const telemetry = new TelemetryView(make(SIZE));
      const before = BigInt(Date.now() - 1000) * 1_000_000n;
      telemetry.recordProcessed(1);
      const after = BigInt(Date.now() + 1000) * 1_000_000n;
      const stamp = telemetry.snapshot().lastProcessedTimestamp;
      assert.ok(stamp >= before && stamp <= after, `timestamp ${stamp}`);
    });

    test("rejects bad input with typed errors and changes nothing", () => {
      const buffer = make(SIZE);
      const telemetry = new TelemetryView(buffer, { clock: fixedClock });
      telemetry.reset();
      telemetry.recordMessage(100);
      const before = raw(buffer, 0);
      const bad: Array<() => void> = [
        () => telemetry.recordProcessed(-1),
        () => telemetry.recordProcessed(1.5),
        () => telemetry.recordProcessed(NaN),
        () => telemetry.recordProcessed(1, { totalLatencyNs: -1 }),
        () => telemetry.recordProcessed(1, { totalLatencyNs: NaN }),
        () =>
          telemetry.recordProcessed(2, {
            totalLatencyNs: 10,
            minLatencyNs: -3,
          }),
        () =>
          telemetry.recordProcessed(2, {
            totalLatencyNs: 10,
            maxLatencyNs: Infinity,
          }),
        () =>
          telemetry.recordProcessed(1, {
            timestampNs: 5 as unknown as bigint,
          }),
        () => telemetry.recordMessage(-1),
        () => telemetry.recordDropped(-1),
        () => telemetry.recordDropped(0.5),
        () => telemetry.setQueueDepth(-1),
        () => telemetry.setQueueDepth(2 ** 31),
        () => telemetry.setQueueDepth(1.5),
        () => telemetry.setErrorCode(2 ** 31),
        () => telemetry.setErrorCode(0.5),
      ];
      for (const call of bad) assert.throws(call, RingKernelError);
      assert.deepEqual(raw(buffer, 0), before);
    });
  });
}

describe("TelemetryView construction", () => {
  test("create makes a reset, shared block by default", () => {
    const shared = TelemetryView.create();
    assert.ok(shared.buffer instanceof SharedArrayBuffer);
    assert.equal(shared.buffer.byteLength, SIZE);
    assert.equal(
      raw(shared.buffer, 0).minLatencyNanos,
      TELEMETRY_MIN_LATENCY_UNSET,
    );
    const local = TelemetryView.create({ shared: false, clock: fixedClock });
    assert.ok(local.buffer instanceof ArrayBuffer);
    local.recordProcessed(1);
    assert.equal(local.snapshot().lastProcessedTimestamp, fixedClock());
  });

  test("rejects misaligned, out-of-bounds and non-buffer storage", () => {
    const buffer = new SharedArrayBuffer(4 * SIZE);
    for (const byteOffset of [8, 32, -64, 1.5, 3 * SIZE + 64]) {
      assert.throws(
        () => new TelemetryView(buffer, { byteOffset }),
        RingKernelError,
        `byteOffset ${byteOffset}`,
      );
    }
    assert.throws(
      () => new TelemetryView(new ArrayBuffer(SIZE - 8)),
      RingKernelError,
    );
    assert.throws(
      () => new TelemetryView(new Uint8Array(SIZE) as unknown as ArrayBuffer),
      RingKernelError,
    );
    assert.doesNotThrow(() =>
      new TelemetryView(buffer, { byteOffset: 3 * SIZE })
    );
  });
});

describe("TelemetryView across threads", () => {
  test("a reader never sees torn 64-bit values while a Worker writes", async () => {
    const moduleUrl = new URL("../src/telemetry.ts", import.meta.url).href;
    // Each message's latency has both 32-bit halves non-zero, so any torn read
    // of the total is not a multiple of it.
    const latency = 2 ** 32 + 1;
    const messages = 200_000;
    const source = `
      import { TelemetryView } from ${JSON.stringify(moduleUrl)};
      self.onmessage = (event) => {
        const { buffer, byteOffset, messages, latency } = event.data;
        const view = new TelemetryView(buffer, { byteOffset, clock: () => 1n });
        // Start writing only once the reader is polling (word 0 is the signal).
        const go = new Int32Array(buffer, 0, 1);
        self.postMessage("ready");
        if (Atomics.wait(go, 0, 0, 20000) === "timed-out") return;
        for (let i = 0; i < messages; i++) {
          view.recordProcessed(1, { totalLatencyNs: latency });
          view.setQueueDepth(messages - i - 1);
        }
        self.postMessage("done");
      };
    `;
    const url = URL.createObjectURL(
      new Blob([source], { type: "application/typescript" }),
    );
    const worker = new Worker(url, { type: "module" });
    const buffer = new SharedArrayBuffer(2 * SIZE);
    const reader = new TelemetryView(buffer, { byteOffset: SIZE });
    reader.reset();
    const messagesFromWorker: string[] = [];
    let failure: unknown;
    const arrived = (what: string, timeoutMs: number) =>
      new Promise<void>((resolve, reject) => {
        const deadline = Date.now() + timeoutMs;
        const poll = () => {
          if (failure !== undefined) return reject(failure);
          if (messagesFromWorker.includes(what)) return resolve();
          if (Date.now() > deadline) {
            return reject(new Error(`worker did not say "${what}" in time`));
          }
          setTimeout(poll, 5);
        };
        poll();
      });
    worker.onmessage = (event) => messagesFromWorker.push(event.data);
    worker.onerror = (event) => {
      event.preventDefault?.();
      failure = new Error(`worker failed: ${event.message}`);
    };
    try {
      worker.postMessage({ buffer, byteOffset: SIZE, messages, latency });
      await arrived("ready", 20_000);
      const go = new Int32Array(buffer, 0, 1);
      Atomics.store(go, 0, 1);
      Atomics.notify(go, 0);
      let lastProcessed = 0;
      let reads = 0;
      const deadline = Date.now() + 20_000;
      while (lastProcessed < messages && Date.now() < deadline) {
        const snapshot = reader.snapshot();
        reads++;
        assert.ok(
          snapshot.messagesProcessed >= lastProcessed,
          "went backwards",
        );
        assert.equal(snapshot.totalLatencyNanos % latency, 0, "torn total");
        if (snapshot.minLatencyNanos !== undefined) {
          assert.equal(snapshot.minLatencyNanos, latency, "torn minimum");
        }
        assert.ok(
          snapshot.maxLatencyNanos === 0 ||
            snapshot.maxLatencyNanos === latency,
          "torn maximum",
        );
        lastProcessed = snapshot.messagesProcessed;
      }
      await arrived("done", 20_000);
      const final = reader.snapshot();
      assert.equal(final.messagesProcessed, messages);
      assert.equal(final.totalLatencyNanos, messages * latency);
      assert.equal(final.queueDepth, 0);
      assert.equal(final.lastProcessedTimestamp, 1n);
      assert.ok(reads > 0);
    } finally {
      worker.terminate();
      URL.revokeObjectURL(url);
    }
  });
});
