/**
 * The wire format: a versioned, canonical msgpack encoding of every message in core/messages.ts and
 * a strict decoder for it.
 *
 * A message is the msgpack map {v: WIRE_VERSION, t: type, s: suite id, b: body}. Each body is
 * described by one declarative schema (SCHEMAS below); a single generic walker validates and
 * normalises bodies against it, both when encoding and when decoding.
 *
 * Decoding is strict and cheap checks come first:
 *  1. framing: the input is a Uint8Array of at most MAX_MESSAGE_BYTES;
 *  2. a structural scan of the msgpack bytes (before msgpackr sees them): exactly one value, no
 *     extension types (so no msgpackr records, bundled strings, structured clone, timestamps,
 *     undefined), no floats, containers at most MAX_ENTRIES long and MAX_DEPTH deep, every length
 *     within the input — so nothing can hang, recurse deeply or allocate much;
 *  3. msgpackr parses (any throw becomes BadMessage);
 *  4. the envelope: a map with exactly the keys v, t, s, b; v = WIRE_VERSION; t and s as expected;
 *  5. the body against its schema: exact key set, byte strings of the right length, counts
 *     (commitments = threshold for DKG, threshold - 1 for refresh; echo keys in 1..parties, for the
 *     DKG echo and for the commitment echo inside sign/share);
 *  6. canonical form: re-encoding the decoded message must give the input bytes exactly, so every
 *     message has one encoding (what echo / equivocation checks compare), and duplicate keys,
 *     non-minimal integers or reordered keys are rejected;
 *  7. group elements and scalars, through the suite's Group (RFC 9591 §3.1 DeserializeElement and
 *     DeserializeScalar): invalid or identity elements -> BadPoint, scalars >= order -> BadScalar.
 *     Zero scalars are accepted as DeserializeScalar does (a share or response may be zero).
 *     Validate once: every element validated here is remembered with the byte array it came in
 *     (core/frost.ts rememberPoint / decodePoint), so the protocol code does not decode it again.
 *
 * Every failure is a TesseraError (BadMessage, BadPoint, BadScalar, UnknownSuite); error messages name
 * fields and lengths, never input bytes.
 */
import { Packr, Unpackr } from 'msgpackr';
import { equalBytes } from './bytes.js';
import { ErrorCode, TesseraError, ensure, guard } from './errors.js';
import { rememberPoint } from './frost.js';
import type { Group } from './group.js';
import type { DkgRound1Msg, MessageBodies, MessageType, ReshareDealMsg, WrappedShareMsg } from './messages.js';
import { MESSAGE_TYPES } from './messages.js';
import { getSuite, type Suite, type SuiteId } from './suites.js';

export const WIRE_VERSION = 1;

/**
 * Largest accepted message. An echo carries every party's round-1 package; with n = t = 255 and
 * ML-DSA-65 signatures (3309 bytes) that is about 3 MiB, so 4 MiB covers every legal message.
 */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Most entries in any msgpack array or map: parties and thresholds are at most 255 (core/shamir.ts). */
export const MAX_ENTRIES = 255;
/** Deepest container nesting (envelope > body > packages > package > commitments is 5; sign/share is 4). */
export const MAX_DEPTH = 8;
/** Bound on identity signatures in dkg/round1, sign/commit and sign/share (ML-DSA-65 signatures are 3309 bytes). */
export const MAX_SIGNATURE_BYTES = 8192;
/** Bounds on a wrapped share's AEAD ciphertext: at least a 16-byte tag, at most a small share record. */
export const MIN_WRAPPED_CIPHERTEXT_BYTES = 16;
export const MAX_WRAPPED_CIPHERTEXT_BYTES = 4096;
/** Bounds on the ECDSA setup and F_RVOLE messages (about 8 KiB and 53 KiB today; core/ecdsa/mul.ts checks exact lengths). */
export const MAX_ECDSA_SETUP_BYTES = 64 * 1024;
export const MAX_ECDSA_MUL_BYTES = 256 * 1024;
/**
 * The most DKLs23 presignatures one presigning session makes (ecdsa/presign1, ecdsa/presign2 carry one
 * entry per instance). A round-2 instance is about 53 KiB (its F_RVOLE reply), so 64 of them stay
 * under MAX_MESSAGE_BYTES and the relay's payload cap.
 */
