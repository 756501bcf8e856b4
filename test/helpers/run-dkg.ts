/**
 * Test helpers for DKG and refresh: cheap identity signatures, and an in-memory driver that runs the
 * rounds for every party and lets a test tamper with any message on its way from one party to another.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { randomBytes } from '@noble/hashes/utils.js';
import type { PartyAuthenticator } from '../../core/auth.js';
import { dkgFinish, dkgRound1, dkgRound2, dkgRound3 } from '../../core/dkg.js';
import { generateIdentity, identitySign, identityVerify } from '../../core/identity.js';
import { ErrorCode, TesseraError, ensure, isTesseraError } from '../../core/errors.js';
import type { DkgConfirmMsg, DkgEchoMsg, DkgRound1Msg, DkgRound2Msg } from '../../core/messages.js';
import { refreshFinish, refreshRound1, refreshRound2, refreshRound3 } from '../../core/refresh.js';
import type { SuiteId } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';

/**
 * Party i's authenticator is at index i-1, signing with a real ML-DSA-65 node identity (core/identity.ts,
 * liboqs once loadIdentityEngine() ran), as node/sessions/protocols.ts identityAuthenticator does; publicKeys[i-1]
 * is party i's identity public key, what verifyEquivocationEvidence takes.
 */
export function identityAuthenticators(n: number): { auths: PartyAuthenticator[]; publicKeys: Uint8Array[] } {
  const ids = Array.from({ length: n }, () => generateIdentity());
  const publicKeys = ids.map((id) => id.publicKey);
  const verify = (index: number, message: Uint8Array, signature: Uint8Array): boolean =>
    Number.isSafeInteger(index) && index >= 1 && index <= n && identityVerify(publicKeys[index - 1]!, message, signature);
  return { auths: ids.map((id) => ({ sign: (message: Uint8Array) => identitySign(id.secretKey, message), verify })), publicKeys };
}

/** Party i's authenticator is at index i-1. Ed25519 (noble) keys; every party knows every public key. */
export function testAuthenticators(n: number): PartyAuthenticator[] {
  const secretKeys = Array.from({ length: n }, () => ed25519.utils.randomSecretKey());
  const publicKeys = secretKeys.map((sk) => ed25519.getPublicKey(sk));
  const verify = (index: number, message: Uint8Array, signature: Uint8Array): boolean => {
    if (!Number.isSafeInteger(index) || index < 1 || index > n) return false;
    try {
      return ed25519.verify(signature, message, publicKeys[index - 1]!);
    } catch {
      return false;
    }
  };
  return secretKeys.map((sk) => ({ sign: (message: Uint8Array) => ed25519.sign(message, sk), verify }));
}

/** Hooks that see (and may replace) every message between two parties. Default: deliver as sent. */
export interface Tamper {
  round1?: (from: number, to: number, msg: DkgRound1Msg) => DkgRound1Msg;
  share?: (from: number, to: number, msg: DkgRound2Msg) => DkgRound2Msg;
  echo?: (from: number, to: number, msg: DkgEchoMsg) => DkgEchoMsg;
  confirm?: (from: number, to: number, msg: DkgConfirmMsg) => DkgConfirmMsg;
}

/** How one party's run ended: its key, or the error it threw and in which step. */
export type Outcome =
  | { readonly ok: true; readonly key: KeyShare }
  | { readonly ok: false; readonly step: 'round1' | 'round2' | 'round3' | 'finish'; readonly error: TesseraError };

interface Engine {
  round1(party: number): { state: unknown; broadcast: DkgRound1Msg };
  round2(state: unknown, received: Map<number, DkgRound1Msg>): { state: unknown; echo: DkgEchoMsg; shares: Map<number, DkgRound2Msg> };
  round3(state: unknown, echoes: Map<number, DkgEchoMsg>, shares: Map<number, DkgRound2Msg>): { state: unknown; confirm: DkgConfirmMsg };
  finish(state: unknown, confirms: Map<number, DkgConfirmMsg>): KeyShare;
}

/**
 * Run every party's rounds in memory. A party that throws stops; the others then miss its messages
 * (and fail with UnexpectedParty at their next round), as they would on a real network.
 */
