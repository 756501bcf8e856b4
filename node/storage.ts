/**
 * The node's share store: LevelDB in the node's data dir, with every secret encrypted under the KEK.
 *
 * Layout (keys are UTF-8 strings, values msgpack maps):
 *   m/node                          meta: this data dir's node index and a KEK check value
 *   k/<tenant>/<keyId>/<version>    committed key record (version zero-padded to 10 digits, so the
 *                                   last entry under k/<tenant>/<keyId>/ is the latest version)
 *   p/<tenant>/<keyId>/<version>    pending next epoch staged by a refresh, not yet committed
 *   s/<name>                        a named secret (the node's identity keys)
 *
 * What is public (suite, threshold, parties, epoch, PublicKeyPackage, state, createdAt, exportable) is
 * stored in the clear. The share scalar is sealed with AES-256-GCM (NIST SP 800-38D) under a storage
 * key derived from the KEK, with a fresh random 96-bit nonce per write. The AAD frames the record's
 * place and meaning: tenant, key id, version, node index, epoch, a digest of the public package and the
 * exportable flag. A record copied to another key, version, node or epoch, or whose public part was
 * edited, therefore fails to decrypt (TesseraError DECRYPTION_FAILED) instead of yielding a share that
 * does not belong there.
 *
 * Refresh is crash-safe: the new epoch is staged beside the committed one (stagePending) and becomes
 * current in one atomic LevelDB batch (commitPending) only once the cluster confirmed it. A node that
 * restarts mid-refresh still has its committed epoch and, possibly, the pending one (listPending).
 */
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { gcm } from '@noble/ciphers/aes.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { equalBytes, framed, i2osp, utf8ToBytes, zeroize } from '../core/bytes.js';
import { ErrorCode, TesseraError, ensure, guard } from '../core/errors.js';
import { getSuite, isSuiteId, type SuiteId } from '../core/suites.js';
import type { KeyShare, PublicKeyPackage } from '../core/types.js';

export const KEY_STATES = ['active', 'retired', 'disabled'] as const;
export type KeyState = (typeof KEY_STATES)[number];

/** Tenants, key ids and secret names: the alphabet of core/session.ts, so they can never contain '/'. */
export const STORE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const MAX_VERSION = 0xffffffff;
const NONCE_LENGTH = 12;
const FORMAT = 1;

/** What a caller stores for a new key version. */
export interface NewKeyRecord {
  readonly tenant: string;
  readonly keyId: string;
  readonly version: number;
  readonly share: KeyShare;
  readonly exportable: boolean;
  /** Default 'active'. */
  readonly state?: KeyState;
  /** Milliseconds since the Unix epoch; default now. */
  readonly createdAt?: number;
}

/** The public part of a committed key version. */
export interface KeyRecord {
  readonly tenant: string;
  readonly keyId: string;
  readonly version: number;
  readonly suite: SuiteId;
  readonly threshold: number;
  readonly parties: number;
  readonly epoch: number;
  readonly publicKey: PublicKeyPackage;
  readonly state: KeyState;
  readonly createdAt: number;
  readonly exportable: boolean;
}

/** The public part of a staged (uncommitted) next epoch. */
export interface PendingRecord {
  readonly tenant: string;
  readonly keyId: string;
  readonly version: number;
  readonly epoch: number;
  readonly publicKey: PublicKeyPackage;
  readonly stagedAt: number;
}

export interface ShareStoreOptions {
  readonly dataDir: string;
  /** The 32-byte KEK (node/kek.ts). The store keeps only a key derived from it. */
  readonly kek: Uint8Array;
  /** This node's index; the data dir remembers it and refuses to open under another. */
  readonly nodeIndex: number;
}

/** Where the LevelDB files live inside a data dir. */
export function storageLocation(dataDir: string): string {
  return join(dataDir, 'leveldb');
}

export function shareRecordKey(tenant: string, keyId: string, version: number): string {
  return `k/${checkId(tenant, 'tenant')}/${checkId(keyId, 'keyId')}/${versionPart(version)}`;
}