export const MAX_ECDSA_PRESIGN_BATCH = 64;
/** Confirmation digests: 32..64 bytes (SHA-256 .. SHA-512 output). */
export const MIN_DIGEST_BYTES = 32;
export const MAX_DIGEST_BYTES = 64;

/** RFC 9180 KEM ids of the share-wrapping KEMs and their `enc` lengths. */
export const WRAP_KEM_ENC_LENGTHS: Readonly<Record<number, number>> = Object.freeze({
  0x0041: 1088, // ML-KEM-768 ciphertext (FIPS 203)
  0x647a: 1120, // X-Wing: ML-KEM-768 ciphertext || X25519 ephemeral key
});

/** Optional session parameters that tighten the count checks. */
export interface WireLimits {
  /** t: dkg/round1 must carry t commitments (t - 1 with an empty proof, i.e. refresh). */
  readonly threshold?: number;
  /** n: dkg/echo keys must be party indexes 1..n. */
  readonly parties?: number;
}

// ---------------------------------------------------------------------------------------------
// The schema language

type Atom = 'point' | 'scalar';

type Kind =
  /** A canonical group element encoding (suite.group.pointLength bytes); never the identity. */
  | { readonly kind: 'point' }
  /** A canonical scalar encoding (suite.group.scalarLength bytes); zero allowed. */
  | { readonly kind: 'scalar' }
  /** Opaque bytes with a length range. */
  | { readonly kind: 'bytes'; readonly min: number; readonly max: number }
  /** Fixed-length atoms concatenated into one byte string (e.g. a Schnorr proof R || z), or empty. */
  | { readonly kind: 'concat'; readonly parts: readonly Atom[]; readonly orEmpty: boolean }
  /** A non-negative integer from a fixed set. */
  | { readonly kind: 'uint'; readonly oneOf: readonly number[] }
  /** A list with count bounds. */
  | { readonly kind: 'list'; readonly of: Kind; readonly min: number; readonly max: number }
  /** A map from party index (1..parties) to a value, keys ascending on the wire. */
  | { readonly kind: 'byParty'; readonly of: Kind; readonly min: number }
  /** A map with exactly these fields, in this order on the wire, plus an optional cross-field rule. */
  | { readonly kind: 'struct'; readonly fields: readonly (readonly [string, Kind])[]; readonly refine?: Refine };

type Struct = Extract<Kind, { kind: 'struct' }>;
type Refine = (value: Record<string, unknown>, ctx: WalkContext, path: string) => void;

interface WalkContext {
  readonly group: Group;
  readonly limits: WireLimits;
  /** Group-level checks deferred until all cheap checks (and the canonical check) have passed. */
  readonly pending: { atom: Atom; bytes: Uint8Array; path: string }[];
}

const POINT: Kind = { kind: 'point' };
const SCALAR: Kind = { kind: 'scalar' };
const bytes = (min: number, max: number): Kind => ({ kind: 'bytes', min, max });
const list = (of: Kind, min: number, max: number): Kind => ({ kind: 'list', of, min, max });
const struct = (fields: Struct['fields'], refine?: Refine): Struct => ({ kind: 'struct', fields, refine });

function bad(message: string): TesseraError {
  return new TesseraError(ErrorCode.BadMessage, message);
}

/**
 * Feldman commitments: t of them with a proof of knowledge (DKG), t - 1 with an empty proof
 * (refresh omits C_0, the identity). Without a known t: t >= 2 bounds the counts from below.
 */
