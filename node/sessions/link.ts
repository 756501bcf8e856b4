/**
 * A node's link to the coordinator (wire contract: ../coordinator/wire.ts).
 *
 * It authenticates with the node's ML-DSA-65 identity, reconnects with backoff when the connection
 * drops, tracks presence, and carries sessions: `join` resolves when the coordinator starts the
 * session, `send`/`receive` move opaque payloads between players (node/sessions/channel.ts encrypts and signs
 * them end to end), and `done`/`fail` end them.
 *
 * Nothing hangs: an abort from the coordinator, a lost connection, `fail`, `done` or `close` rejects
 * every pending `join` and `receive` of the affected sessions with a SessionAbortedError (a TesseraError with code SESSION_ABORTED).
 */
import { EventEmitter } from 'node:events';
import { pino, type Logger } from 'pino';
import { WebSocket, type RawData } from 'ws';
import { toHex } from '../../core/bytes.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { identitySign, IDENTITY_SECRET_KEY_LENGTH } from '../../core/identity.js';
import { SESSION_ID_LENGTH } from '../../core/session.js';
import {
  CloseCode,
  DIGEST_LENGTH,
  LIMITS,
  SCOPE_LENGTH,
  MAX_CERTIFICATE_BYTES,
  MAX_FRAME_BYTES,
  MAX_MEMBERSHIP_BYTES,
  MAX_MEMBERSHIP_CHANGES_PER_FRAME,
  MAX_NODE_INDEX,
  MAX_PAYLOAD_BYTES,
  authMessage,
  decodeCoordinatorFrame,
  encodeFrame,
  type AbortCode,
  type CoordinatorFrame,
  type MembershipChangeBytes,
  type NodeFrame,
} from '../../contract/relay.js';

/** This node's chain of committed membership changes, oldest first (contract/relay.ts MembershipFrame). */
export type MembershipChainProvider = () => Promise<MembershipChangeBytes[]>;

/** Why a session ended for this node: the coordinator's abort codes, plus what the link decides locally. */
export type SessionEndReason =
  | AbortCode
  /** The link was closed by its owner. */
  | 'LINK_CLOSED'
  /** receive() waited longer than its timeoutMs. */
  | 'RECEIVE_TIMEOUT'
  /** More relayed messages piled up for the session than the link buffers. */
  | 'RELAY_OVERFLOW'
  /** This node called done() (or forget()): the session is over for it. */
  | 'SESSION_DONE'
  /** The coordinator's start did not match the join (a coordinator fault). */
  | 'BAD_START';

/**
 * A session ended before this node finished it. `code` is always SESSION_ABORTED (so callers that
 * handle TesseraError see one code for every abort); `reason` says why and `nodes` names the nodes it
 * is attributed to (missing, differing, or the nodes a failing node reported).
 *
 * `culprits` is always empty. An abort is a frame from the coordinator, and for 'FAILED' it only
 * passes on another node's unsigned claim: neither is evidence a third party can check
 * (design/sessions.md, "Evidence and blame"). The node that holds the evidence reports it itself.
 */
export class SessionAbortedError extends TesseraError {
  readonly reason: SessionEndReason;
  readonly nodes: readonly number[];
  /** Hex session id. */
  readonly session: string;

  constructor(reason: SessionEndReason, message: string, nodes: readonly number[], session: string) {
    super(ErrorCode.SessionAborted, `${reason}: ${message}`, []);
    this.name = 'SessionAbortedError';
    this.reason = reason;
    this.nodes = Object.freeze([...new Set(nodes)].sort((a, b) => a - b));
    this.session = session;
  }

  override toJSON(): { code: ErrorCode; message: string; culprits: readonly number[]; reason: SessionEndReason; nodes: readonly number[] } {
    return { ...super.toJSON(), reason: this.reason, nodes: this.nodes };
  }
}

export function isSessionAborted(e: unknown): e is SessionAbortedError {
  return e instanceof SessionAbortedError;
}