export function pendingRecordKey(tenant: string, keyId: string, version: number): string {
  return `p/${checkId(tenant, 'tenant')}/${checkId(keyId, 'keyId')}/${versionPart(version)}`;
}

export function secretRecordKey(name: string): string {
  return `s/${checkId(name, 'secret name')}`;
}

const META_KEY = 'm/node';
const AAD_SHARE = utf8ToBytes('tessera/storage/share/v1');
const AAD_SECRET = utf8ToBytes('tessera/storage/secret/v1');
const AAD_KEK_CHECK = utf8ToBytes('tessera/storage/kek-check/v1');
const PACKAGE_LABEL = utf8ToBytes('tessera/storage/package/v1');
const STORAGE_KEY_INFO = utf8ToBytes('tessera/node-storage/v1');

// Maps, not msgpackr records, so the format does not depend on msgpackr's structure cache.
const packr = new Packr({ useRecords: false });

/** On-disk shapes. */
interface SealedBox {
  nonce: Uint8Array;
  ct: Uint8Array;
}
interface StoredPackage {
  suite: SuiteId;
  threshold: number;
  parties: number;
  epoch: number;
  commitments: Uint8Array[];
  verifyingShares: Uint8Array[];
}
interface StoredCommitted extends StoredPackage, SealedBox {
  v: number;
  state: KeyState;
  createdAt: number;
  exportable: boolean;
}
interface StoredPending extends StoredPackage, SealedBox {
  v: number;
  stagedAt: number;
  exportable: boolean;
}

export class ShareStore {
  private readonly db: Level<string, Uint8Array>;
  private storageKey: Uint8Array;
  private closed = false;
  private readonly locks = new Map<string, Promise<void>>();
  readonly nodeIndex: number;
  readonly dataDir: string;

  private constructor(db: Level<string, Uint8Array>, storageKey: Uint8Array, nodeIndex: number, dataDir: string) {
    this.db = db;
    this.storageKey = storageKey;
    this.nodeIndex = nodeIndex;
    this.dataDir = dataDir;
  }

