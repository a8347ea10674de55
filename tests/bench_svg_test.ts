import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  compactNumber,
  escapeXml,
  linearTicks,
  lineChart,
  logTicks,
} from "../bench/harness/svg.ts";

describe("SVG charts", () => {
  test("text is escaped", () => {
    assert.equal(escapeXml(`a<b & "c">`), "a&lt;b &amp; &quot;c&quot;&gt;");
  });

  test("numbers are compact", () => {
    assert.equal(compactNumber(1_500_000), "1.5M");
    assert.equal(compactNumber(2000), "2k");
    assert.equal(compactNumber(12.5), "12.5");
    assert.equal(compactNumber(0.05), "0.05");
    assert.equal(compactNumber(3e9), "3G");
  });

  test("log ticks step 1-2-5 over narrow ranges and by decades over wide ones", () => {
    assert.deepEqual(logTicks(1, 100), [1, 2, 5, 10, 20, 50, 100]);
    assert.deepEqual(logTicks(1, 1e6), [
      1,
      10,
      100,
      1000,
      10000,
      100000,
      1000000,
    ]);
  });

  test("linear ticks are round numbers within the range", () => {
    assert.deepEqual(linearTicks(0, 10), [0, 2, 4, 6, 8, 10]);
    const ticks = linearTicks(0, 4.3e6);
    assert.ok(ticks.every((t) => t >= 0 && t <= 4.3e6));
    assert.deepEqual(linearTicks(5, 5), [5]);
  });

  test("a chart is one SVG document with every series in its legend", () => {
    const svg = lineChart({
      title: "Latency <p50>",
      xLabel: "x",
      yLabel: "y",
      xTicks: [{ value: 0, label: "a" }, { value: 1, label: "b" }],
      yLog: true,
      series: [
        { name: "one & two", points: [[0, 1], [1, 10]], errors: [[0, 0.5, 2]] },
        { name: "three", points: [[0, 5], [1, -1]], dashed: true },
      ],
    });
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
    assert.ok(svg.includes("Latency &lt;p50&gt;"));
    assert.ok(svg.includes("one &amp; two"));
    assert.ok(svg.includes("three"));
    assert.ok(svg.includes("stroke-dasharray"));
    assert.ok(
      !svg.includes("NaN"),
      "non-positive values on a log axis are left out",
    );
  });
});