const refineRound1: Refine = (value, ctx, path) => {
  const m = value as unknown as DkgRound1Msg;
  const refresh = m.proof.length === 0;
  const t = ctx.limits.threshold;
  if (t !== undefined) {
    const want = refresh ? t - 1 : t;
    ensure(
      m.commitments.length === want,
      ErrorCode.BadMessage,
      `${path}.commitments: expected ${want} commitments for threshold ${t}${refresh ? ' (refresh)' : ''}, got ${m.commitments.length}`,
    );
  } else {
    ensure(
      m.commitments.length >= (refresh ? 1 : 2) && m.commitments.length <= (refresh ? MAX_ENTRIES - 1 : MAX_ENTRIES),
      ErrorCode.BadMessage,
      `${path}.commitments: count does not fit any threshold`,
    );
  }
};

/** The `enc` length is fixed by the KEM (RFC 9180 Nenc). */
const refineWrap: Refine = (value, _ctx, path) => {
  const m = value as unknown as WrappedShareMsg;
  const want = WRAP_KEM_ENC_LENGTHS[m.kem]!;
  ensure(m.enc.length === want, ErrorCode.BadMessage, `${path}.enc: expected ${want} bytes for KEM ${m.kem}, got ${m.enc.length}`);
};

const DKG_ROUND1 = struct(
  [
    ['commitments', list(POINT, 1, MAX_ENTRIES)],
    ['proof', { kind: 'concat', parts: ['point', 'scalar'], orEmpty: true }],
    ['signature', bytes(1, MAX_SIGNATURE_BYTES)],
  ],
  refineRound1,
);

/** FROST round-1 commitments with the signer's identity signature (core/sign.ts signCommitSignedBytes). */
const SIGNED_COMMIT = struct([
  ['hiding', POINT],
  ['binding', POINT],
  ['signature', bytes(1, MAX_SIGNATURE_BYTES)],
]);

/** One ECDSA setup message (core/ecdsa/setup.ts); core/ecdsa/mul.ts checks its exact form. */
const ECDSA_SETUP = struct([['msg', bytes(1, MAX_ECDSA_SETUP_BYTES)]]);
/** An F_RVOLE message (core/ecdsa/mul.ts checks its exact length). */
const MUL_MESSAGE = bytes(1, MAX_ECDSA_MUL_BYTES);
const ECDSA_ROUND1 = struct([
  ['commitment', bytes(32, 32)],
  ['mul', MUL_MESSAGE],
]);
const ECDSA_ROUND2 = struct([
  ['echo', bytes(32, 32)],
  ['R', POINT],
  ['salt', bytes(32, 32)],
  ['gammaU', POINT],
  ['gammaV', POINT],
  ['psi', SCALAR],
  ['mul', MUL_MESSAGE],
]);

/**
 * A reshare deal (core/reshare.ts) commits to t' coefficients (t' = the NEW threshold: pass it as
 * limits.threshold); without a known t', t' >= 2 bounds the count from below.
 */
const refineReshareDeal: Refine = (value, ctx, path) => {
  const m = value as unknown as ReshareDealMsg;
  const t = ctx.limits.threshold;
  if (t === undefined) return;
  ensure(m.commitments.length === t, ErrorCode.BadMessage, `${path}.commitments: expected ${t} commitments for new threshold ${t}, got ${m.commitments.length}`);
};

/** Length of the old package digest in a reshare deal (core/commit.ts publicPackageDigest, SHA-256). */
const RESHARE_PACKAGE_DIGEST_BYTES = 32;

const RESHARE_DEAL = struct(
  [
    ['commitments', list(POINT, 2, MAX_ENTRIES)],
    ['oldPackageDigest', bytes(RESHARE_PACKAGE_DIGEST_BYTES, RESHARE_PACKAGE_DIGEST_BYTES)],
    ['signature', bytes(1, MAX_SIGNATURE_BYTES)],
  ],
  refineReshareDeal,
);

