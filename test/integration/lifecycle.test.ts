/**
 * Key versions and their lifecycle on a real 3-node cluster, every process logging at debug level
 * (issue 6), driven through the SDK and the CLI:
 * - rotation on schedule: a key with a rotation period shows a warning (GET key, node logs, audit) and
 *   then every node rotates it without any SDK call: a new version by DKG, the old one retired;
 * - every operation names the version it used; the default is the newest active one;
 * - retired versions refuse to sign but decapsulate and verify; archived versions refuse everything
 *   but stay readable; activate brings one back; each transition is a session every SDK approves;
 * - destroy erases the shares on every node: the old ciphertext is in no LevelDB data file any more,
 *   and the public key stays readable;
 * - finally every line any process printed (node and coordinator logs, CLI output) is scanned for
 *   every share of every version the nodes hold, the destroyed share, the KEKs, the identity and
 *   import secret keys and the API keys, in hex and base64, in both byte orders. None may appear.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { loadIdentityEngine } from '../../core/identity.js';
import { loadOrCreateIdentity } from '../../node/store/identity-store.js';
import { readKekFile } from '../../node/store/kek.js';
import { ShareStore, shareRecordKey, storageLocation } from '../../node/store/storage.js';
import { readEnvelope } from '../../node/store/envelope.js';
import { RECORD_TAG_LENGTH } from '../../node/store/record-auth.js';
import type { SessionRequest } from '../../sdk/client.js';
import { jsonOf, tessera, type CliResult } from '../helpers/cli.js';
import {
  bytesToHex,
  hexToBytes,
  hpkeOpenWithSecret,
  hpkeSeal,
  logEntries,
  message32,
  rejectionOf,
  startTestCluster,
  verifySignature,
  waitFor,
  type TestCluster,
} from '../helpers/cluster.js';

const packr = new Packr({ useRecords: false });
const SIGNING = ['ed25519', 'secp256k1', 'bip340', 'p256', 'ecdsa-secp256k1', 'ecdsa-p256'] as const;
const KEMS = ['hpke-x25519', 'hpke-p256'] as const;
const ROTATION_ENV = {
  TESSERA_MIN_ROTATION_PERIOD_MS: '1000',
  TESSERA_ROTATION_CHECK_MS: '200',
  TESSERA_ROTATION_WARN_MS: '4000',
  TESSERA_ROTATION_RETRY_MS: '15000',
};

/** Every byte of every file of a node's LevelDB. */
function leveldbBytes(dataDir: string): Buffer {
  const dir = storageLocation(dataDir);
  return Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
}

