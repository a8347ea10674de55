// Injected faults on the CUDA backend, each showing the typed error or the
// recovery, and that nothing is lost: a resident GPU actor whose handler
// stalls (the watchdog reports it stale, then recovered), user actors from
// corrupt, truncated or missing PTX (the launch fails typed, nothing is left
// running, the runtime goes on), terminate while producers send, and a
// queue-full storm on a two-slot GPU queue. Skipped without a GPU
// (gpu_gate.ts); with RINGKERNEL_REQUIRE_GPU=1 they run and fail without one.
// The last two tests check the fixtures themselves with nvcc and ptxas, and
// need no GPU.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, describe, test } from "node:test";
import { BUILTIN_ACTORS } from "../src/actors/builtins.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { delay, pollUntil } from "../src/async.ts";
import type {
  ActorExitReason,
  ActorSpawnSpec,
} from "../src/backend/backend.ts";
import type { CudaActorHost } from "../src/backend/cuda/cuda_actor.ts";
import { CudaBackend } from "../src/backend/cuda/cuda_backend.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import { readTypeId } from "../src/envelope.ts";
import {
  CudaError,
  InvalidStateError,
  QueueFullError,
  RingKernelError,
} from "../src/errors.ts";
import type { Kernel, KernelMetrics } from "../src/kernel.ts";
import type { FieldsSpec, MessageValue } from "../src/message.ts";
import type { RingKernel } from "../src/runtime.ts";
import {
  compileStallPtx,
  CORRUPT_LINE,
  corruptPtx,
  DOUBLER_KERNEL,
  FAULT_FILES,
  findCudaTool,
  removeFaultFiles,
  runCudaTool,
  STALL_KERNEL,
  STALL_TAG,
  writeFaultFiles,
} from "./fixtures/gpu_fault_actors.ts";
import { gpuTest } from "./gpu_gate.ts";
import { assertAccounted, echo, withRuntime } from "./helpers.ts";

const FIXTURE = new URL("./fixtures/gpu_fault_actors.ts", import.meta.url);

const CUDA = { backend: "cuda" } as const;

/** Launches the built-in echo and checks one round trip: the runtime still works. */
async function assertEchoRuns(rt: RingKernel, name: string): Promise<void> {
  const k = await rt.launch(name, { actor: "echo" });
  assert.deepEqual(
    await k.call(echo(42, 0.5), { timeoutMs: 5_000 }),
    echo(42, 0.5),
  );
  await k.terminate({ timeoutMs: 5_000 });
  assert.equal(k.state, "terminated");
}

after(() => removeFaultFiles());

// The stalling actor needs a compiler at run time: libnvrtc (the backend
// compiles its CUDA source at launch), else nvcc (the test builds its PTX).
const nvrtc = Nvrtc.probe();
const nvcc = findCudaTool("nvcc");
const stallSkip = nvrtc.available || nvcc !== undefined ? undefined : (
  `neither libnvrtc nor nvcc is installed (${
    nvrtc.reason?.split("\n")[0]
  }); the stalling actor is CUDA C++`
);

