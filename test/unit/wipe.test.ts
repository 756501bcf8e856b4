/**
 * Issue 9 item 11: secret round state is wiped on every exit path, and this test shows it.
 *
 * A DKG, a refresh and a FROST signing session run in memory among 3 parties (core/ round functions,
 * real identity-style authenticators). Each one is made to end early at every round, by a peer's bad
 * message or by a thrown error (a missing message, a timeout = discard). Before the abort the test
 * takes a wipe probe of the state (core/wipe.ts: references to the secret byte arrays the state holds,
 * never the bytes); afterwards every one of those arrays must be all zeros and the state used up.
 *
 * What a probe cannot show: bigints. The arithmetic runs on bigints, which JavaScript cannot wipe;
 * they exist only inside one round function call. Between rounds (while a node waits on the network)
 * the states hold their secrets as bytes, and those are what is checked here.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from '@noble/hashes/utils.js';
import {
  dkgDiscard,
  dkgFinish,
  dkgRound1,
  dkgRound2,
  dkgRound3,
  jointFeldmanWipeProbe,
  wipeShareMessages,
} from '../../core/dkg.js';
import { refreshDiscard, refreshFinish, refreshRound1, refreshRound2, refreshRound3 } from '../../core/refresh.js';
import { signSessionDiscard, signSessionFinish, signSessionRound1, signSessionRound2, signSessionWipeProbe, type SignSessionState } from '../../core/sign.js';
import type { DkgConfirmMsg, DkgEchoMsg, DkgRound1Msg, DkgRound2Msg, SignedCommitMsg } from '../../core/messages.js';
import { TesseraError, ErrorCode } from '../../core/errors.js';
import { getSigningSuite, type SuiteId } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import type { PartyAuthenticator } from '../../core/auth.js';
import type { WipeProbe } from '../../core/wipe.js';
import { runDkg, testAuthenticators } from '../helpers/run-dkg.js';
import { thrown } from '../helpers/thrown.js';

const N = 3;
const T = 2;
const allZero = (a: Uint8Array) => a.every((b) => b === 0);

/** The error a round throws; fails the test if it does not throw a TesseraError. */
/** Probe taken before an abort: it must see live secrets, then see them all wiped. */
function expectLive(probe: WipeProbe, count: number): WipeProbe {
  expect(probe.count).toBe(count);
  expect(probe.allZero()).toBe(false);
  return probe;
}

function othersOf(i: number): number[] {
  return Array.from({ length: N }, (_, k) => k + 1).filter((j) => j !== i);
}

/** Messages `sent` (keyed by sender) as party `to` receives them. */
function inbox<M>(to: number, sent: Map<number, M>): Map<number, M> {
  return new Map([...sent].filter(([from]) => from !== to));
}

// ---------------------------------------------------------------------------------------------
// DKG and refresh: one lockstep run among 3 parties, to any round, with party 1 under test.

type Mode = 'dkg' | 'refresh';

interface Ops {
  round1(i: number): { state: unknown; broadcast: DkgRound1Msg };
  round2(s: unknown, m: Map<number, DkgRound1Msg>): { state: unknown; echo: DkgEchoMsg; shares: Map<number, DkgRound2Msg> };
  round3(s: unknown, e: Map<number, DkgEchoMsg>, sh: Map<number, DkgRound2Msg>): { state: unknown; confirm: DkgConfirmMsg };
  finish(s: unknown, c: Map<number, DkgConfirmMsg>): KeyShare;
  discard(s: unknown): void;
  /** Coefficients (t) plus, for refresh, the copy of the old share. */
  round1Secrets: number;
}

function opsFor(mode: Mode, suite: SuiteId, auths: PartyAuthenticator[], ids: { sessionId: Uint8Array; runId: Uint8Array }, keys?: KeyShare[]): Ops {
  /* eslint-disable @typescript-eslint/no-explicit-any */
  if (mode === 'dkg') {
    return {
      round1: (i) => dkgRound1({ suite, threshold: T, parties: N, self: i, ...ids }, auths[i - 1]!),
      round2: (s, m) => dkgRound2(s as any, m),
      round3: (s, e, sh) => dkgRound3(s as any, e, sh),
      finish: (s, c) => dkgFinish(s as any, c),
      discard: (s) => dkgDiscard(s as any),
      round1Secrets: T,
    };
  }
  return {
    round1: (i) => refreshRound1({ ...ids, key: keys![i - 1]! }, auths[i - 1]!),
    round2: (s, m) => refreshRound2(s as any, m),
    round3: (s, e, sh) => refreshRound3(s as any, e, sh),
    finish: (s, c) => refreshFinish(s as any, c),
    discard: (s) => refreshDiscard(s as any),
    round1Secrets: T + 1,
  };
  /* eslint-enable @typescript-eslint/no-explicit-any */
}

