/**
 * `tessera keys report [--json]` (issue 15 item 4) on a live 2-of-3 cluster: every key of every tenant
 * (the dev key is an admin key), each row checked against what the key really is: its suite and scheme
 * (from the nodes' records), versions and states after a rotation, exportable (an export to X-Wing
 * really works for the exportable key and is refused for the others), rotation status, and at rest
 * exactly what each node says in GET /v1/node. A tenant API key's report covers its own tenant only.
 * Neither output carries a KEK or an API key.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SUITE_SCHEMES, type SuiteId } from '../../core/suites.js';
import { Cluster, generateWrappingKeyPair, NodeClient, type KeyInfo } from '../../sdk/client.js';
import type { KeyReportRow, KeysReport } from '../../sdk/inventory.js';
import { jsonOf, tessera } from '../helpers/cli.js';
import { rejectionOf, startTestCluster, TEST_REQUEST_TIMEOUT_MS, type TestCluster } from '../helpers/cluster.js';

const DAY = 86_400_000;

describe('tessera keys report', () => {
  let tc: TestCluster;
  let env: Record<string, string>;
  let report: KeysReport;
  let acmeCluster: Cluster;
  /** Every version of every key, as the nodes list them, by tenant. */
  const truth = new Map<string, KeyInfo[]>();

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    env = { TESSERA_CLUSTER: tc.clusterFile };
    const c = tc.cluster;
    await c.keygen({ suite: 'ed25519', keyId: 'signer', rotationPeriodMs: 30 * DAY });
    await c.rotate({ keyId: 'signer' });
    await c.keygen({ suite: 'hpke-x25519', keyId: 'inbox', exportable: true });
    await c.keygen({ suite: 'secp256k1', keyId: 'frost-k1' });
    await c.createTenant('acme');
    const acmeAsAdmin = c.forTenant('acme');
    await acmeAsAdmin.keygen({ suite: 'bip340', keyId: 'taproot' });
    for (const [tenant, cluster] of [['acme', acmeAsAdmin], ['default', c]] as const) truth.set(tenant, await cluster.listKeys());
    const acmeKeys = await c.createApiKeys('acme');
    acmeCluster = new Cluster(
      tc.dev.cluster.nodes.map((n) => new NodeClient({ url: n.url, apiKey: acmeKeys.find((k) => k.node === n.index)!.apiKey, index: n.index, timeoutMs: TEST_REQUEST_TIMEOUT_MS })),
      { threshold: 2 },
    );
    report = jsonOf(await tessera(['keys', 'report', '--json'], env)) as KeysReport;
  }, 240_000);
  afterAll(async () => {
    await tc?.close();
  });

  const row = (tenant: string | null, keyId: string): KeyReportRow => {
    const r = report.keys.find((k) => k.tenant === tenant && k.keyId === keyId);
    if (!r) throw new Error(`no row for ${tenant}/${keyId}: ${report.keys.map((k) => `${k.tenant}/${k.keyId}`).join(' ')}`);
    return r;
  };

  it('lists every key of every tenant once, with its suite, scheme, versions, states and exportable as the nodes hold them', () => {
    expect(report.tenants).toEqual(['acme', 'default']);
    expect(report.keys.map((k) => `${k.tenant}/${k.keyId}`)).toEqual(['acme/taproot', 'default/frost-k1', 'default/inbox', 'default/signer']);
    for (const [tenant, infos] of truth) {
      for (const keyId of new Set(infos.map((k) => k.keyId))) {
        const versions = infos.filter((k) => k.keyId === keyId);
        const r = row(tenant, keyId);
        expect(r.suite).toBe(versions[0]!.suite);
        expect(r.scheme).toBe(versions[0]!.scheme);
        expect(r.scheme).toBe(SUITE_SCHEMES[r.suite as SuiteId]);
        expect(r.versions.map((v) => [v.version, v.state, v.epoch, v.exportable, v.createdAt])).toEqual(versions.map((k) => [k.version, k.state, k.epoch, k.exportable, k.createdAt]));
        expect(r.versions.every((v) => v.nodes.join(',') === '1,2,3')).toBe(true);
        expect(r.exportable).toBe(versions.some((k) => k.exportable));
        expect(r.createdAt).toBe(versions[0]!.createdAt);
        expect(r.ageMs).toBeGreaterThanOrEqual(0);
      }
    }
    expect(report.summary).toEqual({ keys: 4, versions: 5, postQuantumEndToEnd: 0, classicalKey: 4 });
  });

  it('the rotated key: two versions (v1 retired, v2 active), its period and status from the current version', () => {
    const signer = row('default', 'signer');
    expect(signer.versions.map((v) => `v${v.version}:${v.state}`)).toEqual(['v1:retired', 'v2:active']);
    expect(signer.currentVersion).toBe(2);
    const v2 = truth.get('default')!.find((k) => k.keyId === 'signer' && k.version === 2)!;
    expect(v2.rotation).toBeDefined();
    expect(signer.rotation).toEqual({ periodMs: 30 * DAY, status: v2.rotation!.status, ...(v2.rotation!.dueAt !== undefined ? { dueAt: v2.rotation!.dueAt } : {}) });
    expect(signer.rotation.status).toBe('ok');
    expect(row('default', 'inbox').rotation).toEqual({ periodMs: null, status: 'no-period' });
  });

  it('the protection summary: every key classical; transit post-quantum; export only for the exportable key, and export really goes that way', async () => {
    for (const r of report.keys) {
      expect(r.protection.key.status).toBe('classical');
      expect(r.protection.transit).toMatchObject({ status: 'post-quantum', signature: 'ML-DSA-65 (FIPS 204) node identities' });
      expect(r.protection.transit.kem).toContain('ML-KEM-768');
      expect(r.postQuantumEndToEnd).toBe(false);
      expect(r.toChange[0]).toMatch(/^key: none yet/);
    }
    expect(row('default', 'inbox').use).toBe('kem');
    expect(row('default', 'signer').use).toBe('signature');
    expect(row('default', 'inbox').protection.export).toMatchObject({ status: 'post-quantum', kems: ['ML-KEM-768 (FIPS 203)', 'X-Wing (X25519 + ML-KEM-768 hybrid)'] });
    for (const id of ['signer', 'frost-k1']) expect(row('default', id).protection.export.status).toBe('not-applicable');
    // What the report says is what the nodes do: the exportable key leaves wrapped to X-Wing, the others do not leave.
    const sink = await generateWrappingKeyPair('x-wing');
    const bundle = (await tc.cluster.exportKey({ keyId: 'inbox', wrappingKeys: [sink.publicKey] })) as { wrappedShares: { kem: string }[] };
    expect(bundle.wrappedShares.map((w) => w.kem)).toEqual(['x-wing', 'x-wing', 'x-wing']);
    expect(await rejectionOf(tc.cluster.exportKey({ keyId: 'frost-k1', wrappingKeys: [sink.publicKey] }))).toMatchObject({ code: 'POLICY_DENIED' });
  }, 60_000);

  it('at rest is what each node reports (GET /v1/node atRest), and the plain-http link is reported unprotected', async () => {
    const infos = await Promise.all([1, 2, 3].map((i) => tc.client(i).info()));
    for (const info of infos) expect(info.atRest).toEqual({ provider: 'file', keyBits: 256, recordAead: 'AES-256-GCM', keyDerivation: 'HKDF-SHA256', recordMac: 'HMAC-SHA-256' });
    expect(report.nodes).toEqual(infos.map((info) => ({ index: info.index, answered: true, atRest: info.atRest })));
    for (const r of report.keys) {
      expect(r.protection.atRest.status).toBe('post-quantum');
      expect(r.protection.atRest.nodes).toEqual(infos.map((info) => ({ index: info.index, atRest: info.atRest })));
    }
    expect(report.client.status).toBe('unprotected');
    expect(report.client.links.map((l) => l.scheme)).toEqual(['http', 'http', 'http']);
    expect(row('default', 'inbox').toChange.some((t) => t.startsWith('SDK to node: node(s) 1,2,3 reached over plain http'))).toBe(true);
  });

  it('a tenant API key reports its own tenant only', async () => {
    const own = await acmeCluster.keysReport();
    expect(own.tenants).toBeNull();
    expect(own.keys.map((k) => [k.tenant, k.keyId, k.suite])).toEqual([[null, 'taproot', 'bip340']]);
  }, 60_000);

  it('the table: a header, one line per key, what would need to change; no KEK or API key in either output', async () => {
    const text = await tessera(['keys', 'report'], env);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.split('\n');
    expect(lines[0]).toMatch(/^KEY\s+SUITE\s+VERSIONS\s+AGE\s+ROTATION\s+EXPORTABLE\s+KEY-ITSELF\s+TRANSIT\s+EXPORT\s+AT-REST\s+PQ-END-TO-END$/);
    expect(lines[1]).toMatch(/^acme\/taproot\s+bip340\s+v1:active\s+\d+s\s+no period\s+no\s+classical\s+PQ\s+-\s+PQ\s+no$/);
    expect(lines[2]).toMatch(/^default\/frost-k1\s+secp256k1\s+v1:active\s+\d+s\s+no period\s+no\s+classical\s+PQ\s+-\s+PQ\s+no$/);
    expect(lines[3]).toMatch(/^default\/inbox\s+hpke-x25519\s+v1:active\s+\d+s\s+no period\s+yes\s+classical\s+PQ\s+PQ\s+PQ\s+no$/);
    expect(lines[4]).toMatch(/^default\/signer\s+ed25519\s+v1:retired,v2:active\s+\d+[sm]\s+ok \(every 30d\)\s+no\s+classical\s+PQ\s+-\s+PQ\s+no$/);
    expect(text.stdout).toContain('To be post-quantum end to end:');
    expect(text.stdout).toContain("4 key(s), 5 version(s); 0 post-quantum end to end; tenants: acme, default.");
    const secrets = [
      ...[1, 2, 3].map((i) => readFileSync(join(tc.dir, `node-${i}.kek`), 'latin1').trim()),
      ...(JSON.parse(readFileSync(tc.clusterFile, 'utf8')) as { nodes: { apiKey: string }[] }).nodes.map((n) => n.apiKey),
    ];
    expect(secrets.every((s) => s.length >= 32)).toBe(true);
    const json = JSON.stringify(report);
    for (const s of secrets) {
      expect(json.includes(s)).toBe(false);
      expect(text.stdout.includes(s)).toBe(false);
    }
  }, 60_000);
});
