/**
 * Choosing the group backends of this process (issue 10, item 1): load the native bindings, fall
 * back with a warning, install the result into core/suites.ts (installGroupBackends, the one hook).
 *
 *   edwards25519 (ed25519, hpke-x25519): sodium-native (libsodium)                 -> noble
 *   secp256k1 (secp256k1, bip340):       secp256k1/bindings (libsecp256k1, native) -> tiny-secp256k1 (WASM) -> noble
 *   P-256 (p256, ecdsa-p256, hpke-p256): node:crypto (OpenSSL ECDH)                 -> noble
 *
 * TESSERA_GROUP_BACKEND=native|wasm|noble (default native) says where the list starts: `wasm` skips
 * the native addons, `noble` uses noble for everything. node:crypto is part of Node itself, not an
 * addon, so P-256 uses it under both `native` and `wasm` (core/backends/p256-node.ts: OpenSSL's ECDH
 * for k·G and k·P, noble for the rest, noble points). A backend that is asked for and does not load
 * (or fails its known-answer check against noble) is skipped with a warning, never silently. The
 * `secp256k1` package's own index.js silently falls back to pure-JS elliptic when its native build
 * is missing, so only `secp256k1/bindings` (node-gyp-build, which throws instead) is ever loaded.
 *
 * The choice is one process-wide setting, made at start-up before any point exists: node/main.ts
 * calls selectGroupBackends and logs the result (GET /v1/node shows it); an SDK process calls
 * ensureGroupBackends once, when its first NodeClient is made.
 */
import * as nodeCrypto from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { equalBytes } from '../core/bytes.js';
import { ErrorCode, TesseraError } from '../core/errors.js';
import type { Group, XmdHash } from '../core/group.js';
import { libsecp256k1Group, type Libsecp256k1Binding } from '../core/backends/libsecp256k1.js';
import { nodeP256Group } from '../core/backends/p256-node.js';
import { sodiumEd25519Group, type SodiumEd25519Binding } from '../core/backends/sodium-ed25519.js';
import { tinySecp256k1Group, type TinySecp256k1 } from '../core/backends/tiny-secp256k1.js';
import { NOBLE_GROUPS, groupBackendNames, installGroupBackends } from '../core/suites.js';

export const GROUP_BACKEND_ENV = 'TESSERA_GROUP_BACKEND';
export const GROUP_BACKEND_PREFERENCES = ['native', 'wasm', 'noble'] as const;
export type GroupBackendPreference = (typeof GROUP_BACKEND_PREFERENCES)[number];

export interface GroupBackendOptions {
  /** Where each group's list starts. Default: TESSERA_GROUP_BACKEND from `env`, else 'native'. */
  prefer?: GroupBackendPreference;
  /** Environment to read TESSERA_GROUP_BACKEND from (default process.env). */
  env?: Record<string, string | undefined>;
  /** Receives each fallback warning (default: process.emitWarning). */
  warn?: (message: string) => void;
  /** Loads a module by id (default: require from this file); tests inject a failing one. */
  load?: (id: string) => unknown;
}

export interface GroupBackendChoice {
  readonly prefer: GroupBackendPreference;
  /** The chosen Group of each switchable curve (NOBLE_GROUPS' where noble was chosen). */
  readonly groups: { readonly edwards25519: Group; readonly secp256k1: Group; readonly 'P-256': Group };
  /** Backend name by group, as GET /v1/node shows it. */
  readonly names: { readonly edwards25519: string; readonly secp256k1: string; readonly 'P-256': string };
  /** The fallback warnings (each also went to `warn`). */
  readonly warnings: readonly string[];
}

/** Parse TESSERA_GROUP_BACKEND (unset or empty: 'native'); anything else throws BadInput naming the variable. */
export function groupBackendPreference(env: Record<string, string | undefined> = process.env): GroupBackendPreference {
  const v = env[GROUP_BACKEND_ENV]?.trim();
  if (v === undefined || v === '') return 'native';
  if ((GROUP_BACKEND_PREFERENCES as readonly string[]).includes(v)) return v as GroupBackendPreference;
  throw new TesseraError(ErrorCode.BadInput, `${GROUP_BACKEND_ENV} must be one of ${GROUP_BACKEND_PREFERENCES.join(', ')}`);
}

/**
 * SHA-256 (FIPS 180-4) from node:crypto (OpenSSL) in the shape noble's RFC 9380 code takes: the
 * one-shot crypto.hash (Node >= 20.12) is about 3x faster than noble's sha256 on the short inputs of
 * hash_to_field. The secp256k1 backends take it for hashToScalar (byte-identical; selfTest checks).
 * Undefined on a Node without crypto.hash (the backends then keep noble's).
 */
const NODE_SHA256: XmdHash | undefined = (() => {
  const hash = (nodeCrypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'buffer') => Buffer }).hash;
  if (typeof hash !== 'function') return undefined;
  const sha256 = (m: Uint8Array): Uint8Array => {
    const b = hash('sha256', m, 'buffer');
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  };
  return Object.assign(sha256, { outputLen: 32, blockLen: 64 });
})();