  /**
   * Open (creating if needed) the store in `dataDir`, which is created with / forced to mode 0700.
   * Fails with BAD_STATE if the data dir belongs to another node index, DECRYPTION_FAILED if the KEK is
   * not the one it was created with.
   */
  static async open(opts: ShareStoreOptions): Promise<ShareStore> {
    ensure(opts.kek instanceof Uint8Array && opts.kek.length === 32, ErrorCode.BadInput, 'storage: kek must be 32 bytes');
    ensure(Number.isSafeInteger(opts.nodeIndex) && opts.nodeIndex >= 1 && opts.nodeIndex <= 255, ErrorCode.BadInput, 'storage: nodeIndex must be 1..255');
    ensure(typeof opts.dataDir === 'string' && opts.dataDir !== '', ErrorCode.BadInput, 'storage: dataDir must be a path');
    await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
    await chmod(opts.dataDir, 0o700); // an existing dir may have been created wider

    const location = storageLocation(opts.dataDir);
    const db = new Level<string, Uint8Array>(location, { keyEncoding: 'utf8', valueEncoding: 'view' });
    try {
      await db.open();
    } catch (e) {
      const code = (e as { cause?: { code?: string }; code?: string }).cause?.code ?? (e as { code?: string }).code ?? 'error';
      throw new TesseraError(ErrorCode.BadState, `storage: cannot open ${location} (${code}); is another node using it?`);
    }
    // Domain-separate the at-rest key from any other use of the KEK (RFC 5869 HKDF-SHA256).
    const storageKey = hkdf(sha256, opts.kek, undefined, STORAGE_KEY_INFO, 32);
    const store = new ShareStore(db, storageKey, opts.nodeIndex, opts.dataDir);
    try {
      await chmod(location, 0o700);
      await store.checkMeta();
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }

  /** Close the database and wipe the storage key. Further calls throw BAD_STATE. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    zeroize(this.storageKey);
    await this.db.close();
  }

  // -------------------------------------------------------------------------------------------
  // Committed key versions

  /** Store a new key version. Refuses to overwrite an existing (tenant, keyId, version). */
  async put(rec: NewKeyRecord): Promise<KeyRecord> {
    this.ensureOpen();
    const key = shareRecordKey(rec.tenant, rec.keyId, rec.version);
    const state = rec.state ?? 'active';
    ensure((KEY_STATES as readonly string[]).includes(state), ErrorCode.BadInput, 'storage: unknown key state');
    const createdAt = rec.createdAt ?? Date.now();
    ensure(Number.isSafeInteger(createdAt) && createdAt >= 0, ErrorCode.BadInput, 'storage: createdAt must be a non-negative integer');
    ensure(typeof rec.exportable === 'boolean', ErrorCode.BadInput, 'storage: exportable must be a boolean');
    const pkg = this.checkKeyShare(rec.share);
    return this.withLock(key, async () => {
      ensure((await this.db.get(key)) === undefined, ErrorCode.BadState, `storage: ${rec.tenant}/${rec.keyId} version ${rec.version} already exists`);
      const aad = this.shareAad(rec.tenant, rec.keyId, rec.version, pkg, rec.exportable);
      const stored: StoredCommitted = {
        v: FORMAT,
        ...pkg,
        state,
        createdAt,
        exportable: rec.exportable,
        ...this.seal(rec.share.secret.value, aad),
      };
      await this.db.put(key, encode(stored), { sync: true });
      return committedToRecord(rec.tenant, rec.keyId, rec.version, stored);
    });
  }

  /** The committed record of a version, or of the latest version when `version` is omitted. */
  async get(tenant: string, keyId: string, version?: number): Promise<KeyRecord | undefined> {
    const found = await this.readCommitted(tenant, keyId, version);
    return found && committedToRecord(tenant, keyId, found.version, found.stored);
  }

  /** Every committed version of every key of a tenant, ordered by key id then version. */
  async list(tenant: string): Promise<KeyRecord[]> {
    this.ensureOpen();
    const prefix = `k/${checkId(tenant, 'tenant')}/`;
    const out: KeyRecord[] = [];
    for await (const [k, v] of this.db.iterator({ gte: prefix, lt: prefix + '\uffff' })) {
      const { keyId, version } = parseRecordKey(k);
      out.push(committedToRecord(tenant, keyId, version, decodeCommitted(v, k)));
    }
    // Store order puts 'a.b/' before 'a/' ('.' < '/'); callers want key id order, then version.
    return out.sort((a, b) => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : a.version - b.version));
  }

  /**
   * Decrypt the committed share of a version (latest when omitted). The caller owns the result and
   * must zeroize `secret.value` when done.
   */
  async getShare(tenant: string, keyId: string, version?: number): Promise<KeyShare | undefined> {
    const found = await this.readCommitted(tenant, keyId, version);
    if (!found) return undefined;
    const { stored } = found;
    const pkg = packageOf(stored);
    const aad = this.shareAad(tenant, keyId, found.version, pkg, stored.exportable);
    const value = this.unseal(stored, aad, `share ${tenant}/${keyId} version ${found.version}`);
    return { publicKey: pkg, secret: { suite: pkg.suite, index: this.nodeIndex, epoch: pkg.epoch, value } };
  }

  /** Change a version's state (e.g. retire it after rotation). Does not touch the sealed share. */
  async setState(tenant: string, keyId: string, version: number, state: KeyState): Promise<KeyRecord> {
    this.ensureOpen();
    ensure((KEY_STATES as readonly string[]).includes(state), ErrorCode.BadInput, 'storage: unknown key state');
    const key = shareRecordKey(tenant, keyId, version);
    return this.withLock(key, async () => {
      const found = await this.readCommitted(tenant, keyId, version);
      ensure(found, ErrorCode.BadState, `storage: ${tenant}/${keyId} version ${version} does not exist`);
      const stored: StoredCommitted = { ...found.stored, state };
      await this.db.put(key, encode(stored), { sync: true });
      return committedToRecord(tenant, keyId, version, stored);
    });
  }