export interface LinkConnectOptions {
  /** ws:// or wss:// URL of the coordinator's /nodes endpoint. */
  url: string;
  index: number;
  identitySecretKey: Uint8Array;
  /** Trusted certificate(s) for wss: the coordinator's pinned certificate or its CA. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** When set, a challenge naming another coordinator is refused (nothing is signed for it). */
  coordinatorId?: string;
  /**
   * Keep retrying (with backoff) when the coordinator refuses this node's authentication on the first
   * attempt too, instead of failing connect(). The node process sets it: a node that a membership change
   * adds or repairs starts before the coordinator admits its identity (core/membership.ts), and is admitted
   * once the change is committed. Default false: a refusal on the first attempt is final.
   */
  retryRefusedAuthentication?: boolean;
  /** Reconnect backoff; doubles from minDelayMs up to maxDelayMs, with jitter. Default 100 ms .. 5 s. */
  reconnect?: { minDelayMs?: number; maxDelayMs?: number };
  /** How long connect() keeps trying before it gives up. Default 30 s. */
  connectTimeoutMs?: number;
  /** With no frame or ping from the coordinator for this long, the connection is dropped. Default 60 s. */
  heartbeatTimeoutMs?: number;
  /** Relayed messages buffered per session before the session fails with RELAY_OVERFLOW. Default 4096. */
  maxQueuedPerSession?: number;
  /**
   * Relayed payload bytes buffered per session before the session fails with RELAY_OVERFLOW (naming
   * no node: unauthenticated bytes from the relay are no evidence). Default 32 MiB; at least one
   * largest payload (MAX_PAYLOAD_BYTES).
   */
  maxQueuedBytesPerSession?: number;
  /**
   * This node's committed membership changes, oldest first. The link sends them to the coordinator
   * after every successful (re)authentication (so a coordinator restarted without its state catches
   * up) and on announceMembership(). Also settable later with setMembershipChanges().
   */
  membershipChanges?: MembershipChainProvider;
  logger?: Logger;
}

export interface RelayedMessage {
  from: number;
  payload: Uint8Array;
}

type RelayHandler = (msg: RelayedMessage) => void;

interface Waiter {
  from?: number;
  resolve: (m: RelayedMessage) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

interface LinkSession {
  readonly id: Uint8Array;
  readonly key: string;
  readonly players: number[];
  state: 'joining' | 'started';
  joinResolve: (r: { players: number[] }) => void;
  joinReject: (e: Error) => void;
  queue: RelayedMessage[];
  /** Payload bytes in `queue`. */
  queuedBytes: number;
  waiters: Waiter[];
  handler?: RelayHandler;
}

const MAX_ENDED_REMEMBERED = 4096;
const DEFAULT_MAX_QUEUED_PER_SESSION = 4096;
export const DEFAULT_MAX_QUEUED_BYTES_PER_SESSION = 32 * 1024 * 1024;

function copyBytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

function isNodeIndex(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 1 && x <= MAX_NODE_INDEX;
}

function checkSessionId(session: unknown): asserts session is Uint8Array {
  if (!(session instanceof Uint8Array) || session.length !== SESSION_ID_LENGTH) {
    throw new TesseraError(ErrorCode.BadInput, `session id: expected ${SESSION_ID_LENGTH} bytes`);
  }
}

function checkScope(scope: unknown): void {
  if (scope !== undefined && (!(scope instanceof Uint8Array) || scope.length !== SCOPE_LENGTH)) {
    throw new TesseraError(ErrorCode.BadInput, `session scope: expected ${SCOPE_LENGTH} bytes`);
  }
}

/**
 * Split a chain into frames, oldest first: at most MAX_MEMBERSHIP_CHANGES_PER_FRAME changes each, and
 * under the frame cap (MAX_PAYLOAD_BYTES of change bytes per frame; one change is at most
 * MAX_MEMBERSHIP_BYTES + MAX_CERTIFICATE_BYTES, well under it).
 */
export function membershipFrames(chain: readonly MembershipChangeBytes[]): MembershipChangeBytes[][] {
  const frames: MembershipChangeBytes[][] = [];
  let frame: MembershipChangeBytes[] = [];
  let bytes = 0;
  for (const c of chain) {
    const size = c.membership.length + c.certificate.length + 64;
    if (frame.length > 0 && (frame.length === MAX_MEMBERSHIP_CHANGES_PER_FRAME || bytes + size > MAX_PAYLOAD_BYTES)) {
      frames.push(frame);
      frame = [];
      bytes = 0;
    }
    frame.push({ membership: copyBytes(c.membership), certificate: copyBytes(c.certificate) });
    bytes += size;
  }
  if (frame.length > 0) frames.push(frame);
  return frames;
}

export interface CoordinatorLinkEvents {
  connected: [online: number[]];
  disconnected: [info: { code: number; reason: string }];
  online: [online: number[]];
  /** Another connection authenticated as this node; the link stopped reconnecting. */
  replaced: [];
  /**
   * The coordinator refused our authentication on a reconnect, or this link refused a coordinator
   * whose id is not the pinned one (the link keeps trying).
   */
  authFailed: [reason: string];
}

export class CoordinatorLink extends EventEmitter<CoordinatorLinkEvents> {
  private opts?: Required<Pick<LinkConnectOptions, 'url' | 'index' | 'identitySecretKey'>> & LinkConnectOptions;
  private log: Logger = pino({ level: 'silent' });
  private ws?: WebSocket;
  private authenticated = false;
  private closing = false;
  private stopped = false;
  private everConnected = false;
  private attempt = 0;
  private reconnectTimer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  private connectWaiter?: { resolve: () => void; reject: (e: Error) => void; timer: NodeJS.Timeout };
  private onlineNodes: number[] = [];
  private readonly sessions = new Map<string, LinkSession>();
  private readonly ended = new Map<string, SessionAbortedError>();
  private onlineWaiters = new Set<() => void>();
  /** Why this link last refused a coordinator (for the connect timeout's message). */
  private lastRefusal?: string;
  private membershipChanges?: MembershipChainProvider;

