/**
 * Key bundles: how a key leaves one cluster and enters another (failover), or crosses to or from an
 * external, non-MPC key store — never whole in transit.
 *
 * A bundle is plain JSON with hex fields, versioned:
 *
 *   { format: 'tessera-key-bundle', version: 1,
 *     keyId, keyVersion, suite, threshold, parties, epoch,
 *     publicKey,                      the suite's standard encoding of the group key
 *     commitments[t],                 Feldman commitments, [0] is the group key (RFC 9591 Appendix C.2)
 *     verifyingShares[n],             share_i·G for every party i
 *     wrappedShares[n]: { index, kem, wrappingKeyFingerprint, enc, ciphertext } }
 *
 * Each wrapped share is core/wrap.ts wrapShare (HPKE base mode, ML-KEM-768 or X-Wing) of party i's
 * share to one wrapping public key, bound to (key id, key version, group public key, suite, index,
 * epoch). `wrappingKeyFingerprint` is SHA-256 of the wrapping public key (the same fingerprint that a
 * node's wrapping-key allowlist lists), so a recipient finds its share without trying every key.
 *
 * The public part carries everything needed to check authenticity on import, without any secret:
 * parseBundle checks every count, index, encoding and point, that publicKey is commitments[0], that
 * every verifying share lies on the committed polynomial, and (RFC 9591 Appendix C.2 in the exponent,
 * core/shamir.ts verifyingSharesMatchGroupKey) that the verifying shares interpolate to the group key.
 * A recipient then checks its unwrapped share against its verifying share (unwrapBundleShare).
 *
 * Version 2, a bundle for a destination of another size (t', n') (issue 13, cross-size failover): the
 * exporting nodes re-deal their shares to the destination's nodes 1..n' (core/reshare.ts, verifiable
 * secret redistribution, Desmedt–Jajodia 1997 / Wong–Wang–Wing 2002 with RFC 9591 Appendix C.2
 * Feldman commitments), so no destination node needs the source's size:
 *
 *   { format: 'tessera-key-bundle', version: 2,
 *     keyId, keyVersion, suite, threshold, parties, epoch,   the destination's t', n' and new epoch
 *     publicKey, commitments[t'], verifyingShares[n'],       the destination's package (resharedPackage)
 *     source: { threshold, parties, indices?, epoch, commitments[t], verifyingShares[n] },
 *                                                            the package the dealers dealt from
 *     dealers[]: { index, commitments[t'],                   dealer i's Feldman commitments to g_i
 *                  wrappedShares[n']: { index, kem, wrappingKeyFingerprint, enc, ciphertext } } }
 *                                                            dealer i's sub-share g_i(j) for each node j
 *
 * Each sub-share g_i(j) is sealed (core/wrap.ts sealToReceiver, the same HPKE suites as wrapShare) to
 * destination node j's import key, bound by subShareBinding to the key id and version, group key,
 * suite, source epoch, dealer i, recipient j, (t', n') and dealer i's commitments. parseBundle checks
 * the public part in the exponent: the source package is consistent, every dealer is a distinct member
 * of the source committee and there are at least t of them, every dealer's C_{i,0} equals its old
 * verifying share (core/reshare.ts checkDealerCommitments), the carried package equals
 * resharedPackage(source, dealt) and its group key is the source's. Recipient j opens its sub-shares
 * and combines them with core/reshare.ts combineSubShares (node/sessions/failover.ts), which names a
 * dealer whose sub-share is not on its committed polynomial.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { equalBytes, framed, fromHex, i2osp, toHex, utf8ToBytes, zeroize } from './bytes.js';
import { ErrorCode, TesseraError, ensure, guard } from './errors.js';
import type { WrappedShareMsg } from './messages.js';
import { ID_RE } from './session.js';
import { publicPackageDigest } from './commit.js';
import { checkCommittee, contiguousIndices, isContiguous, partyIndices } from './committee.js';
import { checkDealerCommitments, resharedPackage, type ReshareTarget } from './reshare.js';
import { checkThreshold, combine, evalCommitment, split, verifyingSharesMatchGroupKey } from './shamir.js';
import { groupPublicKey } from './sign.js';
import { getSuite, isSuiteId, type Suite, type SuiteId } from './suites.js';
import type { KeyShare, PublicKeyPackage, SecretShare } from './types.js';
import {
  isWrapKem,
  openFromSender,
  sealToReceiver,
  unwrapShare,
  WRAP_KEMS,
  wrapKemForPublicKey,
  wrapKemId,
  wrapKemSizes,
  wrappedShareCiphertextLength,
  wrapShare,
  type WrapKem,
  type WrappingKeyPair,
} from './wrap.js';

export const BUNDLE_FORMAT = 'tessera-key-bundle';
/** Same-size bundles: one wrapped share per party. */
export const BUNDLE_VERSION = 1;
/** Bundles for a destination of another size: dealt sub-shares (see the module comment). */
export const RESHARED_BUNDLE_VERSION = 2;
/** Key versions and epochs are stored as 32-bit values (node/store/storage.ts). */
const MAX_U32 = 0xffffffff;
const FINGERPRINT_LENGTH = 32;
const DIGEST_LABEL = utf8ToBytes('tessera/v1/key-bundle');
const SUB_SHARE_LABEL = utf8ToBytes('tessera/v1/key-bundle/sub-share');

/** One wrapped share as it travels. */
export interface WrappedShareJson {
  index: number;
  kem: WrapKem;
  /** SHA-256 of the wrapping public key, hex. */
  wrappingKeyFingerprint: string;
  enc: string;
  ciphertext: string;
}

/** The bundle as it travels: plain JSON, bytes as lowercase hex. */
export interface KeyBundleJson {
  format: typeof BUNDLE_FORMAT;
  version: typeof BUNDLE_VERSION;
  keyId: string;
  keyVersion: number;
  suite: SuiteId;
  threshold: number;
  parties: number;
  epoch: number;
  publicKey: string;
  commitments: string[];
  verifyingShares: string[];
  wrappedShares: WrappedShareJson[];
}

/** What one exporting node returns for a version 2 bundle: its commitments and sealed sub-shares. */
export interface DealtSubSharesJson {
  /** C_{i,0..t'-1}, hex. */
  commitments: string[];
  /** This node's sub-share for each destination node (`index` = the recipient), sealed to its import key. */
  wrappedShares: WrappedShareJson[];
}

