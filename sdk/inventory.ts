/**
 * The quantum-readiness inventory (issue 15 item 4, `tessera keys report`): for every key, what protects
 * it and whether each protection would survive a large quantum computer, and what would have to change
 * for it to be post-quantum end to end.
 *
 * buildKeysReport is a pure function of what the nodes answered (their key records, GET /v1/keys per
 * tenant, and their GET /v1/node, whose `atRest` says how each node seals shares) plus what the SDK
 * knows of its own links (the node URLs, its TLS library). Cluster.keysReport (sdk/client.ts) gathers
 * those; nothing here does I/O.
 *
 * What each protection is, from the code (each fact names where it lives):
 * - The key itself: every suite of core/suites.ts is elliptic-curve (discrete log or Diffie-Hellman),
 *   so Shor's algorithm breaks it: "classical" for every key today. KEY_PROTECTION has one entry per
 *   suite (checked at compile time), so a new suite cannot be added without saying what it rests on.
 * - Shares in transit between nodes (DKG, refresh, reshare, signing rounds): node/sessions/channel.ts
 *   and pair-keys.ts, ML-KEM-768 (FIPS 203) pair keys, ML-DSA-65 (FIPS 204) node identity signatures,
 *   AES-256-GCM: post-quantum. Decapsulation partials travel to the SDK HPKE-sealed to a one-call
 *   ML-KEM-768 receiver key (core/wrap.ts generateOneCallReceiver): post-quantum.
 * - Export: only keys made exportable; each share is wrapped (core/wrap.ts, HPKE base mode, HKDF-SHA256,
 *   AES-256-GCM) to an ML-KEM-768 or X-Wing key (WRAP_KEMS): post-quantum. The bundle's public part
 *   (Feldman commitments, core/bundle.ts) rests on the key's own discrete-log assumption.
 * - At rest: per node, as the node reports it (node/store/kek.ts atRestProtection): a 256-bit KEK and
 *   AES-256-GCM records. A 256-bit symmetric key keeps about 128-bit security against Grover's
 *   algorithm, so it counts as post-quantum; anything a node reports that is not known here is "unknown".
 * - SDK to node: TLS, whose key exchange is negotiated by the TLS libraries at both ends, outside
 *   Tessera. Node 20's OpenSSL 3.0 offers only classical (ECDHE) groups; hybrid groups such as
 *   X25519MLKEM768 arrive with OpenSSL 3.5. Plain http is unprotected. API keys are bearer secrets sent
 *   over that link (nodes keep only their SHA-256).
 */
import type { KeyInfo, NodeInfo, RotationInfo } from '../contract/http.js';
import { ML_KEM_768 } from '../core/pq.js';
import { ECDSA_SUITES, KEM_SUITES, SIGNING_SUITES, SUITE_SCHEMES, type SuiteId } from '../core/suites.js';
import { WRAP_KEMS, type WrapKem } from '../core/wrap.js';

/** How a protection stands against a large quantum computer. */
export type QuantumStatus = 'classical' | 'post-quantum' | 'not-applicable' | 'unprotected' | 'unknown';

/** What each suite's key rests on; one entry per suite of core/suites.ts (a new suite must add one). */
export const KEY_PROTECTION = {
  ed25519: { use: 'signature', rests: 'discrete log on edwards25519' },
  secp256k1: { use: 'signature', rests: 'discrete log on secp256k1' },
  bip340: { use: 'signature', rests: 'discrete log on secp256k1' },
  p256: { use: 'signature', rests: 'discrete log on P-256' },
  'ecdsa-secp256k1': { use: 'signature', rests: 'discrete log on secp256k1' },
  'ecdsa-p256': { use: 'signature', rests: 'discrete log on P-256' },
  'hpke-x25519': { use: 'kem', rests: 'Diffie-Hellman on Curve25519 (X25519)' },
  'hpke-p256': { use: 'kem', rests: 'Diffie-Hellman on P-256' },
} as const satisfies Record<SuiteId, { use: 'signature' | 'kem'; rests: string }>;

