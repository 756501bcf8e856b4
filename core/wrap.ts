/**
 * Share wrapping: a SecretShare encrypted to a recipient KEM public key with HPKE base mode
 * (RFC 9180 §5.1.1 SetupBaseS / SetupBaseR, §5.2 Seal / Open, §6.1 single-shot API).
 *
 * Suite: KEM ML-KEM-768 (0x0041, default, computed by liboqs, core/pq.ts) or X-Wing (0x647a,
 * @hpke/hybridkem-x-wing, draft-connolly-cfrg-xwing-kem), KDF HKDF-SHA256 (0x0001), AEAD AES-256-GCM
 * (0x0002). HPKE itself is @hpke/core for X-Wing; for ML-KEM-768 the same RFC 9180 steps are composed
 * synchronously from liboqs (the KEM) and core/hpke.ts (key schedule, AEAD) — byte-identical, without
 * @hpke/core's per-call WebCrypto key imports and thread-pool round trips.
 *
 * - `info` (key schedule input, RFC 9180 §5.1) is a fixed label: it separates share wrapping from any
 *   other use of the same recipient key.
 * - The associated data (RFC 9180 §5.2 `aad`) binds what the share is for: KEM id, suite, key id, key
 *   version, party index, epoch and group public key, each length-prefixed (core/bytes.ts framed()).
 *   A wrapped share therefore opens only for the exact key, version, party and epoch it was made for.
 * - The plaintext is the share scalar alone (its SerializeScalar encoding).
 *
 * Any failure to open, for whatever reason, is DecryptionFailed with our own message: no library
 * message is passed through, and key or share bytes never appear in a message.
 */
import { Aes256Gcm, CipherSuite, HkdfSha256, type KemInterface } from '@hpke/core';
import { XWing } from '@hpke/hybridkem-x-wing';
import { framed, i2osp, utf8ToBytes, zeroize } from './bytes.js';
import { ErrorCode, TesseraError, ensure } from './errors.js';
import type { WrappedShareMsg } from './messages.js';
import { AeadId, KdfId, createContext, type HpkeContext, type HpkeSuiteParams } from './hpke.js';
import { LiboqsMlKem768, MlKemKey, loadLiboqsMlKem768, wipeKemKey } from './pq.js';
import { getSuite, type SuiteId } from './suites.js';
import type { SecretShare } from './types.js';

export type WrapKem = 'ml-kem-768' | 'x-wing';

export const WRAP_KEMS: readonly WrapKem[] = Object.freeze(['ml-kem-768', 'x-wing']);

interface WrapKemInfo {
  /** RFC 9180 KEM id (draft-ietf-hpke-pq / draft-connolly-cfrg-xwing-kem). */
  readonly id: number;
  readonly publicKeyLength: number;
  /** The serialized private key: a 64-byte ML-KEM seed d || z, or the 32-byte X-Wing seed. */
  readonly privateKeyLength: number;
  readonly encLength: number;
}

const KEM_INFO: Readonly<Record<WrapKem, WrapKemInfo>> = Object.freeze({
  'ml-kem-768': { id: 0x0041, publicKeyLength: 1184, privateKeyLength: 64, encLength: 1088 },
  'x-wing': { id: 0x647a, publicKeyLength: 1216, privateKeyLength: 32, encLength: 1120 },
});

/** AES-256-GCM tag length (RFC 9180 §7.3, Nt = 16). */
const AEAD_TAG_LENGTH = 16;
/** Longest key id accepted, in UTF-8 bytes. */
const MAX_KEY_ID_BYTES = 256;
/** Party indexes are 1..255 (core/shamir.ts checkThreshold). */
const MAX_PARTY_INDEX = 255;

const WRAP_INFO = utf8ToBytes('tessera/v1/wrap-share');
const WRAP_AAD_LABEL = utf8ToBytes('tessera/v1/wrap-share/aad');

