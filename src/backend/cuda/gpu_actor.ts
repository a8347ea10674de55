/**
 * What runs an actor on the GPU: a built-in handler of the kernel bundle, or
 * a user's pool kernel (PTX, cubin, a file holding either, or CUDA C source
 * compiled with libnvrtc). A module's actor definition names its GPU side
 * with {@linkcode defineGpuActor}; the built-in CPU actors map to the
 * bundle's handlers by their module URL.
 *
 * @module
 */

import {
  type ActorDefinition,
  defineActor,
  type HandlerResult,
} from "../../actor.ts";
import { BUILTIN_ACTORS } from "../../actors/builtins.ts";
import { BackendUnavailableError, RingKernelError } from "../../errors.ts";
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

/** The `ActorKind` of each built-in GPU handler. */
export const BUILTIN_GPU_KINDS: Readonly<Record<BuiltinGpuActor, ActorKindId>> =
  Object.freeze({
    echo: ActorKind.Echo,
    accumulator: ActorKind.Accumulator,
    saxpy: ActorKind.Saxpy,
    reduce: ActorKind.Reduce,
    forwarder: ActorKind.Forwarder,
    "k2k-source": ActorKind.K2kSource,
    "k2k-sink": ActorKind.K2kSink,
  });

/** Bytes of state each built-in handler keeps in device memory. */
export const BUILTIN_GPU_STATE_BYTES: Readonly<
  Record<BuiltinGpuActor, number>
> = Object.freeze({
  echo: 0,
  accumulator: 16,
  saxpy: 0,
  reduce: 0,
  forwarder: 0,
  "k2k-source": 0,
  "k2k-sink": 0,
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
    /** The pool kernel's name (`RK_DEFINE_ACTOR`'s first argument). */
    readonly kernel: string;
  }
  | {
    /** A cubin or fatbin image. */
    readonly cubin: Uint8Array;
    /** The pool kernel's name. */
    readonly kernel: string;
  }
  | {
    /** A `.ptx`, `.cubin` or `.fatbin` file (path or file URL). */
    readonly file: string | URL;
    /** The pool kernel's name. */
    readonly kernel: string;
  }
  | {
    /** CUDA C++ source that includes `ringkernel.cuh` (needs libnvrtc at run time). */
    readonly cuda: string;
    /** The pool kernel's name. */
    readonly kernel: string;
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
   * Encodes the launch `config` into the descriptor's 128-byte configuration
   * area (`ctx.config` on the device). Default: nothing.
   */
  readonly encodeConfig?: (config: unknown) => Uint8Array;
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
    if (!Object.hasOwn(BUILTIN_GPU_KINDS, source.builtin as string)) {
      throw new TypeError(
        `defineGpuActor: unknown built-in ${JSON.stringify(source.builtin)}`,
      );
    }
  } else if (typeof source.kernel !== "string" || source.kernel.length === 0) {
    throw new TypeError(
      "defineGpuActor: gpu.source.kernel must name the pool kernel",
    );
  }
  const state = gpu.stateBytes ?? 0;
  if (!Number.isSafeInteger(state) || state < 0) {
    throw new TypeError(
      `defineGpuActor: stateBytes ${state} must be a non-negative integer`,
    );
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
  implementations.set(actor, Object.freeze({ ...gpu }));
  return actor;
}

/** The GPU side of a definition made by {@linkcode defineGpuActor}, if any. */
export function gpuImplementationOf(
  definition: object,
): GpuActorImplementation | undefined {
  return implementations.get(definition);
}

const BUILTIN_MODULES: ReadonlyMap<string, BuiltinGpuActor> = new Map([
  [BUILTIN_ACTORS.echo.module, "echo"],
  [BUILTIN_ACTORS.accumulator.module, "accumulator"],
  [BUILTIN_ACTORS.saxpy.module, "saxpy"],
  [BUILTIN_ACTORS.forwarder.module, "forwarder"],
]);

/** The built-in GPU handler of a built-in CPU actor module (by URL), if any. */
export function builtinGpuActorForModule(
  module: string,
  exportName = "default",
): BuiltinGpuActor | undefined {
  if (exportName !== "default") return undefined;
  return BUILTIN_MODULES.get(module);
}

/**
 * Finds the GPU side of the actor exported as `exportName` by `module`:
 * its {@linkcode defineGpuActor} implementation, or a built-in handler.
 * Throws {@linkcode BackendUnavailableError} when it has none.
 */
export async function resolveGpuActor(
  module: string,
  exportName: string,
): Promise<GpuActorImplementation> {
  const builtin = builtinGpuActorForModule(module, exportName);
  if (builtin !== undefined) {
    return {
      source: { builtin },
      stateBytes: BUILTIN_GPU_STATE_BYTES[builtin],
    };
  }
  let definition: unknown;
  try {
    definition = (await import(module) as Record<string, unknown>)[exportName];
  } catch (cause) {
    throw new RingKernelError(`cannot import actor module ${module}`, {
      cause,
    });
  }
  const gpu = typeof definition === "object" && definition !== null
    ? implementations.get(definition)
    : undefined;
  if (gpu === undefined) {
    throw new BackendUnavailableError(
      "cuda",
      `${module} export "${exportName}" has no GPU side: declare it with defineGpuActor ` +
        `(built-in GPU actors: echo, accumulator, saxpy, forwarder, and reduce)`,
    );
  }
  return gpu;
}

/** Encodes `{ target?: string }` for the forwarder and the generator (hash 0: no target). */
export function encodeTargetConfig(
  config: unknown,
  hash: (name: string) => bigint,
  required: boolean,
): Uint8Array {
  const target = (config as { target?: unknown } | undefined)?.target;
  const bytes = new Uint8Array(8);
  if (target === undefined && !required) return bytes;
  if (typeof target !== "string" || target.length === 0) {
    throw new RingKernelError(
      `this actor needs config.target, the name of the actor to send to`,
    );
  }
  new DataView(bytes.buffer).setBigUint64(0, hash(target), true);
  return bytes;
}
