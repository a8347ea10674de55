/**
 * Small, dependency-free SVG line charts for the benchmark report: lines with
 * markers and optional error bars, linear or logarithmic y axis, and x ticks
 * given by the caller (so the caller decides the x transform: percentiles,
 * log2 batch sizes, seconds).
 *
 * @module
 */

/** A tick on an axis: where it is (in axis units) and what it reads. */
export interface Tick {
  /** Position, in the axis's (transformed) units. */
  readonly value: number;
  /** Text shown. */
  readonly label: string;
}

/** One line of a chart. */
export interface Series {
  /** Legend text. */
  readonly name: string;
  /** Points as [x, y], x in the x axis's units. */
  readonly points: ReadonlyArray<readonly [number, number]>;
  /** Error bars as [x, low, high]. */
  readonly errors?: ReadonlyArray<readonly [number, number, number]>;
  /** Draw the line dashed. */
  readonly dashed?: boolean;
}

/** What {@linkcode lineChart} draws. */
export interface LineChartOptions {
  /** Title above the plot. */
  readonly title: string;
  /** Caption under the x axis. */
  readonly xLabel: string;
  /** Caption beside the y axis. */
  readonly yLabel: string;
  /** x ticks; the x range spans them. */
  readonly xTicks: readonly Tick[];
  /** Logarithmic y axis (all values must be > 0). */
  readonly yLog?: boolean;
  /** Formats a y tick. */
  readonly formatY?: (value: number) => string;
  /** The lines. */
  readonly series: readonly Series[];
  /** Width in px (default 760). */
  readonly width?: number;
  /** Height in px (default 420). */
  readonly height?: number;
}

/** Colours that stay apart for the colour-blind (Okabe–Ito). */
export const PALETTE: readonly string[] = [
  "#0072B2",
  "#D55E00",
  "#009E73",
  "#CC79A7",
  "#E69F00",
  "#56B4E9",
  "#000000",
  "#F0E442",
];