/** The package a version 2 bundle's dealers dealt from, as it travels. */
export interface SourcePackageJson {
  threshold: number;
  parties: number;
  /** The source key's committee when it is not 1..parties (core/types.ts PublicKeyPackage.indices). */
  indices?: number[];
  epoch: number;
  commitments: string[];
  verifyingShares: string[];
}

/** One dealer of a version 2 bundle: its commitments and its sub-share for every destination node. */
export interface BundleDealerJson {
  /** The dealer's index in the source cluster. */
  index: number;
  commitments: string[];
  /** The dealer's sub-share for each destination node, sealed to its import key (`index` = the recipient, 1..n'). */
  wrappedShares: WrappedShareJson[];
}

/** A bundle for a destination of another size (version 2, see the module comment). */
export interface ResharedBundleJson {
  format: typeof BUNDLE_FORMAT;
  version: typeof RESHARED_BUNDLE_VERSION;
  keyId: string;
  keyVersion: number;
  suite: SuiteId;
  threshold: number;
  parties: number;
  epoch: number;
  publicKey: string;
  commitments: string[];
  verifyingShares: string[];
  source: SourcePackageJson;
  dealers: BundleDealerJson[];
}

/** Either bundle version, as it travels. */
export type AnyBundleJson = KeyBundleJson | ResharedBundleJson;

/** A wrapped share of a parsed bundle. */
export interface BundleShare {
  readonly index: number;
  readonly kem: WrapKem;
  readonly wrappingKeyFingerprint: Uint8Array;
  readonly wrapped: WrappedShareMsg;
}

/** A parsed bundle: every field decoded and every public check passed. */
export interface KeyBundle {
  readonly keyId: string;
  readonly keyVersion: number;
  /** The suite's standard public-key encoding of the group key. */
  readonly publicKey: Uint8Array;
  /** suite, threshold, parties, epoch, commitments, verifying shares. */
  readonly package: PublicKeyPackage;
  /** Sorted by index; exactly one per party. Empty in a version 2 bundle (see `resharing`). */
  readonly wrappedShares: readonly BundleShare[];
  /** Version 2 only: the source package and every dealer's commitments and wrapped sub-shares. */
  readonly resharing?: BundleResharing;
}

/** A dealer of a parsed version 2 bundle. */
export interface BundleDealer {
  readonly index: number;
  readonly commitments: readonly Uint8Array[];
  /** Sorted by recipient (`index`), exactly one per destination node 1..n'. */
  readonly subShares: readonly BundleShare[];
}

/** The resharing part of a parsed version 2 bundle. */
export interface BundleResharing {
  /** The package the dealers dealt from. */
  readonly source: PublicKeyPackage;
  /** Sorted by index. */
  readonly dealers: readonly BundleDealer[];
  /** Dealer index -> its commitments: core/reshare.ts's `dealt` (its key set is the dealer set). */
  readonly dealt: ReadonlyMap<number, readonly Uint8Array[]>;
  /** The destination's threshold and nodes 1..n'. */
  readonly target: ReshareTarget;
}

/** What a wrapped share is made for, besides the share itself. */
export interface BundleBinding {
  readonly keyId: string;
  readonly keyVersion: number;
}

// ---------------------------------------------------------------------------------------------
// Wrapping keys

/** SHA-256 of a wrapping public key: what bundles and node allowlists name a wrapping key by. */
export function wrappingKeyFingerprint(publicKey: Uint8Array): Uint8Array {
  ensure(publicKey instanceof Uint8Array, ErrorCode.BadInput, 'wrapping public key: expected bytes');
  return sha256(publicKey);
}

/**
 * The wrapping public key for each of `parties` shares: the caller gives one key for all shares or
 * one key per share (so shares can travel by different channels). Each must be an ML-KEM-768 or an
 * X-Wing public key (told apart by length). Returns n keys, party i's at [i - 1].
 */
export function wrappingKeysForParties(keys: readonly Uint8Array[], parties: number): Uint8Array[] {
  ensure(Array.isArray(keys), ErrorCode.BadInput, 'wrapping keys: expected a list');
  ensure(
    keys.length === 1 || keys.length === parties,
    ErrorCode.BadInput,
    `wrapping keys: give one key for all ${parties} shares or one per share, not ${keys.length}`,
  );
  keys.forEach((k, i) => {
    ensure(k instanceof Uint8Array, ErrorCode.BadInput, `wrapping key ${i + 1}: expected bytes`);
    wrapKemForPublicKey(k);
  });
  return Array.from({ length: parties }, (_, i) => (keys.length === 1 ? keys[0]! : keys[i]!));
}

// ---------------------------------------------------------------------------------------------
// Parsing

type Json = Record<string, unknown>;

const BUNDLE_FIELDS = [
  'format',
  'version',
  'keyId',
  'keyVersion',
  'suite',
  'threshold',
  'parties',
  'epoch',
  'publicKey',
  'commitments',
  'verifyingShares',
  'wrappedShares',
] as const;
const SHARE_FIELDS = ['index', 'kem', 'wrappingKeyFingerprint', 'enc', 'ciphertext'] as const;

function bad(message: string): TesseraError {
  return new TesseraError(ErrorCode.BadInput, `bundle: ${message}`);
}

