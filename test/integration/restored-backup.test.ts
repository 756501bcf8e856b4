/**
 * A node restored from an old backup of its data dir (issue 9, item 7: "A node restored from an old
 * backup says so in one line. `tessera repair` brings it forward from the peers' certificates, and
 * re-applies destroys"), on a real 2-of-3 cluster:
 * - node 2's data dir is copied while it is stopped; then a retired hpke-x25519 version is destroyed,
 *   an ed25519 key refreshed and a new key created; node 2 is stopped, the copy put back, restarted;
 * - repair re-applies the destroy from the peers' certificate: the share is erased again (its old
 *   ciphertext is in no data file of node 2) and never decrypts;
 * - the refresh and the new key are reported as needing a re-deal (restored, one line), never
 *   half-applied; nodes 1 and 3 still sign; node 2 refuses the stale epoch with the clear message and
 *   names no node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, rm } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { shareRecordKey, storageLocation } from '../../node/store/storage.js';
import { RECORD_TAG_LENGTH } from '../../node/store/record-auth.js';
import { tessera } from '../helpers/cli.js';
import { bytesToHex, hexToBytes, hpkeSeal, message32, rejectionOf, startTestCluster, verifySignature, type TestCluster } from '../helpers/cluster.js';
import { readEnvelope } from '../../node/store/envelope.js';

const packr = new Packr({ useRecords: false });
const KEM = 'rb-kem';
const ED = 'rb-ed';
const NEW = 'rb-new';
const LIFE = 'rb-life';

/** Every byte of every file of a node's LevelDB (read with the node stopped). */
function leveldbBytes(dataDir: string): Buffer {
  const dir = storageLocation(dataDir);
  return Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
}

/** The sealed share ciphertext of a key version in a stopped node's LevelDB. */
async function storedCiphertext(dataDir: string, keyId: string, version: number): Promise<Buffer> {
  const db = new Level<string, Uint8Array>(storageLocation(dataDir), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    const raw = await db.get(shareRecordKey('default', keyId, version));
    if (!raw) throw new Error(`no record of ${keyId} version ${version}`);
    // Every record is payload || MAC (node/store/record-auth.ts): the payload is the msgpack map.
    const rec = packr.unpack(raw.subarray(0, raw.length - RECORD_TAG_LENGTH)) as { nonce: Uint8Array; ct: Uint8Array };
    // The envelope's body (node/store/envelope.ts): the share's own ciphertext, random, so found verbatim.
    return Buffer.from(readEnvelope(rec).body);
  } finally {
    await db.close();
  }
}

