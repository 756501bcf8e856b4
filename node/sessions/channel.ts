/**
 * End-to-end encrypted, authenticated node-to-node messages, relayed by a coordinator that can only
 * delay or drop them.
 *
 * Keys come from long-lived pairwise channels (node/sessions/pair-keys.ts): every node sends the other
 * players, in a `hello` signed by its ML-DSA-65 identity (FIPS 204), the ML-KEM-768 (FIPS 203) public
 * key of its current rekey period. A sender encapsulates to it once per peer per period and reuses that
 * pair key in every session of the period; the ciphertext rides on the first message of each session
 * direction, and the receiver decapsulates once per ciphertext. Per session, HKDF-SHA256 (RFC 5869)
 * of the pair key, salted with the session id and bound to (sender, receiver), keys AES-256-GCM for
 * that direction. The nonce is the sender's message counter under the pair key; the receiver refuses a
 * counter it has already seen (an anti-replay window per pair key). Period keys are wiped when their
 * period is over and their last session has ended, so a later theft of a node's identity keys
 * decrypts no recorded traffic (forward secrecy per period), and because the KEM is post-quantum,
 * "harvest now, decrypt later" gains nothing.
 *
 * Every envelope is signed by the sender's identity over (session, round, sender, receiver, kind,
 * KEM ciphertext, nonce, ciphertext). Envelopes a node sends in one go (everything posted in one
 * synchronous turn: a round to every peer, two rounds to one peer) share ONE identity signature over
 * the hashes of their signed bytes (core/envelope.ts batchSignedBytes); each carries the hash list, so
 * each stays transferable evidence on its own (core/evidence.ts). The receiver takes the sender from the authenticated relay
 * (`from`), checks it against the envelope, verifies the signature with that node's identity key from
 * the cluster membership, and accepts each (sender, round) once. So a message that is forged,
 * tampered with, replayed, or moved to another session, round or receiver is rejected.
 *
 * Blame (design/sessions.md, "Evidence and blame"): a node is named only on evidence a third party
 * can check. Every fault the relay or the network could have caused (bytes that do not decode, a
 * wrong sender or receiver field, a bad signature, a replay, a reorder) fails the session as a
 * *relay fault* that names no node (`ChannelError.relayFrom` says which link it came in on). Only
 * a message whose identity signature verified and that then fails a public check (an unexpected
 * round, a malformed hello or data header, a second different message for the same round, more
 * messages or bytes than the session allows) names its signer.
 *
 * Bounded resources: the channel accepts only the rounds the running protocol declares (`rounds`)
 * and at most `maxMessages` messages and `maxBytes` bytes per peer per session, counted over
 * authenticated messages only (a replaying coordinator cannot push an honest peer over a cap).
 *
 * The hello of every node carries, inside its signed bytes, the session digest it joined with
 * (core/session.ts sessionDigest), so nodes whose parameters differ never run a round together,
 * even when the coordinator starts them as one session.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { Packr } from 'msgpackr';
import { concatBytes, equalBytes, framed, i2osp, toHex, utf8ToBytes, zeroize } from '../../core/bytes.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { identitySign, identityVerify, type IdentityKeyPair } from '../../core/identity.js';
import { MAX_MESSAGES_PER_PAIR_KEY, type PairKeys, type PeriodKeyLease, type ReplayWindow } from './pair-keys.js';
import { MAX_BATCH_ENVELOPES, batchSignedBytes, envelopeSignedBytes, isBatchList } from '../../core/envelope.js';
import type { EquivocationEvidence, SignedEnvelope } from '../../core/evidence.js';

/** What the channel needs from the coordinator link: send opaque bytes, receive (from, bytes). */
export interface RelayLink {
  send(session: Uint8Array, to: number, payload: Uint8Array): void;
  /** Next relayed message for this session, in arrival order; rejects when the session aborts. */
  receive(session: Uint8Array): Promise<{ from: number; payload: Uint8Array }>;
}

