/**
 * Properties of refresh (fast-check, few runs: noble arithmetic is slow):
 *   - after k refreshes (k in 1..3) any t shares still sign under the original public key;
 *   - t-1 shares do not: their interpolation is not the key, and signing / aggregation with t-1
 *     signers is rejected;
 *   - shares of different epochs never combine: a signer with an old-epoch key among new ones is
 *     named (BadSignatureShare), and an old share with the new package is EpochMismatch.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import type { SignCommitMsg, SignShareMsg } from '../../core/messages.js';
import { combine } from '../../core/shamir.js';
import { aggregateSignature, groupPublicKey, signRound1, signRound2, type SigningNonces } from '../../core/sign.js';
import { getSigningSuite, type SigningSuiteId } from '../../core/suites.js';
import type { KeyShare, PublicKeyPackage } from '../../core/types.js';
import { runDkg, runRefresh } from '../helpers/run-dkg.js';
import { runSign, signWith } from '../helpers/run-sign.js';
import { thrown } from '../helpers/thrown.js';

const NUM_RUNS = 6;

const params = fc.record({
  suite: fc.constantFrom<SigningSuiteId>('ed25519', 'secp256k1'),
  shape: fc.constantFrom<[number, number]>([2, 3], [3, 4]),
  refreshes: fc.integer({ min: 1, max: 3 }),
  seed: fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 4, maxLength: 4 }),
  message: fc.uint8Array({ minLength: 0, maxLength: 64 }),
});

/** A deterministic choice of `size` distinct parties out of 1..n from the seed. */
function choose(seed: number[], n: number, size: number): number[] {
  const pool = Array.from({ length: n }, (_, k) => k + 1);
  const out: number[] = [];
  for (let k = 0; k < size; k++) out.push(pool.splice(seed[k % seed.length]! % pool.length, 1)[0]!);
  return out.sort((a, b) => a - b);
}

/** Key histories: epochs[e][i-1] is party i's key at epoch e. */
function history(suite: SigningSuiteId, t: number, n: number, refreshes: number): KeyShare[][] {
  const epochs = [runDkg(suite, t, n)];
  for (let e = 0; e < refreshes; e++) epochs.push(runRefresh(epochs[e]!));
  return epochs;
}

describe('refresh properties', () => {
  it('after k refreshes any t shares sign under the same key; t-1 shares cannot', () => {
    fc.assert(
      fc.property(params, ({ suite: id, shape: [t, n], refreshes, seed, message }) => {
        const suite = getSigningSuite(id);
        const { group } = suite;
        const epochs = history(id, t, n, refreshes);
        const first = epochs[0]![0]!.publicKey;
        const last = epochs[refreshes]!;
        const pkg = last[0]!.publicKey;
        expect(pkg.epoch).toBe(refreshes);
        const publicKey = groupPublicKey(suite, first);
        expect(Buffer.from(groupPublicKey(suite, pkg)).equals(Buffer.from(publicKey))).toBe(true);

        // Any t: sign and verify under the epoch-0 public key.
        const signers = choose(seed, n, t);
        const sig = runSign(signers.map((i) => last[i - 1]!), message);
        expect(suite.verify(sig, message, publicKey)).toBe(true);

        // t-1 shares: the interpolated secret is not the key's discrete log ...
        const few = signers.slice(0, t - 1).map((i) => last[i - 1]!);
        const groupKey = group.pointFromBytes(pkg.commitments[0]!, 'group key');
        const partial = combine(group, few.map((k) => ({ index: k.secret.index, value: group.scalarFromBytes(k.secret.value, 's', true) })));
        expect(group.eqPoints(group.mulBase(partial), groupKey)).toBe(false);

        // ... signing with t-1 signers is refused by the signers ...
        const r1 = few.map((k) => signRound1(suite, k.secret));
        const commits = new Map(few.map((k, p) => [k.secret.index, r1[p]!.commit]));
        expect(thrown(() => signRound2(suite, few[0]!, r1[0]!.nonces, commits, message)).code).toBe(ErrorCode.BadParameters);
        // ... and aggregation with t-1 signers is rejected by the aggregator.
        const fakeShares = new Map(few.map((k) => [k.secret.index, { share: group.scalarToBytes(group.randomScalar()) }]));
        expect(thrown(() => aggregateSignature(suite, pkg, commits, message, fakeShares)).code).toBe(ErrorCode.BadParameters);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('shares of different epochs do not combine: the stale signer is named, or EpochMismatch', () => {
    fc.assert(
      fc.property(params, ({ suite: id, shape: [t, n], refreshes, seed, message }) => {
        const suite = getSigningSuite(id);
        const { group } = suite;
        const epochs = history(id, t, n, refreshes);
        const last = epochs[refreshes]!;
        const pkg = last[0]!.publicKey;
        const signers = choose(seed, n, t);
        const stale = signers[seed[0]! % t]!;
        const oldEpoch = seed[1]! % refreshes; // 0..refreshes-1
        const oldKey = epochs[oldEpoch]![stale - 1]!;

        // The stale signer signs honestly with its old key: the aggregator (new package) names it.
        const mixed = signers.map((i) => (i === stale ? oldKey : last[i - 1]!));
        const e1 = thrown(() => signWith(mixed, pkg, message));
        expect(e1.code).toBe(ErrorCode.BadSignatureShare);
        expect(e1.culprits).toEqual([stale]);

        // An old share with the new package never gets as far as signing.
        const r = signRound1(suite, oldKey.secret);
        const commits = new Map<number, SignCommitMsg>([[stale, r.commit]]);
        for (const i of signers) if (i !== stale) commits.set(i, signRound1(suite, last[i - 1]!.secret).commit);
        const e2 = thrown(() => signRound2(suite, { publicKey: pkg, secret: oldKey.secret }, r.nonces, commits, message));
        expect(e2.code).toBe(ErrorCode.EpochMismatch);
        // The test helper refuses mixed epochs outright.
        expect(thrown(() => runSign(mixed, message)).code).toBe(ErrorCode.EpochMismatch);

        // And in the clear: mixing epochs does not interpolate to the key.
        const values = mixed.map((k) => ({ index: k.secret.index, value: group.scalarFromBytes(k.secret.value, 's', true) }));
        expect(group.eqPoints(group.mulBase(combine(group, values)), group.pointFromBytes(pkg.commitments[0]!, 'Y'))).toBe(false);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
