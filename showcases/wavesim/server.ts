/**
 * WaveSim, the live page: `deno task showcase:wavesim` (or
 * `bun showcases/wavesim/server.ts`) starts the tiles and a server, prints the
 * page's address, and streams the field to every open page as binary frames,
 * one frame per page at a time (the page acknowledges each one it drew), with
 * per-actor telemetry beside it. Ctrl-C stops it.
 *
 * `--headless` runs `--steps` steps without a server and prints the figures
 * (`--verify` compares the field with the single-threaded reference).
 * Options: `--port` (8000), `--width` (512), `--height` (512), `--tile` (256),
 * `--calm` (start at rest).
 *
 * `--backend auto|cpu|cuda` (default auto): GPU tile actors when CUDA is
 * usable (and libnvrtc installed), CPU tile actors otherwise; the same code.
 *
 * @module
 */

import type { BackendRequest } from "../../mod.ts";
import { DEFAULT_PARAMS, type Pulse } from "./messages.ts";
import { ReferenceWave } from "./reference.ts";
import { createWaveRuntime, WaveSimulation } from "./simulation.ts";
import {
  numberArg,
  parseArgs,
  programArgs,
  serveShowcase,
  type ShowcaseServer,
  type ShowcaseSocket,
  stopOnSignal,
} from "../shared/serve.ts";

/** Bumps a fresh grid starts with: two drops, placed by the grid's size. */
export function startingPulses(width: number, height: number): Pulse[] {
  const r = Math.max(2, Math.min(width, height) / 40);
  return [
    { x: width * 0.3, y: height * 0.4, amp: 1, radius: r },
    { x: width * 0.7, y: height * 0.6, amp: -0.8, radius: r * 1.5 },
  ];
}

/** Options of {@linkcode runHeadless}. */
export interface HeadlessOptions {
  /** Grid width. */
  width: number;
  /** Grid height. */
  height: number;
  /** Tile side. */
  tile: number;
  /** Steps to run. */
  steps: number;
  /** Compare the field with the reference afterwards (default false). */
  verify?: boolean;
  /** The backend (default `"auto"`: GPU tiles when they can run). */
  backend?: BackendRequest;
  /** Where the report lines go (default console.log). */
  log?: (line: string) => void;
}

/** What {@linkcode runHeadless} measured. */
export interface HeadlessFigures {
  /** Cells of the grid. */
  cells: number;
  /** Tile actors. */
  tiles: number;
  /** The backend they ran on. */
  backend: string;
  /** Steps run. */
  steps: number;
  /** Seconds the steps took. */
  seconds: number;
  /** Million cell updates per second. */
  mcellsPerSecond: number;
  /** Whether the field equals the reference (when verified). */
  matchesReference?: boolean;
  /** Largest difference from the reference (when verified). */
  maxDifference?: number;
}

/** Runs `steps` steps of the tiles without a page and reports. */
export async function runHeadless(
  options: HeadlessOptions,
): Promise<HeadlessFigures> {
  const log = options.log ?? console.log;
  const { width, height, tile, steps } = options;
  const pulses = startingPulses(width, height);
  await using rt = await createWaveRuntime({
    backend: options.backend,
    log,
  });
  const sim = await WaveSimulation.create({
    runtime: rt,
    width,
    height,
    tile,
    pulses,
  });
  try {
    const t0 = performance.now();
    await sim.runSteps(steps, { timeoutMs: 600_000 });
    const seconds = (performance.now() - t0) / 1000;
    const figures: HeadlessFigures = {
      cells: sim.cells,
      tiles: sim.tileCount,
      backend: sim.backend,
      steps,
      seconds,
      mcellsPerSecond: (sim.cells * steps) / seconds / 1e6,
    };
    log(
      `WaveSim ${width}×${height}, ${sim.tileCount} tile actors of ${tile}: ` +
        `${steps} steps in ${seconds.toFixed(3)} s, ` +
        `${
          figures.mcellsPerSecond.toFixed(1)
        } Mcells/s (${sim.backend} backend)`,
    );
    if (options.verify) {
      const ref = new ReferenceWave(width, height, DEFAULT_PARAMS, pulses);
      ref.run(steps);
      const expected = ref.field();
      const actual = await sim.field();
      let worst = 0;
      for (let i = 0; i < expected.length; i++) {
        worst = Math.max(worst, Math.abs(expected[i] - actual[i]));
      }
      figures.maxDifference = worst;
      figures.matchesReference = worst <= 1e-5;
      log(
        `reference comparison: largest difference ${worst} ` +
          (figures.matchesReference ? "(matches)" : "(DIFFERS)"),
      );
    }
    return figures;
  } finally {
    await sim.close();
  }
}

