/**
 * Accountable, atomic sessions (issue 9) on a real 3-node cluster with one scripted malicious node
 * (node/sessions/deviations.ts, TESSERA_TEST_DEVIATIONS) and with crashes at each commit step:
 * - the epoch-split attack of the issue, replayed end to end: a wrong refresh confirmation to node 2
 *   only, then a bare "I committed a newer epoch" claim to node 1: nodes 1 and 2 stay at one epoch and
 *   sign together; no honest node is ever named;
 * - a withheld vote: the node that got every vote commits and hands its certificate on, so every honest
 *   node commits and the call reports success;
 * - a node killed after it staged (before it attested): the call fails, nothing is committed anywhere,
 *   and `repair` has every node attest, release its stored vote, and commits the key on every node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { RECORD_TAG_LENGTH } from '../../node/store/record-auth.js';
import { shareRecordKey, storageLocation } from '../../node/store/storage.js';
import { TesseraClientError } from '../../sdk/http.js';
import { message32, rejectionOf, startTestCluster, verifySignature, type TestCluster } from '../helpers/cluster.js';
import { readEnvelope } from '../../node/store/envelope.js';

const honest = [1, 2];

function expectNoHonestCulprit(e: { culprits?: readonly number[] } | undefined): void {
  for (const c of e?.culprits ?? []) expect(honest).not.toContain(c);
}

async function signsWith(tc: TestCluster, keyId: string, players: number[]): Promise<void> {
  const message = message32(`accountable ${keyId} ${players.join(',')}`);
  const info = await tc.cluster.getKey(keyId);
  const r = await tc.cluster.sign({ keyId, message, players });
  expect(verifySignature(info.suite, Buffer.from(r.signature, 'hex'), message, Buffer.from(info.publicKey, 'hex'))).toBe(true);
}

async function epochs(tc: TestCluster, keyId: string): Promise<number[]> {
  return Promise.all([1, 2, 3].map(async (i) => (await tc.client(i).getKey(keyId)).epoch));
}

describe('accountable sessions: a malicious node 3 in a 2-of-3 cluster', () => {
  let tc: TestCluster;

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2, logLevel: 'warn' });
    await tc.cluster.keygen({ suite: 'ed25519', keyId: 'split' });
  }, 180_000);

  afterAll(async () => {
    await tc?.close();
  });

  async function restartNode3(deviations?: string): Promise<void> {
    await tc.dev.kill(3);
    tc.dev.start(3, deviations ? { TESSERA_TEST_DEVIATIONS: deviations } : {});
    await tc.dev.ready();
  }

  it('the epoch-split attack leaves nodes 1 and 2 at one epoch, able to sign together, and blames no honest node', async () => {
    await restartNode3('wrong-confirm-to:2,claim-epoch-ahead');
    // 1. A wrong confirmation to node 2 only: the refresh fails; no certificate can exist (node 2 never voted).
    const refreshError = await rejectionOf(tc.cluster.refresh({ keyId: 'split' }));
    expectNoHonestCulprit(refreshError);
    // 2. Node 3 claims to hold a newer epoch when it signs with node 1: node 1 does not promote on a claim.
    const claimError = await rejectionOf(tc.cluster.sign({ keyId: 'split', message: message32('claim'), players: [1, 3], presigned: false }));
    expectNoHonestCulprit(claimError);
    expect(claimError.message).toMatch(/no valid certificate|epoch/);
    // A mismatch says which node holds which version and epoch.
    expect(claimError.message).toMatch(/node 1 holds version 1 \(epoch 0, active\)/);
    // 3. Nodes 1 and 2 still agree and sign together, at the epoch they both committed.
    const [e1, e2] = await epochs(tc, 'split');
    expect(e1).toBe(0);
    expect(e2).toBe(0);
    await signsWith(tc, 'split', [1, 2]);
    // Repair finds no certificate for the failed refresh: nothing to apply, nothing broken.
    const report = await tc.cluster.repair('split');
    expect(report.nodes.flatMap((n) => n.problems)).toEqual([]);
    expect(report.nodes.flatMap((n) => n.applied)).toEqual([]);
  }, 180_000);

  it('a withheld vote: the certificate reaches node 2 from node 1, every node commits, the call reports success', async () => {
    await restartNode3('withhold-vote-to:2');
    const key = await tc.cluster.keygen({ suite: 'ed25519', keyId: 'withheld' });
    for (const i of [1, 2, 3]) expect((await tc.client(i).getKey('withheld')).publicKey).toBe(key.publicKey);
    // Every node stores the same certificate for the keygen.
    const status = await Promise.all([1, 2, 3].map((i) => tc.client(i).commitStatus('withheld')));
    const certs = status.map((s) => s.certificates.map((c) => c.certificate).join());
    expect(new Set(certs).size).toBe(1);
    expect(status.every((s) => s.staged === undefined)).toBe(true);
    await restartNode3();
    await signsWith(tc, 'withheld', [1, 2]);
    await signsWith(tc, 'withheld', [2, 3]);
  }, 180_000);

  it('a node killed after staging: the call fails, then repair commits it on every node from the stored votes', async () => {
    await tc.dev.kill(2);
    tc.dev.start(2, { TESSERA_FAULT_POINTS: 'commit-after-stage' });
    await tc.dev.ready();
    const e = await rejectionOf(tc.cluster.keygen({ suite: 'ed25519', keyId: 'crashed' }));
    expect(e).toBeInstanceOf(TesseraClientError);
    expectNoHonestCulprit(e);
    await tc.dev.kill(2);
    tc.dev.start(2);
    await tc.dev.ready();
    // Committed nowhere yet: every node has it staged, with its vote.
    for (const i of [1, 2, 3]) {
      await expect(tc.client(i).getKey('crashed')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect((await tc.client(i).commitStatus('crashed')).staged).toMatchObject({ operation: 'keygen', released: false });
    }
    const report = await tc.cluster.repair('crashed');
    expect(report.nodes.flatMap((n) => n.problems)).toEqual([]);
    expect(report.nodes.map((n) => n.applied.map((a) => a.outcome))).toEqual([['committed'], ['committed'], ['committed']]);
    const keys = await Promise.all([1, 2, 3].map((i) => tc.client(i).getKey('crashed')));
    expect(new Set(keys.map((k) => k.publicKey)).size).toBe(1);
    await signsWith(tc, 'crashed', [1, 2]);
    await signsWith(tc, 'crashed', [2, 3]);
    // A second repair finds everything committed.
    const again = await tc.cluster.repair('crashed');
    expect(again.nodes.flatMap((n) => n.applied)).toEqual([]);
  }, 180_000);

  it('refresh commits on every node with a certificate, the old epoch is in no data file, and the nodes can still sign in every pair', async () => {
    // The epoch-0 sealed share as node 1 stores it (read with the node stopped: LevelDB is locked).
    const dataDir = join(tc.dir, 'node-1');
    const leveldbBytes = () => Buffer.concat(readdirSync(storageLocation(dataDir)).map((f) => readFileSync(join(storageLocation(dataDir), f))));
    await tc.dev.kill(1);
    const db = new Level<string, Uint8Array>(storageLocation(dataDir), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    let oldCt: Buffer;
    try {
      const raw = (await db.get(shareRecordKey('default', 'withheld', 1)))!;
      // The envelope's body (node/store/envelope.ts): the share's own ciphertext, random, so found verbatim.
      oldCt = Buffer.from(readEnvelope(new Packr({ useRecords: false }).unpack(raw.subarray(0, raw.length - RECORD_TAG_LENGTH)) as { nonce: Uint8Array; ct: Uint8Array }).body);
    } finally {
      await db.close();
    }
    expect(leveldbBytes().includes(oldCt), 'control: the epoch-0 ciphertext is found before').toBe(true);
    tc.dev.start(1);
    await tc.dev.ready();

    const r = await tc.cluster.refresh({ keyId: 'withheld' });
    expect(r.epoch).toBe(1);
    expect(await epochs(tc, 'withheld')).toEqual([1, 1, 1]);
    // Old shares really die: the superseded epoch's ciphertext is in no file of node 1's LevelDB.
    expect(leveldbBytes().includes(oldCt), 'the epoch-0 ciphertext survived the refresh').toBe(false);
    for (const players of [
      [1, 2],
      [1, 3],
      [2, 3],
    ]) {
      await signsWith(tc, 'withheld', players);
    }
  }, 180_000);
});
