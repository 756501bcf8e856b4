/**
 * Keys whose committee is not 1..n (issue 13: PublicKeyPackage.indices, core/committee.ts), in process:
 * for every suite, a 2-of-3 key on nodes 2, 4 and 5 made by the joint-Feldman DKG run over those
 * indices signs (FROST on every 2-subset, and the signing session), decapsulates (HPKE suites, against
 * an @hpke/core sender), signs with DKLs23 (ECDSA suites, pairwise setup among the committee),
 * refreshes keeping its committee and works again; a player outside the committee is refused with a
 * clear error in every protocol. A key on 1..n still omits `indices`. The store keeps a key's committee.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { randomBytes } from '@noble/hashes/utils.js';
import { Aes128Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';
import { DhkemX25519HkdfSha256 } from '@hpke/dhkem-x25519';
import { publicPackageDigest } from '../../core/commit.js';
import { partyIndices, verifyingShareOf } from '../../core/committee.js';
import { decapCombine, decapPartial } from '../../core/decap.js';
import { dkgDiscard, dkgFinish, dkgRound1, dkgRound2, dkgRound3 } from '../../core/dkg.js';
import { decodeEvidence, encodeEvidence, verifyEquivocationEvidence } from '../../core/evidence.js';
import { loadIdentityEngine } from '../../core/identity.js';
import { ecdsaRound1, ecdsaSessionId } from '../../core/ecdsa/session.js';
import { decodePairwiseSetup, ecdsaSigningKey, wipeEcdsaSigningKey } from '../../core/ecdsa/setup.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { decodePackage } from '../../core/frost.js';
import { decodeMessage, encodeMessage } from '../../core/wire.js';
import { AeadId, KdfId, createContext } from '../../core/hpke.js';
import type { DecapPartialMsg, DkgConfirmMsg, DkgEchoMsg, DkgRound1Msg, DkgRound2Msg } from '../../core/messages.js';
import { checkPresignedList } from '../../core/presign.js';
import { refreshFinish, refreshRound1, refreshRound2, refreshRound3 } from '../../core/refresh.js';
import { checkPackageCommittee, combine } from '../../core/shamir.js';
import { signRound1, signRound2, signSessionRound1 } from '../../core/sign.js';
import { SUITE_IDS, getSuite, type EcdsaSuite, type KemSuite, type SigningSuite, type SuiteId } from '../../core/suites.js';
import type { KeyShare, PublicKeyPackage } from '../../core/types.js';
import { PLACEHOLDER_CERTIFICATE, stageEpoch } from '../helpers/commit-store.js';
import { expectStandardEcdsa, runPairwiseSetup, signInProcess, withPairwiseSetup, type EcdsaSuiteId } from '../helpers/ecdsa.js';
import { identityAuthenticators, testAuthenticators } from '../helpers/run-dkg.js';
import { runSign, simulateSignSession } from '../helpers/run-sign.js';
import { useTempStores } from '../helpers/temp-store.js';
import { thrown } from '../helpers/thrown.js';

const COMMITTEE: readonly number[] = [2, 4, 5];
const THRESHOLD = 2;
/** Authenticators for nodes 1..5 (auths[i - 1] is node i's): the key lives on three of them. */
const AUTHS = testAuthenticators(5);
const utf8 = (s: string) => new TextEncoder().encode(s);
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Every 2-subset of the committee. */
function pairs(committee: readonly number[]): number[][] {
  const out: number[][] = [];
  for (let a = 0; a < committee.length; a++) for (let b = a + 1; b < committee.length; b++) out.push([committee[a]!, committee[b]!]);
  return out;
}

interface Rounds {
  round1(i: number): { state: unknown; broadcast: DkgRound1Msg };
  round2(state: unknown, received: Map<number, DkgRound1Msg>): { state: unknown; echo: DkgEchoMsg; shares: Map<number, DkgRound2Msg> };
  round3(state: unknown, echoes: Map<number, DkgEchoMsg>, shares: Map<number, DkgRound2Msg>): { state: unknown; confirm: DkgConfirmMsg };
  finish(state: unknown, confirms: Map<number, DkgConfirmMsg>): KeyShare;
}

