/**
 * Actors with a device side of their own, and the CUDA kernel files.
 *
 * {@linkcode defineGpuActor} gives an actor a handler on the GPU: CUDA C++
 * against `ringkernel.cuh`, compiled at launch by libnvrtc, or PTX or a cubin
 * built with nvcc. {@linkcode toCStruct} declares a message schema as a C
 * struct with a `static_assert` on every offset, so both sides read the same
 * bytes:
 *
 * ```ts ignore
 * import { defineMessage } from "@ringkernel/ringkernel";
 * import { defineGpuActor, toCStruct } from "@ringkernel/ringkernel/cuda";
 *
 * const Value = defineMessage({ name: "my.Value", fields: { x: "f64" } });
 *
 * export default defineGpuActor({
 *   input: Value,
 *   output: Value,
 *   handle: (v) => ({ x: v.x * 2 }), // the CPU backend's side
 *   gpu: {
 *     source: {
 *       entry: "my_double_pool",
 *       cuda: `#include "ringkernel.cuh"
 * ${toCStruct(Value, { standalone: true })}
 * __device__ rk_i32 twice(const my_value& in, my_value& out, rk_actor_ctx&) {
 *   out.x = in.x * 2.0;
 *   return RK_REPLY;
 * }
 * RK_DEFINE_ACTOR(my_double_pool, my_value, my_value, twice)`,
 *     },
 *   },
 * });
 * ```
 *
 * Imported by URL, the library fetches its kernel bundle on the first run
 * that finds a GPU; {@linkcode prepareKernelFiles} fills that cache ahead of
 * time.
 *
 * @module
 */

export {
  type BuiltinGpuActor,
  defineGpuActor,
  type GpuActorDefinition,
  type GpuActorImplementation,
  type GpuActorSource,
  type GpuConfigContext,
  type SharedMappedBlock,
} from "./src/backend/cuda/gpu_actor.ts";
export {
  type CHeaderOptions,
  type CStructOptions,
  toCHeader,
  toCStruct,
} from "./src/c_struct.ts";
export {
  prepareKernelFiles,
  type PrepareKernelFilesOptions,
} from "./src/cuda/kernel_fetch.ts";
