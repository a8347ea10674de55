/**
 * The built-in actors (`"echo"`, `"accumulator"`, `"saxpy"`, `"forwarder"`)
 * and their message schemas. Each built-in runs on both backends, with the
 * same schemas on the CPU and on the GPU. Their field types (`EchoFields` …)
 * come from the main entry point, with the kernels they type.
 *
 * ```ts
 * import { RingKernel } from "./mod.ts";
 * import { EchoMessage } from "./schemas.ts";
 *
 * await using rt = await RingKernel.create({ backend: "cpu" });
 * const echo = await rt.launch("echo", { actor: "echo" });
 * rt.subscribeKernel(echo, "greetings/#");
 * rt.publish("greetings/world", { seq: 1n, value: 1, tag: 0 }, {
 *   schema: EchoMessage,
 * });
 * ```
 *
 * @module
 */

export {
  AccumulatorAdd,
  AccumulatorTotal,
  EchoMessage,
  SAXPY_LANES,
  SaxpyRequest,
  SaxpyResult,
} from "./src/actors/schemas.ts";
export { BUILTIN_ACTORS, type BuiltinActor } from "./src/actors/builtins.ts";
