// WaveSim page: draws the frames the server streams (binary: width, height,
// step, frame number as u32, then one byte per cell), tells the server when
// it is ready for the next one, and sends clicks, pause/resume and the grid.
"use strict";

const canvas = document.getElementById("field");
const context = canvas.getContext("2d");
const stats = document.getElementById("stats");
const pauseButton = document.getElementById("pause");
const rows = document.querySelector("#actors tbody");

// What the page saw, for people and for the browser test.
const view = {
  frames: 0,
  step: 0,
  paused: false,
  telemetry: undefined,
  config: undefined,
  connected: false,
};
globalThis.wavesim = view;

// Colour map: blue below rest, black at rest, orange-white above.
const lut = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  const v = (i - 128) / 127;
  const a = Math.min(1, Math.sqrt(Math.abs(v)) * 1.4);
  const [r, g, b] = v >= 0
    ? [255 * a, 180 * a * a, 60 * a * a * a]
    : [40 * a * a, 140 * a * a, 255 * a];
  lut[i] = (255 << 24) | (Math.round(b) << 16) | (Math.round(g) << 8) |
    Math.round(r);
}

let image;
const socket = new WebSocket(`ws://${location.host}/ws`);
socket.binaryType = "arraybuffer";
const send = (message) => {
  if (socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(message));
  }
};

socket.onopen = () => {
  view.connected = true;
  send({ type: "ready" });
};
socket.onclose = () => {
  view.connected = false;
  stats.textContent = "disconnected";
};
socket.onmessage = (event) => {
  if (typeof event.data === "string") {
    onJson(JSON.parse(event.data));
    return;
  }
  const header = new Uint32Array(event.data, 0, 4);
  const [width, height, step] = header;
  const pixels = new Uint8Array(event.data, 16);
  if (canvas.width !== width || canvas.height !== height || !image) {
    canvas.width = width;
    canvas.height = height;
    const scale = Math.min(1, 720 / Math.max(width, height)) *
      Math.max(1, Math.floor(512 / Math.max(width, height)));
    canvas.style.width = `${Math.round(width * scale)}px`;
    canvas.style.height = `${Math.round(height * scale)}px`;
    image = context.createImageData(width, height);
  }
  const out = new Uint32Array(image.data.buffer);
  for (let i = 0; i < pixels.length; i++) out[i] = lut[pixels[i]];
  context.putImageData(image, 0, 0);
  view.frames++;
  view.step = step;
  // Ask for the next frame once this one is on screen.
  requestAnimationFrame(() => send({ type: "ready" }));
};

function onJson(message) {
  if (message.type === "config") {
    view.config = message;
    view.paused = message.paused;
    pauseButton.textContent = message.paused ? "Resume" : "Pause";
    document.getElementById("width").value = message.width;
    document.getElementById("height").value = message.height;
    document.getElementById("tile").value = message.tile;
  } else if (message.type === "telemetry") {
    view.telemetry = message;
    view.paused = message.paused;
    const { config } = view;
    stats.textContent = `step ${message.step} · ${
      message.stepsPerSecond.toFixed(0)
    } steps/s · ${message.mcellsPerSecond.toFixed(1)} Mcells/s · ${
      message.fps.toFixed(0)
    } frames/s · ${
      config
        ? `${config.width}×${config.height}, ${config.tiles} tile actors, ${config.backend} backend`
        : ""
    }${message.paused ? " · paused" : ""}`;
    rows.replaceChildren(...message.tiles.map((t) => {
      const tr = document.createElement("tr");
      for (
        const value of [
          t.name,
          t.state,
          Math.round(t.rate).toLocaleString("en"),
          t.queueDepth,
          t.inFlight,
          new Date(Number(BigInt(t.lastProcessedNs) / 1000000n)).toISOString()
            .slice(11, 23),
        ]
      ) {
        const td = document.createElement("td");
        td.textContent = String(value);
        tr.append(td);
      }
      return tr;
    }));
  } else if (message.type === "error") {
    stats.textContent = `error: ${message.message}`;
  }
}

canvas.addEventListener("click", (event) => {
  const box = canvas.getBoundingClientRect();
  const x = ((event.clientX - box.left) / box.width) * canvas.width;
  const y = ((event.clientY - box.top) / box.height) * canvas.height;
  send({ type: "pulse", x, y });
});

pauseButton.addEventListener("click", () => {
  send({ type: view.paused ? "resume" : "pause" });
});

document.getElementById("configure").addEventListener("submit", (event) => {
  event.preventDefault();
  send({
    type: "configure",
    width: Number(document.getElementById("width").value),
    height: Number(document.getElementById("height").value),
    tile: Number(document.getElementById("tile").value),
  });
});