  /** Remove a version and any pending epoch of it. Returns whether a committed version existed. */
  async delete(tenant: string, keyId: string, version: number): Promise<boolean> {
    this.ensureOpen();
    const key = shareRecordKey(tenant, keyId, version);
    return this.withLock(key, async () => {
      const existed = (await this.db.get(key)) !== undefined;
      await this.db.batch(
        [
          { type: 'del', key },
          { type: 'del', key: pendingRecordKey(tenant, keyId, version) },
        ],
        { sync: true },
      );
      return existed;
    });
  }

  // -------------------------------------------------------------------------------------------
  // Refresh: pending next epoch

  /**
   * Stage the next epoch of a committed version beside it. The new share must keep the suite, the
   * threshold, the party count and the group key, and have epoch = committed epoch + 1. A previously
   * staged pending epoch of the same version is replaced.
   */
  async stagePending(tenant: string, keyId: string, version: number, next: KeyShare): Promise<PendingRecord> {
    this.ensureOpen();
    const key = shareRecordKey(tenant, keyId, version);
    const pkey = pendingRecordKey(tenant, keyId, version);
    const pkg = this.checkKeyShare(next);
    return this.withLock(key, async () => {
      const found = await this.readCommitted(tenant, keyId, version);
      ensure(found, ErrorCode.BadState, `storage: ${tenant}/${keyId} version ${version} does not exist`);
      const cur = found.stored;
      ensure(
        pkg.suite === cur.suite && pkg.threshold === cur.threshold && pkg.parties === cur.parties,
        ErrorCode.BadParameters,
        'storage: a refreshed epoch must keep suite, threshold and parties',
      );
      ensure(equalBytes(pkg.commitments[0]!, cur.commitments[0]!), ErrorCode.BadParameters, 'storage: a refreshed epoch must keep the group key');
      ensure(pkg.epoch === cur.epoch + 1, ErrorCode.EpochMismatch, `storage: pending epoch must be ${cur.epoch + 1}, got ${pkg.epoch}`);
      const aad = this.shareAad(tenant, keyId, version, pkg, cur.exportable);
      const stored: StoredPending = {
        v: FORMAT,
        ...pkg,
        stagedAt: Date.now(),
        exportable: cur.exportable,
        ...this.seal(next.secret.value, aad),
      };
      await this.db.put(pkey, encode(stored), { sync: true });
      return pendingToRecord(tenant, keyId, version, stored);
    });
  }

  /** The staged next epoch of a version, if any. */
  async getPending(tenant: string, keyId: string, version: number): Promise<PendingRecord | undefined> {
    const stored = await this.readPending(tenant, keyId, version);
    return stored && pendingToRecord(tenant, keyId, version, stored);
  }

  /** Decrypt the staged next-epoch share (e.g. to finish a refresh's confirmation). Caller zeroizes. */
  async getPendingShare(tenant: string, keyId: string, version: number): Promise<KeyShare | undefined> {
    const stored = await this.readPending(tenant, keyId, version);
    if (!stored) return undefined;
    const pkg = packageOf(stored);
    const value = this.unseal(stored, this.shareAad(tenant, keyId, version, pkg, stored.exportable), `pending share ${tenant}/${keyId} version ${version}`);
    return { publicKey: pkg, secret: { suite: pkg.suite, index: this.nodeIndex, epoch: pkg.epoch, value } };
  }

  /** Every staged epoch in the store, with the committed epoch beside it (for resolution after a restart). */
  async listPending(): Promise<(PendingRecord & { readonly committedEpoch: number | undefined })[]> {
    this.ensureOpen();
    const out: (PendingRecord & { committedEpoch: number | undefined })[] = [];
    for await (const [k, v] of this.db.iterator({ gte: 'p/', lt: 'p/\uffff' })) {
      const { tenant, keyId, version } = parseRecordKey(k);
      const rec = pendingToRecord(tenant, keyId, version, decodePending(v, k));
      const committed = await this.readCommitted(tenant, keyId, version);
      out.push({ ...rec, committedEpoch: committed?.stored.epoch });
    }
    return out;
  }

