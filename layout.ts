/**
 * The binary layouts shared by the host, the CPU Workers and the device: an
 * actor's control block, its telemetry block, a queue's header and a
 * message's envelope, with the offset and type of every field. The device
 * ABI header (`cuda/ringkernel.cuh`) declares the same structs, and a test
 * checks that both agree.
 *
 * ```ts
 * import { ABI_VERSION, ENVELOPE, SLOT_TIERS } from "./layout.ts";
 *
 * console.log(ABI_VERSION, ENVELOPE.size, ENVELOPE.fields.typeId.offset);
 * console.log(SLOT_TIERS); // the slot sizes a queue may have
 * ```
 *
 * @module
 */

export {
  ABI_VERSION,
  CONTROL_BLOCK,
  type ControlBlockField,
  ENVELOPE,
  type EnvelopeField,
  type FieldLayout,
  type FieldType,
  QUEUE_HEADER,
  type QueueHeaderField,
  SLOT_TIERS,
  type StructLayout,
  TELEMETRY_BUFFER,
  type TelemetryField,
} from "./src/layout.ts";
