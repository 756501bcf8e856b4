/**
 * The RFC 9180 (HPKE) pieces that threshold decapsulation needs, composed from library primitives:
 * HKDF from @noble/hashes and the AEADs from @noble/ciphers. Nothing here is a new primitive.
 *
 * - §4   LabeledExtract / LabeledExpand
 * - §4.1 DHKEM ExtractAndExpand (the last step of Decap, after the DH value is known)
 * - §5.1 KeySchedule, base mode (mode_base = 0x00, default psk and psk_id)
 * - §5.2 AEAD Seal / Open with nonce = base_nonce XOR I2OSP(seq, Nn)
 * - §5.3 Secret export
 *
 * The KEM itself (the DH with the shared private key) happens in core/decap.ts; its output, the KEM
 * shared secret, feeds `keySchedule` here exactly as a one-party HPKE recipient would feed it.
 * One generic implementation, parametrised by the §7.2 KDF and §7.3 AEAD tables.
 */
import { expand, extract } from '@noble/hashes/hkdf.js';
import { sha256, sha384, sha512 } from '@noble/hashes/sha2.js';
import { gcm } from '@noble/ciphers/aes.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import type { CHash } from '@noble/hashes/utils.js';
import { concatBytes, i2osp, utf8ToBytes, zeroize } from './bytes.js';
import { ErrorCode, TesseraError, ensure } from './errors.js';

/** A hash usable by HKDF (@noble/hashes' sha256 / sha384 / sha512). */
export type KdfHash = CHash;

const HPKE_V1 = utf8ToBytes('HPKE-v1');
const EMPTY = new Uint8Array(0);

/** RFC 9180 §5: mode_base. The other modes (psk, auth, auth_psk) are not used by Tessera. */
export const MODE_BASE = 0x00;

// ---------------------------------------------------------------------------------------------
// Algorithm tables (RFC 9180 §7.2 KDFs, §7.3 AEADs)

export const KdfId = { HkdfSha256: 0x0001, HkdfSha384: 0x0002, HkdfSha512: 0x0003 } as const;
export type KdfId = (typeof KdfId)[keyof typeof KdfId];

export const AeadId = { Aes128Gcm: 0x0001, Aes256Gcm: 0x0002, ChaCha20Poly1305: 0x0003, ExportOnly: 0xffff } as const;
export type AeadId = (typeof AeadId)[keyof typeof AeadId];

interface KdfInfo {
  readonly hash: KdfHash;
  /** Nh: output size of Extract. */
  readonly Nh: number;
}

interface AeadInfo {
  /** Nk, Nn, Nt: key, nonce and tag lengths (all 0 for the export-only AEAD). */
  readonly Nk: number;
  readonly Nn: number;
  readonly Nt: number;
  /** The noble cipher constructor, or null for export-only. */
  readonly cipher: ((key: Uint8Array, nonce: Uint8Array, aad?: Uint8Array) => {
    encrypt(pt: Uint8Array): Uint8Array;
    decrypt(ct: Uint8Array): Uint8Array;
  }) | null;
}

const KDFS: Readonly<Record<number, KdfInfo>> = Object.freeze({
  [KdfId.HkdfSha256]: { hash: sha256, Nh: 32 },
  [KdfId.HkdfSha384]: { hash: sha384, Nh: 48 },
  [KdfId.HkdfSha512]: { hash: sha512, Nh: 64 },
});

const AEADS: Readonly<Record<number, AeadInfo>> = Object.freeze({
  [AeadId.Aes128Gcm]: { Nk: 16, Nn: 12, Nt: 16, cipher: gcm },
  [AeadId.Aes256Gcm]: { Nk: 32, Nn: 12, Nt: 16, cipher: gcm },
  [AeadId.ChaCha20Poly1305]: { Nk: 32, Nn: 12, Nt: 16, cipher: chacha20poly1305 },
  [AeadId.ExportOnly]: { Nk: 0, Nn: 0, Nt: 0, cipher: null },
});

function kdfInfo(kdfId: number): KdfInfo {
  const k = KDFS[kdfId];
  if (!k) throw new TesseraError(ErrorCode.UnknownSuite, `HPKE KDF id ${kdfId} is not supported`);
  return k;
}

