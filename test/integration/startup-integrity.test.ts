/**
 * The node's start-up integrity check (issue 9, item 7; node/main.ts): a real coordinator and two real
 * nodes in process.
 * - A key record edited on disk by someone without the KEK (an archived version made active again):
 *   at restart the node logs the record and the key with `tessera repair --key-id`, refuses that key
 *   (503 naming the command), and serves every other key.
 * - The audit log's tail dropped on disk: the sealed head record does not match, and the node refuses
 *   to start with one line that says why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { pino } from 'pino';
import { loadConfigFile } from '../../coordinator/config.js';
import { startCoordinator, type Coordinator } from '../../coordinator/server.js';
import { AUDIT_NAMESPACE } from '../../node/governance/audit.js';
import { loadNodeConfig, type NodeConfig } from '../../node/config.js';
import { startNode, type RunningNode } from '../../node/main.js';
import { RECORD_TAG_LENGTH } from '../../node/store/record-auth.js';
import { shareRecordKey, storageLocation } from '../../node/store/storage.js';
import { Cluster, NodeClient } from '../../sdk/client.js';
import { prepareDev } from '../../sdk/dev.js';

const packr = new Packr({ useRecords: false });

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const text of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(text) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

async function withRawDb(dataDir: string, fn: (db: Level<string, Uint8Array>) => Promise<void>): Promise<void> {
  const db = new Level<string, Uint8Array>(storageLocation(dataDir), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    await fn(db);
  } finally {
    await db.close();
  }
}

describe('start-up integrity check', () => {
  let dir: string;
  let coordinator: Coordinator | undefined;
  const running: (RunningNode | undefined)[] = [];
  let configs: NodeConfig[];
  let apiKeys: string[];
  let urls: string[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-startcheck-'));
    const dev = await prepareDev({ nodes: 2, threshold: 2, dataDir: dir, port: 0, out: () => {}, logLevel: 'error' });
    coordinator = await startCoordinator(loadConfigFile(dev.coordinatorConfig).options);
    configs = dev.nodeConfigs.map((f) => loadNodeConfig({ file: f, env: {} }));
    for (const c of configs) running.push(await startNode(c, pino({ level: 'silent' })));
    apiKeys = dev.cluster.nodes.map((n) => n.apiKey);
    urls = dev.cluster.nodes.map((n) => n.url);
    const deadline = Date.now() + 20_000;
    while (coordinator.stats().online.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }, 60_000);

  afterAll(async () => {
    for (const n of running) await n?.close().catch(() => undefined);
    await coordinator?.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  const cluster = () => new Cluster(urls.map((url, i) => new NodeClient({ url, apiKey: apiKeys[i]!, index: i + 1 })));
  const get = async (path: string) => {
    const res = await fetch(urls[0]! + path, { headers: { authorization: `Bearer ${apiKeys[0]}` } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('an edited key record: the key is named with the repair command and refused; other keys are served', async () => {
    await cluster().keygen({ suite: 'ed25519', keyId: 'edited' });
    await cluster().keygen({ suite: 'ed25519', keyId: 'intact' });
    await cluster().setState({ keyId: 'edited', version: 1, state: 'archived' });
    await running[0]!.close();
    running[0] = undefined;

    // Re-activate the archived version, keeping the old MAC: all one can do without the KEK.
    await withRawDb(configs[0]!.dataDir, async (db) => {
      const key = shareRecordKey('default', 'edited', 1);
      const stored = (await db.get(key))!;
      const m = packr.unpack(stored.subarray(0, stored.length - RECORD_TAG_LENGTH)) as Record<string, unknown>;
      expect(m.state).toBe('archived');
      m.state = 'active';
      await db.put(key, Uint8Array.from([...packr.pack(m), ...stored.subarray(stored.length - RECORD_TAG_LENGTH)]));
    });

    const log = capturingLogger();
    running[0] = await startNode(configs[0]!, log.logger);
    const named = log.lines.filter((l) => l.keyId === 'edited' && typeof l.msg === 'string' && l.msg.startsWith('integrity:'));
    expect(named).toHaveLength(1);
    expect(named[0]!.msg).toBe('integrity: key record of default/edited version 1 fails its MAC; key edited is refused until repaired: run `tessera repair --key-id edited`');
    expect(log.lines.find((l) => l.msg === 'integrity check done')).toMatchObject({ unauthentic: 1, refusedKeys: 1 });

    const refused = await get('/v1/keys/edited');
    expect(refused.status).toBe(503);
    expect(refused.body.message).toMatch(/refuses key edited until it is repaired: run `tessera repair --key-id edited`/);
    const sign = await cluster()
      .sign({ keyId: 'edited', message: '00', players: [1, 2], version: 1 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(sign).toMatchObject({ code: 'UNAVAILABLE', node: 1 });
    // Every other key is served.
    expect((await get('/v1/keys/intact')).status).toBe(200);
    await cluster().sign({ keyId: 'intact', message: '00', players: [1, 2] });
  }, 120_000);

  it('a dropped audit tail: the node refuses to start, with one line', async () => {
    await running[0]!.close();
    running[0] = undefined;
    let last = 0;
    await withRawDb(configs[0]!.dataDir, async (db) => {
      const prefix = `x/${AUDIT_NAMESPACE}/e/`;
      for await (const k of db.keys({ gte: prefix, lt: `${prefix}~`, reverse: true, limit: 1 })) last = Number(k.slice(prefix.length));
      expect(last).toBeGreaterThan(2);
      await db.del(`${prefix}${String(last).padStart(16, '0')}`);
    });
    const err = await startNode(configs[0]!, pino({ level: 'silent' })).then(
      (n) => {
        running[0] = n;
        return undefined;
      },
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message.split('\n')).toHaveLength(1);
    expect(err!.message).toBe(
      `the audit log does not check out: entries ${last}..${last} were dropped from the end of the log (the sealed head record says seq ${last}, the log ends at seq ${last - 1}); refusing to start (investigate the data dir, e.g. restore it, before starting this node again)`,
    );
  }, 120_000);
});
