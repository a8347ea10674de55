// Process exit: scripts run in a child process of this runtime's own
// executable and must exit on their own, within a deadline.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** How long a script may take to exit on its own (it needs well under this). */
const EXIT_DEADLINE_MS = 45_000;

interface Exit {
  /** Exit code, or null when the deadline killed it. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a script of `fixtures/exit_scripts/` and waits for it to exit, up to the deadline. */
function runScript(name: string): Promise<Exit> {
  const file = fileURLToPath(
    new URL(`./fixtures/exit_scripts/${name}.ts`, import.meta.url),
  );
  const args = "Deno" in globalThis ? ["run", "-A", file] : [file];
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => stdout += chunk);
  child.stderr!.on("data", (chunk) => stderr += chunk);
  return new Promise((resolve) => {
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, EXIT_DEADLINE_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: killed ? null : code, stdout, stderr });
    });
  });
}

function assertExited(result: Exit): void {
  assert.notEqual(
    result.code,
    null,
    `the script did not exit within ${EXIT_DEADLINE_MS} ms; stdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
  );
  assert.equal(result.code, 0, `stderr:\n${result.stderr}`);
}

describe("process exit", () => {
  test("a launch still starting when `await using` disposes the runtime leaves no Worker", async () => {
    const result = await runScript("launch_race");
    assertExited(result);
    assert.match(result.stdout, /launch failed: RingKernelError/);
    assert.match(result.stdout, /listed after shutdown: \[\]/);
  });

  test("the loser of two launches with one name leaves no Worker", async () => {
    const result = await runScript("same_name");
    assertExited(result);
    assert.match(result.stdout, /first: launched, second: InvalidStateError/);
  });

  test("failed launches leave nothing that holds the process, without shutdown", async () => {
    const result = await runScript("failed_launches");
    assertExited(result);
    assert.match(result.stdout, /clone: InvalidOptionError/);
    assert.match(result.stdout, /batch: InvalidOptionError/);
    assert.match(result.stdout, /init: RingKernelError/);
    assert.match(result.stdout, /listed: \[\]/);
  });

  test("a script that forgets shutdown() exits once nothing waits", async () => {
    const result = await runScript("forgot_shutdown");
    assertExited(result);
    assert.match(result.stdout, /reply: 2.5/);
  });
});