/** v1: the signature is over this envelope alone; v2: over the batch of envelope hashes in `b`. */
const ENVELOPE_VERSION = 1;
const BATCH_ENVELOPE_VERSION = 2;
const KDF_LABEL = utf8ToBytes('tessera/channel-key/v2');
const HELLO_ROUND = 'hello';
const MAX_ROUND_LENGTH = 64;
const KEM_CT_LENGTH = 1088;
const KEM_PK_LENGTH = 1184;
const NONCE_LENGTH = 12;
/** A data nonce is 4 zero bytes, then the sender's message counter under the pair key (8 bytes, big-endian). */
const NONCE_ZERO_PREFIX = 4;
const SESSION_DIGEST_LENGTH = 32;
/** Default per-peer cap on authenticated messages when the protocol does not declare its rounds. */
const DEFAULT_MAX_MESSAGES_ANY_ROUND = 64;
/** Slack over (declared rounds + hello) for the default message cap. */
const EXTRA_MESSAGES = 4;
/** Default per-peer cap on authenticated bytes in one session. */
export const DEFAULT_MAX_BYTES_PER_PEER = 8 * 1024 * 1024;
const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

interface Envelope {
  v: number;
  r: string; // round
  f: number; // from
  t: number; // to
  k: 'hello' | 'data';
  e: Uint8Array; // hello: the period KEM public key; data: the pair key's KEM ciphertext on the first message of a session direction, else empty
  n: Uint8Array; // data: AEAD nonce (the message counter); hello: the session digest (32 bytes), or empty when the channel has none
  c: Uint8Array; // hello: application hello info; data: AEAD ciphertext
  s: Uint8Array; // identity signature (v1: of this envelope; v2: of the batch `b`)
  b?: Uint8Array[]; // v2 only: SHA-256 of the signed bytes of every envelope of the batch, this one included
}

/**
 * A channel failure. `culprits` is non-empty only on evidence (a message the culprit signed);
 * `relayFrom` is set for relay faults: the link the bad bytes came in on, which is NOT an accusation.
 */
export class ChannelError extends TesseraError {
  readonly relayFrom?: number;
  constructor(code: ErrorCode, message: string, culprits: readonly number[] = [], relayFrom?: number, evidence: readonly EquivocationEvidence[] = []) {
    super(code, message, culprits, evidence);
    this.name = 'ChannelError';
    if (relayFrom !== undefined) this.relayFrom = relayFrom;
  }
}

/**
 * A fault the coordinator or the network could have caused: it fails the session and names no node
 * ("Relay faults ... name no node", design/sessions.md).
 */
function relayFault(from: number, message: string): never {
  throw new ChannelError(ErrorCode.BadMessage, `channel: relay fault on the link from node ${from}: ${message}`, [], from);
}

/** A message `signer` signed (its identity signature verified) that fails a public check: evidence. */
function signedFault(signer: number, message: string, code: ErrorCode = ErrorCode.BadMessage, evidence: readonly EquivocationEvidence[] = []): never {
  throw new ChannelError(code, `channel: node ${signer} signed ${message}`, [signer], undefined, evidence);
}

/** A signed envelope as transferable evidence (core/evidence.ts EnvelopeEvidence). */
function envelopeOf(env: Envelope): SignedEnvelope {
  return {
    r: env.r,
    f: env.f,
    t: env.t,
    k: env.k,
    e: Uint8Array.from(env.e),
    n: Uint8Array.from(env.n),
    c: Uint8Array.from(env.c),
    s: Uint8Array.from(env.s),
    ...(env.b ? { b: env.b.map((h) => Uint8Array.from(h)) } : {}),
  };
}

function signedBytes(session: Uint8Array, env: Omit<Envelope, 's' | 'v'>): Uint8Array {
  return envelopeSignedBytes(session, env);
}

function asBytes(x: unknown): Uint8Array | undefined {
  return x instanceof Uint8Array ? new Uint8Array(x) : undefined;
}

