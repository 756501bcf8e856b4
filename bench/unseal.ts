/**
 * Unseal time (issue 15, the shamir-unseal KEK provider; node/sealed.ts): a real node process with a
 * 3-of-5 split KEK, sealed, is handed its 3 shares (sdk/unseal.ts UnsealClient, one POST each) until it
 * serves: GET /v1/node answers 200 from the full node, which opened its store with the rebuilt KEK and
 * took over the port from the sealed front end. Also the seal back (POST /v1/seal until the front end
 * answers sealed). The node runs alone (its coordinator is not started): unsealing needs none, and
 * /v1/node answers without one. Its store holds no keys, so the figures are the fixed cost (the
 * integrity check at start grows with the records).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { prepareDev } from '../sdk/dev.js';
import { UnsealClient, unsealShareFiles, type UnsealShareFile } from '../sdk/unseal.js';
import { summarize, type Section } from './stats.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TITLE = 'Unseal: a sealed node given its 3-of-5 operator shares until it serves';

export async function runUnseal(o: { quick: boolean; emit: (s: Section) => void; log: (s: string) => void }): Promise<Section[]> {
  const iterations = o.quick ? 3 : 20;
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-unseal-'));
  let child: ChildProcess | undefined;
  const start = (config: string) => {
    child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'node/main.ts'), '--config', config], {
      cwd: ROOT,
      stdio: 'ignore',
      env: { ...process.env, TESSERA_PARENT_PID: String(process.pid) },
    });
  };
  const stop = () =>
    new Promise<void>((res) => {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null || c.signalCode !== null) return res();
      c.once('exit', () => res());
      c.kill('SIGTERM');
    });
  try {
    o.log('unseal: preparing a node with a shamir-unseal KEK');
    const prepared = await prepareDev({ nodes: 2, threshold: 2, dataDir: dir, port: 0, logLevel: 'warn', out: () => {} });
    const node = prepared.cluster.nodes[0]!;
    const cfgPath = prepared.nodeConfigs[0]!;
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    rmSync(cfg.dataDir, { recursive: true, force: true });
    unlinkSync(cfg.kekFile);
    delete cfg.kekFile;
    cfg.kekProvider = { kind: 'shamir-unseal' };
    writeFileSync(cfgPath, JSON.stringify(cfg));
    const client = new UnsealClient({ url: node.url, apiKey: node.apiKey, index: node.index, timeoutMs: 60_000 });
    start(cfgPath);
    await client.waitFor('uninitialized');
    const init = await client.init({ threshold: 3, operators: 5 });
    const files: UnsealShareFile[] = unsealShareFiles(init);
    // The node's new identity into its membership, then a restart: it comes up sealed.
    cfg.membership = cfg.membership.map((m: { index: number }) => (m.index === node.index ? { ...m, identityPublicKey: init.identityPublicKey } : m));
    writeFileSync(cfgPath, JSON.stringify(cfg));
    await stop();
    start(cfgPath);
    await client.waitFor('sealed');

    const unsealMs: number[] = [];
    const sealMs: number[] = [];
    for (let i = 0; i < iterations + 1; i++) {
      // Three different operators each time (shares i, i+1, i+2 of 5).
      const chosen = [0, 1, 2].map((k) => files[(i + k) % 5]!);
      const t0 = performance.now();
      for (const f of chosen) await client.unseal(f);
      await client.waitFor('unsealed');
      const t1 = performance.now();
      await client.seal();
      await client.waitFor('sealed');
      const t2 = performance.now();
      if (i === 0) continue; // warm-up: the first unseal loads the node's modules
      unsealMs.push(t1 - t0);
      sealMs.push(t2 - t1);
    }
    const s: Section = {
      title: TITLE,
      note: 'one node process, its store empty; the time a sealed node takes from the first share to serving, and from seal to the sealed front end',
      rows: [summarize('unseal: 3 shares submitted until the full node serves', unsealMs), summarize('seal: POST /v1/seal until the sealed front end answers', sealMs)],
    };
    o.emit(s);
    return [s];
  } finally {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
