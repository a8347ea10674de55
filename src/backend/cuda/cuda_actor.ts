/**
 * The host side of one GPU actor: its memory (mapped control block,
 * telemetry and queues; device K2K inbox and state), its launches of a pool
 * kernel, and the watch over them (exit, dead letters, crashes).
 *
 * Lifecycle rules, from what a resident kernel allows:
 * - a launch goes on its own non-blocking stream; nothing here ever calls
 *   `cuCtxSynchronize`, `cuMemFree*` or a default-stream operation while the
 *   actor's kernel may run;
 * - the host learns that the actor runs from its first heartbeat, and that it
 *   stopped from `hasTerminated` (then from its stream going idle);
 * - a kernel cannot be killed: `kill()` asks it to abort and waits briefly;
 *   one that does not stop is abandoned, and its memory is kept until its
 *   stream is idle.
 *
 * @module
 */

import { delay } from "../../async.ts";
import { DEFAULT_MAX_SKEW_MS } from "../../hlc.ts";
import { ControlBlockView } from "../../control_block.ts";
import {
  InvalidStateError,
  RingKernelError,
  TimeoutError,
} from "../../errors.ts";
import {
  ABI_VERSION,
  CONTROL_BLOCK,
  ENVELOPE,
  TELEMETRY_BUFFER,
} from "../../layout.ts";
import type { MessageSchema } from "../../message.ts";
import {
  Ring,
  RING_HEADER_SIZE,
  type RingConsumer,
  type RingProducer,
} from "../../ring.ts";
import { TelemetryView } from "../../telemetry.ts";
import type {
  ActorHost,
  ActorHostEvents,
  ActorSpawnSpec,
  InFlightMessage,
} from "../backend.ts";
import type { CudaFunction, CudaStream } from "../../cuda/driver.ts";
import { CheckpointError } from "../../checkpoint.ts";
import type { RestoreSpec } from "../cpu/protocol.ts";
import {
  type GpuActorMemoryPlan,
  initialiseActorBlock,
  planGpuActorMemory,
  writeActorDescriptor,
} from "./actor_block.ts";
import type { ArenaBlock } from "./arena.ts";
import {
  type GpuActorImplementation,
  gpuHandlerOf,
  loadGpuActor,
} from "./gpu_actor.ts";
import {
  ACTOR_IO,
  ActorFlag,
  deadLetterDetailOf,
  deadLetterReasonOf,
  DeviceError,
  deviceErrorName,
  OUTBOX_DIRECT_FLAG,
} from "./pool_layout.ts";
import { nameHash } from "./route_table.ts";

/** What a GPU actor's host needs from its backend. */
export interface CudaActorServices {
  /** Allocates mapped host memory (no driver call unless the arena grows). */
  allocateMapped(byteLength: number): ArenaBlock;
  /** Allocates device memory (no driver call unless the arena grows). */
  allocateDevice(byteLength: number): ArenaBlock;
  /**
   * Gives blocks back once `stopped` returns true (at once when it already
   * does); a K2K inbox waits until no running actor may still hold its route.
   */
  release(
    blocks: readonly ArenaBlock[],
    stopped: () => boolean,
    k2k?: ArenaBlock,
  ): void;
  /** The function that runs an implementation, loading its module once. */
  functionFor(gpu: GpuActorImplementation): CudaFunction;
  /** Copies host bytes to device memory, ordered on `stream` (before the launch that follows). */
  upload(block: ArenaBlock, bytes: Uint8Array, stream: CudaStream): void;
  /**
   * Copies device memory to `target` (its length), waiting for the copy
   * alone: a stream of its own, never behind a resident kernel.
   */
  download(block: ArenaBlock, target: Uint8Array): void;
  /**
   * Host-mapped memory shared by the actors that name the same `key`
   * (zeroed at first, kept until the backend closes).
   */
  sharedMapped(key: object, byteLength: number): ArenaBlock;
  /** Device address of the route table. */
  readonly routeTable: bigint;
  /** Launches `hosts` as one pool and resolves once all run. */
  startHosts(hosts: readonly CudaActorHost[], timeoutMs: number): Promise<void>;
  /** Starts watching a running host (exit, dead letters). */
  watch(host: CudaActorHost): void;
  /** The host was disposed. */
  forget(host: CudaActorHost): void;
}

