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
import { Cluster, NodeClient, TesseraClientError, generateWrappingKeyPair, splitAndWrap, unwrapAndCombine, wrappingKeyFingerprint } from './client.js';
import { runDev } from './dev.js';
import { readImportKeysFile, readPrivateKeyFile, readWrappingKeyPair, readWrappingPublicKey, writeWrappingKeyPair, type ImportKeysFileJson } from './keyfiles.js';
import { toHex } from '../core/bytes.js';
import { isWrapKem } from '../core/wrap.js';

export interface ClusterFile {
  coordinator: string;
  threshold: number;
  nodes: { index: number; url: string; apiKey: string; ca?: string }[];
}

class UsageError extends Error {}

const USAGE = `usage:
  tessera dev [--nodes 3] [--threshold 2] [--data .tessera/dev] [--port 7700] [--tls]
  tessera keygen --suite ${[...SIGNING_SUITES, ...KEM_SUITES].join('|')} [--key-id ID] [--threshold T] [--exportable] [--json]
  tessera public-key --key-id ID [--json]
  tessera sign --key-id ID --message HEX [--players 1,3] [--json]
  tessera decapsulate --key-id ID --enc HEX [--players 2,3] [--json]
  tessera refresh --key-id ID [--json]
  tessera import-key [--node I] [--json]                    the nodes' import public keys (an import-keys file with --json)
  tessera export --key-id ID (--wrapping-key FILE [--wrapping-key FILE ...] | --import-keys FILE) --out BUNDLE [--version V] [--json]
  tessera import --in BUNDLE [--key-id ID] [--exportable] [--threshold T] [--json]
offline (no cluster):
  tessera wrapping-key generate --out FILE [--kem ml-kem-768|x-wing] [--json]   FILE (0600) and FILE.pub
  tessera split-and-wrap --suite S --private-key-file F --import-keys FILE --out BUNDLE [--key-id ID] [--threshold T] [--json]
  tessera combine --in BUNDLE --wrapping-private-key FILE [--wrapping-private-key FILE ...] [--json]
client commands read the cluster file: --cluster FILE, env TESSERA_CLUSTER, default .tessera/dev/cluster.json`;

function loadCluster(path: string): Cluster {
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
  return new Cluster(nodes, { threshold: parsed.threshold });
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
  // `tessera wrapping-key generate ...`: a subcommand word before the options.
  const sub = command === 'wrapping-key' && rest[0] !== undefined && !rest[0].startsWith('-') ? rest.shift() : undefined;
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

  const cluster = loadCluster(values.cluster ?? process.env.TESSERA_CLUSTER ?? '.tessera/dev/cluster.json');
  const version = intArg('version');
  switch (command) {
    case 'keygen': {
      const suite = required('suite', values.suite);
      if (!isSuiteId(suite)) throw new UsageError(`--suite: unknown suite "${suite}"`);
      const threshold = intArg('threshold');
      if (threshold !== undefined && threshold > cluster.size) {
        throw new UsageError(`--threshold ${threshold} is above the node count ${cluster.size}`);
      }
      const k = await cluster.keygen({ suite, keyId: values['key-id'], threshold, exportable: values.exportable === true });
      print(json, { keyId: k.keyId, version: k.version, suite: k.suite, publicKey: k.publicKey });
      return 0;
    }
    case 'public-key': {
      const k = await cluster.getKey(required('key-id', values['key-id']), version);
      print(json, { keyId: k.keyId, version: k.version, suite: k.suite, publicKey: k.publicKey });
      return 0;
    }
    case 'sign': {
      const keyId = required('key-id', values['key-id']);
      const key = await cluster.getKey(keyId, version);
      if (!(SIGNING_SUITES as readonly string[]).includes(key.suite)) throw new UsageError(`key ${keyId} is a ${key.suite} key and cannot sign`);
      const r = await cluster.sign({ keyId, message: hexArg('message', values.message), players: parsePlayers(values.players), version });
      print(json, { signature: r.signature, ...(json ? { keyId, version: r.version } : {}) });
      return 0;
    }
    case 'decapsulate': {
      const keyId = required('key-id', values['key-id']);
      const key = await cluster.getKey(keyId, version);
      if (!(KEM_SUITES as readonly string[]).includes(key.suite)) throw new UsageError(`key ${keyId} is a ${key.suite} key and cannot decapsulate`);
      const r = await cluster.decapsulate({ keyId, enc: hexArg('enc', values.enc), players: parsePlayers(values.players), version });
      print(json, { sharedSecret: r.sharedSecret });
      return 0;
    }
    case 'refresh': {
      const r = await cluster.refresh({ keyId: required('key-id', values['key-id']), version });
      print(json, { keyId: r.keyId, epoch: r.epoch });
      return 0;
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
