/**
 * The CUDA backend: GPU actors in resident pool kernels, talking to the host
 * through queues in pinned mapped memory and to each other through K2K
 * queues in device memory.
 *
 * What it owns: the driver and the primary context, the kernel bundle's
 * module (and any user modules), a pool of non-blocking streams (one per
 * launch), an arena of mapped host memory and one of device memory, and the
 * route table. Memory is taken from the arenas with no driver call, and given
 * back to them only once the kernel that used it has stopped; chunks are
 * freed at {@linkcode CudaBackend.close}, after every kernel stopped.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { delay } from "../../async.ts";
import { KernelBundle } from "../../cuda/bundle.ts";
import {
  type CudaContext,
  type CudaDeviceInfo,
  CudaDriver,
  type CudaDriverOptions,
  type CudaFunction,
  type CudaModule,
  type CudaStream,
  type DeviceMemory,
  type MappedHostMemory,
} from "../../cuda/driver.ts";
import {
  BackendUnavailableError,
  InvalidStateError,
  RingKernelError,
} from "../../errors.ts";
import type {
  ActorHost,
  ActorHostEvents,
  ActorSpawnSpec,
  Backend,
} from "../backend.ts";
import { Arena, type ArenaBlock, type ArenaChunk } from "./arena.ts";
import {
  CudaActorHost,
  type CudaActorServices,
  PoolLaunch,
} from "./cuda_actor.ts";
import type { GpuActorImplementation } from "./gpu_actor.ts";
import { Nvrtc } from "./nvrtc.ts";
import {
  BUILTIN_POOL_KERNEL,
  POOL_SHARED_BYTES,
  POOL_THREADS,
  ROUTE_TABLE,
  ROUTE_TABLE_BYTES,
} from "./pool_layout.ts";
import {
  emptyRouteTable,
  encodeRouteTableUpdate,
  type RouteEntry,
} from "./route_table.ts";

/** Options of {@linkcode CudaBackend.open}. */
export interface CudaBackendOptions {
  /** How to open the driver (a stand-in library in tests). */
  readonly driver?: CudaDriverOptions;
  /** Device ordinal (default 0). */
  readonly device?: number;
  /** Kernel bundle directory (default: the shipped `cuda/bundle/`). */
  readonly bundleDir?: string;
  /** Mapped host memory reserved at open, and the size of each further chunk (default 16 MiB). */
  readonly hostArenaBytes?: number;
  /** Device memory reserved at open, and the size of each further chunk (default 16 MiB). */
  readonly deviceArenaBytes?: number;
  /** How often running actors are checked for exit and dead letters, in ms (default 1). */
  readonly watchIntervalMs?: number;
}

/** Memory and launch counters of a backend; see {@linkcode CudaBackend.stats}. */
export interface CudaBackendStats {
  /** Mapped host bytes handed to actors. */
  readonly mappedBytesInUse: number;
  /** Mapped host bytes held in chunks. */
  readonly mappedBytesReserved: number;
  /** Device bytes handed to actors. */
  readonly deviceBytesInUse: number;
  /** Device bytes held in chunks. */
  readonly deviceBytesReserved: number;
  /** Streams created (busy and idle). */
  readonly streams: number;
  /** Launches whose kernel may still run. */
  readonly launches: number;
  /** Releases waiting for a kernel to stop. */
  readonly pendingReleases: number;
  /** Actors spawned and not disposed. */
  readonly actors: number;
}

interface PendingRelease {
  blocks: readonly ArenaBlock[];
  stopped: () => boolean;
  k2k?: ArenaBlock;
}

const MiB = 1024 * 1024;