describe("GPU faults through the runtime", () => {
  gpuTest(
    "a GPU handler that stalls stops the heartbeat: heartbeat-stale, then heartbeat-recovered, then a clean terminate",
    async () => {
      let exportName = "stallActor";
      if (!nvrtc.available) {
        const built = compileStallPtx(nvcc!);
        assert.ok(built.ok, built.ok ? "" : built.reason);
        exportName = "stallPtxActor";
      }
      const options = { ...CUDA, heartbeatDeadlineMs: 300 };
      await withRuntime(options, async (rt, events) => {
        const staller = await rt.launch<
          typeof EchoMessage.spec,
          typeof EchoMessage.spec
        >("staller", {
          actor: { module: FIXTURE, export: exportName },
          timeoutMs: 30_000,
        });
        const idle = await rt.launch("idle", { actor: "echo" });
        const staleOf = (kernel: string) =>
          events.filter((e) =>
            e.type === "heartbeat-stale" && e.kernel === kernel
          );
        // Idle GPU actors heartbeat every ~100 µs: two deadlines pass unreported.
        assert.deepEqual(
          await staller.call(echo(1, 0.25), { timeoutMs: 5_000 }),
          echo(1, 0.25),
        );
        await delay(600);
        assert.deepEqual(staleOf("staller"), []);

        const stalled = staller.call(echo(2, 1_500, STALL_TAG), {
          timeoutMs: 20_000,
        });
        // Awaited below; observed now so an earlier failure leaves no unhandled rejection.
        stalled.catch(() => {});
        await pollUntil(() => staleOf("staller").length > 0, {
          timeoutMs: 10_000,
          what: "heartbeat-stale of the stalled GPU actor",
        });
        const stale = staleOf("staller")[0];
        assert.ok(stale.type === "heartbeat-stale" && stale.staleMs > 300);
        await pollUntil(
          () =>
            events.some((e) =>
              e.type === "heartbeat-recovered" && e.kernel === "staller"
            ),
          { timeoutMs: 15_000, what: "heartbeat-recovered" },
        );
        const order = events
          .filter((e) => e.kernel === "staller")
          .map((e) => e.type);
        assert.deepEqual(order, ["heartbeat-stale", "heartbeat-recovered"]);
        // The stalled message is answered, and the actor serves the next one.
        assert.deepEqual(await stalled, echo(2, 1_500, STALL_TAG));
        assert.deepEqual(
          await staller.call(echo(3, 2), { timeoutMs: 5_000 }),
          echo(3, 2),
        );
        // The idle actor beside it was never reported.
        assert.deepEqual(staleOf("idle"), []);

        await staller.terminate({ timeoutMs: 5_000 });
        assert.equal(staller.state, "terminated");
        const m = staller.metrics();
        assertAccounted(m);
        assert.equal(m.sent, 3);
        assert.equal(m.processed, 3);
        assert.equal(m.deadLettered, 0);
        assert.equal(m.crashes, 0);
        await idle.terminate({ timeoutMs: 5_000 });
        assert.deepEqual(rt.listKernels(), []);
      });
    },
    {
      skip: stallSkip,
      // The emulator runs CUDA C++ it compiles itself (its NVRTC), not nvcc's PTX.
      hardware: nvrtc.available ? undefined : "a user actor in nvcc-built PTX",
    },
  );

  gpuTest(
    "a user actor from corrupt, truncated or missing PTX fails its launch typed; nothing is left running and the runtime launches again",
    async () => {
      writeFaultFiles();
      await withRuntime(CUDA, async (rt, events) => {
        const launchOf = (name: string, exportName: string) =>
          rt.launch(name, { actor: { module: FIXTURE, export: exportName } });
        for (
          const [exportName, file] of [
            ["corruptPtxActor", FAULT_FILES.corrupt],
            ["truncatedPtxActor", FAULT_FILES.truncated],
          ]
        ) {
          // Twice: a failed load leaves nothing cached half-made.
          for (let attempt = 0; attempt < 2; attempt++) {
            await assert.rejects(
              launchOf("faulty", exportName),
              (e: unknown) => {
                assert.ok(e instanceof CudaError, `${file}: ${e}`);
                assert.match(e.call, /^cuModuleLoadData/);
                assert.equal(e.codeName, "CUDA_ERROR_INVALID_PTX", e.message);
                return true;
              },
            );
            assert.deepEqual(rt.listKernels(), []);
            assert.equal(rt.metrics().kernels.length, 0);
          }
        }
        await assert.rejects(
          launchOf("faulty", "missingPtxActor"),
          (e: unknown) =>
            e instanceof RingKernelError && !(e instanceof CudaError) &&
            e.message.includes(FAULT_FILES.missing),
        );
        await assert.rejects(
          launchOf("faulty", "unknownKernelActor"),
          (e: unknown) =>
            e instanceof CudaError && e.call === "cuModuleGetFunction" &&
            e.codeName === "CUDA_ERROR_NOT_FOUND",
        );
        assert.deepEqual(rt.listKernels(), []);
        assert.deepEqual(events, []);
        // The same name launches a built-in afterwards.
        await assertEchoRuns(rt, "faulty");
        const totals = rt.metrics().totals;
        assert.equal(totals.sent, 1);
        assert.equal(totals.processed, 1);
      });
    },
  );

  for (const actor of ["echo", "accumulator"] as const) {
    for (const abort of [false, true]) {
      gpuTest(
        `terminate({ abort: ${abort} }) of a GPU ${actor} while 8 producers send: every accepted send is ${
          abort ? "processed or dead-lettered" : "processed and answered"
        }`,
        async () => {
          await withRuntime(CUDA, async (rt) => {
            if (actor === "echo") {
              const k = await rt.launch("load", {
                actor: "echo",
                queueCapacity: 64,
              });
              const run = await terminateUnderLoad(
                k,
                (i) => echo(i, i / 2),
                abort,
              );
              const overflow = checkTerminated(rt, k.metrics(), run, abort);
              assert.equal(run.replies + overflow, k.metrics().processed);
              await assert.rejects(k.send(echo(0)), InvalidStateError);
            } else {
              const k = await rt.launch("load", {
                actor: "accumulator",
                queueCapacity: 64,
              });
              const run = await terminateUnderLoad(
                k,
                () => ({ value: 1 }),
                abort,
              );
              const m = k.metrics();
              const overflow = checkTerminated(rt, m, run, abort);
              assert.equal(run.replies + overflow, m.processed);
              // Each processed message was added exactly once, in order (some
              // replies may be among those dead-lettered unread).
              const last = run.last as { total: number; count: bigint };
              assert.equal(BigInt(last.total), last.count);
              assert.ok(
                last.total <= m.processed &&
                  last.total >= m.processed - overflow,
                `last total ${last.total}, processed ${m.processed}, ${overflow} unread`,
              );
              await assert.rejects(k.send({ value: 1 }), InvalidStateError);
            }
            await assertEchoRuns(rt, "after");
          });
        },
      );
    }
  }

  gpuTest(
    "a queue-full storm on a two-slot GPU queue: each send succeeds or fails with QueueFullError, and every accepted message is answered once",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const k = await rt.launch("storm", {
          actor: "echo",
          queueCapacity: 2,
          outputCapacity: 4_096,
          autoActivate: false,
        });
        const senders = 32;
        const perSender = 60;
        const acceptedSeqs: bigint[] = [];
        let refused = 0;
        let full = 0;
        const unexpected: unknown[] = [];
        const sender = async (id: number) => {
          for (let i = 0; i < perSender; i++) {
            const message = echo(id * 1_000 + i, i);
            const mode = (id + i) % 4;
            try {
              if (mode === 0) {
                if (k.trySend(message)) acceptedSeqs.push(message.seq);
                else refused++;
                await delay(0);
                continue;
              }
              const timeoutMs = mode === 1 ? 0 : mode === 2 ? 3 : 5_000;
              await k.send(message, { timeoutMs });
              acceptedSeqs.push(message.seq);
            } catch (error) {
              if (error instanceof QueueFullError) full++;
              else unexpected.push(error);
            }
          }
        };
        const storm = Promise.all(
          Array.from({ length: senders }, (_, id) => sender(id)),
        );
        // Inactive, the actor takes nothing: the two slots fill at once.
        await pollUntil(() => full + refused >= 16, {
          timeoutMs: 10_000,
          what: "the storm filling the queue",
        });
        await k.activate();
        await storm;
        assert.deepEqual(unexpected, []);
        assert.equal(acceptedSeqs.length + refused + full, senders * perSender);
        assert.ok(full + refused >= 16);

        const replies: bigint[] = [];
        await pollUntil(() => {
          for (let r = k.tryReceive(); r !== undefined; r = k.tryReceive()) {
            replies.push(r.seq);
          }
          const m = k.metrics();
          return m.inFlight === 0 && replies.length >= m.processed &&
            m.pendingReplies === 0;
        }, { timeoutMs: 20_000, what: "the storm settling" });
        const m = k.metrics();
        assertAccounted(m);
        assert.equal(m.sent, acceptedSeqs.length);
        assert.equal(m.processed, acceptedSeqs.length);
        assert.equal(m.deadLettered, 0);
        const sort = (xs: bigint[]) =>
          [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        assert.deepEqual(sort(replies), sort(acceptedSeqs));
        await k.terminate({ timeoutMs: 5_000 });
      });
    },
  );
});