  /**
   * Make the staged epoch current, in one atomic batch that replaces the committed record and deletes
   * the pending one; the previous epoch's share is gone afterwards. Call only once the cluster has
   * confirmed the new public package. `expectedEpoch`, if given, must be the staged epoch.
   */
  async commitPending(tenant: string, keyId: string, version: number, expectedEpoch?: number): Promise<KeyRecord> {
    this.ensureOpen();
    const key = shareRecordKey(tenant, keyId, version);
    const pkey = pendingRecordKey(tenant, keyId, version);
    return this.withLock(key, async () => {
      const found = await this.readCommitted(tenant, keyId, version);
      ensure(found, ErrorCode.BadState, `storage: ${tenant}/${keyId} version ${version} does not exist`);
      const pending = await this.readPending(tenant, keyId, version);
      ensure(pending, ErrorCode.BadState, `storage: ${tenant}/${keyId} version ${version} has no pending epoch`);
      ensure(
        expectedEpoch === undefined || pending.epoch === expectedEpoch,
        ErrorCode.EpochMismatch,
        `storage: pending epoch is ${pending.epoch}, expected ${expectedEpoch}`,
      );
      ensure(pending.epoch === found.stored.epoch + 1, ErrorCode.EpochMismatch, 'storage: pending epoch does not follow the committed one');
      ensure(pending.exportable === found.stored.exportable, ErrorCode.BadState, 'storage: pending epoch does not match the committed record');
      // Never commit what we could not read back: check the sealed share opens where it will live.
      const pkg = packageOf(pending);
      zeroize(this.unseal(pending, this.shareAad(tenant, keyId, version, pkg, pending.exportable), `pending share ${tenant}/${keyId} version ${version}`));
      const stored: StoredCommitted = {
        v: FORMAT,
        ...pkg,
        commitments: [...pkg.commitments],
        verifyingShares: [...pkg.verifyingShares],
        state: found.stored.state,
        createdAt: found.stored.createdAt,
        exportable: found.stored.exportable,
        nonce: pending.nonce,
        ct: pending.ct,
      };
      await this.db.batch(
        [
          { type: 'put', key, value: encode(stored) },
          { type: 'del', key: pkey },
        ],
        { sync: true },
      );
      return committedToRecord(tenant, keyId, version, stored);
    });
  }

  /** Drop a staged epoch (the refresh failed or was not confirmed). Returns whether one existed. */
  async discardPending(tenant: string, keyId: string, version: number): Promise<boolean> {
    this.ensureOpen();
    const key = shareRecordKey(tenant, keyId, version);
    const pkey = pendingRecordKey(tenant, keyId, version);
    return this.withLock(key, async () => {
      const existed = (await this.db.get(pkey)) !== undefined;
      if (existed) await this.db.del(pkey, { sync: true });
      return existed;
    });
  }

  // -------------------------------------------------------------------------------------------
  // Named secrets (identity keys)

  /** Store bytes encrypted under the KEK, bound to `name` and this node. Refuses to overwrite unless asked. */
  async putSecret(name: string, bytes: Uint8Array, opts: { overwrite?: boolean } = {}): Promise<void> {
    this.ensureOpen();
    const key = secretRecordKey(name);
    ensure(bytes instanceof Uint8Array, ErrorCode.BadInput, 'storage: secret must be bytes');
    await this.withLock(key, async () => {
      ensure(opts.overwrite === true || (await this.db.get(key)) === undefined, ErrorCode.BadState, `storage: secret ${name} already exists`);
      await this.db.put(key, encode({ v: FORMAT, ...this.seal(bytes, this.secretAad(name)) }), { sync: true });
    });
  }

