/**
 * The one path every record of a node's LevelDB takes: records authenticated at rest, and a store that
 * fails closed after a write error.
 *
 * Authentication. Each stored value is `payload || tag`, where
 *   tag = HMAC-SHA256(K_mac, framed("tessera/storage/record/v1", LevelDB key, payload))   (RFC 2104)
 * and K_mac is derived from the KEK for this use and this node only (node/store/kek.ts recordMacKey),
 * separate from the sealing key: a record copied from another node's data dir fails even under a shared KEK. Binding the LevelDB key means a record copied to another key fails as surely as
 * an edited one. Someone who can write the data directory but does not hold the KEK therefore cannot
 * change a key's state, rotation period or times, a tenant, API key, policy or audit record, nor move
 * one: every read checks the tag first and a record that fails it is never returned (TesseraError
 * UNAVAILABLE naming the record, never its bytes). Records of one key (`<kind>/<tenant>/<keyId>/...`)
 * that fail are remembered: the whole key is refused from then on ("quarantined"), with the command
 * that repairs it. ShareStore (node/store/storage.ts) reaches LevelDB only through this class, for its own
 * records and for the namespaced records of the audit log, tenants and policy, so records added later
 * are authenticated without further code.
 *
 * Fail closed. The first write that LevelDB refuses (put, del, batch or compaction: ENOSPC, EIO, a
 * read-only file system) latches `failure`: from then on every call, reads included, throws UNAVAILABLE
 * "node storage failed: restart the node", and listeners registered with onFailure() are told once.
 * Nothing after a failed write is trusted until the process restarts and re-checks its records. Every
 * write is synced (`sync: true`, whatever the caller asks): a write is never acknowledged before it is
 * on disk.
 */
import type { Level } from 'level';
import { hmacSha256 } from './aead.js';
import { concatBytes, equalBytes, framed, utf8ToBytes, zeroize } from '../../core/bytes.js';
import { ErrorCode, TesseraError, isTesseraError } from '../../core/errors.js';

export const RECORD_TAG_LENGTH = 32;
const RECORD_MAC_LABEL = utf8ToBytes('tessera/storage/record/v1');

/** What every call answers once a write has failed (node/governance/gate.ts and the API pass it on as 503). */
export const STORAGE_FAILED_MESSAGE = 'node storage failed: restart the node';

/**
 * Records that belong to one key: `<kind>/<tenant>/<keyId>[/<10-digit version> | /...]` (committed k/,
 * pending p/, staged g/, certificates c/, erase markers e/, and any kind added later), kind not x
 * (namespaces). Secrets (s/<name>), the meta record (m/node) and the session registry (r/<id>) have
 * fewer parts.
 */
const KEY_SCOPED_RECORD = /^([a-wyz])\/([A-Za-z0-9][A-Za-z0-9._:-]{0,127})\/([A-Za-z0-9][A-Za-z0-9._:-]{0,127})(?:\/(\d{10})$|\/|$)/;

/** The tag of `payload` stored under `key`. */
export function recordTag(macKey: Uint8Array, key: string, payload: Uint8Array): Uint8Array {
  return hmacSha256(macKey, framed(RECORD_MAC_LABEL, utf8ToBytes(key), payload));
}

/** What is written under `key` for `payload`: payload || tag. */
export function sealRecord(macKey: Uint8Array, key: string, payload: Uint8Array): Uint8Array {
  return concatBytes(payload, recordTag(macKey, key, payload));
}

/** The payload of a stored value if its tag holds for `key` (a fresh copy), else undefined. */
export function openRecord(macKey: Uint8Array, key: string, stored: Uint8Array): Uint8Array | undefined {
  if (!(stored instanceof Uint8Array) || stored.length < RECORD_TAG_LENGTH) return undefined;
  const payload = stored.slice(0, stored.length - RECORD_TAG_LENGTH);
  return equalBytes(stored.subarray(stored.length - RECORD_TAG_LENGTH), recordTag(macKey, key, payload)) ? payload : undefined;
}