function exactObject(v: unknown, fields: readonly string[], what: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${what} must be an object`);
  const o = v as Json;
  for (const k of Object.keys(o)) if (!fields.includes(k)) throw bad(`${what} has an unknown field ${JSON.stringify(k.slice(0, 40))}`);
  for (const k of fields) if (!(k in o)) throw bad(`${what} is missing ${k}`);
  return o;
}

function integer(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw bad(`${what} must be an integer ${min}..${max}`);
  return v;
}

/** Hex of exactly `length` bytes; the string length is checked before decoding. */
function hexBytes(v: unknown, what: string, length: number): Uint8Array {
  if (typeof v !== 'string' || v.length !== 2 * length) throw bad(`${what} must be ${length} bytes of hex`);
  return fromHex(v, `bundle: ${what}`, length);
}

function list(v: unknown, what: string, count: number): unknown[] {
  if (!Array.isArray(v) || v.length !== count) throw bad(`${what} must list exactly ${count} entries`);
  return v;
}

/** The length of a suite's standard public-key encoding (32, 33 or 65 bytes). */
function publicKeyLength(suite: Suite): number {
  return suite.publicKeyBytes(suite.group.base).length;
}

/**
 * Parse and check a bundle (the JSON object, not its text). Every field is validated before any
 * cryptography: shape, unknown or missing fields, counts, indexes 1..n once each, hex lengths, KEM
 * names, point encodings; then, in the exponent, that publicKey is commitments[0], that every
 * verifying share lies on the committed polynomial and that they interpolate to the group key.
 * Throws BadInput (BadPoint for an invalid element, UnknownSuite for an unknown suite).
 */
export function parseBundle(input: unknown): KeyBundle {
  if (typeof input === 'object' && input !== null && !Array.isArray(input) && (input as Json).version === RESHARED_BUNDLE_VERSION) {
    return parseResharedBundle(input);
  }
  const o = exactObject(input, BUNDLE_FIELDS, 'bundle');
  if (o.format !== BUNDLE_FORMAT) throw bad(`format must be ${JSON.stringify(BUNDLE_FORMAT)}`);
  if (o.version !== BUNDLE_VERSION) {
    throw bad(`version ${JSON.stringify(o.version)} is not supported (versions ${BUNDLE_VERSION} and ${RESHARED_BUNDLE_VERSION} are)`);
  }
  if (typeof o.keyId !== 'string' || !ID_RE.test(o.keyId)) throw bad('keyId must be 1-128 of [A-Za-z0-9._:-], starting alphanumeric');
  const keyId = o.keyId;
  const keyVersion = integer(o.keyVersion, 'keyVersion', 1, MAX_U32);
  if (!isSuiteId(o.suite)) throw new TesseraError(ErrorCode.UnknownSuite, `bundle: unknown suite ${JSON.stringify(String(o.suite).slice(0, 40))}`);
  const suite = getSuite(o.suite);
  const threshold = integer(o.threshold, 'threshold', 2, 255);
  const parties = integer(o.parties, 'parties', 2, 255);
  checkThreshold(threshold, parties);
  // A refresh moves the epoch up by one, so the last epoch cannot be imported.
  const epoch = integer(o.epoch, 'epoch', 0, MAX_U32 - 1);
  const { group } = suite;
  const publicKey = hexBytes(o.publicKey, 'publicKey', publicKeyLength(suite));
  const commitments = list(o.commitments, 'commitments', threshold).map((c, k) => hexBytes(c, `commitments[${k}]`, group.pointLength));
  const verifyingShares = list(o.verifyingShares, 'verifyingShares', parties).map((c, k) => hexBytes(c, `verifyingShares[${k}]`, group.pointLength));

  const seen = new Set<number>();
  const ciphertextLength = wrappedShareCiphertextLength(group.scalarLength);
  const wrappedShares = list(o.wrappedShares, 'wrappedShares', parties).map((raw, k): BundleShare => {
    const share = parseWrappedEntry(raw, `wrappedShares[${k}]`, parties, ciphertextLength);
    if (seen.has(share.index)) throw bad(`party ${share.index} has two wrapped shares`);
    seen.add(share.index);
    return share;
  });

  // Points (DeserializeElement: canonical, on the curve, not the identity, in the prime-order subgroup).
  suite.publicKeyFromBytes(publicKey);
  const C = commitments.map((c, k) => group.pointFromBytes(c, `bundle: commitments[${k}]`));
  const Y = verifyingShares.map((c, k) => group.pointFromBytes(c, `bundle: verifyingShares[${k}]`));
  // Compared as encodings: bip340's x-only key (and X25519's u-coordinate) name ±C_0 alike.
  if (!equalBytes(suite.publicKeyBytes(C[0]!), publicKey)) throw bad('publicKey is not the group key committed to by commitments[0]');
  for (let i = 1; i <= parties; i++) {
    // RFC 9591 Appendix C.2 vss_verify, in the exponent: Y_i = Σ_k C_k·i^k.
    if (!group.eqPoints(evalCommitment(group, C, i), Y[i - 1]!)) throw bad(`verifying share of party ${i} does not lie on the committed polynomial`);
  }
  if (!verifyingSharesMatchGroupKey(group, C[0]!, Y, threshold)) throw bad('the verifying shares do not interpolate to the public key');

  return {
    keyId,
    keyVersion,
    publicKey,
    package: { suite: suite.id, threshold, parties, epoch, commitments, verifyingShares },
    wrappedShares: [...wrappedShares].sort((a, b) => a.index - b.index),
  };
}

const RESHARED_FIELDS = [...BUNDLE_FIELDS.filter((f) => f !== 'wrappedShares'), 'source', 'dealers'] as const;
const SOURCE_FIELDS = ['threshold', 'parties', 'epoch', 'commitments', 'verifyingShares'] as const;
const DEALER_FIELDS = ['index', 'commitments', 'wrappedShares'] as const;

/** One wrapped share (or sub-share) entry: shape, index 1..maxIndex, KEM, fingerprint, enc and ciphertext lengths. */
function parseWrappedEntry(raw: unknown, what: string, maxIndex: number, ciphertextLength: number): BundleShare {
  const w = exactObject(raw, SHARE_FIELDS, what);
  const index = integer(w.index, `${what}.index`, 1, maxIndex);
  if (!isWrapKem(w.kem)) throw bad(`${what}.kem must be one of ${WRAP_KEMS.join(', ')}`);
  const kem = w.kem;
  return {
    index,
    kem,
    wrappingKeyFingerprint: hexBytes(w.wrappingKeyFingerprint, `${what}.wrappingKeyFingerprint`, FINGERPRINT_LENGTH),
    wrapped: {
      kem: wrapKemId(kem),
      enc: hexBytes(w.enc, `${what}.enc`, wrapKemSizes(kem).encLength),
      ciphertext: hexBytes(w.ciphertext, `${what}.ciphertext`, ciphertextLength),
    },
  };
}

/**
 * A version 2 bundle (see the module comment). Shape, counts, indexes and encodings first, then in the
 * exponent: the source package's verifying shares lie on its committed polynomial (RFC 9591 Appendix
 * C.2 vss_verify at each committee index), every dealer's commitments pass checkDealerCommitments
 * (C_{i,0} = Y_i, which names the dealer), the carried package is resharedPackage of the dealt
 * commitments, and the group key is the source's.
 */
function parseResharedBundle(input: unknown): KeyBundle {
  const o = exactObject(input, RESHARED_FIELDS, 'bundle');
  if (o.format !== BUNDLE_FORMAT) throw bad(`format must be ${JSON.stringify(BUNDLE_FORMAT)}`);
  if (typeof o.keyId !== 'string' || !ID_RE.test(o.keyId)) throw bad('keyId must be 1-128 of [A-Za-z0-9._:-], starting alphanumeric');
  const keyId = o.keyId;
  const keyVersion = integer(o.keyVersion, 'keyVersion', 1, MAX_U32);
  if (!isSuiteId(o.suite)) throw new TesseraError(ErrorCode.UnknownSuite, `bundle: unknown suite ${JSON.stringify(String(o.suite).slice(0, 40))}`);
  const suite = getSuite(o.suite);
  const { group } = suite;

  // The source package.
  const so = o.source;
  if (typeof so !== 'object' || so === null || Array.isArray(so)) throw bad('source must be an object');
  const src = exactObject(so, [...SOURCE_FIELDS, ...('indices' in so ? ['indices'] : [])], 'source');
  const sourceThreshold = integer(src.threshold, 'source.threshold', 2, 255);
  const sourceParties = integer(src.parties, 'source.parties', 2, 255);
  checkThreshold(sourceThreshold, sourceParties);
  let sourceIndices: readonly number[] | undefined;
  if (src.indices !== undefined) {
    sourceIndices = guard(ErrorCode.BadInput, 'bundle: source.indices must be a strictly ascending list of node indices', () =>
      checkCommittee(src.indices, sourceThreshold, 'bundle: source.indices'),
    );
    if (sourceIndices.length !== sourceParties) throw bad(`source.indices must list exactly ${sourceParties} nodes`);
    // A committee of 1..n is written without indices (core/types.ts), so each package has one encoding.
    if (isContiguous(sourceIndices)) throw bad(`source.indices: a committee of nodes 1..${sourceParties} is written without indices`);
  }
  // The destination's epoch is one above the source's, so neither may be the last.
  const sourceEpoch = integer(src.epoch, 'source.epoch', 0, MAX_U32 - 2);
  const sourceCommitments = list(src.commitments, 'source.commitments', sourceThreshold).map((c, k) => hexBytes(c, `source.commitments[${k}]`, group.pointLength));
  const sourceShares = list(src.verifyingShares, 'source.verifyingShares', sourceParties).map((c, k) => hexBytes(c, `source.verifyingShares[${k}]`, group.pointLength));
  const source: PublicKeyPackage = {
    suite: suite.id,
    threshold: sourceThreshold,
    parties: sourceParties,
    ...(sourceIndices ? { indices: sourceIndices } : {}),
    epoch: sourceEpoch,
    commitments: sourceCommitments,
    verifyingShares: sourceShares,
  };
  const committee = partyIndices(source);

  // The destination: t' of nodes 1..n'.
  const threshold = integer(o.threshold, 'threshold', 2, 255);
  const parties = integer(o.parties, 'parties', 2, 255);
  checkThreshold(threshold, parties);
  const epoch = integer(o.epoch, 'epoch', 1, MAX_U32 - 1);
  if (epoch !== sourceEpoch + 1) throw bad(`epoch must be one above the source's (${sourceEpoch + 1}), not ${epoch}`);
  const publicKey = hexBytes(o.publicKey, 'publicKey', publicKeyLength(suite));
  const commitments = list(o.commitments, 'commitments', threshold).map((c, k) => hexBytes(c, `commitments[${k}]`, group.pointLength));
  const verifyingShares = list(o.verifyingShares, 'verifyingShares', parties).map((c, k) => hexBytes(c, `verifyingShares[${k}]`, group.pointLength));
  const target: ReshareTarget = { threshold, indices: contiguousIndices(parties) };

  // Dealers: distinct members of the source committee, at least its threshold.
  if (!Array.isArray(o.dealers) || o.dealers.length < sourceThreshold || o.dealers.length > sourceParties) {
    throw bad(`dealers must list ${sourceThreshold}..${sourceParties} dealers of the source committee`);
  }
  const ciphertextLength = wrappedShareCiphertextLength(group.scalarLength);
  const seenDealers = new Set<number>();
  const dealers = o.dealers.map((raw, k): BundleDealer => {
    const what = `dealers[${k}]`;
    const d = exactObject(raw, DEALER_FIELDS, what);
    const index = integer(d.index, `${what}.index`, 1, 255);
    if (!committee.includes(index)) throw bad(`dealer ${index} holds no share of the source package`);
    if (seenDealers.has(index)) throw bad(`dealer ${index} is listed twice`);
    seenDealers.add(index);
    const dealerCommitments = list(d.commitments, `${what}.commitments`, threshold).map((c, m) => hexBytes(c, `${what}.commitments[${m}]`, group.pointLength));
    const seen = new Set<number>();
    const subShares = list(d.wrappedShares, `${what}.wrappedShares`, parties).map((e, m) => {
      const entry = parseWrappedEntry(e, `${what}.wrappedShares[${m}]`, parties, ciphertextLength);
      if (seen.has(entry.index)) throw bad(`dealer ${index} has two sub-shares for node ${entry.index}`);
      seen.add(entry.index);
      return entry;
    });
    return { index, commitments: dealerCommitments, subShares: subShares.sort((a, b) => a.index - b.index) };
  });
  dealers.sort((a, b) => a.index - b.index);
  // Every dealer wraps node j's sub-share to the same key: node j has one import key.
  for (let j = 1; j <= parties; j++) {
    const first = dealers[0]!.subShares[j - 1]!;
    for (const d of dealers) {
      const e = d.subShares[j - 1]!;
      if (e.kem !== first.kem || !equalBytes(e.wrappingKeyFingerprint, first.wrappingKeyFingerprint)) {
        throw bad(`dealers ${dealers[0]!.index} and ${d.index} wrap node ${j}'s sub-shares to different keys`);
      }
    }
  }

  // Points (DeserializeElement), then the checks in the exponent.
  suite.publicKeyFromBytes(publicKey);
  const sourceC = sourceCommitments.map((c, k) => group.pointFromBytes(c, `bundle: source.commitments[${k}]`));
  const sourceY = sourceShares.map((c, k) => group.pointFromBytes(c, `bundle: source.verifyingShares[${k}]`));
  committee.forEach((i, k) => {
    // RFC 9591 Appendix C.2 vss_verify in the exponent: Y_i = Σ_k C_k·i^k.
    if (!group.eqPoints(evalCommitment(group, sourceC, i), sourceY[k]!)) throw bad(`source verifying share of party ${i} does not lie on the committed polynomial`);
  });
  if (!equalBytes(suite.publicKeyBytes(sourceC[0]!), publicKey)) throw bad('publicKey is not the group key of the source package');
  const dealt = new Map<number, readonly Uint8Array[]>(dealers.map((d) => [d.index, d.commitments]));
  const expected = inWords(() => {
    // C_{i,0} must be the dealer's old verifying share, every commitment a valid point; names the dealer.
    for (const d of dealers) checkDealerCommitments(source, d.index, d.commitments, target);
    return resharedPackage(source, dealt, target);
  });
  const carried: PublicKeyPackage = { suite: suite.id, threshold, parties, epoch, commitments, verifyingShares };
  // The same public result, committee included (core/commit.ts publicPackageDigest covers every field).
  if (!equalBytes(publicPackageDigest(expected), publicPackageDigest(carried))) throw bad("the destination package is not the one the dealers' commitments give");
  const C0 = group.pointFromBytes(commitments[0]!, 'bundle: commitments[0]');
  if (!group.eqPoints(C0, sourceC[0]!)) throw bad('the destination package has another group key than the source');

  return {
    keyId,
    keyVersion,
    publicKey,
    package: carried,
    wrappedShares: [],
    resharing: { source, dealers, dealt, target },
  };
}

