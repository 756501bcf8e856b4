/**
 * docker-compose.yml, the Dockerfile and the runbook's "Deploying with Docker Compose" section.
 *
 * 1. Static checks that need no Docker (always run): the file parses, the services, dependencies,
 *    volumes and ports are as the deployment needs them, every TESSERA_* variable is one the process
 *    actually reads, and the Dockerfile builds what the commands run.
 * 2. The real thing, with the Docker CLI and Compose (v2 `docker compose` if present, else v1
 *    `docker-compose`; testcontainers is not used: its compose support needs v2). When no engine
 *    answers, scripts/docker-engine.sh starts dockerd (and afterAll stops it again); the base image
 *    node:20-slim is made locally when missing (scripts/docker-base-image.sh). Then every sh block of
 *    docs/operations.md's compose section runs, as written, at its step (compose-test:image, init,
 *    up, health, logs, stop-node, start-node, restart, down), with the test's project name, image tag,
 *    temp dirs and free loopback ports in the environment; between them the SDK signs through the TLS
 *    endpoints from the host and OpenSSL verifies each signature. The block is skipped only when no
 *    engine can start or no Compose is installed, and its title says why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { fromHex } from '../../core/bytes.js';
import { formatPublicKey } from '../../sdk/formats.js';
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
  it('parses, and has an init job, a coordinator and three nodes running one image built from the Dockerfile', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['coordinator', 'init', ...NODE_SERVICES].sort());
    for (const [name, s] of Object.entries(compose.services)) {
      expect(s.build, `${name} builds the repo Dockerfile`).toBe('.');
      // One image for all, used when present (built once, e.g. by the runbook's docker build).
      expect(s.image, name).toBe('${TESSERA_IMAGE:-tessera:local}');
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
    // The build stage gathers what runs in /runtime (dist/ built, node_modules/ pruned, stubs/ that a
    // node_modules link points into) and the run stage copies it in one COPY.
    const gathered = lines.map((l) => /&& mv ((?:\S+ )+)\/runtime\/$/.exec(l)?.[1]?.trim().split(' ')).find((g) => g !== undefined) ?? [];
    expect(gathered.sort()).toEqual(['dist', 'node_modules', 'package-lock.json', 'package.json', 'stubs']);
    expect(lines.filter((l) => l.startsWith('COPY --from='))).toEqual(['COPY --from=build /runtime ./']);
    expect(df).toMatch(/apt-get install -y --no-install-recommends openssl/);
    const copyLock = lines.findIndex((l) => /^COPY package\.json package-lock\.json \.\/$/.test(l));
    const npmCi = lines.findIndex((l) => /^RUN npm ci\b/.test(l));
    expect(copyLock).toBeGreaterThan(-1);
    expect(npmCi).toBeGreaterThan(copyLock);
    // Where each COPY puts things (its destination, e.g. `./core` -> core).
    const copied = lines.filter((l) => l.startsWith('COPY ')).map((l) => l.split(/\s+/).at(-1)!.replace(/^\.\//, '').replace(/\/$/, ''));
    for (const s of Object.values(compose.services)) {
      const script = scriptOf(commandOf(s));
      expect(gathered, script).toContain(script.split('/')[0]);
    }
    // Every folder the runtime imports from is in the image (core/ is imported by all of them).
    for (const dir of ['core', 'node', 'coordinator', 'sdk', 'scripts']) expect(copied).toContain(dir);
    expect(lines).toContain('USER node');
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
    expect(ignore).toContain('node_modules');
    expect(ignore).toContain('.tessera');
  });
});

// ---------------------------------------------------------------------------------------------
// The runbook's blocks (docs/operations.md, "Deploying with Docker Compose").

const OPERATIONS_DOC = join(ROOT, 'docs/operations.md');
/** Every compose-test: block of the runbook, in the order the test below runs them. */
const DOC_BLOCKS = ['image', 'init', 'up', 'health', 'logs', 'stop-node', 'start-node', 'restart', 'down'] as const;
type DocBlock = (typeof DOC_BLOCKS)[number];

/** The ```sh block right after the `<!-- compose-test:NAME -->` line (blank lines between skipped). */
function docBlock(name: DocBlock): string {
  const lines = readFileSync(OPERATIONS_DOC, 'utf8').split('\n');
  const at = lines.filter((l) => l.startsWith(`<!-- compose-test:${name} `) || l === `<!-- compose-test:${name}-->`);
  if (at.length !== 1) throw new Error(`docs/operations.md has ${at.length} compose-test:${name} markers`);
  let i = lines.indexOf(at[0]!) + 1;
  while (i < lines.length && lines[i]!.trim() === '') i++;
  if (lines[i] !== '```sh') throw new Error(`docs/operations.md: no sh block right after compose-test:${name}`);
  const end = lines.indexOf('```', i + 1);
  if (end < 0) throw new Error(`docs/operations.md: the sh block after compose-test:${name} is not closed`);
  return lines.slice(i + 1, end).join('\n') + '\n';
}

