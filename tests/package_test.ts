// The npm package, as a Bun user gets it: `npm pack` of this repository,
// installed into a fresh project with `bun install` (no network: the package
// has no dependencies), then a script that imports "ringkernel-ts" runs the
// built-in echo actor on the CPU backend, and on the CUDA backend where it
// works (a GPU, or the CPU emulator of the driver).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { findOnPath, resolveRuntime } from "../bench/harness/spawn.ts";
import { gpuTestOptions, requireGpu } from "./gpu_gate.ts";

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));
const bun = resolveRuntime("bun", { root: REPO_ROOT });
const npm = findOnPath("npm");
const skip = npm === undefined
  ? "npm is not on PATH"
  : bun.available
  ? undefined
  : bun.reason;

const CLIENT = new URL("./fixtures/echo_client.ts", import.meta.url);

const run = (file: string, args: string[], cwd: string) =>
  execFileSync(file, args, {
    cwd,
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });

describe("the npm package", () => {
  let work: string;
  let files: string[] = [];

  before(() => {
    if (skip) return;
    work = mkdtempSync(join(os.tmpdir(), "rk-package-"));
    const packed = JSON.parse(
      run(
        npm!,
        ["pack", "--json", "--pack-destination", work, REPO_ROOT],
        work,
      ),
    );
    files = packed[0].files.map((f: { path: string }) => f.path).sort();
    const app = join(work, "app");
    mkdirSync(app);
    writeFileSync(
      join(app, "package.json"),
      JSON.stringify({
        name: "app",
        private: true,
        type: "module",
        dependencies: { "ringkernel-ts": `file:../${packed[0].filename}` },
      }),
    );
    copyFileSync(CLIENT, join(app, "main.ts"));
    run(bun.path, ["install", "--no-progress"], app);
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const echo = (backend: string) =>
    JSON.parse(
      run(bun.path, ["main.ts", "ringkernel-ts", backend], join(work, "app"))
        .trim().split("\n")
        .at(-1)!,
    );

  test("holds the library, its kernel bundle and sources, and nothing else", {
    skip,
  }, () => {
    const top = new Set(files.map((f) => f.split("/")[0]));
    assert.deepEqual(
      [...top].sort(),
      [
        "CHANGELOG.md",
        "LICENSE",
        "README.md",
        "clock.ts",
        "cluster.ts",
        "cuda",
        "cuda.ts",
        "ffi",
        "layout.ts",
        "mod.ts",
        "package.json",
        "schemas.ts",
        "src",
      ],
    );
    const bundle = readdirSync(join(REPO_ROOT, "cuda", "bundle")).map((f) =>
      `cuda/bundle/${f}`
    );
    for (const file of [...bundle, "cuda/ringkernel.cuh"]) {
      assert.ok(files.includes(file), file);
    }
    assert.ok(files.includes("src/backend/cpu/actor_worker.ts"));
  });

  test("exports its sub-paths", { skip }, () => {
    const app = join(work, "app");
    writeFileSync(
      join(app, "subpaths.ts"),
      `import { defineGpuActor } from "ringkernel-ts/cuda";
import { EchoMessage } from "ringkernel-ts/schemas";
import { HybridClock } from "ringkernel-ts/clock";
import { ENVELOPE } from "ringkernel-ts/layout";
console.log(JSON.stringify([
  typeof defineGpuActor,
  EchoMessage.name,
  typeof HybridClock,
  ENVELOPE.cName,
]));
`,
    );
    const out = run(bun.path, ["subpaths.ts"], app).trim().split("\n").at(-1)!;
    assert.deepEqual(JSON.parse(out), [
      "function",
      "ringkernel.Echo",
      "function",
      "rk_envelope",
    ]);
  });

  test("runs an actor on the CPU backend under Bun", { skip }, () => {
    assert.deepEqual(echo("cpu"), {
      backend: "cpu",
      reply: { seq: "9", value: 1.5, tag: 3 },
    });
  });

  test(
    "runs an actor on the CUDA backend under Bun",
    skip ? { skip } : gpuTestOptions(),
    () => {
      requireGpu();
      assert.deepEqual(echo("cuda"), {
        backend: "cuda",
        reply: { seq: "9", value: 1.5, tag: 3 },
      });
    },
  );
});