/** What would make a key of each kind post-quantum: only what exists in Tessera is named. */
const KEY_PQ_PATH = {
  signature: `none yet: Tessera's signing suites (${[...SIGNING_SUITES, ...ECDSA_SUITES].join(', ')}) are all elliptic-curve and there is no standard threshold ML-DSA; a post-quantum signature needs a new key under a post-quantum scheme, and its verifiers changed`,
  kem: `none yet: Tessera's decapsulation suites (${KEM_SUITES.join(', ')}) are both elliptic-curve DHKEM; ML-KEM-768 and X-Wing serve only to wrap shares (core/wrap.ts), there is no threshold ML-KEM or X-Wing suite; senders would need a new post-quantum KEM key`,
} as const;

/** What breaking the key would cost, by use. */
const QUANTUM_RISK = {
  signature: 'a quantum attacker could forge its signatures',
  kem: 'messages sealed to it can be recorded now and opened later (harvest now, decrypt later)',
} as const;

const WRAP_KEM_NAMES: Readonly<Record<WrapKem, string>> = {
  'ml-kem-768': `${ML_KEM_768.name} (FIPS 203)`,
  'x-wing': 'X-Wing (X25519 + ML-KEM-768 hybrid)',
};

/** Record AEADs whose key is 256 bits (about 128-bit security against Grover's algorithm). */
const AEADS_256 = new Set(['AES-256-GCM', 'ChaCha20-Poly1305']);
/** Below this OpenSSL version the TLS stack offers no hybrid post-quantum group (X25519MLKEM768 came in 3.5). */
const OPENSSL_HYBRID_GROUPS = [3, 5] as const;

type AtRest = NonNullable<NodeInfo['atRest']>;

/** What one node answered to GET /v1/node (or that it did not answer). */
export type NodeProtection = { index: number; answered: true; atRest?: AtRest } | { index: number; answered: false; error: string };

export interface KeysReportInput {
  /** Every key version, with its tenant (null: the calling API key's own tenant, not named). */
  readonly keys: readonly { readonly tenant: string | null; readonly key: KeyInfo }[];
  /** The tenants listed (null when the API key may not list tenants: its own tenant only). */
  readonly tenants: readonly string[] | null;
  readonly nodes: readonly NodeProtection[];
  /** The SDK's link to each node: its URL (https or http). */
  readonly links: readonly { readonly index: number; readonly url: string }[];
  /** The SDK's TLS library, e.g. "OpenSSL 3.0.19" (process.versions.openssl). */
  readonly tlsLibrary: string;
  /** The time ages are measured at (ms since the epoch). */
  readonly now: number;
}

export interface VersionRow {
  version: number;
  state: KeyInfo['state'];
  epoch: number;
  exportable: boolean;
  createdAt: number;
  /** The nodes holding shares of this version (its committee). */
  nodes: number[];
  rotation?: RotationInfo;
}

export interface Protection {
  status: QuantumStatus;
  /** What it is, in a few words. */
  what: string;
}

export interface KeyReportRow {
  tenant: string | null;
  keyId: string;
  suite: SuiteId;
  /** What the suite signs or decapsulates (core/suites.ts SUITE_SCHEMES). */
  scheme: string;
  use: 'signature' | 'kem';
  versions: VersionRow[];
  /** The version in use: the newest active one, else the newest. */
  currentVersion: number;
  /** When the first version listed was made, and its age at `now`. */
  createdAt: number;
  ageMs: number;
  currentVersionAgeMs: number;
  /** The current version's rotation: its period (null: none set) and status ('no-period' without one). */
  rotation: { periodMs: number | null; status: RotationInfo['status'] | 'no-period'; dueAt?: number };
  /** Some version not destroyed may be exported. */
  exportable: boolean;
  protection: {
    key: Protection & { rests: string };
    transit: Protection & { kem: string; signature: string; aead: string };
    export: Protection & { kems?: string[] };
    atRest: Protection & { nodes: { index: number; atRest?: AtRest; missing?: string }[] };
  };
  postQuantumEndToEnd: boolean;
  /** What would have to change for the key to be post-quantum end to end (empty when it is). */
  toChange: string[];
}

