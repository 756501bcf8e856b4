/**
 * The suite registry: one entry per suite, and adding a suite is adding one entry.
 *
 * Signing suites run the RFC 9591 algebra of core/frost.ts over their group (@noble/curves' FROST
 * ciphersuites stay as the reference implementation); decapsulation suites describe the
 * RFC 9180 DHKEM whose private key is shared. Every suite exposes its group through the `Group`
 * interface (core/group.ts), which is all that protocol code may use for arithmetic.
 */
import { ed25519, ed25519_FROST } from '@noble/curves/ed25519.js';
import { p256, p256_FROST, p256_hasher } from '@noble/curves/nist.js';
import { schnorr_FROST, secp256k1, secp256k1_FROST, secp256k1_hasher } from '@noble/curves/secp256k1.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import type { FROST } from '@noble/curves/abstract/frost.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { ErrorCode, TesseraError, ensure } from './errors.js';
import { verifySignature } from './frost.js';
import { groupSlot, nobleGroup, wideHashToScalar, type Group, type Point } from './group.js';
import { checkDigest, decodeCompact, decodeDer, verifyEcdsa, type EcdsaCurveName } from './ecdsa/signature.js';

/** FROST (RFC 9591) signing suites. */
export const SIGNING_SUITES = ['ed25519', 'secp256k1', 'bip340', 'p256'] as const;
/** Threshold ECDSA suites (DKLs23, core/ecdsa/): standard ECDSA signatures. */
export const ECDSA_SUITES = ['ecdsa-secp256k1', 'ecdsa-p256'] as const;
export const KEM_SUITES = ['hpke-x25519', 'hpke-p256'] as const;
export type SigningSuiteId = (typeof SIGNING_SUITES)[number];
export type EcdsaSuiteId = (typeof ECDSA_SUITES)[number];
export type KemSuiteId = (typeof KEM_SUITES)[number];
export type SuiteId = SigningSuiteId | EcdsaSuiteId | KemSuiteId;

interface SuiteBase {
  readonly id: SuiteId;
  readonly group: Group;
  /** Domain-separation prefix for Tessera's own hashes (DKG proofs, DLEQ, transcripts) in this suite. */
  readonly contextString: string;
  /** The suite's standard public-key encoding of the group key (see the table in README.md). */
  publicKeyBytes(groupKey: Point): Uint8Array;
  /** Parse a public key in the suite's standard encoding back to a group element. */
  publicKeyFromBytes(bytes: Uint8Array): Point;
}

export interface SigningSuite extends SuiteBase {
  readonly kind: 'sign';
  /** The RFC 9591 ciphersuite name. */
  readonly frostName: string;
  /**
   * The noble FROST ciphersuite. Tessera signs with core/frost.ts over `group`; this one is the
   * reference the differential tests and the bench compare against.
   */
  readonly frost: ReturnType<() => FROST>;
  /** Verify a final signature under the suite's standard public key encoding (strict, over `group`). */
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
  /** Length of a final signature. */
  readonly signatureLength: number;
  /**
   * The ciphersuite hash H of RFC 9591 §6 (SHA-512 for ed25519, SHA-256 for the secp256k1, bip340 and
   * P-256 suites), used for H4 (msg) and H5 (com) when computing binding factors (§4.4).
   */
  readonly frostHash: (m: Uint8Array) => Uint8Array;
}

