/**
 * NATS subjects of a cluster: where an actor is served, where a node answers
 * pings, and how MQTT-style topics and filters map onto NATS subjects.
 *
 * Every subject starts with `rk.<tenant>`. A topic's levels (separated by
 * `/`) become subject tokens (separated by `.`); in a filter, `+` becomes `*`
 * and a last-level `#` becomes `>` plus the parent subject (MQTT's `a/#`
 * matches `a`, NATS's `a.>` does not). A level or name that is not a plain
 * NATS token (empty, or with characters other than letters, digits, `_` and
 * `-`) is escaped: each other UTF-8 byte as `~` and two hex digits, an empty
 * level as `~` alone. The mapping is one-to-one, so a subject maps back to
 * exactly the topic it came from.
 *
 * @module
 */

import { InvalidOptionError } from "../errors.ts";
import { validateFilter, validateTopic } from "../topic.ts";

const PLAIN = /^[A-Za-z0-9_-]$/;
const TENANT = /^[A-Za-z0-9_-]{1,64}$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Escapes `text` into one NATS subject token (see the module doc). */
export function encodeToken(text: string): string {
  if (text === "") return "~";
  let out = "";
  for (const char of text) {
    if (PLAIN.test(char)) {
      out += char;
      continue;
    }
    for (const byte of encoder.encode(char)) {
      out += "~" + byte.toString(16).toUpperCase().padStart(2, "0");
    }
  }
  return out;
}

