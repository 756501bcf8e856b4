/**
 * Write docs/cli.md from the CLI's command table (sdk/cli/table.ts through sdk/cli/help.ts
 * renderMarkdown), the same table `tessera --help` prints. `--check` writes nothing and exits 1 if the
 * file differs (test/integration/cli-help.test.ts makes the same comparison in `npm test`).
 *
 *   npx tsx scripts/gen-cli-docs.ts [--check]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderMarkdown } from '../sdk/cli/help.js';

const CLI_DOCS_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '../docs/cli.md');

const want = renderMarkdown();
if (process.argv.includes('--check')) {
  let have = '';
  try {
    have = readFileSync(CLI_DOCS_PATH, 'utf8');
  } catch {
    /* missing: differs */
  }
  if (have !== want) {
    process.stderr.write(`${CLI_DOCS_PATH} differs from the command table: run npx tsx scripts/gen-cli-docs.ts\n`);
    process.exitCode = 1;
  }
} else {
  writeFileSync(CLI_DOCS_PATH, want);
  process.stdout.write(`wrote ${CLI_DOCS_PATH}\n`);
}
