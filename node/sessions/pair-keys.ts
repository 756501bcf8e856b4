/**
 * Long-lived pairwise channel keys between nodes (issue 10, "What to build" 5: "long-lived pairwise
 * channels between nodes (one ML-KEM/ML-DSA handshake per node pair per rekey period), with forward
 * secrecy per period and counters against replay").
 *
 * Before this, every session made a fresh ML-KEM-768 key pair per node and one encapsulation and one
 * decapsulation per direction. Now the KEM work happens once per node pair per rekey period:
 *
 * - **Receiving side.** A node keeps one ML-KEM-768 key pair (FIPS 203) per rekey period: its *period
 *   key*. Every session's hello carries the current period's public key inside the bytes the node signs
 *   with its ML-DSA-65 identity (node/sessions/channel.ts), so the KEM half of the handshake is always
 *   authenticated, and each session still binds its own digest and run contribution in that hello.
 * - **Sending side.** Toward each peer, a node encapsulates once to the peer's period public key and
 *   keeps (ciphertext, pair key) for the period. Every session with that peer in that period reuses
 *   them. The ciphertext still travels on the first message of each session direction, so a session
 *   never depends on another session's messages arriving first; the receiver decapsulates once per
 *   distinct ciphertext and answers the next sessions from its cache.
 * - **Per session**, each direction's AEAD key is derived from the pair key by HKDF-SHA256 (RFC 5869)
 *   with the session id as salt (channel.ts), so no two sessions share an AEAD key and the session
 *   binding does not rest on the AAD alone.
 * - **Counters against replay.** Every data message under a pair key carries the sender's message
 *   counter for that key, as its AEAD nonce (4 zero bytes, then the counter as 8 bytes big-endian, so a
 *   nonce is never repeated under a key). The receiver keeps a sliding window per pair key (RFC 6479's
 *   anti-replay window, as IPsec and WireGuard do) and refuses a counter it has seen or that fell
 *   behind the window, whichever session the message claims to be in. A sender rekeys before its
 *   counter reaches MAX_MESSAGES_PER_PAIR_KEY.
 * - **Forward secrecy per period.** Everything here lives in memory only and is never written to disk.
 *   A period key serves new sessions for `rekeyPeriodMs`; then it is retired, and once the last session
 *   that advertised it has ended, its decapsulation key and every pair key opened with it are
 *   zeroized. A sending pair key is used for at most `rekeyPeriodMs` and then zeroized too. A node's
 *   identity key opens no recorded traffic, and a theft of a node's memory opens at most the traffic
 *   of the periods still live (the bigint-free byte arrays here are all wiped; see close()).
 *   A restart (or a restored backup) starts with no pair keys at all: peers see the new period key in
 *   its next hello and encapsulate afresh.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { concatBytes, i2osp, toHex, utf8ToBytes, zeroize } from '../../core/bytes.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { loadLiboqsMlKem768, type RawMlKem768 } from '../../core/pq.js';
import { wipeProbe, type WipeProbe } from '../../core/wipe.js';

/** Default rekey period: a new period key (and new pair keys) every 10 minutes. */
export const DEFAULT_REKEY_PERIOD_MS = 10 * 60_000;
/** A sender rekeys a pair before its message counter reaches this (far below the 2^64 nonce space). */
export const MAX_MESSAGES_PER_PAIR_KEY = 2 ** 32;
/** The receiver's anti-replay window, in messages (RFC 6479 §2: a bitmap behind the highest counter). */
export const REPLAY_WINDOW = 8192;
/** Distinct ciphertexts kept per (period key, peer): a peer that restarted encapsulates anew. */
const MAX_RECEIVED_PER_PEER = 4;
/** Sending pair keys kept per peer (its old and new period key while sessions straddle its rekey). */
const MAX_SENT_PER_PEER = 2;
const PAIR_KEY_LABEL = utf8ToBytes('tessera/pair-key/v1');

/** RFC 6479-style sliding anti-replay window over one pair key's message counters. */
export class ReplayWindow {
  private highest = -1;
  private readonly bits = new Uint8Array(REPLAY_WINDOW / 8);

  /** 'ok' for a counter not seen and not behind the window; nothing is recorded until mark(). */
  check(counter: number): 'ok' | 'replayed' | 'too-old' {
    if (counter > this.highest) return 'ok';
    if (this.highest - counter >= REPLAY_WINDOW) return 'too-old';
    return this.bit(counter) ? 'replayed' : 'ok';
  }