function aeadInfo(aeadId: number): AeadInfo {
  const a = AEADS[aeadId];
  if (!a) throw new TesseraError(ErrorCode.UnknownSuite, `HPKE AEAD id ${aeadId} is not supported`);
  return a;
}

/** An HPKE ciphersuite (RFC 9180 §7): the KEM, KDF and AEAD identifiers. */
export interface HpkeSuiteParams {
  readonly kemId: number;
  readonly kdfId: KdfId;
  readonly aeadId: AeadId;
}

// ---------------------------------------------------------------------------------------------
// §4 Labeled HKDF and the two suite_id forms

/** RFC 9180 §4.1: suite_id = concat("KEM", I2OSP(kem_id, 2)), used inside DHKEM. */
export function kemSuiteId(kemId: number): Uint8Array {
  return concatBytes(utf8ToBytes('KEM'), i2osp(kemId, 2));
}

/** RFC 9180 §5.1: suite_id = concat("HPKE", I2OSP(kem_id, 2), I2OSP(kdf_id, 2), I2OSP(aead_id, 2)). */
export function hpkeSuiteId(params: HpkeSuiteParams): Uint8Array {
  return concatBytes(utf8ToBytes('HPKE'), i2osp(params.kemId, 2), i2osp(params.kdfId, 2), i2osp(params.aeadId, 2));
}

