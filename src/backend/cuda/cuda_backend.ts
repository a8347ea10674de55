/**
 * The CUDA backend: GPU actors in resident pool kernels, talking to the host
 * through queues in pinned mapped memory and to each other through K2K
 * queues in device memory.
 *
 * The driver, the primary context, the kernel bundle's module, user modules,
 * streams and the memory reserves belong to the process's
 * {@linkcode DeviceSession} of the device, shared by every CUDA runtime of the
 * process (see there why). A backend holds the session, its actors, its
 * launches and its route table. Memory is taken from the session's arenas with
 * no driver call, and given back to them only once the kernel that used it has
 * stopped; launches are admitted only when their blocks fit beside the
 * resident ones.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { delay } from "../../async.ts";
import type {
  CudaDeviceInfo,
  CudaDriverOptions,
  CudaFunction,
  CudaModule,
  ModuleLoadingMode,
} from "../../cuda/driver.ts";
import {
  InvalidStateError,
  RingKernelError,
  TimeoutError,
} from "../../errors.ts";
import type {
  ActorGroupHandle,
  ActorHost,
  ActorHostEvents,
  ActorSpawnSpec,
  Backend,
  GpuInfo,
  HostRoute,
} from "../backend.ts";
import type { ArenaBlock } from "./arena.ts";
import {
  CudaActorHost,
  type CudaActorServices,
  PoolLaunch,
} from "./cuda_actor.ts";
import { DeviceSession } from "./device_session.ts";
import { type GpuActorImplementation, resolveGpuActor } from "./gpu_actor.ts";
import { Nvrtc } from "./nvrtc.ts";
import {
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
  /**
   * Mapped host memory (queues, control blocks) reserved before any kernel
   * runs, shared by the process's CUDA runtimes (default 16 MiB). The reserve
   * grows only while no kernel is resident.
   */
  readonly hostArenaBytes?: number;
  /**
   * Device memory (K2K inboxes, actor state and data) reserved before any
   * kernel runs, shared like the host reserve (default 16 MiB).
   */
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
  /** Launch streams the device session created (busy and idle). */
  readonly streams: number;
  /** Launches whose kernel may still run. */
  readonly launches: number;
  /** Releases waiting for a kernel to stop. */
  readonly pendingReleases: number;
  /** Actors spawned and not disposed. */
  readonly actors: number;
  /** Grids resident on the device now (every runtime of the process). */
  readonly residentGrids: number;
  /** Blocks of those grids. */
  readonly residentBlocks: number;
  /** How the driver loads kernels (eager unless the user chose otherwise). */
  readonly moduleLoading: ModuleLoadingMode;
}

/** A group whose members' first starts are held until all arrive. */
interface PendingGroup {
  readonly names: readonly string[];
  readonly waiting: Map<string, {
    host: CudaActorHost;
    timeoutMs: number;
    resolve: () => void;
    reject: (error: unknown) => void;
  }>;
  failed: unknown;
  settled: boolean;
  timer?: ReturnType<typeof setTimeout>;
}

