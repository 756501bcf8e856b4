/**
 * Envelope encryption of the store's sealed values (node/store/storage.ts) under the node's KEK
 * (node/store/kek.ts Kek, whatever its provider).
 *
 * Every sealed value gets its own fresh 32-byte data key. The value is AES-256-GCM (NIST SP 800-38D)
 * under the data key with a fresh random 96-bit nonce (§8.2.2) and the record's AAD; the data key is
 * wrapped by the KEK (Kek.wrapKey: in memory for file / env / shamir-unseal, inside the token for pkcs11,
 * so there the KEK never enters the process). The KEK's public id is stored beside the wrapped key:
 *
 *   SealedBox.ct = 0x01 || u8 len(kid) || kid || u16 len(wrapped) || wrapped || GCM(dataKey, nonce, aad, value)
 *
 * The wrap is bound to this node (AAD "tessera/storage/data-key/v1" || node index), not to the record:
 * the value's own GCM AAD already binds it to its place, and a KEK rotation (rewrap) can then move every
 * record to a new KEK by unwrapping and re-wrapping its data key alone, without knowing what the record
 * is. Rewrapping keeps the value's ciphertext: the data key is unchanged, only who can unwrap it changes.
 */
import { randomBytes } from '@noble/hashes/utils.js';
import { concatBytes, framed, i2osp, utf8ToBytes, zeroize } from '../../core/bytes.js';
import { gcmOpen, gcmSeal } from './aead.js';
import { KEK_ID_PATTERN, type Kek } from './kek.js';

export const SEAL_NONCE_LENGTH = 12;
const DATA_KEY_LENGTH = 32;
const ENVELOPE_VERSION = 1;
const AAD_DATA_KEY = utf8ToBytes('tessera/storage/data-key/v1');

/** A sealed value as stored: the nonce of its GCM encryption and the envelope (see the file comment). */
export interface SealedBox {
  nonce: Uint8Array;
  ct: Uint8Array;
}

export interface Envelope {
  readonly kid: string;
  readonly wrapped: Uint8Array;
  readonly body: Uint8Array;
}

/** The parts of a sealed value's envelope (public: the KEK id and the wrapped data key), for audits and tests. */
export function readEnvelope(box: SealedBox): Envelope {
  return parseEnvelope(box.ct);
}

/** The AAD every data key of node `nodeIndex` is wrapped with. */
export function dataKeyAad(nodeIndex: number): Uint8Array {
  return framed(AAD_DATA_KEY, i2osp(nodeIndex, 1));
}

function parseEnvelope(ct: Uint8Array): Envelope {
  if (!(ct instanceof Uint8Array) || ct.length < 4 || ct[0] !== ENVELOPE_VERSION) throw new Error('not a sealed envelope');
  const kidLength = ct[1]!;
  const kidEnd = 2 + kidLength;
  if (ct.length < kidEnd + 2) throw new Error('envelope truncated');
  const kid = Buffer.from(ct.subarray(2, kidEnd)).toString('latin1');
  if (!KEK_ID_PATTERN.test(kid)) throw new Error('envelope names no valid KEK id');
  const wrappedLength = (ct[kidEnd]! << 8) | ct[kidEnd + 1]!;
  const wrappedEnd = kidEnd + 2 + wrappedLength;
  if (wrappedLength === 0 || ct.length < wrappedEnd + 16) throw new Error('envelope truncated');
  return { kid, wrapped: ct.subarray(kidEnd + 2, wrappedEnd), body: ct.subarray(wrappedEnd) };
}

function packEnvelope(kid: string, wrapped: Uint8Array, body: Uint8Array): Uint8Array {
  if (wrapped.length > 0xffff) throw new Error('wrapped data key too long');
  return concatBytes(Uint8Array.of(ENVELOPE_VERSION, kid.length), utf8ToBytes(kid), i2osp(wrapped.length, 2), wrapped, body);
}