/**
 * Run a core/reshare.ts check on a bundle: its error keeps its code and message (which names a bad
 * dealer) but loses its culprits, which are nodes of the SOURCE cluster, never of a session here.
 */
function inWords<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof TesseraError) throw new TesseraError(e.code, `bundle: ${e.message}`);
    throw e;
  }
}

function wrappedEntryToJson(w: BundleShare): WrappedShareJson {
  return {
    index: w.index,
    kem: w.kem,
    wrappingKeyFingerprint: toHex(w.wrappingKeyFingerprint),
    enc: toHex(w.wrapped.enc),
    ciphertext: toHex(w.wrapped.ciphertext),
  };
}

/** The canonical JSON form of a parsed bundle. */
export function bundleToJson(b: KeyBundle & { resharing: BundleResharing }): ResharedBundleJson;
export function bundleToJson(b: KeyBundle): AnyBundleJson;
export function bundleToJson(b: KeyBundle): AnyBundleJson {
  const p = b.package;
  if (b.resharing) {
    const r = b.resharing;
    return {
      format: BUNDLE_FORMAT,
      version: RESHARED_BUNDLE_VERSION,
      keyId: b.keyId,
      keyVersion: b.keyVersion,
      suite: p.suite,
      threshold: p.threshold,
      parties: p.parties,
      epoch: p.epoch,
      publicKey: toHex(b.publicKey),
      commitments: p.commitments.map(toHex),
      verifyingShares: p.verifyingShares.map(toHex),
      source: {
        threshold: r.source.threshold,
        parties: r.source.parties,
        ...(r.source.indices ? { indices: [...r.source.indices] } : {}),
        epoch: r.source.epoch,
        commitments: r.source.commitments.map(toHex),
        verifyingShares: r.source.verifyingShares.map(toHex),
      },
      dealers: r.dealers.map((d) => ({ index: d.index, commitments: d.commitments.map(toHex), wrappedShares: d.subShares.map(wrappedEntryToJson) })),
    };
  }
  return {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    keyId: b.keyId,
    keyVersion: b.keyVersion,
    suite: p.suite,
    threshold: p.threshold,
    parties: p.parties,
    epoch: p.epoch,
    publicKey: toHex(b.publicKey),
    commitments: p.commitments.map(toHex),
    verifyingShares: p.verifyingShares.map(toHex),
    wrappedShares: b.wrappedShares.map(wrappedEntryToJson),
  };
}

