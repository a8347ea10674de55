/**
 * The one planner of actor memory blocks, shared by the CPU and the CUDA
 * backends. A block is a list of parts laid out in order, each at the next
 * multiple of its alignment; every actor block opens with its control block
 * and telemetry and holds its three queues on queue lines
 * ({@linkcode planActorBlock}); each backend adds its own parts before and
 * after the queues (`cpu/actor_memory.ts`, `cuda/actor_block.ts`).
 *
 * @module
 */

import { CONTROL_BLOCK, QUEUE_LINE, TELEMETRY_BUFFER } from "../layout.ts";
import { ringByteLength } from "../ring.ts";

/** Sizes of an actor's queues. */
export interface ActorQueueOptions {
  /** Slots of the host → actor queue and of the K2K inbox (power of two). */
  queueCapacity: number;
  /** Slots of the actor → host queue (power of two). */
  outputCapacity: number;
  /** Bytes per slot (one of the slot tiers). */
  slotSize: number;
}

/** One part of a memory block. */
export interface BlockPart<N extends string = string> {
  /** Its name: the key of its offset in the plan. */
  readonly name: N;
  /** Its size in bytes. */
  readonly bytes: number;
  /** The alignment of its first byte, in bytes. */
  readonly align: number;
}

/** The offset of every part of a block, by name, and the block's length. */
export type BlockPlan<N extends string> =
  & { readonly [K in N]: number }
  & {
    /** Bytes from the block's start to the end of its last part. */
    readonly byteLength: number;
  };

/** `n` rounded up to a multiple of `to`. */
export function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/**
 * Lays out `parts` in order from offset 0 (which the block's start must be
 * aligned for): each at the next multiple of its alignment after the end of
 * the one before.
 *
 * @throws {RangeError} for a size or alignment that is not a positive
 *   integer (a size of 0 is allowed), or a name given twice.
 */
export function planBlock<const P extends readonly BlockPart[]>(
  parts: P,
): BlockPlan<P[number]["name"]> {
  const plan: Record<string, number> = {};
  let end = 0;
  for (const { name, bytes, align } of parts) {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new RangeError(`part ${name}: size ${bytes} is not an integer ≥ 0`);
    }
    if (!Number.isSafeInteger(align) || align <= 0) {
      throw new RangeError(`part ${name}: alignment ${align} is not > 0`);
    }
    if (Object.hasOwn(plan, name) || name === "byteLength") {
      throw new RangeError(`part ${name} is named twice`);
    }
    plan[name] = alignUp(end, align);
    end = plan[name] + bytes;
  }
  plan.byteLength = end;
  return plan as BlockPlan<P[number]["name"]>;
}

/** A ring of `capacity` slots of `slotSize` bytes, on a queue line. */
export function queuePart<N extends string>(
  name: N,
  capacity: number,
  slotSize: number,
): BlockPart<N> {
  return {
    name,
    bytes: ringByteLength({ capacity, slotSize }),
    align: QUEUE_LINE,
  };
}

/** The offsets of an actor block's parts, with the queue sizes it was planned for. */
export type ActorBlockPlan<N extends string> =
  & Readonly<ActorQueueOptions>
  & BlockPlan<"control" | "telemetry" | "input" | "inbox" | "output" | N>;

/**
 * Lays out an actor block: its control block and telemetry, then the
 * backend's `before` parts, then the actor's three queues on queue lines
 * (the host → actor ring `input`, the inbox `inbox` of the same size, and
 * the actor → host ring `output`), then the backend's `after` parts.
 */
export function planActorBlock<
  const B extends readonly BlockPart[],
  const A extends readonly BlockPart[] = readonly [],
>(
  options: ActorQueueOptions,
  before: B,
  after?: A,
): ActorBlockPlan<B[number]["name"] | A[number]["name"]> {
  const { queueCapacity, outputCapacity, slotSize } = options;
  const parts: BlockPart[] = [
    { name: "control", bytes: CONTROL_BLOCK.size, align: CONTROL_BLOCK.align },
    {
      name: "telemetry",
      bytes: TELEMETRY_BUFFER.size,
      align: TELEMETRY_BUFFER.align,
    },
    ...before,
    queuePart("input", queueCapacity, slotSize),
    queuePart("inbox", queueCapacity, slotSize),
    queuePart("output", outputCapacity, slotSize),
    ...(after ?? []),
  ];
  return {
    queueCapacity,
    outputCapacity,
    slotSize,
    ...planBlock(parts),
  } as ActorBlockPlan<B[number]["name"] | A[number]["name"]>;
}