/** States of one launch of a host. */
type LaunchState = "starting" | "running" | "exited" | "abandoned";

/** One launch of a pool kernel, shared by the hosts it runs. */
export class PoolLaunch {
  /** Its stream. */
  readonly stream: CudaStream;
  /** Hosts whose blocks have not been seen to exit. */
  readonly members: Set<CudaActorHost>;
  /** The launch table of a pool of several (given back when idle). */
  table: ArenaBlock | undefined;
  #idle = false;

  /** @internal */
  constructor(
    stream: CudaStream,
    members: Iterable<CudaActorHost>,
    table?: ArenaBlock,
  ) {
    this.stream = stream;
    this.members = new Set(members);
    this.table = table;
  }

  /** Whether every block of the launch has finished (`cuStreamQuery`); sticky once true. */
  idle(): boolean {
    if (this.#idle) return true;
    this.#idle = this.stream.query();
    return this.#idle;
  }
}

/** Options the backend gives a host. */
export interface CudaActorHostInit {
  /** What to run. */
  readonly spec: ActorSpawnSpec;
  /** Where to report. */
  readonly events: ActorHostEvents;
  /** The backend's services. */
  readonly services: CudaActorServices;
}

/** What was resolved at the first start and is reused by restarts. */
interface Resolved {
  fn: CudaFunction;
  kind: number;
  input: MessageSchema;
  output: MessageSchema | undefined;
  stateBytes: number;
  config: Uint8Array;
  /** The bytes copied to the actor's device data before each launch. */
  data: Uint8Array | undefined;
  /** Whether the device data is part of a snapshot (`gpu.checkpointData`). */
  checkpointData: boolean;
  canSendK2k: boolean;
  /** The topics its device code publishes to, by their hash. */
  topics: ReadonlyMap<bigint, string>;
}

/** What a GPU actor's device code sent and published through the device API (cumulative). */
export interface DeviceSendCounters {
  /** `rk_send` calls that delivered. */
  readonly sent: number;
  /** `rk_publish` calls that reached the outbox. */
  readonly published: number;
  /** Sends and publications refused because the target queue (or the outbox) was full. */
  readonly full: number;
  /** Sends to a name without a route (and publications without an outbox). */
  readonly unknown: number;
  /** Sends and publications refused for their size. */
  readonly refused: number;
  /** Publications the host delivered to the broker. */
  readonly delivered: number;
}

const STAMP = ENVELOPE.fields.stamp.offset;
const CORRELATION = ENVELOPE.fields.correlationId.offset;
const FLAGS = ENVELOPE.fields.flags.offset;
const IO = ACTOR_IO.fields;
/** How long `kill()` waits for a kernel that was asked to abort. */
const KILL_WAIT_MS = 200;
/** How long an exited block may take before its stream reports idle. */
const RETIRE_GRACE_MS = 2_000;

/** Unix time in ns, as precisely as the host clock allows. */
export function hostTimeNs(): bigint {
  return BigInt(
    Math.round((performance.timeOrigin + performance.now()) * 1e3),
  ) * 1000n;
}

/** The host side of one GPU actor. See the module documentation. */
export class CudaActorHost implements ActorHost {
  /** The actor's name. */
  readonly name: string;
  /** The actor's id. */
  readonly id: number;
  /** Offsets within the mapped block. */
  readonly plan: GpuActorMemoryPlan;
  readonly #spec: ActorSpawnSpec;
  readonly #events: ActorHostEvents;
  readonly #services: CudaActorServices;
  readonly #mapped: ArenaBlock;
  readonly #k2k: ArenaBlock;
  #state: ArenaBlock | undefined;
  #data: ArenaBlock | undefined;
  #control: ControlBlockView;
  readonly #liveControl: ControlBlockView;
  #telemetry: TelemetryView;
  #inputRing: Ring;
  #input: RingProducer;
  #inboxRing: Ring;
  /** The device API's counters once the actor's memory is given back. */
  #finalSends: DeviceSendCounters | undefined;
  #outputRing: Ring;
  #output: RingConsumer;
  readonly #deadLetterRing: Ring;
  readonly #deadLetters: RingConsumer;
  readonly #outboxRing: Ring;
  readonly #outbox: RingConsumer;
  #delivered = 0;
  #resolved: Resolved | undefined;
  /** The snapshot the next start writes to the device (dropped once it ran). */
  #restore: RestoreSpec | undefined;
  #launch: PoolLaunch | undefined;
  #launchState: LaunchState | undefined;
  #exitSeenAt = 0;
  #errorsAtStart = 0;
  #starts = 0;
  #k2kReady = false;
  #disposed = false;

