/**
 * The far end of the `postMessage` and `MessageChannel` ping-pong baselines:
 * sends every message straight back, on the Worker's own channel or on a
 * port it was given.
 *
 * @module
 */

interface PingScope {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
}

const scope = globalThis as unknown as PingScope;

/** A port handed over in the first message switches the Worker to echo on that port. */
interface UsePort {
  /** The port to echo on. */
  readonly port: MessagePort;
}

scope.onmessage = (event: MessageEvent) => {
  const data = event.data as UsePort | unknown;
  if (data !== null && typeof data === "object" && "port" in data) {
    const port = (data as UsePort).port;
    port.onmessage = (message: MessageEvent) => port.postMessage(message.data);
    scope.postMessage("ready");
    return;
  }
  scope.postMessage(data);
};
