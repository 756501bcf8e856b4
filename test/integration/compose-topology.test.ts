/**
 * The docker-compose.yml topology as real processes: the file is parsed, and each service runs its own
 * `command` with its own `environment` (TESSERA_* variables only, no config files) — `init`
 * (scripts/compose-init.ts) first, then the coordinator and the three nodes, TLS everywhere. What
 * differs from Docker, and only that: container paths live under a temp dir, service host names are
 * localhost, ports are free local ones, 0.0.0.0 listeners bind 127.0.0.1, and the ownership hand-over
 * (TESSERA_INIT_OWNER / _CLIENT_OWNER, meant for root in a container) is skipped. A Compose file
 * secret (a host file, bind-mounted at /run/secrets/<name> into the services that list it) is the
 * file init wrote through its own bind mount of the host directory. Then one key is made and one
 * message signed through the SDK with the CA pinned from the client file init wrote.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { fromHex } from '../../core/bytes.js';
import { Cluster, NodeClient } from '../../sdk/client.js';
import type { ClusterFile } from '../../sdk/cli.js';
import { probe } from '../../scripts/healthcheck.js';
import {
  ROOT,
  commandOf,
  fromSource,
  interpolate,
  loadComposeFile,
  localizeEnv,
  mountFor,
  parseMount,
  parsePort,
  scriptOf,
  serviceEnv,
  type ComposeFile,
} from '../helpers/compose-file.js';

const compose: ComposeFile = loadComposeFile();
/** Top-level file secrets (Compose format 3.x): name -> { file: host path }. */
const composeSecrets = (compose as ComposeFile & { secrets?: Record<string, { file?: string }> }).secrets ?? {};
const secretsOf = (service: string): unknown[] => (compose.services[service] as { secrets?: unknown[] }).secrets ?? [];
const names = Object.keys(compose.services);
const nodeServices = names.filter((n) => compose.services[n]!.environment && serviceEnv(compose.services[n]!, {}).TESSERA_NODE_INDEX !== undefined);

let tmp: string;
const children = new Map<string, ChildProcess>();
const output = new Map<string, string>();

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

/** Only PATH-like basics from the runner; every TESSERA_* value comes from the compose file. */
function baseEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_')));
}

