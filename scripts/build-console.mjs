#!/usr/bin/env node
/**
 * Build the operator console (node/console/) into dist/console/: one bundled script (console.js, from
 * node/console/app.ts with esbuild), the page (index.html) and its style sheet (console.css), which the
 * node serves at /console (node/http/console.ts finds them under its package root in both layouts).
 *
 * The bundle reuses core/audit-verify.ts as is. That module verifies checkpoint signatures through
 * core/identity.ts, which loads liboqs with node:fs: every import of core/identity.js is swapped for
 * node/console/identity-browser.ts (same exports, @noble/post-quantum's ML-DSA-65). Anything else that
 * reaches for a Node built-in fails the build instead of shipping a broken page.
 *
 * Run by `npm run build`; the console's test runs it before starting its cluster. Takes well under a
 * second. Usage: node scripts/build-console.mjs [--out DIR]
 */
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'node', 'console');
const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
if (args.some((a, i) => a !== '--out' && i !== outIndex + 1) || (outIndex >= 0 && !args[outIndex + 1])) {
  process.stderr.write('usage: node scripts/build-console.mjs [--out DIR]\n');
  process.exit(2);
}
const out = outIndex >= 0 ? resolve(args[outIndex + 1]) : join(root, 'dist', 'console');
const identityBrowser = join(source, 'identity-browser.ts');

/** core/identity.js -> node/console/identity-browser.ts; Node built-ins refused. */
const browserOnly = {
  name: 'tessera-console-browser',
  setup(b) {
    b.onResolve({ filter: /(^|\/)identity\.js$/ }, (a) => {
      const target = resolve(a.resolveDir, a.path).replace(/\.js$/, '.ts');
      return target === join(root, 'core', 'identity.ts') ? { path: identityBrowser } : undefined;
    });
    b.onResolve({ filter: /^node:|^(fs|path|url|module|crypto|os|child_process)$/ }, (a) => ({
      errors: [{ text: `the console bundle cannot use the Node built-in ${a.path} (imported by ${a.importer})` }],
    }));
  },
};

const started = Date.now();
mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: [join(source, 'app.ts')],
  outfile: join(out, 'console.js'),
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  legalComments: 'none',
  charset: 'utf8',
  sourcemap: false,
  logLevel: 'warning',
  metafile: true,
  plugins: [browserOnly],
});
for (const name of ['index.html', 'console.css']) copyFileSync(join(source, name), join(out, name));
const size = statSync(join(out, 'console.js')).size;
const swapped = Object.keys(result.metafile.inputs).some((p) => resolve(root, p) === identityBrowser);
if (!swapped) {
  process.stderr.write('build-console: core/identity.js was not swapped for node/console/identity-browser.ts\n');
  process.exit(1);
}
process.stdout.write(`console built into ${out} (console.js ${(size / 1024).toFixed(0)} KiB) in ${Date.now() - started} ms\n`);
