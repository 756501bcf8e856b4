/**
 * The node's append-only, tamper-evident audit log, kept in the node's LevelDB (ShareStore.namespace).
 * Format, hashing and the offline verifier are core/audit-verify.ts; this file writes.
 *
 * Layout under x/audit/:
 *   e/<seq, 16 digits>   one entry (msgpack of the AuditEntry object)
 *   c/<seq, 16 digits>   one signed checkpoint of the chain at that seq
 *   head                 the sealed head record {v, seq, hash}: written in the same atomic batch as
 *                        every entry, MACed at rest like every record (node/store/record-auth.ts)
 *
 * - append() is serialized through one queue, so seqs are dense and unique under concurrent callers.
 *   Appends are group-committed: those that arrive while a write is in flight wait and go out together
 *   in ONE synced LevelDB batch (entries, any checkpoints they reach, the head record), so a busy node
 *   pays one fsync per group, not per entry. Each append resolves only once its entry is on disk; a
 *   failure rejects every append of that batch with UNAVAILABLE so the callers fail closed (no
 *   operation runs unaudited). The in-memory head advances only after the write succeeded, so a failed
 *   batch consumes no seq.
 * - Every `checkpointEvery` entries the checkpoint is signed and written in the same atomic batch as the
 *   entry that reaches it. Every `checkpointIntervalMs` a timer owned by this object (unref'd, stopped by
 *   close()) signs the head if entries arrived since the last checkpoint.
 * - Times are the injected clock's time, as it is: after a clock step (forward or back) entries carry
 *   the new time, never a time pinned to the largest one seen. Order is the seq's job (dense, chained);
 *   the verifier never requires times to be monotonic (issue 9, item 10: "audit timestamps follow the
 *   clock; the sequence number keeps the order").
 * - On open the head entry is read and re-hashed, and compared with the sealed head record. If either
 *   does not check out (an edited newest entry; a dropped tail: the log ends before the seq the head
 *   record names; entries beyond it; no head record under a non-empty log), the log opens "broken":
 *   exportLog() still works (to investigate with verifyAuditLog), but append() and checkpoints fail with
 *   UNAVAILABLE — the node refuses to chain new entries onto a head it cannot vouch for (node/main.ts
 *   refuses to start). Only someone holding the KEK can write a head record that verifies.
 * - An entry whose record MAC fails is exported as `{seq}` only (never its bytes): the verifier reports
 *   it as malformed.
 */
import { Packr } from 'msgpackr';
import { toHex } from '../../core/bytes.js';
import {
  AUDIT_FORMAT,
  GENESIS_HASH,
  auditEntryHash,
  checkpointMessage,
  validateAuditFields,
  verifyAuditLog,
  type AuditCheckpoint,
  type AuditEntry,
  type AuditExport,
  type AuditFields,
  type AuditVerification,
} from '../../core/audit-verify.js';
import { ErrorCode, TesseraError, ensure, isTesseraError } from '../../core/errors.js';
import { identitySign, type IdentityKeyPair } from '../../core/identity.js';
import type { RecordNamespace } from '../store/storage.js';

export const AUDIT_NAMESPACE = 'audit';
export const DEFAULT_CHECKPOINT_EVERY = 100;
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 60_000;

export interface AuditLogOptions {
  /** Where the log lives: `store.namespace(AUDIT_NAMESPACE)`. */
  readonly records: RecordNamespace;
  /** The node's ML-DSA-65 identity; its secret key signs checkpoints (it is used, not copied). */
  readonly identity: IdentityKeyPair;
  /** Sign a checkpoint every N entries (>= 1). Default 100. */
  readonly checkpointEvery?: number;
  /** And every T ms if entries arrived since the last one (0 disables the timer). Default 60 000. */
  readonly checkpointIntervalMs?: number;
  /** Milliseconds since the Unix epoch. Default Date.now. */
  readonly now?: () => number;
  /** Told when a timer-driven checkpoint fails (appends report their own failures). */
  readonly onError?: (err: TesseraError) => void;
}

/** At most this many entries go in one group batch (the rest go in the next one, straight after). */
const MAX_GROUP = 1024;

interface PendingAppend {
  readonly fields: ReturnType<typeof validateAuditFields>;
  readonly resolve: (e: AuditEntry) => void;
  readonly reject: (e: unknown) => void;
}

