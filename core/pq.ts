/**
 * ML-KEM-768 (FIPS 203) computed by liboqs (@oqs/liboqs-js, the Open Quantum Safe WASM build), and an
 * RFC 9180 KEM for @hpke/core built on it (KEM id 0x0041, as @hpke/ml-kem and draft-ietf-hpke-pq).
 *
 * Key formats (chosen to interoperate byte for byte with @hpke/ml-kem 0.3):
 * - public key: the 1184-byte FIPS 203 encapsulation key ek;
 * - private key: the 64-byte seed d || z (FIPS 203 §7.1 ML-KEM.KeyGen_internal inputs), the form
 *   @hpke/ml-kem serializes and the form FIPS 203 §3.3 recommends storing.
 *
 * The liboqs-js WASM build exports keypair / encaps / decaps but not liboqs' keypair_derand, so the
 * seed is expanded to the 2400-byte decapsulation key dk by @noble/post-quantum's ml_kem768.keygen(seed)
 * (FIPS 203 Algorithm 16, ML-KEM.KeyGen_internal). liboqs then does every encapsulation and
 * decapsulation. The unit tests check the two libraries agree on ek, dk and shared secrets.
 *
 * Nothing here is a primitive of our own: expansion is noble, the KEM is liboqs, HPKE is @hpke/core.
 */
import { createMLKEM768, type MLKEM768 } from '@oqs/liboqs-js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { randomBytes } from '@noble/hashes/utils.js';
import {
  DecapError,
  DeriveKeyPairError,
  DeserializeError,
  EncapError,
  KemId,
  NotSupportedError,
  SerializeError,
  type KemInterface,
  type RecipientContextParams,
  type SenderContextParams,
} from '@hpke/core';
import { zeroize } from './bytes.js';
import { ErrorCode, TesseraError } from './errors.js';

/** FIPS 203 Table 3 sizes for ML-KEM-768, plus the 64-byte seed form of the private key. */
export const ML_KEM_768 = Object.freeze({
  name: 'ML-KEM-768',
  kemId: 0x0041,
  publicKeyLength: 1184,
  decapsulationKeyLength: 2400,
  seedLength: 64,
  cipherTextLength: 1088,
  sharedSecretLength: 32,
});

// ---------------------------------------------------------------------------------------------
// The liboqs engine

/** Raw ML-KEM-768 operations, exported for tests and benchmarks. All inputs are length-checked. */
export interface RawMlKem768 {
  /** FIPS 203 ML-KEM.KeyGen_internal(d, z) from seed = d || z (noble): ek and the expanded dk. */
  keyPairFromSeed(seed: Uint8Array): { publicKey: Uint8Array; decapsulationKey: Uint8Array };
  /** FIPS 203 ML-KEM.KeyGen with liboqs' own randomness; dk is the 2400-byte expanded form. */
  generateKeyPair(): { publicKey: Uint8Array; decapsulationKey: Uint8Array };
  /** FIPS 203 ML-KEM.Encaps (liboqs, including the §7.2 encapsulation-key modulus check). */
  encapsulate(publicKey: Uint8Array): { cipherText: Uint8Array; sharedSecret: Uint8Array };
  /** FIPS 203 ML-KEM.Decaps (liboqs, implicit rejection: a bad ciphertext yields an unrelated secret). */
  decapsulate(cipherText: Uint8Array, decapsulationKey: Uint8Array): Uint8Array;
}

interface Engine {
  readonly kem: MLKEM768;
  /** A publicly known key pair (from the all-zero seed) used only to scrub the WASM heap. */
  readonly scrubPublicKey: Uint8Array;
  readonly scrubDecapsulationKey: Uint8Array;
  readonly scrubCipherText: Uint8Array;
}