interface Run {
  ops: Ops;
  r1: Map<number, { state: unknown; broadcast: DkgRound1Msg }>;
  r2?: Map<number, { state: unknown; echo: DkgEchoMsg; shares: Map<number, DkgRound2Msg> }>;
  r3?: Map<number, { state: unknown; confirm: DkgConfirmMsg }>;
}

function packagesFor(run: Run): Map<number, DkgRound1Msg> {
  return new Map([...run.r1].map(([i, r]) => [i, r.broadcast]));
}

/** Round 1 for everyone. */
function start(mode: Mode, suite: SuiteId, keys?: KeyShare[]): Run {
  const auths = testAuthenticators(N);
  const ids = { sessionId: randomBytes(16), runId: randomBytes(32) };
  const ops = opsFor(mode, suite, auths, ids, keys);
  const r1 = new Map<number, { state: unknown; broadcast: DkgRound1Msg }>();
  for (let i = 1; i <= N; i++) r1.set(i, ops.round1(i));
  return { ops, r1 };
}

/** Round 2 for everyone (honest). */
function toRound2(run: Run): Run {
  const pk = packagesFor(run);
  run.r2 = new Map([...run.r1].map(([i, r]) => [i, run.ops.round2(r.state, inbox(i, pk))]));
  return run;
}

/** The echoes and the shares party `to` receives after round 2. */
function round2Inbox(run: Run, to: number): { echoes: Map<number, DkgEchoMsg>; shares: Map<number, DkgRound2Msg> } {
  const echoes = new Map<number, DkgEchoMsg>();
  const shares = new Map<number, DkgRound2Msg>();
  for (const j of othersOf(to)) {
    const r = run.r2!.get(j)!;
    echoes.set(j, r.echo);
    shares.set(j, { share: Uint8Array.from(r.shares.get(to)!.share) });
  }
  return { echoes, shares };
}

/** Round 3 for everyone (honest). */
function toRound3(run: Run): Run {
  run.r3 = new Map(
    [...run.r2!].map(([i, r]) => {
      const { echoes, shares } = round2Inbox(run, i);
      return [i, run.ops.round3(r.state, echoes, shares)];
    }),
  );
  return run;
}

function confirmsFor(run: Run, to: number): Map<number, DkgConfirmMsg> {
  return new Map(othersOf(to).map((j) => [j, run.r3!.get(j)!.confirm]));
}