export interface KeysReport {
  generatedAt: number;
  tenants: string[] | null;
  keys: KeyReportRow[];
  nodes: NodeProtection[];
  /** The SDK-to-node link, the same for every key. */
  client: Protection & { links: { index: number; scheme: string }[]; apiKeys: string };
  summary: { keys: number; versions: number; postQuantumEndToEnd: number; classicalKey: number };
}

function bad(what: string): Error {
  return new Error(`keys report: ${what}`);
}

/** TLS key exchange of an `OpenSSL x.y.z` library: classical below 3.5; from 3.5 it depends on both ends. */
function tlsStatus(library: string): { status: QuantumStatus; what: string } {
  const m = /^OpenSSL (\d+)\.(\d+)/.exec(library);
  const hybrid = m !== null && (Number(m[1]) > OPENSSL_HYBRID_GROUPS[0] || (Number(m[1]) === OPENSSL_HYBRID_GROUPS[0] && Number(m[2]) >= OPENSSL_HYBRID_GROUPS[1]));
  if (m && !hybrid) {
    return { status: 'classical', what: `TLS, key exchange classical (ECDHE): this SDK's ${library} offers no hybrid post-quantum group; needs OpenSSL 3.5+ (X25519MLKEM768) at both ends, outside Tessera` };
  }
  return { status: 'unknown', what: `TLS, key exchange negotiated by ${library} and the node's TLS library (hybrid X25519MLKEM768 only if both offer it), outside Tessera` };
}

function atRestOf(committee: readonly number[], nodes: ReadonlyMap<number, NodeProtection>): KeyReportRow['protection']['atRest'] {
  const rows = committee.map((index) => {
    const n = nodes.get(index);
    if (!n) return { index, missing: 'not in the cluster file' };
    if (!n.answered) return { index, missing: `did not answer: ${n.error}` };
    if (!n.atRest) return { index, missing: 'does not report atRest (an older node)' };
    return { index, atRest: n.atRest };
  });
  const missing = rows.filter((r) => r.missing !== undefined);
  const weak = rows.filter((r) => r.atRest && !(AEADS_256.has(r.atRest.recordAead) && r.atRest.keyBits >= 256));
  const kinds = [...new Set(rows.flatMap((r) => (r.atRest ? [`${r.atRest.recordAead} under a ${r.atRest.keyBits}-bit KEK (${r.atRest.provider})`] : [])))];
  const status: QuantumStatus = missing.length || weak.length ? 'unknown' : 'post-quantum';
  const what =
    status === 'post-quantum'
      ? `${kinds.join('; ')}: 256-bit symmetric, about 128-bit security against Grover`
      : [
          ...missing.map((r) => `node ${r.index} ${r.missing}`),
          ...weak.map((r) => `node ${r.index} reports ${r.atRest!.recordAead} under a ${r.atRest!.keyBits}-bit KEK, not assessed here`),
        ].join('; ');
  return { status, what, nodes: rows };
}

