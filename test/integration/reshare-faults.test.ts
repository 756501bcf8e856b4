/**
 * Reshare under faults (issue 13, "Done when": a node SIGKILLed at each step of a reshare leaves every
 * key usable at its last committed committee and `tessera repair` completes it; a malicious dealer is
 * named and the honest nodes stay consistent), on one real 4-node cluster (sdk/dev.ts processes).
 *
 * Every case starts from an ed25519 key reshared to 2-of-3 on nodes 1,2,3 (node 4 handed off), then
 * reshares it to 2-of-3 on 2,3,4 with dealers 1,2: node 1 is a leaving dealer, node 2 a staying
 * dealer, node 3 a staying receiver, node 4 joins. Or to 3-of-4 on 1..4.
 * - A dealer that sends a sub-share off its commitments (TESSERA_TEST_DEVIATIONS bad-share-to) is named
 *   by the recipient that caught it, with evidence the SDK re-checks, and by nobody else; no honest node is ever named; nothing is
 *   staged or changed; a reshare with honest dealers then succeeds.
 * - A player SIGKILLs itself (TESSERA_FAULT_POINTS) after dealing, after confirming, before staging,
 *   after staging, after releasing its vote and after committing (every role, each at the points
 *   where its outcome differs; see CASES). The call fails only if
 *   no node holds the certificate; right after, t nodes of the committee holding the last committed
 *   epoch sign; `cluster.repair` (as `tessera repair` runs it) finishes or drops the change: every node
 *   in the resulting committee holds that epoch, every node outside it holds nothing, nothing stays
 *   staged, a second repair has nothing to do, and two t-subsets sign (node:crypto, RFC 8032).
 * - A node whose commit was interrupted after it released its vote gets the certificate from repair
 *   when it restarts, and ends as its role says (a leaving dealer erased, a joining node holds its share);
 *   or, when its peers already hold the certificate, from a later signing session's catch-up
 *   (node/sessions/engine.ts), which commits its staged share.
 * - An old holder that was down during the reshare (not a player) is handed the certificate and the
 *   new package by repair, and erases its share.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCertificate } from '../../core/commit.js';
import type { Operation } from '../../core/session.js';
import type { FAULT_POINTS } from '../../node/service.js';
import { hexToBytes, logEntries, message32, startTestCluster, verifySignature, waitFor, type TestCluster } from '../helpers/cluster.js';

type FaultPoint = (typeof FAULT_POINTS)[number];
const NODES = [1, 2, 3, 4] as const;
const SUITE = 'ed25519';

interface Outcome {
  ok: boolean;
  error?: Error & { code?: string; culprits?: readonly number[] };
}

async function settle(p: Promise<unknown>): Promise<Outcome> {
  try {
    await p;
    return { ok: true };
  } catch (e) {
    return { ok: false, error: e as Outcome['error'] };
  }
}

/** The committed state every node agrees on: the epoch, its committee and threshold. */
interface Committed {
  epoch: number;
  nodes: number[];
  threshold: number;
}

