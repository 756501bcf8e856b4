/**
 * The one closed set of errors that Tessera's core raises.
 *
 * Every failure that core/ can detect is a `TesseraError` with a `code` from `ErrorCode`.
 * Protocol failures that can be attributed carry `culprits`: the 1-based party indexes whose
 * messages were shown to be bad. An honest party is never listed.
 *
 * Messages never contain key material: only names, lengths, indexes and ids.
 *
 * An Equivocation error also carries `evidence`: for each culprit, the two conflicting messages it
 * signed (core/evidence.ts). Anyone holding the culprit's identity public key can check it with
 * verifyEquivocationEvidence, so a culprit is never named on this party's word alone.
 */
import type { EquivocationEvidence } from './evidence.js';

export const ErrorCode = {
  /** Input of the wrong type, length or encoding (hex, counts, duplicates, ranges). */
  BadInput: 'BAD_INPUT',
  /** A scalar that is not canonical (>= group order) or is zero where zero is not allowed. */
  BadScalar: 'BAD_SCALAR',
  /** A point that does not decode, is not on the curve, is the identity or not in the subgroup. */
  BadPoint: 'BAD_POINT',
  /** A wire message with the wrong version, unknown fields, missing fields or bad framing. */
  BadMessage: 'BAD_MESSAGE',
  /** A suite id that is not registered, or a suite that does not fit the operation. */
  UnknownSuite: 'UNKNOWN_SUITE',
  /** Threshold / party-count parameters that do not fit (t < 2, t > n, player set wrong). */
  BadParameters: 'BAD_PARAMETERS',
  /** A proof (proof of knowledge, DLEQ) that does not verify. Carries culprits. */
  BadProof: 'BAD_PROOF',
  /** A secret share that does not verify against its commitments. Carries culprits. */
  BadShare: 'BAD_SHARE',
  /** A signature share that does not verify. Carries culprits. */
  BadSignatureShare: 'BAD_SIGNATURE_SHARE',
  /** A party sent different broadcasts to different parties (echo mismatch). Carries culprits. */
  Equivocation: 'EQUIVOCATION',
  /** Parties disagree on a public result (DKG confirmation, refresh confirmation). */
  ConfirmationMismatch: 'CONFIRMATION_MISMATCH',
  /** Shares or packages from different epochs were combined. */
  EpochMismatch: 'EPOCH_MISMATCH',
  /** A message from a party that is not in the session, or missing from an expected party. */
  UnexpectedParty: 'UNEXPECTED_PARTY',
  /** A round function called in the wrong state (out of order, reused one-time state). */
  BadState: 'BAD_STATE',
  /** Authenticated decryption failed (wrapped share, channel message). */
  DecryptionFailed: 'DECRYPTION_FAILED',
  /** A final result (signature, public key) failed its last verification. */
  VerificationFailed: 'VERIFICATION_FAILED',
  /** A key, version or session that does not exist for this caller (also what another tenant's key looks like). */
  NotFound: 'NOT_FOUND',
  /** A key id / version that already exists. */
  AlreadyExists: 'ALREADY_EXISTS',
  /** Missing or unknown API key. */
  Unauthorized: 'UNAUTHORIZED',
  /** The operator's policy hook or the node's policy refused the request. */
  PolicyDenied: 'POLICY_DENIED',
  /** The session was aborted: digests differ, a node is offline, it expired, or a node failed. */
  SessionAborted: 'SESSION_ABORTED',
  /** The service cannot serve now (not connected, shutting down, policy store unreadable). */
  Unavailable: 'UNAVAILABLE',
  /**
   * A presignature cannot be used (node/presign/): its pool is unknown (the node restarted, or the key
   * changed since), the entry was already used or never handed out, the request names another epoch
   * or version than the pool's, or the node's pools are full. Nothing was signed and no nonce of the
   * request was consumed unless the message says so; the SDK falls back to two-round signing.
   */
  PresignatureUnavailable: 'PRESIGNATURE_UNAVAILABLE',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const CODES = new Set<string>(Object.values(ErrorCode));

export class TesseraError extends Error {
  readonly code: ErrorCode;
  /** 1-based party indexes shown to have misbehaved; empty when no party can be blamed. */
  readonly culprits: readonly number[];
  /** Transferable evidence against the culprits (Equivocation); empty otherwise. Public data only. */
  readonly evidence: readonly EquivocationEvidence[];

  constructor(code: ErrorCode, message: string, culprits: readonly number[] = [], evidence: readonly EquivocationEvidence[] = []) {
    super(message);
    this.name = 'TesseraError';
    this.code = code;
    this.culprits = Object.freeze([...new Set(culprits)].sort((a, b) => a - b));
    this.evidence = Object.freeze([...evidence]);
  }

  toJSON(): { code: ErrorCode; message: string; culprits: readonly number[] } {
    return { code: this.code, message: this.message, culprits: this.culprits };
  }
}

export function isTesseraError(e: unknown): e is TesseraError {
  return e instanceof TesseraError && CODES.has(e.code);
}

/** Throw a TesseraError unless `cond` holds. */
export function ensure(cond: unknown, code: ErrorCode, message: string, culprits?: readonly number[]): asserts cond {
  if (!cond) throw new TesseraError(code, message, culprits);
}

/**
 * Run a library call and turn whatever it throws into a TesseraError of `code`.
 * Library messages are dropped (they may echo inputs); `what` names the failing step instead.
 */
export function guard<T>(code: ErrorCode, what: string, fn: () => T, culprits?: readonly number[]): T {
  try {
    return fn();
  } catch (e) {
    if (isTesseraError(e)) throw e;
    throw new TesseraError(code, what, culprits);
  }
}

export async function guardAsync<T>(
  code: ErrorCode,
  what: string,
  fn: () => Promise<T>,
  culprits?: readonly number[],
): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isTesseraError(e)) throw e;
    throw new TesseraError(code, what, culprits);
  }
}
