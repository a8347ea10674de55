/**
 * The runtime: creates and supervises kernels (actors), routes K2K messages
 * and topics, and keeps the dead-letter queue.
 *
 * @module
 */

import { abortable, deadline } from "./async.ts";
import { availableParallelism } from "node:os";
import { type ActorModuleRef, loadActorDefinition } from "./actor.ts";
import type {
  AccumulatorAddFields,
  AccumulatorTotalFields,
  EchoFields,
  SaxpyRequestFields,
  SaxpyResultFields,
} from "./actors/schemas.ts";
import {
  BUILTIN_ACTORS,
  type BuiltinActorName,
  isBuiltinActor,
} from "./actors/builtins.ts";
import type {
  ActorHost,
  ActorHostEvents,
  Backend,
  BackendKind,
  CudaRuntimeOptions,
  GpuInfo,
  HostRoute,
} from "./backend/backend.ts";
import { createBackend } from "./backend/create.ts";
import { CpuActorHost } from "./backend/cpu/cpu_actor.ts";
import { CpuBackend } from "./backend/cpu/cpu_backend.ts";
import { gpuImplementationOf } from "./backend/cuda/gpu_actor.ts";
import { nameHash } from "./backend/cuda/route_table.ts";
import {
  type BackendRequest,
  chooseBackend,
  type CudaProbe,
} from "./backend/select.ts";
import {
  DeadLetterQueue,
  type DeadLetterReason,
  DEFAULT_DEAD_LETTER_CAPACITY,
} from "./dead_letter.ts";
import { ENVELOPE_SIZE, readEnvelope, writeEnvelopeFor } from "./envelope.ts";
import {
  BackendUnavailableError,
  InvalidMessageError,
  InvalidOptionError,
  InvalidStateError,
  QueueFullError,
  TimeoutError,
  UnknownActorError,
} from "./errors.ts";
import { DEFAULT_MAX_SKEW_MS, HybridClock } from "./hlc.ts";
import {
  createKernel,
  type Kernel,
  kernelInternals,
  type KernelMetrics,
} from "./kernel.ts";
import {
  type DecodedMessage,
  type FieldsSpec,
  type MessageSchema,
  type MessageValue,
  SchemaRegistry,
} from "./message.ts";
import {
  PubSub,
  type Subscription,
  subscription,
  type TopicSubscription,
} from "./pubsub.ts";
import { ActorRegistry, validateActorName } from "./registry.ts";
import {
  type RestartPolicyOptions,
  Supervisor,
  type SupervisorDecision,
} from "./supervisor.ts";
import { SLOT_TIERS } from "./layout.ts";
import { HeartbeatWatchdog } from "./watchdog.ts";
import {
  BACKEND_REQUESTS,
  checkActor,
  checkBoolean,
  checkCapacity,
  checkChoice,
  checkConfig,
  checkCudaOptions,
  checkFunction,
  checkInteger,
  checkPositiveTimeoutMs,
  checkRestartPolicy,
  checkSlotSize,
  checkTimeoutMs,
  MAX_BATCH_SIZE,
  MAX_DEAD_LETTER_CAPACITY,
  MAX_IDLE_SPIN_MICROS,
} from "./runtime_options.ts";
import {
  checkOptionsObject,
  checkSignal,
  checkWaitOptions,
} from "./options.ts";
import { setInterval, setTimeout } from "node:timers";
import type { ClusterOptions } from "./cluster/options.ts";
import type {
  ClusterHost,
  ClusterMember,
  MigratingLaunch,
} from "./cluster/member.ts";
import {
  buildCheckpoint,
  checkCheckpointPolicy,
  type CheckedCheckpointPolicy,
  type CheckpointBase,
  type CheckpointInfo,
  CheckpointNotFoundError,
  type CheckpointOptions,
  type CheckpointPolicy,
  checkRestoreFrom,
  decodeCheckpoint,
  isCheckpointStore,
  loadCheckpoint,
  type LoadedCheckpoint,
  MemoryCheckpointStore,
  type RestoreFrom,
} from "./checkpoint.ts";
import type { RestoreSpec } from "./backend/cpu/protocol.ts";

/** How often a CPU actor's send through the host looks for room again, in ms. */
const HOST_SEND_POLL_MS = 1;

/** Options of {@linkcode RingKernel.create}. */
export interface RingKernelOptions {
  /** `"auto"` (default: CUDA when usable, else CPU), `"cpu"` or `"cuda"`. */
  backend?: BackendRequest;
  /** Restart policy of every kernel without its own. */
  restart?: RestartPolicyOptions;
  /** How many dead letters to keep (older ones are counted, then evicted). Default 1024. */
  deadLetterCapacity?: number;
  /** Receives crash, restart and give-up events. */
  onEvent?: (event: RuntimeEvent) => void;
  /**
   * Report a kernel whose heartbeat has not moved for this long (ms) with a
   * `heartbeat-stale` event (and `heartbeat-recovered` when it moves again);
   * `0` turns the watchdog off. Default 5000. Actor loops heartbeat at least
   * every 100 ms when idle and every 10 ms when busy, but not while a handler
   * runs: a handler that blocks longer than this is reported.
   */
  heartbeatDeadlineMs?: number;
  /** Do not print the one-line notice when `"auto"` falls back to the CPU. */
  quiet?: boolean;
  /**
   * The hybrid logical clocks' skew bound, in ms (an integer in 0..2^31-1,
   * default 60 000): a received envelope whose stamp leads the receiver's
   * physical time by more is refused — dead-lettered `invalid-message`
   * (`ClockSkewError`, on the device detail `clock-skew`) by the host, the
   * CPU actors and the GPU actors alike.
   */
  maxClockSkewMs?: number;
  /**
   * The CUDA backend's device and memory reserves (ignored on the CPU
   * backend). Reserves are made before any kernel runs and shared by the
   * process's CUDA runtimes; see {@linkcode CudaRuntimeOptions}.
   */
  cuda?: CudaRuntimeOptions;
  /**
   * Join a cluster of runtimes on NATS (`servers`, this node's `name`,
   * `tenant`, `auth`, `tls`; see `ringkernel-ts/cluster`). The cluster's
   * code and its NATS packages load only then. Reach the node as
   * {@linkcode RingKernel.cluster}.
   */
  cluster?: ClusterOptions;
}

/** One actor of {@linkcode RingKernel.launchGroup}. */
export interface LaunchGroupMember {
  /** Its name, as for {@linkcode RingKernel.launch}. */
  readonly name: string;
  /** Its options, as for {@linkcode RingKernel.launch}. */
  readonly options: LaunchOptions;
}

/** Options of {@linkcode RingKernel.launch}. */
export interface LaunchOptions {
  /**
   * The actor: a built-in's name (`"echo"`, `"accumulator"`, `"saxpy"`,
   * `"forwarder"`), or the module exporting a `defineActor` result.
   */
  actor: BuiltinActorName | ActorModuleRef;
  /** Slots of the input queue (power of two; default 1024). */
  queueCapacity?: number;
  /** Slots of the reply queue (power of two; default `queueCapacity`). */
  outputCapacity?: number;
  /** Bytes per slot: 64, 256, 1024 or 4096 (default: the smallest that fits the schemas). */
  slotSize?: number;
  /** Activate at launch (default true); otherwise call `activate()`. */
  autoActivate?: boolean;
  /** Configuration passed to the actor's `init` (structured-cloned). */
  config?: unknown;
  /** This kernel's restart policy. */
  restart?: RestartPolicyOptions;
  /**
   * How long an idle actor spins before sleeping, in µs. Default: 100 where
   * the process may use more than one CPU, else 0 (on one CPU a spinning
   * actor only delays the thread that would give it work).
   */
  idleSpinMicros?: number;
  /** Most messages handled per queue per loop turn (default 256). */
  batchSize?: number;
  /**
   * How long the actor may take to start, in ms, at launch and at each
   * restart: a positive number (default 10 000). A start that takes longer
   * fails with {@linkcode TimeoutError}.
   */
  timeoutMs?: number;
  /**
   * Aborting cancels the launch: it rejects with `signal.reason` once the
   * step under way has ended (loading the actor's module, or starting it,
   * at most `timeoutMs`), leaving nothing behind (at once, starting nothing,
   * when it has already aborted).
   */
  signal?: AbortSignal;
  /**
   * The heap limit of the actor's thread in MiB (CPU backend, Deno only;
   * default: the engine's). An actor that outgrows it crashes and is
   * restarted per its policy, instead of taking the process down. Bun has
   * no per-thread limit and ignores it; see docs/reliability.md.
   */
  maxHeapMb?: number;
  /**
   * Serve the actor under its name to every node of the cluster (default
   * false; needs a runtime created with `cluster`). A launch whose name
   * another node serves already fails with `InvalidStateError`.
   */
  public?: boolean;
  /**
   * Where the actor runs: `"auto"` (default: on the GPU when its definition
   * has a GPU side — `defineGpuActor` — and this runtime has the CUDA
   * backend, else on the CPU), `"gpu"` (a `BackendUnavailableError` without
   * CUDA), or `"cpu"`. A runtime on CUDA runs CPU actors too, so one
   * pipeline can mix them; see the README's "One runtime, both backends".
   */
  placement?: Placement;
  /**
   * Restore the actor's state from a checkpoint (CPU actors with a
   * `restore` member; GPU actors, whose device state the host writes back):
   * a store (its latest checkpoint of this name), or `{ store, id }`. The
   * actor's `restore` (on the GPU: the write of its state) then runs
   * instead of `init`, and its checkpoints count on from the record's
   * sequence. Fails with the
   * checkpoint's typed errors (`CheckpointNotFoundError`,
   * `CheckpointCorruptError`, `CheckpointVersionError`).
   */
  restoreFrom?: RestoreFrom;
  /**
   * Keep checkpoints of the actor (CPU actors with `snapshot` and
   * `restore` members; GPU actors) in `checkpoint.store`: a restart after a crash then
   * restores the latest record of its name there (its `restore` runs
   * instead of `init`; the launch's `restoreFrom` record while the store
   * has none), and with `everyMessages` or `everyMs` the runtime takes
   * them by itself. What the actor handled after the latest checkpoint is
   * lost to its state at such a restart (its replies went out). A periodic
   * checkpoint that fails is reported as a `checkpoint-failed` event and
   * tried again at the next turn.
   */
  checkpoint?: CheckpointPolicy;
}

