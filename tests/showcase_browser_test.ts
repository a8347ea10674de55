// The showcases in a real browser: each server is started the way users start
// it (its own process, under the runtime running this test, `--port 0`),
// a headless Chromium (Debian's `chromium`) driven by playwright-core loads
// the page, and the test checks what a person would see: frames arriving and
// the canvas changing, a pulse spreading, pause and resume, TxMon's alerts
// and a hot rule reload. Screenshots go to $RINGKERNEL_SHOWCASE_OUT, else
// showcases/out/. Ctrl-C (SIGINT) must stop each server cleanly (exit 0).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT = process.env.RINGKERNEL_SHOWCASE_OUT ??
  join(ROOT, "showcases", "out");
const CANDIDATES = [
  process.env.RINGKERNEL_CHROMIUM,
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
].filter((p): p is string => typeof p === "string" && p !== "");
const BROWSER = CANDIDATES.find((p) => existsSync(p));
const SKIP = BROWSER === undefined
  ? `no Chromium installed (tried ${
    CANDIDATES.join(", ")
  }; apt-get install chromium)`
  : false;
if (SKIP) console.log(`showcase browser tests skipped: ${SKIP}`);

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
const RUNTIME = isBun ? "bun" : "deno";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

interface Served {
  url: string;
  output: string[];
  /** Ctrl-C (SIGINT); resolves with the exit status, or the signal that ended it. */
  interrupt(): Promise<number | string | null>;
}

/**
 * Starts a showcase server the way a user does, and reads its address.
 * Under Deno the child is a `Deno.Command` (node:child_process there reports
 * a child that exits on SIGINT as killed by it, whatever its status).
 */
