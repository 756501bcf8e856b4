/**
 * Test helpers for FROST signing: run the whole two-round protocol in memory, and deal keys with a
 * trusted dealer (core/shamir.ts split) for tests that need keys without running a DKG.
 */
import { aggregateSignature, signRound1, signRound2, type SigningNonces } from '../../core/sign.js';
import { ErrorCode, TesseraError, ensure } from '../../core/errors.js';
import type { SignCommitMsg, SignShareMsg } from '../../core/messages.js';
import { checkPlayers, split } from '../../core/shamir.js';
import { getSigningSuite, getSuite, type SuiteId } from '../../core/suites.js';
import type { KeyShare, PublicKeyPackage } from '../../core/types.js';

/** Sign `message` with the given signers' keys (all honest, in memory); returns the verified signature. */
export function runSign(keys: KeyShare[], message: Uint8Array): Uint8Array {
  ensure(Array.isArray(keys) && keys.length > 0, ErrorCode.BadParameters, 'runSign: no signers');
  const pkg = keys[0]!.publicKey;
  for (const k of keys) {
    ensure(k.publicKey.epoch === pkg.epoch && k.secret.epoch === pkg.epoch, ErrorCode.EpochMismatch, 'runSign: signers at different epochs');
  }
  // A Map would silently merge two signers with one index: reject duplicates here.
  checkPlayers(
    keys.map((k) => k.secret.index),
    Number.MAX_SAFE_INTEGER,
  );

  return signWith(keys, pkg, message);
}

/**
 * The two rounds without runSign's checks: every signer signs with its own KeyShare and the
 * aggregator uses `pkg` (tests use it to mix epochs on purpose).
 */
export function signWith(keys: KeyShare[], pkg: PublicKeyPackage, message: Uint8Array): Uint8Array {
  const suite = getSigningSuite(pkg.suite);
  const nonces = new Map<number, SigningNonces>();
  const commits = new Map<number, SignCommitMsg>();
  for (const k of keys) {
    const r1 = signRound1(suite, k.secret);
    nonces.set(k.secret.index, r1.nonces);
    commits.set(k.secret.index, r1.commit);
  }
  const shares = new Map<number, SignShareMsg>();
  for (const k of keys) shares.set(k.secret.index, signRound2(suite, k, nonces.get(k.secret.index)!, commits, message));
  return aggregateSignature(suite, pkg, commits, message, shares);
}

/**
 * Trusted-dealer keys (RFC 9591 Appendix C) for parties 1..n of any suite: a random secret unless
 * one is given, at the given epoch.
 */
export function dealerKeys(
  suiteId: SuiteId,
  threshold: number,
  parties: number,
  opts: { epoch?: number; secret?: bigint } = {},
): KeyShare[] {
  const epoch = opts.epoch ?? 0;
  const { group } = getSuite(suiteId);
  const { shares, commitments } = split(group, opts.secret ?? group.randomScalar(), threshold, parties);
  const publicKey = {
    suite: suiteId,
    threshold,
    parties,
    epoch,
    commitments: commitments.map((c) => group.pointToBytes(c)),
    verifyingShares: shares.map((s) => group.pointToBytes(group.mulBase(s))),
  };
  return shares.map((s, k) => ({
    publicKey,
    secret: { suite: suiteId, index: k + 1, epoch, value: group.scalarToBytes(s) },
  }));
}

export { TesseraError };
