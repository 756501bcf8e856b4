/**
 * Threshold decapsulation of an RFC 9180 DHKEM whose private key skR is Shamir-shared.
 *
 * RFC 9180 §4.1 DHKEM Decap(enc, skR):
 *   pkE = DeserializePublicKey(enc); dh = DH(skR, pkE)
 *   kem_context = enc || SerializePublicKey(pk(skR))
 *   shared_secret = ExtractAndExpand(dh, kem_context)
 *
 * Here DH(skR, pkE) is computed in the exponent: each party i returns D_i = share_i·E with a
 * Chaum–Pedersen proof (core/dleq.ts) that log_G(Y_i) = log_E(D_i) for its verifying share Y_i;
 * the combiner checks every proof, interpolates skR·E = Σ λ_i·D_i (RFC 9591 §4.2 Lagrange
 * coefficients at 0) and finishes ExtractAndExpand itself (core/hpke.ts). No party learns skR.
 *
 * X25519: the suite (core/suites.ts) maps `enc` to the prime-order component E and shares the clamped
 * private scalar mod L, so encode(skR·E) equals X25519(skR, enc) byte for byte.
 *
 * Policy on cheaters: decapCombine verifies every partial it is given and, if any fails, throws
 * BadProof naming ALL failing parties (and only them). It does not silently drop them and continue:
 * the caller (the session layer) decides whether to retry with the remaining parties, which keeps
 * this function's result a pure function of its inputs and makes every exclusion visible.
 */
import { concatBytes, zeroize } from './bytes.js';
import { dleqProve, dleqVerify } from './dleq.js';
import { ErrorCode, TesseraError, ensure } from './errors.js';
import type { Point } from './group.js';
import { extractAndExpand } from './hpke.js';
import type { DecapPartialMsg } from './messages.js';
import { isParty, verifyingShareOf } from './committee.js';
import { checkPackageCommittee, interpolatePoints } from './shamir.js';
import type { KemSuite } from './suites.js';
import type { KeyShare, PublicKeyPackage } from './types.js';

const SESSION_ID_MIN = 16;
const SESSION_ID_MAX = 64;

function checkSessionId(sessionId: unknown): asserts sessionId is Uint8Array {
  ensure(
    sessionId instanceof Uint8Array && sessionId.length >= SESSION_ID_MIN && sessionId.length <= SESSION_ID_MAX,
    ErrorCode.BadInput,
    `session id must be ${SESSION_ID_MIN}..${SESSION_ID_MAX} bytes`,
  );
}

function checkKemSuite(suite: KemSuite): void {
  ensure(suite && suite.kind === 'kem', ErrorCode.UnknownSuite, 'decapsulation needs a KEM suite');
}

/** Shape checks of a public key package for `suite`; returns the decoded group key. */
function checkPackage(suite: KemSuite, pkg: PublicKeyPackage): Point {
  ensure(pkg && pkg.suite === suite.id, ErrorCode.UnknownSuite, `key package is for suite ${String(pkg?.suite)}, not ${suite.id}`);
  checkPackageCommittee(pkg, 'key package');
  ensure(Number.isSafeInteger(pkg.epoch) && pkg.epoch >= 0, ErrorCode.BadInput, 'key package epoch must be a non-negative integer');
  ensure(
    Array.isArray(pkg.commitments) && pkg.commitments.length === pkg.threshold,
    ErrorCode.BadInput,
    `key package must hold ${pkg.threshold} commitments`,
  );
  ensure(
    Array.isArray(pkg.verifyingShares) && pkg.verifyingShares.length === pkg.parties,
    ErrorCode.BadInput,
    `key package must hold ${pkg.parties} verifying shares`,
  );
  return suite.group.pointFromBytes(pkg.commitments[0]!, 'group key');
}

/**
 * `enc` after RFC 9180 §4.1 DeserializePublicKey with the suite's validity checks (suite.encToPoint:
 * wrong length, twist point, small-order point -> BadPoint). A caller that validates `enc` before it
 * computes (node/service.ts decapsulate checks it before reading any share) passes this to decapPartial
 * or decapCombine, which then do not decode it again: on hpke-x25519 the Montgomery-to-Edwards map
 * and the projection onto the prime-order subgroup are most of a partial decapsulation's cost.
 * Only decodeEnc makes these objects; the bytes are a private copy.
 */
