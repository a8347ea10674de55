/**
 * One CUDA device as the whole process uses it: the driver, the primary
 * context, the kernel bundle's module, the memory reserves and what runs
 * resident on the device, shared by every CUDA runtime of the process.
 *
 * Why shared: loading a module, allocating or freeing memory, unloading and
 * releasing a context can each wait behind a resident kernel forever, and a
 * kernel of one runtime is resident for every other runtime of the process.
 * So all of that happens only when nothing is resident: the first runtime's
 * open loads the bundle (every kernel of it at once) and reserves memory;
 * later runtimes share them; the memory reserves grow only while nothing is
 * resident; and everything is given back when the last runtime closes — by
 * then none of the process's kernels runs. A launch is admitted only when its
 * blocks fit beside those already resident (occupancy × multiprocessors, at
 * most 128 grids): a block that does not fit would wait for a free
 * multiprocessor forever.
 *
 * @module
 */

import { KernelBundle } from "../../cuda/bundle.ts";
import { checkDriverVersion } from "../../cuda/bundle.ts";
import {
  type CudaContext,
  type CudaDeviceInfo,
  CudaDriver,
  type CudaDriverOptions,
  type CudaFunction,
  type CudaModule,
  type CudaStream,
  type DeviceMemory,
  type ModuleLoadingMode,
  type ModuleLoadingSource,
} from "../../cuda/driver.ts";
import {
  BackendUnavailableError,
  GpuResidencyError,
  InvalidStateError,
  RingKernelError,
} from "../../errors.ts";
import { libcudaCandidates, type LibcudaLike } from "../../../ffi/libcuda.ts";
import { Arena, type ArenaChunk } from "./arena.ts";
import { BUILTIN_POOL_KERNEL } from "./pool_layout.ts";

/** A device keeps at most this many grids resident at once. */
export const MAX_RESIDENT_GRIDS = 128;

const MiB = 1024 * 1024;

/** Default size of each memory reserve. */
export const DEFAULT_RESERVE_BYTES = 16 * MiB;

/** Options of {@linkcode DeviceSession.acquire}. */
export interface DeviceSessionOptions {
  /** How to open the driver (a stand-in library in tests). */
  readonly driver?: CudaDriverOptions;
  /** Device ordinal (default 0). */
  readonly device?: number;
  /** Kernel bundle directory (default: the shipped `cuda/bundle/`). */
  readonly bundleDir?: string;
  /** Mapped host memory reserved before any kernel runs (default 16 MiB). */
  readonly hostReserveBytes?: number;
  /** Device memory reserved before any kernel runs (default 16 MiB). */
  readonly deviceReserveBytes?: number; /**
   * Reserve memory now (default `true`); `false` opens the session without
   * any (a probe).
   */

  readonly reserve?: boolean;
}

/** What runs on the device now; see {@linkcode DeviceSession.residency}. */
export interface DeviceResidency {
  /** Grids (launches) that may still run. */
  readonly grids: number;
  /** Blocks of those grids. */
  readonly blocks: number;
  /** Share of the device's block slots they hold (0..1). */
  readonly load: number;
}

/** One admitted launch: counted until `stopped()` says its kernel ended. */
interface ResidentLaunch {
  readonly blocks: number;
  readonly load: number;
  readonly stopped: () => boolean;
}

/** Residents of one device, shared by the sessions on it (one per bundle). */
class DeviceResidents {
  readonly launches = new Set<ResidentLaunch>();

  /** Forgets launches whose kernels have ended; returns what is left. */
  prune(): DeviceResidency {
    let blocks = 0;
    let load = 0;
    for (const launch of this.launches) {
      let stopped = false;
      try {
        stopped = launch.stopped();
      } catch {
        stopped = false;
      }
      if (stopped) {
        this.launches.delete(launch);
        continue;
      }
      blocks += launch.blocks;
      load += launch.load;
    }
    return { grids: this.launches.size, blocks, load };
  }
}

const residentsByDevice = new Map<string, DeviceResidents>();
const sessions = new Map<string, DeviceSession>();
const libraryKeys = new WeakMap<LibcudaLike, string>();
let nextLibraryKey = 0;

function libraryKey(options: CudaDriverOptions | undefined): string {
  const library = options?.library;
  if (library !== undefined) {
    let key = libraryKeys.get(library);
    if (key === undefined) {
      key = `library#${nextLibraryKey++}`;
      libraryKeys.set(library, key);
    }
    return key;
  }
  return `candidates:${
    libcudaCandidates({ candidates: options?.candidates }).join("\n")
  }`;
}

