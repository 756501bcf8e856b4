/**
 * One-shot bootstrap of a TLS cluster whose processes are configured by TESSERA_* environment
 * variables only: the `init` service of docker-compose.yml, and the same topology run as plain
 * processes in test/integration/compose-topology.test.ts.
 *
 * Nodes must know every node's identity public key (the membership) before they start, and a node's
 * identity is made inside its own encrypted store. So this runs first, once, and writes under ROOT:
 *
 *   ca/ca.pem, ca/ca.key               development CA (only this script reads the key)
 *   shared/ca.pem                      the CA certificate: nodes trust the coordinator with it, clients pin it
 *   shared/membership.json             {"nodes": [{index, identityPublicKey}]} — read by the coordinator and every node
 *   coordinator/tls/server.{pem,key}   coordinator certificate (coordinator host names + localhost, 127.0.0.1)
 *   node-<i>/db/                       the node's LevelDB store, holding its identity
 *   node-<i>/api-keys.json             {"apiKeys": [{id, tenant, keyHash, role: "admin"}]} — hashes only; the operator's admin key
 *   node-<i>/schedule-secret           the cluster scheduling secret (mode 0600, 64 hex characters, the same for
 *                                      every node: it keys scheduled-rotation session ids; TESSERA_SCHEDULE_SECRET_FILE)
 *   node-<i>/tls/server.{pem,key}      node certificate (node host name + localhost, 127.0.0.1)
 * and CLIENT_DIR/cluster.json (mode 0600): node URLs, API keys and the CA to pin, for the SDK / CLI,
 * and KEK_DIR/node-<i>.kek (mode 0600, owned by TESSERA_INIT_OWNER): each node's key-encryption key.
 *
 * The KEK is kept out of the data volume it protects (issue 9 item 11): a copy of a node's volume (a
 * backup, a snapshot, a stolen disk image) then holds only ciphertext. In compose KEK_DIR is a host
 * directory, and each node gets only its own file, as a Compose secret (/run/secrets/node<i>_kek,
 * TESSERA_KEK_FILE). A KEK found at the old place in the volume (node-<i>/kek) is moved out: copied
 * to KEK_DIR, then overwritten and deleted.
 *
 * In compose each of ca/, shared/, coordinator/ and node-<i>/ is its own volume, so a node's
 * container sees only its own store and TLS key. Running it again keeps everything that exists
 * (KEKs, identities, certificates still valid, API keys whose hash the node still has).
 *
 * Environment (CLI):
 *   TESSERA_INIT_ROOT               required, the directory above
 *   TESSERA_INIT_CLIENT_DIR         required, where cluster.json is written
 *   TESSERA_INIT_KEK_DIR            required, where the KEK files are written (outside every data volume)
 *   TESSERA_INIT_NODES              node count (default 3)
 *   TESSERA_INIT_THRESHOLD          written to cluster.json (default: a majority)
 *   TESSERA_INIT_COORDINATOR_HOSTS  comma list of coordinator host names for its certificate (default coordinator)
 *   TESSERA_INIT_NODE_HOSTS         comma list, one host name per node (default node1,node2,...)
 *   TESSERA_INIT_NODE_URLS          comma list of the URLs clients use, one per node (default https://127.0.0.1:7701,...)
 *   TESSERA_INIT_COORDINATOR_URL    written to cluster.json for information (default https://<first coordinator host>:7400)
 *   TESSERA_INIT_OWNER              uid:gid to own coordinator/ and node-<i>/ (the services' user), optional
 *   TESSERA_INIT_CLIENT_OWNER       uid:gid to own cluster.json (e.g. the host user), optional
 *
 * Usage: node --import tsx scripts/compose-init.ts
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, lchownSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { toHex } from '../core/bytes.js';
import { apiKeyHash } from '../node/config.js';
import { loadOrCreateIdentity } from '../node/store/identity-store.js';
import { createKekFile, readKekFile } from '../node/store/kek.js';
import { equalBytes } from '../core/bytes.js';
import { ShareStore } from '../node/store/storage.js';
import type { ClusterFile } from '../sdk/cli.js';
import { ensureCa, ensureServerCert } from '../sdk/dev-certs.js';

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

export interface ComposeInitOptions {
  root: string;
  clientDir: string;
  /** Where the KEK files go: never inside a node's data directory (its volume). */
  kekDir: string;
  nodes: number;
  threshold: number;
  coordinatorHosts: readonly string[];
  /** One per node. */
  nodeHosts: readonly string[];
  /** One per node: the URL clients reach node i at. */
  nodeUrls: readonly string[];
  coordinatorUrl: string;
  owner?: Owner;
  clientOwner?: Owner;
  out?: (line: string) => void;
}