/** The joint-Feldman rounds of every party of `committee` in memory, all honest; the keys in committee order. */
function driveCommittee(committee: readonly number[], rounds: Rounds): KeyShare[] {
  const others = <M>(to: number, sent: Map<number, M>) => new Map([...sent].filter(([from]) => from !== to));
  const state = new Map<number, unknown>();
  const broadcasts = new Map<number, DkgRound1Msg>();
  for (const i of committee) {
    const r = rounds.round1(i);
    state.set(i, r.state);
    broadcasts.set(i, r.broadcast);
  }
  const echoes = new Map<number, DkgEchoMsg>();
  const dealt = new Map<number, Map<number, DkgRound2Msg>>();
  for (const i of committee) {
    const r = rounds.round2(state.get(i), others(i, broadcasts));
    state.set(i, r.state);
    echoes.set(i, r.echo);
    dealt.set(i, r.shares);
  }
  const confirms = new Map<number, DkgConfirmMsg>();
  for (const i of committee) {
    const toMe = new Map([...dealt].filter(([from]) => from !== i).map(([from, out]) => [from, out.get(i)!]));
    const r = rounds.round3(state.get(i), others(i, echoes), toMe);
    state.set(i, r.state);
    confirms.set(i, r.confirm);
  }
  return committee.map((i) => rounds.finish(state.get(i), others(i, confirms)));
}

/** A DKG run over `committee` (core/dkg.ts with DkgParams.indices). */
function committeeDkg(suite: SuiteId, threshold: number, committee: readonly number[]): KeyShare[] {
  const sessionId = randomBytes(16);
  const runId = randomBytes(32);
  return driveCommittee(committee, {
    round1: (i) => dkgRound1({ suite, threshold, parties: committee.length, indices: committee, self: i, sessionId, runId }, AUTHS[i - 1]!),
    round2: (s, r) => dkgRound2(s as never, r),
    round3: (s, e, sh) => dkgRound3(s as never, e, sh),
    finish: (s, c) => dkgFinish(s as never, c),
  });
}

/** A refresh of every holder's key (core/refresh.ts: over the key's own committee). */
function committeeRefresh(keys: readonly KeyShare[]): KeyShare[] {
  const sessionId = randomBytes(16);
  const runId = randomBytes(32);
  const byIndex = new Map(keys.map((k) => [k.secret.index, k]));
  return driveCommittee(partyIndices(keys[0]!.publicKey), {
    round1: (i) => refreshRound1({ sessionId, runId, key: byIndex.get(i)! }, AUTHS[i - 1]!),
    round2: (s, r) => refreshRound2(s as never, r),
    round3: (s, e, sh) => refreshRound3(s as never, e, sh),
    finish: (s, c) => refreshFinish(s as never, c),
  });
}

/** The committee, epoch, shares and verifying shares of a committee key: share_i·G is the verifying share of holder i. */
function expectCommitteeKey(keys: readonly KeyShare[], epoch: number): PublicKeyPackage {
  const pkg = keys[0]!.publicKey;
  expect(pkg.indices).toEqual(COMMITTEE);
  expect(pkg.parties).toBe(COMMITTEE.length);
  expect(pkg.threshold).toBe(THRESHOLD);
  expect(pkg.epoch).toBe(epoch);
  expect(keys.map((k) => k.secret.index)).toEqual(COMMITTEE);
  const { group } = getSuite(pkg.suite);
  for (const k of keys) {
    expect(toHex(publicPackageDigest(k.publicKey))).toBe(toHex(publicPackageDigest(pkg)));
    const s = group.scalarFromBytes(k.secret.value, 'share');
    expect(toHex(group.pointToBytes(group.mulBase(s)))).toBe(toHex(verifyingShareOf(pkg, k.secret.index)));
  }
  // Any t shares interpolate (at their node indices) to the group key.
  for (const pair of pairs(COMMITTEE)) {
    const secret = combine(group, pair.map((i) => ({ index: i, value: group.scalarFromBytes(keys[COMMITTEE.indexOf(i)]!.secret.value, 'share') })));
    expect(toHex(group.pointToBytes(group.mulBase(secret)))).toBe(toHex(pkg.commitments[0]!));
  }
  return pkg;
}

const keyOf = (keys: readonly KeyShare[], i: number): KeyShare => keys.find((k) => k.secret.index === i)!;

// ---------------------------------------------------------------------------------------------
// Per kind of suite