/**
 * SHA-256 over a canonical framing of every field of a parsed bundle: what an import session's
 * payload digest binds, so every node (and every approving operator) handles the same bundle.
 */
export function bundleDigest(b: KeyBundle): Uint8Array {
  const p = b.package;
  const entry = (w: BundleShare): Uint8Array => framed(i2osp(w.index, 1), utf8ToBytes(w.kem), w.wrappingKeyFingerprint, w.wrapped.enc, w.wrapped.ciphertext);
  // What both versions carry: the key and its package (the destination's, for version 2).
  const header = (version: number): Uint8Array[] => [
    DIGEST_LABEL,
    i2osp(version, 2),
    utf8ToBytes(b.keyId),
    i2osp(b.keyVersion, 4),
    utf8ToBytes(p.suite),
    i2osp(p.threshold, 1),
    i2osp(p.parties, 1),
    i2osp(p.epoch, 4),
    b.publicKey,
    framed(...p.commitments),
    framed(...p.verifyingShares),
  ];
  if (b.resharing) {
    const { source: src, dealers } = b.resharing;
    return sha256(
      framed(
        ...header(RESHARED_BUNDLE_VERSION),
        framed(i2osp(src.threshold, 1), i2osp(src.parties, 1), Uint8Array.from(partyIndices(src)), i2osp(src.epoch, 4), framed(...src.commitments), framed(...src.verifyingShares)),
        framed(...dealers.map((d) => framed(i2osp(d.index, 1), framed(...d.commitments), framed(...d.subShares.map(entry))))),
      ),
    );
  }
  return sha256(framed(...header(BUNDLE_VERSION), framed(...b.wrappedShares.map(entry))));
}

/**
 * Build a bundle from its public package and the n wrapped shares (in any order), and check it with
 * parseBundle. The public key is derived from the package (core/sign.ts groupPublicKey).
 */
export function assembleBundle(o: { keyId: string; keyVersion: number; package: PublicKeyPackage; wrappedShares: readonly WrappedShareJson[] }): KeyBundleJson {
  ensure(typeof o === 'object' && o !== null && typeof o.package === 'object' && o.package !== null, ErrorCode.BadInput, 'bundle: expected a package');
  const p = o.package;
  const suite = getSuite(p.suite);
  const json: KeyBundleJson = {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    keyId: o.keyId,
    keyVersion: o.keyVersion,
    suite: suite.id,
    threshold: p.threshold,
    parties: p.parties,
    epoch: p.epoch,
    publicKey: toHex(groupPublicKey(suite, p)),
    commitments: p.commitments.map(toHex),
    verifyingShares: p.verifyingShares.map(toHex),
    wrappedShares: [...o.wrappedShares].sort((a, b) => a.index - b.index),
  };
  return bundleToJson(parseBundle(json)) as KeyBundleJson;
}

/**
 * Build a version 2 bundle from the source package and each dealer's commitments and wrapped
 * sub-shares (any order): the destination package is computed here (core/reshare.ts resharedPackage
 * for t' of nodes 1..n', n' = the sub-share count), then the whole bundle is checked by parseBundle.
 */
