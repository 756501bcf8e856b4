/**
 * Run the `tessera` CLI as a user does: a child process (`node --import tsx sdk/main.ts ...`).
 */
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout as bytes (for commands that write binary, e.g. `tessera seal` without --out). */
  stdoutBytes: Buffer;
}

/** Run `tessera ARGS` to completion (SIGKILLed after timeoutMs); `input` is piped to its stdin (else stdin is closed). */
export function tessera(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 60_000, input?: Uint8Array): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'sdk/main.ts', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    if (input) child.stdin!.end(input);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', rej);
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      res({ code, stdout: stdoutBytes.toString(), stderr, stdoutBytes });
    });
  });
}

/** The one JSON object a --json command printed on success (throws with stderr otherwise). */
export function jsonOf(r: CliResult): Record<string, any> {
  if (r.code !== 0) throw new Error(`tessera exited ${r.code}: ${r.stderr.trim()}`);
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  if (lines.length !== 1) throw new Error(`expected one line of JSON, got:\n${r.stdout}`);
  return JSON.parse(lines[0]!) as Record<string, any>;
}
