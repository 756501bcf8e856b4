/**
 * docs/operations.md, the operators' runbooks, run as written (issue 14 item 6: "every command in it is
 * exercised by a test or by the compose test").
 *
 * Every ```sh block of the page follows a marker line: `<!-- ops:NAME -->` (run here) or
 * `<!-- compose-test:NAME -->` (run by test/compose/compose.test.ts, which must name it). Files the page
 * shows (systemd units, a Prometheus job) follow `<!-- ops-file:NAME -->` in a non-sh fence and are
 * checked here (systemd-analyze verify; the units run what the bare-process blocks run, with the env
 * files they write; the Prometheus job scrapes what the metrics block scraped).
 *
 * The blocks run with bash (`set -euo pipefail`) in a temp working dir, with the variables the page's
 * conventions table tells the operator to set, the `tessera` CLI on PATH (the compiled one, dist/, as an
 * installed package has it) and `APP_DIR` this checkout, whose dist/ is brought up to date first
 * (`npm run build` under the build lock, test/helpers/package-tarball.ts). Two sites are deployed as
 * bare processes by the page's own blocks: site A (used by every runbook) and site B (the failover
 * target). Every process the blocks start writes its pid file in RUN_DIR and gets TESSERA_PARENT_PID (this
 * worker), so afterAll stops them all, and they stop by themselves if this worker dies.
 *
 * In order, on site A: deployment and a restart; the systemd units; TLS expiry check and rotation of a
 * node's and the coordinator's certificates; KEK escrow; logs and metrics; emergency rotation, refresh,
 * API key revocation and fail-open; audit export and offline verification by a third party (a tampered
 * export fails); a backup of node 2, keys changed after it, its restore (stale keys refused, the others
 * sign; a wrong or loose KEK is refused); node 2 replaced (new store, identity and KEK, keys re-dealt);
 * then failover to site B with A stopped. Last: no secret in any log line or block output.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, buildDist } from '../helpers/package-tarball.js';

const DOC_PATH = join(ROOT, 'docs/operations.md');
const doc = (): string => readFileSync(DOC_PATH, 'utf8');

interface Fence {
  /** The marker line before the fence, if any: kind and name. */
  marker?: { kind: string; name: string };
  lang: string;
  body: string;
  line: number;
}

