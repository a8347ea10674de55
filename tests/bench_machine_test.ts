import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  gpuInfo,
  machineInfo,
  machineSlug,
  parseNvidiaSmi,
} from "../bench/harness/machine.ts";

describe("machine description", () => {
  test("the machine is described from the OS", () => {
    const m = machineInfo();
    assert.ok(m.cores >= 1);
    assert.ok(m.cpuModel.length > 0);
    assert.ok(m.memoryGiB > 0);
    assert.equal(m.loadAverageStart.length, 3);
    assert.deepEqual(m.loadAverageEnd, []);
  });

  test("nvidia-smi CSV is parsed; empty output is no GPU", () => {
    assert.deepEqual(parseNvidiaSmi("NVIDIA H200, 580.65.06, 143771 MiB\n"), {
      name: "NVIDIA H200",
      driver: "580.65.06",
      memory: "143771 MiB",
    });
    assert.equal(parseNvidiaSmi("\n\n"), undefined);
    assert.equal(parseNvidiaSmi("garbage"), undefined);
  });

  test("the GPU probe always answers, with a reason when there is none", () => {
    const gpu = gpuInfo();
    assert.equal(typeof gpu.present, "boolean");
    assert.ok(gpu.detail.length > 0);
    if (gpu.present) assert.ok(gpu.name && gpu.driver);
  });

  test("file-name slugs name the card, else the CPU and its cores", () => {
    const none = { present: false, detail: "none" };
    assert.equal(
      machineSlug({ cpuModel: "AMD EPYC", cores: 2 }, none),
      "amd-epyc-2c",
    );
    assert.equal(
      machineSlug({
        cpuModel: "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz",
        cores: 28,
      }, none),
      "intel-xeon-e5-2680-v4-28c",
    );
    assert.equal(
      machineSlug({ cpuModel: "AMD EPYC", cores: 16 }, {
        present: true,
        name: "NVIDIA H200",
        driver: "580",
        detail: "",
      }),
      "h200",
    );
    assert.equal(machineSlug({ cpuModel: "???", cores: 4 }, none), "cpu-4c");
  });
});