export interface KemSuite extends SuiteBase {
  readonly kind: 'kem';
  /** RFC 9180 §7.1 KEM identifier. */
  readonly kemId: number;
  /** Nenc: length of `enc` (equal to Npk for DHKEM). */
  readonly encLength: number;
  /** Ndh: length of the DH shared value. */
  readonly dhLength: number;
  /** Nsecret: length of the KEM shared secret. */
  readonly secretLength: number;
  /** The KDF hash of the DHKEM (HKDF-SHA256 for both suites here). */
  readonly kdfHash: typeof sha256;
  /**
   * Map `enc` (pkE) to the prime-order group element E such that DH(skR, pkE) = encode(skR·E) for the
   * scalar skR mod order. Rejects invalid encodings and elements whose DH would be all-zero.
   */
  encToPoint(enc: Uint8Array): Point;
  /** Encode a DH result point as RFC 9180 does (X25519 u-coordinate / P-256 x-coordinate). */
  dhBytes(p: Point): Uint8Array;
  /**
   * Turn a raw DHKEM private key (RFC 9180 §7.1.2 DeserializePrivateKey) into the scalar that is
   * shared: the clamped X25519 scalar mod L, or the P-256 scalar itself.
   */
  privateKeyToScalar(sk: Uint8Array): bigint;
}

/**
 * A threshold ECDSA suite: keys made by the same DKG as every suite (Shamir shares over the curve's
 * group) plus DKLs23's pairwise multiplication setup (core/ecdsa/setup.ts), and signed by DKLs23
 * (core/ecdsa/dkls23.ts). Signatures are standard ECDSA (SEC 1 §4.1.3), low-s, verified by OpenSSL,
 * WebCrypto, libsecp256k1 and every other ECDSA verifier.
 */
export interface EcdsaSuite extends SuiteBase {
  readonly id: EcdsaSuiteId;
  readonly kind: 'ecdsa';
  readonly curve: EcdsaCurveName;
  /** Length of the compact (IEEE P1363 r ‖ s) signature. */
  readonly signatureLength: 64;
  /**
   * The digest that is signed: SHA-256 of the message (FIPS 180-4; ES256, OpenSSL's `sha256` digest),
   * or, when `prehashed`, the message itself, which must then be a 16..64-byte digest (for example
   * Keccak-256 or double SHA-256, computed by the caller).
   */
  messageDigest(message: Uint8Array, prehashed?: boolean): Uint8Array;
  /**
   * SEC 1 §4.1.4 verification of a compact (64 bytes) or DER signature over `message` (hashed as
   * messageDigest does) under a SEC 1 public key. High s is accepted, as standard ECDSA verifiers do.
   */
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array, opts?: { prehashed?: boolean }): boolean;
}

export type Suite = SigningSuite | EcdsaSuite | KemSuite;

// ---------------------------------------------------------------------------------------------
// Groups

const edNoble = nobleGroup(ed25519.Point, {
  name: 'edwards25519',
  pointLength: 32,
  // RFC 9591 §6.1: H(m) = SHA-512(contextString || tag || m) as a little-endian integer mod L.
  hashToScalar: wideHashToScalar(sha512, ed25519.Point.Fn.ORDER, true),
  randomBytes,
});

const secpNoble = nobleGroup(secp256k1.Point, {
  name: 'secp256k1',
  pointLength: 33,
  // RFC 9591 §6.5: hash_to_field from RFC 9380 with expand_message_xmd(SHA-256), L = 48.
  hashToScalar: (dst, msg) => secp256k1_hasher.hashToScalar(msg, { DST: dst }),
  randomBytes,
});

const p256Noble = nobleGroup(p256.Point, {
  name: 'P-256',
  pointLength: 33,
  // RFC 9591 §6.4: hash_to_field from RFC 9380 with expand_message_xmd(SHA-256), L = 48.
  hashToScalar: (dst, msg) => p256_hasher.hashToScalar(msg, { DST: dst }),
  randomBytes,
});

/**
 * The group backends: one process-wide setting. edwards25519 (ed25519, hpke-x25519) and secp256k1
 * (secp256k1, bip340) forward to a backend chosen once at start-up (runtime/group-backend.ts installs
 * sodium-native / libsecp256k1 / tiny-secp256k1 adapters from core/backends/); P-256 (p256,
 * ecdsa-p256, hpke-p256) likewise, to node:crypto's ECDH (core/backends/p256-node.ts, noble points).
 * Until installGroupBackends is called, every group is the noble one.
 */
const edSlot = groupSlot(edNoble);
const secpSlot = groupSlot(secpNoble);
const p256Slot = groupSlot(p256Noble);
const edGroup = edSlot.group;
const secpGroup = secpSlot.group;
const p256Group = p256Slot.group;

