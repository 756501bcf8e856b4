import { describe, expect, it } from 'vitest';
import { randomBytes } from '@noble/hashes/utils.js';
import { dkgDiscard, dkgFinish, dkgRound1, dkgRound2, dkgRound3, publicResultDigest, round1SignedBytes, type DkgParams } from '../../core/dkg.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import type { DkgRound1Msg } from '../../core/messages.js';
import { combine, verifyingSharesMatchGroupKey } from '../../core/shamir.js';
import { SUITE_IDS, getSuite, type SuiteId } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import { verifyEquivocationEvidence, type EquivocationEvidence } from '../../core/evidence.js';
import { loadIdentityEngine } from '../../core/identity.js';
import { identityAuthenticators, runDkg, simulateDkg, testAuthenticators, type Outcome } from '../helpers/run-dkg.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function subsets<T>(items: T[], size: number): T[][] {
  if (size === 0) return [[]];
  if (items.length < size) return [];
  const [first, ...rest] = items;
  return [...subsets(rest, size - 1).map((s) => [first!, ...s]), ...subsets(rest, size)];
}

function checkKeys(suiteId: SuiteId, keys: KeyShare[], threshold: number, parties: number): void {
  const { group } = getSuite(suiteId);
  expect(keys).toHaveLength(parties);
  const pkg = keys[0]!.publicKey;
  expect(pkg).toMatchObject({ suite: suiteId, threshold, parties, epoch: 0 });
  // Every party computed the same public package (the confirmation round already required it).
  for (const k of keys) {
    expect(k.publicKey.commitments.map(hex)).toEqual(pkg.commitments.map(hex));
    expect(k.publicKey.verifyingShares.map(hex)).toEqual(pkg.verifyingShares.map(hex));
    expect(k.secret).toMatchObject({ suite: suiteId, epoch: 0 });
  }
  expect(keys.map((k) => k.secret.index)).toEqual(keys.map((_, p) => p + 1));
  const groupKey = group.pointFromBytes(pkg.commitments[0]!, 'group key');
  const verifying = pkg.verifyingShares.map((y, k) => group.pointFromBytes(y, `Y${k + 1}`));
  expect(verifyingSharesMatchGroupKey(group, groupKey, verifying, threshold)).toBe(true);
  // Each share matches its verifying share; any t shares interpolate to the group key's discrete log.
  const values = keys.map((k) => ({ index: k.secret.index, value: group.scalarFromBytes(k.secret.value, 'share', true) }));
  for (const v of values) expect(group.eqPoints(group.mulBase(v.value), verifying[v.index - 1]!)).toBe(true);
  for (const set of subsets(values, threshold)) {
    expect(group.eqPoints(group.mulBase(combine(group, set)), groupKey)).toBe(true);
  }
  // t-1 shares do not.
  expect(group.eqPoints(group.mulBase(combine(group, values.slice(0, threshold - 1))), groupKey)).toBe(false);
}

describe('DKG, all parties honest', () => {
  for (const suiteId of SUITE_IDS) {
    for (const [t, n] of [
      [2, 3],
      [3, 5],
    ] as const) {
      it(`${suiteId} ${t}-of-${n}: one group key, consistent verifying shares, any t shares give the key`, () => {
        checkKeys(suiteId, runDkg(suiteId, t, n), t, n);
      });
    }
  }

  it('two runs give independent keys', () => {
    const a = runDkg('secp256k1', 2, 3);
    const b = runDkg('secp256k1', 2, 3);
    expect(hex(a[0]!.publicKey.commitments[0]!)).not.toBe(hex(b[0]!.publicKey.commitments[0]!));
  });
});

// ---------------------------------------------------------------------------------------------
// Adversaries. Each names the culprit and never an honest party.

const SUITE: SuiteId = 'ed25519';

function failure(o: Outcome | undefined): { step: string; error: TesseraError } {
  expect(o).toBeDefined();
  if (!o || o.ok) throw new Error('expected this party to fail');
  return o;
}

/** Re-sign a (modified) package as `sender` would, so that only the intended defect remains. */
function resign(
  auth: ReturnType<typeof testAuthenticators>[number],
  ids: { sessionId: Uint8Array; runId: Uint8Array },
  t: number,
  n: number,
  sender: number,
  msg: DkgRound1Msg,
): DkgRound1Msg {
  const bytes = round1SignedBytes({ mode: 'dkg', suite: SUITE, threshold: t, parties: n, ...ids, epoch: 0 }, sender, msg);
  return { ...msg, signature: auth.sign(bytes) };
}

