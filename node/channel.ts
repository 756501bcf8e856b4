/**
 * End-to-end encrypted, authenticated node-to-node messages, relayed by a coordinator that can only
 * delay or drop them.
 *
 * Per session, every node makes a fresh ephemeral ML-KEM-768 key pair (FIPS 203) and sends its public
 * key to the other players in a `hello` signed by its ML-DSA-65 identity (FIPS 204). A sender
 * encapsulates once per (session, receiver) to the receiver's ephemeral key; the shared secret,
 * through HKDF-SHA256 (RFC 5869) bound to (session, sender, receiver), keys AES-256-GCM for that
 * direction. The ephemeral secret keys are wiped when the session ends, so a later theft of a node's
 * identity keys decrypts no recorded traffic (forward secrecy), and because the KEM is post-quantum,
 * "harvest now, decrypt later" gains nothing.
 *
 * Every envelope is signed by the sender's identity over (session, round, sender, receiver, kind,
 * KEM ciphertext, nonce, ciphertext). The receiver takes the sender from the authenticated relay
 * (`from`), checks it against the envelope, verifies the signature with that node's identity key from
 * the cluster membership, and accepts each (sender, round) once. So a message that is forged,
 * tampered with, replayed, or moved to another session, round or receiver is rejected.
 */
import { gcm } from '@noble/ciphers/aes.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { Packr } from 'msgpackr';
import { concatBytes, framed, i2osp, toHex, utf8ToBytes, zeroize } from '../core/bytes.js';
import { ErrorCode, TesseraError } from '../core/errors.js';
import { identitySign, identityVerify, type IdentityKeyPair } from '../core/identity.js';
import { loadLiboqsMlKem768, type RawMlKem768 } from '../core/pq.js';

/** What the channel needs from the coordinator link: send opaque bytes, receive (from, bytes). */
export interface RelayLink {
  send(session: Uint8Array, to: number, payload: Uint8Array): void;
  /** Next relayed message for this session, in arrival order; rejects when the session aborts. */
  receive(session: Uint8Array): Promise<{ from: number; payload: Uint8Array }>;
}

const ENVELOPE_VERSION = 1;
const SIGN_LABEL = utf8ToBytes('tessera/channel/v1');
const KDF_LABEL = utf8ToBytes('tessera/channel-key/v1');
const HELLO_ROUND = 'hello';
const MAX_ROUND_LENGTH = 64;
const KEM_CT_LENGTH = 1088;
const KEM_PK_LENGTH = 1184;
const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

interface Envelope {
  v: number;
  r: string; // round
  f: number; // from
  t: number; // to
  k: 'hello' | 'data';
  e: Uint8Array; // hello: ephemeral KEM public key; data: KEM ciphertext on the first message of a direction, else empty
  n: Uint8Array; // AEAD nonce (data) or empty
  c: Uint8Array; // hello: application hello info; data: AEAD ciphertext
  s: Uint8Array; // identity signature
}

export class ChannelError extends TesseraError {}

function reject(message: string, culprit?: number): never {
  throw new ChannelError(ErrorCode.BadMessage, `channel: ${message}`, culprit ? [culprit] : []);
}

function signedBytes(session: Uint8Array, env: Omit<Envelope, 's' | 'v'>): Uint8Array {
  return framed(
    SIGN_LABEL,
    session,
    utf8ToBytes(env.r),
    i2osp(env.f, 1),
    i2osp(env.t, 1),
    utf8ToBytes(env.k),
    env.e,
    env.n,
    env.c,
  );
}

function asBytes(x: unknown): Uint8Array | undefined {
  return x instanceof Uint8Array ? new Uint8Array(x) : undefined;
}

function decodeEnvelope(payload: Uint8Array, from: number): Envelope {
  let raw: unknown;
  try {
    raw = packr.unpack(payload);
  } catch {
    reject('undecodable envelope', from);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) reject('envelope is not a map', from);
  const o = raw as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  if (keys !== 'c,e,f,k,n,r,s,t,v') reject('envelope has unexpected fields', from);
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
  };
  if (env.v !== ENVELOPE_VERSION) reject('unsupported envelope version', from);
  if (typeof env.r !== 'string' || env.r.length === 0 || env.r.length > MAX_ROUND_LENGTH) reject('bad round', from);
  if (!Number.isInteger(env.f) || !Number.isInteger(env.t)) reject('bad sender or receiver', from);
  if (env.k !== 'hello' && env.k !== 'data') reject('bad kind', from);
  if (!env.e || !env.n || !env.c || !env.s) reject('missing bytes', from);
  return env as Envelope;
}

