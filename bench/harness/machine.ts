/**
 * What a benchmark ran on: CPU model and cores, memory, operating system,
 * load, and the GPU with its driver when one is present (through
 * `nvidia-smi`, so this works without loading the CUDA driver).
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";

/** The machine a run used. */
export interface MachineInfo {
  /** CPU model as the OS reports it. */
  readonly cpuModel: string;
  /** Logical CPUs. */
  readonly cores: number;
  /** Physical memory, GiB. */
  readonly memoryGiB: number;
  /** Operating system (distribution name when known). */
  readonly os: string;
  /** Kernel release. */
  readonly kernel: string;
  /** CPU architecture. */
  readonly arch: string;
  /** 1-, 5- and 15-minute load averages when the run started. */
  readonly loadAverageStart: readonly number[];
  /** The same when it ended (filled in by the suite). */
  loadAverageEnd: readonly number[];
}

/** The GPU, or why there is none. */
export interface GpuInfo {
  /** Whether an NVIDIA GPU answered. */
  readonly present: boolean;
  /** Card name, e.g. "NVIDIA H200". */
  readonly name?: string;
  /** Driver version. */
  readonly driver?: string;
  /** Memory as nvidia-smi reports it. */
  readonly memory?: string;
  /** How it was found, or why not. */
  readonly detail: string;
}

function distribution(): string {
  try {
    const text = readFileSync("/etc/os-release", "utf8");
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(text)?.[1];
    if (pretty) return pretty;
  } catch {
    // Not Linux, or no os-release: the generic name follows.
  }
  return `${os.type()} ${os.release()}`;
}

/** Reads the machine's description. */
export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model?.trim() || "unknown CPU",
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    os: distribution(),
    kernel: os.release(),
    arch: os.arch(),
    loadAverageStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    loadAverageEnd: [],
  };
}

/** Parses the first line of `nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader`. */
export function parseNvidiaSmi(
  output: string,
): { name: string; driver: string; memory: string } | undefined {
  const line = output.split("\n").map((l) => l.trim()).find((l) => l !== "");
  if (line === undefined) return undefined;
  const [name, driver, memory] = line.split(",").map((s) => s.trim());
  if (!name || !driver) return undefined;
  return { name, driver, memory: memory ?? "" };
}

/** Asks `nvidia-smi` for the first GPU. */
export function gpuInfo(): GpuInfo {
  const probe = spawnSync(
    "nvidia-smi",
    ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
    { encoding: "utf8", timeout: 20_000 },
  );
  if (probe.error !== undefined) {
    const code = (probe.error as { code?: string }).code;
    return {
      present: false,
      detail: code === "ENOENT"
        ? "no nvidia-smi on this machine"
        : `nvidia-smi failed: ${probe.error.message}`,
    };
  }
  if (probe.status !== 0) {
    return {
      present: false,
      detail: `nvidia-smi exited with ${probe.status}: ${
        (probe.stderr ?? "").trim()
      }`,
    };
  }
  const parsed = parseNvidiaSmi(probe.stdout);
  if (parsed === undefined) {
    return { present: false, detail: "nvidia-smi listed no GPU" };
  }
  return { present: true, ...parsed, detail: "nvidia-smi" };
}

/** A file-name-safe slug for the machine: the GPU when present, else CPU model and cores. */
export function machineSlug(
  machine: Pick<MachineInfo, "cpuModel" | "cores">,
  gpu: GpuInfo,
): string {
  const clean = (text: string) =>
    text.toLowerCase()
      .replace(/\(r\)|\(tm\)|\bcpu\b|\bprocessor\b|@.*$/g, " ")
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "");
  if (gpu.present && gpu.name) {
    return clean(gpu.name.replace(/^NVIDIA\s+/i, "")) || "gpu";
  }
  return `${clean(machine.cpuModel) || "cpu"}-${machine.cores}c`;
}