/*
 * The liboqs WASM instance is created once, lazily, and shared: instantiating it costs ~4 ms (the first
 * time ~12 ms) against ~0.1 ms per encapsulation or decapsulation. This is the one piece of module state in core/, and it is
 * acceptable because the engine is immutable as far as callers can tell: it holds no keys or per-call
 * state (every call mallocs and frees its own buffers), so sharing it cannot leak data between calls
 * beyond the freed-heap residue that the scrub functions below overwrite. A failed load is not cached, so a later
 * call retries. The instance is never destroyed: it lives as long as the process, like a loaded module.
 */
let enginePromise: Promise<Engine> | undefined;

function engine(): Promise<Engine> {
  if (enginePromise === undefined) {
    enginePromise = createMLKEM768().then(
      (kem) => {
        const scrub = ml_kem768.keygen(new Uint8Array(ML_KEM_768.seedLength));
        return Object.freeze({
          kem,
          scrubPublicKey: scrub.publicKey,
          scrubDecapsulationKey: scrub.secretKey,
          scrubCipherText: new Uint8Array(ML_KEM_768.cipherTextLength),
        });
      },
      (e: unknown) => {
        enginePromise = undefined;
        throw e;
      },
    );
  }
  return enginePromise;
}

/*
 * liboqs-js copies inputs into the WASM heap and frees them with plain free(), without cleansing: after a
 * decapsulation the 2400-byte dk and the shared secret stay readable in freed heap memory. Repeating
 * the same operation on a public key pair makes the allocator hand out the same chunks (same sizes,
 * same order) and overwrites them, and re-runs the same code path over the same stack region. This is
 * best effort: it relies on the allocator's reuse, which we checked for this build (0.15.1) by replaying
 * the wrapper's malloc/free sequence on the raw module and searching the heap for the secrets afterwards.
 * It costs one extra operation (~0.15 ms). The JS-side copies are zeroized by the callers.
 */
function scrubAfterDecaps(e: Engine): void {
  try {
    e.kem.decapsulate(e.scrubCipherText, e.scrubDecapsulationKey);
  } catch {
    // Scrubbing is best effort and must never turn a successful operation into a failure.
  }
}

function scrubAfterEncaps(e: Engine): void {
  try {
    e.kem.encapsulate(e.scrubPublicKey);
  } catch {
    // As above.
  }
}

function checkLength(b: unknown, length: number, what: string): asserts b is Uint8Array {
  if (!(b instanceof Uint8Array) || b.length !== length) {
    throw new TesseraError(ErrorCode.BadInput, `ML-KEM-768 ${what}: expected ${length} bytes`);
  }
}

function expandSeed(seed: Uint8Array): { publicKey: Uint8Array; decapsulationKey: Uint8Array } {
  checkLength(seed, ML_KEM_768.seedLength, 'seed');
  let kp: { publicKey: Uint8Array; secretKey: Uint8Array };
  try {
    kp = ml_kem768.keygen(seed);
  } catch {
    throw new TesseraError(ErrorCode.BadInput, 'ML-KEM-768 seed: key generation failed');
  }
  return { publicKey: kp.publicKey, decapsulationKey: kp.secretKey };
}

function rawFrom(e: Engine): RawMlKem768 {
  return {
    keyPairFromSeed: expandSeed,
    generateKeyPair() {
      try {
        const { publicKey, secretKey } = e.kem.generateKeyPair();
        return { publicKey, decapsulationKey: secretKey };
      } catch {
        throw new TesseraError(ErrorCode.BadState, 'ML-KEM-768 key generation failed');
      } finally {
        // keypair mallocs (1184, 2400) like encaps' first two buffers; a decaps scrub covers the 2400.
        scrubAfterDecaps(e);
      }
    },
    encapsulate(publicKey) {
      checkLength(publicKey, ML_KEM_768.publicKeyLength, 'public key');
      try {
        const { ciphertext, sharedSecret } = e.kem.encapsulate(publicKey);
        return { cipherText: ciphertext, sharedSecret };
      } catch {
        // liboqs returns an error only for an encapsulation key that fails the FIPS 203 §7.2 check.
        throw new TesseraError(ErrorCode.BadInput, 'ML-KEM-768 public key: not a valid encapsulation key');
      } finally {
        scrubAfterEncaps(e);
      }
    },
    decapsulate(cipherText, decapsulationKey) {
      checkLength(cipherText, ML_KEM_768.cipherTextLength, 'ciphertext');
      checkLength(decapsulationKey, ML_KEM_768.decapsulationKeyLength, 'decapsulation key');
      try {
        return e.kem.decapsulate(cipherText, decapsulationKey);
      } catch {
        // liboqs rejects a dk whose embedded H(ek) does not match (FIPS 203 §7.3 input check).
        throw new TesseraError(ErrorCode.BadInput, 'ML-KEM-768 decapsulation key: failed the input check');
      } finally {
        scrubAfterDecaps(e);
      }
    },
  };
}

