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
 * messages are fixed-layout schemas from {@linkcode defineMessage}. Every verb
 * takes its target (or topic), then its message, then its options:
 * `kernel.send(message, { timeoutMs, signal })`,
 * `rt.publish(topic, message, { schema })`,
 * `ctx.send(target, message, { schema, timeoutMs, signal })`. Every wait
 * takes `{ timeoutMs, signal }`; an aborted signal rejects the wait with
 * `signal.reason`.
 *
 * Advanced pieces have entry points of their own:
 *
 * - `./cuda`: actors with a device side of their own (`defineGpuActor`, C
 *   structs from schemas with `toCStruct`), and `prepareKernelFiles`.
 * - `./schemas`: the built-in actors' message schemas (`EchoMessage` …).
 * - `./clock`: the hybrid logical clock that timestamps messages.
 * - `./layout`: the binary layouts shared with the device (control block,
 *   envelope, queue header, telemetry).
 *
 * @module
 */

export {
  type ActorErrorInfo,
  type BuiltinKernelTypes,
  type LaunchGroupMember,
  type LaunchOptions,
  type Placement,
  type PrepareOptions,
  type PublishOptions,
  RingKernel,
  type RingKernelOptions,
  type RuntimeEvent,
  type RuntimeMetrics,
  type ShutdownOptions,
  type TopicHandler,
  type UndeliveredMessage,
} from "./src/runtime.ts";
export {
  type CallOptions,
  type DeactivateOptions,
  Kernel,
  type KernelMetrics,
  type ReceiveManyOptions,
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
  type ActorPublishOptions,
  type ActorRestoreInfo,
  type ActorSendOptions,
  defineActor,
  type DeliveryReceipt,
  type HandlerResult,
} from "./src/actor.ts";
export {
  type CheckpointBase,
  CheckpointCorruptError,
  CheckpointError,
  type CheckpointInfo,
  CheckpointNotFoundError,
  type CheckpointOptions,
  type CheckpointPolicy,
  type CheckpointRecord,
  type CheckpointStore,
  CheckpointVersionError,
  crc32,
  decodeCheckpoint,
  FileCheckpointStore,
  loadCheckpoint,
  type LoadedCheckpoint,
  MemoryCheckpointStore,
  type RestoreFrom,
} from "./src/checkpoint.ts";
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
  type StringFieldSpec,
  type TypedArrayOf,
  utf8,
} from "./src/message.ts";
export type { BuiltinActorName } from "./src/actors/builtins.ts";
export type {
  AccumulatorAddFields,
  AccumulatorTotalFields,
  EchoFields,
  SaxpyRequestFields,
  SaxpyResultFields,
} from "./src/actors/schemas.ts";
export type {
  BackendKind,
  CudaRuntimeOptions,
  GpuInfo,
} from "./src/backend/backend.ts";
export type { BackendRequest } from "./src/backend/select.ts";
export {
  GridMemory,
  GridReduce,
  type GridReduceOptions,
  type GridReduceRequestOptions,
  GridReduceResult,
  type GridReduceValue,
  launchGridReduce,
} from "./src/actors/grid_reduce.ts";
export { ReduceOp } from "./src/actors/schemas.ts";
export {
  type DispatchKey,
  type KeyedCallOptions,
  KeyedGroup,
  memberIndexForKey,
} from "./src/keyed_group.ts";
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
export type { Subscription, TopicSubscription } from "./src/pubsub.ts";
export type { ClusterOptions } from "./src/cluster/options.ts";
export type { ClusterMember } from "./src/cluster/member.ts";
export {
  type DeadLetter,
  type DeadLetterInput,
  type DeadLetterListener,
  DeadLetterQueue,
  type DeadLetterQueueOptions,
  type DeadLetterReason,
} from "./src/dead_letter.ts";
export type { TelemetrySnapshot } from "./src/telemetry.ts";
export type { HistogramSnapshot } from "./src/histogram.ts";
export type {
  BackoffPolicy,
  RestartPolicyOptions,
  RestartStrategy,
  SupervisorDecision,
} from "./src/supervisor.ts";