function run(service: string, env: Record<string, string>): ChildProcess {
  const [exe, ...args] = commandOf(compose.services[service]!);
  expect(exe).toBe('node');
  // The image runs dist/*.js (compiled in its build stage); here the same files from source, through tsx.
  const child = spawn(process.execPath, fromSource(args), { cwd: ROOT, env: { ...baseEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  output.set(service, '');
  const keep = (b: Buffer) => output.set(service, (output.get(service)! + b.toString('utf8')).slice(-4000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  children.set(service, child);
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((res) => child.once('exit', (code) => res(code)));
}

async function stopAll(): Promise<void> {
  await Promise.all(
    [...children.values()].map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      const t = setTimeout(() => c.kill('SIGKILL'), 5000);
      c.kill('SIGTERM');
      await exited(c);
      clearTimeout(t);
    }),
  );
}

/**
 * A host path as the local processes see it: through the bind mount (of whichever service) whose host
 * side holds it, as Docker would. A host path under no bind mount would exist on no machine.
 */
function localHostPath(hostPath: string): string {
  for (const name of names) {
    for (const v of compose.services[name]!.volumes ?? []) {
      const m = parseMount(v);
      if (!m.named && hostPath.startsWith(m.source + '/')) return join(tmp, m.target, hostPath.slice(m.source.length + 1));
    }
  }
  throw new Error(`${hostPath} is under no bind mount of any service: nothing would create it`);
}

/** The Compose secrets a service lists (short syntax): /run/secrets/<name> -> the local file. */
function secretFilesFor(service: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of secretsOf(service)) {
    expect(typeof name, `${service}: secrets use the short syntax`).toBe('string');
    const file = composeSecrets[name as string]?.file;
    expect(file, `${service}: secret ${String(name)} is declared with a file`).toBeTypeOf('string');
    out.set(`/run/secrets/${name as string}`, localHostPath(interpolate(file!, {})));
  }
  return out;
}

/** Every regular file under a directory. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : []));
}

let cluster: ClusterFile;
/** A service's environment from the compose file, made local (set up in beforeAll). */
let envFor: (service: string) => Record<string, string>;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'tessera-compose-topology-'));
  try {
    // Local ports for every port a service listens on, keyed by the port in the file — both the
    // container port (TESSERA_API_PORT / TESSERA_COORDINATOR_PORT) and the published host port.
    const ports = new Map<number, number>();
    const listen: Record<string, number> = {};
    for (const name of names) {
      const env = serviceEnv(compose.services[name]!, {});
      const port = env.TESSERA_API_PORT ?? env.TESSERA_COORDINATOR_PORT;
      if (port === undefined) continue;
      const local = await freePort();
      ports.set(Number(port), local);
      listen[name] = local;
      for (const p of compose.services[name]!.ports ?? []) {
        const m = parsePort(p);
        expect(m.containerPort, `${name} publishes the port it listens on`).toBe(Number(port));
        expect(m.hostIp, `${name} publishes on the host's loopback only`).toBe('127.0.0.1');
        ports.set(Number(m.hostPort), local);
      }
    }
    // Volumes: a bind mount's host side goes under tmp like the named volumes do.
    for (const name of names) for (const v of compose.services[name]!.volumes ?? []) mkdirSync(join(tmp, parseMount(v).target), { recursive: true });
    envFor = (name: string) => {
      // A variable naming one of the service's secrets reads the secret's file; every other path must
      // lie on a volume of the service (localizeEnv checks that).
      const raw = serviceEnv(compose.services[name]!, {});
      const secrets = secretFilesFor(name);
      const fromSecrets: Record<string, string> = {};
      for (const [k, v] of Object.entries(raw)) {
        const file = secrets.get(v);
        if (file === undefined) continue;
        fromSecrets[k] = file;
        delete raw[k];
      }
      const env = { ...localizeEnv(name, compose.services[name]!, raw, { root: tmp, ports, serviceNames: names }), ...fromSecrets };
      delete env.TESSERA_INIT_OWNER;
      delete env.TESSERA_INIT_CLIENT_OWNER;
      return env;
    };

    // init, to completion (depends_on: service_completed_successfully).
    const init = run('init', envFor('init'));
    const code = await exited(init);
    if (code !== 0) throw new Error(`init exited with ${code}: ${output.get('init')}`);

    // coordinator, then the nodes (as depends_on orders them).
    run('coordinator', envFor('coordinator'));
    for (const n of nodeServices) run(n, envFor(n));

    const clientEnv = envFor('init');
    cluster = JSON.parse(readFileSync(join(clientEnv.TESSERA_INIT_CLIENT_DIR!, 'cluster.json'), 'utf8')) as ClusterFile;
    const ca = readFileSync(join(tmp, 'tessera', 'shared', 'ca.pem'));
    const deadline = Date.now() + 90_000;
    for (const [name, port] of Object.entries(listen)) {
      for (;;) {
        const c = children.get(name)!;
        if (c.exitCode !== null || c.signalCode !== null) throw new Error(`${name} exited: ${output.get(name)}`);
        if ((await probe(`https://127.0.0.1:${port}/ready`, ca)) === 200) break;
        if (Date.now() > deadline) throw new Error(`${name} not ready in time: ${output.get(name)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } catch (e) {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}, 150_000);

afterAll(async () => {
  await stopAll();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}, 30_000);

describe('docker-compose.yml topology as processes', () => {
  it('runs one coordinator and three nodes from the compose commands', () => {
    expect(nodeServices).toHaveLength(3);
    for (const name of ['init', 'coordinator', ...nodeServices]) scriptOf(commandOf(compose.services[name]!));
    expect(cluster.nodes).toHaveLength(3);
  });

  it('init kept secrets private: KEKs, TLS keys and the client file are mode 0600', () => {
    for (let i = 1; i <= 3; i++) {
      expect(statSync(secretFilesFor(`node${i}`).get(`/run/secrets/node${i}_kek`)!).mode & 0o777).toBe(0o600);
      expect(statSync(join(tmp, 'tessera', `node-${i}`, 'tls', 'server.key')).mode & 0o777).toBe(0o600);
    }
    expect(statSync(join(tmp, 'tessera', 'coordinator', 'tls', 'server.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(tmp, 'client', 'cluster.json')).mode & 0o777).toBe(0o600);
  });

  it('init gave every node the same cluster scheduling secret, mode 0600 in its own directory, and nothing in shared/', () => {
    const secrets = [1, 2, 3].map((i) => {
      const path = join(tmp, 'tessera', `node-${i}`, 'schedule-secret');
      expect(statSync(path).mode & 0o777).toBe(0o600);
      return readFileSync(path, 'utf8').trim();
    });
    expect(secrets[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(secrets).size).toBe(1);
    for (const name of readdirSync(join(tmp, 'tessera', 'shared'))) expect(readFileSync(join(tmp, 'tessera', 'shared', name), 'utf8')).not.toContain(secrets[0]);
    for (const name of nodeServices) expect(serviceEnv(compose.services[name]!, {}).TESSERA_SCHEDULE_SECRET_FILE).toMatch(/\/schedule-secret$/);
  });

  it('keygen and one signature through the SDK over TLS with the pinned CA', async () => {
    for (const n of cluster.nodes) expect(n.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const sdk = new Cluster(
      [...cluster.nodes].sort((a, b) => a.index - b.index).map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, ca: n.ca, timeoutMs: 30_000 })),
      { threshold: cluster.threshold },
    );
    const key = await sdk.keygen({ suite: 'ed25519', keyId: 'compose-topology' });
    const message = new TextEncoder().encode('compose topology');
    const sig = await sdk.sign({ keyId: key.keyId, message, players: [2, 3] });
    expect(ed25519.verify(fromHex(sig.signature, 'sig'), message, fromHex(key.publicKey, 'pk'))).toBe(true);
  }, 60_000);

  it('each KEK is a Compose secret of its own node only, outside every data volume; no volume holds a KEK (after a keygen)', () => {
    const keks: string[] = [];
    for (const [k, name] of nodeServices.entries()) {
      const service = compose.services[name]!;
      const secret = `node${k + 1}_kek`;
      const env = serviceEnv(service, {});
      expect(env.TESSERA_KEK_FILE).toBe(`/run/secrets/${secret}`);
      expect(env.TESSERA_KEK).toBeUndefined();
      expect(secretsOf(name)).toEqual([secret]);
      // Inside the container the KEK is on none of the node's volumes...
      expect(mountFor((service.volumes ?? []).map((v) => parseMount(v)), env.TESSERA_KEK_FILE!)).toBeUndefined();
      // ...and on the host it is a file of its own, not in a named volume.
      const hostFile = interpolate(composeSecrets[secret]!.file!, {});
      expect(hostFile.startsWith('./') || hostFile.startsWith('/'), hostFile).toBe(true);
      // No other service is handed this node's KEK.
      for (const other of names) if (other !== name) expect(secretsOf(other)).not.toContain(secret);
      // The node read it from there: it is running (every node answered /ready in beforeAll).
      const text = readFileSync(secretFilesFor(name).get(`/run/secrets/${secret}`)!, 'utf8').trim();
      expect(text).toMatch(/^[0-9a-f]{64}$/);
      keks.push(text);
    }
    expect(new Set(keks).size).toBe(3);
    // Walk every file in every named volume (the stores, TLS, shared, ca): no KEK, as hex or raw bytes,
    // and no file called kek (where earlier versions kept it).
    const volumeDirs = new Set<string>();
    for (const name of names) for (const v of compose.services[name]!.volumes ?? []) if (parseMount(v).named) volumeDirs.add(join(tmp, parseMount(v).target));
    expect(volumeDirs.size).toBeGreaterThanOrEqual(6);
    for (const dir of volumeDirs) {
      for (const file of filesUnder(dir)) {
        expect(file.endsWith('/kek'), file).toBe(false);
        const bytes = readFileSync(file);
        for (const kek of keks) {
          expect(bytes.includes(Buffer.from(kek, 'latin1')), file).toBe(false);
          expect(bytes.includes(Buffer.from(kek, 'hex')), file).toBe(false);
        }
      }
    }
  });

  it('init is idempotent: running it again keeps identities, API keys and the CA', async () => {
    const before = readFileSync(join(tmp, 'client', 'cluster.json'), 'utf8');
    const membership = readFileSync(join(tmp, 'tessera', 'shared', 'membership.json'), 'utf8');
    // Each node's store is open in its process (LevelDB locks it), so stop them first, as
    // `docker compose up` would only rerun init with the services down.
    await stopAll();
    children.clear();
    const again = run('init', envFor('init'));
    expect(await exited(again), output.get('init')).toBe(0);
    expect(readFileSync(join(tmp, 'tessera', 'shared', 'membership.json'), 'utf8')).toBe(membership);
    expect(readFileSync(join(tmp, 'client', 'cluster.json'), 'utf8')).toBe(before);
  }, 60_000);

  it('init moves a KEK left inside a data volume (the old layout) out to its secret file, and refuses two different KEKs', async () => {
    const secretFile = secretFilesFor('node1').get('/run/secrets/node1_kek')!;
    const kek = readFileSync(secretFile, 'utf8');
    const legacy = join(tmp, 'tessera', 'node-1', 'kek');
    writeFileSync(legacy, kek, { mode: 0o600 });
    const again = run('init', envFor('init'));
    expect(await exited(again), output.get('init')).toBe(0);
    expect(output.get('init')).toContain('node 1: KEK moved out of its data volume');
    expect(existsSync(legacy)).toBe(false);
    expect(readFileSync(secretFile, 'utf8')).toBe(kek);
    // A different KEK in the volume: which one the store was made with is the operator's call.
    writeFileSync(legacy, 'ab'.repeat(32) + '\n', { mode: 0o600 });
    const refused = run('init', envFor('init'));
    expect(await exited(refused)).not.toBe(0);
    expect(output.get('init')).toContain('node 1 has two different KEKs');
    expect(readFileSync(secretFile, 'utf8')).toBe(kek);
    rmSync(legacy);
  }, 60_000);
});