export class DecodedEnc {
  readonly #suite: string;
  readonly #enc: Uint8Array;
  readonly #point: Point;
  private constructor(suite: string, enc: Uint8Array, point: Point) {
    this.#suite = suite;
    this.#enc = enc;
    this.#point = point;
    Object.freeze(this);
  }
  /** @internal Used by decodeEnc only. */
  static decode(suite: KemSuite, enc: Uint8Array): DecodedEnc {
    checkKemSuite(suite);
    const point = suite.encToPoint(enc);
    return new DecodedEnc(suite.id, Uint8Array.from(enc), point);
  }
  /** The suite id this `enc` was decoded for. */
  get suite(): string {
    return this.#suite;
  }
  /** A copy of the `enc` bytes. */
  bytes(): Uint8Array {
    return this.#enc.slice();
  }
  /** The decoded point E (for decapPartial / decapCombine of the same suite). */
  pointFor(suite: KemSuite): Point {
    ensure(suite.id === this.#suite, ErrorCode.UnknownSuite, `enc was decoded for suite ${this.#suite}, not ${suite.id}`);
    return this.#point;
  }
}

/** Decode and validate `enc` once (see DecodedEnc). Throws BadPoint like suite.encToPoint. */
export function decodeEnc(suite: KemSuite, enc: Uint8Array): DecodedEnc {
  return DecodedEnc.decode(suite, enc);
}

function encPoint(suite: KemSuite, enc: Uint8Array | DecodedEnc): Point {
  return enc instanceof DecodedEnc ? enc.pointFor(suite) : suite.encToPoint(enc);
}

/**
 * Party side: D_i = share_i·E and a DLEQ proof against Y_i = share_i·G, bound to the session.
 * Validates `enc` first (wrong length, twist point, small-order point -> BadPoint).
 */
export function decapPartial(suite: KemSuite, key: KeyShare, enc: Uint8Array | DecodedEnc, sessionId: Uint8Array): DecapPartialMsg {
  checkKemSuite(suite);
  checkSessionId(sessionId);
  ensure(key && key.secret && key.publicKey, ErrorCode.BadInput, 'key share missing');
  const pkg = key.publicKey;
  const secret = key.secret;
  ensure(secret.suite === suite.id, ErrorCode.UnknownSuite, `key share is for suite ${String(secret.suite)}, not ${suite.id}`);
  checkPackage(suite, pkg);
  ensure(secret.epoch === pkg.epoch, ErrorCode.EpochMismatch, `share epoch ${secret.epoch} does not match key package epoch ${pkg.epoch}`);
  const index = secret.index;
  ensure(isParty(pkg, index), ErrorCode.BadParameters, `share of party ${String(index).slice(0, 12)}: not a holder of this key`);

  const g = suite.group;
  // RFC 9180 §4.1 Decap: pkE = DeserializePublicKey(enc), with the suite's validity checks.
  const E = encPoint(suite, enc);
  const share = g.scalarFromBytes(secret.value, 'key share');
  const Y = g.pointFromBytes(verifyingShareOf(pkg, index), `verifying share ${index}`);
  // Our own share must match our own verifying share, or every partial we send would be blamed on us.
  ensure(g.eqPoints(g.mulBase(share), Y), ErrorCode.BadShare, `key share ${index} does not match its verifying share`);

  const D = g.mulPoint(E, share);
  const proof = dleqProve(suite, share, Y, E, D, { sessionId, index });
  return {
    partial: g.pointToBytes(D),
    proofChallenge: g.scalarToBytes(proof.challenge),
    proofResponse: g.scalarToBytes(proof.response),
  };
}

/**
 * Combiner side: check counts and indexes, validate `enc`, verify every partial's proof, interpolate
 * skR·E from all of them and return the RFC 9180 §4.1 DHKEM shared_secret.
 *
 * Throws, before any crypto: BadInput (session id), UnknownSuite (suite/package mismatch),
 * BadParameters (fewer than t partials), UnexpectedParty (a party that holds no share of the key), BadPoint (`enc`).
 * Then BadProof naming every party whose partial is malformed or whose proof does not verify.
 *
 * The epoch is enforced through the verifying shares: a partial made with a share of another epoch
 * does not verify against this package's Y_i and its sender is named.
 */
export function decapCombine(
  suite: KemSuite,
  pkg: PublicKeyPackage,
  encInput: Uint8Array | DecodedEnc,
  partials: Map<number, DecapPartialMsg>,
  sessionId: Uint8Array,
): Uint8Array {
  checkKemSuite(suite);
  checkSessionId(sessionId);
  const groupKey = checkPackage(suite, pkg);
  ensure(partials instanceof Map, ErrorCode.BadInput, 'partials must be a Map keyed by party index');
  const indexes = [...partials.keys()].sort((a, b) => a - b);
  const outside = indexes.filter((i) => !isParty(pkg, i));
  ensure(outside.length === 0, ErrorCode.UnexpectedParty, 'partials from parties that are not holders of this key');
  // Map keys are distinct by construction; the check documents the requirement for interpolation.
  ensure(new Set(indexes).size === indexes.length, ErrorCode.BadParameters, 'duplicate party index');
  ensure(
    indexes.length >= pkg.threshold,
    ErrorCode.BadParameters,
    `need at least ${pkg.threshold} partial decapsulations, got ${indexes.length}`,
  );

  const g = suite.group;
  const E = encPoint(suite, encInput);
  const enc = encInput instanceof DecodedEnc ? encInput.bytes() : encInput;

  const culprits: number[] = [];
  const points: { index: number; point: Point }[] = [];
  for (const index of indexes) {
    const msg = partials.get(index)!;
    const D = decodePartial(suite, msg);
    if (D === null) {
      culprits.push(index);
      continue;
    }
    const Y = g.pointFromBytes(verifyingShareOf(pkg, index), `verifying share ${index}`);
    if (!dleqVerify(suite, Y, E, D.point, D.proof, { sessionId, index })) {
      culprits.push(index);
      continue;
    }
    points.push({ index, point: D.point });
  }
  if (culprits.length > 0) {
    throw new TesseraError(
      ErrorCode.BadProof,
      `partial decapsulation from part${culprits.length === 1 ? 'y' : 'ies'} ${culprits.join(', ')} failed verification`,
      culprits,
    );
  }

  // Lagrange interpolation in the exponent over every verified partial (>= t of them): skR·E.
  const dhPoint = interpolatePoints(g, points);
  ensure(!g.isIdentity(dhPoint), ErrorCode.VerificationFailed, 'decapsulation produced the identity');

  // RFC 9180 §4.1 Decap: dh = DH(skR, pkE); kem_context = enc || pkRm; ExtractAndExpand.
  const dh = suite.dhBytes(dhPoint);
  const pkR = suite.publicKeyBytes(groupKey);
  const kemContext = concatBytes(enc, pkR);
  const sharedSecret = extractAndExpand(suite.kdfHash, suite.kemId, dh, kemContext, suite.secretLength);
  zeroize(dh);
  return sharedSecret;
}

/** Decode one partial message; null if any field has the wrong type, length or encoding. */
function decodePartial(
  suite: KemSuite,
  msg: DecapPartialMsg | undefined,
): { point: Point; proof: { challenge: bigint; response: bigint } } | null {
  const g = suite.group;
  if (!msg || typeof msg !== 'object') return null;
  try {
    const point = g.pointFromBytes(msg.partial, 'partial decapsulation');
    // c may be zero in principle (probability 1/order); s likewise.
    const challenge = g.scalarFromBytes(msg.proofChallenge, 'DLEQ challenge', true);
    const response = g.scalarFromBytes(msg.proofResponse, 'DLEQ response', true);
    return { point, proof: { challenge, response } };
  } catch (e) {
    if (e instanceof TesseraError) return null;
    throw e;
  }
}
