// Process exit: scripts run in a child process of this runtime's own
// executable and must exit on their own, within a deadline.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildResult, runScript as runChild } from "./helpers.ts";

/** How long a script may take to exit on its own (it needs well under this). */
const EXIT_DEADLINE_MS = 45_000;

/** Runs a script of `fixtures/exit_scripts/` and waits for it to exit, up to the deadline. */
function runScript(name: string): Promise<ChildResult> {
  return runChild(
    new URL(`./fixtures/exit_scripts/${name}.ts`, import.meta.url),
    { timeoutMs: EXIT_DEADLINE_MS },
  );
}

function assertExited(result: ChildResult): void {
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