/** What {@linkcode terminateUnderLoad} saw. */
interface LoadRun<R> {
  /** Sends that were accepted. */
  accepted: number;
  /** Replies taken. */
  replies: number;
  /** The last reply. */
  last: R | undefined;
  /** Errors other than the InvalidStateError that ends each producer. */
  unexpected: unknown[];
}

/**
 * Eight producers send to `k` (yielding to the event loop now and then, as
 * the GPU may keep up with them) while a taker takes the replies; once 2 000
 * sends were accepted, `k` is terminated. Each producer ends at its first
 * InvalidStateError.
 */
async function terminateUnderLoad<I extends FieldsSpec, O extends FieldsSpec>(
  k: Kernel<I, O>,
  message: (i: number) => MessageValue<I>,
  abort: boolean,
): Promise<LoadRun<ReturnType<Kernel<I, O>["tryReceive"]>>> {
  const run: LoadRun<ReturnType<Kernel<I, O>["tryReceive"]>> = {
    accepted: 0,
    replies: 0,
    last: undefined,
    unexpected: [],
  };
  const take = () => {
    for (let r = k.tryReceive(); r !== undefined; r = k.tryReceive()) {
      run.replies++;
      run.last = r;
    }
  };
  let taking = true;
  const taker = (async () => {
    while (taking) {
      take();
      await delay(1);
    }
  })();
  const producer = async (id: number) => {
    for (let i = 0;; i++) {
      try {
        await k.send(message(id * 1_000_000 + i), { timeoutMs: 10_000 });
        run.accepted++;
      } catch (error) {
        if (!(error instanceof InvalidStateError)) run.unexpected.push(error);
        return;
      }
      if (i % 32 === 31) await delay(0);
    }
  };
  const producers = Array.from({ length: 8 }, (_, id) => producer(id));
  try {
    await pollUntil(() => run.accepted >= 2_000, {
      timeoutMs: 20_000,
      what: "2 000 accepted sends",
    });
    await k.terminate({ abort, timeoutMs: 10_000 });
    await Promise.all(producers);
  } finally {
    taking = false;
    await taker;
  }
  take();
  return run;
}

