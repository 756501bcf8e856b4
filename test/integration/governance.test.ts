/**
 * Tenants, the policy engine and the audit log on a real 3-node cluster, driven through the CLI and
 * the SDK (issue 6):
 * - tenants and API keys made with `tessera tenant create` / `tessera apikey create` (one key per node,
 *   shown once, stored only as a hash); a key of tenant A answers 404 to tenant B exactly like a
 *   missing key; tenant keys cannot administer;
 * - ordered policy rules, first deny wins: operations per API key, per tenant and per key, quotas per
 *   period, rate limits per API key; denials are audited;
 * - fail closed: a node whose stored rules are corrupt answers 503; emergency fail-open lets requests
 *   through for its window, reverts by itself, and both switches are critical audit entries;
 * - `tessera audit verify` exits 0 on an intact log and fails, naming the problem, after the LevelDB
 *   was edited directly (an entry edited, an entry dropped).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { AUDIT_NAMESPACE } from '../../node/governance/audit.js';
import { POLICY_NAMESPACE } from '../../node/governance/policy.js';
import { RECORD_TAG_LENGTH } from '../../node/store/record-auth.js';
import { storageLocation } from '../../node/store/storage.js';
import { Cluster, NodeClient, newSessionId } from '../../sdk/client.js';
import type { ClusterFile } from '../../sdk/cli.js';
import { jsonOf, tessera } from '../helpers/cli.js';
import { message32, rejectionOf, startTestCluster, waitFor, type TestCluster } from '../helpers/cluster.js';

const packr = new Packr({ useRecords: false });

/** Raw access to a stopped node's LevelDB. */
async function withRawDb(dataDir: string, fn: (db: Level<string, Uint8Array>) => Promise<void>): Promise<void> {
  const db = new Level<string, Uint8Array>(storageLocation(dataDir), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    await fn(db);
  } finally {
    await db.close();
  }
}
const auditKey = (seq: number) => `x/${AUDIT_NAMESPACE}/e/${String(seq).padStart(16, '0')}`;

/** Every byte of every file of a node's LevelDB. */
function leveldbBytes(dataDir: string): Buffer {
  const dir = storageLocation(dataDir);
  return Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
}