/** Options of {@linkcode RingKernel.prepare}. */
export interface PrepareOptions {
  /** The actor, as in {@linkcode LaunchOptions.actor}. */
  actor: BuiltinActorName | ActorModuleRef;
}

/** Options of {@linkcode RingKernel.shutdown}; checked like {@linkcode SendOptions}. */
export interface ShutdownOptions {
  /**
   * How long each kernel may take to drain its queue before it is killed,
   * in ms (default 10 000; 0 = kill at once, dead-lettering the queues).
   */
  timeoutMs?: number;
  /**
   * Aborting stops the wait: kernels still draining are killed at once, and
   * the promise rejects with `signal.reason` once the runtime is shut down
   * (at once, changing nothing, when it has already aborted). Launches in
   * flight are still waited for until their current step ends.
   */
  signal?: AbortSignal;
}

/** Options of {@linkcode RingKernel.publish}. */
export interface PublishOptions<F extends FieldsSpec = FieldsSpec> {
  /** The message's schema (registered with the runtime on first use). */
  schema: MessageSchema<F>;
}

/**
 * How an actor crashed, as {@linkcode RuntimeEvent}s report it: the error
 * thrown in the actor's thread (or why that thread died), copied across it.
 */
export interface ActorErrorInfo {
  /** The error's class name, e.g. `"TypeError"` (`"WorkerExited"` for a thread that ended itself). */
  readonly name: string;
  /** Its message. */
  readonly message: string;
  /** Its stack trace, when there is one. */
  readonly stack?: string;
}

/** Input and output field specs of each built-in actor, for typed kernels. */
export interface BuiltinKernelTypes {
  /** `echo`: replies with what it receives. */
  echo: [EchoFields, EchoFields];
  /** `accumulator`: adds values, replies with the running total. */
  accumulator: [AccumulatorAddFields, AccumulatorTotalFields];
  /** `saxpy`: replies with `a * x + y`. */
  saxpy: [SaxpyRequestFields, SaxpyResultFields];
  /** `forwarder`: forwards to `config.target`. */
  forwarder: [EchoFields, EchoFields];
}

/** Something the runtime reports: a crash and what the supervisor decided. */
export type RuntimeEvent =
  | {
    /** A kernel crashed. */
    readonly type: "crash";
    /** Its name. */
    readonly kernel: string;
    /** What it crashed with. */
    readonly error: ActorErrorInfo;
    /** What its supervisor decided. */
    readonly decision: SupervisorDecision;
  }
  | {
    /** A crashed kernel was restarted and runs again. */
    readonly type: "restart";
    /** Its name. */
    readonly kernel: string;
    /** Consecutive restart number. */
    readonly attempt: number;
    /**
     * The checkpoint its state was restored from (a launch with
     * `checkpoint`), or `undefined` when its `init` ran.
     */
    readonly restored?: {
      /** The record's id. */
      readonly checkpointId: string;
      /** Messages the actor had handled when it was taken. */
      readonly sequence: bigint;
    };
  }
  | {
    /** A checkpoint the launch's `checkpoint` policy takes failed (the actor runs on). */
    readonly type: "checkpoint-failed";
    /** Its name. */
    readonly kernel: string;
    /** Why. */
    readonly error: ActorErrorInfo;
  }
  | {
    /** A kernel's heartbeat stopped for longer than the deadline. */
    readonly type: "heartbeat-stale";
    /** Its name. */
    readonly kernel: string;
    /** How long its heartbeat has not moved, in ms. */
    readonly staleMs: number;
  }
  | {
    /** A stale kernel's heartbeat moved again. */
    readonly type: "heartbeat-recovered";
    /** Its name. */
    readonly kernel: string;
    /** How long it had stalled, in ms. */
    readonly stalledMs: number;
  }
  | {
    /** A kernel could not be restarted. */
    readonly type: "restart-failed";
    /** Its name. */
    readonly kernel: string;
    /** Why. */
    readonly error: ActorErrorInfo;
  }
  | {
    /**
     * A killed actor's thread still runs the actor's own code (a handler
     * stuck in a loop, under Deno, whose Worker termination cannot interrupt
     * it): it keeps a core busy and the process from exiting. Only ending
     * the process stops it (`Deno.exit()`).
     */
    readonly type: "stuck";
    /** Its name. */
    readonly kernel: string;
    /** The restart generation of the stuck loop. */
    readonly generation: number;
    /** How long after the kill it was still running, in ms. */
    readonly afterMs: number;
    /** The report, in words. */
    readonly message: string;
  };

/** A dead letter's message: the envelope fields and the payload, decoded when its schema is known. */
export interface UndeliveredMessage {
  /** Message type id. */
  readonly typeId: number;
  /** Correlation id (0n when none). */
  readonly correlationId: bigint;
  /** Sending actor id (0 = the host). */
  readonly sourceActor: number;
  /** The payload bytes. */
  readonly payload: Uint8Array;
  /** The decoded payload, when the type is known and decodes. */
  readonly value?: unknown;
}

/** Counters of a whole runtime; see {@linkcode RingKernel.metrics}. */
export interface RuntimeMetrics {
  /** The backend in use. */
  readonly backend: BackendKind;
  /** Each live kernel's metrics. */
  readonly kernels: readonly KernelMetrics[];
  /** Sums over live and terminated kernels. */
  readonly totals: {
    /** Messages accepted into actor queues. */
    readonly sent: number;
    /** Messages handled. */
    readonly processed: number;
    /** Messages dead-lettered instead. */
    readonly deadLettered: number;
    /** Messages neither yet. */
    readonly inFlight: number;
  };
  /** Dead letters by reason (all ever recorded, including evicted ones). */
  readonly deadLetters: Readonly<Record<DeadLetterReason, number>>;
}

/** A subscriber on the host: receives each matching message, decoded. */
export type TopicHandler = (message: unknown, topic: string) => void;

interface TopicMessage {
  slot: Uint8Array;
}

/**
 * The default idle spin of CPU actors, in µs, for a process that may use
 * `cpus` CPUs: a spin only pays when another CPU can give the actor work
 * meanwhile; on one CPU it delays the very thread that would.
 */
export function defaultIdleSpinMicros(
  cpus: number = availableParallelism(),
): number {
  return cpus > 1 ? 100 : 0;
}

const DEFAULT_IDLE_SPIN_MICROS = defaultIdleSpinMicros();

let fallbackNoticePrinted = false;

/** Default of {@linkcode RingKernelOptions.heartbeatDeadlineMs}. */
const DEFAULT_HEARTBEAT_DEADLINE_MS = 5_000;

/** Default of {@linkcode LaunchOptions.timeoutMs}. */
const DEFAULT_START_TIMEOUT_MS = 10_000;

/** Default of {@linkcode LaunchOptions.batchSize}. */
const DEFAULT_BATCH_SIZE = 256;

/** Default of {@linkcode LaunchOptions.queueCapacity}. */
const DEFAULT_QUEUE_CAPACITY = 1024;

/** Launch options once checked, defaults applied. */
interface CheckedLaunch {
  readonly actor: string | ActorModuleRef;
  readonly queueCapacity: number;
  readonly outputCapacity: number;
  readonly slotSize: unknown;
  readonly autoActivate: boolean;
  readonly config: unknown;
  readonly restart: RestartPolicyOptions | undefined;
  readonly idleSpinMicros: number;
  readonly batchSize: number;
  readonly startTimeoutMs: number;
  readonly maxHeapMb: number | undefined;
  readonly signal: AbortSignal | undefined;
  readonly public: boolean;
  readonly placement: Placement;
}