/**
 * Message types whose plaintext body is secret (a share in transit, sent point to point over the
 * encrypted channel): the receiver zeroizes the decoded bytes once used, as for dkg/round2.
 */
export const SECRET_MESSAGE_TYPES: readonly MessageType[] = Object.freeze(['dkg/round2', 'reshare/share'] as MessageType[]);

const SCHEMAS: { readonly [T in MessageType]: Struct } = {
  'dkg/round1': DKG_ROUND1,
  'dkg/round2': struct([['share', SCALAR]]),
  'dkg/echo': struct([['packages', { kind: 'byParty', of: DKG_ROUND1, min: 1 }]]),
  'dkg/confirm': struct([['digest', bytes(MIN_DIGEST_BYTES, MAX_DIGEST_BYTES)]]),
  'sign/commit': SIGNED_COMMIT,
  'sign/share': struct([
    ['share', SCALAR],
    ['commitments', { kind: 'byParty', of: SIGNED_COMMIT, min: 2 }],
    ['signature', bytes(1, MAX_SIGNATURE_BYTES)],
  ]),
  'decap/partial': struct([
    ['partial', POINT],
    ['proofChallenge', SCALAR],
    ['proofResponse', SCALAR],
  ]),
  'wrap/share': struct(
    [
      ['kem', { kind: 'uint', oneOf: Object.keys(WRAP_KEM_ENC_LENGTHS).map(Number) }],
      ['enc', bytes(Math.min(...Object.values(WRAP_KEM_ENC_LENGTHS)), Math.max(...Object.values(WRAP_KEM_ENC_LENGTHS)))],
      ['ciphertext', bytes(MIN_WRAPPED_CIPHERTEXT_BYTES, MAX_WRAPPED_CIPHERTEXT_BYTES)],
    ],
    refineWrap,
  ),
  'ecdsa/setup1': ECDSA_SETUP,
  'ecdsa/setup2': ECDSA_SETUP,
  'ecdsa/setup3': ECDSA_SETUP,
  'ecdsa/setup4': ECDSA_SETUP,
  'ecdsa/setup5': ECDSA_SETUP,
  'ecdsa/round1': ECDSA_ROUND1,
  'ecdsa/round2': ECDSA_ROUND2,
  'ecdsa/round3': struct([
    ['u', SCALAR],
    ['w', SCALAR],
  ]),
  'ecdsa/presign1': struct([['instances', list(ECDSA_ROUND1, 1, MAX_ECDSA_PRESIGN_BATCH)]]),
  'ecdsa/presign2': struct([['instances', list(ECDSA_ROUND2, 1, MAX_ECDSA_PRESIGN_BATCH)]]),
  'reshare/deal': RESHARE_DEAL,
  'reshare/share': struct([
    ['share', SCALAR],
    ['signature', bytes(1, MAX_SIGNATURE_BYTES)],
  ]),
  // Keyed by dealer index: pass no `parties` limit (dealers are node indices, not 1..n), or the largest index.
  'reshare/echo': struct([['packages', { kind: 'byParty', of: RESHARE_DEAL, min: 2 }]]),
  'reshare/confirm': struct([['digest', bytes(MIN_DIGEST_BYTES, MAX_DIGEST_BYTES)]]),
};

/** Which suites a message type may travel under: FROST messages need a signing suite, decap a KEM suite. */
const SUITE_KIND: { readonly [T in MessageType]?: Suite['kind'] } = {
  'sign/commit': 'sign',
  'sign/share': 'sign',
  'decap/partial': 'kem',
  'ecdsa/setup1': 'ecdsa',
  'ecdsa/setup2': 'ecdsa',
  'ecdsa/setup3': 'ecdsa',
  'ecdsa/setup4': 'ecdsa',
  'ecdsa/setup5': 'ecdsa',
  'ecdsa/round1': 'ecdsa',
  'ecdsa/round2': 'ecdsa',
  'ecdsa/round3': 'ecdsa',
  'ecdsa/presign1': 'ecdsa',
  'ecdsa/presign2': 'ecdsa',
};

