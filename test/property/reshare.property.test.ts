/**
 * Properties of resharing (core/reshare.ts pure API; fast-check, few runs: noble arithmetic is slow).
 * For a random old sharing (t, n), any dealer set of at least t old holders and any new committee of
 * 2..6 nodes out of 1..9 with any t':
 *   - the new package keeps the group key, is at epoch + 1, and lists the committee (omitted for 1..n');
 *   - every new verifying share is its share times G, and any t' new shares interpolate to the secret;
 *   - t'-1 new shares do not, and neither does a set of t' shares with one old share in it.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { combineSubShares, dealReshare, resharedPackage, type ReshareTarget } from '../../core/reshare.js';
import { combine } from '../../core/shamir.js';
import { getSuite, type SuiteId } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import { verifyingShareOf } from '../../core/committee.js';
import { runDkg } from '../helpers/run-dkg.js';

const NUM_RUNS = 6;

/** A deterministic choice of `size` distinct members of `pool` from the seed, ascending. */
function choose(seed: readonly number[], pool: readonly number[], size: number): number[] {
  const left = [...pool];
  const out: number[] = [];
  for (let k = 0; k < size; k++) out.push(left.splice(seed[k % seed.length]! % left.length, 1)[0]!);
  return out.sort((a, b) => a - b);
}

const params = fc.record({
  suite: fc.constantFrom<SuiteId>('ed25519', 'secp256k1'),
  shape: fc.constantFrom<[number, number]>([2, 3], [3, 4], [2, 4]),
  committeeSize: fc.integer({ min: 2, max: 6 }),
  newThresholdSeed: fc.integer({ min: 0, max: 100 }),
  extraDealers: fc.integer({ min: 0, max: 2 }),
  seed: fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 6, maxLength: 6 }),
});

describe('reshare properties', () => {
  it('any dealer set of >= t old holders reshares to any committee and t\' with the same secret', () => {
    fc.assert(
      fc.property(params, ({ suite: suiteId, shape: [t, n], committeeSize, newThresholdSeed, extraDealers, seed }) => {
        const { group } = getSuite(suiteId);
        const old = runDkg(suiteId, t, n);
        const oldPkg = old[0]!.publicKey;
        const value = (k: KeyShare) => ({ index: k.secret.index, value: group.scalarFromBytes(k.secret.value, 'share', true) });
        const secret = combine(group, old.slice(0, t).map(value));

        const committee = choose(seed, [1, 2, 3, 4, 5, 6, 7, 8, 9], committeeSize);
        const target: ReshareTarget = { threshold: 2 + (newThresholdSeed % (committeeSize - 1)), indices: committee };
        const dealers = choose(seed.slice(1), old.map((k) => k.secret.index), Math.min(n, t + extraDealers));

        const dealt = new Map<number, Uint8Array[]>();
        const subs = new Map<number, Map<number, Uint8Array>>();
        for (const i of dealers) {
          const d = dealReshare(oldPkg, old[i - 1]!.secret, target);
          dealt.set(i, d.commitments);
          for (const [j, v] of d.subShares) subs.set(j, (subs.get(j) ?? new Map()).set(i, v));
        }
        const pkg = resharedPackage(oldPkg, dealt, target);
        expect(pkg.commitments[0]).toEqual(oldPkg.commitments[0]);
        expect(pkg.epoch).toBe(oldPkg.epoch + 1);
        expect(pkg.threshold).toBe(target.threshold);
        expect(pkg.parties).toBe(committee.length);
        if (committee.every((i, k) => i === k + 1)) expect(pkg.indices).toBeUndefined();
        else expect(pkg.indices).toEqual(committee);

        const fresh = committee.map((j) => ({ publicKey: pkg, secret: combineSubShares(oldPkg, dealt, subs.get(j)!, j, pkg) }));
        for (const k of fresh) {
          expect(group.eqPoints(group.mulBase(value(k).value), group.pointFromBytes(verifyingShareOf(pkg, k.secret.index), 'Y'))).toBe(true);
        }
        const some = choose(seed.slice(2), committee, target.threshold);
        const pickNew = (idx: number[]) => fresh.filter((k) => idx.includes(k.secret.index)).map(value);
        expect(combine(group, pickNew(some))).toBe(secret);
        expect(combine(group, pickNew(some.slice(1)))).not.toBe(secret);
        // One old share in place of a new one (an old holder whose index is not among the others).
        const oldOne = old.find((k) => !some.slice(1).includes(k.secret.index))!;
        expect(combine(group, [value(oldOne), ...pickNew(some.slice(1))])).not.toBe(secret);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
