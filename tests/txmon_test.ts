// TxMon: transactions flow from the generator through topic wildcards to the
// rules; a hot rule reload while they flow loses nothing (every rule saw
// every sequence number, no gap) and the next alerts carry the new version
// and obey the new threshold.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { RingKernel } from "../mod.ts";
import { type AlertEvent, TxMonitor } from "../showcases/txmon/monitor.ts";
import { RULES } from "../showcases/txmon/messages.ts";
import { runHeadless } from "../showcases/txmon/server.ts";

describe("TxMon", () => {
  test("hot reload of a rule while transactions flow: no loss, next alerts changed", async () => {
    await using rt = await RingKernel.create({ backend: "cpu" });
    const alerts: AlertEvent[] = [];
    const monitor = await TxMonitor.create({
      runtime: rt,
      rate: 4_000,
      onAlert: (a) => alerts.push(a),
    });
    try {
      monitor.start();
      await new Promise((r) => setTimeout(r, 600));
      const before = await monitor.status("amount");
      assert.equal(before.version, 1);
      assert.ok(before.seen > 0n, "transactions reached the rule");

      // Reload while the generator runs: the threshold goes from 900 to 400.
      const reloaded = await monitor.setRule("amount", { a: 400 });
      assert.equal(reloaded.version, 2);
      await new Promise((r) => setTimeout(r, 600));
      await monitor.stop();
      await monitor.drain({ timeoutMs: 30_000 });
      // The alerts published by now reach the host within a watch interval.
      await new Promise((r) => setTimeout(r, 200));

      const { generated } = monitor.figures();
      assert.ok(generated > 2_000, `generated ${generated}`);
      for (const rule of RULES) {
        const status = await monitor.status(rule);
        assert.equal(
          status.seen,
          BigInt(generated),
          `${rule} saw every transaction`,
        );
        assert.equal(
          status.gaps,
          0n,
          `${rule}: no gap in the sequence numbers`,
        );
        assert.equal(status.nextSeq, BigInt(generated));
      }

      const amount = alerts.filter((a) => a.rule === "amount");
      const v1 = amount.filter((a) => a.version === 1);
      const v2 = amount.filter((a) => a.version === 2);
      assert.ok(
        v1.length > 0 && v2.length > 0,
        `${v1.length} then ${v2.length}`,
      );
      assert.ok(v1.every((a) => a.amount >= 900));
      assert.ok(v2.every((a) => a.amount >= 400));
      assert.ok(v2.some((a) => a.amount < 900), "the new threshold shows");
      // Versions never go back: every v2 alert follows the last v1 alert.
      const lastV1 = v1.reduce((m, a) => a.seq > m ? a.seq : m, -1n);
      assert.ok(v2.every((a) => a.seq > lastV1));
      assert.ok(alerts.some((a) => a.rule === "velocity"), "bursts caught");
      assert.ok(alerts.some((a) => a.rule === "country"));
      assert.ok(alerts.some((a) => a.rule === "score"));
      assert.ok(alerts.every((a) => a.latencyMs >= 0 && a.latencyMs < 10_000));
    } finally {
      await monitor.close();
    }
  });

  test("headless mode prints throughput and latency", async () => {
    const lines: string[] = [];
    const figures = await runHeadless({
      rate: 3_000,
      seconds: 1,
      log: (line) => lines.push(line),
    });
    assert.ok(figures.generated > 1_000);
    assert.equal(figures.lost, 0);
    assert.ok(figures.alerts > 0);
    assert.ok(Number.isFinite(figures.p50Ms));
    assert.match(lines.join("\n"), /tx\/s/);
  });
});