/** The noble groups: the reference backends, whose scalar arithmetic and hash-to-scalar every backend reuses. */
export const NOBLE_GROUPS = Object.freeze({ edwards25519: edNoble, secp256k1: secpNoble, 'P-256': p256Noble });

export interface GroupBackends {
  edwards25519?: Group;
  secp256k1?: Group;
  'P-256'?: Group;
}

/**
 * Install group backends (the one hook; see runtime/group-backend.ts). Each must be a Group over the
 * same curve. Allowed only before the first point of that group is made (base, identity,
 * pointFromBytes, mulBase through any suite): afterwards it throws BadState, since existing points
 * belong to the old backend. Installing the backend already in place is a no-op.
 */
export function installGroupBackends(backends: GroupBackends): void {
  // Check all before changing any, so that a refused call changes nothing.
  const pairs = [
    [edSlot, backends.edwards25519],
    [secpSlot, backends.secp256k1],
    [p256Slot, backends['P-256']],
  ] as const;
  for (const [slot, g] of pairs) {
    if (g && g !== slot.backend) {
      if (g.name !== slot.group.name) throw new TesseraError(ErrorCode.BadInput, `group backend ${g.backend} is not a backend of ${slot.group.name}`);
      if (slot.sealed) slot.install(g); // throws BadState
    }
  }
  for (const [slot, g] of pairs) if (g) slot.install(g);
}

/** The backend of each group, by group name (e.g. {"edwards25519": "sodium-native", ...}): GET /v1/node. */
export function groupBackendNames(): { edwards25519: string; secp256k1: string; 'P-256': string } {
  return { edwards25519: edSlot.backend.backend, secp256k1: secpSlot.backend.backend, 'P-256': p256Slot.backend.backend };
}

type EdPoint = InstanceType<typeof ed25519.Point>;
type WPoint = InstanceType<typeof p256.Point>;
const asW = (p: Point) => p as unknown as WPoint;
const asPoint = (p: unknown) => p as Point;

function badPoint(what: string): TesseraError {
  return new TesseraError(ErrorCode.BadPoint, `${what}: not a valid public key`);
}

// ---------------------------------------------------------------------------------------------
// Signing suites

function frostSuite(
  id: SigningSuiteId,
  group: Group,
  frostName: string,
  frost: FROST,
  pk: Pick<SigningSuite, 'publicKeyBytes' | 'publicKeyFromBytes'>,
  signatureLength: number,
  frostHash: (m: Uint8Array) => Uint8Array,
): SigningSuite {
  return Object.freeze({
    id,
    kind: 'sign' as const,
    group,
    frostName,
    frost,
    frostHash,
    contextString: `TESSERA-v1-${frostName}`,
    signatureLength,
    ...pk,
    // Over the suite's Group (core/frost.ts: RFC 9591 / RFC 8032 / BIP-340 verification, strict), so a
    // native group backend speeds it up. Looked up at call time: the registry's own suite object.
    verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
      return verifySignature(getSigningSuite(id), signature, message, publicKey);
    },
  });
}

const compressed = (group: Group) => ({
  publicKeyBytes: (p: Point) => group.pointToBytes(p),
  publicKeyFromBytes: (b: Uint8Array) => group.pointFromBytes(b, 'public key'),
});

/** BIP-340 public keys: the 32-byte x coordinate; parsing is lift_x (the point with this x and even y). */
const xOnly = (group: Group) => ({
  publicKeyBytes: (p: Point) => group.pointToBytes(p).subarray(1),
  publicKeyFromBytes(b: Uint8Array) {
    if (!(b instanceof Uint8Array) || b.length !== 32) throw badPoint('x-only public key');
    const withPrefix = new Uint8Array(33);
    withPrefix[0] = 0x02;
    withPrefix.set(b, 1);
    return group.pointFromBytes(withPrefix, 'x-only public key');
  },
});