  /** Record `counter` as received (only after its message authenticated and decrypted). */
  mark(counter: number): void {
    if (counter > this.highest) {
      // Slide: the slots between the old highest and the new one now stand for unseen counters.
      if (counter - this.highest >= REPLAY_WINDOW) this.bits.fill(0);
      else for (let c = this.highest + 1; c < counter; c++) this.setBit(c, false);
      this.highest = counter;
    }
    this.setBit(counter, true);
  }

  private bit(c: number): boolean {
    const slot = c % REPLAY_WINDOW;
    return (this.bits[slot >> 3]! & (1 << (slot & 7))) !== 0;
  }

  private setBit(c: number, on: boolean): void {
    const slot = c % REPLAY_WINDOW;
    if (on) this.bits[slot >> 3]! |= 1 << (slot & 7);
    else this.bits[slot >> 3]! &= ~(1 << (slot & 7));
  }
}

/** A pair key this node opened from a peer's ciphertext, with that key's anti-replay window. */
export interface ReceivingPairKey {
  readonly key: Uint8Array;
  readonly window: ReplayWindow;
}

/** A pair key toward a peer: its ciphertext, and the next message counter under it. */
export interface SendingPairKey {
  readonly key: Uint8Array;
  readonly kemCiphertext: Uint8Array;
  /** The next message counter (never repeats under this key). */
  nextCounter(): number;
}

/** One session's hold on the period key its hello advertised. */
export interface PeriodKeyLease {
  readonly publicKey: Uint8Array;
  /** The pair key `peer`'s ciphertext to this period key opens (decapsulated once per ciphertext). */
  receiving(peer: number, kemCiphertext: Uint8Array): ReceivingPairKey;
  /** The session ended: once the period is over and no session holds it, the period key is wiped. */
  release(): void;
}

interface PeriodKey {
  readonly serial: number;
  readonly publicKey: Uint8Array;
  readonly decapsulationKey: Uint8Array;
  readonly created: number;
  leases: number;
  retired: boolean;
  wiped: boolean;
  /** peer -> ciphertext hash (hex) -> the pair key it opens, in arrival order. */
  readonly received: Map<number, Map<string, ReceivingPairKey>>;
}

interface SentKey extends SendingPairKey {
  readonly peerKeyHash: string;
  readonly created: number;
  counter: number;
}

export interface PairKeysOptions {
  /** This node's index (bound into every pair key with the peer's). */
  readonly self: number;
  /** How long a period key serves new sessions, and a sending pair key is used. Default 10 minutes. */
  readonly rekeyPeriodMs?: number;
  /** How often expired keys are looked for and wiped; 0: only when called (expire()). Default period/4, at most 1 minute. */
  readonly sweepIntervalMs?: number;
  /** The clock (tests move it). */
  readonly now?: () => number;
}

export interface PairKeyStats {
  /** ML-KEM key pairs made (one per rekey period, at most). */
  readonly periodKeys: number;
  /** Encapsulations made (one per peer per period). */
  readonly encapsulations: number;
  /** Decapsulations made (one per distinct ciphertext received). */
  readonly decapsulations: number;
}

/** The pairwise channel keys of one node (see the module comment). In memory only. */
export class PairKeys {
  private readonly self: number;
  private readonly periodMs: number;
  private readonly now: () => number;
  private kem?: RawMlKem768;
  private current?: PeriodKey;
  private readonly live = new Set<PeriodKey>();
  private readonly sent = new Map<number, SentKey[]>();
  private serial = 0;
  private counts = { periodKeys: 0, encapsulations: 0, decapsulations: 0 };
  private readonly sweep?: ReturnType<typeof setInterval>;
  private closed = false;