/** RFC 9180 §4: LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || suite_id || label || ikm). */
export function labeledExtract(hash: KdfHash, suiteId: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array {
  const labeledIkm = concatBytes(HPKE_V1, suiteId, utf8ToBytes(label), ikm);
  // RFC 5869 §2.2: an empty salt means HashLen zero bytes; HMAC pads its key with zeros, so both agree.
  const prk = extract(hash, labeledIkm, salt);
  zeroize(labeledIkm);
  return prk;
}

/**
 * RFC 9180 §4: LabeledExpand(prk, label, info, L) =
 *   Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L).
 */
export function labeledExpand(
  hash: KdfHash,
  suiteId: Uint8Array,
  prk: Uint8Array,
  label: string,
  info: Uint8Array,
  length: number,
): Uint8Array {
  ensure(Number.isSafeInteger(length) && length >= 0 && length <= 255 * hash.outputLen, ErrorCode.BadInput, `LabeledExpand: length ${length} out of range`);
  const labeledInfo = concatBytes(i2osp(length, 2), HPKE_V1, suiteId, utf8ToBytes(label), info);
  return expand(hash, prk, labeledInfo, length);
}

/**
 * RFC 9180 §4.1 DHKEM ExtractAndExpand(dh, kem_context):
 *   eae_prk = LabeledExtract("", "eae_prk", dh)
 *   shared_secret = LabeledExpand(eae_prk, "shared_secret", kem_context, Nsecret)
 * with suite_id = "KEM" || I2OSP(kem_id, 2). `hash` is the DHKEM's own KDF (not the HPKE KDF).
 */
export function extractAndExpand(
  hash: KdfHash,
  kemId: number,
  dh: Uint8Array,
  kemContext: Uint8Array,
  secretLength: number,
): Uint8Array {
  const suiteId = kemSuiteId(kemId);
  const eaePrk = labeledExtract(hash, suiteId, EMPTY, 'eae_prk', dh);
  const sharedSecret = labeledExpand(hash, suiteId, eaePrk, 'shared_secret', kemContext, secretLength);
  zeroize(eaePrk);
  return sharedSecret;
}

// ---------------------------------------------------------------------------------------------
// §5.1 KeySchedule (base mode)

/** Every value the base-mode key schedule derives. Secret except `keyScheduleContext`. */
export interface KeyScheduleValues {
  /** mode || psk_id_hash || info_hash (public). */
  readonly keyScheduleContext: Uint8Array;
  /** The intermediate `secret` = LabeledExtract(shared_secret, "secret", psk). */
  readonly secret: Uint8Array;
  readonly key: Uint8Array;
  readonly baseNonce: Uint8Array;
  readonly exporterSecret: Uint8Array;
}

/**
 * RFC 9180 §5.1 KeySchedule<ROLE>(mode_base, shared_secret, info, psk = "", psk_id = "").
 * VerifyPSKInputs holds trivially: base mode with both psk and psk_id empty.
 * Returns the intermediate values too so vector tests can compare them; `createContext` is the
 * normal entry point and wipes `secret`.
 */
export function keySchedule(params: HpkeSuiteParams, sharedSecret: Uint8Array, info: Uint8Array): KeyScheduleValues {
  ensure(sharedSecret instanceof Uint8Array && sharedSecret.length > 0, ErrorCode.BadInput, 'key schedule: shared secret must be non-empty bytes');
  ensure(info instanceof Uint8Array, ErrorCode.BadInput, 'key schedule: info must be bytes');
  const { hash, Nh } = kdfInfo(params.kdfId);
  const { Nk, Nn } = aeadInfo(params.aeadId);
  const suiteId = hpkeSuiteId(params);
  const psk = EMPTY;
  const pskId = EMPTY;

  const pskIdHash = labeledExtract(hash, suiteId, EMPTY, 'psk_id_hash', pskId);
  const infoHash = labeledExtract(hash, suiteId, EMPTY, 'info_hash', info);
  const keyScheduleContext = concatBytes(Uint8Array.of(MODE_BASE), pskIdHash, infoHash);

  const secret = labeledExtract(hash, suiteId, sharedSecret, 'secret', psk);
  // For the export-only AEAD Nk = Nn = 0 and key / base_nonce are empty (RFC 9180 §5.1, §7.3).
  const key = labeledExpand(hash, suiteId, secret, 'key', keyScheduleContext, Nk);
  const baseNonce = labeledExpand(hash, suiteId, secret, 'base_nonce', keyScheduleContext, Nn);
  const exporterSecret = labeledExpand(hash, suiteId, secret, 'exp', keyScheduleContext, Nh);
  return { keyScheduleContext, secret, key, baseNonce, exporterSecret };
}

// ---------------------------------------------------------------------------------------------
// §5.2 Encryption and decryption, §5.3 secret export

/** RFC 9180 §5.2 ComputeNonce(seq) = base_nonce XOR I2OSP(seq, Nn). */
export function computeNonce(baseNonce: Uint8Array, seq: number): Uint8Array {
  ensure(Number.isSafeInteger(seq) && seq >= 0, ErrorCode.BadInput, 'HPKE sequence number must be a non-negative safe integer');
  ensure(baseNonce instanceof Uint8Array && baseNonce.length >= 8, ErrorCode.BadInput, 'HPKE base nonce too short');
  // A safe integer fits in 7 bytes; the leading Nn - 7 bytes of I2OSP(seq, Nn) are zero, so XOR only
  // touches the last 7. Nn = 12 for every AEAD here, far below the 2^(8·Nn) - 1 message limit.
  const seqBytes = i2osp(seq, 7);
  const nonce = Uint8Array.from(baseNonce);
  const off = nonce.length - seqBytes.length;
  for (let k = 0; k < seqBytes.length; k++) nonce[off + k]! ^= seqBytes[k]!;
  return nonce;
}

function sealingAead(params: HpkeSuiteParams, key: Uint8Array, baseNonce: Uint8Array): AeadInfo & { cipher: NonNullable<AeadInfo['cipher']> } {
  const a = aeadInfo(params.aeadId);
  if (a.cipher === null) throw new TesseraError(ErrorCode.BadInput, 'export-only HPKE context cannot seal or open');
  ensure(key instanceof Uint8Array && key.length === a.Nk, ErrorCode.BadInput, `HPKE key must be ${a.Nk} bytes`);
  ensure(baseNonce instanceof Uint8Array && baseNonce.length === a.Nn, ErrorCode.BadInput, `HPKE base nonce must be ${a.Nn} bytes`);
  return a as AeadInfo & { cipher: NonNullable<AeadInfo['cipher']> };
}

/** RFC 9180 §5.2 ContextS.Seal at sequence number `seq` (stateless form; `HpkeContext` tracks seq). */
export function aeadSeal(params: HpkeSuiteParams, key: Uint8Array, baseNonce: Uint8Array, seq: number, aad: Uint8Array, pt: Uint8Array): Uint8Array {
  const { cipher } = sealingAead(params, key, baseNonce);
  ensure(aad instanceof Uint8Array && pt instanceof Uint8Array, ErrorCode.BadInput, 'HPKE seal: aad and plaintext must be bytes');
  const nonce = computeNonce(baseNonce, seq);
  return cipher(key, nonce, aad).encrypt(pt);
}

/** RFC 9180 §5.2 ContextR.Open at sequence number `seq`. Any failure is DecryptionFailed (OpenError). */
export function aeadOpen(params: HpkeSuiteParams, key: Uint8Array, baseNonce: Uint8Array, seq: number, aad: Uint8Array, ct: Uint8Array): Uint8Array {
  const { cipher, Nt } = sealingAead(params, key, baseNonce);
  ensure(aad instanceof Uint8Array && ct instanceof Uint8Array, ErrorCode.BadInput, 'HPKE open: aad and ciphertext must be bytes');
  if (ct.length < Nt) throw new TesseraError(ErrorCode.DecryptionFailed, 'HPKE open: ciphertext shorter than the tag');
  const nonce = computeNonce(baseNonce, seq);
  try {
    return cipher(key, nonce, aad).decrypt(ct);
  } catch {
    throw new TesseraError(ErrorCode.DecryptionFailed, 'HPKE open: authentication failed');
  }
}

/** RFC 9180 §5.3 Export(exporter_context, L) = LabeledExpand(exporter_secret, "sec", exporter_context, L). */
export function exportSecret(params: HpkeSuiteParams, exporterSecret: Uint8Array, exporterContext: Uint8Array, length: number): Uint8Array {
  const { hash } = kdfInfo(params.kdfId);
  ensure(exporterContext instanceof Uint8Array, ErrorCode.BadInput, 'HPKE export: context must be bytes');
  return labeledExpand(hash, hpkeSuiteId(params), exporterSecret, 'sec', exporterContext, length);
}

/**
 * A base-mode HPKE context (RFC 9180 §5.2): the same object serves as sender (seal) or recipient
 * (open), since both derive identical keys; a given context should only be used in one role.
 * The sequence number advances after each successful seal / open; a failed open does not advance it.
 */
export class HpkeContext {
  readonly params: HpkeSuiteParams;
  #key: Uint8Array;
  #baseNonce: Uint8Array;
  #exporterSecret: Uint8Array;
  #seq = 0;
  #destroyed = false;

  constructor(params: HpkeSuiteParams, key: Uint8Array, baseNonce: Uint8Array, exporterSecret: Uint8Array) {
    this.params = params;
    this.#key = key;
    this.#baseNonce = baseNonce;
    this.#exporterSecret = exporterSecret;
  }

  get seq(): number {
    return this.#seq;
  }

  #live(): void {
    if (this.#destroyed) throw new TesseraError(ErrorCode.BadState, 'HPKE context used after destroy()');
  }

  #increment(): void {
    // §5.2 IncrementSeq: refuse before the nonce could repeat.
    if (this.#seq >= Number.MAX_SAFE_INTEGER) throw new TesseraError(ErrorCode.BadState, 'HPKE message limit reached');
    this.#seq += 1;
  }

  seal(aad: Uint8Array, pt: Uint8Array): Uint8Array {
    this.#live();
    const ct = aeadSeal(this.params, this.#key, this.#baseNonce, this.#seq, aad, pt);
    this.#increment();
    return ct;
  }

  open(aad: Uint8Array, ct: Uint8Array): Uint8Array {
    this.#live();
    const pt = aeadOpen(this.params, this.#key, this.#baseNonce, this.#seq, aad, ct);
    this.#increment();
    return pt;
  }

  export(exporterContext: Uint8Array, length: number): Uint8Array {
    this.#live();
    return exportSecret(this.params, this.#exporterSecret, exporterContext, length);
  }

  /** Wipe the key material this context owns. */
  destroy(): void {
    zeroize(this.#key, this.#baseNonce, this.#exporterSecret);
    this.#destroyed = true;
  }
}

/**
 * RFC 9180 §5.1 SetupBaseR / SetupBaseS after the KEM step: KeySchedule(mode_base, shared_secret, info)
 * turned into a context. The intermediate `secret` is wiped here.
 */
export function createContext(params: HpkeSuiteParams, sharedSecret: Uint8Array, info: Uint8Array): HpkeContext {
  const v = keySchedule(params, sharedSecret, info);
  zeroize(v.secret);
  return new HpkeContext(params, v.key, v.baseNonce, v.exporterSecret);
}