export function assembleResharedBundle(o: {
  keyId: string;
  keyVersion: number;
  source: PublicKeyPackage;
  threshold: number;
  dealers: readonly { index: number; commitments: readonly string[]; wrappedShares: readonly WrappedShareJson[] }[];
}): ResharedBundleJson {
  ensure(typeof o === 'object' && o !== null && typeof o.source === 'object' && o.source !== null, ErrorCode.BadInput, 'bundle: expected a source package');
  ensure(Array.isArray(o.dealers) && o.dealers.length > 0, ErrorCode.BadInput, 'bundle: expected at least one dealer');
  const src = o.source;
  const suite = getSuite(src.suite);
  const parties = o.dealers[0]!.wrappedShares.length;
  checkThreshold(o.threshold, parties);
  const target: ReshareTarget = { threshold: o.threshold, indices: contiguousIndices(parties) };
  const dealt = new Map<number, readonly Uint8Array[]>(
    o.dealers.map((d): [number, Uint8Array[]] => [d.index, d.commitments.map((c: string, k: number) => fromHex(c, `bundle: dealer ${d.index} commitments[${k}]`))]),
  );
  const pkg = resharedPackage(src, dealt, target);
  const json: ResharedBundleJson = {
    format: BUNDLE_FORMAT,
    version: RESHARED_BUNDLE_VERSION,
    keyId: o.keyId,
    keyVersion: o.keyVersion,
    suite: suite.id,
    threshold: pkg.threshold,
    parties: pkg.parties,
    epoch: pkg.epoch,
    publicKey: toHex(groupPublicKey(suite, src)),
    commitments: pkg.commitments.map(toHex),
    verifyingShares: pkg.verifyingShares.map(toHex),
    source: {
      threshold: src.threshold,
      parties: src.parties,
      ...(src.indices ? { indices: [...src.indices] } : {}),
      epoch: src.epoch,
      commitments: src.commitments.map(toHex),
      verifyingShares: src.verifyingShares.map(toHex),
    },
    dealers: o.dealers.map((d) => ({ index: d.index, commitments: [...d.commitments], wrappedShares: [...d.wrappedShares] })),
  };
  return bundleToJson(parseResharedBundle(json) as KeyBundle & { resharing: BundleResharing });
}

// ---------------------------------------------------------------------------------------------
// Wrapping and unwrapping one share

/**
 * Wrap a party's share for a bundle (core/wrap.ts wrapShare) to `recipientPublicKey`, whose KEM follows
 * from its length. Bound to the key id and version given, and to the package's group key, suite,
 * the share's index and epoch.
 */
export async function wrapBundleShare(key: KeyShare, binding: BundleBinding, recipientPublicKey: Uint8Array): Promise<WrappedShareJson> {
  ensure(typeof key === 'object' && key !== null && typeof key.publicKey === 'object' && key.secret !== null, ErrorCode.BadInput, 'bundle share: expected a KeyShare');
  ensure(key.secret.epoch === key.publicKey.epoch && key.secret.suite === key.publicKey.suite, ErrorCode.EpochMismatch, 'bundle share: share and package differ in suite or epoch');
  const suite = getSuite(key.publicKey.suite);
  const kem = wrapKemForPublicKey(recipientPublicKey);
  const wrapped = await wrapShare(recipientPublicKey, kem, key.secret, {
    keyId: binding.keyId,
    version: binding.keyVersion,
    groupPublicKey: groupPublicKey(suite, key.publicKey),
  });
  return {
    index: key.secret.index,
    kem,
    wrappingKeyFingerprint: toHex(wrappingKeyFingerprint(recipientPublicKey)),
    enc: toHex(wrapped.enc),
    ciphertext: toHex(wrapped.ciphertext),
  };
}

/**
 * Unwrap party `index`'s share of a parsed bundle with the recipient's wrapping key pair, and check it
 * against the party's verifying share (share·G = Y_index). Errors: BadInput when the share is wrapped
 * to another key, DecryptionFailed when it does not open (tampered, or bound to another key id,
 * version, group key, index or epoch), BadShare when it opens but is not on this bundle's polynomial
 * (e.g. shares of two exports mixed). The caller owns and zeroizes the returned share's `value`.
 */
export async function unwrapBundleShare(bundle: KeyBundle, recipient: WrappingKeyPair, index: number): Promise<SecretShare> {
  ensure(typeof recipient === 'object' && recipient !== null && recipient.publicKey instanceof Uint8Array, ErrorCode.BadInput, 'recipient: expected a wrapping key pair');
  const entry = bundle.wrappedShares.find((w) => w.index === index);
  ensure(entry, ErrorCode.BadInput, `bundle: no wrapped share for party ${index}`);
  ensure(
    equalBytes(entry.wrappingKeyFingerprint, wrappingKeyFingerprint(recipient.publicKey)) && entry.kem === recipient.kem,
    ErrorCode.BadInput,
    `bundle: the share of party ${index} is wrapped to the key with fingerprint ${toHex(entry.wrappingKeyFingerprint).slice(0, 16)}…, not to this ${recipient.kem} key (${toHex(wrappingKeyFingerprint(recipient.publicKey)).slice(0, 16)}…)`,
  );
  const p = bundle.package;
  const suite = getSuite(p.suite);
  let share: SecretShare;
  try {
    share = await unwrapShare(recipient, entry.wrapped, {
      keyId: bundle.keyId,
      version: bundle.keyVersion,
      groupPublicKey: bundle.publicKey,
      suite: suite.id,
      index,
      epoch: p.epoch,
    });
  } catch (e) {
    if (e instanceof TesseraError && e.code === ErrorCode.DecryptionFailed) {
      throw new TesseraError(
        ErrorCode.DecryptionFailed,
        `bundle: the wrapped share of party ${index} does not open (tampered, or made for another key, version, public key or epoch)`,
      );
    }
    throw e;
  }
  const { group } = suite;
  const ok = guard(ErrorCode.BadShare, `bundle: share of party ${index} is malformed`, () =>
    group.eqPoints(group.mulBase(group.scalarFromBytes(share.value, 'unwrapped share')), group.pointFromBytes(p.verifyingShares[index - 1]!, 'verifying share')),
  );
  if (!ok) {
    zeroize(share.value);
    throw new TesseraError(
      ErrorCode.BadShare,
      `bundle: the share of party ${index} does not match its verifying share (shares of different keys or exports mixed?)`,
    );
  }
  return share;
}

// ---------------------------------------------------------------------------------------------
// Sub-shares of a version 2 bundle

