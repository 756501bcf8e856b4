/**
 * The audit log's format and its offline verifier, shared by the node (node/governance/audit.ts writes the log)
 * and the SDK / CLI (which fetch a node's export and verify it). Pure: no I/O, no clock.
 *
 * Entries are hash-chained with SHA-256 (FIPS 180-4): each entry carries `prevHash`, the hash of the
 * entry before it (32 zero bytes for seq 1), and `hash`, SHA-256 over the canonical encoding of all
 * its other fields (auditEntryHash). Every so often the node signs a checkpoint {seq, headHash, time}
 * with its ML-DSA-65 identity key (core/identity.ts); a valid checkpoint at seq c authenticates entries
 * 1..c through the chain.
 *
 * Entries never hold key material: every field is an id from the id alphabet, a number, a word from a
 * fixed list, a hex session id, or a short reason that validateAuditFields() screens for blobs.
 *
 * What verifyAuditLog reports (each problem names the seq it concerns):
 *   malformed-entry            an entry that does not parse (wrong fields, types, alphabet)
 *   edited                     entry k's content no longer hashes to its recorded hash
 *   chain-break                entry k does not link to entry k-1: one of them was altered and re-hashed,
 *                              or k was replaced / inserted
 *   dropped                    entries k..m are missing from the sequence
 *   reordered                  entry k appears after a later entry
 *   duplicate                  seq k appears more than once (an inserted entry)
 *   malformed-checkpoint       a checkpoint that does not parse
 *   bad-checkpoint-signature   the node's identity key did not sign this checkpoint as it stands
 *   checkpoint-mismatch        a signed checkpoint's headHash is not the chain's hash at its seq: entries
 *                              up to it were rewritten after it was signed
 *   checkpoint-beyond-log      a signed checkpoint names a seq the log does not have (truncated log)
 *   checkpoint-order           checkpoints not in increasing seq order (times are the node clock's and
 *                              may step back: the seq, not the time, orders the log)
 *
 * Trailing unsigned entries (after the last valid checkpoint) are NOT a problem: a live log always has
 * some between checkpoints, and their chain is still checked. They are reported apart, in `unsigned`,
 * and `complete` is true only when `ok` holds and there are none. Anyone able to write the node's
 * database could rewrite those entries consistently, so a strict verifier (the CLI) should require
 * `complete`; node/governance/audit.ts's exportLog() signs a checkpoint of the head first, so a fresh export is
 * complete unless tampered with. Deleting the tail together with every checkpoint after it cannot be
 * detected from the log alone: compare `headSeq` with an earlier export to catch that.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, fromHex, framed, i2osp, toHex, utf8ToBytes } from './bytes.js';
import { ErrorCode, TesseraError, ensure } from './errors.js';
import { IDENTITY_PUBLIC_KEY_LENGTH, IDENTITY_SIGNATURE_LENGTH, identityVerify } from './identity.js';

export const AUDIT_FORMAT = 1;

/** What an entry can record. Closed: an operation outside this list is refused. */
export const AUDIT_OPERATIONS = [
  // sessions and key operations
  'keygen',
  'sign',
  'decapsulate',
  'refresh',
  'export',
  'import',
  'rotate',
  // moving a key to a new committee (issue 13)
  'reshare',
  // local key operations (no session)
  'verify',
  // an operator refusing a session on one of its keys (the node tells the coordinator, never joins)
  'decline',
  // finishing an interrupted commit from its certificate (node/sessions/commit.ts applyCertificate)
  'repair',
  // lifecycle transitions and settings
  'retire',
  'archive',
  'activate',
  'destroy',
  'rotation.set',
  'rotation.warning',
  // administration
  'tenant.create',
  'apikey.create',
  'apikey.revoke',
  'policy.update',
  'policy.fail-open.enable',
  'policy.fail-open.disable',
  'policy.fail-open.revert',
  'audit.export',
  // cluster membership (issue 13): a certified change, and one finished from its certificate
  'membership.change',
  'membership.repair',
  'node.start',
  // the node's KEK re-wrapping every record (issue 15; node/store/kek-rotation.ts)
  'kek.rotate',
  // a shamir-unseal node's KEK rotation, phase 1: new operator shares of the next KEK (node/sealed.ts prepareKekRotation)
  'kek.rotate-prepare',
  // a shamir-unseal node (node/sealed.ts): initialisation, each share submitted (accepted or refused, and
  // the unseal it completed), sealing a running node; recorded while sealed, copied in when the store opens
  'node.unseal-init',
  'node.unseal',
  'node.seal',
] as const;
export type AuditOperation = (typeof AUDIT_OPERATIONS)[number];