/** Every fenced block of the page with the marker line directly before it (blank lines skipped). */
function fences(text: string): Fence[] {
  const lines = text.split('\n');
  const out: Fence[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    let j = i + 1;
    while (j < lines.length && !/^```\s*$/.test(lines[j]!)) j++;
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === '') k--;
    const m = k >= 0 ? /^<!--\s*(ops|ops-file|compose-test):([A-Za-z0-9._-]+)(?:\s.*)?-->\s*$/.exec(lines[k]!) : null;
    out.push({ lang: open[1]!, body: lines.slice(i + 1, j).join('\n') + '\n', line: i + 1, ...(m ? { marker: { kind: m[1]!, name: m[2]! } } : {}) });
    i = j;
  }
  return out;
}

function block(kind: 'ops' | 'ops-file', name: string): Fence {
  const found = fences(doc()).filter((f) => f.marker?.kind === kind && f.marker.name === name);
  if (found.length !== 1) throw new Error(`docs/operations.md has ${found.length} blocks marked ${kind}:${name}`);
  return found[0]!;
}

/** The ops: blocks this file runs, each in the test that runs it. */
const RUNS = [
  'bootstrap',
  'env-files',
  'start',
  'first-key',
  'restart-node',
  'systemd-verify',
  'tls-check',
  'tls-rotate',
  'tls-rotate-coordinator',
  'tls-rotate-ca',
  'tls-retire-ca',
  'kek-escrow',
  'logs',
  'metrics',
  'emergency-rotate',
  'emergency-refresh',
  'emergency-revoke',
  'fail-open',
  'audit-export',
  'audit-verify-offline',
  'backup',
  'kek-not-in-data',
  'restore',
  'replace-node',
  'failover-prepare',
  'failover-import',
] as const;
const ran = new Set<string>();

function freePort(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

/** A base port with base..base+3 free (the coordinator and three nodes). */
async function freeBase(): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    const ok = await Promise.all([0, 1, 2, 3].map((d) => freePort(base + d)));
    if (ok.every(Boolean)) return base;
  }
}

interface Site {
  name: string;
  env: Record<string, string>;
}

let work: string;
let bin: string;
const sites: Site[] = [];

async function makeSite(name: string): Promise<Site> {
  const dir = join(work, `site-${name}`);
  const env: Record<string, string> = {
    APP_DIR: ROOT,
    STATE_DIR: join(dir, 'state'),
    CONF_DIR: join(dir, 'etc'),
    LOG_DIR: join(dir, 'log'),
    RUN_DIR: join(dir, 'run'),
    UNIT_DIR: join(dir, 'systemd'),
    BASE_PORT: String(await freeBase()),
    CLUSTER_ID: `tessera-site-${name}`,
    METRICS_TOKEN: `metrics-${name}-${Math.random().toString(16).slice(2)}${Math.random().toString(16).slice(2)}`,
    BACKUP_DIR: join(dir, 'backup'),
    ESCROW_DIR: join(dir, 'escrow'),
  };
  env.TESSERA_CLUSTER = join(env.CONF_DIR!, 'client', 'cluster.json');
  const site = { name, env };
  sites.push(site);
  return site;
}

/** The runner's environment without any TESSERA_* of its own, plus the site's variables. */
function envFor(site: Site, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_')));
  return { ...base, ...site.env, PATH: `${bin}:${process.env.PATH}`, TESSERA_PARENT_PID: String(process.pid), ...extra };
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function bash(script: string, env: NodeJS.ProcessEnv, timeoutMs = 180_000): Promise<Ran> {
  return new Promise((res) => {
    execFile('bash', ['-euo', 'pipefail', '-c', script], { cwd: work, env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      res({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Run the page's ops:NAME block for a site; it must succeed. */
async function runOps(name: (typeof RUNS)[number], site: Site, extra: Record<string, string> = {}): Promise<Ran> {
  const r = await bash(block('ops', name).body, envFor(site, extra));
  if (r.code !== 0) throw new Error(`ops:${name} (site ${site.name}) exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  ran.add(name);
  outputs.push(r.stdout, r.stderr);
  return r;
}

/** Everything the ops: blocks printed (checked for secrets at the end). */
const outputs: string[] = [];

/** A `tessera` command (or any shell line) as the site's operator; it must succeed. */
async function sh(site: Site, line: string, extra: Record<string, string> = {}): Promise<string> {
  const r = await bash(line, envFor(site, extra));
  if (r.code !== 0) throw new Error(`${line} (site ${site.name}) exited ${r.code}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** Stop every process a site's blocks started (pid files in RUN_DIR). */
async function stopSite(site: Site): Promise<void> {
  const runDir = site.env.RUN_DIR!;
  if (!existsSync(runDir)) return;
  const pids = readdirSync(runDir)
    .filter((f) => f.endsWith('.pid'))
    .map((f) => Number(readFileSync(join(runDir, f), 'utf8').trim()))
    .filter((p) => Number.isSafeInteger(p) && p > 1);
  const alive = (p: number) => {
    try {
      process.kill(p, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (const p of pids) if (alive(p)) process.kill(p, 'SIGTERM');
  const deadline = Date.now() + 12_000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const p of pids) if (alive(p)) process.kill(p, 'SIGKILL');
}

/** Every log line a site's processes wrote. */
function logsOf(site: Site): string {
  const dir = site.env.LOG_DIR!;
  return existsSync(dir) ? readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8')).join('') : '';
}

/** The secrets a site holds: none may ever appear in a log line or an output. */
function secretsOf(site: Site): string[] {
  const cluster = JSON.parse(readFileSync(site.env.TESSERA_CLUSTER!, 'utf8')) as { nodes: { apiKey: string }[] };
  const kekDir = join(site.env.CONF_DIR!, 'kek');
  const keks = readdirSync(kekDir).map((f) => readFileSync(join(kekDir, f), 'utf8').trim());
  return [...cluster.nodes.map((n) => n.apiKey), ...keks, site.env.METRICS_TOKEN!];
}

/** Variables a process reads: every 'TESSERA_...' string literal in its config loader. */
function variablesRead(files: string[]): Set<string> {
  const out = new Set<string>();
  for (const f of files) {
    for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(/TESSERA_[A-Z0-9_]+/g)) out.add(m[0]);
  }
  // coordinator/config.ts builds its names as `TESSERA_COORDINATOR_${name}` from v('NAME').
  for (const m of readFileSync(join(ROOT, 'coordinator/config.ts'), 'utf8').matchAll(/\bv\('([A-Z_]+)'\)/g)) out.add(`TESSERA_COORDINATOR_${m[1]}`);
  return out;
}

function envFileVars(path: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`${path}: not NAME=value: ${line}`);
    out.set(m[1]!, m[2]!);
  }
  return out;
}

/** The [Service] settings of a unit file (first value of each). */
function unitSettings(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const s = /^\[([A-Za-z]+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv) throw new Error(`unit line is neither a section nor Key=value: ${line}`);
    if (!out.has(`${section}.${kv[1]}`)) out.set(`${section}.${kv[1]}`, kv[2]!);
  }
  return out;
}

let siteA: Site;

/** The commands the page's blocks use besides node and tessera (systemd-analyze is optional: see the systemd test). */
const TOOLS = ['bash', 'curl', 'jq', 'openssl', 'tar', 'timeout', 'sha256sum', 'install', 'grep', 'sed'];

beforeAll(async () => {
  const missing = TOOLS.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0);
  if (missing.length > 0) throw new Error(`docs/operations.md's runbooks need ${missing.join(', ')} on PATH (not found)`);
  work = mkdtempSync(join(tmpdir(), 'tessera-ops-doc-'));
  bin = join(work, 'bin');
  mkdirSync(bin);
  // The CLI an installed package has: dist/sdk/bin/tessera.js (built just below).
  writeFileSync(join(bin, 'tessera'), `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'dist/sdk/bin/tessera.js')}" "$@"\n`);
  chmodSync(join(bin, 'tessera'), 0o755);
  await buildDist();
  siteA = await makeSite('a');
}, 300_000);

afterAll(async () => {
  await Promise.all(sites.map(stopSite));
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('docs/operations.md: the page', () => {
  it('every sh block has a marker; ops: blocks are all run here, compose-test: blocks are named by the compose test; files are not sh', () => {
    const all = fences(doc());
    const sh = all.filter((f) => f.lang === 'sh' || f.lang === 'bash' || f.lang === 'shell');
    for (const f of sh) {
      expect(f.marker, `the sh block at line ${f.line} has no <!-- ops:NAME --> or <!-- compose-test:NAME --> marker`).toBeDefined();
      expect(['ops', 'compose-test'], `the sh block at line ${f.line}`).toContain(f.marker!.kind);
    }
    const ops = sh.filter((f) => f.marker!.kind === 'ops').map((f) => f.marker!.name);
    expect(new Set(ops).size, 'ops: names are unique').toBe(ops.length);
    expect([...ops].sort()).toEqual([...RUNS].sort());
    const composeTest = readFileSync(join(ROOT, 'test/compose/compose.test.ts'), 'utf8');
    for (const f of sh.filter((f) => f.marker!.kind === 'compose-test')) {
      expect(composeTest.includes(f.marker!.name), `compose-test:${f.marker!.name} is not named in test/compose/compose.test.ts`).toBe(true);
    }
    for (const f of all.filter((f) => f.marker?.kind === 'ops-file')) expect(['sh', 'bash', 'shell', '']).not.toContain(f.lang);
  });
});

describe('docs/operations.md: the runbooks, run as written', () => {
  it('deploying as bare processes: bootstrap, env files, start, a first key, a node restart', async () => {
    const boot = await runOps('bootstrap', siteA);
    expect(boot.stdout).toMatch(/compose-init: 3 nodes \(threshold 2\)/);
    await runOps('env-files', siteA);
    const started = await runOps('start', siteA);
    expect(started.stdout + started.stderr).toMatch(/agreed|epoch/i);
    const first = await runOps('first-key', siteA);
    expect(first.stdout).toMatch(/signature: [0-9a-f]{128}/);
    await runOps('restart-node', siteA);
    const again = await bash('tessera sign --key-id payments --message 00 --players 1,2', envFor(siteA));
    expect(again.code, again.stderr).toBe(0);
    // The env files name only variables the processes read.
    const read = variablesRead(['node/config.ts', 'coordinator/config.ts']);
    for (const f of ['coordinator.env', 'node-1.env', 'node-2.env', 'node-3.env']) {
      for (const name of envFileVars(join(siteA.env.CONF_DIR!, f)).keys()) expect(read.has(name), `${f}: ${name} is read by no config loader`).toBe(true);
    }
  }, 240_000);

  it('deploying with systemd: the units verify, run what the bare-process blocks run, with the env files they write', async () => {
    const unitDir = siteA.env.UNIT_DIR!;
    mkdirSync(unitDir, { recursive: true });
    const units = {
      'tessera-coordinator.service': block('ops-file', 'systemd-coordinator').body,
      'tessera-node@.service': block('ops-file', 'systemd-node').body,
    };
    for (const [file, text] of Object.entries(units)) {
      expect(text.split('\n')[0], 'the unit says where it goes').toBe(`# /etc/systemd/system/${file}`);
      writeFileSync(join(unitDir, file), text);
    }
    const coord = unitSettings(units['tessera-coordinator.service']);
    const node = unitSettings(units['tessera-node@.service']);
    // ExecStart: node, then the file the start block runs under APP_DIR (/opt/tessera in the page's table).
    const start = block('ops', 'start').body;
    expect(start).toContain('exec node "$APP_DIR/dist/coordinator/main.js"');
    expect(start).toContain('exec node "$APP_DIR/dist/node/main.js"');
    expect(coord.get('Service.ExecStart')).toBe('/usr/bin/node /opt/tessera/dist/coordinator/main.js');
    expect(node.get('Service.ExecStart')).toBe('/usr/bin/node /opt/tessera/dist/node/main.js');
    for (const f of ['dist/coordinator/main.js', 'dist/node/main.js']) expect(existsSync(join(ROOT, f)), f).toBe(true);
    // EnvironmentFile: the files the env-files block writes under CONF_DIR (/etc/tessera), for node %i.
    const envFiles = block('ops', 'env-files').body;
    expect(envFiles).toContain('cat > "$CONF_DIR/coordinator.env"');
    expect(envFiles).toContain('cat > "$CONF_DIR/node-$i.env"');
    expect(coord.get('Service.EnvironmentFile')).toBe('/etc/tessera/coordinator.env');
    expect(node.get('Service.EnvironmentFile')).toBe('/etc/tessera/node-%i.env');
    // The node writes only its own directory under STATE_DIR (/var/lib/tessera), which the env file names.
    expect(node.get('Service.ReadWritePaths')).toBe('/var/lib/tessera/node-%i');
    expect(envFiles).toContain('TESSERA_DATA_DIR=$STATE_DIR/node-$i/db');
    const have = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;
    if (have && existsSync('/usr/bin/node')) {
      const r = await runOps('systemd-verify', siteA);
      expect(r.stderr.trim(), 'systemd-analyze verify reports nothing').toBe('');
    } else {
      // No systemd-analyze (or no /usr/bin/node) here: the units were parsed above; the block is not run.
      ran.add('systemd-verify');
      console.warn('operations-doc: systemd-analyze or /usr/bin/node missing; the units were only parsed');
    }
  }, 60_000);
  it('TLS: the expiry check passes; node 1\'s certificate is rotated, served after the restart, and the CLI still trusts it', async () => {
    const check = await runOps('tls-check', siteA);
    expect(check.stdout.match(/notAfter=/g)).toHaveLength(4);
    const certFile = join(siteA.env.STATE_DIR!, 'node-1', 'tls', 'server.pem');
    const before = await sh(siteA, `openssl x509 -noout -fingerprint -sha256 -in "${certFile}"`);
    const rotated = await runOps('tls-rotate', siteA);
    const fingerprints = rotated.stdout.split('\n').filter((l) => /Fingerprint=/.test(l));
    expect(fingerprints).toHaveLength(2);
    expect(fingerprints[0], 'the node serves the new certificate').toBe(fingerprints[1]);
    expect(fingerprints[0]).not.toBe(before.trim());
    expect(rotated.stdout).toMatch(/signature: [0-9a-f]{128}/);
    // The new key is the owner's only, as the old one was.
    expect((await sh(siteA, `stat -c %a "${join(siteA.env.STATE_DIR!, 'node-1', 'tls', 'server.key')}"`)).trim()).toBe('600');
    // The coordinator's: the nodes reconnect to it by themselves (every /ready answers again) and a session runs.
    const coordinator = await runOps('tls-rotate-coordinator', siteA);
    const served = coordinator.stdout.split('\n').filter((l) => /Fingerprint=/.test(l));
    expect(served).toHaveLength(2);
    expect(served[0]).toBe(served[1]);
    expect(coordinator.stdout).toMatch(/signature: [0-9a-f]{128}/);
  }, 120_000);

  it('TLS: the CA is replaced with two rolling restarts; a cluster file pinning only the old CA is refused after', async () => {
    const oldCa = readFileSync(join(siteA.env.STATE_DIR!, 'ca', 'ca.pem'), 'utf8');
    const pinnedOld = join(work, 'old-ca-cluster.json');
    writeFileSync(pinnedOld, readFileSync(siteA.env.TESSERA_CLUSTER!), { mode: 0o600 });
    const both = await runOps('tls-rotate-ca', siteA);
    expect(both.stdout).toMatch(/signature: [0-9a-f]{128}/);
    // Every process serves a certificate of the new CA now: a client file that pins only the old CA is refused.
    expect((await bash(`tessera keys list --cluster "${pinnedOld}"`, envFor(siteA))).code).toBe(1);
    const retired = await runOps('tls-retire-ca', siteA);
    expect(retired.stdout).toMatch(/signature: [0-9a-f]{128}/);
    const newCa = readFileSync(join(siteA.env.STATE_DIR!, 'ca', 'ca.pem'), 'utf8');
    expect(newCa).not.toBe(oldCa);
    expect(readFileSync(join(siteA.env.STATE_DIR!, 'shared', 'ca.pem'), 'utf8')).toBe(newCa);
    const cluster = JSON.parse(readFileSync(siteA.env.TESSERA_CLUSTER!, 'utf8')) as { nodes: { ca: string }[] };
    for (const n of cluster.nodes) expect(n.ca).toBe(newCa);
    expect(existsSync(join(siteA.env.STATE_DIR!, 'ca.retired'))).toBe(false);
    expect((await sh(siteA, `stat -c %a "${siteA.env.TESSERA_CLUSTER}"`)).trim()).toBe('600');
  }, 180_000);

  it('KEK custody: every KEK file is 0600, escrowed and checked against its fingerprint', async () => {
    const r = await runOps('kek-escrow', siteA);
    expect(r.stdout.split('\n').filter((l) => l.endsWith('.kek')).map((l) => l.split(' ')[0])).toEqual(['600', '600', '600']);
    expect(r.stdout.match(/: OK$/gm)).toHaveLength(3);
    expect(readdirSync(siteA.env.ESCROW_DIR!).sort()).toEqual(['node-1.kek', 'node-2.kek', 'node-3.kek']);
  }, 60_000);

  it('logs and metrics: the log queries, a scrape of a node and the coordinator with the metrics token (401 without), the Prometheus job', async () => {
    const logs = await runOps('logs', siteA);
    expect(logs.stdout).toMatch(/^node-1: \d+ records checked, 0 unauthentic$/m);
    const metrics = await runOps('metrics', siteA);
    expect(metrics.stdout).toMatch(/^tessera_operations_total\{operation="sign",mode="session",outcome="ok"\} \d+$/m);
    expect(metrics.stdout).toMatch(/^tessera_coordinator_connected 1$/m);
    expect(metrics.stdout).toMatch(/^tessera_coordinator_nodes_online 3$/m);
    expect(metrics.stdout.trim().split('\n').at(-1)).toBe('401');
    // The Prometheus job scrapes what the block scraped, with the token file it wrote.
    const { parse } = await import('yaml');
    const prom = parse(block('ops-file', 'prometheus').body) as {
      scrape_configs: { job_name: string; scheme: string; tls_config: { ca_file: string }; authorization: { credentials_file: string }; static_configs: { targets: string[] }[] }[];
    };
    const targets = prom.scrape_configs.flatMap((j) => j.static_configs.flatMap((s) => s.targets)).sort();
    expect(targets).toEqual(['127.0.0.1:7700', '127.0.0.1:7701', '127.0.0.1:7702', '127.0.0.1:7703']);
    for (const job of prom.scrape_configs) {
      expect(job.scheme).toBe('https');
      expect(job.tls_config.ca_file).toBe('/var/lib/tessera/shared/ca.pem');
      expect(job.authorization.credentials_file).toBe('/etc/tessera/metrics-token');
    }
    expect(block('ops', 'metrics').body).toContain('> "$CONF_DIR/metrics-token"');
    expect(readFileSync(join(siteA.env.CONF_DIR!, 'metrics-token'), 'utf8').trim()).toBe(siteA.env.METRICS_TOKEN);
  }, 60_000);

  it('emergency: rotate and archive the old version, refresh every key, revoke a tenant\'s leaked API keys, fail-open and its audit entries', async () => {
    const rotated = await runOps('emergency-rotate', siteA);
    expect(rotated.stdout).toMatch(/"version":2/);
    expect(rotated.stdout).toContain('-----BEGIN PUBLIC KEY-----');
    const old = await bash('tessera sign --key-id payments --version 1 --message 00', envFor(siteA));
    expect(old.code, 'the archived version signs nothing').toBe(1);
    const refreshed = await runOps('emergency-refresh', siteA);
    expect(refreshed.stdout).toMatch(/keyId: payments[\s\S]*version: 2[\s\S]*epoch: 1/);
    // A tenant with a key on every node, then the leak: every one of its keys is revoked.
    await sh(siteA, 'tessera tenant create acme && tessera apikey create --tenant acme --out acme-cluster.json >/dev/null');
    await sh(siteA, 'tessera keys list --cluster acme-cluster.json');
    const revoked = await runOps('emergency-revoke', siteA);
    expect(revoked.stdout + revoked.stderr).toMatch(/revoked/i);
    const refused = await bash('tessera keys list --cluster acme-cluster.json', envFor(siteA));
    expect(refused.code, 'the revoked keys are refused').toBe(1);
    const failOpen = await runOps('fail-open', siteA);
    expect(failOpen.stdout).toMatch(/"active":true/);
    expect(failOpen.stdout).toMatch(/signature: [0-9a-f]{128}/);
    expect(failOpen.stdout).toMatch(/^\d+ \S+ policy\.fail-open\.enable /m);
    expect(failOpen.stdout).toMatch(/^\d+ \S+ policy\.fail-open\.disable /m);
    expect(logsOf(siteA)).toContain('EMERGENCY FAIL-OPEN switched on');
  }, 180_000);

  it('audit: the operator exports every node\'s log; the third party verifies them offline against the membership, and a tampered export fails', async () => {
    const exported = await runOps('audit-export', siteA);
    expect(exported.stdout).toMatch(/node-1\.json/);
    // The auditor's directory has the package installed (here: linked to this checkout, as `npm install` would place it).
    mkdirSync(join(work, 'node_modules'), { recursive: true });
    if (!existsSync(join(work, 'node_modules', 'tessera-threshold'))) symlinkSync(ROOT, join(work, 'node_modules', 'tessera-threshold'));
    const verified = await runOps('audit-verify-offline', siteA);
    for (const i of [1, 2, 3]) expect(verified.stdout).toMatch(new RegExp(`^node ${i}: verified: \\d+ entries, signed through seq \\d+$`, 'm'));
    // One entry of node 2's export edited: the same block exits 1 and names the problem.
    const file = join(work, 'audit-export', 'node-2.json');
    const exportDoc = JSON.parse(readFileSync(file, 'utf8')) as { entries: string[] };
    const k = exportDoc.entries.findIndex((e) => e.includes('"outcome":"ok"'));
    expect(k).toBeGreaterThanOrEqual(0);
    exportDoc.entries[k] = exportDoc.entries[k]!.replace('"outcome":"ok"', '"outcome":"failed"');
    writeFileSync(file, JSON.stringify(exportDoc));
    const tampered = await bash(block('ops', 'audit-verify-offline').body, envFor(siteA));
    expect(tampered.code).toBe(1);
    expect(tampered.stdout).toMatch(/^node 2: NOT verified/m);
    expect(tampered.stdout).toMatch(/seq \d+: edited:/);
    expect(tampered.stdout).toMatch(/^node 1: verified/m);
  }, 120_000);

  it('backup and restore: node 2 restored from its backup; repair names the keys changed since, which it refuses, while the others sign', async () => {
    await sh(siteA, 'tessera keygen --suite ed25519 --key-id ledger >/dev/null');
    const backup = await runOps('backup', siteA);
    expect(backup.stdout.trim().split('\n').sort()).toEqual(['node-2/api-keys.json', 'node-2/db/', 'node-2/schedule-secret', 'node-2/tls/']);
    const clean = await runOps('kek-not-in-data', siteA);
    expect(clean.stdout).toContain('no KEK in');
    // The backup holds node 2's store; started with another node's KEK, or with its own KEK readable
    // by others, a node refuses it (a scratch copy, never started for real: it would be a second node 2).
    const scratch = join(work, 'kek-check');
    mkdirSync(scratch, { recursive: true });
    await sh(siteA, `tar -C "${scratch}" -xzf "$(ls -1 "$BACKUP_DIR"/node-2-*.tar.gz | tail -n 1)" && cp "$CONF_DIR/kek/node-2.kek" "${scratch}/loose.kek" && chmod 644 "${scratch}/loose.kek"`);
    const startWith = (kekFile: string) =>
      bash(`set -a; . "$CONF_DIR/node-2.env"; TESSERA_DATA_DIR="${scratch}/node-2/db"; TESSERA_API_PORT=0; TESSERA_KEK_FILE="${kekFile}"; exec node "$APP_DIR/dist/node/main.js"`, envFor(siteA), 60_000);
    const wrongKek = await startWith(join(siteA.env.CONF_DIR!, 'kek', 'node-1.kek'));
    expect(wrongKek.code).toBe(1);
    expect(wrongKek.stderr).toMatch(/the KEK does not open this data dir/);
    const loose = await startWith(join(scratch, 'loose.kek'));
    expect(loose.code).toBe(1);
    expect(loose.stderr).toMatch(/has mode 0644: group\/others may access it; run chmod 600 on it/);
    for (const secret of secretsOf(siteA)) expect(wrongKek.stdout + wrongKek.stderr + loose.stdout + loose.stderr).not.toContain(secret);

    // Life goes on after the backup: ledger is refreshed, a new key is made.
    await sh(siteA, 'tessera refresh --key-id ledger >/dev/null && tessera keygen --suite ed25519 --key-id late >/dev/null');
    const restored = await runOps('restore', siteA);
    expect(restored.stdout).toMatch(/^node 2: node 2 holds key ledger version 1 at epoch 0; the others committed version 1 at epoch 1 .*restored from an older backup or lost data; its share must be re-dealt/m);
    expect(restored.stdout).toMatch(/^node 2: node 2 holds no version 1 of key late; /m);
    expect(restored.stdout).toContain('key ledger: node 2 needs its share re-dealt (above)');
    expect(restored.stdout).toContain('key late: node 2 needs its share re-dealt (above)');
    expect(restored.stdout).not.toContain('key payments: node 2 needs');
    // The restored node refuses its stale epoch and names no node; the others sign; payments (unchanged
    // since the backup) signs with the restored node.
    const stale = await bash('tessera sign --key-id ledger --message 00 --players 1,2', envFor(siteA));
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/EPOCH_MISMATCH|node 2 holds epoch 0 of ledger version 1/);
    expect(await sh(siteA, 'tessera sign --key-id ledger --message 00 --players 1,3')).toMatch(/signature: [0-9a-f]{128}/);
    expect(await sh(siteA, 'tessera sign --key-id late --message 00 --players 1,3')).toMatch(/signature: [0-9a-f]{128}/);
    expect(await sh(siteA, 'tessera sign --key-id payments --message 00 --players 1,2')).toMatch(/signature: [0-9a-f]{128}/);
  }, 240_000);

  it('replacing a node: node 2 (restored, stale) gets a new store, identity and KEK; its keys are re-dealt and it signs them again', async () => {
    const kekFile = join(siteA.env.CONF_DIR!, 'kek', 'node-2.kek');
    const oldKek = readFileSync(kekFile, 'utf8');
    const replaced = await runOps('replace-node', siteA);
    expect(replaced.stdout).toMatch(/^change: replaced 2$/m);
    expect(replaced.stdout).toMatch(/^keys: \d+ version\(s\): .*, 0 failed$/m);
    expect(replaced.stdout).toMatch(/^epoch 1: members 1,2,3; every node agrees$/m);
    expect(readFileSync(join(siteA.env.CONF_DIR!, 'kek', 'node-2.kek.retired'), 'utf8')).toBe(oldKek);
    expect(readFileSync(kekFile, 'utf8')).not.toBe(oldKek);
    expect((await sh(siteA, `stat -c %a "${kekFile}"`)).trim()).toBe('600');
    // The keys node 2 had lost since its backup sign with it again.
    for (const key of ['ledger', 'late', 'payments']) expect(await sh(siteA, `tessera sign --key-id ${key} --message 00 --players 1,2`)).toMatch(/signature: [0-9a-f]{128}/);
    expect(await sh(siteA, 'tessera audit show --node 1')).toMatch(/membership\.change/);
    // Nothing is left of the scratch bootstrap but the node's store, and the new KEK is escrowed by the same block as before.
    await runOps('kek-escrow', siteA);
  }, 180_000);

  it('multi-site failover: site B deployed by the same runbook, standby bundles exported from A, A lost, B imports and signs under the same public key', async () => {
    const siteB = await makeSite('b');
    await runOps('bootstrap', siteB);
    await runOps('env-files', siteB);
    await runOps('start', siteB);
    const prepared = await runOps('failover-prepare', siteA, { SITE_B_CLUSTER: siteB.env.TESSERA_CLUSTER! });
    expect(prepared.stdout).toMatch(/^out: standby\/payments\.bundle\.json$/m);
    expect(prepared.stdout.trim().split('\n').at(-1), 'ls standby').toBe('payments.bundle.json');
    const publicKeyAtA = (await sh(siteA, 'tessera public-key --key-id payments')).trim();
    expect(publicKeyAtA).toMatch(/[0-9a-f]{64}/);
    // Site A is lost.
    await stopSite(siteA);
    const imported = await runOps('failover-import', siteB);
    expect(imported.stdout).toMatch(/signature: [0-9a-f]{128}/);
    expect((await sh(siteB, 'tessera public-key --key-id payments')).trim()).toBe(publicKeyAtA);
    expect(await sh(siteB, 'tessera keys list --json')).toMatch(/"exportable":true/);
  }, 240_000);

});

describe('docs/operations.md: nothing secret leaks, every block ran', () => {
  it('no API key, KEK or metrics token in any log line', () => {
    for (const site of sites) {
      const logs = logsOf(site);
      expect(logs.length).toBeGreaterThan(0);
      for (const secret of secretsOf(site)) expect(logs.includes(secret)).toBe(false);
    }
  });

  it('no KEK, API key or metrics token in anything the ops: blocks printed', () => {
    const printed = outputs.join('');
    for (const site of sites) for (const secret of secretsOf(site)) expect(printed.includes(secret)).toBe(false);
  });

  it('every ops: block of the page was run', () => {
    expect([...ran].sort()).toEqual([...RUNS].sort());
  });
});
