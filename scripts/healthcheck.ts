/**
 * Container health check (docker-compose.yml) and readiness probe (compose-topology test):
 *   node --import tsx scripts/healthcheck.ts https://127.0.0.1:7701/ready /tessera/shared/ca.pem
 * exits 0 when the URL answers 200, 1 otherwise. With a CA file, https trusts only that CA. Only
 * node: modules, so it starts fast.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** GET `url`; resolves with the status code, or 0 when nothing (valid) answered in time. */
export function probe(url: string, ca?: string | Buffer, timeoutMs = 3000): Promise<number> {
  const target = new URL(url);
  const lib = target.protocol === 'https:' ? https : http;
  return new Promise((res) => {
    const req = lib.get(target, { timeout: timeoutMs, ...(target.protocol === 'https:' && ca ? { ca } : {}) }, (r) => {
      r.resume();
      res(r.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => res(0));
  });
}

async function main(): Promise<void> {
  const [url, caFile] = process.argv.slice(2);
  if (!url) {
    process.stderr.write('usage: healthcheck.ts URL [CA_FILE]\n');
    process.exit(2);
  }
  const status = await probe(url, caFile ? readFileSync(caFile) : undefined);
  if (status !== 200) process.stderr.write(`healthcheck: ${url} answered ${status || 'nothing'}\n`);
  process.exit(status === 200 ? 0 : 1);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) void main();
