import { describe, expect, it } from 'vitest';
import { combineSubShares, dealReshare, resharedPackage, type ReshareTarget } from '../../core/reshare.js';
import { combine } from '../../core/shamir.js';
import { getSuite, SUITE_IDS } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import { runDkg } from '../helpers/run-dkg.js';

function pureReshare(keys: KeyShare[], dealers: number[], target: ReshareTarget): KeyShare[] {
  const old = keys[0]!.publicKey;
  const dealt = new Map<number, Uint8Array[]>();
  const subs = new Map<number, Map<number, Uint8Array>>();
  for (const i of dealers) {
    const k = keys.find((x) => x.secret.index === i)!;
    const d = dealReshare(old, k.secret, target);
    dealt.set(i, d.commitments);
    for (const [j, v] of d.subShares) {
      if (!subs.has(j)) subs.set(j, new Map());
      subs.get(j)!.set(i, v);
    }
  }
  const pkg = resharedPackage(old, dealt, target);
  return target.indices.map((j) => ({ publicKey: pkg, secret: combineSubShares(old, dealt, subs.get(j)!, j, pkg) }));
}

describe('smoke', () => {
  for (const suite of SUITE_IDS) {
    it(suite, () => {
      const { group } = getSuite(suite);
      const k0 = runDkg(suite, 2, 3);
      const key = (ks: KeyShare[], idx: number[]) => combine(group, ks.filter((k) => idx.includes(k.secret.index)).map((k) => ({ index: k.secret.index, value: group.scalarFromBytes(k.secret.value, 'x', true) })));
      const secret = key(k0, [1, 2]);
      const k1 = pureReshare(k0, [1, 3], { threshold: 3, indices: [3, 4, 5, 6, 7] });
      expect(key(k1, [4, 6, 7])).toBe(secret);
      expect(k1[0]!.publicKey.epoch).toBe(1);
      const k2 = pureReshare(k1, [3, 5, 7], { threshold: 2, indices: [1, 2, 3, 4] });
      expect(key(k2, [2, 4])).toBe(secret);
      const k3 = pureReshare(k2, [1, 4], { threshold: 2, indices: [5, 6, 7] });
      expect(key(k3, [5, 7])).toBe(secret);
      expect(k3[0]!.publicKey.commitments[0]).toEqual(k0[0]!.publicKey.commitments[0]);
    });
  }
});