describe('DKG adversaries', () => {
  it('a bad share: party 2 sends a wrong share to party 1 -> party 1 names party 2 (BadShare)', () => {
    const { group } = getSuite(SUITE);
    const out = simulateDkg(SUITE, 2, 3, {
      tamper: {
        share: (from, to, m) => (from === 2 && to === 1 ? { share: group.scalarToBytes(group.add(group.scalarFromBytes(m.share, 's', true), 1n)) } : m),
      },
    });
    const f = failure(out[0]);
    expect(f.step).toBe('round3');
    expect(f.error.code).toBe(ErrorCode.BadShare);
    expect(f.error.culprits).toEqual([2]);
    // The parties that got good shares do not blame anyone: they stop only because party 1 never confirms.
    for (const o of out.slice(1)) {
      const g = failure(o);
      expect(g.error.code).toBe(ErrorCode.UnexpectedParty);
      expect(g.error.culprits).toEqual([]);
    }
  });

  it('a share that is not a canonical scalar is a bad share from its sender', () => {
    const out = simulateDkg(SUITE, 2, 3, {
      tamper: { share: (from, to, m) => (from === 3 && to === 2 ? { share: new Uint8Array(32).fill(0xff) } : m) },
    });
    const f = failure(out[1]);
    expect(f.error.code).toBe(ErrorCode.BadShare);
    expect(f.error.culprits).toEqual([3]);
  });

  it('equivocation: party 3 sends a different (validly signed, valid proof) package to party 1 -> everyone names party 3', () => {
    const t = 3;
    const n = 5;
    const sessionId = randomBytes(16);
    const runId = randomBytes(32);
    const auths = testAuthenticators(n);
    // A second, fully valid round-1 package from party 3 for the same session and run.
    const other = dkgRound1({ suite: SUITE, threshold: t, parties: n, self: 3, sessionId, runId }, auths[2]!);
    dkgDiscard(other.state);
    const out = simulateDkg(SUITE, t, n, {
      sessionId,
      runId,
      auths,
      tamper: { round1: (from, to, m) => (from === 3 && to === 1 ? other.broadcast : m) },
    });
    for (const i of [1, 2, 4, 5]) {
      const f = failure(out[i - 1]);
      expect(f.step).toBe('round3');
      expect(f.error.code).toBe(ErrorCode.Equivocation);
      expect(f.error.culprits).toEqual([3]);
      expect(f.error.evidence.map((e) => e.signer)).toEqual([3]);
    }
  });

  it('a bad proof of knowledge (validly signed) -> BadProof naming the sender at every receiver', () => {
    const t = 2;
    const n = 3;
    const sessionId = randomBytes(16);
    const runId = randomBytes(32);
    const auths = testAuthenticators(n);
    const other = dkgRound1({ suite: SUITE, threshold: t, parties: n, self: 2, sessionId, runId }, auths[1]!);
    const out = simulateDkg(SUITE, t, n, {
      sessionId,
      runId,
      auths,
      // Party 2's package carries the proof made for other commitments, re-signed by party 2.
      tamper: { round1: (from, _to, m) => (from === 2 ? resign(auths[1]!, { sessionId, runId }, t, n, 2, { ...m, proof: other.broadcast.proof }) : m) },
    });
    for (const i of [1, 3]) {
      const f = failure(out[i - 1]);
      expect(f.step).toBe('round2');
      expect(f.error.code).toBe(ErrorCode.BadProof);
      expect(f.error.message).toMatch(/proof of knowledge/);
      expect(f.error.culprits).toEqual([2]);
    }
  });

  it('a bad round-1 signature -> BadProof naming nobody (the relay could have changed it)', () => {
    const out = simulateDkg(SUITE, 2, 3, {
      tamper: {
        round1: (from, to, m) => {
          if (from !== 3 || to !== 2) return m;
          const signature = Uint8Array.from(m.signature);
          signature[5]! ^= 1;
          return { ...m, signature };
        },
      },
    });
    const f = failure(out[1]);
    expect(f.step).toBe('round2');
    expect(f.error.code).toBe(ErrorCode.BadProof);
    expect(f.error.message).toMatch(/signature/);
    expect(f.error.culprits).toEqual([]);
  });

  it('a package signed by another party is rejected: the signature binds the sender', () => {
    const sessionId = randomBytes(16);
    const runId = randomBytes(32);
    const auths = testAuthenticators(3);
    const r1 = [1, 2, 3].map((i) => dkgRound1({ suite: SUITE, threshold: 2, parties: 3, self: i, sessionId, runId }, auths[i - 1]!));
    // Party 1 receives party 3's package claiming to be from party 2.
    const received = new Map([
      [2, r1[2]!.broadcast],
      [3, r1[2]!.broadcast],
    ]);
    try {
      dkgRound2(r1[0]!.state, received);
      expect.unreachable();
    } catch (e) {
      expect((e as TesseraError).code).toBe(ErrorCode.BadProof);
      expect((e as TesseraError).culprits).toEqual([]);
    }
  });

  it('a lying echoer (forged package for party 2 in its echo) aborts the run; party 2 is not named, nor anyone (the echo is unsigned)', () => {
    const t = 3;
    const n = 5;
    const sessionId = randomBytes(16);
    const runId = randomBytes(32);
    const auths = testAuthenticators(n);
    const other = dkgRound1({ suite: SUITE, threshold: t, parties: n, self: 2, sessionId, runId }, auths[1]!);
    const out = simulateDkg(SUITE, t, n, {
      sessionId,
      runId,
      auths,
      tamper: {
        // Party 4 echoes a package for party 2 with other commitments but party 2's real signature.
        echo: (from, _to, m) =>
          from === 4 ? { packages: { ...m.packages, 2: { ...m.packages[2]!, commitments: other.broadcast.commitments } } } : m,
      },
    });
    for (const i of [1, 2, 3, 5]) {
      const f = failure(out[i - 1]);
      expect(f.step).toBe('round3');
      expect(f.error.code).toBe(ErrorCode.BadProof);
      expect(f.error.culprits).toEqual([]);
    }
  });

  it('an echoer that drops a package or changes ours aborts the run naming nobody', () => {
    const out = simulateDkg(SUITE, 2, 3, {
      tamper: {
        echo: (from, to, m) => {
          if (from !== 2) return m;
          const packages = { ...m.packages };
          if (to === 1) delete packages[3];
          else packages[3] = { ...packages[3]!, proof: new Uint8Array(packages[3]!.proof.length) };
          return { packages };
        },
      },
    });
    const f1 = failure(out[0]);
    expect(f1.error.code).toBe(ErrorCode.BadMessage);
    expect(f1.error.culprits).toEqual([]);
    // Party 3 sees a changed copy of its own package: made up, but the unsigned echo proves nothing.
    const f3 = failure(out[2]);
    expect(f3.error.code).toBe(ErrorCode.BadProof);
    expect(f3.error.culprits).toEqual([]);
  });

  it('a confirmation mismatch keeps the key from being released and lists the differing party', () => {
    const out = simulateDkg(SUITE, 2, 3, {
      tamper: { confirm: (from, to, m) => (from === 2 && to === 1 ? { digest: randomBytes(32) } : m) },
    });
    const f = failure(out[0]);
    expect(f.step).toBe('finish');
    expect(f.error.code).toBe(ErrorCode.ConfirmationMismatch);
    expect(f.error.message).toMatch(/party 2/);
    expect(f.error.culprits).toEqual([]);
    // The others finished: the digest they saw was right.
    expect(out[1]!.ok && out[2]!.ok).toBe(true);
  });

  it('a malformed package or a wrong count names nobody; an invalid point names its sender only when it signed it', () => {
    const { group } = getSuite(SUITE);
    const identity = Uint8Array.from([1, ...new Uint8Array(31)]);
    const notAPoint = new Uint8Array(group.pointLength).fill(0xff);
    const unsigned: [string, (m: DkgRound1Msg) => DkgRound1Msg, string][] = [
      ['too few commitments', (m) => ({ ...m, commitments: m.commitments.slice(1) }), ErrorCode.BadMessage],
      ['short proof', (m) => ({ ...m, proof: m.proof.subarray(1) }), ErrorCode.BadMessage],
      ['empty signature', (m) => ({ ...m, signature: new Uint8Array(0) }), ErrorCode.BadMessage],
      ['not an object', () => null as unknown as DkgRound1Msg, ErrorCode.BadMessage],
      // Changed after signing: the signature fails first, so nobody is named.
      ['identity commitment, not re-signed', (m) => ({ ...m, commitments: [identity, ...m.commitments.slice(1)] }), ErrorCode.BadProof],
    ];
    for (const [what, change, code] of unsigned) {
      const out = simulateDkg(SUITE, 2, 3, { tamper: { round1: (from, to, m) => (from === 3 && to === 1 ? change(m) : m) } });
      const f = failure(out[0]);
      expect(f.error.code, what).toBe(code);
      expect(f.error.culprits, what).toEqual([]);
    }
    // Validly signed by party 3 and failing a public check: party 3 is named.
    for (const bad of [identity, notAPoint]) {
      const sessionId = randomBytes(16);
      const runId = randomBytes(32);
      const auths = testAuthenticators(3);
      const out = simulateDkg(SUITE, 2, 3, {
        sessionId,
        runId,
        auths,
        tamper: { round1: (from, to, m) => (from === 3 && to === 1 ? resign(auths[2]!, { sessionId, runId }, 2, 3, 3, { ...m, commitments: [bad, ...m.commitments.slice(1)] }) : m) },
      });
      const f = failure(out[0]);
      expect(f.error.code).toBe(ErrorCode.BadPoint);
      expect(f.error.culprits).toEqual([3]);
    }
  });
});

