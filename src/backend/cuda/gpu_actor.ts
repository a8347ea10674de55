/**
 * What runs an actor on the GPU: a built-in handler of the kernel bundle, or
 * a user's pool kernel (PTX, cubin, a file holding either, or CUDA C source
 * compiled with libnvrtc). A module's actor definition names its GPU side
 * with {@linkcode defineGpuActor}, the built-in actors of `src/actors/` as
 * much as a user's: the CUDA host knows an actor only through its
 * {@linkcode GpuActorImplementation} (its source, state size, device data
 * and configuration hooks), and the actor's module is loaded once, by the
 * loader every backend uses (`loadActorDefinition`).
 *
 * @module
 */

import {
  type ActorDefinition,
  defineActor,
  type HandlerResult,
  loadActorDefinition,
} from "../../actor.ts";
import { BackendUnavailableError } from "../../errors.ts";
import { validateTopic } from "../../topic.ts";
import type {
  DecodedMessage,
  FieldsSpec,
  MessageSchema,
} from "../../message.ts";
import type { ActorContext, ActorInitInfo } from "../../actor.ts";
import { ActorKind, type ActorKindId } from "./pool_layout.ts";

/** Names of the bundle's built-in GPU handlers. */
export type BuiltinGpuActor =
  | "echo"
  | "accumulator"
  | "saxpy"
  | "reduce"
  | "forwarder"
  | "k2k-source"
  | "k2k-sink";

/** What a pool kernel runs for an actor, as its descriptor tells the device. */
export interface GpuHandler {
  /** `rk_actor_desc.kind`: the built-in handler, or the kernel's own. */
  readonly kind: ActorKindId;
  /** Whether it may send K2K (and so hold routes to other actors' inboxes). */
  readonly sendsK2k: boolean;
}

/** The handlers of the bundle's pool kernel, by built-in name. */
export const BUILTIN_GPU_HANDLERS: Readonly<
  Record<BuiltinGpuActor, GpuHandler>
> = Object.freeze({
  echo: { kind: ActorKind.Echo, sendsK2k: false },
  accumulator: { kind: ActorKind.Accumulator, sendsK2k: false },
  saxpy: { kind: ActorKind.Saxpy, sendsK2k: false },
  reduce: { kind: ActorKind.Reduce, sendsK2k: false },
  forwarder: { kind: ActorKind.Forwarder, sendsK2k: true },
  "k2k-source": { kind: ActorKind.K2kSource, sendsK2k: true },
  "k2k-sink": { kind: ActorKind.K2kSink, sendsK2k: false },
});

/** A user pool kernel's own handler, which may send K2K. */
const USER_HANDLER: GpuHandler = Object.freeze({
  kind: ActorKind.User,
  sendsK2k: true,
});

/** Where a GPU actor's pool kernel comes from. */
export type GpuActorSource =
  | {
    /** A built-in handler of the kernel bundle. */
    readonly builtin: BuiltinGpuActor;
  }
  | {
    /** PTX text (or its bytes). */
    readonly ptx: string | Uint8Array;
    /** The pool kernel's entry point: `RK_DEFINE_ACTOR`'s first argument. */
    readonly entry: string;
  }
  | {
    /** A cubin or fatbin image. */
    readonly cubin: Uint8Array;
    /** The pool kernel's entry point. */
    readonly entry: string;
  }
  | {
    /** A `.ptx`, `.cubin` or `.fatbin` file (path or file URL). */
    readonly file: string | URL;
    /** The pool kernel's entry point. */
    readonly entry: string;
  }
  | {
    /** CUDA C++ source that includes `ringkernel.cuh` (needs libnvrtc at run time). */
    readonly cuda: string;
    /** The pool kernel's entry point. */
    readonly entry: string;
    /** A file name for compiler messages (default `"actor.cu"`). */
    readonly name?: string;
    /** Extra NVRTC options, e.g. `["-DSCALE=2"]`. */
    readonly options?: readonly string[];
  };

