/**
 * A GPU → GPU → CPU pipeline: the GPU actor `scale` sends each result by name
 * (`rk_send`) to the GPU actor `shift`, which sends its own by name to the CPU
 * actor `collect`, which replies to the host. The host is not in the path of
 * the first send; the second goes through `shift`'s outbox, which the host
 * drains into `collect`'s inbox. It prints the results and each kernel's
 * accounting (sent = processed + dead-lettered).
 *
 * Without CUDA (no GPU, and `RINGKERNEL_LIBCUDA` not pointing at the CPU
 * emulator of the driver), or without libnvrtc to compile the stages' CUDA
 * C++, it says so and runs the CPU-backend equivalent: the same actors, with
 * their TypeScript handlers, in Workers, with the same results.
 *
 * Run: `deno run -A examples/gpu_pipeline.ts` or `bun examples/gpu_pipeline.ts`
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

/** One kernel's accounting. */
export interface KernelAccount {
  /** Where it ran: `"cuda"` or `"cpu"`. */
  backend: string;
  sent: number;
  processed: number;
  deadLettered: number;
}

/** What the example did, for its test. */
export interface GpuPipelineResult {
  /** Where the stages ran: `"cuda"` (GPU actors) or `"cpu"`. */
  ranOn: string;
  /** What reached the host, by seq: `{ seq, value, tag }`. */
  results: { seq: number; value: number; tag: number }[];
  /** Each kernel's accounting, by name. */
  accounts: Record<string, KernelAccount>;
}

const STAGES = new URL("./actors/gpu_stage.ts", import.meta.url);

/** Runs the example on `backend` (default `"auto"`) with `count` messages. */
export async function main(
  backend: BackendRequest = "auto",
  count = 8,
): Promise<GpuPipelineResult> {
  await using rt = await RingKernel.create({ backend, quiet: true });
  const onGpu = rt.backend === "cuda" && Nvrtc.probe().available;
  if (!onGpu) {
    console.log(
      rt.backend === "cuda"
        ? "libnvrtc is unavailable (the stages' CUDA C++ cannot be compiled):"
        : "CUDA is unavailable (no GPU, and RINGKERNEL_LIBCUDA does not point at the emulator):",
      "running the CPU-backend equivalent (the same actors, in Workers)",
    );
  }
  const placement = onGpu ? "gpu" : "cpu";
  // The end first, so that each stage's first send finds its target.
  const collect = await rt.launch<EchoFields, EchoFields>("collect", {
    actor: { module: STAGES, export: "collector" },
    placement: "cpu",
  });
  const shift = await rt.launch<EchoFields, EchoFields>("shift", {
    actor: { module: STAGES, export: "stage" },
    config: { next: "collect", factor: 1, offset: 1 },
    placement,
  });
  const scale = await rt.launch<EchoFields, EchoFields>("scale", {
    actor: { module: STAGES, export: "stage" },
    config: { next: "shift", factor: 2, offset: 0 },
    placement,
  });

  await scale.sendBatch(
    Array.from(
      { length: count },
      (_, i) => ({ seq: BigInt(i), value: i, tag: 0 }),
    ),
  );
  const results: GpuPipelineResult["results"] = [];
  for (let i = 0; i < count; i++) {
    const m = await collect.receive({ timeoutMs: 10_000 });
    results.push({ seq: Number(m.seq), value: m.value, tag: m.tag });
  }
  // A GPU stage's handler threads run side by side: sort by seq.
  results.sort((a, b) => a.seq - b.seq);

  // Each kernel counts a message just after handling it: let them settle.
  const kernels: Kernel[] = [scale, shift, collect];
  const settleBy = performance.now() + 10_000;
  while (
    kernels.some((k) => k.metrics().inFlight > 0) &&
    performance.now() < settleBy
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
      `scale (${scale.backend}) → shift (${shift.backend}) → collect (${collect.backend})`,
  );
  for (const r of results) {
    console.log(`  seq ${r.seq}: value ${r.value}, through ${r.tag} actors`);
  }
  for (const [name, a] of Object.entries(accounts)) {
    console.log(
      `  ${name} (${a.backend}): sent ${a.sent}, processed ${a.processed}, dead-lettered ${a.deadLettered}`,
    );
  }
  return { ranOn: onGpu ? "cuda" : "cpu", results, accounts };
}

if (import.meta.main) await main();