// ---------------------------------------------------------------------------------------------
// The generic walker

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Entries of a map-like value: a Map (decoded msgpack) or a plain object (a body being encoded). */
function entriesOf(v: unknown): [unknown, unknown][] | undefined {
  if (v instanceof Map) return [...v.entries()];
  if (isPlainObject(v)) return Object.keys(v).map((k) => [k, v[k]]);
  return undefined;
}

function atomLength(atom: Atom, group: Group): number {
  return atom === 'point' ? group.pointLength : group.scalarLength;
}

function copyBytes(v: unknown, path: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad(`${path}: expected a byte string`);
  // A plain Uint8Array copy: msgpackr hands out Buffer views into the input.
  return new Uint8Array(v);
}

function lengthIn(b: Uint8Array, min: number, max: number, path: string): void {
  if (b.length < min || b.length > max) {
    throw bad(min === max ? `${path}: expected ${min} bytes, got ${b.length}` : `${path}: expected ${min}..${max} bytes, got ${b.length}`);
  }
}

/** Party index keys: integers on the wire; decimal strings when a JS object is being encoded. */
function partyKey(k: unknown, path: string): number {
  let n: number | undefined;
  if (typeof k === 'number') n = k;
  else if (typeof k === 'string' && /^[1-9][0-9]{0,2}$/.test(k)) n = Number(k);
  if (n === undefined || !Number.isSafeInteger(n) || n < 1) throw bad(`${path}: keys must be party indexes`);
  return n;
}

/**
 * Validate `value` against `kind` and return a fresh, normalised copy (plain Uint8Array copies, plain
 * objects, fields in schema order). Group checks are queued in ctx.pending, not run here.
 */
function walk(kind: Kind, value: unknown, path: string, ctx: WalkContext): unknown {
  switch (kind.kind) {
    case 'point':
    case 'scalar': {
      const b = copyBytes(value, path);
      const len = atomLength(kind.kind, ctx.group);
      lengthIn(b, len, len, path);
      ctx.pending.push({ atom: kind.kind, bytes: b, path });
      return b;
    }
    case 'bytes': {
      const b = copyBytes(value, path);
      lengthIn(b, kind.min, kind.max, path);
      return b;
    }
    case 'concat': {
      const b = copyBytes(value, path);
      if (b.length === 0 && kind.orEmpty) return b;
      const lens = kind.parts.map((a) => atomLength(a, ctx.group));
      const total = lens.reduce((x, y) => x + y, 0);
      if (b.length !== total) throw bad(`${path}: expected ${kind.orEmpty ? `0 or ${total}` : total} bytes, got ${b.length}`);
      let off = 0;
      kind.parts.forEach((atom, i) => {
        ctx.pending.push({ atom, bytes: b.subarray(off, off + lens[i]!), path: `${path}[${i}]` });
        off += lens[i]!;
      });
      return b;
    }
    case 'uint': {
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw bad(`${path}: expected an unsigned integer`);
      if (!kind.oneOf.includes(value)) throw bad(`${path}: unsupported value`);
      return value;
    }
    case 'list': {
      if (!Array.isArray(value)) throw bad(`${path}: expected a list`);
      if (value.length < kind.min || value.length > kind.max) {
        throw bad(`${path}: expected ${kind.min}..${kind.max} entries, got ${value.length}`);
      }
      return value.map((v, i) => walk(kind.of, v, `${path}[${i}]`, ctx));
    }
    case 'byParty': {
      const entries = entriesOf(value);
      if (entries === undefined) throw bad(`${path}: expected a map`);
      const maxParty = ctx.limits.parties ?? MAX_ENTRIES;
      if (entries.length < kind.min || entries.length > maxParty) {
        throw bad(`${path}: expected ${kind.min}..${maxParty} entries, got ${entries.length}`);
      }
      const keyed = entries.map(([k, v]) => [partyKey(k, path), v] as const);
      keyed.sort((a, b) => a[0] - b[0]);
      const out: Record<number, unknown> = {};
      for (let i = 0; i < keyed.length; i++) {
        const [party, v] = keyed[i]!;
        if (party > maxParty) throw bad(`${path}: party index out of range 1..${maxParty}`);
        if (i > 0 && keyed[i - 1]![0] === party) throw bad(`${path}: party ${party} appears twice`);
        out[party] = walk(kind.of, v, `${path}[${party}]`, ctx);
      }
      return out;
    }
    case 'struct': {
      const entries = entriesOf(value);
      if (entries === undefined) throw bad(`${path}: expected a map`);
      const byName = new Map<string, unknown>();
      for (const [k, v] of entries) {
        // The key itself is input: name the container, not the key.
        if (typeof k !== 'string' || !kind.fields.some(([name]) => name === k)) throw bad(`${path}: unknown field`);
        if (byName.has(k)) throw bad(`${path}: duplicate field`);
        byName.set(k, v);
      }
      const out: Record<string, unknown> = {};
      for (const [name, fieldKind] of kind.fields) {
        if (!byName.has(name)) throw bad(`${path}: missing field ${name}`);
        out[name] = walk(fieldKind, byName.get(name), `${path}.${name}`, ctx);
      }
      kind.refine?.(out, ctx, path);
      return out;
    }
  }
}