/** Paths of the layout described above. */
export function composeLayout(root: string, nodes: number, kekDir: string) {
  const r = resolve(root);
  const keks = resolve(kekDir);
  return {
    kekDir: keks,
    caDir: join(r, 'ca'),
    shared: { dir: join(r, 'shared'), ca: join(r, 'shared', 'ca.pem'), membership: join(r, 'shared', 'membership.json') },
    coordinator: { dir: join(r, 'coordinator'), tlsDir: join(r, 'coordinator', 'tls') },
    nodes: Array.from({ length: nodes }, (_, k) => {
      const dir = join(r, `node-${k + 1}`);
      return {
        index: k + 1,
        dir,
        kek: join(keks, `node-${k + 1}.kek`),
        /** Where earlier versions kept the KEK: inside the volume. Moved out if found. */
        legacyKek: join(dir, 'kek'),
        db: join(dir, 'db'),
        apiKeys: join(dir, 'api-keys.json'),
        tlsDir: join(dir, 'tls'),
        scheduleSecret: join(dir, 'schedule-secret'),
      };
    }),
  };
}

class InitError extends Error {}

function uniq(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}

function writeFile(path: string, content: string, mode: number): void {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, content, { mode, flag: 'wx' });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

/** Overwrite a file with zeros, sync, and delete it (best effort against the bytes staying on disk). */
function eraseFile(path: string): void {
  const size = statSync(path).size;
  writeFileSync(path, new Uint8Array(size), { flag: 'r+', flush: true });
  unlinkSync(path);
}

/**
 * A node's KEK, outside its volume: created if missing; a KEK left at the old place inside the volume
 * is moved out (never two different KEKs for one node: that is refused, as replacing a KEK would make
 * the store unreadable).
 */
async function ensureKek(n: { index: number; kek: string; legacyKek: string }, out: (line: string) => void): Promise<void> {
  if (existsSync(n.legacyKek)) {
    const old = await readKekFile(n.legacyKek);
    try {
      if (!existsSync(n.kek)) {
        writeFile(n.kek, Buffer.from(old).toString('hex') + '\n', 0o600);
      } else {
        const current = await readKekFile(n.kek);
        const same = equalBytes(current, old);
        current.fill(0);
        if (!same) throw new InitError(`node ${n.index} has two different KEKs (${n.legacyKek} and ${n.kek}); keep the one its store was made with and delete the other`);
      }
    } finally {
      old.fill(0);
    }
    eraseFile(n.legacyKek);
    out(`compose-init: node ${n.index}: KEK moved out of its data volume to ${n.kek}`);
  }
  if (!existsSync(n.kek)) await createKekFile(n.kek);
}

function chownTree(path: string, owner: Owner): void {
  lchownSync(path, owner.uid, owner.gid);
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, entry.name);
    if (entry.isDirectory()) chownTree(p, owner);
    else lchownSync(p, owner.uid, owner.gid);
  }
}

