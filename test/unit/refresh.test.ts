import { describe, expect, it } from 'vitest';
import { randomBytes } from '@noble/hashes/utils.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { dkgRound1 } from '../../core/dkg.js';
import {
  refreshDiscard,
  refreshFinish,
  refreshRound1,
  refreshRound2,
  refreshRound3,
  round1SignedBytes,
} from '../../core/refresh.js';
import { combine, verifyingSharesMatchGroupKey } from '../../core/shamir.js';
import { SUITE_IDS, getSuite, type SuiteId } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import { runDkg, runRefresh, simulateRefresh, testAuthenticators, type Outcome } from '../helpers/run-dkg.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function failure(o: Outcome | undefined): { step: string; error: TesseraError } {
  if (!o || o.ok) throw new Error('expected this party to fail');
  return o;
}

function secretOf(suiteId: SuiteId, keys: KeyShare[]): bigint {
  const { group } = getSuite(suiteId);
  return combine(
    group,
    keys.map((k) => ({ index: k.secret.index, value: group.scalarFromBytes(k.secret.value, 'share', true) })),
  );
}

describe('refresh, all parties honest', () => {
  for (const suiteId of SUITE_IDS) {
    it(`${suiteId} 2-of-3: same group key, epoch + 1, new shares of the same secret`, () => {
      const { group } = getSuite(suiteId);
      const before = runDkg(suiteId, 2, 3);
      const after = runRefresh(before);
      const pkg = after[0]!.publicKey;
      expect(pkg.epoch).toBe(1);
      expect(hex(pkg.commitments[0]!)).toBe(hex(before[0]!.publicKey.commitments[0]!));
      for (const k of after) {
        expect(k.secret.epoch).toBe(1);
        expect(k.publicKey.verifyingShares.map(hex)).toEqual(pkg.verifyingShares.map(hex));
      }
      // Every share changed, every commitment but C_0 changed.
      for (let i = 0; i < 3; i++) expect(hex(after[i]!.secret.value)).not.toBe(hex(before[i]!.secret.value));
      expect(hex(pkg.commitments[1]!)).not.toBe(hex(before[0]!.publicKey.commitments[1]!));
      const groupKey = group.pointFromBytes(pkg.commitments[0]!, 'Y');
      const ys = pkg.verifyingShares.map((y) => group.pointFromBytes(y, 'Yi'));
      expect(verifyingSharesMatchGroupKey(group, groupKey, ys, 2)).toBe(true);
      expect(secretOf(suiteId, [after[0]!, after[2]!])).toBe(secretOf(suiteId, [before[1]!, before[2]!]));
      expect(group.eqPoints(group.mulBase(secretOf(suiteId, after.slice(1))), groupKey)).toBe(true);
    });
  }

  it('3-of-5, twice: the secret stays, shares and commitments move on, the old key is untouched', () => {
    const suiteId: SuiteId = 'secp256k1';
    const e0 = runDkg(suiteId, 3, 5);
    const copy = e0.map((k) => hex(k.secret.value));
    const e1 = runRefresh(e0);
    const e2 = runRefresh([...e1].reverse());
    expect(e0.map((k) => hex(k.secret.value))).toEqual(copy);
    expect(e2.map((k) => k.secret.epoch)).toEqual([2, 2, 2, 2, 2]);
    const s = secretOf(suiteId, e0.slice(0, 3));
    expect(secretOf(suiteId, e2.slice(2))).toBe(s);
    expect(secretOf(suiteId, [e2[0]!, e2[2]!, e2[4]!])).toBe(s);
    // Shares of different epochs do not combine to the secret.
    expect(secretOf(suiteId, [e0[0]!, e2[1]!, e2[2]!])).not.toBe(s);
    expect(secretOf(suiteId, [e1[0]!, e2[1]!, e2[2]!])).not.toBe(s);
  });
});

