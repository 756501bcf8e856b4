/**
 * The node's share store: LevelDB in the node's data dir, with every secret encrypted under the KEK.
 *
 * Layout (keys are UTF-8 strings, values msgpack maps):
 *   m/node                          meta: this data dir's node index and a KEK check value
 *   k/<tenant>/<keyId>/<version>    committed key record (version zero-padded to 10 digits, so the
 *                                   last entry under k/<tenant>/<keyId>/ is the latest version)
 *   p/<tenant>/<keyId>/<version>    pending next epoch staged by a refresh, not yet committed
 *   s/<name>                        a named secret (the node's identity keys)
 *   x/<namespace>/<key>             records of other node components (audit log, tenants, policy),
 *                                   reachable only through ShareStore.namespace(), which cannot
 *                                   address the k/, p/, s/ or m/ records
 *
 * What is public (suite, threshold, parties, epoch, PublicKeyPackage, state, createdAt, exportable) is
 * stored in the clear. The share scalar is sealed with AES-256-GCM (NIST SP 800-38D) under a storage
 * key derived from the KEK, with a fresh random 96-bit nonce per write. The AAD frames the record's
 * place and meaning: tenant, key id, version, node index, epoch, a digest of the public package and the
 * exportable flag. A record copied to another key, version, node or epoch, or whose public part was
 * edited, therefore fails to decrypt (TesseraError DECRYPTION_FAILED) instead of yielding a share that
 * does not belong there.
 *
 * Every record, whatever its prefix (the namespaced ones included), is also MACed at rest: ShareStore
 * reaches LevelDB only through node/store/record-auth.ts AuthenticatedRecords, which stores `payload || tag`
 * with an HMAC-SHA256 over (LevelDB key, payload) under its own KEK-derived key. So the public fields
 * (state, rotation period, createdAt, rotatedAt, destroyedAt, ...) cannot be edited and no record can be
 * moved by someone without the KEK: such a record is refused with an error naming it (and, for a key's
 * records, the whole key is refused until `tessera repair --key-id`). checkIntegrity() verifies every
 * record at start. The first failed write (ENOSPC, EIO, read-only) latches the store failed: every
 * later call throws UNAVAILABLE "node storage failed: restart the node" (see `failure`, onFailure()).
 *
 * Key states and what they allow are core/lifecycle.ts's table; the store enforces its transitions.
 * A destroyed version keeps a public tombstone (state 'destroyed', the public package, no sealed share):
 * destroy() overwrites the sealed share, replaces the record by the tombstone and compacts LevelDB over
 * the record's key range so no old ciphertext survives in the data files.
 *
 * Committed key records are read through an in-memory cache (keyVersions(): frozen records, dropped by
 * every write of the key's records in the same code path; see "The read cache of committed key records"
 * below). Namespaces count their writes (RecordNamespace.generation) for components that cache.
 *
 * Refresh is crash-safe: the new epoch is staged beside the committed one (stagePending) and becomes
 * current in one atomic LevelDB batch (commitPending) only once the cluster confirmed it. A node that
 * restarts mid-refresh still has its committed epoch and, possibly, the pending one (listPending).
 */
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { concatBytes, equalBytes, framed, i2osp, utf8ToBytes, zeroize } from '../../core/bytes.js';
import { publicPackageDigest } from '../../core/commit.js';
import { isParty, partyIndices } from '../../core/committee.js';
import { ErrorCode, TesseraError, ensure, guard, isTesseraError } from '../../core/errors.js';
import { checkPackageCommittee } from '../../core/shamir.js';
import { MEMBERSHIP_KEY_ID, MEMBERSHIP_TENANT, decodeMembership, encodeMembership, type Membership } from '../../core/membership.js';
import { getSuite, isSuiteId, type SuiteId } from '../../core/suites.js';
import type { KeyShare, PublicKeyPackage } from '../../core/types.js';
import { KEY_STATES, MIN_ROTATION_PERIOD_MS, assertTransition, isKeyState, isRotationPeriod, type KeyState } from '../../core/lifecycle.js';
import { KEK_ID_PATTERN, RawKek, type Kek } from './kek.js';
import { KekUnavailableError, SEAL_NONCE_LENGTH, Sealer, sealedKekId, type SealedBox } from './envelope.js';
import { AuthenticatedRecords, RECORD_TAG_LENGTH, keyOfRecord, recordName, sealRecord, unauthenticRecordError, type RecordRange, type UnauthenticRecord } from './record-auth.js';

export { KEY_STATES, type KeyState };

/** Tenants, key ids and secret names: the alphabet of core/session.ts, so they can never contain '/'. */
export const STORE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const MAX_VERSION = 0xffffffff;
const NONCE_LENGTH = SEAL_NONCE_LENGTH;
/** 2: sealed values are envelopes under a KEK provider (node/store/envelope.ts), the record-MAC key is random and wrapped (issue 15). */
const FORMAT = 2;

/** What a caller stores for a new key version. */
export interface NewKeyRecord {
  readonly tenant: string;
  readonly keyId: string;
  readonly version: number;
  readonly share: KeyShare;
  readonly exportable: boolean;
  /** Default 'active'. Never 'destroyed' (destroy() makes that state). */
  readonly state?: KeyState;
  /** Milliseconds since the Unix epoch; default now. */
  readonly createdAt?: number;
  /** Rotate this version this long after createdAt (core/lifecycle.ts rotationStatus). Optional. */
  readonly rotationPeriodMs?: number;
  /** The key's 32-byte BIP-32 chain code, made at keygen (core/derive.ts keygenChainCode). Public. Optional. */
  readonly chainCode?: Uint8Array;
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
  /** Set when the key carries a rotation period (core/lifecycle.ts). */
  readonly rotationPeriodMs?: number;
  /** When a newer version replaced this one (set by setState(..., { rotatedAt })). */
  readonly rotatedAt?: number;
  /** When the share was destroyed; only on state 'destroyed'. */
  readonly destroyedAt?: number;
  /** The session whose commit certificate (getCertificate) made this record what it is. */
  readonly certSession?: Uint8Array;
  /** The key's BIP-32 chain code (core/derive.ts), for versions made since derivation exists. Public. */
  readonly chainCode?: Uint8Array;
}

/** One write of a namespaced record batch (keys relative to the namespace). */
export type NamespaceOp = { readonly type: 'put'; readonly key: string; readonly value: Uint8Array } | { readonly type: 'del'; readonly key: string };

/** A key range of a namespace (keys relative to it): the same shape as a record range. */
export type NamespaceRange = RecordRange;

/**
 * Raw records of one component in the node's LevelDB, under `x/<prefix>/`. Keys are relative to the
 * namespace (1..512 printable ASCII characters, '/' allowed); values are bytes the component encodes.
 * Values are MACed like every record (node/store/record-auth.ts). Writes are always synced to disk (a
 * `{ sync: false }` is ignored: nothing is acknowledged before it is on disk). A closed store throws
 * BAD_STATE; a LevelDB failure becomes UNAVAILABLE (callers fail closed on it), and a failed write
 * latches the whole store failed.
 */
export interface RecordNamespace {
  readonly prefix: string;
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, value: Uint8Array, opts?: { sync?: boolean }): Promise<void>;
  del(key: string, opts?: { sync?: boolean }): Promise<void>;
  /** Atomic: all or none. */
  batch(ops: readonly NamespaceOp[], opts?: { sync?: boolean }): Promise<void>;
  /** Entries in key order (relative keys), within the optional range. A record that fails its MAC throws. */
  iterate(range?: NamespaceRange): AsyncIterable<[string, Uint8Array]>;
  /**
   * Like iterate, but a record that fails its MAC comes as [key, undefined] (never its bytes) instead of
   * ending the iteration: for exports that must report damage rather than stop at it (the audit log).
   */
  iterateMarked(range?: NamespaceRange): AsyncIterable<[string, Uint8Array | undefined]>;
  /**
   * How many writes (put, del, batch; completed, whether or not they succeeded) this namespace's records
   * have had in this process, through any view of it. Throws as a read does when the store is closed
   * or latched failed. For a component that keeps what it read: while the number is unchanged, nothing
   * under the namespace was written (node/governance/policy.ts caches its rule document on it).
   */
  generation?(): number;
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
  /**
   * The KEK (node/store/kek.ts): a provider's Kek, which stays the caller's to close, or 32 bytes of an
   * in-memory KEK (the store keeps only a key derived from them, and forgets it on close()).
   */
  readonly kek: Uint8Array | Kek;
  /** KEKs that may still unwrap records but wrap nothing new: the old KEK while a rotation is unfinished. */
  readonly otherKeks?: readonly Kek[];
  /** This node's index; the data dir remembers it and refuses to open under another. */
  readonly nodeIndex: number;
  /** The shortest rotation period put() / setRotationPeriod() accept (default core/lifecycle.ts MIN_ROTATION_PERIOD_MS). */
  readonly minRotationPeriodMs?: number;
  /** How many keys' committed records the read cache holds (least recently used dropped first). Default 10 000; 0 turns it off. */
  readonly keyCacheSize?: number;
}

export const DEFAULT_KEY_CACHE_SIZE = 10_000;

/** One committed version in the read cache: its decoded stored form (private) and the frozen record handed out. */
interface CachedVersion {
  readonly version: number;
  readonly stored: StoredCommitted;
  record: KeyRecord;
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
/** An unfinished KEK rotation: {v, from, to, startedAt} (ShareStore.beginKekRotation). */
const KEK_ROTATION_KEY = 'm/kek-rotation';
/** The LevelDB ranges that hold sealed values: key records, pending epochs, staged changes, secrets, the meta record. */
const SEALED_RECORD_RANGES: readonly (readonly [string, string])[] = [
  ['g/', 'g0'],
  ['k/', 'k0'],
  ['m/node', 'm/node\0'],
  ['p/', 'p0'],
  ['s/', 's0'],
];

/** A KEK rotation recorded in a data dir: every record is moving from KEK `from` to KEK `to` (public ids). */
export interface KekRotationState {
  readonly from: string;
  readonly to: string;
  readonly startedAt: number;
}
const NAMESPACE_KEY_PATTERN = /^[\x21-\x7e]{1,512}$/;
const AAD_SHARE = utf8ToBytes('tessera/storage/share/v1');
const AAD_SECRET = utf8ToBytes('tessera/storage/secret/v1');
const AAD_MAC_KEY = utf8ToBytes('tessera/storage/record-mac-key/v1');

// Maps, not msgpackr records, so the format does not depend on msgpackr's structure cache.
const packr = new Packr({ useRecords: false });

/** On-disk shapes (SealedBox: node/store/envelope.ts). */
interface StoredPackage {
  suite: SuiteId;
  threshold: number;
  parties: number;
  /** The key's committee when it is not 1..parties (core/types.ts); absent (not written) otherwise. */
  indices?: readonly number[];
  epoch: number;
  commitments: Uint8Array[];
  verifyingShares: Uint8Array[];
}
/** A committed record; `nonce`/`ct` are absent exactly when state is 'destroyed' (the tombstone). */
interface StoredCommitted extends StoredPackage, Partial<SealedBox> {
  v: number;
  state: KeyState;
  createdAt: number;
  exportable: boolean;
  rotationPeriodMs?: number;
  rotatedAt?: number;
  destroyedAt?: number;
  /** The session whose commit certificate made this record what it is (absent before certificates). */
  cs?: Uint8Array;
  /** The BIP-32 chain code (core/derive.ts); kept by every later change of the version. */
  cc?: Uint8Array;
}
interface StoredPending extends StoredPackage, SealedBox {
  v: number;
  stagedAt: number;
  exportable: boolean;
}

export class ShareStore {
  /** Every read and write goes through here: record MACs and the failed-write latch (node/store/record-auth.ts). */
  private readonly db: AuthenticatedRecords;
  private readonly sealer: Sealer;
  /** The RawKek made from a KEK given as bytes: the store's own, closed with it. */
  private readonly ownKek: Kek | undefined;
  private closed = false;
  private readonly locks = new Map<string, Promise<void>>();
  /**
   * The read cache of committed key records: `<tenant>/<keyId>` -> every committed version of that key,
   * oldest first (an empty list caches "no such key"). See keyVersions() and forgetKey().
   */
  private readonly keyCache = new Map<string, readonly CachedVersion[]>();
  /** Loads in flight, per key; forgetKey() marks them stale so their (possibly old) result is not cached. */
  private readonly keyLoads = new Map<string, { stale: boolean; done: Promise<readonly CachedVersion[]> }>();
  private readonly keyCacheSize: number;
  private cacheStats = { hits: 0, misses: 0 };
  /** Completed writes per namespace prefix (RecordNamespace.generation). */
  private readonly namespaceWrites = new Map<string, number>();
  readonly nodeIndex: number;
  readonly dataDir: string;
  readonly minRotationPeriodMs: number;

