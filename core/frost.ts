/**
 * The FROST algebra of RFC 9591 as plain functions over the suite's `Group` (core/group.ts) and the
 * suite's hashes, so that any group backend (noble, libsodium, libsecp256k1) runs it.
 *
 * Validate once: public inputs are decoded and validated once and the algebra works on decoded
 * points afterwards.
 *   - decodePoint: RFC 9591 §3.1 DeserializeElement, remembered per byte array. core/wire.ts records
 *     every element it validates (rememberPoint), so a commitment received from the wire is not
 *     decoded again by the signing code.
 *   - decodePackage: a PublicKeyPackage decoded once, cached per package object (and re-checked
 *     against the bytes it was decoded from, so a changed package is never served stale).
 *   - decodeCommitmentList, signingContext: the commitment list, binding factors (§4.4), group
 *     commitment (§4.5) and challenge (§4.6) computed once per signing and shared by the share
 *     computation (§5.2), share verification (§5.4) and aggregation (§5.3).
 *
 * Aggregation is aggregate-first (aggregate): sum the shares and verify the signature; only when it
 * fails is every share verified (§5.4) to name the bad signers.
 *
 * Suites. The challenge H2 differs per suite: ed25519 SHA-512(R || PK || m) mod L with no context
 * string (RFC 9591 §6.1, RFC 8032 §5.1.7); secp256k1 and P-256 hash_to_field with DST
 * contextString || "chal" (§6.5, §6.4); bip340 the BIP-340 tagged hash "BIP0340/challenge" over the
 * x-only R and PK (FROST-secp256k1-SHA256-TR-v1, as @noble/curves' schnorr_FROST, without TapTweak).
 * bip340 keeps BIP-340's even-y rule: the package stores the group key with whatever y it has; when
 * it is odd, the key, every share and every verifying share are negated at signing time; when the
 * group commitment R has odd y, every signer negates its nonces (and share checks negate the
 * commitment share D_i + ρ_i·E_i). The signature is x(R) || z, a plain BIP-340 signature under the
 * x-only group key.
 *
 * Secrets: nonce and share encodings handed out or taken in are Uint8Arrays the callers wipe; the
 * scalars derived from them are bigints, which JavaScript cannot wipe (they live until collected).
 * Secret-dependent group operations use Group.mulBase (constant-time); msm (variable-time) only ever
 * sees public values. Scalar arithmetic is the Group's bigint arithmetic (noble's field), which is
 * not constant-time in JavaScript, as in @noble/curves' own FROST.
 */
import { bytesToNumberBE, bytesToNumberLE } from '@noble/curves/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { concatBytes, equalBytes, toHex, utf8ToBytes, zeroize } from './bytes.js';
import { ErrorCode, TesseraError, ensure } from './errors.js';
import type { Group, Point } from './group.js';
import type { SignCommitMsg } from './messages.js';
import { isParty, partyIndices, partyPosition } from './committee.js';
import { checkPackageCommittee } from './shamir.js';
import type { SigningSuite } from './suites.js';
import type { PublicKeyPackage } from './types.js';

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;

// ---------------------------------------------------------------------------------------------
// Validated elements, remembered per byte array

interface KnownPoint {
  readonly group: Group;
  /** A private copy of the encoding: a later change to the caller's array is detected. */
  readonly bytes: Uint8Array;
  readonly point: Point;
}

const KNOWN_POINTS = new WeakMap<Uint8Array, KnownPoint>();

/**
 * Record that `bytes` is the canonical encoding of `point`, an element of `group` that passed
 * DeserializeElement (RFC 9591 §3.1) or that this party computed itself (never the identity).
 * Only core/ calls this: core/wire.ts for every element it validated, the signing code for its
 * own commitments.
 */
export function rememberPoint(group: Group, bytes: Uint8Array, point: Point): void {
  KNOWN_POINTS.set(bytes, { group, bytes: Uint8Array.from(bytes), point });
}

/** The element remembered for these very bytes (same array, same group, same content), if any. */
export function knownPoint(group: Group, bytes: Uint8Array): Point | undefined {
  const k = bytes instanceof Uint8Array ? KNOWN_POINTS.get(bytes) : undefined;
  return k !== undefined && k.group === group && equalBytes(k.bytes, bytes) ? k.point : undefined;
}

/**
 * RFC 9591 §3.1 DeserializeElement (group.pointFromBytes: canonical, on the curve, not the identity,
 * in the prime-order subgroup), done at most once per byte array: a remembered array is not decoded
 * again. Throws BadPoint naming `what`.
 */