/** Decode strictly. Nothing here is authenticated yet, so every failure is a relay fault. */
function decodeEnvelope(payload: Uint8Array, from: number): Envelope {
  const reject = (message: string): never => relayFault(from, message);
  let raw: unknown;
  try {
    raw = packr.unpack(payload);
  } catch {
    reject('undecodable envelope');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) reject('envelope is not a map');
  const o = raw as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  if (keys !== (o.v === BATCH_ENVELOPE_VERSION ? 'b,c,e,f,k,n,r,s,t,v' : 'c,e,f,k,n,r,s,t,v')) reject('envelope has unexpected fields');
  const env = {
    v: o.v,
    r: o.r,
    f: o.f,
    t: o.t,
    k: o.k,
    e: asBytes(o.e),
    n: asBytes(o.n),
    c: asBytes(o.c),
    s: asBytes(o.s),
    ...(o.v === BATCH_ENVELOPE_VERSION ? { b: isBatchList(o.b) ? o.b.map((h) => new Uint8Array(h)) : reject('bad batch hash list') } : {}),
  };
  if (env.v !== ENVELOPE_VERSION && env.v !== BATCH_ENVELOPE_VERSION) reject('unsupported envelope version');
  if (typeof env.r !== 'string' || env.r.length === 0 || env.r.length > MAX_ROUND_LENGTH) reject('bad round');
  if (!Number.isInteger(env.f) || !Number.isInteger(env.t)) reject('bad sender or receiver');
  if (env.k !== 'hello' && env.k !== 'data') reject('bad kind');
  if (!env.e || !env.n || !env.c || !env.s) reject('missing bytes');
  return env as Envelope;
}

/** One session direction: its AEAD key (derived from the pair key), and the pair key's counter state. */
interface Direction {
  key: Uint8Array;
  /** Sending: the pair key's next message counter. */
  nextCounter?: () => number;
  /** Receiving: the pair key's anti-replay window (shared by every session under that pair key). */
  window?: ReplayWindow;
}

/**
 * One session's channel between this node and the other players. Use: `open()`, then `send` /
 * `receive` by round name, then `close()` (always, in a finally) to wipe the ephemeral keys.
 */
export class SessionChannel {
  private readonly session: Uint8Array;
  private readonly self: number;
  private readonly peers: number[];
  private readonly identity: IdentityKeyPair;
  private readonly membership: ReadonlyMap<number, Uint8Array>;
  private readonly link: RelayLink;
  private readonly pairKeys: PairKeys;
  /** The period key this session's hello advertised (released when the channel closes). */
  private lease?: PeriodKeyLease;
  private readonly peerKemKeys = new Map<number, Uint8Array>();
  private readonly sendKeys = new Map<number, Direction>();
  private readonly recvKeys = new Map<number, Direction>();
  /** Verified, decrypted messages waiting for their receive() call: key `${from}/${round}`. */
  private readonly inbox = new Map<string, Uint8Array>();
  /**
   * Every (sender, round) ever accepted, with the hash of its signed bytes: a second copy of the same
   * bytes is a replay (a relay fault); a second, different message the sender signed is evidence.
   */
  private readonly seen = new Map<string, { hash: Uint8Array; envelope: SignedEnvelope }>();
  /** (receiver, round) this node already sent: it never signs two messages for one round. */
  private readonly sent = new Set<string>();
  /** The data rounds the protocol expects; undefined: any round name. */
  private readonly rounds?: ReadonlySet<string>;
  private readonly maxMessages: number;
  private readonly maxBytes: number;
  /** The session digest bound into the hellos (empty: none given). */
  private readonly digest: Uint8Array;
  /** Authenticated messages and bytes accepted from each peer. */
  private readonly usage = new Map<number, { messages: number; bytes: number }>();
  private readonly waiters = new Map<string, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
  /** Envelopes posted in this turn, signed together by flush(). */
  private pending: { env: Omit<Envelope, 's' | 'v' | 'b'>; signed: Uint8Array }[] = [];
  private flushQueued = false;
  /** Rounds this node no longer reads (ignore()): their later messages are dropped unchecked. */
  private readonly ignored = new Set<string>();
  /** The last batch signature verified per peer: the other envelopes of that batch need no second check. */
  private readonly verifiedBatch = new Map<number, { bytes: Uint8Array; s: Uint8Array }>();
  private pumping?: Promise<void>;
  private failure?: Error;
  private closed = false;