/** What one sub-share of a version 2 bundle is made for. */
export interface SubShareBinding {
  readonly keyId: string;
  readonly keyVersion: number;
  /** The package the dealer dealt from (its suite, group key and epoch are bound). */
  readonly source: PublicKeyPackage;
  readonly dealer: number;
  readonly recipient: number;
  readonly target: { readonly threshold: number; readonly parties: number };
  /** The dealer's commitments to g_dealer: a sub-share opens only next to the commitments it was dealt with. */
  readonly commitments: readonly Uint8Array[];
}

/**
 * The associated data (RFC 9180 §5.2 `aad`) of a sealed sub-share: the framed encoding of (label,
 * suite, key id, key version, group public key, source epoch, dealer, recipient, t', n', SHA-256 of the
 * dealer's framed commitments). A sub-share therefore opens only for the exact key, version, epoch,
 * dealer, recipient, destination size and dealing it was made for.
 */
export function subShareBinding(b: SubShareBinding): Uint8Array {
  ensure(typeof b === 'object' && b !== null && typeof b.source === 'object' && b.source !== null, ErrorCode.BadInput, 'sub-share binding: expected an object');
  ensure(typeof b.keyId === 'string' && ID_RE.test(b.keyId), ErrorCode.BadInput, 'sub-share binding: keyId must be 1-128 of [A-Za-z0-9._:-], starting alphanumeric');
  ensure(Number.isSafeInteger(b.keyVersion) && b.keyVersion >= 1 && b.keyVersion <= MAX_U32, ErrorCode.BadInput, 'sub-share binding: bad key version');
  ensure(Number.isSafeInteger(b.source.epoch) && b.source.epoch >= 0 && b.source.epoch <= MAX_U32, ErrorCode.BadInput, 'sub-share binding: bad epoch');
  for (const [what, v] of [['dealer', b.dealer], ['recipient', b.recipient], ['threshold', b.target.threshold], ['parties', b.target.parties]] as const) {
    ensure(Number.isSafeInteger(v) && v >= 1 && v <= 255, ErrorCode.BadInput, `sub-share binding: ${what} must be 1..255`);
  }
  const suite = getSuite(b.source.suite);
  return framed(
    SUB_SHARE_LABEL,
    utf8ToBytes(suite.id),
    utf8ToBytes(b.keyId),
    i2osp(b.keyVersion, 4),
    groupPublicKey(suite, b.source),
    i2osp(b.source.epoch, 4),
    i2osp(b.dealer, 1),
    i2osp(b.recipient, 1),
    i2osp(b.target.threshold, 1),
    i2osp(b.target.parties, 1),
    sha256(framed(...b.commitments)),
  );
}

/**
 * Seal one sub-share (the scalar g_dealer(recipient), SerializeScalar encoding) to the recipient's
 * import key: core/wrap.ts sealToReceiver (HPKE base mode, ML-KEM-768 or X-Wing by key length) with
 * aad = subShareBinding(binding). `value` stays the caller's.
 */
export async function wrapSubShare(value: Uint8Array, binding: SubShareBinding, recipientPublicKey: Uint8Array): Promise<WrappedShareJson> {
  const suite = getSuite(binding.source.suite);
  // DeserializeScalar (RFC 9591 §4): a sub-share is a canonical scalar.
  suite.group.scalarFromBytes(value, 'sub-share');
  const kem = wrapKemForPublicKey(recipientPublicKey);
  const sealed = await sealToReceiver(recipientPublicKey, value, subShareBinding(binding), kem);
  return {
    index: binding.recipient,
    kem,
    wrappingKeyFingerprint: toHex(wrappingKeyFingerprint(recipientPublicKey)),
    enc: toHex(sealed.enc),
    ciphertext: toHex(sealed.ciphertext),
  };
}

/**
 * Open dealer `dealer`'s sub-share for destination node `recipient` of a parsed version 2 bundle with
 * the recipient's key pair. Errors name the dealer: BadInput when it is wrapped to another key,
 * DecryptionFailed when it does not open (tampered, or made for another key, version, epoch, dealer,
 * recipient, size or dealing) or is not a scalar. Whether the value lies on the dealer's committed
 * polynomial is core/reshare.ts combineSubShares' check. The caller owns and zeroizes the result.
 */