/**
 * `suite` with its arithmetic on another backend of the same group, one that is not installed
 * process-wide (the bench's and the tests' side-by-side comparisons of backends).
 */
export function signingSuiteOn(suite: SigningSuite, group: Group): SigningSuite {
  if (group.name !== suite.group.name) throw new TesseraError(ErrorCode.BadInput, `suite ${suite.id} is over ${suite.group.name}, not ${group.name}`);
  return Object.freeze({ ...suite, group, ...(suite.id === 'bip340' ? xOnly(group) : compressed(group)) });
}

export const ED25519: SigningSuite = frostSuite(
  'ed25519',
  edGroup,
  'FROST-ED25519-SHA512-v1',
  ed25519_FROST,
  compressed(edGroup),
  64,
  sha512,
);

export const SECP256K1: SigningSuite = frostSuite(
  'secp256k1',
  secpGroup,
  'FROST-secp256k1-SHA256-v1',
  secp256k1_FROST,
  compressed(secpGroup),
  65,
  sha256,
);

export const P256: SigningSuite = frostSuite(
  'p256',
  p256Group,
  'FROST-P256-SHA256-v1',
  p256_FROST,
  compressed(p256Group),
  65,
  sha256,
);

/**
 * BIP-340 through FROST over secp256k1 (noble's FROST-secp256k1-SHA256-TR-v1 without a TapTweak).
 * Shares are stored for the full group key; noble negates shares and nonces at signing time when the
 * group key or group commitment has odd y (BIP-340 "even y" convention). The public key is x-only.
 */
export const BIP340: SigningSuite = frostSuite(
  'bip340',
  secpGroup,
  'FROST-secp256k1-SHA256-TR-v1',
  schnorr_FROST,
  xOnly(secpGroup),
  64,
  sha256,
);

// ---------------------------------------------------------------------------------------------
// Threshold ECDSA suites (DKLs23)

function ecdsaSuite(id: EcdsaSuiteId, group: Group, curve: EcdsaCurveName): EcdsaSuite {
  const messageDigest = (message: Uint8Array, prehashed = false): Uint8Array => {
    ensure(message instanceof Uint8Array, ErrorCode.BadInput, 'message: expected bytes');
    return prehashed ? Uint8Array.from(checkDigest(message)) : sha256(message);
  };
  return Object.freeze({
    id,
    kind: 'ecdsa' as const,
    group,
    curve,
    contextString: `TESSERA-v1-ECDSA-${curve}`,
    signatureLength: 64 as const,
    ...compressed(group),
    messageDigest,
    verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array, opts: { prehashed?: boolean } = {}): boolean {
      try {
        const sig = signature.length === 64 ? decodeCompact(curve, signature) : decodeDer(curve, signature);
        return verifyEcdsa(sig, messageDigest(message, opts.prehashed === true), publicKey);
      } catch {
        return false;
      }
    },
  });
}

export const ECDSA_SECP256K1: EcdsaSuite = ecdsaSuite('ecdsa-secp256k1', secpGroup, 'secp256k1');
export const ECDSA_P256: EcdsaSuite = ecdsaSuite('ecdsa-p256', p256Group, 'P-256');

// ---------------------------------------------------------------------------------------------
// Decapsulation suites (RFC 9180 §4.1 DHKEM)

const P25519 = 2n ** 255n - 19n;
const modP = (a: bigint) => ((a % P25519) + P25519) % P25519;
const L = ed25519.Point.Fn.ORDER;
const INV8 = ed25519.Point.Fn.inv(8n);