  constructor(opts: {
    session: Uint8Array;
    self: number;
    players: readonly number[];
    identity: IdentityKeyPair;
    membership: ReadonlyMap<number, Uint8Array>;
    link: RelayLink;
    /** This node's long-lived pairwise channel keys (one per node, shared by its sessions). */
    pairKeys: PairKeys;
    /**
     * The round names the running protocol sends (besides 'hello'). A signed message under any other
     * round fails the session naming its signer. Absent: any round name is accepted.
     */
    rounds?: readonly string[];
    /** Authenticated messages accepted per peer (hello included). Default: rounds + 1 + 4, or 64 without rounds. */
    maxMessages?: number;
    /** Authenticated envelope bytes accepted per peer. Default 8 MiB. */
    maxBytes?: number;
    /** The 32-byte session digest (core/session.ts sessionDigest), signed into this node's hello and checked in every peer's. */
    digest?: Uint8Array;
  }) {
    this.session = opts.session;
    this.self = opts.self;
    this.peers = opts.players.filter((p) => p !== opts.self);
    this.identity = opts.identity;
    this.membership = opts.membership;
    this.link = opts.link;
    this.pairKeys = opts.pairKeys;
    for (const p of this.peers) {
      if (!this.membership.has(p)) throw new TesseraError(ErrorCode.UnexpectedParty, `node ${p} is not a cluster member`);
    }
    if (opts.rounds !== undefined) {
      if (!Array.isArray(opts.rounds)) throw new TesseraError(ErrorCode.BadInput, 'channel: rounds must be an array of round names');
      for (const r of opts.rounds) checkRoundName(r);
      const set = new Set(opts.rounds);
      if (set.size !== opts.rounds.length) throw new TesseraError(ErrorCode.BadInput, 'channel: rounds lists a round twice');
      this.rounds = set;
    }
    this.maxMessages = positiveInt(
      'maxMessages',
      opts.maxMessages ?? (this.rounds ? this.rounds.size + 1 + EXTRA_MESSAGES : DEFAULT_MAX_MESSAGES_ANY_ROUND),
    );
    this.maxBytes = positiveInt('maxBytes', opts.maxBytes ?? DEFAULT_MAX_BYTES_PER_PEER);
    if (opts.digest !== undefined && (!(opts.digest instanceof Uint8Array) || opts.digest.length !== SESSION_DIGEST_LENGTH)) {
      throw new TesseraError(ErrorCode.BadInput, `channel: digest must be ${SESSION_DIGEST_LENGTH} bytes`);
    }
    this.digest = opts.digest ? new Uint8Array(opts.digest) : new Uint8Array();
  }

  /**
   * Exchange signed hellos, carrying each node's period KEM key, with every peer. `info` is application
   * data every peer receives authenticated (e.g. the epochs this node holds); returns each peer's info.
   */
  async open(info: Uint8Array = new Uint8Array()): Promise<Map<number, Uint8Array>> {
    const lease = await this.pairKeys.lease();
    if (this.closed) {
      lease.release();
      throw new TesseraError(ErrorCode.BadState, 'channel closed');
    }
    this.lease = lease;
    for (const to of this.peers) {
      this.post({ r: HELLO_ROUND, f: this.self, t: to, k: 'hello', e: lease.publicKey, n: this.digest, c: info });
    }
    this.startPump();
    return this.receiveAll(HELLO_ROUND, this.peers);
  }