const packr = new Packr({ useRecords: false });
const seqKey = (kind: 'e' | 'c', seq: number): string => `${kind}/${String(seq).padStart(16, '0')}`;
/** The sealed head record's key (outside the e/ and c/ ranges). */
export const AUDIT_HEAD_KEY = 'head';
const HEAD_FORMAT = 1;

export class AuditLog {
  private readonly records: RecordNamespace;
  private readonly identity: IdentityKeyPair;
  private readonly every: number;
  private readonly now: () => number;
  private readonly onError: (err: TesseraError) => void;
  private head: { seq: number; hash: string; time: number };
  private checkpointed: number;
  /** The newest checkpoint's time (0: none yet), for the metrics (node/metrics.ts). */
  private checkpointTime = 0;
  private brokenReason: string | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** Appends waiting for the next group write (see flush). */
  private pending: PendingAppend[] = [];
  /** A flush is queued and has not yet taken `pending`. */
  private flushQueued = false;
  private batches = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  private constructor(o: AuditLogOptions, head: { seq: number; hash: string; time: number }, checkpointed: number, broken: string | undefined) {
    this.records = o.records;
    this.identity = o.identity;
    this.every = o.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
    this.now = o.now ?? Date.now;
    this.onError = o.onError ?? (() => undefined);
    this.head = head;
    this.checkpointed = checkpointed;
    this.brokenReason = broken;
  }

  /** Open the log in its namespace (creating nothing until the first append) and start the timer. */
  static async open(o: AuditLogOptions): Promise<AuditLog> {
    ensure(typeof o === 'object' && o !== null && typeof o.records?.iterate === 'function', ErrorCode.BadInput, 'audit: records namespace required');
    ensure(o.identity?.secretKey instanceof Uint8Array && o.identity.publicKey instanceof Uint8Array, ErrorCode.BadInput, 'audit: identity key pair required');
    const every = o.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
    ensure(Number.isSafeInteger(every) && every >= 1, ErrorCode.BadInput, 'audit: checkpointEvery must be a positive integer');
    const interval = o.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
    ensure(Number.isSafeInteger(interval) && interval >= 0, ErrorCode.BadInput, 'audit: checkpointIntervalMs must be a non-negative integer');

    let head = { seq: 0, hash: GENESIS_HASH, time: 0 };
    let broken: string | undefined;
    for await (const [key, raw] of o.records.iterate({ gte: 'e/', lt: 'e/~', reverse: true, limit: 1 })) {
      const entry = decodeEntry(raw);
      const seq = Number(key.slice(2));
      let hash: string | undefined;
      try {
        hash = entry && entry.seq === seq ? auditEntryHash(entry) : undefined;
      } catch {
        hash = undefined;
      }
      if (!entry || hash === undefined || hash !== entry.hash) {
        broken = `the newest entry (seq ${seq}) does not check out`;
        head = { seq, hash: GENESIS_HASH, time: 0 };
      } else {
        head = { seq, hash, time: entry.time };
      }
    }
    broken ??= await checkSealedHead(o.records, head.seq, head.hash);
    let checkpointed = 0;
    let checkpointTime = 0;
    for await (const [key, raw] of o.records.iterate({ gte: 'c/', lt: 'c/~', reverse: true, limit: 1 })) {
      checkpointed = Number(key.slice(2));
      const time = decodeObject<AuditCheckpoint>(raw)?.time;
      checkpointTime = typeof time === 'number' ? time : 0;
    }

    const log = new AuditLog(o, head, checkpointed, broken);
    log.checkpointTime = checkpointTime;
    if (interval > 0) {
      log.timer = setInterval(() => {
        if (log.head.seq > log.checkpointed && !log.brokenReason) {
          log.checkpoint().catch((e: unknown) => log.onError(asUnavailable(e, 'audit: cannot write a checkpoint')));
        }
      }, interval);
      log.timer.unref();
    }
    return log;
  }

  /** The newest entry's seq and hash (seq 0 and the genesis hash when empty). */
  get headSeq(): number {
    return this.head.seq;
  }
  get headHash(): string {
    return this.head.hash;
  }
  /** The seq of the newest checkpoint (0 if none). */
  get lastCheckpointSeq(): number {
    return this.checkpointed;
  }
  /** The newest checkpoint's time in ms since the epoch (0 if none). */
  get lastCheckpointTime(): number {
    return this.checkpointTime;
  }
  /** Appends waiting for their group write (queue depth, for the metrics). */
  get pendingAppends(): number {
    return this.pending.length;
  }
  /** Why the log refuses appends, if it does (see the file comment). */
  get broken(): string | undefined {
    return this.brokenReason;
  }