/** The GPU side of an actor. */
export interface GpuActorImplementation {
  /** Where its pool kernel comes from. */
  readonly source: GpuActorSource;
  /** Bytes of device state its handler keeps (`sizeof` of its state struct; default 0). */
  readonly stateBytes?: number;
  /**
   * The topics its device code publishes to with `rk_publish(ctx,
   * rk_topic("a/b"), msg)`: the device names a topic by its hash, and the
   * host maps the hash back to the name before it delivers the publication
   * to the topic's subscribers. A publication to a topic not listed here is
   * dead-lettered (`unknown-target`). Default: none.
   */
  readonly topics?: readonly string[];
  /**
   * The bytes the actor needs in device memory, from its launch `config`
   * (e.g. a buffer its handler reads): called once, at the first start; the
   * host allocates device memory for them, copies them there before every
   * launch (so a restart starts from them again), and gives their address
   * to {@linkcode GpuActorImplementation.encodeConfig}. Default: none.
   */
  readonly deviceData?: (config: unknown) => Uint8Array;
  /**
   * Whether the {@linkcode GpuActorImplementation.deviceData} bytes are part
   * of the actor's state for checkpoints and migration (default false). A
   * GPU actor's snapshot is its `stateBytes` of device state, followed by
   * its device data as the handler left it when this is true; a restore
   * writes them back instead of running the device `init` (and instead of
   * copying the `deviceData` bytes). Leave it false for data the handler
   * only reads: it comes from the launch `config` again.
   */
  readonly checkpointData?: boolean;
  /**
   * Encodes the launch `config` into the descriptor's 128-byte configuration
   * area (`ctx.config` on the device); `context` gives the device address of
   * the {@linkcode GpuActorImplementation.deviceData} bytes and the route key
   * of actor names. Called once, at the first start. Default: nothing.
   */
  readonly encodeConfig?: (
    config: unknown,
    context: GpuConfigContext,
  ) => Uint8Array;
}

/** What {@linkcode GpuActorImplementation.encodeConfig} receives beside the launch `config`. */
export interface GpuConfigContext {
  /** Device address of the actor's {@linkcode GpuActorImplementation.deviceData} bytes (0n: none). */
  readonly dataAddress: bigint;
  /** How many bytes they are (0: none). */
  readonly dataBytes: number;
  /**
   * An actor name's key in the route table (64-bit FNV-1a of its UTF-8
   * bytes, as `rk_fnv1a64` computes it): how a configuration names the
   * actor a device handler sends to.
   */
  nameHash(name: string): bigint;
  /**
   * Host-mapped memory (zero-copy: the host writes it, the device reads and
   * writes it in place) shared by every actor of this backend that asks with
   * the same `key` object: allocated zeroed at the first request, the same
   * block afterwards (a larger `byteLength` later is an error), kept until
   * the backend closes. How the members of a group share one buffer (see
   * `src/actors/grid_reduce.ts`). Device reads of it cross the bus on a
   * discrete GPU.
   */
  sharedMapped(key: object, byteLength: number): SharedMappedBlock;
}

/** A block of host-mapped memory shared by several GPU actors ({@linkcode GpuConfigContext.sharedMapped}). */
export interface SharedMappedBlock {
  /** The block's device address. */
  readonly deviceAddress: bigint;
  /** The host's view of its bytes (writes are seen by the device). */
  readonly bytes: Uint8Array;
}

const implementations = new WeakMap<object, GpuActorImplementation>();

/** An actor definition with a GPU side; `handle` (the CPU side) is optional. */
export interface GpuActorDefinition<
  I extends FieldsSpec,
  O extends FieldsSpec,
  S,
> {
  /** Schema of the messages it receives. */
  readonly input: MessageSchema<I>;
  /** Schema of its replies. */
  readonly output?: MessageSchema<O>;
  /** Creates the CPU side's state. */
  readonly init?: (info: ActorInitInfo) => S;
  /**
   * The CPU side's handler, used by the CPU backend. Without it the actor
   * runs only on the CUDA backend (the CPU backend fails its messages).
   */
  readonly handle?: (
    message: DecodedMessage<I>,
    ctx: ActorContext<S>,
  ) => HandlerResult<O>;
  /** The GPU side. */
  readonly gpu: GpuActorImplementation;
}

