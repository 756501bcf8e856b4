/**
 * HPKE (RFC 9180, base mode) to a Tessera KEM key, and the sealed-message container of the CLI
 * (issue 11, item 2). Cluster.seal / open / encapsulate (sdk/client.ts) use these.
 *
 * The HPKE ciphersuite of a Tessera KEM key (HPKE_PARAMS): the key's DHKEM (DHKEM(X25519, HKDF-SHA256)
 * 0x0020 for hpke-x25519, DHKEM(P-256, HKDF-SHA256) 0x0010 for hpke-p256), KDF HKDF-SHA256 (0x0001) and
 * AEAD AES-128-GCM (0x0001), the ciphersuite the README and the tests use. Any RFC 9180 sender with
 * those three identifiers can seal to a Tessera key; Cluster.open opens it.
 *
 * The sending side is @hpke/core (SetupBaseS §5.1.1 and Seal §5.2; Encap §4.1); the receiving side
 * (Cluster.open) is threshold decapsulation then core/hpke.ts's key schedule (§5.1) and Open (§5.2).
 */
import { Aes128Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256, type KemInterface } from '@hpke/core';
import { DhkemX25519HkdfSha256 } from '@hpke/dhkem-x25519';
import { isTesseraError } from '../core/errors.js';
import { AeadId, KdfId, type HpkeSuiteParams } from '../core/hpke.js';
import { getSuite, isSuiteId, KEM_SUITES, type KemSuite } from '../core/suites.js';
import { bytesOrHex } from './formats.js';
import { TesseraClientError } from './http.js';

export interface HpkeOptions {
  /** RFC 9180 `info`; default empty. */
  info?: Uint8Array;
  /** Additional authenticated data; default empty. */
  aad?: Uint8Array;
}

/** The KEM suite `suite`, or BAD_INPUT naming what it is instead. */
export function kemSuiteOf(suite: string): KemSuite {
  if (!isSuiteId(suite)) throw new TesseraClientError('BAD_INPUT', `unknown suite ${JSON.stringify(String(suite)).slice(0, 40)}`);
  const s = getSuite(suite);
  if (s.kind !== 'kem') throw new TesseraClientError('BAD_INPUT', `suite ${s.id} is a signing suite; seal, open and encapsulate need a KEM suite (${KEM_SUITES.join(', ')})`);
  return s;
}

/** The RFC 9180 ciphersuite of a Tessera KEM key: its DHKEM, HKDF-SHA256, AES-128-GCM. */
export function hpkeParams(suite: KemSuite): HpkeSuiteParams {
  return { kemId: suite.kemId, kdfId: KdfId.HkdfSha256, aeadId: AeadId.Aes128Gcm };
}

function hpkeKem(suite: KemSuite): KemInterface {
  return suite.id === 'hpke-x25519' ? new DhkemX25519HkdfSha256() : new DhkemP256HkdfSha256();
}

/** The recipient's public key: validated by its suite (BAD_POINT), then deserialised by @hpke/core (§7.1.1). */
async function recipientKey(suite: KemSuite, publicKey: string | Uint8Array, kem: KemInterface): Promise<Awaited<ReturnType<KemInterface['deserializePublicKey']>>> {
  const raw = bytesOrHex(publicKey, 'publicKey');
  try {
    suite.publicKeyFromBytes(raw);
  } catch (e) {
    throw isTesseraError(e) ? new TesseraClientError(e.code, `publicKey: not a valid ${suite.id} public key`) : e;
  }
  return kem.deserializePublicKey(raw.slice().buffer as ArrayBuffer);
}

function bytesArg(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new TesseraClientError('BAD_INPUT', `${what}: expected bytes (Uint8Array)`);
  return v;
}

/**
 * Seal `plaintext` to a KEM suite's public key (raw encoding, hex (optional 0x) or bytes): SetupBaseS +
 * Seal (RFC 9180 §5.1.1, §5.2) with the ciphersuite of hpkeParams. Returns enc (Nenc bytes) and the
 * ciphertext (plaintext length + 16). Errors: BAD_INPUT (suite, hex, argument types), BAD_POINT (not a
 * valid public key).
 */
export async function sealToPublicKey(suite: string, publicKey: string | Uint8Array, plaintext: Uint8Array, o: HpkeOptions = {}): Promise<{ enc: Uint8Array; ciphertext: Uint8Array }> {
  const s = kemSuiteOf(suite);
  bytesArg(plaintext, 'plaintext');
  const info = o.info === undefined ? new Uint8Array(0) : bytesArg(o.info, 'info');
  const aad = o.aad === undefined ? new Uint8Array(0) : bytesArg(o.aad, 'aad');
  const kem = hpkeKem(s);
  const hpke = new CipherSuite({ kem, kdf: new HkdfSha256(), aead: new Aes128Gcm() });
  const recipientPublicKey = await recipientKey(s, publicKey, kem);
  const sender = await hpke.createSenderContext({ recipientPublicKey, info: info.slice().buffer as ArrayBuffer });
  // @hpke/core takes ArrayBuffers: the plaintext's copy is wiped once sealed.
  const copy = plaintext.slice();
  try {
    const ciphertext = new Uint8Array(await sender.seal(copy.buffer as ArrayBuffer, aad.slice().buffer as ArrayBuffer));
    return { enc: new Uint8Array(sender.enc), ciphertext };
  } finally {
    copy.fill(0);
  }
}

