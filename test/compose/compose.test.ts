/**
 * docker-compose.yml and the Dockerfile.
 *
 * 1. Static checks that need no Docker (always run): the file parses, the services, dependencies,
 *    volumes and ports are as the deployment needs them, every TESSERA_* variable is one the process
 *    actually reads, and the Dockerfile builds what the commands run.
 * 2. The real thing (testcontainers DockerComposeEnvironment): build, `up`, wait for the health
 *    checks, sign once through the SDK, `down -v`. It needs a container runtime and Docker Compose v2;
 *    without them the block is skipped and its title says why. testcontainers is imported only when
 *    a runtime looks present, so a machine without Docker pays nothing for it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { fromHex } from '../../core/bytes.js';
import { Cluster, NodeClient } from '../../sdk/client.js';
import type { ClusterFile } from '../../sdk/cli.js';
import {
  COMPOSE_PATH,
  DOCKERFILE_PATH,
  ROOT,
  commandOf,
  interpolate,
  loadComposeFile,
  parseMount,
  parsePort,
  scriptOf,
  serviceEnv,
} from '../helpers/compose-file.js';

const compose = loadComposeFile();
const NODE_SERVICES = ['node1', 'node2', 'node3'];

/** Every TESSERA_* name a source file mentions literally. */
function envNamesIn(file: string): Set<string> {
  return new Set(readFileSync(join(ROOT, file), 'utf8').match(/TESSERA_[A-Z0-9_]+/g) ?? []);
}

