/**
 * The coordinator: authenticates nodes, tracks presence and sessions, and relays opaque node-to-node
 * payloads (wire contract: ./wire.ts).
 *
 * It holds no secrets and has no say in results. It is trusted for availability only: it enforces
 * presence, digests, deadlines and relaying rules, and it can delay or drop messages, but every
 * payload is encrypted and signed end to end by the nodes, so it cannot read or forge one.
 *
 * Every frame is handled synchronously in arrival order (identity verification is synchronous), so
 * session state changes need no locks, and `start` goes out on each socket before any relay of that
 * session (ws keeps FIFO per socket).
 *
 * Rules the contract leaves open, decided here:
 * - A second authenticated connection for an index closes the first (4003); the old connection's
 *   unfinished sessions abort with NODE_OFFLINE (messages to it may have been lost).
 * - DIGEST_MISMATCH is decided when every player has joined, or earlier once a strict majority of
 *   all players agrees on one digest; it names every joined node outside the largest group, or all
 *   joined nodes when the largest group is tied. PLAYERS_MISMATCH is decided at once, same naming.
 * - A join from a node that is not in its own player list gets an abort (PLAYERS_MISMATCH) for
 *   itself only. A node joining twice with the same digest and players is ignored; with different
 *   ones the session aborts naming it.
 * - Ended sessions are remembered for 2 x sessionTimeoutMs: a late join gets the same abort at once
 *   (a finished session answers EXPIRED "session already finished").
 * - EXPIRED names the players that had not joined (before start) or not sent done (after start);
 *   at the deadline a session with disagreeing digests aborts DIGEST_MISMATCH instead.
 * - A player that sent done may disconnect without aborting the session.
 * - Relays for unknown/ended sessions and from non-players are dropped (a session may end while a
 *   node is sending); a player relaying before it joined, to itself or to a non-player is closed 4002.
 * - A player that joined may relay before the session starts (its channel hello, signed while the
 *   others are still joining): those relays are held, at most EARLY_RELAYS_PER_PLAYER messages and
 *   EARLY_RELAY_BYTES_PER_PLAYER bytes per sender (more is closed 4002), and delivered right after
 *   `start`, in arrival order; an aborted session drops them. So every player receives `start` before
 *   any relay of the session, as before.
 * - fail is accepted from any player of a live session (joined or not), so a node that refuses
 *   can stop the others quickly; culprits outside the player list are dropped.
 * - A decline (fail with DECLINE_CODE) counts only from a player of the session that has not joined
 *   it: a node refuses before it joins. A decline from a non-player is ignored, also when it comes
 *   before the session exists (it is kept, bounded, and applied when the session is created, only if
 *   the decliner is one of its players), so nobody can block a session id it merely predicts. A
 *   player that already joined and then fails with DECLINE_CODE has failed the session (FAILED).
 *   When the joins carry a scope (wire.ts sessionScope: session, tenant, key), a decline counts only
 *   with the same scope: a node declines for an API key only sessions on that key's tenant's keys.
 * - A node whose outgoing buffer exceeds 64 MiB is disconnected (4004).
 * - Membership (coordinator/membership-state.ts): the config's membership is the starting point; a
 *   `membership` frame from any authenticated node offers its chain of certified changes, and the next
 *   epoch is adopted only when its certificate verifies (a bad one is logged and ignored: the sender
 *   may only be passing it on). An adopted chain is written to the state file before it is used; then
 *   hellos check the new keys, and the connections of removed nodes and of nodes given a new identity
 *   are closed (4005), their sessions aborted as on any disconnect.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type * as http from 'node:http';
import type * as https from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { equalBytes, toHex } from '../core/bytes.js';
import { identityVerify } from '../core/identity.js';
import {
  MAX_FRAME_BYTES,
  NONCE_LENGTH,
  WS_PATH,
  CloseCode,
  DECLINE_CODE,
  authMessage,
  decodeNodeFrame,
  encodeFrame,
  type AbortCode,
  type CoordinatorFrame,
  type DoneFrame,
  type FailFrame,
  type HelloFrame,
  type JoinFrame,
  type MembershipChangeBytes,
  type MembershipFrame,
  type RelaySendFrame,
} from '../contract/relay.js';
import type { Membership } from '../core/membership.js';
import { configMembership, followMembershipChain, loadMembershipState, membershipStateText, writeFileDurably } from './membership-state.js';
import { METRICS_TOKEN_PATTERN } from '../contract/http.js';
import { CoordinatorMetrics } from './metrics.js';
import { metricsTokenMatcher } from '../runtime/metrics.js';
import { COORDINATOR_ROUTES } from '../contract/coordinator.js';
import { OPENAPI_PATH, registerOpenApi } from '../runtime/openapi.js';
import { STRICT_AJV_OPTIONS, addResponseCheck, responseCheckEnabled } from '../runtime/response-check.js';
import { packageVersion } from '../runtime/package-info.js';

export interface RelayedMessageFault {
  session: Uint8Array;
  from: number;
  to: number;
  payload: Uint8Array;
}

export interface CoordinatorOptions {
  host?: string;
  /** 0 = a random free port. */
  port: number;
  /** Node index -> ML-DSA-65 identity public key: the starting membership (later ones come certified). */
  membership: ReadonlyMap<number, Uint8Array>;
  /** The starting membership's epoch (core/membership.ts). Default 0. */
  membershipEpoch?: number;
  /**
   * Where adopted membership changes are kept (coordinator/membership-state.ts); replayed and checked
   * at start. Without it they are kept in memory only.
   */
  membershipStateFile?: string;
  /** Signed into every node's authentication, so a challenge cannot be answered for another coordinator. */
  coordinatorId?: string;
  /** Deadline of a session from its first join; a join may ask for less. Default 30 s. */
  sessionTimeoutMs?: number;
  /** A connection that has not authenticated within this time is closed. Default 10 s. */
  authTimeoutMs?: number;
  /** Ping period; a connection that missed the previous pong is terminated. Default 15 s. */
  heartbeatMs?: number;
  /** With TLS configured the server speaks HTTPS/WSS only. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  logger?: Logger;
  /**
   * Fault injection for tests only (not reachable from any config file or env): plays a compromised
   * coordinator that rewrites, drops, duplicates or misroutes relayed messages. It returns the
   * messages to deliver instead of the one given.
   */
  relayFault?: (m: RelayedMessageFault) => RelayedMessageFault[];
  /**
   * The bearer token that reads GET /metrics (coordinator/metrics.ts; contract/http.ts
   * METRICS_TOKEN_PATTERN). Without it /metrics answers 401 to everyone.
   */
  metricsToken?: string;
}