describe('docs/operations.md, Deploying with Docker Compose (static)', () => {
  it('its compose-test: blocks are exactly the ones this file runs, each an sh block', () => {
    const names = [...readFileSync(OPERATIONS_DOC, 'utf8').matchAll(/^<!-- compose-test:([a-z0-9-]+)\b.*-->\s*$/gm)].map((m) => m[1]);
    expect(names).toEqual([...DOC_BLOCKS]);
    for (const name of DOC_BLOCKS) expect(docBlock(name)).toMatch(/\S/);
    // Compose v2 syntax in the page; v1 runs it through the shim below.
    expect(docBlock('up')).toContain('docker compose up -d');
    expect(docBlock('down')).toContain('docker compose down -v');
    expect(docBlock('restart')).not.toContain('-v');
  });
});

// ---------------------------------------------------------------------------------------------
// With Docker.

interface Ran {
  code: number | null;
  out: string;
}

/** bash -euo pipefail -c script in the repo, output kept; the whole process group is killed on timeout. */
function bash(script: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Ran> {
  return new Promise((res) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    const timer = setTimeout(() => {
      chunks.push(Buffer.from(`\n[killed after ${timeoutMs / 1000} s]\n`));
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, out: Buffer.concat(chunks).toString('utf8') });
    });
  });
}

/** Which Compose is installed: v2 (`docker compose`) preferred, else v1 (`docker-compose`). */
function detectCompose(): { ok: true; v2: boolean; version: string } | { ok: false; reason: string } {
  const v2 = spawnSync('docker', ['compose', 'version', '--short'], { encoding: 'utf8', timeout: 30_000 });
  if (v2.status === 0) return { ok: true, v2: true, version: `docker compose ${v2.stdout.trim()}` };
  const v1 = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8', timeout: 30_000 });
  if (v1.status === 0) return { ok: true, v2: false, version: `docker-compose ${v1.stdout.trim()}` };
  return { ok: false, reason: 'neither `docker compose` (v2) nor `docker-compose` (v1) is installed' };
}

/** An engine that answers: the one running, or one scripts/docker-engine.sh starts (its pid, to stop it). */
function ensureEngine(): { ok: true; startedPid?: number } | { ok: false; reason: string } {
  const r = spawnSync('bash', [join(ROOT, 'scripts/docker-engine.sh')], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) return { ok: false, reason: `no Docker engine could start: ${(r.stderr || r.error?.message || '').trim().split('\n')[0]}` };
  const started = /^started (\d+)$/m.exec(r.stdout);
  return started ? { ok: true, startedPid: Number(started[1]) } : { ok: true };
}

const composeCli = detectCompose();
const engine = composeCli.ok ? ensureEngine() : ({ ok: false, reason: composeCli.reason } as const);
const dockerReady = composeCli.ok && engine.ok;
const title = `Docker Compose: build, up, sign (OpenSSL verifies), stop and start a node, restart, down -v${
  dockerReady ? ` (${(composeCli as { version: string }).version})` : ` (skipped: ${(engine as { reason: string }).reason})`
}`;

/**
 * With Compose v1 only, the page's `docker compose ...` runs as `docker-compose ...` (what the page
 * tells v1 users to type); every other docker command is the CLI's.
 */
const COMPOSE_V1_SHIM = 'docker() { if [ "$1" = compose ]; then shift; command docker-compose "$@"; else command docker "$@"; fi; }\n';
/** Held while the image is made, by this test and by .ci/run's background preparation (scripts/docker-prepare.sh). */
const IMAGE_LOCK = '/tmp/tessera-compose-image.lock';

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

// .ci/run exports TESSERA_REQUIRE_DOCKER=1: on CI's machines the stack must run (issue 14), so there an
// engine or Compose that cannot start fails this file (with the reason) instead of skipping the block.
if (!dockerReady && process.env.TESSERA_REQUIRE_DOCKER === '1') throw new Error(`TESSERA_REQUIRE_DOCKER=1, but: ${title}`);