  /** Encrypt and sign `payload` for one peer under `round`. */
  send(to: number, round: string, payload: Uint8Array): void {
    this.assertOpen();
    if (!this.peers.includes(to)) throw new TesseraError(ErrorCode.UnexpectedParty, `node ${to} is not a peer in this session`);
    this.checkDataRound(round);
    // One message per (receiver, round): a second one would be two different messages this node
    // signed for one round, which the receiver rightly treats as evidence against it.
    const sentKey = `${to}/${round}`;
    if (this.sent.has(sentKey)) throw new TesseraError(ErrorCode.BadState, `channel: already sent round ${round} to node ${to}`);
    this.sent.add(sentKey);
    let dir = this.sendKeys.get(to);
    let kemCt: Uint8Array = new Uint8Array();
    if (!dir) {
      const peerKey = this.peerKemKeys.get(to);
      if (!peerKey) throw new TesseraError(ErrorCode.BadState, `channel: no key from node ${to} yet`);
      // The pair key of this period toward `to` (one encapsulation per peer per period).
      const pair = this.pairKeys.sending(to, peerKey);
      dir = { key: this.deriveKey(pair.key, this.self, to), nextCounter: pair.nextCounter };
      this.sendKeys.set(to, dir);
      kemCt = pair.kemCiphertext; // on the first message of this direction only
    }
    const nonce = counterNonce(dir.nextCounter!());
    const header = { r: round, f: this.self, t: to, k: 'data' as const, e: kemCt, n: nonce, c: new Uint8Array() };
    const aad = signedBytes(this.session, header);
    const c = aesGcmSeal(dir.key, nonce, aad, payload);
    this.post({ ...header, c });
  }

  broadcast(round: string, payload: Uint8Array): void {
    for (const to of this.peers) this.send(to, round, payload);
  }