/** The report rows from what the nodes answered (see KeysReportInput). Throws on inconsistent input. */
export function buildKeysReport(input: KeysReportInput): KeysReport {
  if (!Number.isSafeInteger(input.now) || input.now < 0) throw bad('now: expected a time in ms');
  const nodes = new Map<number, NodeProtection>();
  for (const n of input.nodes) {
    if (nodes.has(n.index)) throw bad(`node ${n.index} is given twice`);
    nodes.set(n.index, n);
  }
  if (input.tenants !== null && new Set(input.tenants).size !== input.tenants.length) throw bad('a tenant is listed twice');
  const client = tlsStatusOfLinks(input);

  // Group the versions by (tenant, key id).
  const byKey = new Map<string, { tenant: string | null; infos: KeyInfo[] }>();
  for (const { tenant, key } of input.keys) {
    if (!(key.suite in KEY_PROTECTION)) throw bad(`key ${key.keyId}: unknown suite ${key.suite}`);
    const slot = JSON.stringify([tenant, key.keyId]);
    const group = byKey.get(slot) ?? { tenant, infos: [] };
    if (group.infos.some((k) => k.version === key.version)) throw bad(`key ${key.keyId} version ${key.version} is given twice`);
    if (group.infos.length && group.infos[0]!.suite !== key.suite) throw bad(`key ${key.keyId}: versions of different suites`);
    group.infos.push(key);
    byKey.set(slot, group);
  }

  const rows: KeyReportRow[] = [];
  for (const { tenant, infos } of byKey.values()) {
    infos.sort((a, b) => a.version - b.version);
    const first = infos[0]!;
    const suite = first.suite as SuiteId;
    const kp = KEY_PROTECTION[suite];
    const current = [...infos].reverse().find((k) => k.state === 'active') ?? infos[infos.length - 1]!;
    const versions: VersionRow[] = infos.map((k) => ({
      version: k.version,
      state: k.state,
      epoch: k.epoch,
      exportable: k.exportable,
      createdAt: k.createdAt,
      nodes: k.publicPackage.indices ? [...k.publicPackage.indices] : Array.from({ length: k.parties }, (_, i) => i + 1),
      ...(k.rotation ? { rotation: k.rotation } : {}),
    }));
    const live = versions.filter((v) => v.state !== 'destroyed');
    const exportable = live.some((v) => v.exportable);
    // Shares at rest on every node that holds a version not destroyed.
    const holders = [...new Set(live.flatMap((v) => v.nodes))].sort((a, b) => a - b);
    const key = { status: 'classical' as const, rests: kp.rests, what: `${SUITE_SCHEMES[suite]}: ${kp.rests}, broken by Shor's algorithm; ${QUANTUM_RISK[kp.use]}` };
    const transit = {
      status: 'post-quantum' as const,
      kem: `${ML_KEM_768.name} (FIPS 203) pair keys, rekeyed per period`,
      signature: 'ML-DSA-65 (FIPS 204) node identities',
      aead: 'AES-256-GCM',
      what:
        'node-to-node channels: ML-KEM-768 + ML-DSA-65, AES-256-GCM' +
        (kp.use === 'kem' ? '; decapsulation partials sealed to a one-call ML-KEM-768 key of the SDK' : ''),
    };
    const exp: KeyReportRow['protection']['export'] = exportable
      ? { status: 'post-quantum', kems: WRAP_KEMS.map((k) => WRAP_KEM_NAMES[k]), what: `each share wrapped (HPKE, AES-256-GCM) to ${WRAP_KEMS.map((k) => WRAP_KEM_NAMES[k]).join(' or ')}` }
      : { status: 'not-applicable', what: 'not exportable: the nodes refuse to export it' };
    const atRest = holders.length ? atRestOf(holders, nodes) : { status: 'not-applicable' as const, what: 'every version destroyed: no shares left', nodes: [] };
    const toChange: string[] = [`key: ${KEY_PQ_PATH[kp.use]}`];
    if (atRest.status !== 'post-quantum' && atRest.status !== 'not-applicable') toChange.push(`at rest: ${atRest.what}`);
    if (client.status !== 'post-quantum') toChange.push(`SDK to node: ${client.what}`);
    rows.push({
      tenant,
      keyId: first.keyId,
      suite,
      scheme: SUITE_SCHEMES[suite],
      use: kp.use,
      versions,
      currentVersion: current.version,
      createdAt: first.createdAt,
      ageMs: Math.max(0, input.now - first.createdAt),
      currentVersionAgeMs: Math.max(0, input.now - current.createdAt),
      rotation: current.rotation
        ? { periodMs: current.rotation.periodMs, status: current.rotation.status, ...(current.rotation.dueAt !== undefined ? { dueAt: current.rotation.dueAt } : {}) }
        : { periodMs: null, status: 'no-period' },
      exportable,
      protection: { key, transit, export: exp, atRest },
      postQuantumEndToEnd: false,
      toChange,
    });
  }
  // Every key is classical today, so none is post-quantum end to end; the rule stays explicit.
  for (const r of rows) r.postQuantumEndToEnd = r.toChange.length === 0;
  rows.sort((a, b) => cmp(a.tenant ?? '', b.tenant ?? '') || cmp(a.keyId, b.keyId));
  return {
    generatedAt: input.now,
    tenants: input.tenants === null ? null : [...input.tenants],
    keys: rows,
    nodes: [...nodes.values()].sort((a, b) => a.index - b.index),
    client,
    summary: {
      keys: rows.length,
      versions: rows.reduce((s, r) => s + r.versions.length, 0),
      postQuantumEndToEnd: rows.filter((r) => r.postQuantumEndToEnd).length,
      classicalKey: rows.filter((r) => r.protection.key.status === 'classical').length,
    },
  };
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function tlsStatusOfLinks(input: KeysReportInput): KeysReport['client'] {
  const links = input.links.map((l) => {
    let scheme: string;
    try {
      scheme = new URL(l.url).protocol.replace(/:$/, '');
    } catch {
      throw bad(`node ${l.index}: not a URL`);
    }
    return { index: l.index, scheme };
  });
  const apiKeys = 'bearer API keys sent over this link; the nodes keep only their SHA-256';
  const plain = links.filter((l) => l.scheme !== 'https');
  if (plain.length) {
    return { status: 'unprotected', what: `node(s) ${plain.map((l) => l.index).join(',')} reached over plain ${plain[0]!.scheme}: API keys and requests unencrypted; use TLS (tessera dev --tls, or TLS on every node)`, links, apiKeys };
  }
  return { ...tlsStatus(input.tlsLibrary), links, apiKeys };
}

/** "3d", "5h", "12m" or "40s": the largest whole unit. */
export function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s >= 86_400) return `${Math.floor(s / 86_400)}d`;
  if (s >= 3600) return `${Math.floor(s / 3600)}h`;
  if (s >= 60) return `${Math.floor(s / 60)}m`;
  return `${s}s`;
}

