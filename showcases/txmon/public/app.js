// TxMon page: shows the alerts and figures the server streams (JSON), and
// sends rule changes and the rate.
"use strict";

const view = { ticks: 0, alerts: [], rules: undefined, connected: false };
globalThis.txmon = view;

const socket = new WebSocket(`ws://${location.host}/ws`);
const send = (message) => {
  if (socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(message));
  }
};
socket.onopen = () => (view.connected = true);
socket.onclose = () => {
  view.connected = false;
  document.getElementById("stats").textContent = "disconnected";
};

const cell = (value) => {
  const td = document.createElement("td");
  td.textContent = String(value);
  return td;
};
const row = (values) => {
  const tr = document.createElement("tr");
  tr.append(...values.map(cell));
  return tr;
};

function showRules(message) {
  view.rules = message;
  document.getElementById("rate-value").value = message.rate;
  const box = document.getElementById("rules");
  box.replaceChildren(...message.rules.map((r) => {
    const div = document.createElement("form");
    div.className = "rule";
    div.dataset.rule = r.rule;
    div.innerHTML =
      `<strong>${r.rule}</strong> <code>${r.filter}</code> · version <span class="version">${r.version}</span> · seen ${r.seen} · gaps ${r.gaps}
      <p>${r.meaning}</p>
      <label>a <input name="a" type="number" step="any" value="${r.a}"></label>
      <label>b <input name="b" type="number" step="any" value="${r.b}"></label>
      <label>c <input name="c" type="number" step="any" value="${r.c}"></label>
      <button type="submit">Apply</button>`;
    div.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(div);
      send({
        type: "rule",
        rule: r.rule,
        a: Number(data.get("a")),
        b: Number(data.get("b")),
        c: Number(data.get("c")),
      });
    });
    return div;
  }));
}

socket.onmessage = (event) => {
  const message = JSON.parse(event.data);
  if (message.type === "rules") {
    showRules(message);
  } else if (message.type === "tick") {
    view.ticks++;
    view.last = message;
    view.alerts = message.recent.concat(view.alerts).slice(0, 200);
    document.getElementById("stats").textContent = `${
      message.generated.toLocaleString("en")
    } transactions · ${
      Math.round(message.txPerSecond).toLocaleString("en")
    } tx/s · ${
      Math.round(message.alertsPerSecond)
    } alerts/s · transaction → alert p50 ${
      Number(message.p50Ms).toFixed(2)
    } ms, p99 ${Number(message.p99Ms).toFixed(2)} ms`;
    document.querySelector("#alerts tbody").replaceChildren(
      ...view.alerts.slice(0, 25).map((a) =>
        row([
          a.seq,
          a.rule,
          a.version,
          a.card,
          a.countryCode,
          a.amount.toFixed(2),
          a.score.toFixed(2),
          a.latencyMs.toFixed(2),
        ])
      ),
    );
    document.querySelector("#actors tbody").replaceChildren(
      ...message.actors.map((m) =>
        row([
          m.name,
          m.state,
          Math.round(m.rate).toLocaleString("en"),
          m.queueDepth,
          m.inFlight,
        ])
      ),
    );
  } else if (message.type === "error") {
    document.getElementById("stats").textContent = `error: ${message.message}`;
  }
};

document.getElementById("rate").addEventListener("submit", (event) => {
  event.preventDefault();
  send({
    type: "rate",
    rate: Number(document.getElementById("rate-value").value),
  });
});