describe.skipIf(!dockerReady)(title, () => {
  const project = `tessera-compose-test-${process.pid}`;
  const image = 'tessera:compose-test';
  let env: NodeJS.ProcessEnv;
  let clientDir: string | undefined;
  let secretsDir: string | undefined;
  let work: string | undefined;
  let tornDown = false;
  let keyId = '';
  let publicKey = '';

  /** Run one of the page's blocks with the test's settings; throws with its output when it fails. */
  async function runBlock(name: DocBlock, timeoutMs: number): Promise<string> {
    const script = (composeCli.ok && !composeCli.v2 ? COMPOSE_V1_SHIM : '') + docBlock(name);
    const r = await bash(script, env, timeoutMs);
    if (r.code !== 0) throw new Error(`compose-test:${name} exited ${r.code}:\n${r.out.slice(-4000)}`);
    return r.out;
  }

  /** The SDK on the client file init wrote: TLS to the published loopback ports, the cluster CA pinned. */
  function clusterClient(): Cluster {
    const file = JSON.parse(readFileSync(join(clientDir!, 'cluster.json'), 'utf8')) as ClusterFile;
    const nodes = [...file.nodes].sort((a, b) => a.index - b.index);
    for (const n of nodes) expect(n.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    // No presignatures: every signature is a two-round session, relayed by the coordinator container.
    return new Cluster(
      nodes.map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, ca: n.ca, timeoutMs: 60_000 })),
      { threshold: file.threshold, presign: { enabled: false } },
    );
  }

  /** Sign `text` with these players (default: the SDK's pick) and check the signature with `openssl pkeyutl -verify -rawin` (docs/verify.md). */
  async function signAndVerify(text: string, players?: number[]): Promise<void> {
    const message = new TextEncoder().encode(text);
    const sig = await clusterClient().sign({ keyId, message, presigned: false, ...(players ? { players } : {}) });
    const sigBytes = fromHex(sig.signature, 'signature');
    expect(ed25519.verify(sigBytes, message, fromHex(publicKey, 'publicKey'))).toBe(true);
    const dir = mkdtempSync(join(work!, 'sig-'));
    writeFileSync(join(dir, 'pub.pem'), formatPublicKey('ed25519', publicKey, 'pem') as string);
    writeFileSync(join(dir, 'message.txt'), message);
    writeFileSync(join(dir, 'message.sig'), sigBytes);
    const verify = (file: string) =>
      spawnSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', join(dir, 'pub.pem'), '-rawin', '-in', join(dir, file), '-sigfile', join(dir, 'message.sig')], { encoding: 'utf8' });
    const ok = verify('message.txt');
    expect(ok.stdout + ok.stderr).toContain('Signature Verified Successfully');
    expect(ok.status).toBe(0);
    writeFileSync(join(dir, 'other.txt'), `${text}!`);
    const refused = verify('other.txt');
    expect(refused.status).not.toBe(0);
    expect(refused.stdout + refused.stderr).toContain('Signature Verification Failure');
  }

  beforeAll(async () => {
    clientDir = mkdtempSync(join(tmpdir(), 'tessera-compose-client-'));
    secretsDir = mkdtempSync(join(tmpdir(), 'tessera-compose-secrets-'));
    work = mkdtempSync(join(tmpdir(), 'tessera-compose-work-'));
    env = { ...process.env, COMPOSE_PROJECT_NAME: project, TESSERA_IMAGE: image, TESSERA_CLIENT_DIR: clientDir, TESSERA_SECRETS_DIR: secretsDir };
    // Free loopback ports for the published node ports (init writes them into the client file).
    for (let i = 1; i <= 3; i++) env[`TESSERA_NODE${i}_PORT`] = String(await freePort());
  });

  afterAll(async () => {
    // Always down -v, also when a step failed (the page's own down block ran last when all passed).
    if (!tornDown && env) {
      const r = await bash(`${composeCli.ok && !composeCli.v2 ? COMPOSE_V1_SHIM : ''}docker compose down -v --remove-orphans`, env, 180_000);
      if (r.code !== 0) console.error(`compose test cleanup: down -v failed: ${r.out.slice(-2000)}`);
    }
    for (const d of [clientDir, secretsDir, work]) if (d) rmSync(d, { recursive: true, force: true });
    // The engine this file started (none was running) is stopped again; one that was running stays.
    if (engine.ok && engine.startedPid !== undefined) {
      const pid = engine.startedPid;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        return;
      }
      for (let i = 0; i < 300; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      console.error(`compose test cleanup: dockerd (pid ${pid}) did not stop in 30 s`);
    }
  }, 300_000);

  it('compose-test:image: the base image (made locally when missing) and the image, built from the Dockerfile', async () => {
    // Under the lock that .ci/run's background preparation holds while it builds the same image:
    // this waits for it, and the build below is then all cache hits.
    const r = await bash(`exec 9>${IMAGE_LOCK}; flock 9; scripts/docker-base-image.sh`, env, 600_000);
    expect(r.code, r.out.slice(-3000)).toBe(0);
    const base = spawnSync('docker', ['image', 'inspect', '--format', '{{.Config.User}}', 'node:20-slim'], { encoding: 'utf8' });
    expect(base.status).toBe(0);
    const build = await bash(`exec 9>${IMAGE_LOCK}; flock 9\n${docBlock('image')}`, env, 1_200_000);
    expect(build.code, build.out.slice(-4000)).toBe(0);
    const user = spawnSync('docker', ['image', 'inspect', '--format', '{{.Config.User}}', image], { encoding: 'utf8' });
    expect(user.stdout.trim()).toBe('node');
  }, 1_800_000);

  it('compose-test:init: the KEK files (secrets, on the host, outside every volume) and the client file', async () => {
    await runBlock('init', 600_000);
    for (let i = 1; i <= 3; i++) {
      const kek = join(secretsDir!, `node-${i}.kek`);
      expect(existsSync(kek), kek).toBe(true);
      const st = spawnSync('stat', ['-c', '%a %u', kek], { encoding: 'utf8' });
      expect(st.stdout.trim()).toBe('600 1000');
    }
    expect(existsSync(join(clientDir!, 'cluster.json'))).toBe(true);
  }, 600_000);

  it('compose-test:up and compose-test:health: every service healthy, ports on 127.0.0.1 only', async () => {
    await runBlock('up', 600_000);
    const health = await runBlock('health', 400_000);
    expect(health).toMatch(/healthy/);
    for (let i = 1; i <= 3; i++) {
      const id = spawnSync('docker', ['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=node${i}`], { encoding: 'utf8' }).stdout.trim();
      expect(id).toMatch(/^[0-9a-f]+$/);
      const published = spawnSync('docker', ['port', id], { encoding: 'utf8' }).stdout.trim();
      expect(published).toBe(`${7700 + i}/tcp -> 127.0.0.1:${env[`TESSERA_NODE${i}_PORT`]}`);
    }
  }, 1_000_000);

  it('keygen (ed25519) and sign through the TLS endpoints from the host; OpenSSL verifies the signature', async () => {
    const key = await clusterClient().keygen({ suite: 'ed25519', keyId: 'compose' });
    keyId = key.keyId;
    publicKey = key.publicKey;
    await signAndVerify('signed in docker compose');
  }, 180_000);

  it('compose-test:logs: the services log JSON lines, and no log holds an API key or a KEK', async () => {
    const out = await runBlock('logs', 60_000);
    expect(out).toContain('"name":"node-1"');
    const all = await bash(`${composeCli.ok && !composeCli.v2 ? COMPOSE_V1_SHIM : ''}docker compose logs --no-color`, env, 60_000);
    expect(all.code).toBe(0);
    const file = JSON.parse(readFileSync(join(clientDir!, 'cluster.json'), 'utf8')) as ClusterFile;
    for (const n of file.nodes) expect(all.out.includes(n.apiKey), `node ${n.index}'s API key in the logs`).toBe(false);
    for (let i = 1; i <= 3; i++) {
      const kek = readFileSync(join(secretsDir!, `node-${i}.kek`), 'utf8').trim();
      expect(kek.length).toBeGreaterThan(16);
      expect(all.out.includes(kek), `node ${i}'s KEK in the logs`).toBe(false);
    }
  }, 120_000);

  it('compose-test:stop-node: with node3 stopped, nodes 1 and 2 sign', async () => {
    await runBlock('stop-node', 120_000);
    const state = spawnSync('docker', ['ps', '-a', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=node3', '--format', '{{.State}}'], { encoding: 'utf8' });
    expect(state.stdout.trim()).toBe('exited');
    await signAndVerify('node 3 is down', [1, 2]);
  }, 240_000);

  it('compose-test:start-node: node3 back (healthy); nodes 2 and 3 sign', async () => {
    await runBlock('start-node', 120_000);
    await runBlock('health', 400_000);
    await signAndVerify('node 3 is back', [2, 3]);
  }, 600_000);

  it('compose-test:restart: down (keeping the volumes) and up; the key survived: same public key, nodes 1 and 3 sign', async () => {
    await runBlock('restart', 600_000);
    await runBlock('health', 400_000);
    expect(await clusterClient().publicKey(keyId)).toBe(publicKey);
    await signAndVerify('after the restart', [1, 3]);
  }, 1_200_000);

  it('compose-test:down: down -v removes the containers and the volumes', async () => {
    await runBlock('down', 300_000);
    tornDown = true;
    const left = (args: string[]) => spawnSync('docker', args, { encoding: 'utf8' }).stdout.trim();
    expect(left(['ps', '-a', '-q', '--filter', `label=com.docker.compose.project=${project}`])).toBe('');
    expect(left(['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`])).toBe('');
  }, 300_000);
});