async function startServer(script: string, args: string[]): Promise<Served> {
  const output: string[] = [];
  let exited!: Promise<number | string | null>;
  let kill!: (signal: "SIGINT" | "SIGKILL") => void;
  let addressed!: (url: string) => void;
  const address = new Promise<string>((resolve) => (addressed = resolve));
  const onText = (text: string) => {
    output.push(text);
    const match = output.join("").match(/open (http:\/\/\S+)/);
    if (match) addressed(match[1]);
  };
  if (isBun) {
    const child: ChildProcess = spawn(
      process.execPath,
      [script, "--port", "0", ...args],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
    );
    child.stdout!.on("data", (chunk: Buffer) => onText(chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => onText(chunk.toString()));
    exited = new Promise((resolve) =>
      child.on("exit", (code, signal) => resolve(code ?? signal))
    );
    kill = (signal) => child.kill(signal);
  } else {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, "--port", "0", ...args],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) onText(decoder.decode(chunk));
    };
    const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
    exited = child.status.then(async (s) => {
      await pumps;
      return s.signal ?? s.code;
    });
    kill = (signal) => {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    };
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const url = await Promise.race([
    address,
    exited.then((code) => {
      throw new Error(`${script} exited (${code}):\n${output.join("")}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        kill("SIGKILL");
        reject(
          new Error(
            `${script} printed no address in 60 s:\n${output.join("")}`,
          ),
        );
      }, 60_000);
    }),
  ]).finally(() => clearTimeout(timer));
  return {
    url,
    output,
    async interrupt() {
      const killer = setTimeout(() => kill("SIGKILL"), 20_000);
      kill("SIGINT");
      const status = await exited;
      clearTimeout(killer);
      return status;
    },
  };
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  while (true) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (performance.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe(
  `showcases in a browser (served by ${RUNTIME})`,
  { skip: SKIP },
  () => {
    // deno-lint-ignore no-explicit-any
    let context: any;
    let profile: string;
    before(async () => {
      const { chromium } = await import("playwright-core");
      profile = mkdtempSync(join(tmpdir(), "rk-chromium-"));
      mkdirSync(OUT, { recursive: true });
      context = await chromium.launchPersistentContext(profile, {
        executablePath: BROWSER,
        headless: true,
        args: FLAGS,
        viewport: { width: 1280, height: 860 },
      });
    });
    after(async () => {
      await context?.close();
      rmSync(profile, { recursive: true, force: true });
    });

    test("WaveSim: frames, a pulse that spreads, pause and resume", async () => {
      const served = await startServer("showcases/wavesim/server.ts", [
        "--calm",
      ]);
      let stopped: number | string | null;
      try {
        const page = await context.newPage();
        await page.goto(served.url);
        await waitFor(
          "frames",
          () => page.evaluate("wavesim.frames >= 3"),
        );

        // Frame rate the page sustains, drawing every frame it gets.
        const f0 = await page.evaluate("wavesim.frames");
        await new Promise((r) => setTimeout(r, 2_000));
        const fps = ((await page.evaluate("wavesim.frames")) - f0) / 2;
        console.log(
          `WaveSim 512×512 in Chromium, served by ${RUNTIME}: ${
            fps.toFixed(1)
          } frames/s`,
        );
        assert.ok(fps >= 5, `${fps} frames/s`);

        // Cells away from rest on the canvas (rest is black), and how wide
        // the lit region is.
        const lit = () =>
          page.evaluate(`(() => {
            const canvas = document.getElementById("field");
            const data = canvas.getContext("2d").getImageData(
              0,
              0,
              canvas.width,
              canvas.height,
            ).data;
            let n = 0;
            let left = canvas.width;
            let right = -1;
            for (let i = 0; i < data.length; i += 4) {
              if (data[i] + data[i + 1] + data[i + 2] > 24) {
                n++;
                const x = (i / 4) % canvas.width;
                if (x < left) left = x;
                if (x > right) right = x;
              }
            }
            return { n, width: right - left + 1 };
          })()`);
        assert.equal((await lit()).n, 0, "a calm grid starts at rest");

        // Drop a pulse: the canvas changes, and the lit region widens as it spreads.
        const box = await page.locator("#field").boundingBox();
        await page.mouse.click(
          box.x + box.width * 0.5,
          box.y + box.height * 0.5,
        );
        const first = await waitFor("the pulse", async () => {
          const seen = await lit();
          return seen.n > 0 ? seen : undefined;
        });
        const spread = await waitFor("the pulse to spread", async () => {
          const seen = await lit();
          return seen.width > first.width + 60 ? seen : undefined;
        });
        console.log(
          `pulse lit ${first.width} cells wide, then ${spread.width}`,
        );
        await page.mouse.click(
          box.x + box.width * 0.25,
          box.y + box.height * 0.3,
        );
        await page.mouse.click(
          box.x + box.width * 0.7,
          box.y + box.height * 0.75,
        );
        await new Promise((r) => setTimeout(r, 700));
        await waitFor(
          "telemetry",
          () => page.evaluate("(wavesim.telemetry?.tiles.length ?? 0) === 4"),
        );
        await page.screenshot({ path: join(OUT, "showcase-wavesim.png") });

        // Pause: the actors are deactivated, frames and steps stop.
        await page.click("#pause");
        await waitFor("paused", () =>
          page.evaluate(
            'wavesim.paused && wavesim.telemetry?.tiles.every((t) => t.state === "deactivated")',
          ));
        const held = await page.evaluate("wavesim.frames");
        const heldStep = await page.evaluate("wavesim.step");
        await new Promise((r) => setTimeout(r, 600));
        assert.ok((await page.evaluate("wavesim.frames")) <= held + 1);
        // Resume: steps go on past where they stopped.
        await page.click("#pause");
        await waitFor(
          "steps after resume",
          () => page.evaluate(`wavesim.step > ${heldStep + 10}`),
        );
        await page.close();
      } finally {
        stopped = await served.interrupt();
      }
      assert.equal(
        stopped,
        0,
        `Ctrl-C stops it cleanly:\n${served.output.join("")}`,
      );
    });

    test("TxMon: alerts appear, a rule reloads while transactions flow", async () => {
      const served = await startServer("showcases/txmon/server.ts", [
        "--rate",
        "3000",
      ]);
      let stopped: number | string | null;
      try {
        const page = await context.newPage();
        await page.goto(served.url);
        await waitFor(
          "alerts",
          () => page.evaluate("txmon.alerts.length >= 10"),
        );
        const rows = await page.locator("#alerts tbody tr").count();
        assert.ok(rows > 0);
        const stats = await page.locator("#stats").textContent();
        assert.match(stats, /tx\/s/);

        // Hot reload: the amount rule's threshold from 900 to 300.
        const form = page.locator('form[data-rule="amount"]');
        await form.locator('input[name="a"]').fill("300");
        await form.locator("button").click();
        await waitFor(
          "version 2 of the amount rule",
          () =>
            page.evaluate(
              'txmon.rules?.rules.find((r) => r.rule === "amount")?.version === 2',
            ),
        );
        const fresh = await waitFor(
          "alerts under the new threshold",
          () =>
            page.evaluate(
              'txmon.alerts.find((a) => a.rule === "amount" && a.version === 2 && a.amount < 900)',
            ),
        );
        assert.ok((fresh as { amount: number }).amount >= 300);
        const gaps = await page.evaluate(
          "txmon.rules.rules.map((r) => r.gaps)",
        );
        assert.deepEqual(gaps, ["0", "0", "0", "0"]);
        await new Promise((r) => setTimeout(r, 500));
        await page.screenshot({ path: join(OUT, "showcase-txmon.png") });
        await page.close();
      } finally {
        stopped = await served.interrupt();
      }
      assert.equal(
        stopped,
        0,
        `Ctrl-C stops it cleanly:\n${served.output.join("")}`,
      );
    });
  },
);