describe('reshare under faults: a malicious dealer, a node killed at each step, an old holder down (4 nodes)', () => {
  let tc: TestCluster;
  const exits: { index: number; signal: NodeJS.Signals | null }[] = [];
  const publicKeys = new Map<string, string>();
  /** Each key's state once made (2-of-3 on 1,2,3), before its case. */
  const before = new Map<string, Committed>();

  async function certificates(keyId: string): Promise<Set<string>> {
    return new Set((await tc.commitStatuses(keyId)).flatMap((s) => (s?.certificates ?? []).map((c) => c.sessionId)));
  }

  /**
   * The newest committed epoch any node holds, its committee, and the nodes of that committee that
   * hold it (a node may still be behind, or down). Every holder of that epoch has one public package.
   */
  async function lastCommitted(keyId: string): Promise<Committed & { holders: number[] }> {
    const st = await tc.commitStatuses(keyId);
    const epoch = Math.max(...st.flatMap((s) => (s?.versions ?? []).map((v) => v.epoch)));
    const holders = NODES.filter((_, k) => st[k]?.versions.some((v) => v.version === 1 && v.epoch === epoch));
    const infos = await Promise.all(holders.map((i) => tc.client(i).getKey(keyId, 1)));
    expect(new Set(infos.map((k) => JSON.stringify(k.publicPackage))).size, `${keyId}: one public package at epoch ${epoch}`).toBe(1);
    const nodes = infos[0]!.publicPackage.indices ?? Array.from({ length: infos[0]!.publicPackage.parties }, (_, k) => k + 1);
    expect(infos[0]!.publicKey).toBe(publicKeys.get(keyId));
    return { epoch, nodes, threshold: infos[0]!.threshold, holders: [...holders] };
  }

  /**
   * Every node agrees: the nodes of the committee hold version 1 at one epoch (one package), every
   * node outside it holds nothing of the key, and nothing is staged anywhere.
   */
  async function expectConsistent(keyId: string): Promise<Committed> {
    const last = await lastCommitted(keyId);
    const st = await tc.commitStatuses(keyId);
    for (const [k, s] of st.entries()) {
      const i = k + 1;
      expect(s?.staged, `${keyId}: node ${i} has a staged change`).toBeUndefined();
      if (last.nodes.includes(i)) expect(s?.versions.map((v) => `${v.version}:${v.epoch}`), `${keyId}: node ${i} (committee ${last.nodes})`).toEqual([`1:${last.epoch}`]);
      else expect(s, `${keyId}: node ${i} is outside the committee ${last.nodes} but holds ${JSON.stringify(s?.versions)}`).toBeNull();
    }
    return { epoch: last.epoch, nodes: last.nodes, threshold: last.threshold };
  }

  async function signs(keyId: string, players: readonly number[]): Promise<void> {
    const message = message32(`${keyId} ${players.join(',')} ${Math.random()}`);
    const r = await tc.cluster.sign({ keyId, message, players: [...players] });
    expect(verifySignature(SUITE, hexToBytes(r.signature), message, hexToBytes(publicKeys.get(keyId)!)), `${keyId} signed by ${players}`).toBe(true);
  }

  /** Two t-subsets of the committee sign. */
  async function committeeSigns(keyId: string, c: Committed): Promise<void> {
    await signs(keyId, c.nodes.slice(0, c.threshold));
    await signs(keyId, c.nodes.slice(-c.threshold));
  }

  /** Repair: no problem, nothing waiting, every node consistent, a second repair has nothing to do. */
  async function repairAndAgree(keyId: string) {
    const report = await tc.cluster.repair(keyId);
    expect(report.nodes.flatMap((n) => n.problems), `${keyId} repair problems`).toEqual([]);
    expect(report.nodes.filter((n) => n.waiting || n.restored)).toEqual([]);
    const state = await expectConsistent(keyId);
    const again = await tc.cluster.repair(keyId);
    expect(again.nodes.flatMap((n) => [...n.applied, ...n.dropped, ...n.problems]), `${keyId}: a second repair`).toEqual([]);
    return { report, state };
  }

  /** A key made on all four nodes, then reshared to 2-of-3 on 1,2,3 (node 4 handed off). */
  async function keyOn123(keyId: string): Promise<Committed> {
    const info = await tc.cluster.keygen({ suite: SUITE, keyId });
    publicKeys.set(keyId, info.publicKey);
    const r = await tc.cluster.reshare(keyId, { threshold: 2, nodes: [1, 2, 3] });
    expect(r.handoff).toEqual([{ node: 4, outcome: 'erased' }]);
    return expectConsistent(keyId);
  }

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 4, threshold: 2, logLevel: 'warn' });
    tc.dev.onUnexpectedExit = (index, _code, signal) => exits.push({ index, signal });
    // Every key is made here, with every node healthy and unarmed.
    for (const keyId of ['rf-malicious', 'rf-handoff', 'rf-catch-up', ...CASES.map((_, n) => `rf-crash-${n}`)]) before.set(keyId, await keyOn123(keyId));
  }, 180_000);

  afterAll(async () => {
    await tc?.close();
  });

  it('a dealer sending a sub-share off its commitments is named (never an honest node); nothing changes; a reshare with honest dealers then works', async () => {
    const keyId = 'rf-malicious';
    const start = before.get(keyId)!;
    await tc.restartWith(1, { TESSERA_TEST_DEVIATIONS: 'bad-share-to:4' });
    try {
      const started = Date.now();
      const outcome = await settle(tc.cluster.reshare(keyId, { threshold: 2, nodes: [2, 3, 4], dealers: [1, 2] }));
      expect(outcome.ok, 'the reshare with a cheating dealer committed').toBe(false);
      const err = outcome.error!;
      // The SDK names the dealer, and only it: the recipient's evidence (the sub-share and deal the dealer
      // signed, which do not fit) checks under node 1's identity key (core/evidence.ts ReshareBadShare).
      expect(err.culprits, err.message).toEqual([1]);
      expect(err.message, err.message).toMatch(/node 1\b|nodes? 1\b|dealer 1\b|party 1\b|node\(s\) 1\b/);
      // The honest recipient that caught it named node 1, and only node 1.
      const named = await logEntries(tc.dir, 'node-4', (e) => e.msg === 'session failed' && (e.time as number) >= started && Array.isArray(e.culprits));
      expect(named.map((e) => e.culprits)).toContainEqual([1]);
      for (const i of [2, 3, 4]) {
        const entries = await logEntries(tc.dir, `node-${i}`, (e) => e.msg === 'session failed' && (e.time as number) >= started && Array.isArray(e.culprits));
        for (const e of entries) for (const c of e.culprits as number[]) expect(c, `node ${i} named node ${c}`).toBe(1);
      }
      // Nothing changed, nothing is staged: the key works at its old committee and epoch.
      expect(await expectConsistent(keyId)).toEqual(start);
      await signs(keyId, [2, 3]);
      const report = await tc.cluster.repair(keyId);
      expect(report.nodes.flatMap((n) => [...n.applied, ...n.dropped, ...n.problems])).toEqual([]);
      // Honest dealers 2,3 move the key to 3-of-4 on every node (the cheating node receives as a plain player).
      const r = await tc.cluster.reshare(keyId, { threshold: 3, nodes: [1, 2, 3, 4], dealers: [2, 3] });
      expect(r.nodes).toEqual([1, 2, 3, 4]);
      const after = await expectConsistent(keyId);
      expect(after).toEqual({ epoch: start.epoch + 1, nodes: [1, 2, 3, 4], threshold: 3 });
      await committeeSigns(keyId, after);
    } finally {
      // Node 1 is left stopped, not restarted honest: the next test needs it down (an old holder down
      // during a reshare) and brings it back armed for the first crash case (a node restart is the
      // costliest step here).
      await tc.dev.kill(1);
    }
  }, 150_000);

  it('an old holder down during the reshare (not a player) is handed the certificate by repair and erases its share', async () => {
    const keyId = 'rf-handoff';
    const start = before.get(keyId)!;
    await tc.dev.kill(1); // (already stopped when the test before ran)
    const r = await tc.cluster.reshare(keyId, { threshold: 2, nodes: [2, 3, 4], dealers: [2, 3] });
    expect(r.handoff).toEqual([{ node: 1, error: expect.stringMatching(/.+/) }]);
    // Back armed for the first crash case (it crashes node 1 too): repair and signing reach no crash point.
    const first = CASES[0]!;
    const point = first.node === 1 ? first.point : undefined;
    armed.set(1, point);
    await tc.restart(1, point ? { TESSERA_FAULT_POINTS: point } : {});
    // Node 1 still holds the old epoch: t nodes of the new committee sign without it.
    const st = await tc.commitStatuses(keyId);
    expect(st[0]?.versions.map((v) => v.epoch)).toEqual([start.epoch]);
    await signs(keyId, [2, 4]);
    const { report, state } = await repairAndAgree(keyId);
    expect(report.nodes[0]!.applied).toEqual([expect.objectContaining({ operation: 'reshare', outcome: 'erased' })]);
    expect(state).toEqual({ epoch: start.epoch + 1, nodes: [2, 3, 4], threshold: 2 });
    await committeeSigns(keyId, state);
  }, 120_000);

  /**
   * Each case: the reshare 1,2,3 -> 2,3,4 (dealers 1,2) with `node` armed to SIGKILL itself at `point`.
   * `end`: the state repair must leave, 'old' (dropped), 'new' (finished), or 'either' (the survivors'
   * sessions race the crash: whether all of them staged decides).
   *
   * Ordered so that runs of cases crash the same node: each node is armed by a restart once, then comes
   * back from each crash armed for the next case (a node restart is the costliest step of a case).
   * Each crash point is taken once per role that ends differently at it. Not repeated here: the joining
   * node killed after releasing its vote with dealers 1,2 (the case with dealers 2,3 below kills the
   * same joining node at the same point; node 1 leaving as a dealer, erased at its commit, is in every
   * case that finishes with dealers 1,2), and the staying dealer killed after staging (the joining
   * node's commit-after-stage case covers a player killed with its vote stored, nothing sent, and
   * crash-campaign.test.ts kills a node at commit-after-stage in keygen, import and a transition).
   */
  const CASES: { node: number; role: string; point: FaultPoint; end: 'old' | 'new' | 'either'; dealers?: number[] }[] = [
    { node: 1, role: 'leaving dealer', point: 'reshare-after-deal', end: 'old' },
    { node: 1, role: 'leaving dealer', point: 'commit-after-release', end: 'new' },
    { node: 1, role: 'leaving dealer', point: 'commit-after-commit', end: 'new' },
    { node: 4, role: 'joining node', point: 'reshare-after-confirm', end: 'old' },
    { node: 4, role: 'joining node', point: 'commit-after-stage', end: 'either' },
    // Dealers 2,3: node 1 is an old holder outside the session. Only the players vote, so repair
    // finishes the change without node 1, then hands node 1 the certificate, and it erases.
    { node: 4, role: 'joining node, old holder 1 not a player', point: 'commit-after-release', end: 'new', dealers: [2, 3] },
    { node: 2, role: 'staying dealer', point: 'commit-after-commit', end: 'new' },
    { node: 3, role: 'staying receiver', point: 'reshare-before-stage', end: 'old' },
  ];
  /** The crash of the last test (after CASES): node 3, a staying receiver, interrupted after releasing its vote. */
  const CATCH_UP = { node: 3, point: 'commit-after-release' } as const;
  /** Which crash point each node is armed with now (a node comes back from a crash armed for the next case that crashes it). */
  const armed = new Map<number, FaultPoint | undefined>();

  for (const [n, c] of CASES.entries()) {
    it(`${c.role} (node ${c.node}) killed at ${c.point}: reported exactly; the last committed committee signs; repair leaves every node consistent (${c.end === 'either' ? 'finished or dropped' : c.end === 'new' ? 'finished: 2,3,4' : 'dropped: 1,2,3'})`, async () => {
      const keyId = `rf-crash-${n}`;
      const start = before.get(keyId)!;
      if (armed.get(c.node) !== c.point) {
        await tc.restartWith(c.node, { TESSERA_FAULT_POINTS: c.point });
        armed.set(c.node, c.point);
      }
      const certsBefore = await certificates(keyId);
      const crashes = exits.filter((e) => e.index === c.node).length;
      const outcome = await settle(tc.cluster.reshare(keyId, { threshold: 2, nodes: [2, 3, 4], dealers: c.dealers ?? [1, 2] }));
      await waitFor(`node ${c.node} to crash at ${c.point}`, () => exits.filter((e) => e.index === c.node).length > crashes, 10_000);
      expect(exits.at(-1)).toEqual({ index: c.node, signal: 'SIGKILL' });
      // Back, armed for the next case if that one crashes the same node (every key was made in beforeAll:
      // only a reshare or a commit reaches a crash point, and repair and signing run neither).
      const next = n + 1 < CASES.length ? CASES[n + 1] : CATCH_UP;
      const nextPoint = next && next.node === c.node ? next.point : undefined;
      armed.set(c.node, nextPoint);
      await tc.restart(c.node, nextPoint ? { TESSERA_FAULT_POINTS: nextPoint } : {});

      // Reported exactly: it failed only if no node holds its certificate (OUTCOME_UNKNOWN: a vote was released).
      const fresh = [...(await certificates(keyId))].filter((s) => !certsBefore.has(s));
      if (outcome.error?.code !== 'OUTCOME_UNKNOWN') expect(fresh.length, `${c.point}: ${outcome.ok ? 'reported committed' : `reported failed (${outcome.error?.message})`}`).toBe(outcome.ok ? 1 : 0);
      for (const culprit of outcome.error?.culprits ?? []) expect.fail(`node ${culprit} was named for a crash: ${outcome.error?.message}`);

      // Right after: t nodes of the committee that holds the last committed epoch sign.
      const last = await lastCommitted(keyId);
      const signers = last.nodes.filter((i) => last.holders.includes(i)).slice(0, last.threshold);
      expect(signers.length, `${keyId}: holders ${last.holders} of committee ${last.nodes}`).toBe(last.threshold);
      await signs(keyId, signers);

      // Repair completes it.
      const { state } = await repairAndAgree(keyId);
      const moved = { epoch: start.epoch + 1, nodes: [2, 3, 4], threshold: 2 };
      if (c.end === 'old') expect(state).toEqual(start);
      else if (c.end === 'new') expect(state).toEqual(moved);
      else expect([start, moved]).toContainEqual(state);
      if (c.point === 'commit-after-release') {
        // The restarted node whose commit was interrupted got the certificate from repair: it ended as its role says.
        const mine = (await tc.commitStatuses(keyId))[c.node - 1];
        if (c.node === 1) expect(mine, 'the leaving dealer erased its share').toBeNull();
        else expect(mine?.versions.map((v) => v.epoch)).toEqual([moved.epoch]);
      }
      await committeeSigns(keyId, state);
    }, 120_000);
  }

  it('a staying node whose commit was interrupted (killed after releasing its vote) is brought forward by a later signing session once its peers hold the certificate', async () => {
    const keyId = 'rf-catch-up';
    const start = before.get(keyId)!;
    if (armed.get(CATCH_UP.node) !== CATCH_UP.point) {
      await tc.restartWith(CATCH_UP.node, { TESSERA_FAULT_POINTS: CATCH_UP.point });
      armed.set(CATCH_UP.node, CATCH_UP.point);
    }
    const crashes = exits.filter((e) => e.index === 3).length;
    const outcome = await settle(tc.cluster.reshare(keyId, { threshold: 2, nodes: [2, 3, 4], dealers: [1, 2] }));
    expect(outcome.ok).toBe(false);
    await waitFor('node 3 to crash', () => exits.filter((e) => e.index === 3).length > crashes, 10_000);
    armed.set(3, undefined);
    await tc.restart(3);
    // Every player staged and released its vote; no certificate exists yet. Finish the commit as repair's
    // step 2 does, through the nodes' own routes, but hand the certificate to every node except node 3
    // (a repair interrupted before it reached node 3).
    const staged = (await tc.commitStatuses(keyId)).map((s) => s?.staged);
    const s = staged[2]!;
    expect(staged.map((x) => x?.sessionId)).toEqual([s.sessionId, s.sessionId, s.sessionId, s.sessionId]);
    expect(s.voters).toEqual([1, 2, 3, 4]);
    const attestations = await Promise.all(NODES.map((i) => tc.client(i).attestStaged(keyId, s.sessionId)));
    const list = attestations.map((a) => ({ node: a.node, attestation: a.attestation }));
    const votes = await Promise.all(NODES.map((i) => tc.client(i).releaseVote(keyId, s.sessionId, list)));
    const certificate = Buffer.from(
      encodeCertificate({
        session: hexToBytes(s.sessionId),
        operation: s.operation as Operation,
        tenant: s.tenant,
        keyId,
        version: s.version,
        resultDigest: hexToBytes(s.resultDigest),
        votes: new Map(votes.map((v) => [v.node, hexToBytes(v.vote)] as const)),
      }),
    ).toString('hex');
    for (const i of [1, 2, 4]) await tc.client(i).repair(keyId, certificate);
    const mid = await tc.commitStatuses(keyId);
    expect(mid[0], 'the leaving dealer erased its share').toBeNull();
    expect(mid[2]?.staged?.sessionId, 'node 3 still waits for the certificate').toBe(s.sessionId);
    expect(mid[2]?.versions.map((v) => v.epoch)).toEqual([start.epoch]);
    // A signing session of nodes 2 and 3 brings node 3 forward by node 2's certificate.
    const signedAt = Date.now();
    await signs(keyId, [2, 3]);
    const caughtUp = await logEntries(tc.dir, 'node-3', (e) => e.msg === "committed a newer epoch on a peer's commit certificate" && (e.time as number) >= signedAt);
    expect(caughtUp.map((e) => e.keyId)).toEqual([keyId]);
    const state = await expectConsistent(keyId);
    expect(state).toEqual({ epoch: start.epoch + 1, nodes: [2, 3, 4], threshold: 2 });
    const report = await tc.cluster.repair(keyId);
    expect(report.nodes.flatMap((n) => [...n.applied, ...n.dropped, ...n.problems])).toEqual([]);
    await committeeSigns(keyId, state);
  }, 120_000);
});