describe('DKG: the run id, replays and transferable evidence', () => {
  const t = 2;
  const n = 3;

  it('a round-1 package replayed from a previous run (same session id, other run id) is rejected and names nobody', () => {
    const sessionId = randomBytes(16);
    const auths = testAuthenticators(n);
    const oldRun = randomBytes(32);
    const old = dkgRound1({ suite: SUITE, threshold: t, parties: n, self: 2, sessionId, runId: oldRun }, auths[1]!);
    dkgDiscard(old.state);
    // Delivered as party 2's package in the new run.
    const direct = simulateDkg(SUITE, t, n, { sessionId, auths, tamper: { round1: (from, to, m) => (from === 2 && to === 1 ? old.broadcast : m) } });
    const f = failure(direct[0]);
    expect(f.step).toBe('round2');
    expect(f.error.code).toBe(ErrorCode.BadProof);
    expect(f.error.culprits).toEqual([]);
    // Echoed by party 3 as "another package from party 2": it would have been equivocation evidence
    // against honest party 2 if signatures were bound to the session id only. Now it is a forged echo.
    const echoed = simulateDkg(SUITE, t, n, {
      sessionId,
      auths,
      tamper: { echo: (from, _to, m) => (from === 3 ? { packages: { ...m.packages, 2: old.broadcast } } : m) },
    });
    for (const i of [1, 2]) {
      const g = failure(echoed[i - 1]);
      expect(g.step).toBe('round3');
      expect(g.error.code).toBe(ErrorCode.BadProof);
      expect(g.error.culprits).toEqual([]);
      expect(g.error.evidence).toEqual([]);
    }
  });

  it('the run id is validated: exactly 32 bytes', () => {
    const [auth] = testAuthenticators(1);
    const p = { suite: SUITE, threshold: t, parties: n, self: 1, sessionId: randomBytes(16) };
    for (const runId of [new Uint8Array(31), new Uint8Array(33), undefined, 'ab'.repeat(32)]) {
      expect(() => dkgRound1({ ...p, runId } as never, auth!)).toThrow(expect.objectContaining({ code: ErrorCode.BadInput }));
    }
  });

  it('equivocation evidence verifies under the equivocator\'s ML-DSA-65 identity, and forged evidence does not', async () => {
    await loadIdentityEngine();
    const sessionId = randomBytes(16);
    const runId = randomBytes(32);
    const { auths, publicKeys } = identityAuthenticators(n);
    const other = dkgRound1({ suite: SUITE, threshold: t, parties: n, self: 2, sessionId, runId }, auths[1]!);
    dkgDiscard(other.state);
    const out = simulateDkg(SUITE, t, n, { sessionId, runId, auths, tamper: { round1: (from, to, m) => (from === 2 && to === 3 ? other.broadcast : m) } });
    for (const i of [1, 3]) {
      const f = failure(out[i - 1]);
      expect(f.error.code).toBe(ErrorCode.Equivocation);
      expect(f.error.culprits).toEqual([2]);
      expect(f.error.evidence).toHaveLength(1);
      const ev = f.error.evidence[0]!;
      expect(ev).toMatchObject({ protocol: 'dkg', signer: 2 });
      if (ev.protocol === 'sign' || ev.protocol === 'envelope' || ev.protocol === 'reshare-share') throw new Error('expected DKG evidence');
      expect(verifyEquivocationEvidence(ev, publicKeys[1]!)).toBe(true);
      // Another party's key, the same package twice, changed content, another run, another protocol: no.
      expect(verifyEquivocationEvidence(ev, publicKeys[0]!)).toBe(false);
      expect(verifyEquivocationEvidence({ ...ev, second: ev.first } as EquivocationEvidence, publicKeys[1]!)).toBe(false);
      const changed = { ...ev.second, commitments: [...ev.first.commitments] };
      expect(verifyEquivocationEvidence({ ...ev, second: changed } as EquivocationEvidence, publicKeys[1]!)).toBe(false);
      expect(verifyEquivocationEvidence({ ...ev, binding: { ...ev.binding, runId: randomBytes(32) } } as EquivocationEvidence, publicKeys[1]!)).toBe(false);
      expect(verifyEquivocationEvidence({ ...ev, signer: 3 } as EquivocationEvidence, publicKeys[1]!)).toBe(false);
      expect(verifyEquivocationEvidence({ ...ev, protocol: 'refresh' } as EquivocationEvidence, publicKeys[1]!)).toBe(false);
      expect(verifyEquivocationEvidence(null as never, publicKeys[1]!)).toBe(false);
    }
    // The honest parties 1 and 3 are never named by anyone.
    for (const o of out) if (!o.ok) expect(o.error.culprits.filter((c) => c !== 2)).toEqual([]);
  });
});