function jointFeldmanAborts(mode: Mode, suite: SuiteId, makeKeys: () => KeyShare[] | undefined): void {
  const fresh = () => {
    const keys = makeKeys();
    return { keys, run: start(mode, suite, keys) };
  };
  // The caller's own key stays untouched (and usable) whatever happens to the session.
  const oldKeyIntact = (keys: KeyShare[] | undefined) => {
    if (keys) expect(allZero(keys[0]!.secret.value)).toBe(false);
  };

  it('round 1 state: aborted before round 2 (timeout, another party failed): discard wipes the polynomial', () => {
    const { keys, run } = fresh();
    const state = run.r1.get(1)!.state;
    const probe = expectLive(jointFeldmanWipeProbe(state), run.ops.round1Secrets);
    run.ops.discard(state);
    expect(probe.allZero()).toBe(true);
    expect(jointFeldmanWipeProbe(state).count).toBe(0); // used up: nothing left to hold
    expect(() => run.ops.round2(state, inbox(1, packagesFor(run)))).toThrow(/already used/);
    oldKeyIntact(keys);
  });

  it('round 2: a peer\'s badly signed package (relay fault) aborts and wipes the polynomial', () => {
    const { keys, run } = fresh();
    const state = run.r1.get(1)!.state;
    const probe = expectLive(jointFeldmanWipeProbe(state), run.ops.round1Secrets);
    const pk = inbox(1, packagesFor(run));
    const p2 = pk.get(2)!;
    const sig = Uint8Array.from(p2.signature);
    sig[0]! ^= 1;
    pk.set(2, { ...p2, signature: sig });
    expect(thrown(() => run.ops.round2(state, pk)).code).toBe(ErrorCode.BadProof);
    expect(probe.allZero()).toBe(true);
    oldKeyIntact(keys);
  });

  it('round 2: a thrown error (a missing package) wipes the polynomial', () => {
    const { run } = fresh();
    const state = run.r1.get(1)!.state;
    const probe = expectLive(jointFeldmanWipeProbe(state), run.ops.round1Secrets);
    const pk = inbox(1, packagesFor(run));
    pk.delete(3);
    expect(thrown(() => run.ops.round2(state, pk)).code).toBe(ErrorCode.UnexpectedParty);
    expect(probe.allZero()).toBe(true);
  });

  it('round 2 succeeds: the polynomial is wiped as soon as the shares are dealt; dealt shares wipe by wipeShareMessages', () => {
    const { run } = fresh();
    const state = run.r1.get(1)!.state;
    const probe = expectLive(jointFeldmanWipeProbe(state), run.ops.round1Secrets);
    const r2 = run.ops.round2(state, inbox(1, packagesFor(run)));
    // The coefficients are gone; for refresh the old share's copy lives on into round 3.
    expect(probe.allZero()).toBe(mode === 'dkg');
    const dealt = [...r2.shares.values()].map((m) => m.share);
    expect(dealt.some(allZero)).toBe(false);
    wipeShareMessages(r2.shares);
    expect(dealt.every(allZero)).toBe(true);
    run.ops.discard(r2.state);
  });

  it('round 2 state: aborted while waiting for echoes and shares (timeout): discard wipes f_self(self)', () => {
    const { keys, run } = fresh();
    toRound2(run);
    const state = run.r2!.get(1)!.state;
    // f_self(self); for refresh also the old share's copy.
    const probe = expectLive(jointFeldmanWipeProbe(state), mode === 'dkg' ? 1 : 2);
    run.ops.discard(state);
    expect(probe.allZero()).toBe(true);
    oldKeyIntact(keys);
  });

  it('round 3: a peer\'s share that fails vss_verify aborts (naming it) and wipes f_self(self) and the old share', () => {
    const { keys, run } = fresh();
    toRound2(run);
    const state = run.r2!.get(1)!.state;
    const probe = expectLive(jointFeldmanWipeProbe(state), mode === 'dkg' ? 1 : 2);
    const { echoes, shares } = round2Inbox(run, 1);
    const bad = Uint8Array.from(shares.get(2)!.share);
    bad[0]! ^= 1;
    shares.set(2, { share: bad });
    const e = thrown(() => run.ops.round3(state, echoes, shares));
    expect(e.code).toBe(ErrorCode.BadShare);
    expect(e.culprits).toEqual([2]);
    expect(probe.allZero()).toBe(true);
    // The driver wipes the shares it received (core/dkg wipeShareMessages, node/sessions/protocols.ts).
    wipeShareMessages(shares);
    expect([...shares.values()].every((m) => allZero(m.share))).toBe(true);
    oldKeyIntact(keys);
  });

  it('round 3: a thrown error (a missing echo) wipes f_self(self) and the old share', () => {
    const { run } = fresh();
    toRound2(run);
    const state = run.r2!.get(1)!.state;
    const probe = expectLive(jointFeldmanWipeProbe(state), mode === 'dkg' ? 1 : 2);
    const { echoes, shares } = round2Inbox(run, 1);
    echoes.delete(2);
    expect(thrown(() => run.ops.round3(state, echoes, shares)).code).toBe(ErrorCode.UnexpectedParty);
    expect(probe.allZero()).toBe(true);
  });

  it('round 3 state: aborted while waiting for confirmations (timeout): discard wipes the new share', () => {
    const { keys, run } = fresh();
    toRound3(toRound2(run));
    const state = run.r3!.get(1)!.state;
    // The new share; for refresh also the old share's copy, already wiped by round 3.
    const probe = jointFeldmanWipeProbe(state);
    expect(probe.count).toBe(mode === 'dkg' ? 1 : 2);
    expect(probe.allZero()).toBe(false);
    run.ops.discard(state);
    expect(probe.allZero()).toBe(true);
    oldKeyIntact(keys);
  });

  it('finish: a peer\'s different confirmation aborts (no key released) and wipes the new share', () => {
    const { keys, run } = fresh();
    toRound3(toRound2(run));
    const state = run.r3!.get(1)!.state;
    const probe = jointFeldmanWipeProbe(state);
    expect(probe.allZero()).toBe(false);
    const confirms = confirmsFor(run, 1);
    confirms.set(3, { digest: confirms.get(3)!.digest.map((b) => b ^ 0xff) });
    expect(thrown(() => run.ops.finish(state, confirms)).code).toBe(ErrorCode.ConfirmationMismatch);
    expect(probe.allZero()).toBe(true);
    oldKeyIntact(keys);
  });

  it('finish succeeds: the key is released to the caller (not wiped), every earlier secret is', () => {
    const { run } = fresh();
    const p1 = jointFeldmanWipeProbe(run.r1.get(1)!.state);
    toRound2(run);
    const p2 = jointFeldmanWipeProbe(run.r2!.get(1)!.state);
    toRound3(run);
    const key = run.ops.finish(run.r3!.get(1)!.state, confirmsFor(run, 1));
    expect(p1.allZero()).toBe(true);
    expect(p2.allZero()).toBe(true);
    expect(allZero(key.secret.value)).toBe(false);
    for (let i = 2; i <= N; i++) run.ops.discard(run.r3!.get(i)!.state);
  });
}

