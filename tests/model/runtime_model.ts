/**
 * A model-based test of the public runtime API (fast-check `commands` and
 * `asyncModelRun`): random, partly concurrent sequences of launch, send,
 * trySend, sendBatch, call, receive, deactivate, activate, terminate (drain
 * and abort), publish/subscribe, crashing handlers, Workers that end
 * themselves and shutdown, run against
 * the CPU backend and a small reference model of what each must do.
 *
 * After every command, and at the end of each sequence, it checks that:
 * - every promise settled before its deadline;
 * - each call got its own reply (same sequence number) or a typed error;
 * - every failure is a `RingKernelError`;
 * - each kernel's accounting balances (`sent = processed + deadLettered +
 *   inFlight`), and replies a host has not read are neither lost nor doubled;
 * - after shutdown every kernel is terminated.
 *
 * That the process can exit afterwards (no Worker or timer left) is checked
 * by running a sample in a child process that must end by itself
 * (`tests/runtime_model_test.ts`).
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { RingKernelError } from "../../src/errors.ts";
import { EchoMessage } from "../../src/actors/schemas.ts";
import type { Kernel } from "../../src/kernel.ts";
import { RingKernel } from "../../src/runtime.ts";
import { COMMIT_GROUP } from "../../src/backend/cpu/actor_memory.ts";

/** How long any single operation may take before it counts as hung. */
const SETTLE_MS = 15_000;

const FLAKY = new URL("../fixtures/flaky_actor.ts", import.meta.url);
const EXITING = new URL("../fixtures/exiting_actor.ts", import.meta.url);

/** echo; flaky: throws on a negative value; exiting: ends its Worker on tag 1. */
type ActorKind = "echo" | "flaky" | "exiting";
type EchoValue = { seq: bigint; value: number; tag: number };

/** What the model knows of one kernel. */
interface ModelKernel {
  kind: ActorKind;
  state: "active" | "deactivated" | "terminated";
  /** Replies sent by `send`/`trySend`/`sendBatch` and not yet received, oldest first. */
  unread: bigint[];
}

/** The reference model: kernels by name, and what a topic subscriber saw. */
export interface RuntimeModel {
  kernels: Map<string, ModelKernel>;
  published: number;
  nextSeq: bigint;
}

/** The system under test. */
export interface RuntimeReal {
  rt: RingKernel;
  kernels: Map<string, Kernel>;
  received: number;
}

