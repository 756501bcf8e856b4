/**
 * The package's version, read from its package.json. The file is found by walking up from this
 * module's own location, so the same code works from the source (runtime/package-info.ts under tsx) and
 * from the build (dist/runtime/package-info.js): a package.json with no name and version on the way (e.g. a
 * `{"type": "module"}` marker in dist/) is skipped.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: { name: string; version: string } | undefined;

/** The nearest package.json above `from` that names a package and its version. */
export function findPackageJson(from: string = dirname(fileURLToPath(import.meta.url))): { path: string; name: string; version: string } {
  for (let dir = from; ; dir = dirname(dir)) {
    const path = join(dir, 'package.json');
    let text: string | undefined;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      /* none here: keep walking */
    }
    if (text !== undefined) {
      try {
        const pkg = JSON.parse(text) as { name?: unknown; version?: unknown };
        if (typeof pkg.name === 'string' && typeof pkg.version === 'string') return { path, name: pkg.name, version: pkg.version };
      } catch {
        /* not JSON: not ours, keep walking */
      }
    }
    if (dirname(dir) === dir) throw new Error(`no package.json with a name and version above ${from}`);
  }
}

/** The package name and version (read once). */
export function packageInfo(): { name: string; version: string } {
  cached ??= (({ name, version }) => ({ name, version }))(findPackageJson());
  return cached;
}

export function packageVersion(): string {
  return packageInfo().version;
}