/** started: about to run (written before the node joins, so a failed write stops the operation). */
export const AUDIT_OUTCOMES = ['started', 'ok', 'denied', 'failed'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

export const AUDIT_SEVERITIES = ['info', 'warning', 'critical'] as const;
export type AuditSeverity = (typeof AUDIT_SEVERITIES)[number];

/** Tenants, actors (API key ids) and key ids: the id alphabet of core/session.ts. */
export const AUDIT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** Session ids as lowercase hex, 16..64 bytes. */
export const AUDIT_SESSION_ID_PATTERN = /^(?:[0-9a-f]{2}){16,64}$/;
export const MAX_REASON_LENGTH = 200;
/** A run this long of hex / base64 characters looks like encoded bytes, not words: refused in reasons. */
const BLOB_RUN = /[A-Za-z0-9+/=]{32,}/;
const HASH_HEX = /^[0-9a-f]{64}$/;

export const GENESIS_HASH = '0'.repeat(64);

/** What a caller records. Everything but operation and outcome is optional. */
export interface AuditFields {
  readonly tenant?: string;
  /** The API key id that asked (or a system actor id, e.g. 'node'). */
  readonly actor?: string;
  readonly operation: AuditOperation;
  readonly keyId?: string;
  readonly version?: number;
  /** Hex. */
  readonly sessionId?: string;
  readonly outcome: AuditOutcome;
  /** Default 'info'. */
  readonly severity?: AuditSeverity;
  /** Short printable-ASCII reason, e.g. the policy rule that denied. */
  readonly reason?: string;
}

/** One entry as stored and exported (JSON-safe: hashes are lowercase hex). */
export interface AuditEntry extends AuditFields {
  readonly seq: number;
  /** Milliseconds since the Unix epoch. */
  readonly time: number;
  readonly severity: AuditSeverity;
  readonly prevHash: string;
  readonly hash: string;
}

export interface AuditCheckpoint {
  readonly seq: number;
  readonly headHash: string;
  readonly time: number;
  /** ML-DSA-65 signature (hex) over checkpointMessage(seq, headHash, time). */
  readonly signature: string;
}

export interface AuditExport {
  readonly format: typeof AUDIT_FORMAT;
  readonly entries: readonly AuditEntry[];
  readonly checkpoints: readonly AuditCheckpoint[];
}

export type AuditProblemKind =
  | 'malformed-entry'
  | 'edited'
  | 'chain-break'
  | 'dropped'
  | 'reordered'
  | 'duplicate'
  | 'malformed-checkpoint'
  | 'bad-checkpoint-signature'
  | 'checkpoint-mismatch'
  | 'checkpoint-beyond-log'
  | 'checkpoint-order';

export interface AuditProblem {
  readonly kind: AuditProblemKind;
  /** The entry seq (or checkpoint seq) concerned; 0 when none can be read. */
  readonly seq: number;
  readonly message: string;
}

export interface AuditVerification {
  /** No problems: seqs 1..headSeq all present once and in order, chain intact, every checkpoint valid and matching. */
  readonly ok: boolean;
  /** `ok` and every entry covered by a valid checkpoint. What a strict verifier requires. */
  readonly complete: boolean;
  readonly problems: readonly AuditProblem[];
  readonly entries: number;
  /** The highest seq in the log (0 when empty). */
  readonly headSeq: number;
  /** Entries 1..signedThrough are authenticated by a valid checkpoint and an intact chain (0: none). */
  readonly signedThrough: number;
  /** Entries after the last valid checkpoint, if any: chain-checked but not signed. */
  readonly unsigned?: { readonly fromSeq: number; readonly toSeq: number };
}

// ---------------------------------------------------------------------------------------------
// Fields

const FIELD_NAMES = new Set(['tenant', 'actor', 'operation', 'keyId', 'version', 'sessionId', 'outcome', 'severity', 'reason']);
const ENTRY_NAMES = new Set([...FIELD_NAMES, 'seq', 'time', 'prevHash', 'hash']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isUint(v: unknown, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max;
}

/**
 * Check what a caller wants to record and return it normalized (severity defaulted, no other keys).
 * BAD_INPUT naming the field otherwise. Values are never echoed (they may be what must not be logged).
 */
export function validateAuditFields(input: unknown): AuditFields & { severity: AuditSeverity } {
  ensure(isRecord(input), ErrorCode.BadInput, 'audit: expected an object of fields');
  for (const k of Object.keys(input)) {
    ensure(FIELD_NAMES.has(k), ErrorCode.BadInput, `audit: unknown field ${JSON.stringify(k.slice(0, 32))}`);
  }
  const f = input as Record<string, unknown>;
  const id = (name: string): string | undefined => {
    const v = f[name];
    if (v === undefined) return undefined;
    ensure(typeof v === 'string' && AUDIT_ID_PATTERN.test(v), ErrorCode.BadInput, `audit: ${name} must be 1-128 of [A-Za-z0-9._:-], starting alphanumeric`);
    return v;
  };
  ensure(
    typeof f.operation === 'string' && (AUDIT_OPERATIONS as readonly string[]).includes(f.operation),
    ErrorCode.BadInput,
    'audit: operation is not one of the audited operations',
  );
  ensure(typeof f.outcome === 'string' && (AUDIT_OUTCOMES as readonly string[]).includes(f.outcome), ErrorCode.BadInput, `audit: outcome must be one of ${AUDIT_OUTCOMES.join(', ')}`);
  const severity = f.severity ?? 'info';
  ensure(typeof severity === 'string' && (AUDIT_SEVERITIES as readonly string[]).includes(severity), ErrorCode.BadInput, `audit: severity must be one of ${AUDIT_SEVERITIES.join(', ')}`);
  ensure(f.version === undefined || (isUint(f.version, 0xffffffff) && f.version >= 1), ErrorCode.BadInput, 'audit: version must be an integer 1..2^32-1');
  ensure(
    f.sessionId === undefined || (typeof f.sessionId === 'string' && AUDIT_SESSION_ID_PATTERN.test(f.sessionId)),
    ErrorCode.BadInput,
    'audit: sessionId must be 16-64 bytes of lowercase hex',
  );
  if (f.reason !== undefined) {
    ensure(
      typeof f.reason === 'string' && f.reason.length >= 1 && f.reason.length <= MAX_REASON_LENGTH && /^[\x20-\x7e]*$/.test(f.reason),
      ErrorCode.BadInput,
      `audit: reason must be 1-${MAX_REASON_LENGTH} printable ASCII characters`,
    );
    ensure(!BLOB_RUN.test(f.reason), ErrorCode.BadInput, 'audit: reason looks like encoded data (a long hex/base64 run); entries never hold key material');
  }
  const out: Record<string, unknown> = {};
  for (const name of ['tenant', 'actor'] as const) {
    const v = id(name);
    if (v !== undefined) out[name] = v;
  }
  out.operation = f.operation;
  const keyId = id('keyId');
  if (keyId !== undefined) out.keyId = keyId;
  if (f.version !== undefined) out.version = f.version;
  if (f.sessionId !== undefined) out.sessionId = f.sessionId;
  out.outcome = f.outcome;
  out.severity = severity;
  if (f.reason !== undefined) out.reason = f.reason;
  return out as unknown as AuditFields & { severity: AuditSeverity };
}

// ---------------------------------------------------------------------------------------------
// Canonical encodings

const ENTRY_LABEL = utf8ToBytes('tessera/audit/entry/v1');
const CHECKPOINT_LABEL = utf8ToBytes('tessera/audit/checkpoint/v1');

/** An optional field: 0x00 when absent, 0x01 || value when present (framed() adds the length). */
function opt(v: Uint8Array | undefined): Uint8Array {
  return v === undefined ? Uint8Array.of(0) : concatBytes(Uint8Array.of(1), v);
}
function optString(v: string | undefined): Uint8Array {
  return opt(v === undefined ? undefined : utf8ToBytes(v));
}

/**
 * SHA-256 over the canonical encoding of an entry's fields, prevHash included (hash excluded), as hex.
 * Throws BAD_INPUT if the entry's fields are not valid.
 */
export function auditEntryHash(entry: Omit<AuditEntry, 'hash'> & { readonly hash?: string }): string {
  const { seq, time, prevHash, hash: _recorded, ...rest } = entry;
  const f = validateAuditFields(rest);
  ensure(isUint(seq) && seq >= 1, ErrorCode.BadInput, 'audit: seq must be a positive integer');
  ensure(isUint(time), ErrorCode.BadInput, 'audit: time must be a non-negative integer');
  ensure(typeof prevHash === 'string' && HASH_HEX.test(prevHash), ErrorCode.BadInput, 'audit: prevHash must be 32 bytes of lowercase hex');
  return toHex(
    sha256(
      framed(
        ENTRY_LABEL,
        i2osp(seq, 8),
        i2osp(time, 8),
        optString(f.tenant),
        optString(f.actor),
        utf8ToBytes(f.operation),
        optString(f.keyId),
        opt(f.version === undefined ? undefined : i2osp(f.version, 4)),
        opt(f.sessionId === undefined ? undefined : fromHex(f.sessionId, 'sessionId')),
        utf8ToBytes(f.outcome),
        utf8ToBytes(f.severity),
        optString(f.reason),
        fromHex(prevHash, 'prevHash', 32),
      ),
    ),
  );
}

/** The bytes a checkpoint signature covers. */
export function checkpointMessage(cp: { seq: number; headHash: string; time: number }): Uint8Array {
  ensure(isUint(cp.seq) && cp.seq >= 1, ErrorCode.BadInput, 'audit checkpoint: seq must be a positive integer');
  ensure(isUint(cp.time), ErrorCode.BadInput, 'audit checkpoint: time must be a non-negative integer');
  ensure(typeof cp.headHash === 'string' && HASH_HEX.test(cp.headHash), ErrorCode.BadInput, 'audit checkpoint: headHash must be 32 bytes of lowercase hex');
  return framed(CHECKPOINT_LABEL, i2osp(cp.seq, 8), fromHex(cp.headHash, 'headHash', 32), i2osp(cp.time, 8));
}

/** Parse one exported entry strictly; undefined if it is not a well-formed entry. */
function parseEntry(v: unknown): AuditEntry | undefined {
  if (!isRecord(v)) return undefined;
  for (const k of Object.keys(v)) if (!ENTRY_NAMES.has(k)) return undefined;
  if (!isUint(v.seq) || v.seq < 1 || !isUint(v.time)) return undefined;
  if (typeof v.prevHash !== 'string' || !HASH_HEX.test(v.prevHash) || typeof v.hash !== 'string' || !HASH_HEX.test(v.hash)) return undefined;
  if (v.severity === undefined) return undefined; // stored entries always carry it
  try {
    const { seq: _s, time: _t, prevHash: _p, hash: _h, ...fields } = v;
    validateAuditFields(fields);
  } catch {
    return undefined;
  }
  return v as unknown as AuditEntry;
}

function parseCheckpoint(v: unknown): AuditCheckpoint | undefined {
  if (!isRecord(v)) return undefined;
  for (const k of Object.keys(v)) if (!['seq', 'headHash', 'time', 'signature'].includes(k)) return undefined;
  if (!isUint(v.seq) || v.seq < 1 || !isUint(v.time)) return undefined;
  if (typeof v.headHash !== 'string' || !HASH_HEX.test(v.headHash)) return undefined;
  if (typeof v.signature !== 'string' || v.signature.length !== 2 * IDENTITY_SIGNATURE_LENGTH || !/^[0-9a-f]*$/.test(v.signature)) return undefined;
  return v as unknown as AuditCheckpoint;
}

// ---------------------------------------------------------------------------------------------
// Verification

/**
 * Verify an exported log offline against the node's identity public key (its membership entry).
 * Never throws on a bad log (it reports it); throws BAD_INPUT only for a public key of the wrong length.
 */
export function verifyAuditLog(log: { entries: readonly unknown[]; checkpoints: readonly unknown[] }, identityPublicKey: Uint8Array): AuditVerification {
  ensure(
    identityPublicKey instanceof Uint8Array && identityPublicKey.length === IDENTITY_PUBLIC_KEY_LENGTH,
    ErrorCode.BadInput,
    `audit: identity public key must be ${IDENTITY_PUBLIC_KEY_LENGTH} bytes`,
  );
  const problems: AuditProblem[] = [];
  const report = (kind: AuditProblemKind, seq: number, message: string) => problems.push({ kind, seq, message });
  if (!isRecord(log) || !Array.isArray(log.entries) || !Array.isArray(log.checkpoints)) {
    report('malformed-entry', 0, 'the export is not {entries: [...], checkpoints: [...]}');
    return { ok: false, complete: false, problems, entries: 0, headSeq: 0, signedThrough: 0 };
  }

  // 1. Parse, recompute each hash, and check the order the entries come in.
  interface Seen {
    readonly entry: AuditEntry;
    /** The hash of the content as it stands. */
    readonly actual: string;
  }
  const bySeq = new Map<number, Seen>();
  const malformedSeqs = new Set<number>();
  let maxSeq = 0;
  log.entries.forEach((raw, position) => {
    const entry = parseEntry(raw);
    if (!entry) {
      const seq = isRecord(raw) && isUint(raw.seq) ? raw.seq : 0;
      report('malformed-entry', seq, `the entry at position ${position}${seq ? ` (seq ${seq})` : ''} is not a well-formed audit entry`);
      if (seq) {
        malformedSeqs.add(seq);
        maxSeq = Math.max(maxSeq, seq);
      }
      return;
    }
    const { seq } = entry;
    if (bySeq.has(seq)) {
      report('duplicate', seq, `seq ${seq} appears more than once (an inserted entry)`);
      return;
    }
    if (seq < maxSeq) report('reordered', seq, `entry ${seq} appears after entry ${maxSeq}`);
    maxSeq = Math.max(maxSeq, seq);
    const actual = auditEntryHash(entry);
    if (actual !== entry.hash) report('edited', seq, `entry ${seq} was edited: its content no longer matches its recorded hash`);
    bySeq.set(seq, { entry, actual });
  });

  // 2. Continuity: 1..maxSeq each present (a malformed entry is there, and reported as such).
  const present = (s: number) => bySeq.has(s) || malformedSeqs.has(s);
  for (let s = 1; s <= maxSeq; s++) {
    if (present(s)) continue;
    let e = s;
    while (e + 1 <= maxSeq && !present(e + 1)) e++;
    report('dropped', s, e === s ? `entry ${s} is missing` : `entries ${s}..${e} are missing`);
    s = e;
  }

  // 3. Chain links. An entry flagged 'edited' keeps its recorded hash as the link its successor must
  // match, so one edit is reported once (as 'edited'), not again as a broken link.
  for (const [seq, { entry }] of [...bySeq].sort((a, b) => a[0] - b[0])) {
    if (seq === 1) {
      if (entry.prevHash !== GENESIS_HASH) report('chain-break', 1, 'entry 1 does not start the chain (its prevHash is not the genesis value)');
      continue;
    }
    const prev = bySeq.get(seq - 1);
    if (!prev) continue; // already reported as dropped
    if (entry.prevHash !== prev.actual && entry.prevHash !== prev.entry.hash) {
      report(
        'chain-break',
        seq,
        `entry ${seq} does not follow entry ${seq - 1}: entry ${seq - 1} was altered and re-hashed, or entry ${seq} was replaced or inserted`,
      );
    }
  }
  // Entries from the first problem on are not authenticated, whatever checkpoint follows.
  const firstEntryProblem = problems.reduce((min, p) => Math.min(min, p.seq), Infinity);

  // 4. Checkpoints.
  let lastCp: AuditCheckpoint | undefined;
  let lastMatched = 0;
  let signedThrough = 0;
  log.checkpoints.forEach((raw, position) => {
    const cp = parseCheckpoint(raw);
    if (!cp) {
      const seq = isRecord(raw) && isUint(raw.seq) ? raw.seq : 0;
      report('malformed-checkpoint', seq, `the checkpoint at position ${position} is not well-formed`);
      return;
    }
    if (!identityVerify(identityPublicKey, checkpointMessage(cp), fromHex(cp.signature, 'signature'))) {
      report('bad-checkpoint-signature', cp.seq, `the checkpoint at seq ${cp.seq} is not signed by this node's identity key as it stands`);
      return;
    }
    if (lastCp && cp.seq <= lastCp.seq) {
      report('checkpoint-order', cp.seq, `the checkpoint at seq ${cp.seq} comes after the one at seq ${lastCp.seq} out of order`);
    }
    lastCp = cp;
    const at = bySeq.get(cp.seq);
    if (!at) {
      report('checkpoint-beyond-log', cp.seq, `a signed checkpoint names entry ${cp.seq}, which the log does not have (entries were removed)`);
      return;
    }
    // The recorded hash of an entry already reported as edited explains a mismatch by itself.
    const explained = at.actual !== at.entry.hash && cp.headHash === at.entry.hash;
    if (cp.headHash !== at.actual && !explained) {
      report(
        'checkpoint-mismatch',
        cp.seq,
        `the signed checkpoint at seq ${cp.seq} does not match the chain: entries ${lastMatched + 1}..${cp.seq} were rewritten after it was signed`,
      );
      return;
    }
    if (explained) return;
    lastMatched = Math.max(lastMatched, cp.seq);
    if (cp.seq < firstEntryProblem) signedThrough = Math.max(signedThrough, cp.seq);
  });

  const ok = problems.length === 0;
  const covered = ok ? signedThrough : lastMatched;
  const unsigned = maxSeq > covered ? { fromSeq: covered + 1, toSeq: maxSeq } : undefined;
  problems.sort((a, b) => a.seq - b.seq);
  return {
    ok,
    complete: ok && unsigned === undefined,
    problems,
    entries: bySeq.size,
    headSeq: maxSeq,
    signedThrough,
    ...(unsigned ? { unsigned } : {}),
  };
}

/** Throw unless an export verifies completely: for callers that want an exception, not a report. */
export function assertAuditLogComplete(log: AuditExport, identityPublicKey: Uint8Array): AuditVerification {
  const v = verifyAuditLog(log, identityPublicKey);
  if (!v.complete) {
    const first = v.problems[0];
    throw new TesseraError(
      ErrorCode.VerificationFailed,
      first ? `audit log: ${first.kind} at seq ${first.seq}: ${first.message}` : `audit log: entries ${v.unsigned?.fromSeq}..${v.unsigned?.toSeq} are not covered by a checkpoint`,
    );
  }
  return v;
}
