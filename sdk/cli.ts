/**
 * The `tessera` command line: `tessera dev` runs a local cluster; the client commands use the SDK
 * against the cluster file it writes. Bad input exits non-zero with one line on stderr, never a
 * stack trace. With --json each client command prints exactly one JSON object.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { fromHex } from '../core/bytes.js';
import { isTesseraError } from '../core/errors.js';
import { KEM_SUITES, SIGNING_SUITES, isSuiteId } from '../core/suites.js';
import { Cluster, NodeClient, TesseraClientError, generateWrappingKeyPair, splitAndWrap, unwrapAndCombine, wrappingKeyFingerprint, type KeyState } from './client.js';
import { runDev } from './dev.js';
import { readImportKeysFile, readPrivateKeyFile, readWrappingKeyPair, readWrappingPublicKey, writeWrappingKeyPair, type ImportKeysFileJson } from './keyfiles.js';
import { toHex } from '../core/bytes.js';
import { isWrapKem } from '../core/wrap.js';

import type { ClusterFile } from './cluster-file.js';
export type { ClusterFile };

class UsageError extends Error {}

const USAGE = `usage:
  tessera dev [--nodes 3] [--threshold 2] [--data .tessera/dev] [--port 7700] [--tls]
  tessera keygen --suite ${[...SIGNING_SUITES, ...KEM_SUITES].join('|')} [--key-id ID] [--threshold T] [--exportable] [--rotation-period 30d] [--json]
  tessera public-key --key-id ID [--version V] [--json]
  tessera sign --key-id ID --message HEX [--players 1,3] [--version V] [--json]
  tessera verify --key-id ID --message HEX --signature HEX [--version V] [--json]
  tessera decapsulate --key-id ID --enc HEX [--players 2,3] [--version V] [--json]
  tessera refresh --key-id ID [--version V] [--json]
  tessera repair --key-id ID [--json]                         finish interrupted commits from the nodes' certificates
  tessera rotate --key-id ID [--version V] [--json]           new version by DKG, the old one retired
  tessera retire|archive|activate|destroy --key-id ID --version V [--json]
  tessera audit verify [--node I] [--json]                   exit 0 only if the chain and every checkpoint verify
  tessera tenant create NAME [--json]                         on every node (admin API key)
  tessera apikey create --tenant NAME [--role tenant|admin] [--out CLUSTER_FILE] [--json]   one key per node, shown once
  tessera policy get [--node I] [--json]
  tessera policy set --file RULES.json [--node I] [--json]    (every node unless --node)
  tessera policy fail-open [--minutes M] [--node I] [--json]  emergency; reverts by itself (default: the node's window)
  tessera policy fail-open-off [--node I] [--json]
  tessera import-key [--node I] [--json]                    the nodes' import public keys (an import-keys file with --json)
  tessera export --key-id ID (--wrapping-key FILE [--wrapping-key FILE ...] | --import-keys FILE) --out BUNDLE [--version V] [--json]
  tessera import --in BUNDLE [--key-id ID] [--exportable] [--threshold T] [--json]
offline (no cluster):
  tessera wrapping-key generate --out FILE [--kem ml-kem-768|x-wing] [--json]   FILE (0600) and FILE.pub
  tessera split-and-wrap --suite S --private-key-file F --import-keys FILE --out BUNDLE [--key-id ID] [--threshold T] [--json]
  tessera combine --in BUNDLE --wrapping-private-key FILE [--wrapping-private-key FILE ...] [--json]
client commands read the cluster file: --cluster FILE, env TESSERA_CLUSTER, default .tessera/dev/cluster.json`;

function loadCluster(path: string): { cluster: Cluster; file: ClusterFile } {
  let parsed: ClusterFile;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as ClusterFile;
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found (is `tessera dev` running?)' : 'is not valid JSON';
    throw new UsageError(`cluster file ${path} ${why}`);
  }
  if (!Array.isArray(parsed.nodes) || parsed.nodes.length < 2) throw new UsageError(`cluster file ${path} lists fewer than 2 nodes`);
  const nodes = [...parsed.nodes]
    .sort((a, b) => a.index - b.index)
    .map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, ...(n.ca ? { ca: n.ca } : {}) }));
  return { cluster: new Cluster(nodes, { threshold: parsed.threshold, presign: { auto: false } }), file: parsed };
}

/** --node I (one node) or every node of the cluster file. */
function selectNodes(cluster: Cluster, node: number | undefined): number[] {
  if (node === undefined) return cluster.nodes.map((_, k) => k + 1);
  if (node < 1 || node > cluster.size) throw new UsageError(`--node must be 1..${cluster.size}, got ${node}`);
  return [node];
}