const SHORT: Readonly<Record<QuantumStatus, string>> = {
  classical: 'classical',
  'post-quantum': 'PQ',
  'not-applicable': '-',
  unprotected: 'none',
  unknown: 'unknown',
};

/** The table `tessera keys report` prints: one line per key, then what would need to change, then the SDK link. */
export function formatKeysReport(r: KeysReport): string {
  const head = ['KEY', 'SUITE', 'VERSIONS', 'AGE', 'ROTATION', 'EXPORTABLE', 'KEY-ITSELF', 'TRANSIT', 'EXPORT', 'AT-REST', 'PQ-END-TO-END'];
  const lines = r.keys.map((k) => [
    `${k.tenant === null ? '' : `${k.tenant}/`}${k.keyId}`,
    k.suite,
    k.versions.map((v) => `v${v.version}:${v.state}`).join(','),
    formatAge(k.ageMs),
    k.rotation.status === 'no-period' ? 'no period' : `${k.rotation.status} (every ${formatAge(k.rotation.periodMs!)})`,
    k.exportable ? 'yes' : 'no',
    SHORT[k.protection.key.status],
    SHORT[k.protection.transit.status],
    SHORT[k.protection.export.status],
    SHORT[k.protection.atRest.status],
    k.postQuantumEndToEnd ? 'yes' : 'no',
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...lines.map((l) => l[c]!.length)));
  const row = (cells: readonly string[]) => cells.map((x, c) => x.padEnd(widths[c]!)).join('  ').trimEnd();
  const out = [row(head), ...lines.map(row)];
  if (r.keys.length === 0) out.push('(no keys)');
  const needs = new Map<string, string[]>();
  for (const k of r.keys) {
    for (const t of k.toChange) needs.set(t, [...(needs.get(t) ?? []), `${k.tenant === null ? '' : `${k.tenant}/`}${k.keyId}`]);
  }
  if (needs.size) {
    out.push('', 'To be post-quantum end to end:');
    for (const [t, keys] of needs) out.push(`- ${t} [${keys.join(', ')}]`);
  }
  out.push('', `SDK to node: ${r.client.what}; ${r.client.apiKeys}.`);
  out.push(`${r.summary.keys} key(s), ${r.summary.versions} version(s); ${r.summary.postQuantumEndToEnd} post-quantum end to end; ${r.tenants === null ? "this API key's tenant only" : `tenants: ${r.tenants.join(', ')}`}.`);
  return out.join('\n') + '\n';
}
