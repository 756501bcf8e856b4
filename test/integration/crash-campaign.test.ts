/**
 * The crash campaign of issue 9 ("Done when": a node is SIGKILLed at each step of keygen, rotate,
 * import, refresh, every lifecycle transition and destroy; separately, so is the coordinator), on one
 * real 2-of-3 cluster (sdk/dev.ts processes).
 *
 * A node is killed by its own test-only crash points (TESSERA_FAULT_POINTS, node/service.ts FAULT_POINTS):
 *   refresh-before-stage   in the middle of the refresh rounds, before anything is staged;
 *   commit-after-stage     staged with its vote stored, nothing sent (no certificate can exist yet);
 *   commit-after-release   vote released but not sent (no certificate can exist yet);
 *   commit-after-commit    committed, certificate not yet forwarded (the others hold every vote).
 * Each operation is killed at least once before a certificate exists and once after. The coordinator
 * is SIGKILLed from outside during an operation: while the nodes run the protocol rounds, and as soon
 * as a node has staged the result (the commit window). Afterwards, for every case:
 *   - the call is reported exactly: it failed only if no node holds its certificate;
 *   - right after the call, the committed state agrees: every version on every node with one epoch,
 *     state and public package, or the key on no node;
 *   - `cluster.repair` completes what every node staged or any node certified and drops the rest, with
 *     no problem, nothing left waiting, and the same agreement;
 *   - the key works as its state says (pairs sign; retired/archived versions refuse to sign);
 *   - a destroyed hpke-x25519 key never decapsulates again with any pair, before and after repair,
 *     also when one node alone holds the destroy's certificate (its vote lost, it crashed right after
 *     committing): a node that released its vote to destroy a version does not use that share again
 *     (node/sessions/engine.ts refuseReleasedDestroy).
 * Nodes are armed for the next case when they come back from a crash, so each case costs one restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { splitAndWrap } from '../../core/bundle.js';
import type { FAULT_POINTS } from '../../node/service.js';
import { bytesToHex, hexToBytes, hpkeOpenWithSecret, hpkeSeal, message32, sleep, startTestCluster, verifySignature, waitFor, type TestCluster } from '../helpers/cluster.js';

type FaultPoint = (typeof FAULT_POINTS)[number];
const PAIRS = [
  [1, 2],
  [1, 3],
  [2, 3],
] as const;
const NODES = [1, 2, 3] as const;

interface Outcome {
  ok: boolean;
  error?: Error & { code?: string };
}

async function settle(p: Promise<unknown>): Promise<Outcome> {
  try {
    await p;
    return { ok: true };
  } catch (e) {
    return { ok: false, error: e as Error & { code?: string } };
  }
}

describe('crash campaign: SIGKILL at every step of every state-changing operation (2-of-3)', () => {
  let tc: TestCluster;
  /** Processes that exited without the test asking (index, signal). */
  const exits: { index: number; signal: NodeJS.Signals | null }[] = [];
  const seeds = { 'imp-before': randomBytes(32), 'imp-after': randomBytes(32), 'mid-import-rounds-after-echo': randomBytes(32) };
  const sealed: Record<string, Awaited<ReturnType<typeof hpkeSeal>>> = {};

  /**
   * The committed state agrees: the key is on no node, or every node holds the same versions, each at
   * one epoch and state with one public package. Returns the common versions ([] for none).
   */
  async function expectAgreement(keyId: string): Promise<{ version: number; epoch: number; state: string }[]> {
    const st = await tc.commitStatuses(keyId);
    const views = st.map((s) => JSON.stringify((s?.versions ?? []).map((v) => ({ version: v.version, epoch: v.epoch, state: v.state }))));
    expect(new Set(views).size, `nodes hold different versions of ${keyId}: ${views.join(' | ')}`).toBe(1);
    const versions = (st[0]?.versions ?? []).map((v) => ({ version: v.version, epoch: v.epoch, state: v.state }));
    for (const v of versions) {
      const infos = await Promise.all(NODES.map((i) => tc.client(i).getKey(keyId, v.version)));
      expect(new Set(infos.map((k) => JSON.stringify(k.publicPackage))).size, `${keyId} version ${v.version}: one public package`).toBe(1);
    }
    return versions;
  }

  /** Session ids of every certificate any node holds for the key. */
  async function certificates(keyId: string): Promise<Set<string>> {
    const st = await tc.commitStatuses(keyId);
    return new Set(st.flatMap((s) => (s?.certificates ?? []).map((c) => c.sessionId)));
  }

  /** Repair: no problem, nothing waiting, agreement; returns the versions. */
  async function repairAndAgree(keyId: string) {
    const report = await tc.cluster.repair(keyId);
    expect(report.nodes.flatMap((n) => n.problems)).toEqual([]);
    expect(report.nodes.filter((n) => n.waiting)).toEqual([]);
    const versions = await expectAgreement(keyId);
    // Nothing is left staged anywhere.
    for (const s of await tc.commitStatuses(keyId)) expect(s?.staged).toBeUndefined();
    // A second repair finds nothing to do.
    const again = await tc.cluster.repair(keyId);
    expect(again.nodes.flatMap((n) => [...n.applied, ...n.dropped, ...n.problems])).toEqual([]);
    return { report, versions };
  }

  async function signsWithEveryPair(keyId: string, version?: number): Promise<void> {
    const info = await tc.cluster.getKey(keyId, version);
    for (const players of PAIRS) {
      const message = message32(`${keyId} ${version ?? ''} ${players.join(',')} ${Math.random()}`);
      const r = await tc.cluster.sign({ keyId, message, players: [...players], ...(version ? { version } : {}) });
      expect(verifySignature(info.suite, hexToBytes(r.signature), message, hexToBytes(info.publicKey))).toBe(true);
    }
  }

  async function refusesToSign(keyId: string, version: number): Promise<void> {
    for (const players of PAIRS) {
      const r = await settle(tc.cluster.sign({ keyId, message: message32('refused'), players: [...players], version }));
      expect(r.ok, `${keyId} version ${version} signed with ${players.join(',')}`).toBe(false);
    }
  }

  async function neverDecapsulates(keyId: string): Promise<void> {
    for (const players of PAIRS) {
      const r = await settle(tc.cluster.decapsulate({ keyId, enc: sealed[keyId]!.enc, players: [...players], version: 1 }));
      expect(r.ok, `destroyed ${keyId} decapsulated with ${players.join(',')}`).toBe(false);
    }
  }

  async function decapsulatesWithEveryPair(keyId: string): Promise<void> {
    for (const players of PAIRS) {
      const { sharedSecret } = await tc.cluster.decapsulate({ keyId, enc: sealed[keyId]!.enc, players: [...players], version: 1 });
      expect(bytesToHex(hpkeOpenWithSecret('hpke-x25519', hexToBytes(sharedSecret), sealed[keyId]!))).toBe(bytesToHex(new TextEncoder().encode(keyId)));
    }
  }

  /**
   * The order in which the cases below arm nodes. After a crash, the node comes back armed for the next
   * case when that case crashes the same node, so each case costs one node restart (runs of cases share a node).
   */
  const PLAN: { node: number; point: FaultPoint }[] = [
    { node: 2, point: 'commit-after-stage' }, // keygen
    { node: 2, point: 'commit-after-commit' }, // keygen
    { node: 2, point: 'commit-after-release' }, // rotate
    { node: 2, point: 'commit-after-commit' }, // rotate
    { node: 2, point: 'rounds-after-round1' }, // keygen, in the DKG rounds
    { node: 2, point: 'rounds-after-confirm' }, // keygen, in the DKG rounds
    { node: 2, point: 'rounds-after-echo' }, // rotate, in the DKG rounds
    { node: 2, point: 'rounds-after-echo' }, // import, in the DKG rounds
    { node: 3, point: 'rounds-after-echo' }, // keygen, in the DKG rounds
    { node: 3, point: 'rounds-after-confirm' }, // rotate, in the DKG rounds
    { node: 3, point: 'commit-after-stage' }, // import
    { node: 3, point: 'commit-after-commit' }, // import
    { node: 3, point: 'refresh-before-stage' }, // refresh
    { node: 3, point: 'commit-after-release' }, // destroy
    { node: 3, point: 'commit-after-commit' }, // destroy
    { node: 1, point: 'commit-after-commit' }, // refresh
    { node: 1, point: 'commit-after-stage' }, // retire
    { node: 1, point: 'commit-after-commit' }, // archive
    { node: 1, point: 'commit-after-release' }, // activate
    { node: 2, point: 'commit-after-release' }, // archive
    { node: 2, point: 'commit-after-commit' }, // activate
    { node: 2, point: 'commit-after-commit' }, // retire
  ];
  const armed = new Map<number, FaultPoint | undefined>();
  let planned = 0;

  /**
   * Run `op` with node `node` armed to SIGKILL itself at `point`; check the crash happened, the call is
   * reported exactly and the committed state agrees; bring the node back (armed for the next case if
   * that one crashes it too, else without any fault).
   */
  async function crashAt(node: number, point: FaultPoint, keyId: string, op: () => Promise<unknown>): Promise<Outcome> {
    if (armed.get(node) !== point) {
      await tc.restartWith(node, { TESSERA_FAULT_POINTS: point });
      armed.set(node, point);
    }
    const certsBefore = await certificates(keyId).catch(() => new Set<string>());
    const crashesBefore = exits.filter((e) => e.index === node).length;
    const outcome = await settle(op());
    await waitFor(`node ${node} to crash at ${point}`, () => exits.filter((e) => e.index === node).length > crashesBefore, 10_000);
    // The node killed itself (SIGKILL: its crash point; the test stops processes only with SIGTERM).
    expect(exits.at(-1)).toEqual({ index: node, signal: 'SIGKILL' });
    const k = PLAN.findIndex((c, i) => i >= planned && c.node === node && c.point === point);
    if (k >= 0) planned = k + 1;
    const next = PLAN[planned];
    const nextPoint = next && next.node === node ? next.point : undefined;
    armed.set(node, nextPoint);
    await tc.restart(node, nextPoint ? { TESSERA_FAULT_POINTS: nextPoint } : {});
    // Reported exactly: failed only when no node holds a certificate of the call's session.
    const certsAfter = await certificates(keyId).catch(() => new Set<string>());
    const fresh = [...certsAfter].filter((s) => !certsBefore.has(s));
    // Reported exactly: committed -> a certificate exists; failed -> none; OUTCOME_UNKNOWN (a released
    // vote, or a node that could not be asked) -> repair decided it either way.
    if ((outcome.error as { code?: string } | undefined)?.code !== 'OUTCOME_UNKNOWN') {
      expect(fresh.length, `${keyId} at ${point}: ${outcome.ok ? 'reported committed' : `reported failed (${outcome.error?.message})`}`).toBe(outcome.ok ? 1 : 0);
    }
    await expectAgreement(keyId);
    return outcome;
  }

  /** Disarm every node (before the coordinator cases, which change keys with every node healthy). */
  async function disarmAll(): Promise<void> {
    for (const [node, point] of armed) {
      if (point) {
        await tc.restartWith(node);
        armed.set(node, undefined);
      }
    }
  }

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2, logLevel: 'warn' });
    tc.dev.onUnexpectedExit = (index, _code, signal) => exits.push({ index, signal });
    // Every key the campaign changes is made first, with every node healthy.
    // (The keys of the rotate cases in the DKG rounds too: their nodes are armed from the case before on.)
    for (const keyId of ['rot', 'ref', 'life', ...ROUNDS.filter((t) => t.op === 'rotate').map(roundsKeyId)]) await tc.cluster.keygen({ suite: 'ed25519', keyId });
    for (const keyId of ['doomed-before', 'doomed-after', 'doomed-split']) {
      const key = await tc.cluster.keygen({ suite: 'hpke-x25519', keyId });
      sealed[keyId] = await hpkeSeal('hpke-x25519', hexToBytes(key.publicKey), new TextEncoder().encode(keyId));
      await tc.cluster.retire(keyId, 1);
    }
  }, 180_000);

  afterAll(async () => {
    await tc?.close();
  });

  // ---- keygen

  it('keygen, node 2 killed after staging: fails, nothing committed; repair commits it on every node', async () => {
    const outcome = await crashAt(2, 'commit-after-stage', 'kg-before', () => tc.cluster.keygen({ suite: 'ed25519', keyId: 'kg-before' }));
    expect(outcome.ok).toBe(false);
    expect(await expectAgreement('kg-before')).toEqual([]);
    const { versions } = await repairAndAgree('kg-before');
    expect(versions).toEqual([{ version: 1, epoch: 0, state: 'active' }]);
    await signsWithEveryPair('kg-before');
  }, 120_000);

  it('keygen, node 2 killed after committing: reported committed, on every node', async () => {
    const outcome = await crashAt(2, 'commit-after-commit', 'kg-after', () => tc.cluster.keygen({ suite: 'ed25519', keyId: 'kg-after' }));
    expect(outcome.ok, outcome.error?.message).toBe(true);
    expect(await expectAgreement('kg-after')).toEqual([{ version: 1, epoch: 0, state: 'active' }]);
    await repairAndAgree('kg-after');
    await signsWithEveryPair('kg-after');
  }, 120_000);

  // ---- rotate

  it('rotate, node 2 killed after releasing its vote: fails, version 1 stays; repair makes version 2 everywhere', async () => {
    const outcome = await crashAt(2, 'commit-after-release', 'rot', () => tc.cluster.rotate({ keyId: 'rot' }));
    expect(outcome.ok).toBe(false);
    expect(await expectAgreement('rot')).toEqual([{ version: 1, epoch: 0, state: 'active' }]);
    const { versions } = await repairAndAgree('rot');
    expect(versions).toEqual([
      { version: 1, epoch: 0, state: 'retired' },
      { version: 2, epoch: 0, state: 'active' },
    ]);
    await signsWithEveryPair('rot', 2);
    await refusesToSign('rot', 1);
  }, 120_000);

  it('rotate, node 2 killed after committing: reported committed, version 3 everywhere', async () => {
    const outcome = await crashAt(2, 'commit-after-commit', 'rot', () => tc.cluster.rotate({ keyId: 'rot' }));
    expect(outcome.ok, outcome.error?.message).toBe(true);
    const { versions } = await repairAndAgree('rot');
    expect(versions.map((v) => `${v.version}:${v.state}`)).toEqual(['1:retired', '2:retired', '3:active']);
    await signsWithEveryPair('rot', 3);
  }, 120_000);

  // ---- a node killed inside the DKG rounds (before anything is staged anywhere, or once others may have staged)

  /**
   * In PLAN's order (runs of cases crash the same node, which comes back from each crash armed for the
   * next). The retry of each operation, with no node armed, is the test after the crash cases.
   */
  const ROUNDS = [
    { op: 'keygen', point: 'rounds-after-round1', node: 2 },
    { op: 'keygen', point: 'rounds-after-confirm', node: 2 },
    { op: 'rotate', point: 'rounds-after-echo', node: 2 },
    { op: 'import', point: 'rounds-after-echo', node: 2 },
    { op: 'keygen', point: 'rounds-after-echo', node: 3 },
    { op: 'rotate', point: 'rounds-after-confirm', node: 3 },
  ] as const;
  const roundsKeyId = (t: (typeof ROUNDS)[number]) => `mid-${t.op}-${t.point}`;
  const runRoundsOp = (t: (typeof ROUNDS)[number]): Promise<unknown> => {
    const keyId = roundsKeyId(t);
    return t.op === 'keygen' ? tc.cluster.keygen({ suite: 'ed25519', keyId }) : t.op === 'rotate' ? tc.cluster.rotate({ keyId }) : importSeed(keyId as keyof typeof seeds);
  };

  for (const t of ROUNDS) {
    it(`${t.op}, node ${t.node} killed in the DKG rounds (${t.point}): fails, nothing committed; repair drops what others staged`, async () => {
      const keyId = roundsKeyId(t);
      const outcome = await crashAt(t.node, t.point, keyId, () => runRoundsOp(t));
      expect(outcome.ok).toBe(false);
      const { versions } = await repairAndAgree(keyId);
      expect(versions.map((v) => `${v.version}:${v.state}`)).toEqual(t.op === 'rotate' ? ['1:active'] : []);
    }, 120_000);
  }

  // ---- import (an external ed25519 seed through splitAndWrap)

  async function importSeed(keyId: keyof typeof seeds) {
    const importKeys = (await tc.cluster.importKeys()).map((k) => hexToBytes(k.publicKey));
    const bundle = await splitAndWrap(seeds[keyId], 'ed25519', 2, 3, importKeys, { keyId });
    return tc.cluster.importKey({ bundle });
  }

  it('import, node 3 killed after staging: fails; repair imports it on every node under the seed\'s public key', async () => {
    const outcome = await crashAt(3, 'commit-after-stage', 'imp-before', () => importSeed('imp-before'));
    expect(outcome.ok).toBe(false);
    expect(await expectAgreement('imp-before')).toEqual([]);
    const { versions } = await repairAndAgree('imp-before');
    expect(versions.map((v) => v.state)).toEqual(['active']);
    expect((await tc.cluster.getKey('imp-before')).publicKey).toBe(bytesToHex(ed25519.getPublicKey(seeds['imp-before'])));
    await signsWithEveryPair('imp-before');
  }, 120_000);

  it('import, node 3 killed after committing: reported committed, on every node', async () => {
    const outcome = await crashAt(3, 'commit-after-commit', 'imp-after', () => importSeed('imp-after'));
    expect(outcome.ok, outcome.error?.message).toBe(true);
    await repairAndAgree('imp-after');
    expect((await tc.cluster.getKey('imp-after')).publicKey).toBe(bytesToHex(ed25519.getPublicKey(seeds['imp-after'])));
    await signsWithEveryPair('imp-after');
  }, 120_000);

  // ---- refresh

  it('refresh, node 3 killed in the rounds (before staging): fails; repair drops the others\' staged epoch', async () => {
    const outcome = await crashAt(3, 'refresh-before-stage', 'ref', () => tc.cluster.refresh({ keyId: 'ref' }));
    expect(outcome.ok).toBe(false);
    const { report, versions } = await repairAndAgree('ref');
    expect(versions).toEqual([{ version: 1, epoch: 0, state: 'active' }]);
    expect(report.nodes.flatMap((n) => n.applied)).toEqual([]);
    expect(report.nodes.filter((n) => n.dropped.length > 0).map((n) => n.node)).toEqual([1, 2]);
    await signsWithEveryPair('ref');
  }, 120_000);

  // ---- destroy (hpke-x25519)
  // (Here, between the refresh cases: node 3 comes back from the refresh case armed for these.)

  it('destroy, node 3 killed after releasing its vote: fails; no node uses the share once it released its destroy vote; repair destroys it everywhere', async () => {
    const outcome = await crashAt(3, 'commit-after-release', 'doomed-before', () => tc.cluster.destroy('doomed-before', 1));
    expect(outcome.ok).toBe(false);
    expect(await expectAgreement('doomed-before')).toEqual([{ version: 1, epoch: 0, state: 'retired' }]);
    // Every node staged the destroy and released its vote: a certificate could exist anywhere.
    for (const s of await tc.commitStatuses('doomed-before')) expect(s?.staged).toMatchObject({ operation: 'destroy', released: true });
    await neverDecapsulates('doomed-before');
    const { versions } = await repairAndAgree('doomed-before');
    expect(versions).toEqual([{ version: 1, epoch: 0, state: 'destroyed' }]);
    await neverDecapsulates('doomed-before');
  }, 180_000);

  it('destroy, node 3 killed after committing: reported committed; no pair decapsulates, before or after repair', async () => {
    await decapsulatesWithEveryPair('doomed-after');
    const outcome = await crashAt(3, 'commit-after-commit', 'doomed-after', () => tc.cluster.destroy('doomed-after', 1));
    expect(outcome.ok, outcome.error?.message).toBe(true);
    expect(await expectAgreement('doomed-after')).toEqual([{ version: 1, epoch: 0, state: 'destroyed' }]);
    await neverDecapsulates('doomed-after');
    await repairAndAgree('doomed-after');
    await neverDecapsulates('doomed-after');
  }, 120_000);

  // ---- refresh (continued)

  it('refresh, node 1 killed after committing: reported committed at epoch 1 everywhere', async () => {
    const outcome = await crashAt(1, 'commit-after-commit', 'ref', () => tc.cluster.refresh({ keyId: 'ref' }));
    expect(outcome.ok, outcome.error?.message).toBe(true);
    expect(await expectAgreement('ref')).toEqual([{ version: 1, epoch: 1, state: 'active' }]);
    await repairAndAgree('ref');
    await signsWithEveryPair('ref');
  }, 120_000);

  // ---- lifecycle: retire, archive, activate, each before and after a certificate exists

  const transitions: { to: 'retired' | 'archived' | 'active'; node: number; point: FaultPoint }[] = [
    { to: 'retired', node: 1, point: 'commit-after-stage' },
    { to: 'archived', node: 1, point: 'commit-after-commit' },
    { to: 'active', node: 1, point: 'commit-after-release' },
    { to: 'archived', node: 2, point: 'commit-after-release' },
    { to: 'active', node: 2, point: 'commit-after-commit' },
    { to: 'retired', node: 2, point: 'commit-after-commit' },
  ];
  for (const t of transitions) {
    it(`lifecycle: to ${t.to}, node ${t.node} killed at ${t.point}: reported exactly; after repair ${t.to} everywhere`, async () => {
      const before = (await expectAgreement('life'))[0]!.state;
      const outcome = await crashAt(t.node, t.point, 'life', () => tc.cluster.setState({ keyId: 'life', version: 1, state: t.to }));
      const certified = t.point === 'commit-after-commit';
      expect(outcome.ok, outcome.error?.message).toBe(certified);
      expect((await expectAgreement('life'))[0]!.state).toBe(certified ? t.to : before);
      const { versions } = await repairAndAgree('life');
      expect(versions).toEqual([{ version: 1, epoch: 0, state: t.to }]);
      if (t.to === 'active') await signsWithEveryPair('life', 1);
      else await refusesToSign('life', 1);
    }, 120_000);
  }

  // ---- the coordinator killed mid-operation

  /**
   * SIGKILL the coordinator while `op` runs, when `trigger` first holds (polled), then start it again.
   * Whatever moment the kill hits, the call is reported exactly, the committed state agrees, and
   * repair resolves every staged change. Returns the outcome and whether anything was staged at the kill.
   */
  async function killCoordinatorDuring(keyId: string, op: () => Promise<unknown>, trigger: 'rounds' | 'staged') {
    const certsBefore = await certificates(keyId).catch(() => new Set<string>());
    let settled = false;
    const running = settle(op()).finally(() => (settled = true));
    let stagedAtKill = false;
    if (trigger === 'staged') {
      // As soon as any node staged the result: the commit window (attestations, votes, certificate).
      while (!settled) {
        const st = await tc.commitStatuses(keyId).catch(() => []);
        if (st.some((s) => s?.staged)) {
          stagedAtKill = true;
          break;
        }
      }
    } else {
      // In the protocol rounds: once every node joined (a DKG takes several relayed rounds).
      await sleep(60);
    }
    await tc.dev.kill(0, 'SIGKILL');
    const outcome = await running;
    await tc.restart(0);
    const fresh = [...(await certificates(keyId).catch(() => new Set<string>()))].filter((s) => !certsBefore.has(s));
    if ((outcome.error as { code?: string } | undefined)?.code !== 'OUTCOME_UNKNOWN') {
      expect(fresh.length, `${keyId}: ${outcome.ok ? 'reported committed' : `reported failed (${outcome.error?.message})`}`).toBe(outcome.ok ? 1 : 0);
    }
    await expectAgreement(keyId);
    return { outcome, stagedAtKill };
  }

  it('destroy certified on node 1 alone (its vote lost, it crashed before forwarding the certificate): no pair decapsulates before repair; repair destroys it everywhere', async () => {
    await decapsulatesWithEveryPair('doomed-split');
    // Node 1's vote never reaches nodes 2 and 3 (a relay that drops it, here the harness), and node 1
    // dies right after it committed on the votes of 2 and 3: it alone holds the certificate.
    await tc.restartWith(1, { TESSERA_FAULT_POINTS: 'commit-after-commit', TESSERA_TEST_DEVIATIONS: 'withhold-vote-to:2+3' });
    const crashesBefore = exits.filter((e) => e.index === 1).length;
    const reported = await settle(tc.cluster.destroy('doomed-split', 1));
    // Nodes 2 and 3 released their votes and node 1 (which holds the certificate) is down: the SDK
    // cannot know whether the destroy committed, and says so instead of "failed".
    expect((reported.error as { code?: string } | undefined)?.code, reported.error?.message).toBe('OUTCOME_UNKNOWN');
    await waitFor('node 1 to crash after committing', () => exits.filter((e) => e.index === 1).length > crashesBefore, 10_000);
    armed.set(1, undefined);
    await tc.restart(1);
    const [one, two, three] = await tc.commitStatuses('doomed-split');
    expect(one!.versions).toMatchObject([{ version: 1, state: 'destroyed' }]);
    for (const s of [two, three]) {
      expect(s!.versions).toMatchObject([{ version: 1, state: 'retired' }]);
      expect(s!.staged).toMatchObject({ operation: 'destroy', released: true });
    }
    // Node 1 was down when the SDK looked, so no certificate was visible to it: the call may say failed.
    // Whatever the call said, the key is destroyed: nodes 2 and 3 do not use a share whose destroy they
    // voted for, so no pair decapsulates, before repair and after.
    await neverDecapsulates('doomed-split');
    const { report, versions } = await repairAndAgree('doomed-split');
    expect(versions).toEqual([{ version: 1, epoch: 0, state: 'destroyed' }]);
    expect(report.nodes.map((n) => n.applied.map((a) => a.outcome))).toEqual([[], ['committed'], ['committed']]);
    await neverDecapsulates('doomed-split');
  }, 120_000);

  it('(the nodes run without crash points from here) each operation that failed in the DKG rounds works when run again', async () => {
    await disarmAll();
    for (const t of ROUNDS) {
      await runRoundsOp(t);
      await signsWithEveryPair(roundsKeyId(t));
    }
  }, 180_000);

  it('the coordinator killed during keygen rounds and during keygen\'s commit: reported exactly; repair leaves the key on every node or none', async () => {
    for (const [keyId, trigger] of [
      ['coord-kg-rounds', 'rounds'],
      ['coord-kg-staged', 'staged'],
    ] as const) {
      const { outcome } = await killCoordinatorDuring(keyId, () => tc.cluster.keygen({ suite: 'ed25519', keyId }), trigger);
      const { versions } = await repairAndAgree(keyId);
      if (outcome.ok) expect(versions).toEqual([{ version: 1, epoch: 0, state: 'active' }]);
      if (versions.length > 0) await signsWithEveryPair(keyId);
      else await expect(tc.cluster.keygen({ suite: 'ed25519', keyId })).resolves.toMatchObject({ keyId, version: 1 });
    }
  }, 180_000);

  it('the coordinator killed during a refresh and during a rotate: one epoch, one version set everywhere after repair; pairs sign', async () => {
    const ref = await killCoordinatorDuring('ref', () => tc.cluster.refresh({ keyId: 'ref' }), 'staged');
    const afterRefresh = (await repairAndAgree('ref')).versions;
    if (ref.outcome.ok) expect(afterRefresh[0]!.epoch).toBe(2);
    expect([1, 2]).toContain(afterRefresh[0]!.epoch);
    await signsWithEveryPair('ref');
    const rot = await killCoordinatorDuring('rot', () => tc.cluster.rotate({ keyId: 'rot' }), 'rounds');
    const afterRotate = (await repairAndAgree('rot')).versions;
    if (rot.outcome.ok) expect(afterRotate.length).toBe(4);
    const newest = afterRotate.at(-1)!;
    expect(newest.state).toBe('active');
    await signsWithEveryPair('rot', newest.version);
  }, 180_000);

  it('the coordinator killed during a destroy: once destroyed anywhere it is destroyed everywhere, and never decapsulates again', async () => {
    const key = await tc.cluster.keygen({ suite: 'hpke-x25519', keyId: 'coord-doomed' });
    sealed['coord-doomed'] = await hpkeSeal('hpke-x25519', hexToBytes(key.publicKey), new TextEncoder().encode('coord-doomed'));
    await tc.cluster.retire('coord-doomed', 1);
    const { outcome } = await killCoordinatorDuring('coord-doomed', () => tc.cluster.destroy('coord-doomed', 1), 'staged');
    const [state] = (await expectAgreement('coord-doomed')).map((v) => v.state);
    if (outcome.ok || state === 'destroyed') await neverDecapsulates('coord-doomed');
    const { versions } = await repairAndAgree('coord-doomed');
    if (versions[0]!.state !== 'destroyed') {
      // Nothing staged survived: the destroy never happened; it can be run again, cleanly.
      await decapsulatesWithEveryPair('coord-doomed');
      await tc.cluster.destroy('coord-doomed', 1);
    }
    expect((await expectAgreement('coord-doomed'))[0]!.state).toBe('destroyed');
    await neverDecapsulates('coord-doomed');
  }, 180_000);
});