  /**
   * Append one entry. Fields are validated first (BAD_INPUT: ids from the id alphabet, operation and
   * outcome from the fixed lists, a short reason; nothing else). Resolves once the entry is on disk;
   * rejects with UNAVAILABLE if it could not be written, so the caller must not go on.
   */
  append(fields: AuditFields): Promise<AuditEntry> {
    let valid: ReturnType<typeof validateAuditFields>;
    try {
      valid = validateAuditFields(fields);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<AuditEntry>((resolve, reject) => {
      this.pending.push({ fields: valid, resolve, reject });
      if (!this.flushQueued) {
        this.flushQueued = true;
        void this.serialize(() => this.flush());
      }
    });
  }

  /** How many synced batches of entries have been written since open (group commit: far fewer than entries under load). */
  get batchesWritten(): number {
    return this.batches;
  }

  /** Sign and store a checkpoint of the head now, if entries arrived since the last one. */
  checkpoint(): Promise<AuditCheckpoint | undefined> {
    return this.serialize(() => this.checkpointNow());
  }

  /**
   * Everything needed to verify offline: all entries and checkpoints, read in one consistent step.
   * With `checkpoint` (default true) the head is signed first, so a fresh export verifies `complete`.
   */
  exportLog(opts: { checkpoint?: boolean } = {}): Promise<AuditExport> {
    return this.serialize(async () => {
      if ((opts.checkpoint ?? true) && !this.brokenReason && !this.closed) await this.checkpointNow();
      const entries: AuditEntry[] = [];
      const checkpoints: AuditCheckpoint[] = [];
      try {
        for await (const [key, raw] of this.records.iterateMarked({ gte: 'e/', lt: 'e/~' })) {
          // Whatever is stored goes out as it is; the verifier judges it. Undecodable bytes, and records
          // whose MAC fails (never sent), keep their seq only.
          entries.push((raw && decodeEntry(raw)) ?? ({ seq: Number(key.slice(2)) } as unknown as AuditEntry));
        }
        for await (const [key, raw] of this.records.iterateMarked({ gte: 'c/', lt: 'c/~' })) {
          checkpoints.push((raw && decodeObject<AuditCheckpoint>(raw)) ?? ({ seq: Number(key.slice(2)) } as unknown as AuditCheckpoint));
        }
      } catch (e) {
        throw asUnavailable(e, 'audit: the audit log cannot be read');
      }
      return { format: AUDIT_FORMAT, entries, checkpoints };
    });
  }

  /** Export and verify against this node's own identity key (e.g. at startup). */
  async selfCheck(): Promise<AuditVerification> {
    return verifyAuditLog(await this.exportLog({ checkpoint: false }), this.identity.publicKey);
  }

  /** Stop the timer and wait for queued writes. Does not close the store. Appends afterwards fail. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.closed = true;
    await this.queue.catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Group commit: write every append waiting now (up to MAX_GROUP) in ONE synced batch. Runs in the
   * queue, so appends that arrive while a write is in flight accumulate in `pending` and go out together
   * in the next batch. Seqs, times and the hash chain are assigned here in arrival order, exactly as if
   * the entries had been appended one by one; a checkpoint falls on the same seqs as before (every N),
   * in the same batch as the entry that reaches it; the head record is written once, naming the last
   * entry. Every append resolves only after the batch is on disk. If anything fails, every append of the
   * batch rejects (UNAVAILABLE for a write failure) and neither the head nor the checkpoint seq moves.
   */
  private async flush(): Promise<void> {
    this.flushQueued = false;
    const group = this.pending.splice(0, MAX_GROUP);
    if (this.pending.length > 0) {
      this.flushQueued = true;
      void this.serialize(() => this.flush());
    }
    if (group.length === 0) return;
    try {
      this.ensureWritable();
      let { seq, hash } = this.head;
      let checkpointed = this.checkpointed;
      let checkpointTime = this.checkpointTime;
      let time = this.head.time;
      const entries: AuditEntry[] = [];
      const ops: { type: 'put'; key: string; value: Uint8Array }[] = [];
      for (const p of group) {
        seq += 1;
        time = this.nextTime();
        const unsigned = { seq, time, ...p.fields, prevHash: hash };
        const entry: AuditEntry = { ...unsigned, hash: auditEntryHash(unsigned) };
        hash = entry.hash;
        entries.push(entry);
        ops.push({ type: 'put', key: seqKey('e', seq), value: encode(entry) });
        if (seq - checkpointed >= this.every) {
          ops.push({ type: 'put', key: seqKey('c', seq), value: encode(this.sign(seq, hash, time)) });
          checkpointed = seq;
          checkpointTime = time;
        }
      }
      ops.push({ type: 'put', key: AUDIT_HEAD_KEY, value: encode({ v: HEAD_FORMAT, seq, hash }) });
      try {
        await this.records.batch(ops, { sync: true });
      } catch (e) {
        throw asUnavailable(e, 'audit: the audit log cannot be written');
      }
      this.batches += 1;
      this.head = { seq, hash, time };
      this.checkpointed = checkpointed;
      this.checkpointTime = checkpointTime;
      group.forEach((p, i) => p.resolve(entries[i]!));
    } catch (e) {
      for (const p of group) p.reject(e);
    }
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private ensureWritable(): void {
    if (this.closed) throw new TesseraError(ErrorCode.Unavailable, 'audit: the audit log is closed');
    if (this.brokenReason) throw new TesseraError(ErrorCode.Unavailable, `audit: the audit log refuses appends: ${this.brokenReason}`);
  }

  /** The clock's time now (not clamped to earlier entries: the seq, not the time, orders the log). */
  private nextTime(): number {
    const t = this.now();
    ensure(Number.isSafeInteger(t) && t >= 0, ErrorCode.BadState, 'audit: the clock returned a bad time');
    return t;
  }

  private sign(seq: number, headHash: string, time: number): AuditCheckpoint {
    const signature = identitySign(this.identity.secretKey, checkpointMessage({ seq, headHash, time }));
    return { seq, headHash, time, signature: toHex(signature) };
  }

  private async checkpointNow(): Promise<AuditCheckpoint | undefined> {
    this.ensureWritable();
    if (this.head.seq <= this.checkpointed) return undefined;
    const time = this.nextTime();
    const cp = this.sign(this.head.seq, this.head.hash, time);
    try {
      await this.records.put(seqKey('c', cp.seq), encode(cp), { sync: true });
    } catch (e) {
      throw asUnavailable(e, 'audit: cannot write a checkpoint');
    }
    this.checkpointed = cp.seq;
    this.checkpointTime = time;
    this.head = { ...this.head, time };
    return cp;
  }
}

function encode(v: unknown): Uint8Array {
  return Uint8Array.from(packr.pack(v));
}

/**
 * Compare the log's newest entry (seq, hash; seq 0 when empty) with the sealed head record. Returns why
 * they disagree, or undefined. A head record whose MAC fails throws (the node refuses to start on it).
 */
async function checkSealedHead(records: RecordNamespace, seq: number, hash: string): Promise<string | undefined> {
  const raw = await records.get(AUDIT_HEAD_KEY);
  if (raw === undefined) return seq === 0 ? undefined : `the log holds entries up to seq ${seq} but has no sealed head record`;
  const h = decodeObject<{ v?: unknown; seq?: unknown; hash?: unknown }>(raw);
  if (!h || h.v !== HEAD_FORMAT || typeof h.seq !== 'number' || !Number.isSafeInteger(h.seq) || h.seq < 1 || typeof h.hash !== 'string') {
    return 'the sealed head record is malformed';
  }
  if (seq < h.seq) return `entries ${seq + 1}..${h.seq} were dropped from the end of the log (the sealed head record says seq ${h.seq}, the log ends at seq ${seq})`;
  if (seq > h.seq) return `the log ends at seq ${seq}, beyond the sealed head record's seq ${h.seq}`;
  if (hash !== h.hash) return `the newest entry (seq ${seq}) is not the one the sealed head record names`;
  return undefined;
}

function decodeObject<T>(raw: Uint8Array): T | undefined {
  try {
    const v = packr.unpack(raw) as unknown;
    // Only plain maps: msgpackr decodes some bytes (e.g. 0xc1) to class instances.
    return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}

function decodeEntry(raw: Uint8Array): AuditEntry | undefined {
  return decodeObject<AuditEntry>(raw);
}

/** Storage failures (closed store, LevelDB errors) become UNAVAILABLE; validation errors stay as they are. */
function asUnavailable(e: unknown, message: string): TesseraError {
  if (isTesseraError(e) && e.code !== ErrorCode.BadState && e.code !== ErrorCode.Unavailable) return e;
  return new TesseraError(ErrorCode.Unavailable, message);
}