/**
 * Checks a kernel terminated under load; returns how many of its replies
 * were dead-lettered unread (beyond the reply buffer, so that the stopping
 * actor never waits for a reader): each processed message was answered or
 * so dead-lettered.
 */
function checkTerminated(
  rt: RingKernel,
  m: KernelMetrics,
  run: LoadRun<unknown>,
  abort: boolean,
): number {
  assert.deepEqual(run.unexpected, []);
  assert.equal(m.state, "terminated");
  assertAccounted(m);
  assert.equal(m.sent, run.accepted);
  assert.ok(run.accepted >= 2_000);
  assert.equal(m.pendingReplies, 0);
  const overflow = rt.deadLetters.drain().filter((d) =>
    d.detail?.startsWith("unread reply of")
  );
  for (const d of overflow) {
    assert.equal(d.reason, abort ? "aborted" : "actor-terminated");
  }
  if (abort) {
    assert.equal(
      rt.deadLetters.countOf("aborted"),
      m.deadLettered + overflow.length,
    );
  } else {
    assert.equal(m.deadLettered, 0);
    assert.equal(m.processed, run.accepted);
  }
  return overflow.length;
}

// ---- backend level -------------------------------------------------------

let nextId = 5_000;

function spawnOn(backend: CudaBackend, module: string, exportName: string) {
  const exits: ActorExitReason[] = [];
  const spec: ActorSpawnSpec = {
    name: `fault${nextId}`,
    id: nextId++,
    queue: { queueCapacity: 64, outputCapacity: 64, slotSize: 64 },
    module,
    exportName,
    config: undefined,
    idleSpinMicros: 100,
    batchSize: 256,
  };
  const host = backend.spawn(spec, {
    onDeadLetter: () => {},
    onCrash: () => {},
    onExit: (reason) => exits.push(reason),
    onPublish: () => {},
    onSubscription: () => {},
  });
  host.control.isActive = true;
  return { host, exits };
}

async function stopHost(
  actor: { host: CudaActorHost; exits: ActorExitReason[] },
): Promise<void> {
  actor.host.control.shouldTerminate = true;
  await pollUntil(() => actor.exits.length > 0, {
    timeoutMs: 10_000,
    what: "actor exit",
  });
  actor.host.dispose();
}