describe('key versions and lifecycle, at debug level', () => {
  let tc: TestCluster;
  let env: Record<string, string>;
  /** Everything the CLI printed, scanned at the end with the logs. */
  const cliOutput: string[] = [];
  /** Secrets read while the nodes were stopped, before they were destroyed. */
  const destroyedShares: { what: string; bytes: Uint8Array }[] = [];
  const cli = async (args: string[]): Promise<CliResult> => {
    const r = await tessera(args, env);
    cliOutput.push(r.stdout, r.stderr);
    return r;
  };
  const nodeDir = (i: number) => join(tc.dir, `node-${i}`);
  const stopNodes = async () => {
    for (const i of [1, 2, 3]) await tc.dev.kill(i);
  };
  const startNodes = async () => {
    tc.dev.start(1);
    tc.dev.start(2);
    await tc.restart(3);
  };

  beforeAll(async () => {
    await loadIdentityEngine();
    tc = await startTestCluster({ nodes: 3, threshold: 2, logLevel: 'debug', env: ROTATION_ENV });
    env = { TESSERA_CLUSTER: tc.clusterFile };
  }, 90_000);
  afterAll(async () => {
    await tc?.close();
  });

  it('rotates a key on schedule: warning first (key info, logs, audit), then a new version by DKG on every node, the old one retired', async () => {
    const made = jsonOf(await cli(['keygen', '--suite', 'ed25519', '--key-id', 'scheduled', '--rotation-period', '8s', '--json']));
    expect(made).toMatchObject({ keyId: 'scheduled', version: 1, rotation: { periodMs: 8000, status: 'ok', dueAt: expect.any(Number) } });
    const v1 = made.publicKey as string;

    // Poll the key: 'ok', then 'warning' (due within 4 s), then a version 2 made by the nodes alone.
    const seen = new Set<string>();
    await waitFor(
      'version 2 of the scheduled key',
      async () => {
        const k = await tc.cluster.getKey('scheduled');
        if (k.version === 1) seen.add(k.rotation!.status);
        return k.version === 2;
      },
      30_000,
      100,
    );
    expect(seen.has('warning')).toBe(true);
    for (const i of [1, 2, 3]) {
      const now = await tc.cluster.getKey('scheduled', undefined, i);
      expect(now).toMatchObject({ version: 2, state: 'active', rotation: { periodMs: 8000, status: expect.any(String) } });
      expect(now.publicKey).not.toBe(v1);
      expect(await tc.cluster.getKey('scheduled', 1, i)).toMatchObject({ version: 1, state: 'retired', publicKey: v1 });
    }
    // The default version is the new one; the retired one refuses to sign.
    const message = message32('scheduled');
    const signed = await tc.cluster.sign({ keyId: 'scheduled', message });
    expect(signed.version).toBe(2);
    expect(verifySignature('ed25519', hexToBytes(signed.signature), message, hexToBytes((await tc.cluster.getKey('scheduled')).publicKey))).toBe(true);
    expect(await rejectionOf(tc.cluster.sign({ keyId: 'scheduled', message, version: 1 }))).toMatchObject({
      code: 'BAD_STATE',
      message: expect.stringMatching(/version 1 is retired: sign is not allowed/),
    });
    // Retire version 2 too, so the schedule stops here (a version that is not active never rotates).
    await waitFor('retiring version 2', async () => (await tc.cluster.retire('scheduled', 2).then(() => true, () => false)), 20_000, 200);

    // Every node warned in its log before rotating, and audited both.
    for (const i of [1, 2, 3]) {
      const warned = await logEntries(tc.dir, `node-${i}`, (e) => e.msg === 'key rotation due soon' && e.keyId === 'scheduled');
      const rotating = await logEntries(tc.dir, `node-${i}`, (e) => e.msg === 'key rotation due: rotating' && e.keyId === 'scheduled');
      expect(warned.length, `node ${i} warned`).toBeGreaterThan(0);
      expect(rotating.length, `node ${i} rotated`).toBeGreaterThan(0);
      expect(warned[0]!.level).toBe(40);
      expect(warned[0]!.time as number).toBeLessThan(rotating[0]!.time as number);
      const entries = (await tc.client(i).auditLog()).entries as unknown as Record<string, unknown>[];
      expect(entries).toContainEqual(expect.objectContaining({ operation: 'rotation.warning', keyId: 'scheduled', version: 1, severity: 'warning' }));
      expect(entries).toContainEqual(expect.objectContaining({ operation: 'rotate', keyId: 'scheduled', version: 1, actor: 'system.scheduler', outcome: 'ok' }));
    }
  }, 60_000);

  it('every suite through keygen, sign, decapsulate, refresh, export/import; every result names its version', async () => {
    for (const suite of [...SIGNING, ...KEMS]) {
      const k = await tc.cluster.keygen({ suite, keyId: `life-${suite}`, exportable: suite === 'ed25519' });
      expect(k).toMatchObject({ version: 1, state: 'active' });
    }
    for (const suite of SIGNING) {
      const message = message32(suite);
      const r = await tc.cluster.sign({ keyId: `life-${suite}`, message, players: [2, 3] });
      expect(r.version).toBe(1);
      expect(verifySignature(suite, hexToBytes(r.signature), message, hexToBytes((await tc.cluster.getKey(`life-${suite}`)).publicKey))).toBe(true);
    }
    for (const suite of KEMS) {
      const plaintext = new TextEncoder().encode(`sealed to ${suite}`);
      const sealed = await hpkeSeal(suite, hexToBytes((await tc.cluster.getKey(`life-${suite}`)).publicKey), plaintext);
      const r = await tc.cluster.decapsulate({ keyId: `life-${suite}`, enc: sealed.enc });
      expect(r.version).toBe(1);
      expect(bytesToHex(hpkeOpenWithSecret(suite, hexToBytes(r.sharedSecret), sealed))).toBe(bytesToHex(plaintext));
    }
    expect(await tc.cluster.refresh({ keyId: 'life-ed25519' })).toEqual({ keyId: 'life-ed25519', version: 1, epoch: 1 });
    const bundle = await tc.cluster.exportKey({ keyId: 'life-ed25519', wrappingKeys: (await tc.cluster.importKeys()).map((k) => k.publicKey) });
    const imported = await tc.cluster.importKey({ bundle, keyId: 'life-imported' });
    expect(imported).toMatchObject({ keyId: 'life-imported', version: 1, publicKey: bundle.publicKey });
    expect((await tc.cluster.sign({ keyId: 'life-imported', message: '00' })).version).toBe(1);
  }, 90_000);

  it('rotate, retire, archive, activate through the CLI; retired signs nothing but decapsulates and verifies; archived does nothing', async () => {
    // Sign with version 1, then rotate: version 2 by DKG, version 1 retired.
    const message = bytesToHex(message32('before rotation'));
    const oldSig = jsonOf(await cli(['sign', '--key-id', 'life-ed25519', '--message', message, '--json']));
    expect(oldSig).toMatchObject({ keyId: 'life-ed25519', version: 1 });
    const v1 = (await tc.cluster.getKey('life-ed25519')).publicKey;
    const rotated = jsonOf(await cli(['rotate', '--key-id', 'life-ed25519', '--json']));
    expect(rotated).toMatchObject({ keyId: 'life-ed25519', version: 2, previousVersion: 1 });
    expect(rotated.publicKey).not.toBe(v1);
    for (const i of [1, 2, 3]) expect(await tc.cluster.getKey('life-ed25519', 1, i)).toMatchObject({ state: 'retired', publicKey: v1 });
    const exportable = await tc.cluster.getKey('life-ed25519', 2);
    expect(exportable.exportable).toBe(true); // the new version keeps the key's settings

    // The default is the newest active version; naming the retired one to sign fails with one line.
    const newSig = jsonOf(await cli(['sign', '--key-id', 'life-ed25519', '--message', message, '--json']));
    expect(newSig.version).toBe(2);
    expect(verifySignature('ed25519', hexToBytes(newSig.signature), hexToBytes(message), hexToBytes(rotated.publicKey))).toBe(true);
    const refused = await cli(['sign', '--key-id', 'life-ed25519', '--message', message, '--version', '1', '--json']);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).toBe('');
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/BAD_STATE: key life-ed25519 version 1 is retired: sign is not allowed/);
    // Verify still works on the retired version (the node checks it; so does anyone with the public key).
    expect(jsonOf(await cli(['verify', '--key-id', 'life-ed25519', '--version', '1', '--message', message, '--signature', oldSig.signature, '--json']))).toEqual({
      keyId: 'life-ed25519',
      version: 1,
      valid: true,
    });

    // KEM: rotate, then decapsulate with the retired version 1 and the active version 2.
    const kem = 'life-hpke-x25519';
    const kemV1 = hexToBytes((await tc.cluster.getKey(kem)).publicKey);
    expect(await tc.cluster.rotate({ keyId: kem })).toMatchObject({ version: 2, previousVersion: 1 });
    const kemV2 = hexToBytes((await tc.cluster.getKey(kem)).publicKey);
    const toV1 = await hpkeSeal('hpke-x25519', kemV1, new TextEncoder().encode('to version 1'));
    const toV2 = await hpkeSeal('hpke-x25519', kemV2, new TextEncoder().encode('to version 2'));
    const d1 = await tc.cluster.decapsulate({ keyId: kem, enc: toV1.enc, version: 1 });
    expect(d1.version).toBe(1);
    expect(new TextDecoder().decode(hpkeOpenWithSecret('hpke-x25519', hexToBytes(d1.sharedSecret), toV1))).toBe('to version 1');
    const d2 = await tc.cluster.decapsulate({ keyId: kem, enc: toV2.enc });
    expect(d2.version).toBe(2);
    expect(new TextDecoder().decode(hpkeOpenWithSecret('hpke-x25519', hexToBytes(d2.sharedSecret), toV2))).toBe('to version 2');

    // Archive version 1 of both: nothing at all, but the public record stays readable.
    expect(jsonOf(await cli(['archive', '--key-id', kem, '--version', '1', '--json']))).toMatchObject({ keyId: kem, version: 1, state: 'archived' });
    expect(jsonOf(await cli(['archive', '--key-id', 'life-ed25519', '--version', '1', '--json']))).toMatchObject({ state: 'archived' });
    expect(await rejectionOf(tc.cluster.decapsulate({ keyId: kem, enc: toV1.enc, version: 1 }))).toMatchObject({ code: 'BAD_STATE', message: expect.stringMatching(/archived/) });
    expect(await rejectionOf(tc.client(1).verify('life-ed25519', { message, signature: oldSig.signature, version: 1 }))).toMatchObject({ code: 'BAD_STATE' });
    expect(await rejectionOf(tc.cluster.refresh({ keyId: kem, version: 1 }))).toMatchObject({ code: 'BAD_STATE' });
    expect(await tc.cluster.getKey(kem, 1)).toMatchObject({ state: 'archived' });
    // A transition the table does not allow is refused before any session.
    expect(await rejectionOf(tc.cluster.setState({ keyId: kem, version: 2, state: 'destroyed' }))).toMatchObject({
      code: 'BAD_STATE',
      message: expect.stringMatching(/cannot go from active to destroyed/),
    });

    // Activate brings it back; then retire it, ready for destruction.
    expect(jsonOf(await cli(['activate', '--key-id', kem, '--version', '1', '--json']))).toMatchObject({ state: 'active' });
    expect((await tc.cluster.decapsulate({ keyId: kem, enc: toV1.enc, version: 1 })).version).toBe(1);
    expect((await tc.cluster.decapsulate({ keyId: kem, enc: toV2.enc })).version).toBe(2); // still the newest active
    expect(jsonOf(await cli(['retire', '--key-id', kem, '--version', '1', '--json']))).toMatchObject({ state: 'retired' });

    // Each transition is a session every operator's SDK approves: one refusal and nothing changes.
    const seen: SessionRequest[] = [];
    const refusing = tc.withHooks({
      1: (r) => (seen.push(r), true),
      3: (r) => r.operation !== 'destroy',
    });
    expect(await rejectionOf(refusing.destroy(kem, 1))).toMatchObject({ code: 'POLICY_DENIED' });
    expect(seen).toEqual([expect.objectContaining({ operation: 'destroy', keyId: kem, version: 1, state: 'destroyed' })]);
    for (const i of [1, 2, 3]) expect(await tc.cluster.getKey(kem, 1, i)).toMatchObject({ state: 'retired' });
    // And every such session is audited on every node.
    const entries = (await tc.client(2).auditLog()).entries as unknown as Record<string, unknown>[];
    for (const op of ['rotate', 'archive', 'activate', 'retire']) {
      expect(entries, op).toContainEqual(expect.objectContaining({ operation: op, keyId: kem, outcome: 'ok', actor: 'dev-2' }));
    }
  }, 120_000);

  it('destroy erases the shares on every node: the old ciphertext is in no data file; the public key stays readable', async () => {
    const kem = 'life-hpke-x25519';
    const before = await tc.cluster.getKey(kem, 1);
    // Read each node's stored record (ciphertext) and share while the nodes are stopped.
    await stopNodes();
    const ciphertexts: Buffer[] = [];
    for (const i of [1, 2, 3]) {
      const db = new Level<string, Uint8Array>(storageLocation(nodeDir(i)), { keyEncoding: 'utf8', valueEncoding: 'view' });
      await db.open();
      try {
        const raw = (await db.get(shareRecordKey('default', kem, 1)))!;
        // Every record is payload || 32-byte MAC (node/store/record-auth.ts): the payload is the msgpack map.
        const rec = packr.unpack(raw.subarray(0, raw.length - RECORD_TAG_LENGTH)) as { nonce: Uint8Array; ct: Uint8Array };
        // The share's own ciphertext, the envelope's body (node/store/envelope.ts): random bytes, so found
        // verbatim in the files. The envelope's header (the KEK id, the same in every record) is not:
        // LevelDB's compression may store it as a back-reference.
        ciphertexts.push(Buffer.from(readEnvelope(rec).body));
      } finally {
        await db.close();
      }
      const kek = await readKekFile(join(tc.dir, `node-${i}.kek`));
      const store = await ShareStore.open({ dataDir: nodeDir(i), kek, nodeIndex: i });
      kek.fill(0);
      try {
        destroyedShares.push({ what: `node ${i} share of ${kem} v1 (destroyed)`, bytes: (await store.getShare('default', kem, 1))!.secret.value });
      } finally {
        await store.close();
      }
      expect(leveldbBytes(nodeDir(i)).includes(ciphertexts[i - 1]!), `control: node ${i}'s ciphertext is found before`).toBe(true);
    }
    await startNodes();

    const destroyed = jsonOf(await cli(['destroy', '--key-id', kem, '--version', '1', '--json']));
    expect(destroyed).toMatchObject({ keyId: kem, version: 1, state: 'destroyed', publicKey: before.publicKey });
    for (const i of [1, 2, 3]) {
      const k = await tc.cluster.getKey(kem, 1, i);
      expect(k).toMatchObject({ state: 'destroyed', publicKey: before.publicKey, publicPackage: before.publicPackage });
    }
    const sealed = await hpkeSeal('hpke-x25519', hexToBytes(before.publicKey), new TextEncoder().encode('too late'));
    expect(await rejectionOf(tc.cluster.decapsulate({ keyId: kem, enc: sealed.enc, version: 1 }))).toMatchObject({ code: 'BAD_STATE', message: expect.stringMatching(/destroyed/) });
    // Destroyed is final.
    expect(await rejectionOf(tc.cluster.activate(kem, 1))).toMatchObject({ code: 'BAD_STATE', message: expect.stringMatching(/final/) });
    // Version 2 lives on.
    expect((await tc.cluster.decapsulate({ keyId: kem, enc: (await hpkeSeal('hpke-x25519', hexToBytes((await tc.cluster.getKey(kem)).publicKey), new Uint8Array([1]))).enc })).version).toBe(2);

    // Stopped again: no data file of any node holds the old ciphertext; the record is a tombstone.
    await stopNodes();
    for (const i of [1, 2, 3]) {
      expect(leveldbBytes(nodeDir(i)).includes(ciphertexts[i - 1]!), `node ${i} still holds the destroyed ciphertext`).toBe(false);
      for (const s of destroyedShares) expect(leveldbBytes(nodeDir(i)).includes(Buffer.from(s.bytes)), `${s.what} in node ${i}'s files`).toBe(false);
      const kek = await readKekFile(join(tc.dir, `node-${i}.kek`));
      const store = await ShareStore.open({ dataDir: nodeDir(i), kek, nodeIndex: i });
      kek.fill(0);
      try {
        expect(await store.get('default', kem, 1)).toMatchObject({ state: 'destroyed', destroyedAt: expect.any(Number) });
        expect((await rejectionOf(store.getShare('default', kem, 1))) as { code?: string }).toMatchObject({ code: 'BAD_STATE' });
      } finally {
        await store.close();
      }
    }
  }, 120_000);

  it('no line any process printed holds a share, a KEK, an identity or import secret key, or an API key (hex, base64, both byte orders)', async () => {
    // The nodes are stopped (previous test): read every secret they hold.
    const secrets: { what: string; bytes: Uint8Array }[] = [...destroyedShares];
    for (const i of [1, 2, 3]) {
      const kek = await readKekFile(join(tc.dir, `node-${i}.kek`));
      secrets.push({ what: `node ${i} KEK`, bytes: Uint8Array.from(kek) });
      const store = await ShareStore.open({ dataDir: nodeDir(i), kek, nodeIndex: i });
      kek.fill(0);
      try {
        let shares = 0;
        for (const rec of await store.listAll()) {
          if (rec.state === 'destroyed') continue;
          const share = await store.getShare(rec.tenant, rec.keyId, rec.version);
          secrets.push({ what: `node ${i} share of ${rec.keyId} v${rec.version} (epoch ${rec.epoch})`, bytes: share!.secret.value });
          // A threshold ECDSA share's pairwise setup (Δ, base-OT seeds): secret too; 32-byte windows of it.
          const pairwise = share!.secret.pairwise;
          for (let o = 64; pairwise && o + 32 <= pairwise.length; o += 1024) {
            secrets.push({ what: `node ${i} ECDSA pairwise setup of ${rec.keyId} v${rec.version} at byte ${o}`, bytes: pairwise.slice(o, o + 32) });
          }
          shares++;
        }
        // scheduled v1+v2, eight suites, two rotated versions, the imported key; minus the destroyed one
        expect(shares).toBe(12);
        const ids = await loadOrCreateIdentity(store);
        // ML-DSA-65 sk = rho || K || tr || s1 || s2 || t0: rho is public (it starts the public key).
        secrets.push({ what: `node ${i} identity secret K`, bytes: ids.identity.secretKey.slice(32, 64) });
        secrets.push({ what: `node ${i} identity secret tr..`, bytes: ids.identity.secretKey.slice(64, 128) });
        secrets.push({ what: `node ${i} import KEM private key`, bytes: ids.kem.privateKey });
      } finally {
        await store.close();
      }
    }
    for (const n of tc.dev.cluster.nodes) secrets.push({ what: `node ${n.index} API key`, bytes: new TextEncoder().encode(n.apiKey) });

    const haystacks = [
      ...readdirSync(join(tc.dir, 'logs')).map((f) => ({ where: `log ${f}`, text: readFileSync(join(tc.dir, 'logs', f), 'utf8') })),
      { where: 'CLI output', text: cliOutput.join('\n') },
    ];
    // Every process logged at debug level, and the logs hold the whole flow.
    for (const name of ['coordinator', 'node-1', 'node-2', 'node-3']) {
      const h = haystacks.find((x) => x.where === `log ${name}.log`)!;
      expect(h.text, `${name} logged at debug level`).toMatch(/"level":20/);
    }
    expect(haystacks.map((h) => h.text).join('\n')).toMatch(/key rotated/);

    const encodings = (b: Uint8Array): string[] => {
      const fwd = Buffer.from(b);
      const rev = Buffer.from(b).reverse();
      return [
        fwd.toString('hex'),
        rev.toString('hex'),
        fwd.toString('base64').replace(/=+$/, ''),
        rev.toString('base64').replace(/=+$/, ''),
        fwd.toString('base64url'),
        rev.toString('base64url'),
      ];
    };
    const leaks: string[] = [];
    for (const s of secrets) {
      const needles = s.what.endsWith('API key') ? [Buffer.from(s.bytes).toString('utf8'), ...encodings(s.bytes)] : encodings(s.bytes);
      for (const h of haystacks) {
        const lower = h.text.toLowerCase();
        for (const n of needles) {
          const hit = /^[0-9a-f]+$/.test(n) ? lower.includes(n) : h.text.includes(n);
          if (hit) leaks.push(`${s.what} in ${h.where}`);
        }
      }
    }
    expect(secrets.length).toBeGreaterThan(40);
    expect(leaks).toEqual([]);
    // Control: the scan finds public values that are in the logs (session ids of the audit trail).
    const sessionIds = (await logEntries(tc.dir, 'node-1', (e) => typeof e.session === 'string')).map((e) => e.session as string);
    expect(sessionIds.length).toBeGreaterThan(10);
    expect(haystacks.some((h) => h.text.includes(sessionIds[0]!))).toBe(true);
  }, 60_000);
});
