/**
 * What the CLI's commands share: the cluster from the cluster file, output in text or JSON, files
 * and stdin/stdout for byte payloads.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Cluster, NodeClient } from '../client.js';
import type { ClusterFile } from '../cluster-file.js';
import { TesseraClientError } from '../http.js';
import { startProgress } from '../progress.js';
import { DEFAULT_CLUSTER_FILE } from './choices.js';
import { UsageError, commandName, type Args } from './spec.js';

export interface ClusterContext {
  cluster: Cluster;
  file: ClusterFile;
  path: string;
}

/** The cluster of --cluster FILE, else env TESSERA_CLUSTER, else the dev cluster's file (loadCluster's rule; the CLI also needs the file itself). */
export async function clusterOf(a: Args): Promise<ClusterContext> {
  // The SDK is loaded here, when a command needs a cluster (help and usage errors never do).
  const { loadCluster, readClusterFile } = await import('../cluster-file.js');
  const path = a.string('cluster') ?? process.env.TESSERA_CLUSTER ?? DEFAULT_CLUSTER_FILE;
  const file = readClusterFile(path);
  // The CLI is one call per process: presignatures fetched ahead would be thrown away at exit.
  const cluster = loadCluster(path, { presign: { auto: false } });
  return { cluster, file, path };
}

/**
 * Run a call that can take more than a second with a progress line on stderr (TTY only: --json and
 * pipes see nothing). A call with steps reports each through the `step` it is handed.
 */
export async function withProgress<T>(label: string, fn: (step: (message: string) => void) => Promise<T>): Promise<T> {
  const progress = startProgress(label);
  try {
    return await fn((message) => progress.step(message));
  } finally {
    progress.done();
  }
}

/** "1..3", or "1,3,4" when a membership change left a gap. */
export function nodesText(cluster: Cluster): string {
  return cluster.indices.every((i, k) => i === k + 1) ? `1..${cluster.size}` : cluster.indices.join(',');
}

/** --node I (one node) or every node of the cluster. */
export function selectNodes(a: Args, cluster: Cluster): number[] {
  const node = a.int('node');
  if (node === undefined) return [...cluster.indices];
  if (!cluster.indices.includes(node)) throw new UsageError(`--node must be ${nodesText(cluster)} (the cluster has ${cluster.size} nodes), got ${node}`, commandName(a.command));
  return [node];
}

/** Node `index`'s client (an index of the cluster: selectNodes' and playersOf's). */
export function clientOf(cluster: Cluster, index: number): NodeClient {
  const c = cluster.nodes[cluster.indices.indexOf(index)];
  if (!c) throw new UsageError(`there is no node ${index} in the cluster (nodes ${nodesText(cluster)})`);
  return c;
}

/** --players, checked against the cluster (their syntax was checked when parsing). */
export function playersOf(a: Args, cluster: Cluster): number[] | undefined {
  const players = a.players();
  const beyond = players?.find((p) => !cluster.indices.includes(p));
  if (beyond !== undefined) throw new UsageError(`--players: the cluster has nodes ${nodesText(cluster)}, got ${beyond}`, commandName(a.command));
  return players;
}

/** Text: one `name: value` line per field (multi-line values on the lines after their name); --json: one JSON object. */
export function print(json: boolean, obj: Record<string, unknown>): void {
  if (json) {
    process.stdout.write(JSON.stringify(obj) + '\n');
    return;
  }
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    const text = typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
    process.stdout.write(text.includes('\n') ? `${k}:\n${text.replace(/\n$/, '')}\n` : `${k}: ${text}\n`);
  }
}

/** A JSON file (the command's own checks follow). A file that cannot be read or parsed is an operation failure (exit 1), like a node's refusal. */
export function readJsonFile(path: string): unknown {
  const text = readBytes(path).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new TesseraClientError('BAD_INPUT', `${path}: is not valid JSON`);
  }
}

function readBytes(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TesseraClientError(code === 'ENOENT' ? 'NOT_FOUND' : 'BAD_INPUT', `${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : 'cannot be read'}`);
  }
}

/** The bytes of --in FILE, or of stdin when it is omitted. */
export async function readInput(file: string | undefined): Promise<Uint8Array> {
  if (file !== undefined) return new Uint8Array(readBytes(file));
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const all = Buffer.concat(chunks);
  for (const c of chunks) c.fill(0);
  return new Uint8Array(all.buffer, all.byteOffset, all.length);
}

/** Write bytes to --out FILE (mode 0600: it may be a plaintext) or to stdout. */
export async function writeOutput(file: string | undefined, bytes: Uint8Array): Promise<void> {
  if (file !== undefined) {
    try {
      writeFileSync(file, bytes, { mode: 0o600 });
    } catch (e) {
      throw new TesseraClientError('WRITE_FAILED', `${file}: cannot be written (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    return;
  }
  await new Promise<void>((res, rej) => process.stdout.write(bytes, (e) => (e ? rej(e) : res())));
}

/** Bytes on stdout only when it is not a terminal (binary would garble it): else ask for --out. */
export function checkBinaryStdout(a: Args, what: string): void {
  if (a.string('out') === undefined && process.stdout.isTTY) {
    throw new UsageError(`${what} is binary and stdout is a terminal: give --out FILE or redirect stdout`, commandName(a.command));
  }
}

/** A JSON file written for the user (bundles, cluster files): 0600, as they hold keys or wrapped shares. */
export function writeJsonFile(path: string, value: unknown): void {
  try {
    writeFileSync(path, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  } catch (e) {
    throw new TesseraClientError('WRITE_FAILED', `${path}: cannot be written (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