/** Where {@linkcode LaunchOptions.placement} runs an actor. */
export type Placement = "auto" | "gpu" | "cpu";

/** The choices of {@linkcode LaunchOptions.placement}. */
const PLACEMENTS = ["auto", "gpu", "cpu"] as const;

/** Checks every option of a launch (the slot size once the schemas are known). */
function checkLaunchOptions(options: unknown): CheckedLaunch {
  const o = checkOptionsObject<LaunchOptions>("options", options);
  const actor = checkActor(o.actor);
  const queueCapacity = checkCapacity(
    "queueCapacity",
    o.queueCapacity,
    DEFAULT_QUEUE_CAPACITY,
  );
  const outputCapacity = checkCapacity(
    "outputCapacity",
    o.outputCapacity,
    queueCapacity,
  );
  checkConfig(o.config);
  return {
    actor,
    queueCapacity,
    outputCapacity,
    slotSize: o.slotSize,
    autoActivate: checkBoolean("autoActivate", o.autoActivate, true),
    config: o.config,
    restart: checkRestartPolicy("restart", o.restart),
    idleSpinMicros: checkInteger("idleSpinMicros", o.idleSpinMicros, {
      min: 0,
      max: MAX_IDLE_SPIN_MICROS,
      fallback: DEFAULT_IDLE_SPIN_MICROS,
    }),
    batchSize: checkInteger("batchSize", o.batchSize, {
      min: 1,
      max: MAX_BATCH_SIZE,
      fallback: DEFAULT_BATCH_SIZE,
    }),
    startTimeoutMs: checkPositiveTimeoutMs(
      "timeoutMs",
      o.timeoutMs,
      DEFAULT_START_TIMEOUT_MS,
    ),
    maxHeapMb: o.maxHeapMb === undefined ? undefined : checkInteger(
      "maxHeapMb",
      o.maxHeapMb,
      { min: 16, max: 1 << 20, fallback: 0 },
    ),
    signal: checkSignal("signal", o.signal),
    public: checkBoolean("public", o.public, false),
    placement: checkChoice("placement", o.placement, PLACEMENTS, "auto"),
  };
}

/** Checks every option of `RingKernel.create`; returns them with defaults applied. */
function checkRuntimeOptions(options: unknown): RingKernelOptions {
  const o = checkOptionsObject<RingKernelOptions>("options", options);
  return {
    backend: checkChoice("backend", o.backend, BACKEND_REQUESTS, "auto"),
    restart: checkRestartPolicy("restart", o.restart),
    deadLetterCapacity: checkInteger(
      "deadLetterCapacity",
      o.deadLetterCapacity,
      {
        min: 0,
        max: MAX_DEAD_LETTER_CAPACITY,
        fallback: DEFAULT_DEAD_LETTER_CAPACITY,
      },
    ),
    onEvent: checkFunction("onEvent", o.onEvent),
    heartbeatDeadlineMs: checkTimeoutMs(
      "heartbeatDeadlineMs",
      o.heartbeatDeadlineMs,
      DEFAULT_HEARTBEAT_DEADLINE_MS,
    ),
    quiet: checkBoolean("quiet", o.quiet, false),
    maxClockSkewMs: checkInteger("maxClockSkewMs", o.maxClockSkewMs, {
      min: 0,
      max: 2 ** 31 - 1,
      fallback: DEFAULT_MAX_SKEW_MS,
    }),
    cluster: o.cluster === undefined
      ? undefined
      : checkOptionsObject<ClusterOptions>(
        "cluster",
        o.cluster,
      ) as ClusterOptions,
    cuda: checkCudaOptions(o.cuda),
  };
}

/**
 * A launch in flight. Shutdown cancels it and waits until it settles: it
 * checks for cancellation after each step (loading the module, starting the
 * actor, activating it) and then stops what it started. A step is waited for
 * rather than cut short, so a start leaves no Worker and no timer behind.
 */
interface PendingLaunch {
  /** Settles when the launch has succeeded or cleaned up after failing. */
  done: Promise<unknown>;
  /** Set by shutdown, or by the launch's signal. */
  cancelled: boolean;
  /** What the cancelled launch rejects with (default: shut down during launch). */
  reason?: unknown;
}

/** Refuses a required callback that is not a function. */
function requireFunction(option: string, value: unknown): void {
  if (typeof value !== "function") {
    throw new InvalidOptionError(option, value, "a function");
  }
}

/** What a cancelled launch rejects with. */
function cancelledLaunch(name: string, pending: PendingLaunch): unknown {
  return "reason" in pending ? pending.reason : new InvalidStateError(
    "launch",
    "shut down",
    `the runtime shut down while "${name}" was launching`,
  );
}

let joinCluster: (rt: RingKernel, options: ClusterOptions) => Promise<void>;

let construct: (
  backend: Backend,
  fallbackReason: string | undefined,
  options: RingKernelOptions,
) => RingKernel;

/** Creates a runtime with the CUDA probe `probe` (see {@linkcode RingKernel.create}). */
async function create(
  options: RingKernelOptions,
  probe: (() => Promise<CudaProbe>) | undefined,
): Promise<RingKernel> {
  options = checkRuntimeOptions(options);
  const choice = await chooseBackend(options.backend ?? "auto", probe);
  if (
    choice.fallbackReason !== undefined && !options.quiet &&
    !fallbackNoticePrinted
  ) {
    fallbackNoticePrinted = true;
    console.info(
      `ringkernel: using the CPU backend (${choice.fallbackReason})`,
    );
  }
  const rt = construct(
    await createBackend(choice.kind, options.cuda),
    choice.fallbackReason,
    options,
  );
  if (options.cluster !== undefined) await joinCluster(rt, options.cluster);
  return rt;
}

/**
 * Creates a runtime like {@linkcode RingKernel.create}, with `probe` in place
 * of the CUDA probe (tests: a machine without a GPU, or with one). Not
 * exported from `mod.ts`.
 */
export function createWithCudaProbe(
  options: RingKernelOptions,
  probe: () => Promise<CudaProbe>,
): Promise<RingKernel> {
  return create(options, probe);
}

/**
 * A ringkernel runtime. Create one with {@linkcode RingKernel.create}, launch
 * actors with {@linkcode RingKernel.launch}, and shut it down with
 * {@linkcode RingKernel.shutdown} (or `await using`).
 *
 * @example
 * ```ts
 * import { RingKernel } from "./runtime.ts";
 * await using rt = await RingKernel.create({ backend: "cpu" });
 * const echo = await rt.launch("echo", { actor: "echo" });
 * const reply = await echo.call({ seq: 1n, value: 2.5, tag: 7 });
 * ```
 */
export class RingKernel implements AsyncDisposable {
  /** The backend this runtime uses. */
  readonly backend: BackendKind;
  readonly #backend: Backend;
  /** The CPU backend: this runtime's own, or one beside CUDA for CPU actors. */
  readonly #cpuBackend: Backend;
  /** Why `"auto"` did not choose CUDA, when it did not. */
  readonly fallbackReason: string | undefined;
  readonly #kernels = new ActorRegistry<Kernel>();
  /** The CPU actors GPU actors may send to through the host, by name hash. */
  readonly #hostRouteNames = new Map<bigint, string>();
  readonly #deadLetters: DeadLetterQueue<UndeliveredMessage>;
  readonly #supervisor: Supervisor;
  readonly #broker: PubSub<TopicMessage>;
  readonly #schemas = new SchemaRegistry();
  readonly #clock: HybridClock;
  readonly #listeners = new Set<(event: RuntimeEvent) => void>();
  readonly #retired = { sent: 0, processed: 0, deadLettered: 0 };
  readonly #watchdog: HeartbeatWatchdog | undefined;
  /** Launches in flight, by name: the name is taken until they settle. */
  readonly #launching = new Map<string, PendingLaunch>();
  /** Each kernel's start deadline, for its restarts. */
  readonly #startTimeouts = new WeakMap<Kernel, number>();
  /** Topic subscriptions each kernel's actor made itself (`ctx.subscribe`), by filter. */
  readonly #actorSubscriptions = new WeakMap<
    Kernel,
    Map<string, TopicSubscription>
  >();
  #nextId = 1;
  #closed = false;
  #shutdown: Promise<void> | undefined;
  /** Aborted by a shutdown's signal: kernels still draining are killed. */
  readonly #shutdownCut = new AbortController();
  #cluster: ClusterMember | undefined;
  /** Each kernel's launch, for a migration. */
  readonly #launches = new WeakMap<Kernel, MigratingLaunch>();
  /** Messages each restored kernel had handled before this launch. */
  readonly #sequenceBase = new WeakMap<Kernel, bigint>();
  /** The checkpoint policy of each kernel launched with one, and its launch's record. */
  readonly #checkpointPolicies = new WeakMap<
    Kernel,
    { policy: CheckedCheckpointPolicy; launched: RestoreSpec | undefined }
  >();
  /** The pause and snapshot each kernel waits for (see `#exclusive`). */
  readonly #snapshotLocks = new WeakMap<Kernel, Promise<void>>();
  /** The record each store's next checkpoint of a name diffs against. */
  readonly #checkpointBases = new WeakMap<
    object,
    Map<string, CheckpointBase>
  >();