for (const suite of ['ed25519', 'secp256k1'] as const) {
  describe(`DKG (${suite}): every abort wipes the round state`, () => {
    jointFeldmanAborts('dkg', suite, () => undefined);
  });
}

describe('refresh (ed25519): every abort wipes the round state; the old key is untouched', () => {
  const base = runDkg('ed25519', T, N);
  // Each test refreshes its own copy of the keys, so one test's wipes cannot touch another's.
  const copy = () => base.map((k) => ({ publicKey: k.publicKey, secret: { ...k.secret, value: Uint8Array.from(k.secret.value) } }));
  jointFeldmanAborts('refresh', 'ed25519', copy);
});

// ---------------------------------------------------------------------------------------------
// FROST signing session: the round-1 nonces.

describe('signing session: every abort wipes the nonces', () => {
  for (const suiteId of ['ed25519', 'secp256k1', 'bip340'] as const) {
    const keys = runDkg(suiteId, T, N);
    const auths = testAuthenticators(N);
    const suite = getSigningSuite(suiteId);
    const message = Uint8Array.from([1, 2, 3]);
    const round1 = (signers: number[]) => {
      const ids = { sessionId: randomBytes(16), runId: randomBytes(32) };
      const out = new Map<number, { state: SignSessionState<1>; commit: SignedCommitMsg }>();
      for (const i of signers) out.set(i, signSessionRound1({ suite, key: keys[i - 1]!, signers, ...ids, auth: auths[i - 1]! }));
      return out;
    };
    const commitsFor = (r1: ReturnType<typeof round1>, to: number) => new Map([...r1].filter(([i]) => i !== to).map(([i, r]) => [i, r.commit]));

    it(`${suiteId}: aborted after round 1 (timeout, another signer failed): discard wipes the nonces`, () => {
      const r1 = round1([1, 2]);
      const state = r1.get(1)!.state;
      const probe = expectLive(signSessionWipeProbe(state), 2);
      signSessionDiscard(state);
      expect(probe.allZero()).toBe(true);
      expect(() => signSessionRound2(state, commitsFor(r1, 1), message)).toThrow(/already used/);
      signSessionDiscard(r1.get(2)!.state);
    });

    it(`${suiteId}: round 2 with a peer's badly signed commitment aborts and wipes the nonces`, () => {
      const r1 = round1([1, 2, 3]);
      const state = r1.get(1)!.state;
      const probe = expectLive(signSessionWipeProbe(state), 2);
      const commits = commitsFor(r1, 1);
      const c2 = commits.get(2)!;
      const sig = Uint8Array.from(c2.signature);
      sig[0]! ^= 1;
      commits.set(2, { ...c2, signature: sig });
      expect(thrown(() => signSessionRound2(state, commits, message)).code).toBe(ErrorCode.BadProof);
      expect(probe.allZero()).toBe(true);
      for (const i of [2, 3]) signSessionDiscard(r1.get(i)!.state);
    });

    it(`${suiteId}: round 2 with a thrown error (a missing commitment) wipes the nonces`, () => {
      const r1 = round1([1, 2, 3]);
      const state = r1.get(1)!.state;
      const probe = expectLive(signSessionWipeProbe(state), 2);
      const commits = commitsFor(r1, 1);
      commits.delete(3);
      expect(thrown(() => signSessionRound2(state, commits, message)).code).toBe(ErrorCode.UnexpectedParty);
      expect(probe.allZero()).toBe(true);
      for (const i of [2, 3]) signSessionDiscard(r1.get(i)!.state);
    });

    it(`${suiteId}: round 2 succeeds, finish aborts on a peer's bad share: the nonces were wiped by round 2`, () => {
      const r1 = round1([1, 2]);
      const probes = [1, 2].map((i) => expectLive(signSessionWipeProbe(r1.get(i)!.state), 2));
      const r2a = signSessionRound2(r1.get(1)!.state, commitsFor(r1, 1), message);
      const r2b = signSessionRound2(r1.get(2)!.state, commitsFor(r1, 2), message);
      expect(probes.every((p) => p.allZero())).toBe(true);
      expect(signSessionWipeProbe(r2a.state).count).toBe(0); // round 2 holds no secret
      const share = Uint8Array.from(r2b.share.share);
      share[share.length - 1]! ^= 1;
      expect(() => signSessionFinish(r2a.state, new Map([[2, { ...r2b.share, share }]]))).toThrow(TesseraError);
      expect(signSessionFinish(r2b.state, new Map([[1, r2a.share]]))).toBeInstanceOf(Uint8Array);
    });
  }
});
