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
import { KEK_LENGTH, RawKek } from './kek.js';

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
  ensure(Number.isSafeInteger(node) && node >= 1 && node <= 255, ErrorCode.BadInput, 'node: expected an index from 1 to 255');
  checkUnsealParameters(threshold, count);
  const kek = randomBytes(KEK_LENGTH);
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
  const path = join(dataDir, UNSEAL_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TesseraError(ErrorCode.Unavailable, `${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const bad = (why: string) => new TesseraError(ErrorCode.Unavailable, `${path}: ${why}`);
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw bad('is not valid JSON');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw bad('expected a JSON object');
  const known = ['format', 'node', 'threshold', 'shares', 'checkValues', 'keyCheckValue', 'createdAt'];
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
  return o as unknown as UnsealMetadata;
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
