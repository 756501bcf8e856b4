/**
 * The node's link to the coordinator, hardened (issue 9, "Bounded resources" and "Hygiene"):
 * - a node pinned to one coordinator id (node config coordinatorId / TESSERA_COORDINATOR_ID) refuses
 *   to authenticate to a coordinator that names another id, and signs nothing for it;
 * - the relay queue of one session is bounded in bytes; overflowing it fails that session only, with
 *   RELAY_OVERFLOW naming no node;
 * - an abort never turns another node's claim into culprits.
 * Real coordinator and node code over real sockets; no mocks.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { generateIdentity, type IdentityKeyPair } from '../../core/identity.js';
import { ErrorCode } from '../../core/errors.js';
import { startCoordinator, type Coordinator } from '../../coordinator/server.js';
import { loadConfigFile } from '../../coordinator/config.js';
import { MAX_PAYLOAD_BYTES } from '../../contract/relay.js';
import { loadNodeConfig } from '../../node/config.js';
import { CoordinatorLink, SessionAbortedError } from '../../node/sessions/link.js';
import { startNode, type RunningNode } from '../../node/main.js';
import { prepareDev } from '../../sdk/dev.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A pino logger whose lines a test can wait for. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: () => void }[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const text of String(chunk).split('\n').filter(Boolean)) {
        const line = JSON.parse(text) as Record<string, unknown>;
        lines.push(line);
        for (const w of [...waiters]) if (w.pred(line)) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
      }
      cb();
    },
  });
  const waitFor = (pred: (l: Record<string, unknown>) => boolean, ms = 20_000) =>
    lines.some(pred)
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error('log line never came')), ms);
          waiters.push({ pred, resolve: () => (clearTimeout(t), resolve()) });
        });
  return { logger: pino({ level: 'debug' }, stream), lines, waitFor };
}

describe('a node pinned to its coordinator id', () => {
  /** A tessera dev data dir, and its coordinator started in process under `coordinatorId` (default: the one dev chose). */
  async function setup(coordinatorId?: string) {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-pin-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const { coordinatorConfig, nodeConfigs } = await prepareDev({ nodes: 2, threshold: 2, dataDir: dir, port: 0, out: () => {} });
    const cfg = loadConfigFile(coordinatorConfig);
    const coordinator: Coordinator = await startCoordinator({ ...cfg.options, ...(coordinatorId ? { coordinatorId } : {}) });
    cleanups.push(() => coordinator.close());
    const nodeConfig = loadNodeConfig({ file: nodeConfigs[0]!, env: {} });
    return { coordinator, nodeConfig, devCoordinatorId: cfg.options.coordinatorId };
  }

  it('tessera dev pins a per-cluster id, and the node authenticates to that coordinator', async () => {
    const { coordinator, nodeConfig, devCoordinatorId } = await setup();
    expect(devCoordinatorId).toMatch(/^tessera-dev-[0-9a-f]{16}$/);
    expect(nodeConfig.coordinatorId).toBe(devCoordinatorId);
    const log = capturingLogger();
    const node: RunningNode = await startNode(nodeConfig, log.logger);
    cleanups.push(() => node.close());
    await log.waitFor((l) => l.msg === 'connected to coordinator');
    expect(coordinator.stats().online).toEqual([1]);
  }, 60_000);

  it('refuses to authenticate to a coordinator that names another id, and keeps refusing', async () => {
    const { coordinator, nodeConfig } = await setup('tessera-somebody-else');
    const log = capturingLogger();
    const node = await startNode(nodeConfig, log.logger);
    cleanups.push(() => node.close());
    // Two refusals: the first attempt and a reconnect.
    const refused = (l: Record<string, unknown>) => l.msg === 'refusing to authenticate to an unexpected coordinator id';
    await log.waitFor(() => log.lines.filter(refused).length >= 2);
    const refusal = log.lines.find(refused)!;
    expect(refusal.expected).toBe(nodeConfig.coordinatorId);
    expect(refusal.received).toBe('tessera-somebody-else');
    expect(coordinator.stats().online).toEqual([]);
    expect(log.lines.some((l) => l.msg === 'connected to coordinator')).toBe(false);
    const ready = await fetch(`${node.url}/ready`);
    expect(ready.status).not.toBe(200);
  }, 60_000);

  it('the link explains a refused coordinator id when it gives up', async () => {
    const c = await startCoordinator({ port: 0, membership: new Map([[1, generateIdentity().publicKey]]), coordinatorId: 'real' });
    cleanups.push(() => c.close());
    const l = new CoordinatorLink();
    cleanups.push(() => l.close());
    const err: Error & { code?: string } = await l
      .connect({ url: c.url, index: 1, identitySecretKey: generateIdentity().secretKey, coordinatorId: 'expected', connectTimeoutMs: 500, reconnect: { minDelayMs: 20, maxDelayMs: 50 } })
      .then(
        () => new Error('connected'),
        (e: unknown) => e as Error & { code?: string },
      );
    expect(err.code).toBe(ErrorCode.Unavailable);
    expect(err.message).toMatch(/names coordinator id "real", this node is pinned to "expected"/);
  });
});