  constructor(opts: PairKeysOptions) {
    if (!Number.isSafeInteger(opts.self) || opts.self < 1 || opts.self > 255) throw new TesseraError(ErrorCode.BadInput, 'pair keys: self must be a node index 1..255');
    const period = opts.rekeyPeriodMs ?? DEFAULT_REKEY_PERIOD_MS;
    if (!Number.isSafeInteger(period) || period < 1) throw new TesseraError(ErrorCode.BadInput, 'pair keys: rekeyPeriodMs must be a positive integer');
    this.self = opts.self;
    this.periodMs = period;
    this.now = opts.now ?? Date.now;
    const sweepMs = opts.sweepIntervalMs ?? Math.min(Math.max(Math.floor(period / 4), 1000), 60_000);
    if (sweepMs > 0) {
      this.sweep = setInterval(() => this.expire(), sweepMs);
      this.sweep.unref();
    }
  }

  /** The current period key for a new session (a new one if the period is over). */
  async lease(): Promise<PeriodKeyLease> {
    this.assertOpen();
    this.kem ??= await loadLiboqsMlKem768();
    this.assertOpen();
    this.expire();
    if (!this.current) {
      const kp = this.kem.generateKeyPair();
      this.current = {
        serial: ++this.serial,
        publicKey: kp.publicKey,
        decapsulationKey: kp.decapsulationKey,
        created: this.now(),
        leases: 0,
        retired: false,
        wiped: false,
        received: new Map(),
      };
      this.live.add(this.current);
      this.counts.periodKeys++;
    }
    const pk = this.current;
    pk.leases++;
    let released = false;
    return {
      publicKey: pk.publicKey,
      receiving: (peer, kemCiphertext) => {
        if (released || pk.wiped) throw new TesseraError(ErrorCode.BadState, 'pair keys: the period key of this session was released');
        return this.receiving(pk, peer, kemCiphertext);
      },
      release: () => {
        if (released) return;
        released = true;
        pk.leases--;
        if (pk.retired && pk.leases === 0) this.wipePeriodKey(pk);
      },
    };
  }

  /**
   * The pair key toward `peer`, whose period key is `peerPublicKey` (from its signed hello in this
   * session): the one of this period if there is one, else a fresh encapsulation (FIPS 203 ML-KEM.Encaps).
   */
  sending(peer: number, peerPublicKey: Uint8Array): SendingPairKey {
    this.assertOpen();
    if (!this.kem) throw new TesseraError(ErrorCode.BadState, 'pair keys: lease a period key before sending');
    checkPeer(peer, this.self);
    const peerKeyHash = toHex(sha256(peerPublicKey));
    const now = this.now();
    const list = this.usableSent(peer, now);
    let entry = list.find((k) => k.peerKeyHash === peerKeyHash);
    if (!entry) {
      const { cipherText, sharedSecret } = this.kem.encapsulate(peerPublicKey);
      this.counts.encapsulations++;
      const key = derivePairKey(sharedSecret, this.self, peer, peerPublicKey, cipherText);
      zeroize(sharedSecret);
      const made: SentKey = {
        key,
        kemCiphertext: cipherText,
        peerKeyHash,
        created: now,
        counter: 0,
        nextCounter: () => {
          if (made.counter >= MAX_MESSAGES_PER_PAIR_KEY) throw new TesseraError(ErrorCode.BadState, 'pair keys: counter exhausted; the next session rekeys');
          return made.counter++;
        },
      };
      entry = made;
      list.push(made);
      while (list.length > MAX_SENT_PER_PEER) zeroize(list.shift()!.key);
    }
    this.sent.set(peer, list);
    return entry;
  }

  /** Retire the period key whose period is over and wipe what no live session holds. */
  expire(): void {
    if (this.closed) return;
    const now = this.now();
    if (this.current && now - this.current.created >= this.periodMs) {
      this.current.retired = true;
      this.current = undefined;
    }
    for (const pk of this.live) if (pk.retired && pk.leases === 0) this.wipePeriodKey(pk);
    for (const peer of [...this.sent.keys()]) {
      const keep = this.usableSent(peer, now);
      if (keep.length === 0) this.sent.delete(peer);
      else this.sent.set(peer, keep);
    }
  }

  /**
   * A member left the cluster or came back with a new identity (a membership change, issue 13): wipe
   * every pair key shared with that index now, rather than at the end of the period. Nothing made with
   * the old identity's node is then left to be used with whoever holds the index next (a new node signs
   * a new period key in its hellos anyway, so a stale pair key would not open its messages either).
   */
  forgetPeer(peer: number): void {
    for (const k of this.sent.get(peer) ?? []) zeroize(k.key);
    this.sent.delete(peer);
    for (const pk of this.live) {
      for (const r of pk.received.get(peer)?.values() ?? []) zeroize(r.key);
      pk.received.delete(peer);
    }
  }