/** Create (or keep) everything the cluster needs; returns the client cluster file it wrote. */
export async function composeInit(o: ComposeInitOptions): Promise<ClusterFile> {
  const out = o.out ?? (() => undefined);
  if (!Number.isSafeInteger(o.nodes) || o.nodes < 2 || o.nodes > 255) throw new InitError(`nodes must be 2..255, got ${o.nodes}`);
  if (!Number.isSafeInteger(o.threshold) || o.threshold < 2 || o.threshold > o.nodes) {
    throw new InitError(`threshold must be 2..${o.nodes}, got ${o.threshold}`);
  }
  if (o.nodeHosts.length !== o.nodes) throw new InitError(`expected ${o.nodes} node host names, got ${o.nodeHosts.length}`);
  if (o.nodeUrls.length !== o.nodes) throw new InitError(`expected ${o.nodes} node URLs, got ${o.nodeUrls.length}`);
  for (const u of o.nodeUrls) {
    if (!/^https:\/\/[^/]+$/.test(u)) throw new InitError(`node URL "${u.slice(0, 100)}" must be https://host:port (TLS is required off loopback)`);
  }
  const layout = composeLayout(o.root, o.nodes, o.kekDir);
  const clientDir = resolve(o.clientDir);
  const volumeOf = layout.nodes.find((n) => layout.kekDir === n.dir || layout.kekDir.startsWith(n.dir + '/'));
  if (volumeOf || layout.kekDir === resolve(o.root) || layout.kekDir.startsWith(layout.shared.dir)) {
    throw new InitError(`the KEK directory ${layout.kekDir} must be outside every node's data directory and shared/`);
  }

  for (const d of [layout.caDir, layout.kekDir, layout.coordinator.dir, layout.coordinator.tlsDir, clientDir, ...layout.nodes.flatMap((n) => [n.dir, n.tlsDir])]) {
    mkdirSync(d, { recursive: true, mode: 0o700 });
    chmodSync(d, 0o700);
  }
  // shared/ is read by every service (read-only mount): the CA certificate and the membership are public.
  mkdirSync(layout.shared.dir, { recursive: true, mode: 0o755 });
  chmodSync(layout.shared.dir, 0o755);

  // TLS: one CA, a certificate per process. Host names as the other containers reach them, plus
  // localhost / 127.0.0.1 for ports published to the host (and for the process version of this setup).
  const ca = ensureCa(layout.caDir, { commonName: 'Tessera compose CA' });
  copyFileSync(ca.certFile, layout.shared.ca);
  chmodSync(layout.shared.ca, 0o644);
  ensureServerCert(ca, layout.coordinator.tlsDir, 'server', uniq([...o.coordinatorHosts, 'localhost', '127.0.0.1']));
  layout.nodes.forEach((n, k) => ensureServerCert(ca, n.tlsDir, 'server', uniq([o.nodeHosts[k]!, 'localhost', '127.0.0.1'])));

  // Identities: made inside each node's own store, sealed under its KEK, exactly as the node would.
  const members: { index: number; identityPublicKey: string }[] = [];
  for (const n of layout.nodes) {
    await ensureKek(n, out);
    const kek = await readKekFile(n.kek);
    let store: ShareStore;
    try {
      store = await ShareStore.open({ dataDir: n.db, kek, nodeIndex: n.index });
    } finally {
      kek.fill(0);
    }
    try {
      const keys = await loadOrCreateIdentity(store);
      members.push({ index: n.index, identityPublicKey: toHex(keys.identity.publicKey) });
      keys.identity.secretKey.fill(0);
      keys.kem.privateKey.fill(0);
    } finally {
      await store.close();
    }
  }
  writeFile(layout.shared.membership, JSON.stringify({ nodes: members }, null, 2) + '\n', 0o644);

  // The cluster scheduling secret: one for the cluster, a copy in each node's own directory (it never
  // goes to shared/). Kept if a node already has a well-formed one.
  const existingSecret = layout.nodes
    .map((n) => (existsSync(n.scheduleSecret) ? readFileSync(n.scheduleSecret, 'utf8').trim() : ''))
    .find((v) => /^[0-9a-f]{64}$/.test(v));
  const scheduleSecret = existingSecret ?? randomBytes(32).toString('hex');
  for (const n of layout.nodes) {
    if (!existsSync(n.scheduleSecret) || readFileSync(n.scheduleSecret, 'utf8').trim() !== scheduleSecret) writeFile(n.scheduleSecret, scheduleSecret + '\n', 0o600);
  }

  // API keys: the node gets the hash, the client file the key. Keep a key the node still accepts.
  const clusterPath = join(clientDir, 'cluster.json');
  let previous: ClusterFile | undefined;
  try {
    previous = existsSync(clusterPath) ? (JSON.parse(readFileSync(clusterPath, 'utf8')) as ClusterFile) : undefined;
  } catch {
    previous = undefined;
  }
  const caPem = readFileSync(ca.certFile, 'utf8');
  const nodes: ClusterFile['nodes'] = [];
  for (const n of layout.nodes) {
    const old = previous?.nodes?.find((p) => p.index === n.index)?.apiKey;
    let stillAccepted = false;
    if (typeof old === 'string' && existsSync(n.apiKeys)) {
      try {
        const doc = JSON.parse(readFileSync(n.apiKeys, 'utf8')) as { apiKeys?: { keyHash?: string }[] };
        stillAccepted = (doc.apiKeys ?? []).some((k) => k.keyHash === toHex(apiKeyHash(old)));
      } catch {
        stillAccepted = false;
      }
    }
    const apiKey = stillAccepted ? old! : `tsk_compose_${n.index}_${randomBytes(24).toString('hex')}`;
    if (!stillAccepted) {
      writeFile(n.apiKeys, JSON.stringify({ apiKeys: [{ id: `compose-${n.index}`, tenant: 'default', keyHash: toHex(apiKeyHash(apiKey)), role: 'admin' }] }, null, 2) + '\n', 0o600);
    }
    nodes.push({ index: n.index, url: o.nodeUrls[n.index - 1]!, apiKey, ca: caPem });
  }
  const cluster: ClusterFile = { coordinator: o.coordinatorUrl, threshold: o.threshold, nodes };
  writeFile(clusterPath, JSON.stringify(cluster, null, 2) + '\n', 0o600);

  if (o.owner) {
    chownTree(layout.coordinator.dir, o.owner);
    for (const n of layout.nodes) {
      chownTree(n.dir, o.owner);
      // A Compose secret is the host file itself (bind-mounted, same owner and mode): the node's user
      // must own it to read it at mode 0600.
      lchownSync(n.kek, o.owner.uid, o.owner.gid);
    }
  }
  if (o.clientOwner) {
    // The host user manages the KEK directory (back it up, delete it); the files stay the nodes'.
    lchownSync(layout.kekDir, o.clientOwner.uid, o.clientOwner.gid);
    lchownSync(clientDir, o.clientOwner.uid, o.clientOwner.gid);
    lchownSync(clusterPath, o.clientOwner.uid, o.clientOwner.gid);
  }
  out(`compose-init: ${o.nodes} nodes (threshold ${o.threshold}), membership ${layout.shared.membership}, client file ${clusterPath}, KEKs in ${layout.kekDir}`);
  return cluster;
}