function checkReserve(value: number | undefined, what: string): number {
  const bytes = value ?? DEFAULT_RESERVE_BYTES;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new RingKernelError(
      `cuda.${what} must be a positive integer of bytes, got ${value}`,
    );
  }
  return bytes;
}

/** The shared state of one device; see the module documentation. */
export class DeviceSession {
  /** The driver. */
  readonly driver: CudaDriver;
  /** The device's primary context. */
  readonly context: CudaContext;
  /** The device. */
  readonly device: CudaDeviceInfo;
  /** The bundle's module, every kernel fetched. */
  readonly module: CudaModule;
  /** The bundle image loaded (file name). */
  readonly bundleImage: string;
  /** The pool kernel of the built-in actors. */
  readonly poolFunction: CudaFunction;
  /** Mapped host memory for queues and control blocks. */
  readonly hostArena: Arena;
  /** Device memory for K2K inboxes, actor state and data. */
  readonly deviceArena: Arena;
  /** A stream for copies and stream-ordered allocations (never a resident kernel). */
  readonly service: CudaStream;
  readonly #key: string;
  readonly #residents: DeviceResidents;
  readonly #deviceChunks = new Map<ArenaChunk, DeviceMemory>();
  readonly #userModules = new Map<unknown, CudaModule>();
  readonly #idleStreams: CudaStream[] = [];
  #holders = 0;
  #streamsCreated = 0;
  #closed = false;
  #onClose: (() => void)[] = [];

  private constructor(
    key: string,
    residents: DeviceResidents,
    driver: CudaDriver,
    ordinal: number,
    options: DeviceSessionOptions,
  ) {
    this.#key = key;
    this.#residents = residents;
    this.driver = driver;
    this.device = driver.device(ordinal);
    if (!this.device.canMapHostMemory) {
      throw new BackendUnavailableError(
        "cuda",
        `${this.device.name} cannot map host memory, which GPU actors need`,
      );
    }
    const bundle = KernelBundle.open({ dir: options.bundleDir });
    checkDriverVersion(driver.driverVersion, bundle.manifest);
    bundle.requireKernels([BUILTIN_POOL_KERNEL]);
    const image = bundle.loadImage(this.device.computeCapability);
    this.context = driver.primaryContext(ordinal);
    this.bundleImage = image.output.file;
    this.module = this.context.loadModule(image.data, {
      name: image.output.file,
      kernels: bundle.kernels,
    });
    this.poolFunction = this.module.getFunction(BUILTIN_POOL_KERNEL);
    this.service = this.context.createStream();
    const blocked = () => {
      const resident = this.residency();
      return resident.grids === 0
        ? undefined
        : `${resident.grids} kernel(s) are resident on ${this.device.name}, and allocating now could wait behind them forever`;
    };
    this.hostArena = new Arena({
      name: "mapped host memory",
      chunkBytes: checkReserve(options.hostReserveBytes, "hostArenaBytes"),
      alignment: 4096,
      allocateChunk: (bytes) => this.#mappedChunk(bytes),
      growthBlockedBecause: blocked,
      option: "hostArenaBytes",
    });
    this.deviceArena = new Arena({
      name: "device memory",
      chunkBytes: checkReserve(options.deviceReserveBytes, "deviceArenaBytes"),
      alignment: 256,
      allocateChunk: (bytes) => this.#deviceChunk(bytes),
      growthBlockedBecause: blocked,
      option: "deviceArenaBytes",
    });
  }