/** The KEK id a sealed value's data key is wrapped under (undefined if the box is not an envelope). */
export function sealedKekId(box: SealedBox): string | undefined {
  try {
    return parseEnvelope(box.ct).kid;
  } catch {
    return undefined;
  }
}

/**
 * Seals and opens one node's values under its KEKs: `current` wraps every new data key; `others` (during a
 * KEK rotation, the KEK being retired) can still unwrap. Errors are plain Errors: the store says what
 * failed to open.
 */
export class Sealer {
  private current: Kek;
  private readonly byId = new Map<string, Kek>();
  private readonly dataKeyAad: Uint8Array;

  constructor(nodeIndex: number, current: Kek, others: readonly Kek[] = []) {
    this.dataKeyAad = dataKeyAad(nodeIndex);
    this.current = current;
    for (const k of [current, ...others]) {
      if (!KEK_ID_PATTERN.test(k.id)) throw new Error('a KEK has no valid id');
      this.byId.set(k.id, k);
    }
  }

  /** The KEK that wraps new data keys. */
  get currentKek(): Kek {
    return this.current;
  }

  /** Every KEK this sealer can unwrap with, the current one first. */
  get keks(): readonly Kek[] {
    return [this.current, ...[...this.byId.values()].filter((k) => k !== this.current)];
  }

  /** Add a KEK that can unwrap, and make it the current one when `makeCurrent` (a KEK rotation). */
  addKek(kek: Kek, makeCurrent: boolean): void {
    if (!KEK_ID_PATTERN.test(kek.id)) throw new Error('the KEK has no valid id');
    this.byId.set(kek.id, kek);
    if (makeCurrent) this.current = kek;
  }

  /** Stop unwrapping with a KEK (after a rotation moved every record off it). Returns it, for the caller to close. */
  removeKek(id: string): Kek | undefined {
    if (id === this.current.id) throw new Error('the current KEK cannot be removed');
    const k = this.byId.get(id);
    this.byId.delete(id);
    return k;
  }

  seal(plaintext: Uint8Array, aad: Uint8Array): SealedBox {
    const dataKey = randomBytes(DATA_KEY_LENGTH);
    try {
      const nonce = randomBytes(SEAL_NONCE_LENGTH);
      const body = gcmSeal(dataKey, nonce, aad, plaintext);
      const kek = this.current;
      return { nonce, ct: packEnvelope(kek.id, kek.wrapKey(dataKey, this.dataKeyAad), body) };
    } finally {
      zeroize(dataKey);
    }
  }

  open(box: SealedBox, aad: Uint8Array): Uint8Array {
    const env = parseEnvelope(box.ct);
    const dataKey = this.unwrap(env);
    try {
      return gcmOpen(dataKey, box.nonce, aad, env.body);
    } finally {
      zeroize(dataKey);
    }
  }

  /**
   * The same sealed value with its data key re-wrapped under the current KEK (a KEK rotation), or
   * undefined when it already is. The nonce and the value's ciphertext are kept.
   */
  rewrap(box: SealedBox): SealedBox | undefined {
    const env = parseEnvelope(box.ct);
    if (env.kid === this.current.id) return undefined;
    const dataKey = this.unwrap(env);
    try {
      return { nonce: box.nonce, ct: packEnvelope(this.current.id, this.current.wrapKey(dataKey, this.dataKeyAad), env.body) };
    } finally {
      zeroize(dataKey);
    }
  }

  private unwrap(env: Envelope): Uint8Array {
    const kek = this.byId.get(env.kid);
    if (!kek) throw new KekUnavailableError(env.kid);
    return kek.unwrapKey(env.wrapped, this.dataKeyAad);
  }
}

/** A value is wrapped under a KEK this node does not hold (a rotation's old KEK already destroyed, or another node's). */
export class KekUnavailableError extends Error {
  constructor(readonly kid: string) {
    super(`wrapped under KEK ${kid}, which this node does not hold`);
  }
}