export async function unwrapSubShare(bundle: KeyBundle, recipient: WrappingKeyPair, dealer: number, index: number): Promise<Uint8Array> {
  ensure(bundle.resharing !== undefined, ErrorCode.BadInput, 'bundle: a version 1 bundle has no sub-shares');
  ensure(typeof recipient === 'object' && recipient !== null && recipient.publicKey instanceof Uint8Array, ErrorCode.BadInput, 'recipient: expected a wrapping key pair');
  const r = bundle.resharing;
  const d = r.dealers.find((x) => x.index === dealer);
  ensure(d, ErrorCode.BadInput, `bundle: no dealer ${dealer}`);
  const entry = d.subShares.find((w) => w.index === index);
  ensure(entry, ErrorCode.BadInput, `bundle: dealer ${dealer} has no sub-share for node ${index}`);
  ensure(
    equalBytes(entry.wrappingKeyFingerprint, wrappingKeyFingerprint(recipient.publicKey)) && entry.kem === recipient.kem,
    ErrorCode.BadInput,
    `bundle: dealer ${dealer}'s sub-share for node ${index} is wrapped to the key with fingerprint ${toHex(entry.wrappingKeyFingerprint).slice(0, 16)}…, not to this ${recipient.kem} key (${toHex(wrappingKeyFingerprint(recipient.publicKey)).slice(0, 16)}…)`,
  );
  const suite = getSuite(r.source.suite);
  const aad = subShareBinding({
    keyId: bundle.keyId,
    keyVersion: bundle.keyVersion,
    source: r.source,
    dealer,
    recipient: index,
    target: { threshold: bundle.package.threshold, parties: bundle.package.parties },
    commitments: d.commitments,
  });
  let value: Uint8Array;
  try {
    value = await openFromSender(recipient, entry.wrapped, aad);
  } catch (e) {
    if (e instanceof TesseraError && e.code === ErrorCode.DecryptionFailed) {
      throw new TesseraError(
        ErrorCode.DecryptionFailed,
        `bundle: the sub-share of dealer ${dealer} for node ${index} does not open (tampered, or made for another key, version, epoch, node or export)`,
      );
    }
    throw e;
  }
  let ok = value.length === suite.group.scalarLength;
  try {
    if (ok) suite.group.scalarFromBytes(value, 'sub-share');
  } catch {
    ok = false;
  }
  if (!ok) {
    zeroize(value);
    throw new TesseraError(ErrorCode.DecryptionFailed, `bundle: the sub-share of dealer ${dealer} for node ${index} is not a scalar`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// External key stores

/**
 * The scalar that is shared for a private key from an external store:
 *   - ed25519: a 32-byte RFC 8032 seed; the scalar is the clamped first half of SHA-512(seed) reduced
 *     mod L (RFC 8032 §5.1.5, noble's getExtendedPublicKey), so signatures verify under the seed's
 *     usual public key;
 *   - secp256k1, bip340, p256: a 32-byte big-endian scalar (SEC 1 §2.3.6), 0 < d < n;
 *   - hpke-x25519: an X25519 private key (RFC 7748 §5 clamping, mod L);
 *   - hpke-p256: a P-256 scalar (RFC 9180 §7.1.2 DeserializePrivateKey).
 */
export function externalPrivateKeyToScalar(suite: Suite, privateKey: Uint8Array): bigint {
  ensure(privateKey instanceof Uint8Array && privateKey.length === 32, ErrorCode.BadScalar, `${suite.id} private key: expected 32 bytes`);
  if (suite.kind === 'kem') return suite.privateKeyToScalar(privateKey);
  if (suite.id === 'ed25519') {
    const ext = ed25519.utils.getExtendedPublicKey(privateKey);
    zeroize(ext.head, ext.prefix);
    ensure(ext.scalar !== 0n, ErrorCode.BadScalar, 'ed25519 seed gives a zero scalar');
    return ext.scalar;
  }
  return suite.group.scalarFromBytes(privateKey, `${suite.id} private key`);
}

/**
 * Split an external private key into t-of-n Shamir shares (RFC 9591 Appendix C.1 with C.2
 * commitments) and wrap share i to destinationImportKeys[i - 1] (or every share to the one key
 * given): an import bundle at epoch 0. `privateKey` stays the caller's (not wiped).
 */
export async function splitAndWrap(
  privateKey: Uint8Array,
  suiteId: SuiteId,
  threshold: number,
  parties: number,
  destinationImportKeys: readonly Uint8Array[],
  opts: { keyId: string; keyVersion?: number },
): Promise<KeyBundleJson> {
  const suite = getSuite(suiteId);
  checkThreshold(threshold, parties);
  ensure(typeof opts === 'object' && opts !== null && typeof opts.keyId === 'string' && ID_RE.test(opts.keyId), ErrorCode.BadInput, 'keyId must be 1-128 of [A-Za-z0-9._:-], starting alphanumeric');
  const keyVersion = opts.keyVersion ?? 1;
  const keys = wrappingKeysForParties(destinationImportKeys, parties);
  const { group } = suite;
  const secret = externalPrivateKeyToScalar(suite, privateKey);
  const sharing = split(group, secret, threshold, parties);
  const pkg: PublicKeyPackage = {
    suite: suite.id,
    threshold,
    parties,
    epoch: 0,
    commitments: sharing.commitments.map((c) => group.pointToBytes(c)),
    verifyingShares: sharing.shares.map((s) => group.pointToBytes(group.mulBase(s))),
  };
  const wrappedShares: WrappedShareJson[] = [];
  try {
    for (let i = 1; i <= parties; i++) {
      const value = group.scalarToBytes(sharing.shares[i - 1]!);
      try {
        wrappedShares.push(await wrapBundleShare({ publicKey: pkg, secret: { suite: suite.id, index: i, epoch: 0, value } }, { keyId: opts.keyId, keyVersion }, keys[i - 1]!));
      } finally {
        zeroize(value);
      }
    }
  } finally {
    sharing.shares.fill(0n); // bigints cannot be wiped; drop our references
  }
  return assembleBundle({ keyId: opts.keyId, keyVersion, package: pkg, wrappedShares });
}

/**
 * Turn a bundle into a standalone private key: unwrap every share for which a wrapping key pair is
 * given (each must open and match its verifying share), interpolate the scalar from them (RFC 9591
 * Appendix C.1 secret_share_combine; at least t are needed), and check scalar·G against the bundle's
 * group key before returning it. `scalar` is the secret scalar's SerializeScalar encoding (little-endian
 * for ed25519 and hpke-x25519, big-endian otherwise), not a private-key encoding (an Ed25519 private
 * key is a seed; sdk/formats.ts privateKeyEncodings gives the standard encodings that exist); the
 * caller owns and zeroizes it.
 */
export async function unwrapAndCombine(bundle: unknown, wrappingPrivateKeys: readonly WrappingKeyPair[]): Promise<{ scalar: Uint8Array; publicKey: Uint8Array }> {
  const b = parseBundle(bundle);
  ensure(
    b.resharing === undefined,
    ErrorCode.BadInput,
    `bundle: a version ${RESHARED_BUNDLE_VERSION} bundle is dealt to a destination cluster's import keys; import it there (\`tessera import\`)`,
  );
  ensure(Array.isArray(wrappingPrivateKeys), ErrorCode.BadInput, 'wrapping private keys: expected a list');
  const p = b.package;
  const suite = getSuite(p.suite);
  const { group } = suite;
  const fingerprints = wrappingPrivateKeys.map((k, i) => {
    ensure(typeof k === 'object' && k !== null && k.publicKey instanceof Uint8Array, ErrorCode.BadInput, `wrapping private key ${i + 1}: expected a key pair`);
    return wrappingKeyFingerprint(k.publicKey);
  });
  const opened: { index: number; value: bigint }[] = [];
  const wipe: Uint8Array[] = [];
  try {
    for (const entry of b.wrappedShares) {
      const k = fingerprints.findIndex((f) => equalBytes(f, entry.wrappingKeyFingerprint));
      if (k < 0) continue;
      const share = await unwrapBundleShare(b, wrappingPrivateKeys[k]!, entry.index);
      wipe.push(share.value);
      opened.push({ index: entry.index, value: group.scalarFromBytes(share.value, 'share') });
    }
    ensure(
      opened.length >= p.threshold,
      ErrorCode.BadInput,
      `need the wrapping keys of at least ${p.threshold} shares; the keys given open ${opened.length} of ${p.parties}`,
    );
    const secret = combine(group, opened);
    const committed = group.pointFromBytes(p.commitments[0]!, 'group key');
    ensure(group.eqPoints(group.mulBase(secret), committed), ErrorCode.VerificationFailed, 'the combined private key does not match the bundle public key');
    return { scalar: group.scalarToBytes(secret), publicKey: Uint8Array.from(b.publicKey) };
  } finally {
    zeroize(...wipe);
    for (const o of opened) o.value = 0n;
  }
}