function frostWorks(suite: SigningSuite, keys: readonly KeyShare[]): void {
  const pkg = keys[0]!.publicKey;
  const publicKey = decodePackage(suite, pkg).publicKey;
  for (const pair of pairs(COMMITTEE)) {
    const message = utf8(`committee ${suite.id} ${pair.join(',')} epoch ${pkg.epoch}`);
    const signature = runSign(pair.map((i) => keyOf(keys, i)), message);
    expect(suite.verify(signature, message, publicKey), `signers ${pair.join(',')}`).toBe(true);
  }
  // The identity-signed signing session, with every holder signing.
  const message = utf8('committee signing session');
  const outcomes = simulateSignSession([...keys], message, { auths: AUTHS });
  for (const i of COMMITTEE) {
    const o = outcomes.get(i)!;
    expect(o.ok, o.ok ? '' : o.error.message).toBe(true);
    if (o.ok) expect(suite.verify(o.signature, message, publicKey)).toBe(true);
  }
}

function frostRefusesOutsiders(suite: SigningSuite, keys: readonly KeyShare[]): void {
  const key2 = keyOf(keys, 2);
  // Signers that include node 1 (no share of this key): refused before any nonce is made.
  const e1 = thrown(() =>
    signSessionRound1({ suite, key: key2, signers: [1, 2], sessionId: randomBytes(16), runId: randomBytes(32), auth: AUTHS[1]! }),
  );
  expect(e1.code).toBe(ErrorCode.BadParameters);
  expect(e1.message).toMatch(/player 1 is not a holder of this key/);
  // A commitment list naming node 3.
  const r1 = signRound1(suite, key2.secret);
  const commits = new Map([
    [2, r1.commit],
    [3, r1.commit],
  ]);
  const e2 = thrown(() => signRound2(suite, key2, r1.nonces, commits, utf8('m')));
  expect(e2.code).toBe(ErrorCode.UnexpectedParty);
  expect(e2.message).toMatch(/party 3, which is not a holder of this key/);
  // A presigned list naming node 3.
  const entry = (node: number) => ({ node, poolId: randomBytes(16), index: 0, hiding: r1.commit.hiding, binding: r1.commit.binding });
  const e3 = thrown(() => checkPresignedList(suite, key2.publicKey, [entry(2), entry(3)], 2));
  expect(e3.code).toBe(ErrorCode.UnexpectedParty);
  expect(e3.message).toMatch(/node 3 is not a holder of this key/);
  expect(checkPresignedList(suite, key2.publicKey, [entry(2), entry(5)], 2).size).toBe(2);
}

const HPKE_JS = {
  'hpke-x25519': () => new DhkemX25519HkdfSha256(),
  'hpke-p256': () => new DhkemP256HkdfSha256(),
} as const;

