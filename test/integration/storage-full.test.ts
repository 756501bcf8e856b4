/**
 * Storage faults fail closed and are never silent (issue 9, item 7), on a real full disk: node 1's data
 * dir is a 3 MiB tmpfs. A real coordinator and two real nodes (in process, as `startNode` runs them).
 *
 * 1. Keys and tenants are created and acknowledged.
 * 2. The tmpfs is filled with a file; requests go on until a LevelDB write is refused (ENOSPC). That
 *    request answers 503 "node storage failed: restart the node", and the store latches: every later
 *    request (sessions, administration, reads, /v1/node, /ready; not /health) answers 503, even after
 *    space is freed.
 *    A session node 1 was waiting in fails at once with the same error (peers are told through the
 *    coordinator), instead of waiting for its deadline.
 * 3. Node 1 restarts with space: every key and tenant acknowledged before is there, its audit log
 *    verifies, and it serves again.
 *
 * Needs root (mount); without it the test is skipped and says so.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfigFile } from '../../coordinator/config.js';
import { startCoordinator, type Coordinator } from '../../coordinator/server.js';
import { verifyAuditLog } from '../../core/audit-verify.js';
import { loadNodeConfig, type NodeConfig } from '../../node/config.js';
import { startNode, type RunningNode } from '../../node/main.js';
import { STORAGE_FAILED_MESSAGE } from '../../node/store/record-auth.js';
import { Cluster, NodeClient, newSessionId } from '../../sdk/client.js';
import { prepareDev } from '../../sdk/dev.js';
import { canMountTmpfs } from '../helpers/tmpfs.js';


const mountable = canMountTmpfs();
if (!mountable) console.warn('storage-full.test: mount -t tmpfs is not permitted here (needs root): the full-disk test is skipped');

describe.skipIf(!mountable)(`a node whose data dir fills up${mountable ? '' : ' (skipped: mount -t tmpfs is not permitted here, needs root)'}`, () => {
  let dir: string;
  let mountPoint: string;
  let mounted = false;
  let coordinator: Coordinator | undefined;
  const running: (RunningNode | undefined)[] = [];
  let configs: NodeConfig[];
  let apiKeys: string[];
  let urls: string[];
  const quiet = pino({ level: 'silent' });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-full-'));
    mountPoint = join(dir, 'node-1');
    await mkdir(mountPoint, { mode: 0o700 });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m,mode=0700', 'tmpfs', mountPoint]);
    mounted = true;
    const dev = await prepareDev({ nodes: 2, threshold: 2, dataDir: dir, port: 0, out: () => {}, logLevel: 'error' });
    coordinator = await startCoordinator(loadConfigFile(dev.coordinatorConfig).options);
    configs = dev.nodeConfigs.map((f) => loadNodeConfig({ file: f, env: {} }));
    for (const c of configs) running.push(await startNode(c, quiet));
    apiKeys = dev.cluster.nodes.map((n) => n.apiKey);
    urls = dev.cluster.nodes.map((n) => n.url);
    const deadline = Date.now() + 20_000;
    while (coordinator.stats().online.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }, 60_000);

  afterAll(async () => {
    for (const n of running) await n?.close().catch(() => undefined);
    await coordinator?.close().catch(() => undefined);
    if (mounted) execFileSync('umount', ['-l', mountPoint]);
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  const cluster = () => new Cluster(urls.map((url, i) => new NodeClient({ url, apiKey: apiKeys[i]!, index: i + 1 })));
  /** One HTTP call to node 1 (status and body), so a 503 is seen as it is. */
  async function node1(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: { code?: string; message?: string } }> {
    const res = await fetch(urls[0]! + path, {
      method,
      headers: { authorization: `Bearer ${apiKeys[0]}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as { code?: string; message?: string } };
  }

  it('refuses everything with 503 after the first refused write, and loses nothing acknowledged', async () => {
    // 1. Acknowledged work.
    const keys: { keyId: string; publicKey: string }[] = [];
    for (let i = 0; i < 3; i++) {
      const k = await cluster().keygen({ suite: 'ed25519', keyId: `before-${i}` });
      keys.push({ keyId: `before-${i}`, publicKey: k.publicKey });
    }
    const tenants: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await node1('POST', '/v1/admin/tenants', { name: `early-${i}` });
      expect(r.status).toBe(200);
      tenants.push(`early-${i}`);
    }

    // A session in progress on node 1: it joined and waits at the coordinator for node 2, which never joins.
    const waiting = new NodeClient({ url: urls[0]!, apiKey: apiKeys[0]!, index: 1 })
      .join({ operation: 'sign', sessionId: newSessionId(), keyId: keys[0]!.keyId, message: '02', players: [1, 2] }, true)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    const joinDeadline = Date.now() + 20_000;
    while (coordinator!.stats().sessions < 1 && Date.now() < joinDeadline) await new Promise((r) => setTimeout(r, 20));
    expect(coordinator!.stats().sessions, 'node 1 joined the session').toBe(1);

    // 2. Fill the tmpfs, then go on until LevelDB refuses a write.
    const filler = await open(join(mountPoint, 'filler'), 'w');
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    try {
      for (;;) await filler.write(chunk);
    } catch (e) {
      expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    // Small writes may still fit in the last partly used pages: keep going until the first refusal.
    let refused: { status: number; body: { code?: string; message?: string } } | undefined;
    for (let i = 0; i < 2000 && !refused; i++) {
      const r = await node1('POST', '/v1/admin/tenants', { name: `fill-${i}` });
      if (r.status === 200) tenants.push(`fill-${i}`);
      else refused = r;
    }
    expect(refused).toEqual({ status: 503, body: { code: 'UNAVAILABLE', message: STORAGE_FAILED_MESSAGE } });
    // The waiting session failed at once with the storage failure (not by its 30 s deadline).
    expect(await waiting).toMatchObject({ code: 'UNAVAILABLE', status: 503, message: expect.stringContaining(STORAGE_FAILED_MESSAGE) });
    expect(coordinator!.stats().aborted).toMatchObject({ FAILED: 1 }); // aborted for every player, naming no node

    // Latched: administration, reads and sessions all answer 503, with nothing left waiting.
    const latched = { status: 503, body: { code: 'UNAVAILABLE', message: STORAGE_FAILED_MESSAGE } };
    expect(await node1('POST', '/v1/admin/tenants', { name: 'after' })).toEqual(latched);
    expect(await node1('GET', `/v1/keys/${keys[0]!.keyId}`)).toEqual(latched);
    expect(await node1('GET', '/v1/node')).toEqual(latched);
    expect(await node1('GET', '/ready')).toEqual(latched); // out of rotation for load balancers
    expect((await fetch(`${urls[0]}/health`)).status).toBe(200); // the process is alive: restart it
    const sign = await cluster()
      .sign({ keyId: keys[0]!.keyId, message: '00', players: [1, 2] })
      .then(
        () => undefined,
        (e: { code?: string; status?: number; node?: number }) => e,
      );
    expect(sign).toMatchObject({ code: 'UNAVAILABLE', node: 1 });
    // Freeing space does not un-latch: only a restart (and its integrity check) does.
    await filler.close();
    await rm(join(mountPoint, 'filler'));
    expect(await node1('POST', '/v1/admin/tenants', { name: 'after-free' })).toEqual(latched);

    // 3. Restart node 1 with space.
    await running[0]!.close();
    running[0] = await startNode(configs[0]!, quiet);
    for (const t of tenants) {
      const r = await node1('POST', '/v1/admin/tenants', { name: t });
      expect(r.status, `tenant ${t} was acknowledged before the disk filled`).toBe(409);
    }
    for (const k of keys) {
      const r = await node1('GET', `/v1/keys/${k.keyId}`);
      expect(r.status, `key ${k.keyId} was acknowledged before the disk filled`).toBe(200);
      expect((r.body as { publicKey?: unknown }).publicKey).toBe(k.publicKey);
    }
    // Its audit log is whole: every entry chained, none lost at the tail (the sealed head record matched at start).
    const exported = await new NodeClient({ url: urls[0]!, apiKey: apiKeys[0]!, index: 1 }).auditLog();
    expect(verifyAuditLog(exported as never, configs[0]!.membership[0]!.identityPublicKey)).toMatchObject({ ok: true });
    // And it serves again: a new key with both nodes, and a signature with an old one.
    expect((await node1('POST', '/v1/admin/tenants', { name: 'after-restart' })).status).toBe(200);
    await cluster().keygen({ suite: 'ed25519', keyId: 'after-restart' });
    await cluster().sign({ keyId: keys[1]!.keyId, message: '01', players: [1, 2] });
  }, 180_000);
});