function drive(parties: number, engine: Engine, tamper: Tamper): Outcome[] {
  const outcome: (Outcome | undefined)[] = new Array(parties + 1).fill(undefined);
  const alive = (i: number) => outcome[i] === undefined;
  const state = new Map<number, unknown>();
  const step = <T>(i: number, name: 'round1' | 'round2' | 'round3' | 'finish', fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (e) {
      if (!isTesseraError(e)) throw e;
      outcome[i] = { ok: false, step: name, error: e };
      return undefined;
    }
  };
  const all = Array.from({ length: parties }, (_, k) => k + 1);
  const inbox = <M>(to: number, sent: Map<number, M>, hook?: (from: number, to: number, m: M) => M): Map<number, M> => {
    const m = new Map<number, M>();
    for (const [from, msg] of sent) if (from !== to) m.set(from, hook ? hook(from, to, msg) : msg);
    return m;
  };

  const broadcasts = new Map<number, DkgRound1Msg>();
  for (const i of all) {
    const r = step(i, 'round1', () => engine.round1(i));
    if (r) {
      state.set(i, r.state);
      broadcasts.set(i, r.broadcast);
    }
  }

  const echoes = new Map<number, DkgEchoMsg>();
  const shares = new Map<number, Map<number, DkgRound2Msg>>();
  for (const i of all.filter(alive)) {
    const r = step(i, 'round2', () => engine.round2(state.get(i), inbox(i, broadcasts, tamper.round1)));
    if (r) {
      state.set(i, r.state);
      echoes.set(i, r.echo);
      shares.set(i, r.shares);
    }
  }

  const confirms = new Map<number, DkgConfirmMsg>();
  for (const i of all.filter(alive)) {
    const toMe = new Map<number, DkgRound2Msg>();
    for (const [from, out] of shares) {
      const m = out.get(i);
      if (from !== i && m) toMe.set(from, tamper.share ? tamper.share(from, i, m) : m);
    }
    const r = step(i, 'round3', () => engine.round3(state.get(i), inbox(i, echoes, tamper.echo), toMe));
    if (r) {
      state.set(i, r.state);
      confirms.set(i, r.confirm);
    }
  }

  for (const i of all.filter(alive)) {
    const key = step(i, 'finish', () => engine.finish(state.get(i), inbox(i, confirms, tamper.confirm)));
    if (key) outcome[i] = { ok: true, key };
  }
  return outcome.slice(1) as Outcome[];
}

export interface SimulateOptions {
  sessionId?: Uint8Array;
  /** The run id every party binds (32 bytes); random by default. */
  runId?: Uint8Array;
  auths?: PartyAuthenticator[];
  tamper?: Tamper;
}

/** Run a DKG with every party in memory; outcome[i-1] is party i's. */
export function simulateDkg(suite: SuiteId, threshold: number, parties: number, opts: SimulateOptions = {}): Outcome[] {
  const sessionId = opts.sessionId ?? randomBytes(16);
  const runId = opts.runId ?? randomBytes(32);
  const auths = opts.auths ?? testAuthenticators(parties);
  return drive(
    parties,
    {
      round1: (i) => dkgRound1({ suite, threshold, parties, self: i, sessionId, runId }, auths[i - 1]!),
      round2: (s, r) => dkgRound2(s as never, r),
      round3: (s, e, sh) => dkgRound3(s as never, e, sh),
      finish: (s, c) => dkgFinish(s as never, c),
    },
    opts.tamper ?? {},
  );
}

/** Run a refresh of `keys` (keys[i-1] is party i's) in memory. */
export function simulateRefresh(keys: KeyShare[], opts: SimulateOptions = {}): Outcome[] {
  const sessionId = opts.sessionId ?? randomBytes(16);
  const runId = opts.runId ?? randomBytes(32);
  const auths = opts.auths ?? testAuthenticators(keys.length);
  return drive(
    keys.length,
    {
      round1: (i) => refreshRound1({ sessionId, runId, key: keys[i - 1]! }, auths[i - 1]!),
      round2: (s, r) => refreshRound2(s as never, r),
      round3: (s, e, sh) => refreshRound3(s as never, e, sh),
      finish: (s, c) => refreshFinish(s as never, c),
    },
    opts.tamper ?? {},
  );
}

function keysOrThrow(outcomes: Outcome[]): KeyShare[] {
  for (const o of outcomes) if (!o.ok) throw o.error;
  return outcomes.map((o) => (o as { key: KeyShare }).key);
}

/** An all-honest DKG in memory; returns party i's KeyShare at index i-1. */
export function runDkg(suite: SuiteId, threshold: number, parties: number): KeyShare[] {
  return keysOrThrow(simulateDkg(suite, threshold, parties));
}

/** An all-honest refresh of every party's key (all n, in any order); returns the new keys by index. */
export function runRefresh(keys: KeyShare[]): KeyShare[] {
  ensure(Array.isArray(keys) && keys.length >= 2, ErrorCode.BadParameters, 'runRefresh: need every party\'s key');
  const byIndex = [...keys].sort((a, b) => a.secret.index - b.secret.index);
  ensure(
    byIndex.every((k, p) => k.secret.index === p + 1) && byIndex.length === byIndex[0]!.publicKey.parties,
    ErrorCode.BadParameters,
    'runRefresh: need exactly the keys of parties 1..n',
  );
  return keysOrThrow(simulateRefresh(byIndex));
}

export { TesseraError };