  /** Decrypt a named secret; undefined if absent. The caller owns (and zeroizes) the result. */
  async getSecret(name: string): Promise<Uint8Array | undefined> {
    this.ensureOpen();
    const key = secretRecordKey(name);
    const raw = await this.db.get(key);
    if (raw === undefined) return undefined;
    const box = decodeSealed(decodeMap(raw, key), key);
    return this.unseal(box, this.secretAad(name), `secret ${name}`);
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  private ensureOpen(): void {
    ensure(!this.closed, ErrorCode.BadState, 'storage: the store is closed');
  }

  /** Serialize mutations of one record within this process (LevelDB has no compare-and-set). */
  private async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.locks.set(key, tail);
    await prev;
    try {
      this.ensureOpen();
      return await fn();
    } finally {
      release();
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }

  private async checkMeta(): Promise<void> {
    const aad = framed(AAD_KEK_CHECK, i2osp(this.nodeIndex, 1));
    const raw = await this.db.get(META_KEY);
    if (raw === undefined) {
      const meta = { v: FORMAT, nodeIndex: this.nodeIndex, ...this.seal(new Uint8Array(0), aad) };
      await this.db.put(META_KEY, encode(meta), { sync: true });
      return;
    }
    const meta = decodeMap(raw, META_KEY);
    ensure(meta.v === FORMAT, ErrorCode.BadMessage, `storage: unknown data dir format ${String(meta.v)}`);
    ensure(
      meta.nodeIndex === this.nodeIndex,
      ErrorCode.BadState,
      `storage: this data dir belongs to node ${String(meta.nodeIndex)}, not node ${this.nodeIndex}`,
    );
    const box = decodeSealed(meta, META_KEY);
    guard(ErrorCode.DecryptionFailed, 'storage: the KEK does not open this data dir (wrong KEK?)', () =>
      gcm(this.storageKey, box.nonce, aad).decrypt(box.ct),
    );
  }

  /** AES-256-GCM with a fresh random 96-bit nonce (SP 800-38D §8.2.2 RBG-based construction). */
  private seal(plaintext: Uint8Array, aad: Uint8Array): SealedBox {
    const nonce = randomBytes(NONCE_LENGTH);
    const ct = gcm(this.storageKey, nonce, aad).encrypt(plaintext);
    return { nonce, ct };
  }

  private unseal(box: SealedBox, aad: Uint8Array, what: string): Uint8Array {
    this.ensureOpen();
    return guard(
      ErrorCode.DecryptionFailed,
      `storage: ${what} does not decrypt (wrong KEK, or the record was moved, altered or is another node's)`,
      () => gcm(this.storageKey, box.nonce, aad).decrypt(box.ct),
    );
  }

  private shareAad(tenant: string, keyId: string, version: number, pkg: PublicKeyPackage, exportable: boolean): Uint8Array {
    return framed(
      AAD_SHARE,
      utf8ToBytes(tenant),
      utf8ToBytes(keyId),
      i2osp(version, 4),
      i2osp(this.nodeIndex, 1),
      i2osp(pkg.epoch, 4),
      packageDigest(pkg),
      Uint8Array.of(exportable ? 1 : 0),
    );
  }

  private secretAad(name: string): Uint8Array {
    return framed(AAD_SECRET, utf8ToBytes(name), i2osp(this.nodeIndex, 1));
  }

  private async readCommitted(
    tenant: string,
    keyId: string,
    version?: number,
  ): Promise<{ version: number; stored: StoredCommitted } | undefined> {
    this.ensureOpen();
    if (version !== undefined) {
      const key = shareRecordKey(tenant, keyId, version);
      const raw = await this.db.get(key);
      return raw === undefined ? undefined : { version, stored: decodeCommitted(raw, key) };
    }
    const prefix = `k/${checkId(tenant, 'tenant')}/${checkId(keyId, 'keyId')}/`;
    for await (const [k, v] of this.db.iterator({ gte: prefix, lt: prefix + '\uffff', reverse: true, limit: 1 })) {
      return { version: parseRecordKey(k).version, stored: decodeCommitted(v, k) };
    }
    return undefined;
  }

  private async readPending(tenant: string, keyId: string, version: number): Promise<StoredPending | undefined> {
    this.ensureOpen();
    const key = pendingRecordKey(tenant, keyId, version);
    const raw = await this.db.get(key);
    return raw === undefined ? undefined : decodePending(raw, key);
  }

  /** Validate a KeyShare before storing it: this node's share, lengths that fit the suite. */
  private checkKeyShare(share: KeyShare): StoredPackage {
    ensure(typeof share === 'object' && share !== null, ErrorCode.BadInput, 'storage: expected a KeyShare');
    const pkg = checkPackage(share.publicKey, ErrorCode.BadInput, 'storage: publicKey');
    const s = share.secret;
    ensure(typeof s === 'object' && s !== null, ErrorCode.BadInput, 'storage: expected a secret share');
    ensure(s.suite === pkg.suite, ErrorCode.BadInput, 'storage: share suite differs from the package suite');
    ensure(s.epoch === pkg.epoch, ErrorCode.EpochMismatch, 'storage: share epoch differs from the package epoch');
    ensure(s.index === this.nodeIndex, ErrorCode.BadInput, `storage: share index ${s.index} is not this node (${this.nodeIndex})`);
    ensure(pkg.parties >= this.nodeIndex, ErrorCode.BadInput, 'storage: this node is not a party of the key');
    const { group } = getSuite(pkg.suite);
    ensure(s.value instanceof Uint8Array && s.value.length === group.scalarLength, ErrorCode.BadInput, 'storage: share value has the wrong length');
    return pkg;
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers

function checkId(s: unknown, what: string): string {
  ensure(typeof s === 'string' && STORE_ID_PATTERN.test(s), ErrorCode.BadInput, `storage: ${what} must be 1-128 of [A-Za-z0-9._:-], starting alphanumeric`);
  return s;
}

function versionPart(version: unknown): string {
  ensure(
    typeof version === 'number' && Number.isSafeInteger(version) && version >= 1 && version <= MAX_VERSION,
    ErrorCode.BadInput,
    `storage: version must be an integer 1..${MAX_VERSION}`,
  );
  return String(version).padStart(10, '0');
}

function parseRecordKey(k: string): { tenant: string; keyId: string; version: number } {
  const m = /^[kp]\/([^/]+)\/([^/]+)\/(\d{10})$/.exec(k);
  if (!m) throw new TesseraError(ErrorCode.BadMessage, `storage: malformed record key ${k.slice(0, 300)}`);
  return { tenant: m[1]!, keyId: m[2]!, version: Number(m[3]) };
}

/** Canonical digest of a public package, bound into each share's AAD. */
function packageDigest(p: PublicKeyPackage): Uint8Array {
  return sha256(
    framed(
      PACKAGE_LABEL,
      utf8ToBytes(p.suite),
      i2osp(p.threshold, 2),
      i2osp(p.parties, 2),
      i2osp(p.epoch, 4),
      i2osp(p.commitments.length, 2),
      ...p.commitments,
      i2osp(p.verifyingShares.length, 2),
      ...p.verifyingShares,
    ),
  );
}

function checkPackage(p: PublicKeyPackage, code: ErrorCode, what: string): StoredPackage {
  ensure(typeof p === 'object' && p !== null, code, `${what}: expected a public key package`);
  ensure(isSuiteId(p.suite), code, `${what}: unknown suite`);
  ensure(Number.isSafeInteger(p.parties) && p.parties >= 2 && p.parties <= 255, code, `${what}: parties must be 2..255`);
  ensure(Number.isSafeInteger(p.threshold) && p.threshold >= 2 && p.threshold <= p.parties, code, `${what}: threshold must be 2..parties`);
  ensure(Number.isSafeInteger(p.epoch) && p.epoch >= 0 && p.epoch <= 0xffffffff, code, `${what}: epoch must be an integer 0..2^32-1`);
  const { group } = getSuite(p.suite);
  const points = (list: unknown, min: number, max: number, name: string): Uint8Array[] => {
    ensure(Array.isArray(list) && list.length >= min && list.length <= max, code, `${what}: ${name} has the wrong count`);
    return list.map((b) => {
      ensure(b instanceof Uint8Array && b.length === group.pointLength, code, `${what}: ${name} entry has the wrong length`);
      return Uint8Array.from(b);
    });
  };
  return {
    suite: p.suite,
    threshold: p.threshold,
    parties: p.parties,
    epoch: p.epoch,
    commitments: points(p.commitments, 1, p.threshold, 'commitments'),
    verifyingShares: points(p.verifyingShares, p.parties, p.parties, 'verifyingShares'),
  };
}

function packageOf(s: StoredPackage): PublicKeyPackage {
  return {
    suite: s.suite,
    threshold: s.threshold,
    parties: s.parties,
    epoch: s.epoch,
    commitments: s.commitments.map((b) => Uint8Array.from(b)),
    verifyingShares: s.verifyingShares.map((b) => Uint8Array.from(b)),
  };
}

function committedToRecord(tenant: string, keyId: string, version: number, s: StoredCommitted): KeyRecord {
  return {
    tenant,
    keyId,
    version,
    suite: s.suite,
    threshold: s.threshold,
    parties: s.parties,
    epoch: s.epoch,
    publicKey: packageOf(s),
    state: s.state,
    createdAt: s.createdAt,
    exportable: s.exportable,
  };
}

function pendingToRecord(tenant: string, keyId: string, version: number, s: StoredPending): PendingRecord {
  return { tenant, keyId, version, epoch: s.epoch, publicKey: packageOf(s), stagedAt: s.stagedAt };
}

/** msgpack-encode into a fresh array (msgpackr reuses its internal buffer between calls). */
function encode(value: unknown): Uint8Array {
  return Uint8Array.from(packr.pack(value));
}

function decodeMap(raw: Uint8Array, key: string): Record<string, unknown> {
  const v = guard(ErrorCode.BadMessage, `storage: record ${key} is corrupt`, () => packr.unpack(raw) as unknown);
  ensure(typeof v === 'object' && v !== null && !Array.isArray(v), ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
  return v as Record<string, unknown>;
}

function bytesField(v: unknown, key: string): Uint8Array {
  ensure(v instanceof Uint8Array, ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
  return Uint8Array.from(v); // detach from the database's buffer
}

function decodeSealed(m: Record<string, unknown>, key: string): SealedBox & { v: number } {
  ensure(m.v === FORMAT, ErrorCode.BadMessage, `storage: record ${key} has unknown format ${String(m.v)}`);
  const nonce = bytesField(m.nonce, key);
  ensure(nonce.length === NONCE_LENGTH, ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
  return { v: FORMAT, nonce, ct: bytesField(m.ct, key) };
}

function decodePackage(m: Record<string, unknown>, key: string): StoredPackage {
  const list = (v: unknown): Uint8Array[] => {
    ensure(Array.isArray(v), ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
    return v.map((b) => bytesField(b, key));
  };
  return checkPackage(
    {
      suite: m.suite as SuiteId,
      threshold: m.threshold as number,
      parties: m.parties as number,
      epoch: m.epoch as number,
      commitments: list(m.commitments),
      verifyingShares: list(m.verifyingShares),
    },
    ErrorCode.BadMessage,
    `storage: record ${key}`,
  );
}

function decodeCommitted(raw: Uint8Array, key: string): StoredCommitted {
  const m = decodeMap(raw, key);
  const box = decodeSealed(m, key);
  const pkg = decodePackage(m, key);
  ensure((KEY_STATES as readonly unknown[]).includes(m.state), ErrorCode.BadMessage, `storage: record ${key} has an unknown state`);
  ensure(typeof m.createdAt === 'number' && typeof m.exportable === 'boolean', ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
  return { ...pkg, ...box, state: m.state as KeyState, createdAt: m.createdAt, exportable: m.exportable };
}

function decodePending(raw: Uint8Array, key: string): StoredPending {
  const m = decodeMap(raw, key);
  const box = decodeSealed(m, key);
  const pkg = decodePackage(m, key);
  ensure(typeof m.stagedAt === 'number' && typeof m.exportable === 'boolean', ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
  return { ...pkg, ...box, stagedAt: m.stagedAt, exportable: m.exportable };
}
