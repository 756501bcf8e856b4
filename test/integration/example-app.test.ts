/**
 * examples/app (issue 11, item 1): a separate application that installs the packed tarball and, with
 * plain `node`, loads cluster.json, makes keys, signs (verified with node:crypto), seals to an
 * hpke-x25519 key with the SDK's helper and opens through threshold decapsulation.
 *
 * The app is copied into a temp dir outside the repo (so nothing resolves from the repo's
 * node_modules), its dependency is pointed at the tarball `npm pack` just made, and `npm install`
 * installs it from npm's local cache (--offline; if the cache lacks a package, from the registry with
 * --prefer-offline). Then a dev cluster (test/helpers/cluster.ts) and `node index.js` against it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { NPM, NPM_QUIET, PACKAGE, ROOT, packInto, run } from '../helpers/package-tarball.js';

const EXAMPLE = join(ROOT, 'examples', 'app');

let dir: string;
let app: string;
let tc: TestCluster | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-example-'));
  const tarball = await packInto(dir);
  app = join(dir, 'app');
  mkdirSync(app);
  for (const f of ['index.js', 'package.json']) copyFileSync(join(EXAMPLE, f), join(app, f));
  const pkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  expect(Object.keys(pkg.dependencies)).toEqual([PACKAGE.name]);
  pkg.dependencies[PACKAGE.name] = `file:${tarball}`;
  writeFileSync(join(app, 'package.json'), JSON.stringify(pkg, null, 2));
  let install = await run(NPM, ['install', '--offline', ...NPM_QUIET], { cwd: app });
  if (install.code !== 0) install = await run(NPM, ['install', '--prefer-offline', ...NPM_QUIET], { cwd: app });
  if (install.code !== 0) throw new Error(`npm install of the packed tarball failed (exit ${install.code}):\n${install.stderr.slice(-4000)}`);
  tc = await startTestCluster({ nodes: 3, threshold: 2 });
}, 600_000);

afterAll(async () => {
  await tc?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('examples/app with plain node', () => {
  it('installed the package from the tarball, with no TypeScript loader among its dependencies', () => {
    const installed = JSON.parse(readFileSync(join(app, 'node_modules', PACKAGE.name, 'package.json'), 'utf8')) as { version: string };
    expect(installed.version).toBe(PACKAGE.version);
    expect(existsSync(join(app, 'node_modules', 'tsx')), 'tsx is a dev dependency only').toBe(false);
    expect(existsSync(join(app, 'node_modules', '.bin', 'tessera')), 'the tessera command').toBe(true);
  });

  it('loads cluster.json, makes keys, signs and verifies with node:crypto, seals and opens through threshold decapsulation', async () => {
    const r = await run(process.execPath, ['index.js'], { cwd: app, env: { ...process.env, TESSERA_CLUSTER: tc!.clusterFile }, timeoutMs: 240_000 });
    const explain = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}\n${r.code === 0 ? '' : tc!.logs(10)}`;
    expect(r.code, explain).toBe(0);
    expect(r.stdout, explain).toContain('cluster: 3 nodes');
    expect(r.stdout, explain).toContain('signature: verified by node:crypto (pem, spki)');
    expect(r.stdout, explain).toMatch(/opened: a sealed note [0-9a-f]{8} \(sealToPublicKey, then threshold decapsulation\)/);
    expect(r.stdout, explain).toContain('opened: cluster.seal, then cluster.open');
    expect(r.stdout.trim().split('\n').at(-1)).toBe('example app: ok');
  }, 300_000);
});
