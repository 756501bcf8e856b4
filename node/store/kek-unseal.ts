/**
 * The shamir-unseal KEK provider (issue 15, Vault style): the node's KEK exists only in memory, after K of
 * the N operator shares it was split into have been submitted. This file holds what does not depend on
 * HTTP: the split (GF(256) Shamir of the audited `shamir-secret-sharing` library, never our own), each
 * share's check value, the public metadata file, the collection of submitted shares, and the durable log
 * of unseal attempts.
 *
 * `<dataDir>/unseal.json` (mode 0600, written atomically with fsync; readable while sealed) holds nothing
 * secret: format, node index, threshold K, share count N, one check value per share, the KEK's public id
 * (RawKek.id, itself an HKDF key check value of the KEK) and the creation time.
 *
 * A share is the library's encoding: 32 bytes of polynomial values followed by its x coordinate (33 bytes).
 * Its check value is SHA-256 over a label, the node index, the share's index (1..N) and the share, so a
 * share submitted as share i of node n that is not the one made as share i of node n is named at once.
 *
 * What "K-1 shares reveal nothing" means here: the K-1 shares alone are consistent with every KEK (Shamir
 * over GF(256), byte by byte; test/unit/kek-unseal.test.ts shows every byte value reachable). With
 * unseal.json beside them the KEK is still hidden only computationally: the check values and the KEK id
 * are hashes that pin it, and finding it from them means searching 2^256 values.
 */