/** node:crypto's CSPRNG (OpenSSL) without WebCrypto's per-call overhead: Group.randomBytes of the secp256k1 backends. */
const nodeRandomBytes = (n: number): Uint8Array => nodeCrypto.randomFillSync(new Uint8Array(n));

/**
 * libsodium's SHA-256 (crypto_hash_sha256, FIPS 180-4) and CSPRNG (randombytes_buf: the OS generator)
 * through sodium-native, for the native secp256k1 backend: measured here, about 0.4 us less per hash
 * than node:crypto's one-shot hash and half the cost of its randomFillSync per draw, on the short
 * inputs of FROST's hash_to_field and nonce generation. Undefined when sodium-native does not load
 * (node:crypto's are used then); the backend's self-test checks hashToScalar byte for byte either way.
 */
function sodiumHashAndRandom(load: (id: string) => unknown): { sha256: XmdHash; randomBytes: (n: number) => Uint8Array } | undefined {
  let sodium: { crypto_hash_sha256(out: Uint8Array, m: Uint8Array): void; randombytes_buf(b: Uint8Array): void };
  try {
    sodium = load('sodium-native') as typeof sodium;
  } catch {
    return undefined;
  }
  if (typeof sodium.crypto_hash_sha256 !== 'function' || typeof sodium.randombytes_buf !== 'function') return undefined;
  const sha256 = (m: Uint8Array): Uint8Array => {
    const out = new Uint8Array(32);
    sodium.crypto_hash_sha256(out, m);
    return out;
  };
  const randomBytes = (n: number): Uint8Array => {
    const out = new Uint8Array(n);
    sodium.randombytes_buf(out);
    return out;
  };
  return { sha256: Object.assign(sha256, { outputLen: 32, blockLen: 64 }), randomBytes };
}

interface Candidate {
  readonly name: string;
  /** 'builtin': part of Node (node:crypto), used unless TESSERA_GROUP_BACKEND=noble. */
  readonly kind: 'native' | 'wasm' | 'builtin';
  build(load: (id: string) => unknown): Group;
}

const ED25519_CANDIDATES: readonly Candidate[] = [
  {
    name: 'sodium-native',
    kind: 'native',
    build: (load) => sodiumEd25519Group(load('sodium-native') as SodiumEd25519Binding, NOBLE_GROUPS.edwards25519),
  },
];

const SECP256K1_CANDIDATES: readonly Candidate[] = [
  {
    name: 'libsecp256k1 (native)',
    kind: 'native',
    build(load) {
      // node-gyp-build throws when no prebuild or local build matches; never the package index.js.
      const binding = load('secp256k1/bindings') as Libsecp256k1Binding & { contextRandomize?(seed: Uint8Array): void };
      // Blinding for ecmult_gen (libsecp256k1 secp256k1_context_randomize), fresh per process.
      if (typeof binding.contextRandomize === 'function') {
        const seed = randomBytes(32);
        binding.contextRandomize(seed);
        seed.fill(0);
      }
      const sodium = sodiumHashAndRandom(load);
      return libsecp256k1Group(binding, NOBLE_GROUPS.secp256k1, { sha256: sodium?.sha256 ?? NODE_SHA256, randomBytes: sodium?.randomBytes ?? nodeRandomBytes });
    },
  },
  {
    name: 'tiny-secp256k1 (WASM)',
    kind: 'wasm',
    build: (load) => tinySecp256k1Group(load('tiny-secp256k1') as TinySecp256k1, NOBLE_GROUPS.secp256k1, { sha256: NODE_SHA256, randomBytes: nodeRandomBytes }),
  },
];

const P256_CANDIDATES: readonly Candidate[] = [
  {
    name: 'node:crypto (OpenSSL)',
    kind: 'builtin',
    // nodeP256Group runs its own known-answer check of mulBase / mulPoint / msm against noble.
    build: () => nodeP256Group(nodeCrypto, NOBLE_GROUPS['P-256']),
  },
];

/**
 * Known-answer check of a backend against the noble group it replaces: base multiples, a product of a
 * point, sums, negation, the identity and decoding must give the same bytes. A broken build fails it
 * and is skipped like one that does not load.
 */