  /**
   * The session of a device, opened on first use (driver, context, bundle,
   * memory reserves): every caller must {@linkcode DeviceSession.release} it
   * once. A larger reserve than the session holds is added now when nothing
   * is resident.
   *
   * @throws {BackendUnavailableError} (a {@linkcode DriverTooOldError} for a
   *   driver older than the bundle), `LibraryLoadError` or `CudaError` when
   *   CUDA cannot run actors here.
   */
  static acquire(options: DeviceSessionOptions = {}): DeviceSession {
    checkReserve(options.hostReserveBytes, "hostArenaBytes");
    checkReserve(options.deviceReserveBytes, "deviceArenaBytes");
    const ordinal = options.device ?? 0;
    const library = libraryKey(options.driver);
    const key = `${library}\n${ordinal}\n${options.bundleDir ?? ""}`;
    let session = sessions.get(key);
    if (session === undefined) {
      const driver = CudaDriver.open(options.driver);
      try {
        const count = driver.deviceCount();
        if (count === 0) {
          throw new BackendUnavailableError(
            "cuda",
            "the CUDA driver reports no device",
          );
        }
        if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= count) {
          throw new BackendUnavailableError(
            "cuda",
            `device ${ordinal} does not exist (${count} device${
              count === 1 ? "" : "s"
            })`,
          );
        }
        const deviceKey = `${library}\n${ordinal}`;
        let residents = residentsByDevice.get(deviceKey);
        if (residents === undefined) {
          residents = new DeviceResidents();
          residentsByDevice.set(deviceKey, residents);
        }
        session = new DeviceSession(key, residents, driver, ordinal, options);
      } catch (error) {
        driver.close();
        throw error;
      }
      sessions.set(key, session);
    }
    session.#holders++;
    if (options.reserve !== false) {
      try {
        session.#growReserves(options);
      } catch (error) {
        session.release();
        throw error;
      }
    }
    return session;
  }

  /** Whether the session has been closed (its last holder released it). */
  get closed(): boolean {
    return this.#closed;
  }

  /** How the driver loads kernels, and where that mode came from. */
  get moduleLoading(): {
    mode: ModuleLoadingMode;
    source: ModuleLoadingSource;
  } {
    return {
      mode: this.driver.moduleLoadingMode,
      source: this.driver.moduleLoadingSource,
    };
  }

  /** Reserves up to the sizes asked for, while nothing is resident. */
  #growReserves(options: DeviceSessionOptions): void {
    if (this.residency().grids > 0) return;
    for (
      const [arena, wanted] of [
        [this.hostArena, options.hostReserveBytes],
        [this.deviceArena, options.deviceReserveBytes],
      ] as const
    ) {
      const missing = (wanted ?? DEFAULT_RESERVE_BYTES) - arena.reservedBytes;
      if (missing > 0) arena.reserve(missing);
    }
  }

  #assertOpen(operation: string): void {
    if (this.#closed) {
      throw new InvalidStateError(operation, "closed", "CUDA device session");
    }
  }

  /** What is resident on the device now (ended launches are forgotten first). */
  residency(): DeviceResidency {
    return this.#residents.prune();
  }

  /**
   * How many blocks of `fn` fit on the device at once, with `threads` threads
   * and `sharedBytes` of dynamic shared memory each.
   */
  blockCapacity(
    fn: CudaFunction,
    threads: number,
    sharedBytes: number,
  ): number {
    const reported = fn.maxActiveBlocksPerMultiprocessor(threads, sharedBytes);
    // Without an occupancy answer: the thread and block limits, else one block per multiprocessor.
    const perSm = reported ??
      (Math.min(
        Math.floor(this.device.maxThreadsPerMultiprocessor / threads),
        this.device.maxBlocksPerMultiprocessor,
      ) || 1);
    return Math.max(0, perSm) * this.device.multiprocessorCount;
  }

  /**
   * Checks that a launch of `blocks` blocks of `fn` fits beside what is
   * resident, and counts it (until `stopped()` returns true) when it does.
   * Call it right before the launch; `cancel()` the returned token when the
   * launch then fails.
   *
   * @throws {GpuResidencyError} naming the limit.
   */
  admit(
    launch: {
      fn: CudaFunction;
      blocks: number;
      threads: number;
      sharedBytes: number;
      stopped: () => boolean;
    },
  ): { cancel(): void } {
    this.#assertOpen("launch a kernel");
    const resident = this.residency();
    const capacity = this.blockCapacity(
      launch.fn,
      launch.threads,
      launch.sharedBytes,
    );
    if (resident.grids >= MAX_RESIDENT_GRIDS) {
      throw new GpuResidencyError(
        "grids",
        `${this.device.name} already keeps ${resident.grids} grids resident, the most a device keeps at once (${MAX_RESIDENT_GRIDS}): terminate an actor, or launch actors together as one pool`,
      );
    }
    const load = capacity > 0 ? launch.blocks / capacity : Infinity;
    if (resident.load + load > 1 + 1e-9) {
      const free = Math.max(0, Math.floor((1 - resident.load) * capacity));
      throw new GpuResidencyError(
        "blocks",
        `${launch.blocks} block(s) of ${launch.fn.name} do not fit on ${this.device.name}: ` +
          `${capacity} fit at once (${
            capacity / Math.max(1, this.device.multiprocessorCount)
          } per multiprocessor × ${this.device.multiprocessorCount}), ` +
          `${resident.blocks} block(s) of ${resident.grids} grid(s) are resident and room is left for ${free}; ` +
          `a block that does not fit would wait for a free multiprocessor forever`,
      );
    }
    const entry: ResidentLaunch = {
      blocks: launch.blocks,
      load,
      stopped: launch.stopped,
    };
    this.#residents.launches.add(entry);
    return { cancel: () => this.#residents.launches.delete(entry) };
  }

  /**
   * The module of a user kernel, loaded once per session (every kernel of it
   * fetched at once). Loading is refused while kernels are resident: it could
   * wait behind them forever.
   *
   * @throws {GpuResidencyError} (`"module-load"`) while kernels are resident.
   */
  userModule(key: unknown, name: string, load: () => CudaModule): CudaModule {
    this.#assertOpen("load a module");
    const known = this.#userModules.get(key);
    if (known !== undefined) return known;
    const resident = this.residency();
    if (resident.grids > 0) {
      throw new GpuResidencyError(
        "module-load",
        `loading the GPU module ${name} while ${resident.grids} kernel(s) are resident could wait behind them forever: ` +
          `prepare the actor before the first actor starts (await rt.prepare({ actor })), or launch it first`,
      );
    }
    const module = load();
    this.#userModules.set(key, module);
    return module;
  }

  /** A non-blocking stream for a launch (reused once its launch ended). */
  acquireStream(): CudaStream {
    this.#assertOpen("create a stream");
    const idle = this.#idleStreams.pop();
    if (idle !== undefined) return idle;
    this.#streamsCreated++;
    return this.context.createStream();
  }

  /** Launch streams created so far (busy and idle). */
  get streamCount(): number {
    return this.#streamsCreated;
  }

  /** Gives back a stream whose work has finished. */
  returnStream(stream: CudaStream): void {
    if (!this.#closed) this.#idleStreams.push(stream);
  }

  /** The device memory behind an arena chunk of {@linkcode DeviceSession.deviceArena}. */
  deviceMemoryOf(chunk: ArenaChunk): DeviceMemory | undefined {
    return this.#deviceChunks.get(chunk);
  }

  /** Runs `hook` when the session closes (e.g. to close an NVRTC it made). */
  onClose(hook: () => void): void {
    this.#onClose.push(hook);
  }

  #mappedChunk(bytes: number): ArenaChunk {
    const memory = this.context.allocMappedHost(bytes);
    return {
      byteLength: memory.byteLength,
      deviceAddress: memory.deviceAddress,
      buffer: memory.buffer,
      release: () => memory.free(),
    };
  }

  #deviceChunk(bytes: number): ArenaChunk {
    const memory = this.context.supportsAsyncAlloc
      ? this.context.allocDeviceAsync(bytes, this.service)
      : this.context.allocDevice(bytes);
    if (this.context.supportsAsyncAlloc) this.service.synchronize();
    const chunk: ArenaChunk = {
      byteLength: memory.byteLength,
      deviceAddress: memory.deviceAddress,
      release: () => {
        this.#deviceChunks.delete(chunk);
        if (this.context.supportsAsyncAlloc) {
          memory.freeAsync(this.service);
          this.service.synchronize();
        } else {
          memory.free();
        }
      },
    };
    this.#deviceChunks.set(chunk, memory);
    return chunk;
  }

  /**
   * Gives back empty memory chunks beyond the first of each reserve, when
   * nothing is resident.
   */
  trimReserves(): void {
    if (this.#closed || this.residency().grids > 0) return;
    this.hostArena.releaseEmptyChunks(1);
    this.deviceArena.releaseEmptyChunks(1);
  }

  /**
   * Releases one hold. The last closes the session — memory, modules,
   * streams, the context — which only happens once no kernel of the process
   * runs (each holder stops its kernels before releasing).
   *
   * @throws {CudaError} the first failure while closing, after trying all.
   */
  release(): void {
    if (this.#closed || --this.#holders > 0) return;
    this.#closed = true;
    sessions.delete(this.#key);
    const failures: unknown[] = [];
    for (
      const close of [
        ...this.#onClose,
        () => this.hostArena.close(),
        () => this.deviceArena.close(),
        () => this.driver.close(),
      ]
    ) {
      try {
        close();
      } catch (error) {
        failures.push(error);
      }
    }
    this.#userModules.clear();
    this.#idleStreams.length = 0;
    if (failures.length > 0) throw failures[0];
  }
}
