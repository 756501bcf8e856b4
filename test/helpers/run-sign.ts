/**
 * Test helpers for FROST signing: run the whole two-round protocol in memory, and deal keys with a
 * trusted dealer (core/shamir.ts split) for tests that need keys without running a DKG.
 */
import { randomBytes } from '@noble/hashes/utils.js';
import type { PartyAuthenticator } from '../../core/auth.js';
import {
  aggregateSignature,
  signRound1,
  signRound2,
  signSessionFinish,
  signSessionRound1,
  signSessionRound2,
  type SignSessionState,
  type SigningNonces,
} from '../../core/sign.js';
import { ErrorCode, TesseraError, ensure, isTesseraError } from '../../core/errors.js';
import type { SignCommitMsg, SignShareMsg, SignedCommitMsg, SignedShareMsg } from '../../core/messages.js';
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

/** Hooks that see (and may replace) every signing-session message between two signers. */
export interface SignTamper {
  commit?: (from: number, to: number, msg: SignedCommitMsg) => SignedCommitMsg | undefined;
  share?: (from: number, to: number, msg: SignedShareMsg) => SignedShareMsg | undefined;
}

/** How one signer's session ended: the signature it aggregated, or its error and the step. */
export type SignOutcome =
  | { readonly ok: true; readonly signature: Uint8Array }
  | { readonly ok: false; readonly step: 'round1' | 'round2' | 'finish'; readonly error: TesseraError };

export interface SignSessionOptions {
  sessionId?: Uint8Array;
  runId?: Uint8Array;
  /** auths[i - 1] is party i's authenticator (every party of the key, not only the signers). */
  auths: PartyAuthenticator[];
  tamper?: SignTamper;
}

/**
 * Run the signing session (core/sign.ts signSessionRound1/2/Finish) for `keys`' signers in memory.
 * A hook returning undefined drops the message. A signer that throws stops; the others then miss
 * its messages, as on a real network. Returns each signer's outcome keyed by its index.
 */
export function simulateSignSession(keys: KeyShare[], message: Uint8Array, opts: SignSessionOptions): Map<number, SignOutcome> {
  const sessionId = opts.sessionId ?? randomBytes(16);
  const runId = opts.runId ?? randomBytes(32);
  const tamper = opts.tamper ?? {};
  const signers = keys.map((k) => k.secret.index);
  const out = new Map<number, SignOutcome>();
  const step = <T>(i: number, name: 'round1' | 'round2' | 'finish', fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (e) {
      if (!isTesseraError(e)) throw e;
      out.set(i, { ok: false, step: name, error: e });
      return undefined;
    }
  };
  const inbox = <M>(to: number, sent: Map<number, M>, hook?: (from: number, to: number, m: M) => M | undefined): Map<number, M> => {
    const m = new Map<number, M>();
    for (const [from, msg] of sent) {
      if (from === to) continue;
      const d = hook ? hook(from, to, msg) : msg;
      if (d !== undefined) m.set(from, d);
    }
    return m;
  };
  const s1 = new Map<number, SignSessionState<1>>();
  const commits = new Map<number, SignedCommitMsg>();
  for (const k of keys) {
    const i = k.secret.index;
    const r = step(i, 'round1', () => signSessionRound1({ suite: getSigningSuite(k.publicKey.suite), key: k, signers, sessionId, runId, auth: opts.auths[i - 1]! }));
    if (r) {
      s1.set(i, r.state);
      commits.set(i, r.commit);
    }
  }
  const s2 = new Map<number, SignSessionState<2>>();
  const shares = new Map<number, SignedShareMsg>();
  for (const [i, st] of s1) {
    const r = step(i, 'round2', () => signSessionRound2(st, inbox(i, commits, tamper.commit), message));
    if (r) {
      s2.set(i, r.state);
      shares.set(i, r.share);
    }
  }
  for (const [i, st] of s2) {
    const signature = step(i, 'finish', () => signSessionFinish(st, inbox(i, shares, tamper.share)));
    if (signature) out.set(i, { ok: true, signature });
  }
  return out;
}

export { TesseraError };