/** A recipient's wrapping key pair. `privateKey` is secret: the caller stores and zeroizes it. */
export interface WrappingKeyPair {
  readonly kem: WrapKem;
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

/** What a wrapped share is bound to, besides the suite, party index and epoch of the share itself. */
export interface WrapBinding {
  readonly keyId: string;
  readonly version: number;
  /** The group public key in the suite's standard encoding (core/sign.ts groupPublicKey). */
  readonly groupPublicKey: Uint8Array;
}

export type UnwrapExpectation = WrapBinding & { readonly suite: SuiteId; readonly index: number; readonly epoch: number };

export function isWrapKem(k: unknown): k is WrapKem {
  return typeof k === 'string' && Object.prototype.hasOwnProperty.call(KEM_INFO, k);
}

/** Key and encapsulation sizes of a wrapping KEM, so callers can check input before any crypto. */
export function wrapKemSizes(kem: WrapKem): { readonly publicKeyLength: number; readonly privateKeyLength: number; readonly encLength: number } {
  return kemInfo(kem);
}

/** Length of a wrapped share's ciphertext: the share scalar plus the AES-256-GCM tag. */
export function wrappedShareCiphertextLength(scalarLength: number): number {
  return scalarLength + AEAD_TAG_LENGTH;
}

/** The RFC 9180 KEM id of a wrapping KEM. */
export function wrapKemId(kem: WrapKem): number {
  return kemInfo(kem).id;
}

function kemInfo(kem: unknown): WrapKemInfo {
  ensure(isWrapKem(kem), ErrorCode.BadInput, `wrapping KEM must be one of ${WRAP_KEMS.join(', ')}`);
  return KEM_INFO[kem];
}

/** A fresh HPKE suite object per call: the KEM objects are cheap and this keeps core/ free of shared state. */
function cipherSuite(kem: WrapKem): CipherSuite {
  const kemImpl: KemInterface = kem === 'ml-kem-768' ? new LiboqsMlKem768() : new XWing();
  return new CipherSuite({ kem: kemImpl, kdf: new HkdfSha256(), aead: new Aes256Gcm() });
}

function checkBinding(b: WrapBinding, suite: SuiteId): void {
  ensure(typeof b === 'object' && b !== null, ErrorCode.BadInput, 'wrap binding: expected an object');
  ensure(typeof b.keyId === 'string' && b.keyId.length > 0, ErrorCode.BadInput, 'wrap binding: keyId must be a non-empty string');
  ensure(utf8ToBytes(b.keyId).length <= MAX_KEY_ID_BYTES, ErrorCode.BadInput, `wrap binding: keyId longer than ${MAX_KEY_ID_BYTES} bytes`);
  ensure(Number.isSafeInteger(b.version) && b.version >= 0, ErrorCode.BadInput, 'wrap binding: version must be a non-negative integer');
  ensure(b.groupPublicKey instanceof Uint8Array, ErrorCode.BadInput, 'wrap binding: groupPublicKey must be bytes');
  // Parse it: a wrapped share is only ever bound to a real group key of the share's suite.
  getSuite(suite).publicKeyFromBytes(b.groupPublicKey);
}

function checkPosition(index: number, epoch: number): void {
  ensure(
    Number.isSafeInteger(index) && index >= 1 && index <= MAX_PARTY_INDEX,
    ErrorCode.BadInput,
    `party index must be 1..${MAX_PARTY_INDEX}`,
  );
  ensure(Number.isSafeInteger(epoch) && epoch >= 0, ErrorCode.BadInput, 'epoch must be a non-negative integer');
}

/**
 * The HPKE associated data of a wrapped share: the canonical framed encoding of
 * (label, KEM id, suite, key id, version, party index, epoch, group public key).
 */
export function wrapAssociatedData(kem: WrapKem, suite: SuiteId, index: number, epoch: number, binding: WrapBinding): Uint8Array {
  const info = kemInfo(kem);
  getSuite(suite);
  checkPosition(index, epoch);
  checkBinding(binding, suite);
  return framed(
    WRAP_AAD_LABEL,
    i2osp(info.id, 2),
    utf8ToBytes(suite),
    utf8ToBytes(binding.keyId),
    i2osp(binding.version, 8),
    i2osp(index, 2),
    i2osp(epoch, 8),
    binding.groupPublicKey,
  );
}

/** A fresh wrapping key pair (ML-KEM-768 by default) from the platform CSPRNG. */
export async function generateWrappingKeyPair(kem: WrapKem = 'ml-kem-768'): Promise<WrappingKeyPair> {
  const info = kemInfo(kem);
  const suite = cipherSuite(kem);
  let pair: Awaited<ReturnType<KemInterface['generateKeyPair']>> | undefined;
  try {
    pair = await suite.kem.generateKeyPair();
    // Copies: @hpke's serialize may return the key object's own buffer, which is wiped below.
    const publicKey = new Uint8Array(await suite.kem.serializePublicKey(pair.publicKey)).slice();
    const privateKey = new Uint8Array(await suite.kem.serializePrivateKey(pair.privateKey)).slice();
    ensure(publicKey.length === info.publicKeyLength && privateKey.length === info.privateKeyLength, ErrorCode.BadState, 'key sizes');
    return { kem, publicKey, privateKey };
  } catch {
    throw new TesseraError(ErrorCode.BadState, `${kem}: wrapping key generation failed`);
  } finally {
    wipeKemKey(pair);
  }
}

/**
 * RFC 9180 §6.1 SealBase(pkR, info, aad, pt) with the wrapping suite of `kem`. The recipient key has
 * been length-checked; a key that fails the KEM's own check (FIPS 203 §7.2) is BadInput.
 */
async function seal(kem: WrapKem, recipientPublicKey: Uint8Array, info: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<WrappedShareMsg> {
  if (kem === 'ml-kem-768') return sealMlKem768(recipientPublicKey, info, aad, plaintext);
  const hpke = cipherSuite(kem);
  let recipientKey;
  try {
    recipientKey = await hpke.kem.deserializePublicKey(recipientPublicKey);
  } catch {
    throw new TesseraError(ErrorCode.BadInput, `${kem} recipient public key: does not decode`);
  }
  try {
    const { ct, enc } = await hpke.seal({ recipientPublicKey: recipientKey, info }, plaintext, aad);
    return { kem: KEM_INFO[kem].id, enc: new Uint8Array(enc), ciphertext: new Uint8Array(ct) };
  } catch {
    // The only input-dependent failure here is an encapsulation key failing the FIPS 203 §7.2 check.
    throw new TesseraError(ErrorCode.BadInput, `${kem} recipient public key: rejected by encapsulation`);
  }
}

/** The ML-KEM-768 wrapping suite's RFC 9180 ids: KEM 0x0041, HKDF-SHA256, AES-256-GCM. */
const ML_KEM_768_HPKE: HpkeSuiteParams = Object.freeze({ kemId: KEM_INFO['ml-kem-768'].id, kdfId: KdfId.HkdfSha256, aeadId: AeadId.Aes256Gcm });

/**
 * SealBase for ML-KEM-768 without @hpke/core's WebCrypto round trips: RFC 9180 §5.1.1 SetupBaseS with
 * Encap(pkR) = ML-KEM.Encaps(ek) (liboqs, core/pq.ts, as LiboqsMlKem768.encap), the §5.1 key schedule
 * and §5.2 Seal at sequence 0 from core/hpke.ts (noble HKDF-SHA256 and AES-256-GCM). Same bytes as
 * @hpke/core's single-shot seal with LiboqsMlKem768 (test/unit/wrap.test.ts interop with @hpke/ml-kem).
 */
async function sealMlKem768(recipientPublicKey: Uint8Array, info: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<WrappedShareMsg> {
  let raw;
  try {
    raw = await loadLiboqsMlKem768();
  } catch {
    throw new TesseraError(ErrorCode.BadState, 'ml-kem-768: engine failed to load');
  }
  let encapsulated;
  try {
    encapsulated = raw.encapsulate(recipientPublicKey);
  } catch {
    // The only input-dependent failure here is an encapsulation key failing the FIPS 203 §7.2 check.
    throw new TesseraError(ErrorCode.BadInput, 'ml-kem-768 recipient public key: rejected by encapsulation');
  }
  let ctx: HpkeContext | undefined;
  try {
    ctx = createContext(ML_KEM_768_HPKE, encapsulated.sharedSecret, info);
    return { kem: ML_KEM_768_HPKE.kemId, enc: encapsulated.cipherText, ciphertext: ctx.seal(aad, plaintext) };
  } finally {
    zeroize(encapsulated.sharedSecret);
    ctx?.destroy();
  }
}

/**
 * OpenBase of each item for ML-KEM-768 (the inverse of sealMlKem768): ML-KEM.Decaps (liboqs) with the
 * recipient's seed expanded once (core/pq.ts MlKemKey), then the §5.1 key schedule and §5.2 Open at
 * sequence 0. Throws on any failure (the caller maps it to DecryptionFailed) after wiping what it opened.
 */
async function openMlKem768(
  recipient: WrappingKeyPair,
  items: readonly { readonly sealed: WrappedShareMsg; readonly aad: Uint8Array }[],
  info: Uint8Array,
): Promise<Uint8Array[]> {
  const key = new MlKemKey('private', recipient.privateKey.slice());
  try {
    return await openMlKem768With(key.decapsulationKey(), items, info);
  } finally {
    key.wipe();
  }
}

/** openMlKem768 with the expanded decapsulation key (FIPS 203 dk) itself; the caller owns and wipes it. */
async function openMlKem768With(
  decapsulationKey: Uint8Array,
  items: readonly { readonly sealed: WrappedShareMsg; readonly aad: Uint8Array }[],
  info: Uint8Array,
): Promise<Uint8Array[]> {
  const raw = await loadLiboqsMlKem768();
  const out: Uint8Array[] = [];
  try {
    for (const { sealed, aad } of items) {
      const sharedSecret = raw.decapsulate(sealed.enc, decapsulationKey);
      const ctx = createContext(ML_KEM_768_HPKE, sharedSecret, info);
      zeroize(sharedSecret);
      try {
        out.push(ctx.open(aad, sealed.ciphertext));
      } finally {
        ctx.destroy();
      }
    }
    return out;
  } catch (e) {
    for (const p of out) zeroize(p);
    throw e;
  }
}

/** The one error of every failed open: which one failed is not told (no oracle for the sender). */
function notOpened(what: string): TesseraError {
  return new TesseraError(ErrorCode.DecryptionFailed, `${what}: did not open (wrong recipient key, tampered, or bound to other associated data)`);
}

/** The recipient key pair's KEM, after checking the private key length (the caller's input: BadInput). */
function recipientKem(recipient: WrappingKeyPair): WrapKem {
  ensure(typeof recipient === 'object' && recipient !== null, ErrorCode.BadInput, 'recipient: expected a key pair');
  const info = kemInfo(recipient.kem);
  ensure(
    recipient.privateKey instanceof Uint8Array && recipient.privateKey.length === info.privateKeyLength,
    ErrorCode.BadInput,
    `${recipient.kem} recipient private key: expected ${info.privateKeyLength} bytes`,
  );
  return recipient.kem;
}

/**
 * RFC 9180 §6.1 OpenBase(enc, skR, info, aad, ct). The received message is shape-checked before any
 * crypto; every failure is DecryptionFailed labelled `what`. The plaintext belongs to the caller.
 */
async function open(
  recipient: WrappingKeyPair,
  sealed: WrappedShareMsg,
  info: Uint8Array,
  aad: Uint8Array,
  ciphertextLength: { exact: number } | { max: number },
  what: string,
): Promise<Uint8Array> {
  const [plaintext] = await openAll(recipient, [{ sealed, aad }], info, ciphertextLength, what);
  return plaintext!;
}

/**
 * `open` of several messages to the same recipient key: every message is shape-checked before any
 * crypto, then the private key is deserialized once (so ML-KEM-768 expands its seed once, core/pq.ts
 * MlKemKey) and each message is opened in turn. The first failure throws; the plaintexts opened
 * before it are zeroized. The plaintexts belong to the caller.
 */
async function openAll(
  recipient: WrappingKeyPair,
  items: readonly { readonly sealed: WrappedShareMsg; readonly aad: Uint8Array }[],
  info: Uint8Array,
  ciphertextLength: { exact: number } | { max: number },
  what: string,
): Promise<Uint8Array[]> {
  const kem = recipientKem(recipient);
  for (const { sealed } of items) checkSealed(kem, sealed, ciphertextLength, what);
  const fail = (): TesseraError => notOpened(what);
  if (kem === 'ml-kem-768') {
    try {
      return await openMlKem768(recipient, items, info);
    } catch {
      throw fail();
    }
  }
  const hpke = cipherSuite(kem);
  const out: Uint8Array[] = [];
  let privateKey;
  try {
    privateKey = await hpke.kem.deserializePrivateKey(recipient.privateKey);
    for (const { sealed, aad } of items) {
      out.push(new Uint8Array(await hpke.open({ recipientKey: privateKey, enc: sealed.enc, info }, sealed.ciphertext, aad)));
    }
    return out;
  } catch {
    for (const p of out) zeroize(p);
    throw fail();
  } finally {
    // The deserialized key object holds our own copy of the private key bytes (and its expansion).
    wipeKemKey(privateKey);
  }
}

/** The shape checks of a received sealed message, before any crypto: DecryptionFailed labelled `what`. */
function checkSealed(kem: WrapKem, sealed: WrappedShareMsg, ciphertextLength: { exact: number } | { max: number }, what: string): void {
  const kemDesc = KEM_INFO[kem];
  const fail = (why: string): TesseraError => new TesseraError(ErrorCode.DecryptionFailed, `${what}: ${why}`);
  if (typeof sealed !== 'object' || sealed === null) throw fail('expected an object');
  if (sealed.kem !== kemDesc.id) throw fail(`KEM id does not match the recipient's ${kem} key`);
  if (!(sealed.enc instanceof Uint8Array) || sealed.enc.length !== kemDesc.encLength) {
    throw fail(`enc must be ${kemDesc.encLength} bytes`);
  }
  if (!(sealed.ciphertext instanceof Uint8Array)) throw fail('ciphertext must be bytes');
  if ('exact' in ciphertextLength && sealed.ciphertext.length !== ciphertextLength.exact) {
    throw fail(`ciphertext must be ${ciphertextLength.exact} bytes`);
  }
  if ('max' in ciphertextLength && (sealed.ciphertext.length < AEAD_TAG_LENGTH || sealed.ciphertext.length > ciphertextLength.max)) {
    throw fail(`ciphertext must be ${AEAD_TAG_LENGTH}..${ciphertextLength.max} bytes`);
  }
}

/**
 * Encrypt `share` to `recipientPublicKey` (RFC 9180 §6.1 SealBase with info = the wrap label and
 * aad = wrapAssociatedData(...)). The share's own suite, index and epoch are bound, with `binding`.
 */
export async function wrapShare(
  recipientPublicKey: Uint8Array,
  kem: WrapKem,
  share: SecretShare,
  binding: WrapBinding,
): Promise<WrappedShareMsg> {
  const info = kemInfo(kem);
  ensure(
    recipientPublicKey instanceof Uint8Array && recipientPublicKey.length === info.publicKeyLength,
    ErrorCode.BadInput,
    `${kem} recipient public key: expected ${info.publicKeyLength} bytes`,
  );
  ensure(typeof share === 'object' && share !== null, ErrorCode.BadInput, 'share: expected an object');
  const suite = getSuite(share.suite);
  // DeserializeScalar (RFC 9591 §4): exact length, canonical, non-zero. Throws BadScalar otherwise.
  suite.group.scalarFromBytes(share.value, 'share value');
  const aad = wrapAssociatedData(kem, suite.id, share.index, share.epoch, binding);
  // Our own copy of the share bytes as the plaintext, wiped once sealed.
  const plaintext = share.value.slice();
  try {
    return await seal(kem, recipientPublicKey, WRAP_INFO, aad, plaintext);
  } finally {
    zeroize(plaintext);
  }
}

/**
 * Open a wrapped share (RFC 9180 §6.1 OpenBase) with the recipient's key pair, requiring it to be bound
 * to exactly `expect`. Every failure of the wrapped message (wrong KEM, wrong sizes, tampering, other
 * binding, other recipient, a plaintext that is not a share scalar) is DecryptionFailed.
 * The returned share's `value` belongs to the caller, who must zeroize it.
 */
export async function unwrapShare(recipient: WrappingKeyPair, wrapped: WrappedShareMsg, expect: UnwrapExpectation): Promise<SecretShare> {
  // The caller's own inputs first: BadInput / UnknownSuite if they are malformed.
  const kem = recipientKem(recipient);
  ensure(typeof expect === 'object' && expect !== null, ErrorCode.BadInput, 'unwrap expectation: expected an object');
  const suite = getSuite(expect.suite);
  const aad = wrapAssociatedData(kem, suite.id, expect.index, expect.epoch, expect);

  const exact = suite.group.scalarLength + AEAD_TAG_LENGTH;
  const plaintext = await open(recipient, wrapped, WRAP_INFO, aad, { exact }, 'wrapped share');
  try {
    suite.group.scalarFromBytes(plaintext, 'unwrapped share');
  } catch {
    zeroize(plaintext);
    throw new TesseraError(ErrorCode.DecryptionFailed, 'wrapped share: plaintext is not a valid share scalar');
  }
  return { suite: suite.id, index: expect.index, epoch: expect.epoch, value: plaintext };
}

// ---------------------------------------------------------------------------------------------
// General sealing to a wrapping key (used by node/ and sdk/ for wrapped partial decapsulations)

/** Largest plaintext `sealToReceiver` accepts (a decap partial is a few hundred bytes). */
export const MAX_SEALED_PLAINTEXT = 64 * 1024;

const SEAL_INFO = utf8ToBytes('tessera/v1/seal');
/** The ciphertext length bound of a message sealed with sealToReceiver. */
const SEALED_CIPHERTEXT_LENGTH = { max: MAX_SEALED_PLAINTEXT + AEAD_TAG_LENGTH };

/** The wrapping KEM whose public keys have this length (the two KEMs' lengths differ). */
export function wrapKemForPublicKey(publicKey: Uint8Array): WrapKem {
  ensure(publicKey instanceof Uint8Array, ErrorCode.BadInput, 'receiver public key: expected bytes');
  const kem = WRAP_KEMS.find((k) => KEM_INFO[k].publicKeyLength === publicKey.length);
  ensure(kem !== undefined, ErrorCode.BadInput, `receiver public key: ${publicKey.length} bytes is neither an ML-KEM-768 nor an X-Wing key`);
  return kem;
}

/**
 * Seal an arbitrary message to a wrapping public key: the same HPKE suites as wrapShare, with the info
 * label 'tessera/v1/seal' so that a sealed message can never be mistaken for a wrapped share.
 * `aad` is the caller's canonical binding (e.g. core/session.ts decapPartialBinding). The KEM follows
 * from the key length unless given.
 */
export async function sealToReceiver(receiverPublicKey: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, kem?: WrapKem): Promise<WrappedShareMsg> {
  const k = kem ?? wrapKemForPublicKey(receiverPublicKey);
  const info = kemInfo(k);
  ensure(
    receiverPublicKey instanceof Uint8Array && receiverPublicKey.length === info.publicKeyLength,
    ErrorCode.BadInput,
    `${k} receiver public key: expected ${info.publicKeyLength} bytes`,
  );
  ensure(plaintext instanceof Uint8Array && plaintext.length <= MAX_SEALED_PLAINTEXT, ErrorCode.BadInput, `sealed plaintext: expected at most ${MAX_SEALED_PLAINTEXT} bytes`);
  ensure(aad instanceof Uint8Array, ErrorCode.BadInput, 'sealed associated data: expected bytes');
  return seal(k, receiverPublicKey, SEAL_INFO, aad, plaintext);
}

/** Open a message made by sealToReceiver for exactly `aad`. Any failure is DecryptionFailed. */
export async function openFromSender(receiver: WrappingKeyPair, sealed: WrappedShareMsg, aad: Uint8Array): Promise<Uint8Array> {
  recipientKem(receiver);
  ensure(aad instanceof Uint8Array, ErrorCode.BadInput, 'sealed associated data: expected bytes');
  return open(receiver, sealed, SEAL_INFO, aad, SEALED_CIPHERTEXT_LENGTH, 'sealed message');
}

/**
 * openFromSender for several messages to the same receiver key (e.g. the t wrapped partials of one
 * decapsulation): each message must open for its own `aad`. The receiver's private key is deserialized
 * and, for ML-KEM-768, expanded once for all of them. Any failure is DecryptionFailed; the plaintexts,
 * in the order of `items`, belong to the caller.
 */
/**
 * An ML-KEM-768 receiver key for one call (the SDK's threshold decapsulation: the players seal their
 * partials to it, sealToReceiver): made by liboqs' own key generation (FIPS 203 §7.1 ML-KEM.KeyGen
 * with fresh randomness), kept as the expanded decapsulation key only. It is never stored, so it
 * needs no seed, and it is not expanded twice (a WrappingKeyPair's seed is expanded with noble at
 * generation and again to open). The caller wipes it with wipeOneCallReceiver when the call ends.
 */
export interface OneCallReceiver {
  readonly kem: 'ml-kem-768';
  readonly publicKey: Uint8Array;
  readonly decapsulationKey: Uint8Array;
}

export async function generateOneCallReceiver(): Promise<OneCallReceiver> {
  let raw;
  try {
    raw = await loadLiboqsMlKem768();
  } catch {
    throw new TesseraError(ErrorCode.BadState, 'ml-kem-768: engine failed to load');
  }
  const { publicKey, decapsulationKey } = raw.generateKeyPair();
  return { kem: 'ml-kem-768', publicKey, decapsulationKey };
}

export function wipeOneCallReceiver(receiver: OneCallReceiver | undefined): void {
  if (receiver) zeroize(receiver.decapsulationKey);
}

/** openAllFromSender for a OneCallReceiver: the same checks, the same DecryptionFailed on any failure. */
export async function openAllFromSenderOneCall(
  receiver: OneCallReceiver,
  items: readonly { readonly sealed: WrappedShareMsg; readonly aad: Uint8Array }[],
): Promise<Uint8Array[]> {
  ensure(
    typeof receiver === 'object' && receiver !== null && receiver.kem === 'ml-kem-768' && receiver.decapsulationKey instanceof Uint8Array,
    ErrorCode.BadInput,
    'recipient: expected a one-call ML-KEM-768 receiver',
  );
  checkSealedItems(items);
  const what = 'sealed message';
  for (const { sealed } of items) checkSealed('ml-kem-768', sealed, SEALED_CIPHERTEXT_LENGTH, what);
  try {
    return await openMlKem768With(receiver.decapsulationKey, items, SEAL_INFO);
  } catch {
    throw notOpened(what);
  }
}

export async function openAllFromSender(
  receiver: WrappingKeyPair,
  items: readonly { readonly sealed: WrappedShareMsg; readonly aad: Uint8Array }[],
): Promise<Uint8Array[]> {
  recipientKem(receiver);
  checkSealedItems(items);
  return openAll(receiver, items, SEAL_INFO, SEALED_CIPHERTEXT_LENGTH, 'sealed message');
}

/** The shape of the items of openAllFromSender(OneCall): a list of { sealed, aad: bytes } (BadInput). */
function checkSealedItems(items: readonly { readonly sealed: WrappedShareMsg; readonly aad: Uint8Array }[]): void {
  ensure(Array.isArray(items), ErrorCode.BadInput, 'sealed messages: expected an array');
  for (const item of items) {
    ensure(typeof item === 'object' && item !== null && item.aad instanceof Uint8Array, ErrorCode.BadInput, 'sealed associated data: expected bytes');
  }
}