  /** Allocates and initialises the actor's memory; {@linkcode CudaActorHost.start} runs it. */
  constructor(init: CudaActorHostInit) {
    const { spec, events, services } = init;
    this.#spec = spec;
    this.#events = events;
    this.#services = services;
    this.name = spec.name;
    this.id = spec.id;
    this.#restore = spec.restore;
    this.plan = planGpuActorMemory(spec.queue);
    this.#mapped = services.allocateMapped(this.plan.byteLength);
    try {
      this.#k2k = services.allocateDevice(this.plan.k2kBytes);
    } catch (error) {
      services.release([this.#mapped], () => true);
      throw error;
    }
    const buffer = this.#mapped.chunk.buffer!;
    const views = initialiseActorBlock(
      buffer,
      this.#mapped.offset,
      this.plan,
      spec.id,
    );
    this.#control = views.control;
    this.#liveControl = views.control;
    this.#telemetry = views.telemetry;
    this.#inputRing = views.inputRing;
    this.#inboxRing = views.inboxRing;
    this.#outputRing = views.outputRing;
    this.#deadLetterRing = views.deadLetterRing;
    this.#input = this.#inputRing.producer();
    this.#output = this.#outputRing.consumer();
    this.#deadLetters = this.#deadLetterRing.consumer();
    this.#outboxRing = views.outboxRing;
    this.#outbox = this.#outboxRing.consumer();
  }

  /** The actor's control block. */
  get control(): ControlBlockView {
    return this.#control;
  }
  /** The actor's telemetry. */
  get telemetry(): TelemetryView {
    return this.#telemetry;
  }
  /** Host → actor queue. */
  get inputRing(): Ring {
    return this.#inputRing;
  }
  /** The host's producer on the input queue. */
  get input(): RingProducer {
    return this.#input;
  }
  /** Actor → host reply queue. */
  get outputRing(): Ring {
    return this.#outputRing;
  }
  /** The host's consumer of the reply queue. */
  get output(): RingConsumer {
    return this.#output;
  }
  /** Host inbox (topic deliveries; the GPU consumes it like its input). */
  get inboxRing(): Ring {
    return this.#inboxRing;
  }
  /** The dead-letter queue (the host consumes it). */
  get deadLetterRing(): Ring {
    return this.#deadLetterRing;
  }
  /** Device address of the K2K inbox (its route). */
  get k2kInbox(): bigint {
    return this.#k2k.deviceAddress;
  }
  /** Type id of the actor's input (0 before its first start): its route's. */
  get inputTypeId(): number {
    return this.#resolved?.input.typeId ?? 0;
  }
  /** Payload bytes of the actor's input (0 before its first start): its route's. */
  get inputSize(): number {
    return this.#resolved?.input.size ?? 0;
  }
  /** The outbox: what the device code publishes (the host drains it). */
  get outboxRing(): Ring {
    return this.#outboxRing;
  }
  /** What the device code sent and published through the device API, and what the host delivered. */
  deviceSends(): DeviceSendCounters {
    if (this.#finalSends !== undefined) return this.#finalSends;
    const view = new DataView(
      this.#mapped.chunk.buffer!,
      this.#mapped.offset + this.plan.io,
      ACTOR_IO.size,
    );
    const u64 = (field: keyof typeof IO) =>
      Number(view.getBigUint64(IO[field].offset, true));
    return {
      sent: u64("sent"),
      published: u64("published"),
      full: u64("full"),
      unknown: u64("unknown"),
      refused: u64("refused"),
      delivered: this.#delivered,
    };
  }
  /**
   * Device API calls refused (full target or outbox, unknown name, too big
   * or mismatched): `full + unknown + refused` of {@linkcode deviceSends}.
   */
  sendsRefused(): number {
    const sends = this.deviceSends();
    return sends.full + sends.unknown + sends.refused;
  }
  /** Whether this actor can send K2K (so it may hold routes to other inboxes). */
  get sendsK2k(): boolean {
    return this.#resolved?.canSendK2k ?? false;
  }
  /** Device address of the descriptor. */
  get descriptorAddress(): bigint {
    return this.#mapped.deviceAddress + BigInt(this.plan.descriptor);
  }
  /** Whether a launch of this actor may be running. */
  get running(): boolean {
    return this.#launchState === "starting" || this.#launchState === "running";
  }
  /** Whether a kernel may still touch this actor's memory (running, or abandoned and not yet stopped). */
  get kernelMayRun(): boolean {
    return !this.#stopped();
  }

  /** Times the actor was started. */
  get starts(): number {
    return this.#starts;
  }

  /**
   * Resolves what to run (first start only), through the actor's GPU side
   * alone: its handler, state size, device data and configuration.
   */
  async #resolve(): Promise<Resolved> {
    if (this.#resolved !== undefined) return this.#resolved;
    const spec = this.#spec;
    const { definition, gpu } = await loadGpuActor(
      spec.module,
      spec.exportName,
    );
    const fn = this.#services.functionFor(gpu);
    const handler = gpuHandlerOf(gpu);
    const stateBytes = gpu.stateBytes ?? 0;
    const data = gpu.deviceData?.(spec.config);
    let config: Uint8Array;
    try {
      if (stateBytes > 0) {
        this.#state = this.#services.allocateDevice(stateBytes);
      }
      if (data !== undefined && data.byteLength > 0) {
        this.#data = this.#services.allocateDevice(data.byteLength);
      }
      config = gpu.encodeConfig?.(spec.config, {
        dataAddress: this.#data?.deviceAddress ?? 0n,
        dataBytes: this.#data === undefined ? 0 : data!.byteLength,
        nameHash,
        sharedMapped: (key, byteLength) => {
          const block = this.#services.sharedMapped(key, byteLength);
          return {
            deviceAddress: block.deviceAddress,
            bytes: new Uint8Array(
              block.chunk.buffer!,
              block.offset,
              byteLength,
            ),
          };
        },
      }) ?? new Uint8Array(0);
    } catch (error) {
      // Nothing runs yet: give back what this attempt took.
      const taken = [this.#state, this.#data].filter((b) => b !== undefined);
      this.#state = this.#data = undefined;
      if (taken.length > 0) this.#services.release(taken, () => true);
      throw error;
    }
    this.#resolved = {
      fn,
      kind: handler.kind,
      input: definition.input,
      output: definition.output,
      stateBytes,
      config,
      data: this.#data === undefined ? undefined : data,
      checkpointData: gpu.checkpointData === true && this.#data !== undefined,
      canSendK2k: handler.sendsK2k,
      topics: new Map((gpu.topics ?? []).map((t) => [nameHash(t), t])),
    };
    return this.#resolved;
  }

  /**
   * @internal Prepares a launch: resolves the actor, writes its descriptor,
   * resets its flags, and queues its data upload on `stream`. Returns the
   * function to launch.
   */
  async prepareLaunch(stream: CudaStream): Promise<CudaFunction> {
    this.#assertUsable("start");
    if (this.running) {
      throw new RingKernelError(`actor "${this.name}" is already running`);
    }
    const previous = this.#launch;
    // A block of a pool may exit while the others run on: its own exit is enough.
    if (
      previous !== undefined && this.#liveControl.hasTerminated === 0 &&
      !previous.idle()
    ) {
      throw new RingKernelError(
        `actor "${this.name}": its previous launch has not stopped yet`,
      );
    }
    const r = await this.#resolve();
    const restore = this.#restore === undefined
      ? undefined
      : this.#checkedSnapshot(r, this.#restore.snapshot);
    const buffer = this.#mapped.chunk.buffer!;
    const base = this.#mapped.offset;
    const device = this.#mapped.deviceAddress;
    const at = (offset: number) => device + BigInt(offset);
    const plan = this.plan;
    writeActorDescriptor(new DataView(buffer), base + plan.descriptor, {
      control: at(plan.control),
      telemetry: at(plan.telemetry),
      input: at(plan.input),
      output: at(plan.output),
      inbox: at(plan.inbox),
      deadLetters: at(plan.deadLetters),
      k2kInbox: this.#k2k.deviceAddress,
      routes: this.#services.routeTable,
      state: this.#state?.deviceAddress ?? 0n,
      stateBytes: r.stateBytes,
      kind: r.kind,
      actorId: this.id,
      inputTypeId: r.input.typeId,
      inputSize: r.input.size,
      outputTypeId: r.output?.typeId ?? 0,
      outputSize: r.output?.size ?? 0,
      maxBatch: Math.max(0, Math.min(this.#spec.batchSize | 0, 0xffff_ffff)),
      hostTimeNs: hostTimeNs(),
      // A restored state is written below; the device init must not run.
      flags: (restore === undefined ? ActorFlag.InitState : 0) |
        (this.#k2kReady ? 0 : ActorFlag.InitK2k),
      abiVersion: ABI_VERSION,
      io: at(plan.io),
      config: r.config,
    });
    const io = new DataView(buffer, base + plan.io, ACTOR_IO.size);
    io.setBigUint64(IO.outbox.offset, at(plan.outbox), true);
    io.setUint32(
      IO.maxSkewMs.offset,
      this.#spec.maxSkewMs ?? DEFAULT_MAX_SKEW_MS,
      true,
    );
    new DataView(buffer).setBigUint64(
      base + plan.launch,
      this.descriptorAddress,
      true,
    );
    const control = this.#control;
    control.shouldAbort = false;
    control.shouldTerminate = false;
    control.hasTerminated = 0;
    control.lastActivityTicks = 0n;
    this.#errorsAtStart = control.errorsEncountered;
    if (restore !== undefined) {
      if (this.#state !== undefined) {
        this.#services.upload(this.#state, restore.state, stream);
      }
      if (this.#data !== undefined) {
        this.#services.upload(this.#data, restore.data ?? r.data!, stream);
      }
    } else if (r.data !== undefined && this.#data !== undefined) {
      this.#services.upload(this.#data, r.data, stream);
    }
    return r.fn;
  }

  /** @internal Device address of this host's launch word (a pool of one). */
  get launchWord(): bigint {
    return this.#mapped.deviceAddress + BigInt(this.plan.launch);
  }

  /** @internal Records the launch that runs this host. */
  attach(launch: PoolLaunch): void {
    this.#launch = launch;
    this.#launchState = "starting";
    this.#exitSeenAt = 0;
    this.#starts++;
  }

  /** @internal The launch failed before the kernel ran. */
  detach(): void {
    this.#launchState = undefined;
  }

  /**
   * @internal Waits until the launched actor runs (its first heartbeat), has
   * exited at once, or failed to start.
   */
  async awaitStarted(timeoutMs: number): Promise<void> {
    const launch = this.#launch!;
    const control = this.#control;
    const deadline = performance.now() + timeoutMs;
    let pause = 0;
    for (;;) {
      if (control.lastActivityTicks !== 0n) break;
      if (control.hasTerminated !== 0) {
        const code = control.lastErrorCode;
        this.#launchState = "exited";
        this.#drainDeadLetters();
        throw new RingKernelError(
          `actor "${this.name}" failed to start on the GPU: ${
            deviceErrorName(code)
          } (device error ${code})`,
        );
      }
      let idle = false;
      try {
        idle = launch.idle();
      } catch (error) {
        this.#launchState = "exited";
        throw error;
      }
      if (
        idle && control.lastActivityTicks === 0n && control.hasTerminated === 0
      ) {
        this.#launchState = "exited";
        throw new RingKernelError(
          `actor "${this.name}": its kernel ended without starting (${
            launch.stream.closed ? "stream closed" : "no heartbeat"
          })`,
        );
      }
      if (performance.now() >= deadline) {
        // It may still start later (the GPU may be full): make it stop then.
        control.shouldAbort = true;
        this.#launchState = "abandoned";
        throw new TimeoutError(
          `starting actor "${this.name}" on the GPU`,
          timeoutMs,
        );
      }
      await delay(pause);
      pause = Math.min(Math.max(pause * 2, 0.25), 5);
    }
    // The block initialises a new K2K inbox before its first heartbeat.
    this.#k2kReady = true;
    // Restored once: a restart runs the device init, unless the runtime
    // set a snapshot for it (restoreOnNextStart).
    this.#restore = undefined;
    this.#launchState = "running";
    this.#services.watch(this);
  }

  /**
   * A snapshot's parts, checked against what the actor keeps: its
   * `stateBytes`, then its device data when `gpu.checkpointData` says so.
   */
  #checkedSnapshot(
    r: Resolved,
    snapshot: Uint8Array,
  ): { state: Uint8Array; data: Uint8Array | undefined } {
    const dataBytes = r.checkpointData ? r.data!.byteLength : 0;
    if (snapshot.byteLength !== r.stateBytes + dataBytes) {
      throw new CheckpointError(
        `restore GPU actor "${this.name}": the snapshot has ${snapshot.byteLength} bytes, ` +
          `its state ${r.stateBytes}` +
          (r.checkpointData ? ` and its device data ${dataBytes}` : "") +
          " (a snapshot of another actor, or of another version of it?)",
      );
    }
    return {
      state: snapshot.subarray(0, r.stateBytes),
      data: r.checkpointData ? snapshot.subarray(r.stateBytes) : undefined,
    };
  }

  /** See {@linkcode ActorHost.restoreOnNextStart}. */
  restoreOnNextStart(restore: RestoreSpec | undefined): void {
    this.#restore = restore;
  }

  /**
   * The actor's snapshot (see {@linkcode ActorHost.snapshot}): its
   * `stateBytes` of device state, then its device data when the actor's
   * `gpu.checkpointData` says so, copied to the host. The runtime pauses
   * the actor first: its block confirmed the pause (after fencing what it
   * wrote), so it does not touch the state while it is copied. An actor
   * whose block has stopped gives the state it left.
   */
  snapshot(_timeoutMs: number): Promise<Uint8Array> {
    try {
      this.#assertUsable("snapshot");
      const r = this.#resolved;
      if (r === undefined) {
        throw new InvalidStateError(
          `snapshot of actor "${this.name}"`,
          "not started",
        );
      }
      const dataBytes = r.checkpointData ? r.data!.byteLength : 0;
      const bytes = new Uint8Array(r.stateBytes + dataBytes);
      if (this.#state !== undefined && r.stateBytes > 0) {
        this.#services.download(
          this.#state,
          bytes.subarray(0, r.stateBytes),
        );
      }
      if (dataBytes > 0) {
        this.#services.download(this.#data!, bytes.subarray(r.stateBytes));
      }
      return Promise.resolve(bytes);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Starts (or restarts) the actor in a pool of one; resolves once it runs. */
  start(timeoutMs: number): Promise<void> {
    return this.#services.startHosts([this], timeoutMs);
  }

  /** GPU actors poll their queues: there is nothing to wake. */
  wake(): void {}

  /**
   * Asks the actor to abort and waits briefly for it; a kernel that does not
   * stop is abandoned (its memory is kept until it does). GPU actors account
   * for every message themselves, so nothing is returned.
   */
  kill(): readonly InFlightMessage[] {
    if (!this.running) return [];
    this.#control.shouldAbort = true;
    const deadline = performance.now() + KILL_WAIT_MS;
    while (this.#control.hasTerminated === 0 && performance.now() < deadline) {
      // A short busy wait: kill is synchronous, and an abort takes microseconds.
    }
    this.#drainDeadLetters();
    this.#launchState = this.#control.hasTerminated !== 0
      ? "exited"
      : "abandoned";
    this.#launch?.members.delete(this);
    return [];
  }

  /**
   * @internal Called by the backend's watch: forwards dead letters, and
   * reports the exit once the actor's block has stopped. Returns false once
   * there is nothing left to watch.
   */
  poll(): boolean {
    if (this.#launchState !== "running") return false;
    this.#drainDeadLetters();
    this.#drainOutbox();
    const control = this.#control;
    let failure: unknown;
    let idle = false;
    try {
      idle = this.#launch!.idle();
    } catch (error) {
      failure = error;
    }
    if (failure !== undefined) {
      this.#launchState = "exited";
      this.#launch!.members.delete(this);
      const error = failure instanceof Error
        ? failure
        : new Error(String(failure));
      this.#events.onCrash({
        name: error.name,
        message: error.message,
        stack: error.stack,
      });
      this.#events.onExit("crashed");
      return false;
    }
    if (control.hasTerminated === 0) {
      if (idle) {
        // The kernel ended without saying so: treat it as a crash.
        this.#launchState = "exited";
        this.#launch!.members.delete(this);
        this.#events.onCrash({
          name: "DeviceActorError",
          message:
            `actor "${this.name}": its kernel ended without marking its exit`,
        });
        this.#events.onExit("crashed");
        return false;
      }
      return true;
    }
    // The block stored hasTerminated last; its stream may need a moment to retire.
    if (!idle && this.#launch!.members.size <= 1) {
      if (this.#exitSeenAt === 0) this.#exitSeenAt = performance.now();
      if (performance.now() - this.#exitSeenAt < RETIRE_GRACE_MS) return true;
    }
    this.#launchState = "exited";
    this.#launch!.members.delete(this);
    this.#drainDeadLetters();
    this.#drainOutbox();
    const failed = control.errorsEncountered !== this.#errorsAtStart &&
      control.lastErrorCode === DeviceError.HandlerFailed;
    if (failed) {
      this.#events.onCrash({
        name: "DeviceActorError",
        message:
          `actor "${this.name}": its handler failed (device error ${control.lastErrorCode}, ${
            deviceErrorName(control.lastErrorCode)
          })`,
      });
      this.#events.onExit("crashed");
    } else if (control.shouldAbort) {
      this.#events.onExit("aborted");
    } else {
      this.#events.onExit("terminated");
    }
    return false;
  }

  /** Forwards every dead letter the device queued. */
  #drainDeadLetters(): void {
    if (this.#disposed) return;
    const ring = this.#deadLetterRing;
    this.#deadLetters.dequeueBatch(ring.capacity, (view, offset) => {
      const slot = ring.bytes.slice(offset, offset + ring.slotSize);
      const code = view.getUint32(offset + STAMP, true);
      new DataView(slot.buffer).setUint32(STAMP, 0, true);
      const reason = deadLetterReasonOf(code);
      this.#events.onDeadLetter(
        reason,
        `on the GPU: ${deadLetterDetailOf(code)}`,
        slot,
        false,
      );
    });
  }