  static {
    construct = (backend, fallbackReason, options) =>
      new RingKernel(backend, fallbackReason, options);
    joinCluster = async (rt, options) => {
      const host: ClusterHost = {
        clock: rt.#clock,
        kernel: (name) => rt.#kernels.get(name),
        deliverTopic: (topic, slot) => rt.#broker.publish(topic, { slot }),
        deadLetters: rt.#deadLetters,
        pauseForMigration: (name, timeoutMs) =>
          rt.#pauseForMigration(name, timeoutMs),
        resumeAfterMigration: async (name) => {
          const kernel = rt.#kernels.get(name);
          if (kernel?.state === "deactivated") await kernel.activate();
        },
        adopt: (name, launch, checkpoint, timeoutMs) =>
          rt.#adopt(name, launch, checkpoint, timeoutMs),
      };
      try {
        const { ClusterNode } = await import("./cluster/node.ts");
        rt.#cluster = await ClusterNode.join(host, options);
      } catch (error) {
        await rt.shutdown({ timeoutMs: 0 });
        throw error;
      }
    };
  }

  /**
   * This runtime's node in its cluster (see {@linkcode RingKernelOptions.cluster}),
   * or `undefined` when it was created without one.
   */
  get cluster(): ClusterMember | undefined {
    return this.#cluster;
  }