  /** The payload `from` sent under `round`; waits until it arrives or the session fails. */
  receive(from: number, round: string): Promise<Uint8Array> {
    if (!this.peers.includes(from)) {
      return Promise.reject(new TesseraError(ErrorCode.UnexpectedParty, `channel: node ${from} is not a peer in this session`));
    }
    if (round !== HELLO_ROUND) {
      try {
        this.checkDataRound(round);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const key = `${from}/${round}`;
    const ready = this.inbox.get(key);
    if (ready) {
      this.inbox.delete(key);
      return Promise.resolve(ready);
    }
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiters.has(key)) return Promise.reject(new TesseraError(ErrorCode.BadState, 'channel: duplicate receive'));
    return new Promise((resolve, rejectP) => this.waiters.set(key, { resolve, reject: rejectP }));
  }

  async receiveAll(round: string, from: readonly number[] = this.peers): Promise<Map<number, Uint8Array>> {
    const out = new Map<number, Uint8Array>();
    await Promise.all(from.map(async (f) => out.set(f, await this.receive(f, round))));
    return out;
  }

  /**
   * This node will not read `round` any more (the commit certificate, once its own votes decided): a
   * message of that round arriving from now on is dropped before any check, so no signature is verified
   * and nothing is decrypted for it. Only on a direction whose key is set up (a message that carries the
   * KEM ciphertext is always accepted); a receive of the round already waiting ends with the channel.
   */
  ignore(round: string): void {
    this.checkDataRound(round);
    this.ignored.add(round);
  }

  /**
   * Sign and hand to the relay every envelope posted since the last flush, under one identity signature
   * (one envelope alone: signed alone). Runs by itself at the end of the turn that posted them; call it
   * to send them earlier (before telling the coordinator the session is done).
   */
  flush(): void {
    const batch = this.pending.splice(0);
    if (batch.length === 0) return;
    if (batch.length === 1) {
      const { env, signed } = batch[0]!;
      const s = identitySign(this.identity.secretKey, signed);
      this.link.send(this.session, env.t, packr.pack({ v: ENVELOPE_VERSION, ...env, s }));
      return;
    }
    const b = batch.map((p) => sha256(p.signed));
    const s = identitySign(this.identity.secretKey, batchSignedBytes(this.session, this.self, b));
    for (const { env } of batch) this.link.send(this.session, env.t, packr.pack({ v: BATCH_ENVELOPE_VERSION, ...env, s, b }));
  }

  /** Wipe every key this channel holds. Idempotent. Envelopes not flushed yet are dropped. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.lease?.release();
    for (const d of [...this.sendKeys.values(), ...this.recvKeys.values()]) zeroize(d.key);
    this.sendKeys.clear();
    this.recvKeys.clear();
    this.inbox.clear();
    this.fail(new TesseraError(ErrorCode.BadState, 'channel closed'));
  }

  // -------------------------------------------------------------------------------------------

  private fail(e: Error): void {
    if (!this.failure) this.failure = e;
    for (const w of this.waiters.values()) w.reject(this.failure);
    this.waiters.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new TesseraError(ErrorCode.BadState, 'channel closed');
    if (this.failure) throw this.failure;
  }

  /** A round name this node may send or wait for: well-formed, not 'hello', and declared (if rounds were). */
  private checkDataRound(round: string): void {
    checkRoundName(round);
    if (this.rounds && !this.rounds.has(round)) throw new TesseraError(ErrorCode.BadInput, `channel: round ${round} is not one this protocol runs`);
  }

  /** Queue an envelope for this turn's batch (flush() signs and sends it). */
  private post(env: Omit<Envelope, 's' | 'v' | 'b'>): void {
    this.pending.push({ env, signed: signedBytes(this.session, env) });
    if (this.pending.length >= MAX_BATCH_ENVELOPES) {
      this.flush();
      return;
    }
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      if (this.closed || this.failure) return;
      try {
        this.flush();
      } catch (e) {
        // The relay refused (e.g. the link dropped): the session fails as if send() had thrown.
        this.fail(e instanceof Error ? e : new Error(String(e)));
      }
    });
  }

  /** Whether `from` signed `env`: alone (v1), or in a batch that lists the envelope's hash (v2). */
  private signedBy(from: number, env: Envelope, signed: Uint8Array, signedHash: Uint8Array): boolean {
    const idKey = this.membership.get(from)!;
    if (!env.b) return identityVerify(idKey, signed, env.s);
    if (!env.b.some((h) => equalBytes(h, signedHash))) return false;
    const bytes = batchSignedBytes(this.session, from, env.b);
    const last = this.verifiedBatch.get(from);
    if (last && equalBytes(last.s, env.s) && equalBytes(last.bytes, bytes)) return true;
    if (!identityVerify(idKey, bytes, env.s)) return false;
    this.verifiedBatch.set(from, { bytes, s: Uint8Array.from(env.s) });
    return true;
  }

  /** This session's key for direction (from -> to): HKDF-SHA256 of the pair key, salted with the session id. */
  private deriveKey(pairKey: Uint8Array, from: number, to: number): Uint8Array {
    return hkdf(sha256, pairKey, this.session, concatBytes(KDF_LABEL, i2osp(from, 1), i2osp(to, 1)), 32);
  }

  private startPump(): void {
    if (this.pumping) return;
    this.pumping = (async () => {
      while (!this.closed && !this.failure) {
        let msg: { from: number; payload: Uint8Array };
        try {
          msg = await this.link.receive(this.session);
        } catch (e) {
          this.fail(e instanceof Error ? e : new Error(String(e)));
          return;
        }
        try {
          this.accept(msg.from, msg.payload);
        } catch (e) {
          // A bad message fails the session: it never succeeds with a wrong result.
          this.fail(e instanceof Error ? e : new Error(String(e)));
          return;
        }
      }
    })();
  }

  private accept(from: number, payload: Uint8Array): void {
    // Until the signature verifies, anything wrong could be the relay's doing: name no node.
    if (!this.peers.includes(from)) relayFault(from, 'message from a node that is not a player');
    const env = decodeEnvelope(payload, from);
    if (env.f !== from) relayFault(from, `sender field ${env.f} does not match the relayed sender`);
    if (env.t !== this.self) relayFault(from, `message addressed to node ${env.t}`);
    if (env.k === 'data' && this.ignored.has(env.r) && this.recvKeys.has(from)) return; // not read any more: not checked either
    // Counters against replay, checked before the (costly) signature: a counter already received under
    // this pair key, in this session or any other, is refused at once. The relay may have kept and
    // replayed the message, so it names no one. A counter is recorded only once its message has
    // authenticated and decrypted (below), so forged bytes cannot poison the window.
    // Only a message under the session's established pair key (no KEM ciphertext) is checked here: one
    // that carries a ciphertext claims another pair key, and its counter belongs to that key's window
    // (such a message is a second key in one session, which the signed checks below name).
    const known = env.k === 'data' && env.e.length === 0 ? this.recvKeys.get(from) : undefined;
    const claimed = known && env.n.length === NONCE_LENGTH ? nonceCounter(env.n) : undefined;
    if (known && claimed !== undefined) checkFresh(known.window!, claimed, from);
    const signed = signedBytes(this.session, env);
    const signedHash = sha256(signed);
    if (!this.signedBy(from, env, signed, signedHash)) relayFault(from, 'bad or missing signature');

    // Authenticated: `from` signed exactly these bytes for this session, round and receiver.
    const seenKey = `${from}/${env.r}`;
    const earlier = this.seen.get(seenKey);
    if (earlier) {
      // The same signed bytes again: the relay replayed them. Different ones: the sender signed two
      // messages for one round, which an honest node never does (send() refuses it): both are evidence.
      if (equalBytes(earlier.hash, signedHash)) relayFault(from, `replayed message in round ${env.r}`);
      signedFault(from, `two different messages for round ${env.r}`, ErrorCode.Equivocation, [
        { protocol: 'envelope', fault: 'two-messages', signer: from, session: Uint8Array.from(this.session), envelopes: [earlier.envelope, envelopeOf(env)] },
      ]);
    }
    // Only the first message of a round is kept whole (the evidence a second one would need).
    this.seen.set(seenKey, { hash: signedHash, envelope: envelopeOf(env) });
    if (env.k === 'hello' ? env.r !== HELLO_ROUND : env.r === HELLO_ROUND) signedFault(from, `a ${env.k} message under round ${env.r}`);
    if (env.k === 'data' && this.rounds && !this.rounds.has(env.r)) {
      signedFault(from, `a message for round ${env.r}, which this protocol does not run`, ErrorCode.BadMessage, [
        { protocol: 'envelope', fault: 'undeclared-round', signer: from, session: Uint8Array.from(this.session), envelopes: [envelopeOf(env)] },
      ]);
    }
    const use = this.usage.get(from) ?? { messages: 0, bytes: 0 };
    use.messages += 1;
    use.bytes += payload.length;
    this.usage.set(from, use);
    if (use.messages > this.maxMessages) signedFault(from, `more than ${this.maxMessages} messages in this session`);
    if (use.bytes > this.maxBytes) signedFault(from, `more than ${this.maxBytes} bytes of messages in this session`);

    let plaintext: Uint8Array;
    if (env.k === 'hello') {
      if (env.e.length !== KEM_PK_LENGTH) signedFault(from, 'a hello whose KEM key has the wrong length');
      if (env.n.length !== 0 && env.n.length !== SESSION_DIGEST_LENGTH) signedFault(from, 'a hello whose session digest has the wrong length');
      if (!equalBytes(env.n, this.digest)) {
        // Both nodes signed their digests: they joined with different parameters. That is not proof
        // of cheating (the coordinator may have started them as one session), so no culprit.
        throw new ChannelError(
          ErrorCode.BadParameters,
          `channel: node ${from} joined this session with different parameters (its signed hello carries another session digest)`,
        );
      }
      this.peerKemKeys.set(from, env.e);
      plaintext = env.c;
    } else {
      if (env.n.length !== NONCE_LENGTH) signedFault(from, 'a data message whose nonce has the wrong length');
      const counter = nonceCounter(env.n);
      if (counter === undefined) signedFault(from, 'a data message whose nonce is not a message counter');
      let dir = this.recvKeys.get(from);
      if (!dir) {
        // The sender puts its pair key's KEM ciphertext on its first message to us in each session;
        // missing here means the relay reordered or dropped that message.
        if (env.e.length === 0) relayFault(from, 'a message arrived before the one that carries its key (reordered or dropped)');
        if (env.e.length !== KEM_CT_LENGTH) signedFault(from, 'a KEM ciphertext of the wrong length');
        const pair = this.lease!.receiving(from, env.e);
        dir = { key: this.deriveKey(pair.key, from, this.self), window: pair.window };
        this.recvKeys.set(from, dir);
      } else if (env.e.length !== 0) {
        signedFault(from, 'a second KEM ciphertext in one session (re-keyed mid-session)');
      }
      checkFresh(dir.window!, counter, from); // the first message of the direction (later ones: checked above)
      const aad = signedBytes(this.session, { ...env, c: new Uint8Array() });
      try {
        plaintext = aesGcmOpen(dir.key, env.n, aad, env.c);
      } catch {
        // The sender signed this ciphertext, but only we can check the decryption, so it is not
        // evidence a third party can verify: no culprit.
        throw new ChannelError(ErrorCode.DecryptionFailed, `channel: a message signed by node ${from} does not decrypt`);
      }
      dir.window!.mark(counter);
    }
    const waiter = this.waiters.get(seenKey);
    if (waiter) {
      this.waiters.delete(seenKey);
      waiter.resolve(plaintext);
    } else {
      this.inbox.set(seenKey, plaintext);
    }
  }
}

