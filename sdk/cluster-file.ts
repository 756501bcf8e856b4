/**
 * The cluster file (`cluster.json`, written by `tessera dev` and `tessera apikey create --out`): the
 * endpoints, API keys and identity keys an operator's SDK needs. One definition for the CLI (sdk/cli/),
 * the dev cluster (sdk/dev.ts) and applications, so neither of the first two imports the other, and
 * one loader (loadCluster) so no application rebuilds NodeClients by hand.
 */
import { readFileSync } from 'node:fs';
import { Cluster, NodeClient, type ApproveHook } from './client.js';
import { normalizeHex } from './formats.js';
import { checkTimeoutMs, TesseraClientError } from './http.js';
import type { PresignOptions } from './presign.js';

export interface ClusterFile {
  coordinator: string;
  threshold: number;
  /** identityPublicKey (hex ML-DSA-65): what the node's audit checkpoints are verified against. */
  nodes: { index: number; url: string; apiKey: string; ca?: string; identityPublicKey?: string }[];
}

/** Where loadCluster looks without a path: env TESSERA_CLUSTER, else the dev cluster's file. */
export const DEFAULT_CLUSTER_FILE = '.tessera/dev/cluster.json';

/**
 * Read and check a cluster file. Errors (TesseraClientError): NOT_FOUND (no such file), BAD_INPUT
 * (unreadable, not JSON, or a field that is missing or wrong, named as `nodes[1].url`).
 */
export function readClusterFile(path: string): ClusterFile {
  if (typeof path !== 'string' || path === '') throw new TesseraClientError('BAD_INPUT', 'cluster file: expected a path');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new TesseraClientError('NOT_FOUND', `cluster file ${path} not found (is \`tessera dev\` running? or pass the file's path)`);
    throw new TesseraClientError('BAD_INPUT', `cluster file ${path} cannot be read (${code ?? 'error'})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new TesseraClientError('BAD_INPUT', `cluster file ${path} is not valid JSON`);
  }
  const bad = (field: string, why: string) => new TesseraClientError('BAD_INPUT', `cluster file ${path}: ${field}: ${why}`);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw bad('(top level)', 'expected a JSON object');
  const f = raw as Record<string, unknown>;
  const url = (v: unknown, field: string): string => {
    if (typeof v !== 'string') throw bad(field, 'expected a URL string');
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw bad(field, `not a URL: ${JSON.stringify(v).slice(0, 80)}`);
    }
    if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) throw bad(field, `unsupported scheme ${u.protocol}`);
    return v;
  };
  const coordinator = url(f.coordinator, 'coordinator');
  if (!Array.isArray(f.nodes) || f.nodes.length < 2) throw bad('nodes', 'expected an array of at least 2 nodes');
  const nodes = f.nodes.map((n: unknown, k): ClusterFile['nodes'][number] => {
    const at = `nodes[${k}]`;
    if (!n || typeof n !== 'object' || Array.isArray(n)) throw bad(at, 'expected an object');
    const o = n as Record<string, unknown>;
    if (typeof o.index !== 'number' || !Number.isSafeInteger(o.index) || o.index < 1) throw bad(`${at}.index`, 'expected a node number (1, 2, ...)');
    if (typeof o.apiKey !== 'string' || o.apiKey === '') throw bad(`${at}.apiKey`, 'expected the API key (a non-empty string)');
    if (o.ca !== undefined && (typeof o.ca !== 'string' || !o.ca.includes('-----BEGIN CERTIFICATE-----'))) throw bad(`${at}.ca`, 'expected a PEM certificate');
    let identityPublicKey: string | undefined;
    if (o.identityPublicKey !== undefined) {
      try {
        identityPublicKey = normalizeHex(o.identityPublicKey as string, `${at}.identityPublicKey`);
      } catch {
        throw bad(`${at}.identityPublicKey`, 'expected hex');
      }
    }
    return {
      index: o.index,
      url: url(o.url, `${at}.url`),
      apiKey: o.apiKey,
      ...(o.ca !== undefined ? { ca: o.ca as string } : {}),
      ...(identityPublicKey !== undefined ? { identityPublicKey } : {}),
    };
  });
  // Indices are node indices: 1..n at first, any distinct 1..255 after a membership change (a removed node leaves a gap).
  const indexes = nodes.map((n) => n.index).sort((a, b) => a - b);
  if (indexes.some((i, k) => i > 255 || (k > 0 && indexes[k - 1] === i))) throw bad('nodes', `expected nodes numbered 1..${nodes.length} once each, got ${indexes.join(',')} (after a membership change: any distinct numbers 1..255)`);
  if (typeof f.threshold !== 'number' || !Number.isSafeInteger(f.threshold) || f.threshold < 1 || f.threshold > nodes.length) {
    throw bad('threshold', `expected a whole number from 1 to ${nodes.length} (the node count)`);
  }
  return { coordinator, threshold: f.threshold, nodes: nodes.sort((a, b) => a.index - b.index) };
}

export interface LoadClusterOptions {
  /** Default threshold of new keys (default: the file's). */
  threshold?: number;
  presign?: PresignOptions;
  /** Every request's deadline per node (default 15 s). */
  timeoutMs?: number;
  /** The operator's policy hook, run for every node (NodeClientOptions.approve). */
  approve?: ApproveHook;
}

/**
 * A Cluster of every node in a cluster file: `path`, else env TESSERA_CLUSTER, else
 * `.tessera/dev/cluster.json` (relative to the working directory). Each NodeClient pins the node's
 * certificate (`ca`) and trusts the file's identity key for the node. Errors: as readClusterFile, and
 * BAD_INPUT for a bad option.
 */
export function loadCluster(path?: string, options: LoadClusterOptions = {}): Cluster {
  const file = readClusterFile(path ?? process.env.TESSERA_CLUSTER ?? DEFAULT_CLUSTER_FILE);
  if (options.timeoutMs !== undefined) checkTimeoutMs(options.timeoutMs);
  const threshold = options.threshold ?? file.threshold;
  const nodes = file.nodes.map(
    (n) =>
      new NodeClient({
        url: n.url,
        apiKey: n.apiKey,
        index: n.index,
        ...(n.ca !== undefined ? { ca: n.ca } : {}),
        ...(n.identityPublicKey !== undefined ? { identityPublicKey: n.identityPublicKey } : {}),
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
        ...(options.approve !== undefined ? { approve: options.approve } : {}),
      }),
  );
  return new Cluster(nodes, { threshold, ...(options.presign !== undefined ? { presign: options.presign } : {}) });
}