/**
 * The raw KEM: Encap(pkR) (RFC 9180 §4.1) → enc and the KEM shared secret (Nsecret = 32 bytes). The
 * secret is the caller's: wipe it (fill(0)) when done. Errors as sealToPublicKey.
 */
export async function encapsulateToPublicKey(suite: string, publicKey: string | Uint8Array): Promise<{ enc: Uint8Array; sharedSecret: Uint8Array }> {
  const s = kemSuiteOf(suite);
  const kem = hpkeKem(s);
  const recipientPublicKey = await recipientKey(s, publicKey, kem);
  const r = await kem.encap({ recipientPublicKey });
  const sharedSecret = new Uint8Array(r.sharedSecret).slice();
  new Uint8Array(r.sharedSecret).fill(0); // sharedSecret is a copy: wipe the buffer @hpke/core handed over
  return { enc: new Uint8Array(r.enc), sharedSecret };
}

/**
 * The sealed form the CLI writes (`tessera seal`, read by `tessera open`), version 1:
 *
 *   offset 0  4 bytes  magic "TSSL" (0x54 0x53 0x53 0x4c)
 *          4  1 byte   version 0x01
 *          5  2 bytes  Nenc, big-endian (I2OSP(len(enc), 2))
 *          7  Nenc     enc (RFC 9180 §4: the encapsulated key)
 *   7 + Nenc  rest     ciphertext (RFC 9180 §5.2 Seal output: AEAD ciphertext with its 16-byte tag)
 *
 * Version 1 means the ciphersuite of hpkeParams (the key's DHKEM, HKDF-SHA256, AES-128-GCM), base
 * mode; info and aad are not carried (the opener supplies the same ones).
 */
export const SEALED_MAGIC = Uint8Array.of(0x54, 0x53, 0x53, 0x4c);
export const SEALED_VERSION = 0x01;
const HEADER = SEALED_MAGIC.length + 1 + 2;
const TAG_LENGTH = 16; // AES-128-GCM Nt (RFC 9180 §7.3)
const ENC_LENGTHS = new Set(KEM_SUITES.map((id) => (getSuite(id) as KemSuite).encLength));

export function encodeSealedMessage(m: { enc: Uint8Array; ciphertext: Uint8Array }): Uint8Array {
  const enc = bytesArg(m?.enc, 'enc');
  const ciphertext = bytesArg(m?.ciphertext, 'ciphertext');
  if (!ENC_LENGTHS.has(enc.length)) throw new TesseraClientError('BAD_INPUT', `enc: ${enc.length} bytes is no KEM's encapsulated key length (${[...ENC_LENGTHS].join(' or ')})`);
  if (ciphertext.length < TAG_LENGTH) throw new TesseraClientError('BAD_INPUT', `ciphertext: ${ciphertext.length} bytes is shorter than the ${TAG_LENGTH}-byte AEAD tag`);
  const out = new Uint8Array(HEADER + enc.length + ciphertext.length);
  out.set(SEALED_MAGIC, 0);
  out[4] = SEALED_VERSION;
  out[5] = enc.length >>> 8;
  out[6] = enc.length & 0xff;
  out.set(enc, HEADER);
  out.set(ciphertext, HEADER + enc.length);
  return out;
}

/** Parse and check a sealed message; every defect is TesseraClientError('BAD_INPUT', 'sealed message: ...'). */
export function decodeSealedMessage(bytes: Uint8Array): { enc: Uint8Array; ciphertext: Uint8Array } {
  const bad = (why: string) => new TesseraClientError('BAD_INPUT', `sealed message: ${why}`);
  if (!(bytes instanceof Uint8Array)) throw bad('expected bytes');
  if (bytes.length < HEADER || SEALED_MAGIC.some((b, k) => bytes[k] !== b)) throw bad('not a Tessera sealed message (it does not start with "TSSL"; was it written by `tessera seal`?)');
  if (bytes[4] !== SEALED_VERSION) throw bad(`version ${bytes[4]} is not supported (this SDK reads version ${SEALED_VERSION})`);
  const encLength = (bytes[5]! << 8) | bytes[6]!;
  if (!ENC_LENGTHS.has(encLength)) throw bad(`enc length ${encLength} is no KEM's (${[...ENC_LENGTHS].join(' or ')})`);
  if (bytes.length < HEADER + encLength + TAG_LENGTH) throw bad(`truncated: ${bytes.length} bytes, at least ${HEADER + encLength + TAG_LENGTH} expected`);
  return { enc: bytes.slice(HEADER, HEADER + encLength), ciphertext: bytes.slice(HEADER + encLength) };
}
