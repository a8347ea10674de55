/**
 * A small HTTP and WebSocket server for the showcases, on `Deno.serve` under
 * Deno and `Bun.serve` under Bun: it serves the files of one folder (the
 * page, its script and style; nothing from elsewhere, so the pages work
 * offline) and hands WebSocket connections on `/ws` to the showcase.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import process from "node:process";

/** One page connection, the same under both runtimes. */
export interface ShowcaseSocket {
  /** Sends a text or binary message (dropped when the socket is closed). */
  send(data: string | Uint8Array): void;
  /** Closes the connection. */
  close(): void;
}

/** What a showcase does with its page connections. */
export interface SocketHandlers {
  /** A page connected. */
  open(socket: ShowcaseSocket): void;
  /** A page sent a text message (binary messages are ignored). */
  message(socket: ShowcaseSocket, text: string): void;
  /** A page went away. */
  close(socket: ShowcaseSocket): void;
}

/** Options of {@linkcode serveShowcase}. */
export interface ServeOptions {
  /** The folder whose files are served (`/` is its `index.html`). */
  publicDir: URL;
  /** Port (default 8000; 0 picks a free one). */
  port?: number;
  /** Interface (default 127.0.0.1). */
  hostname?: string;
  /** The WebSocket handlers for `/ws`. */
  socket: SocketHandlers;
}

/** A running server. */
export interface ShowcaseServer {
  /** The page's address, e.g. `http://127.0.0.1:8000/`. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** Stops listening and closes the connections. */
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  png: "image/png",
  svg: "image/svg+xml",
  ico: "image/x-icon",
};

/** The file of `publicDir` that `pathname` names, or undefined (no `..`, no hidden files). */
function resolveFile(publicDir: URL, pathname: string): URL | undefined {
  const name = pathname === "/" ? "index.html" : pathname.slice(1);
  if (!/^[a-z0-9_-]+\.[a-z]+$/i.test(name)) return undefined;
  return new URL(name, publicDir);
}

/** Files both showcases use (the base stylesheet), served when a showcase has no file of that name. */
const SHARED_PUBLIC = new URL("./public/", import.meta.url);

async function staticResponse(
  publicDir: URL,
  pathname: string,
): Promise<Response> {
  const file = resolveFile(publicDir, pathname);
  if (file === undefined) return new Response("not found", { status: 404 });
  try {
    const body = new Uint8Array(
      await readFile(file).catch(() =>
        readFile(resolveFile(SHARED_PUBLIC, pathname)!)
      ),
    );
    const ext = pathname === "/" ? "html" : pathname.split(".").pop()!;
    return new Response(body, {
      headers: {
        "content-type": TYPES[ext] ?? "application/octet-stream",
        "cache-control": "no-store",
      },
    });
  } catch {
    return new Response("not found", { status: 404 });
  }
}

interface BunWebSocket {
  send(data: string | Uint8Array): number;
  close(): void;
  data: { socket?: ShowcaseSocket };
}

interface BunServer {
  port: number;
  upgrade(request: Request, options: { data: unknown }): boolean;
  stop(closeActive?: boolean): Promise<void> | void;
}

declare const Bun: {
  serve(options: {
    port: number;
    hostname: string;
    fetch(
      request: Request,
      server: BunServer,
    ): Response | Promise<Response> | undefined;
    websocket: {
      open(ws: BunWebSocket): void;
      message(ws: BunWebSocket, message: string | Uint8Array): void;
      close(ws: BunWebSocket): void;
    };
  }): BunServer;
};

/** Starts the server; resolves once it listens. */
export function serveShowcase(options: ServeOptions): Promise<ShowcaseServer> {
  const port = options.port ?? 8000;
  const hostname = options.hostname ?? "127.0.0.1";
  const { publicDir, socket: handlers } = options;
  if (typeof (globalThis as { Bun?: unknown }).Bun !== "undefined") {
    const sockets = new Set<BunWebSocket>();
    const server = Bun.serve({
      port,
      hostname,
      fetch(request, server) {
        const { pathname } = new URL(request.url);
        if (pathname === "/ws") {
          if (server.upgrade(request, { data: {} })) return undefined;
          return new Response("expected a WebSocket", { status: 400 });
        }
        return staticResponse(publicDir, pathname);
      },
      websocket: {
        open(ws) {
          sockets.add(ws);
          const socket: ShowcaseSocket = {
            send: (data) => void ws.send(data),
            close: () => ws.close(),
          };
          ws.data.socket = socket;
          handlers.open(socket);
        },
        message(ws, message) {
          if (typeof message === "string" && ws.data.socket) {
            handlers.message(ws.data.socket, message);
          }
        },
        close(ws) {
          sockets.delete(ws);
          if (ws.data.socket) handlers.close(ws.data.socket);
        },
      },
    });
    return Promise.resolve({
      url: `http://${hostname}:${server.port}/`,
      port: server.port,
      async close() {
        for (const ws of sockets) ws.close();
        await server.stop(true);
      },
    });
  }
  return new Promise((resolve) => {
    const sockets = new Set<WebSocket>();
    const server = Deno.serve({
      port,
      hostname,
      onListen: ({ port }) =>
        resolve({
          url: `http://${hostname}:${port}/`,
          port,
          async close() {
            for (const ws of sockets) ws.close();
            await server.shutdown();
          },
        }),
    }, (request) => {
      const { pathname } = new URL(request.url);
      if (pathname !== "/ws") return staticResponse(publicDir, pathname);
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("expected a WebSocket", { status: 400 });
      }
      const { socket: ws, response } = Deno.upgradeWebSocket(request);
      ws.binaryType = "arraybuffer";
      const socket: ShowcaseSocket = {
        send(data) {
          if (ws.readyState === WebSocket.OPEN) ws.send(data);
        },
        close: () => ws.close(),
      };
      ws.onopen = () => {
        sockets.add(ws);
        handlers.open(socket);
      };
      ws.onmessage = (event) => {
        if (typeof event.data === "string") {
          handlers.message(socket, event.data);
        }
      };
      ws.onclose = () => {
        if (sockets.delete(ws)) handlers.close(socket);
      };
      return response;
    });
  });
}

/** Reads `--name value` and `--flag` arguments. */
export function parseArgs(
  args: readonly string[],
): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("--")) continue;
    const eq = arg.indexOf("=");
    if (eq > 0) {
      out[arg.slice(2, eq)] = arg.slice(eq + 1);
    } else if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
      out[arg.slice(2)] = args[++i];
    } else {
      out[arg.slice(2)] = true;
    }
  }
  return out;
}

/** The program's arguments under Deno and Bun. */
export function programArgs(): string[] {
  return process.argv.slice(2);
}

/**
 * Calls `stop` on the first Ctrl-C (SIGINT) or SIGTERM, then exits; a
 * second Ctrl-C exits at once.
 */
export function stopOnSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = () => {
    if (stopping) process.exit(130);
    stopping = true;
    console.log("\nstopping…");
    stop().then(
      () => process.exit(0),
      (error) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  if (typeof (globalThis as { Bun?: unknown }).Bun === "undefined") {
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
  } else {
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }
}

/** A number argument, or `fallback`. */
export function numberArg(
  args: Record<string, string | true>,
  name: string,
  fallback: number,
): number {
  const value = args[name];
  if (value === undefined || value === true) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) {
    throw new RangeError(`--${name}: not a number: ${value}`);
  }
  return n;
}