/** The msgpack-ready form of a normalised value: Maps with keys in canonical order. */
function toWire(kind: Kind, value: unknown): unknown {
  switch (kind.kind) {
    case 'point':
    case 'scalar':
    case 'bytes':
    case 'concat':
    case 'uint':
      return value;
    case 'list':
      return (value as unknown[]).map((v) => toWire(kind.of, v));
    case 'byParty': {
      const rec = value as Record<number, unknown>;
      const keys = Object.keys(rec)
        .map(Number)
        .sort((a, b) => a - b);
      return new Map(keys.map((k) => [k, toWire(kind.of, rec[k])]));
    }
    case 'struct': {
      const rec = value as Record<string, unknown>;
      return new Map(kind.fields.map(([name, k]) => [name, toWire(k, rec[name])]));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// msgpack

// Plain msgpack only: no records, no structured clone, no bundled strings, no extra JS types.
const PACKR = new Packr({
  useRecords: false,
  structuredClone: false,
  bundleStrings: false,
  moreTypes: false,
  variableMapSize: true,
  useFloat32: 0,
});
const UNPACKR = new Unpackr({
  useRecords: false,
  structuredClone: false,
  bundleStrings: false,
  moreTypes: false,
  mapsAsObjects: false,
  int64AsType: 'bigint',
});

function pack(value: unknown): Uint8Array {
  // Copy out of msgpackr's shared output buffer into a plain Uint8Array.
  return new Uint8Array(PACKR.pack(value));
}

/**
 * Structural scan of msgpack bytes before any parser allocates: exactly one value spanning the input,
 * only nil / bool / int / str / bin / array / map, containers of at most MAX_ENTRIES entries nested
 * at most MAX_DEPTH deep, every length inside the input. Linear time, constant work per byte.
 */
function scanMsgpack(b: Uint8Array): void {
  const end = b.length;
  let pos = 0;
  const need = (n: number) => {
    if (n > end - pos) throw bad('wire message is truncated');
  };
  const readLen = (n: 1 | 2 | 4): number => {
    need(n);
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + b[pos++]!;
    return v;
  };
  // Items still expected in each open container; the bottom entry is the single top-level value.
  const open: number[] = [1];
  while (open.length > 0) {
    const top = open.length - 1;
    if (open[top] === 0) {
      open.pop();
      continue;
    }
    open[top]!--;
    need(1);
    const token = b[pos++]!;
    let entries = -1; // container entry count
    let items = 0; // items a container holds (2 per map entry)
    if (token <= 0x7f || token >= 0xe0 || token === 0xc0 || token === 0xc2 || token === 0xc3) {
      // fixint, negative fixint, nil, false, true
    } else if (token <= 0x8f) {
      entries = token & 0x0f;
      items = entries * 2;
    } else if (token <= 0x9f) {
      entries = token & 0x0f;
      items = entries;
    } else if (token <= 0xbf) {
      const n = token & 0x1f;
      need(n);
      pos += n;
    } else {
      switch (token) {
        case 0xc4: // bin 8 / 16 / 32, str 8 / 16 / 32
        case 0xd9: {
          const n = readLen(1);
          need(n);
          pos += n;
          break;
        }
        case 0xc5:
        case 0xda: {
          const n = readLen(2);
          need(n);
          pos += n;
          break;
        }
        case 0xc6:
        case 0xdb: {
          const n = readLen(4);
          need(n);
          pos += n;
          break;
        }
        case 0xcc: // uint 8 / 16 / 32 / 64, int 8 / 16 / 32 / 64
        case 0xd0:
          need(1);
          pos += 1;
          break;
        case 0xcd:
        case 0xd1:
          need(2);
          pos += 2;
          break;
        case 0xce:
        case 0xd2:
          need(4);
          pos += 4;
          break;
        case 0xcf:
        case 0xd3:
          need(8);
          pos += 8;
          break;
        case 0xdc: // array 16 / 32
          entries = readLen(2);
          items = entries;
          break;
        case 0xdd:
          entries = readLen(4);
          items = entries;
          break;
        case 0xde: // map 16 / 32
          entries = readLen(2);
          items = entries * 2;
          break;
        case 0xdf:
          entries = readLen(4);
          items = entries * 2;
          break;
        case 0xca:
        case 0xcb:
          throw bad('wire message contains a float');
        default:
          // 0xc1 (never used), ext 8/16/32 (0xc7-0xc9), fixext (0xd4-0xd8)
          throw bad('wire message contains a msgpack extension or reserved byte');
      }
    }
    if (entries > 0) {
      if (entries > MAX_ENTRIES) throw bad(`wire message has a container of more than ${MAX_ENTRIES} entries`);
      if (open.length > MAX_DEPTH) throw bad(`wire message nests deeper than ${MAX_DEPTH}`);
      // Every item takes at least one byte, so a count beyond the remaining input is a lie.
      need(items);
      open.push(items);
    }
  }
  if (pos !== end) throw bad('wire message has trailing bytes');
}

// ---------------------------------------------------------------------------------------------
// API

function schemaFor(type: unknown): Struct {
  if (typeof type !== 'string' || !(MESSAGE_TYPES as readonly string[]).includes(type)) {
    throw bad('unknown message type');
  }
  return SCHEMAS[type as MessageType];
}

function suiteFor(type: MessageType, suite: unknown): Suite {
  const s = getSuite(suite);
  const kind = SUITE_KIND[type];
  if (kind !== undefined && s.kind !== kind) {
    throw new TesseraError(ErrorCode.UnknownSuite, `suite ${s.id} cannot carry ${type} messages`);
  }
  return s;
}

function checkLimits(limits: WireLimits | undefined): WireLimits {
  if (limits === undefined) return {};
  const { threshold, parties } = limits;
  const ok = (x: number | undefined) => x === undefined || (Number.isSafeInteger(x) && x >= 2 && x <= MAX_ENTRIES);
  ensure(ok(threshold) && ok(parties), ErrorCode.BadParameters, `wire limits must be integers 2..${MAX_ENTRIES}`);
  ensure(
    threshold === undefined || parties === undefined || threshold <= parties,
    ErrorCode.BadParameters,
    'wire limits: threshold exceeds parties',
  );
  return { threshold, parties };
}

const ENVELOPE_KEYS = ['v', 't', 's', 'b'] as const;

function envelope(type: MessageType, suite: SuiteId, body: unknown): Map<string, unknown> {
  return new Map<string, unknown>([
    ['v', WIRE_VERSION],
    ['t', type],
    ['s', suite],
    ['b', body],
  ]);
}

/**
 * Encode a message body canonically. The body is checked against its schema (fields, lengths, counts)
 * first, so a malformed body is a BadMessage here rather than at every receiver; group elements are
 * not re-validated (they come from this party's own Group).
 */
export function encodeMessage<T extends MessageType>(type: T, suite: SuiteId, body: MessageBodies[T]): Uint8Array {
  const schema = schemaFor(type);
  const s = suiteFor(type, suite);
  const ctx: WalkContext = { group: s.group, limits: {}, pending: [] };
  const normalised = walk(schema, body, type, ctx);
  return pack(envelope(type, s.id, toWire(schema, normalised)));
}

/**
 * Strictly decode a message of the expected type and suite (see the module comment for the order of
 * checks). `limits` tightens count checks to the session's threshold and party count.
 */
export function decodeMessage<T extends MessageType>(
  bytes: Uint8Array,
  type: T,
  suite: SuiteId,
  limits?: WireLimits,
): MessageBodies[T] {
  // The caller's own arguments.
  const schema = schemaFor(type);
  const s = suiteFor(type, suite);
  const lim = checkLimits(limits);

  // 1-3. Framing and msgpack.
  if (!(bytes instanceof Uint8Array)) throw bad('wire message must be a byte array');
  if (bytes.length > MAX_MESSAGE_BYTES) throw bad(`wire message exceeds ${MAX_MESSAGE_BYTES} bytes`);
  scanMsgpack(bytes);
  const root: unknown = guard(ErrorCode.BadMessage, 'wire message is not valid msgpack', () =>
    // A fresh view: msgpackr caches a DataView as a property on whatever array it is handed.
    UNPACKR.unpack(bytes.subarray()),
  );

  // 4. Envelope.
  if (!(root instanceof Map)) throw bad('wire message is not a map');
  for (const k of root.keys()) {
    if (typeof k !== 'string' || !(ENVELOPE_KEYS as readonly string[]).includes(k)) throw bad('wire message has an unknown field');
  }
  for (const k of ENVELOPE_KEYS) if (!root.has(k)) throw bad(`wire message is missing field ${k}`);
  if (root.get('v') !== WIRE_VERSION) throw bad(`unsupported wire version (expected version ${WIRE_VERSION})`);
  if (root.get('t') !== type) throw bad(`wire message is not of type ${type}`);
  if (root.get('s') !== s.id) throw bad(`wire message is not for suite ${s.id}`);

  // 5. Body shape and counts.
  const ctx: WalkContext = { group: s.group, limits: lim, pending: [] };
  const body = walk(schema, root.get('b'), type, ctx);

  // 6. Canonical form: exactly one encoding per message.
  if (!equalBytes(pack(envelope(type, s.id, toWire(schema, body))), bytes)) {
    throw bad('wire message is not canonically encoded');
  }

  // 7. Group elements and scalars (RFC 9591 §3.1 DeserializeElement / DeserializeScalar). Each
  //    validated element is remembered with its byte array (core/frost.ts rememberPoint), so protocol
  //    code that decodes these bytes again gets the point without a second validation.
  for (const { atom, bytes: b, path } of ctx.pending) {
    if (atom === 'point') {
      const p = guard(ErrorCode.BadPoint, `${path}: not a valid group element`, () => s.group.pointFromBytes(b, path));
      rememberPoint(s.group, b, p);
    } else guard(ErrorCode.BadScalar, `${path}: not a valid scalar`, () => s.group.scalarFromBytes(b, path, true));
  }
  return body as MessageBodies[T];
}
