/**
 * The installable package (issue 11, item 1): what `npm pack` ships, that an application imports it
 * by name and type-checks against its .d.ts in the strictest mode, and that the CLI, the node and the
 * coordinator run from the compiled JavaScript with no TypeScript loader.
 *
 * The tarball is unpacked into a temp application's node_modules, and the package's dependencies are
 * linked there from this repo's node_modules (no registry needed); test/integration/example-app.test.ts
 * does the full `npm install` of the tarball.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PACKAGE, ROOT, packInto, packedFileList, run } from '../helpers/package-tarball.js';

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const TSX = join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');

let dir: string;
let app: string;
let installed: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-pkg-'));
  const tarball = await packInto(dir);
  app = join(dir, 'app');
  installed = join(app, 'node_modules', PACKAGE.name);
  mkdirSync(installed, { recursive: true });
  const untar = await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1'], { cwd: dir });
  if (untar.code !== 0) throw new Error(`tar failed: ${untar.stderr}`);
  // The package's dependencies, as npm would install them next to it (from this repo's node_modules).
  for (const dep of [...Object.keys(PACKAGE.dependencies), '@types/node']) {
    const link = join(app, 'node_modules', dep);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', dep), link, 'dir');
  }
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'tessera-package-probe', private: true, type: 'module' }));
}, 240_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('ships only dist/, README.md, LICENSE and package.json (no sources, tests, bench or secrets)', async () => {
    const files = await packedFileList();
    const outside = files.filter((f) => !f.startsWith('dist/') && !['README.md', 'LICENSE', 'package.json'].includes(f));
    expect(outside).toEqual([]);
    for (const f of ['README.md', 'LICENSE', 'package.json', 'dist/sdk/index.js', 'dist/sdk/index.d.ts', 'dist/sdk/bin/tessera.js', 'dist/node/main.js', 'dist/coordinator/main.js']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), 'TypeScript sources').toEqual([]);
    expect(files.filter((f) => /^dist\/(test|bench|examples)\//.test(f) || f.endsWith('.tsbuildinfo'))).toEqual([]);
  });

  it('the packed package.json names the free registry name, the SDK export and a bin in dist/', () => {
    const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as Record<string, any>;
    expect(pkg.name).toBe('tessera-threshold');
    expect(pkg.exports['.']).toEqual({ types: './dist/sdk/index.d.ts', import: './dist/sdk/index.js' });
    expect(pkg.bin).toEqual({ tessera: './dist/sdk/bin/tessera.js' });
    expect(pkg.dependencies.tsx, 'tsx is not needed at run time').toBeUndefined();
    // A file: dependency would point outside the tarball and break every install elsewhere.
    expect(Object.values(pkg.dependencies as Record<string, string>).filter((v) => v.startsWith('file:'))).toEqual([]);
  });
});

describe('an application uses the installed package', () => {
  it('imports the SDK by name with plain node', async () => {
    const probe = `
      import * as sdk from '${PACKAGE.name}';
      const names = ['Cluster', 'NodeClient', 'TesseraClientError', 'loadCluster', 'readClusterFile', 'formatPublicKey',
        'privateKeyEncodings', 'sealToPublicKey', 'encapsulateToPublicKey', 'encodeSealedMessage', 'decodeSealedMessage',
        'combineSignatureShares', 'splitAndWrap', 'unwrapAndCombine', 'readWrappingKeyPair'];
      console.log(JSON.stringify(Object.fromEntries(names.map((n) => [n, typeof sdk[n]]))));
      const pkg = (await import('${PACKAGE.name}/package.json', { with: { type: 'json' } })).default;
      console.log(pkg.version);`;
    const r = await run(process.execPath, ['--input-type=module', '-e', probe], { cwd: app });
    expect(r.stderr).toBe('');
    const [types, version] = r.stdout.trim().split('\n');
    expect(Object.entries(JSON.parse(types!) as Record<string, string>).filter(([, t]) => t !== 'function')).toEqual([]);
    expect(version).toBe(PACKAGE.version);
  });

  it('type-checks against dist/*.d.ts with --strict --exactOptionalPropertyTypes --noUncheckedIndexedAccess (our sources are not compiled)', async () => {
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          exactOptionalPropertyTypes: true,
          noUncheckedIndexedAccess: true,
          noEmit: true,
          types: ['node'],
          lib: ['ES2022'],
        },
        files: ['app.ts'],
      }),
    );
    writeFileSync(
      join(app, 'app.ts'),
      `import { loadCluster, formatPublicKey, sealToPublicKey, TesseraClientError, type Cluster } from '${PACKAGE.name}';
export async function demo(path: string): Promise<string> {
  const cluster: Cluster = loadCluster(path, { timeoutMs: 5000 });
  const key = await cluster.keygen({ suite: 'hpke-x25519', keyId: 'inbox' });
  const pem = formatPublicKey(key.suite, key.publicKey, 'pem');
  const sealed = await sealToPublicKey(key.suite, key.publicKey, new Uint8Array([1, 2, 3]));
  const opened = await cluster.open('inbox', sealed.enc, sealed.ciphertext);
  if (!(opened instanceof Uint8Array)) throw new TesseraClientError('BAD_INPUT', 'unexpected');
  return typeof pem === 'string' ? pem : JSON.stringify(pem);
}
`,
    );
    const r = await run(process.execPath, [TSC, '-p', app, '--listFilesOnly'], { cwd: app });
    const listed = r.stdout.split('\n').filter((f) => f.includes(`node_modules/${PACKAGE.name}/`));
    expect(listed.length).toBeGreaterThan(0);
    expect(listed.filter((f) => !f.endsWith('.d.ts')), 'only declaration files of the package are read').toEqual([]);
    const check = await run(process.execPath, [TSC, '-p', app], { cwd: app });
    expect(check.stdout + check.stderr).toBe('');
    expect(check.code).toBe(0);
  }, 120_000);

  it('`tessera --version` runs from dist/ (no TypeScript loader)', async () => {
    const r = await run(process.execPath, [join(installed, PACKAGE.bin.tessera!), '--version'], { cwd: app });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toContain(PACKAGE.version);
    expect(r.code).toBe(0);
  });
});

describe('the node and the coordinator processes', () => {
  const entries = [
    ['node', 'dist/node/main.js', 'node/main.ts'],
    ['coordinator', 'dist/coordinator/main.js', 'coordinator/main.ts'],
  ] as const;
  for (const [name, compiled, source] of entries) {
    it(`${name}: --help prints the usage and exits 0, compiled and from source`, async () => {
      for (const args of [[join(installed, compiled), '--help'], [TSX, join(ROOT, source), '--help']]) {
        const r = await run(process.execPath, args, { cwd: dir });
        expect(r.stderr, args.join(' ')).toBe('');
        expect(r.stdout).toMatch(/^usage: /);
        expect(r.stdout).toContain('--config FILE');
        expect(r.code).toBe(0);
      }
    });

    it(`${name}: a bad option exits 2 with one line, no stack trace`, async () => {
      const r = await run(process.execPath, [join(installed, compiled), '--no-such-option'], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('--no-such-option');
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }
});