/** The CUDA backend; see the module documentation. */
export class CudaBackend implements Backend {
  /** This backend's kind. */
  readonly kind = "cuda" as const;
  /** The device actors run on. */
  readonly device: CudaDeviceInfo;
  /** The driver's CUDA version (e.g. 13000). */
  readonly driverVersion: number;
  /** The bundle image loaded for the device (file name). */
  readonly bundleImage: string;
  readonly #driver: CudaDriver;
  readonly #context: CudaContext;
  readonly #module: CudaModule;
  readonly #service: CudaStream;
  readonly #hostArena: Arena;
  readonly #deviceArena: Arena;
  readonly #deviceChunks = new Map<ArenaChunk, DeviceMemory>();
  readonly #routeTable: DeviceMemory;
  readonly #routeStaging: ArenaBlock;
  #routeSequence = 0;
  readonly #userModules = new Map<unknown, CudaModule>();
  #nvrtc: Nvrtc | undefined;
  readonly #idleStreams: CudaStream[] = [];
  #streamCount = 0;
  readonly #launches = new Set<PoolLaunch>();
  readonly #watched = new Set<CudaActorHost>();
  readonly #hosts = new Set<CudaActorHost>();
  #pending: PendingRelease[] = [];
  #quarantine: ArenaBlock[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #watchIntervalMs: number;
  #closed = false;
  readonly #services: CudaActorServices;