import { closeSync, constants, fsyncSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { combine, split } from 'shamir-secret-sharing';
import { equalBytes, framed, fromHex, i2osp, toHex, utf8ToBytes, zeroize } from '../../core/bytes.js';
import { ErrorCode, TesseraError, ensure } from '../../core/errors.js';
import { UNSEAL_SHARE_LENGTH } from '../../core/unseal.js';
import { KEK_LENGTH, RawKek, type Kek } from './kek.js';
import type { KekRotationSteps } from './kek-rotation.js';

export const UNSEAL_FILE = 'unseal.json';
export const UNSEAL_ATTEMPTS_FILE = 'unseal-attempts.jsonl';
export const UNSEAL_FORMAT = 1;
export { UNSEAL_SHARE_LENGTH };
export const MAX_UNSEAL_SHARES = 255;
const CHECK_LABEL = utf8ToBytes('tessera/unseal/share-check/v1');

/** The public unseal metadata of one node (unseal.json). */
export interface UnsealMetadata {
  readonly format: typeof UNSEAL_FORMAT;
  readonly node: number;
  readonly threshold: number;
  readonly shares: number;
  /** Hex SHA-256 check value of share i at [i - 1]. */
  readonly checkValues: readonly string[];
  /** The public id (RawKek.id) of the KEK the shares combine to. */
  readonly keyCheckValue: string;
  readonly createdAt: number;
}

/** The check value of share `shareIndex` (1..N) of node `node`: lowercase hex SHA-256. */
export function shareCheckValue(node: number, shareIndex: number, share: Uint8Array): string {
  return toHex(sha256(framed(CHECK_LABEL, i2osp(node, 1), i2osp(shareIndex, 1), share)));
}

export function checkUnsealParameters(threshold: unknown, shares: unknown): void {
  ensure(Number.isSafeInteger(threshold) && (threshold as number) >= 2 && (threshold as number) <= MAX_UNSEAL_SHARES, ErrorCode.BadInput, `threshold: expected an integer from 2 to ${MAX_UNSEAL_SHARES}`);
  ensure(Number.isSafeInteger(shares) && (shares as number) >= 2 && (shares as number) <= MAX_UNSEAL_SHARES, ErrorCode.BadInput, `shares: expected an integer from 2 to ${MAX_UNSEAL_SHARES}`);
  ensure((threshold as number) <= (shares as number), ErrorCode.BadInput, `threshold ${String(threshold)} is more than the ${String(shares)} shares`);
}

/**
 * A new random KEK for `node`, split K-of-N. The caller owns `kek` and `shares` (share i at [i - 1]) and
 * zeroizes them; `metadata` is public.
 */
export async function makeUnsealKek(node: number, threshold: number, count: number, now = Date.now()): Promise<{ kek: Uint8Array; shares: Uint8Array[]; metadata: UnsealMetadata }> {
  return splitUnsealKek(node, randomBytes(KEK_LENGTH), threshold, count, now);
}

/**
 * Split the given KEK (32 bytes; it becomes the caller's result `kek`) K-of-N into fresh shares with their
 * check values: a new initialisation's KEK, or the next KEK of a rotation split again (prepareUnsealRotation).
 */
async function splitUnsealKek(node: number, kek: Uint8Array, threshold: number, count: number, now: number): Promise<{ kek: Uint8Array; shares: Uint8Array[]; metadata: UnsealMetadata }> {
  ensure(Number.isSafeInteger(node) && node >= 1 && node <= 255, ErrorCode.BadInput, 'node: expected an index from 1 to 255');
  checkUnsealParameters(threshold, count);
  ensure(kek.length === KEK_LENGTH, ErrorCode.BadInput, `kek: expected ${KEK_LENGTH} bytes`);
  const shares = await split(kek, count, threshold);
  const raw = new RawKek(kek, 'shamir-unseal');
  raw.close();
  return {
    kek,
    shares,
    metadata: {
      format: UNSEAL_FORMAT,
      node,
      threshold,
      shares: count,
      checkValues: shares.map((s, i) => shareCheckValue(node, i + 1, s)),
      keyCheckValue: raw.id,
      createdAt: now,
    },
  };
}

/** unseal.json of `dataDir`, checked field by field; undefined when there is none (the node is not initialised). */
export function readUnsealMetadata(dataDir: string): UnsealMetadata | undefined {
  const read = readJsonObject(join(dataDir, UNSEAL_FILE));
  return read && parseUnsealMetadata(read.path, read.o, []);
}

/** The JSON object in `path`; undefined when there is no such file. UNAVAILABLE naming the file otherwise. */
function readJsonObject(path: string): { path: string; o: Record<string, unknown> } | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TesseraError(ErrorCode.Unavailable, `${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new TesseraError(ErrorCode.Unavailable, `${path}: is not valid JSON`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new TesseraError(ErrorCode.Unavailable, `${path}: expected a JSON object`);
  return { path, o };
}

/** The metadata fields of `o` checked one by one (`extra` names the other fields the file may have). */
function parseUnsealMetadata(path: string, o: Record<string, unknown>, extra: readonly string[]): UnsealMetadata {
  const bad = (why: string) => new TesseraError(ErrorCode.Unavailable, `${path}: ${why}`);
  const known = ['format', 'node', 'threshold', 'shares', 'checkValues', 'keyCheckValue', 'createdAt', ...extra];
  for (const k of Object.keys(o)) if (!known.includes(k)) throw bad(`unknown field ${JSON.stringify(k.slice(0, 40))}`);
  if (o.format !== UNSEAL_FORMAT) throw bad(`format must be ${UNSEAL_FORMAT}`);
  if (!Number.isSafeInteger(o.node) || (o.node as number) < 1 || (o.node as number) > 255) throw bad('node must be an index from 1 to 255');
  try {
    checkUnsealParameters(o.threshold, o.shares);
  } catch (e) {
    throw bad((e as Error).message);
  }
  const checkValues = o.checkValues;
  if (!Array.isArray(checkValues) || checkValues.length !== o.shares || !checkValues.every((c) => typeof c === 'string' && /^[0-9a-f]{64}$/.test(c))) {
    throw bad('checkValues must be one 32-byte lowercase hex value per share');
  }
  if (new Set(checkValues).size !== checkValues.length) throw bad('checkValues has a duplicate');
  if (typeof o.keyCheckValue !== 'string' || !/^k-[0-9a-f]{16}$/.test(o.keyCheckValue)) throw bad('keyCheckValue must be a KEK id (k- and 16 hex digits)');
  if (!Number.isSafeInteger(o.createdAt) || (o.createdAt as number) < 0) throw bad('createdAt must be a time in milliseconds');
  return {
    format: UNSEAL_FORMAT,
    node: o.node as number,
    threshold: o.threshold as number,
    shares: o.shares as number,
    checkValues: [...(checkValues as string[])],
    keyCheckValue: o.keyCheckValue,
    createdAt: o.createdAt as number,
  };
}

/**
 * Write `data` to `path` atomically: a temp file (mode 0600, fsynced) renamed over it, then the directory
 * fsynced, so a crash leaves the old file or the new one, never a torn one.
 */
function writeFileAtomic(path: string, data: string, exclusive: boolean): void {
  const tmp = `${path}.${toHex(randomBytes(6))}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (exclusive) {
    // Never replace the metadata of shares already handed out: their KEK would be lost with it. link()
    // fails if the name exists, atomically.
    try {
      linkSync(tmp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new TesseraError(ErrorCode.AlreadyExists, `${path} already exists: this node is initialised`);
      throw e;
    } finally {
      unlinkSync(tmp);
    }
  } else {
    renameSync(tmp, path);
  }
  fsyncDir(dirname(path));
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeUnsealMetadata(dataDir: string, metadata: UnsealMetadata): void {
  writeFileAtomic(join(dataDir, UNSEAL_FILE), JSON.stringify(metadata, null, 2) + '\n', true);
}

// ---- KEK rotation of a shamir-unseal node (issue 15 item 2; the steps: node/store/kek-rotation.ts)
//
// Phase 1, prepare (prepareUnsealRotation, POST /v1/admin/kek/rotate/prepare on the unsealed node): a new
// KEK is made and split into new operator shares, and <dataDir>/unseal-next.json is written (atomically,
// fsynced): the new metadata plus the new KEK WRAPPED UNDER THE CURRENT ONE. unseal.json is untouched, so
// until the rotation ends the old shares still unseal the node, and the KEK they rebuild opens the next
// one. Prepared again before phase 2, the same next KEK is split into fresh shares (a lost answer is
// recoverable); its old shares stop matching.
// Phase 2 is rotateKek with shamirRotationSteps: prepareNext marks unseal-next.json `rotationBegun` (the
// operators hold the new shares: they called phase 2 after phase 1 answered) before any record moves, and
// retire replaces unseal.json by the new metadata, then removes unseal-next.json.
// A node that restarts mid-rotation is sealed; the OLD shares unseal it, and node/sealed.ts also opens the
// next KEK from unseal-next.json (only once the rotation has begun), so the start finishes the rotation
// (resumeKekRotation). A prepared rotation that never began is not finished at start: its shares may never
// have reached the operators. After retire, unseal.json is the new one: only the new shares unseal.

export const UNSEAL_NEXT_FILE = 'unseal-next.json';
const NEXT_KEK_LABEL = utf8ToBytes('tessera/unseal/next-kek/v1');

/** unseal-next.json: the next KEK's public metadata, the next KEK wrapped under the current one, and whether phase 2 began. */
export interface UnsealNextMetadata extends UnsealMetadata {
  /** The next KEK (32 bytes) wrapped by the current KEK's wrapKey (hex), bound to NEXT_KEK_LABEL, the node and the next KEK's id. */
  readonly wrappedKek: string;
  /** The id of the KEK that wrapped it: the node's KEK when it was prepared. */
  readonly wrappedUnder: string;
  /** True once phase 2 (rotateKek) began: from then on a restart finishes the rotation. */
  readonly rotationBegun: boolean;
}

function nextKekAad(node: number, nextId: string): Uint8Array {
  return framed(NEXT_KEK_LABEL, i2osp(node, 1), utf8ToBytes(nextId));
}

/** unseal-next.json of `dataDir`, checked field by field; undefined when no rotation is prepared. */
export function readUnsealNext(dataDir: string): UnsealNextMetadata | undefined {
  const read = readJsonObject(join(dataDir, UNSEAL_NEXT_FILE));
  if (!read) return undefined;
  const { path, o } = read;
  const m = parseUnsealMetadata(path, o, ['wrappedKek', 'wrappedUnder', 'rotationBegun']);
  const bad = (why: string) => new TesseraError(ErrorCode.Unavailable, `${path}: ${why}`);
  // RawKek.wrapKey's form: a 12-byte nonce, the 32-byte key, a 16-byte tag.
  if (typeof o.wrappedKek !== 'string' || !/^[0-9a-f]{120}$/.test(o.wrappedKek)) throw bad('wrappedKek must be 60 bytes as lowercase hex');
  if (typeof o.wrappedUnder !== 'string' || !/^k-[0-9a-f]{16}$/.test(o.wrappedUnder)) throw bad('wrappedUnder must be a KEK id (k- and 16 hex digits)');
  if (typeof o.rotationBegun !== 'boolean') throw bad('rotationBegun must be true or false');
  if (o.wrappedUnder === m.keyCheckValue) throw bad('the next KEK is wrapped under itself');
  return { ...m, wrappedKek: o.wrappedKek, wrappedUnder: o.wrappedUnder, rotationBegun: o.rotationBegun };
}

function writeUnsealNext(dataDir: string, next: UnsealNextMetadata): void {
  writeFileAtomic(join(dataDir, UNSEAL_NEXT_FILE), JSON.stringify(next, null, 2) + '\n', false);
}

/**
 * The next KEK's bytes (the caller's, to wipe), unwrapped from unseal-next.json with `current`. BAD_STATE
 * when `current` is not the KEK that wrapped it, or it does not unwrap to the KEK its metadata names.
 */
export function unwrapNextKek(next: UnsealNextMetadata, current: Kek): Uint8Array {
  ensure(current.id === next.wrappedUnder, ErrorCode.BadState, `${UNSEAL_NEXT_FILE}: the next KEK is wrapped under KEK ${next.wrappedUnder}, not under this node's KEK ${current.id}`);
  let bytes: Uint8Array;
  try {
    bytes = current.unwrapKey(fromHex(next.wrappedKek, 'wrappedKek'), nextKekAad(next.node, next.keyCheckValue));
  } catch {
    throw new TesseraError(ErrorCode.BadState, `${UNSEAL_NEXT_FILE}: the next KEK does not unwrap under KEK ${current.id} (the file was altered)`);
  }
  const raw = new RawKek(bytes, 'shamir-unseal');
  raw.close();
  if (bytes.length !== KEK_LENGTH || raw.id !== next.keyCheckValue) {
    zeroize(bytes);
    throw new TesseraError(ErrorCode.BadState, `${UNSEAL_NEXT_FILE}: the wrapped KEK is not KEK ${next.keyCheckValue}`);
  }
  return bytes;
}

/**
 * Phase 1 of a rotation: split the next KEK into new shares and write unseal-next.json (see above). The
 * next KEK is new, or the one an earlier prepare made (split again). `current` is the node's KEK now.
 * K and N default to unseal.json's. The caller owns `shares` (zeroizes them); `metadata` is public.
 * BAD_STATE once phase 2 has begun: its shares are out, and splitting again would orphan them.
 */
export async function prepareUnsealRotation(
  dataDir: string,
  current: Kek,
  o: { threshold?: number; shares?: number; now?: number } = {},
): Promise<{ shares: Uint8Array[]; metadata: UnsealMetadata; resplit: boolean }> {
  const meta = readUnsealMetadata(dataDir);
  ensure(meta !== undefined, ErrorCode.BadState, `${dataDir} has no ${UNSEAL_FILE}: this is not an initialised shamir-unseal node`);
  ensure(current.id === meta.keyCheckValue, ErrorCode.BadState, `this node's KEK is ${current.id}, not ${meta.keyCheckValue} as ${UNSEAL_FILE} names: a rotation is unfinished; finish it (\`tessera kek rotate --finish\`)`);
  const threshold = o.threshold ?? meta.threshold;
  const count = o.shares ?? meta.shares;
  checkUnsealParameters(threshold, count);
  const prior = readUnsealNext(dataDir);
  ensure(
    !prior?.rotationBegun,
    ErrorCode.BadState,
    `the rotation to KEK ${prior?.keyCheckValue} has begun: its shares are the ones the prepare before it answered; finish it (\`tessera kek rotate --node ${meta.node} --finish\`)`,
  );
  // A prepared next KEK wrapped under another KEK is stale (not from this KEK's time): a new one replaces it.
  const kek = prior && prior.wrappedUnder === current.id ? unwrapNextKek(prior, current) : randomBytes(KEK_LENGTH);
  const made = await splitUnsealKek(meta.node, kek, threshold, count, o.now ?? Date.now());
  try {
    const wrapped = current.wrapKey(made.kek, nextKekAad(meta.node, made.metadata.keyCheckValue));
    writeUnsealNext(dataDir, { ...made.metadata, wrappedKek: toHex(wrapped), wrappedUnder: current.id, rotationBegun: false });
  } catch (e) {
    zeroize(...made.shares);
    throw e;
  } finally {
    zeroize(made.kek);
  }
  return { shares: made.shares, metadata: made.metadata, resplit: prior !== undefined && prior.wrappedUnder === current.id };
}

/**
 * The next KEK a sealed node opens beside the one its shares rebuilt (node/sealed.ts): the prepared one,
 * when phase 2 began and has not retired it yet; else undefined. The caller closes it.
 */
export function openBegunNextKek(dataDir: string, current: Kek): RawKek | undefined {
  const next = readUnsealNext(dataDir);
  // Not begun: no record is under it, and its shares may never have reached the operators.
  // Its id is the current KEK's: retire replaced unseal.json and crashed before removing this file.
  if (!next || !next.rotationBegun || next.keyCheckValue === current.id) return undefined;
  const bytes = unwrapNextKek(next, current);
  try {
    return new RawKek(bytes, 'shamir-unseal');
  } finally {
    zeroize(bytes);
  }
}

/** Phase 2's provider half (node/store/kek-rotation.ts KekRotationSteps) for a shamir-unseal node. */
export function shamirRotationSteps(dataDir: string, current: Kek): KekRotationSteps {
  return {
    async prepareNext() {
      const next = readUnsealNext(dataDir);
      ensure(next !== undefined, ErrorCode.BadState, 'no new operator shares are prepared: run prepare first (`tessera kek rotate --out DIR` does both)');
      const bytes = unwrapNextKek(next, current);
      try {
        // Durable before any record moves: from here on a restart finishes the rotation.
        if (!next.rotationBegun) writeUnsealNext(dataDir, { ...next, rotationBegun: true });
        return new RawKek(bytes, 'shamir-unseal');
      } finally {
        zeroize(bytes);
      }
    },
    async retire() {
      const next = readUnsealNext(dataDir);
      if (!next) return; // done before a crash
      const { wrappedKek: _w, wrappedUnder: _u, rotationBegun: _b, ...metadata } = next;
      // unseal.json first (atomic rename): a crash before the removal below leaves both naming the new KEK.
      writeFileAtomic(join(dataDir, UNSEAL_FILE), JSON.stringify(metadata, null, 2) + '\n', false);
      unlinkSync(join(dataDir, UNSEAL_NEXT_FILE));
      fsyncDir(dataDir);
    },
  };
}

/**
 * The shares submitted to a sealed node so far (in memory only; wiped on completion, seal or restart).
 * submit() checks each share against unseal.json before keeping it: a share whose check value does not
 * match is refused and named, a share index given twice is refused, and the K-th share combines them.
 */
export class UnsealShares {
  private readonly held = new Map<number, Uint8Array>();

  constructor(readonly metadata: UnsealMetadata) {}

  get progress(): number {
    return this.held.size;
  }

  /**
   * Take share `shareIndex` (hex of UNSEAL_SHARE_LENGTH bytes). Returns the KEK bytes (the caller's, to
   * wipe) once K valid shares are in and they combine to the KEK unseal.json names; else undefined.
   * Throws BAD_INPUT naming the share when it is malformed, a duplicate or does not match its check value.
   */
  async submit(shareIndex: unknown, shareHex: unknown): Promise<Uint8Array | undefined> {
    const m = this.metadata;
    ensure(Number.isSafeInteger(shareIndex) && (shareIndex as number) >= 1 && (shareIndex as number) <= m.shares, ErrorCode.BadInput, `shareIndex: expected an integer from 1 to ${m.shares} (this node was split into ${m.shares} shares)`);
    const i = shareIndex as number;
    ensure(typeof shareHex === 'string' && /^[0-9a-fA-F]*$/.test(shareHex) && shareHex.length === 2 * UNSEAL_SHARE_LENGTH, ErrorCode.BadInput, `share ${i}: expected ${UNSEAL_SHARE_LENGTH} bytes as hex`);
    ensure(!this.held.has(i), ErrorCode.BadInput, `share ${i} was already submitted (${this.held.size} of ${m.threshold} in)`);
    const share = fromHex(shareHex, `share ${i}`, UNSEAL_SHARE_LENGTH);
    if (!equalBytes(utf8ToBytes(shareCheckValue(m.node, i, share)), utf8ToBytes(m.checkValues[i - 1]!))) {
      zeroize(share);
      throw new TesseraError(ErrorCode.BadInput, `share ${i} does not match its check value (a tampered share, or one made for another node or another initialisation)`);
    }
    this.held.set(i, share);
    if (this.held.size < m.threshold) return undefined;
    const shares = [...this.held.values()];
    this.held.clear();
    let kek: Uint8Array;
    try {
      kek = await combine(shares);
    } finally {
      zeroize(...shares);
    }
    const raw = new RawKek(kek, 'shamir-unseal');
    raw.close();
    if (raw.id !== m.keyCheckValue) {
      zeroize(kek);
      throw new TesseraError(ErrorCode.BadInput, `the ${m.threshold} shares combine to KEK ${raw.id}, not ${m.keyCheckValue} as ${UNSEAL_FILE} names: ${UNSEAL_FILE} does not belong to these shares`);
    }
    return kek;
  }

  /** Forget every share submitted so far. */
  wipe(): void {
    zeroize(...this.held.values());
    this.held.clear();
  }
}

/** One unseal attempt as recorded before the store (and its audit log) can be opened. Never share bytes. */
export interface UnsealAttempt {
  readonly time: number;
  /** The API key id that asked. */
  readonly actor: string;
  readonly operation: 'node.unseal-init' | 'node.unseal' | 'node.seal';
  readonly outcome: 'ok' | 'denied' | 'failed';
  /** Short words: which share, the progress, or why it was refused. */
  readonly reason: string;
}

/** Append one attempt to `<dataDir>/unseal-attempts.jsonl` and fsync it before answering. */
export function recordUnsealAttempt(dataDir: string, attempt: UnsealAttempt): void {
  const line = JSON.stringify({ time: attempt.time, actor: attempt.actor, operation: attempt.operation, outcome: attempt.outcome, reason: attempt.reason.slice(0, 180) }) + '\n';
  const fd = openSync(join(dataDir, UNSEAL_ATTEMPTS_FILE), constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, line);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The attempts recorded and not yet copied into the audit log (a torn last line is skipped). */
export function readUnsealAttempts(dataDir: string): UnsealAttempt[] {
  let text: string;
  try {
    text = readFileSync(join(dataDir, UNSEAL_ATTEMPTS_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: UnsealAttempt[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const a = JSON.parse(line) as UnsealAttempt;
      if (Number.isSafeInteger(a.time) && typeof a.actor === 'string' && typeof a.reason === 'string' && ['node.unseal-init', 'node.unseal', 'node.seal'].includes(a.operation) && ['ok', 'denied', 'failed'].includes(a.outcome)) {
        out.push(a);
      }
    } catch {
      /* a torn line from a crash mid-append */
    }
  }
  return out;
}

/** Empty the attempts file once its attempts are in the audit log. */
export function clearUnsealAttempts(dataDir: string): void {
  writeFileAtomic(join(dataDir, UNSEAL_ATTEMPTS_FILE), '', false);
}
