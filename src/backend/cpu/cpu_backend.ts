/**
 * The CPU backend: every actor is a persistent loop in its own Worker, over
 * a SharedArrayBuffer laid out exactly like a GPU actor's mapped memory.
 *
 * @module
 */

import type {
  ActorHost,
  ActorHostEvents,
  ActorSpawnSpec,
  Backend,
} from "../backend.ts";
import { CpuActorHost } from "./cpu_actor.ts";
import type { RouteEntry } from "./protocol.ts";

/** Runs actors in Workers. */
export class CpuBackend implements Backend {
  readonly kind = "cpu" as const;
  #actors = new Map<string, CpuActorHost>();
  /** How many actors run: their loops read it (see `StartMessage.load`). */
  readonly #load = new Int32Array(new SharedArrayBuffer(4));

  spawn(spec: ActorSpawnSpec, events: ActorHostEvents): ActorHost {
    return new CpuActorHost(
      spec,
      events,
      () => this.#routesFor(spec.name),
      this.#load.buffer as SharedArrayBuffer,
    );
  }

  #routesFor(except: string): RouteEntry[] {
    const routes: RouteEntry[] = [];
    for (const [name, host] of this.#actors) {
      if (name !== except) routes.push(host.route());
    }
    return routes;
  }

  updateRoutes(actors: ReadonlyMap<string, ActorHost>): void {
    this.#actors = new Map();
    for (const [name, host] of actors) {
      if (host instanceof CpuActorHost) this.#actors.set(name, host);
    }
    Atomics.store(this.#load, 0, this.#actors.size);
    for (const [name, host] of this.#actors) {
      host.updateRoutes(this.#routesFor(name));
    }
  }

  close(): Promise<void> {
    this.#actors.clear();
    return Promise.resolve();
  }
}
