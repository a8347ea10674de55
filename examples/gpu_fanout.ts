/**
 * Fan-out from device code: the GPU actor `sensor` publishes each reading
 * with `rk_publish` on a topic (`readings/temperature` or
 * `readings/humidity`); the host delivers each publication to every matching
 * subscriber: a host handler on `readings/#` and the CPU actor `tally`,
 * subscribed to `readings/+`, which replies with what reached it. It prints
 * what each subscriber received and each kernel's accounting.
 *
 * Without CUDA (no GPU, and `RINGKERNEL_LIBCUDA` not pointing at the CPU
 * emulator of the driver), or without libnvrtc to compile the sensor's CUDA
 * C++, it says so and runs the CPU-backend equivalent: the same actors, the
 * sensor publishing with `ctx.publish`, with the same results.
 *
 * Run: `deno run -A examples/gpu_fanout.ts` or `bun examples/gpu_fanout.ts`
 *
 * @module
 */

import {
  type BackendRequest,
  type EchoFields,
  type Kernel,
  RingKernel,
} from "../mod.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import type { KernelAccount } from "./gpu_pipeline.ts";

/** What the example did, for its test. */
export interface GpuFanoutResult {
  /** Where the sensor ran: `"cuda"` (a GPU actor) or `"cpu"`. */
  ranOn: string;
  /** The sensor's answers to the calls (0: published). */
  codes: number[];
  /** What the host handler on `readings/#` received: `topic value`. */
  host: string[];
  /** What `tally` replied: `{ seq, value, tag }` (`tag`: how many so far). */
  tally: { seq: number; value: number; tag: number }[];
  /** Each kernel's accounting, by name. */
  accounts: Record<string, KernelAccount>;
}

const ACTORS = new URL("./actors/gpu_sensor.ts", import.meta.url);

/** Runs the example on `backend` (default `"auto"`) with `count` readings. */
export async function main(
  backend: BackendRequest = "auto",
  count = 6,
): Promise<GpuFanoutResult> {
  await using rt = await RingKernel.create({ backend, quiet: true });
  const onGpu = rt.backend === "cuda" && Nvrtc.probe().available;
  if (!onGpu) {
    console.log(
      rt.backend === "cuda"
        ? "libnvrtc is unavailable (the sensor's CUDA C++ cannot be compiled):"
        : "CUDA is unavailable (no GPU, and RINGKERNEL_LIBCUDA does not point at the emulator):",
      "running the CPU-backend equivalent (the sensor publishes with ctx.publish)",
    );
  }
  const tally = await rt.launch<EchoFields, EchoFields>("tally", {
    actor: { module: ACTORS, export: "tally" },
    placement: "cpu",
  });
  const sensor = await rt.launch<EchoFields, EchoFields>("sensor", {
    actor: { module: ACTORS, export: "sensor" },
    placement: onGpu ? "gpu" : "cpu",
  });
  const host: string[] = [];
  using _all = rt.subscribe("readings/#", (message, topic) => {
    host.push(`${topic} ${(message as { value: number }).value}`);
  });
  using _some = rt.subscribeKernel(tally, "readings/+");

  // One call at a time: the publications come out in the order sent.
  const codes: number[] = [];
  for (let i = 0; i < count; i++) {
    const reply = await sensor.call(
      { seq: BigInt(i), value: 20 + i / 2, tag: i % 2 },
      { timeoutMs: 10_000 },
    );
    codes.push(reply.tag);
  }
  const heard: GpuFanoutResult["tally"] = [];
  for (let i = 0; i < count; i++) {
    const m = await tally.receive({ timeoutMs: 10_000 });
    heard.push({ seq: Number(m.seq), value: m.value, tag: m.tag });
  }
  // The host handler may hear the last publication a moment after tally.
  const waitUntil = performance.now() + 10_000;
  const kernels: Kernel[] = [sensor, tally];
  while (
    (host.length < count || kernels.some((k) => k.metrics().inFlight > 0)) &&
    performance.now() < waitUntil
  ) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const accounts: Record<string, KernelAccount> = {};
  for (const k of kernels) {
    const m = k.metrics();
    accounts[k.name] = {
      backend: k.backend,
      sent: m.sent,
      processed: m.processed,
      deadLettered: m.deadLettered,
    };
  }

  console.log(
    `ran on ${onGpu ? "the GPU (CUDA backend)" : "the CPU backend"}: ` +
      `sensor (${sensor.backend}) publishes, tally (${tally.backend}) and a host handler subscribe`,
  );
  console.log(`  sensor's answers: ${codes.join(", ")} (0: published)`);
  for (const line of host) console.log(`  host handler on readings/#: ${line}`);
  for (const m of heard) {
    console.log(
      `  tally on readings/+: seq ${m.seq}, value ${m.value} (#${m.tag})`,
    );
  }
  for (const [name, a] of Object.entries(accounts)) {
    console.log(
      `  ${name} (${a.backend}): sent ${a.sent}, processed ${a.processed}, dead-lettered ${a.deadLettered}`,
    );
  }
  return { ranOn: onGpu ? "cuda" : "cpu", codes, host, tally: heard, accounts };
}

if (import.meta.main) await main();