/** Options of {@linkcode startWaveServer}. */
export interface WaveServerOptions {
  /** Port (0: a free one). */
  port: number;
  /** Initial grid width. */
  width: number;
  /** Initial grid height. */
  height: number;
  /** Initial tile side. */
  tile: number;
  /** Start at rest, without the two starting drops (default false). */
  calm?: boolean;
  /** The backend (default `"auto"`: GPU tiles when they can run). */
  backend?: BackendRequest;
}

interface Page {
  socket: ShowcaseSocket;
  ready: boolean;
}

/** Starts the simulation and the page server. */
export async function startWaveServer(
  options: WaveServerOptions,
): Promise<ShowcaseServer> {
  const rt = await createWaveRuntime({ backend: options.backend });
  const pages = new Set<Page>();
  const bySocket = new Map<ShowcaseSocket, Page>();
  let sim: WaveSimulation | undefined;
  let generation = 0;
  let busy: Promise<void> = Promise.resolve();
  let closed = false;
  let framesSent = 0;
  let frameNo = 0;

  const broadcast = (message: unknown) => {
    const text = JSON.stringify(
      message,
      (_k, v) => typeof v === "bigint" ? v.toString() : v,
    );
    for (const page of pages) page.socket.send(text);
  };
  const describe = () => ({
    type: "config",
    width: sim?.width,
    height: sim?.height,
    tile: sim?.tile,
    tiles: sim?.tileCount,
    backend: rt.backend,
    paused: sim?.paused ?? false,
  });

  // One step at a time through `busy`: reconfiguring, pausing, frames.
  const serial = (work: () => Promise<void>): Promise<void> => {
    const next = busy.then(work).catch((error) => {
      console.error("wavesim:", error);
      broadcast({ type: "error", message: String(error?.message ?? error) });
    });
    busy = next;
    return next;
  };

  const configure = (width: number, height: number, tile: number) =>
    serial(async () => {
      const valid = [width, height].every((v) =>
        Number.isInteger(v) && v >= 8 && v <= 4096
      ) && Number.isInteger(tile) && tile >= 4 && tile <= 1000;
      if (!valid) {
        broadcast({
          type: "error",
          message: `grid ${width}×${height}, tile ${tile}: ` +
            "width and height 8..4096, tile 4..1000",
        });
        return;
      }
      const old = sim;
      sim = undefined;
      await old?.close();
      sim = await WaveSimulation.create({
        runtime: rt,
        width,
        height,
        tile,
        pulses: options.calm ? [] : startingPulses(width, height),
        prefix: `wave${++generation}`,
      });
      await sim.start();
      broadcast(describe());
    });

  await configure(options.width, options.height, options.tile);
  await busy;
  if (sim === undefined) throw new Error("WaveSim did not start");

  // Frames: whenever a page has drawn its last one, take the next.
  const frameLoop = async () => {
    while (!closed) {
      const current = sim;
      const waiting = [...pages].filter((p) => p.ready);
      if (current === undefined || current.paused || waiting.length === 0) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      let frame;
      try {
        frame = await current.frame({ timeoutMs: 5_000 });
      } catch (error) {
        if (current === sim && !closed) console.error("wavesim frame:", error);
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      if (current !== sim) continue;
      const header = new Uint32Array([
        current.width,
        current.height,
        frame.step,
        ++frameNo,
      ]);
      const message = new Uint8Array(16 + frame.pixels.length);
      message.set(new Uint8Array(header.buffer), 0);
      message.set(frame.pixels, 16);
      for (const page of waiting) {
        if (!pages.has(page)) continue;
        page.ready = false;
        page.socket.send(message);
        framesSent++;
      }
    }
  };
  const frames = frameLoop();

  // Telemetry twice a second: per-actor rates from the runtime's metrics.
  let last = {
    at: performance.now(),
    frames: 0,
    step: 0,
    processed: new Map<string, number>(),
  };
  const telemetry = setInterval(() => {
    const current = sim;
    if (current === undefined) return;
    const now = performance.now();
    const dt = (now - last.at) / 1000;
    const tiles = current.metrics().map((m) => {
      const before = last.processed.get(m.name) ?? m.processed;
      return { ...m, rate: (m.processed - before) / dt };
    });
    const step = current.step;
    const stepsPerSecond = Math.max(0, step - last.step) / dt;
    broadcast({
      type: "telemetry",
      step,
      stepsPerSecond,
      mcellsPerSecond: (stepsPerSecond * current.cells) / 1e6,
      fps: (framesSent - last.frames) / dt,
      paused: current.paused,
      tiles,
    });
    last = {
      at: now,
      frames: framesSent,
      step,
      processed: new Map(tiles.map((t) => [t.name, t.processed])),
    };
  }, 500);

  const server = await serveShowcase({
    publicDir: new URL("./public/", import.meta.url),
    port: options.port,
    socket: {
      open(socket) {
        const page = { socket, ready: false };
        pages.add(page);
        bySocket.set(socket, page);
        socket.send(JSON.stringify(describe()));
      },
      message(socket, text) {
        const page = bySocket.get(socket);
        let request: Record<string, unknown>;
        try {
          request = JSON.parse(text);
        } catch {
          return;
        }
        switch (request.type) {
          case "ready":
            if (page) page.ready = true;
            break;
          case "pulse":
            if (
              sim && typeof request.x === "number" &&
              typeof request.y === "number"
            ) {
              const r = Math.max(2, Math.min(sim.width, sim.height) / 60);
              sim.pulse({ x: request.x, y: request.y, amp: 1, radius: r })
                .catch(
                  (error) => console.error("wavesim pulse:", error),
                );
            }
            break;
          case "pause":
            serial(async () => {
              await sim?.pause();
              broadcast(describe());
            });
            break;
          case "resume":
            serial(async () => {
              await sim?.resume();
              broadcast(describe());
            });
            break;
          case "configure": {
            const width = Number(request.width);
            const height = Number(request.height);
            const tile = Number(request.tile);
            configure(width, height, tile);
            break;
          }
        }
      },
      close(socket) {
        const page = bySocket.get(socket);
        bySocket.delete(socket);
        if (page) pages.delete(page);
      },
    },
  });

  return {
    url: server.url,
    port: server.port,
    async close() {
      closed = true;
      clearInterval(telemetry);
      await server.close();
      await frames;
      await busy;
      await sim?.resume().catch(() => {});
      await sim?.close();
      await rt.shutdown({ timeoutMs: 10_000 });
    },
  };
}

if (import.meta.main) {
  const args = parseArgs(programArgs());
  const width = numberArg(args, "width", 512);
  const height = numberArg(args, "height", 512);
  const tile = numberArg(args, "tile", 256);
  const backend = typeof args.backend === "string"
    ? args.backend as BackendRequest
    : "auto";
  if (args.headless) {
    await runHeadless({
      width,
      height,
      tile,
      steps: numberArg(args, "steps", 500),
      verify: Boolean(args.verify),
      backend,
    });
  } else {
    const server = await startWaveServer({
      port: numberArg(args, "port", 8000),
      width,
      height,
      tile,
      calm: Boolean(args.calm),
      backend,
    });
    console.log(`WaveSim: open ${server.url}  (Ctrl-C stops)`);
    stopOnSignal(() => server.close());
  }
}