function checkImplementation(gpu: GpuActorImplementation): void {
  const source = gpu?.source as Record<string, unknown> | undefined;
  if (typeof source !== "object" || source === null) {
    throw new TypeError("defineGpuActor: gpu.source is required");
  }
  if ("builtin" in source) {
    if (!Object.hasOwn(BUILTIN_GPU_HANDLERS, source.builtin as string)) {
      throw new TypeError(
        `defineGpuActor: unknown built-in ${JSON.stringify(source.builtin)}`,
      );
    }
  } else if (typeof source.entry !== "string" || source.entry.length === 0) {
    throw new TypeError(
      "defineGpuActor: gpu.source.entry must name the pool kernel's entry point",
    );
  }
  const state = gpu.stateBytes ?? 0;
  if (!Number.isSafeInteger(state) || state < 0) {
    throw new TypeError(
      `defineGpuActor: stateBytes ${state} must be a non-negative integer`,
    );
  }
  if (gpu.topics !== undefined) {
    if (!Array.isArray(gpu.topics)) {
      throw new TypeError(
        "defineGpuActor: gpu.topics must be an array of topics",
      );
    }
    for (const topic of gpu.topics) validateTopic(topic);
  }
  if (
    gpu.checkpointData !== undefined && typeof gpu.checkpointData !== "boolean"
  ) {
    throw new TypeError("defineGpuActor: gpu.checkpointData must be a boolean");
  }
  for (const hook of ["deviceData", "encodeConfig"] as const) {
    if (gpu[hook] !== undefined && typeof gpu[hook] !== "function") {
      throw new TypeError(`defineGpuActor: gpu.${hook} must be a function`);
    }
  }
}

/**
 * Declares an actor that runs on the GPU (and, when it has `handle`, on the
 * CPU backend too). Export the result from a module and launch it like any
 * actor: `runtime.launch(name, { actor: { module } })`.
 */
export function defineGpuActor<I extends FieldsSpec, O extends FieldsSpec, S>(
  definition: GpuActorDefinition<I, O, S>,
): ActorDefinition<I, O, S> {
  checkImplementation(definition.gpu);
  const { gpu, handle, ...rest } = definition;
  const cpuHandle = handle ??
    (() => {
      throw new BackendUnavailableError(
        "cpu",
        `actor with ${definition.input.name} input runs only on the CUDA backend`,
      );
    });
  const actor = defineActor<I, O, S>({ ...rest, handle: cpuHandle });
  implementations.set(
    actor,
    Object.freeze({
      ...gpu,
      ...(gpu.topics === undefined
        ? {}
        : { topics: Object.freeze([...gpu.topics]) }),
    }),
  );
  return actor;
}

/** The GPU side of a definition made by {@linkcode defineGpuActor}, if any. */
export function gpuImplementationOf(
  definition: object,
): GpuActorImplementation | undefined {
  return implementations.get(definition);
}

/** The handler a pool kernel runs for `gpu`: a built-in one of the bundle, or the user kernel's own. */
export function gpuHandlerOf(gpu: GpuActorImplementation): GpuHandler {
  const source = gpu.source;
  return "builtin" in source
    ? BUILTIN_GPU_HANDLERS[source.builtin]
    : USER_HANDLER;
}

/** An actor definition and its GPU side. */
export interface LoadedGpuActor {
  /** The definition (its schemas, and its CPU side). */
  readonly definition: ActorDefinition;
  /** Its GPU side. */
  readonly gpu: GpuActorImplementation;
}

/**
 * Loads the actor exported as `exportName` by `module` (with the loader
 * every backend uses) and finds its GPU side.
 *
 * @throws {ActorModuleError} when the module cannot be imported or the
 *   export is not an actor.
 * @throws {BackendUnavailableError} (backend `"cuda"`) when the actor has no
 *   GPU side.
 */
export async function loadGpuActor(
  module: string,
  exportName: string,
): Promise<LoadedGpuActor> {
  const definition = await loadActorDefinition({ module, export: exportName });
  const gpu = implementations.get(definition);
  if (gpu === undefined) {
    throw new BackendUnavailableError(
      "cuda",
      `${module} export "${exportName}" has no GPU side: declare it with defineGpuActor ` +
        `(built-in GPU actors: echo, accumulator, saxpy, forwarder, and reduce)`,
    );
  }
  return { definition, gpu };
}

/**
 * Finds the GPU side of the actor exported as `exportName` by `module`, as
 * {@linkcode loadGpuActor} does.
 */
export async function resolveGpuActor(
  module: string,
  exportName: string,
): Promise<GpuActorImplementation> {
  return (await loadGpuActor(module, exportName)).gpu;
}