interface Direction {
  key: Uint8Array;
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
  private ephemeral?: { publicKey: Uint8Array; secretKey: Uint8Array };
  /** ML-KEM-768 (FIPS 203) on liboqs, the project's ML-KEM engine (core/pq.ts). */
  private kem?: RawMlKem768;
  private readonly peerKemKeys = new Map<number, Uint8Array>();
  private readonly sendKeys = new Map<number, Direction>();
  private readonly sentKemCt = new Set<number>();
  private readonly recvKeys = new Map<number, Direction>();
  /** Verified, decrypted messages waiting for their receive() call: key `${from}/${round}`. */
  private readonly inbox = new Map<string, Uint8Array>();
  /** Every (sender, round) ever accepted: a second copy is a replay. */
  private readonly seen = new Set<string>();
  private readonly waiters = new Map<string, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
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
  }) {
    this.session = opts.session;
    this.self = opts.self;
    this.peers = opts.players.filter((p) => p !== opts.self);
    this.identity = opts.identity;
    this.membership = opts.membership;
    this.link = opts.link;
    for (const p of this.peers) {
      if (!this.membership.has(p)) throw new TesseraError(ErrorCode.UnexpectedParty, `node ${p} is not a cluster member`);
    }
  }

  /**
   * Exchange signed ephemeral KEM keys with every peer. `info` is application data every peer
   * receives authenticated (e.g. the epochs this node holds); returns each peer's info.
   */
  async open(info: Uint8Array = new Uint8Array()): Promise<Map<number, Uint8Array>> {
    this.kem = await loadLiboqsMlKem768();
    const kp = this.kem.generateKeyPair();
    this.ephemeral = { publicKey: kp.publicKey, secretKey: kp.decapsulationKey };
    for (const to of this.peers) {
      this.post({ r: HELLO_ROUND, f: this.self, t: to, k: 'hello', e: kp.publicKey, n: new Uint8Array(), c: info });
    }
    this.startPump();
    return this.receiveAll(HELLO_ROUND, this.peers);
  }

  /** Encrypt and sign `payload` for one peer under `round`. */
  send(to: number, round: string, payload: Uint8Array): void {
    this.assertOpen();
    if (!this.peers.includes(to)) throw new TesseraError(ErrorCode.UnexpectedParty, `node ${to} is not a peer in this session`);
    if (round === HELLO_ROUND || round.length === 0 || round.length > MAX_ROUND_LENGTH) {
      throw new TesseraError(ErrorCode.BadInput, 'channel: bad round name');
    }
    let dir = this.sendKeys.get(to);
    let kemCt: Uint8Array = new Uint8Array();
    if (!dir) {
      const peerKey = this.peerKemKeys.get(to);
      if (!peerKey) throw new TesseraError(ErrorCode.BadState, `channel: no key from node ${to} yet`);
      const { cipherText, sharedSecret } = this.kem!.encapsulate(peerKey);
      dir = { key: this.deriveKey(sharedSecret, this.self, to) };
      zeroize(sharedSecret);
      this.sendKeys.set(to, dir);
      kemCt = cipherText;
    }
    if (!this.sentKemCt.has(to)) this.sentKemCt.add(to);
    else kemCt = new Uint8Array();
    const nonce = randomBytes(12);
    const header = { r: round, f: this.self, t: to, k: 'data' as const, e: kemCt, n: nonce, c: new Uint8Array() };
    const aad = signedBytes(this.session, header);
    const c = gcm(dir.key, nonce, aad).encrypt(payload);
    this.post({ ...header, c });
  }

  broadcast(round: string, payload: Uint8Array): void {
    for (const to of this.peers) this.send(to, round, payload);
  }

  /** The payload `from` sent under `round`; waits until it arrives or the session fails. */
  receive(from: number, round: string): Promise<Uint8Array> {
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

  /** Wipe every key this channel holds. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    zeroize(this.ephemeral?.secretKey);
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

  private post(env: Omit<Envelope, 's' | 'v'>): void {
    const s = identitySign(this.identity.secretKey, signedBytes(this.session, env));
    this.link.send(this.session, env.t, packr.pack({ v: ENVELOPE_VERSION, ...env, s }));
  }

  private deriveKey(sharedSecret: Uint8Array, from: number, to: number): Uint8Array {
    return hkdf(sha256, sharedSecret, this.session, concatBytes(KDF_LABEL, i2osp(from, 1), i2osp(to, 1)), 32);
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
    if (!this.peers.includes(from)) reject(`message from non-player ${from}`);
    const env = decodeEnvelope(payload, from);
    if (env.f !== from) reject(`sender field ${env.f} does not match relayed sender ${from}`, from);
    if (env.t !== this.self) reject('message addressed to another node', from);
    const idKey = this.membership.get(from)!;
    if (!identityVerify(idKey, signedBytes(this.session, env), env.s)) reject(`bad signature from node ${from}`, from);
    const seenKey = `${from}/${env.r}`;
    if (this.seen.has(seenKey)) reject(`replayed message from node ${from} in round ${env.r}`, from);
    this.seen.add(seenKey);

    let plaintext: Uint8Array;
    if (env.k === 'hello') {
      if (env.r !== HELLO_ROUND || env.e.length !== KEM_PK_LENGTH || env.n.length !== 0) reject('malformed hello', from);
      this.peerKemKeys.set(from, env.e);
      plaintext = env.c;
    } else {
      if (env.r === HELLO_ROUND || env.n.length !== 12) reject('malformed data message', from);
      let dir = this.recvKeys.get(from);
      if (!dir) {
        if (env.e.length !== KEM_CT_LENGTH || !this.ephemeral) reject(`first message from node ${from} lacks its key`, from);
        const ss = this.kem!.decapsulate(env.e, this.ephemeral.secretKey);
        dir = { key: this.deriveKey(ss, from, this.self) };
        zeroize(ss);
        this.recvKeys.set(from, dir);
      } else if (env.e.length !== 0) {
        reject(`node ${from} re-keyed mid-session`, from);
      }
      const aad = signedBytes(this.session, { ...env, c: new Uint8Array() });
      try {
        plaintext = gcm(dir.key, env.n, aad).decrypt(env.c);
      } catch {
        reject(`message from node ${from} does not decrypt`, from);
      }
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

/** Fingerprint for logs: never the key itself. */
export function fingerprint(bytes: Uint8Array): string {
  return toHex(sha256(bytes)).slice(0, 16);
}