/** The key a record belongs to, if it is one of a key's records. */
export function keyOfRecord(key: string): { tenant: string; keyId: string; version?: number } | undefined {
  const m = KEY_SCOPED_RECORD.exec(key);
  return m ? { tenant: m[2]!, keyId: m[3]!, ...(m[4] !== undefined ? { version: Number(m[4]) } : {}) } : undefined;
}

/** A record's name for messages: ids only, never a value. */
export function recordName(key: string): string {
  const k = keyOfRecord(key);
  if (k) {
    const kinds: Record<string, string> = { k: 'key record', p: 'pending epoch', g: 'staged change', c: 'commit certificate', e: 'erase marker' };
    return `${kinds[key[0]!] ?? `${key[0]}/ record`} of ${k.tenant}/${k.keyId}${k.version !== undefined ? ` version ${k.version}` : ''}`;
  }
  const ns = /^x\/([^/]+)\/(.+)$/.exec(key);
  if (ns) return `${ns[1]} record ${ns[2]!.slice(0, 200)}`;
  if (key.startsWith('s/')) return `secret ${key.slice(2, 200)}`;
  if (key === 'm/node') return "the data dir's meta record";
  return `record ${key.slice(0, 200)}`;
}

/** The error for a record whose tag does not hold (or whose key was quarantined because of one). */
export function unauthenticRecordError(key: string, quarantinedBy?: string): TesseraError {
  const k = keyOfRecord(key);
  const what = quarantinedBy && quarantinedBy !== key ? `${recordName(key)}: ${recordName(quarantinedBy)}` : recordName(key);
  const fix = k ? `; this node refuses key ${k.keyId} until it is repaired: run \`tessera repair --key-id ${k.keyId}\`` : '; this node will not use it';
  return new TesseraError(ErrorCode.Unavailable, `storage: ${what} fails its integrity check (edited, moved, or not written under this KEK)${fix}`);
}

export interface RecordRange {
  readonly gt?: string;
  readonly gte?: string;
  readonly lt?: string;
  readonly lte?: string;
  readonly reverse?: boolean;
  readonly limit?: number;
}

export type RecordWrite = { readonly type: 'put'; readonly key: string; readonly value: Uint8Array } | { readonly type: 'del'; readonly key: string };

/** An iterator over verified records; usable with `for await` or next()/close(). */
export interface RecordIterator<V> extends AsyncIterable<[string, V]> {
  next(): Promise<[string, V] | undefined>;
  close(): Promise<void>;
}

/** One record that failed the start-up check. */
export interface UnauthenticRecord {
  /** The LevelDB key. */
  readonly record: string;
  /** recordName(record). */
  readonly name: string;
  /** Set when the record is one of a key's records (that key is now refused). */
  readonly key?: { readonly tenant: string; readonly keyId: string; readonly version?: number };
}

/** LevelDB's "not open" errors: a closed store, not a storage failure. */
function isNotOpen(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return code === 'LEVEL_DATABASE_NOT_OPEN' || code === 'LEVEL_ITERATOR_NOT_OPEN';
}

/** A short, value-free description of a LevelDB error (its code and message: paths and errno text). */
function causeOf(e: unknown): string {
  const err = e as { code?: unknown; message?: unknown; cause?: { message?: unknown } };
  const parts = [err?.code, err?.cause?.message ?? err?.message].filter((p) => typeof p === 'string' && p !== '');
  return (parts.join(': ') || 'unknown error').replace(/[^\x20-\x7e]/g, '?').slice(0, 300);
}

export class AuthenticatedRecords {
  private readonly db: Level<string, Uint8Array>;
  private readonly macKey: Uint8Array;
  private failed: { error: TesseraError; cause: string } | undefined;
  private readonly listeners = new Set<(cause: string) => void>();
  /** `<tenant>/<keyId>` -> the first record of that key that failed its tag. */
  private readonly quarantine = new Map<string, string>();
  private closed = false;

  /** `db` must be open; `macKey` (32 bytes) is owned by this object from now on and wiped by close(). */
  constructor(db: Level<string, Uint8Array>, macKey: Uint8Array) {
    this.db = db;
    this.macKey = macKey;
  }