/** Awaits `promise`, failing the run if it does not settle in time. */
async function settles<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not settle within ${SETTLE_MS} ms`)),
      SETTLE_MS,
    );
  });
  try {
    return await Promise.race([promise, hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** Awaits a promise that must reject with a `RingKernelError`. */
async function rejectsTyped(promise: Promise<unknown>, what: string) {
  const outcome = await settles(
    promise.then(() => undefined, (error: unknown) => error),
    what,
  );
  assert.ok(
    outcome instanceof RingKernelError,
    `${what}: expected a RingKernelError, got ${String(outcome)}`,
  );
  return outcome;
}

function balanced(kernel: Kernel, what: string): void {
  const m = kernel.metrics();
  assert.equal(
    m.sent,
    m.processed + m.deadLettered + m.inFlight,
    `${what}: accounting of "${kernel.name}" does not balance: ${
      JSON.stringify({
        sent: m.sent,
        processed: m.processed,
        deadLettered: m.deadLettered,
        inFlight: m.inFlight,
      })
    }`,
  );
}

function live(model: RuntimeModel, name: string): ModelKernel | undefined {
  const k = model.kernels.get(name);
  return k !== undefined && k.state !== "terminated" ? k : undefined;
}

function message(model: RuntimeModel, value = 1, tag = 0): EchoValue {
  return { seq: model.nextSeq++, value, tag };
}

type Cmd = fc.AsyncCommand<RuntimeModel, RuntimeReal, false>;

class Launch implements Cmd {
  constructor(
    readonly name: string,
    readonly kind: ActorKind,
    readonly queueCapacity: number,
    readonly autoActivate: boolean,
  ) {}
  check = () => true;
  async run(model: RuntimeModel, real: RuntimeReal): Promise<void> {
    const launching = real.rt.launch(this.name, {
      actor: this.kind === "echo"
        ? "echo"
        : { module: this.kind === "flaky" ? FLAKY : EXITING },
      queueCapacity: this.queueCapacity,
      autoActivate: this.autoActivate,
      restart: {
        maxRestarts: 1_000_000,
        withinMs: 1,
        backoff: { initialMs: 0 },
      },
    });
    if (live(model, this.name) !== undefined) {
      await rejectsTyped(launching, `launch of a second "${this.name}"`);
      return;
    }
    const kernel = await settles(launching, `launch "${this.name}"`);
    real.kernels.set(this.name, kernel as Kernel);
    model.kernels.set(this.name, {
      kind: this.kind,
      state: this.autoActivate ? "active" : "deactivated",
      unread: [],
    });
  }
  toString = () =>
    `launch(${this.name}, ${this.kind}, ${this.queueCapacity}, ${this.autoActivate})`;
}

class Calls implements Cmd {
  constructor(readonly name: string, readonly count: number) {}
  check = (model: Readonly<RuntimeModel>) =>
    model.kernels.get(this.name)?.state === "active";
  async run(model: RuntimeModel, real: RuntimeReal): Promise<void> {
    const kernel = real.kernels.get(this.name)!;
    const messages = Array.from({ length: this.count }, () => message(model));
    // All at once: more calls than queue slots exercise backpressure.
    const replies = await settles(
      Promise.all(
        messages.map((m) =>
          kernel.call(m as never, { timeoutMs: SETTLE_MS - 1_000 })
        ),
      ),
      `${this.count} calls to "${this.name}"`,
    );
    replies.forEach((reply, i) => {
      const r = reply as unknown as EchoValue;
      assert.equal(r.seq, messages[i].seq, "a call got another call's reply");
    });
    balanced(kernel, this.toString());
  }
  toString = () => `calls(${this.name}, ${this.count})`;
}

/** A handler that throws (flaky), or one whose Worker ends itself (exiting). */
class Crash implements Cmd {
  constructor(readonly name: string) {}
  check = (model: Readonly<RuntimeModel>) => {
    const k = model.kernels.get(this.name);
    return k !== undefined && k.kind !== "echo" && k.state === "active";
  };
  async run(model: RuntimeModel, real: RuntimeReal): Promise<void> {
    const kernel = real.kernels.get(this.name)!;
    const k = model.kernels.get(this.name)!;
    const kind = k.kind;
    const fatal = kind === "flaky" ? message(model, -1) : message(model, 3, 1);
    const deadBefore = kernel.metrics().deadLettered;
    await rejectsTyped(
      kernel.call(fatal as never, { timeoutMs: SETTLE_MS - 1_000 }),
      `a crashing call to "${this.name}" (${kind})`,
    );
    if (kind === "exiting" && k.unread.length > 0) {
      // A Worker that ends itself loses the replies of the messages its open
      // commit group handled (docs/reliability.md, range commit): they are
      // dead-lettered, each once. What was committed before still arrives,
      // in order; a throwing handler (flaky) commits its group first and
      // loses nothing.
      await settles(
        (async () => {
          while (kernel.metrics().inFlight > 0) {
            await new Promise((resolve) => setTimeout(resolve, 1));
          }
        })(),
        `"${this.name}" settling its queue after the crash`,
      );
      const arrived = kernel.tryReceiveMany(1_000).map((reply) =>
        (reply as unknown as EchoValue).seq
      );
      let next = 0;
      for (const seq of arrived) {
        while (next < k.unread.length && k.unread[next] !== seq) next++;
        assert.ok(next < k.unread.length, "a reply out of order or doubled");
        next++;
      }
      const lost = k.unread.length - arrived.length;
      assert.ok(
        lost <= COMMIT_GROUP,
        `${lost} replies lost, more than a group`,
      );
      assert.equal(
        kernel.metrics().deadLettered - deadBefore,
        1 + lost,
        "every lost reply's message is dead-lettered once, with the fatal one",
      );
      k.unread = [];
    }
    // Restarted by its supervisor: it answers again.
    const m = message(model);
    const reply = await settles(
      kernel.call(m as never, { timeoutMs: SETTLE_MS - 1_000 }),
      `a call after a crash of "${this.name}"`,
    ) as unknown as EchoValue;
    assert.equal(reply.seq, m.seq);
    balanced(kernel, this.toString());
  }
  toString = () => `crash(${this.name})`;
}

class Sends implements Cmd {
  constructor(
    readonly name: string,
    readonly count: number,
    readonly how: "send" | "trySend" | "sendBatch",
  ) {}
  check = (model: Readonly<RuntimeModel>) => {
    const k = live(model as RuntimeModel, this.name);
    // Bounded so that unread replies never fill the rings in the model.
    return k !== undefined && k.unread.length + this.count <= 12;
  };
  async run(model: RuntimeModel, real: RuntimeReal): Promise<void> {
    const kernel = real.kernels.get(this.name)!;
    const k = model.kernels.get(this.name)!;
    const messages = Array.from({ length: this.count }, () => message(model));
    if (this.how === "trySend") {
      for (const m of messages) {
        if (kernel.trySend(m as never)) k.unread.push(m.seq);
      }
    } else if (this.how === "send") {
      for (const m of messages) {
        await settles(
          kernel.send(m as never, { timeoutMs: 5_000 }),
          `send to "${this.name}"`,
        );
        k.unread.push(m.seq);
      }
    } else {
      await settles(
        kernel.sendBatch(messages as never, { timeoutMs: 5_000 }),
        `sendBatch to "${this.name}"`,
      );
      k.unread.push(...messages.map((m) => m.seq));
    }
    balanced(kernel, this.toString());
  }
  toString = () => `${this.how}(${this.name}, ${this.count})`;
}

class Receive implements Cmd {
  constructor(readonly name: string, readonly count: number) {}
  check = (model: Readonly<RuntimeModel>) => {
    const k = model.kernels.get(this.name);
    return k?.state === "active" && k.unread.length > 0;
  };
  async run(model: RuntimeModel, real: RuntimeReal): Promise<void> {
    const kernel = real.kernels.get(this.name)!;
    const k = model.kernels.get(this.name)!;
    const n = Math.min(this.count, k.unread.length);
    for (let i = 0; i < n; i++) {
      const reply = await settles(
        kernel.receive({ timeoutMs: SETTLE_MS - 1_000 }),
        `receive from "${this.name}"`,
      ) as unknown as EchoValue;
      assert.equal(reply.seq, k.unread.shift(), "replies out of order or lost");
    }
  }
  toString = () => `receive(${this.name}, ${this.count})`;
}

class Transition implements Cmd {
  constructor(
    readonly name: string,
    readonly to: "activate" | "deactivate" | "terminate" | "abort",
  ) {}
  check = (model: Readonly<RuntimeModel>) => model.kernels.has(this.name);
  async run(model: RuntimeModel, real: RuntimeReal): Promise<void> {
    const kernel = real.kernels.get(this.name)!;
    const k = model.kernels.get(this.name)!;
    const what = `${this.to} "${this.name}" (${k.state})`;
    const allowed = this.to === "activate"
      ? k.state === "deactivated"
      : this.to === "deactivate"
      ? k.state === "active"
      : k.state !== "terminated";
    const op = this.to === "activate"
      ? kernel.activate()
      : this.to === "deactivate"
      ? kernel.deactivate({ timeoutMs: 5_000 })
      : kernel.terminate({ abort: this.to === "abort", timeoutMs: 5_000 });
    if (!allowed) {
      await rejectsTyped(op, what);
      return;
    }
    await settles(op, what);
    if (this.to === "activate") k.state = "active";
    else if (this.to === "deactivate") k.state = "deactivated";
    else {
      k.state = "terminated";
      k.unread = [];
      assert.equal(kernel.state, "terminated", what);
      balanced(kernel, what);
      assert.equal(kernel.metrics().inFlight, 0, `${what}: messages left`);
    }
  }
  toString = () => `${this.to}(${this.name})`;
}

class Publish implements Cmd {
  constructor(readonly count: number) {}
  check = () => true;
  async run(model: RuntimeModel, real: RuntimeReal): Promise<void> {
    for (let i = 0; i < this.count; i++) {
      const reached = real.rt.publish(
        "model/topic",
        message(model),
        { schema: EchoMessage },
      );
      assert.equal(reached, 1, "the host subscription was not reached");
    }
    model.published += this.count;
    await settles(
      (async () => {
        while (real.received < model.published) {
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      })(),
      "topic delivery",
    );
    assert.equal(real.received, model.published);
  }
  toString = () => `publish(${this.count})`;
}

/** The command generators, over a few kernel names. */
export function runtimeCommands(maxCommands: number) {
  const name = fc.constantFrom("a", "b");
  const launch = fc.tuple(
    name,
    fc.constantFrom<ActorKind>("echo", "flaky", "exiting"),
    fc.constantFrom(16, 64),
    fc.boolean(),
  ).map(([n, kind, capacity, auto]) => new Launch(n, kind, capacity, auto));
  const calls = fc.tuple(name, fc.integer({ min: 1, max: 200 })).map((
    [n, c],
  ) => new Calls(n, c));
  // Launches and calls listed twice: drawn twice as often.
  return fc.commands<RuntimeModel, RuntimeReal, false>([
    launch,
    launch,
    calls,
    calls,
    name.map((n) => new Crash(n)),
    fc.tuple(
      name,
      fc.integer({ min: 1, max: 6 }),
      fc.constantFrom<"send" | "trySend" | "sendBatch">(
        "send",
        "trySend",
        "sendBatch",
      ),
    ).map(([n, c, how]) => new Sends(n, c, how)),
    fc.tuple(name, fc.integer({ min: 1, max: 6 })).map(([n, c]) =>
      new Receive(n, c)
    ),
    fc.tuple(
      name,
      fc.constantFrom<Transition["to"]>(
        "activate",
        "deactivate",
        "terminate",
        "abort",
      ),
    ).map(([n, to]) => new Transition(n, to)),
    fc.integer({ min: 1, max: 5 }).map((c) => new Publish(c)),
  ], { maxCommands, size: "max" });
}

/** Options of {@linkcode checkRuntimeModel}. */
export interface ModelRunOptions {
  /** fast-check seed (fixed in CI). */
  readonly seed: number;
  /** Sequences to run. */
  readonly runs: number;
  /** Most commands per sequence. */
  readonly maxCommands: number;
}

/** Runs one sequence: a fresh runtime, the commands, the end checks, shutdown. */
async function runSequence(cmds: Iterable<Cmd>): Promise<void> {
  const rt = await RingKernel.create({ backend: "cpu" });
  const real: RuntimeReal = { rt, kernels: new Map(), received: 0 };
  const subscription = rt.subscribe("model/topic", () => real.received++);
  const model: RuntimeModel = {
    kernels: new Map(),
    published: 0,
    nextSeq: 1n,
  };
  try {
    await fc.asyncModelRun(() => ({ model, real }), cmds);
    for (const kernel of real.kernels.values()) {
      if (kernel.state !== "terminated") balanced(kernel, "end of sequence");
    }
  } finally {
    subscription.unsubscribe();
    await settles(rt.shutdown({ timeoutMs: 5_000 }), "shutdown");
  }
  for (const kernel of real.kernels.values()) {
    assert.equal(kernel.state, "terminated", `"${kernel.name}" after shutdown`);
    balanced(kernel, "after shutdown");
  }
}

/**
 * Checks the model: throws fast-check's report (seed, path, shrunk
 * counterexample) when a sequence breaks a property.
 */
export async function checkRuntimeModel(
  options: ModelRunOptions,
): Promise<void> {
  await fc.assert(
    fc.asyncProperty(runtimeCommands(options.maxCommands), runSequence),
    {
      seed: options.seed,
      numRuns: options.runs,
      endOnFailure: true,
      interruptAfterTimeLimit: undefined,
    },
  );
}
