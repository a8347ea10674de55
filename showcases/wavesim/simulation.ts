/**
 * The host side of WaveSim: launches one tile actor per rectangle of the
 * grid, tells them how far to run, drops pulses, pauses and resumes them
 * (deactivate / activate), and gathers pictures and the exact field from
 * their replies. Between steps the tiles talk only to each other. The same
 * code runs CPU tiles on the CPU backend and GPU tiles on the CUDA backend.
 *
 * @module
 */

import {
  type BackendRequest,
  type DecodedMessage,
  type Kernel,
  type KernelMetrics,
  RingKernel,
  TimeoutError,
} from "../../mod.ts";
import { Nvrtc } from "../../src/backend/cuda/nvrtc.ts";
import {
  Command,
  DEFAULT_PARAMS,
  FIELD_CELLS_PER_PART,
  FOREVER,
  FRAME_CELLS_PER_PART,
  MAX_EDGE,
  type Pulse,
  Reply,
  type WaveCommand,
  type WaveParams,
  type WaveReply,
} from "./messages.ts";
import { runCommand, type TileConfig } from "./tile_actor.ts";

/** Options of {@linkcode WaveSimulation.create}. */
export interface WaveSimOptions {
  /**
   * The runtime to launch the tiles on: CPU actors on the CPU backend, GPU
   * actors (the tile's CUDA side, which needs libnvrtc) on the CUDA backend.
   */
  runtime: RingKernel;
  /** Grid width in cells. */
  width: number;
  /** Grid height in cells. */
  height: number;
  /** Tile side in cells (edge tiles take what is left); at most 1000. */
  tile: number;
  /** The physics (default {@linkcode DEFAULT_PARAMS}). */
  params?: WaveParams;
  /** Bumps at step 0. */
  pulses?: readonly Pulse[];
  /** Prefix of the tiles' actor names (default "wave"). */
  prefix?: string;
}

/** Options of {@linkcode createWaveRuntime}. */
export interface WaveRuntimeOptions {
  /**
   * The backend: `"auto"` (default) takes GPU tiles when CUDA is usable and
   * libnvrtc is installed (the GPU tile is CUDA C++ compiled at launch), CPU
   * tiles otherwise; `"cpu"` and `"cuda"` insist.
   */
  backend?: BackendRequest;
  /** Where the line saying which tiles run goes (default console.log). */
  log?: (line: string) => void;
}

/** A runtime for WaveSim's tiles: GPU tiles when they can run, CPU tiles otherwise. */
export async function createWaveRuntime(
  options: WaveRuntimeOptions = {},
): Promise<RingKernel> {
  const backend = options.backend ?? "auto";
  const log = options.log ?? console.log;
  const rt = await RingKernel.create({ backend, quiet: true });
  if (rt.backend === "cuda" && backend === "auto") {
    const nvrtc = Nvrtc.probe();
    if (!nvrtc.available) {
      await rt.shutdown({ timeoutMs: 10_000 });
      log(
        "WaveSim: CPU tiles (CUDA is usable, but libnvrtc, which compiles the GPU tile, is not installed)",
      );
      return await RingKernel.create({ backend: "cpu", quiet: true });
    }
  }
  log(
    rt.backend === "cuda"
      ? "WaveSim: GPU tiles (CUDA backend)"
      : `WaveSim: CPU tiles (CPU backend${
        rt.fallbackReason ? `: ${rt.fallbackReason.split("\n")[0]}` : ""
      })`,
  );
  return rt;
}

/** Options of the waits of {@linkcode WaveSimulation}. */
export interface WaitOptions {
  /** Deadline in ms (default 30 000). */
  timeoutMs?: number;
}

/** A picture of the field: one byte per cell, 128 at rest. */
export interface WaveFrame {
  /** The lowest step among the tiles when they took it. */
  step: number;
  /** `width × height` bytes, row-major. */
  pixels: Uint8Array;
}