describe("GPU faults at the backend level", () => {
  gpuTest(
    "a launch that fails to load its module leaves memory, launches and actors as they were",
    async () => {
      writeFaultFiles();
      const backend = CudaBackend.open();
      try {
        // Warm: the first echo creates the stream and fills the arenas' first chunks.
        const warm = spawnOn(backend, BUILTIN_ACTORS.echo.module, "default");
        await warm.host.start(10_000);
        await stopHost(warm);
        await pollUntil(
          () =>
            backend.stats().launches === 0 &&
            backend.stats().pendingReleases === 0,
          { timeoutMs: 10_000, what: "the warm-up actor's release" },
        );
        const before = backend.stats();
        for (const exportName of ["corruptPtxActor", "truncatedPtxActor"]) {
          const faulty = spawnOn(backend, FIXTURE.href, exportName);
          await assert.rejects(
            faulty.host.start(10_000),
            (e: unknown) =>
              e instanceof CudaError &&
              e.codeName === "CUDA_ERROR_INVALID_PTX",
          );
          assert.equal(faulty.host.running, false);
          assert.equal(faulty.host.kernelMayRun, false);
          faulty.host.dispose();
          assert.deepEqual(faulty.exits, []);
        }
        const afterStats = backend.stats();
        assert.equal(afterStats.launches, 0);
        assert.equal(afterStats.pendingReleases, 0);
        assert.equal(afterStats.actors, before.actors);
        assert.equal(afterStats.streams, before.streams);
        assert.equal(afterStats.mappedBytesInUse, before.mappedBytesInUse);
        assert.equal(afterStats.deviceBytesInUse, before.deviceBytesInUse);
        // The backend still runs actors.
        const echoActor = spawnOn(
          backend,
          BUILTIN_ACTORS.echo.module,
          "default",
        );
        await echoActor.host.start(10_000);
        assert.ok(echoActor.host.input.tryEnqueue(EchoMessage, echo(7)));
        await pollUntil(() => echoActor.host.output.available() > 0, {
          timeoutMs: 5_000,
          what: "the echo's reply",
        });
        echoActor.host.output.dequeueBatch(1, (view, offset) => {
          assert.equal(readTypeId(view, offset), EchoMessage.typeId);
          assert.equal(view.getBigUint64(offset + 32, true), 7n);
        });
        await stopHost(echoActor);
        assert.deepEqual(echoActor.exits, ["terminated"]);
      } finally {
        await backend.close({ timeoutMs: 10_000 });
      }
    },
  );
});

// ---- the fixtures themselves (nvcc and ptxas; no GPU) ---------------------

const ptxas = findCudaTool("ptxas");

describe("GPU fault fixtures", () => {
  test(
    "the stalling actor's CUDA source compiles against ringkernel.cuh",
    nvcc === undefined
      ? { skip: "nvcc is not installed" }
      : { timeout: 120_000 },
    () => {
      const built = compileStallPtx(nvcc!);
      assert.ok(built.ok, built.ok ? "" : built.reason);
      const ptx = readFileSync(FAULT_FILES.stallPtx, "utf8");
      assert.match(ptx, new RegExp(`\\.entry ${STALL_KERNEL}\\(`));
      assert.match(ptx, /%globaltimer/);
    },
  );

  test(
    "ptxas rejects the corrupt and truncated PTX and accepts the stalling actor's",
    ptxas === undefined || nvcc === undefined
      ? { skip: "ptxas or nvcc is not installed" }
      : { timeout: 120_000 },
    () => {
      writeFaultFiles();
      const corrupt = readFileSync(FAULT_FILES.corrupt, "utf8");
      const entry = corrupt.indexOf(`.entry ${DOUBLER_KERNEL}(`);
      assert.ok(entry >= 0 && corrupt.indexOf(CORRUPT_LINE) > entry);
      assert.throws(() => corruptPtx(corrupt, "rk_fault_absent"), Error);
      for (const file of [FAULT_FILES.corrupt, FAULT_FILES.truncated]) {
        const result = runCudaTool(ptxas!, [
          "-arch=sm_80",
          "-o",
          "/dev/null",
          file,
        ]);
        assert.equal(result.ok, false, `ptxas accepted ${file}`);
      }
      const built = compileStallPtx(nvcc!);
      assert.ok(built.ok, built.ok ? "" : built.reason);
      const stall = runCudaTool(ptxas!, [
        "-arch=sm_80",
        "-o",
        "/dev/null",
        FAULT_FILES.stallPtx,
      ]);
      assert.ok(stall.ok, stall.ok ? "" : stall.reason);
    },
  );
});
