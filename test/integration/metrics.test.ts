/**
 * Prometheus metrics (issue 14, item 4): GET /metrics on every node (node/metrics.ts) and on the
 * coordinator (coordinator/metrics.ts).
 * - In process: each NodeMetrics has its own Registry (two nodes in one process do not mix), and a
 *   suite label is only ever a known suite id.
 * - On a real 2-of-3 dev cluster: the auth rule (no key or a wrong one: 401; a tenant key: 403; an
 *   admin API key or the configured metrics token: 200), then, after a keygen, a two-round signature,
 *   a presigned signature and a policy denial, the counts each node reports (operations by mode and
 *   outcome, latency histograms by suite, policy denials, presignature pool levels, key versions by
 *   state, audit queue and checkpoint age, coordinator connection), and that no key id or tenant name
 *   appears anywhere in a scrape;
 * - the coordinator's /metrics: only its own metrics token reads it (401 otherwise), and it reports the
 *   nodes online, connections, live sessions and the sessions that completed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadNodeConfig } from '../../node/config.js';
import { Cluster, NodeClient } from '../../sdk/client.js';
import { NodeMetrics, suiteLabel } from '../../node/metrics.js';
import { bytesToHex, message32, rejectionOf, sleep, startTestCluster, type TestCluster } from '../helpers/cluster.js';

/** One sample of a scrape: metric name and labels exactly (label order does not matter). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!] as [string, string]);
    got.sort(([a], [b]) => a.localeCompare(b));
    if (JSON.stringify(got) === JSON.stringify(want)) return Number(m[3]);
  }
  return undefined;
}

describe('NodeMetrics (in process)', () => {
  it('two nodes in one process keep separate registries', async () => {
    const a = new NodeMetrics();
    const b = new NodeMetrics();
    const t = a.operationStarted('sign', 'session');
    a.operationEnded({ operation: 'sign', mode: 'session', startedAt: t, outcome: 'ok', items: 1, prepared: { rec: { suite: 'ed25519' } } });
    const ta = await a.scrape();
    const tb = await b.scrape();
    expect(sample(ta, 'tessera_operations_total', { operation: 'sign', mode: 'session', outcome: 'ok' })).toBe(1);
    expect(sample(ta, 'tessera_operation_duration_seconds_count', { operation: 'sign', mode: 'session', suite: 'ed25519', outcome: 'ok' })).toBe(1);
    expect(sample(ta, 'tessera_operations_in_flight', { operation: 'sign', mode: 'session' })).toBe(0);
    expect(sample(tb, 'tessera_operations_total', { operation: 'sign', mode: 'session', outcome: 'ok' })).toBeUndefined();
  });

  it('metricsToken: from the file or TESSERA_METRICS_TOKEN (env wins), never enumerable; a bad one is a ConfigError naming the field, not the value', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-metrics-config-'));
    try {
      const members = [1, 2].map((index) => ({ index, identityPublicKey: randomBytes(1952).toString('hex') }));
      const file = (extra: object) => {
        const f = join(dir, `node-${Math.random().toString(36).slice(2)}.json`);
        writeFileSync(f, JSON.stringify({ index: 1, dataDir: 'data', api: { port: 0 }, coordinatorUrl: 'ws://127.0.0.1:1', membership: members, kekFile: 'kek', ...extra }));
        return f;
      };
      const c = loadNodeConfig({ file: file({ metricsToken: 'file-token-0123456789' }), env: {} });
      expect(c.metricsToken).toBe('file-token-0123456789');
      expect(Object.keys(c)).not.toContain('metricsToken');
      expect(JSON.stringify(c)).not.toContain('file-token');
      expect(loadNodeConfig({ file: file({ metricsToken: 'file-token-0123456789' }), env: { TESSERA_METRICS_TOKEN: 'env-token-0123456789' } }).metricsToken).toBe('env-token-0123456789');
      expect(loadNodeConfig({ file: file({}), env: {} }).metricsToken).toBeUndefined();
      for (const [bad, env] of [['short-tok', {}], ['has a space in it ok', {}], [12345678901234567, {}], ['ok-token-0123456789', { TESSERA_METRICS_TOKEN: 'tiny' }]] as const) {
        let err: unknown;
        try {
          loadNodeConfig({ file: file({ metricsToken: bad }), env });
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(ConfigError);
        expect((err as ConfigError).field).toMatch(/^metricsToken/);
        expect((err as ConfigError).message).not.toContain(String(bad));
        expect((err as ConfigError).message).not.toContain('tiny');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a suite label is a known suite id or "none", never anything else the prepare step held', () => {
    expect(suiteLabel({ suite: { id: 'bip340' } })).toBe('bip340');
    expect(suiteLabel({ scope: { suite: { id: 'p256' } } })).toBe('p256');
    expect(suiteLabel({ params: { suite: 'hpke-x25519' } })).toBe('hpke-x25519');
    expect(suiteLabel({ suite: 'my-secret-key-id', rec: { keyId: 'k' } })).toBe('none');
    expect(suiteLabel(undefined)).toBe('none');
  });
});

describe('GET /metrics on a live cluster (2-of-3)', () => {
  const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
  const COORDINATOR_TOKEN = 'coordinator-metrics-token-fedcba9876';
  /** Names that must never appear in a scrape (ids a tenant may consider secret). */
  const KEY_ID = 'metrics-secret-keyid-7c1d';
  const TENANT = 'metrics-tenant-5e2b';
  let tc: TestCluster;
  let signature: string;
  const message = bytesToHex(message32('metrics'));

  const nodeUrl = (i: number) => tc.dev.cluster.nodes[i - 1]!.url;
  const adminKey = (i: number) => tc.dev.cluster.nodes[i - 1]!.apiKey;
  async function get(i: number, auth?: string): Promise<{ status: number; type: string; text: string }> {
    const res = await fetch(`${nodeUrl(i)}/metrics`, auth === undefined ? {} : { headers: { authorization: auth } });
    return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
  }
  const scrape = async (i: number): Promise<string> => {
    const r = await get(i, `Bearer ${METRICS_TOKEN}`);
    expect(r.status).toBe(200);
    return r.text;
  };

  beforeAll(async () => {
    tc = await startTestCluster({
      nodes: 3,
      threshold: 2,
      // A checkpoint with every audit entry, so that the checkpoint age is a number.
      env: { TESSERA_METRICS_TOKEN: METRICS_TOKEN, TESSERA_COORDINATOR_METRICS_TOKEN: COORDINATOR_TOKEN, TESSERA_AUDIT_CHECKPOINT_EVERY: '1' },
    });
  }, 90_000);
  afterAll(async () => {
    await tc?.close();
  });

  it('no key or a wrong one: 401; a tenant API key: 403; an admin API key or the metrics token: 200', async () => {
    for (const auth of [undefined, 'Bearer', `Bearer ${'x'.repeat(40)}`, `Bearer ${METRICS_TOKEN}x`, `Basic ${Buffer.from('a:b').toString('base64')}`, `Bearer ${adminKey(2)}`]) {
      const r = await get(1, auth);
      expect(r.status, `auth ${auth?.slice(0, 10)}`).toBe(401);
      expect(JSON.parse(r.text)).toEqual({ code: 'UNAUTHORIZED', message: expect.any(String) });
    }
    const admin = tc.client(1);
    await admin.createTenant(TENANT);
    const tenantKey = (await admin.createApiKey(TENANT)).apiKey;
    const refused = await get(1, `Bearer ${tenantKey}`);
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.text)).toEqual({ code: 'POLICY_DENIED', message: expect.stringMatching(/admin/) });
    for (const i of [1, 2, 3]) {
      for (const auth of [`Bearer ${adminKey(i)}`, `Bearer ${METRICS_TOKEN}`]) {
        const ok = await get(i, auth);
        expect(ok.status).toBe(200);
        expect(ok.type).toMatch(/^text\/plain/);
        expect(ok.text).toContain('# TYPE tessera_operations_total counter');
      }
    }
  });

  it('after a keygen, a two-round and a presigned signature and a policy denial, each node reports them', async () => {
    const nodes = tc.dev.cluster.nodes.map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, timeoutMs: 60_000 }));
    // Presignatures only when asked (warmPresignatures), so the paths below are the ones named.
    const cluster = new Cluster(nodes, { threshold: 2, presign: { auto: false, lowWater: 0 } });
    const key = await cluster.keygen({ suite: 'ed25519', keyId: KEY_ID });
    const twoRound = await cluster.sign({ keyId: KEY_ID, message, players: [1, 2], presigned: false });
    expect(twoRound.path).toBe('two-round');
    expect(await cluster.warmPresignatures(KEY_ID, 2, { players: [1, 2] })).toBeGreaterThanOrEqual(2);
    const presigned = await cluster.sign({ keyId: KEY_ID, message, players: [1, 2] });
    expect(presigned.path).toBe('presigned');
    signature = presigned.signature;
    // Node 3's operator denies verify on the key: one policy denial, on node 3 only.
    await tc.client(3).setPolicy([{ id: 'no-verify', type: 'deny', operations: ['verify'], scope: { keyId: KEY_ID } }]);
    expect((await rejectionOf(tc.client(3).verify(KEY_ID, { message, signature }))).code).toBe('POLICY_DENIED');
    expect((await tc.client(1).verify(KEY_ID, { message, signature })).valid).toBe(true);
    expect(key.suite).toBe('ed25519');

    const text = await Promise.all([1, 2, 3].map(scrape));
    const op = (i: number, operation: string, mode: string, outcome: string) => sample(text[i - 1]!, 'tessera_operations_total', { operation, mode, outcome }) ?? 0;
    const latencyCount = (i: number, operation: string, mode: string, outcome: string) =>
      sample(text[i - 1]!, 'tessera_operation_duration_seconds_count', { operation, mode, suite: 'ed25519', outcome }) ?? 0;

    for (const i of [1, 2, 3]) {
      const t = text[i - 1]!;
      expect(op(i, 'keygen', 'session', 'ok'), `node ${i} keygen`).toBe(1);
      expect(latencyCount(i, 'keygen', 'session', 'ok')).toBe(1);
      // Signers 1 and 2: one two-round signature (a session) and one presigned share (local); node 3 none.
      const signer = i !== 3 ? 1 : 0;
      expect(op(i, 'sign', 'session', 'ok'), `node ${i} two-round sign`).toBe(signer);
      expect(op(i, 'sign', 'local', 'ok'), `node ${i} presigned sign`).toBe(signer);
      expect(latencyCount(i, 'sign', 'session', 'ok')).toBe(signer);
      expect(latencyCount(i, 'sign', 'local', 'ok')).toBe(signer);
      expect(sample(t, 'tessera_presign_entries_used_total'), `node ${i} presignatures used`).toBe(signer);
      if (signer) {
        expect(sample(t, 'tessera_presign_pools')).toBe(1);
        expect(sample(t, 'tessera_presign_entries_made_total')!).toBeGreaterThanOrEqual(2);
        expect(sample(t, 'tessera_presign_entries', { state: 'issued' })!).toBeGreaterThanOrEqual(1);
      } else {
        expect(sample(t, 'tessera_presign_pools')).toBe(0);
      }
      // The denial (node 3) and the verify that passed (node 1).
      expect(op(i, 'verify', 'local', 'denied'), `node ${i} verify denied`).toBe(i === 3 ? 1 : 0);
      expect(sample(t, 'tessera_policy_denials_total', { operation: 'verify' }) ?? 0).toBe(i === 3 ? 1 : 0);
      expect(op(i, 'verify', 'local', 'ok')).toBe(i === 1 ? 1 : 0);
      expect(sample(t, 'tessera_operation_duration_seconds_count', { operation: 'verify', mode: 'local', suite: 'none', outcome: 'denied' }) ?? 0).toBe(i === 3 ? 1 : 0);
      // Nothing in flight after the SDK got its answers.
      for (const line of t.split('\n').filter((l) => l.startsWith('tessera_operations_in_flight{'))) expect(line).toMatch(/ 0$/);
      // Keys by state, audit, coordinator link, storage.
      expect(sample(t, 'tessera_key_versions', { state: 'active' })).toBe(1);
      expect(sample(t, 'tessera_key_versions', { state: 'destroyed' })).toBe(0);
      expect(sample(t, 'tessera_audit_entries')!).toBeGreaterThanOrEqual(3);
      expect(sample(t, 'tessera_audit_queue_depth')).toBe(0);
      const age = sample(t, 'tessera_audit_last_checkpoint_age_seconds')!;
      expect(Number.isFinite(age) && age >= 0 && age < 600, `checkpoint age ${age}`).toBe(true);
      expect(sample(t, 'tessera_coordinator_connected')).toBe(1);
      expect(sample(t, 'tessera_coordinator_nodes_online')).toBe(3);
      expect(sample(t, 'tessera_channels_open')).toBe(0);
      expect(sample(t, 'tessera_storage_failed')).toBe(0);
      // Process metrics come with every registry.
      expect(sample(t, 'process_resident_memory_bytes')!).toBeGreaterThan(0);
    }
    // The counts are per request: a later scrape adds the next operation, nothing else.
    await cluster.sign({ keyId: KEY_ID, message, players: [1, 2], presigned: false });
    expect(sample(await scrape(1), 'tessera_operations_total', { operation: 'sign', mode: 'session', outcome: 'ok' })).toBe(2);
  }, 120_000);

  it('the coordinator: only its metrics token reads /metrics; it reports nodes, connections and sessions', async () => {
    const base = tc.dev.cluster.coordinator;
    for (const auth of [undefined, 'Bearer', `Bearer ${METRICS_TOKEN}`, `Bearer ${adminKey(1)}`, `Bearer ${COORDINATOR_TOKEN}x`]) {
      const res = await fetch(`${base}/metrics`, auth === undefined ? {} : { headers: { authorization: auth } });
      expect(res.status, `auth ${auth?.slice(0, 12)}`).toBe(401);
      expect(await res.json()).toEqual({ code: 'UNAUTHORIZED', message: expect.any(String) });
    }
    const read = async () => {
      const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${COORDINATOR_TOKEN}` } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type') ?? '').toMatch(/^text\/plain/);
      return res.text();
    };
    // Three sessions completed (the keygen and two two-round signatures); a node's last `done` may
    // reach the coordinator just after the SDK had its answer, so wait for it (no timing assertion).
    let t = await read();
    for (let k = 0; k < 100 && sample(t, 'tessera_coordinator_session_duration_seconds_count', { outcome: 'completed' }) !== 3; k++) {
      await sleep(50);
      t = await read();
    }
    expect(sample(t, 'tessera_coordinator_session_duration_seconds_count', { outcome: 'completed' })).toBe(3);
    expect(sample(t, 'tessera_coordinator_nodes_online')).toBe(3);
    expect(sample(t, 'tessera_coordinator_connections')).toBe(3);
    expect(sample(t, 'tessera_coordinator_sessions', { state: 'waiting' })).toBe(0);
    expect(sample(t, 'tessera_coordinator_sessions', { state: 'started' })).toBe(0);
    expect(sample(t, 'tessera_coordinator_relayed_messages_total')!).toBeGreaterThan(0);
    expect(sample(t, 'tessera_coordinator_rejected_connections_total')).toBe(0);
    for (const needle of [KEY_ID, TENANT]) expect(t.includes(needle)).toBe(false);
  });

  it('no key id, tenant name or API key id appears in a scrape', async () => {
    for (const i of [1, 2, 3]) {
      const t = await scrape(i);
      for (const needle of [KEY_ID, TENANT, `dev-${i}`, signature.slice(0, 16)]) expect(t.includes(needle), `node ${i}: ${needle}`).toBe(false);
      // Every label is one of the closed lists: operation, mode, suite, outcome, state (and prom-client's own).
      const labelNames = new Set([...t.matchAll(/[{,]([a-zA-Z_]+)="/g)].map((m) => m[1]!));
      const tessera = new Set([...t.split('\n').filter((l) => l.startsWith('tessera_')).join('\n').matchAll(/[{,]([a-zA-Z_]+)="/g)].map((m) => m[1]!));
      expect([...tessera].sort()).toEqual(['le', 'mode', 'operation', 'outcome', 'state', 'suite']);
      expect(labelNames.size).toBeGreaterThan(0);
    }
  });
});