export const HPKE_X25519: KemSuite = Object.freeze({
  id: 'hpke-x25519' as const,
  kind: 'kem' as const,
  group: edGroup,
  contextString: 'TESSERA-v1-DHKEM(X25519, HKDF-SHA256)',
  kemId: 0x0020,
  encLength: 32,
  dhLength: 32,
  secretLength: 32,
  kdfHash: sha256,
  /** RFC 7748 §5 public key: the Montgomery u-coordinate of the Edwards group key. */
  publicKeyBytes: (p: Point) => ed25519.utils.toMontgomery(edGroup.pointToBytes(p)),
  publicKeyFromBytes(b: Uint8Array): Point {
    return HPKE_X25519.encToPoint(b);
  },
  encToPoint(enc: Uint8Array): Point {
    if (!(enc instanceof Uint8Array) || enc.length !== 32) throw badPoint('enc');
    // RFC 7748 §5: mask the most significant bit of the final byte, then read u little-endian.
    const uBytes = Uint8Array.from(enc);
    uBytes[31]! &= 0x7f;
    const u = modP(bytesToNumberLE(uBytes));
    if (u === P25519 - 1n) throw badPoint('enc');
    // Birational map (RFC 7748 §4.1): y = (u - 1) / (u + 1). Both Edwards points ±(x, y) share u,
    // and X25519 depends on u only, so the sign of x does not matter.
    const y = modP((u - 1n) * ed25519.Point.Fp.inv(u + 1n));
    // A backend with its own projection (core/backends/sodium-ed25519.ts) does the rest natively.
    const project = edGroup.primeOrderComponent;
    if (project !== undefined) return project(numberToBytesLE(y, 32));
    let E: EdPoint;
    try {
      E = ed25519.Point.fromBytes(numberToBytesLE(y, 32));
    } catch {
      // u on the quadratic twist: not a point of curve25519, so no honest sender produced it.
      throw badPoint('enc');
    }
    // X25519 uses a clamped scalar (a multiple of 8), which kills the small-order component of E.
    // Projecting onto the prime-order subgroup, [8^-1 mod L]·[8]E, gives the same DH for skR mod L.
    const prime = E.clearCofactor().multiplyUnsafe(INV8);
    if (prime.is0()) throw new TesseraError(ErrorCode.BadPoint, 'enc: small-order point (all-zero DH)');
    // The same element in the representation of the edwards25519 backend in use (core/backends/).
    return edSlot.sealed && edSlot.backend === edNoble ? asPoint(prime) : edGroup.pointFromBytes(prime.toBytes(), 'enc');
  },
  dhBytes(p: Point): Uint8Array {
    return ed25519.utils.toMontgomery(edGroup.pointToBytes(p));
  },
  privateKeyToScalar(sk: Uint8Array): bigint {
    if (!(sk instanceof Uint8Array) || sk.length !== 32) {
      throw new TesseraError(ErrorCode.BadScalar, 'X25519 private key: expected 32 bytes');
    }
    // RFC 7748 §5 decodeScalar25519 (clamping), then reduce mod L.
    const k = Uint8Array.from(sk);
    k[0]! &= 248;
    k[31]! &= 127;
    k[31]! |= 64;
    const s = bytesToNumberLE(k) % L;
    k.fill(0);
    return s;
  },
});

export const HPKE_P256: KemSuite = Object.freeze({
  id: 'hpke-p256' as const,
  kind: 'kem' as const,
  group: p256Group,
  contextString: 'TESSERA-v1-DHKEM(P-256, HKDF-SHA256)',
  kemId: 0x0010,
  encLength: 65,
  dhLength: 32,
  secretLength: 32,
  kdfHash: sha256,
  /** RFC 9180 §7.1.1 SerializePublicKey: the 65-byte uncompressed SEC1 encoding. */
  publicKeyBytes: (p: Point) => asW(p).toBytes(false),
  publicKeyFromBytes(b: Uint8Array): Point {
    return HPKE_P256.encToPoint(b);
  },
  encToPoint(enc: Uint8Array): Point {
    if (!(enc instanceof Uint8Array) || enc.length !== 65 || enc[0] !== 0x04) throw badPoint('enc');
    let E: WPoint;
    try {
      E = p256.Point.fromBytes(enc);
      E.assertValidity();
    } catch {
      throw badPoint('enc');
    }
    if (E.is0()) throw badPoint('enc');
    return asPoint(E);
  },
  /** RFC 9180 §7.1.1: the DH output is the 32-byte x-coordinate. */
  dhBytes: (p: Point) => asW(p).toBytes(true).subarray(1),
  privateKeyToScalar(sk: Uint8Array): bigint {
    return p256Group.scalarFromBytes(sk, 'P-256 private key');
  },
});