describe('DKG round functions: parameters, senders, one-use state', () => {
  const sessionId = randomBytes(16);
  const runId = randomBytes(32);
  const params = (self: number): DkgParams => ({ suite: 'secp256k1', threshold: 2, parties: 3, self, sessionId, runId });

  it('rejects bad parameters with typed errors', () => {
    const [auth] = testAuthenticators(1);
    expect(() => dkgRound1({ ...params(1), threshold: 1 }, auth!)).toThrow(expect.objectContaining({ code: ErrorCode.BadParameters }));
    expect(() => dkgRound1({ ...params(1), threshold: 4 }, auth!)).toThrow(expect.objectContaining({ code: ErrorCode.BadParameters }));
    expect(() => dkgRound1({ ...params(4) }, auth!)).toThrow(expect.objectContaining({ code: ErrorCode.BadParameters }));
    expect(() => dkgRound1({ ...params(1), sessionId: new Uint8Array(15) }, auth!)).toThrow(expect.objectContaining({ code: ErrorCode.BadInput }));
    expect(() => dkgRound1({ ...params(1), sessionId: new Uint8Array(65) }, auth!)).toThrow(expect.objectContaining({ code: ErrorCode.BadInput }));
    expect(() => dkgRound1({ ...params(1), suite: 'rsa' as SuiteId }, auth!)).toThrow(expect.objectContaining({ code: ErrorCode.UnknownSuite }));
    expect(() => dkgRound1(params(1), {} as never)).toThrow(expect.objectContaining({ code: ErrorCode.BadInput }));
  });

  it('missing, extra or self senders are UnexpectedParty without culprits; states are one-use', () => {
    const auths = testAuthenticators(3);
    const r1 = [1, 2, 3].map((i) => dkgRound1(params(i), auths[i - 1]!));
    const expectCode = (fn: () => unknown, code: string) => {
      try {
        fn();
        expect.unreachable();
      } catch (e) {
        expect((e as TesseraError).code).toBe(code);
        expect((e as TesseraError).culprits).toEqual([]);
      }
    };
    expectCode(() => dkgRound2(r1[0]!.state, new Map([[2, r1[1]!.broadcast]])), ErrorCode.UnexpectedParty);
    // The failed call consumed the state: it cannot be retried.
    expect(r1[0]!.state.consumed).toBe(true);
    expectCode(() => dkgRound2(r1[0]!.state, new Map([[2, r1[1]!.broadcast], [3, r1[2]!.broadcast]])), ErrorCode.BadState);
    expectCode(
      () => dkgRound2(r1[1]!.state, new Map([[1, r1[0]!.broadcast], [2, r1[1]!.broadcast], [3, r1[2]!.broadcast]])),
      ErrorCode.UnexpectedParty,
    );
    expectCode(
      () => dkgRound2(r1[2]!.state, new Map([[1, r1[0]!.broadcast], [2, r1[1]!.broadcast], [7, r1[1]!.broadcast]])),
      ErrorCode.UnexpectedParty,
    );
    expectCode(() => dkgRound2({} as never, new Map()), ErrorCode.BadState);
  });

  it('runs step by step; the state does not show its secrets; reusing any state is BadState', () => {
    const auths = testAuthenticators(3);
    const r1 = [1, 2, 3].map((i) => dkgRound1(params(i), auths[i - 1]!));
    expect(JSON.stringify(r1[0]!.state)).toBe('{"mode":"dkg","round":1,"consumed":false}');
    const others = (i: number) => [1, 2, 3].filter((j) => j !== i);
    const r2 = [1, 2, 3].map((i) => dkgRound2(r1[i - 1]!.state, new Map(others(i).map((j) => [j, r1[j - 1]!.broadcast]))));
    expect(r1[0]!.state.consumed).toBe(true);
    expect(() => dkgRound2(r1[0]!.state, new Map())).toThrow(expect.objectContaining({ code: ErrorCode.BadState }));
    // Round 2 state passed to finish: wrong round.
    expect(() => dkgFinish(r2[0]!.state as never, new Map())).toThrow(expect.objectContaining({ code: ErrorCode.BadState }));
    const fresh = [1, 2, 3].map((i) => dkgRound1(params(i), auths[i - 1]!));
    const r2b = [1, 2, 3].map((i) => dkgRound2(fresh[i - 1]!.state, new Map(others(i).map((j) => [j, fresh[j - 1]!.broadcast]))));
    const r3 = [1, 2, 3].map((i) =>
      dkgRound3(
        r2b[i - 1]!.state,
        new Map(others(i).map((j) => [j, r2b[j - 1]!.echo])),
        new Map(others(i).map((j) => [j, r2b[j - 1]!.shares.get(i)!])),
      ),
    );
    const keys = [1, 2, 3].map((i) => dkgFinish(r3[i - 1]!.state, new Map(others(i).map((j) => [j, r3[j - 1]!.confirm]))));
    expect(hex(r3[0]!.confirm.digest)).toBe(hex(publicResultDigest(keys[0]!.publicKey, sessionId)));
    expect(() => dkgFinish(r3[0]!.state, new Map(others(1).map((j) => [j, r3[j - 1]!.confirm])))).toThrow(
      expect.objectContaining({ code: ErrorCode.BadState }),
    );
    checkKeys('secp256k1', keys, 2, 3);
  });

  it('packages from another session do not verify (replay)', () => {
    const auths = testAuthenticators(3);
    const other = randomBytes(16);
    const a = dkgRound1(params(1), auths[0]!);
    const b = dkgRound1({ ...params(2), sessionId: other }, auths[1]!);
    const c = dkgRound1(params(3), auths[2]!);
    try {
      dkgRound2(a.state, new Map([[2, b.broadcast], [3, c.broadcast]]));
      expect.unreachable();
    } catch (e) {
      expect((e as TesseraError).code).toBe(ErrorCode.BadProof);
      expect((e as TesseraError).culprits).toEqual([]);
    }
  });

  it('publicResultDigest is bound to the session and the package', () => {
    const keys = runDkg('p256', 2, 3);
    const pkg = keys[0]!.publicKey;
    const s1 = randomBytes(16);
    expect(hex(publicResultDigest(pkg, s1))).toBe(hex(publicResultDigest({ ...pkg }, s1)));
    expect(hex(publicResultDigest(pkg, s1))).not.toBe(hex(publicResultDigest(pkg, randomBytes(16))));
    expect(hex(publicResultDigest(pkg, s1))).not.toBe(hex(publicResultDigest({ ...pkg, epoch: 1 }, s1)));
    expect(() => publicResultDigest({ ...pkg, commitments: [] }, s1)).toThrow(TesseraError);
  });
});