describe('a node restored from an old backup is detected and repaired', () => {
  let tc: TestCluster;
  const nodeDir = (i: number) => join(tc.dir, `node-${i}`);
  const backupDir = () => join(tc.dir, 'node-2.backup');
  let oldCiphertext: Buffer;
  let toV1: Awaited<ReturnType<typeof hpkeSeal>>;
  let toV2: Awaited<ReturnType<typeof hpkeSeal>>;

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2, logLevel: 'warn' });
    await tc.cluster.keygen({ suite: 'hpke-x25519', keyId: KEM });
    const v1 = hexToBytes((await tc.cluster.getKey(KEM)).publicKey);
    await tc.cluster.rotate({ keyId: KEM }); // version 1 is retired, version 2 active
    const v2 = hexToBytes((await tc.cluster.getKey(KEM)).publicKey);
    toV1 = await hpkeSeal('hpke-x25519', v1, new TextEncoder().encode('to version 1'));
    toV2 = await hpkeSeal('hpke-x25519', v2, new TextEncoder().encode('to version 2'));
    await tc.cluster.keygen({ suite: 'ed25519', keyId: ED });
    await tc.cluster.keygen({ suite: 'ed25519', keyId: LIFE });

    // The backup: node 2 stopped, its data dir copied.
    await tc.dev.kill(2);
    await cp(nodeDir(2), backupDir(), { recursive: true });
    oldCiphertext = await storedCiphertext(nodeDir(2), KEM, 1);
    await tc.restart(2);

    // After the backup: a destroy, a refresh and a new key.
    expect(await tc.cluster.setState({ keyId: KEM, version: 1, state: 'destroyed' })).toMatchObject({ state: 'destroyed' });
    expect(await tc.cluster.refresh({ keyId: ED })).toMatchObject({ epoch: 1 });
    await tc.cluster.keygen({ suite: 'ed25519', keyId: NEW });
    // Two transitions of one version that must land in order (active -> archived -> destroyed).
    await tc.cluster.archive(LIFE, 1);
    await tc.cluster.destroy(LIFE, 1);

    // The restore: node 2 stopped, the old copy put back, started again.
    await tc.dev.kill(2);
    await rm(nodeDir(2), { recursive: true, force: true });
    await cp(backupDir(), nodeDir(2), { recursive: true });
    await tc.restart(2);
  }, 150_000);

  afterAll(async () => {
    await tc?.close();
  });

  it('re-applies the destroy from the peers\' certificate: the share is erased again and never decrypts', async () => {
    // The restored node serves the old state until repair: version 1 is retired there.
    expect(await tc.cluster.getKey(KEM, 1, 2)).toMatchObject({ state: 'retired' });
    const report = await tc.cluster.repair(KEM);
    const n2 = report.nodes.find((n) => n.node === 2)!;
    expect(n2.applied).toEqual([expect.objectContaining({ operation: 'destroy', version: 1, outcome: 'committed' })]);
    expect(report.nodes.flatMap((n) => n.problems)).toEqual([]);
    expect(report.nodes.filter((n) => n.restored)).toEqual([]);
    for (const i of [1, 2, 3]) expect(await tc.cluster.getKey(KEM, 1, i)).toMatchObject({ state: 'destroyed' });
    for (const players of [
      [1, 2],
      [2, 3],
    ]) {
      expect(await rejectionOf(tc.cluster.decapsulate({ keyId: KEM, enc: toV1.enc, version: 1, players }))).toMatchObject({ code: 'BAD_STATE' });
    }
    // The version nobody changed still works with the restored node.
    expect(await tc.cluster.decapsulate({ keyId: KEM, enc: toV2.enc, players: [1, 2] })).toMatchObject({ version: 2 });
    // A second repair finds nothing to do.
    const again = await tc.cluster.repair(KEM);
    expect(again.nodes.flatMap((n) => [...n.applied, ...n.problems])).toEqual([]);

    // Several missed transitions of one version are re-applied in the order they were made.
    expect(await tc.cluster.getKey(LIFE, 1, 2)).toMatchObject({ state: 'active' });
    const life = await tc.cluster.repair(LIFE);
    expect(life.nodes.find((n) => n.node === 2)!.applied.map((a) => a.operation).sort()).toEqual(['archive', 'destroy']);
    expect(life.nodes.flatMap((n) => n.problems)).toEqual([]);
    expect(life.nodes.filter((n) => n.restored)).toEqual([]);
    expect(await tc.cluster.getKey(LIFE, 1, 2)).toMatchObject({ state: 'destroyed' });
    expect(await rejectionOf(tc.cluster.sign({ keyId: LIFE, message: '00', version: 1, players: [1, 2] }))).toMatchObject({ code: 'BAD_STATE' });
  }, 60_000);

  it('reports the refresh and the new key as needing a re-deal, in one line, and never half-applies them', async () => {
    const ed = await tc.cluster.repair(ED);
    const edNode2 = ed.nodes.find((n) => n.node === 2)!;
    expect(edNode2).toMatchObject({ restored: true, problems: [], needsReDeal: [expect.objectContaining({ operation: 'refresh', version: 1 })] });
    expect(edNode2.finding).toMatch(
      /^node 2 holds key rb-ed version 1 at epoch 0; the others committed version 1 at epoch 1 \(sessions refresh [0-9a-f]{32}\): this node was restored from an older backup or lost data; its share must be re-dealt \(resharing, issue 13\)$/,
    );
    for (const i of [1, 3]) expect(ed.nodes.find((n) => n.node === i)).toMatchObject({ problems: [], applied: [] });
    expect(ed.nodes.filter((n) => n.node !== 2 && n.restored)).toEqual([]);
    // Nothing was half-applied: node 2 still holds epoch 0, the others epoch 1.
    expect((await tc.cluster.getKey(ED, 1, 2)).epoch).toBe(0);
    expect((await tc.cluster.getKey(ED, 1, 1)).epoch).toBe(1);

    const fresh = await tc.cluster.repair(NEW);
    const newNode2 = fresh.nodes.find((n) => n.node === 2)!;
    expect(newNode2).toMatchObject({ restored: true, problems: [], needsReDeal: [expect.objectContaining({ operation: 'keygen', version: 1 })] });
    expect(newNode2.finding).toMatch(/^node 2 holds no version 1 of key rb-new; the others committed version 1 at epoch 0 \(sessions keygen [0-9a-f]{32}\): this node was restored from an older backup/);
    expect(await rejectionOf(tc.cluster.getKey(NEW, 1, 2))).toMatchObject({ code: 'NOT_FOUND' });

    // The CLI says it in one line for node 2 and exits non-zero.
    const cli = await tessera(['repair', '--key-id', ED], { TESSERA_CLUSTER: tc.clusterFile });
    expect(cli.code).toBe(1);
    const lines = cli.stdout.split('\n').filter((l) => l.startsWith('node 2:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^node 2: node 2 holds key rb-ed version 1 at epoch 0; .*restored from an older backup or lost data; its share must be re-dealt/);
  }, 90_000);

  it('nodes 1 and 3 still sign; node 2 refuses its stale epoch with the clear message and names no node', async () => {
    const message = message32('restored-backup');
    for (const keyId of [ED, NEW]) {
      const signed = await tc.cluster.sign({ keyId, message, players: [1, 3] });
      const key = await tc.cluster.getKey(keyId);
      expect(verifySignature('ed25519', hexToBytes(signed.signature), message, hexToBytes(key.publicKey))).toBe(true);
    }
    const stale = await rejectionOf(tc.cluster.sign({ keyId: ED, message, players: [1, 2] }));
    expect(stale.culprits ?? []).toEqual([]);
    expect(stale.message).toMatch(/node 2 holds epoch 0 of rb-ed version 1/);
    expect(stale.message).toMatch(/no certificate this node could apply reached it/);
    expect(stale.message).toMatch(/restored from an older backup or lost its data; its share must be re-dealt \(resharing, issue 13\)/);
    // The new key is not on node 2 at all: refused, no node named.
    const missing = await rejectionOf(tc.cluster.sign({ keyId: NEW, message, players: [1, 2] }));
    expect(missing.culprits ?? []).toEqual([]);
    // Still signs with {1,3} afterwards.
    const after = await tc.cluster.sign({ keyId: ED, message, players: [1, 3] });
    expect(verifySignature('ed25519', hexToBytes(after.signature), message, hexToBytes((await tc.cluster.getKey(ED)).publicKey))).toBe(true);
  }, 90_000);

  it('the destroyed share\'s old ciphertext is in no data file of the restored node', async () => {
    expect(oldCiphertext.length).toBeGreaterThan(0);
    // The backup copy still holds it (the check below would find it), the repaired node does not.
    expect(leveldbBytes(backupDir()).includes(oldCiphertext)).toBe(true);
    await tc.dev.kill(2); // the last test: afterAll stops the rest
    expect(leveldbBytes(nodeDir(2)).includes(oldCiphertext), bytesToHex(oldCiphertext.subarray(0, 8))).toBe(false);
  }, 60_000);
});
