// Kernel files for a library loaded from a URL: fetched from a local HTTP
// server over a copy of cuda/, checked against the manifest, cached, reused,
// repaired, and refused with a LibraryLoadError when anything is off.
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { LibraryLoadError } from "../src/errors.ts";
import { KernelBundle, readBundleManifest } from "../src/cuda/bundle.ts";
import {
  CACHE_DIR_ENV_VAR,
  defaultKernelCacheDir,
  fetchKernelFiles,
  prepareKernelFiles,
} from "../src/cuda/kernel_fetch.ts";
import { shippedCudaDir } from "../src/cuda/kernel_files.ts";
import { delay } from "../src/async.ts";
import { serveDirectory, type StaticServer } from "./fixtures/static_server.ts";

const CUDA_DIR = fileURLToPath(new URL("../cuda/", import.meta.url));
const manifest = readBundleManifest(join(CUDA_DIR, "bundle"));
const IMAGE_PATHS = manifest.outputs.map((o) => `/bundle/${o.file}`);

describe("kernel files fetched from a URL", () => {
  let root: string;
  let cache: string;
  let server: StaticServer;

  beforeEach(async () => {
    root = mkdtempSync(join(os.tmpdir(), "rk-fetch-"));
    cpSync(join(CUDA_DIR, "bundle"), join(root, "served", "bundle"), {
      recursive: true,
    });
    cpSync(
      join(CUDA_DIR, "ringkernel.cuh"),
      join(root, "served", "ringkernel.cuh"),
    );
    cache = join(root, "cache");
    server = await serveDirectory(join(root, "served"));
  });

  afterEach(async () => {
    await server.close();
    rmSync(root, { recursive: true, force: true });
  });

  const cachedEntries = () => existsSync(cache) ? readdirSync(cache) : [];

  test("are fetched once, checked, and mirror cuda/ byte for byte", async () => {
    const dir = await fetchKernelFiles(server.url, { cacheDir: cache });
    assert.deepEqual(
      new Set(server.requests),
      new Set([
        "/bundle/manifest.json",
        ...IMAGE_PATHS,
        "/ringkernel.cuh",
      ]),
    );
    for (
      const file of [
        "manifest.json",
        ...manifest.outputs.map((o) => o.file),
      ]
    ) {
      assert.deepEqual(
        readFileSync(join(dir, "bundle", file)),
        readFileSync(join(CUDA_DIR, "bundle", file)),
        file,
      );
    }
    assert.deepEqual(
      readFileSync(join(dir, "ringkernel.cuh")),
      readFileSync(join(CUDA_DIR, "ringkernel.cuh")),
    );
    KernelBundle.open({ dir: join(dir, "bundle") }).verify();
    assert.deepEqual(cachedEntries(), [dir.slice(cache.length + 1)]);

    server.requests.length = 0;
    assert.equal(await fetchKernelFiles(server.url, { cacheDir: cache }), dir);
    assert.deepEqual(server.requests, ["/bundle/manifest.json"]);
  });

  test("a fetch that finds a sound copy published meanwhile keeps it", async () => {
    let release = () => {};
    server.override("/ringkernel.cuh", {
      after: new Promise<void>((resolve) => release = resolve),
    });
    const slow = fetchKernelFiles(server.url, { cacheDir: cache });
    // The slow fetch is past its cache check once it asks for the header.
    while (!server.requests.includes("/ringkernel.cuh")) await delay(5);
    server.override("/ringkernel.cuh", undefined);
    const dir = await fetchKernelFiles(server.url, { cacheDir: cache });
    // A reader of the published copy would see this file vanish if the slow
    // fetch replaced the copy.
    writeFileSync(join(dir, "in-use"), "");
    release();
    assert.equal(await slow, dir);
    assert.ok(existsSync(join(dir, "in-use")));
    assert.deepEqual(cachedEntries(), [dir.slice(cache.length + 1)]);
  });

  test("fetches that race publish one copy and leave no staging behind", async () => {
    const dirs = await Promise.all(
      [1, 2, 3].map(() => fetchKernelFiles(server.url, { cacheDir: cache })),
    );
    assert.equal(new Set(dirs).size, 1);
    assert.deepEqual(cachedEntries(), [dirs[0].slice(cache.length + 1)]);
    KernelBundle.open({ dir: join(dirs[0], "bundle") }).verify();
  });

  test("a damaged cached copy is fetched again", async () => {
    const dir = await fetchKernelFiles(server.url, { cacheDir: cache });
    const image = join(dir, "bundle", manifest.outputs[1].file);
    const bytes = readFileSync(image);
    bytes[100] ^= 0xff;
    writeFileSync(image, bytes);
    server.requests.length = 0;
    assert.equal(await fetchKernelFiles(server.url, { cacheDir: cache }), dir);
    assert.ok(server.requests.includes(IMAGE_PATHS[1]));
    KernelBundle.open({ dir: join(dir, "bundle") }).verify();
  });

  test("an image that does not match the manifest is refused, and nothing is cached", async () => {
    const path = IMAGE_PATHS[2];
    const body = new Uint8Array(readFileSync(join(root, "served", path)));
    body[body.length - 1] ^= 1;
    server.override(path, { body });
    await assert.rejects(
      fetchKernelFiles(server.url, { cacheDir: cache }),
      (error: unknown) =>
        error instanceof LibraryLoadError &&
        /is corrupt: sha256 [0-9a-f]{64}, manifest says/.test(error.message) &&
        error.tried[0] === new URL(path.slice(1), server.url).href,
    );
    assert.deepEqual(cachedEntries(), []);
  });

  test("a header that does not match the manifest is refused", async () => {
    server.override("/ringkernel.cuh", {
      body: new TextEncoder().encode("#pragma once\n"),
    });
    await assert.rejects(
      fetchKernelFiles(server.url, { cacheDir: cache }),
      /ringkernel\.cuh is corrupt: sha256/,
    );
    assert.deepEqual(cachedEntries(), []);
  });

  test("an HTTP error names the URL and the status", async () => {
    server.override("/bundle/manifest.json", { status: 404 });
    await assert.rejects(
      fetchKernelFiles(server.url, { cacheDir: cache }),
      (error: unknown) =>
        error instanceof LibraryLoadError &&
        error.message ===
          `cannot fetch ${server.url}bundle/manifest.json: HTTP 404`,
    );
  });

  test("a malformed manifest is refused", async () => {
    server.override("/bundle/manifest.json", {
      body: new TextEncoder().encode('{"format": 1}'),
    });
    await assert.rejects(
      fetchKernelFiles(server.url, { cacheDir: cache }),
      /manifest .*manifest\.json is invalid/,
    );
  });

  test("a server that never answers times out", async () => {
    server.override(IMAGE_PATHS[0], "hang");
    const started = performance.now();
    await assert.rejects(
      fetchKernelFiles(server.url, { cacheDir: cache, timeoutMs: 200 }),
      (error: unknown) =>
        error instanceof LibraryLoadError &&
        error.message.endsWith("were not fetched within 200 ms"),
    );
    assert.ok(performance.now() - started < 30_000);
    assert.deepEqual(cachedEntries(), []);
  });

  test("an unusable cache directory is a LibraryLoadError", async () => {
    const file = join(root, "not-a-directory");
    writeFileSync(file, "");
    await assert.rejects(
      fetchKernelFiles(server.url, { cacheDir: join(file, "cache") }),
      (error: unknown) =>
        error instanceof LibraryLoadError &&
        error.message.startsWith("cannot write the kernel cache"),
    );
  });

  test("a base URL without a trailing slash means the same directory", async () => {
    const dir = await fetchKernelFiles(server.url.replace(/\/$/, ""), {
      cacheDir: cache,
    });
    KernelBundle.open({ dir: join(dir, "bundle") }).verify();
  });
});