  private constructor(
    backend: Backend,
    fallbackReason: string | undefined,
    options: RingKernelOptions,
  ) {
    this.backend = backend.kind;
    this.#backend = backend;
    this.#cpuBackend = backend.kind === "cpu" ? backend : new CpuBackend();
    this.fallbackReason = fallbackReason;
    this.#clock = new HybridClock({
      nodeId: 0,
      maxSkewMs: options.maxClockSkewMs,
    });
    this.#deadLetters = new DeadLetterQueue({
      capacity: options.deadLetterCapacity,
    });
    this.#supervisor = new Supervisor({ policy: options.restart });
    this.#broker = new PubSub<TopicMessage>({
      onError: (error, context) => {
        console.error(
          `ringkernel: subscriber of "${context.topic}" failed:`,
          error,
        );
      },
    });
    if (options.onEvent) this.#listeners.add(options.onEvent);
    const deadlineMs = options.heartbeatDeadlineMs ??
      DEFAULT_HEARTBEAT_DEADLINE_MS;
    if (deadlineMs > 0) {
      this.#watchdog = new HeartbeatWatchdog({
        deadlineMs,
        onStale: (e) =>
          this.#emit({
            type: "heartbeat-stale",
            kernel: e.kernel,
            staleMs: e.staleMs,
          }),
        onRecover: (e) =>
          this.#emit({
            type: "heartbeat-recovered",
            kernel: e.kernel,
            stalledMs: e.stalledMs,
          }),
      });
    }
  }

  /**
   * Creates a runtime on the requested backend. With `"auto"` it uses CUDA
   * when usable and otherwise the CPU backend, printing why once per process
   * (unless `quiet`); with `"cuda"` it throws
   * {@linkcode BackendUnavailableError} with the reason.
   */
  static create(options: RingKernelOptions = {}): Promise<RingKernel> {
    return create(options, undefined);
  }

  /**
   * Resolves an actor and loads what it needs ahead of its launch: on the
   * CUDA backend, the module of a GPU actor's kernel. Loading a module beside
   * a resident kernel could wait behind it forever, so the CUDA backend
   * refuses that with a `GpuResidencyError`: prepare every actor of your own
   * before the first actor starts (built-in actors need nothing).
   *
   * @throws {ActorModuleError} when the actor's module does not load.
   * @throws {GpuResidencyError} when a module would load beside resident kernels.
   */
  async prepare(options: PrepareOptions): Promise<void> {
    if (this.#closed) throw new InvalidStateError("prepare", "shut down");
    const actor = checkActor(
      checkOptionsObject<PrepareOptions>("options", options).actor,
    );
    const ref = typeof actor === "string" ? this.#builtin(actor) : actor;
    await loadActorDefinition(ref);
    await this.#backend.prepare?.({
      module: typeof ref.module === "string" ? ref.module : ref.module.href,
      exportName: ref.export ?? "default",
    });
  }

  /**
   * What the GPU runs and how — device, driver, module loading mode, resident
   * grids and blocks, block capacity, memory reserves — or `undefined` on the
   * CPU backend.
   */
  gpuInfo(): GpuInfo | undefined {
    return this.#backend.gpuInfo?.();
  }

  /**
   * Listens to the runtime's events (crashes, restarts, heartbeats, stuck
   * threads) until the returned subscription is unsubscribed or disposed.
   */
  onEvent(listener: (event: RuntimeEvent) => void): Subscription {
    requireFunction("listener", listener);
    // The same function twice listens twice.
    const entry = (event: RuntimeEvent) => listener(event);
    this.#listeners.add(entry);
    return subscription(() => this.#listeners.delete(entry));
  }

  #emit(event: RuntimeEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        console.error("ringkernel: event listener failed:", error);
      }
    }
  }

  /**
   * Launches an actor under `name` and resolves with its kernel once it runs
   * (active unless `autoActivate: false`). Rejects with
   * {@linkcode InvalidOptionError} for a bad option, with
   * {@linkcode InvalidStateError} when the name is taken or the runtime shut
   * down, with {@linkcode TimeoutError} when the actor does not start within
   * `timeoutMs`, and with `signal.reason` on abort; a launch that fails
   * leaves nothing behind.
   */
  launch<A extends BuiltinActorName>(
    name: string,
    options: LaunchOptions & { actor: A },
  ): Promise<Kernel<BuiltinKernelTypes[A][0], BuiltinKernelTypes[A][1]>>;
  /**
   * Launches an actor from its module; give its input and output field specs
   * as type arguments for typed messages.
   */
  launch<I extends FieldsSpec = FieldsSpec, O extends FieldsSpec = FieldsSpec>(
    name: string,
    options: LaunchOptions,
  ): Promise<Kernel<I, O>>;
  async launch(
    name: string,
    options: LaunchOptions,
  ): Promise<Kernel> {
    if (this.#closed) throw new InvalidStateError("launch", "shut down");
    validateActorName(name);
    const checked = checkLaunchOptions(options);
    if (checked.public && this.#cluster === undefined) {
      throw new InvalidOptionError(
        "public",
        true,
        "false in a runtime created without cluster",
      );
    }
    const restore = checkRestoreFrom(options.restoreFrom);
    const policy = checkCheckpointPolicy(options.checkpoint);
    const signal = checked.signal;
    if (signal?.aborted) throw signal.reason;
    if (this.#kernels.has(name)) {
      throw new InvalidStateError(
        `launch "${name}"`,
        "running",
        `a kernel named "${name}" is already running`,
      );
    }
    if (this.#launching.has(name)) {
      throw new InvalidStateError(
        `launch "${name}"`,
        "launching",
        `a kernel named "${name}" is already being launched`,
      );
    }
    // The name is taken from here until the launch settles, and shutdown
    // cancels the launch and waits for it: nothing it started outlives it.
    const pending: PendingLaunch = {
      done: Promise.resolve(),
      cancelled: false,
    };
    this.#launching.set(name, pending);
    const onAbort = () => {
      if (pending.cancelled) return;
      pending.cancelled = true;
      pending.reason = signal!.reason;
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = this.#launchAs(name, checked, pending, restore, policy);
    pending.done = done.catch(() => {});
    try {
      return await done;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#launching.delete(name);
    }
  }

  /**
   * Launches several actors together and resolves with their kernels, in
   * order. On the CUDA backend they start as ONE pool kernel, one block each
   * (so they must run the same kernel: built-in GPU actors share one, a
   * user's kernel hosts its own actors), admitted by occupancy as a whole;
   * after that each is an ordinary kernel (activate, deactivate, terminate,
   * supervision; a restart launches it alone). On the CPU backend a group is
   * its actors launched one by one. If one member fails to launch, none
   * stays: the others are aborted and the first failure rejects.
   */
  async launchGroup(
    members: readonly LaunchGroupMember[],
  ): Promise<Kernel[]> {
    if (!Array.isArray(members) || members.length === 0) {
      throw new InvalidOptionError(
        "members",
        members,
        "a non-empty array of { name, options }",
      );
    }
    const names = members.map((m) => m?.name);
    if (new Set(names).size !== names.length) {
      throw new InvalidOptionError("members", names, "distinct actor names");
    }
    for (const name of names) validateActorName(name);
    const group = this.#backend.openGroup?.(names);
    let first: { error: unknown } | undefined;
    try {
      const settled = await Promise.allSettled(
        members.map((m) =>
          this.launch(m.name, m.options).catch((error: unknown) => {
            first ??= { error };
            group?.cancel(error);
            throw error;
          })
        ),
      );
      if (first !== undefined) {
        await Promise.all(
          settled.map((r) =>
            r.status === "fulfilled"
              ? r.value.terminate({ abort: true }).catch(() => {})
              : undefined
          ),
        );
        throw first.error;
      }
      return settled.map((r) => (r as PromiseFulfilledResult<Kernel>).value);
    } finally {
      group?.close();
    }
  }

  async #launchAs(
    name: string,
    options: CheckedLaunch,
    pending: PendingLaunch,
    restoreFrom?: ReturnType<typeof checkRestoreFrom>,
    policy?: CheckedCheckpointPolicy,
  ): Promise<Kernel> {
    const ref = typeof options.actor === "string"
      ? this.#builtin(options.actor)
      : options.actor;
    const definition = await loadActorDefinition(ref);
    if (pending.cancelled) throw cancelledLaunch(name, pending);
    const restored = restoreFrom === undefined
      ? undefined
      : await loadCheckpoint(restoreFrom.store, name, restoreFrom.id);
    if (pending.cancelled) throw cancelledLaunch(name, pending);
    const schemas = [definition.input, ...(definition.accepts ?? [])];
    if (definition.output) schemas.push(definition.output);
    this.#checkSchemas(name, schemas);
    const need = ENVELOPE_SIZE + Math.max(0, ...schemas.map((s) => s.size));
    const slotSize = checkSlotSize(options.slotSize, need);
    if (slotSize === undefined) {
      throw new InvalidMessageError(
        `actor "${name}": its messages need ${need} bytes, more than the largest slot (${
          SLOT_TIERS[SLOT_TIERS.length - 1]
        })`,
      );
    }
    for (const schema of schemas) this.#schemas.register(schema);
    const id = this.#nextId++;
    // The kernel exists before its host, and the host's events need the kernel.
    const bound: { kernel?: Kernel } = {};
    const events: ActorHostEvents = {
      onDeadLetter: (reason, detail, slot, takenByHost) => {
        const kernel = bound.kernel;
        if (takenByHost && kernel) {
          kernelInternals(kernel).countHostDeadLetter();
        }
        this.#recordDeadLetter(name, reason, detail, slot);
        if (kernel) kernelInternals(kernel).onDeadLetter(reason, detail, slot);
      },
      onCrash: (error) => bound.kernel && this.#onCrash(bound.kernel, error),
      onExit: (reason) =>
        bound.kernel && kernelInternals(bound.kernel).onExit(reason),
      onPublish: (topic, slot) => this.#publishSlot(topic, slot),
      onReply: (slot) =>
        bound.kernel && kernelInternals(bound.kernel).deliverReply(slot),
      onDeviceSend: (target, slot) =>
        this.#deliverDeviceSend(name, target, slot),
      onStuck: (thread) => {
        // Unheard, it must still not pass silently.
        if (this.#listeners.size === 0) {
          console.warn(`ringkernel: ${thread.message}`);
        }
        this.#emit({
          type: "stuck",
          kernel: name,
          generation: thread.generation,
          afterMs: thread.afterMs,
          message: thread.message,
        });
      },
      onSubscription: (filter, subscribe) => {
        const kernel = bound.kernel;
        if (kernel === undefined) return;
        this.#onActorSubscription(kernel, filter, subscribe);
      },
      onRemoteSend: (target, slot, timeoutMs) => {
        // A local actor the Worker has no ring to (a GPU actor) first.
        const local = this.#kernels.get(target);
        if (local !== undefined) {
          return this.#sendThroughHost(local, slot, timeoutMs);
        }
        return this.#cluster === undefined
          ? Promise.reject(new UnknownActorError(target))
          : this.#cluster.forwardSend(target, slot, { timeoutMs });
      },
    };
    const backend = this.#placeOn(name, definition, options.placement);
    // A GPU actor's host snapshots and restores its device state itself;
    // a CPU actor's definition does it.
    if (
      backend.kind === "cpu" && restored !== undefined &&
      typeof definition.restore !== "function"
    ) {
      throw new InvalidStateError(
        `restore "${name}"`,
        "no restore",
        "its actor definition has no restore(snapshot, info) member",
      );
    }
    if (
      backend.kind === "cpu" && policy !== undefined &&
      (typeof definition.snapshot !== "function" ||
        typeof definition.restore !== "function")
    ) {
      throw new InvalidStateError(
        `keep checkpoints of "${name}"`,
        "no snapshot",
        "its actor definition needs snapshot(state) and restore(snapshot, info) members",
      );
    }
    const host = backend.spawn(
      {
        name,
        id,
        queue: {
          queueCapacity: options.queueCapacity,
          outputCapacity: options.outputCapacity,
          slotSize,
        },
        module: typeof ref.module === "string" ? ref.module : ref.module.href,
        exportName: ref.export ?? "default",
        config: options.config,
        restore: restored === undefined ? undefined : {
          snapshot: restored.snapshot,
          sequence: restored.record.sequence,
          checkpointId: restored.record.id,
        },
        idleSpinMicros: options.idleSpinMicros,
        batchSize: options.batchSize,
        maxHeapMb: options.maxHeapMb,
        maxSkewMs: this.#clock.maxSkewMs,
      },
      events,
    );
    let kernel: Kernel;
    try {
      kernel = createKernel({
        name,
        id,
        backend: backend.kind,
        definition: definition as never,
        host,
        services: {
          deadLetter: (k, reason, detail, slot) =>
            this.#recordDeadLetter(k.name, reason, detail, slot),
          terminated: (k) => this.#retire(k),
          clock: this.#clock,
        },
      });
      bound.kernel = kernel;
      this.#startTimeouts.set(kernel, options.startTimeoutMs);
      this.#supervisor.setPolicy(name, options.restart);
      host.control.isActive = options.autoActivate;
      await host.start(options.startTimeoutMs);
      if (pending.cancelled) throw cancelledLaunch(name, pending);
      if (options.autoActivate) await kernel.activate();
      if (pending.cancelled) throw cancelledLaunch(name, pending);
    } catch (error) {
      // A launch that fails or is cancelled leaves nothing behind.
      bound.kernel = undefined;
      this.#supervisor.remove(name);
      if (host.running) host.kill();
      host.dispose();
      throw error;
    }
    this.#supervisor.started(name);
    this.#kernels.register(name, kernel);
    this.#launches.set(kernel, {
      actor: typeof options.actor === "string" ? options.actor : {
        module: typeof ref.module === "string" ? ref.module : ref.module.href,
        export: ref.export,
      },
      config: options.config,
      queueCapacity: options.queueCapacity,
      outputCapacity: options.outputCapacity,
      slotSize: typeof options.slotSize === "number"
        ? options.slotSize
        : undefined,
      idleSpinMicros: options.idleSpinMicros,
      batchSize: options.batchSize,
      timeoutMs: options.startTimeoutMs,
      maxHeapMb: options.maxHeapMb,
      // Its snapshot restores only on the same side.
      placement: backend.kind === "cpu" ? "cpu" : "gpu",
    });
    if (restored !== undefined) {
      this.#sequenceBase.set(kernel, restored.record.sequence);
      this.#basesOf(restoreFrom!.store).set(name, {
        id: restored.record.id,
        snapshot: restored.snapshot,
        depth: restored.chain - 1,
      });
    }
    if (policy !== undefined) {
      this.#checkpointPolicies.set(kernel, {
        policy,
        launched: restored === undefined ? undefined : {
          snapshot: restored.snapshot,
          sequence: restored.record.sequence,
          checkpointId: restored.record.id,
        },
      });
      this.#keepCheckpoints(kernel, policy);
    }
    if (this.#watchdog) {
      this.#watchdog.watch(name, host.control);
      if (!this.#watchdog.running) this.#watchdog.start();
    }
    this.#broadcastRoutes();
    if (options.public) {
      try {
        await this.#cluster!.serve(kernel);
      } catch (error) {
        await kernel.terminate({ timeoutMs: 0 });
        throw error;
      }
    }
    return kernel;
  }

  /**
   * Refuses an actor whose schemas collide with each other or with those
   * the runtime knows: a name or type id of one message type must not stand
   * for another layout, or messages would decode with their fields swapped.
   */
  #checkSchemas(name: string, schemas: readonly MessageSchema[]): void {
    try {
      new SchemaRegistry(schemas);
    } catch (error) {
      throw new InvalidMessageError(
        `actor "${name}": ${(error as Error).message}`,
        { cause: error },
      );
    }
    for (const schema of schemas) {
      const problem = this.#schemas.conflict(schema);
      if (problem !== undefined) {
        throw new InvalidMessageError(
          `actor "${name}": ${problem} in this runtime`,
        );
      }
    }
  }

  #builtin(name: string): ActorModuleRef {
    if (!isBuiltinActor(name)) {
      throw new UnknownActorError(
        name,
        `not a built-in actor (built-ins: ${
          Object.keys(BUILTIN_ACTORS).join(", ")
        }); ` +
          `pass { module } for your own`,
      );
    }
    return { module: BUILTIN_ACTORS[name].module };
  }

  #broadcastRoutes(): void {
    const live = new Map<string, ActorHost>();
    for (const [name, kernel] of this.#kernels) {
      const internals = kernelInternals(kernel);
      if (!internals.isStopping()) live.set(name, internals.host);
    }
    if (this.#cpuBackend === this.#backend) {
      this.#backend.updateRoutes(live);
      return;
    }
    // GPU actors reach CPU actors by name through the host.
    const hostRoutes: HostRoute[] = [];
    this.#hostRouteNames.clear();
    for (const [name, host] of live) {
      if (host instanceof CpuActorHost) {
        const kernel = this.#kernels.get(name)!;
        hostRoutes.push({
          name,
          actorId: kernel.id,
          slotSize: host.inputRing.slotSize,
          inputTypeId: kernel.inputSchema.typeId,
          inputSize: kernel.inputSchema.size,
        });
        this.#hostRouteNames.set(nameHash(name), name);
      }
    }
    this.#backend.updateRoutes(live, hostRoutes);
    this.#cpuBackend.updateRoutes(live);
  }

  /**
   * The backend an actor runs on (see {@linkcode LaunchOptions.placement}):
   * a GPU side and CUDA for `"auto"`, CUDA for `"gpu"`, else the CPU.
   */
  #placeOn(
    name: string,
    definition: object,
    placement: Placement,
  ): Backend {
    const cuda = this.#backend.kind === "cuda" ? this.#backend : undefined;
    if (placement === "cpu") return this.#cpuBackend;
    if (placement === "gpu") {
      if (cuda === undefined) {
        throw new BackendUnavailableError(
          "cuda",
          `actor "${name}" asks for placement "gpu" in a runtime on the CPU backend${
            this.fallbackReason ? ` (${this.fallbackReason})` : ""
          }`,
        );
      }
      return cuda;
    }
    return cuda !== undefined && gpuImplementationOf(definition) !== undefined
      ? cuda
      : this.#cpuBackend;
  }

  #onCrash(kernel: Kernel, error: ActorErrorInfo): void {
    const internals = kernelInternals(kernel);
    internals.noteCrash();
    if (internals.isStopping()) return;
    const decision = this.#supervisor.onFailure(kernel.name, error);
    this.#emit({ type: "crash", kernel: kernel.name, error, decision });
    const host = internals.host;
    for (const inFlight of host.kill()) {
      internals.countHostDeadLetter();
      this.#recordDeadLetter(
        kernel.name,
        "handler-error",
        `crashed: ${error.message}`,
        inFlight.slot,
      );
    }
    if (decision.action === "give-up") {
      internals.giveUp(`${error.message}; ${decision.reason}`);
      return;
    }
    // The restart timer does not keep the process alive by itself.
    setTimeout(() => {
      if (internals.isStopping() || this.#closed) return;
      const startTimeoutMs = this.#startTimeouts.get(kernel) ??
        DEFAULT_START_TIMEOUT_MS;
      this.#restoreForRestart(kernel).then(async (restored) => {
        await host.start(startTimeoutMs);
        return restored;
      }).then((restored) => {
        internals.noteRestart();
        this.#supervisor.started(kernel.name);
        this.#emit({
          type: "restart",
          kernel: kernel.name,
          attempt: decision.attempt,
          ...(restored === undefined ? {} : {
            restored: {
              checkpointId: restored.checkpointId,
              sequence: restored.sequence,
            },
          }),
        });
      }, (startError: unknown) => {
        const serialized = {
          name: startError instanceof Error ? startError.name : "Error",
          message: startError instanceof Error
            ? startError.message
            : String(startError),
        };
        this.#emit({
          type: "restart-failed",
          kernel: kernel.name,
          error: serialized,
        });
        internals.giveUp(`restart failed: ${serialized.message}`);
      });
    }, decision.delayMs).unref();
  }

  #recordDeadLetter(
    actor: string,
    reason: DeadLetterReason,
    detail: string,
    slot: Uint8Array,
  ): void {
    const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
    const envelope = readEnvelope(view, 0);
    const end = Math.min(
      slot.byteLength,
      ENVELOPE_SIZE + envelope.payloadLength,
    );
    const payload = slot.slice(ENVELOPE_SIZE, end);
    let value: unknown;
    const schema = this.#schemas.get(envelope.typeId);
    if (schema !== undefined && payload.byteLength === schema.size) {
      try {
        value = schema.decode(new DataView(payload.buffer), 0);
      } catch {
        value = undefined;
      }
    }
    this.#deadLetters.push({
      actor,
      reason,
      detail,
      message: {
        typeId: envelope.typeId,
        correlationId: envelope.correlationId,
        sourceActor: envelope.sourceActor,
        payload,
        value,
      },
    });
  }

  #retire(kernel: Kernel): void {
    if (this.#kernels.get(kernel.name) === kernel) {
      const m = kernel.metrics();
      this.#retired.sent += m.sent;
      this.#retired.processed += m.processed;
      this.#retired.deadLettered += m.deadLettered;
      this.#kernels.unregister(kernel.name);
      this.#cluster?.unserve(kernel.name);
      this.#watchdog?.unwatch(kernel.name);
      this.#broker.unsubscribeAll(kernel.name);
      this.#supervisor.remove(kernel.name);
      this.#broadcastRoutes();
      const internals = kernelInternals(kernel);
      internals.detachHost();
      internals.host.dispose();
    }
  }

  /**
   * Takes a checkpoint of the actor `name` into `options.store`: pauses it
   * (resolves once its loop confirmed, between two messages), asks its loop
   * for its definition's `snapshot` of its state (a GPU actor: copies its
   * device state, and its device data where `gpu.checkpointData` says so,
   * to the host), runs it again, and stores
   * the record: whole, or as a delta against the last record this runtime
   * wrote to (or restored from) the store for the name where that is
   * smaller (at most 8 deltas in a row). Rejects
   * with {@linkcode UnknownActorError} for an unknown name,
   * {@linkcode InvalidStateError} when a CPU actor has no `snapshot`, `TimeoutError`
   * past `timeoutMs`, and the store's own errors.
   */
  async checkpoint(
    name: string,
    options: CheckpointOptions,
  ): Promise<CheckpointInfo> {
    const o = checkOptionsObject<CheckpointOptions>("options", options);
    if (!isCheckpointStore(o.store)) {
      throw new InvalidOptionError(
        "store",
        o.store,
        "a CheckpointStore (put, get, latest)",
      );
    }
    const { timeoutMs, signal } = checkWaitOptions(o, 10_000);
    if (signal?.aborted) throw signal.reason;
    const kernel = this.getKernel(name);
    const taken = await this.#exclusive(kernel, async () => {
      const wasActive = kernel.isActive;
      try {
        return await this.#snapshot(kernel, timeoutMs);
      } finally {
        if (wasActive && kernel.state === "deactivated") {
          await kernel.activate();
        }
      }
    });
    if (signal?.aborted) throw signal.reason;
    const bases = this.#basesOf(o.store);
    const built = buildCheckpoint({
      actor: name,
      sequence: taken.sequence,
      snapshot: taken.snapshot,
      base: bases.get(name),
    });
    await o.store.put(name, built.record.id, built.bytes);
    bases.set(name, built.base);
    return {
      id: built.record.id,
      parentId: built.record.parentId,
      kind: built.record.kind,
      actor: name,
      sequence: built.record.sequence,
      snapshotBytes: taken.snapshot.byteLength,
      storedBytes: built.bytes.byteLength,
    };
  }

  /**
   * Runs `work` (a pause and snapshot of `kernel`) after those already
   * asked for: a checkpoint and a migration never pause the same actor at
   * once (one would run it again while the other holds it paused).
   */
  async #exclusive<T>(kernel: Kernel, work: () => Promise<T>): Promise<T> {
    const before = this.#snapshotLocks.get(kernel) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => release = resolve);
    const queue = before.then(() => mine);
    this.#snapshotLocks.set(kernel, queue);
    await before;
    try {
      return await work();
    } finally {
      release();
      if (this.#snapshotLocks.get(kernel) === queue) {
        this.#snapshotLocks.delete(kernel);
      }
    }
  }

  /**
   * Takes the checkpoints of a launch's `checkpoint` policy: every 25 ms
   * (or `everyMs`, when shorter) it looks whether `everyMessages` messages
   * were handled since the last, or `everyMs` passed with some handled, and
   * takes one then (never two at once; not while the actor is paused,
   * restarting or stopping).
   */
  #keepCheckpoints(kernel: Kernel, policy: CheckedCheckpointPolicy): void {
    const { everyMessages, everyMs } = policy;
    if (everyMessages === undefined && everyMs === undefined) return;
    const tickMs = Math.min(
      everyMs ?? 25,
      everyMessages === undefined ? Infinity : 25,
    );
    const sequence = () =>
      (this.#sequenceBase.get(kernel) ?? 0n) +
      kernelInternals(kernel).host.control.messagesProcessed;
    let last = sequence();
    let lastAt = Date.now();
    let busy = false;
    const timer = setInterval(() => {
      const internals = kernelInternals(kernel);
      if (
        this.#closed || kernel.state === "terminated" || internals.isStopping()
      ) {
        clearInterval(timer);
        return;
      }
      if (busy || kernel.state !== "active" || !internals.host.running) return;
      const now = sequence();
      // A restart restored an older state: count from it.
      if (now < last) last = now;
      const due = (everyMessages !== undefined &&
        now - last >= BigInt(everyMessages)) ||
        (everyMs !== undefined && now > last && Date.now() - lastAt >= everyMs);
      if (!due) return;
      busy = true;
      this.checkpoint(kernel.name, {
        store: policy.store,
        timeoutMs: policy.timeoutMs,
      }).then((info) => {
        last = info.sequence;
        lastAt = Date.now();
      }, (error: unknown) => {
        if (kernel.state === "terminated" || internals.isStopping()) return;
        this.#emit({
          type: "checkpoint-failed",
          kernel: kernel.name,
          error: {
            name: error instanceof Error ? error.name : "Error",
            message: error instanceof Error ? error.message : String(error),
          },
        });
      }).finally(() => busy = false);
    }, tickMs);
    timer.unref();
  }

  /**
   * Before a restart after a crash: the state to restore when the launch
   * keeps checkpoints (the latest record of the name in its store, else the
   * launch's own `restoreFrom` record), handed to the host; `undefined`
   * (`init` runs) otherwise. Reading the store has the policy's deadline;
   * a corrupt record fails the restart with its typed error.
   */
  async #restoreForRestart(kernel: Kernel): Promise<RestoreSpec | undefined> {
    const kept = this.#checkpointPolicies.get(kernel);
    if (kept === undefined) return undefined;
    const { policy } = kept;
    const host = kernelInternals(kernel).host;
    let spec = kept.launched;
    let loaded: LoadedCheckpoint | undefined;
    try {
      loaded = await deadline(
        loadCheckpoint(policy.store, kernel.name),
        policy.timeoutMs,
        { what: `read the latest checkpoint of "${kernel.name}"` },
      );
    } catch (error) {
      if (!(error instanceof CheckpointNotFoundError)) throw error;
    }
    if (loaded !== undefined) {
      spec = {
        snapshot: loaded.snapshot,
        sequence: loaded.record.sequence,
        checkpointId: loaded.record.id,
      };
      this.#basesOf(policy.store).set(kernel.name, {
        id: loaded.record.id,
        snapshot: loaded.snapshot,
        depth: loaded.chain - 1,
      });
    }
    host.restoreOnNextStart?.(spec);
    // Its sequence counts on from the record's, not from what it handled.
    this.#sequenceBase.set(
      kernel,
      spec === undefined
        ? (this.#sequenceBase.get(kernel) ?? 0n)
        : spec.sequence - host.control.messagesProcessed,
    );
    return spec;
  }

  #basesOf(store: object): Map<string, CheckpointBase> {
    let bases = this.#checkpointBases.get(store);
    if (bases === undefined) {
      this.#checkpointBases.set(store, bases = new Map());
    }
    return bases;
  }

  /**
   * Pauses `kernel` (it stays deactivated) and takes its snapshot and
   * sequence; a kernel not running is refused.
   */
  async #snapshot(
    kernel: Kernel,
    timeoutMs: number,
  ): Promise<{ snapshot: Uint8Array; sequence: bigint }> {
    const host = kernelInternals(kernel).host;
    if (typeof host.snapshot !== "function") {
      throw new InvalidStateError(
        `snapshot "${kernel.name}"`,
        this.backend,
        "its backend cannot snapshot an actor's state",
      );
    }
    if (kernel.state === "active") await kernel.deactivate({ timeoutMs });
    if (kernel.state !== "deactivated" && kernel.state !== "launched") {
      throw new InvalidStateError(`snapshot "${kernel.name}"`, kernel.state);
    }
    const snapshot = await host.snapshot(timeoutMs);
    const sequence = (this.#sequenceBase.get(kernel) ?? 0n) +
      host.control.messagesProcessed;
    return { snapshot, sequence };
  }

  async #pauseForMigration(
    name: string,
    timeoutMs: number,
  ): Promise<{
    launch: MigratingLaunch;
    snapshot: Uint8Array;
    sequence: bigint;
  }> {
    const kernel = this.getKernel(name);
    const launch = this.#launches.get(kernel);
    if (launch === undefined) {
      throw new InvalidStateError(`migrate "${name}"`, "launching");
    }
    return await this.#exclusive(kernel, async () => {
      const wasActive = kernel.isActive;
      try {
        return { launch, ...await this.#snapshot(kernel, timeoutMs) };
      } catch (error) {
        if (wasActive && kernel.state === "deactivated") {
          await kernel.activate();
        }
        throw error;
      }
    });
  }

  async #adopt(
    name: string,
    launch: MigratingLaunch,
    checkpoint: Uint8Array,
    timeoutMs: number,
  ): Promise<Kernel> {
    const store = new MemoryCheckpointStore();
    const record = decodeCheckpoint(checkpoint);
    await store.put(name, record.id, checkpoint);
    return await this.launch(name, {
      actor: launch.actor as LaunchOptions["actor"],
      config: launch.config,
      queueCapacity: launch.queueCapacity,
      outputCapacity: launch.outputCapacity,
      slotSize: launch.slotSize,
      idleSpinMicros: launch.idleSpinMicros,
      batchSize: launch.batchSize,
      timeoutMs: Math.min(launch.timeoutMs, Math.max(1, timeoutMs)),
      maxHeapMb: launch.maxHeapMb,
      placement: launch.placement,
      restoreFrom: store,
      // Activated when the source confirms the migration.
      autoActivate: false,
    });
  }

  /** The kernel named `name`; throws {@linkcode UnknownActorError} when there is none. */
  getKernel<
    I extends FieldsSpec = FieldsSpec,
    O extends FieldsSpec = FieldsSpec,
  >(
    name: string,
  ): Kernel<I, O> {
    const kernel = this.#kernels.get(name);
    if (kernel === undefined) throw new UnknownActorError(name);
    return kernel as unknown as Kernel<I, O>;
  }

  /**
   * Names of the live kernels, optionally only those matching a glob (`*`
   * any run without `/`, `**` anything, `?` one character).
   */
  listKernels(pattern?: string): string[] {
    if (pattern === undefined) return this.#kernels.names();
    return this.#kernels.find(pattern).map(([name]) => name);
  }

  /** Dead letters recorded so far (bounded; the oldest are evicted first). */
  get deadLetters(): DeadLetterQueue<UndeliveredMessage> {
    return this.#deadLetters;
  }

  /**
   * Subscribes a host handler to a topic filter (MQTT: `+` one level, `#`
   * the rest, including the parent). Messages arrive decoded. Throws
   * {@linkcode InvalidMessageError} for an invalid filter.
   */
  subscribe(filter: string, handler: TopicHandler): TopicSubscription {
    requireFunction("handler", handler);
    return this.#broker.subscribe(filter, (message, topic) => {
      handler(this.#decodeTopicMessage(message.slot), topic);
    });
  }

  /**
   * Subscribes a kernel: matching messages are delivered to its queue (a
   * full queue dead-letters them, reason `queue-full`). However many of a
   * kernel's subscriptions match a topic, it receives each message once.
   */
  subscribeKernel(kernel: Kernel | string, filter: string): TopicSubscription {
    const target = typeof kernel === "string" ? this.getKernel(kernel) : kernel;
    return this.#subscribeKernel(target, filter);
  }

  #subscribeKernel(kernel: Kernel, filter: string): TopicSubscription {
    return this.#broker.subscribe(
      filter,
      (message) => this.#deliver(kernel, message.slot),
      {
        subscriberId: kernel.name,
      },
    );
  }

  /** The actor subscribed (`ctx.subscribe`) or ended its subscription to `filter`. */
  #onActorSubscription(
    kernel: Kernel,
    filter: string,
    subscribe: boolean,
  ): void {
    let own = this.#actorSubscriptions.get(kernel);
    if (own === undefined) {
      own = new Map();
      this.#actorSubscriptions.set(kernel, own);
    }
    const existing = own.get(filter);
    if (subscribe) {
      if (existing?.active) return;
      own.set(filter, this.#subscribeKernel(kernel, filter));
    } else if (existing !== undefined) {
      own.delete(filter);
      existing.unsubscribe();
    }
  }

  #deliver(
    kernel: Kernel,
    slot: Uint8Array,
    what = "topic delivery",
  ): void {
    const internals = kernelInternals(kernel);
    if (internals.host.inboxRing === undefined || internals.isStopping()) {
      this.#recordDeadLetter(
        kernel.name,
        "actor-terminated",
        `${what} to a stopped kernel`,
        slot,
      );
      return;
    }
    if (!this.#tryDeliver(kernel, slot)) {
      this.#recordDeadLetter(
        kernel.name,
        "queue-full",
        `${what} found the queue full`,
        slot,
      );
    }
  }

  /** Puts a slot into a running kernel's inbox and wakes it; false when the inbox is full. */
  #tryDeliver(kernel: Kernel, slot: Uint8Array): boolean {
    const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
    const envelope = readEnvelope(view, 0);
    const accepted = this.#inboxProducer(kernel).tryEnqueueRaw(
      {
        typeId: envelope.typeId,
        flags: envelope.flags,
        correlationId: envelope.correlationId,
        timestamp: envelope.timestamp,
        sourceActor: envelope.sourceActor,
      },
      slot.subarray(ENVELOPE_SIZE, ENVELOPE_SIZE + envelope.payloadLength),
    );
    if (accepted) kernelInternals(kernel).host.wake();
    return accepted;
  }

  /**
   * A CPU actor's K2K send to `kernel`, an actor of this runtime its Worker
   * has no ring route to (a GPU actor): the slot goes into the kernel's
   * inbox, counted as sent to it. A full inbox is waited on (polled) up to
   * `timeoutMs`, then a `QueueFullError`, as for a CPU target; a kernel
   * that stops is an `UnknownActorError`.
   */
  async #sendThroughHost(
    kernel: Kernel,
    slot: Uint8Array,
    timeoutMs: number,
  ): Promise<void> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const internals = kernelInternals(kernel);
      if (
        internals.host.inboxRing === undefined || internals.isStopping() ||
        this.#kernels.get(kernel.name) !== kernel
      ) {
        throw new UnknownActorError(kernel.name);
      }
      if (this.#tryDeliver(kernel, slot)) return;
      const left = end - performance.now();
      if (left <= 0) {
        const full = `K2K send to "${kernel.name}": queue full`;
        throw timeoutMs === 0
          ? new QueueFullError(full)
          : new QueueFullError(`${full} for ${timeoutMs} ms`, {
            cause: new TimeoutError(`K2K send to "${kernel.name}"`, timeoutMs),
          });
      }
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(1, Math.min(left, HOST_SEND_POLL_MS)))
      );
    }
  }

  /**
   * A GPU actor's `rk_send` to an actor this runtime serves through the
   * host (a CPU actor; see {@linkcode HostRoute}): delivered to its inbox,
   * counted as sent to it. The device does not wait, so a full inbox, or a
   * target gone since the send, is a dead letter of the target's name.
   */
  #deliverDeviceSend(sender: string, target: bigint, slot: Uint8Array): void {
    const name = this.#hostRouteNames.get(target);
    const kernel = name === undefined ? undefined : this.#kernels.get(name);
    if (kernel === undefined) {
      this.#recordDeadLetter(
        name ?? sender,
        "unknown-target",
        `a GPU actor's rk_send from "${sender}" to name hash 0x${
          target.toString(16)
        }: no such actor any more`,
        slot,
      );
      return;
    }
    this.#deliver(
      kernel,
      slot,
      `a GPU actor's rk_send from "${sender}" (the device does not wait)`,
    );
  }

  readonly #inboxProducers = new WeakMap<
    Kernel,
    ReturnType<NonNullable<ActorHost["inboxRing"]>["producer"]>
  >();

  #inboxProducer(kernel: Kernel) {
    let producer = this.#inboxProducers.get(kernel);
    if (producer === undefined) {
      producer = kernelInternals(kernel).host.inboxRing!.producer();
      this.#inboxProducers.set(kernel, producer);
    }
    return producer;
  }

  /**
   * Publishes a message on a topic: host subscribers receive it decoded,
   * subscribed kernels receive it in their queue. Returns the number of
   * subscribers it reached. Throws {@linkcode InvalidMessageError} for an
   * invalid topic, a message that does not encode, or a schema whose name or
   * type id stands for another layout in this runtime, and
   * {@linkcode InvalidOptionError} without a schema.
   */
  publish<F extends FieldsSpec>(
    topic: string,
    message: MessageValue<F>,
    options: PublishOptions<F>,
  ): number {
    const schema = checkOptionsObject<PublishOptions<F>>("options", options)
      .schema;
    if (
      schema === null || typeof schema !== "object" ||
      typeof schema.typeId !== "number"
    ) {
      throw new InvalidOptionError(
        "schema",
        schema,
        "a message schema (defineMessage)",
      );
    }
    // A schema whose name or type id stands for another layout here is refused.
    this.#schemas.register(schema);
    const slot = new Uint8Array(ENVELOPE_SIZE + schema.size);
    const view = new DataView(slot.buffer);
    writeEnvelopeFor(view, 0, schema, { timestamp: this.#clock.now() });
    schema.encode(view, ENVELOPE_SIZE, message);
    const reached = this.#broker.publish(topic, { slot });
    this.#cluster?.publishTopic(topic, slot);
    return reached;
  }

  #publishSlot(topic: string, slot: Uint8Array): void {
    try {
      this.#broker.publish(topic, { slot });
      this.#cluster?.publishTopic(topic, slot);
    } catch (error) {
      console.error(
        `ringkernel: an actor published to an invalid topic:`,
        error,
      );
    }
  }

  #decodeTopicMessage(slot: Uint8Array): unknown {
    const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
    const envelope = readEnvelope(view, 0);
    const schema = this.#schemas.get(envelope.typeId);
    if (schema === undefined) return slot.slice(ENVELOPE_SIZE);
    return schema.decode(view, ENVELOPE_SIZE) as DecodedMessage<FieldsSpec>;
  }

  /** Counters of every kernel, their sums, and the dead letters by reason. */
  metrics(): RuntimeMetrics {
    const kernels = this.#kernels.values().map((k) => k.metrics());
    const totals = { ...this.#retired, inFlight: 0 };
    for (const m of kernels) {
      totals.sent += m.sent;
      totals.processed += m.processed;
      totals.deadLettered += m.deadLettered;
      totals.inFlight += m.inFlight;
    }
    return {
      backend: this.backend,
      kernels,
      totals,
      deadLetters: this.#deadLetters.counts(),
    };
  }

  /**
   * Terminates every kernel (draining their queues, each within
   * `timeoutMs`, default 10 000) and closes the runtime. Launches still in
   * flight are cancelled: each is waited for until its current step ends
   * (at most its `timeoutMs`), then stopped, and rejects with
   * `InvalidStateError`; once this resolves, no Worker or timer of the
   * runtime is left. Aborting `signal` kills the kernels still draining and
   * rejects with `signal.reason` once the runtime is shut down. A later call
   * waits for the same shutdown (and may cut it short with its own signal).
   */
  shutdown(options: ShutdownOptions = {}): Promise<void> {
    let timeoutMs: number;
    let signal: AbortSignal | undefined;
    try {
      ({ timeoutMs, signal } = checkWaitOptions(options, 10_000));
      if (signal?.aborted) throw signal.reason;
    } catch (error) {
      return Promise.reject(error);
    }
    this.#shutdown ??= this.#shutDown(timeoutMs);
    const done = this.#shutdown;
    if (signal === undefined) return done;
    return abortable(done, signal, () => this.#shutdownCut.abort());
  }

  async #shutDown(timeoutMs: number): Promise<void> {
    this.#closed = true;
    // Leaving first: nothing new arrives from the cluster while kernels drain.
    await this.#cluster?.close({ timeoutMs });
    const launches = [...this.#launching.values()];
    for (const launch of launches) launch.cancelled = true;
    await Promise.all(launches.map((launch) => launch.done));
    const kernels = this.#kernels.values();
    const cut = this.#shutdownCut.signal;
    // Killed at once by an abort, a terminate then rejects with its reason.
    const results = await Promise.allSettled(
      kernels.map((k) =>
        cut.aborted
          ? k.terminate({ timeoutMs: 0 })
          : k.terminate({ timeoutMs, signal: cut })
      ),
    );
    this.#broker.clear();
    this.#watchdog?.stop();
    await this.#backend.close();
    if (this.#cpuBackend !== this.#backend) await this.#cpuBackend.close();
    for (const result of results) {
      if (result.status === "rejected" && result.reason !== cut.reason) {
        throw result.reason;
      }
    }
  }

  /** Shuts the runtime down (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}
