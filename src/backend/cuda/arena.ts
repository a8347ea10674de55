/**
 * A sub-allocator over large chunks (pinned mapped host memory, or device
 * memory). The CUDA backend allocates chunks rarely, ideally before any
 * resident kernel runs, and hands out blocks from them with no driver call:
 * freeing a block never calls `cuMemFree*`, which could wait behind a
 * resident kernel forever. Chunks are given back only when empty, at times
 * the owner chooses (no kernel running), or when the arena closes.
 *
 * @module
 */

import {
  GpuResidencyError,
  InvalidStateError,
  RingKernelError,
} from "../../errors.ts";

/** One chunk of memory an arena carves blocks from. */
export interface ArenaChunk {
  /** Size in bytes. */
  readonly byteLength: number;
  /** Device address of the first byte. */
  readonly deviceAddress: bigint;
  /** Host view of the whole chunk, for host-visible memory. */
  readonly buffer?: ArrayBuffer;
  /** Gives the memory back (called once, when the chunk is empty or the arena closes). */
  release(): void;
}

/** A block handed out by {@linkcode Arena.allocate}. */
export interface ArenaBlock {
  /** The chunk it lies in. */
  readonly chunk: ArenaChunk;
  /** Byte offset in the chunk (a multiple of the arena's alignment). */
  readonly offset: number;
  /** Size in bytes (the request rounded up to the alignment). */
  readonly byteLength: number;
  /** Device address of the first byte. */
  readonly deviceAddress: bigint;
}

/** Options of {@linkcode Arena}. */
export interface ArenaOptions {
  /** A name for messages, e.g. `"mapped host memory"`. */
  readonly name: string;
  /** Bytes of each new chunk (a larger request gets a chunk of its own size). */
  readonly chunkBytes: number;
  /** Alignment of every block (a power of two; default 256). */
  readonly alignment?: number;
  /** Allocates a chunk. */
  allocateChunk(byteLength: number): ArenaChunk;
  /**
   * Asked before a new chunk is allocated; returns why not (a string) when
   * growing is unsafe now, undefined when it may grow.
   */
  growthBlockedBecause?(): string | undefined;
  /** The `RingKernel.create({ cuda })` option that sizes this arena, for messages. */
  readonly option?: string;
}

interface Span {
  offset: number;
  byteLength: number;
}

interface ChunkState {
  chunk: ArenaChunk;
  /** Free spans, sorted by offset, never adjacent (coalesced). */
  free: Span[];
  used: number;
}

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** A first-fit sub-allocator with coalescing; see the module documentation. */
export class Arena {
  readonly #options: ArenaOptions;
  readonly #alignment: number;
  #chunks: ChunkState[] = [];
  #live = new Map<ArenaBlock, ChunkState>();
  #closed = false;

  /** An empty arena; chunks are allocated on demand. */
  constructor(options: ArenaOptions) {
    const alignment = options.alignment ?? 256;
    if (
      !Number.isInteger(alignment) || alignment < 1 ||
      (alignment & (alignment - 1)) !== 0
    ) {
      throw new RangeError(
        `arena alignment ${alignment} must be a power of two`,
      );
    }
    if (!Number.isSafeInteger(options.chunkBytes) || options.chunkBytes <= 0) {
      throw new RangeError(
        `arena chunkBytes ${options.chunkBytes} must be a positive integer`,
      );
    }
    this.#options = options;
    this.#alignment = alignment;
  }

