/**
 * An actor with a GPU side of your own: converts sensor readings from
 * Celsius to Fahrenheit and flags hot ones. On the CUDA backend its handler
 * is CUDA C++, compiled at launch with libnvrtc against `ringkernel.cuh`; on
 * the CPU backend the TypeScript `handle` below does the same work. The C
 * structs come from the message schemas (`toCStruct`), so both sides read
 * the same bytes.
 *
 * @module
 */

import { type ActorDefinition, defineMessage } from "../../mod.ts";
import { defineGpuActor, toCStruct } from "../../cuda.ts";

/** A sensor reading in °C. */
export const Reading = defineMessage({
  name: "example.Reading",
  fields: { sensor: "u32", celsius: "f64" },
});

/** The same reading in °F, with `hot` set above 40 °C. */
export const Converted = defineMessage({
  name: "example.Converted",
  fields: { sensor: "u32", fahrenheit: "f64", hot: "bool" },
});

/** Above this many °C a reading is hot. */
export const HOT_CELSIUS = 40;

/** The device handler, one thread per message (`RK_DEFINE_ACTOR`). */
const CUDA_SOURCE = `#include "ringkernel.cuh"
${toCStruct(Reading, { standalone: true })}
${toCStruct(Converted, { standalone: true })}
__device__ rk_i32 convert(const example_reading& in, example_converted& out,
                          rk_actor_ctx&) {
  out.sensor = in.sensor;
  out.fahrenheit = in.celsius * 9.0 / 5.0 + 32.0;
  out.hot = in.celsius > ${HOT_CELSIUS}.0 ? 1 : 0;
  return RK_REPLY;
}
RK_DEFINE_ACTOR(example_fahrenheit_pool, example_reading, example_converted,
                convert)
`;

/** The actor: CUDA C++ on the GPU, TypeScript on the CPU. */
const fahrenheit: ActorDefinition<
  typeof Reading.spec,
  typeof Converted.spec,
  unknown
> = defineGpuActor({
  input: Reading,
  output: Converted,
  handle: (reading) => ({
    sensor: reading.sensor,
    fahrenheit: reading.celsius * 9 / 5 + 32,
    hot: reading.celsius > HOT_CELSIUS,
  }),
  gpu: {
    source: {
      cuda: CUDA_SOURCE,
      entry: "example_fahrenheit_pool",
      name: "fahrenheit.cu",
    },
  },
});
export default fahrenheit;