/** One tile's figures, for the page's telemetry table. */
export interface TileMetrics {
  /** The actor's name. */
  name: string;
  /** Lifecycle state. */
  state: string;
  /** Messages it handled. */
  processed: number;
  /** Messages waiting in its input queue. */
  queueDepth: number;
  /** Messages accepted but not yet handled. */
  inFlight: number;
  /** When it last handled a message, ns since the epoch (the actor's clock). */
  lastProcessedNs: bigint;
}

type ReplyMessage = DecodedMessage<typeof WaveReply.spec>;
const modulePath = new URL("./tile_actor.ts", import.meta.url);

interface TileSlot {
  readonly kernel: Kernel<typeof WaveCommand.spec, typeof WaveReply.spec>;
  readonly config: TileConfig;
  readonly frameParts: number;
  readonly fieldParts: number;
  step: number;
}

interface Gather {
  readonly kind: number;
  readonly frame: number;
  remaining: number;
  step: number;
  readonly out: Uint8Array | Float32Array;
  resolve(): void;
}

/** A WaveSim run: the tiles of one grid. */
export class WaveSimulation {
  /** Grid width in cells. */
  readonly width: number;
  /** Grid height in cells. */
  readonly height: number;
  /** Tile side in cells. */
  readonly tile: number;
  readonly #tiles: TileSlot[];
  readonly #backend: string;
  readonly #stop = new AbortController();
  readonly #pumps: Promise<void>[] = [];
  #target = 0;
  #frameNo = 0;
  #gather: Gather | undefined;
  #doneWaiters: Array<() => boolean> = [];
  #paused = false;
  #closed = false;
  #pumpError: unknown;

  private constructor(
    width: number,
    height: number,
    tile: number,
    tiles: TileSlot[],
    backend: string,
  ) {
    this.#backend = backend;
    this.width = width;
    this.height = height;
    this.tile = tile;
    this.#tiles = tiles;
  }

  /** Launches the tiles and sends each its step-0 edges. */
  static async create(options: WaveSimOptions): Promise<WaveSimulation> {
    const { runtime, width, height, tile } = options;
    for (
      const [name, value, max] of [
        ["width", width, 8192],
        ["height", height, 8192],
        ["tile", tile, MAX_EDGE],
      ] as const
    ) {
      if (!Number.isInteger(value) || value < 1 || value > max) {
        throw new RangeError(
          `${name} must be an integer in 1..${max}, got ${value}`,
        );
      }
    }
    const params = options.params ?? DEFAULT_PARAMS;
    const prefix = options.prefix ?? "wave";
    const cols = Math.ceil(width / tile);
    const rows = Math.ceil(height / tile);
    const name = (tx: number, ty: number) =>
      tx < 0 || ty < 0 || tx >= cols || ty >= rows
        ? ""
        : `${prefix}-${tx}-${ty}`;
    const configs: TileConfig[] = [];
    for (let ty = 0; ty < rows; ty++) {
      for (let tx = 0; tx < cols; tx++) {
        const x0 = tx * tile;
        const y0 = ty * tile;
        configs.push({
          tile: ty * cols + tx,
          x0,
          y0,
          nx: Math.min(tile, width - x0),
          ny: Math.min(tile, height - y0),
          k: params.k,
          damping: params.damping,
          neighbors: [
            name(tx, ty - 1),
            name(tx, ty + 1),
            name(tx - 1, ty),
            name(tx + 1, ty),
          ],
          pulses: options.pulses ?? [],
        });
      }
    }
    // One group: on the CUDA backend the tiles start as ONE pool kernel (a
    // block each, admitted together); on the CPU backend, Worker by Worker.
    const kernels = await runtime.launchGroup(configs.map((config) => ({
      name: name(config.tile % cols, Math.floor(config.tile / cols)),
      options: {
        actor: { module: modulePath },
        config,
        queueCapacity: 64,
        slotSize: 4096,
      },
    }))) as unknown as TileSlot["kernel"][];
    const tiles: TileSlot[] = kernels.map((kernel, i) => {
      const cells = configs[i].nx * configs[i].ny;
      return {
        kernel,
        config: configs[i],
        frameParts: Math.ceil(cells / FRAME_CELLS_PER_PART),
        fieldParts: Math.ceil(cells / FIELD_CELLS_PER_PART),
        step: 0,
      };
    });
    const sim = new WaveSimulation(
      width,
      height,
      tile,
      tiles,
      runtime.backend,
    );
    for (const slot of tiles) sim.#pumps.push(sim.#pump(slot));
    // Run to step 0: every tile sends its first edges and reports.
    await sim.#runTo(0, 30_000);
    return sim;
  }