async function decapWorks(suite: KemSuite, keys: readonly KeyShare[]): Promise<void> {
  const pkg = keys[0]!.publicKey;
  const hpke = new CipherSuite({ kem: HPKE_JS[suite.id as keyof typeof HPKE_JS](), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
  const pkR = await hpke.kem.deserializePublicKey(suite.publicKeyBytes(suite.group.pointFromBytes(pkg.commitments[0]!, 'group key')));
  const info = utf8('tessera committee decap');
  const sender = await hpke.createSenderContext({ recipientPublicKey: pkR, info });
  const enc = new Uint8Array(sender.enc);
  const ct = new Uint8Array(await sender.seal(utf8('to nodes 2, 4 and 5'), utf8('aad')));
  const exported = toHex(new Uint8Array(await sender.export(utf8('exporter'), 32)));
  const sessionId = randomBytes(32);
  const partials = new Map<number, DecapPartialMsg>(COMMITTEE.map((i) => [i, decapPartial(suite, keyOf(keys, i), enc, sessionId)]));
  for (const pair of [...pairs(COMMITTEE), [...COMMITTEE]]) {
    const ss = decapCombine(suite, pkg, enc, new Map(pair.map((i) => [i, partials.get(i)!])), sessionId);
    const ctx = createContext({ kemId: suite.kemId, kdfId: KdfId.HkdfSha256, aeadId: AeadId.Aes128Gcm }, ss, info);
    // The sender's secret: its exporter value and its ciphertext, both from @hpke/core.
    expect(toHex(ctx.export(utf8('exporter'), 32)), `players ${pair.join(',')}`).toBe(exported);
    expect(new TextDecoder().decode(ctx.open(utf8('aad'), ct))).toBe('to nodes 2, 4 and 5');
    ctx.destroy();
  }
  // A partial said to come from node 1, which holds no share of this key.
  const e = thrown(() => decapCombine(suite, pkg, enc, new Map([[1, partials.get(2)!], [4, partials.get(4)!]]), sessionId));
  expect(e.code).toBe(ErrorCode.UnexpectedParty);
  expect(e.message).toMatch(/not holders of this key/);
}

function ecdsaWorks(suite: EcdsaSuite, keys: readonly KeyShare[]): KeyShare[] {
  const withSetup = withPairwiseSetup(suite.id as EcdsaSuiteId, keys);
  const pkg = keys[0]!.publicKey;
  const message = utf8(`committee ${suite.id} epoch ${pkg.epoch}`);
  const digest = suite.messageDigest(message);
  for (const pair of pairs(COMMITTEE)) {
    const { sigs, errors } = signInProcess(suite.curve, pair.map((i) => keyOf(withSetup, i)), digest);
    expect([...errors.values()].map((e) => e.message)).toEqual([]);
    expect(sigs.size).toBe(2);
    const sig = sigs.get(pair[0]!)!;
    expect(toHex(sigs.get(pair[1]!)!.compact)).toBe(toHex(sig.compact));
    expect(suite.verify(sig.compact, message, pkg.commitments[0]!), `signers ${pair.join(',')}`).toBe(true);
    expectStandardEcdsa(suite.id as EcdsaSuiteId, { signature: toHex(sig.compact), der: toHex(sig.der), recoveryId: sig.recovery }, message, toHex(pkg.commitments[0]!));
  }
  return withSetup;
}

function ecdsaRefusesOutsiders(suite: EcdsaSuite, withSetup: readonly KeyShare[]): void {
  const key2 = keyOf(withSetup, 2);
  const signingKey = ecdsaSigningKey(suite.curve, key2);
  try {
    const e = thrown(() => ecdsaRound1(signingKey, ecdsaSessionId(randomBytes(16), randomBytes(32)), [1, 2]));
    expect(e.code).toBe(ErrorCode.BadParameters);
    expect(e.message).toMatch(/player 1 is not a holder of this key/);
  } finally {
    wipeEcdsaSigningKey(signingKey);
  }
  // Node 2's setups are with nodes 4 and 5: read as a key of nodes 1..3, they are refused.
  const e = thrown(() => decodePairwiseSetup(key2.secret.pairwise!, suite.curve, 2, 3));
  expect(e.code).toBe(ErrorCode.BadInput);
  const setup = decodePairwiseSetup(key2.secret.pairwise!, suite.curve, 2, COMMITTEE);
  expect([...setup.alice.keys()].sort()).toEqual([4, 5]);
  // runPairwiseSetup among the committee gives node i setups with exactly the other holders.
  expect([...runPairwiseSetup(suite.curve, [2, 5]).keys()]).toEqual([2, 5]);
}

function dkgRefusesOutsiders(suite: SuiteId): void {
  const base = { suite, threshold: THRESHOLD, parties: 3, indices: [...COMMITTEE], sessionId: randomBytes(16), runId: randomBytes(32) };
  const e1 = thrown(() => dkgRound1({ ...base, self: 3 }, AUTHS[2]!));
  expect(e1.code).toBe(ErrorCode.BadParameters);
  expect(e1.message).toMatch(/party 3 is not a holder of this key/);
  const e2 = thrown(() => dkgRound1({ ...base, indices: [2, 4], self: 2 }, AUTHS[1]!));
  expect(e2.code).toBe(ErrorCode.BadParameters);
  const e3 = thrown(() => dkgRound1({ ...base, indices: [4, 2, 5], self: 2 }, AUTHS[1]!));
  expect(e3.code).toBe(ErrorCode.BadParameters);
  expect(e3.message).toMatch(/ascending/);
  // A round-1 package said to come from node 3 (outside the committee) is refused by its sender index.
  const r: Record<number, ReturnType<typeof dkgRound1>> = {};
  for (const i of COMMITTEE) r[i] = dkgRound1({ ...base, self: i }, AUTHS[i - 1]!);
  const e4 = thrown(() => dkgRound2(r[2]!.state, new Map([[3, r[4]!.broadcast], [5, r[5]!.broadcast]])));
  expect(e4.code).toBe(ErrorCode.UnexpectedParty);
  expect(e4.message).toMatch(/unexpected sender\(s\) 3/);
}

describe('a key on nodes 2, 4 and 5 (2-of-3): every protocol uses the committee, not 1..n', () => {
  for (const id of SUITE_IDS) {
    it(`${id}: DKG over [2,4,5], ${getSuite(id).kind === 'kem' ? 'decapsulation' : 'signing'} with every 2-subset, refresh keeps the committee, outsiders refused`, async () => {
      const suite = getSuite(id);
      const keys = committeeDkg(id, THRESHOLD, COMMITTEE);
      const pkg = expectCommitteeKey(keys, 0);
      checkPackageCommittee(pkg);
      dkgRefusesOutsiders(id);

      const refreshed = committeeRefresh(keys);
      const next = expectCommitteeKey(refreshed, 1);
      expect(toHex(next.commitments[0]!)).toBe(toHex(pkg.commitments[0]!));

      if (suite.kind === 'sign') {
        frostWorks(suite, keys);
        frostRefusesOutsiders(suite, keys);
        frostWorks(suite, refreshed);
      } else if (suite.kind === 'kem') {
        await decapWorks(suite, keys);
        await decapWorks(suite, refreshed);
      } else {
        const withSetup = ecdsaWorks(suite, keys);
        ecdsaRefusesOutsiders(suite, withSetup);
        ecdsaWorks(suite, refreshed);
      }
    }, 120_000);
  }

  it('a DKG over 1..n, named or not, omits indices: its package and digests are those of every key before committees', () => {
    const named = committeeDkg('ed25519', 2, [1, 2, 3]);
    expect('indices' in named[0]!.publicKey).toBe(false);
    const pkg = named[0]!.publicKey;
    // The same package with its committee written out is not canonical, and is refused.
    const e = thrown(() => checkPackageCommittee({ ...pkg, indices: [1, 2, 3] }));
    expect(e.code).toBe(ErrorCode.BadParameters);
    expect(publicPackageDigest({ ...pkg, indices: [2, 4, 5] })).not.toEqual(publicPackageDigest(pkg));
  });
});

describe('a committee DKG: equivocation evidence binds the committee', () => {
  it('node 4 signing two round-1 packages is named, and the evidence verifies under its identity only for this committee', async () => {
    await loadIdentityEngine();
    const { auths, publicKeys } = identityAuthenticators(5);
    const base = { suite: 'ed25519' as const, threshold: THRESHOLD, parties: 3, indices: [...COMMITTEE], sessionId: randomBytes(16), runId: randomBytes(32) };
    const r1 = new Map(COMMITTEE.map((i) => [i, dkgRound1({ ...base, self: i }, auths[i - 1]!)] as const));
    const other = dkgRound1({ ...base, self: 4 }, auths[3]!);
    dkgDiscard(other.state);
    // Node 5 receives node 4's second package; node 2 the first.
    const inbox = (to: number) => new Map(COMMITTEE.filter((j) => j !== to).map((j) => [j, j === 4 && to === 5 ? other.broadcast : r1.get(j)!.broadcast]));
    const r2 = new Map(COMMITTEE.map((i) => [i, dkgRound2(r1.get(i)!.state, inbox(i))] as const));
    const echoes = new Map(COMMITTEE.filter((j) => j !== 2).map((j) => [j, r2.get(j)!.echo]));
    const shares = new Map(COMMITTEE.filter((j) => j !== 2).map((j) => [j, r2.get(j)!.shares.get(2)!]));
    const e = thrown(() => dkgRound3(r2.get(2)!.state, echoes, shares));
    expect(e.code).toBe(ErrorCode.Equivocation);
    expect(e.culprits).toEqual([4]);
    expect(e.evidence).toHaveLength(1);
    const ev = e.evidence[0]!;
    if (ev.protocol !== 'dkg') throw new Error('expected DKG evidence');
    expect(ev.binding.indices).toEqual(COMMITTEE);
    expect(verifyEquivocationEvidence(ev, publicKeys[3]!)).toBe(true);
    // Carried as bytes (node/http/api.ts), it still verifies; with another committee, or none, it does not.
    expect(verifyEquivocationEvidence(decodeEvidence(encodeEvidence([ev]))[0]!, publicKeys[3]!)).toBe(true);
    expect(verifyEquivocationEvidence({ ...ev, binding: { ...ev.binding, indices: [3, 4, 5] } }, publicKeys[3]!)).toBe(false);
    const { indices: _dropped, ...contiguous } = ev.binding;
    expect(verifyEquivocationEvidence({ ...ev, binding: contiguous }, publicKeys[3]!)).toBe(false);
    for (const st of r2.values()) dkgDiscard(st.state);
  });

  it('the echo, keyed by node index, decodes with the wire limit of the highest holder (what the drivers pass), not with n', () => {
    const base = { suite: 'ed25519' as const, threshold: THRESHOLD, parties: 3, indices: [...COMMITTEE], sessionId: randomBytes(16), runId: randomBytes(32) };
    const r1 = new Map(COMMITTEE.map((i) => [i, dkgRound1({ ...base, self: i }, AUTHS[i - 1]!)] as const));
    const r2 = dkgRound2(r1.get(2)!.state, new Map([4, 5].map((j) => [j, r1.get(j)!.broadcast])));
    const bytes = encodeMessage('dkg/echo', 'ed25519', r2.echo);
    expect(Object.keys(decodeMessage(bytes, 'dkg/echo', 'ed25519', { threshold: THRESHOLD, parties: Math.max(...COMMITTEE) }).packages)).toEqual(['2', '4', '5']);
    expect(() => decodeMessage(bytes, 'dkg/echo', 'ed25519', { threshold: THRESHOLD, parties: COMMITTEE.length })).toThrow(TesseraError);
    dkgDiscard(r2.state);
    for (const i of [4, 5]) dkgDiscard(r1.get(i)!.state);
  });
});

describe('the store keeps a key committee', () => {
  const { open, dir } = useTempStores('tessera-committee-');
  const keys = committeeDkg('ed25519', THRESHOLD, COMMITTEE);

  it('put / get / getShare round-trip indices; a node outside the committee cannot store a share; a refreshed epoch keeps the committee', async () => {
    const store = await open(undefined, 4);
    const mine = keyOf(keys, 4);
    const rec = await store.put({ tenant: 'acme', keyId: 'committee', version: 1, share: mine, exportable: false });
    expect(rec.publicKey.indices).toEqual(COMMITTEE);
    expect((await store.get('acme', 'committee'))!.publicKey.indices).toEqual(COMMITTEE);
    const share = (await store.getShare('acme', 'committee'))!;
    expect(share.publicKey.indices).toEqual(COMMITTEE);
    expect(toHex(publicPackageDigest(share.publicKey))).toBe(toHex(publicPackageDigest(mine.publicKey)));
    expect(toHex(share.secret.value)).toBe(toHex(mine.secret.value));

    // Node 1 holds no share of this key: a share of it said to be node 1's is refused by node 1's store.
    const other = await open(join(dir(), 'node1'), 1);
    const foreign: KeyShare = { publicKey: mine.publicKey, secret: { ...mine.secret, index: 1 } };
    const e = await other.put({ tenant: 'acme', keyId: 'committee', version: 1, share: foreign, exportable: false }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TesseraError);
    expect((e as TesseraError).message).toMatch(/this node \(1\) is not a holder of the key/);

    // A refreshed epoch with the same committee commits; one naming another committee is refused.
    const refreshed = keyOf(committeeRefresh(keys), 4);
    const moved: KeyShare = { publicKey: { ...refreshed.publicKey, indices: [3, 4, 5] }, secret: refreshed.secret };
    const refused = await stageEpoch(store, 'acme', 'committee', 1, moved).catch((x: unknown) => x);
    expect(refused).toBeInstanceOf(TesseraError);
    expect((refused as TesseraError).code).toBe(ErrorCode.BadParameters);
    expect((refused as TesseraError).message).toMatch(/committee/);
    expect(await store.getStaged('acme', 'committee')).toBeUndefined();

    const session = await stageEpoch(store, 'acme', 'committee', 1, refreshed);
    const [committed] = await store.commitStaged('acme', 'committee', session, PLACEHOLDER_CERTIFICATE);
    expect(committed!.epoch).toBe(1);
    expect(committed!.publicKey.indices).toEqual(COMMITTEE);
    expect((await store.getShare('acme', 'committee'))!.publicKey.indices).toEqual(COMMITTEE);
  });
});
