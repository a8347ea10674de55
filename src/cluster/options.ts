/**
 * Options of a cluster node (`RingKernel.create({ cluster })`), and their
 * checks: each option is checked before anything connects, and a bad value
 * throws an {@linkcode InvalidOptionError} naming it. This module loads no
 * NATS code: the runtime imports its types only.
 *
 * @module
 */

import { InvalidOptionError } from "../errors.ts";
import { checkOptionsObject } from "../options.ts";
import { checkInteger, checkPositiveTimeoutMs } from "../runtime_options.ts";
import { checkTenant } from "./subjects.ts";

/** Credentials of a cluster node: user and password, a token, or an nkey seed. */
export type ClusterAuth =
  | {
    /** The user name. */
    readonly user: string;
    /** Its password. */
    readonly pass: string;
  }
  | {
    /** A token the servers accept. */
    readonly token: string;
  }
  | {
    /** An nkey seed (`SU…`): the node signs the server's challenge with it. */
    readonly nkeySeed: string;
  };

/** TLS of the connection to the servers (files or PEM text). */
export interface ClusterTls {
  /** The CA certificate file that signed the servers' certificates. */
  readonly caFile?: string;
  /** The CA certificate, PEM. */
  readonly ca?: string;
  /** This node's client certificate file (when the servers verify clients). */
  readonly certFile?: string;
  /** This node's client certificate, PEM. */
  readonly cert?: string;
  /** The client certificate's key file. */
  readonly keyFile?: string;
  /** The client certificate's key, PEM. */
  readonly key?: string;
}

/** Options of a cluster node: `RingKernel.create({ cluster })`. */
export interface ClusterOptions {
  /** NATS server URLs (`nats://host:port`, or `tls://…`); one or several. */
  servers: string | readonly string[];
  /**
   * This node's name, unique in the cluster (default: host name, process id
   * and a random suffix). Letters, digits and most punctuation; it is
   * escaped into subjects.
   */
  name?: string;
  /**
   * The tenant (default `"default"`): 1 to 64 letters, digits, `_` or `-`.
   * Actors and topics of one tenant are invisible to another's; with NATS
   * accounts, the servers enforce that too (see docs/reliability.md).
   */
  tenant?: string;
  /** Credentials, when the servers require them. */
  auth?: ClusterAuth;
  /** TLS, when the servers require it (or `servers` use `tls://`). */
  tls?: ClusterTls;
  /** How long joining may take, in ms (default 10 000). */
  timeoutMs?: number;
  /**
   * Most remote operations (calls, sends, receives) in flight at once from
   * this node (default 1024): further ones wait for one to finish, within
   * their own deadline, and fail with `QueueFullError` when it passes (at
   * once with `timeoutMs: 0`).
   */
  maxInFlight?: number;
  /**
   * What each remote operation's deadline is allowed for the network, in ms
   * (default 2000): the serving node applies the caller's `timeoutMs`, and
   * the caller gives up on an answer `timeoutMs + requestGraceMs` after
   * asking.
   */
  requestGraceMs?: number;
  /**
   * How often the serving node of an operation in flight is pinged, in ms
   * (default 1000): a node that does not answer is gone, and the operation
   * fails with `RemoteActorGoneError`.
   */
  livenessMs?: number;
}

/** Cluster options once checked, defaults applied. */
export interface CheckedClusterOptions {
  /** The servers. */
  readonly servers: readonly string[];
  /** The node's name. */
  readonly name: string;
  /** The tenant. */
  readonly tenant: string;
  /** Credentials. */
  readonly auth: ClusterAuth | undefined;
  /** TLS. */
  readonly tls: ClusterTls | undefined;
  /** Deadline of the join. */
  readonly timeoutMs: number;
  /** Outbound bound. */
  readonly maxInFlight: number;
  /** Network allowance. */
  readonly requestGraceMs: number;
  /** Ping period. */
  readonly livenessMs: number;
}

function checkString(option: string, value: unknown): string {
  if (typeof value !== "string" || value === "") {
    throw new InvalidOptionError(option, value, "a non-empty string");
  }
  return value;
}

/** Checks every cluster option; returns them with defaults applied. */
export function checkClusterOptions(
  options: unknown,
  defaultName: () => string,
): CheckedClusterOptions {
  const o = checkOptionsObject<ClusterOptions>("cluster", options);
  const servers = typeof o.servers === "string" ? [o.servers] : o.servers;
  if (!Array.isArray(servers) || servers.length === 0) {
    throw new InvalidOptionError(
      "cluster.servers",
      o.servers,
      "a server URL or a non-empty array of them",
    );
  }
  servers.forEach((s, i) => checkString(`cluster.servers[${i}]`, s));
  const name = o.name === undefined
    ? defaultName()
    : checkString("cluster.name", o.name);
  let auth: ClusterAuth | undefined;
  if (o.auth !== undefined) {
    const a = checkOptionsObject<Record<string, unknown>>(
      "cluster.auth",
      o.auth,
    );
    if ("user" in a || "pass" in a) {
      checkString("cluster.auth.user", a.user);
      checkString("cluster.auth.pass", a.pass);
    } else if ("token" in a) checkString("cluster.auth.token", a.token);
    else if ("nkeySeed" in a) {
      checkString("cluster.auth.nkeySeed", a.nkeySeed);
    } else {
      throw new InvalidOptionError(
        "cluster.auth",
        o.auth,
        "{ user, pass }, { token } or { nkeySeed }",
      );
    }
    auth = o.auth as ClusterAuth;
  }
  let tls: ClusterTls | undefined;
  if (o.tls !== undefined) {
    const t = checkOptionsObject<Record<string, unknown>>("cluster.tls", o.tls);
    for (const key of ["caFile", "ca", "certFile", "cert", "keyFile", "key"]) {
      if (t[key] !== undefined) checkString(`cluster.tls.${key}`, t[key]);
    }
    tls = o.tls as ClusterTls;
  }
  return {
    servers: servers as string[],
    name,
    tenant: checkTenant("cluster.tenant", o.tenant ?? "default"),
    auth,
    tls,
    timeoutMs: checkPositiveTimeoutMs("cluster.timeoutMs", o.timeoutMs, 10_000),
    maxInFlight: checkInteger("cluster.maxInFlight", o.maxInFlight, {
      min: 1,
      max: 1 << 20,
      fallback: 1024,
    }),
    requestGraceMs: checkPositiveTimeoutMs(
      "cluster.requestGraceMs",
      o.requestGraceMs,
      2000,
    ),
    livenessMs: checkPositiveTimeoutMs(
      "cluster.livenessMs",
      o.livenessMs,
      1000,
    ),
  };
}