  /** Bytes handed out and not yet freed. */
  get usedBytes(): number {
    let used = 0;
    for (const state of this.#chunks) used += state.used;
    return used;
  }

  /** Bytes of every chunk held. */
  get reservedBytes(): number {
    let total = 0;
    for (const state of this.#chunks) total += state.chunk.byteLength;
    return total;
  }

  /** Chunks held. */
  get chunkCount(): number {
    return this.#chunks.length;
  }

  /** Blocks handed out and not yet freed. */
  get liveBlocks(): number {
    return this.#live.size;
  }

  /** Allocates a chunk now (e.g. before any kernel runs), so later blocks need none. */
  reserve(byteLength: number = this.#options.chunkBytes): void {
    this.#assertOpen("reserve");
    this.#addChunk(alignUp(byteLength, this.#alignment));
  }

  /**
   * Hands out a block of at least `byteLength` bytes. Allocates a chunk when
   * none has room, unless `growthBlockedBecause` says it may not now.
   *
   * @throws {RingKernelError} when it may not grow, or the chunk allocation fails.
   */
  allocate(byteLength: number): ArenaBlock {
    this.#assertOpen("allocate");
    if (!Number.isSafeInteger(byteLength) || byteLength <= 0) {
      throw new RangeError(
        `arena block size ${byteLength} must be a positive integer`,
      );
    }
    const size = alignUp(byteLength, this.#alignment);
    for (const state of this.#chunks) {
      const block = this.#take(state, size);
      if (block !== undefined) return block;
    }
    const why = this.#options.growthBlockedBecause?.();
    if (why !== undefined) {
      const option = this.#options.option;
      throw new GpuResidencyError(
        "memory",
        `${this.#options.name}: no room for ${size} bytes (${this.usedBytes} of ${this.reservedBytes} in use) and ${why}` +
          (option === undefined
            ? ""
            : `; reserve more up front with RingKernel.create({ cuda: { ${option} } })`),
      );
    }
    const state = this.#addChunk(Math.max(size, this.#options.chunkBytes));
    return this.#take(state, size)!;
  }

  /**
   * Returns a block. Throws {@linkcode InvalidStateError} for a block this
   * arena did not hand out or already took back.
   */
  free(block: ArenaBlock): void {
    const state = this.#live.get(block);
    if (state === undefined) {
      throw new InvalidStateError(
        "free an arena block",
        "not allocated",
        this.#options.name,
      );
    }
    this.#live.delete(block);
    state.used -= block.byteLength;
    const spans = state.free;
    let i = 0;
    while (i < spans.length && spans[i].offset < block.offset) i++;
    spans.splice(i, 0, { offset: block.offset, byteLength: block.byteLength });
    // Coalesce with the neighbours.
    if (
      i + 1 < spans.length &&
      spans[i].offset + spans[i].byteLength === spans[i + 1].offset
    ) {
      spans[i].byteLength += spans[i + 1].byteLength;
      spans.splice(i + 1, 1);
    }
    if (
      i > 0 && spans[i - 1].offset + spans[i - 1].byteLength === spans[i].offset
    ) {
      spans[i - 1].byteLength += spans[i].byteLength;
      spans.splice(i, 1);
    }
  }

  /** Releases empty chunks beyond the first `keep`; returns how many it released. */
  releaseEmptyChunks(keep = 1): number {
    let kept = 0;
    let released = 0;
    const remaining: ChunkState[] = [];
    for (const state of this.#chunks) {
      if (state.used === 0 && kept >= keep) {
        state.chunk.release();
        released++;
        continue;
      }
      if (state.used === 0) kept++;
      remaining.push(state);
    }
    this.#chunks = remaining;
    return released;
  }

  /** Releases every chunk (blocks still handed out become invalid). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const failures: unknown[] = [];
    for (const state of this.#chunks) {
      try {
        state.chunk.release();
      } catch (error) {
        failures.push(error);
      }
    }
    this.#chunks = [];
    this.#live.clear();
    if (failures.length > 0) throw failures[0];
  }

  #assertOpen(operation: string): void {
    if (this.#closed) {
      throw new InvalidStateError(operation, "closed", this.#options.name);
    }
  }

  #addChunk(byteLength: number): ChunkState {
    const chunk = this.#options.allocateChunk(byteLength);
    if (chunk.byteLength < byteLength) {
      chunk.release();
      throw new RingKernelError(
        `${this.#options.name}: a chunk of ${chunk.byteLength} bytes came back for ${byteLength}`,
      );
    }
    const state: ChunkState = {
      chunk,
      free: [{ offset: 0, byteLength: chunk.byteLength }],
      used: 0,
    };
    this.#chunks.push(state);
    return state;
  }

  #take(state: ChunkState, size: number): ArenaBlock | undefined {
    const spans = state.free;
    for (let i = 0; i < spans.length; i++) {
      const span = spans[i];
      if (span.byteLength < size) continue;
      const block: ArenaBlock = Object.freeze({
        chunk: state.chunk,
        offset: span.offset,
        byteLength: size,
        deviceAddress: state.chunk.deviceAddress + BigInt(span.offset),
      });
      span.offset += size;
      span.byteLength -= size;
      if (span.byteLength === 0) spans.splice(i, 1);
      state.used += size;
      this.#live.set(block, state);
      return block;
    }
    return undefined;
  }
}