/** The text that {@linkcode encodeToken} escaped into `token`. */
export function decodeToken(token: string): string {
  if (token === "~") return "";
  if (!token.includes("~")) return token;
  const bytes: number[] = [];
  for (let i = 0; i < token.length;) {
    if (token[i] === "~") {
      bytes.push(parseInt(token.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(token.charCodeAt(i));
      i++;
    }
  }
  return decoder.decode(new Uint8Array(bytes));
}

/**
 * A tenant's name: 1 to 64 letters, digits, `_` or `-`. Throws
 * {@linkcode InvalidOptionError} otherwise.
 */
export function checkTenant(option: string, tenant: unknown): string {
  if (typeof tenant !== "string" || !TENANT.test(tenant)) {
    throw new InvalidOptionError(
      option,
      tenant,
      "1 to 64 letters, digits, '_' or '-'",
    );
  }
  return tenant;
}

/** The subjects of one tenant. */
export class Subjects {
  /** The tenant. */
  readonly tenant: string;
  /** `rk.<tenant>`. */
  readonly prefix: string;
  /** `rk.<tenant>.topic`: topics live below it. */
  readonly topicPrefix: string;

  /** The subjects of `tenant` (checked like {@linkcode checkTenant}). */
  constructor(tenant: string) {
    this.tenant = checkTenant("cluster.tenant", tenant);
    this.prefix = `rk.${tenant}`;
    this.topicPrefix = `${this.prefix}.topic`;
  }

  /** Where the actor `name` answers `operation` (`call`, `send`, `receive`, `describe`). */
  actor(
    name: string,
    operation: "call" | "send" | "receive" | "describe",
  ): string {
    return `${this.prefix}.actor.${encodeToken(name)}.${operation}`;
  }

  /** Every operation of the actor `name` (what its serving node subscribes). */
  actorAll(name: string): string {
    return `${this.prefix}.actor.${encodeToken(name)}.*`;
  }

  /** Where durable messages for the actor `name` are stored (JetStream). */
  durable(name: string): string {
    return `${this.prefix}.durable.${encodeToken(name)}`;
  }

  /** Every durable message of the tenant: the subjects of its durable stream. */
  get allDurable(): string {
    return `${this.prefix}.durable.>`;
  }

  /** Where dead letters of the actor `name` are recorded (JetStream). */
  dead(name: string): string {
    return `${this.prefix}.dead.${encodeToken(name)}`;
  }

  /** Every dead letter of the tenant: the subjects of its dead-letter stream. */
  get allDead(): string {
    return `${this.prefix}.dead.>`;
  }

  /** The tenant's JetStream stream of durable messages. */
  get durableStream(): string {
    return `RK_${this.tenant}_DURABLE`;
  }

  /** The tenant's JetStream stream of dead letters. */
  get deadStream(): string {
    return `RK_${this.tenant}_DEAD`;
  }

  /**
   * The durable consumer through which the actor `name` takes its durable
   * messages: `rk-<name>` for a name of letters, digits and `-`, else
   * `rk_` and the name's UTF-8 bytes in hex (one-to-one either way).
   */
  durableConsumer(name: string): string {
    if (/^[A-Za-z0-9-]+$/.test(name)) return `rk-${name}`;
    let hex = "";
    for (const byte of encoder.encode(name)) {
      hex += byte.toString(16).padStart(2, "0");
    }
    return `rk_${hex}`;
  }

  /** Where the node `node` answers pings. */
  nodePing(node: string): string {
    return `${this.prefix}.node.${encodeToken(node)}.ping`;
  }

  /** Where the node `node` announces that it leaves. */
  nodeLeave(node: string): string {
    return `${this.prefix}.node.${encodeToken(node)}.leave`;
  }

  /** Where the node `node` takes actors that migrate to it. */
  nodeAdopt(node: string): string {
    return `${this.prefix}.node.${encodeToken(node)}.adopt`;
  }

  /**
   * Where the node `node` takes the decision on an adoption: the source's
   * confirmation (`commit`) or its abort of a migration.
   */
  nodeDecide(node: string): string {
    return `${this.prefix}.node.${encodeToken(node)}.decide`;
  }

  /**
   * Where the node migrating the actor `name` away says where it goes
   * (while the actor is served nowhere, callers ask here before giving up).
   */
  moving(name: string): string {
    return `${this.prefix}.moving.${encodeToken(name)}`;
  }

  /** Where the node `node` is asked to migrate one of its actors away. */
  nodeMigrate(node: string): string {
    return `${this.prefix}.node.${encodeToken(node)}.migrate`;
  }

  /** The tenant's JetStream stream of checkpoints. */
  get checkpointStream(): string {
    return `RK_${this.tenant}_CHECKPOINTS`;
  }

  /** Where checkpoint `id` (16 hex digits) of the actor `name` is kept. */
  checkpoint(name: string, id: string): string {
    return `${this.prefix}.ckpt.${encodeToken(name)}.${id}`;
  }

  /** Where the id of the actor `name`'s latest checkpoint is kept. */
  checkpointHead(name: string): string {
    return `${this.prefix}.ckpt.${encodeToken(name)}.head`;
  }

  /** Every checkpoint subject of the tenant. */
  get allCheckpoints(): string {
    return `${this.prefix}.ckpt.>`;
  }

  /** Where every node announces that it leaves. */
  get anyNodeLeave(): string {
    return `${this.prefix}.node.*.leave`;
  }

  /** The subject a topic is published on. Throws `InvalidMessageError` for an invalid topic. */
  topic(topic: string): string {
    validateTopic(topic);
    return `${this.topicPrefix}.${topic.split("/").map(encodeToken).join(".")}`;
  }

  /** Every topic of the tenant. */
  get allTopics(): string {
    return `${this.topicPrefix}.>`;
  }

  /** The topic a subject below {@linkcode Subjects.topicPrefix} stands for, or `undefined`. */
  topicOf(subject: string): string | undefined {
    if (!subject.startsWith(this.topicPrefix + ".")) return undefined;
    const tokens = subject.slice(this.topicPrefix.length + 1).split(".");
    try {
      return tokens.map(decodeToken).join("/");
    } catch {
      return undefined;
    }
  }

  /**
   * The subjects that together match what the MQTT `filter` matches: one,
   * or two for a filter ending in `/#` (its parent and `>` below it).
   * Throws `InvalidMessageError` for an invalid filter.
   */
  filter(filter: string): string[] {
    validateFilter(filter);
    const levels = filter.split("/");
    const tokens = levels.map((level) =>
      level === "+" ? "*" : level === "#" ? ">" : encodeToken(level)
    );
    const subject = `${this.topicPrefix}.${tokens.join(".")}`;
    if (levels.length > 1 && levels[levels.length - 1] === "#") {
      return [
        `${this.topicPrefix}.${tokens.slice(0, -1).join(".")}`,
        subject,
      ];
    }
    return [subject];
  }
}

/** What a remote actor is asked to do. */
export type ActorOperation = Parameters<Subjects["actor"]>[1];

/** The operations, as the last token of an actor's subjects. */
export const ACTOR_OPERATIONS: readonly ActorOperation[] = Object.freeze([
  "call",
  "send",
  "receive",
  "describe",
]);
