/**
 * Non-hardened child keys of a threshold key, derived from public data only (issue 12, item 2).
 *
 * secp256k1 and bip340 keys follow BIP-32 CKDpub ("Public parent key → public child key"):
 *   I = HMAC-SHA512(c_par, serP(K_par) || ser32(i)),  t_i = parse256(I_L),  K_i = K_par + t_i·G,  c_i = I_R.
 * A path is a sequence of such steps, so the child of a path is K + t·G with t the sum of the steps'
 * tweaks. The threshold key's secret is Σ λ_j·s_j; adding the public t to every share s_j (and t·G to
 * every verifying share and to the group key) gives shares of s + t, because the Lagrange coefficients
 * of any signer set sum to 1. Each node adds t itself at signing time: no secret is exchanged, and the
 * stored shares never change. Hardened indices (i ≥ 2^31) need the parent private key in the HMAC,
 * which no node holds, so they are refused.
 *
 * ed25519 keys get the same additive derivation on the raw scalar, with the tweak made by the group's
 * own hash-to-scalar from I_L (no bias from reducing 256 bits mod ℓ). This is Tessera's scheme: the
 * child keys are NOT RFC 8032 keys derived from a seed (a threshold key never had a seed), not SLIP-10
 * (which for ed25519 has hardened steps only) and not BIP32-Ed25519.
 *
 * The chain code is made once at key generation from the DKG's joint transcript (keygenChainCode), so
 * every node computes the same one and no single node picks it; refresh keeps it (the group key stays).
 *
 * BIP-32 serialisation ("Serialization format"): an xpub for the secp256k1-based keys, with the
 * mainnet version bytes 0x0488B21E; ed25519 keys expose the chain code and public key instead.
 */
import { hmac } from '@noble/hashes/hmac.js';
import { ripemd160 } from '@noble/hashes/legacy.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { createBase58check } from '@scure/base';
import { concatBytes, framed, i2osp, utf8ToBytes, zeroize } from './bytes.js';
import { partyIndices } from './committee.js';
import { ErrorCode, TesseraError, ensure } from './errors.js';
import type { Point } from './group.js';
import { getSuite, type EcdsaSuite, type SigningSuite, type SuiteId } from './suites.js';
import type { KeyShare, PublicKeyPackage } from './types.js';

export const CHAIN_CODE_LENGTH = 32;
/** BIP-32: the depth is one byte. */
export const MAX_PATH_DEPTH = 255;
const HARDENED = 0x80000000;
/** BIP-32 mainnet public version bytes ("xpub"). */
const XPUB_VERSION = 0x0488b21e;
const base58check = createBase58check(sha256);

/** The suites with child keys: BIP-32 CKDpub for the secp256k1-based ones, additive derivation for ed25519. */
export const DERIVABLE_SUITES: readonly SuiteId[] = ['secp256k1', 'bip340', 'ecdsa-secp256k1', 'ed25519'];
const BIP32_SUITES: readonly string[] = ['secp256k1', 'bip340', 'ecdsa-secp256k1'];

/** A suite whose keys sign (FROST or threshold ECDSA): what derivation works on. */
export type DerivableSuite = SigningSuite | EcdsaSuite;

/** The suite of `id` if its keys sign (FROST or ECDSA); BAD_PARAMETERS for a decapsulation suite. */
export function derivableSuite(id: string): DerivableSuite {
  const suite = getSuite(id);
  ensure(suite.kind !== 'kem', ErrorCode.BadParameters, `suite ${suite.id} has no child keys: derivation paths are offered for ${DERIVABLE_SUITES.join(', ')}`);
  return suite;
}

export function isDerivableSuite(id: string): boolean {
  return (DERIVABLE_SUITES as readonly string[]).includes(id);
}

function requireDerivable(suite: DerivableSuite): void {
  ensure(
    isDerivableSuite(suite.id),
    ErrorCode.BadParameters,
    `suite ${suite.id} has no child keys: derivation paths are offered for ${DERIVABLE_SUITES.join(', ')}`,
  );
}

/**
 * The chain code of a new key: a labelled SHA-256 of the DKG's agreed public result (every Feldman
 * commitment of the joint polynomial and every verifying share, which every node confirmed before the
 * key was released), the session id and the run id that every player contributed to. No single node
 * chooses it: the joint commitments mix every dealer's randomness. It is not derivable from the group
 * key alone, so publishing a public key does not publish its children (only the xpub does).
 */
export function keygenChainCode(pkg: PublicKeyPackage, sessionId: Uint8Array, runId: Uint8Array): Uint8Array {
  ensure(sessionId instanceof Uint8Array && runId instanceof Uint8Array, ErrorCode.BadInput, 'chain code: session and run ids are bytes');
  return sha256(
    framed(
      utf8ToBytes('tessera/bip32-chain-code/v1'),
      utf8ToBytes(pkg.suite),
      sessionId,
      runId,
      i2osp(pkg.threshold, 1),
      i2osp(pkg.parties, 1),
      ...pkg.commitments,
      ...pkg.verifyingShares,
      // The committee, only when the package names one (core/committee.ts), so that every chain code of
      // a key on nodes 1..n is unchanged.
      ...(pkg.indices !== undefined ? [utf8ToBytes('indices'), Uint8Array.from(pkg.indices)] : []),
    ),
  );
}

