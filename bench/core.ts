/**
 * In-process costs of the core/ protocol functions: one party's work per round, single-threaded,
 * no I/O. Every party of a protocol runs in this one process one after the other, so a protocol's
 * "total" is the sum of every party's work (on a real cluster the parties run in parallel and the
 * critical path is about total / n, plus the network).
 *
 * DKG and refresh use ML-DSA-65 identity signatures (core/identity.ts) with the engine the nodes load
 * (liboqs, via loadIdentityEngine), as node/sessions/protocols.ts identityAuthenticator does, so their figures
 * include the post-quantum signing and verification of the round-1 broadcasts.
 */
import { performance } from 'node:perf_hooks';
import { x25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import type { PartyAuthenticator } from '../core/auth.js';
import { equalBytes } from '../core/bytes.js';
import { decapCombine, decapPartial } from '../core/decap.js';
import { dkgFinish, dkgRound1, dkgRound2, dkgRound3 } from '../core/dkg.js';
import { generateIdentity, identityEngineName, identitySign, identityVerify, loadIdentityEngine } from '../core/identity.js';
import type { DecapPartialMsg, DkgConfirmMsg, DkgEchoMsg, DkgRound1Msg, DkgRound2Msg, SignCommitMsg, SignShareMsg } from '../core/messages.js';
import { loadLiboqsMlKem768 } from '../core/pq.js';
import { decodeCertificate, encodeCertificate, verifyCertificate, voteBytes } from '../core/commit.js';
import { refreshFinish, refreshRound1, refreshRound2, refreshRound3 } from '../core/refresh.js';
import { aggregateSignature, groupPublicKey, signRound1, signRound2, verifySignatureShares, type SigningNonces } from '../core/sign.js';
import { verifySignature } from '../core/frost.js';
import { NOBLE_GROUPS, getKemSuite, signingSuiteOn, getSigningSuite, type KemSuiteId, type SigningSuite, type SigningSuiteId, type SuiteId } from '../core/suites.js';
import { chooseGroupBackends } from '../runtime/group-backend.js';
import type { KeyShare } from '../core/types.js';
import { generateWrappingKeyPair, unwrapShare, wrapShare, type WrapKem } from '../core/wrap.js';
import { runDkg } from '../test/helpers/run-dkg.js';
import { Recorder, measure, measureAsync, type Budget, type Section, type Stats } from './stats.js';
import { runEcdsaCore } from './ecdsa-core.js';

export interface CoreOptions {
  quick: boolean;
  /** Called with each section as soon as it is measured (so the run prints progressively). */
  emit: (s: Section) => void;
}

const SIGNING: SigningSuiteId[] = ['ed25519', 'secp256k1'];
const KEMS: KemSuiteId[] = ['hpke-x25519', 'hpke-p256'];

/** Budgets per kind of work; --quick keeps the shape and cuts the counts. */
function budgets(quick: boolean) {
  const b = (warmup: number, minIterations: number, maxIterations: number, targetMs: number): Budget =>
    quick ? { warmup: Math.min(warmup, 1), minIterations: Math.min(minIterations, 3), maxIterations: Math.min(maxIterations, 5), targetMs: 0 } : { warmup, minIterations, maxIterations, targetMs };
  return {
    /** Whole protocol runs (100..500 ms each). */
    protocol: b(2, 15, 60, 4_000),
    /** Signing rounds (one iteration = a whole 2-of-3 signing, ~0.2 s). */
    signing: b(3, 30, 200, 6_000),
    /** Milliseconds-scale single operations. */
    op: b(10, 50, 2_000, 1_500),
    /** Sub-millisecond operations. */
    fast: b(200, 500, 20_000, 1_000),
  };
}

// ---------------------------------------------------------------------------------------------
// Protocol drivers with per-party, per-round timing

/** ML-DSA-65 authenticators for parties 1..n (as node/sessions/protocols.ts identityAuthenticator). */
function identityAuthenticators(n: number): PartyAuthenticator[] {
  const ids = Array.from({ length: n }, () => generateIdentity());
  const verify = (index: number, m: Uint8Array, s: Uint8Array): boolean => {
    const id = ids[index - 1];
    return id !== undefined && identityVerify(id.publicKey, m, s);
  };
  return ids.map((id) => ({ sign: (m: Uint8Array) => identitySign(id.secretKey, m), verify }));
}

interface JointFeldmanEngine {
  round1(party: number): { state: unknown; broadcast: DkgRound1Msg };
  round2(state: unknown, received: Map<number, DkgRound1Msg>): { state: unknown; echo: DkgEchoMsg; shares: Map<number, DkgRound2Msg> };
  round3(state: unknown, echoes: Map<number, DkgEchoMsg>, shares: Map<number, DkgRound2Msg>): { state: unknown; confirm: DkgConfirmMsg };
  finish(state: unknown, confirms: Map<number, DkgConfirmMsg>): KeyShare;
}

function othersView<M>(to: number, sent: Map<number, M>): Map<number, M> {
  const m = new Map<number, M>();
  for (const [from, msg] of sent) if (from !== to) m.set(from, msg);
  return m;
}

/**
 * Run every party's rounds in memory (all honest), timing each call under 'round1'..'finish' and
 * the whole run under 'total'. Returns the keys (party i's at index i-1).
 */
function driveTimed(n: number, engine: JointFeldmanEngine, rec: Recorder): KeyShare[] {
  const all = Array.from({ length: n }, (_, k) => k + 1);
  const t0 = performance.now();
  const state = new Map<number, unknown>();
  const broadcasts = new Map<number, DkgRound1Msg>();
  for (const i of all) {
    const r = rec.time('round1', () => engine.round1(i));
    state.set(i, r.state);
    broadcasts.set(i, r.broadcast);
  }
  const echoes = new Map<number, DkgEchoMsg>();
  const shares = new Map<number, Map<number, DkgRound2Msg>>();
  for (const i of all) {
    const r = rec.time('round2', () => engine.round2(state.get(i), othersView(i, broadcasts)));
    state.set(i, r.state);
    echoes.set(i, r.echo);
    shares.set(i, r.shares);
  }
  const confirms = new Map<number, DkgConfirmMsg>();
  for (const i of all) {
    const toMe = new Map<number, DkgRound2Msg>();
    for (const [from, out] of shares) if (from !== i) toMe.set(from, out.get(i)!);
    const r = rec.time('round3', () => engine.round3(state.get(i), othersView(i, echoes), toMe));
    state.set(i, r.state);
    confirms.set(i, r.confirm);
  }
  const keys = all.map((i) => rec.time('finish', () => engine.finish(state.get(i), othersView(i, confirms))));
  rec.add('total', performance.now() - t0);
  return keys;
}

function dkgEngine(suite: SuiteId, threshold: number, parties: number, auths: PartyAuthenticator[]): JointFeldmanEngine {
  const sessionId = randomBytes(32);
  const runId = randomBytes(32);
  return {
    round1: (i) => dkgRound1({ suite, threshold, parties, self: i, sessionId, runId }, auths[i - 1]!),
    round2: (s, r) => dkgRound2(s as never, r),
    round3: (s, e, sh) => dkgRound3(s as never, e, sh),
    finish: (s, c) => dkgFinish(s as never, c),
  };
}

function refreshEngine(keys: KeyShare[], auths: PartyAuthenticator[]): JointFeldmanEngine {
  const sessionId = randomBytes(32);
  const runId = randomBytes(32);
  return {
    round1: (i) => refreshRound1({ sessionId, runId, key: keys[i - 1]! }, auths[i - 1]!),
    round2: (s, r) => refreshRound2(s as never, r),
    round3: (s, e, sh) => refreshRound3(s as never, e, sh),
    finish: (s, c) => refreshFinish(s as never, c),
  };
}

/** Repeat `run` (warm-up unrecorded) until the budget's run count and time target are met. */
function repeatRuns(rec: Recorder, b: Budget, run: () => void): void {
  rec.recording = false;
  for (let i = 0; i < b.warmup; i++) run();
  rec.recording = true;
  let runs = 0;
  const t0 = performance.now();
  while (!(runs >= b.maxIterations || (runs >= b.minIterations && performance.now() - t0 >= b.targetMs))) {
    run();
    runs++;
  }
}

// ---------------------------------------------------------------------------------------------
// Sections

function dkgSection(b: ReturnType<typeof budgets>): Section {
  const rows: Stats[] = [];
  const configs: [SuiteId, number, number][] = [];
  for (const s of SIGNING) for (const [t, n] of [[2, 3], [3, 5]] as const) configs.push([s, t, n]);
  for (const [suite, t, n] of configs) {
    const auths = identityAuthenticators(n);
    const rec = new Recorder();
    repeatRuns(rec, b.protocol, () => {
      driveTimed(n, dkgEngine(suite, t, n, auths), rec);
    });
    const label = `${suite} ${t}-of-${n}`;
    rows.push(
      ...rec.stats((l) => (l === 'total' ? `${label}  total (all ${n} parties)` : `${label}  ${l} (per party)`)).sort(totalFirst),
    );
  }
  return {
    title: 'DKG (core/dkg.ts, in-memory, every party in this process one after another)',
    note: `total = whole protocol, all parties sequentially; per-party rows = one party's call of that round.\nRound-1 broadcasts are signed and verified with ML-DSA-65 identity keys (${identityEngineName()}), as on the nodes.`,
    rows,
  };
}

function totalFirst(a: Stats, b: Stats): number {
  return Number(b.name.includes(' total ')) - Number(a.name.includes(' total '));
}

function signingSection(b: ReturnType<typeof budgets>): Section {
  const rows: Stats[] = [];
  for (const suiteId of SIGNING) {
    const suite = getSigningSuite(suiteId);
    const keys = runDkg(suiteId, 2, 3);
    const signers = [keys[0]!, keys[1]!];
    const pkg = signers[0]!.publicKey;
    const rec = new Recorder();
    repeatRuns(rec, b.signing, () => {
      const message = randomBytes(32);
      const nonces = new Map<number, SigningNonces>();
      const commits = new Map<number, SignCommitMsg>();
      for (const k of signers) {
        const r1 = rec.time('commit', () => signRound1(suite, k.secret));
        nonces.set(k.secret.index, r1.nonces);
        commits.set(k.secret.index, r1.commit);
      }
      const shares = new Map<number, SignShareMsg>();
      for (const k of signers) {
        shares.set(k.secret.index, rec.time('share', () => signRound2(suite, k, nonces.get(k.secret.index)!, commits, message)));
      }
      // verifySignatureShares requires a share from every signer in the commitment list (a missing
      // share is UnexpectedParty), so one call checks all t shares; record per share as call / t.
      const t0 = performance.now();
      verifySignatureShares(suite, pkg, commits, message, shares);
      const dt = performance.now() - t0;
      rec.add('verify-all', dt);
      rec.add('verify-per-share', dt / shares.size);
      rec.time('aggregate', () => aggregateSignature(suite, pkg, commits, message, shares));
    });
    const names: Record<string, string> = {
      commit: 'commit: signRound1 (per party)',
      share: 'share: signRound2 (per party)',
      'verify-per-share': 'verify one share (verifySignatureShares of 2 / 2)',
      'verify-all': 'verifySignatureShares, 2 shares',
      aggregate: 'aggregateSignature (verifies shares + signature)',
    };
    rows.push(...rec.stats((l) => `${suiteId} 2-of-3  ${names[l] ?? l}`));
  }
  return {
    title: 'FROST signing 2-of-3 (core/sign.ts, keys from an in-memory DKG)',
    note: 'verifySignatureShares rejects a share list that lacks a share of any committed signer, so the\nper-share row is one call over both shares divided by 2.',
    rows,
  };
}

function refreshSection(b: ReturnType<typeof budgets>): Section {
  const rows: Stats[] = [];
  for (const suiteId of SIGNING) {
    let keys = runDkg(suiteId, 2, 3);
    const auths = identityAuthenticators(3);
    const rec = new Recorder();
    repeatRuns(rec, b.protocol, () => {
      keys = driveTimed(3, refreshEngine(keys, auths), rec);
    });
    rows.push(
      ...rec
        .stats((l) => (l === 'total' ? `${suiteId} 2-of-3  total (all 3 parties)` : `${suiteId} 2-of-3  ${l} (per party)`))
        .sort(totalFirst),
    );
  }
  return {
    title: `Refresh 2-of-3 (core/refresh.ts, in-memory, ML-DSA-65 (${identityEngineName()}) signed round 1)`,
    note: 'Each run refreshes the previous run\'s keys (the epoch goes up by one per run).',
    rows,
  };
}

function encFor(suite: KemSuiteId): Uint8Array {
  if (suite === 'hpke-x25519') return x25519.getPublicKey(x25519.utils.randomSecretKey());
  return p256.getPublicKey(p256.utils.randomSecretKey(), false);
}

function decapSection(b: ReturnType<typeof budgets>): Section {
  const rows: Stats[] = [];
  for (const suiteId of KEMS) {
    const suite = getKemSuite(suiteId);
    const keys = runDkg(suiteId, 2, 3);
    const pkg = keys[0]!.publicKey;
    // Sanity: two different signer sets give the same shared secret.
    {
      const enc = encFor(suiteId);
      const sid = randomBytes(32);
      const a = decapCombine(suite, pkg, enc, new Map([1, 2].map((i) => [i, decapPartial(suite, keys[i - 1]!, enc, sid)])), sid);
      const c = decapCombine(suite, pkg, enc, new Map([2, 3].map((i) => [i, decapPartial(suite, keys[i - 1]!, enc, sid)])), sid);
      if (!equalBytes(a, c)) throw new Error(`${suiteId}: decapCombine differs between signer sets`);
    }
    const enc = encFor(suiteId);
    const sessionId = randomBytes(32);
    let k = 0;
    rows.push({
      ...measure('', () => decapPartial(suite, keys[k++ % 3]!, enc, sessionId), b.op),
      name: `${suiteId} 2-of-3  decapPartial (per party)`,
    });
    const partials = new Map<number, DecapPartialMsg>([1, 2].map((i) => [i, decapPartial(suite, keys[i - 1]!, enc, sessionId)]));
    rows.push({ ...measure('', () => decapCombine(suite, pkg, enc, partials, sessionId), b.op), name: `${suiteId} 2-of-3  decapCombine (2 partials)` });
  }
  return {
    title: 'Threshold decapsulation (core/decap.ts)',
    note: 'decapPartial = share·E plus a DLEQ proof; decapCombine verifies both proofs, interpolates, ExtractAndExpand.',
    rows,
  };
}

async function wrapSection(b: ReturnType<typeof budgets>): Promise<Section> {
  const rows: Stats[] = [];
  const keys = runDkg('ed25519', 2, 3);
  const share = keys[0]!.secret;
  const binding = { keyId: 'bench-key', version: 1, groupPublicKey: groupPublicKey(getSigningSuite('ed25519'), keys[0]!.publicKey) };
  const expect = { ...binding, suite: share.suite, index: share.index, epoch: share.epoch };
  for (const kem of ['ml-kem-768', 'x-wing'] as WrapKem[]) {
    rows.push({ ...(await measureAsync('', () => generateWrappingKeyPair(kem), b.op)), name: `${kem}  generateWrappingKeyPair` });
    const recipient = await generateWrappingKeyPair(kem);
    rows.push({ ...(await measureAsync('', () => wrapShare(recipient.publicKey, kem, share, binding), b.op)), name: `${kem}  wrapShare` });
    const wrapped = await wrapShare(recipient.publicKey, kem, share, binding);
    const back = await unwrapShare(recipient, wrapped, expect);
    if (!equalBytes(back.value, share.value)) throw new Error(`${kem}: unwrapShare did not return the share`);
    rows.push({ ...(await measureAsync('', () => unwrapShare(recipient, wrapped, expect), b.op)), name: `${kem}  unwrapShare` });
  }

  const oqs = await loadLiboqsMlKem768();
  const oqsPair = oqs.generateKeyPair();
  const oqsCt = oqs.encapsulate(oqsPair.publicKey);
  if (!equalBytes(oqs.decapsulate(oqsCt.cipherText, oqsPair.decapsulationKey), oqsCt.sharedSecret)) throw new Error('liboqs ML-KEM round trip failed');
  rows.push({ ...measure('', () => oqs.generateKeyPair(), b.fast), name: 'ML-KEM-768 keygen  liboqs' });
  rows.push({ ...measure('', () => oqs.encapsulate(oqsPair.publicKey), b.fast), name: 'ML-KEM-768 encaps  liboqs' });
  rows.push({ ...measure('', () => oqs.decapsulate(oqsCt.cipherText, oqsPair.decapsulationKey), b.fast), name: 'ML-KEM-768 decaps  liboqs' });

  const noblePair = ml_kem768.keygen();
  const nobleCt = ml_kem768.encapsulate(noblePair.publicKey);
  if (!equalBytes(ml_kem768.decapsulate(nobleCt.cipherText, noblePair.secretKey), nobleCt.sharedSecret)) throw new Error('noble ML-KEM round trip failed');
  rows.push({ ...measure('', () => ml_kem768.keygen(), b.fast), name: 'ML-KEM-768 keygen  noble' });
  rows.push({ ...measure('', () => ml_kem768.encapsulate(noblePair.publicKey), b.fast), name: 'ML-KEM-768 encaps  noble' });
  // noble wipes the secret key it is given (see its ml-kem.d.ts): hand it a copy each time.
  rows.push({
    ...measure('', () => ml_kem768.decapsulate(nobleCt.cipherText, noblePair.secretKey.slice()), b.fast),
    name: 'ML-KEM-768 decaps  noble (incl. 2400-byte key copy)',
  });

  const id = generateIdentity();
  const msg = randomBytes(256);
  const engine = identityEngineName();
  rows.push({ ...measure('', () => generateIdentity(), b.op), name: 'ML-DSA-65 keygen  generateIdentity (noble)' });
  const sig = identitySign(id.secretKey, msg);
  if (!identityVerify(id.publicKey, msg, sig) || !ml_dsa65.verify(sig, msg, id.publicKey)) throw new Error('ML-DSA-65 round trip failed');
  rows.push({ ...measure('', () => identitySign(id.secretKey, msg), b.op), name: `ML-DSA-65 sign  identitySign (${engine}${engine === 'liboqs' ? ', incl. scrub re-sign' : ''})` });
  rows.push({ ...measure('', () => identityVerify(id.publicKey, msg, sig), b.op), name: `ML-DSA-65 verify  identityVerify (${engine})` });
  rows.push({ ...measure('', () => ml_dsa65.sign(msg, id.secretKey), b.op), name: 'ML-DSA-65 sign  noble ml_dsa65' });
  rows.push({ ...measure('', () => ml_dsa65.verify(sig, msg, id.publicKey), b.op), name: 'ML-DSA-65 verify  noble ml_dsa65' });
  return {
    title: 'Post-quantum: share wrapping (core/wrap.ts, HPKE base mode), raw ML-KEM-768, ML-DSA-65',
    note: 'wrap/unwrap = HPKE SealBase/OpenBase of one share (ml-kem-768 through liboqs, x-wing through @hpke/hybridkem-x-wing).\nML-DSA-65 messages are 256 bytes.',
    rows,
  };
}

/**
 * The certificate round every state-changing session now ends with (node/sessions/commit.ts), per node
 * at n = 3 and n = 5: sign its vote, verify each peer's vote, encode the certificate; and what a node
 * handed a certificate does (decode + verify all n votes). The synced LevelDB writes (stage, commit)
 * are not in these figures; the cluster section's keygen / refresh / rotate rows include everything.
 */
function commitSection(b: ReturnType<typeof budgets>): Section {
  const rows: Section['rows'] = [];
  for (const n of [3, 5]) {
    const ids = Array.from({ length: n }, () => generateIdentity());
    const membership = new Map(ids.map((id, k) => [k + 1, id.publicKey] as const));
    const statement = {
      session: randomBytes(16),
      operation: 'refresh' as const,
      tenant: 'default',
      keyId: 'bench',
      version: 1,
      resultDigest: randomBytes(32),
    };
    const bytes = voteBytes(statement);
    const votes = new Map(ids.map((id, k) => [k + 1, identitySign(id.secretKey, bytes)] as const));
    const encoded = encodeCertificate({ ...statement, votes });
    rows.push({
      ...measure('', () => {
        identitySign(ids[0]!.secretKey, voteBytes(statement));
        for (let i = 2; i <= n; i++) if (!identityVerify(ids[i - 1]!.publicKey, bytes, votes.get(i)!)) throw new Error('vote');
        encodeCertificate({ ...statement, votes });
      }, b.op),
      name: `vote + collect + encode, per node, n=${n}`,
    });
    rows.push({ ...measure('', () => verifyCertificate(decodeCertificate(encoded), membership, [...membership.keys()]), b.op), name: `apply a handed certificate (decode + verify ${n} votes), n=${n}` });
    rows.push({ ...measure('', () => undefined, b.op), name: `certificate size, n=${n}: ${encoded.length} bytes` });
  }
  return { title: `Commit certificates (core/commit.ts, ML-DSA-65 ${identityEngineName()} votes)`, note: 'CPU only; the stage and commit LevelDB writes are synced and counted in the cluster rows.', rows };
}

/**
 * Compute per 2-of-3 signature (issue 10, item 2): everything the two signers and the aggregator
 * compute for one signature (commit x2, share x2, aggregate-first checks, final verify), for noble's
 * own FROST, for core/sign.ts over the Group on noble, and over the Group on the native backend that
 * runtime/group-backend.ts picks (chooseGroupBackends: loaded and self-checked here, not installed).
 * The three run interleaved, one signature each per iteration, so machine load hits them alike.
 * core/sign.ts runs as the nodes do: one stable package object (decoded once, core/frost.ts); the
 * final verify gets a fresh copy of the public key each time, as the SDK does.
 */
/** Signatures in a row per iteration on a native path (see computePerSignatureSection). */
const BLOCK_SIZE = 10;

function computePerSignatureSection(b: ReturnType<typeof budgets>): Section {
  const native = chooseGroupBackends({ prefer: 'native', warn: () => undefined });
  /** The suite with its arithmetic on `group` (the registry's suites use the process-wide backend). */
  const onGroup = signingSuiteOn;
  const rows: Stats[] = [];
  const missing: string[] = [];
  for (const suiteId of SIGNING) {
    const suite = getSigningSuite(suiteId);
    const curve = suite.group.name === 'edwards25519' ? 'edwards25519' : 'secp256k1';
    const keys = runDkg(suiteId, 2, 3);
    const signers = [keys[0]!, keys[1]!];
    const pkg = signers[0]!.publicKey;
    const pk = groupPublicKey(suite, pkg);
    const paths: [string, SigningSuite][] = [['core/sign.ts, Group on noble', onGroup(suite, NOBLE_GROUPS[curve])]];
    const nativeGroup = native.groups[curve];
    if (nativeGroup.backend !== 'noble') paths.push([`core/sign.ts, Group on ${nativeGroup.backend}`, onGroup(suite, nativeGroup)]);
    else missing.push(curve);
    // noble's FROST on the same key.
    const ids = [1, 2, 3].map((i) => suite.frost.Identifier.fromNumber(i));
    const pub = {
      signers: { min: pkg.threshold, max: pkg.parties },
      commitments: [...pkg.commitments],
      verifyingShares: Object.fromEntries(pkg.verifyingShares.map((y, k) => [ids[k]!, y])),
    } as never;
    const secrets = signers.map((k) => ({ identifier: ids[k.secret.index - 1]!, signingShare: k.secret.value }) as never);
    const rec = new Recorder();
    repeatRuns(rec, b.signing, () => {
      const message = randomBytes(32);
      rec.time("noble's own FROST", () => {
        const made = secrets.map((sk) => suite.frost.commit(sk));
        const list = made.map((m) => m.commitments);
        const shares: Record<string, Uint8Array> = {};
        secrets.forEach((sk, j) => (shares[(sk as { identifier: string }).identifier] = suite.frost.signShare(sk, pub, made[j]!.nonces, list, message)));
        // noble's aggregate verifies the signature and checks shares only if that fails (aggregate-first).
        const sig = suite.frost.aggregate(pub, list, message, shares as never);
        if (!suite.frost.verify(sig, message, Uint8Array.from(pk))) throw new Error(`${suiteId}: noble's signature does not verify`);
      });
      // A native path signs a block of BLOCK_SIZE signatures in a row per iteration (one timed sample each):
      // with one signature per path per iteration, the garbage of noble's bigint arithmetic was
      // collected inside the next path's timing (measured: 1.0 ms alone, 1.65 ms interleaved one by
      // one, same code). Blocks keep the interleaving, so machine load still hits every path alike.
      for (const [label, s] of paths) for (let k = 0; k < (s.group.backend === 'noble' ? 1 : BLOCK_SIZE); k++) {
        rec.time(label, () => {
          const nonces = new Map<number, SigningNonces>();
          const commits = new Map<number, SignCommitMsg>();
          for (const k of signers) {
            const r1 = signRound1(s, k.secret);
            nonces.set(k.secret.index, r1.nonces);
            commits.set(k.secret.index, r1.commit);
          }
          const shares = new Map<number, SignShareMsg>();
          for (const k of signers) shares.set(k.secret.index, signRound2(s, k, nonces.get(k.secret.index)!, commits, message));
          const sig = aggregateSignature(s, pkg, commits, message, shares);
          if (!verifySignature(s, sig, message, Uint8Array.from(pk))) throw new Error(`${suiteId}: ${label}: signature does not verify`);
        });
      }
    });
    const stats = rec.stats((l) => `${suiteId} 2-of-3  ${l}`);
    const noble = stats[0]!.medianMs;
    rows.push(...stats.map((st, k) => (k === 0 ? st : { ...st, note: `${(noble / st.medianMs).toFixed(1)}x less than noble (median)` })));
  }
  return {
    title: 'Compute per 2-of-3 signature (commit x2, share x2, aggregate-first checks, final verify; one process)',
    note:
      `Interleaved: each iteration signs once with noble's FROST and with core/sign.ts on noble, then ${BLOCK_SIZE} times in a row on the native path (one sample per signature). Targets (issue 10): >= 50x less than noble for ed25519, >= 20x for secp256k1.` +
      (missing.length > 0 ? `\nNo native backend loaded for ${missing.join(', ')}: that row is missing.` : ''),
    rows,
  };
}

/** Run every core section, emitting each as it completes. */
export async function runCore(o: CoreOptions): Promise<Section[]> {
  const b = budgets(o.quick);
  // The nodes sign and verify identities with liboqs (node and coordinator call this at start-up).
  await loadIdentityEngine();
  const sections: Section[] = [];
  const add = (s: Section) => {
    sections.push(s);
    o.emit(s);
  };
  add(dkgSection(b));
  add(signingSection(b));
  add(computePerSignatureSection(b));
  // DKLs23 ECDSA (issue 12): bench/ecdsa-core.ts emits its sections itself.
  sections.push(...(await runEcdsaCore({ quick: o.quick, emit: o.emit })));
  add(refreshSection(b));
  add(decapSection(b));
  add(await wrapSection(b));
  add(commitSection(b));
  return sections;
}