  stats(): PairKeyStats {
    return { ...this.counts };
  }

  /**
   * A probe over every secret byte array held now (period decapsulation keys, received and sent pair
   * keys): a test takes it, moves the clock past the period, and checks they were wiped.
   */
  wipeProbe(): WipeProbe {
    const arrays: Uint8Array[] = [];
    for (const pk of this.live) {
      arrays.push(pk.decapsulationKey);
      for (const byCt of pk.received.values()) for (const r of byCt.values()) arrays.push(r.key);
    }
    for (const list of this.sent.values()) for (const k of list) arrays.push(k.key);
    return wipeProbe(arrays);
  }

  /** Wipe everything (node shutdown). Sessions still running fail at their next key use. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.sweep) clearInterval(this.sweep);
    for (const pk of this.live) this.wipePeriodKey(pk);
    for (const list of this.sent.values()) for (const k of list) zeroize(k.key);
    this.sent.clear();
    this.current = undefined;
  }

  // ---------------------------------------------------------------------------------------------

  private receiving(pk: PeriodKey, peer: number, kemCiphertext: Uint8Array): ReceivingPairKey {
    checkPeer(peer, this.self);
    const ctHash = toHex(sha256(kemCiphertext));
    let byCt = pk.received.get(peer);
    const known = byCt?.get(ctHash);
    if (known) return known;
    // FIPS 203 ML-KEM.Decaps, implicit rejection: a bad ciphertext yields an unrelated key, and the
    // message under it then fails to decrypt (channel.ts: no culprit, only the receiver can check).
    const ss = this.kem!.decapsulate(kemCiphertext, pk.decapsulationKey);
    this.counts.decapsulations++;
    const opened: ReceivingPairKey = { key: derivePairKey(ss, peer, this.self, pk.publicKey, kemCiphertext), window: new ReplayWindow() };
    zeroize(ss);
    if (!byCt) pk.received.set(peer, (byCt = new Map()));
    byCt.set(ctHash, opened);
    // Bounded: a peer that sends many ciphertexts only evicts its own oldest pair keys.
    while (byCt.size > MAX_RECEIVED_PER_PEER) {
      const [oldest, old] = byCt.entries().next().value as [string, ReceivingPairKey];
      zeroize(old.key);
      byCt.delete(oldest);
    }
    return opened;
  }

  /** The sending pair keys toward `peer` still usable (within their period, counter not exhausted); the others are wiped. */
  private usableSent(peer: number, now: number): SentKey[] {
    return (this.sent.get(peer) ?? []).filter((k) => {
      const usable = now - k.created < this.periodMs && k.counter < MAX_MESSAGES_PER_PAIR_KEY;
      if (!usable) zeroize(k.key);
      return usable;
    });
  }

  private wipePeriodKey(pk: PeriodKey): void {
    pk.wiped = true;
    zeroize(pk.decapsulationKey);
    for (const byCt of pk.received.values()) for (const r of byCt.values()) zeroize(r.key);
    pk.received.clear();
    this.live.delete(pk);
    if (this.current === pk) this.current = undefined;
  }

  private assertOpen(): void {
    if (this.closed) throw new TesseraError(ErrorCode.BadState, 'pair keys closed');
  }
}

function checkPeer(peer: number, self: number): void {
  if (!Number.isSafeInteger(peer) || peer < 1 || peer > 255 || peer === self) throw new TesseraError(ErrorCode.BadInput, `pair keys: bad peer ${String(peer)}`);
}

/**
 * The pair key of direction (from -> to): HKDF-SHA256 (RFC 5869) of the ML-KEM shared secret, bound
 * to both indices, the receiver's period public key and the ciphertext (the whole KEM transcript, as
 * X-Wing's combiner binds its ciphertext and public key).
 */
function derivePairKey(sharedSecret: Uint8Array, from: number, to: number, periodPublicKey: Uint8Array, kemCiphertext: Uint8Array): Uint8Array {
  return hkdf(sha256, sharedSecret, sha256(concatBytes(sha256(periodPublicKey), sha256(kemCiphertext))), concatBytes(PAIR_KEY_LABEL, i2osp(from, 1), i2osp(to, 1)), 32);
}