describe('tenants, policy and audit on a live cluster', () => {
  let tc: TestCluster;
  let env: Record<string, string>;
  let acme: Cluster;
  let acmeKeys: { node: number; id: string; apiKey: string }[];
  const rulesFile = () => join(tc.dir, 'rules.json');

  beforeAll(async () => {
    // Checkpoints every 5 entries, so the logs verified below have several signed checkpoints.
    tc = await startTestCluster({ nodes: 3, threshold: 2, env: { TESSERA_AUDIT_CHECKPOINT_EVERY: '5' } });
    env = { TESSERA_CLUSTER: tc.clusterFile };
  }, 90_000);
  afterAll(async () => {
    await tc?.close();
  });

  it('tenant create and apikey create make the tenant and one key per node; the tenant works with its own cluster file', async () => {
    expect(jsonOf(await tessera(['tenant', 'create', 'acme', '--json'], env))).toEqual({
      tenant: 'acme',
      nodes: [
        { node: 1, created: true },
        { node: 2, created: true },
        { node: 3, created: true },
      ],
    });
    const again = await tessera(['tenant', 'create', 'acme', '--json'], env);
    expect(again.code).not.toBe(0);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/ALREADY_EXISTS/);

    const acmeFile = join(tc.dir, 'acme.json');
    const made = jsonOf(await tessera(['apikey', 'create', '--tenant', 'acme', '--out', acmeFile, '--json'], env));
    expect(made.tenant).toBe('acme');
    acmeKeys = made.keys;
    expect(acmeKeys.map((k) => k.node)).toEqual([1, 2, 3]);
    for (const k of acmeKeys) {
      expect(k.apiKey).toMatch(/^tsk_[A-Za-z0-9_-]{43}$/);
      expect(k.id).toMatch(/^ak_[0-9a-f]{16}$/);
    }
    expect(new Set(acmeKeys.map((k) => k.apiKey)).size).toBe(3);
    const file = JSON.parse(readFileSync(acmeFile, 'utf8')) as ClusterFile;
    expect(file.nodes.map((n) => n.apiKey)).toEqual(acmeKeys.map((k) => k.apiKey));

    // The tenant's cluster file drives the CLI for that tenant.
    const key = jsonOf(await tessera(['keygen', '--suite', 'ed25519', '--key-id', 'acme-key', '--cluster', acmeFile, '--json'], env));
    expect(key).toMatchObject({ keyId: 'acme-key', version: 1, suite: 'ed25519' });
    acme = tc.cluster.withApiKeys(acmeKeys.map((k) => k.apiKey));
    const signed = await acme.sign({ keyId: 'acme-key', message: message32('acme') });
    expect(signed.version).toBe(1);

    // A tenant key cannot administer.
    const denied = await rejectionOf(acme.nodes[0]!.createTenant('sneaky'));
    expect(denied).toMatchObject({ code: 'POLICY_DENIED', status: 403 });
  }, 60_000);

  it('a key of tenant A does not exist for tenant B: the same 404 as a missing key, and the same key id is independent', async () => {
    const node1 = tc.dev.cluster.nodes[0]!;
    const call = async (apiKey: string, method: string, path: string, body?: unknown) => {
      const res = await fetch(`${node1.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const dev = node1.apiKey;
    const same = (a: { status: number; body: Record<string, unknown> }, b: { status: number; body: Record<string, unknown> }, idA: string, idB: string) => {
      expect(a.status).toBe(404);
      expect({ status: a.status, body: JSON.parse(JSON.stringify(a.body).replaceAll(idA, 'ID')) }).toEqual({
        status: b.status,
        body: JSON.parse(JSON.stringify(b.body).replaceAll(idB, 'ID')),
      });
    };
    // Read, sign, lifecycle: tenant default asks for acme's key, then for a key that never existed.
    same(await call(dev, 'GET', '/v1/keys/acme-key'), await call(dev, 'GET', '/v1/keys/never-made'), 'acme-key', 'never-made');
    same(await call(dev, 'GET', '/v1/keys/acme-key?version=1'), await call(dev, 'GET', '/v1/keys/never-made?version=1'), 'acme-key', 'never-made');
    const signBody = () => ({ sessionId: newSessionId(), message: '00', players: [1, 2] });
    same(await call(dev, 'POST', '/v1/keys/acme-key/sign', signBody()), await call(dev, 'POST', '/v1/keys/never-made/sign', signBody()), 'acme-key', 'never-made');
    same(
      await call(dev, 'POST', '/v1/keys/acme-key/state', { sessionId: newSessionId(), version: 1, state: 'retired' }),
      await call(dev, 'POST', '/v1/keys/never-made/state', { sessionId: newSessionId(), version: 1, state: 'retired' }),
      'acme-key',
      'never-made',
    );
    expect((await call(dev, 'GET', '/v1/keys/never-made')).body).toEqual({ code: 'NOT_FOUND', message: 'key never-made not found' });

    // And the other way round; and the same key id in tenant default is another key.
    const defaultKey = await tc.cluster.keygen({ suite: 'ed25519', keyId: 'default-key' });
    same(await call(acmeKeys[0]!.apiKey, 'GET', '/v1/keys/default-key'), await call(acmeKeys[0]!.apiKey, 'GET', '/v1/keys/never-made'), 'default-key', 'never-made');
    const mine = await tc.cluster.keygen({ suite: 'ed25519', keyId: 'acme-key' });
    expect(mine.publicKey).not.toBe((await acme.getKey('acme-key')).publicKey);
    expect(defaultKey.version).toBe(1);
    // GET /v1/keys lists the caller's tenant only: each tenant sees its own acme-key, never the other's.
    const listOf = async (apiKey: string) => ((await call(apiKey, 'GET', '/v1/keys')).body.keys as { keyId: string; publicKey: string }[]).map((k) => `${k.keyId}:${k.publicKey}`);
    const forAcme = await listOf(acmeKeys[0]!.apiKey);
    const forDefault = await listOf(dev);
    expect(forAcme).toContain(`acme-key:${(await acme.getKey('acme-key')).publicKey}`);
    expect(forAcme.some((k) => k.startsWith('default-key:'))).toBe(false);
    expect(forDefault).toContain(`acme-key:${mine.publicKey}`);
    expect(forDefault).toContain(`default-key:${defaultKey.publicKey}`);
    expect(forAcme.filter((k) => forDefault.includes(k))).toEqual([]);
  }, 60_000);

  it('ordered rules, first deny wins: per API key, per tenant, per key, quotas and rate limits; denials are audited', async () => {
    for (const keyId of ['locked', 'quota-key', 'rate-key', 'policy-key']) await tc.cluster.keygen({ suite: 'ed25519', keyId });
    const rules = [
      { id: 'no-sign-locked', type: 'deny', operations: ['sign'], scope: { keyId: 'locked' } },
      { id: 'dev2-no-refresh', type: 'deny', operations: ['refresh'], scope: { apiKeyId: 'dev-2' } },
      { id: 'acme-ops', type: 'allow-operations', operations: ['keygen', 'sign', 'verify'], scope: { tenant: 'acme' } },
      { id: 'quota-2', type: 'quota', operations: ['sign'], per: 'key', limit: 2, periodMs: 3_600_000, scope: { keyId: 'quota-key' } },
      { id: 'rate-3', type: 'rate', per: 'apiKey', limit: 3, intervalMs: 600_000, scope: { apiKeyId: 'dev-1', keyId: 'rate-key' } },
    ];
    writeFileSync(rulesFile(), JSON.stringify({ rules }));
    const set = jsonOf(await tessera(['policy', 'set', '--file', rulesFile(), '--json'], env));
    expect(set.nodes).toEqual([1, 2, 3].map((node) => ({ node, version: 1, rules: rules.length })));
    const got = jsonOf(await tessera(['policy', 'get', '--node', '1', '--json'], env));
    expect(got.nodes[0]).toMatchObject({ node: 1, version: 1, rules, failOpen: { active: false } });

    // per key
    expect(await rejectionOf(tc.cluster.sign({ keyId: 'locked', message: '01' }))).toMatchObject({ code: 'POLICY_DENIED', message: expect.stringMatching(/no-sign-locked/) });
    // per API key (node 2's operator key may not refresh)
    expect(await rejectionOf(tc.cluster.refresh({ keyId: 'policy-key' }))).toMatchObject({ code: 'POLICY_DENIED', node: 2, message: expect.stringMatching(/dev2-no-refresh/) });
    // per tenant (acme may keygen, sign and verify only)
    expect(await rejectionOf(acme.refresh({ keyId: 'acme-key' }))).toMatchObject({ code: 'POLICY_DENIED', message: expect.stringMatching(/acme-ops/) });
    await acme.sign({ keyId: 'acme-key', message: '02' });
    // quota per period
    await tc.cluster.sign({ keyId: 'quota-key', message: '03' });
    await tc.cluster.sign({ keyId: 'quota-key', message: '04' });
    expect(await rejectionOf(tc.cluster.sign({ keyId: 'quota-key', message: '05' }))).toMatchObject({ code: 'POLICY_DENIED', message: expect.stringMatching(/quota/) });
    // rate limit per API key
    for (let i = 0; i < 3; i++) await tc.cluster.sign({ keyId: 'rate-key', message: `1${i}` });
    expect(await rejectionOf(tc.cluster.sign({ keyId: 'rate-key', message: '13' }))).toMatchObject({ code: 'POLICY_DENIED', node: 1, message: expect.stringMatching(/rate limit/) });
    // Other keys are untouched.
    await tc.cluster.sign({ keyId: 'policy-key', message: '06' });

    const log = await tc.client(1).auditLog();
    const entries = log.entries as unknown as Record<string, unknown>[];
    expect(entries).toContainEqual(
      expect.objectContaining({ tenant: 'default', actor: 'dev-1', operation: 'sign', keyId: 'locked', outcome: 'denied', reason: expect.stringMatching(/no-sign-locked/) }),
    );
    expect(entries).toContainEqual(expect.objectContaining({ tenant: 'acme', actor: acmeKeys[0]!.id, operation: 'refresh', outcome: 'denied' }));
    expect(entries).toContainEqual(expect.objectContaining({ operation: 'policy.update', actor: 'dev-1', outcome: 'ok' }));
    const ok = entries.filter((e) => e.operation === 'sign' && e.keyId === 'policy-key');
    expect(ok.map((e) => e.outcome)).toEqual(['started', 'ok']);
    expect(ok[0]!.sessionId).toMatch(/^[0-9a-f]{32}$/);
  }, 90_000);

  it('tessera audit verify exits 0 when every node\'s chain and every checkpoint verify', async () => {
    const r = jsonOf(await tessera(['audit', 'verify', '--json'], env));
    expect(r.ok).toBe(true);
    for (const n of r.nodes) {
      expect(n).toMatchObject({ ok: true, complete: true, problems: [], identityKey: 'cluster file' });
      expect(n.signedThrough).toBe(n.headSeq);
      expect(n.entries).toBeGreaterThan(5);
    }
  }, 60_000);

  it('fail closed: corrupt stored rules make the node answer 503; fail-open lets requests through, reverts by itself, and both are critical audit entries; tampering with the audit log is detected', async () => {
    // API keys are stored only as hashes: read the LevelDB files of the stopped nodes.
    await tc.dev.kill(2);
    await tc.dev.kill(3);
    for (const i of [2, 3]) {
      const bytes = leveldbBytes(join(tc.dir, `node-${i}`));
      const k = acmeKeys.find((x) => x.node === i)!;
      expect(bytes.includes(Buffer.from(k.apiKey)), `node ${i} stores its acme API key in the clear`).toBe(false);
      expect(bytes.includes(createHash('sha256').update(k.apiKey).digest()), `node ${i} stores the hash`).toBe(true);
    }
    // Node 2: the rule document becomes garbage; its audit log loses entry 4. Node 3: entry 3 is edited.
    await withRawDb(join(tc.dir, 'node-2'), async (db) => {
      await db.put(`x/${POLICY_NAMESPACE}/rules`, Uint8Array.of(0xc1, 0x00, 0xff, 0x13));
      await db.del(auditKey(4));
    });
    let edited: Record<string, unknown> = {};
    await withRawDb(join(tc.dir, 'node-3'), async (db) => {
      const stored = (await db.get(auditKey(3)))!;
      edited = packr.unpack(stored.subarray(0, stored.length - RECORD_TAG_LENGTH)) as Record<string, unknown>; // the record MAC trails the payload
      // Written without the KEK, so without a valid record MAC (node/store/record-auth.ts): the node never uses
      // it, and exports only its seq, which the verifier reports as malformed.
      await db.put(auditKey(3), Uint8Array.from(packr.pack({ ...edited, time: (edited.time as number) + 1 })));
    });
    tc.dev.start(2);
    await tc.restart(3);

    // 503 from node 2, for sessions and for reading the rules; node 1 and 3 still work.
    const node2 = tc.client(2);
    const sign = () => ({ operation: 'sign' as const, sessionId: newSessionId(), keyId: 'policy-key', message: '07', players: [1, 2] });
    expect(await rejectionOf(node2.join(sign(), true))).toMatchObject({ code: 'UNAVAILABLE', status: 503 });
    expect(await rejectionOf(node2.getPolicy())).toMatchObject({ code: 'UNAVAILABLE', status: 503 });
    expect(await rejectionOf(tc.cluster.sign({ keyId: 'policy-key', message: '08', players: [1, 2] }))).toMatchObject({ code: 'UNAVAILABLE', node: 2 });
    await tc.cluster.sign({ keyId: 'policy-key', message: '09', players: [1, 3] });

    // Emergency fail-open for 3 s on node 2 (the CLI takes minutes).
    const opened = jsonOf(await tessera(['policy', 'fail-open', '--node', '2', '--minutes', '0.05', '--json'], env));
    expect(opened.nodes[0]).toMatchObject({ node: 2, active: true, enabledBy: 'dev-2' });
    const until = opened.nodes[0].until as number;
    expect(until - Date.now()).toBeLessThanOrEqual(3000);
    const during = await tc.cluster.sign({ keyId: 'policy-key', message: '0a', players: [1, 2] });
    expect(during.version).toBe(1);
    await waitFor('fail-open to expire', () => Date.now() > until + 300, 10_000, 100);
    expect(await rejectionOf(tc.cluster.sign({ keyId: 'policy-key', message: '0b', players: [1, 2] }))).toMatchObject({ code: 'UNAVAILABLE', node: 2 });
    const entries2 = (await node2.auditLog()).entries as unknown as Record<string, unknown>[];
    const enable = entries2.filter((e) => e.operation === 'policy.fail-open.enable' && e.outcome === 'ok' && e.severity === 'critical');
    const revert = entries2.filter((e) => e.operation === 'policy.fail-open.revert');
    expect(enable).toHaveLength(1);
    expect(enable[0]).toMatchObject({ actor: 'dev-2', reason: 'emergency fail-open for 3000 ms' });
    expect(revert).toEqual([expect.objectContaining({ actor: 'system', outcome: 'ok', severity: 'critical', reason: 'automatic revert after 3000 ms' })]);
    expect(revert[0]!.seq as number).toBeGreaterThan(enable[0]!.seq as number);
    // Admitted under fail-open: the entry says so ('started' of a two-round session, or the one 'ok' entry of a presigned share).
    expect(entries2).toContainEqual(
      expect.objectContaining({ operation: 'sign', outcome: expect.stringMatching(/^(started|ok)$/), severity: 'warning', reason: expect.stringMatching(/fail-open/) }),
    );

    // The configured default window is 5 minutes; switching off early is audited too.
    const node3 = tc.client(3);
    const dflt = await node3.enableFailOpen();
    expect(dflt.until! - Date.now()).toBeGreaterThan(290_000);
    expect(dflt.until! - Date.now()).toBeLessThanOrEqual(300_000);
    expect(await node3.disableFailOpen()).toEqual({ active: false });

    // An admin repairs node 2 by setting valid rules.
    jsonOf(await tessera(['policy', 'set', '--node', '2', '--file', rulesFile(), '--json'], env));
    await tc.cluster.sign({ keyId: 'policy-key', message: '0c', players: [1, 2] });

    // Tampering: `audit verify` fails naming the problem; node 1's log still verifies.
    const v3 = await tessera(['audit', 'verify', '--node', '3', '--json'], env);
    expect(v3.code).toBe(1);
    expect(v3.stderr.trim().split('\n')).toHaveLength(1);
    expect(v3.stderr).toMatch(/audit log of node 3 does not verify: malformed-entry at seq 3/);
    const report3 = JSON.parse(v3.stdout) as { ok: boolean; complete: boolean; problems: { kind: string; seq: number }[] };
    expect(report3).toMatchObject({ ok: false, complete: false });
    expect(report3.problems).toContainEqual(expect.objectContaining({ kind: 'malformed-entry', seq: 3 }));
    const v2 = await tessera(['audit', 'verify', '--node', '2', '--json'], env);
    expect(v2.code).toBe(1);
    expect(v2.stderr).toMatch(/node 2 does not verify/);
    expect((JSON.parse(v2.stdout) as { problems: { kind: string; seq: number }[] }).problems).toContainEqual(expect.objectContaining({ kind: 'dropped', seq: 4 }));
    expect(jsonOf(await tessera(['audit', 'verify', '--node', '1', '--json'], env))).toMatchObject({ node: 1, ok: true, complete: true });
    // The SDK function says the same, against the identity key from the cluster file.
    const sdk3 = await node3.verifyAuditLog(tc.dev.cluster.nodes[2]!.identityPublicKey!);
    expect(sdk3.ok).toBe(false);
    expect(sdk3.problems[0]).toMatchObject({ kind: 'malformed-entry', seq: 3 });
    // Against another node's identity key, an intact log's checkpoints do not verify either.
    const wrongKey = await new NodeClient({ url: tc.dev.cluster.nodes[0]!.url, apiKey: tc.dev.cluster.nodes[0]!.apiKey }).verifyAuditLog(
      tc.dev.cluster.nodes[1]!.identityPublicKey!,
    );
    expect(wrongKey.problems.map((p) => p.kind)).toContain('bad-checkpoint-signature');
  }, 120_000);
});