  /** Create a link and connect it. */
  static async connect(opts: LinkConnectOptions): Promise<CoordinatorLink> {
    const link = new CoordinatorLink();
    await link.connect(opts);
    return link;
  }

  /** This node's index (after connect()). */
  get index(): number {
    if (!this.opts) throw new TesseraError(ErrorCode.BadState, 'link: not connected');
    return this.opts.index;
  }

  /** True while authenticated to the coordinator. */
  get connected(): boolean {
    return this.authenticated;
  }

  isConnected(): boolean {
    return this.authenticated;
  }

  /**
   * Connect and authenticate. Resolves on the coordinator's welcome. Retries network failures with
   * backoff until connectTimeoutMs; an authentication refusal on the first attempt is final.
   */
  connect(opts: LinkConnectOptions): Promise<void> {
    if (this.opts) return Promise.reject(new TesseraError(ErrorCode.BadState, 'link: connect() called twice'));
    if (typeof opts.url !== 'string' || !/^wss?:\/\//.test(opts.url)) {
      return Promise.reject(new TesseraError(ErrorCode.BadInput, 'link: url must be ws:// or wss://'));
    }
    if (!isNodeIndex(opts.index)) return Promise.reject(new TesseraError(ErrorCode.BadInput, 'link: index must be 1..255'));
    if (!(opts.identitySecretKey instanceof Uint8Array) || opts.identitySecretKey.length !== IDENTITY_SECRET_KEY_LENGTH) {
      return Promise.reject(new TesseraError(ErrorCode.BadInput, 'link: identity secret key has the wrong length'));
    }
    if (opts.coordinatorId !== undefined && (typeof opts.coordinatorId !== 'string' || opts.coordinatorId.length < 1 || opts.coordinatorId.length > 128)) {
      return Promise.reject(new TesseraError(ErrorCode.BadInput, 'link: coordinatorId must be 1..128 characters'));
    }
    const maxQueued = opts.maxQueuedPerSession ?? DEFAULT_MAX_QUEUED_PER_SESSION;
    if (!Number.isSafeInteger(maxQueued) || maxQueued < 1) {
      return Promise.reject(new TesseraError(ErrorCode.BadInput, 'link: maxQueuedPerSession must be a positive integer'));
    }
    const maxQueuedBytes = opts.maxQueuedBytesPerSession ?? DEFAULT_MAX_QUEUED_BYTES_PER_SESSION;
    if (!Number.isSafeInteger(maxQueuedBytes) || maxQueuedBytes < MAX_PAYLOAD_BYTES) {
      return Promise.reject(new TesseraError(ErrorCode.BadInput, `link: maxQueuedBytesPerSession must be an integer >= ${MAX_PAYLOAD_BYTES}`));
    }
    if (opts.membershipChanges !== undefined && typeof opts.membershipChanges !== 'function') {
      return Promise.reject(new TesseraError(ErrorCode.BadInput, 'link: membershipChanges must be a function'));
    }
    this.opts = opts;
    this.membershipChanges ??= opts.membershipChanges;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'link', node: opts.index });
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.connectWaiter = undefined;
        this.stopped = true;
        this.teardownSocket();
        const why = this.lastRefusal ? ` (${this.lastRefusal})` : '';
        reject(new TesseraError(ErrorCode.Unavailable, `link: could not connect to the coordinator within ${opts.connectTimeoutMs ?? 30_000} ms${why}`));
      }, opts.connectTimeoutMs ?? 30_000);
      this.connectWaiter = { resolve, reject, timer };
      this.openSocket();
    });
  }

  /** Set (or replace) where the link reads this node's chain of committed membership changes. */
  setMembershipChanges(provider: MembershipChainProvider | undefined): void {
    if (provider !== undefined && typeof provider !== 'function') throw new TesseraError(ErrorCode.BadInput, 'link: membershipChanges must be a function');
    this.membershipChanges = provider;
  }

  /**
   * Send this node's chain of committed membership changes to the coordinator now, if connected (call
   * it after each committed change). Nothing happens without a provider or with an empty chain; the
   * chain goes as frames of at most MAX_MEMBERSHIP_CHANGES_PER_FRAME changes, oldest first, so the
   * coordinator adopts them in order. Never throws: a failure is logged, and the chain goes again on
   * the next (re)authentication.
   */
  announceMembership(): void {
    const provider = this.membershipChanges;
    const ws = this.ws;
    if (!provider || !ws || !this.authenticated) return;
    void (async () => {
      let chain: MembershipChangeBytes[];
      try {
        chain = await provider();
      } catch (e) {
        return void this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'cannot read the membership chain to announce');
      }
      if (!Array.isArray(chain) || chain.length === 0) return;
      // The socket authenticated when the chain was asked for, and still open: a chain read across a
      // reconnect goes with that reconnect's own announcement instead.
      if (this.ws !== ws || !this.authenticated) return;
      const ok = chain.every(
        (c) =>
          c !== null &&
          typeof c === 'object' &&
          c.membership instanceof Uint8Array &&
          c.membership.length >= 1 &&
          c.membership.length <= MAX_MEMBERSHIP_BYTES &&
          c.certificate instanceof Uint8Array &&
          c.certificate.length >= 1 &&
          c.certificate.length <= MAX_CERTIFICATE_BYTES,
      );
      if (!ok) return void this.log.warn('membership chain has an entry of the wrong shape; not announced');
      for (const changes of membershipFrames(chain)) this.sendFrame({ t: 'membership', changes });
      this.log.debug({ changes: chain.length }, 'membership chain announced');
    })();
  }

  /** Sessions joined on this link and not ended yet (each with its end-to-end channel), for the metrics. */
  get liveSessions(): number {
    return this.sessions.size;
  }

  /** Nodes the coordinator reports online (sorted; includes this node while connected). */
  online(): number[] {
    return [...this.onlineNodes];
  }

  /** Resolves when every node in `nodes` is online; rejects after timeoutMs (default 10 s). */
  waitForOnline(nodes: readonly number[], timeoutMs = 10_000): Promise<void> {
    const ready = () => nodes.every((n) => this.onlineNodes.includes(n));
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!ready()) return;
        clearTimeout(timer);
        this.onlineWaiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.onlineWaiters.delete(check);
        reject(new TesseraError(ErrorCode.BadState, `link: nodes ${nodes.join(', ')} not online within ${timeoutMs} ms`));
      }, timeoutMs);
      this.onlineWaiters.add(check);
    });
  }

  /**
   * Join a session. Resolves with the players when the coordinator starts it (every player joined
   * with the same digest); rejects with a SessionAbortedError when it aborts or the link drops.
   * `scope` (contract/relay.ts sessionScope) lets the coordinator refuse declines about another key.
   */
  async join(session: Uint8Array, digest: Uint8Array, players: readonly number[], timeoutMs?: number, scope?: Uint8Array): Promise<{ players: number[] }> {
    checkSessionId(session);
    checkScope(scope);
    if (!(digest instanceof Uint8Array) || digest.length !== DIGEST_LENGTH) {
      throw new TesseraError(ErrorCode.BadInput, `session digest: expected ${DIGEST_LENGTH} bytes`);
    }
    if (!Array.isArray(players) || players.length < 1 || players.length > MAX_NODE_INDEX || !players.every(isNodeIndex)) {
      throw new TesseraError(ErrorCode.BadInput, 'players: expected 1..255 node indexes');
    }
    const sorted = [...players].sort((a, b) => a - b);
    if (new Set(sorted).size !== sorted.length) throw new TesseraError(ErrorCode.BadInput, 'players: duplicate node index');
    if (!sorted.includes(this.index)) throw new TesseraError(ErrorCode.BadInput, 'players: this node is not a player');
    if (timeoutMs !== undefined && (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > LIMITS.MAX_TIMEOUT_MS)) {
      throw new TesseraError(ErrorCode.BadInput, 'timeoutMs: expected a positive integer');
    }
    const key = toHex(session);
    if (this.sessions.has(key) || this.ended.has(key)) throw new TesseraError(ErrorCode.BadState, 'session already joined on this link');
    if (this.closing) throw new SessionAbortedError('LINK_CLOSED', 'link closed', [], key);
    if (!this.authenticated) throw new TesseraError(ErrorCode.Unavailable, 'not connected to the coordinator');

    const started = new Promise<{ players: number[] }>((joinResolve, joinReject) => {
      this.sessions.set(key, {
        id: copyBytes(session),
        key,
        players: sorted,
        state: 'joining',
        joinResolve,
        joinReject,
        queue: [],
        queuedBytes: 0,
        waiters: [],
      });
    });
    this.sendFrame({ t: 'join', session: copyBytes(session), digest: copyBytes(digest), players: sorted, timeoutMs, ...(scope ? { scope: copyBytes(scope) } : {}) });
    return started;
  }

  /**
   * Send an opaque payload to another player of a joined session. Before the session starts the
   * coordinator holds it and delivers it right after `start` (coordinator/server.ts: a node's channel
   * hello goes out while the other players are still joining).
   */
  send(session: Uint8Array, to: number, payload: Uint8Array): void {
    const s = this.liveSession(session);
    if (!isNodeIndex(to) || to === this.index || !s.players.includes(to)) {
      throw new TesseraError(ErrorCode.UnexpectedParty, `node ${String(to)} is not another player of this session`);
    }
    if (!(payload instanceof Uint8Array) || payload.length < 1 || payload.length > MAX_PAYLOAD_BYTES) {
      throw new TesseraError(ErrorCode.BadInput, `payload: expected 1..${MAX_PAYLOAD_BYTES} bytes`);
    }
    if (!this.authenticated) throw new SessionAbortedError('NODE_OFFLINE', 'not connected to the coordinator', [this.index], s.key);
    this.sendFrame({ t: 'relay', session: s.id, to, payload });
  }

  /**
   * The next message relayed for `session` (from `from` only, if given), in arrival order. Messages
   * that arrive before anyone asks are buffered. Rejects with the session's SessionAbortedError when it ends.
   */
  receive(session: Uint8Array, from?: number, opts: { timeoutMs?: number } = {}): Promise<RelayedMessage> {
    let s: LinkSession;
    try {
      s = this.liveSession(session);
    } catch (e) {
      return Promise.reject(e);
    }
    if (s.handler) return Promise.reject(new TesseraError(ErrorCode.BadState, 'session has a relay handler; receive() is not available'));
    const i = s.queue.findIndex((m) => from === undefined || m.from === from);
    if (i >= 0) {
      const m = s.queue.splice(i, 1)[0]!;
      s.queuedBytes -= m.payload.length;
      return Promise.resolve(m);
    }
    return new Promise<RelayedMessage>((resolve, reject) => {
      const waiter: Waiter = { from, resolve, reject };
      if (opts.timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => {
          const at = s.waiters.indexOf(waiter);
          if (at >= 0) s.waiters.splice(at, 1);
          reject(new SessionAbortedError('RECEIVE_TIMEOUT', `no message within ${opts.timeoutMs} ms`, from === undefined ? [] : [from], s.key));
        }, opts.timeoutMs);
      }
      s.waiters.push(waiter);
    });
  }

  /**
   * Deliver this session's messages to `handler` instead of receive(): buffered ones at once, then
   * each as it arrives. Returns a function that unregisters it (later messages are buffered again).
   */
  onRelay(session: Uint8Array, handler: RelayHandler): () => void {
    const s = this.liveSession(session);
    if (s.handler) throw new TesseraError(ErrorCode.BadState, 'session already has a relay handler');
    if (s.waiters.length > 0) throw new TesseraError(ErrorCode.BadState, 'session has pending receive() calls');
    s.handler = handler;
    const queued = s.queue.splice(0);
    s.queuedBytes = 0;
    for (const m of queued) this.deliverToHandler(s, m);
    return () => {
      if (s.handler === handler) s.handler = undefined;
    };
  }

  /** This node finished the session. Later receive() calls reject with SESSION_DONE. */
  done(session: Uint8Array): void {
    checkSessionId(session);
    const s = this.sessions.get(toHex(session));
    if (!s) return;
    if (this.authenticated) this.sendFrame({ t: 'done', session: s.id });
    this.endSession(s, new SessionAbortedError('SESSION_DONE', 'session finished on this node', [], s.key));
  }

  /**
   * Report that this node cannot complete the session; the coordinator aborts it for every player
   * with 'FAILED'. May be called before joining (to refuse a session the others have joined); such a
   * decline carries the `scope` (contract/relay.ts sessionScope) of the tenant and key it is about.
   */
  fail(session: Uint8Array, code: string, message: string, culprits: readonly number[] = [], scope?: Uint8Array): void {
    checkSessionId(session);
    checkScope(scope);
    if (typeof code !== 'string' || code.length < 1 || code.length > LIMITS.MAX_CODE_LENGTH) {
      throw new TesseraError(ErrorCode.BadInput, `fail code: expected 1..${LIMITS.MAX_CODE_LENGTH} characters`);
    }
    if (typeof message !== 'string') throw new TesseraError(ErrorCode.BadInput, 'fail message: expected a string');
    const text = message.slice(0, LIMITS.MAX_MESSAGE_LENGTH);
    const blamed = [...new Set(culprits)].sort((a, b) => a - b);
    if (!blamed.every(isNodeIndex)) throw new TesseraError(ErrorCode.BadInput, 'culprits: expected node indexes 1..255');
    const key = toHex(session);
    if (this.ended.has(key)) return;
    if (this.authenticated) this.sendFrame({ t: 'fail', session: copyBytes(session), code, message: text, culprits: blamed, ...(scope ? { scope: copyBytes(scope) } : {}) });
    const s = this.sessions.get(key);
    if (s) this.endSession(s, new SessionAbortedError('FAILED', text, blamed, key));
  }

  /**
   * Fail every session this node is in, at once, with the same code and message (the node's storage
   * failed, node/store/record-auth.ts): each is aborted for every player, so no peer waits for its deadline.
   */
  failAll(code: string, message: string): void {
    for (const s of [...this.sessions.values()]) this.fail(s.id, code, message);
  }

  /**
   * Drop everything the link remembers about a session (call it when the session is over, however it
   * ended). A session still live is ended locally without telling the coordinator.
   */
  forget(session: Uint8Array): void {
    checkSessionId(session);
    const key = toHex(session);
    const s = this.sessions.get(key);
    if (s) this.endSession(s, new SessionAbortedError('SESSION_DONE', 'session forgotten on this node', [], key));
    this.ended.delete(key);
  }

  /** Disconnect for good: every live session fails with LINK_CLOSED. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.watchdog);
    if (this.connectWaiter) {
      clearTimeout(this.connectWaiter.timer);
      this.connectWaiter.reject(new TesseraError(ErrorCode.BadState, 'link closed before it connected'));
      this.connectWaiter = undefined;
    }
    for (const s of [...this.sessions.values()]) this.endSession(s, new SessionAbortedError('LINK_CLOSED', 'link closed', [], s.key));
    const ws = this.ws;
    this.ws = undefined;
    this.authenticated = false;
    if (ws && ws.readyState !== ws.CLOSED) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1000);
        ws.once('close', () => {
          clearTimeout(t);
          resolve();
        });
        if (ws.readyState === ws.CONNECTING) ws.terminate();
        else ws.close(CloseCode.Normal, 'node closing');
      });
    }
    this.onlineNodes = [];
    this.removeAllListeners();
  }

  // ---- internals -----------------------------------------------------------------------------

  private liveSession(session: Uint8Array): LinkSession {
    checkSessionId(session);
    const key = toHex(session);
    const s = this.sessions.get(key);
    if (s) return s;
    const e = this.ended.get(key);
    if (e) throw e;
    throw new TesseraError(ErrorCode.BadState, 'unknown session on this link (join it first)');
  }

  private endSession(s: LinkSession, e: SessionAbortedError): void {
    if (this.sessions.get(s.key) !== s) return;
    this.sessions.delete(s.key);
    this.ended.delete(s.key);
    this.ended.set(s.key, e);
    if (this.ended.size > MAX_ENDED_REMEMBERED) this.ended.delete(this.ended.keys().next().value!);
    if (s.state === 'joining') s.joinReject(e);
    for (const w of s.waiters) {
      clearTimeout(w.timer);
      w.reject(e);
    }
    s.waiters = [];
    s.queue = [];
    s.queuedBytes = 0;
    s.handler = undefined;
    this.log.debug({ session: s.key, code: e.code, nodes: e.nodes }, 'session ended');
  }

  private deliverToHandler(s: LinkSession, m: RelayedMessage): void {
    try {
      s.handler!(m);
    } catch (e) {
      this.log.warn({ session: s.key, err: e instanceof Error ? e.message : String(e) }, 'relay handler threw');
    }
  }

  private sendFrame(frame: NodeFrame): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== ws.OPEN) return;
    ws.send(encodeFrame(frame));
  }

  private openSocket(): void {
    const opts = this.opts!;
    this.attempt++;
    const ws = new WebSocket(opts.url, {
      maxPayload: MAX_FRAME_BYTES,
      handshakeTimeout: 10_000,
      ...(opts.ca ? { ca: opts.ca } : {}),
    });
    this.ws = ws;
    let challenged = false;
    ws.on('open', () => this.kickWatchdog());
    ws.on('ping', () => this.kickWatchdog());
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (this.ws !== ws) return;
      this.kickWatchdog();
      if (!isBinary) return this.protocolError(ws, 'text frame from coordinator');
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      let frame: CoordinatorFrame;
      try {
        frame = decodeCoordinatorFrame(buf);
      } catch (e) {
        return this.protocolError(ws, e instanceof Error ? e.message : 'undecodable frame');
      }
      if (!challenged) {
        if (frame.t !== 'challenge') return this.protocolError(ws, `${frame.t} before challenge`);
        challenged = true;
        if (opts.coordinatorId !== undefined && frame.coordinator !== opts.coordinatorId) {
          // Pinned coordinator id (node config coordinatorId): sign nothing for another coordinator,
          // since the signature would authenticate this node to it. Keep retrying: it may be a
          // coordinator being replaced, and /ready says the node is not connected meanwhile.
          const why = `the coordinator's challenge names coordinator id ${JSON.stringify(frame.coordinator)}, this node is pinned to ${JSON.stringify(opts.coordinatorId)}`;
          this.lastRefusal = why;
          this.log.error({ expected: opts.coordinatorId, received: frame.coordinator }, 'refusing to authenticate to an unexpected coordinator id');
          this.emit('authFailed', why);
          return this.protocolError(ws, 'challenge from an unexpected coordinator id');
        }
        const signature = identitySign(opts.identitySecretKey, authMessage(frame.coordinator, frame.nonce, opts.index));
        ws.send(encodeFrame({ t: 'hello', index: opts.index, signature }));
        return;
      }
      if (!this.authenticated) {
        if (frame.t !== 'welcome') return this.protocolError(ws, `${frame.t} before welcome`);
        this.onWelcome(frame.online);
        return;
      }
      this.onFrame(frame);
    });
    ws.on('error', (e) => this.log.debug({ err: e.message }, 'socket error'));
    ws.on('close', (code: number, reasonBuf: Buffer) => this.onClose(ws, code, reasonBuf.toString('utf8')));
  }

  private onWelcome(online: number[]): void {
    this.authenticated = true;
    this.everConnected = true;
    this.attempt = 0;
    this.setOnline(online);
    this.log.info({ online }, 'connected to coordinator');
    if (this.connectWaiter) {
      clearTimeout(this.connectWaiter.timer);
      this.connectWaiter.resolve();
      this.connectWaiter = undefined;
    }
    this.emit('connected', this.online());
    this.announceMembership();
  }

  private setOnline(online: number[]): void {
    this.onlineNodes = [...online];
    for (const check of [...this.onlineWaiters]) check();
    this.emit('online', this.online());
  }

  private onFrame(frame: CoordinatorFrame): void {
    switch (frame.t) {
      case 'online':
        return this.setOnline(frame.online);
      case 'start': {
        const s = this.sessions.get(toHex(frame.session));
        if (!s || s.state !== 'joining') return void this.log.debug('start for a session not being joined; ignored');
        if (frame.players.join(',') !== s.players.join(',')) {
          this.log.warn({ session: s.key }, 'start with another player list than joined');
          this.sendFrame({ t: 'fail', session: s.id, code: 'BAD_START', message: 'start does not match the join', culprits: [] });
          return this.endSession(s, new SessionAbortedError('BAD_START', 'the coordinator started the session with other players', [], s.key));
        }
        s.state = 'started';
        s.joinResolve({ players: [...s.players] });
        return;
      }
      case 'abort': {
        const s = this.sessions.get(toHex(frame.session));
        if (!s) return;
        // For FAILED, frame.nodes are what the failing node claimed: kept as `nodes`, never as culprits.
        const message =
          frame.code === 'FAILED' && frame.nodes.length > 0
            ? `${frame.message} (reported by another player, naming node${frame.nodes.length > 1 ? 's' : ''} ${frame.nodes.join(', ')}: a claim, not evidence)`
            : frame.message;
        return this.endSession(s, new SessionAbortedError(frame.code, message, frame.nodes, s.key));
      }
      case 'relay': {
        const s = this.sessions.get(toHex(frame.session));
        if (!s) return void this.log.debug('relay for an unknown or ended session dropped');
        if (s.state !== 'started' || frame.from === this.index || !s.players.includes(frame.from)) {
          return void this.log.warn({ session: s.key, from: frame.from }, 'relay from a non-player or before start dropped');
        }
        const m: RelayedMessage = { from: frame.from, payload: frame.payload };
        if (s.handler) return this.deliverToHandler(s, m);
        const w = s.waiters.findIndex((x) => x.from === undefined || x.from === m.from);
        if (w >= 0) {
          const [waiter] = s.waiters.splice(w, 1);
          clearTimeout(waiter!.timer);
          return waiter!.resolve(m);
        }
        s.queue.push(m);
        s.queuedBytes += m.payload.length;
        // Bounded per session, in messages and bytes. These bytes are not authenticated yet (the
        // channel verifies them), so an overflow is a relay fault: it fails this session only and
        // names no node.
        const tooMany = s.queue.length > (this.opts!.maxQueuedPerSession ?? DEFAULT_MAX_QUEUED_PER_SESSION);
        const tooBig = s.queuedBytes > (this.opts!.maxQueuedBytesPerSession ?? DEFAULT_MAX_QUEUED_BYTES_PER_SESSION);
        if (tooMany || tooBig) {
          const what = tooMany ? 'too many unread messages for this session' : 'too many unread bytes for this session';
          this.log.warn({ session: s.key, messages: s.queue.length, bytes: s.queuedBytes }, 'relay queue overflow');
          this.sendFrame({ t: 'fail', session: s.id, code: 'RELAY_OVERFLOW', message: what, culprits: [] });
          this.endSession(s, new SessionAbortedError('RELAY_OVERFLOW', what, [], s.key));
        }
        return;
      }
      case 'challenge':
      case 'welcome':
        return this.protocolError(this.ws!, `unexpected ${frame.t}`);
    }
  }

  private protocolError(ws: WebSocket, what: string): void {
    this.log.warn({ what }, 'bad frame from coordinator');
    try {
      ws.close(CloseCode.BadFrame, what.slice(0, 120));
    } catch {
      ws.terminate();
    }
  }

  private kickWatchdog(): void {
    const ms = this.opts?.heartbeatTimeoutMs ?? 60_000;
    if (this.watchdog) {
      this.watchdog.refresh();
      return;
    }
    this.watchdog = setTimeout(() => {
      this.watchdog = undefined;
      if (this.ws && !this.closing) {
        this.log.warn('coordinator silent; reconnecting');
        this.ws.terminate();
      }
    }, ms);
  }

  private teardownSocket(): void {
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.watchdog);
    this.watchdog = undefined;
    const ws = this.ws;
    this.ws = undefined;
    if (ws) ws.terminate();
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    clearTimeout(this.watchdog);
    this.watchdog = undefined;
    const wasAuthenticated = this.authenticated;
    this.authenticated = false;
    this.onlineNodes = [];
    if (wasAuthenticated) {
      this.log.warn({ code, reason }, 'disconnected from coordinator');
      // The coordinator aborts these sessions for the others (NODE_OFFLINE); do the same here.
      for (const s of [...this.sessions.values()]) {
        this.endSession(s, new SessionAbortedError('NODE_OFFLINE', 'connection to the coordinator lost', [this.index], s.key));
      }
      this.emit('disconnected', { code, reason });
      this.emit('online', []);
    }
    if (this.stopped || this.closing) return;
    if (code === CloseCode.Replaced) {
      this.stopped = true;
      this.log.error('another connection authenticated as this node; not reconnecting');
      this.emit('replaced');
      return;
    }
    if (code === CloseCode.MembershipChanged) {
      // A certified change removed this node or gave its index a new identity: the coordinator will
      // refuse this identity from now on (it keeps trying, in case the index is given back to it).
      this.log.error({ reason }, 'the cluster membership no longer holds this node\'s identity');
    }
    if (code === CloseCode.AuthFailed) {
      if (!this.everConnected && this.connectWaiter && this.opts!.retryRefusedAuthentication !== true) {
        // A refusal on the first attempt is a configuration error: retrying would not fix it.
        const w = this.connectWaiter;
        this.connectWaiter = undefined;
        clearTimeout(w.timer);
        this.stopped = true;
        w.reject(new TesseraError(ErrorCode.Unavailable, `link: coordinator refused authentication: ${reason || 'no reason given'}`));
        return;
      }
      if (!this.everConnected) this.log.warn({ reason }, 'the coordinator does not admit this node (yet); retrying');
      this.emit('authFailed', reason);
    }
    const min = this.opts!.reconnect?.minDelayMs ?? 100;
    const max = this.opts!.reconnect?.maxDelayMs ?? 5000;
    const base = Math.min(max, min * 2 ** Math.min(this.attempt, 20));
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    this.log.debug({ delay }, 'reconnecting');
    this.reconnectTimer = setTimeout(() => {
      if (!this.stopped && !this.closing) this.openSocket();
    }, delay);
  }
}