describe('docker-compose.yml (static, no Docker needed)', () => {
  it('parses, and has an init job, a coordinator and three nodes built from the Dockerfile', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['coordinator', 'init', ...NODE_SERVICES].sort());
    for (const [name, s] of Object.entries(compose.services)) {
      expect(s.build, `${name} builds the repo Dockerfile`).toBe('.');
      expect(commandOf(s)[0], name).toBe('node');
      scriptOf(commandOf(s));
    }
    // Compiled JavaScript, no TypeScript loader at run time (the image builds dist/ in its build stage).
    expect(commandOf(compose.services.init!)).toEqual(['node', 'dist/scripts/compose-init.js']);
    expect(commandOf(compose.services.coordinator!)).toEqual(['node', 'dist/coordinator/main.js']);
    for (const n of NODE_SERVICES) expect(commandOf(compose.services[n]!)).toEqual(['node', 'dist/node/main.js']);
    for (const s of Object.values(compose.services)) expect(JSON.stringify(s.healthcheck?.test ?? [])).not.toContain('tsx');
  });

  it('everything waits for init to complete; nodes wait for a healthy coordinator', () => {
    for (const name of ['coordinator', ...NODE_SERVICES]) {
      const deps = compose.services[name]!.depends_on as Record<string, { condition?: string }>;
      expect(deps.init?.condition, name).toBe('service_completed_successfully');
    }
    for (const n of NODE_SERVICES) {
      expect((compose.services[n]!.depends_on as Record<string, { condition?: string }>).coordinator?.condition).toBe('service_healthy');
      expect(compose.services[n]!.healthcheck?.test).toBeDefined();
    }
    expect(compose.services.coordinator!.healthcheck?.test).toBeDefined();
  });

  it('sets only TESSERA_* variables that the process reads', () => {
    const nodeNames = envNamesIn('node/config.ts');
    const initNames = envNamesIn('scripts/compose-init.ts');
    // coordinator/config.ts builds its names as `TESSERA_COORDINATOR_${name}`; its documented set:
    const coordinatorNames = new Set(['PORT', 'HOST', 'ID', 'SESSION_TIMEOUT_MS', 'MEMBERSHIP', 'TLS_CERT', 'TLS_KEY', 'LOG_LEVEL'].map((n) => `TESSERA_COORDINATOR_${n}`));
    const coordinatorSource = readFileSync(join(ROOT, 'coordinator/config.ts'), 'utf8');
    for (const n of coordinatorNames) expect(coordinatorSource, n).toContain(`'${n.slice('TESSERA_COORDINATOR_'.length)}'`);
    const check = (service: string, known: Set<string>) => {
      for (const k of Object.keys(serviceEnv(compose.services[service]!, {}))) expect(known.has(k), `${service}: ${k}`).toBe(true);
    };
    check('init', initNames);
    check('coordinator', coordinatorNames);
    for (const n of NODE_SERVICES) check(n, nodeNames);
  });

  it('TLS everywhere: nodes serve TLS off loopback and reach the coordinator over wss with the cluster CA', () => {
    const c = serviceEnv(compose.services.coordinator!, {});
    expect(c.TESSERA_COORDINATOR_TLS_CERT && c.TESSERA_COORDINATOR_TLS_KEY).toBeTruthy();
    NODE_SERVICES.forEach((n, k) => {
      const e = serviceEnv(compose.services[n]!, {});
      expect(e.TESSERA_NODE_INDEX).toBe(String(k + 1));
      expect(e.TESSERA_API_HOST).toBe('0.0.0.0');
      expect(e.TESSERA_TLS_CERT && e.TESSERA_TLS_KEY).toBeTruthy();
      expect(e.TESSERA_COORDINATOR_URL).toMatch(/^wss:\/\/coordinator:/);
      expect(e.TESSERA_COORDINATOR_CA).toBe('/tessera/shared/ca.pem');
      expect(new URL(e.TESSERA_COORDINATOR_URL!).port).toBe(c.TESSERA_COORDINATOR_PORT);
      // The coordinator id is pinned in every node, to the coordinator's own.
      expect(e.TESSERA_COORDINATOR_ID).toBeTruthy();
      expect(e.TESSERA_COORDINATOR_ID).toBe(c.TESSERA_COORDINATOR_ID);
    });
    const init = serviceEnv(compose.services.init!, {});
    expect(init.TESSERA_INIT_NODE_URLS!.split(',').every((u) => u.startsWith('https://'))).toBe(true);
  });

  it('volumes: one mount path per volume; a node sees only its own volume and the shared one (read-only)', () => {
    const declared = new Set(Object.keys(compose.volumes ?? {}));
    const where = new Map<string, string>();
    for (const [name, s] of Object.entries(compose.services)) {
      for (const spec of s.volumes ?? []) {
        const m = parseMount(spec);
        if (!m.named) continue;
        expect(declared.has(m.source), `${name}: volume ${m.source} is declared`).toBe(true);
        expect(where.get(m.source) ?? m.target, `${m.source} mounted at one path`).toBe(m.target);
        where.set(m.source, m.target);
      }
    }
    NODE_SERVICES.forEach((n) => {
      const mounts = (compose.services[n]!.volumes ?? []).map((v) => parseMount(v));
      expect(mounts.map((m) => `${m.source}:${m.readOnly ? 'ro' : 'rw'}`).sort()).toEqual([`${n}:rw`, 'shared:ro']);
    });
    const coordinatorMounts = (compose.services.coordinator!.volumes ?? []).map((v) => parseMount(v));
    expect(coordinatorMounts.map((m) => `${m.source}:${m.readOnly ? 'ro' : 'rw'}`).sort()).toEqual(['coordinator:ro', 'shared:ro']);
    expect(compose.services.init!.user).toBe('0:0');
  });

  it('format 3.x for Compose v1 1.29 and v2 (no top-level name: the project name is in .env)', () => {
    const doc = compose as { version?: unknown; name?: unknown };
    expect(String(doc.version)).toMatch(/^3\.\d+$/);
    expect(doc.name).toBeUndefined();
    expect(readFileSync(join(ROOT, '.env'), 'utf8')).toMatch(/^COMPOSE_PROJECT_NAME=tessera$/m);
  });

  it('each KEK is a Compose secret: a host file outside every volume, written by init, given to its own node only', () => {
    const secrets = (compose as { secrets?: Record<string, { file?: string }> }).secrets ?? {};
    const secretsOf = (service: string) => (compose.services[service] as { secrets?: unknown[] }).secrets ?? [];
    const init = compose.services.init!;
    const initEnv = serviceEnv(init, {});
    // init writes the KEK files into TESSERA_INIT_KEK_DIR, a bind mount of a host directory (no volume).
    const kekDirMount = (init.volumes ?? []).map((v) => parseMount(v)).find((m) => m.target === initEnv.TESSERA_INIT_KEK_DIR);
    expect(kekDirMount, 'init mounts the KEK directory').toBeDefined();
    expect(kekDirMount!.named).toBe(false);
    expect(kekDirMount!.readOnly).toBe(false);
    expect(Object.keys(secrets).sort()).toEqual(NODE_SERVICES.map((_, k) => `node${k + 1}_kek`));
    NODE_SERVICES.forEach((n, k) => {
      const secret = `node${k + 1}_kek`;
      const e = serviceEnv(compose.services[n]!, {});
      expect(secretsOf(n)).toEqual([secret]);
      expect(e.TESSERA_KEK_FILE).toBe(`/run/secrets/${secret}`);
      expect(e.TESSERA_KEK).toBeUndefined();
      // Not under any mount of the node (its data volume, shared/).
      for (const m of (compose.services[n]!.volumes ?? []).map((v) => parseMount(v))) {
        expect(e.TESSERA_KEK_FILE!.startsWith(m.target + '/'), `${n}: KEK under ${m.target}`).toBe(false);
      }
      // The host file is the one compose-init writes (KEK_DIR/node-<i>.kek), also with the directory moved.
      for (const vars of [{}, { TESSERA_SECRETS_DIR: '/srv/tessera-keks' }]) {
        const file = interpolate(secrets[secret]!.file!, vars);
        expect(file).toBe(`${parseMount(init.volumes!.find((v) => v.endsWith(`:${initEnv.TESSERA_INIT_KEK_DIR}`))!, vars).source}/node-${k + 1}.kek`);
      }
    });
    for (const s of ['init', 'coordinator']) expect(secretsOf(s)).toEqual([]);
    expect(readFileSync(join(ROOT, 'scripts/compose-init.ts'), 'utf8')).toContain('`node-${k + 1}.kek`');
    // The host KEK directory is never sent to the image build.
    expect(readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n')).toContain('.tessera');
  });

  it('node ports are published on the host loopback only, to the port each node listens on', () => {
    for (const n of NODE_SERVICES) {
      const e = serviceEnv(compose.services[n]!, {});
      const [p, ...more] = (compose.services[n]!.ports ?? []).map((s) => parsePort(s));
      expect(more).toEqual([]);
      expect(p!.hostIp).toBe('127.0.0.1');
      expect(String(p!.containerPort)).toBe(e.TESSERA_API_PORT);
    }
    expect(compose.services.coordinator!.ports).toBeUndefined();
    // Moving a published port moves the URL init writes for clients too.
    const vars = { TESSERA_NODE2_PORT: '9702' };
    expect(parsePort(compose.services.node2!.ports![0]!, vars).hostPort).toBe('9702');
    expect(serviceEnv(compose.services.init!, vars).TESSERA_INIT_NODE_URLS!.split(',')[1]).toBe('https://127.0.0.1:9702');
    expect(interpolate('$${X}', {})).toBe('${X}');
  });

  it('Dockerfile: node:20-slim, openssl installed, npm ci from the lock file, dist/ built from the source the commands run', () => {
    const df = readFileSync(DOCKERFILE_PATH, 'utf8');
    const lines = df.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    // A build stage (TypeScript, npm run build) and the run stage that copies its output.
    expect(lines.filter((l) => l.startsWith('FROM '))).toEqual(['FROM node:20-slim AS build', 'FROM node:20-slim']);
    expect(lines).toContainEqual(expect.stringMatching(/^RUN .*npm run build/));
    for (const built of ['dist', 'node_modules', 'stubs']) expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^COPY --from=build /app/${built} \\./${built}$`)));
    expect(df).toMatch(/apt-get install -y --no-install-recommends openssl/);
    const copyLock = lines.findIndex((l) => /^COPY package\.json package-lock\.json \.\/$/.test(l));
    const npmCi = lines.findIndex((l) => /^RUN npm ci\b/.test(l));
    expect(copyLock).toBeGreaterThan(-1);
    expect(npmCi).toBeGreaterThan(copyLock);
    // Where each COPY puts things (its destination, e.g. `./core` -> core).
    const copied = lines.filter((l) => l.startsWith('COPY ')).map((l) => l.split(/\s+/).at(-1)!.replace(/^\.\//, '').replace(/\/$/, ''));
    for (const s of Object.values(compose.services)) {
      const script = scriptOf(commandOf(s));
      expect(copied, script).toContain(script.split('/')[0]);
    }
    // Every folder the runtime imports from is in the image (core/ is imported by all of them).
    for (const dir of ['core', 'node', 'coordinator', 'sdk', 'scripts']) expect(copied).toContain(dir);
    expect(lines).toContain('USER node');
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
    expect(ignore).toContain('node_modules');
    expect(ignore).toContain('.tessera');
  });

  it('testcontainers loads under this Node version', async () => {
    const tc = await import('testcontainers');
    expect(typeof tc.DockerComposeEnvironment).toBe('function');
    expect(typeof tc.getContainerRuntimeClient).toBe('function');
  });
});

// ---------------------------------------------------------------------------------------------
// With Docker.

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ ok: boolean; out: string }> {
  return new Promise((res) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => res({ ok: !err, out: `${stdout}${stderr}`.trim() || (err?.message ?? '') }));
  });
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what} did not answer in ${ms / 1000} s`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

/** Is there a container runtime with Docker Compose v2? Cheap checks first; never hangs. */
async function detectRuntime(): Promise<{ ok: true } | { ok: false; reason: string }> {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const sockets = [
    '/var/run/docker.sock',
    process.env.XDG_RUNTIME_DIR && join(process.env.XDG_RUNTIME_DIR, 'docker.sock'),
    uid !== undefined && `/run/user/${uid}/docker.sock`,
    join(homedir(), '.docker', 'run', 'docker.sock'),
    join(homedir(), '.docker', 'desktop', 'docker.sock'),
  ].filter((s): s is string => typeof s === 'string');
  const configured = process.env.DOCKER_HOST || existsSync(join(homedir(), '.testcontainers.properties'));
  if (!configured && !sockets.some((s) => existsSync(s))) {
    return { ok: false, reason: `DOCKER_HOST is not set and there is no Docker socket (${sockets.join(', ')})` };
  }
  const tried = process.env.DOCKER_HOST ? `DOCKER_HOST=${process.env.DOCKER_HOST}` : sockets.find((s) => existsSync(s)) ?? '~/.testcontainers.properties';
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await withTimeout(getContainerRuntimeClient(), 15_000, 'the container runtime');
  } catch (e) {
    return { ok: false, reason: `${tried}: ${(e as Error).message}` };
  }
  const composeVersion = await run('docker', ['compose', 'version'], 15_000);
  if (!composeVersion.ok) return { ok: false, reason: `Docker Compose v2 is not available (docker compose version: ${composeVersion.out.split('\n')[0]})` };
  return { ok: true };
}

const runtime = await detectRuntime();
const title = runtime.ok ? 'docker compose up, sign once, down' : `docker compose up, sign once, down (skipped: no container runtime: ${runtime.reason})`;

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

describe.skipIf(!runtime.ok)(title, () => {
  let environment: { down(o?: { removeVolumes?: boolean; timeout?: number }): Promise<unknown> } | undefined;
  let clientDir: string;
  let secretsDir: string;

  beforeAll(async () => {
    const { DockerComposeEnvironment, Wait } = await import('testcontainers');
    clientDir = mkdtempSync(join(tmpdir(), 'tessera-compose-'));
    secretsDir = mkdtempSync(join(tmpdir(), 'tessera-compose-secrets-'));
    const vars: Record<string, string> = { TESSERA_CLIENT_DIR: clientDir, TESSERA_SECRETS_DIR: secretsDir };
    for (let i = 1; i <= 3; i++) vars[`TESSERA_NODE${i}_PORT`] = String(await freePort());
    // init runs as root in its container; hand the client file to whoever runs the test.
    if (typeof process.getuid === 'function' && typeof process.getgid === 'function') vars.TESSERA_INIT_CLIENT_OWNER = `${process.getuid()}:${process.getgid()}`;
    // The KEK files are Compose secrets: they must exist before the nodes' containers are created,
    // so init runs once on its own first, as the file's header says.
    const first = await new Promise<{ ok: boolean; out: string }>((res) =>
      execFile('docker', ['compose', '-p', 'tessera-compose-test', '-f', COMPOSE_PATH, 'run', '--rm', '--build', 'init'], { cwd: ROOT, env: { ...process.env, ...vars }, timeout: 900_000 }, (err, stdout, stderr) =>
        res({ ok: !err, out: `${stdout}${stderr}`.trim() }),
      ),
    );
    if (!first.ok) throw new Error(`docker compose run init failed: ${first.out.slice(-2000)}`);
    for (let i = 1; i <= 3; i++) expect(existsSync(join(secretsDir, `node-${i}.kek`))).toBe(true);
    let env = new DockerComposeEnvironment(ROOT, COMPOSE_PATH.slice(ROOT.length + 1))
      .withProjectName('tessera-compose-test')
      .withBuild()
      .withEnvironment(vars)
      .withStartupTimeout(180_000);
    for (const s of ['coordinator', ...NODE_SERVICES]) env = env.withWaitStrategy(`${s}-1`, Wait.forHealthCheck());
    environment = await env.up();
  }, 900_000);

  afterAll(async () => {
    await environment?.down({ removeVolumes: true, timeout: 10_000 });
    if (clientDir) rmSync(clientDir, { recursive: true, force: true });
    if (secretsDir) rmSync(secretsDir, { recursive: true, force: true });
  }, 120_000);

  it('signs once through the SDK, over TLS with the CA from the client file', async () => {
    const cluster = JSON.parse(readFileSync(join(clientDir, 'cluster.json'), 'utf8')) as ClusterFile;
    const sdk = new Cluster(
      [...cluster.nodes].sort((a, b) => a.index - b.index).map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, ca: n.ca, timeoutMs: 60_000 })),
      { threshold: cluster.threshold },
    );
    const key = await sdk.keygen({ suite: 'ed25519', keyId: 'compose' });
    const message = new TextEncoder().encode('signed in docker compose');
    const sig = await sdk.sign({ keyId: key.keyId, message });
    expect(ed25519.verify(fromHex(sig.signature, 'sig'), message, fromHex(key.publicKey, 'pk'))).toBe(true);
  }, 120_000);
});