// ---------------------------------------------------------------------------------------------
// Registry

const REGISTRY: Readonly<Record<SuiteId, Suite>> = Object.freeze({
  ed25519: ED25519,
  secp256k1: SECP256K1,
  bip340: BIP340,
  p256: P256,
  'ecdsa-secp256k1': ECDSA_SECP256K1,
  'ecdsa-p256': ECDSA_P256,
  'hpke-x25519': HPKE_X25519,
  'hpke-p256': HPKE_P256,
});

export const SUITE_IDS = Object.freeze(Object.keys(REGISTRY)) as readonly SuiteId[];

/**
 * What each suite's signatures (or decapsulations) are, as key info, the README table and the CLI
 * (sdk/cli/choices.ts, checked equal at compile time) say it. The secp256k1 and p256 suites are FROST
 * Schnorr (RFC 9591): OpenSSL, WebCrypto, JWT ES256, X.509 and other ECDSA verifiers reject them.
 */
export const SUITE_SCHEMES = {
  ed25519: 'FROST Ed25519 (RFC 9591), verifies as RFC 8032 Ed25519',
  secp256k1: 'FROST Schnorr (RFC 9591), not ECDSA',
  bip340: 'FROST Schnorr (RFC 9591), verifies as BIP-340 Schnorr',
  p256: 'FROST Schnorr (RFC 9591), not ECDSA',
  'ecdsa-secp256k1': 'threshold ECDSA (DKLs23), standard secp256k1 ECDSA',
  'ecdsa-p256': 'threshold ECDSA (DKLs23), standard P-256 ECDSA (ES256)',
  'hpke-x25519': 'threshold decapsulation, RFC 9180 DHKEM(X25519)',
  'hpke-p256': 'threshold decapsulation, RFC 9180 DHKEM(P-256)',
} as const satisfies Record<SuiteId, string>;

/** The scheme of a suite (SUITE_SCHEMES). */
export function suiteScheme(id: SuiteId): string {
  return SUITE_SCHEMES[id];
}

export function isSuiteId(s: unknown): s is SuiteId {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(REGISTRY, s);
}

export function getSuite(id: unknown): Suite {
  if (!isSuiteId(id)) throw new TesseraError(ErrorCode.UnknownSuite, `unknown suite ${JSON.stringify(String(id)).slice(0, 40)}`);
  return REGISTRY[id];
}

/** A FROST signing suite (RFC 9591). An ECDSA suite is refused here: it signs through getEcdsaSuite. */
export function getSigningSuite(id: unknown): SigningSuite {
  const s = getSuite(id);
  if (s.kind === 'ecdsa') throw new TesseraError(ErrorCode.UnknownSuite, `suite ${s.id} signs with threshold ECDSA (DKLs23), not FROST`);
  if (s.kind !== 'sign') throw new TesseraError(ErrorCode.UnknownSuite, `suite ${s.id} cannot sign`);
  return s;
}

export function getEcdsaSuite(id: unknown): EcdsaSuite {
  const s = getSuite(id);
  if (s.kind !== 'ecdsa') throw new TesseraError(ErrorCode.UnknownSuite, `suite ${s.id} is not a threshold ECDSA suite`);
  return s;
}

/** True for the suites that sign (FROST or ECDSA), false for decapsulation suites. */
export function isSignatureSuite(s: Suite): s is SigningSuite | EcdsaSuite {
  return s.kind === 'sign' || s.kind === 'ecdsa';
}

export function getKemSuite(id: unknown): KemSuite {
  const s = getSuite(id);
  if (s.kind !== 'kem') throw new TesseraError(ErrorCode.UnknownSuite, `suite ${s.id} cannot decapsulate`);
  return s;
}
