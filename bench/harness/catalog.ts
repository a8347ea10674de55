/**
 * The end-to-end benchmark cases, by name: what each one measures (the label
 * every published figure carries), its unit, and the message format a child
 * process prints. Pure data, shared by the parent (which plans, aggregates
 * and reports) and the child (which measures).
 *
 * @module
 */

/** Names of the end-to-end cases. */
export type CaseName =
  | "actor-call"
  | "worker-postmessage"
  | "channel-worker"
  | "channel-local"
  | "sendbatch-sink"
  | "sendbatch-echo"
  | "pipeline-k2k"
  | "batch-encode"
  | "sustained"
  | "floor-pingpong"
  | "floor-ring"
  | "floor-echo";

/** What a case produces. */
export type CaseKind = "latency" | "throughput" | "sustained";

/** Description of one case. */
export interface CaseInfo {
  /** Its name (the child's `--case`). */
  readonly name: CaseName;
  /** Latency samples (µs per operation) or throughput samples (messages/s per round). */
  readonly kind: CaseKind;
  /** Unit of its samples. */
  readonly unit: "µs" | "msg/s";
  /** A short name for tables and chart legends. */
  readonly short: string;
  /** Exactly what is measured: the path one figure covers, from start to stop of the clock. */
  readonly measures: string;
  /** Whether the case takes `--batch`. */
  readonly batched: boolean;
}

/** Every case. */
export const CASES: Readonly<Record<CaseName, CaseInfo>> = Object.freeze({
  "actor-call": {
    name: "actor-call",
    kind: "latency",
    unit: "µs",
    short: "actor call()",
    measures:
      "round trip host → CPU actor (built-in echo, in its Worker) → host, through " +
      "`call()`: encode into the input ring, actor handles it, reply decoded from the output ring " +
      "and matched by correlation id",
    batched: false,
  },
  "worker-postmessage": {
    name: "worker-postmessage",
    kind: "latency",
    unit: "µs",
    short: "Worker postMessage",
    measures:
      "round trip main thread → Worker → main thread with `worker.postMessage` ping-pong " +
      "of the same message object (structured clone both ways)",
    batched: false,
  },
  "channel-worker": {
    name: "channel-worker",
    kind: "latency",
    unit: "µs",
    short: "MessageChannel ↔ Worker",
    measures:
      "round trip main thread → Worker → main thread over a `MessageChannel` whose " +
      "other port was transferred to the Worker (structured clone both ways)",
    batched: false,
  },
  "channel-local": {
    name: "channel-local",
    kind: "latency",
    unit: "µs",
    short: "MessageChannel, one thread",
    measures:
      "round trip through a `MessageChannel` whose two ports live on the same thread " +
      "(event-loop hops only, no thread crossing)",
    batched: false,
  },
  "sendbatch-sink": {
    name: "sendbatch-sink",
    kind: "throughput",
    unit: "msg/s",
    short: "sendBatch → actor (no reply)",
    measures:
      "throughput host → CPU actor: `sendBatch` of N messages at a time; the clock stops " +
      "when the actor has handled every message (its processed counter, read through " +
      "`k.metrics()`), no replies",
    batched: true,
  },
  "sendbatch-echo": {
    name: "sendbatch-echo",
    kind: "throughput",
    unit: "msg/s",
    short: "sendBatch → echo → host",
    measures:
      "throughput host → CPU echo actor → host: `sendBatch` of N messages, then all N " +
      "replies (`receiveMany()`, each call taking every reply ready) before the next " +
      "batch; the clock stops at the last reply",
    batched: true,
  },
  "pipeline-k2k": {
    name: "pipeline-k2k",
    kind: "throughput",
    unit: "msg/s",
    short: "sendBatch → 3-actor K2K pipeline",
    measures:
      "throughput host → CPU actor → CPU actor → CPU sink: `sendBatch` of N messages into " +
      "the first stage, each stage forwarding every message with `ctx.trySend` (`ctx.send` " +
      "when the next inbox is full); the clock stops when the sink has handled every " +
      "message (its processed counter), no replies",
    batched: true,
  },
  "batch-encode": {
    name: "batch-encode",
    kind: "throughput",
    unit: "msg/s",
    short: "host cost of a batch send",
    measures:
      "the host side of `sendBatch` alone, in one thread: `RingProducer.enqueueBatch` of " +
      "1024 echo messages (64-byte slots: envelope and payload encoded in place, one " +
      "publication) into an SPSC ring, whose consumer then releases them all at once; " +
      "1e9 ÷ the rate is the cost per message in ns",
    batched: false,
  },
  "sustained": {
    name: "sustained",
    kind: "sustained",
    unit: "msg/s",
    short: "sustained echo round trips",
    measures:
      "sustained round trips host → CPU echo actor → host for a fixed duration " +
      "(`sendBatch` of N, then every reply as in the sendBatch → echo case), counted per " +
      "one-second interval",
    batched: true,
  },
  "floor-pingpong": {
    name: "floor-pingpong",
    kind: "latency",
    unit: "µs",
    short: "floor: bare spin ping-pong",
    measures:
      "the runtime's floor under `call()`: round trip main thread → `node:worker_threads` Worker → " +
      "main thread, each side spinning on an Int32Array word of a SharedArrayBuffer with " +
      "`Atomics.load`/`Atomics.store` (no `Atomics.wait`, no library code)",
    batched: false,
  },
  "floor-ring": {
    name: "floor-ring",
    kind: "throughput",
    unit: "msg/s",
    short: "floor: bare SPSC ring",
    measures:
      "the runtime's floor under one-way sends: main thread → `node:worker_threads` Worker through a " +
      "bare SPSC ring of 64-byte slots in a SharedArrayBuffer (tail published and head released " +
      "every 64 messages, both sides spinning, no library code); the clock stops when the Worker " +
      "has released every message",
    batched: false,
  },
  "floor-echo": {
    name: "floor-echo",
    kind: "throughput",
    unit: "msg/s",
    short: "floor: bare two-ring echo",
    measures:
      "the runtime's floor under batched echo: N messages main thread → Worker through one bare " +
      "SPSC ring and all N back through another (64-byte slots, publish/release every 64 " +
      "messages and on flush, both sides spinning, no library code) before the next N",
    batched: true,
  },
});