/** The liboqs-backed ML-KEM-768 engine (loads the WASM module on first use). */
export async function loadLiboqsMlKem768(): Promise<RawMlKem768> {
  let e: Engine;
  try {
    e = await engine();
  } catch {
    throw new TesseraError(ErrorCode.BadState, 'liboqs ML-KEM-768 engine failed to load');
  }
  return rawFrom(e);
}

// ---------------------------------------------------------------------------------------------
// HPKE KEM (the @hpke/core KemInterface)

type KeyType = 'public' | 'private';

/*
 * The key types @hpke/core uses, taken from its KemInterface: Tessera's tsconfig has no DOM lib, so the
 * WebCrypto names CryptoKey / CryptoKeyPair / JsonWebKey are not global here.
 */
type HpkeKey = Parameters<KemInterface['serializePublicKey']>[0];
type HpkeKeyPair = Awaited<ReturnType<KemInterface['generateKeyPair']>>;
type HpkeJwk = Exclude<Parameters<KemInterface['importKey']>[1], ArrayBuffer>;

/**
 * The key object @hpke/core passes around: the same shape as @hpke/common's XCryptoKey
 * (type, extractable, algorithm.name, usages, key bytes), so @hpke/ml-kem's keys are accepted too.
 */
export class MlKemKey {
  readonly type: KeyType;
  readonly extractable = true;
  readonly algorithm: { readonly name: string } = { name: ML_KEM_768.name };
  readonly usages: KemKeyUsage[];
  /** Raw key bytes (the private key is the 64-byte seed). Owned by this object; see `wipeKemKey`. */
  readonly key: Uint8Array;

  /** A private key's expanded 2400-byte decapsulation key, made on first use; wiped with the key. */
  #decapsulationKey: Uint8Array | undefined;

  constructor(type: KeyType, key: Uint8Array) {
    this.type = type;
    this.key = key;
    this.usages = type === 'private' ? ['deriveBits'] : [];
  }