  private constructor(db: AuthenticatedRecords, sealer: Sealer, ownKek: Kek | undefined, nodeIndex: number, dataDir: string, minRotationPeriodMs: number, keyCacheSize: number) {
    this.db = db;
    this.sealer = sealer;
    this.ownKek = ownKek;
    this.nodeIndex = nodeIndex;
    this.dataDir = dataDir;
    this.minRotationPeriodMs = minRotationPeriodMs;
    this.keyCacheSize = keyCacheSize;
  }

  /**
   * Open (creating if needed) the store in `dataDir`, which is created with / forced to mode 0700.
   * Fails with BAD_STATE if the data dir belongs to another node index, DECRYPTION_FAILED if the KEK is
   * not the one it was created with.
   */
  static async open(opts: ShareStoreOptions): Promise<ShareStore> {
    ensure(
      (opts.kek instanceof Uint8Array && opts.kek.length === 32) || (typeof opts.kek === 'object' && opts.kek !== null && typeof (opts.kek as Kek).wrapKey === 'function'),
      ErrorCode.BadInput,
      'storage: kek must be 32 bytes or a Kek',
    );
    ensure(Number.isSafeInteger(opts.nodeIndex) && opts.nodeIndex >= 1 && opts.nodeIndex <= 255, ErrorCode.BadInput, 'storage: nodeIndex must be 1..255');
    ensure(typeof opts.dataDir === 'string' && opts.dataDir !== '', ErrorCode.BadInput, 'storage: dataDir must be a path');
    const keyCacheSize = opts.keyCacheSize ?? DEFAULT_KEY_CACHE_SIZE;
    ensure(Number.isSafeInteger(keyCacheSize) && keyCacheSize >= 0, ErrorCode.BadInput, 'storage: keyCacheSize must be a non-negative integer');
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
    const ownKek = opts.kek instanceof Uint8Array ? new RawKek(opts.kek, 'file') : undefined;
    const sealer = new Sealer(opts.nodeIndex, ownKek ?? (opts.kek as Kek), opts.otherKeks ?? []);
    let macKey: Uint8Array;
    try {
      macKey = await openMacKey(db, sealer, opts.nodeIndex);
    } catch (e) {
      ownKek?.close();
      await db.close();
      throw e;
    }
    const records = new AuthenticatedRecords(db, macKey); // owns macKey from here
    const store = new ShareStore(records, sealer, ownKek, opts.nodeIndex, opts.dataDir, opts.minRotationPeriodMs ?? MIN_ROTATION_PERIOD_MS, keyCacheSize);
    try {
      await chmod(location, 0o700);
      await store.checkMeta();
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }

  /** The KEKs this store seals under (current first) and can still open with. */
  keks(): readonly Kek[] {
    return this.sealer.keks;
  }

  // -------------------------------------------------------------------------------------------
  // KEK rotation (issue 15 item 2; the steps and their crash safety: node/store/kek-rotation.ts)

  /** The unfinished KEK rotation recorded in this data dir, if any. */
  async kekRotation(): Promise<KekRotationState | undefined> {
    this.ensureOpen();
    const raw = await this.db.get(KEK_ROTATION_KEY);
    if (raw === undefined) return undefined;
    const m = decodeMap(raw, KEK_ROTATION_KEY);
    ensure(
      m.v === FORMAT && typeof m.from === 'string' && KEK_ID_PATTERN.test(m.from) && typeof m.to === 'string' && KEK_ID_PATTERN.test(m.to) && isTime(m.startedAt),
      ErrorCode.BadMessage,
      `storage: record ${KEK_ROTATION_KEY} is corrupt`,
    );
    return { from: m.from, to: m.to as string, startedAt: m.startedAt as number };
  }

  /**
   * Start (or resume) moving every record to `next`: record {from: the current KEK, to: next} (synced)
   * unless a rotation to `next` is already recorded, then make `next` the KEK that wraps everything new.
   * The caller has made `next` durable first (its file or token object exists), so no record is ever
   * wrapped under a KEK that a crash could lose. A recorded rotation to another KEK is BAD_STATE.
   */
  async beginKekRotation(next: Kek): Promise<KekRotationState> {
    this.ensureOpen();
    const recorded = await this.kekRotation();
    if (recorded) {
      ensure(recorded.to === next.id, ErrorCode.BadState, `storage: a rotation to KEK ${recorded.to} is unfinished; finish it before starting another`);
      this.sealer.addKek(next, true);
      return recorded;
    }
    const from = this.sealer.currentKek.id;
    ensure(from !== next.id, ErrorCode.BadInput, 'storage: the new KEK is the current one');
    const state: KekRotationState = { from, to: next.id, startedAt: Date.now() };
    this.sealer.addKek(next, true);
    await this.db.put(KEK_ROTATION_KEY, encode({ v: FORMAT, ...state }), { sync: true });
    return state;
  }

  /**
   * Re-wrap the data key of every sealed value that is not under the current KEK (node/store/envelope.ts
   * Sealer.rewrap): key records, pending epochs, staged changes, secrets and the meta record's MAC key.
   * Each record is rewritten (synced) under the same locks as any other write of it, so a concurrent
   * operation never loses its write. Values keep their ciphertext; only the wrapped data key changes.
   * A record that fails its MAC is not rewritten (its content is untrusted): it is listed in `refused`,
   * and the rotation cannot finish until `tessera repair` replaced it.
   */
  async rewrapRecords(onProgress?: (done: number, total: number) => void): Promise<{ records: number; moved: number; refused: string[] }> {
    this.ensureOpen();
    const keys: string[] = [];
    const refused: string[] = [];
    for (const [lo, hi] of SEALED_RECORD_RANGES) {
      const it = this.db.iterator({ gte: lo, lt: hi }, { unauthentic: 'mark' });
      try {
        for await (const [key, payload] of it) (payload === undefined ? refused : keys).push(key);
      } finally {
        await it.close();
      }
    }
    let moved = 0;
    for (let i = 0; i < keys.length; i++) {
      if (await this.rewrapRecord(keys[i]!)) moved++;
      onProgress?.(i + 1, keys.length);
    }
    return { records: keys.length, moved, refused: refused.map(recordName) };
  }

  /** How many sealed values are wrapped under a KEK other than the current one (0 once a rotation moved them all). */
  async countNotUnderCurrentKek(): Promise<number> {
    this.ensureOpen();
    const current = this.sealer.currentKek.id;
    let n = 0;
    for (const [lo, hi] of SEALED_RECORD_RANGES) {
      const it = this.db.iterator({ gte: lo, lt: hi }, { unauthentic: 'mark' });
      try {
        for await (const [key, payload] of it) {
          if (payload === undefined) n++;
          else forEachSealedBox(decodeMap(payload, key), (box) => void (sealedKekId(box) !== current && n++));
        }
      } finally {
        await it.close();
      }
    }
    return n;
  }

  /**
   * End a rotation whose records have all moved (BAD_STATE naming how many have not): stop unwrapping
   * with the old KEK and delete the rotation record. Returns the old Kek, which the caller destroys
   * (node/store/kek-rotation.ts) and closes.
   */
  async endKekRotation(): Promise<Kek | undefined> {
    const state = await this.kekRotation();
    ensure(state !== undefined, ErrorCode.BadState, 'storage: no KEK rotation is in progress');
    ensure(state.to === this.sealer.currentKek.id, ErrorCode.BadState, `storage: the rotation is to KEK ${state.to}, but KEK ${this.sealer.currentKek.id} is current`);
    const left = await this.countNotUnderCurrentKek();
    ensure(left === 0, ErrorCode.BadState, `storage: ${left} record(s) are not yet under KEK ${state.to}; the old KEK is kept until every record moved`);
    const old = this.sealer.keks.find((k) => k.id === state.from);
    if (old) this.sealer.removeKek(old.id);
    await this.db.del(KEK_ROTATION_KEY, { sync: true });
    return old;
  }

  /** Re-wrap one record's sealed values under the current KEK; true if it changed. */
  private async rewrapRecord(key: string): Promise<boolean> {
    const owner = keyOfRecord(key);
    const rewrite = async (): Promise<boolean> => {
      const payload = await this.db.get(key);
      if (payload === undefined) return false; // deleted meanwhile
      const m = decodeMap(payload, key);
      let changed = false;
      forEachSealedBox(m, (box) => {
        const moved = this.sealer.rewrap(box);
        if (moved) {
          box.ct = moved.ct;
          changed = true;
        }
      });
      if (!changed) return false;
      const value = encode(m);
      if (owner) await this.keyWrite(owner.tenant, owner.keyId, () => this.db.put(key, value, { sync: true }));
      else await this.db.put(key, value, { sync: true });
      return true;
    };
    if (!owner) return key === META_KEY ? rewrite() : this.withLock(key, rewrite, false);
    // A key's records are written under its staged-change lock (commits) or its version's record lock
    // (put, lifecycle, destroy): hold both, in that order (no other path nests them).
    const gkey = stagedRecordKey(owner.tenant, owner.keyId);
    if (key === gkey) return this.withLock(gkey, rewrite, false);
    const vkey = owner.version !== undefined ? shareRecordKey(owner.tenant, owner.keyId, owner.version) : key;
    return this.withLock(gkey, () => this.withLock(vkey, rewrite, false), false);
  }

  /** Close the database and forget a KEK the store made itself from bytes. Further calls throw BAD_STATE. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ownKek?.close();
    this.keyCache.clear();
    for (const l of this.keyLoads.values()) l.stale = true;
    this.keyLoads.clear();
    await this.db.close();
  }

  // -------------------------------------------------------------------------------------------
  // Integrity and storage failure (node/store/record-auth.ts)

  /**
   * Set once a LevelDB write failed (ENOSPC, EIO, read-only...): the UNAVAILABLE error ("node storage
   * failed: restart the node") that every call of this store now throws, until the process restarts.
   */
  get failure(): TesseraError | undefined {
    return this.db.failure;
  }

  /** What LevelDB said when the store latched failed (no values; for the operator's log). */
  get failureCause(): string | undefined {
    return this.db.failureCause;
  }

  /** Be told once when the store latches failed. Returns an unsubscribe function. */
  onFailure(listener: (cause: string) => void): () => void {
    return this.db.onFailure(listener);
  }

  /**
   * The start-up integrity check: verify the MAC of every record. Returns the records that fail (by
   * name, never their bytes); every key one of them belongs to is refused from now on, with an error
   * that names the key and `tessera repair --key-id`.
   */
  async checkIntegrity(): Promise<{ checked: number; unauthentic: UnauthenticRecord[] }> {
    this.ensureOpen();
    return this.db.verifyAll();
  }

  /** The keys this store refuses because one of their records failed its MAC. */
  quarantinedKeys(): { tenant: string; keyId: string; record: string }[] {
    return this.db.quarantined();
  }

  // -------------------------------------------------------------------------------------------
  // Committed key versions

  /** Store a new key version. Refuses to overwrite an existing (tenant, keyId, version). */
  async put(rec: NewKeyRecord): Promise<KeyRecord> {
    this.ensureOpen();
    const key = shareRecordKey(rec.tenant, rec.keyId, rec.version);
    const state = rec.state ?? 'active';
    ensure(isKeyState(state), ErrorCode.BadInput, 'storage: unknown key state');
    ensure(state !== 'destroyed', ErrorCode.BadInput, 'storage: a new version cannot be destroyed');
    ensure(
      rec.rotationPeriodMs === undefined || isRotationPeriod(rec.rotationPeriodMs, this.minRotationPeriodMs),
      ErrorCode.BadInput,
      `storage: rotationPeriodMs must be an integer number of milliseconds from ${this.minRotationPeriodMs} ms to ten years`,
    );
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
        ...(rec.rotationPeriodMs !== undefined ? { rotationPeriodMs: rec.rotationPeriodMs } : {}),
        ...chainCodeField(rec.chainCode),
        ...this.sealShare(rec.share, aad),
      };
      await this.keyWrite(rec.tenant, rec.keyId, () => this.db.put(key, encode(stored), { sync: true }));
      return committedToRecord(rec.tenant, rec.keyId, rec.version, stored);
    });
  }

  /** The committed record of a version, or of the latest version when `version` is omitted. */
  async get(tenant: string, keyId: string, version?: number): Promise<KeyRecord | undefined> {
    const found = await this.readCommitted(tenant, keyId, version);
    return found && this.cachedRecord(found);
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

  /** Every committed version of every tenant's keys, in store order (for the rotation scheduler), refused keys left out. */
  async listAll(): Promise<KeyRecord[]> {
    this.ensureOpen();
    const out: { record: string; rec: KeyRecord }[] = [];
    // Keys refused for a record that fails its MAC (node/store/record-auth.ts) are left out, every version of
    // them: they are named at start and on every direct access, and one bad record must not stop the
    // rotation of every other key.
    for await (const [k, v] of this.db.iterator({ gte: 'k/', lt: 'k/\uffff' }, { unauthentic: 'mark' })) {
      if (v === undefined) continue;
      const { tenant, keyId, version } = parseRecordKey(k);
      out.push({ record: k, rec: committedToRecord(tenant, keyId, version, decodeCommitted(v, k)) });
    }
    return out.filter((o) => !this.db.isRefused(o.record)).map((o) => o.rec);
  }

  /**
   * Decrypt the committed share of a version (latest when omitted). The caller owns the result and
   * must zeroize `secret.value` when done.
   */
  async getShare(tenant: string, keyId: string, version?: number): Promise<KeyShare | undefined> {
    const found = await this.readCommitted(tenant, keyId, version);
    if (!found) return undefined;
    const { stored } = found;
    const box = sealedOf(stored, tenant, keyId, found.version);
    // The cached record's frozen package: the same object for every read until the record changes.
    const pkg = this.cachedRecord(found).publicKey;
    const aad = this.shareAad(tenant, keyId, found.version, pkg, stored.exportable);
    const plaintext = this.unseal(box, aad, `share ${tenant}/${keyId} version ${found.version}`);
    const suite = getSuite(pkg.suite);
    if (suite.kind !== 'ecdsa') return { publicKey: pkg, secret: { suite: pkg.suite, index: this.nodeIndex, epoch: pkg.epoch, value: plaintext } };
    // A threshold ECDSA share is sealed with its pairwise setup after it (sealShare).
    try {
      const len = suite.group.scalarLength;
      ensure(plaintext.length > len, ErrorCode.DecryptionFailed, `storage: share ${tenant}/${keyId} version ${found.version} has no ECDSA pairwise setup`);
      return { publicKey: pkg, secret: { suite: pkg.suite, index: this.nodeIndex, epoch: pkg.epoch, value: plaintext.slice(0, len), pairwise: plaintext.slice(len) } };
    } finally {
      zeroize(plaintext);
    }
  }

  /**
   * Change a version's state along core/lifecycle.ts's transitions (BAD_STATE otherwise; NOT_FOUND if
   * the version does not exist). 'destroyed' is reached only through destroy(). `rotatedAt` records
   * that a newer version replaced this one (rotation retires the old version with it).
   * Does not touch the sealed share.
   */
  async setState(tenant: string, keyId: string, version: number, state: KeyState, opts: { rotatedAt?: number } = {}): Promise<KeyRecord> {
    this.ensureOpen();
    ensure(isKeyState(state), ErrorCode.BadInput, 'storage: unknown key state');
    ensure(state !== 'destroyed', ErrorCode.BadInput, 'storage: use destroy() to destroy a key version');
    ensure(
      opts.rotatedAt === undefined || (Number.isSafeInteger(opts.rotatedAt) && opts.rotatedAt >= 0),
      ErrorCode.BadInput,
      'storage: rotatedAt must be a non-negative integer',
    );
    const key = shareRecordKey(tenant, keyId, version);
    return this.withLock(key, async () => {
      const found = await this.readCommitted(tenant, keyId, version);
      ensure(found, ErrorCode.NotFound, `storage: ${tenant}/${keyId} version ${version} does not exist`);
      assertTransition(found.stored.state, state, { keyId, version });
      const stored: StoredCommitted = { ...found.stored, state, ...(opts.rotatedAt !== undefined ? { rotatedAt: opts.rotatedAt } : {}) };
      await this.keyWrite(tenant, keyId, () => this.db.put(key, encode(stored), { sync: true }));
      return committedToRecord(tenant, keyId, version, stored);
    });
  }

  /**
   * Set (or, with undefined, clear) the rotation period of a version. Refused on a destroyed version.
   */
  async setRotationPeriod(tenant: string, keyId: string, version: number, rotationPeriodMs: number | undefined): Promise<KeyRecord> {
    this.ensureOpen();
    ensure(
      rotationPeriodMs === undefined || isRotationPeriod(rotationPeriodMs, this.minRotationPeriodMs),
      ErrorCode.BadInput,
      `storage: rotationPeriodMs must be an integer number of milliseconds from ${this.minRotationPeriodMs} ms to ten years`,
    );
    const key = shareRecordKey(tenant, keyId, version);
    return this.withLock(key, async () => {
      const found = await this.readCommitted(tenant, keyId, version);
      ensure(found, ErrorCode.NotFound, `storage: ${tenant}/${keyId} version ${version} does not exist`);
      ensure(found.stored.state !== 'destroyed', ErrorCode.BadState, `storage: ${tenant}/${keyId} version ${version} is destroyed`);
      const { rotationPeriodMs: _old, ...rest } = found.stored;
      const stored: StoredCommitted = { ...rest, ...(rotationPeriodMs !== undefined ? { rotationPeriodMs } : {}) };
      await this.keyWrite(tenant, keyId, () => this.db.put(key, encode(stored), { sync: true }));
      return committedToRecord(tenant, keyId, version, stored);
    });
  }

  /**
   * Remove a version and any pending epoch of it from the index. Returns whether a committed version
   * existed. This is bookkeeping, not erasure: the old bytes stay in LevelDB's files until a compaction
   * drops them. To erase a share, use destroy().
   */
  async delete(tenant: string, keyId: string, version: number): Promise<boolean> {
    this.ensureOpen();
    const key = shareRecordKey(tenant, keyId, version);
    return this.withLock(key, async () => {
      const existed = (await this.db.get(key)) !== undefined;
      await this.keyWrite(tenant, keyId, () =>
        this.db.batch(
          [
            { type: 'del', key },
            { type: 'del', key: pendingRecordKey(tenant, keyId, version) },
          ],
          { sync: true },
        ),
      );
      return existed;
    });
  }

  /**
   * Erase this node's share of a version (state must allow it: retired or archived, core/lifecycle.ts),
   * keeping a public tombstone so the public key stays readable for verification:
   *   1. overwrite the sealed share (and any staged pending epoch) in place with random bytes of the
   *      same length, synced, so the newest copy LevelDB holds is noise;
   *   2. in one synced batch, replace the record by the tombstone (state 'destroyed', public package,
   *      no nonce or ciphertext) and delete the pending record;
   *   3. compact LevelDB over both keys (classic-level compactRange: it flushes the memtable, so the
   *      write-ahead log holding the old value is retired, and merges every level's copies of the key
   *      into one, dropping the older values), so the old ciphertext is in no data file any more.
   * Idempotent: destroying a destroyed version only compacts again (finishing a destroy that crashed
   * before its compaction). NOT_FOUND if the version does not exist.
   *
   * Limits: an iterator or snapshot open at the same time pins old files until it closes, and deleted
   * files' blocks are freed, not scrubbed, by the file system (use an encrypted disk: the shares were
   * sealed under the KEK anyway).
   */
  async destroy(tenant: string, keyId: string, version: number, opts: { destroyedAt?: number } = {}): Promise<KeyRecord> {
    this.ensureOpen();
    const destroyedAt = opts.destroyedAt ?? Date.now();
    ensure(Number.isSafeInteger(destroyedAt) && destroyedAt >= 0, ErrorCode.BadInput, 'storage: destroyedAt must be a non-negative integer');
    const key = shareRecordKey(tenant, keyId, version);
    const pkey = pendingRecordKey(tenant, keyId, version);
    const record = await this.withLock(key, async () => {
      const found = await this.readCommitted(tenant, keyId, version);
      ensure(found, ErrorCode.NotFound, `storage: ${tenant}/${keyId} version ${version} does not exist`);
      if (found.stored.state === 'destroyed') return committedToRecord(tenant, keyId, version, found.stored);
      assertTransition(found.stored.state, 'destroyed', { keyId, version });

      // 1. Overwrite with noise of the same length.
      const noise = (box: Partial<SealedBox>) => ({ nonce: randomBytes(NONCE_LENGTH), ct: randomBytes(box.ct?.length ?? 0) });
      const pending = await this.readPending(tenant, keyId, version);
      const overwrite: { type: 'put'; key: string; value: Uint8Array }[] = [{ type: 'put', key, value: encode({ ...found.stored, ...noise(found.stored) }) }];
      if (pending) overwrite.push({ type: 'put', key: pkey, value: encode({ ...pending, ...noise(pending) }) });
      await this.keyWrite(tenant, keyId, () => this.db.batch(overwrite, { sync: true }));

      // 2. Tombstone: the public part only.
      const { nonce: _n, ct: _c, ...publicPart } = found.stored;
      const tombstone: StoredCommitted = { ...publicPart, state: 'destroyed', destroyedAt };
      await this.keyWrite(tenant, keyId, () =>
        this.db.batch(
          [
            { type: 'put', key, value: encode(tombstone) },
            { type: 'del', key: pkey },
          ],
          { sync: true },
        ),
      );
      return committedToRecord(tenant, keyId, version, tombstone);
    });
    // 3. Compact both key ranges (outside the record lock: compaction can take a while).
    await this.compact(key);
    await this.compact(pkey);
    return record;
  }

  // -------------------------------------------------------------------------------------------
  // Versions

  /** The version a new version of `keyId` gets: one above every existing one, destroyed included (1 if none). */
  async nextVersion(tenant: string, keyId: string): Promise<number> {
    const latest = await this.readCommitted(tenant, keyId);
    const next = (latest?.version ?? 0) + 1;
    ensure(next <= MAX_VERSION, ErrorCode.BadState, `storage: ${tenant}/${keyId} has no versions left`);
    return next;
  }

  /** The newest version in state 'active', if any: what an operation uses when it names no version. */
  async latestActive(tenant: string, keyId: string): Promise<KeyRecord | undefined> {
    const all = await this.keyVersions(tenant, keyId);
    for (let i = all.length - 1; i >= 0; i--) if (all[i]!.stored.state === 'active') return this.cachedRecord(all[i]!);
    return undefined;
  }

  /** Every version of one key, oldest first. */
  async versions(tenant: string, keyId: string): Promise<KeyRecord[]> {
    return (await this.keyVersions(tenant, keyId)).map((c) => this.cachedRecord(c));
  }

  /** Read-cache counters (for tests and metrics): hits and misses of keyVersions(), and how many keys it holds. */
  get keyCacheStats(): { hits: number; misses: number; size: number } {
    return { ...this.cacheStats, size: this.keyCache.size };
  }

  // -------------------------------------------------------------------------------------------
  // Namespaced records of other components

  /**
   * A view of the records under `x/<prefix>/` for another component (audit log, tenants, policy), so
   * they live in this one LevelDB. `prefix` is an id ([A-Za-z0-9._:-], no '/'), so a namespace cannot
   * reach another namespace's records, nor the key shares, pending epochs, secrets or meta record.
   */
  namespace(prefix: string): RecordNamespace {
    const base = `x/${checkId(prefix, 'namespace')}/`;
    const full = (key: string): string => {
      ensure(typeof key === 'string' && NAMESPACE_KEY_PATTERN.test(key), ErrorCode.BadInput, 'storage: namespace keys must be 1-512 printable ASCII characters');
      return base + key;
    };
    const syncOf = (_opts?: { sync?: boolean }) => ({ sync: true }); // always synced: nothing is acknowledged before it is on disk
    const io = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      this.ensureOpen();
      try {
        return await fn();
      } catch (e) {
        if (isTesseraError(e)) throw e;
        throw new TesseraError(ErrorCode.Unavailable, `storage: cannot ${what} ${prefix} records`);
      }
    };
    const db = this.db;
    const store = this; // the iterator's generator has its own `this`
    const writes = this.namespaceWrites;
    // A write counts once it completed (successful or not), so a reader that saw the old count re-reads.
    const write = async (fn: () => Promise<void>): Promise<void> => {
      try {
        return await io('write', fn);
      } finally {
        writes.set(prefix, (writes.get(prefix) ?? 0) + 1);
      }
    };
    // With `marked`, a record that fails its MAC comes as [key, undefined] (record-auth 'mark').
    const entries = (range: NamespaceRange, marked: boolean): AsyncIterable<[string, Uint8Array | undefined]> => ({
      async *[Symbol.asyncIterator]() {
        const opts: Record<string, unknown> = {};
        if (range.gt !== undefined) opts.gt = full(range.gt);
        else if (range.gte !== undefined) opts.gte = full(range.gte);
        else opts.gte = base;
        if (range.lt !== undefined) opts.lt = full(range.lt);
        else if (range.lte !== undefined) opts.lte = full(range.lte);
        else opts.lt = base + '\x7f'; // above every printable ASCII key
        if (range.reverse) opts.reverse = true;
        if (range.limit !== undefined) {
          ensure(Number.isSafeInteger(range.limit) && range.limit >= 0, ErrorCode.BadInput, 'storage: limit must be a non-negative integer');
          opts.limit = range.limit;
        }
        store.ensureOpen();
        const it = marked ? db.iterator(opts, { unauthentic: 'mark' }) : db.iterator(opts);
        try {
          while (true) {
            let next: [string, Uint8Array | undefined] | undefined;
            try {
              next = await it.next();
            } catch (e) {
              if (isTesseraError(e)) throw e;
              throw new TesseraError(ErrorCode.Unavailable, `storage: cannot read ${prefix} records`);
            }
            if (next === undefined) return;
            yield [next[0].slice(base.length), next[1]];
          }
        } finally {
          await it.close();
        }
      },
    });
    return Object.freeze({
      prefix,
      get: async (key: string) => {
        const k = full(key);
        return io('read', async () => {
          const v = await db.get(k);
          return v === undefined ? undefined : Uint8Array.from(v);
        });
      },
      put: async (key: string, value: Uint8Array, opts?: { sync?: boolean }) => {
        const k = full(key);
        ensure(value instanceof Uint8Array, ErrorCode.BadInput, 'storage: namespace values must be bytes');
        return write(() => db.put(k, value, syncOf(opts)));
      },
      del: async (key: string, opts?: { sync?: boolean }) => {
        const k = full(key);
        return write(() => db.del(k, syncOf(opts)));
      },
      batch: async (ops: readonly NamespaceOp[], opts?: { sync?: boolean }) => {
        ensure(Array.isArray(ops), ErrorCode.BadInput, 'storage: batch expects a list');
        const mapped = ops.map((op) => {
          if (op.type === 'put') {
            ensure(op.value instanceof Uint8Array, ErrorCode.BadInput, 'storage: namespace values must be bytes');
            return { type: 'put' as const, key: full(op.key), value: op.value };
          }
          ensure(op.type === 'del', ErrorCode.BadInput, 'storage: batch ops are put or del');
          return { type: 'del' as const, key: full(op.key) };
        });
        return write(() => db.batch(mapped, syncOf(opts)));
      },
      iterate: (range: NamespaceRange = {}): AsyncIterable<[string, Uint8Array]> => entries(range, false) as AsyncIterable<[string, Uint8Array]>,
      iterateMarked: (range: NamespaceRange = {}): AsyncIterable<[string, Uint8Array | undefined]> => entries(range, true),
      generation: (): number => {
        this.ensureOpen();
        return writes.get(prefix) ?? 0;
      },
    });
  }

  // -------------------------------------------------------------------------------------------
  // Staged changes and commit certificates (core/commit.ts, node/sessions/commit.ts)
  //
  // Every state-changing session (keygen, rotate, refresh, import, lifecycle transitions) ends the
  // same way here: stageChange() stores the result beside the committed state (one staged change per
  // key at a time: a second one is refused until the first is committed or dropped) with this node's
  // vote, markReleased() remembers that the vote may have left the node, and commitStaged() applies the
  // staged effects, stores the
  // certificate and deletes the staged record in ONE synced LevelDB batch. So a crash leaves either the
  // old state plus the staged change, or the new state plus its certificate: never half of each.
  // After the batch, every record whose old bytes held a superseded share (the previous epoch, a
  // destroyed share, the staged copy) is compacted away; an erase marker in the same batch makes a
  // restart finish that compaction if the process dies first.

  /**
   * Stage a session's result for one key. Checks every effect against the committed state now (and
   * again at commit). Refuses (BAD_STATE) while another change of the key is staged.
   */
  async stageChange(tenant: string, keyId: string, change: StagedChangeHeader, effects: readonly StagedEffect[]): Promise<StagedChange> {
    this.ensureOpen();
    const gkey = stagedRecordKey(tenant, keyId);
    checkStagedHeader(change);
    ensure(Array.isArray(effects) && effects.length >= 1 && effects.length <= 4, ErrorCode.BadInput, 'storage: a staged change has 1..4 effects');
    return this.withLock(gkey, async () => {
      const existing = await this.readStaged(tenant, keyId);
      if (existing) throw stagedConflict(keyId, existing);
      const stored: StoredEffect[] = [];
      for (const e of effects) stored.push(await this.prepareEffect(tenant, keyId, e));
      const rec: StoredStaged = {
        v: FORMAT,
        session: Uint8Array.from(change.session),
        operation: change.operation,
        version: change.version,
        resultDigest: Uint8Array.from(change.resultDigest),
        stagedAt: Date.now(),
        ...(change.vote !== undefined ? { vote: Uint8Array.from(change.vote) } : {}),
        ...(change.voters !== undefined ? { voters: [...change.voters] } : {}),
        effects: stored,
      };
      await this.keyWrite(tenant, keyId, () => this.db.put(gkey, encode(rec), { sync: true }));
      return stagedToInfo(tenant, keyId, rec);
    });
  }

  /** The staged change of a key, if any (public part only). */
  async getStaged(tenant: string, keyId: string): Promise<StagedChange | undefined> {
    const rec = await this.readStaged(tenant, keyId);
    return rec && stagedToInfo(tenant, keyId, rec);
  }

  /** Every staged change in the store (start-up resolution, repair). */
  async listStaged(): Promise<StagedChange[]> {
    this.ensureOpen();
    const out: StagedChange[] = [];
    for await (const [k, v] of this.db.iterator({ gte: 'g/', lt: 'g/\uffff' })) {
      const { tenant, keyId } = parseKeyScopedKey(k, 'g');
      out.push(stagedToInfo(tenant, keyId, decodeStaged(v, k)));
    }
    return out;
  }

  /**
   * Remember, synced, that this node releases its stored vote for the staged change of `session`,
   * before the vote leaves the node: from then on only a certificate can resolve the change
   * (dropStaged refuses). Returns the vote.
   */
  async markReleased(tenant: string, keyId: string, session: Uint8Array): Promise<Uint8Array> {
    this.ensureOpen();
    const gkey = stagedRecordKey(tenant, keyId);
    return this.withLock(gkey, async () => {
      const rec = await this.readStaged(tenant, keyId);
      ensure(rec && equalBytes(rec.session, session), ErrorCode.BadState, `storage: no staged change of ${keyId} for this session`);
      ensure(rec.vote !== undefined, ErrorCode.BadState, `storage: the staged change of ${keyId} has no vote`);
      if (!rec.released) await this.keyWrite(tenant, keyId, () => this.db.put(gkey, encode({ ...rec, released: true }), { sync: true }));
      return Uint8Array.from(rec.vote);
    });
  }

  /**
   * Drop a staged change whose vote this node never released (so no certificate for it can exist:
   * every certificate needs this node's vote). Refused (BAD_STATE) once it was released. The staged
   * record is compacted away, so its sealed share does not linger in the data files.
   */
  async dropStaged(tenant: string, keyId: string, session: Uint8Array): Promise<boolean> {
    this.ensureOpen();
    const gkey = stagedRecordKey(tenant, keyId);
    const dropped = await this.withLock(gkey, async () => {
      const rec = await this.readStaged(tenant, keyId);
      if (!rec || !equalBytes(rec.session, session)) return false;
      ensure(
        rec.released !== true,
        ErrorCode.BadState,
        `storage: this node released its vote for the staged ${rec.operation} of ${keyId}; only its commit certificate can resolve it`,
      );
      await this.keyWrite(tenant, keyId, () => this.db.del(gkey, { sync: true }));
      return true;
    });
    if (dropped) await this.compact(gkey);
    return dropped;
  }

  /**
   * Commit the staged change of `session` with its (already verified) certificate: apply its effects,
   * store the certificate, delete the staged record, all in one synced batch; then erase superseded
   * shares. Returns the records it changed. Idempotent: if the certificate is already stored (a crash
   * after the batch), it only finishes the erasure.
   */
  async commitStaged(tenant: string, keyId: string, session: Uint8Array, certificate: Uint8Array): Promise<KeyRecord[]> {
    this.ensureOpen();
    const gkey = stagedRecordKey(tenant, keyId);
    const ckey = certificateRecordKey(tenant, keyId, session);
    const ekey = eraseMarkerKey(tenant, keyId);
    ensure(certificate instanceof Uint8Array && certificate.length > 0, ErrorCode.BadInput, 'storage: certificate must be bytes');
    const result = await this.withLock(gkey, async () => {
      if ((await this.db.get(ckey)) !== undefined) return { changed: [] as KeyRecord[], erase: [] as string[] };
      const rec = await this.readStaged(tenant, keyId);
      ensure(rec && equalBytes(rec.session, session), ErrorCode.BadState, `storage: no staged change of ${keyId} for this session`);
      const ops: { type: 'put' | 'del'; key: string; value?: Uint8Array }[] = [];
      const changed: KeyRecord[] = [];
      // The staged record's secret, if any, is the one being committed: erasing it matters only when
      // the commit supersedes an old secret (refresh's previous epoch, a destroy). A keygen, rotate,
      // import or plain state change erases nothing, and skips the compactions (tens of ms per commit).
      const erase: string[] = [];
      const committedAt = Date.now();
      for (const e of rec.effects) {
        if (e.kind === 'membership') {
          ops.push(...membershipOps(e.membership, certificate, committedAt));
          continue;
        }
        if (e.kind === 'leave') {
          // This node leaves the key's committee (a reshare): the version's record and share go, and
          // the compaction below drops the old ciphertext from the data files.
          const key = shareRecordKey(tenant, keyId, e.version);
          ops.push({ type: 'del', key }, { type: 'del', key: pendingRecordKey(tenant, keyId, e.version) });
          erase.push(key);
          continue;
        }
        const applied = await this.applyEffect(tenant, keyId, e, session, committedAt);
        ops.push({ type: 'put', key: applied.key, value: encode(applied.stored) });
        changed.push(committedToRecord(tenant, keyId, e.version, applied.stored));
        if (applied.erasesOld) erase.push(applied.key);
      }
      ops.push({ type: 'put', key: ckey, value: encode({ v: FORMAT, cert: Uint8Array.from(certificate), committedAt }) });
      ops.push({ type: 'del', key: gkey });
      if (erase.length > 0) ops.push({ type: 'put', key: ekey, value: encode({ v: FORMAT, keys: [gkey, ...erase] }) });
      await this.keyWrite(tenant, keyId, () => this.db.batch(ops as never, { sync: true }));
      return { changed, erase };
    });
    await this.finishErasure(tenant, keyId);
    return result.changed;
  }

  /**
   * Apply a certified lifecycle transition that this node has no staged record for (a node restored
   * from a backup taken before it, or one that missed the session): the certificate alone is enough,
   * because a transition carries no secret. A transition already applied is a no-op.
   */
  async applyCertifiedTransition(
    tenant: string,
    keyId: string,
    version: number,
    target: KeyState,
    session: Uint8Array,
    certificate: Uint8Array,
  ): Promise<KeyRecord> {
    this.ensureOpen();
    const gkey = stagedRecordKey(tenant, keyId);
    const ckey = certificateRecordKey(tenant, keyId, session);
    ensure(isKeyState(target), ErrorCode.BadInput, 'storage: unknown key state');
    const out = await this.withLock(gkey, async () => {
      const found = await this.readCommitted(tenant, keyId, version);
      ensure(found, ErrorCode.NotFound, `storage: ${tenant}/${keyId} version ${version} does not exist`);
      if ((await this.db.get(ckey)) !== undefined || found.stored.state === target) {
        return { rec: committedToRecord(tenant, keyId, version, found.stored), erase: false };
      }
      const effect: StoredEffect = target === 'destroyed' ? { kind: 'destroy', version, destroyedAt: Date.now() } : { kind: 'state', version, state: target };
      const applied = await this.applyEffect(tenant, keyId, effect, session, Date.now());
      const ops = [
        { type: 'put', key: applied.key, value: encode(applied.stored) },
        { type: 'put', key: ckey, value: encode({ v: FORMAT, cert: Uint8Array.from(certificate), committedAt: Date.now() }) },
        ...(applied.erasesOld ? [{ type: 'put', key: eraseMarkerKey(tenant, keyId), value: encode({ v: FORMAT, keys: [applied.key] }) }] : []),
      ];
      await this.keyWrite(tenant, keyId, () => this.db.batch(ops as never, { sync: true }));
      return { rec: committedToRecord(tenant, keyId, version, applied.stored), erase: applied.erasesOld };
    });
    if (out.erase) await this.finishErasure(tenant, keyId);
    return out.rec;
  }

  /**
   * A reshare this node was not a player of moved the key to a committee without it (its certificate
   * was checked by the caller, node/sessions/commit.ts applyReshareHandoff): erase this node's share
   * and record of the version, keep the certificate, in one synced batch, then compact. A version
   * already gone, or a certificate already stored, is a no-op. Refused while a change of the key is staged.
   */
  async leaveOnCertificate(tenant: string, keyId: string, version: number, session: Uint8Array, certificate: Uint8Array): Promise<'erased' | 'already-committed'> {
    this.ensureOpen();
    const gkey = stagedRecordKey(tenant, keyId);
    const ckey = certificateRecordKey(tenant, keyId, session);
    const key = shareRecordKey(tenant, keyId, version);
    const outcome = await this.withLock(gkey, async () => {
      if ((await this.db.get(ckey)) !== undefined) return 'already-committed' as const;
      const staged = await this.readStaged(tenant, keyId);
      if (staged) throw stagedConflict(keyId, staged);
      const ops = [
        { type: 'del', key },
        { type: 'del', key: pendingRecordKey(tenant, keyId, version) },
        { type: 'put', key: ckey, value: encode({ v: FORMAT, cert: Uint8Array.from(certificate), committedAt: Date.now() }) },
        { type: 'put', key: eraseMarkerKey(tenant, keyId), value: encode({ v: FORMAT, keys: [key] }) },
      ];
      await this.keyWrite(tenant, keyId, () => this.db.batch(ops as never, { sync: true }));
      return 'erased' as const;
    });
    await this.finishErasure(tenant, keyId);
    return outcome;
  }

  /** The stored certificate of a session that committed a change of this key. */
  async getCertificate(tenant: string, keyId: string, session: Uint8Array): Promise<Uint8Array | undefined> {
    this.ensureOpen();
    const ckey = certificateRecordKey(tenant, keyId, session);
    const raw = await this.db.get(ckey);
    if (raw === undefined) return undefined;
    const m = decodeMap(raw, ckey);
    ensure(m.v === FORMAT, ErrorCode.BadMessage, `storage: record ${ckey} has unknown format`);
    return bytesField(m.cert, ckey);
  }

  /** The committed cluster membership, if a membership change ever committed on this node. */
  async getMembership(): Promise<Membership | undefined> {
    this.ensureOpen();
    const raw = await this.db.get(MEMBERSHIP_CURRENT_KEY);
    if (raw === undefined) return undefined;
    const m = decodeMap(raw, MEMBERSHIP_CURRENT_KEY);
    ensure(m.v === FORMAT, ErrorCode.BadMessage, `storage: record ${MEMBERSHIP_CURRENT_KEY} has unknown format`);
    return decodeMembership(bytesField(m.membership, MEMBERSHIP_CURRENT_KEY));
  }

  /** Every membership change committed on this node, oldest first, with its certificate. */
  async membershipHistory(): Promise<{ membership: Membership; certificate: Uint8Array; committedAt: number }[]> {
    this.ensureOpen();
    const out: { membership: Membership; certificate: Uint8Array; committedAt: number }[] = [];
    for await (const [k, v] of this.db.iterator({ gte: MEMBERSHIP_HISTORY_PREFIX, lt: MEMBERSHIP_HISTORY_PREFIX + '\uffff' })) {
      const m = decodeMap(v, k);
      ensure(m.v === FORMAT && isTime(m.committedAt), ErrorCode.BadMessage, `storage: record ${k} is corrupt`);
      out.push({ membership: decodeMembership(bytesField(m.membership, k)), certificate: bytesField(m.cert, k), committedAt: m.committedAt as number });
    }
    return out;
  }

  /**
   * Commit a membership change this node has no staged record of (it was handed the certificate, which
   * the caller verified against the current membership: node/governance/membership.ts), in one synced
   * batch with the certificate. A staged change of the same session is resolved by the same batch; one
   * of another session is refused (BAD_STATE). Already committed: a no-op.
   */
  async commitCertifiedMembership(membership: Membership, session: Uint8Array, certificate: Uint8Array): Promise<'committed' | 'already-committed'> {
    this.ensureOpen();
    const tenant = MEMBERSHIP_TENANT;
    const keyId = MEMBERSHIP_KEY_ID;
    const gkey = stagedRecordKey(tenant, keyId);
    const ckey = certificateRecordKey(tenant, keyId, session);
    ensure(certificate instanceof Uint8Array && certificate.length > 0, ErrorCode.BadInput, 'storage: certificate must be bytes');
    return this.withLock(gkey, async () => {
      if ((await this.db.get(ckey)) !== undefined) return 'already-committed' as const;
      const current = await this.getMembership();
      ensure(current === undefined || current.epoch < membership.epoch, ErrorCode.EpochMismatch, `storage: membership epoch ${membership.epoch} is not newer than the committed ${current?.epoch}`);
      const staged = await this.readStaged(tenant, keyId);
      if (staged && !equalBytes(staged.session, session)) throw stagedConflict(keyId, staged);
      const committedAt = Date.now();
      const ops: { type: 'put' | 'del'; key: string; value?: Uint8Array }[] = [
        ...membershipOps(encodeMembership(membership), certificate, committedAt),
        { type: 'put', key: ckey, value: encode({ v: FORMAT, cert: Uint8Array.from(certificate), committedAt }) },
      ];
      if (staged) ops.push({ type: 'del', key: gkey });
      await this.keyWrite(tenant, keyId, () => this.db.batch(ops as never, { sync: true }));
      return 'committed' as const;
    });
  }

  /** Every certificate stored for a key, in session-id order. */
  async listCertificates(tenant: string, keyId: string): Promise<{ session: Uint8Array; certificate: Uint8Array; committedAt: number }[]> {
    this.ensureOpen();
    const prefix = `c/${checkId(tenant, 'tenant')}/${checkId(keyId, 'keyId')}/`;
    const out: { session: Uint8Array; certificate: Uint8Array; committedAt: number }[] = [];
    for await (const [k, v] of this.db.iterator({ gte: prefix, lt: prefix + '\uffff' })) {
      const m = decodeMap(v, k);
      ensure(m.v === FORMAT && isTime(m.committedAt), ErrorCode.BadMessage, `storage: record ${k} is corrupt`);
      out.push({ session: fromHexKey(k.slice(prefix.length), k), certificate: bytesField(m.cert, k), committedAt: m.committedAt as number });
    }
    return out;
  }

  /**
   * Remember a session id this node accepted, synced, refusing one it accepted before (BAD_STATE):
   * a session id is never accepted twice by a node, across restarts too, so a recorded run can never
   * be replayed into a new one under the same id.
   */
  async claimSession(session: Uint8Array): Promise<void> {
    this.ensureOpen();
    ensure(session instanceof Uint8Array && session.length === 16, ErrorCode.BadInput, 'storage: session id must be 16 bytes');
    const key = `r/${hexOf(session)}`;
    await this.withLock(key, async () => {
      ensure((await this.db.get(key)) === undefined, ErrorCode.BadState, `session ${hexOf(session)} was already used on node ${this.nodeIndex}; a session id is never accepted twice`);
      await this.db.put(key, encode({ v: FORMAT, at: Date.now() }), { sync: true });
    });
  }

  /** Finish every erasure a crash interrupted (called at open). */
  async finishErasures(): Promise<void> {
    this.ensureOpen();
    const pending: { tenant: string; keyId: string }[] = [];
    for await (const [k] of this.db.iterator({ gte: 'e/', lt: 'e/\uffff' })) pending.push(parseKeyScopedKey(k, 'e'));
    for (const { tenant, keyId } of pending) await this.finishErasure(tenant, keyId);
  }

  private async finishErasure(tenant: string, keyId: string): Promise<void> {
    const ekey = eraseMarkerKey(tenant, keyId);
    const raw = await this.db.get(ekey);
    if (raw === undefined) return;
    const m = decodeMap(raw, ekey);
    ensure(Array.isArray(m.keys) && m.keys.every((k) => typeof k === 'string'), ErrorCode.BadMessage, `storage: record ${ekey} is corrupt`);
    for (const k of m.keys as string[]) await this.compact(k);
    await this.db.del(ekey, { sync: true });
    await this.compact(ekey);
  }

  /** Turn a caller's effect into its stored (sealed) form, checked against the committed state. */
  private async prepareEffect(tenant: string, keyId: string, e: StagedEffect): Promise<StoredEffect> {
    switch (e.kind) {
      case 'new-version': {
        const r = e.record;
        ensure(r.tenant === tenant && r.keyId === keyId, ErrorCode.BadInput, 'storage: staged version is for another key');
        ensure(r.rotationPeriodMs === undefined || isRotationPeriod(r.rotationPeriodMs, this.minRotationPeriodMs), ErrorCode.BadInput, 'storage: bad rotation period');
        ensure(typeof r.exportable === 'boolean', ErrorCode.BadInput, 'storage: exportable must be a boolean');
        const pkg = this.checkKeyShare(r.share);
        ensure((await this.readCommitted(tenant, keyId, r.version)) === undefined, ErrorCode.AlreadyExists, `key ${keyId} version ${r.version} already exists`);
        const stored: StoredCommitted = {
          v: FORMAT,
          ...pkg,
          state: 'active',
          createdAt: r.createdAt ?? Date.now(),
          exportable: r.exportable,
          ...(r.rotationPeriodMs !== undefined ? { rotationPeriodMs: r.rotationPeriodMs } : {}),
          ...chainCodeField(r.chainCode),
          ...this.sealShare(r.share, this.shareAad(tenant, keyId, r.version, pkg, r.exportable)),
        };
        return { kind: 'put', version: r.version, record: stored };
      }
      case 'new-epoch': {
        const found = await this.readCommitted(tenant, keyId, e.version);
        ensure(found, ErrorCode.NotFound, `key ${keyId} version ${e.version} not found`);
        const cur = found.stored;
        const pkg = this.checkKeyShare(e.share);
        this.checkNextEpoch(cur, pkg);
        const stored: StoredPending = {
          v: FORMAT,
          ...pkg,
          stagedAt: Date.now(),
          exportable: cur.exportable,
          ...this.sealShare(e.share, this.shareAad(tenant, keyId, e.version, pkg, cur.exportable)),
        };
        return { kind: 'epoch', version: e.version, record: stored };
      }
      case 'reshare': {
        const pkg = this.checkKeyShare(e.share);
        const found = await this.readCommitted(tenant, keyId, e.version);
        if (e.joining) {
          const m = e.joining;
          ensure(found === undefined, ErrorCode.AlreadyExists, `key ${keyId} version ${e.version} already exists on this node`);
          ensure(typeof m.exportable === 'boolean' && isKeyState(m.state) && isTime(m.createdAt), ErrorCode.BadInput, 'storage: bad key metadata');
          ensure(m.rotationPeriodMs === undefined || isRotationPeriod(m.rotationPeriodMs, this.minRotationPeriodMs), ErrorCode.BadInput, 'storage: bad rotation period');
          const stored: StoredCommitted = {
            v: FORMAT,
            ...pkg,
            state: m.state,
            createdAt: m.createdAt,
            exportable: m.exportable,
            ...(m.rotationPeriodMs !== undefined ? { rotationPeriodMs: m.rotationPeriodMs } : {}),
            ...chainCodeField(m.chainCode),
            ...this.sealShare(e.share, this.shareAad(tenant, keyId, e.version, pkg, m.exportable)),
          };
          return { kind: 'put', version: e.version, record: stored };
        }
        ensure(found, ErrorCode.NotFound, `key ${keyId} version ${e.version} not found`);
        this.checkResharedEpoch(found.stored, pkg);
        const stored: StoredPending = {
          v: FORMAT,
          ...pkg,
          stagedAt: Date.now(),
          exportable: found.stored.exportable,
          ...this.sealShare(e.share, this.shareAad(tenant, keyId, e.version, pkg, found.stored.exportable)),
        };
        return { kind: 'epoch', version: e.version, record: stored, reshare: true };
      }
      case 'leave': {
        const found = await this.readCommitted(tenant, keyId, e.version);
        ensure(found, ErrorCode.NotFound, `key ${keyId} version ${e.version} not found`);
        ensure(found.stored.state !== 'destroyed', ErrorCode.BadState, `key ${keyId} version ${e.version} is destroyed`);
        return { kind: 'leave', version: e.version };
      }
      case 'membership': {
        ensure(tenant === MEMBERSHIP_TENANT && keyId === MEMBERSHIP_KEY_ID, ErrorCode.BadInput, 'storage: a membership change is staged only as the cluster\'s');
        const bytes = encodeMembership(e.membership);
        ensure(e.membership.epoch === e.version, ErrorCode.BadInput, 'storage: a membership change\'s version is its epoch');
        const current = await this.getMembership();
        ensure(
          current === undefined || current.epoch < e.version,
          ErrorCode.EpochMismatch,
          `storage: this node already committed membership epoch ${current?.epoch}, not before ${e.version}`,
        );
        return { kind: 'membership', version: e.version, membership: bytes };
      }
      case 'state':
      case 'destroy': {
        const target: KeyState = e.kind === 'destroy' ? 'destroyed' : e.state;
        const found = await this.readCommitted(tenant, keyId, e.version);
        ensure(found, ErrorCode.NotFound, `key ${keyId} version ${e.version} not found`);
        assertTransition(found.stored.state, target, { keyId, version: e.version });
        if (e.kind === 'destroy') return { kind: 'destroy', version: e.version, destroyedAt: Date.now() };
        return { kind: 'state', version: e.version, state: e.state, ...(e.rotatedAt !== undefined ? { rotatedAt: e.rotatedAt } : {}) };
      }
    }
  }

  /** The committed record an effect produces, re-checked against the committed state at commit time. */
  private async applyEffect(
    tenant: string,
    keyId: string,
    e: Exclude<StoredEffect, { kind: 'leave' | 'membership' }>,
    session: Uint8Array,
    now: number,
  ): Promise<{ key: string; stored: StoredCommitted; erasesOld: boolean }> {
    const key = shareRecordKey(tenant, keyId, e.version);
    const cs = Uint8Array.from(session);
    if (e.kind === 'put') {
      ensure((await this.db.get(key)) === undefined, ErrorCode.AlreadyExists, `key ${keyId} version ${e.version} already exists`);
      return { key, stored: { ...e.record, cs }, erasesOld: false };
    }
    const found = await this.readCommitted(tenant, keyId, e.version);
    ensure(found, ErrorCode.NotFound, `key ${keyId} version ${e.version} not found`);
    const cur = found.stored;
    if (e.kind === 'epoch') {
      const pkg = packageOf(e.record);
      if (e.reshare) this.checkResharedEpoch(cur, e.record);
      else this.checkNextEpoch(cur, e.record);
      const stored: StoredCommitted = {
        v: FORMAT,
        ...pkg,
        commitments: [...pkg.commitments],
        verifyingShares: [...pkg.verifyingShares],
        state: cur.state,
        createdAt: cur.createdAt,
        exportable: cur.exportable,
        ...optionalTimes(cur),
        ...(cur.cc !== undefined ? { cc: cur.cc } : {}),
        nonce: e.record.nonce,
        ct: e.record.ct,
        cs,
      };
      // The previous epoch's sealed share is replaced under the same key: compaction erases it.
      return { key, stored, erasesOld: true };
    }
    if (e.kind === 'state') {
      assertTransition(cur.state, e.state, { keyId, version: e.version });
      return { key, stored: { ...cur, state: e.state, ...(e.rotatedAt !== undefined ? { rotatedAt: e.rotatedAt } : {}), cs }, erasesOld: false };
    }
    assertTransition(cur.state, 'destroyed', { keyId, version: e.version });
    const { nonce: _n, ct: _c, ...publicPart } = cur;
    return { key, stored: { ...publicPart, state: 'destroyed', destroyedAt: e.destroyedAt ?? now, cs }, erasesOld: true };
  }

  /** A reshare keeps the suite and the group key and moves one epoch on; threshold and committee may change. */
  private checkResharedEpoch(cur: StoredCommitted, pkg: StoredPackage): void {
    ensure(cur.state !== 'destroyed', ErrorCode.BadState, 'storage: the version is destroyed');
    ensure(pkg.suite === cur.suite, ErrorCode.BadParameters, 'storage: a reshare must keep the suite');
    ensure(equalBytes(pkg.commitments[0]!, cur.commitments[0]!), ErrorCode.BadParameters, 'storage: a reshare must keep the group key');
    ensure(pkg.epoch === cur.epoch + 1, ErrorCode.EpochMismatch, `storage: the next epoch must be ${cur.epoch + 1}, got ${pkg.epoch}`);
  }

  private checkNextEpoch(cur: StoredCommitted, pkg: StoredPackage): void {
    ensure(cur.state !== 'destroyed', ErrorCode.BadState, 'storage: the version is destroyed');
    ensure(
      pkg.suite === cur.suite && pkg.threshold === cur.threshold && pkg.parties === cur.parties,
      ErrorCode.BadParameters,
      'storage: a refreshed epoch must keep suite, threshold and parties',
    );
    const committee = (p: StoredPackage) => partyIndices(p).join(',');
    ensure(committee(pkg) === committee(cur), ErrorCode.BadParameters, 'storage: a refreshed epoch must keep the committee (the nodes that hold the key)');
    ensure(equalBytes(pkg.commitments[0]!, cur.commitments[0]!), ErrorCode.BadParameters, 'storage: a refreshed epoch must keep the group key');
    ensure(pkg.epoch === cur.epoch + 1, ErrorCode.EpochMismatch, `storage: the next epoch must be ${cur.epoch + 1}, got ${pkg.epoch}`);
  }

  private async readStaged(tenant: string, keyId: string): Promise<StoredStaged | undefined> {
    this.ensureOpen();
    const key = stagedRecordKey(tenant, keyId);
    const raw = await this.db.get(key);
    return raw === undefined ? undefined : decodeStaged(raw, key);
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
    if (this.db.failure) throw this.db.failure;
  }

  /** LevelDB compaction of the keys [key, key + '\0'], i.e. exactly `key` (classic-level compactRange). */
  private async compact(key: string): Promise<void> {
    this.ensureOpen();
    // classic-level compactRange through AuthenticatedRecords: a failed compaction latches the store
    // failed like a failed write (it rewrites data files), so erasure never fails silently.
    await this.db.compactRange(key, key + '\0');
  }

  /** Serialize mutations of one record within this process (LevelDB has no compare-and-set). */
  private async withLock<T>(key: string, fn: () => Promise<T>, notify = true): Promise<T> {
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
      if (notify) this.keyChanged(key);
      release();
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }

  /**
   * Be told (tenant, keyId) after every write attempt under one of a key's record locks: a committed
   * version's record (put, setState, setRotationPeriod, delete, destroy) or its staged change
   * (stageChange, markReleased, dropStaged, and commitStaged / applyCertifiedTransition: the commit of
   * every session, repair included). Every change of a key's records runs under withLock, so this is
   * the one hook no operation can forget: node/presign/ drops that key's presignature pools here.
   * Listeners run synchronously and must not throw (a throw is ignored). Returns an unsubscribe function.
   */
  onKeyChange(listener: (tenant: string, keyId: string) => void): () => void {
    this.keyListeners.add(listener);
    return () => this.keyListeners.delete(listener);
  }

  private readonly keyListeners = new Set<(tenant: string, keyId: string) => void>();

  /** The lock keys of a key's records: k/<tenant>/<keyId>/<version> and g/<tenant>/<keyId>. */
  private keyChanged(lockKey: string): void {
    if (this.keyListeners.size === 0 || !(lockKey.startsWith('k/') || lockKey.startsWith('g/'))) return;
    const [, tenant, keyId] = lockKey.split('/');
    if (!tenant || !keyId) return;
    for (const l of this.keyListeners) {
      try {
        l(tenant, keyId);
      } catch {
        // a listener's failure must not fail the write it is told about
      }
    }
  }

  /** The meta record openMacKey() read (or wrote) must also pass its MAC: nobody edited it. */
  private async checkMeta(): Promise<void> {
    const found = await this.db.inspect(META_KEY);
    ensure(found !== undefined, ErrorCode.BadState, "storage: the data dir's meta record is missing");
    if (!found.authentic) throw unauthenticRecordError(META_KEY);
  }

  /**
   * Seal a share: its scalar, followed for a threshold ECDSA key by its pairwise setup (one sealed box,
   * so the two are written, moved and erased together; getShare splits them).
   */
  private sealShare(share: KeyShare, aad: Uint8Array): SealedBox {
    const { value, pairwise } = share.secret;
    if (pairwise === undefined) return this.seal(value, aad);
    const plaintext = concatBytes(value, pairwise);
    try {
      return this.seal(plaintext, aad);
    } finally {
      zeroize(plaintext);
    }
  }

  /** Envelope-seal a value under a fresh data key wrapped by the current KEK (node/store/envelope.ts). */
  private seal(plaintext: Uint8Array, aad: Uint8Array): SealedBox {
    return this.sealer.seal(plaintext, aad);
  }

  private unseal(box: SealedBox, aad: Uint8Array, what: string): Uint8Array {
    this.ensureOpen();
    try {
      return this.sealer.open(box, aad);
    } catch (e) {
      if (e instanceof KekUnavailableError) throw new TesseraError(ErrorCode.DecryptionFailed, `storage: ${what} is ${e.message}`);
      throw new TesseraError(ErrorCode.DecryptionFailed, `storage: ${what} does not decrypt (wrong KEK, or the record was moved, altered or is another node's)`);
    }
  }

  private shareAad(tenant: string, keyId: string, version: number, pkg: PublicKeyPackage, exportable: boolean): Uint8Array {
    return framed(
      AAD_SHARE,
      utf8ToBytes(tenant),
      utf8ToBytes(keyId),
      i2osp(version, 4),
      i2osp(this.nodeIndex, 1),
      i2osp(pkg.epoch, 4),
      publicPackageDigest(pkg),
      Uint8Array.of(exportable ? 1 : 0),
    );
  }

  private secretAad(name: string): Uint8Array {
    return framed(AAD_SECRET, utf8ToBytes(name), i2osp(this.nodeIndex, 1));
  }

  /** The committed record of a version (latest when omitted), through the read cache. */
  private async readCommitted(tenant: string, keyId: string, version?: number): Promise<CachedVersion | undefined> {
    if (version !== undefined) {
      const key = shareRecordKey(tenant, keyId, version); // validates the ids and the version
      // A refused key: the direct read throws, naming this record and the one that failed, as before the cache.
      if (this.db.isRefused(key)) {
        this.ensureOpen();
        await this.db.get(key);
      }
    }
    const all = await this.keyVersions(tenant, keyId);
    if (version === undefined) return all[all.length - 1];
    return all.find((c) => c.version === version);
  }

  // -------------------------------------------------------------------------------------------
  // The read cache of committed key records
  //
  // Every operation reads its key's record; without a cache that is a LevelDB read, a MAC check and a
  // msgpack decode each time. keyVersions() loads every committed version of one key at once (one
  // range read, each record's MAC checked as before: a record that fails it throws and quarantines the
  // key, and nothing is cached) and keeps the decoded records. Rules:
  // - Every write of a key's records goes through keyWrite(), which drops the key's entry after the
  //   write, in the same code path and before the record lock is released (put, setState,
  //   setRotationPeriod, delete, destroy, stageChange, markReleased, dropStaged, commitStaged,
  //   applyCertifiedTransition). The next read loads from LevelDB again.
  // - A load that was in flight when the key was written is marked stale and its result is not cached
  //   (it may hold the old record): a cached record is never older than the last completed write.
  // - A hit is served only while the store is open and not latched failed (ensureOpen) and the key is
  //   not quarantined (a record of it failed its MAC since: the LevelDB read path then throws as before).
  // - Records handed out are frozen (object and arrays) and the same object on every hit, until the
  //   key is written (callers may key a WeakMap on record.publicKey). Their bytes are separate copies
  //   from the cached stored form, and a hit checks them against it: a caller that wrote into them gets
  //   a fresh record, and the cache itself is never changed by a caller.
  // - Only public fields and the sealed (encrypted) share are cached; getShare() decrypts every time,
  //   so no plaintext share is kept.
  // - Size: at most keyCacheSize keys, least recently used dropped first (0: no cache).

  private async keyVersions(tenant: string, keyId: string): Promise<readonly CachedVersion[]> {
    this.ensureOpen();
    const id = `${checkId(tenant, 'tenant')}/${checkId(keyId, 'keyId')}`;
    const prefix = `k/${id}/`;
    if (this.db.isRefused(prefix)) {
      // A record of this key failed its MAC: never served from the cache. Reading newest first throws
      // naming the newest record, as the uncached reads did (nothing when the key has no committed record).
      this.forgetKey(tenant, keyId);
      const out: CachedVersion[] = [];
      for await (const [k, v] of this.db.iterator({ gte: prefix, lt: prefix + '\uffff', reverse: true })) {
        const stored = decodeCommitted(v, k);
        out.unshift({ version: parseRecordKey(k).version, stored, record: committedToRecord(tenant, keyId, parseRecordKey(k).version, stored) });
      }
      return out;
    }
    const hit = this.keyCache.get(id);
    if (hit !== undefined) {
      this.cacheStats.hits++;
      this.keyCache.delete(id); // most recently used goes last
      this.keyCache.set(id, hit);
      return hit;
    }
    this.cacheStats.misses++;
    const inflight = this.keyLoads.get(id);
    if (inflight && !inflight.stale) return inflight.done;
    const token = { stale: false, done: undefined as unknown as Promise<readonly CachedVersion[]> };
    token.done = (async () => {
      const out: CachedVersion[] = [];
      for await (const [k, v] of this.db.iterator({ gte: prefix, lt: prefix + '\uffff' })) {
        const version = parseRecordKey(k).version;
        const stored = freezeStored(decodeCommitted(v, k));
        out.push({ version, stored, record: freezeRecord(committedToRecord(tenant, keyId, version, stored)) });
      }
      return Object.freeze(out);
    })();
    if (this.keyCacheSize > 0) this.keyLoads.set(id, token);
    try {
      const loaded = await token.done;
      if (!token.stale && this.keyCacheSize > 0 && !this.closed) {
        this.keyCache.set(id, loaded);
        while (this.keyCache.size > this.keyCacheSize) this.keyCache.delete(this.keyCache.keys().next().value!);
      }
      return loaded;
    } finally {
      if (this.keyLoads.get(id) === token) this.keyLoads.delete(id);
    }
  }

  /** The frozen record of a cached version, rebuilt if a caller wrote into its bytes. */
  private cachedRecord(c: CachedVersion): KeyRecord {
    if (!recordMatches(c.record, c.stored)) c.record = freezeRecord(committedToRecord(c.record.tenant, c.record.keyId, c.version, c.stored));
    return c.record;
  }

  /** Write a key's records, then drop its cache entry (and spoil any load in flight), whether or not the write succeeded. */
  private async keyWrite<T>(tenant: string, keyId: string, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } finally {
      this.forgetKey(tenant, keyId);
    }
  }

  private forgetKey(tenant: string, keyId: string): void {
    const id = `${tenant}/${keyId}`;
    this.keyCache.delete(id);
    const load = this.keyLoads.get(id);
    if (load) load.stale = true;
    this.keyLoads.delete(id);
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
    ensure(isParty(pkg, this.nodeIndex), ErrorCode.BadInput, `storage: this node (${this.nodeIndex}) is not a holder of the key`);
    const suite = getSuite(pkg.suite);
    ensure(s.value instanceof Uint8Array && s.value.length === suite.group.scalarLength, ErrorCode.BadInput, 'storage: share value has the wrong length');
    // A threshold ECDSA share cannot sign without its pairwise setup; no other suite has one.
    if (suite.kind === 'ecdsa') ensure(s.pairwise instanceof Uint8Array && s.pairwise.length > 0, ErrorCode.BadInput, 'storage: an ECDSA share needs its pairwise setup');
    else ensure(s.pairwise === undefined, ErrorCode.BadInput, `storage: a ${suite.id} share has no pairwise setup`);
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


function checkPackage(p: PublicKeyPackage, code: ErrorCode, what: string): StoredPackage {
  ensure(typeof p === 'object' && p !== null, code, `${what}: expected a public key package`);
  ensure(isSuiteId(p.suite), code, `${what}: unknown suite`);
  ensure(Number.isSafeInteger(p.parties) && p.parties >= 2 && p.parties <= 255, code, `${what}: parties must be 2..255`);
  ensure(Number.isSafeInteger(p.threshold) && p.threshold >= 2 && p.threshold <= p.parties, code, `${what}: threshold must be 2..parties`);
  ensure(Number.isSafeInteger(p.epoch) && p.epoch >= 0 && p.epoch <= 0xffffffff, code, `${what}: epoch must be an integer 0..2^32-1`);
  // The committee, when named: checkPackageCommittee's rules (n strictly ascending node indices, not 1..n).
  try {
    checkPackageCommittee(p, what);
  } catch (e) {
    throw isTesseraError(e) ? new TesseraError(code, e.message) : e;
  }
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
    ...(p.indices !== undefined ? { indices: [...p.indices] } : {}),
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
    ...(s.indices !== undefined ? { indices: [...s.indices] } : {}),
    epoch: s.epoch,
    commitments: s.commitments.map((b) => Uint8Array.from(b)),
    verifyingShares: s.verifyingShares.map((b) => Uint8Array.from(b)),
  };
}

