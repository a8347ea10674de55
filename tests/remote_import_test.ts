// The library imported from a URL, the way a JSR or https: import loads it:
// a Deno process imports mod.ts from a local HTTP server over this
// repository, launches the built-in echo actor and calls it. On the CPU
// backend the actor's Worker comes from that URL too; on the CUDA backend
// (a GPU, or the CPU emulator of the driver) the kernel bundle is fetched
// into the cache first.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { detectRuntime } from "../ffi/js_runtime.ts";
import { resolveRuntime } from "../bench/harness/spawn.ts";
import { gpuTestOptions, requireGpu } from "./gpu_gate.ts";
import { serveDirectory, type StaticServer } from "./fixtures/static_server.ts";
import { described, lastJson, runProcess } from "./helpers.ts";

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));

const deno = detectRuntime() === "deno"
  ? resolveRuntime("deno", { root: REPO_ROOT })
  : undefined;
const skip = deno === undefined
  ? "imports over http: are Deno's (Bun runs the package from local files)"
  : deno.available
  ? undefined
  : deno.reason;

const CLIENT = new URL("./fixtures/echo_client.ts", import.meta.url);

describe("the library imported from a URL", () => {
  let server: StaticServer;
  let work: string;

  before(async () => {
    if (skip) return;
    server = await serveDirectory(REPO_ROOT);
    work = mkdtempSync(join(os.tmpdir(), "rk-remote-"));
    copyFileSync(CLIENT, join(work, "main.ts"));
  });

  after(async () => {
    await server?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  // Asynchronous: the server answering the child runs on this event loop.
  async function run(backend: string) {
    const child = await runProcess(
      deno!.path,
      ["run", "-A", "--quiet", "main.ts", `${server.url}mod.ts`, backend],
      {
        cwd: work,
        timeoutMs: 120_000,
        env: {
          DENO_DIR: join(work, "deno_dir"),
          RINGKERNEL_CACHE_DIR: join(work, "kernels"),
          NO_COLOR: "1",
        },
      },
    );
    assert.equal(child.code, 0, described(child));
    return lastJson(child.stdout);
  }

  test("runs an actor on the CPU backend, its Worker loaded from the URL", {
    skip,
  }, async () => {
    assert.deepEqual(await run("cpu"), {
      backend: "cpu",
      reply: { seq: "9", value: 1.5, tag: 3 },
    });
    assert.ok(server.requests.includes("/src/backend/cpu/actor_worker.ts"));
  });

  test(
    "runs an actor on the CUDA backend, its kernel bundle fetched into the cache",
    skip ? { skip } : gpuTestOptions(),
    async () => {
      requireGpu();
      assert.deepEqual(await run("cuda"), {
        backend: "cuda",
        reply: { seq: "9", value: 1.5, tag: 3 },
      });
      assert.ok(server.requests.includes("/cuda/bundle/manifest.json"));
      const cached = readdirSync(join(work, "kernels"));
      assert.equal(cached.length, 1);
      assert.match(cached[0], /^kernels-[0-9a-f]{24}$/);
    },
  );
});