/** A duration: a whole number with a unit, ms, s, m, h or d (e.g. 30d, 12h, 90s). */
export function parseDuration(name: string, v: string): number {
  const m = /^(\d{1,12})(ms|s|m|h|d)$/.exec(v.trim());
  if (!m) throw new UsageError(`--${name}: expected a duration such as 30d, 12h, 15m, 90s or 500ms, got "${v}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

/** A policy rules file: a JSON array of rules, or {"rules": [...]} (node/governance/policy.ts checks each rule). */
function readRulesFile(path: string): unknown[] {
  const v = readBundleFile(path) as { rules?: unknown };
  const rules = Array.isArray(v) ? v : v && typeof v === 'object' && Array.isArray(v.rules) ? v.rules : undefined;
  if (!rules) throw new UsageError(`${path}: expected a JSON array of rules or {"rules": [...]}`);
  return rules;
}

/** A bundle file: JSON text (core/bundle.ts checks the rest). */
function readBundleFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'cannot be read'}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UsageError(`${path}: is not valid JSON`);
  }
}

function parsePlayers(s: string | undefined): number[] | undefined {
  if (s === undefined) return undefined;
  const players = s.split(',').map((x) => x.trim());
  if (players.some((p) => !/^\d{1,3}$/.test(p))) throw new UsageError(`--players: expected comma-separated node numbers, got "${s}"`);
  return players.map(Number);
}

function hexArg(name: string, v: string | undefined): string {
  if (v === undefined) throw new UsageError(`--${name} is required`);
  fromHex(v, `--${name}`); // validates, throws a one-line typed error
  return v.toLowerCase();
}

function required(name: string, v: string | undefined): string {
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

function print(json: boolean, obj: Record<string, unknown>): void {
  if (json) process.stdout.write(JSON.stringify(obj) + '\n');
  else for (const [k, v] of Object.entries(obj)) process.stdout.write(`${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}\n`);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return command ? 0 : 2;
  }
  // `tessera wrapping-key generate ...`, `tessera audit verify`, `tessera tenant create NAME`, ...: a
  // subcommand word (and for tenant create, the name) before the options.
  const SUBCOMMANDS: Record<string, number> = { 'wrapping-key': 1, audit: 1, tenant: 2, apikey: 1, policy: 1 };
  const words: string[] = [];
  while (words.length < (SUBCOMMANDS[command] ?? 0) && rest[0] !== undefined && !rest[0].startsWith('-')) words.push(rest.shift()!);
  const sub = words[0];
  const { values } = parseArgs({
    args: rest,
    strict: true,
    allowPositionals: false,
    options: {
      json: { type: 'boolean' },
      cluster: { type: 'string' },
      suite: { type: 'string' },
      'key-id': { type: 'string' },
      threshold: { type: 'string' },
      exportable: { type: 'boolean' },
      message: { type: 'string' },
      enc: { type: 'string' },
      players: { type: 'string' },
      nodes: { type: 'string' },
      data: { type: 'string' },
      port: { type: 'string' },
      version: { type: 'string' },
      tls: { type: 'boolean' },
      node: { type: 'string' },
      in: { type: 'string' },
      out: { type: 'string' },
      kem: { type: 'string' },
      'wrapping-key': { type: 'string', multiple: true },
      'wrapping-private-key': { type: 'string', multiple: true },
      'import-keys': { type: 'string' },
      'private-key-file': { type: 'string' },
      'rotation-period': { type: 'string' },
      signature: { type: 'string' },
      tenant: { type: 'string' },
      role: { type: 'string' },
      file: { type: 'string' },
      minutes: { type: 'string' },
    },
  });
  const json = values.json === true;
  const intArg = (name: 'threshold' | 'nodes' | 'port' | 'version' | 'node', fallback?: number): number | undefined => {
    const v = values[name];
    if (v === undefined) return fallback;
    if (!/^\d+$/.test(v)) throw new UsageError(`--${name}: expected a whole number, got "${v}"`);
    return Number(v);
  };

  if (command === 'dev') {
    const nodes = intArg('nodes', 3)!;
    const threshold = intArg('threshold', 2)!;
    if (nodes < 2 || nodes > 32) throw new UsageError(`--nodes must be 2..32, got ${nodes}`);
    if (threshold < 2 || threshold > nodes) throw new UsageError(`--threshold must be 2..${nodes} (the node count), got ${threshold}`);
    return runDev({ nodes, threshold, dataDir: values.data ?? '.tessera/dev', port: intArg('port', 7700)!, tls: values.tls === true });
  }

  // Offline commands: key files and bundles only, no cluster.
  switch (command) {
    case 'wrapping-key': {
      if (sub !== 'generate') throw new UsageError(`usage: tessera wrapping-key generate --out FILE [--kem ml-kem-768|x-wing]`);
      const kem = values.kem ?? 'ml-kem-768';
      if (!isWrapKem(kem)) throw new UsageError(`--kem must be ml-kem-768 or x-wing, got "${kem}"`);
      const out = required('out', values.out);
      const pair = await generateWrappingKeyPair(kem);
      try {
        const { publicPath, fingerprint } = writeWrappingKeyPair(out, pair);
        print(json, { kem, privateKeyFile: out, publicKeyFile: publicPath, fingerprint, ...(json ? { publicKey: toHex(pair.publicKey) } : {}) });
      } finally {
        pair.privateKey.fill(0);
      }
      return 0;
    }
    case 'split-and-wrap': {
      const suite = required('suite', values.suite);
      if (!isSuiteId(suite)) throw new UsageError(`--suite: unknown suite "${suite}"`);
      const importKeys = readImportKeysFile(required('import-keys', values['import-keys']));
      const parties = importKeys.length;
      if (parties < 2) throw new UsageError(`--import-keys lists ${parties} node; a cluster has at least 2`);
      const threshold = intArg('threshold', Math.floor(parties / 2) + 1)!;
      if (threshold < 2 || threshold > parties) throw new UsageError(`--threshold must be 2..${parties} (the node count), got ${threshold}`);
      const out = required('out', values.out);
      const privateKey = readPrivateKeyFile(required('private-key-file', values['private-key-file']));
      let bundle;
      try {
        bundle = await splitAndWrap(privateKey, suite, threshold, parties, importKeys, { keyId: values['key-id'] ?? `key-${toHex(randomBytes(8))}` });
      } finally {
        privateKey.fill(0);
      }
      writeFileSync(out, JSON.stringify(bundle, null, 2) + '\n', { mode: 0o600 });
      print(json, { keyId: bundle.keyId, suite, threshold, parties, publicKey: bundle.publicKey, out });
      return 0;
    }
    case 'combine': {
      const bundle = readBundleFile(required('in', values.in));
      const files = values['wrapping-private-key'] ?? [];
      if (files.length === 0) throw new UsageError('--wrapping-private-key is required (once per key file)');
      const pairs = files.map(readWrappingKeyPair);
      try {
        const { privateKey, publicKey } = await unwrapAndCombine(bundle, pairs);
        print(json, { privateKey: toHex(privateKey), publicKey: toHex(publicKey) });
        privateKey.fill(0);
      } finally {
        for (const p of pairs) p.privateKey.fill(0);
      }
      return 0;
    }
  }

  const { cluster, file: clusterFile } = loadCluster(values.cluster ?? process.env.TESSERA_CLUSTER ?? '.tessera/dev/cluster.json');
  const version = intArg('version');
  switch (command) {
    case 'keygen': {
      const suite = required('suite', values.suite);
      if (!isSuiteId(suite)) throw new UsageError(`--suite: unknown suite "${suite}"`);
      const threshold = intArg('threshold');
      if (threshold !== undefined && threshold > cluster.size) {
        throw new UsageError(`--threshold ${threshold} is above the node count ${cluster.size}`);
      }
      const period = values['rotation-period'];
      const rotationPeriodMs = period === undefined ? undefined : parseDuration('rotation-period', period);
      const k = await cluster.keygen({ suite, keyId: values['key-id'], threshold, exportable: values.exportable === true, rotationPeriodMs });
      print(json, { keyId: k.keyId, version: k.version, suite: k.suite, publicKey: k.publicKey, ...(k.rotation ? { rotation: k.rotation } : {}) });
      return 0;
    }
    case 'public-key': {
      const k = await cluster.getKey(required('key-id', values['key-id']), version);
      // state only when the version is not active (the output of an active key equals keygen's).
      print(json, { keyId: k.keyId, version: k.version, suite: k.suite, publicKey: k.publicKey, ...(k.state !== 'active' ? { state: k.state } : {}), ...(k.rotation ? { rotation: k.rotation } : {}) });
      return 0;
    }
    case 'sign': {
      const keyId = required('key-id', values['key-id']);
      const key = await cluster.getKey(keyId, version);
      if (!(SIGNING_SUITES as readonly string[]).includes(key.suite)) throw new UsageError(`key ${keyId} is a ${key.suite} key and cannot sign`);
      const r = await cluster.sign({ keyId, message: hexArg('message', values.message), players: parsePlayers(values.players), version });
      print(json, { signature: r.signature, ...(json ? { keyId } : {}), version: r.version });
      return 0;
    }
    case 'verify': {
      const keyId = required('key-id', values['key-id']);
      const r = await cluster.nodes[0]!.verify(keyId, { message: hexArg('message', values.message), signature: hexArg('signature', values.signature), version });
      print(json, { keyId, version: r.version, valid: r.valid });
      return r.valid ? 0 : 1;
    }
    case 'rotate': {
      const r = await cluster.rotate({ keyId: required('key-id', values['key-id']), version });
      print(json, { keyId: r.keyId, version: r.version, previousVersion: r.previousVersion, publicKey: r.publicKey });
      return 0;
    }
    case 'retire':
    case 'archive':
    case 'activate':
    case 'destroy': {
      const keyId = required('key-id', values['key-id']);
      if (version === undefined) throw new UsageError(`--version is required: ${command} acts on one version`);
      const state = ({ retire: 'retired', archive: 'archived', activate: 'active', destroy: 'destroyed' } as const)[command] as KeyState;
      const k = await cluster.setState({ keyId, version, state });
      print(json, { keyId: k.keyId, version: k.version, state: k.state, publicKey: k.publicKey });
      return 0;
    }
    case 'audit': {
      if (sub !== 'verify') throw new UsageError('usage: tessera audit verify [--node I] [--json]');
      const nodes = selectNodes(cluster, intArg('node'));
      const results: (Awaited<ReturnType<NodeClient['verifyAuditLog']>> & { node: number })[] = [];
      for (const i of nodes) {
        const key = clusterFile.nodes.find((n) => n.index === i)?.identityPublicKey;
        const v = await cluster.nodes[i - 1]!.verifyAuditLog(key);
        results.push({ node: i, ...v });
      }
      const bad = results.filter((r) => !r.complete);
      const report = (r: (typeof results)[number]) => ({
        node: r.node,
        ok: r.ok,
        complete: r.complete,
        entries: r.entries,
        headSeq: r.headSeq,
        signedThrough: r.signedThrough,
        identityKey: r.identityKeySource === 'given' ? 'cluster file' : 'reported by the node',
        problems: r.problems,
      });
      if (json) print(true, nodes.length === 1 ? report(results[0]!) : { nodes: results.map(report), ok: bad.length === 0 });
      else for (const r of results) process.stdout.write(`node ${r.node}: ${r.complete ? 'verified' : 'DOES NOT VERIFY'} (${r.entries} entries, signed through ${r.signedThrough})\n`);
      if (bad.length) {
        const first = bad[0]!;
        const p = first.problems[0];
        const why = p ? `${p.kind} at seq ${p.seq}: ${p.message}` : `entries ${first.unsigned?.fromSeq}..${first.unsigned?.toSeq} are not covered by a signed checkpoint`;
        throw new TesseraClientError('AUDIT_VERIFICATION_FAILED', `the audit log of node ${first.node} does not verify: ${why}`);
      }
      return 0;
    }
    case 'tenant': {
      const name = words[1];
      if (sub !== 'create' || name === undefined) throw new UsageError('usage: tessera tenant create NAME [--json]');
      const r = await cluster.createTenant(name);
      print(json, r);
      return 0;
    }
    case 'apikey': {
      if (sub !== 'create') throw new UsageError('usage: tessera apikey create --tenant NAME [--role tenant|admin] [--out CLUSTER_FILE] [--json]');
      const tenant = required('tenant', values.tenant);
      const role = values.role;
      if (role !== undefined && role !== 'tenant' && role !== 'admin') throw new UsageError(`--role must be tenant or admin, got "${role}"`);
      const keys = await cluster.createApiKeys(tenant, role);
      if (values.out !== undefined) {
        // A cluster file for the tenant: the same nodes, each with this tenant's key for it.
        const file: ClusterFile = { ...clusterFile, nodes: clusterFile.nodes.map((n) => ({ ...n, apiKey: keys.find((k) => k.node === n.index)!.apiKey })) };
        writeFileSync(values.out, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
      }
      print(json, { tenant, ...(role ? { role } : {}), keys, ...(values.out !== undefined ? { clusterFile: values.out } : {}) });
      return 0;
    }
    case 'policy': {
      const nodes = selectNodes(cluster, intArg('node'));
      const each = async <T>(fn: (c: NodeClient) => Promise<T>) => Promise.all(nodes.map(async (i) => ({ node: i, ...(await fn(cluster.nodes[i - 1]!)) })));
      switch (sub) {
        case 'get':
          print(json, { nodes: await each((c) => c.getPolicy()) });
          return 0;
        case 'set': {
          const rules = readRulesFile(required('file', values.file));
          print(json, { nodes: (await each((c) => c.setPolicy(rules))).map((r) => ({ node: r.node, version: r.version, rules: r.rules.length })) });
          return 0;
        }
        case 'fail-open': {
          const m = values.minutes;
          if (m !== undefined && !/^\d+(\.\d+)?$/.test(m)) throw new UsageError(`--minutes: expected a number of minutes, got "${m}"`);
          const durationMs = m === undefined ? undefined : Math.round(Number(m) * 60_000);
          if (durationMs !== undefined && durationMs < 1) throw new UsageError('--minutes must be more than 0');
          print(json, { nodes: await each((c) => c.enableFailOpen(durationMs)) });
          return 0;
        }
        case 'fail-open-off':
          print(json, { nodes: await each((c) => c.disableFailOpen()) });
          return 0;
        default:
          throw new UsageError('usage: tessera policy get|set|fail-open|fail-open-off [--node I] [--file RULES.json] [--minutes M]');
      }
    }
    case 'decapsulate': {
      const keyId = required('key-id', values['key-id']);
      const key = await cluster.getKey(keyId, version);
      if (!(KEM_SUITES as readonly string[]).includes(key.suite)) throw new UsageError(`key ${keyId} is a ${key.suite} key and cannot decapsulate`);
      const r = await cluster.decapsulate({ keyId, enc: hexArg('enc', values.enc), players: parsePlayers(values.players), version });
      print(json, { sharedSecret: r.sharedSecret, version: r.version });
      return 0;
    }
    case 'refresh': {
      const r = await cluster.refresh({ keyId: required('key-id', values['key-id']), version });
      print(json, { keyId: r.keyId, version: r.version, epoch: r.epoch });
      return 0;
    }
    case 'repair': {
      const r = await cluster.repair(required('key-id', values['key-id']));
      if (json) print(json, r as unknown as Record<string, unknown>);
      else {
        const lines = [`key ${r.keyId}: ${r.certificates.length} certificate(s) held by the nodes`];
        for (const n of r.nodes) {
          for (const a of n.applied) lines.push(`node ${n.node}: ${a.outcome} ${a.operation} of version ${a.version} (session ${a.sessionId})`);
          if (n.finding) lines.push(`node ${n.node}: ${n.finding}`);
          for (const p of n.problems) lines.push(`node ${n.node}: cannot repair: ${p}`);
          for (const d of n.dropped) lines.push(`node ${n.node}: dropped the staged change of session ${d} (not every node staged it; this node never released its vote)`);
          if (n.waiting) lines.push(`node ${n.node}: ${n.waiting.operation} of version ${n.waiting.version} still staged (session ${n.waiting.sessionId})${n.waiting.released ? ': its vote was released; only its certificate can finish it' : ''}`);
          if (!n.applied.length && !n.dropped.length && !n.problems.length && !n.waiting && !n.restored) lines.push(`node ${n.node}: up to date`);
        }
        process.stdout.write(lines.join('\n') + '\n');
      }
      return r.nodes.some((n) => n.problems.length > 0 || n.restored) ? 1 : 0;
    }
    case 'import-key': {
      const node = intArg('node');
      if (node !== undefined && (node < 1 || node > cluster.size)) throw new UsageError(`--node must be 1..${cluster.size}, got ${node}`);
      const keys = (await cluster.importKeys()).filter((k) => node === undefined || k.index === node);
      const file: ImportKeysFileJson = { importKeys: keys };
      if (json) process.stdout.write(JSON.stringify(file) + '\n');
      else for (const k of keys) process.stdout.write(`node ${k.index}: ${k.kem} fingerprint ${toHex(wrappingKeyFingerprint(fromHex(k.publicKey, 'importPublicKey')))}\n`);
      return 0;
    }
    case 'export': {
      const keyId = required('key-id', values['key-id']);
      const files = values['wrapping-key'] ?? [];
      const importKeysFile = values['import-keys'];
      if ((files.length === 0) === (importKeysFile === undefined)) {
        throw new UsageError('give the wrapping keys as --wrapping-key FILE (one for all shares, or one per share) or as --import-keys FILE');
      }
      const wrappingKeys = importKeysFile !== undefined ? readImportKeysFile(importKeysFile) : files.map((f) => readWrappingPublicKey(f).publicKey);
      const out = required('out', values.out);
      const bundle = await cluster.exportKey({ keyId, wrappingKeys, version });
      writeFileSync(out, JSON.stringify(bundle, null, 2) + '\n', { mode: 0o600 });
      print(json, { keyId, version: bundle.keyVersion, publicKey: bundle.publicKey, out });
      return 0;
    }
    case 'import': {
      const bundle = readBundleFile(required('in', values.in));
      const k = await cluster.importKey({ bundle, keyId: values['key-id'], exportable: values.exportable === true, threshold: intArg('threshold') });
      print(json, { keyId: k.keyId, version: k.version, suite: k.suite, publicKey: k.publicKey, exportable: k.exportable });
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${command}"\n${USAGE}`);
  }
}

/** One line for any error: code and message, never a stack. */
export function describeError(e: unknown): string {
  if (e instanceof TesseraClientError || isTesseraError(e)) {
    const culprits = e.culprits?.length ? ` (culprits: nodes ${e.culprits.join(', ')})` : '';
    return `tessera: ${e.code}: ${e.message}${culprits}`.replace(/\s*\n\s*/g, ' ');
  }
  if (e instanceof UsageError) return `tessera: ${e.message}`;
  if (e instanceof Error && (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) return `tessera: ${e.message}`;
  return `tessera: ${(e as Error)?.message ?? String(e)}`.replace(/\s*\n\s*/g, ' ');
}

export async function run(argv: string[]): Promise<void> {
  try {
    process.exitCode = await main(argv);
  } catch (e) {
    const line = describeError(e);
    process.stderr.write((e instanceof UsageError && line.includes('usage:') ? line : line.split('\n')[0]) + '\n');
    process.exitCode = e instanceof UsageError ? 2 : 1;
  }
}