function list(v: string | undefined): string[] | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  return v.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function owner(name: string, v: string | undefined): Owner | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  const m = /^(\d{1,10}):(\d{1,10})$/.exec(v.trim());
  if (!m) throw new InitError(`${name} must be uid:gid (numbers), got "${v.slice(0, 40)}"`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

function int(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined || v.trim() === '') return fallback;
  if (!/^\d{1,3}$/.test(v.trim())) throw new InitError(`${name} must be a whole number, got "${v.slice(0, 40)}"`);
  return Number(v.trim());
}

/** Read the options from TESSERA_INIT_* variables (see the header). */
export function composeInitOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ComposeInitOptions {
  const root = env.TESSERA_INIT_ROOT;
  const clientDir = env.TESSERA_INIT_CLIENT_DIR;
  const kekDir = env.TESSERA_INIT_KEK_DIR;
  if (!root) throw new InitError('TESSERA_INIT_ROOT is not set');
  if (!clientDir) throw new InitError('TESSERA_INIT_CLIENT_DIR is not set');
  if (!kekDir) throw new InitError('TESSERA_INIT_KEK_DIR is not set (a directory outside every data volume)');
  const nodes = int('TESSERA_INIT_NODES', env.TESSERA_INIT_NODES, 3);
  const threshold = int('TESSERA_INIT_THRESHOLD', env.TESSERA_INIT_THRESHOLD, Math.floor(nodes / 2) + 1);
  const coordinatorHosts = list(env.TESSERA_INIT_COORDINATOR_HOSTS) ?? ['coordinator'];
  const clientOwner = owner('TESSERA_INIT_CLIENT_OWNER', env.TESSERA_INIT_CLIENT_OWNER);
  const serviceOwner = owner('TESSERA_INIT_OWNER', env.TESSERA_INIT_OWNER);
  return {
    root,
    clientDir,
    kekDir,
    nodes,
    threshold,
    coordinatorHosts,
    nodeHosts: list(env.TESSERA_INIT_NODE_HOSTS) ?? Array.from({ length: nodes }, (_, k) => `node${k + 1}`),
    nodeUrls: list(env.TESSERA_INIT_NODE_URLS) ?? Array.from({ length: nodes }, (_, k) => `https://127.0.0.1:${7701 + k}`),
    coordinatorUrl: env.TESSERA_INIT_COORDINATOR_URL || `https://${coordinatorHosts[0]}:7400`,
    ...(serviceOwner ? { owner: serviceOwner } : {}),
    ...(clientOwner ? { clientOwner } : {}),
  };
}

async function main(): Promise<void> {
  let options: ComposeInitOptions;
  try {
    options = composeInitOptionsFromEnv();
  } catch (e) {
    process.stderr.write(`compose-init: ${(e as Error).message}\n`);
    process.exit(2);
  }
  try {
    await composeInit({ ...options, out: (l) => process.stdout.write(l + '\n') });
  } catch (e) {
    process.stderr.write(`compose-init: ${((e as Error).message ?? String(e)).split('\n')[0]}\n`);
    process.exit(e instanceof InitError ? 2 : 1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) void main();