  /**
   * Delivers what the device code published: the envelope's correlation id
   * holds the topic's hash, which the actor's declared topics map back to
   * the topic; the runtime's broker fans the message out to the subscribers.
   */
  #drainOutbox(): void {
    if (this.#disposed) return;
    const ring = this.#outboxRing;
    const topics = this.#resolved?.topics;
    this.#outbox.dequeueBatch(ring.capacity, (_view, offset) => {
      const slot = ring.bytes.slice(offset, offset + ring.slotSize);
      const envelope = new DataView(slot.buffer);
      const hash = envelope.getBigUint64(CORRELATION, true);
      envelope.setBigUint64(CORRELATION, 0n, true);
      envelope.setUint32(STAMP, 0, true);
      const flags = envelope.getUint16(FLAGS, true);
      if ((flags & OUTBOX_DIRECT_FLAG) !== 0) {
        // rk_send to an actor the host serves: the hash names the target.
        envelope.setUint16(FLAGS, flags & ~OUTBOX_DIRECT_FLAG, true);
        if (this.#events.onDeviceSend !== undefined) {
          this.#events.onDeviceSend(hash, slot);
        } else {
          this.#events.onDeadLetter(
            "unknown-target",
            `on the GPU: a send to name hash 0x${
              hash.toString(16)
            }, which no host route serves`,
            slot,
            false,
          );
        }
        return;
      }
      const topic = topics?.get(hash);
      if (topic === undefined) {
        this.#events.onDeadLetter(
          "unknown-target",
          `on the GPU: a publication to topic hash 0x${
            hash.toString(16)
          }, not one of the actor's gpu.topics`,
          slot,
          false,
        );
        return;
      }
      this.#delivered++;
      this.#events.onPublish(topic, slot);
    });
  }

  /** Whether the actor's block can no longer touch its memory. */
  #stopped(): boolean {
    const launch = this.#launch;
    if (launch === undefined) return true;
    // hasTerminated is the block's last store to its memory.
    if (this.#liveControl.hasTerminated !== 0) return true;
    try {
      return launch.idle();
    } catch {
      return false;
    }
  }

  /**
   * Releases the actor's memory (once its kernel can no longer touch it).
   * Views stay readable afterwards: they switch to copies of the final
   * counters, so metrics of a terminated kernel still read.
   */
  dispose(): void {
    if (this.#disposed) return;
    if (this.running) this.kill();
    this.#drainDeadLetters();
    this.#drainOutbox();
    this.#snapshot();
    this.#disposed = true;
    const blocks = [this.#mapped];
    if (this.#state) blocks.push(this.#state);
    if (this.#data) blocks.push(this.#data);
    this.#services.release(blocks, () => this.#stopped(), this.#k2k);
    this.#services.forget(this);
  }

  /** Replaces the live views by copies of their final state. */
  #snapshot(): void {
    this.#finalSends = this.deviceSends();
    const buffer = this.#mapped.chunk.buffer!;
    const base = this.#mapped.offset;
    const control = new ArrayBuffer(CONTROL_BLOCK.size);
    new Uint8Array(control).set(
      new Uint8Array(buffer, base + this.plan.control, CONTROL_BLOCK.size),
    );
    const telemetry = new ArrayBuffer(TELEMETRY_BUFFER.size);
    new Uint8Array(telemetry).set(
      new Uint8Array(buffer, base + this.plan.telemetry, TELEMETRY_BUFFER.size),
    );
    this.#control = new ControlBlockView(control);
    this.#telemetry = new TelemetryView(telemetry);
    // Empty one-slot rings that keep each queue's release counter.
    const copy = (ring: Ring) =>
      Ring.create(new ArrayBuffer(RING_HEADER_SIZE + ring.slotSize), {
        capacity: 1,
        slotSize: ring.slotSize,
        kind: ring.kind,
        initialIndex: ring.stats().released,
      });
    this.#inputRing = copy(this.#inputRing);
    this.#inboxRing = copy(this.#inboxRing);
    this.#outputRing = copy(this.#outputRing);
    this.#input = this.#inputRing.producer();
    this.#output = this.#outputRing.consumer();
  }

  #assertUsable(operation: string): void {
    if (this.#disposed) {
      throw new InvalidStateError(
        operation,
        "disposed",
        `actor "${this.name}"`,
      );
    }
  }
}