/*
 * AES-256-GCM (NIST SP 800-38D) on node:crypto (OpenSSL), 96-bit nonce, 128-bit tag appended to the
 * ciphertext: the same bytes as @noble/ciphers' gcm(key, nonce, aad).encrypt, without noble's per-call
 * key schedule and GHASH table set-up (~0.3-0.7 ms per message in JS, against ~0.02 ms here).
 */
const GCM_TAG_LENGTH = 16;

function aesGcmSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_LENGTH });
  c.setAAD(aad);
  const head = c.update(plaintext);
  const tail = c.final();
  const tag = c.getAuthTag();
  const out = new Uint8Array(head.length + tail.length + tag.length);
  out.set(head, 0);
  out.set(tail, head.length);
  out.set(tag, head.length + tail.length);
  return out;
}

/** Throws when the tag does not verify (nothing of the plaintext is returned then). */
function aesGcmOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array {
  if (sealed.length < GCM_TAG_LENGTH) throw new Error('ciphertext shorter than its tag');
  const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_LENGTH });
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - GCM_TAG_LENGTH));
  const head = d.update(sealed.subarray(0, sealed.length - GCM_TAG_LENGTH));
  let tail: Buffer;
  try {
    tail = d.final();
  } catch (e) {
    head.fill(0); // unauthenticated plaintext is never used
    throw e;
  }
  const out = new Uint8Array(head.length + tail.length);
  out.set(head, 0);
  out.set(tail, head.length);
  head.fill(0);
  return out;
}