  /** The backend the tiles run on (`"cpu"` or `"cuda"`). */
  get backend(): string {
    return this.#backend;
  }

  /** Number of cells. */
  get cells(): number {
    return this.width * this.height;
  }

  /** Number of tile actors. */
  get tileCount(): number {
    return this.#tiles.length;
  }

  /** The tiles' actor names. */
  get names(): string[] {
    return this.#tiles.map((t) => t.kernel.name);
  }

  /** The lowest step a tile has reported (in a frame or on reaching its target). */
  get step(): number {
    return Math.min(...this.#tiles.map((t) => t.step));
  }

  /** True between {@linkcode pause} and {@linkcode resume}. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Runs exactly `steps` more steps and waits until every tile is there. */
  async runSteps(steps: number, options: WaitOptions = {}): Promise<void> {
    if (this.#target === FOREVER) {
      throw new Error(
        "the simulation runs freely; runSteps needs a stopped one",
      );
    }
    await this.#runTo(this.#target + steps, options.timeoutMs ?? 30_000);
  }

  /** Lets the tiles run without end (until {@linkcode close}). */
  async start(): Promise<void> {
    this.#target = FOREVER;
    await this.#broadcast(runCommand(FOREVER));
  }

  /** Deactivates every tile: stepping stops, messages wait in the queues. */
  async pause(): Promise<void> {
    if (this.#paused) return;
    this.#paused = true;
    await Promise.all(
      this.#tiles.map((t) => t.kernel.deactivate({ timeoutMs: 10_000 })),
    );
  }

  /** Activates every tile again: stepping goes on where it stopped. */
  async resume(): Promise<void> {
    if (!this.#paused) return;
    this.#paused = false;
    await Promise.all(this.#tiles.map((t) => t.kernel.activate()));
  }

  /** Drops a bump; every tile it reaches adds it at its current step. */
  async pulse(pulse: Pulse): Promise<void> {
    await this.#broadcast({
      ...runCommand(0),
      kind: Command.pulse,
      x: pulse.x,
      y: pulse.y,
      amp: pulse.amp,
      radius: pulse.radius,
    });
  }

  /** Asks every tile for a picture and puts it together. */
  frame(options: WaitOptions = {}): Promise<WaveFrame> {
    const pixels = new Uint8Array(this.cells);
    return this.#collect(Command.frame, Reply.frame, pixels, options).then(
      (step) => ({ step, pixels }),
    );
  }

  /** The exact field (meaningful while the tiles are stopped at one step). */
  async field(options: WaitOptions = {}): Promise<Float32Array> {
    const out = new Float32Array(this.cells);
    await this.#collect(Command.field, Reply.field, out, options);
    return out;
  }

  /** Each tile's figures from the runtime's metrics. */
  metrics(): TileMetrics[] {
    return this.#tiles.map((t) => {
      const m: KernelMetrics = t.kernel.metrics();
      return {
        name: m.name,
        state: m.state,
        processed: m.processed,
        queueDepth: m.telemetry.queueDepth,
        inFlight: m.inFlight,
        lastProcessedNs: m.telemetry.lastProcessedTimestamp,
      };
    });
  }

  /** Terminates the tiles. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort();
    await Promise.allSettled(
      this.#tiles.map((t) => t.kernel.terminate({ timeoutMs: 5_000 })),
    );
    await Promise.allSettled(this.#pumps);
  }

  async #runTo(target: number, timeoutMs: number): Promise<void> {
    this.#target = target;
    const reached = () => this.#tiles.every((t) => t.step >= target);
    const done = this.#until(reached, timeoutMs, `step ${target}`);
    await this.#broadcast(runCommand(target));
    await done;
  }

  #until(ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#doneWaiters = this.#doneWaiters.filter((w) => w !== check);
        reject(new TimeoutError(`WaveSim: waiting for ${what}`, timeoutMs));
      }, timeoutMs);
      const check = () => {
        if (this.#pumpError !== undefined) {
          clearTimeout(timer);
          reject(this.#pumpError);
          return true;
        }
        if (!ready()) return false;
        clearTimeout(timer);
        resolve();
        return true;
      };
      if (!check()) this.#doneWaiters.push(check);
    });
  }

  async #broadcast(
    message: Parameters<TileSlot["kernel"]["send"]>[0],
  ): Promise<void> {
    await Promise.all(
      this.#tiles.map((t) => t.kernel.send(message, { timeoutMs: 10_000 })),
    );
  }

  async #collect(
    command: number,
    kind: number,
    out: Uint8Array | Float32Array,
    options: WaitOptions,
  ): Promise<number> {
    if (this.#gather !== undefined) throw new Error("one picture at a time");
    const frame = ++this.#frameNo;
    let resolve!: () => void;
    const finished = new Promise<void>((r) => (resolve = r));
    const gather: Gather = {
      kind,
      frame,
      remaining: this.#tiles.reduce(
        (n, t) => n + (kind === Reply.frame ? t.frameParts : t.fieldParts),
        0,
      ),
      step: FOREVER,
      out,
      resolve,
    };
    this.#gather = gather;
    const timeoutMs = options.timeoutMs ?? 30_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.all(this.#tiles.map((t) => {
        const parts = kind === Reply.frame ? t.frameParts : t.fieldParts;
        const requests = [];
        for (let p = 0; p < parts; p++) {
          requests.push({
            ...runCommand(0),
            kind: command,
            step: frame,
            side: p,
          });
        }
        return t.kernel.sendBatch(requests, { timeoutMs });
      }));
      await Promise.race([
        finished,
        new Promise((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new TimeoutError("WaveSim: waiting for a picture", timeoutMs),
              ),
            timeoutMs,
          );
        }),
      ]);
      return gather.step;
    } finally {
      clearTimeout(timer);
      this.#gather = undefined;
    }
  }

  async #pump(slot: TileSlot): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      let replies: ReplyMessage[];
      try {
        replies = await slot.kernel.receiveMany({
          max: 256,
          timeoutMs: 250,
          signal,
        });
      } catch (error) {
        if (error instanceof TimeoutError) continue;
        if (signal.aborted) return;
        this.#pumpError = error;
        this.#notify();
        return;
      }
      for (const reply of replies) this.#take(slot, reply);
      this.#notify();
    }
  }

  #notify(): void {
    this.#doneWaiters = this.#doneWaiters.filter((check) => !check());
  }

  #take(slot: TileSlot, reply: ReplyMessage): void {
    if (reply.step > slot.step || this.#target !== FOREVER) {
      slot.step = reply.step;
    }
    if (reply.kind === Reply.done) {
      // A lone tile runs in chunks: tell it to go on.
      if (slot.config.neighbors.every((n) => !n) && reply.step < this.#target) {
        slot.kernel.send(runCommand(this.#target), { timeoutMs: 10_000 }).catch(
          (error) => {
            if (!this.#closed) this.#pumpError = error;
          },
        );
      }
      return;
    }
    const gather = this.#gather;
    if (gather === undefined || gather.kind !== reply.kind) return;
    if (reply.kind === Reply.frame && reply.frame !== gather.frame) return;
    gather.step = Math.min(gather.step, reply.step);
    const { nx, x0, y0 } = slot.config;
    const values = reply.kind === Reply.frame ? reply.data : new Float32Array(
      reply.data.buffer,
      reply.data.byteOffset,
      FIELD_CELLS_PER_PART,
    );
    // Copy the part's cells row by row into the grid.
    let c = 0;
    while (c < reply.count) {
      const cell = reply.offset + c;
      const j = Math.floor(cell / nx);
      const i = cell - j * nx;
      const run = Math.min(nx - i, reply.count - c);
      const at = (y0 + j) * this.width + x0 + i;
      gather.out.set(values.subarray(c, c + run), at);
      c += run;
    }
    if (--gather.remaining === 0) gather.resolve();
  }
}
