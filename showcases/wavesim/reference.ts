/**
 * The single-threaded reference of WaveSim: the whole grid in one array, the
 * same leapfrog step as the tile actors (fixed zero boundary), no actors. The
 * tests compare the actors' field with it, and `bench/wavesim.ts` times both.
 *
 * @module
 */

import { type Pulse, pulseAt, type WaveParams } from "./messages.ts";

/** The whole field, stepped on one thread. */
export class ReferenceWave {
  /** Grid width in cells. */
  readonly width: number;
  /** Grid height in cells. */
  readonly height: number;
  /** The physics. */
  readonly params: WaveParams;
  #u: Float32Array;
  #prev: Float32Array;
  #step = 0;

  /** A grid at rest with `pulses` dropped at step 0. */
  constructor(
    width: number,
    height: number,
    params: WaveParams,
    pulses: readonly Pulse[] = [],
  ) {
    this.width = width;
    this.height = height;
    this.params = params;
    const size = (width + 2) * (height + 2);
    this.#u = new Float32Array(size);
    this.#prev = new Float32Array(size);
    for (const pulse of pulses) this.pulse(pulse);
  }

  /** The step the field is at. */
  get step(): number {
    return this.#step;
  }

  /** Adds a bump to the field and its previous step (zero velocity). */
  pulse(pulse: Pulse): void {
    const w = this.width + 2;
    for (let y = 0; y < this.height; y++) {
      for (let x = 0; x < this.width; x++) {
        const p = pulseAt(pulse, x, y);
        if (p === 0) continue;
        const idx = (y + 1) * w + x + 1;
        this.#u[idx] += p;
        this.#prev[idx] += p;
      }
    }
  }

  /** Runs `steps` steps. */
  run(steps: number): void {
    const { k, damping } = this.params;
    const nx = this.width;
    const ny = this.height;
    const w = nx + 2;
    let u = this.#u;
    let prev = this.#prev;
    for (let s = 0; s < steps; s++) {
      for (let j = 1; j <= ny; j++) {
        let idx = j * w + 1;
        for (let i = 0; i < nx; i++, idx++) {
          const c = u[idx];
          const lap = u[idx - 1] + u[idx + 1] + u[idx - w] + u[idx + w] -
            4 * c;
          prev[idx] = (2 * c - prev[idx] + k * lap) * damping;
        }
      }
      const next = prev;
      prev = u;
      u = next;
    }
    this.#u = u;
    this.#prev = prev;
    this.#step += steps;
  }

  /** The field, row-major, `width × height` (a copy). */
  field(): Float32Array {
    const out = new Float32Array(this.width * this.height);
    const w = this.width + 2;
    for (let y = 0; y < this.height; y++) {
      const row = (y + 1) * w + 1;
      out.set(this.#u.subarray(row, row + this.width), y * this.width);
    }
    return out;
  }
}