describe('the relay queue is bounded in bytes', () => {
  const ids = new Map<number, IdentityKeyPair>([1, 2].map((i) => [i, generateIdentity()] as const));
  const membership = new Map([...ids].map(([i, k]) => [i, k.publicKey] as const));

  async function pair(extra2: { maxQueuedBytesPerSession?: number } = {}) {
    const c = await startCoordinator({ port: 0, membership });
    cleanups.push(() => c.close());
    const links: CoordinatorLink[] = [];
    for (const i of [1, 2]) {
      const l = new CoordinatorLink();
      cleanups.push(() => l.close());
      await l.connect({ url: c.url, index: i, identitySecretKey: ids.get(i)!.secretKey, connectTimeoutMs: 5000, ...(i === 2 ? extra2 : {}) });
      links.push(l);
    }
    await links[0]!.waitForOnline([1, 2], 5000);
    return links as [CoordinatorLink, CoordinatorLink];
  }

  it('an overflow in bytes fails only that session, with RELAY_OVERFLOW naming no node', async () => {
    const [l1, l2] = await pair({ maxQueuedBytesPerSession: MAX_PAYLOAD_BYTES });
    const flooded = new Uint8Array(randomBytes(16));
    const other = new Uint8Array(randomBytes(16));
    const d1 = new Uint8Array(randomBytes(32));
    const d2 = new Uint8Array(randomBytes(32));
    await Promise.all([l1.join(flooded, d1, [1, 2]), l2.join(flooded, d1, [1, 2]), l1.join(other, d2, [1, 2]), l2.join(other, d2, [1, 2])]);
    const big = new Uint8Array(3 * 1024 * 1024);
    l1.send(flooded, 2, big);
    l1.send(flooded, 2, big);
    l1.send(other, 2, Uint8Array.of(42));
    // The other session is untouched.
    expect([...(await l2.receive(other, 1)).payload]).toEqual([42]);
    // "other" came after both big payloads on the same connection, so the flooded session has ended.
    const e = await l2.receive(flooded).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SessionAbortedError);
    const abort = e as SessionAbortedError;
    expect(abort.reason).toBe('RELAY_OVERFLOW');
    expect(abort.message).toMatch(/too many unread bytes/);
    expect(abort.nodes).toEqual([]);
    expect(abort.culprits).toEqual([]);
  }, 30_000);

  it('refuses a byte bound below one largest payload', async () => {
    const l = new CoordinatorLink();
    const err: Error & { code?: string } = await l
      .connect({ url: 'ws://127.0.0.1:1/nodes', index: 1, identitySecretKey: ids.get(1)!.secretKey, maxQueuedBytesPerSession: 1024 })
      .then(
        () => new Error('connected'),
        (x: unknown) => x as Error & { code?: string },
      );
    expect(err.code).toBe(ErrorCode.BadInput);
    expect(err.message).toMatch(/maxQueuedBytesPerSession/);
  });
});