  /**
   * FIPS 203 §7.1 ML-KEM.KeyGen_internal(d, z) of this private key's seed, expanded once and kept with
   * the key, so that one key object opening several messages expands it once. Owned by the key: the
   * caller does not zeroize it; `wipe` (wipeKemKey) does.
   */
  decapsulationKey(): Uint8Array {
    if (this.type !== 'private') throw new Error('not a private key');
    if (this.#decapsulationKey === undefined) this.#decapsulationKey = expandSeed(this.key).decapsulationKey;
    return this.#decapsulationKey;
  }

  /** Overwrite the key bytes and the expanded decapsulation key, if any. */
  wipe(): void {
    zeroize(this.key);
    zeroize(this.#decapsulationKey);
    this.#decapsulationKey = undefined;
  }
}

type KemKeyUsage = 'deriveBits';

interface RawKeyLike {
  type?: unknown;
  algorithm?: { name?: unknown };
  key?: unknown;
}

/** Overwrite the raw bytes held by an HPKE key object (ours or @hpke's XCryptoKey) or key pair. */
export function wipeKemKey(key: unknown): void {
  if (typeof key !== 'object' || key === null) return;
  const pair = key as { privateKey?: unknown; publicKey?: unknown };
  if (typeof pair.privateKey === 'object' && typeof pair.publicKey === 'object') {
    wipeKemKey(pair.privateKey);
    return;
  }
  if (key instanceof MlKemKey) {
    key.wipe();
    return;
  }
  const bytes = (key as RawKeyLike).key;
  if (bytes instanceof Uint8Array) zeroize(bytes);
}

function copyBytes(input: ArrayBufferLike | ArrayBufferView): Uint8Array {
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength).slice();
  return new Uint8Array(input).slice();
}

/** The exact bytes of a key object of the given type, checked; returned as a view, not a copy. */
function keyBytes(key: unknown, type: KeyType, length: number): Uint8Array {
  const k = key as RawKeyLike | null;
  if (typeof k !== 'object' || k === null) throw new Error('not a key');
  if (k.type !== type) throw new Error(`not a ${type} key`);
  if (k.algorithm?.name !== ML_KEM_768.name) throw new Error('not an ML-KEM-768 key');
  if (!(k.key instanceof Uint8Array) || k.key.length !== length) throw new Error('wrong key length');
  return k.key;
}

function asArrayBuffer(b: Uint8Array): ArrayBuffer {
  // A fresh Uint8Array owns its whole ArrayBuffer; slice only when it is a view into something larger.
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  return b.slice().buffer;
}

function privateKeyOf(recipientKey: unknown): unknown {
  const pair = recipientKey as { privateKey?: unknown; publicKey?: unknown } | null;
  if (typeof pair === 'object' && pair !== null && typeof pair.privateKey === 'object' && typeof pair.publicKey === 'object') {
    return pair.privateKey;
  }
  return recipientKey;
}

/**
 * ML-KEM-768 as an RFC 9180 KEM for @hpke/core, computed by liboqs:
 * `new CipherSuite({ kem: new LiboqsMlKem768(), kdf: new HkdfSha256(), aead: new Aes256Gcm() })`.
 *
 * Encap / Decap are ML-KEM.Encaps / ML-KEM.Decaps directly (enc = the ML-KEM ciphertext, the KEM shared
 * secret = the ML-KEM shared key), as @hpke/ml-kem and draft-ietf-hpke-pq define the ML-KEM HPKE KEMs.
 * Only base/PSK modes: ML-KEM has no AuthEncap. Deterministic encapsulation (`ekm`) is not supported
 * because the liboqs WASM build does not export encaps_derand.
 */
export class LiboqsMlKem768 implements KemInterface {
  readonly id: KemId = KemId.MlKem768;
  readonly name = ML_KEM_768.name;
  readonly secretSize = ML_KEM_768.sharedSecretLength;
  readonly encSize = ML_KEM_768.cipherTextLength;
  readonly publicKeySize = ML_KEM_768.publicKeyLength;
  readonly privateKeySize = ML_KEM_768.seedLength;
  readonly auth = false;

  async serializePublicKey(key: HpkeKey): Promise<ArrayBuffer> {
    try {
      return keyBytes(key, 'public', this.publicKeySize).slice().buffer;
    } catch (e) {
      throw new SerializeError(e);
    }
  }

  async deserializePublicKey(key: ArrayBufferLike | ArrayBufferView): Promise<HpkeKey> {
    try {
      const b = copyBytes(key);
      if (b.length !== this.publicKeySize) throw new Error('wrong public key length');
      return new MlKemKey('public', b) as unknown as HpkeKey;
    } catch (e) {
      throw new DeserializeError(e);
    }
  }

  async serializePrivateKey(key: HpkeKey): Promise<ArrayBuffer> {
    try {
      return keyBytes(key, 'private', this.privateKeySize).slice().buffer;
    } catch (e) {
      throw new SerializeError(e);
    }
  }

  async deserializePrivateKey(key: ArrayBufferLike | ArrayBufferView): Promise<HpkeKey> {
    let b: Uint8Array | undefined;
    try {
      b = copyBytes(key);
      if (b.length !== this.privateKeySize) throw new Error('wrong private key length');
      return new MlKemKey('private', b) as unknown as HpkeKey;
    } catch (e) {
      zeroize(b);
      throw new DeserializeError(e);
    }
  }