/** Escapes text for SVG content and attributes. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** A compact number: 1.23k, 4.5M, 0.012. */
export function compactNumber(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${trim(value / 1e9)}G`;
  if (abs >= 1e6) return `${trim(value / 1e6)}M`;
  if (abs >= 1e3) return `${trim(value / 1e3)}k`;
  return trim(value);
}

function trim(value: number): string {
  const text = Math.abs(value) >= 100
    ? value.toFixed(0)
    : Math.abs(value) >= 10
    ? value.toFixed(1)
    : value.toPrecision(2);
  return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
}

/** y ticks for a log axis: 1-2-5 steps, or powers of ten when the range is wide. */
export function logTicks(min: number, max: number): number[] {
  const low = Math.floor(Math.log10(min));
  const high = Math.ceil(Math.log10(max));
  const steps = high - low <= 3 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = low; e <= high; e++) {
    for (const s of steps) {
      const v = s * 10 ** e;
      if (v >= min * 0.999 && v <= max * 1.001) ticks.push(v);
    }
  }
  return ticks;
}

/** About five round ticks over [min, max] for a linear axis. */
export function linearTicks(min: number, max: number): number[] {
  if (max <= min) return [min];
  const raw = (max - min) / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) =>
    s >= raw
  )!;
  const ticks: number[] = [];
  for (
    let v = Math.ceil(min / step) * step;
    v <= max + step * 1e-9;
    v += step
  ) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Renders a line chart as a standalone SVG document. */
export function lineChart(options: LineChartOptions): string {
  const width = options.width ?? 760;
  const height = options.height ?? 420;
  const legendRows = options.series.length;
  const margin = {
    left: 78,
    right: 20,
    top: 40,
    bottom: 58 + 18 * Math.ceil(legendRows / 2),
  };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const xs = options.xTicks.map((t) => t.value);
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  const ys: number[] = [];
  for (const s of options.series) {
    for (const [, y] of s.points) ys.push(y);
    for (const [, low, high] of s.errors ?? []) ys.push(low, high);
  }
  const finite = ys.filter((y) =>
    Number.isFinite(y) && (!options.yLog || y > 0)
  );
  let yMin = finite.length ? Math.min(...finite) : 1;
  let yMax = finite.length ? Math.max(...finite) : 10;
  if (options.yLog) {
    yMin = 10 ** (Math.floor(Math.log10(yMin) * 4) / 4);
    yMax = 10 ** (Math.ceil(Math.log10(yMax) * 4) / 4);
  } else {
    yMin = Math.min(0, yMin);
    yMax = yMax === yMin ? yMin + 1 : yMax * 1.08;
  }
  const fy = options.yLog ? Math.log10 : (v: number) => v;
  const sx = (x: number) =>
    margin.left +
    (xMax === xMin ? plotW / 2 : (x - xMin) / (xMax - xMin) * plotW);
  const sy = (y: number) =>
    margin.top + plotH - (fy(y) - fy(yMin)) / (fy(yMax) - fy(yMin)) * plotH;
  const format = options.formatY ?? compactNumber;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${
      width / 2
    }" y="22" text-anchor="middle" font-size="14" font-weight="600">${
      escapeXml(options.title)
    }</text>`,
  );
  const yTicks = options.yLog ? logTicks(yMin, yMax) : linearTicks(yMin, yMax);
  for (const t of yTicks) {
    const y = sy(t).toFixed(1);
    out.push(
      `<line x1="${margin.left}" x2="${
        margin.left + plotW
      }" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${
        margin.left - 6
      }" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#444">${
        escapeXml(format(t))
      }</text>`,
    );
  }
  for (const t of options.xTicks) {
    const x = sx(t.value).toFixed(1);
    out.push(
      `<line x1="${x}" x2="${x}" y1="${margin.top}" y2="${
        margin.top + plotH
      }" stroke="#f0f0f0"/>`,
      `<text x="${x}" y="${
        margin.top + plotH + 16
      }" text-anchor="middle" fill="#444">${escapeXml(t.label)}</text>`,
    );
  }
  out.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
    `<text x="${margin.left + plotW / 2}" y="${
      margin.top + plotH + 36
    }" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
    `<text transform="translate(16 ${
      margin.top + plotH / 2
    }) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text>`,
  );
  options.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const points = s.points.filter(([, y]) =>
      Number.isFinite(y) && (!options.yLog || y > 0)
    );
    for (const [x, low, high] of s.errors ?? []) {
      if (
        !(Number.isFinite(low) && Number.isFinite(high)) ||
        (options.yLog && low <= 0)
      ) continue;
      const px = sx(x).toFixed(1);
      out.push(
        `<line x1="${px}" x2="${px}" y1="${sy(low).toFixed(1)}" y2="${
          sy(high).toFixed(1)
        }" stroke="${color}" stroke-width="1.5"/>`,
      );
    }
    if (points.length > 0) {
      const path = points.map(([x, y], k) =>
        `${k === 0 ? "M" : "L"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`
      ).join(" ");
      out.push(
        `<path d="${path}" fill="none" stroke="${color}" stroke-width="2"${
          s.dashed ? ' stroke-dasharray="6 4"' : ""
        }/>`,
      );
      for (const [x, y] of points) {
        out.push(
          `<circle cx="${sx(x).toFixed(1)}" cy="${
            sy(y).toFixed(1)
          }" r="3" fill="${color}"/>`,
        );
      }
    }
    const column = i % 2;
    const row = Math.floor(i / 2);
    const lx = margin.left + column * (plotW / 2);
    const ly = margin.top + plotH + 54 + row * 18;
    out.push(
      `<line x1="${lx}" x2="${
        lx + 22
      }" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${
        s.dashed ? ' stroke-dasharray="6 4"' : ""
      }/>`,
      `<text x="${lx + 28}" y="${ly}" dominant-baseline="middle">${
        escapeXml(s.name)
      }</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
