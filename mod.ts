/**
 * ringkernel: persistent actors for Deno and Bun, resident on the GPU
 * (CUDA) or on CPU Workers, exchanging messages through lock-free ring
 * queues in shared or mapped memory instead of paying a launch per message.
 *
 * ```ts
 * import { RingKernel } from "./mod.ts";
 *
 * await using rt = await RingKernel.create({ backend: "auto" });
 * const echo = await rt.launch("echo", { actor: "echo" });
 * const reply = await echo.call({ seq: 1n, value: 2.5, tag: 7 });
 * console.log(reply, rt.backend);
 * ```
 *
 * Your own CPU actors are modules exporting {@linkcode defineActor}; their
 * messages are fixed-layout schemas from {@linkcode defineMessage}. An actor
 * with a device side of its own (CUDA C++ compiled by libnvrtc, or PTX/cubin)
 * comes from {@linkcode defineGpuActor}, its C structs from
 * {@linkcode toCStruct}.
 *
 * @module
 */

export {
  type BuiltinKernelTypes,
  type LaunchOptions,
  RingKernel,
  type RingKernelOptions,
  type RuntimeEvent,
  type RuntimeMetrics,
  type TopicHandler,
  type UndeliveredMessage,
} from "./src/runtime.ts";
export {
  type CallOptions,
  Kernel,
  type KernelMetrics,
  type KernelServices,
  type ReceiveOptions,
  type SendOptions,
  type TerminateOptions,
} from "./src/kernel.ts";
export type { KernelState } from "./src/lifecycle.ts";
export {
  type ActorContext,
  type ActorDefinition,
  type ActorInitInfo,
  type ActorModuleRef,
  type ActorSendOptions,
  defineActor,
  type DeliveryReceipt,
  type HandlerResult,
} from "./src/actor.ts";
export {
  array,
  type ArrayFieldSpec,
  bytes,
  type BytesFieldSpec,
  type DecodedFieldValue,
  type DecodedMessage,
  defineMessage,
  type FieldAccessor,
  type FieldInfo,
  type FieldSpec,
  type FieldsSpec,
  type FieldValue,
  type MessageDefinition,
  type MessageSchema,
  type MessageValue,
  type NumericType,
  type ScalarType,
  SchemaRegistry,
  type StringFieldSpec,
  type TypedArrayOf,
  utf8,
} from "./src/message.ts";
export {
  AccumulatorAdd,
  type AccumulatorAddFields,
  AccumulatorTotal,
  type AccumulatorTotalFields,
  type EchoFields,
  EchoMessage,
  SAXPY_LANES,
  SaxpyRequest,
  type SaxpyRequestFields,
  SaxpyResult,
  type SaxpyResultFields,
} from "./src/actors/schemas.ts";
export {
  BUILTIN_ACTORS,
  type BuiltinActor,
  type BuiltinActorName,
} from "./src/actors/builtins.ts";
export {
  type BuiltinGpuActor,
  defineGpuActor,
  type GpuActorDefinition,
  type GpuActorImplementation,
  type GpuActorSource,
  type GpuConfigContext,
} from "./src/backend/cuda/gpu_actor.ts";
export {
  type CHeaderOptions,
  type CStructOptions,
  toCHeader,
  toCStruct,
} from "./src/c_struct.ts";
export type {
  BackendKind,
  CudaRuntimeOptions,
  GpuInfo,
} from "./src/backend/backend.ts";
export type { BackendRequest } from "./src/backend/select.ts";
export {
  prepareKernelFiles,
  type PrepareKernelFilesOptions,
} from "./src/cuda/kernel_fetch.ts";
export type { SerializedError } from "./src/backend/cpu/protocol.ts";
export {
  ActorCrashedError,
  ActorModuleError,
  BackendUnavailableError,
  ClockSkewError,
  CudaError,
  DriverTooOldError,
  GpuResidencyError,
  type GpuResidencyLimit,
  InvalidMessageError,
  InvalidOptionError,
  InvalidStateError,
  LibraryLoadError,
  QueueFullError,
  RingKernelError,
  type RingKernelErrorOptions,
  TimeoutError,
  UnknownActorError,
} from "./src/errors.ts";
export {
  compareHlc,
  type HlcTimestamp,
  HybridClock,
  type HybridClockOptions,
  packHlc,
  unpackHlc,
} from "./src/hlc.ts";
export { type Subscription } from "./src/pubsub.ts";
export { topicMatches, validateFilter, validateTopic } from "./src/topic.ts";
export {
  type DeadLetter,
  type DeadLetterInput,
  type DeadLetterListener,
  DeadLetterQueue,
  type DeadLetterQueueOptions,
  type DeadLetterReason,
} from "./src/dead_letter.ts";
export type { TelemetrySnapshot } from "./src/telemetry.ts";
export { type HistogramSnapshot, LatencyHistogram } from "./src/histogram.ts";
export type {
  BackoffPolicy,
  RestartPolicyOptions,
  RestartStrategy,
  SupervisorDecision,
} from "./src/supervisor.ts";
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