  private constructor(
    driver: CudaDriver,
    ordinal: number,
    options: CudaBackendOptions,
  ) {
    this.#driver = driver;
    this.driverVersion = driver.driverVersion;
    this.device = driver.device(ordinal);
    if (!this.device.canMapHostMemory) {
      throw new BackendUnavailableError(
        "cuda",
        `${this.device.name} cannot map host memory, which GPU actors need`,
      );
    }
    this.#watchIntervalMs = options.watchIntervalMs ?? 1;
    const context = driver.primaryContext(ordinal);
    this.#context = context;
    const bundle = KernelBundle.open({ dir: options.bundleDir });
    bundle.requireKernels([BUILTIN_POOL_KERNEL]);
    const image = bundle.loadImage(this.device.computeCapability);
    this.bundleImage = image.output.file;
    this.#module = context.loadModule(image.data, { name: image.output.file });
    this.#module.getFunction(BUILTIN_POOL_KERNEL);
    this.#service = context.createStream();
    const hostBytes = options.hostArenaBytes ?? 16 * MiB;
    const deviceBytes = options.deviceArenaBytes ?? 16 * MiB;
    this.#hostArena = new Arena({
      name: "mapped host memory",
      chunkBytes: hostBytes,
      alignment: 4096,
      allocateChunk: (bytes) => this.#mappedChunk(bytes),
    });
    this.#deviceArena = new Arena({
      name: "device memory",
      chunkBytes: deviceBytes,
      alignment: 256,
      allocateChunk: (bytes) => this.#deviceChunk(bytes),
    });
    // Everything the first actors need is allocated now, before any kernel runs.
    this.#hostArena.reserve();
    this.#deviceArena.reserve();
    this.#routeTable = this.#allocDevice(ROUTE_TABLE_BYTES);
    // Route updates are copied from pinned memory: truly asynchronous, stream-ordered.
    this.#routeStaging = this.#hostArena.allocate(3 * ROUTE_TABLE_BYTES);
    this.#copyRoutes([{ bytes: emptyRouteTable(), offset: 0 }]);
    this.#services = this.#makeServices();
  }

  /**
   * Opens the driver, the device's primary context and the kernel bundle.
   * Throws {@linkcode BackendUnavailableError} (or a `LibraryLoadError` /
   * `CudaError`) when CUDA cannot run actors here.
   */
  static open(options: CudaBackendOptions = {}): CudaBackend {
    const driver = CudaDriver.open(options.driver);
    try {
      const ordinal = options.device ?? 0;
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
      return new CudaBackend(driver, ordinal, options);
    } catch (error) {
      driver.close();
      throw error;
    }
  }

  #mappedChunk(bytes: number): ArenaChunk {
    const memory: MappedHostMemory = this.#context.allocMappedHost(bytes);
    return {
      byteLength: memory.byteLength,
      deviceAddress: memory.deviceAddress,
      buffer: memory.buffer,
      release: () => memory.free(),
    };
  }

  /**
   * Device memory, stream-ordered on the service stream when the driver can
   * (a plain cuMemAlloc/cuMemFree may wait behind resident kernels, ours or
   * another backend's in this process).
   */
  #allocDevice(bytes: number): DeviceMemory {
    if (!this.#context.supportsAsyncAlloc) {
      return this.#context.allocDevice(bytes);
    }
    const memory = this.#context.allocDeviceAsync(bytes, this.#service);
    this.#service.synchronize();
    return memory;
  }

  #freeDevice(memory: DeviceMemory): void {
    if (this.#context.supportsAsyncAlloc) {
      memory.freeAsync(this.#service);
      this.#service.synchronize();
    } else {
      memory.free();
    }
  }

  #deviceChunk(bytes: number): ArenaChunk {
    const memory = this.#allocDevice(bytes);
    const chunk: ArenaChunk = {
      byteLength: memory.byteLength,
      deviceAddress: memory.deviceAddress,
      release: () => {
        this.#deviceChunks.delete(chunk);
        this.#freeDevice(memory);
      },
    };
    this.#deviceChunks.set(chunk, memory);
    return chunk;
  }

  #makeServices(): CudaActorServices {
    return {
      allocateMapped: (bytes) => this.#hostArena.allocate(bytes),
      allocateDevice: (bytes) => this.#deviceArena.allocate(bytes),
      release: (blocks, stopped, k2k) => {
        this.#pending.push({ blocks, stopped, k2k });
        this.#processPending();
        this.#ensureTimer();
      },
      functionFor: (gpu) => this.#functionFor(gpu),
      upload: (block, bytes, stream) => {
        const memory = this.#deviceChunks.get(block.chunk);
        if (memory === undefined) {
          throw new RingKernelError(
            "upload: the block is not device memory of this backend",
          );
        }
        memory.copyFromHost(bytes, { byteOffset: block.offset, stream });
      },
      routeTable: 0n,
      startHosts: (hosts, timeoutMs) => this.startPool(hosts, { timeoutMs }),
      watch: (host) => {
        this.#watched.add(host);
        this.#ensureTimer();
      },
      forget: (host) => {
        this.#hosts.delete(host);
      },
    };
  }

  #assertOpen(operation: string): void {
    if (this.#closed) {
      throw new InvalidStateError(operation, "closed", "CUDA backend");
    }
  }

  /** Creates (but does not start) the host side of one GPU actor. */
  spawn(spec: ActorSpawnSpec, events: ActorHostEvents): CudaActorHost {
    this.#assertOpen("spawn an actor");
    const services = {
      ...this.#services,
      routeTable: this.#routeTable.deviceAddress,
    };
    const host = new CudaActorHost({ spec, events, services });
    this.#hosts.add(host);
    return host;
  }

  /**
   * Launches several actors as ONE pool kernel (one block each) and resolves
   * once all run. They must all run the same kernel: built-in actors share
   * the bundle's pool kernel; a user kernel hosts its own actors. Each actor
   * still stops on its own (terminate, abort); a restart launches it alone.
   */
  async startPool(
    hosts: readonly CudaActorHost[],
    options: { timeoutMs?: number } = {},
  ): Promise<void> {
    this.#assertOpen("start actors");
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (hosts.length === 0) return;
    for (const host of hosts) {
      if (!this.#hosts.has(host)) {
        throw new RingKernelError(
          `actor "${host.name}" does not belong to this backend`,
        );
      }
    }
    if (new Set(hosts).size !== hosts.length) {
      throw new RingKernelError("an actor appears twice in one pool");
    }
    const stream = this.#acquireStream();
    let table: ArenaBlock | undefined;
    let fn: CudaFunction | undefined;
    try {
      for (const host of hosts) {
        const next = await host.prepareLaunch(stream);
        if (fn !== undefined && next !== fn) {
          throw new RingKernelError(
            `one pool runs one kernel: "${host.name}" needs ${next.name}, the others ${fn.name}`,
          );
        }
        fn = next;
      }
      let tableAddress: bigint;
      if (hosts.length === 1) {
        tableAddress = hosts[0].launchWord;
      } else {
        table = this.#hostArena.allocate(8 * hosts.length);
        const words = new BigUint64Array(
          table.chunk.buffer!,
          table.offset,
          hosts.length,
        );
        hosts.forEach((host, i) => words[i] = host.descriptorAddress);
        tableAddress = table.deviceAddress;
      }
      fn!.launch({
        grid: hosts.length,
        block: POOL_THREADS,
        sharedMemBytes: POOL_SHARED_BYTES,
        stream,
        args: [{ type: "ptr", value: tableAddress }, {
          type: "u32",
          value: hosts.length,
        }],
      });
    } catch (error) {
      if (table !== undefined) this.#hostArena.free(table);
      this.#idleStreams.push(stream);
      throw error;
    }
    const launch = new PoolLaunch(stream, hosts, table);
    this.#launches.add(launch);
    for (const host of hosts) host.attach(launch);
    this.#ensureTimer();
    const results = await Promise.allSettled(
      hosts.map((host) => host.awaitStarted(timeoutMs)),
    );
    const failed = results.find((r) => r.status === "rejected");
    if (failed !== undefined) {
      // The others stop too: a pool starts whole or not at all.
      for (const host of hosts) if (host.running) host.kill();
      throw (failed as PromiseRejectedResult).reason;
    }
  }

  #acquireStream(): CudaStream {
    const stream = this.#idleStreams.pop();
    if (stream !== undefined) return stream;
    this.#streamCount++;
    return this.#context.createStream();
  }

  #functionFor(gpu: GpuActorImplementation): CudaFunction {
    const source = gpu.source;
    if ("builtin" in source) {
      return this.#module.getFunction(BUILTIN_POOL_KERNEL);
    }
    const key = "file" in source
      ? String(source.file)
      : "cuda" in source
      ? source.cuda
      : source;
    let module = this.#userModules.get(key);
    if (module === undefined) {
      module = this.#loadUserModule(source);
      this.#userModules.set(key, module);
    }
    return module.getFunction(source.kernel);
  }

  #loadUserModule(source: GpuActorImplementation["source"]): CudaModule {
    if ("ptx" in source) {
      return this.#context.loadModule(source.ptx, { name: "user PTX" });
    }
    if ("cubin" in source) {
      return this.#context.loadModule(source.cubin, { name: "user cubin" });
    }
    if ("file" in source) {
      const path = source.file instanceof URL || source.file.startsWith("file:")
        ? fileURLToPath(source.file)
        : source.file;
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(path);
      } catch (cause) {
        throw new RingKernelError(`cannot read actor kernel file ${path}`, {
          cause,
        });
      }
      return this.#context.loadModule(new Uint8Array(bytes), { name: path });
    }
    if ("cuda" in source) {
      this.#nvrtc ??= Nvrtc.open();
      const cc = this.device.computeCapability;
      const { ptx } = this.#nvrtc.compile(source.cuda, {
        name: source.name,
        arch: `compute_${cc.major}${cc.minor}`,
        options: source.options,
      });
      return this.#context.loadModule(ptx, { name: source.name ?? "actor.cu" });
    }
    throw new RingKernelError("unknown GPU actor source");
  }

  /** The live actors changed: rewrites the route table (a seqlock the device checks). */
  updateRoutes(actors: ReadonlyMap<string, ActorHost>): void {
    if (this.#closed) return;
    const routes: RouteEntry[] = [];
    for (const [name, host] of actors) {
      if (!(host instanceof CudaActorHost)) continue;
      routes.push({
        name,
        actorId: host.id,
        inbox: host.k2kInbox,
        slotSize: host.plan.slotSize,
      });
    }
    const update = encodeRouteTableUpdate(this.#routeSequence, routes);
    // Three copies in stream order: mark the table busy, write it, mark it done.
    this.#copyRoutes([
      { bytes: update.open, offset: 0 },
      { bytes: update.entries, offset: ROUTE_TABLE.size },
      { bytes: update.close, offset: 0 },
    ]);
    this.#routeSequence = update.sequence;
  }

  /** Copies parts of a route table image in order, through the pinned staging block, and waits. */
  #copyRoutes(parts: readonly { bytes: Uint8Array; offset: number }[]): void {
    const staging = this.#routeStaging;
    parts.forEach(({ bytes, offset }, i) => {
      if (bytes.byteLength === 0) return;
      const pinned = new Uint8Array(
        staging.chunk.buffer!,
        staging.offset + i * ROUTE_TABLE_BYTES,
        bytes.byteLength,
      );
      pinned.set(bytes);
      this.#routeTable.copyFromHost(pinned, {
        byteOffset: offset,
        stream: this.#service,
      });
    });
    this.#service.synchronize();
  }

  #ensureTimer(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#tick(), this.#watchIntervalMs);
  }

  #tick(): void {
    for (const host of this.#watched) {
      let keep = false;
      try {
        keep = host.poll();
      } catch (error) {
        console.error(
          `ringkernel: watching GPU actor "${host.name}" failed:`,
          error,
        );
      }
      if (!keep) this.#watched.delete(host);
    }
    for (const launch of this.#launches) {
      let idle = false;
      try {
        idle = launch.idle();
      } catch {
        idle = false;
      }
      if (!idle) continue;
      this.#launches.delete(launch);
      if (launch.table !== undefined) this.#hostArena.free(launch.table);
      this.#idleStreams.push(launch.stream);
    }
    this.#processPending();
    if (
      this.#watched.size === 0 && this.#launches.size === 0 &&
      this.#pending.length === 0 &&
      this.#quarantine.length === 0 && this.#timer !== undefined
    ) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #anyRunningSender(): boolean {
    for (const host of this.#hosts) {
      if (host.running && host.sendsK2k) return true;
    }
    return false;
  }

  #processPending(): void {
    const waiting: PendingRelease[] = [];
    for (const pending of this.#pending) {
      let stopped = false;
      try {
        stopped = pending.stopped();
      } catch {
        stopped = false;
      }
      if (!stopped) {
        waiting.push(pending);
        continue;
      }
      for (const block of pending.blocks) {
        if (block.chunk.buffer !== undefined) this.#hostArena.free(block);
        else this.#deviceArena.free(block);
      }
      if (pending.k2k !== undefined) this.#quarantine.push(pending.k2k);
    }
    this.#pending = waiting;
    // A K2K inbox is reused only when no running actor can hold a stale route to it.
    if (this.#quarantine.length > 0 && !this.#anyRunningSender()) {
      for (const block of this.#quarantine) this.#deviceArena.free(block);
      this.#quarantine = [];
    }
    if (this.#launches.size === 0 && this.#pending.length === 0) {
      // Nothing runs: empty chunks beyond the first can go.
      this.#hostArena.releaseEmptyChunks(1);
      this.#deviceArena.releaseEmptyChunks(1);
    }
  }

  /** Memory and launch counters, for leak checks and diagnostics. */
  stats(): CudaBackendStats {
    return {
      mappedBytesInUse: this.#hostArena.usedBytes,
      mappedBytesReserved: this.#hostArena.reservedBytes,
      deviceBytesInUse: this.#deviceArena.usedBytes,
      deviceBytesReserved: this.#deviceArena.reservedBytes,
      streams: this.#streamCount,
      launches: this.#launches.size,
      pendingReleases: this.#pending.length + this.#quarantine.length,
      actors: this.#hosts.size,
    };
  }

  /**
   * Stops every actor (abort), waits for their kernels (up to `timeoutMs`,
   * default 10 000), then frees everything. Idempotent. A kernel that never
   * stops keeps its memory and the context (freeing either could block behind
   * it forever): the promise then rejects saying so.
   */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const timeoutMs = options.timeoutMs ?? 10_000;
    for (const host of this.#hosts) {
      if (host.running || host.kernelMayRun) host.control.shouldAbort = true;
    }
    const deadline = performance.now() + timeoutMs;
    const busy = () =>
      [...this.#launches].filter((launch) => {
        try {
          return !launch.idle();
        } catch {
          return false;
        }
      });
    while (busy().length > 0 && performance.now() < deadline) await delay(1);
    for (const host of [...this.#hosts]) host.dispose();
    this.#tick();
    if (this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    const stuck = busy();
    if (stuck.length > 0) {
      throw new RingKernelError(
        `${stuck.length} GPU kernel(s) did not stop within ${timeoutMs} ms; ` +
          `their memory and the CUDA context are kept (freeing them could block behind the kernels)`,
      );
    }
    this.#nvrtc?.close();
    const failures: unknown[] = [];
    for (
      const close of [
        () => this.#freeDevice(this.#routeTable),
        () => this.#hostArena.close(),
        () => this.#deviceArena.close(),
        () => this.#driver.close(),
      ]
    ) {
      try {
        close();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length > 0) throw failures[0];
  }
}