  /** Set once a write failed (see the file comment): the error every call now throws. */
  get failure(): TesseraError | undefined {
    return this.failed?.error;
  }

  /** What LevelDB said when the write failed (for the operator's log; no values). */
  get failureCause(): string | undefined {
    return this.failed?.cause;
  }

  /** Be told (once) when the store latches failed. Returns an unsubscribe function. */
  onFailure(listener: (cause: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The keys refused because one of their records failed its tag. */
  quarantined(): { tenant: string; keyId: string; record: string }[] {
    return [...this.quarantine].map(([k, record]) => {
      const [tenant, keyId] = k.split('/') as [string, string];
      return { tenant, keyId, record };
    });
  }

  /** Whether the record under `key` belongs to a key refused because one of its records failed its MAC. */
  isRefused(key: string): boolean {
    return this.quarantinedBy(key) !== undefined;
  }

  /** The verified payload stored under `key`, or undefined if there is none. */
  async get(key: string): Promise<Uint8Array | undefined> {
    this.ensureUsable();
    this.ensureNotQuarantined(key);
    const raw = await this.read(key, () => this.db.get(key));
    return raw === undefined ? undefined : this.verified(key, raw);
  }

  /**
   * The stored payload and whether its tag holds, without throwing on a bad tag. Only for a check that
   * must tell causes apart before it refuses (the data dir's meta record: wrong KEK vs. edited); the
   * payload of an unauthentic record must not be used for anything else.
   */
  async inspect(key: string): Promise<{ payload: Uint8Array; authentic: boolean } | undefined> {
    this.ensureUsable();
    const raw = await this.read(key, () => this.db.get(key));
    if (raw === undefined) return undefined;
    const payload = openRecord(this.macKey, key, raw);
    return payload ? { payload, authentic: true } : { payload: raw.slice(0, Math.max(0, raw.length - RECORD_TAG_LENGTH)), authentic: false };
  }

  async put(key: string, value: Uint8Array, _opts?: { sync?: boolean }): Promise<void> {
    this.ensureUsable();
    const sealed = sealRecord(this.macKey, key, value);
    await this.write(() => this.db.put(key, sealed, { sync: true }));
  }

  async del(key: string, _opts?: { sync?: boolean }): Promise<void> {
    this.ensureUsable();
    await this.write(() => this.db.del(key, { sync: true }));
  }

  /** Atomic: all or none. */
  async batch(ops: readonly RecordWrite[], _opts?: { sync?: boolean }): Promise<void> {
    this.ensureUsable();
    const sealed = ops.map((op) => (op.type === 'put' ? { type: 'put' as const, key: op.key, value: sealRecord(this.macKey, op.key, op.value) } : { type: 'del' as const, key: op.key }));
    await this.write(() => this.db.batch(sealed, { sync: true }));
  }

  /** LevelDB compaction of [start, end) (classic-level compactRange); a failure latches like a write. */
  async compactRange(start: string, end: string): Promise<void> {
    this.ensureUsable();
    const db = this.db as unknown as { compactRange?: (start: string, end: string) => Promise<void> };
    if (typeof db.compactRange !== 'function') throw new TesseraError(ErrorCode.Unavailable, 'storage: this LevelDB binding cannot compact');
    await this.write(() => db.compactRange!(start, end));
  }

  /** Verified records in key order; a record that fails its tag throws (see unauthenticRecordError). */
  iterator(range?: RecordRange): RecordIterator<Uint8Array>;
  /** With `{ unauthentic: 'mark' }`, a record that fails its tag comes as [key, undefined] instead (never its bytes). */
  iterator(range: RecordRange | undefined, opts: { unauthentic: 'mark' }): RecordIterator<Uint8Array | undefined>;
  iterator(range: RecordRange = {}, opts: { unauthentic?: 'throw' | 'mark' } = {}): RecordIterator<Uint8Array | undefined> {
    this.ensureUsable();
    const options: Record<string, unknown> = {};
    for (const k of ['gt', 'gte', 'lt', 'lte', 'reverse', 'limit'] as const) if (range[k] !== undefined) options[k] = range[k];
    const it = this.db.iterator(options as never);
    const mark = opts.unauthentic === 'mark';
    const next = async (): Promise<[string, Uint8Array | undefined] | undefined> => {
      this.ensureUsable();
      const entry = (await this.read('records', () => it.next())) as [string, Uint8Array] | undefined;
      if (entry === undefined) return undefined;
      const [key, raw] = entry;
      if (mark) {
        // Each record's own MAC only (not the quarantine), so verifyAll reports exactly the bad records.
        const payload = openRecord(this.macKey, key, raw);
        if (payload === undefined) this.noteUnauthentic(key);
        return [key, payload];
      }
      this.ensureNotQuarantined(key);
      return [key, this.verified(key, raw)];
    };
    const close = async (): Promise<void> => {
      await it.close().catch(() => undefined);
    };
    return {
      next,
      close,
      async *[Symbol.asyncIterator]() {
        try {
          for (let e = await next(); e !== undefined; e = await next()) yield e;
        } finally {
          await close();
        }
      },
    };
  }

  /**
   * Check the tag of every record (the start-up integrity check). Never throws on a bad record: it
   * returns them, and the keys they belong to are refused from now on.
   */
  async verifyAll(): Promise<{ checked: number; unauthentic: UnauthenticRecord[] }> {
    let checked = 0;
    const unauthentic: UnauthenticRecord[] = [];
    const it = this.iterator({}, { unauthentic: 'mark' });
    try {
      for (let e = await it.next(); e !== undefined; e = await it.next()) {
        checked++;
        if (e[1] !== undefined) continue;
        const key = keyOfRecord(e[0]);
        unauthentic.push({ record: e[0], name: recordName(e[0]), ...(key ? { key } : {}) });
      }
    } finally {
      await it.close();
    }
    return { checked, unauthentic };
  }

  /** Close LevelDB and wipe the MAC key (also after a failure). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    zeroize(this.macKey);
    await this.db.close();
  }

  // -------------------------------------------------------------------------------------------

  private ensureUsable(): void {
    if (this.failed) throw this.failed.error;
    if (this.closed) throw new TesseraError(ErrorCode.BadState, 'storage: the store is closed');
  }

  private verified(key: string, raw: Uint8Array): Uint8Array {
    const payload = openRecord(this.macKey, key, raw);
    if (payload === undefined) {
      this.noteUnauthentic(key);
      throw unauthenticRecordError(key);
    }
    return payload;
  }

  private noteUnauthentic(key: string): void {
    const k = keyOfRecord(key);
    const id = k && `${k.tenant}/${k.keyId}`;
    if (id && !this.quarantine.has(id)) this.quarantine.set(id, key);
  }

  private quarantinedBy(key: string): string | undefined {
    const k = keyOfRecord(key);
    return k && this.quarantine.get(`${k.tenant}/${k.keyId}`);
  }

  private ensureNotQuarantined(key: string): void {
    const by = this.quarantinedBy(key);
    if (by !== undefined) throw unauthenticRecordError(key, by);
  }

  private async read<T>(key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (isTesseraError(e)) throw e;
      if (this.failed) throw this.failed.error;
      if (isNotOpen(e) || this.closed) throw new TesseraError(ErrorCode.BadState, 'storage: the store is closed');
      throw new TesseraError(ErrorCode.Unavailable, `storage: cannot read ${key === 'records' ? 'the records' : recordName(key)}`);
    }
  }

  private async write(fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      if (isTesseraError(e)) throw e;
      if (this.failed) throw this.failed.error;
      if (this.closed) throw new TesseraError(ErrorCode.BadState, 'storage: the store is closed');
      this.failed = { error: new TesseraError(ErrorCode.Unavailable, STORAGE_FAILED_MESSAGE), cause: causeOf(e) };
      for (const l of [...this.listeners]) {
        try {
          l(this.failed.cause);
        } catch {
          // a listener's own failure must not hide the storage failure
        }
      }
      throw this.failed.error;
    }
  }
}
