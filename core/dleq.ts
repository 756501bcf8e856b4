/**
 * Chaum–Pedersen proof of discrete-log equality: log_G(Y) = log_E(D), i.e. the prover knows k with
 * Y = k·G and D = k·E. Used by threshold decapsulation so that a party's partial D_i = share_i·E can
 * be checked against its public verifying share Y_i = share_i·G.
 *
 * The structure is RFC 9497 §2.2.1 GenerateProof / §2.2.2 VerifyProof with a single element (m = 1):
 * A = G, B = Y, C = E, D = D. With one element the composite step (ComputeComposites, §2.2.1) is the
 * identity up to a public weight, so it is skipped: M = C and Z = D. The proof is (c, s) with
 *   t2 = r·A, t3 = r·M, c = H(..., t2, t3, "Challenge"), s = r - c·k      (prover)
 *   t2 = s·A + c·B, t3 = s·M + c·Z, accept iff c == H(..., t2, t3, ...)   (verifier)
 *
 * Fiat–Shamir binding (unlike RFC 9497, which has no session): the challenge hashes the session id,
 * the prover's party index and every element of the statement, so a proof cannot be replayed into
 * another session, attributed to another party, or moved to another `enc`.
 */
import { concatBytes, framed, i2osp, utf8ToBytes } from './bytes.js';
import { ErrorCode, ensure } from './errors.js';
import type { Point } from './group.js';
import type { Suite } from './suites.js';

/** What the proof is bound to besides the four elements. */
export interface DleqBinding {
  /** The session id (16..64 bytes; checked by the caller). */
  readonly sessionId: Uint8Array;
  /** The prover's 1-based party index. */
  readonly index: number;
}

/** A proof (c, s) as in RFC 9497 §2.2.1: challenge c and response s = r - c·k. */
export interface DleqProof {
  readonly challenge: bigint;
  readonly response: bigint;
}

/** Domain-separation tag for the challenge hash, per suite. */
function challengeDst(suite: Suite): Uint8Array {
  return utf8ToBytes(`${suite.contextString}-DLEQ-Challenge`);
}

/**
 * The challenge input: length-framed session id, index, G, Y (= B), E (= C), D (= Z) and the
 * commitments t2, t3, then the RFC 9497 "Challenge" label. Framing makes the encoding unambiguous.
 */
function challenge(suite: Suite, binding: DleqBinding, Y: Point, E: Point, D: Point, t2: Point, t3: Point): bigint {
  const g = suite.group;
  const input = concatBytes(
    framed(
      binding.sessionId,
      i2osp(binding.index, 2),
      g.pointToBytes(g.base),
      g.pointToBytes(Y),
      g.pointToBytes(E),
      g.pointToBytes(D),
      g.pointToBytes(t2),
      g.pointToBytes(t3),
    ),
    utf8ToBytes('Challenge'),
  );
  return g.hashToScalar(challengeDst(suite), input);
}

/**
 * RFC 9497 §2.2.1 GenerateProof for one element: prove Y = k·G and D = k·E.
 * `k` is secret: the nonce commitments use the constant-time mulBase / mulPoint; the scalar
 * arithmetic s = r - c·k is bigint arithmetic (not constant time; noble's field ops are not either).
 */
export function dleqProve(suite: Suite, k: bigint, Y: Point, E: Point, D: Point, binding: DleqBinding): DleqProof {
  checkBinding(binding);
  const g = suite.group;
  const r = g.randomScalar();
  const t2 = g.mulBase(r);
  const t3 = g.mulPoint(E, r);
  const c = challenge(suite, binding, Y, E, D, t2, t3);
  const s = g.sub(r, g.mul(c, k));
  return { challenge: c, response: s };
}

/**
 * RFC 9497 §2.2.2 VerifyProof for one element. Public inputs only, so variable-time msm is used.
 * Returns false (never throws) for a proof that does not verify, including one whose recomputed
 * commitments are the identity (an honest prover's never are).
 */
export function dleqVerify(suite: Suite, Y: Point, E: Point, D: Point, proof: DleqProof, binding: DleqBinding): boolean {
  checkBinding(binding);
  const g = suite.group;
  const { challenge: c, response: s } = proof;
  if (c < 0n || c >= g.order || s < 0n || s >= g.order) return false;
  const t2 = g.msm([g.base, Y], [s, c]);
  const t3 = g.msm([E, D], [s, c]);
  if (g.isIdentity(t2) || g.isIdentity(t3)) return false;
  return challenge(suite, binding, Y, E, D, t2, t3) === c;
}

function checkBinding(b: DleqBinding): void {
  ensure(b.sessionId instanceof Uint8Array, ErrorCode.BadInput, 'DLEQ: session id must be bytes');
  ensure(Number.isSafeInteger(b.index) && b.index >= 1 && b.index <= 0xffff, ErrorCode.BadInput, 'DLEQ: party index out of range');
}
