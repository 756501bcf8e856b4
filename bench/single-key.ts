/**
 * The single-key baseline's client side: start bench/single-key-server.ts as its own process and sign
 * through it with the SDK's own code path (sdk/client.ts NodeClient.join: the operator's policy hook,
 * then sdk/http.ts requestJson with the API key, TLS pinned when used), then verify the signature as
 * Cluster.sign does (core/suites.ts getSigningSuite(...).verify).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { fromHex, toHex } from '../core/bytes.js';
import { getSigningSuite } from '../core/suites.js';
import type { SignResponse } from '../contract/http.js';
import { NodeClient, TesseraClientError, newSessionId } from '../sdk/client.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface SingleKeySigner {
  /** Sign one message end to end (HTTP round trip + signature check); rejects on any failure. */
  sign(message: Uint8Array): Promise<SignResponse>;
  /** The server process id (for CPU per signature). */
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

/** Start the server (in `dir`, an empty temp dir) with TLS if `tls` is given (the same certificates a node uses). */
export async function startSingleKeySigner(dir: string, tls?: { certFile: string; keyFile: string; caFile: string }): Promise<SingleKeySigner> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'single-key-server.ts')], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      TESSERA_PARENT_PID: String(process.pid),
      TESSERA_BENCH_DIR: dir,
      ...(tls ? { TESSERA_BENCH_TLS_CERT: tls.certFile, TESSERA_BENCH_TLS_KEY: tls.keyFile } : {}),
    },
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-4000)));
  const first = await new Promise<string>((res, rej) => {
    const lines = createInterface({ input: child.stdout! });
    const t = setTimeout(() => rej(new Error(`single-key server did not start in 60 s: ${stderr}`)), 60_000);
    lines.once('line', (l) => (clearTimeout(t), res(l)));
    child.once('exit', (code) => (clearTimeout(t), rej(new Error(`single-key server exited (${code}): ${stderr}`))));
  });
  const info = JSON.parse(first) as { url: string; apiKey: string; keyId: string; publicKey: string };
  const client = new NodeClient({ url: info.url, apiKey: info.apiKey, index: 1, ...(tls ? { ca: readFileSync(tls.caFile, 'utf8') } : {}) });
  const suite = getSigningSuite('ed25519');
  const publicKey = fromHex(info.publicKey, 'publicKey');
  return {
    pid: child.pid,
    async sign(message) {
      const hex = toHex(message);
      // players: the route's schema (contract/http.ts) asks for 2 or more; the single-key server ignores them.
      const r = await client.join<SignResponse>({ operation: 'sign', sessionId: newSessionId(), keyId: info.keyId, message: hex, players: [1, 2] });
      if (!suite.verify(fromHex(r.signature, 'signature'), message, publicKey)) {
        throw new TesseraClientError('VERIFICATION_FAILED', 'the single-key signature does not verify');
      }
      return r;
    },
    stop() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise<void>((res) => {
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => (clearTimeout(t), res()));
        child.kill('SIGTERM');
      });
    },
  };
}
