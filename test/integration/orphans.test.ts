/**
 * If `tessera dev` is killed without a chance to stop its children (SIGKILL, a crashed test worker),
 * the coordinator and nodes notice their parent is gone (runtime/parent-watch.ts) and exit on their own.
 */
import { describe, expect, it } from 'vitest';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

function processesMentioning(text: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(text) && !l.includes('ps -eo'));
}

describe('tessera dev children', () => {
  it('exit by themselves when tessera dev is killed with SIGKILL', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-orphans-'));
    try {
      const dev = spawn(process.execPath, ['--import', 'tsx', 'sdk/main.ts', 'dev', '--data', dir, '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      await new Promise<void>((res, rej) => {
        const t = setTimeout(() => rej(new Error('tessera dev did not print ready')), 90_000);
        dev.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('ready')) {
            clearTimeout(t);
            res();
          }
        });
      });
      expect(processesMentioning(dir).length).toBeGreaterThanOrEqual(4);
      dev.kill('SIGKILL');
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && processesMentioning(dir).length > 0) await new Promise((r) => setTimeout(r, 250));
      expect(processesMentioning(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