describe('refresh adversaries and mismatches', () => {
  const SUITE: SuiteId = 'ed25519';

  it('a bad delta share names its sender (BadShare)', () => {
    const { group } = getSuite(SUITE);
    const keys = runDkg(SUITE, 2, 3);
    const out = simulateRefresh(keys, {
      tamper: {
        share: (from, to, m) => (from === 3 && to === 2 ? { share: group.scalarToBytes(group.add(group.scalarFromBytes(m.share, 's', true), 5n)) } : m),
      },
    });
    const f = failure(out[1]);
    expect(f.step).toBe('round3');
    expect(f.error.code).toBe(ErrorCode.BadShare);
    expect(f.error.culprits).toEqual([3]);
  });

  it('a dealer that shares a non-zero constant is caught: its shares do not match C_0 = identity', () => {
    // A share of a sharing of 1 instead of 0: f(x) = 1 + a_1 x. Its commitments C_1.. are fine, but
    // the shares are off by one against the implicit C_0 = identity.
    const { group } = getSuite(SUITE);
    const keys = runDkg(SUITE, 2, 3);
    const out = simulateRefresh(keys, {
      tamper: { share: (from, _to, m) => (from === 1 ? { share: group.scalarToBytes(group.add(group.scalarFromBytes(m.share, 's', true), 1n)) } : m) },
    });
    for (const i of [2, 3]) {
      const f = failure(out[i - 1]);
      expect(f.error.code).toBe(ErrorCode.BadShare);
      expect(f.error.culprits).toEqual([1]);
    }
  });

  it('equivocation in refresh is caught by the echo', () => {
    const keys = runDkg(SUITE, 2, 3);
    const sessionId = randomBytes(16);
    const runId = randomBytes(32);
    const auths = testAuthenticators(3);
    const other = refreshRound1({ sessionId, runId, key: keys[1]! }, auths[1]!);
    refreshDiscard(other.state);
    const out = simulateRefresh(keys, { sessionId, runId, auths, tamper: { round1: (from, to, m) => (from === 2 && to === 3 ? other.broadcast : m) } });
    for (const i of [1, 3]) {
      const f = failure(out[i - 1]);
      expect(f.error.code).toBe(ErrorCode.Equivocation);
      expect(f.error.culprits).toEqual([2]);
      expect(f.error.evidence).toMatchObject([{ protocol: 'refresh', signer: 2 }]);
    }
  });

  it('a refresh package replayed from an earlier run of the same session id names nobody', () => {
    const keys = runDkg(SUITE, 2, 3);
    const sessionId = randomBytes(16);
    const auths = testAuthenticators(3);
    const old = refreshRound1({ sessionId, runId: randomBytes(32), key: keys[1]! }, auths[1]!);
    refreshDiscard(old.state);
    const out = simulateRefresh(keys, { sessionId, auths, tamper: { echo: (from, _to, m) => (from === 3 ? { packages: { ...m.packages, 2: old.broadcast } } : m) } });
    for (const i of [1, 2]) {
      const f = failure(out[i - 1]);
      expect(f.error.code).toBe(ErrorCode.BadProof);
      expect(f.error.culprits).toEqual([]);
    }
  });

  it('a refresh package must have t-1 commitments and an empty proof', () => {
    const keys = runDkg(SUITE, 3, 4);
    const sessionId = randomBytes(16);
    const runId = randomBytes(32);
    const auths = testAuthenticators(4);
    const resign = (m: { commitments: Uint8Array[]; proof: Uint8Array }) => ({
      ...m,
      signature: auths[3]!.sign(
        round1SignedBytes(
          { mode: 'refresh', suite: SUITE, threshold: 3, parties: 4, sessionId, runId, epoch: 0 },
          4,
          { ...m, signature: new Uint8Array(0) },
        ),
      ),
    });
    const extraProof = simulateRefresh(keys, {
      sessionId,
      runId,
      auths,
      tamper: { round1: (from, _to, m) => (from === 4 ? resign({ ...m, proof: new Uint8Array(96) }) : m) },
    });
    // Malformed for a refresh: rejected before any crypto, naming nobody (bytes that do not form a
    // refresh package prove nothing to a third party).
    const f = failure(extraProof[0]);
    expect(f.error.code).toBe(ErrorCode.BadMessage);
    expect(f.error.culprits).toEqual([]);
    // A DKG package (t commitments and a proof) is not a refresh package.
    const dkgPkg = dkgRound1({ suite: SUITE, threshold: 3, parties: 4, self: 4, sessionId, runId }, auths[3]!).broadcast;
    const wrong = simulateRefresh(keys, { sessionId, runId, auths, tamper: { round1: (from, _to, m) => (from === 4 ? dkgPkg : m) } });
    expect(failure(wrong[1]).error.code).toBe(ErrorCode.BadMessage);
    expect(failure(wrong[1]).error.culprits).toEqual([]);
  });

  it('a party at another epoch: EpochMismatch, nobody blamed, nothing combined', () => {
    const e0 = runDkg(SUITE, 2, 3);
    const e1 = runRefresh(e0);
    // Party 3 missed the refresh and still holds its epoch-0 key.
    const out = simulateRefresh([e1[0]!, e1[1]!, e0[2]!]);
    for (const o of out) {
      const f = failure(o);
      expect(f.step).toBe('round2');
      expect(f.error.code).toBe(ErrorCode.EpochMismatch);
      expect(f.error.culprits).toEqual([]);
    }
  });

  it('a key whose share and package are from different epochs is refused', () => {
    const e0 = runDkg(SUITE, 2, 3);
    const e1 = runRefresh(e0);
    const [auth] = testAuthenticators(1);
    const mixed: KeyShare = { publicKey: e1[0]!.publicKey, secret: e0[0]!.secret };
    expect(() => refreshRound1({ sessionId: randomBytes(16), runId: randomBytes(32), key: mixed }, auth!)).toThrow(
      expect.objectContaining({ code: ErrorCode.EpochMismatch }),
    );
    // Same epoch label, wrong share: it does not match the package.
    const forged: KeyShare = { publicKey: e1[0]!.publicKey, secret: { ...e0[0]!.secret, epoch: 1 } };
    expect(() => refreshRound1({ sessionId: randomBytes(16), runId: randomBytes(32), key: forged }, auth!)).toThrow(
      expect.objectContaining({ code: ErrorCode.BadInput }),
    );
  });

  it('parties holding different keys cannot finish, and nobody is blamed', () => {
    const a = runDkg(SUITE, 2, 3);
    const b = runDkg(SUITE, 2, 3);
    // Party 3 holds a share of another key (same epoch): every delta is valid, the results differ.
    const out = simulateRefresh([a[0]!, a[1]!, b[2]!]);
    for (const o of out) {
      const f = failure(o);
      expect(f.step).toBe('finish');
      expect(f.error.code).toBe(ErrorCode.ConfirmationMismatch);
      expect(f.error.culprits).toEqual([]);
    }
    expect(failure(out[0]).error.message).toMatch(/party 3/);
    expect(failure(out[2]).error.message).toMatch(/party 1, 2/);
  });

  it('confirmation mismatch: no new key is released', () => {
    const keys = runDkg(SUITE, 2, 3);
    const out = simulateRefresh(keys, { tamper: { confirm: (from, to, m) => (from === 1 && to === 3 ? { digest: new Uint8Array(32) } : m) } });
    const f = failure(out[2]);
    expect(f.step).toBe('finish');
    expect(f.error.code).toBe(ErrorCode.ConfirmationMismatch);
    expect(f.error.message).toMatch(/party 1/);
  });

  it('step by step: states are one-use and refresh states are not DKG states', async () => {
    const keys = runDkg(SUITE, 2, 3);
    const sessionId = randomBytes(16);
    const runId = randomBytes(32);
    const auths = testAuthenticators(3);
    const r1 = keys.map((k, p) => refreshRound1({ sessionId, runId, key: k }, auths[p]!));
    const { dkgRound2 } = await import('../../core/dkg.js');
    expect(() => dkgRound2(r1[0]!.state, new Map())).toThrow(expect.objectContaining({ code: ErrorCode.BadState }));
    // The wrong-mode call did not consume it.
    expect(r1[0]!.state.consumed).toBe(false);
    const others = (i: number) => [1, 2, 3].filter((j) => j !== i);
    const r2 = [1, 2, 3].map((i) => refreshRound2(r1[i - 1]!.state, new Map(others(i).map((j) => [j, r1[j - 1]!.broadcast]))));
    const r3 = [1, 2, 3].map((i) =>
      refreshRound3(
        r2[i - 1]!.state,
        new Map(others(i).map((j) => [j, r2[j - 1]!.echo])),
        new Map(others(i).map((j) => [j, r2[j - 1]!.shares.get(i)!])),
      ),
    );
    expect(() => refreshRound3(r2[0]!.state, new Map(), new Map())).toThrow(expect.objectContaining({ code: ErrorCode.BadState }));
    const next = [1, 2, 3].map((i) => refreshFinish(r3[i - 1]!.state, new Map(others(i).map((j) => [j, r3[j - 1]!.confirm]))));
    expect(next.map((k) => k.publicKey.epoch)).toEqual([1, 1, 1]);
    expect(secretOf(SUITE, next.slice(0, 2))).toBe(secretOf(SUITE, keys.slice(1)));
  });
});