function selfTest(g: Group, ref: Group): void {
  const same = (a: Uint8Array, b: Uint8Array, what: string) => {
    if (!equalBytes(a, b)) throw new Error(`known-answer check failed: ${what}`);
  };
  const scalars = [1n, 2n, 7n, ref.order - 1n, ref.randomScalar()];
  const P = ref.mulBase(ref.randomScalar());
  const Pb = ref.pointToBytes(P);
  const gP = g.pointFromBytes(Pb, 'self-test point');
  same(g.pointToBytes(gP), Pb, 'decoding');
  for (const k of scalars) {
    same(g.pointToBytes(g.mulBase(k)), ref.pointToBytes(ref.mulBase(k)), 'mulBase');
    same(g.pointToBytes(g.mulPoint(gP, k)), ref.pointToBytes(ref.mulPoint(P, k)), 'mulPoint');
    same(g.pointToBytes(g.addPoints(gP, g.mulBase(k))), ref.pointToBytes(ref.addPoints(P, ref.mulBase(k))), 'add');
  }
  same(g.pointToBytes(g.negPoint(gP)), ref.pointToBytes(ref.negPoint(P)), 'neg');
  // hashToScalar (a backend may bring a faster hash): empty, short and multi-block messages.
  for (const n of [0, 1, 63, 64, 65, 200]) {
    const dst = Uint8Array.from([0x54, 0x45, 0x53, 0x54, n]);
    const msg = ref.scalarToBytes(ref.randomScalar()).subarray(0, Math.min(n, 32));
    const long = new Uint8Array(n).map((_, i) => msg[i % Math.max(msg.length, 1)] ?? i);
    if (g.hashToScalar(dst, long) !== ref.hashToScalar(dst, long)) throw new Error('known-answer check failed: hashToScalar');
  }
  if (!g.isIdentity(g.subPoints(gP, gP)) || !g.isIdentity(g.mulBase(0n))) throw new Error('known-answer check failed: identity');
}

function pick(
  group: 'edwards25519' | 'secp256k1' | 'P-256',
  candidates: readonly Candidate[],
  prefer: GroupBackendPreference,
  load: (id: string) => unknown,
  warnings: string[],
): Group {
  const reference = NOBLE_GROUPS[group];
  const allowed = candidates.filter((c) => prefer === 'native' || (prefer === 'wasm' && c.kind !== 'native'));
  const failed: string[] = [];
  let chosen: Group = reference;
  for (const c of allowed) {
    try {
      const g = c.build(load);
      selfTest(g, reference);
      chosen = g;
      break;
    } catch (e) {
      failed.push(`${c.name} (${String((e as Error)?.message ?? e).split('\n')[0]})`);
    }
  }
  for (const f of failed) {
    warnings.push(`group backend: ${group} cannot use ${f}; falling back to ${chosen.backend}`);
  }
  return chosen;
}

/** Load and check the backends for `prefer`, falling back with a warning; installs nothing. */
export function chooseGroupBackends(o: GroupBackendOptions = {}): GroupBackendChoice {
  const prefer = o.prefer ?? groupBackendPreference(o.env ?? process.env);
  if (!(GROUP_BACKEND_PREFERENCES as readonly string[]).includes(prefer)) {
    throw new TesseraError(ErrorCode.BadInput, `group backend preference must be one of ${GROUP_BACKEND_PREFERENCES.join(', ')}`);
  }
  const load = o.load ?? createRequire(import.meta.url);
  const warn = o.warn ?? ((m: string) => process.emitWarning(m, { code: 'TESSERA_GROUP_BACKEND' }));
  const warnings: string[] = [];
  const edwards25519 = pick('edwards25519', ED25519_CANDIDATES, prefer, load, warnings);
  const secp256k1 = pick('secp256k1', SECP256K1_CANDIDATES, prefer, load, warnings);
  const p256 = pick('P-256', P256_CANDIDATES, prefer, load, warnings);
  for (const w of warnings) warn(w);
  return Object.freeze({
    prefer,
    groups: Object.freeze({ edwards25519, secp256k1, 'P-256': p256 }),
    names: Object.freeze({ edwards25519: edwards25519.backend, secp256k1: secp256k1.backend, 'P-256': p256.backend }),
    warnings: Object.freeze(warnings),
  });
}

/**
 * Choose (chooseGroupBackends) and install into core/suites.ts. Call once at start-up, before any
 * point is made: installGroupBackends throws BadState afterwards.
 */
export function selectGroupBackends(o: GroupBackendOptions = {}): GroupBackendChoice {
  const choice = chooseGroupBackends(o);
  installGroupBackends(choice.groups);
  return choice;
}

let ensured = false;

/**
 * For SDK processes (sdk/client.ts, on the first NodeClient): select once per process. Never throws:
 * a bad TESSERA_GROUP_BACKEND keeps noble, and a group with points made before this call keeps its
 * backend, each with a warning.
 */
export function ensureGroupBackends(o: GroupBackendOptions = {}): void {
  if (ensured) return;
  ensured = true;
  const warn = o.warn ?? ((m: string) => process.emitWarning(m, { code: 'TESSERA_GROUP_BACKEND' }));
  let choice: GroupBackendChoice;
  try {
    choice = chooseGroupBackends({ ...o, warn });
  } catch (e) {
    warn(`group backend: keeping noble: ${(e as Error).message}`);
    return;
  }
  for (const group of ['edwards25519', 'secp256k1', 'P-256'] as const) {
    try {
      installGroupBackends({ [group]: choice.groups[group] });
    } catch (e) {
      warn(`group backend: ${group} keeps ${groupBackendNames()[group]}: ${(e as Error).message}`);
    }
  }
}