function optionalTimes(s: StoredCommitted): Pick<StoredCommitted, 'rotationPeriodMs' | 'rotatedAt' | 'destroyedAt'> {
  return {
    ...(s.rotationPeriodMs !== undefined ? { rotationPeriodMs: s.rotationPeriodMs } : {}),
    ...(s.rotatedAt !== undefined ? { rotatedAt: s.rotatedAt } : {}),
    ...(s.destroyedAt !== undefined ? { destroyedAt: s.destroyedAt } : {}),
  };
}

/** The sealed share of a committed record; BAD_STATE for a destroyed version's tombstone. */
function sealedOf(s: StoredCommitted, tenant: string, keyId: string, version: number): SealedBox {
  if (s.state === 'destroyed' || s.nonce === undefined || s.ct === undefined) {
    throw new TesseraError(ErrorCode.BadState, `storage: ${tenant}/${keyId} version ${version} is destroyed; its share no longer exists`);
  }
  return { nonce: s.nonce, ct: s.ct };
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
    ...optionalTimes(s),
    ...(s.cs !== undefined ? { certSession: Uint8Array.from(s.cs) } : {}),
    ...(s.cc !== undefined ? { chainCode: Uint8Array.from(s.cc) } : {}),
  };
}

/** The stored chain-code field of a new version: a private copy of 32 bytes, or nothing. */
function chainCodeField(cc: Uint8Array | undefined): { cc?: Uint8Array } {
  if (cc === undefined) return {};
  ensure(cc instanceof Uint8Array && cc.length === 32, ErrorCode.BadInput, 'storage: chainCode must be 32 bytes');
  return { cc: Uint8Array.from(cc) };
}