  async importKey(format: 'raw' | 'jwk', key: ArrayBuffer | HpkeJwk, isPublic = true): Promise<HpkeKey> {
    if (format !== 'raw' || !(key instanceof ArrayBuffer || ArrayBuffer.isView(key))) {
      throw new DeserializeError(new Error('only raw keys are supported'));
    }
    return isPublic ? this.deserializePublicKey(key) : this.deserializePrivateKey(key);
  }

  /** A fresh 64-byte seed from the platform CSPRNG, expanded per FIPS 203 §7.1. */
  async generateKeyPair(): Promise<HpkeKeyPair> {
    const seed = randomBytes(ML_KEM_768.seedLength);
    try {
      return await this.deriveKeyPair(seed);
    } catch (e) {
      throw new NotSupportedError(e);
    } finally {
      zeroize(seed);
    }
  }

  /**
   * The key pair whose private key is `ikm` itself, which must be a 64-byte seed d || z. This mirrors
   * @hpke/ml-kem 0.3 (for interoperability) rather than hashing ikm first; Tessera's wrapping never
   * derives keys from ikm, it only calls generateKeyPair.
   */
  async deriveKeyPair(ikm: ArrayBufferLike | ArrayBufferView): Promise<HpkeKeyPair> {
    const seed = copyBytes(ikm);
    let dk: Uint8Array | undefined;
    try {
      const kp = expandSeed(seed);
      dk = kp.decapsulationKey;
      const publicKey = new MlKemKey('public', kp.publicKey) as unknown as HpkeKey;
      const privateKey = new MlKemKey('private', seed) as unknown as HpkeKey;
      return { publicKey, privateKey };
    } catch (e) {
      zeroize(seed);
      throw new DeriveKeyPairError(e);
    } finally {
      zeroize(dk);
    }
  }

  /** RFC 9180 §4 Encap(pkR) = ML-KEM.Encaps(ek): enc is the ciphertext. */
  async encap(params: SenderContextParams): Promise<{ sharedSecret: ArrayBuffer; enc: ArrayBuffer }> {
    if (params.ekm !== undefined) throw new EncapError(new Error('deterministic encapsulation is not supported'));
    if (params.senderKey !== undefined) throw new EncapError(new Error('ML-KEM has no authenticated mode'));
    try {
      const pk = keyBytes(params.recipientPublicKey, 'public', this.publicKeySize);
      const raw = await loadLiboqsMlKem768();
      const { cipherText, sharedSecret } = raw.encapsulate(pk);
      return { sharedSecret: asArrayBuffer(sharedSecret), enc: asArrayBuffer(cipherText) };
    } catch (e) {
      throw new EncapError(e);
    }
  }

  /**
   * RFC 9180 §4 Decap(enc, skR) = ML-KEM.Decaps(dk, enc), dk expanded from the seed: once per key object
   * for our own MlKemKey (kept with it until wipeKemKey), for this call only for any other key object.
   */
  async decap(params: RecipientContextParams): Promise<ArrayBuffer> {
    if (params.senderPublicKey !== undefined) throw new DecapError(new Error('ML-KEM has no authenticated mode'));
    let ownDk: Uint8Array | undefined;
    try {
      const ct = copyBytes(params.enc);
      if (ct.length !== this.encSize) throw new Error('wrong enc length');
      const key = privateKeyOf(params.recipientKey);
      const seed = keyBytes(key, 'private', this.privateKeySize);
      let dk: Uint8Array;
      if (key instanceof MlKemKey) {
        dk = key.decapsulationKey();
      } else {
        ownDk = expandSeed(seed).decapsulationKey;
        dk = ownDk;
      }
      const raw = await loadLiboqsMlKem768();
      return asArrayBuffer(raw.decapsulate(ct, dk));
    } catch (e) {
      throw new DecapError(e);
    } finally {
      zeroize(ownDk);
    }
  }
}