/**
 * Parse a BIP-32 path of non-hardened steps: "m", "m/0", "m/0/5" (decimal indices 0..2^31-1, at most
 * 255 steps). Hardened steps (0', 0h, 0H) and anything else malformed are refused with a clear error.
 */
export function parseDerivationPath(path: unknown): number[] {
  ensure(typeof path === 'string', ErrorCode.BadParameters, 'path: expected a string such as m/0/5');
  const shown = path.replace(/[^\x20-\x7e]/g, '?').slice(0, 40);
  ensure(path.length <= 4 + MAX_PATH_DEPTH * 11, ErrorCode.BadParameters, 'path: too long');
  const parts = path.split('/');
  ensure(parts[0] === 'm', ErrorCode.BadParameters, `path "${shown}": expected m followed by /index steps, such as m/0/5`);
  const steps = parts.slice(1);
  ensure(steps.length <= MAX_PATH_DEPTH, ErrorCode.BadParameters, `path: at most ${MAX_PATH_DEPTH} steps`);
  return steps.map((s) => {
    if (/^\d+['hH]$/.test(s)) {
      throw new TesseraError(
        ErrorCode.BadParameters,
        `path "${shown}": hardened step ${s} is not supported; a hardened child needs the parent private key, which no node holds (use non-hardened steps such as m/0/5)`,
      );
    }
    ensure(/^(0|[1-9]\d{0,9})$/.test(s), ErrorCode.BadParameters, `path "${shown}": step "${s.slice(0, 12)}" is not a decimal index 0..2147483647`);
    const i = Number(s);
    ensure(i < HARDENED, ErrorCode.BadParameters, `path "${shown}": index ${i} is hardened (>= 2^31); only non-hardened steps are supported`);
    return i;
  });
}

/** The canonical text of a path ("m/0/5"), as bound into the session digest. */
export function formatDerivationPath(steps: readonly number[]): string {
  return ['m', ...steps.map(String)].join('/');
}

export interface Derivation {
  readonly suite: DerivableSuite;
  readonly steps: readonly number[];
  /** The sum of the steps' tweaks, mod the group order (public). */
  readonly tweak: bigint;
  /** The child key K + tweak·G (for bip340 with whatever y it has; signing lifts it to even y). */
  readonly childKey: Point;
  readonly chainCode: Uint8Array;
  /** The key one step above the child (the parent key of the last step), for the xpub's fingerprint. */
  readonly parentKey: Point;
}

/** BIP-32 CKDpub along `steps` from `groupKey` and `chainCode` (ed25519: the additive analogue, module comment). */
export function deriveChild(suiteOrId: DerivableSuite | string, groupKey: Point, chainCode: Uint8Array, steps: readonly number[]): Derivation {
  const suite = typeof suiteOrId === 'string' ? derivableSuite(suiteOrId) : suiteOrId;
  requireDerivable(suite);
  ensure(chainCode instanceof Uint8Array && chainCode.length === CHAIN_CODE_LENGTH, ErrorCode.BadInput, 'chain code: expected 32 bytes');
  ensure(Array.isArray(steps) && steps.length <= MAX_PATH_DEPTH, ErrorCode.BadParameters, 'path: too many steps');
  const { group } = suite;
  const bip32 = BIP32_SUITES.includes(suite.id);
  let key = groupKey;
  let parent = groupKey;
  let code = Uint8Array.from(chainCode);
  let tweak = 0n;
  for (const i of steps) {
    ensure(Number.isSafeInteger(i) && i >= 0 && i < HARDENED, ErrorCode.BadParameters, 'path: only non-hardened indices 0..2^31-1');
    // BIP-32 CKDpub: serP(K_par) is the 33-byte compressed point (pointToBytes of the secp256k1 group).
    const I = hmac(sha512, code, concatBytes(group.pointToBytes(key), i2osp(i, 4)));
    const IL = I.subarray(0, 32);
    let t: bigint;
    if (bip32) {
      t = bytesToNumberBE(IL);
      // BIP-32: "In case parse256(I_L) >= n or K_i is the point at infinity, the resulting key is invalid".
      ensure(t < group.order, ErrorCode.BadParameters, `path: index ${i} gives an invalid BIP-32 child (probability below 2^-127); use another index`);
    } else {
      t = group.hashToScalar(utf8ToBytes('TESSERA-v1-ed25519-additive-derivation'), IL);
    }
    const next = group.addPoints(key, group.mulBase(t));
    ensure(!group.isIdentity(next), ErrorCode.BadParameters, `path: index ${i} gives an invalid child key; use another index`);
    parent = key;
    key = next;
    tweak = group.add(tweak, t);
    code = I.slice(32);
    zeroize(I);
  }
  return Object.freeze({ suite, steps: Object.freeze([...steps]), tweak, childKey: key, chainCode: code, parentKey: parent });
}

/** The group key of a public key package (its constant-term commitment). */
export function packageGroupKey(suite: DerivableSuite, pkg: PublicKeyPackage): Point {
  ensure(Array.isArray(pkg.commitments) && pkg.commitments.length > 0, ErrorCode.BadInput, 'public key package: no commitments');
  return suite.group.pointFromBytes(pkg.commitments[0]!, 'group key');
}

/**
 * The public key package of the child: t·G added to the group key (commitment 0) and to every
 * verifying share; the other commitments stay (the child's polynomial is f(x) + t).
 */
export function derivePublicPackage(suite: DerivableSuite, pkg: PublicKeyPackage, tweak: bigint): PublicKeyPackage {
  const { group } = suite;
  const T = group.mulBase(tweak);
  const shift = (b: Uint8Array, what: string) => group.pointToBytes(group.addPoints(group.pointFromBytes(b, what), T));
  const committee = partyIndices(pkg);
  return {
    suite: pkg.suite,
    threshold: pkg.threshold,
    parties: pkg.parties,
    ...(pkg.indices !== undefined ? { indices: [...pkg.indices] } : {}),
    epoch: pkg.epoch,
    commitments: pkg.commitments.map((c, k) => (k === 0 ? shift(c, 'group key') : Uint8Array.from(c))),
    verifyingShares: pkg.verifyingShares.map((y, k) => shift(y, `verifying share of party ${committee[k]}`)),
  };
}

/**
 * A node's key material for signing under the child of `steps`: its share plus the public tweak, and
 * the child package. A fresh copy: the caller wipes `secret.value` (and `secret.pairwise`) when done
 * (the stored share is untouched). A threshold ECDSA key's pairwise setup does not depend on the share,
 * so the child signs with a copy of the parent's.
 */
export function deriveKeyShare(key: KeyShare, chainCode: Uint8Array, steps: readonly number[]): KeyShare {
  const suite = derivableSuite(key.publicKey.suite);
  const d = deriveChild(suite, packageGroupKey(suite, key.publicKey), chainCode, steps);
  const { group } = suite;
  const s = group.scalarFromBytes(key.secret.value, 'share');
  return {
    publicKey: derivePublicPackage(suite, key.publicKey, d.tweak),
    secret: {
      suite: key.secret.suite,
      index: key.secret.index,
      epoch: key.secret.epoch,
      value: group.scalarToBytes(group.add(s, d.tweak)),
      ...(key.secret.pairwise !== undefined ? { pairwise: Uint8Array.from(key.secret.pairwise) } : {}),
    },
  };
}

/** BIP-32 "Serialization format" of an extended public key: base58check(version ‖ depth ‖ fingerprint ‖ child ‖ c ‖ serP(K)). */
export function serializeXpub(d: Derivation): string {
  ensure(BIP32_SUITES.includes(d.suite.id), ErrorCode.BadParameters, `suite ${d.suite.id} has no xpub (BIP-32 is secp256k1 only); use the chain code and public key`);
  const { group } = d.suite;
  const depth = d.steps.length;
  // The parent's fingerprint: the first 4 bytes of HASH160(serP(K_par)); zero for the master key.
  const fingerprint = depth === 0 ? new Uint8Array(4) : ripemd160(sha256(group.pointToBytes(d.parentKey))).subarray(0, 4);
  const child = depth === 0 ? 0 : d.steps[depth - 1]!;
  return base58check.encode(concatBytes(i2osp(XPUB_VERSION, 4), i2osp(depth, 1), fingerprint, i2osp(child, 4), d.chainCode, group.pointToBytes(d.childKey)));
}

/** What key info and public-key --path show about a key's (or child's) derivation. */
export interface DerivationInfo {
  /** The path, "m" for the key itself. */
  readonly path: string;
  /** The suite's standard public-key encoding of the (child) key, hex. */
  readonly publicKey: Uint8Array;
  readonly chainCode: Uint8Array;
  /** secp256k1 and bip340 only. */
  readonly xpub?: string;
}

export function derivationInfo(suiteId: string, pkg: PublicKeyPackage, chainCode: Uint8Array, steps: readonly number[] = []): DerivationInfo {
  const suite = derivableSuite(suiteId);
  const d = deriveChild(suite, packageGroupKey(suite, pkg), chainCode, steps);
  return {
    path: formatDerivationPath(steps),
    publicKey: suite.publicKeyBytes(d.childKey),
    chainCode: d.chainCode,
    ...(BIP32_SUITES.includes(suite.id) ? { xpub: serializeXpub(d) } : {}),
  };
}