/** Freeze a record handed out by the cache: the object, its package and the package's arrays (bytes cannot be frozen; cachedRecord checks them). */
function freezeRecord(r: KeyRecord): KeyRecord {
  if (r.publicKey.indices !== undefined) Object.freeze(r.publicKey.indices);
  Object.freeze(r.publicKey.commitments);
  Object.freeze(r.publicKey.verifyingShares);
  Object.freeze(r.publicKey);
  return Object.freeze(r);
}

function freezeStored(s: StoredCommitted): StoredCommitted {
  if (s.indices !== undefined) Object.freeze(s.indices);
  Object.freeze(s.commitments);
  Object.freeze(s.verifyingShares);
  return Object.freeze(s);
}

/** Whether a handed-out record's bytes still equal the cached stored form's. */
function recordMatches(r: KeyRecord, s: StoredCommitted): boolean {
  const same = (a: readonly Uint8Array[], b: readonly Uint8Array[]) => a.length === b.length && a.every((x, i) => equalBytes(x, b[i]!));
  if (!same(r.publicKey.commitments, s.commitments) || !same(r.publicKey.verifyingShares, s.verifyingShares)) return false;
  if (r.chainCode === undefined || s.cc === undefined ? r.chainCode !== s.cc : !equalBytes(r.chainCode, s.cc)) return false;
  if (r.certSession === undefined || s.cs === undefined) return r.certSession === undefined && s.cs === undefined;
  return equalBytes(r.certSession, s.cs);
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

/**
 * The record-MAC key of a closed data dir, for tools and tests that write records as a holder of the KEK
 * would (test/unit/*: records forged with a valid MAC). The caller owns (and wipes) the result.
 */
export async function readRecordMacKey(dataDir: string, kek: Uint8Array | Kek, nodeIndex: number): Promise<Uint8Array> {
  const db = new Level<string, Uint8Array>(storageLocation(dataDir), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  const ownKek = kek instanceof Uint8Array ? new RawKek(kek, 'file') : undefined;
  try {
    return await openMacKey(db, new Sealer(nodeIndex, ownKek ?? (kek as Kek)), nodeIndex);
  } finally {
    ownKek?.close();
    await db.close();
  }
}

/**
 * The data dir's record-MAC key (node/store/record-auth.ts): 32 random bytes made with the data dir and
 * kept in its meta record wrapped under the KEK, like any sealed value (node/store/envelope.ts), so a
 * KEK that stays in a token still keys the MACs, and a KEK rotation re-wraps it with the rest. Read from
 * LevelDB directly (the MAC key is needed to check the meta record's own MAC: ShareStore.checkMeta does
 * that next). A fresh data dir gets its meta record here.
 *
 * Fails with BAD_STATE for another node's data dir or one of an older format, DECRYPTION_FAILED when the
 * KEK does not open it.
 */
async function openMacKey(db: Level<string, Uint8Array>, sealer: Sealer, nodeIndex: number): Promise<Uint8Array> {
  const aad = framed(AAD_MAC_KEY, i2osp(nodeIndex, 1));
  const stored = await db.get(META_KEY);
  if (stored === undefined) {
    const macKey = randomBytes(32);
    const payload = encode({ v: FORMAT, nodeIndex, mk: sealer.seal(macKey, aad) });
    await db.put(META_KEY, sealRecord(macKey, META_KEY, payload), { sync: true });
    return macKey;
  }
  let meta: Record<string, unknown>;
  try {
    meta = decodeMap(stored.subarray(0, Math.max(0, stored.length - RECORD_TAG_LENGTH)), META_KEY);
  } catch {
    throw new TesseraError(ErrorCode.BadState, "storage: the data dir's meta record does not decode: the data dir is damaged or predates authenticated records");
  }
  ensure(
    meta.v === FORMAT,
    ErrorCode.BadState,
    meta.v === 1
      ? 'storage: this data dir has format 1 (before KEK providers); this Tessera cannot open it: replace the node (docs/operations.md, replace-node) to give it a new data dir'
      : `storage: unknown data dir format ${String(meta.v)}`,
  );
  ensure(meta.nodeIndex === nodeIndex, ErrorCode.BadState, `storage: this data dir belongs to node ${String(meta.nodeIndex)}, not node ${nodeIndex}`);
  const mk = meta.mk as Record<string, unknown> | undefined;
  ensure(typeof mk === 'object' && mk !== null && mk.nonce instanceof Uint8Array && mk.ct instanceof Uint8Array, ErrorCode.BadState, "storage: the data dir's meta record is corrupt");
  const box = { nonce: Uint8Array.from(mk.nonce as Uint8Array), ct: Uint8Array.from(mk.ct as Uint8Array) };
  try {
    return sealer.open(box, aad);
  } catch (e) {
    if (e instanceof KekUnavailableError) {
      throw new TesseraError(ErrorCode.DecryptionFailed, `storage: the KEK does not open this data dir: its keys are wrapped under KEK ${e.kid}, and the configured KEK is ${sealer.currentKek.id} (wrong KEK?)`);
    }
    throw new TesseraError(ErrorCode.DecryptionFailed, 'storage: the KEK does not open this data dir (wrong KEK?)');
  }
}

/**
 * Call `fn` on every sealed value ({nonce, ct} with an envelope ct) anywhere in a decoded record: at its
 * top level (key records, pending epochs, secrets), nested (a staged change's effects, the meta record's
 * MAC key). `fn` may replace box.ct.
 */
function forEachSealedBox(v: unknown, fn: (box: SealedBox) => void): void {
  if (Array.isArray(v)) {
    for (const x of v) forEachSealedBox(x, fn);
    return;
  }
  if (typeof v !== 'object' || v === null || v instanceof Uint8Array) return;
  const o = v as Record<string, unknown>;
  if (o.nonce instanceof Uint8Array && o.ct instanceof Uint8Array && sealedKekId(o as unknown as SealedBox) !== undefined) fn(o as unknown as SealedBox);
  for (const [k, x] of Object.entries(o)) if (k !== 'nonce' && k !== 'ct') forEachSealedBox(x, fn);
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
      ...(m.indices !== undefined ? { indices: m.indices as number[] } : {}),
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
  if (m.state === 'disabled') m.state = 'archived'; // the earlier name of the state that allows nothing
  ensure(isKeyState(m.state), ErrorCode.BadMessage, `storage: record ${key} has an unknown state`);
  // A destroyed version is a tombstone: public part only. Every other state has its sealed share.
  let box: Partial<SealedBox> & { v: number };
  if (m.state === 'destroyed') {
    ensure(m.v === FORMAT, ErrorCode.BadMessage, `storage: record ${key} has unknown format ${String(m.v)}`);
    ensure(m.nonce === undefined && m.ct === undefined, ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
    ensure(isTime(m.destroyedAt), ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
    box = { v: FORMAT };
  } else {
    box = decodeSealed(m, key);
  }
  const pkg = decodePackage(m, key);
  ensure(isTime(m.createdAt) && typeof m.exportable === 'boolean', ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
  // Stored periods were checked against the node's minimum when written; here only their shape.
  ensure(m.rotationPeriodMs === undefined || isRotationPeriod(m.rotationPeriodMs, 1), ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
  ensure(m.rotatedAt === undefined || isTime(m.rotatedAt), ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
  ensure(m.destroyedAt === undefined || isTime(m.destroyedAt), ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
  const cs = m.cs === undefined ? undefined : bytesField(m.cs, key);
  ensure(cs === undefined || cs.length === 16, ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
  const cc = m.cc === undefined ? undefined : bytesField(m.cc, key);
  ensure(cc === undefined || cc.length === 32, ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
  return {
    ...pkg,
    ...box,
    state: m.state,
    createdAt: m.createdAt,
    exportable: m.exportable,
    ...optionalTimes(m as unknown as StoredCommitted),
    ...(cs !== undefined ? { cs } : {}),
    ...(cc !== undefined ? { cc } : {}),
  };
}

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function decodePending(raw: Uint8Array, key: string): StoredPending {
  const m = decodeMap(raw, key);
  const box = decodeSealed(m, key);
  const pkg = decodePackage(m, key);
  ensure(typeof m.stagedAt === 'number' && typeof m.exportable === 'boolean', ErrorCode.BadMessage, `storage: record ${key} is corrupt`);
  return { ...pkg, ...box, stagedAt: m.stagedAt, exportable: m.exportable };
}

// ---------------------------------------------------------------------------------------------
// Staged changes: shapes and record keys

/** What identifies a staged change: the statement its votes will sign (core/commit.ts) minus the key. */
export interface StagedChangeHeader {
  readonly session: Uint8Array;
  readonly operation: string;
  /** The version the statement names. */
  readonly version: number;
  readonly resultDigest: Uint8Array;
  /**
   * This node's vote, stored with the staged result in one write (node/sessions/commit.ts), so a crash
   * never leaves a staged change without the vote that will let repair finish it.
   */
  readonly vote?: Uint8Array;
  /**
   * The nodes whose votes its certificate needs: the session's players (node/sessions/commit.ts).
   * Absent on changes staged before committees existed: then every member of the cluster.
   */
  readonly voters?: readonly number[];
}

/** What a node joining a key's committee by a reshare stores besides its share (the dealers' copy of it). */
export interface JoiningKeyMeta {
  readonly exportable: boolean;
  readonly state: Exclude<KeyState, 'destroyed'>;
  readonly createdAt: number;
  readonly rotationPeriodMs?: number;
  readonly chainCode?: Uint8Array;
}

/** One effect of a staged change, applied at commit. */
export type StagedEffect =
  | { readonly kind: 'new-version'; readonly record: NewKeyRecord }
  | { readonly kind: 'new-epoch'; readonly version: number; readonly share: KeyShare }
  | { readonly kind: 'state'; readonly version: number; readonly state: Exclude<KeyState, 'destroyed'>; readonly rotatedAt?: number }
  | { readonly kind: 'destroy'; readonly version: number }
  /**
   * Reshare (issue 13): this node's share of the key's new committee. A node that already holds the
   * version replaces its share and package (threshold and committee may change; the group key may not;
   * epoch + 1). A node joining the committee (`joining`) stores the version anew.
   */
  | { readonly kind: 'reshare'; readonly version: number; readonly share: KeyShare; readonly joining?: JoiningKeyMeta }
  /** Reshare: this node leaves the key's committee; its share and record are erased at commit. */
  | { readonly kind: 'leave'; readonly version: number }
  /**
   * A cluster membership change (core/membership.ts), staged under MEMBERSHIP_TENANT/MEMBERSHIP_KEY_ID
   * with `version` the new epoch: at commit it becomes the node's committed membership.
   */
  | { readonly kind: 'membership'; readonly version: number; readonly membership: Membership };

/** The public view of a staged change. */
export interface StagedChange extends StagedChangeHeader {
  readonly tenant: string;
  readonly keyId: string;
  readonly stagedAt: number;
  /** This node's vote (stored with the staged result). */
  readonly vote?: Uint8Array;
  /** The vote may have left the node: only a certificate resolves the change now. */
  readonly released: boolean;
  readonly effects: readonly { readonly kind: 'new-version' | 'new-epoch' | 'state' | 'destroy' | 'leave' | 'membership'; readonly version: number; readonly epoch?: number; readonly state?: KeyState }[];
}

type StoredEffect =
  | { kind: 'put'; version: number; record: StoredCommitted }
  | { kind: 'epoch'; version: number; record: StoredPending; reshare?: boolean }
  | { kind: 'state'; version: number; state: KeyState; rotatedAt?: number }
  | { kind: 'destroy'; version: number; destroyedAt: number }
  | { kind: 'leave'; version: number }
  | { kind: 'membership'; version: number; membership: Uint8Array };

interface StoredStaged {
  v: number;
  session: Uint8Array;
  operation: string;
  version: number;
  resultDigest: Uint8Array;
  stagedAt: number;
  vote?: Uint8Array;
  released?: boolean;
  voters?: number[];
  effects: StoredEffect[];
}

/**
 * The node's committed cluster membership (core/membership.ts): `u/current`, and one `u/h-<epoch>` per
 * committed change with its certificate (what the coordinator and lagging peers are handed). Written only
 * with a membership change's certificate, in the batch that commits it.
 */
const MEMBERSHIP_CURRENT_KEY = 'u/current';
const MEMBERSHIP_HISTORY_PREFIX = 'u/h-';

function membershipOps(membership: Uint8Array, certificate: Uint8Array, committedAt: number): { type: 'put'; key: string; value: Uint8Array }[] {
  const m = decodeMembership(membership);
  return [
    { type: 'put', key: MEMBERSHIP_CURRENT_KEY, value: encode({ v: FORMAT, membership: Uint8Array.from(membership) }) },
    {
      type: 'put',
      key: `${MEMBERSHIP_HISTORY_PREFIX}${String(m.epoch).padStart(10, '0')}`,
      value: encode({ v: FORMAT, membership: Uint8Array.from(membership), cert: Uint8Array.from(certificate), committedAt }),
    },
  ];
}

export function stagedRecordKey(tenant: string, keyId: string): string {
  return `g/${checkId(tenant, 'tenant')}/${checkId(keyId, 'keyId')}`;
}

export function certificateRecordKey(tenant: string, keyId: string, session: Uint8Array): string {
  ensure(session instanceof Uint8Array && session.length === 16, ErrorCode.BadInput, 'storage: session id must be 16 bytes');
  return `c/${checkId(tenant, 'tenant')}/${checkId(keyId, 'keyId')}/${hexOf(session)}`;
}

function eraseMarkerKey(tenant: string, keyId: string): string {
  return `e/${checkId(tenant, 'tenant')}/${checkId(keyId, 'keyId')}`;
}

function hexOf(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function fromHexKey(hex: string, key: string): Uint8Array {
  ensure(/^[0-9a-f]{32}$/.test(hex), ErrorCode.BadMessage, `storage: malformed record key ${key.slice(0, 300)}`);
  return Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
}

function parseKeyScopedKey(k: string, prefix: 'g' | 'e'): { tenant: string; keyId: string } {
  const m = new RegExp(`^${prefix}/([^/]+)/([^/]+)$`).exec(k);
  if (!m) throw new TesseraError(ErrorCode.BadMessage, `storage: malformed record key ${k.slice(0, 300)}`);
  return { tenant: m[1]!, keyId: m[2]! };
}

function checkStagedHeader(h: StagedChangeHeader): void {
  ensure(h.session instanceof Uint8Array && h.session.length === 16, ErrorCode.BadInput, 'storage: session id must be 16 bytes');
  ensure(typeof h.operation === 'string' && /^[a-z]{1,32}$/.test(h.operation), ErrorCode.BadInput, 'storage: bad operation');
  versionPart(h.version);
  ensure(h.resultDigest instanceof Uint8Array && h.resultDigest.length === 32, ErrorCode.BadInput, 'storage: result digest must be 32 bytes');
  if (h.voters !== undefined) decodeVoters(h.voters, 'storage: voters must be ascending node indices 1..255');
}

function stagedConflict(keyId: string, s: StoredStaged): TesseraError {
  return new TesseraError(
    ErrorCode.BadState,
    `key ${keyId} has an uncommitted ${s.operation} (session ${hexOf(s.session)}) on this node; run \`tessera repair --key-id ${keyId}\``,
  );
}

function stagedToInfo(tenant: string, keyId: string, s: StoredStaged): StagedChange {
  return {
    tenant,
    keyId,
    session: Uint8Array.from(s.session),
    operation: s.operation,
    version: s.version,
    resultDigest: Uint8Array.from(s.resultDigest),
    stagedAt: s.stagedAt,
    ...(s.vote ? { vote: Uint8Array.from(s.vote) } : {}),
    ...(s.voters ? { voters: [...s.voters] } : {}),
    released: s.released === true,
    effects: s.effects.map((e) =>
      e.kind === 'put'
        ? { kind: 'new-version' as const, version: e.version, epoch: e.record.epoch }
        : e.kind === 'epoch'
          ? { kind: 'new-epoch' as const, version: e.version, epoch: e.record.epoch }
          : e.kind === 'state'
            ? { kind: 'state' as const, version: e.version, state: e.state }
            : e.kind === 'leave' || e.kind === 'membership'
              ? { kind: e.kind, version: e.version }
              : { kind: 'destroy' as const, version: e.version, state: 'destroyed' as const },
    ),
  };
}

function decodeStaged(raw: Uint8Array, key: string): StoredStaged {
  const m = decodeMap(raw, key);
  const corrupt = `storage: record ${key} is corrupt`;
  ensure(m.v === FORMAT, ErrorCode.BadMessage, `storage: record ${key} has unknown format ${String(m.v)}`);
  ensure(typeof m.operation === 'string' && isTime(m.stagedAt) && Number.isSafeInteger(m.version), ErrorCode.BadMessage, corrupt);
  ensure(Array.isArray(m.effects) && m.effects.length >= 1 && m.effects.length <= 4, ErrorCode.BadMessage, corrupt);
  const effects: StoredEffect[] = (m.effects as unknown[]).map((x) => {
    ensure(typeof x === 'object' && x !== null && !Array.isArray(x), ErrorCode.BadMessage, corrupt);
    const e = x as Record<string, unknown>;
    ensure(Number.isSafeInteger(e.version) && (e.version as number) >= 1, ErrorCode.BadMessage, corrupt);
    const version = e.version as number;
    switch (e.kind) {
      case 'put':
        ensure(typeof e.record === 'object' && e.record !== null, ErrorCode.BadMessage, corrupt);
        return { kind: 'put', version, record: decodeCommitted(encode(e.record), key) };
      case 'epoch':
        ensure(typeof e.record === 'object' && e.record !== null, ErrorCode.BadMessage, corrupt);
        ensure(e.reshare === undefined || e.reshare === true, ErrorCode.BadMessage, corrupt);
        return { kind: 'epoch', version, record: decodePending(encode(e.record), key), ...(e.reshare === true ? { reshare: true } : {}) };
      case 'state':
        ensure(isKeyState(e.state) && e.state !== 'destroyed', ErrorCode.BadMessage, corrupt);
        ensure(e.rotatedAt === undefined || isTime(e.rotatedAt), ErrorCode.BadMessage, corrupt);
        return { kind: 'state', version, state: e.state, ...(e.rotatedAt !== undefined ? { rotatedAt: e.rotatedAt as number } : {}) };
      case 'destroy':
        ensure(isTime(e.destroyedAt), ErrorCode.BadMessage, corrupt);
        return { kind: 'destroy', version, destroyedAt: e.destroyedAt as number };
      case 'leave':
        return { kind: 'leave', version };
      case 'membership':
        ensure(e.membership instanceof Uint8Array, ErrorCode.BadMessage, corrupt);
        ensure(decodeMembership(e.membership).epoch === version, ErrorCode.BadMessage, corrupt);
        return { kind: 'membership', version, membership: Uint8Array.from(e.membership) };
      default:
        throw new TesseraError(ErrorCode.BadMessage, corrupt);
    }
  });
  const session = bytesField(m.session, key);
  const resultDigest = bytesField(m.resultDigest, key);
  ensure(session.length === 16 && resultDigest.length === 32, ErrorCode.BadMessage, corrupt);
  return {
    v: FORMAT,
    session,
    operation: m.operation,
    version: m.version as number,
    resultDigest,
    stagedAt: m.stagedAt as number,
    ...(m.vote !== undefined ? { vote: bytesField(m.vote, key) } : {}),
    ...(m.released === true ? { released: true } : {}),
    ...(m.voters !== undefined ? { voters: decodeVoters(m.voters, corrupt) } : {}),
    effects,
  };
}

function decodeVoters(v: unknown, corrupt: string): number[] {
  ensure(Array.isArray(v) && v.length >= 1 && v.length <= 255, ErrorCode.BadMessage, corrupt);
  const list = v as unknown[];
  ensure(list.every((i, k) => Number.isSafeInteger(i) && (i as number) >= 1 && (i as number) <= 255 && (k === 0 || (list[k - 1] as number) < (i as number))), ErrorCode.BadMessage, corrupt);
  return list as number[];
}