export function decodePoint(group: Group, bytes: Uint8Array, what: string): Point {
  const known = knownPoint(group, bytes);
  if (known !== undefined) return known;
  const p = group.pointFromBytes(bytes, what);
  rememberPoint(group, bytes, p);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Hashes (RFC 9591 §6)

interface Prefixes {
  readonly rho: Uint8Array;
  readonly chal: Uint8Array;
  readonly nonce: Uint8Array;
  readonly msg: Uint8Array;
  readonly com: Uint8Array;
}

const PREFIXES = new Map<string, Prefixes>();

/** contextString || tag for H1 (rho), H2 (chal), H3 (nonce), H4 (msg), H5 (com); contextString = the suite name. */
function prefixes(suite: SigningSuite): Prefixes {
  let p = PREFIXES.get(suite.frostName);
  if (p === undefined) {
    const ctx = suite.frostName;
    p = Object.freeze({
      rho: utf8ToBytes(ctx + 'rho'),
      chal: utf8ToBytes(ctx + 'chal'),
      nonce: utf8ToBytes(ctx + 'nonce'),
      msg: utf8ToBytes(ctx + 'msg'),
      com: utf8ToBytes(ctx + 'com'),
    });
    PREFIXES.set(ctx, p);
  }
  return p;
}

/** H1: hash to scalar with DST contextString || "rho" (binding factors, §4.4). */
const H1 = (suite: SigningSuite, m: Uint8Array): bigint => suite.group.hashToScalar(prefixes(suite).rho, m);
/** H3: hash to scalar with DST contextString || "nonce" (nonce_generate, §4.1). */
const H3 = (suite: SigningSuite, m: Uint8Array): bigint => suite.group.hashToScalar(prefixes(suite).nonce, m);
/** H4: H(contextString || "msg" || m). */
const H4 = (suite: SigningSuite, m: Uint8Array): Uint8Array => suite.frostHash(concatBytes(prefixes(suite).msg, m));
/** H5: H(contextString || "com" || m). */
const H5 = (suite: SigningSuite, m: Uint8Array): Uint8Array => suite.frostHash(concatBytes(prefixes(suite).com, m));

const BIP340_CHALLENGE_TAG = (() => {
  const t = sha256(utf8ToBytes('BIP0340/challenge'));
  return concatBytes(t, t);
})();

/** The x-only encoding of a secp256k1 element (BIP-340 bytes(P)). */
const xOnly = (group: Group, p: Point): Uint8Array => group.pointToBytes(p).subarray(1);

/** Whether a secp256k1 element has even y (its SEC1 compressed prefix is 0x02). */
const hasEvenY = (group: Group, p: Point): boolean => group.pointToBytes(p)[0] === 0x02;

/**
 * RFC 9591 §4.6 compute_challenge: c = H2(SerializeElement(R) || SerializeElement(PK) || msg), with
 * the suite's H2 (module comment). For bip340, R and PK are used x-only (the even-y lift of R).
 */
export function challenge(suite: SigningSuite, R: Point, PK: Point, message: Uint8Array): bigint {
  const { group } = suite;
  switch (suite.id) {
    case 'ed25519':
      // RFC 9591 §6.1 H2(m) = SHA-512(m) with no context string, little-endian, mod L (RFC 8032 §5.1.7).
      return group.reduce(bytesToNumberLE(suite.frostHash(concatBytes(group.pointToBytes(R), group.pointToBytes(PK), message))));
    case 'bip340':
      // BIP-340: e = int(hash_BIP0340/challenge(bytes(R) || bytes(P) || m)) mod n.
      return group.reduce(bytesToNumberBE(sha256(concatBytes(BIP340_CHALLENGE_TAG, xOnly(group, R), xOnly(group, PK), message))));
    default:
      // RFC 9591 §6.4 / §6.5 H2: hash_to_field (RFC 9380) with DST contextString || "chal".
      return group.hashToScalar(prefixes(suite).chal, concatBytes(group.pointToBytes(R), group.pointToBytes(PK), message));
  }
}

// ---------------------------------------------------------------------------------------------
// The public key package, decoded once

/** A PublicKeyPackage decoded and validated (RFC 9591 §3.1 for every element). Shared: never modify. */
export interface DecodedPackage {
  readonly suite: SigningSuite;
  /** The group the elements were decoded with (suite.group at the time). */
  readonly group: Group;
  readonly threshold: number;
  readonly parties: number;
  /** The committee as the package gives it (core/committee.ts): absent means 1..parties. */
  readonly indices?: readonly number[];
  readonly epoch: number;
  /** Feldman commitments; [0] is the group key as stored. */
  readonly commitments: readonly Point[];
  /** verifyingShares[k] = share_i·G as stored, for party i = partyIndices(pkg)[k] (verifyingShareOf). */
  readonly verifyingShares: readonly Point[];
  readonly groupKey: Point;
  /** bip340: the stored group key has odd y, so the key, shares and verifying shares are negated when signing. */
  readonly keyNegated: boolean;
  /** The key signatures verify under: the group key, or for bip340 its even-y form. */
  readonly signingKey: Point;
  /** SerializeElement(signingKey), the first part of every binding-factor input (§4.4). */
  readonly signingKeyBytes: Uint8Array;
  /** The suite's standard public-key encoding of the group key (ed25519 32, bip340 x-only 32, SEC1 33). */
  readonly publicKey: Uint8Array;
  /**
   * λ_i (§4.2) by signer set and index, filled as signings need them: public values that cost a field
   * inversion each, while a key signs with few signer sets. Bounded (MAX_LAMBDAS; cleared when full).
   */
  readonly lambdas: Map<string, bigint>;
}

const MAX_LAMBDAS = 1024;

interface PackageEntry {
  readonly decoded: DecodedPackage;
  readonly commitments: readonly Uint8Array[];
  readonly verifyingShares: readonly Uint8Array[];
}

const PACKAGES = new WeakMap<PublicKeyPackage, PackageEntry>();

/** Two committees (core/types.ts PublicKeyPackage.indices) are the same list, or both absent. */
function sameCommittee(a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return Array.isArray(b) && a.length === b.length && a.every((i, k) => i === b[k]);
}

function sameBytes(refs: readonly Uint8Array[], copies: readonly Uint8Array[]): boolean {
  if (refs.length !== copies.length) return false;
  for (let k = 0; k < refs.length; k++) if (!(refs[k] instanceof Uint8Array) || !equalBytes(refs[k]!, copies[k]!)) return false;
  return true;
}

/**
 * Check and decode a public key package for signing: suite, threshold and party count, epoch, the
 * commitment and verifying-share counts, then every element (BadPoint naming it). Cached per package
 * object: callers that keep their key records as stable objects decode each package once.
 */
export function decodePackage(suite: SigningSuite, pkg: PublicKeyPackage): DecodedPackage {
  ensure(isObject(suite) && suite.kind === 'sign', ErrorCode.UnknownSuite, 'not a signing suite');
  ensure(isObject(pkg), ErrorCode.BadInput, 'public key package: expected an object');
  ensure(pkg.suite === suite.id, ErrorCode.UnknownSuite, `public key package is for suite ${String(pkg.suite)}, not ${suite.id}`);
  const { group } = suite;
  const hit = PACKAGES.get(pkg);
  if (
    hit !== undefined &&
    hit.decoded.suite === suite &&
    hit.decoded.group === group &&
    hit.decoded.threshold === pkg.threshold &&
    hit.decoded.parties === pkg.parties &&
    sameCommittee(hit.decoded.indices, pkg.indices) &&
    hit.decoded.epoch === pkg.epoch &&
    Array.isArray(pkg.commitments) &&
    Array.isArray(pkg.verifyingShares) &&
    sameBytes(pkg.commitments, hit.commitments) &&
    sameBytes(pkg.verifyingShares, hit.verifyingShares)
  ) {
    return hit.decoded;
  }
  checkPackageCommittee(pkg);
  ensure(Number.isSafeInteger(pkg.epoch) && pkg.epoch >= 0, ErrorCode.BadInput, 'public key package: bad epoch');
  ensure(
    Array.isArray(pkg.commitments) && pkg.commitments.length === pkg.threshold,
    ErrorCode.BadInput,
    `public key package: expected ${pkg.threshold} commitments`,
  );
  ensure(
    Array.isArray(pkg.verifyingShares) && pkg.verifyingShares.length === pkg.parties,
    ErrorCode.BadInput,
    `public key package: expected ${pkg.parties} verifying shares`,
  );
  // RFC 9591 §3.1 DeserializeElement for every public element.
  const commitments = Object.freeze(pkg.commitments.map((c, k) => decodePoint(group, c, `commitment[${k}]`)));
  const committee = partyIndices(pkg);
  const verifyingShares = Object.freeze(pkg.verifyingShares.map((y, k) => decodePoint(group, y, `verifying share of party ${committee[k]}`)));
  const groupKey = commitments[0]!;
  const keyNegated = suite.id === 'bip340' && !hasEvenY(group, groupKey);
  const signingKey = keyNegated ? group.negPoint(groupKey) : groupKey;
  const decoded: DecodedPackage = Object.freeze({
    suite,
    group,
    threshold: pkg.threshold,
    parties: pkg.parties,
    ...(pkg.indices !== undefined ? { indices: Object.freeze([...pkg.indices]) } : {}),
    epoch: pkg.epoch,
    commitments,
    verifyingShares,
    groupKey,
    keyNegated,
    signingKey,
    signingKeyBytes: group.pointToBytes(signingKey),
    publicKey: suite.publicKeyBytes(groupKey),
    lambdas: new Map(),
  });
  PACKAGES.set(pkg, {
    decoded,
    commitments: pkg.commitments.map((c) => Uint8Array.from(c)),
    verifyingShares: pkg.verifyingShares.map((y) => Uint8Array.from(y)),
  });
  return decoded;
}

// ---------------------------------------------------------------------------------------------
// Round 1: nonces and commitments (RFC 9591 §4.1, §5.1)

/** An rng: n fresh random bytes. Tests inject one to replay the RFC 9591 vectors. */
export type Rng = (n: number) => Uint8Array;

/**
 * RFC 9591 §4.1 nonce_generate(secret): H3(random_bytes(32) || SerializeScalar(secret)). `secret`
 * is the canonical encoding of the share. A zero nonce (probability about 2^-252) is drawn again:
 * its commitment would be the identity, which has no encoding (§3.1).
 */
export function nonceGenerate(suite: SigningSuite, secret: Uint8Array, rng: Rng = suite.group.randomBytes ?? randomBytes): bigint {
  for (;;) {
    const random = rng(32);
    ensure(random instanceof Uint8Array && random.length === 32, ErrorCode.BadInput, 'rng: expected 32 bytes');
    const input = concatBytes(random, secret);
    try {
      const k = H3(suite, input);
      if (k !== 0n) return k;
    } finally {
      zeroize(random, input);
    }
  }
}

/** A signer's round-1 output: secret nonces (wipe them) and the public commitments. */
export interface Commitment {
  /** SerializeScalar(hiding_nonce). Secret: wipe after use. */
  readonly hidingNonce: Uint8Array;
  /** SerializeScalar(binding_nonce). Secret: wipe after use. */
  readonly bindingNonce: Uint8Array;
  /** The commitments D = hiding_nonce·G and E = binding_nonce·G, encoded. */
  readonly commit: SignCommitMsg;
  readonly hiding: Point;
  readonly binding: Point;
}

/**
 * RFC 9591 §5.1 commit: hiding then binding nonce (each from rng(32), §4.1) and their commitments,
 * computed with the constant-time base multiplication. `secret` is SerializeScalar(share), checked
 * by the caller. The commitment encodings are remembered as validated elements.
 */
export function commit(suite: SigningSuite, secret: Uint8Array, rng?: Rng): Commitment {
  const { group } = suite;
  // Without an injected rng, both nonces' random_bytes(32) come from one 64-byte CSPRNG draw (one call
  // instead of two; a call costs as much as the bytes), handed out in order and wiped after.
  const csprng = group.randomBytes ?? randomBytes;
  const drawn = rng === undefined ? csprng(64) : undefined;
  let used = 0;
  const draw: Rng =
    rng ??
    ((n) => {
      if (used + n > drawn!.length) return csprng(n); // a redrawn zero nonce (§4.1): fresh bytes
      const r = drawn!.slice(used, used + n);
      used += n;
      return r;
    });
  let d: bigint;
  let e: bigint;
  try {
    d = nonceGenerate(suite, secret, draw);
    e = nonceGenerate(suite, secret, draw);
  } finally {
    if (drawn !== undefined) zeroize(drawn);
  }
  const hiding = group.mulBase(d);
  const binding = group.mulBase(e);
  const commit = { hiding: group.pointToBytes(hiding), binding: group.pointToBytes(binding) };
  rememberPoint(group, commit.hiding, hiding);
  rememberPoint(group, commit.binding, binding);
  return { hidingNonce: group.scalarToBytes(d), bindingNonce: group.scalarToBytes(e), commit, hiding, binding };
}

// ---------------------------------------------------------------------------------------------
// The commitment list and the signing context (RFC 9591 §4.2 - §4.6)

/** One signer's decoded commitments; the byte arrays are the caller's (never modify them). */
export interface DecodedCommitment {
  readonly index: number;
  readonly hiding: Point;
  readonly binding: Point;
  readonly hidingBytes: Uint8Array;
  readonly bindingBytes: Uint8Array;
}

/**
 * The signer set of a commitment list (RFC 9591 §5.2/§5.3): holders of the key (core/committee.ts), t..n of them,
 * sorted by identifier (§4.3). No element is decoded.
 */
export function checkSignerSet(pkg: DecodedPackage, commits: ReadonlyMap<number, unknown>): number[] {
  ensure(commits instanceof Map, ErrorCode.BadInput, 'commitments: expected a Map keyed by party index');
  const signers = [...commits.keys()];
  for (const i of signers) {
    ensure(isParty(pkg, i), ErrorCode.UnexpectedParty, `commitment from party ${String(i).slice(0, 12)}, which is not a holder of this key`);
  }
  signers.sort((a, b) => a - b);
  // RFC 9591 §5.2/§5.3: MIN_PARTICIPANTS <= NUM_PARTICIPANTS <= MAX_PARTICIPANTS (a Map has no duplicate keys).
  ensure(
    signers.length >= pkg.threshold && signers.length <= pkg.parties,
    ErrorCode.BadParameters,
    `need ${pkg.threshold}..${pkg.parties} signers, got ${signers.length}`,
  );
  return signers;
}

/**
 * Check the signer set (holders of the key, t..n of them) and decode every commitment (§3.1),
 * sorted by identifier (§4.3). Invalid elements throw BadPoint naming every signer that sent one.
 */
export function decodeCommitmentList(pkg: DecodedPackage, commits: ReadonlyMap<number, SignCommitMsg>): DecodedCommitment[] {
  const signers = checkSignerSet(pkg, commits);
  const { group } = pkg;
  const bad: number[] = [];
  const list: DecodedCommitment[] = [];
  for (const i of signers) {
    const c = commits.get(i);
    try {
      ensure(isObject(c), ErrorCode.BadMessage, 'commitment: expected an object');
      const { hiding: hidingBytes, binding: bindingBytes } = c as unknown as SignCommitMsg;
      const hiding = decodePoint(group, hidingBytes, `hiding commitment of party ${i}`);
      const binding = decodePoint(group, bindingBytes, `binding commitment of party ${i}`);
      list.push(Object.freeze({ index: i, hiding, binding, hidingBytes, bindingBytes }));
    } catch (e) {
      if (!(e instanceof TesseraError)) throw e;
      bad.push(i);
    }
  }
  if (bad.length > 0) {
    throw new TesseraError(ErrorCode.BadPoint, `nonce commitments from parties ${bad.join(', ')} are not valid elements`, bad);
  }
  return list;
}

/** Everything one signing (one list, one message) shares between signers, checkers and the aggregator. */
export interface SigningContext {
  readonly pkg: DecodedPackage;
  /** Sorted by identifier. */
  readonly list: readonly DecodedCommitment[];
  readonly signers: readonly number[];
  /** A private copy of the message. */
  readonly message: Uint8Array;
  /** §4.4 binding factor of every signer. */
  readonly bindingFactors: ReadonlyMap<number, bigint>;
  /** §4.5 R = Σ D_i + ρ_i·E_i. */
  readonly groupCommitment: Point;
  /** bip340: R has odd y, so nonces and commitment shares are negated. */
  readonly commitmentNegated: boolean;
  /** §4.6 c = H2(R || PK || msg). */
  readonly challenge: bigint;
}

/**
 * RFC 9591 §4.3 encode_group_commitment_list and §4.4 rho_input for every signer:
 *   rho_input = SerializeElement(PK) || H4(msg) || H5(encoded list) || SerializeScalar(identifier),
 * PK being the key the signature verifies under (for bip340 the even-y one).
 */
export function bindingFactorInputs(pkg: DecodedPackage, list: readonly DecodedCommitment[], message: Uint8Array): Map<number, Uint8Array> {
  const { suite, group } = pkg;
  const encodedList = concatBytes(...list.flatMap((c) => [group.scalarToBytes(BigInt(c.index)), c.hidingBytes, c.bindingBytes]));
  const prefix = concatBytes(pkg.signingKeyBytes, H4(suite, message), H5(suite, encodedList));
  const out = new Map<number, Uint8Array>();
  for (const c of list) out.set(c.index, concatBytes(prefix, group.scalarToBytes(BigInt(c.index))));
  return out;
}

/** RFC 9591 §4.2 derive_interpolating_value: λ_i = Π_{j ≠ i} x_j / (x_j - x_i) over the signer set. */
export function lambda(group: Group, signers: readonly number[], i: number): bigint {
  ensure(signers.includes(i), ErrorCode.BadInput, `party ${i} is not in the signer set`);
  let num = 1n;
  let den = 1n;
  const xi = BigInt(i);
  for (const j of signers) {
    if (j === i) continue;
    const xj = BigInt(j);
    num = group.mul(num, xj);
    den = group.mul(den, group.sub(xj, xi));
  }
  return group.mul(num, group.inv(den));
}

/**
 * The signing context of §4.4 - §4.6: binding factors, group commitment and challenge, computed once.
 * A group commitment equal to the identity (negligible unless the hash is broken) is refused.
 */
export function signingContext(
  pkg: DecodedPackage,
  list: readonly DecodedCommitment[],
  message: Uint8Array,
  own?: { readonly index: number; readonly hidingNonce: bigint; readonly bindingNonce: bigint },
): SigningContext {
  ensure(message instanceof Uint8Array, ErrorCode.BadInput, 'message: expected bytes');
  ensure(Array.isArray(list) && list.length >= pkg.threshold && list.length <= pkg.parties, ErrorCode.BadParameters, `need ${pkg.threshold}..${pkg.parties} signers`);
  // §4.3: the list is sorted by identifier, each signer once (decodeCommitmentList makes it so).
  list.forEach((c, k) =>
    ensure(
      isParty(pkg, c.index) && (k === 0 || list[k - 1]!.index < c.index),
      ErrorCode.BadInput,
      'commitment list: expected distinct party indexes in ascending order',
    ),
  );
  const { suite, group } = pkg;
  const msg = Uint8Array.from(message);
  const bindingFactors = new Map<number, bigint>();
  for (const [i, input] of bindingFactorInputs(pkg, list, msg)) bindingFactors.set(i, H1(suite, input));
  // §4.5: R = Σ D_i + Σ ρ_i·E_i (public values: the variable-time msm), one msm with the D_i as
  // terms of scalar 1 (a backend sums them in one call, e.g. libsecp256k1's publicKeyCombine).
  // A signer that passes its own nonces (`own`, whose commitments the caller checked are its list
  // entry: D = d·G, E = e·G) adds its term as (d + ρ·e)·G, one constant-time base-point
  // multiplication, instead of multiplying its public E: the same element, at a fraction of the cost.
  const mine = own !== undefined ? list.find((c) => c.index === own.index) : undefined;
  const others = mine !== undefined ? list.filter((c) => c !== mine) : list;
  // The own term joins the msm as a term of scalar 1: summed with the others' in the same call.
  const ownTerm = mine !== undefined ? [group.mulBase(group.add(own!.hidingNonce, group.mul(own!.bindingNonce, bindingFactors.get(mine.index)!)))] : [];
  const R = group.msm(
    [...others.map((c) => c.binding), ...others.map((c) => c.hiding), ...ownTerm],
    [...others.map((c) => bindingFactors.get(c.index)!), ...others.map(() => 1n), ...ownTerm.map(() => 1n)],
  );
  ensure(!group.isIdentity(R), ErrorCode.BadInput, 'the group commitment is the identity element');
  const commitmentNegated = suite.id === 'bip340' && !hasEvenY(group, R);
  return Object.freeze({
    pkg,
    list: Object.freeze([...list]),
    signers: Object.freeze(list.map((c) => c.index)),
    message: msg,
    bindingFactors,
    groupCommitment: R,
    commitmentNegated,
    challenge: challenge(suite, R, pkg.signingKey, msg),
  });
}

/** λ_index over the context's signer set (§4.2), from the package's table when it has it. */
function signerLambda(ctx: SigningContext, index: number): bigint {
  const { lambdas, group } = ctx.pkg;
  const id = `${ctx.signers.join(',')}/${index}`;
  let l = lambdas.get(id);
  if (l === undefined) {
    l = lambda(group, ctx.signers, index);
    if (lambdas.size >= MAX_LAMBDAS) lambdas.clear();
    lambdas.set(id, l);
  }
  return l;
}

function entryOf(ctx: SigningContext, i: number): DecodedCommitment {
  const c = ctx.list.find((x) => x.index === i);
  ensure(c !== undefined, ErrorCode.BadInput, `party ${i} is not in the signer set`);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Round 2 (§5.2), share verification (§5.4), aggregation (§5.3)

/**
 * RFC 9591 §5.2 sign: z_i = d_i + e_i·ρ_i + λ_i·s_i·c, for party `index` with share `share` and
 * nonces (d_i, e_i) (bip340: negated as the module comment says). The caller checks that the list
 * carries this party's own commitments and that the share matches its verifying share.
 */
export function signShare(ctx: SigningContext, index: number, share: bigint, hidingNonce: bigint, bindingNonce: bigint): bigint {
  const { group } = ctx.pkg;
  entryOf(ctx, index);
  const s = ctx.pkg.keyNegated ? group.neg(share) : share;
  const d = ctx.commitmentNegated ? group.neg(hidingNonce) : hidingNonce;
  const e = ctx.commitmentNegated ? group.neg(bindingNonce) : bindingNonce;
  const rho = ctx.bindingFactors.get(index)!;
  return group.add(group.add(d, group.mul(e, rho)), group.mul(group.mul(signerLambda(ctx, index), s), ctx.challenge));
}

/**
 * RFC 9591 §5.4 verify_signature_share: z_i·G == R_i + (c·λ_i)·PK_i with R_i = D_i + ρ_i·E_i
 * (bip340: R_i negated when R has odd y, PK_i negated when the group key has odd y). One msm.
 */
export function verifyShare(ctx: SigningContext, index: number, z: bigint): boolean {
  const { group } = ctx.pkg;
  const c = entryOf(ctx, index);
  const position = partyPosition(ctx.pkg, index);
  ensure(position >= 0, ErrorCode.BadInput, `party ${index} is not a holder of this key`);
  const Yi = ctx.pkg.verifyingShares[position]!;
  const Y = ctx.pkg.keyNegated ? group.negPoint(Yi) : Yi;
  const rho = ctx.bindingFactors.get(index)!;
  const cl = group.mul(ctx.challenge, signerLambda(ctx, index));
  // z·G - cλ·Y - σρ·E == σ·D, σ = -1 when the commitment share is negated.
  const sigma = ctx.commitmentNegated;
  const lhs = group.msm([group.base, Y, c.binding], [z, group.neg(cl), sigma ? rho : group.neg(rho)]);
  return group.eqPoints(lhs, sigma ? group.negPoint(c.hiding) : c.hiding);
}

/** The part of the suite's signature that encodes R: SerializeElement(R); bip340 x(R). */
export function signatureCommitmentBytes(suite: SigningSuite, R: Point): Uint8Array {
  return suite.id === 'bip340' ? xOnly(suite.group, R) : suite.group.pointToBytes(R);
}

/** The suite's signature encoding: SerializeElement(R) || SerializeScalar(z); bip340 x(R) || z. */
export function encodeSignature(suite: SigningSuite, R: Point, z: bigint): Uint8Array {
  return concatBytes(signatureCommitmentBytes(suite, R), suite.group.scalarToBytes(z));
}

/** The final check against the context's decoded R and key: z·G == R + c·PK (bip340: even-y R and PK). */
export function checkAggregate(ctx: SigningContext, z: bigint): boolean {
  const { group } = ctx.pkg;
  const R = ctx.commitmentNegated ? group.negPoint(ctx.groupCommitment) : ctx.groupCommitment;
  return group.eqPoints(group.msm([group.base, ctx.pkg.signingKey], [z, group.neg(ctx.challenge)]), R);
}

/**
 * RFC 9591 §5.3 aggregate with the group commitment the signers reported (SignShareMsg.commitment)
 * instead of recomputing R from the commitment list (§5.3's first step, the costly one for an
 * aggregator that did not sign). Applies only when `shares` holds exactly `signers`, each with a
 * canonical share (DeserializeScalar) and the same reported R of the signature's R length. Returns
 * the signature only if it verifies, strictly, over `message` under the package's key (verifySignature):
 * a valid FROST signature is all the aggregator promises, and a wrong R cannot make the honest shares
 * (bound to the true R by their challenge) sum to one. Otherwise undefined: the caller then runs
 * `aggregate`, which recomputes R from the list and names culprits by §5.4 share checks only (a
 * reported R is never evidence).
 */
export function aggregateWithReportedCommitment(
  pkg: DecodedPackage,
  signers: readonly number[],
  message: Uint8Array,
  shares: ReadonlyMap<number, { readonly share?: unknown; readonly commitment?: unknown } | undefined>,
): Uint8Array | undefined {
  const { suite, group } = pkg;
  const rLength = suite.signatureLength - group.scalarLength;
  if (!(shares instanceof Map) || shares.size !== signers.length) return undefined;
  let R: Uint8Array | undefined;
  let z = 0n;
  for (const i of signers) {
    const m = shares.get(i);
    if (!isObject(m) || !(m.share instanceof Uint8Array) || !(m.commitment instanceof Uint8Array) || m.commitment.length !== rLength) return undefined;
    if (R === undefined) R = m.commitment;
    else if (!equalBytes(R, m.commitment)) return undefined;
    try {
      z = group.add(z, group.scalarFromBytes(m.share, `signature share of party ${i}`, true));
    } catch (e) {
      if (!(e instanceof TesseraError)) throw e;
      return undefined;
    }
  }
  if (R === undefined) return undefined;
  const signature = concatBytes(R, group.scalarToBytes(z));
  return verifySignature(suite, signature, message, pkg.publicKey) ? signature : undefined;
}

/**
 * RFC 9591 §5.3 aggregate, aggregate-first: `shares` must hold exactly the signers' share encodings
 * (a share from outside the set: UnexpectedParty naming the in-range senders; a missing one:
 * UnexpectedParty naming nobody). Parse them (DeserializeScalar; zero allowed), sum, and verify the
 * signature; only if that fails (or a share does not parse) verify every share (§5.4) and throw
 * BadSignatureShare naming all bad signers. Returns the verified signature.
 */
export function aggregate(ctx: SigningContext, shares: ReadonlyMap<number, Uint8Array | undefined>): Uint8Array {
  const { group, suite } = ctx.pkg;
  ensure(shares instanceof Map, ErrorCode.BadInput, 'signature shares: expected a Map keyed by party index');
  const expected = new Set(ctx.signers);
  const extra = [...shares.keys()].filter((i) => !expected.has(i));
  if (extra.length > 0) {
    // A share from a party outside the signer set: the authenticated sender sent something it should not.
    const named = extra.filter((i) => isParty(ctx.pkg, i));
    throw new TesseraError(ErrorCode.UnexpectedParty, 'signature shares from parties outside the signer set', named);
  }
  const missing = ctx.signers.filter((i) => !shares.has(i));
  // Absence proves nothing about the party (the message may have been dropped): no culprits.
  ensure(missing.length === 0, ErrorCode.UnexpectedParty, `missing signature shares from parties ${missing.join(', ')}`);

  const parsed = new Map<number, bigint>();
  const bad: number[] = [];
  for (const i of ctx.signers) {
    try {
      // RFC 9591 §3.1 DeserializeScalar: exact length, canonical. (Zero is a legal, if unlikely, share.)
      parsed.set(i, group.scalarFromBytes(shares.get(i) as Uint8Array, `signature share of party ${i}`, true));
    } catch (e) {
      if (!(e instanceof TesseraError)) throw e;
      bad.push(i);
    }
  }
  if (bad.length === 0) {
    let z = 0n;
    for (const zi of parsed.values()) z = group.add(z, zi);
    const signature = encodeSignature(suite, ctx.groupCommitment, z);
    // ed25519 on a backend with a native verifier (Group.ed25519Verify): the same check on the
    // encoded signature under the package's validated key, in one variable-time double multiplication.
    const fast = ed25519Verifier(suite, group);
    if (fast !== undefined ? fast(signature, ctx.message, ctx.pkg.signingKeyBytes) : checkAggregate(ctx, z)) {
      ensure(signature.length === suite.signatureLength, ErrorCode.VerificationFailed, 'aggregated signature has the wrong length');
      return signature;
    }
  }
  // Only now: name every signer whose share fails §5.4.
  for (const [i, zi] of parsed) if (!verifyShare(ctx, i, zi)) bad.push(i);
  bad.sort((a, b) => a - b);
  if (bad.length > 0) {
    throw new TesseraError(ErrorCode.BadSignatureShare, `signature shares from parties ${bad.join(', ')} do not verify`, bad);
  }
  throw new TesseraError(ErrorCode.VerificationFailed, 'aggregated signature does not verify under the group public key');
}

// ---------------------------------------------------------------------------------------------
// Signature verification (RFC 9591 §5.3 / RFC 8032 §5.1.7 / BIP-340), strict

/**
 * Public keys that passed suite.publicKeyFromBytes, by suite object and encoding (a verifier sees the
 * same few group keys over and over, each time in a fresh array). The point depends on the bytes
 * only; the table is per suite object and is dropped when the suite's group changes. Bounded: the
 * oldest entry goes first.
 */
const KNOWN_KEYS = new WeakMap<SigningSuite, { readonly group: Group; readonly keys: Map<string, Point> }>();
const MAX_KNOWN_KEYS = 256;

/** The group's native ed25519 verifier, for the ed25519 suite only (its challenge is RFC 8032's). */
function ed25519Verifier(suite: SigningSuite, group: Group): Group['ed25519Verify'] {
  return suite.id === 'ed25519' ? group.ed25519Verify : undefined;
}

/** suite.publicKeyFromBytes (strict: throws on an invalid key), remembered per suite and encoding. */
function publicKeyPoint(suite: SigningSuite, bytes: Uint8Array): Point {
  let known = KNOWN_KEYS.get(suite);
  if (known === undefined || known.group !== suite.group) {
    known = { group: suite.group, keys: new Map() };
    KNOWN_KEYS.set(suite, known);
  }
  const id = toHex(bytes);
  const hit = known.keys.get(id);
  if (hit !== undefined) return hit;
  const point = suite.publicKeyFromBytes(bytes);
  if (known.keys.size >= MAX_KNOWN_KEYS) known.keys.delete(known.keys.keys().next().value!);
  known.keys.set(id, point);
  return point;
}

/**
 * Verify a final signature under the suite's standard public-key encoding, strictly: the key and R
 * must be valid canonical elements of the prime-order subgroup (bip340: x-only, lifted to even y),
 * z a canonical scalar; then z·G == R + c·PK with the suite's challenge. Never throws.
 */
export function verifySignature(suite: SigningSuite, signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    if (!(signature instanceof Uint8Array) || !(message instanceof Uint8Array) || !(publicKey instanceof Uint8Array)) return false;
    if (signature.length !== suite.signatureLength) return false;
    const { group } = suite;
    const fast = ed25519Verifier(suite, group);
    if (fast !== undefined) {
      // The key strictly (DeserializeElement, remembered), then the backend's RFC 8032 §5.1.7 check,
      // which accepts exactly what the generic check below accepts (Group.ed25519Verify).
      publicKeyPoint(suite, publicKey);
      return fast(signature, message, publicKey);
    }
    const split = signature.length - group.scalarLength;
    const rBytes = signature.subarray(0, split);
    // bip340: R is the even-y point with x = r (lift_x), exactly what the x-only key parser does.
    const R = suite.id === 'bip340' ? suite.publicKeyFromBytes(rBytes) : group.pointFromBytes(rBytes, 'signature R');
    const z = group.scalarFromBytes(signature.subarray(split), 'signature z', true);
    const PK = publicKeyPoint(suite, publicKey);
    const c = challenge(suite, R, PK, message);
    return group.eqPoints(group.msm([group.base, PK], [z, group.neg(c)]), R);
  } catch {
    return false;
  }
}