export interface CoordinatorStats {
  connections: number;
  online: number[];
  sessions: number;
  started: number;
  completed: number;
  relayed: number;
  aborted: Record<AbortCode, number>;
  rejectedConnections: number;
  /** The epoch of the membership in use. */
  membershipEpoch: number;
  /** Certified membership changes adopted since start. */
  membershipChanges: number;
}

export interface Coordinator {
  /** ws:// or wss:// URL nodes connect to. */
  url: string;
  /** http:// or https:// base URL (GET /health, GET /ready). */
  httpUrl: string;
  port: number;
  close(): Promise<void>;
  stats(): CoordinatorStats;
}

const DEFAULT_COORDINATOR_ID = 'tessera-coordinator';
/** Sessions that ended are remembered so a late join gets the outcome at once instead of waiting. */
const MAX_ENDED_SESSIONS = 100_000;
/** A node whose outgoing buffer grows past this is too slow to follow; it is disconnected. */
const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

interface Connection {
  readonly id: number;
  readonly ws: WebSocket;
  readonly nonce: Uint8Array;
  index?: number;
  /** The identity key this connection authenticated with (a membership change may retire it). */
  identityKey?: Uint8Array;
  authTimer?: NodeJS.Timeout;
  alive: boolean;
  /** Detached: replaced or closing; its close event no longer changes presence. */
  detached: boolean;
}

interface Join {
  digest: string; // hex
  players: string; // canonical player list
  /** wire.ts sessionScope, hex, when the node sent one: the tenant and key the node was asked about. */
  scope?: string;
}

interface Decline {
  message: string;
  scope?: string; // hex
}

interface Session {
  readonly id: Uint8Array;
  readonly key: string; // hex session id (logs and maps)
  readonly players: readonly number[];
  readonly playersKey: string;
  readonly createdAt: number;
  readonly joins: Map<number, Join>;
  readonly done: Set<number>;
  started: boolean;
  deadline: number;
  timer: NodeJS.Timeout;
  /** Relays from joined players before start, delivered after start (see the module comment). */
  early: { from: number; to: number; payload: Uint8Array }[];
  /** Early relays and their bytes per sender (the caps). */
  earlyUse: Map<number, { messages: number; bytes: number }>;
}

/** Early relays held per sender before start: a channel hello to each peer, with room to spare. */
const EARLY_RELAYS_PER_PLAYER = 2 * 255;
const EARLY_RELAY_BYTES_PER_PLAYER = 4 * 1024 * 1024;

interface Ended {
  code: AbortCode;
  message: string;
  nodes: number[];
  at: number;
}