describe("kernel files of a library loaded from local files", () => {
  test("are where the library is, and nothing is fetched", async () => {
    assert.equal(shippedCudaDir(), CUDA_DIR);
    assert.equal(await prepareKernelFiles(), CUDA_DIR);
  });

  test("the default cache directory follows the environment", () => {
    const saved = {
      explicit: process.env[CACHE_DIR_ENV_VAR],
      xdg: process.env.XDG_CACHE_HOME,
      home: process.env.HOME,
    };
    try {
      delete process.env[CACHE_DIR_ENV_VAR];
      process.env.XDG_CACHE_HOME = "/xdg";
      assert.equal(defaultKernelCacheDir(), "/xdg/ringkernel");
      delete process.env.XDG_CACHE_HOME;
      process.env.HOME = "/home/someone";
      assert.equal(defaultKernelCacheDir(), "/home/someone/.cache/ringkernel");
      delete process.env.HOME;
      assert.throws(
        () => defaultKernelCacheDir(),
        (error: unknown) =>
          error instanceof LibraryLoadError &&
          error.message.includes(CACHE_DIR_ENV_VAR),
      );
      process.env[CACHE_DIR_ENV_VAR] = "/explicit";
      assert.equal(defaultKernelCacheDir(), "/explicit");
    } finally {
      for (
        const [name, value] of [
          [CACHE_DIR_ENV_VAR, saved.explicit],
          ["XDG_CACHE_HOME", saved.xdg],
        ] as const
      ) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});
