/**
 * Sealed nodes (issue 15, shamir-unseal KEK provider; node/sealed.ts) on a real 3-node cluster whose node 3
 * keeps its KEK only as 2-of-3 operator shares sealed to the operators' ML-KEM-768 keys (nodes 1 and 2
 * keep file KEKs; the dev cluster prepares them). Node 3 is initialised through its API (it makes its KEK,
 * data dir and identity), then the cluster runs with it:
 *   a sealed node refuses every operation (503) but health, status and unseal;
 *   one share (K-1) does not unseal it, the second does, and keygen + sign work with it;
 *   a tampered share and a share of another initialisation are named;
 *   `seal` seals the running node, and a restart seals it again;
 *   the KEK (combined here from the shares) and the shares are in no file of its data dir and no log;
 *   every attempt is in its audit log;
 *   its KEK rotates in place (`tessera kek rotate --node 3 --out DIR`): new shares, after which only they
 *   unseal it; and a rotation killed midway (TESSERA_FAULT_POINTS=kek-rotate-midway) is finished at the
 *   next start, which the OLD shares unseal; the new KEK is in no data file meanwhile.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { combine } from 'shamir-secret-sharing';
import { toHex } from '../../core/bytes.js';
import { generateWrappingKeyPair, type WrappingKeyPair } from '../../core/wrap.js';
import { makeUnsealKek } from '../../node/store/kek-unseal.js';
import { Cluster, NodeClient } from '../../sdk/client.js';
import { prepareDev, probeReady } from '../../sdk/dev.js';
import { writeWrappingKeyPair } from '../../sdk/keyfiles.js';
import { UnsealClient, openUnsealShare, unsealShareFiles, writeUnsealShareFile, type UnsealShareFile } from '../../sdk/unseal.js';
import { jsonOf, tessera } from '../helpers/cli.js';
import { sleep } from '../helpers/cluster.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SEALED = 3;

describe('a shamir-unseal node in a 3-node cluster', () => {
  let dir: string;
  const children = new Map<number, ChildProcess>();
  let scripts: Map<number, [string, string]>;
  let cluster: { coordinator: string; threshold: number; nodes: { index: number; url: string; apiKey: string; identityPublicKey: string }[] };
  let unseal: UnsealClient;
  let operators: WrappingKeyPair[];
  let shareFiles: UnsealShareFile[];
  const node3 = () => cluster.nodes[SEALED - 1]!;

  const start = (index: number, env: Record<string, string> = {}) => {
    const [name, cfg] = scripts.get(index)!;
    const log = createWriteStream(join(dir, 'logs', `${name}.log`), { flags: 'a', mode: 0o600 });
    const script = index === 0 ? 'coordinator/main.ts' : 'node/main.ts';
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, script), '--config', cfg], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TESSERA_PARENT_PID: String(process.pid), ...env },
    });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    child.once('close', () => log.end());
    children.set(index, child);
  };
  const stop = (index: number) =>
    new Promise<void>((res) => {
      const c = children.get(index);
      children.delete(index);
      if (!c || c.exitCode !== null || c.signalCode !== null) return res();
      const t = setTimeout(() => c.kill('SIGKILL'), 5000);
      c.once('exit', () => (clearTimeout(t), res()));
      c.kill('SIGTERM');
    });
  const logs = () =>
    readdirSync(join(dir, 'logs'))
      .map((f) => `--- ${f}\n${readFileSync(join(dir, 'logs', f), 'utf8').trimEnd().split('\n').slice(-12).join('\n')}`)
      .join('\n');
  const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`${what}: not in time\n${logs()}`);
      await sleep(150);
    }
  };
  const healthy = (url: string) => fetch(`${url}/health`).then((r) => r.ok);
  const get = async (path: string, apiKey = node3().apiKey) => {
    const r = await fetch(`${node3().url}${path}`, { headers: { authorization: `Bearer ${apiKey}` } });
    return { status: r.status, json: (await r.json()) as any };
  };
  const post = async (path: string, body: unknown) => {
    const r = await fetch(`${node3().url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${node3().apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, json: (await r.json()) as any };
  };
  const plainShare = async (i: number) => openUnsealShare(shareFiles[i - 1]!, operators[i - 1]);
  const sdkCluster = () =>
    new Cluster(
      cluster.nodes.map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, timeoutMs: 60_000 })),
      { threshold: 2 },
    );
  const allReady = () => waitFor('every node ready', async () => (await Promise.all(cluster.nodes.map((n) => probeReady(n.url)))).every((s) => s === 200), 90_000);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-unseal-'));
    const prepared = await prepareDev({ nodes: 3, threshold: 2, dataDir: dir, port: 0, logLevel: 'info', out: () => {} });
    cluster = prepared.cluster as typeof cluster;
    scripts = new Map([
      [0, ['coordinator', prepared.coordinatorConfig]],
      ...prepared.nodeConfigs.map((cfg, k) => [k + 1, [`node-${k + 1}`, cfg]] as [number, [string, string]]),
    ]);
    // Node 3: no KEK file and no data dir; its config names the shamir-unseal provider.
    const cfgPath = prepared.nodeConfigs[SEALED - 1]!;
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    rmSync(cfg.dataDir, { recursive: true, force: true });
    unlinkSync(cfg.kekFile);
    delete cfg.kekFile;
    cfg.kekProvider = { kind: 'shamir-unseal' };
    writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
    unseal = new UnsealClient({ url: node3().url, apiKey: node3().apiKey, index: SEALED, timeoutMs: 60_000 });

    // Initialise node 3 through its API, alone (a sealed node needs no coordinator).
    start(SEALED);
    await waitFor('node 3 sealed front end', () => healthy(node3().url));
    expect(await unseal.status()).toMatchObject({ node: SEALED, provider: 'shamir-unseal', state: 'uninitialized', sealed: true, progress: 0 });
    operators = await Promise.all([1, 2, 3].map(() => generateWrappingKeyPair('ml-kem-768')));
    const init = await unseal.init({ threshold: 2, operators: 3, operatorKeys: operators.map((o) => toHex(o.publicKey)) });
    expect(init).toMatchObject({ node: SEALED, threshold: 2, operators: 3, keyCheckValue: expect.stringMatching(/^k-[0-9a-f]{16}$/) });
    expect(init.shares.every((s) => s.wrapped && s.share === undefined)).toBe(true);
    shareFiles = unsealShareFiles(init);
    expect((await unseal.init({ threshold: 2, operators: 3 }).catch((e) => e)).code).toBe('ALREADY_EXISTS');

    // The cluster's membership names node 3's new identity (as an operator writes it from the init answer).
    const members = JSON.parse(readFileSync(join(dir, 'membership.json'), 'utf8'));
    members.nodes[SEALED - 1].identityPublicKey = init.identityPublicKey;
    writeFileSync(join(dir, 'membership.json'), JSON.stringify(members, null, 2));
    for (const p of prepared.nodeConfigs) {
      const c = JSON.parse(readFileSync(p, 'utf8'));
      c.membership = members.nodes;
      writeFileSync(p, JSON.stringify(c, null, 2));
    }
    node3().identityPublicKey = init.identityPublicKey;
    writeFileSync(join(dir, 'cluster.json'), JSON.stringify(cluster, null, 2), { mode: 0o600 });
    await stop(SEALED);
    for (const i of [0, 1, 2, SEALED]) start(i);
    await waitFor('every process up', async () => (await Promise.all([cluster.coordinator, ...cluster.nodes.map((n) => n.url)].map(healthy))).every(Boolean));
  }, 120_000);

  afterAll(async () => {
    await Promise.all([...children.keys()].map(stop));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a sealed node refuses every operation with 503, but answers health, status and unseal', async () => {
    expect(await unseal.status()).toMatchObject({ state: 'sealed', sealed: true, progress: 0, threshold: 2, operators: 3 });
    for (const path of ['/v1/node', '/v1/keys', '/v1/keys/k1', '/v1/admin/audit', '/v1/admin/tenants', '/v1/admin/policy', '/metrics', '/ready']) {
      const r = await get(path);
      expect(r.status, path).toBe(503);
      // GET /metrics: a sealed node collects none (UNAVAILABLE saying so); every other route says sealed.
      expect(r.json, path).toMatchObject({ code: 'UNAVAILABLE', message: path === '/metrics' ? expect.any(String) : expect.stringContaining('node 3 is sealed') });
    }
    for (const [path, body] of [
      ['/v1/keys', { sessionId: '00'.repeat(16), keyId: 'x', suite: 'ed25519', threshold: 2 }],
      ['/v1/keys/x/sign', { sessionId: '00'.repeat(16), message: '00' }],
      ['/v1/import', {}],
      ['/v1/admin/tenants', { name: 't' }],
    ] as const) {
      const r = await post(path, body);
      expect(r.status, path).toBe(503);
      expect(r.json.message, path).toContain('sealed');
    }
    expect((await fetch(`${node3().url}/health`)).status).toBe(200);
    // Without an API key: 401, as on every node (a caller learns nothing, not even that it is sealed).
    expect((await fetch(`${node3().url}/v1/unseal`)).status).toBe(401);
    expect((await fetch(`${node3().url}/v1/node`)).status).toBe(401);
  });

  it('names a tampered share and a share of another initialisation; one share (K-1) does not unseal, two do', async () => {
    const share1 = await plainShare(1);
    const tampered = Uint8Array.from(share1);
    tampered[7]! ^= 0x40;
    let r = await post('/v1/unseal', { shareIndex: 1, share: toHex(tampered) });
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/^share 1 does not match its check value/);
    const foreign = await makeUnsealKek(SEALED, 2, 3);
    r = await post('/v1/unseal', { shareIndex: 2, share: toHex(foreign.shares[1]!) });
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/^share 2 does not match its check value/);
    // A share sealed to operator 1 does not open with operator 2's key (in the SDK, before any request).
    expect((await unseal.unseal(shareFiles[0]!, operators[1]).catch((e) => e)).message).toMatch(/sealed to another key/);

    const first = await unseal.unseal(shareFiles[0]!, operators[0]);
    expect(first).toMatchObject({ accepted: 1, state: 'sealed', sealed: true, progress: 1, threshold: 2 });
    expect((await post('/v1/unseal', { shareIndex: 1, share: toHex(share1) })).json.message).toMatch(/^share 1 was already submitted/);
    expect((await get('/v1/node')).status).toBe(503);
    expect(await unseal.status()).toMatchObject({ state: 'sealed', progress: 1 });

    const second = await unseal.unseal(shareFiles[2]!, operators[2]);
    expect(second).toMatchObject({ accepted: 3, state: 'unsealing', progress: 2 });
    expect(await unseal.waitFor('unsealed')).toMatchObject({ state: 'unsealed', sealed: false, keyCheckValue: shareFiles[0]!.keyCheckValue });
    expect((await get('/v1/node')).json).toMatchObject({ index: SEALED, identityPublicKey: node3().identityPublicKey, atRest: { provider: 'shamir-unseal' } });

    await allReady();
    const c = sdkCluster();
    const key = await c.keygen({ suite: 'ed25519', keyId: 'unsealed-ed' });
    const { signature } = await c.sign({ keyId: key.keyId, message: new TextEncoder().encode('signed with node 3'), players: [1, SEALED] });
    expect(signature).toMatch(/^[0-9a-f]{128}$/);
  }, 180_000);

  it('seal seals the running node; it unseals again with another pair of shares, keys intact', async () => {
    expect((await unseal.seal()).state).toBe('sealed');
    await unseal.waitFor('sealed');
    expect((await get('/v1/node')).status).toBe(503);
    expect((await get('/v1/keys/unsealed-ed')).status).toBe(503);
    await unseal.unseal(shareFiles[1]!, operators[1]);
    await unseal.unseal(shareFiles[2]!, operators[2]);
    await unseal.waitFor('unsealed');
    await allReady();
    const { signature } = await sdkCluster().sign({ keyId: 'unsealed-ed', message: new TextEncoder().encode('after a seal'), players: [2, SEALED] });
    expect(signature).toMatch(/^[0-9a-f]{128}$/);
  }, 180_000);

  it('every attempt is in the audit log: init, refused shares with their reason, accepted shares, unseal, seal', async () => {
    const audit = (await get('/v1/admin/audit')).json as { entries: string[] };
    const entries = audit.entries.map((e) => JSON.parse(e) as { operation: string; outcome: string; reason?: string; actor?: string });
    const mine = entries.filter((e) => e.operation.startsWith('node.unseal') || e.operation === 'node.seal');
    expect(mine.find((e) => e.operation === 'node.unseal-init')).toMatchObject({ outcome: 'ok', actor: `dev-${SEALED}`, reason: expect.stringContaining('2 of 3 operator shares sealed to operator keys') });
    const refused = mine.filter((e) => e.outcome === 'denied').map((e) => e.reason);
    expect(refused).toEqual(
      expect.arrayContaining([expect.stringMatching(/share 1 does not match its check value/), expect.stringMatching(/share 2 does not match its check value/), expect.stringMatching(/share 1 was already submitted/)]),
    );
    expect(mine.filter((e) => e.outcome === 'ok' && /accepted/.test(e.reason ?? '')).length).toBe(4);
    expect(mine.filter((e) => e.operation === 'node.unseal' && /^unsealed/.test(e.reason ?? '')).length).toBe(2);
    expect(mine.find((e) => e.operation === 'node.seal')).toMatchObject({ outcome: 'ok', actor: `dev-${SEALED}` });
  });

  it('a restart seals it again', async () => {
    await stop(SEALED);
    start(SEALED);
    await waitFor('node 3 back', () => healthy(node3().url));
    expect(await unseal.status()).toMatchObject({ state: 'sealed', sealed: true, progress: 0 });
    expect((await get('/v1/node')).status).toBe(503);
  }, 60_000);

  it('the CLI: unseal status, unseal with wrapped share files and operator key files, seal --node; init refused on an initialised node', async () => {
    const ops = join(dir, 'operators');
    mkdirSync(ops, { mode: 0o700 });
    for (const i of [1, 2]) {
      writeWrappingKeyPair(join(ops, `op${i}.key`), operators[i - 1]!);
      writeUnsealShareFile(join(ops, `share-${i}.wrapped`), shareFiles[i - 1]!);
    }
    const env = { TESSERA_CLUSTER: join(dir, 'cluster.json') };
    const cli = (args: string[]) => tessera(args, env, 90_000);
    expect(jsonOf(await cli(['unseal', 'status', '--node', '3', '--json']))).toMatchObject({ node: 3, state: 'sealed', progress: 0, threshold: 2 });
    const noKey = await cli(['unseal', '--node', '3', '--share', join(ops, 'share-2.wrapped')]);
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toMatch(/share 2 is sealed to an operator key/);
    const wrongNode = await cli(['unseal', '--node', '2', '--share', join(ops, 'share-2.wrapped')]);
    expect(wrongNode.code).toBe(2);
    expect(jsonOf(await cli(['unseal', '--node', '3', '--share', join(ops, 'share-1.wrapped'), '--wrapping-key', join(ops, 'op1.key'), '--json']))).toMatchObject({ accepted: 1, state: 'sealed', progress: '1/2' });
    expect(jsonOf(await cli(['unseal', '--node', '3', '--share', join(ops, 'share-2.wrapped'), '--wrapping-key', join(ops, 'op2.key'), '--json']))).toMatchObject({ accepted: 2, state: 'unsealed', sealed: false });
    expect((await get('/v1/node')).status).toBe(200);
    // `tessera seal --node I` (the name) runs the `seal-node` command.
    expect(jsonOf(await cli(['seal', '--node', '3', '--json']))).toMatchObject({ node: 3, state: 'sealed', sealed: true });
    expect((await get('/v1/node')).status).toBe(503);
    const again = await cli(['unseal', 'init', '--node', '3', '--threshold', '2', '--operators', '3', '--out', ops]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/ALREADY_EXISTS.*already initialised/);
  }, 180_000);

  it('the KEK and the shares are in no file of the data dir and in no log', async () => {
    const shares = await Promise.all([1, 2, 3].map(plainShare));
    const kek = await combine([shares[0]!, shares[2]!]);
    const needles: [string, Buffer][] = [];
    for (const [what, bytes] of [['the KEK', kek], ...shares.map((s, i) => [`share ${i + 1}`, s] as const)] as const) {
      needles.push([`${what} (raw)`, Buffer.from(bytes)], [`${what} (hex)`, Buffer.from(toHex(bytes))], [`${what} (base64)`, Buffer.from(Buffer.from(bytes).toString('base64'))]);
    }
    const cfg = JSON.parse(readFileSync(scripts.get(SEALED)![1], 'utf8'));
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) (e.isDirectory() ? walk(join(d, e.name)) : files.push(join(d, e.name)));
    };
    walk(cfg.dataDir);
    walk(join(dir, 'logs'));
    expect(files.some((f) => f.endsWith('unseal.json'))).toBe(true);
    expect(files.some((f) => f.includes('leveldb'))).toBe(true);
    for (const f of files) {
      const content = readFileSync(f);
      for (const [what, needle] of needles) expect(content.includes(needle), `${what} in ${f}`).toBe(false);
    }
    expect(statSync(join(cfg.dataDir, 'unseal.json')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((f) => f.startsWith(`node-${SEALED}.kek`))).toEqual([]);
  });

  // ---- KEK rotation in place (issue 15 item 2; node/store/kek-unseal.ts prepareUnsealRotation, shamirRotationSteps)
  const readUnsealJson = () => JSON.parse(readFileSync(join(JSON.parse(readFileSync(scripts.get(SEALED)![1], 'utf8')).dataDir, 'unseal.json'), 'utf8')) as { keyCheckValue: string; checkValues: string[] };
  const nextFile = () => join(JSON.parse(readFileSync(scripts.get(SEALED)![1], 'utf8')).dataDir, 'unseal-next.json');
  const restartSealed = async (env: Record<string, string> = {}) => {
    await stop(SEALED);
    start(SEALED, env);
    await waitFor('node 3 back, sealed', async () => (await unseal.status()).state === 'sealed');
  };
  const signsWithNode3 = async (label: string) => {
    await allReady();
    const { signature } = await sdkCluster().sign({ keyId: 'unsealed-ed', message: new TextEncoder().encode(label), players: [1, SEALED] });
    expect(signature).toMatch(/^[0-9a-f]{128}$/);
  };
  /** Submit shares (a share file's index and its plain bytes) until the node unseals. */
  const unsealWith = async (shares: { index: number; share: Uint8Array }[]) => {
    for (const { index, share } of shares) {
      const r = await post('/v1/unseal', { shareIndex: index, share: toHex(share) });
      expect(r.status, JSON.stringify(r.json)).toBe(200);
    }
    return unseal.waitFor('unsealed');
  };
  const oldShares = async () => [{ index: 1, share: await plainShare(1) }, { index: 2, share: await plainShare(2) }];
  let rotatedShares: { index: number; share: Uint8Array }[];

  it('tessera kek rotate --out DIR: new shares (0600) for a shamir-unseal node; after a restart the old shares are refused by name and the new ones unseal; keys sign', async () => {
    const env = { TESSERA_CLUSTER: join(dir, 'cluster.json') };
    const cli = (args: string[]) => tessera(args, env, 90_000);
    await unsealWith(await oldShares());
    const before = readUnsealJson();
    // A shamir-unseal node needs --out; a file-KEK node refuses the shamir options: usage errors (exit 2).
    const noOut = await cli(['kek', 'rotate', '--node', '3']);
    expect(noOut.code).toBe(2);
    expect(noOut.stderr).toMatch(/shamir-unseal node.*give --out DIR/);
    const fileNode = await cli(['kek', 'rotate', '--node', '1', '--out', join(dir, 'nowhere')]);
    expect(fileNode.code).toBe(2);
    expect(fileNode.stderr).toMatch(/--out is for shamir-unseal nodes only; node 1 keeps its KEK in file/);
    // Phase 2 alone (the route, or --finish), without a prepare, says what to run; --finish makes no shares.
    expect((await post('/v1/admin/kek/rotate', {})).json).toMatchObject({ code: 'BAD_STATE', message: expect.stringContaining('run prepare first') });
    const finishUnprepared = await cli(['kek', 'rotate', '--node', '3', '--finish']);
    expect(finishUnprepared.code).toBe(1);
    expect(finishUnprepared.stderr).toMatch(/BAD_STATE.*run prepare first/);
    expect((await cli(['kek', 'rotate', '--node', '3', '--finish', '--out', join(dir, 'nowhere')])).stderr).toMatch(/--finish makes no new shares: it takes no --out/);

    const out = join(dir, 'rotated-shares');
    mkdirSync(out, { mode: 0o700 });
    const r = jsonOf(await cli(['kek', 'rotate', '--node', '3', '--out', out, '--json']));
    expect(r).toMatchObject({ node: 3, from: before.keyCheckValue, resumed: false, shareFiles: [1, 2, 3].map((i) => join(out, `share-${i}.json`)) });
    expect(r.to).not.toBe(before.keyCheckValue);
    expect(r.moved).toBeGreaterThan(0);
    for (const f of r.shareFiles as string[]) expect(statSync(f).mode & 0o777).toBe(0o600);
    const files = (r.shareFiles as string[]).map((f) => JSON.parse(readFileSync(f, 'utf8')) as UnsealShareFile);
    expect(files.every((f) => f.keyCheckValue === r.to && f.node === SEALED && f.threshold === 2 && f.operators === 3)).toBe(true);
    rotatedShares = await Promise.all(files.map(async (f) => ({ index: f.shareIndex, share: await openUnsealShare(f) })));
    expect(readUnsealJson().keyCheckValue).toBe(r.to);
    expect(readdirSync(join(nextFile(), '..')).includes('unseal-next.json')).toBe(false);
    expect(await unseal.status()).toMatchObject({ state: 'unsealed', keyCheckValue: r.to });
    await signsWithNode3('after an in-place KEK rotation');
    // Audited: the prepare and the rotation.
    const entries = ((await get('/v1/admin/audit')).json as { entries: string[] }).entries.map((e) => JSON.parse(e) as { operation: string; outcome: string });
    expect(entries.filter((e) => e.operation === 'kek.rotate-prepare').map((e) => e.outcome)).toEqual(expect.arrayContaining(['ok']));
    expect(entries.filter((e) => e.operation === 'kek.rotate').map((e) => e.outcome)).toEqual(expect.arrayContaining(['ok']));

    await restartSealed();
    const refused = await post('/v1/unseal', { shareIndex: 1, share: toHex(await plainShare(1)) });
    expect(refused.status).toBe(400);
    expect(refused.json.message).toMatch(/^share 1 does not match its check value/);
    await unsealWith([rotatedShares[1]!, rotatedShares[2]!]);
    await signsWithNode3('unsealed by the new shares');
  }, 180_000);

  it('a rotation killed midway: the node restarts sealed, the OLD shares unseal it and it finishes the rotation at start; then only the new shares unseal it; the new KEK is in no data file', async () => {
    // Node 3 armed to die halfway through re-wrapping its records.
    await restartSealed({ TESSERA_FAULT_POINTS: 'kek-rotate-midway' });
    await unsealWith([rotatedShares[0]!, rotatedShares[2]!]);
    const from = readUnsealJson().keyCheckValue;
    // Phase 1 through the SDK, the new shares sealed to the operators' keys.
    const prepared = await unseal.prepareKekRotation({ operatorKeys: operators.map((o) => toHex(o.publicKey)) });
    expect(prepared).toMatchObject({ node: SEALED, threshold: 2, operators: 3, from, resplit: false });
    expect(prepared.shares.every((x) => x.wrapped && x.share === undefined)).toBe(true);
    const newFiles = unsealShareFiles(prepared);
    const newShares = await Promise.all(newFiles.map(async (f, k) => ({ index: f.shareIndex, share: await openUnsealShare(f, operators[k]) })));
    // Phase 2 dies midway (SIGKILL): the request fails with the process.
    const died = await new NodeClient({ url: node3().url, apiKey: node3().apiKey, index: SEALED, timeoutMs: 60_000 }).rotateKek().catch((e: Error) => e);
    expect(died).toBeInstanceOf(Error);
    await waitFor('node 3 killed', async () => children.get(SEALED)!.exitCode !== null || children.get(SEALED)!.signalCode !== null);
    expect(readUnsealJson().keyCheckValue).toBe(from); // unseal.json: still the old shares'
    expect(JSON.parse(readFileSync(nextFile(), 'utf8'))).toMatchObject({ keyCheckValue: prepared.keyCheckValue, wrappedUnder: from, rotationBegun: true });

    // The new KEK (rebuilt here from the new shares) is in no data file: unseal-next.json holds it only wrapped.
    const newKek = await combine([newShares[0]!.share, newShares[1]!.share]);
    const dataDir = JSON.parse(readFileSync(scripts.get(SEALED)![1], 'utf8')).dataDir as string;
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) (e.isDirectory() ? walk(join(d, e.name)) : files.push(join(d, e.name)));
    };
    walk(dataDir);
    walk(join(dir, 'logs'));
    for (const f of files) {
      const content = readFileSync(f);
      for (const needle of [Buffer.from(newKek), Buffer.from(toHex(newKek)), Buffer.from(Buffer.from(newKek).toString('base64'))]) expect(content.includes(needle), `the new KEK in ${f}`).toBe(false);
    }

    // Restarted unarmed: sealed; the OLD shares (the previous rotation's) unseal it, and it finishes the rotation first.
    start(SEALED);
    await waitFor('node 3 back, sealed', async () => (await unseal.status()).state === 'sealed');
    await unsealWith([rotatedShares[0]!, rotatedShares[1]!]);
    await waitFor('the finished rotation in the log', async () => /finished an interrupted KEK rotation; the old KEK is destroyed/.test(readFileSync(join(dir, 'logs', `node-${SEALED}.log`), 'utf8')));
    expect(readUnsealJson().keyCheckValue).toBe(prepared.keyCheckValue);
    expect(readdirSync(dataDir).includes('unseal-next.json')).toBe(false);
    await signsWithNode3('after a rotation finished at start');

    // Restarted again: the old shares are refused, the new (wrapped) ones unseal it.
    await restartSealed();
    const refused = await post('/v1/unseal', { shareIndex: 1, share: toHex(rotatedShares[0]!.share) });
    expect(refused.json.message).toMatch(/^share 1 does not match its check value/);
    await unseal.unseal(newFiles[0]!, operators[0]);
    await unseal.unseal(newFiles[2]!, operators[2]);
    expect(await unseal.waitFor('unsealed')).toMatchObject({ keyCheckValue: prepared.keyCheckValue });
    await signsWithNode3('unsealed by the shares of the finished rotation');
  }, 240_000);
});

