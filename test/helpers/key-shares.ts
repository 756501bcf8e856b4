/**
 * Key shares for store tests and benchmarks: a real Feldman sharing (core/shamir.ts split) of a random
 * ed25519 secret, so the public package is consistent and a refreshed epoch of the same secret keeps
 * the group key. Shared by the tests that only need "some share" to store.
 */
import { split } from '../../core/shamir.js';
import { ED25519 } from '../../core/suites.js';
import type { KeyShare, PublicKeyPackage } from '../../core/types.js';

const group = ED25519.group;

/** n shares of `secret` (random if omitted) at `epoch`, t-of-n. */
export function makeShares(epoch: number, secret = group.randomScalar(), t = 2, n = 3): { shares: KeyShare[]; secret: bigint } {
  const { shares, commitments } = split(group, secret, t, n);
  const publicKey: PublicKeyPackage = {
    suite: 'ed25519',
    threshold: t,
    parties: n,
    epoch,
    commitments: commitments.map((c) => group.pointToBytes(c)),
    verifyingShares: shares.map((s) => group.pointToBytes(group.mulBase(s))),
  };
  return {
    secret,
    shares: shares.map((s, i) => ({ publicKey, secret: { suite: 'ed25519', index: i + 1, epoch, value: group.scalarToBytes(s) } })),
  };
}

/** Share 1 of a fresh random 2-of-3 ed25519 key at epoch 0. */
export function sampleShare(): KeyShare {
  return makeShares(0).shares[0]!;
}