function hostForUrl(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Of the nodes in `values`, those not in the largest group. With no unique largest group, every node
 * is listed: nobody can tell which side is right.
 */
function minority(values: ReadonlyMap<number, string>): number[] {
  const groups = new Map<string, number[]>();
  for (const [node, v] of values) {
    const g = groups.get(v);
    if (g) g.push(node);
    else groups.set(v, [node]);
  }
  const sizes = [...groups.values()].map((g) => g.length).sort((a, b) => b - a);
  const all = [...values.keys()].sort((a, b) => a - b);
  if (sizes.length < 2) return [];
  if (sizes[0] === sizes[1]) return all;
  const majority = [...groups.values()].find((g) => g.length === sizes[0])!;
  return all.filter((n) => !majority.includes(n));
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<Coordinator> {
  const log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'coordinator' });
  const coordinatorId = opts.coordinatorId ?? DEFAULT_COORDINATOR_ID;
  const sessionTimeoutMs = opts.sessionTimeoutMs ?? 30_000;
  const authTimeoutMs = opts.authTimeoutMs ?? 10_000;
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const host = opts.host ?? '127.0.0.1';
  if (!Number.isSafeInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error('coordinator: port must be 0..65535');
  if (!Number.isSafeInteger(sessionTimeoutMs) || sessionTimeoutMs < 1) throw new Error('coordinator: sessionTimeoutMs must be a positive integer');
  if (coordinatorId.length < 1 || coordinatorId.length > 128) throw new Error('coordinator: coordinatorId must be 1..128 characters');
  if (opts.metricsToken !== undefined && !METRICS_TOKEN_PATTERN.test(opts.metricsToken)) {
    throw new Error('coordinator: metricsToken must be 16..256 printable ASCII characters without spaces');
  }
  for (const [index, key] of opts.membership) {
    if (!Number.isSafeInteger(index) || index < 1 || index > 255) throw new Error(`coordinator: membership index ${index} out of range 1..255`);
    if (!(key instanceof Uint8Array) || key.length !== 1952) throw new Error(`coordinator: membership key of node ${index} must be 1952 bytes`);
  }
  const baseEpoch = opts.membershipEpoch ?? 0;
  if (!Number.isSafeInteger(baseEpoch) || baseEpoch < 0 || baseEpoch > 0xfffffffe) throw new Error('coordinator: membershipEpoch must be an integer 0..4294967294');
  const stateFile = opts.membershipStateFile;
  // The state file's chain, every link verified again from the configured membership (a ConfigError
  // naming the file when it does not follow: coordinator/main.ts exits 2).
  const loaded = stateFile !== undefined ? loadMembershipState(stateFile, configMembership(baseEpoch, opts.membership)) : undefined;
  /** The membership in use and the chain of certified changes that led to it from the config's. */
  let current: Membership = loaded?.membership ?? configMembership(baseEpoch, opts.membership);
  let chain: MembershipChangeBytes[] = loaded?.chain ?? [];
  /** Index -> identity key of `current`: what a hello is checked against (updated in place on a change). */
  const membership = new Map(current.members.map((m) => [m.index, m.identityPublicKey] as const));

  const connections = new Set<Connection>();
  const byIndex = new Map<number, Connection>();
  const sessions = new Map<string, Session>();
  const ended = new Map<string, Ended>();
  /** Declines that came before their session existed: session key -> decliner -> message. */
  const earlyDeclines = new Map<string, { at: number; byNode: Map<number, Decline> }>();
  const endedTtlMs = 2 * sessionTimeoutMs;
  let nextConnectionId = 1;
  let closing = false;
  const counters = {
    membershipChanges: 0,
    completed: 0,
    relayed: 0,
    rejectedConnections: 0,
    aborted: { DIGEST_MISMATCH: 0, NODE_OFFLINE: 0, EXPIRED: 0, FAILED: 0, PLAYERS_MISMATCH: 0, DECLINED: 0 } satisfies Record<AbortCode, number>,
  };

  // ---- HTTP ---------------------------------------------------------------------------------
  // The routes take no request input; strict validator options are for the response check below.
  const ajv = { customOptions: STRICT_AJV_OPTIONS };
  const app = (
    opts.tls
      ? Fastify({ logger: false, ajv, https: { cert: opts.tls.cert, key: opts.tls.key } })
      : Fastify({ logger: false, ajv })
  ) as unknown as FastifyInstance<http.Server | https.Server>;
  // Tests only (TESSERA_CHECK_RESPONSES=1): every JSON response is checked against its route's schema.
  if (responseCheckEnabled()) addResponseCheck(app as unknown as FastifyInstance, log);
  // GET /openapi.json (runtime/openapi.ts) from the route schemas (contract/coordinator.ts). Public, like
  // the probes: the coordinator has no API keys, and its routes are these three.
  await registerOpenApi(app as unknown as FastifyInstance, {
    title: 'Tessera coordinator API',
    description: 'The HTTP routes of the Tessera coordinator (contract/coordinator.ts); nodes reach it over its WebSocket relay, which this document does not describe.',
    version: packageVersion(),
    publicUrls: [COORDINATOR_ROUTES.health.url, COORDINATOR_ROUTES.ready.url, OPENAPI_PATH],
    bearerDescription: "The coordinator's metrics token (config metricsToken), for GET /metrics only.",
    operationIds: new Map(Object.entries(COORDINATOR_ROUTES).map(([name, r]) => [`${r.method} ${r.url}`, name])),
  });
  // Prometheus metrics (coordinator/metrics.ts): the metrics token only (the coordinator has no API keys).
  const metrics = new CoordinatorMetrics(stats);
  const metricsTokenMatches = metricsTokenMatcher(opts.metricsToken);
  app.route({ ...COORDINATOR_ROUTES.metrics, handler: async (req, reply) => {
    const presented = /^Bearer ([\x21-\x7e]{8,256})$/.exec(req.headers.authorization ?? '')?.[1];
    if (!metricsTokenMatches(presented)) {
      const message = opts.metricsToken === undefined ? 'metrics: this coordinator has no metrics token configured (metricsToken)' : 'missing or wrong metrics token';
      return reply.code(401).send({ code: 'UNAUTHORIZED', message });
    }
    const text = await metrics.scrape();
    return reply.type(metrics.contentType).send(text);
  } });
  app.route({ ...COORDINATOR_ROUTES.health, handler: async () => ({ status: 'ok' }) });
  app.route({
    ...COORDINATOR_ROUTES.ready,
    handler: async (_req, reply) => {
      if (closing) return reply.code(503).send({ ready: false });
      return { ready: true, online: onlineList() };
    },
  });

  const wss = new WebSocketServer({ server: app.server, path: WS_PATH, maxPayload: MAX_FRAME_BYTES });

  // ---- helpers ------------------------------------------------------------------------------
  function onlineList(): number[] {
    return [...byIndex.keys()].sort((a, b) => a - b);
  }

  function send(conn: Connection, frame: CoordinatorFrame): void {
    if (conn.detached || conn.ws.readyState !== conn.ws.OPEN) return;
    if (conn.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      log.warn({ node: conn.index }, 'node is not reading its frames; disconnecting');
      closeConnection(conn, CloseCode.SlowConsumer, 'slow consumer');
      return;
    }
    conn.ws.send(encodeFrame(frame));
  }

  function sendToNode(index: number, frame: CoordinatorFrame): void {
    const conn = byIndex.get(index);
    if (conn) send(conn, frame);
  }

  function broadcastOnline(except?: Connection): void {
    const online = onlineList();
    for (const c of byIndex.values()) if (c !== except) send(c, { t: 'online', online });
  }

  /** Close a socket and take it out of presence at once (its close event will find it detached). */
  function closeConnection(conn: Connection, code: number, reason: string): void {
    if (!conn.detached) detach(conn, `connection closed (${code})`);
    try {
      conn.ws.close(code, reason);
    } catch {
      conn.ws.terminate();
    }
  }

  function detach(conn: Connection, why: string): void {
    if (conn.detached) return;
    conn.detached = true;
    clearTimeout(conn.authTimer);
    connections.delete(conn);
    const index = conn.index;
    if (index === undefined || byIndex.get(index) !== conn) return;
    byIndex.delete(index);
    log.info({ node: index, why }, 'node offline');
    // A player that leaves before it is done takes its sessions down: messages to it would be lost.
    for (const s of [...sessions.values()]) {
      if (s.players.includes(index) && !s.done.has(index)) {
        abortSession(s, 'NODE_OFFLINE', `node ${index} disconnected`, [index]);
      }
    }
    if (!closing) broadcastOnline();
  }

  function rememberEnded(key: string, e: Ended): void {
    ended.delete(key);
    ended.set(key, e);
    const now = Date.now();
    // Insertion order is time order: drop expired entries from the front, then enforce the cap.
    for (const [k, v] of ended) {
      if (ended.size > MAX_ENDED_SESSIONS || now - v.at > endedTtlMs) ended.delete(k);
      else break;
    }
  }

  /** Keep a decline for a session not created yet (bounded like `ended`: oldest first out, same TTL). */
  function rememberEarlyDecline(key: string, index: number, decline: Decline): void {
    const entry = earlyDeclines.get(key) ?? { at: Date.now(), byNode: new Map<number, Decline>() };
    if (!entry.byNode.has(index)) entry.byNode.set(index, decline);
    earlyDeclines.set(key, entry);
    const now = Date.now();
    for (const [k, v] of earlyDeclines) {
      if (earlyDeclines.size > MAX_ENDED_SESSIONS || now - v.at > endedTtlMs) earlyDeclines.delete(k);
      else break;
    }
  }

  /**
   * The first early decline of the new session `s` (its first join is `first`) by one of its players
   * with a matching scope, if any; the others are dropped.
   */
  function takeEarlyDecline(s: Session, first: Join): { node: number; message: string } | undefined {
    const entry = earlyDeclines.get(s.key);
    if (!entry) return undefined;
    earlyDeclines.delete(s.key);
    if (Date.now() - entry.at > endedTtlMs) return undefined;
    for (const [node, d] of entry.byNode) {
      if (!s.players.includes(node)) log.warn({ session: s.key, node }, 'decline from a node that is not a player of the session ignored');
      else if (!scopeMatches([first], d.scope)) log.warn({ session: s.key, node }, 'decline about another tenant or key than the session ignored');
      else return { node, message: d.message };
    }
    return undefined;
  }

  /**
   * Whether a decline with `scope` is about the session these joins are for: every join that carries
   * a scope must carry the same one. Joins without one (a node that sends none) cannot be checked.
   */
  function scopeMatches(joins: Iterable<Join>, scope: string | undefined): boolean {
    for (const j of joins) if (j.scope !== undefined && j.scope !== scope) return false;
    return true;
  }

  function lookupEnded(key: string): Ended | undefined {
    const e = ended.get(key);
    if (e && Date.now() - e.at > endedTtlMs) {
      ended.delete(key);
      return undefined;
    }
    return e;
  }

  function abortSession(s: Session, code: AbortCode, message: string, nodes: number[]): void {
    if (sessions.get(s.key) !== s) return;
    clearTimeout(s.timer);
    sessions.delete(s.key);
    const sortedNodes = [...new Set(nodes)].sort((a, b) => a - b);
    rememberEnded(s.key, { code, message, nodes: sortedNodes, at: Date.now() });
    counters.aborted[code]++;
    metrics.sessionEnded(code, Date.now() - s.createdAt);
    log.info({ session: s.key, code, nodes: sortedNodes }, 'session aborted');
    for (const index of s.joins.keys()) {
      sendToNode(index, { t: 'abort', session: s.id, code, message, nodes: sortedNodes });
    }
  }

  function finishSession(s: Session): void {
    clearTimeout(s.timer);
    sessions.delete(s.key);
    counters.completed++;
    metrics.sessionEnded('completed', Date.now() - s.createdAt);
    rememberEnded(s.key, { code: 'EXPIRED', message: 'session already finished', nodes: [], at: Date.now() });
    log.info({ session: s.key }, 'session complete');
  }

  function scheduleDeadline(s: Session): void {
    clearTimeout(s.timer);
    s.timer = setTimeout(() => onDeadline(s), Math.max(0, s.deadline - Date.now()));
  }

  function onDeadline(s: Session): void {
    if (sessions.get(s.key) !== s) return;
    const ms = Date.now() - s.createdAt;
    if (!s.started) {
      const digests = new Map([...s.joins].map(([n, j]) => [n, j.digest]));
      const differing = minority(digests);
      if (new Set(digests.values()).size > 1) {
        abortSession(s, 'DIGEST_MISMATCH', 'nodes joined with different session digests', differing);
        return;
      }
      const missing = s.players.filter((p) => !s.joins.has(p));
      abortSession(s, 'EXPIRED', `session did not start within ${ms} ms`, missing);
      return;
    }
    const unfinished = s.players.filter((p) => !s.done.has(p));
    abortSession(s, 'EXPIRED', `session did not finish within ${ms} ms`, unfinished);
  }

  function startSession(s: Session): void {
    s.started = true;
    log.info({ session: s.key, players: s.players }, 'session started');
    for (const p of s.players) sendToNode(p, { t: 'start', session: s.id, players: [...s.players] });
    const early = s.early.splice(0);
    s.earlyUse.clear();
    for (const m of early) deliver(s, m.from, m.to, m.payload);
  }

  /** Relay one payload of a started session (through the test hook that simulates a faulty relay). */
  function deliver(s: Session, from: number, to: number, payload: Uint8Array): void {
    counters.relayed++;
    const deliveries = opts.relayFault ? opts.relayFault({ session: s.id, from, to, payload }) : [{ session: s.id, from, to, payload }];
    for (const d of deliveries) sendToNode(d.to, { t: 'relay', session: d.session, from: d.from, payload: d.payload });
  }

  /** A protocol violation by an authenticated node: drop its connection. */
  function violation(conn: Connection, what: string): void {
    log.warn({ node: conn.index, what }, 'bad frame');
    closeConnection(conn, CloseCode.BadFrame, what.slice(0, 120));
  }

  // ---- frame handlers ------------------------------------------------------------------------
  function onHello(conn: Connection, f: HelloFrame): void {
    const key = membership.get(f.index);
    if (!key) {
      counters.rejectedConnections++;
      log.warn({ node: f.index, conn: conn.id }, 'authentication failed: unknown node index');
      closeConnection(conn, CloseCode.AuthFailed, 'unknown node index');
      return;
    }
    if (!identityVerify(key, authMessage(coordinatorId, conn.nonce, f.index), f.signature)) {
      counters.rejectedConnections++;
      log.warn({ node: f.index, conn: conn.id }, 'authentication failed: bad signature');
      closeConnection(conn, CloseCode.AuthFailed, 'bad signature');
      return;
    }
    clearTimeout(conn.authTimer);
    conn.identityKey = key;
    const previous = byIndex.get(f.index);
    if (previous) {
      // Only an authenticated connection can replace one: the old one goes, and its sessions with it.
      log.warn({ node: f.index }, 'node reconnected; closing its previous connection');
      closeConnection(previous, CloseCode.Replaced, 'replaced by a new connection');
    }
    conn.index = f.index;
    byIndex.set(f.index, conn);
    log.info({ node: f.index }, 'node online');
    send(conn, { t: 'welcome', online: onlineList() });
    broadcastOnline(conn);
  }

  function onJoin(conn: Connection, index: number, f: JoinFrame): void {
    const key = toHex(f.session);
    const gone = lookupEnded(key);
    if (gone) {
      send(conn, { t: 'abort', session: f.session, code: gone.code, message: gone.message, nodes: gone.nodes });
      return;
    }
    if (!f.players.includes(index)) {
      send(conn, { t: 'abort', session: f.session, code: 'PLAYERS_MISMATCH', message: 'the joining node is not in its player list', nodes: [index] });
      return;
    }
    const playersKey = f.players.join(',');
    const join: Join = { digest: toHex(f.digest), players: playersKey, ...(f.scope ? { scope: toHex(f.scope) } : {}) };
    const timeoutMs = Math.min(sessionTimeoutMs, f.timeoutMs ?? sessionTimeoutMs);
    let s = sessions.get(key);
    if (!s) {
      const now = Date.now();
      s = {
        id: f.session,
        key,
        players: f.players,
        playersKey,
        createdAt: now,
        joins: new Map(),
        done: new Set(),
        started: false,
        deadline: now + timeoutMs,
        timer: undefined as unknown as NodeJS.Timeout,
        early: [],
        earlyUse: new Map(),
      };
      sessions.set(key, s);
      scheduleDeadline(s);
      log.info({ session: key, node: index, players: f.players, timeoutMs }, 'session created');
      const declined = takeEarlyDecline(s, join);
      if (declined) {
        s.joins.set(index, join); // so the joining node gets the abort
        abortSession(s, 'DECLINED', declined.message, [declined.node]);
        return;
      }
    }

    const previous = s.joins.get(index);
    if (previous) {
      // The same join twice is harmless; a node changing its mind is not.
      if (previous.digest === join.digest && previous.players === join.players) return;
      abortSession(s, previous.players !== join.players ? 'PLAYERS_MISMATCH' : 'DIGEST_MISMATCH', `node ${index} joined twice with different parameters`, [index]);
      return;
    }
    if (s.started) {
      // Cannot happen for a player (all players joined before start); a non-player is not in the list.
      send(conn, { t: 'abort', session: f.session, code: 'PLAYERS_MISMATCH', message: 'session already started', nodes: [index] });
      return;
    }
    s.joins.set(index, join);
    log.debug({ session: key, node: index }, 'joined');

    if (join.players !== s.playersKey) {
      const lists = new Map([...s.joins].map(([n, j]) => [n, j.players]));
      abortSession(s, 'PLAYERS_MISMATCH', 'nodes joined with different player lists', minority(lists));
      return;
    }
    const requested = s.createdAt + timeoutMs;
    if (requested < s.deadline) {
      s.deadline = requested;
      scheduleDeadline(s);
    }
    // Fail fast: a player that is not connected now cannot take part.
    const missing = s.players.filter((p) => !byIndex.has(p));
    if (missing.length > 0) {
      abortSession(s, 'NODE_OFFLINE', `node${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not connected`, missing);
      return;
    }
    const digests = new Map([...s.joins].map(([n, j]) => [n, j.digest]));
    const distinct = new Set(digests.values()).size;
    if (s.joins.size === s.players.length) {
      if (distinct === 1) startSession(s);
      else abortSession(s, 'DIGEST_MISMATCH', 'nodes joined with different session digests', minority(digests));
      return;
    }
    if (distinct > 1) {
      // Decide early once a strict majority of all players agrees: later joins cannot change it.
      const counts = new Map<string, number>();
      for (const d of digests.values()) counts.set(d, (counts.get(d) ?? 0) + 1);
      if (Math.max(...counts.values()) * 2 > s.players.length) {
        abortSession(s, 'DIGEST_MISMATCH', 'nodes joined with different session digests', minority(digests));
      }
    }
  }

  function onRelay(conn: Connection, index: number, f: RelaySendFrame): void {
    const s = sessions.get(toHex(f.session));
    // The session may have just ended while the node was sending: not the node's fault.
    if (!s) return void log.debug({ node: index }, 'relay for an unknown or ended session dropped');
    if (!s.players.includes(index)) return void log.warn({ session: s.key, node: index }, 'relay from a non-player dropped');
    if (f.to === index || !s.players.includes(f.to)) return violation(conn, 'relay to a node that is not another player');
    if (s.started) return deliver(s, index, f.to, f.payload);
    if (!s.joins.has(index)) return violation(conn, 'relay before joining the session');
    const use = s.earlyUse.get(index) ?? { messages: 0, bytes: 0 };
    use.messages += 1;
    use.bytes += f.payload.length;
    s.earlyUse.set(index, use);
    if (use.messages > EARLY_RELAYS_PER_PLAYER || use.bytes > EARLY_RELAY_BYTES_PER_PLAYER) return violation(conn, 'too many relays before the session started');
    s.early.push({ from: index, to: f.to, payload: f.payload });
  }

  function onDone(index: number, f: DoneFrame): void {
    const s = sessions.get(toHex(f.session));
    if (!s || !s.players.includes(index) || !s.started) return;
    s.done.add(index);
    if (s.done.size === s.players.length) finishSession(s);
  }

  function onFail(index: number, f: FailFrame): void {
    const key = toHex(f.session);
    const s = sessions.get(key);
    if (f.code === DECLINE_CODE && !s?.joins.has(index)) {
      // The node's operator refused this session (its policy hook said no) before the node joined.
      // Everyone who joined, or joins later, gets a clear DECLINED abort at once instead of waiting
      // for the deadline. The node's own one-line reason (policy refusal, not exportable, bad
      // bundle...) is passed on. Only a player of the session can decline it.
      const message = `node ${index} declined the session: ${f.message}`;
      const scope = f.scope ? toHex(f.scope) : undefined;
      if (s) {
        if (!s.players.includes(index)) return void log.warn({ session: key, node: index }, 'decline from a node that is not a player of the session ignored');
        if (!scopeMatches(s.joins.values(), scope)) return void log.warn({ session: key, node: index }, 'decline about another tenant or key than the session ignored');
        log.info({ session: key, node: index }, 'node declined session');
        abortSession(s, 'DECLINED', message, [index]);
      } else if (!lookupEnded(key)) {
        // The session does not exist yet, so its players are not known: kept until it is created.
        log.info({ session: key, node: index }, 'node declined a session not created yet');
        rememberEarlyDecline(key, index, { message, ...(scope ? { scope } : {}) });
      }
      return;
    }
    if (!s || !s.players.includes(index)) return;
    const culprits = f.culprits.filter((c) => s.players.includes(c));
    log.info({ session: s.key, node: index, code: f.code, culprits }, 'node reported failure');
    abortSession(s, 'FAILED', f.message, culprits);
  }

  /**
   * A node's chain of committed membership changes. Each link at the next epoch is adopted only when
   * its certificate verifies against the membership held (coordinator/membership-state.ts); the rest
   * is ignored. A chain that does not verify is logged, never the sender's fault by itself: it may be
   * relaying what it was given. The adopted links are persisted before anything uses them.
   */
  function onMembership(index: number, f: MembershipFrame): void {
    const result = followMembershipChain(current, f.changes);
    if (result.problem) log.warn({ node: index, epoch: current.epoch, problem: result.problem }, 'membership change not adopted');
    if (result.adopted.length === 0) {
      if (!result.problem) log.debug({ node: index, epoch: current.epoch }, 'membership chain holds nothing new');
      return;
    }
    const nextChain = [...chain, ...result.adopted.map((a) => a.bytes)];
    if (stateFile !== undefined) {
      try {
        writeFileDurably(stateFile, membershipStateText(nextChain));
      } catch (e) {
        // Not adopted: a change used before it is on disk would be forgotten by a restart. The nodes
        // send their chain again (on reconnect, after their next commit).
        log.error({ file: stateFile, err: e instanceof Error ? e.message : String(e) }, 'cannot write the membership state file; change not adopted');
        return;
      }
    }
    chain = nextChain;
    current = result.membership;
    membership.clear();
    for (const m of current.members) membership.set(m.index, m.identityPublicKey);
    for (const a of result.adopted) {
      counters.membershipChanges++;
      log.info({ epoch: a.membership.epoch, added: a.change.added, removed: a.change.removed, replaced: a.change.replaced, from: index }, 'membership adopted');
    }
    // Every connection authenticated under a key the membership no longer holds for its index goes,
    // and with it its sessions (detach: NODE_OFFLINE, and an `online` update to the others).
    for (const c of [...byIndex.values()]) {
      const key = membership.get(c.index!);
      if (key !== undefined && c.identityKey !== undefined && equalBytes(key, c.identityKey)) continue;
      const what = key === undefined ? 'removed from' : 'given a new identity in';
      log.warn({ node: c.index, epoch: current.epoch }, `node ${what} the membership; closing its connection`);
      closeConnection(c, CloseCode.MembershipChanged, `node ${c.index} ${what} the cluster membership (epoch ${current.epoch})`);
    }
  }

  function onMessage(conn: Connection, data: RawData, isBinary: boolean): void {
    if (conn.detached) return;
    conn.alive = true;
    if (!isBinary) return violation(conn, 'text frame');
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    let frame;
    try {
      frame = decodeNodeFrame(buf);
    } catch (e) {
      return violation(conn, e instanceof Error ? e.message : 'undecodable frame');
    }
    const index = conn.index;
    if (index === undefined) {
      if (frame.t !== 'hello') return violation(conn, `${frame.t} before hello`);
      return onHello(conn, frame);
    }
    switch (frame.t) {
      case 'hello':
        return violation(conn, 'hello after authentication');
      case 'join':
        return onJoin(conn, index, frame);
      case 'relay':
        return onRelay(conn, index, frame);
      case 'done':
        return onDone(index, frame);
      case 'fail':
        return onFail(index, frame);
      case 'membership':
        return onMembership(index, frame);
    }
  }

  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    if (closing) return void ws.close(CloseCode.GoingAway, 'shutting down');
    const conn: Connection = { id: nextConnectionId++, ws, nonce: randomBytes(NONCE_LENGTH), alive: true, detached: false };
    connections.add(conn);
    log.debug({ conn: conn.id, remote: req.socket.remoteAddress }, 'connection');
    conn.authTimer = setTimeout(() => {
      if (conn.index === undefined) closeConnection(conn, CloseCode.AuthFailed, 'authentication timeout');
    }, authTimeoutMs);
    ws.on('message', (data, isBinary) => onMessage(conn, data, isBinary));
    ws.on('pong', () => (conn.alive = true));
    ws.on('error', (e) => log.debug({ conn: conn.id, node: conn.index, err: e.message }, 'socket error'));
    ws.on('close', () => detach(conn, 'socket closed'));
    send(conn, { t: 'challenge', nonce: new Uint8Array(conn.nonce), coordinator: coordinatorId });
  });
  wss.on('error', (e) => log.error({ err: e.message }, 'websocket server error'));

  const heartbeat = setInterval(() => {
    for (const c of [...connections]) {
      if (!c.alive) {
        log.warn({ node: c.index }, 'no pong; terminating connection');
        detach(c, 'heartbeat timeout');
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      try {
        c.ws.ping();
      } catch {
        /* closed meanwhile */
      }
    }
  }, heartbeatMs);

  try {
    await app.listen({ port: opts.port, host });
  } catch (e) {
    clearInterval(heartbeat);
    wss.close();
    throw e;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const scheme = opts.tls ? 'https' : 'http';
  const httpUrl = `${scheme}://${hostForUrl(host)}:${port}`;
  const url = `${opts.tls ? 'wss' : 'ws'}://${hostForUrl(host)}:${port}${WS_PATH}`;
  log.info({ port, tls: !!opts.tls, nodes: [...membership.keys()].sort((a, b) => a - b), epoch: current.epoch }, 'coordinator listening');
  if (stateFile === undefined) {
    log.info('no membershipStateFile configured: adopted membership changes are kept in memory only (the nodes send them again after a restart)');
  } else {
    log.info({ file: stateFile, epoch: current.epoch, changes: chain.length }, 'membership state loaded');
  }

  let closed: Promise<void> | undefined;
  async function close(): Promise<void> {
    if (closed) return closed;
    closing = true;
    closed = (async () => {
      clearInterval(heartbeat);
      for (const s of sessions.values()) clearTimeout(s.timer);
      sessions.clear();
      const sockets = [...wss.clients];
      for (const c of [...connections]) closeConnection(c, CloseCode.GoingAway, 'coordinator shutting down');
      // Give the close handshakes a moment, then cut whatever is left so the port is released.
      await Promise.race([
        Promise.all(sockets.map((ws) => (ws.readyState === ws.CLOSED ? undefined : new Promise((r) => ws.once('close', r))))),
        new Promise((r) => setTimeout(r, 500).unref()),
      ]);
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      await app.close();
      log.info('coordinator closed');
    })();
    return closed;
  }

  function stats(): CoordinatorStats {
    let started = 0;
    for (const s of sessions.values()) if (s.started) started++;
    return {
      connections: connections.size,
      online: onlineList(),
      sessions: sessions.size,
      started,
      completed: counters.completed,
      relayed: counters.relayed,
      aborted: { ...counters.aborted },
      rejectedConnections: counters.rejectedConnections,
      membershipEpoch: current.epoch,
      membershipChanges: counters.membershipChanges,
    };
  }

  return { url, httpUrl, port, close, stats };
}