describe('a lone shamir-unseal node initialised with plain shares by the CLI', () => {
  let dir: string;
  let child: ChildProcess | undefined;
  let cfgPath: string;
  let node: { index: number; url: string; apiKey: string };
  const startNode = () => {
    const log = createWriteStream(join(dir, 'logs', 'node-1.log'), { flags: 'a', mode: 0o600 });
    child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'node/main.ts'), '--config', cfgPath], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TESSERA_PARENT_PID: String(process.pid) },
    });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    child.once('close', () => log.end());
  };
  const stopNode = () =>
    new Promise<void>((res) => {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null || c.signalCode !== null) return res();
      c.once('exit', () => res());
      c.kill('SIGTERM');
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-unseal-plain-'));
    // Two nodes prepared (a membership has at least two); only node 1 runs, without its coordinator.
    const prepared = await prepareDev({ nodes: 2, threshold: 2, dataDir: dir, port: 0, logLevel: 'info', out: () => {} });
    node = prepared.cluster.nodes[0]!;
    cfgPath = prepared.nodeConfigs[0]!;
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    rmSync(cfg.dataDir, { recursive: true, force: true });
    unlinkSync(cfg.kekFile);
    delete cfg.kekFile;
    cfg.kekProvider = { kind: 'shamir-unseal' };
    writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
    startNode();
  }, 60_000);

  afterAll(async () => {
    await stopNode();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('init writes plain share files (0600); an unseal whose node cannot start (membership without its identity) stays sealed and says why; with the membership fixed, the CLI unseals it', async () => {
    const client = new UnsealClient({ url: node.url, apiKey: node.apiKey, index: 1, timeoutMs: 60_000 });
    await client.waitFor('uninitialized');
    const env = { TESSERA_CLUSTER: join(dir, 'cluster.json') };
    const cli = (args: string[]) => tessera(args, env, 90_000);
    const out = join(dir, 'shares');
    mkdirSync(out, { mode: 0o700 });
    const usage = await cli(['unseal', 'init', '--node', '1', '--threshold', '3', '--operators', '2', '--out', out]);
    expect(usage.code).toBe(2);
    const init = jsonOf(await cli(['unseal', 'init', '--node', '1', '--threshold', '2', '--operators', '3', '--out', out, '--json']));
    expect(init).toMatchObject({ node: 1, threshold: 2, operators: 3, sealedToOperatorKeys: false, files: [1, 2, 3].map((i) => join(out, `share-${i}.json`)) });
    for (const f of init.files as string[]) {
      expect(statSync(f).mode & 0o777).toBe(0o600);
      expect(JSON.parse(readFileSync(f, 'utf8'))).toMatchObject({ format: 'tessera-unseal-share', node: 1, share: expect.stringMatching(/^[0-9a-f]{66}$/) });
    }

    // The config still lists the identity the dev made, not the one init made: the full node refuses to start.
    await cli(['unseal', '--node', '1', '--share', join(out, 'share-1.json'), '--json']);
    const failed = await cli(['unseal', '--node', '1', '--share', join(out, 'share-3.json')]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/stayed sealed: the node did not start with the rebuilt KEK: .*does not list this node's identity/);
    expect(await client.status()).toMatchObject({ state: 'sealed', progress: 0, lastError: expect.stringContaining("does not list this node's identity") });
    expect((await fetch(`${node.url}/v1/node`, { headers: { authorization: `Bearer ${node.apiKey}` } })).status).toBe(503);

    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    cfg.membership = cfg.membership.map((m: { index: number }) => (m.index === 1 ? { ...m, identityPublicKey: init.identityPublicKey } : m));
    writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
    await stopNode();
    startNode();
    await client.waitFor('sealed');
    await cli(['unseal', '--node', '1', '--share', join(out, 'share-2.json')]);
    expect(jsonOf(await cli(['unseal', '--node', '1', '--share', join(out, 'share-3.json'), '--json']))).toMatchObject({ state: 'unsealed', progress: '2/2' });
    const info = await fetch(`${node.url}/v1/node`, { headers: { authorization: `Bearer ${node.apiKey}` } });
    expect(info.status).toBe(200);
    expect(((await info.json()) as { identityPublicKey: string }).identityPublicKey).toBe(init.identityPublicKey);
    // The failed start is in the audit log too, copied in at the unseal that worked.
    const audit = (await (await fetch(`${node.url}/v1/admin/audit`, { headers: { authorization: `Bearer ${node.apiKey}` } })).json()) as { entries: string[] };
    const reasons = audit.entries.map((e) => JSON.parse(e) as { operation: string; outcome: string; reason?: string }).filter((e) => e.operation === 'node.unseal' && e.outcome === 'failed');
    expect(reasons.map((e) => e.reason)).toEqual([expect.stringContaining('did not start with the rebuilt KEK')]);
  }, 180_000);
});
