// The README's GPU examples run as they are written: the device API's pair
// (relay → doubler by rk_send, rk_publish to a host subscriber) is taken out
// of README.md, its package imports pointed at this checkout, written to a
// temporary module and run on a CUDA runtime, so the README cannot drift from
// what works. Skipped without a GPU (gpu_gate.ts); with
// RINGKERNEL_REQUIRE_GPU=1 it runs (on the emulator when RINGKERNEL_LIBCUDA
// points at it).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { pollUntil } from "../src/async.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import type { RingKernel } from "../src/runtime.ts";
import { gpuTest } from "./gpu_gate.ts";
import { assertAccounted, withRuntime } from "./helpers.ts";

const ROOT = new URL("../", import.meta.url);
const README = readFileSync(fileURLToPath(new URL("README.md", ROOT)), "utf8");

/** The first ```ts block after the text `marker` matches in the README. */
function readmeBlock(marker: RegExp): string {
  const at = README.search(marker);
  assert.ok(at >= 0, `README.md has ${marker}`);
  const start = README.indexOf("```ts\n", at);
  const end = README.indexOf("\n```\n", start);
  assert.ok(start >= 0 && end > start, `a ts block follows ${marker}`);
  return README.slice(start + "```ts\n".length, end + 1);
}

/** The block with its package imports pointed at this checkout. */
function localized(block: string): string {
  const entry = (path: string) =>
    JSON.stringify(pathToFileURL(fileURLToPath(new URL(path, ROOT))).href);
  return block
    .replaceAll('"@ringkernel/ringkernel/schemas"', entry("schemas.ts"))
    .replaceAll('"@ringkernel/ringkernel/cuda"', entry("cuda.ts"))
    .replaceAll('"@ringkernel/ringkernel"', entry("mod.ts"));
}

const PAIR_MARKER = /A\s+complete pair/;

const nvrtc = Nvrtc.probe();
const needsNvrtc = {
  skip: nvrtc.available
    ? undefined
    : `libnvrtc not installed: ${nvrtc.reason?.split("\n")[0]}`,
};

describe("README", () => {
  test("the device API's pair is a whole module", () => {
    const block = readmeBlock(PAIR_MARKER);
    assert.match(block, /export async function runPair\(rt: RingKernel\)/);
    assert.doesNotMatch(block, /launchGroup/, "two entries are two kernels");
    assert.match(localized(block), /from "file:/);
  });

  gpuTest(
    "the device API's pair runs as written",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "rk-readme-"));
      try {
        const file = join(dir, "pair.ts");
        writeFileSync(file, localized(readmeBlock(PAIR_MARKER)));
        const pair = await import(pathToFileURL(file).href) as {
          runPair(rt: RingKernel): Promise<{
            reply: { seq: bigint; value: number; tag: number };
            doubled: { seq: bigint; value: number; tag: number };
            topics: string[];
          }>;
        };
        await withRuntime({ backend: "cuda" }, async (rt) => {
          const { reply, doubled, topics } = await pair.runPair(rt);
          assert.equal(reply.tag, 0, "RK_SEND_OK");
          assert.equal(reply.value, 2);
          assert.equal(doubled.value, 4);
          assert.equal(doubled.seq, 1n);
          await pollUntil(() => topics.length === 1, { timeoutMs: 10_000 });
          assert.deepEqual(topics, ["relay/seen"]);
          for (const name of ["relay", "doubler"]) {
            const m = rt.getKernel(name).metrics();
            assertAccounted(m);
            assert.equal(m.sent, 1, `${name} took one message`);
          }
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    needsNvrtc,
  );
});