/**
 * Fewest messages in a timed round of a floor: a bare ring moves tens of
 * millions of messages a second, so a shorter round would time little more
 * than the clock.
 */
export const FLOOR_MIN_MESSAGES = 1 << 18;

/** True when `name` is a case name. */
export function isCaseName(name: string): name is CaseName {
  return Object.hasOwn(CASES, name);
}

/** Message accounting read from `k.metrics()` at the end of a sustained run. */
export interface Accounting {
  /** Messages accepted into the actor's queues. */
  readonly sent: number;
  /** Messages the actor handled. */
  readonly processed: number;
  /** Messages dead-lettered. */
  readonly deadLettered: number;
  /** Messages neither, when read (0 after the final drain). */
  readonly inFlight: number;
  /** Replies the host received. */
  readonly received: number;
  /** sent − processed − deadLettered − inFlight: must be 0. */
  readonly unaccounted: number;
  /** Replies missing: processed − received; must be 0. */
  readonly lostReplies: number;
  /** True when nothing was lost. */
  readonly ok: boolean;
}

/** What a child prints (one line after {@linkcode CHILD_MARKER}). */
export interface ChildResult {
  /** The case that ran. */
  readonly case: CaseName;
  /** The runtime that ran it (`deno`, `bun`). */
  readonly runtime: string;
  /** The runtime's version. */
  readonly version: string;
  /** The batch size, for batched cases. */
  readonly batch?: number;
  /** Samples in the case's unit (µs per round trip, or messages/s per round or per second). */
  readonly samples: number[];
  /** Operations behind each sample: 1 for latency, the round size for throughput, 0 where it varies (sustained). */
  readonly opsPerSample: number;
  /** Warm-up operations done before the first sample. */
  readonly warmup: number;
  /** Message accounting (sustained runs). */
  readonly accounting?: Accounting;
  /** Length of each sustained interval, in seconds (the last may be shorter). */
  readonly intervalSeconds?: number[];
}

/** Prefix of the line holding a child's JSON result; everything else on stdout is ignored. */
export const CHILD_MARKER = "RINGKERNEL-BENCH-RESULT ";