/** One message per counter under a pair key, in any session: else a relay fault (no culprit). */
function checkFresh(window: ReplayWindow, counter: number, from: number): void {
  const fresh = window.check(counter);
  if (fresh === 'replayed') relayFault(from, `replayed: message counter ${counter} under this pair key was already received`);
  if (fresh === 'too-old') relayFault(from, `message counter ${counter} is behind the anti-replay window (replayed or held back too long)`);
}

/** The AEAD nonce of message `counter` under a pair key: 4 zero bytes, then the counter (8 bytes, big-endian). */
function counterNonce(counter: number): Uint8Array {
  const nonce = new Uint8Array(NONCE_LENGTH);
  new DataView(nonce.buffer).setBigUint64(NONCE_ZERO_PREFIX, BigInt(counter), false);
  return nonce;
}

/** The message counter a nonce carries, or undefined if it is not one (a nonzero prefix, or past the limit). */
function nonceCounter(nonce: Uint8Array): number | undefined {
  for (let i = 0; i < NONCE_ZERO_PREFIX; i++) if (nonce[i] !== 0) return undefined;
  const c = new DataView(nonce.buffer, nonce.byteOffset, nonce.byteLength).getBigUint64(NONCE_ZERO_PREFIX, false);
  return c < BigInt(MAX_MESSAGES_PER_PAIR_KEY) ? Number(c) : undefined;
}

function checkRoundName(round: unknown): asserts round is string {
  if (typeof round !== 'string' || round === HELLO_ROUND || round.length === 0 || round.length > MAX_ROUND_LENGTH) {
    throw new TesseraError(ErrorCode.BadInput, `channel: bad round name (1..${MAX_ROUND_LENGTH} characters, not '${HELLO_ROUND}')`);
  }
}

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new TesseraError(ErrorCode.BadInput, `channel: ${name} must be a positive integer`);
  return v;
}

/** Fingerprint for logs: never the key itself. */
export function fingerprint(bytes: Uint8Array): string {
  return toHex(sha256(bytes)).slice(0, 16);
}