interface PendingRelease {
  blocks: readonly ArenaBlock[];
  stopped: () => boolean;
  k2k?: ArenaBlock;
}

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
  readonly #session: DeviceSession;
  readonly #routeTable: ArenaBlock;
  readonly #routeStaging: ArenaBlock;
  #routeSequence = 0;
  #nvrtc: Nvrtc | undefined;
  readonly #launches = new Set<PoolLaunch>();
  readonly #watched = new Set<CudaActorHost>();
  readonly #hosts = new Set<CudaActorHost>();
  #pending: PendingRelease[] = [];
  #quarantine: ArenaBlock[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #watchIntervalMs: number;
  #closed = false;
  readonly #services: CudaActorServices;
  readonly #groups = new Map<string, PendingGroup>();
  /** Host-mapped blocks shared by actors, by their key (freed at close). */
  readonly #shared = new Map<object, ArenaBlock>();

  private constructor(session: DeviceSession, options: CudaBackendOptions) {
    this.#session = session;
    this.driverVersion = session.driver.driverVersion;
    this.device = session.device;
    this.bundleImage = session.bundleImage;
    this.#watchIntervalMs = options.watchIntervalMs ?? 1;
    this.#routeTable = session.deviceArena.allocate(ROUTE_TABLE_BYTES);
    try {
      // Route updates are copied from pinned memory: truly asynchronous, stream-ordered.
      this.#routeStaging = session.hostArena.allocate(3 * ROUTE_TABLE_BYTES);
    } catch (error) {
      session.deviceArena.free(this.#routeTable);
      throw error;
    }
    this.#copyRoutes([{ bytes: emptyRouteTable(), offset: 0 }]);
    this.#services = this.#makeServices();
  }

  /**
   * Opens the backend on the process's session of the device (opening the
   * driver, the primary context and the kernel bundle on first use).
   * Throws {@linkcode BackendUnavailableError} (a `DriverTooOldError` for a
   * driver older than the bundle), `LibraryLoadError` or `CudaError` when
   * CUDA cannot run actors here.
   */
  static open(options: CudaBackendOptions = {}): CudaBackend {
    const session = DeviceSession.acquire({
      driver: options.driver,
      device: options.device,
      bundleDir: options.bundleDir,
      hostReserveBytes: options.hostArenaBytes,
      deviceReserveBytes: options.deviceArenaBytes,
    });
    try {
      return new CudaBackend(session, options);
    } catch (error) {
      session.release();
      throw error;
    }
  }

  /**
   * Resolves a GPU actor and loads its kernel's module now, before actors
   * start: a module loaded beside resident kernels could wait behind them.
   */
  async prepare(spec: { module: string; exportName: string }): Promise<void> {
    this.#assertOpen("prepare an actor");
    this.#functionFor(await resolveGpuActor(spec.module, spec.exportName));
  }

  #makeServices(): CudaActorServices {
    return {
      allocateMapped: (bytes) => this.#session.hostArena.allocate(bytes),
      allocateDevice: (bytes) => this.#session.deviceArena.allocate(bytes),
      release: (blocks, stopped, k2k) => {
        this.#pending.push({ blocks, stopped, k2k });
        this.#processPending();
        this.#ensureTimer();
      },
      functionFor: (gpu) => this.#functionFor(gpu),
      upload: (block, bytes, stream) => {
        const memory = this.#session.deviceMemoryOf(block.chunk);
        if (memory === undefined) {
          throw new RingKernelError(
            "upload: the block is not device memory of this backend",
          );
        }
        memory.copyFromHost(bytes, { byteOffset: block.offset, stream });
      },
      download: (block, target) => {
        const memory = this.#session.deviceMemoryOf(block.chunk);
        if (memory === undefined) {
          throw new RingKernelError(
            "download: the block is not device memory of this backend",
          );
        }
        // On the session's non-blocking service stream: it does not wait
        // for the resident kernels, only for its own copy.
        const stream = this.#session.service;
        memory.copyToHost(target, { byteOffset: block.offset, stream });
        stream.synchronize();
      },
      sharedMapped: (key, bytes) => {
        const known = this.#shared.get(key);
        if (known !== undefined) {
          if (bytes > known.byteLength) {
            throw new RingKernelError(
              `shared mapped memory: ${bytes} bytes asked of a block of ${known.byteLength}`,
            );
          }
          return known;
        }
        if (!Number.isSafeInteger(bytes) || bytes <= 0) {
          throw new RingKernelError(
            `shared mapped memory: ${bytes} bytes is not a positive size`,
          );
        }
        const block = this.#session.hostArena.allocate(bytes);
        new Uint8Array(block.chunk.buffer!, block.offset, block.byteLength)
          .fill(0);
        this.#shared.set(key, block);
        return block;
      },
      routeTable: 0n,
      startHosts: (hosts, timeoutMs) => {
        const group = hosts.length === 1
          ? this.#groups.get(hosts[0].name)
          : undefined;
        // A group member's first start waits for the others; restarts go alone.
        if (group !== undefined && hosts[0].starts === 0 && !group.settled) {
          return this.#joinGroup(group, hosts[0], timeoutMs);
        }
        return this.startPool(hosts, { timeoutMs });
      },
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
   * Opens a group (see {@linkcode Backend.openGroup}): the first starts of
   * the actors named `names` are held until every one of them starts, then
   * launched as ONE pool kernel by {@linkcode CudaBackend.startPool} (so they
   * must run the same kernel, and their blocks are admitted together). A held
   * start fails when the group is cancelled or when its own deadline passes.
   */
  openGroup(names: readonly string[]): ActorGroupHandle {
    this.#assertOpen("open an actor group");
    if (names.length === 0 || new Set(names).size !== names.length) {
      throw new RingKernelError(
        "an actor group needs one or more distinct names",
      );
    }
    for (const name of names) {
      if (this.#groups.has(name)) {
        throw new RingKernelError(
          `actor "${name}" is already in an open group`,
        );
      }
    }
    const group: PendingGroup = {
      names: [...names],
      waiting: new Map(),
      failed: undefined,
      settled: false,
    };
    for (const name of names) this.#groups.set(name, group);
    return {
      cancel: (reason) => this.#settleGroup(group, reason),
      close: () => {
        if (!group.settled) {
          this.#settleGroup(
            group,
            new RingKernelError("the actor group closed before it started"),
          );
        }
      },
    };
  }

  #joinGroup(
    group: PendingGroup,
    host: CudaActorHost,
    timeoutMs: number,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      group.waiting.set(host.name, { host, timeoutMs, resolve, reject });
      if (group.waiting.size < group.names.length) {
        // Every wait has a deadline: the first member's bounds the group's.
        group.timer ??= setTimeout(() => {
          this.#settleGroup(
            group,
            new TimeoutError(
              `starting actor group ${
                group.names.map((n) => `"${n}"`).join(", ")
              } (some members never reached their start)`,
              timeoutMs,
            ),
          );
        }, timeoutMs);
        return;
      }
      const members = group.names.map((name) => group.waiting.get(name)!);
      this.#settleGroup(group, undefined);
      const hosts = members.map((m) => m.host);
      const timeout = Math.min(...members.map((m) => m.timeoutMs));
      this.startPool(hosts, { timeoutMs: timeout }).then(
        () => members.forEach((m) => m.resolve()),
        (error: unknown) => members.forEach((m) => m.reject(error)),
      );
    });
  }

  /** Ends a group's wait: with `reason` its held starts fail, without it they are launched by the caller. */
  #settleGroup(group: PendingGroup, reason: unknown): void {
    if (group.settled) return;
    group.settled = true;
    if (group.timer !== undefined) clearTimeout(group.timer);
    for (const name of group.names) {
      if (this.#groups.get(name) === group) this.#groups.delete(name);
    }
    if (reason === undefined) return;
    group.failed = reason;
    for (const member of group.waiting.values()) {
      member.reject(
        new RingKernelError(
          `actor "${member.host.name}" was not started: its group failed (${
            reason instanceof Error ? reason.message : String(reason)
          })`,
          { cause: reason },
        ),
      );
    }
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
    const stream = this.#session.acquireStream();
    let table: ArenaBlock | undefined;
    let fn: CudaFunction | undefined;
    let admitted: { cancel(): void } | undefined;
    const launch = new PoolLaunch(stream, hosts);
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
        table = this.#session.hostArena.allocate(8 * hosts.length);
        const words = new BigUint64Array(
          table.chunk.buffer!,
          table.offset,
          hosts.length,
        );
        hosts.forEach((host, i) => words[i] = host.descriptorAddress);
        tableAddress = table.deviceAddress;
      }
      launch.table = table;
      admitted = this.#session.admit({
        fn: fn!,
        blocks: hosts.length,
        threads: POOL_THREADS,
        sharedBytes: POOL_SHARED_BYTES,
        stopped: () => launch.idle(),
      });
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
      admitted?.cancel();
      if (table !== undefined) this.#session.hostArena.free(table);
      this.#session.returnStream(stream);
      throw error;
    }
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

  #functionFor(gpu: GpuActorImplementation): CudaFunction {
    const source = gpu.source;
    if ("builtin" in source) return this.#session.poolFunction;
    const key = "file" in source
      ? `file:${String(source.file)}`
      : "cuda" in source
      ? `cuda:${source.cuda}\0${(source.options ?? []).join("\0")}`
      : source;
    const name = "file" in source
      ? String(source.file)
      : "cuda" in source
      ? source.name ?? "actor.cu"
      : "ptx" in source
      ? "user PTX"
      : "user cubin";
    const module = this.#session.userModule(
      key,
      name,
      () => this.#loadUserModule(source),
    );
    return module.getFunction(source.entry);
  }

  #loadUserModule(source: GpuActorImplementation["source"]): CudaModule {
    const context = this.#session.context;
    if ("ptx" in source) {
      return context.loadModule(source.ptx, { name: "user PTX" });
    }
    if ("cubin" in source) {
      return context.loadModule(source.cubin, { name: "user cubin" });
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
      return context.loadModule(new Uint8Array(bytes), { name: path });
    }
    if ("cuda" in source) {
      this.#nvrtc ??= Nvrtc.open();
      const cc = this.device.computeCapability;
      const { ptx } = this.#nvrtc.compile(source.cuda, {
        name: source.name,
        arch: `compute_${cc.major}${cc.minor}`,
        options: source.options,
      });
      return context.loadModule(ptx, { name: source.name ?? "actor.cu" });
    }
    throw new RingKernelError("unknown GPU actor source");
  }

  /** The live actors changed: rewrites the route table (a seqlock the device checks). */
  updateRoutes(
    actors: ReadonlyMap<string, ActorHost>,
    hostRoutes: readonly HostRoute[] = [],
  ): void {
    if (this.#closed) return;
    // Actors the host serves have no inbox in device memory (inbox 0):
    // rk_send reaches them through the sender's outbox.
    const routes: RouteEntry[] = hostRoutes.map((route) => ({
      name: route.name,
      actorId: route.actorId,
      inbox: 0n,
      slotSize: route.slotSize,
      inputTypeId: route.inputTypeId,
      inputSize: route.inputSize,
    }));
    for (const [name, host] of actors) {
      if (!(host instanceof CudaActorHost)) continue;
      routes.push({
        name,
        actorId: host.id,
        inbox: host.k2kInbox,
        slotSize: host.plan.slotSize,
        inputTypeId: host.inputTypeId,
        inputSize: host.inputSize,
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
      this.#session.deviceMemoryOf(this.#routeTable.chunk)!.copyFromHost(
        pinned,
        {
          byteOffset: this.#routeTable.offset + offset,
          stream: this.#session.service,
        },
      );
    });
    this.#session.service.synchronize();
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
      if (launch.table !== undefined) {
        this.#session.hostArena.free(launch.table);
      }
      this.#session.returnStream(launch.stream);
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
        if (block.chunk.buffer !== undefined) {
          this.#session.hostArena.free(block);
        } else this.#session.deviceArena.free(block);
      }
      if (pending.k2k !== undefined) this.#quarantine.push(pending.k2k);
    }
    this.#pending = waiting;
    // A K2K inbox is reused only when no running actor can hold a stale route to it.
    if (this.#quarantine.length > 0 && !this.#anyRunningSender()) {
      for (const block of this.#quarantine) {
        this.#session.deviceArena.free(block);
      }
      this.#quarantine = [];
    }
    if (this.#launches.size === 0 && this.#pending.length === 0) {
      // Nothing of ours runs: empty chunks beyond the first can go (if nothing else runs).
      this.#session.trimReserves();
    }
  }

  /** What the GPU runs and how; see {@linkcode GpuInfo}. */
  gpuInfo(): GpuInfo {
    const session = this.#session;
    const resident = session.residency();
    const cc = this.device.computeCapability;
    return {
      device: this.device.name,
      ordinal: this.device.ordinal,
      computeCapability: `${cc.major}.${cc.minor}`,
      multiprocessors: this.device.multiprocessorCount,
      driverVersion: this.driverVersion,
      moduleLoading: session.moduleLoading.mode,
      moduleLoadingSource: session.moduleLoading.source,
      bundleImage: this.bundleImage,
      residentGrids: resident.grids,
      residentBlocks: resident.blocks,
      actorBlockCapacity: session.blockCapacity(
        session.poolFunction,
        POOL_THREADS,
        POOL_SHARED_BYTES,
      ),
      hostReservedBytes: session.hostArena.reservedBytes,
      deviceReservedBytes: session.deviceArena.reservedBytes,
    };
  }

  /** Memory and launch counters, for leak checks and diagnostics. */
  stats(): CudaBackendStats {
    const session = this.#session;
    const resident = session.residency();
    return {
      mappedBytesInUse: session.hostArena.usedBytes,
      mappedBytesReserved: session.hostArena.reservedBytes,
      deviceBytesInUse: session.deviceArena.usedBytes,
      deviceBytesReserved: session.deviceArena.reservedBytes,
      streams: session.streamCount,
      launches: this.#launches.size,
      pendingReleases: this.#pending.length + this.#quarantine.length,
      actors: this.#hosts.size,
      residentGrids: resident.grids,
      residentBlocks: resident.blocks,
      moduleLoading: session.moduleLoading.mode,
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
        () => this.#session.deviceArena.free(this.#routeTable),
        () => this.#session.hostArena.free(this.#routeStaging),
        ...[...this.#shared.values()].map((block) => () =>
          this.#session.hostArena.free(block)
        ),
        () => this.#session.release(),
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
