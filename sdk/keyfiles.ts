/**
 * The small JSON file formats the CLI reads and writes for moving keys (bytes are lowercase hex):
 *
 *   wrapping key, public part (FILE.pub):   { "kem": "ml-kem-768" | "x-wing", "publicKey": "…" }
 *   wrapping key pair (FILE, mode 0600):    { "kem": …, "publicKey": "…", "privateKey": "…" }
 *   import keys (`tessera import-key --json`): { "threshold": 3, "parties": 5,
 *                                               "importKeys": [ { "index": 1, "kem": "ml-kem-768", "publicKey": "…" }, … ] }
 *     threshold and parties name the destination cluster's size (an export to a cluster of another size
 *     deals the key for it); a file without them (older versions, or `--node N`) means the source's size.
 *   external private key (split-and-wrap):  32 raw bytes, or 64 hex characters
 *
 * `privateKey` is core/wrap.ts's serialized private key (the 64-byte ML-KEM seed d || z, or the
 * 32-byte X-Wing seed). Every reader checks the shape and the lengths and fails with one line
 * naming the file; a private key file that other users can read is refused.
 */
import { closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { fromHex, toHex } from '../core/bytes.js';
import { ErrorCode, TesseraError } from '../core/errors.js';
import { wrappingKeyFingerprint } from '../core/bundle.js';
import { isWrapKem, WRAP_KEMS, wrapKemSizes, type WrapKem, type WrappingKeyPair } from '../core/wrap.js';

export interface WrappingKeyFileJson {
  kem: WrapKem;
  publicKey: string;
  privateKey?: string;
}

export interface ImportKeyJson {
  index: number;
  kem: WrapKem;
  publicKey: string;
}

export interface ImportKeysFileJson {
  /** The destination's threshold t (absent in older files: the source's). */
  threshold?: number;
  /** The destination's node count n (absent in older files: the source's); with it, importKeys lists nodes 1..n. */
  parties?: number;
  importKeys: ImportKeyJson[];
}

/** An import-keys file as read: node i's key at [i - 1], and the destination's size when the file names it. */
export interface ImportKeysFile {
  readonly keys: Uint8Array[];
  readonly destination?: { readonly threshold: number; readonly parties: number };
}

function bad(path: string, why: string): TesseraError {
  return new TesseraError(ErrorCode.BadInput, `${path}: ${why}`);
}

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw bad(path, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'cannot be read');
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw bad(path, 'is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(path, 'expected a JSON object');
  return v as Record<string, unknown>;
}

function only(path: string, o: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw bad(path, `unknown field ${JSON.stringify(k.slice(0, 40))}`);
}

function kemField(path: string, v: unknown): WrapKem {
  if (!isWrapKem(v)) throw bad(path, `kem must be one of ${WRAP_KEMS.join(', ')}`);
  return v;
}

function keyBytes(path: string, field: string, v: unknown, length: number): Uint8Array {
  if (typeof v !== 'string' || v.length !== 2 * length) throw bad(path, `${field} must be ${length} bytes of hex`);
  return fromHex(v, `${path}: ${field}`, length);
}

/** A wrapping public key from a public key file or a key pair file. */
export function readWrappingPublicKey(path: string): { kem: WrapKem; publicKey: Uint8Array } {
  const o = readJson(path);
  only(path, o, ['kem', 'publicKey', 'privateKey']);
  const kem = kemField(path, o.kem);
  return { kem, publicKey: keyBytes(path, 'publicKey', o.publicKey, wrapKemSizes(kem).publicKeyLength) };
}

/** A wrapping key pair file (must not be readable by other users). The caller zeroizes privateKey. */
export function readWrappingKeyPair(path: string): WrappingKeyPair {
  const o = readJson(path);
  only(path, o, ['kem', 'publicKey', 'privateKey']);
  if (o.privateKey === undefined) throw bad(path, 'has no privateKey (is this the .pub file?)');
  if ((statSync(path).mode & 0o077) !== 0) {
    throw bad(path, `private key file is readable by other users (mode ${(statSync(path).mode & 0o777).toString(8)}); chmod 600 it`);
  }
  const kem = kemField(path, o.kem);
  const sizes = wrapKemSizes(kem);
  return {
    kem,
    publicKey: keyBytes(path, 'publicKey', o.publicKey, sizes.publicKeyLength),
    privateKey: keyBytes(path, 'privateKey', o.privateKey, sizes.privateKeyLength),
  };
}

/** Write `data` to a new file with `mode`; never overwrites. */
function writeNew(path: string, data: string, mode: number): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', mode);
  } catch (e) {
    throw bad(path, (e as NodeJS.ErrnoException).code === 'EEXIST' ? 'already exists (refusing to overwrite)' : 'cannot be created');
  }
  try {
    writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
}

/** Write a key pair to `path` (mode 0600) and its public part to `path`.pub. Neither may exist yet. */
export function writeWrappingKeyPair(path: string, pair: WrappingKeyPair): { publicPath: string; fingerprint: string } {
  const publicPath = `${path}.pub`;
  const pub: WrappingKeyFileJson = { kem: pair.kem, publicKey: toHex(pair.publicKey) };
  writeNew(publicPath, JSON.stringify(pub, null, 2) + '\n', 0o644);
  writeNew(path, JSON.stringify({ ...pub, privateKey: toHex(pair.privateKey) }, null, 2) + '\n', 0o600);
  return { publicPath, fingerprint: toHex(wrappingKeyFingerprint(pair.publicKey)) };
}

/** An import-keys file: node i's key at [i - 1]; indexes must be exactly 1..n. */
export function readImportKeysFile(path: string): Uint8Array[] {
  return readImportKeys(path).keys;
}

/**
 * An import-keys file with the destination's size: `threshold` and `parties` come together or not at
 * all; with them the file must list exactly nodes 1..parties and 2 <= threshold <= parties.
 */
export function readImportKeys(path: string): ImportKeysFile {
  const o = readJson(path);
  only(path, o, ['threshold', 'parties', 'importKeys']);
  if ((o.threshold === undefined) !== (o.parties === undefined)) throw bad(path, 'give both threshold and parties, or neither');
  const count = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
  if (o.parties !== undefined && !count(o.parties, 2, 255)) throw bad(path, 'parties must be an integer 2..255');
  if (o.threshold !== undefined && !count(o.threshold, 2, o.parties as number)) throw bad(path, `threshold must be an integer 2..${String(o.parties)} (the parties)`);
  const list = o.importKeys;
  if (!Array.isArray(list) || list.length < 1 || list.length > 255) throw bad(path, 'importKeys must be a list of 1..255 keys');
  if (o.parties !== undefined && list.length !== o.parties) throw bad(path, `importKeys must list one key for each of the ${String(o.parties)} nodes`);
  const byIndex = new Map<number, Uint8Array>();
  list.forEach((e: unknown, k) => {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw bad(path, `importKeys[${k}] must be an object`);
    const entry = e as Record<string, unknown>;
    only(path, entry, ['index', 'kem', 'publicKey']);
    const index = entry.index;
    if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 1 || index > list.length) {
      throw bad(path, `importKeys[${k}].index must be 1..${list.length}`);
    }
    if (byIndex.has(index)) throw bad(path, `node ${index} is listed twice`);
    const kem = kemField(path, entry.kem);
    byIndex.set(index, keyBytes(path, `importKeys[${k}].publicKey`, entry.publicKey, wrapKemSizes(kem).publicKeyLength));
  });
  const keys = Array.from({ length: list.length }, (_, i) => byIndex.get(i + 1)!);
  return o.parties === undefined ? { keys } : { keys, destination: { threshold: o.threshold as number, parties: o.parties as number } };
}

/** An external private key: a file of exactly 32 raw bytes, or of 64 hex characters (surrounding whitespace ignored). */
export function readPrivateKeyFile(path: string): Uint8Array {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch {
    throw bad(path, 'cannot be read');
  }
  try {
    const text = raw.toString('latin1').trim();
    if (/^[0-9a-fA-F]{64}$/.test(text)) return fromHex(text, path, 32);
    if (raw.length === 32) return Uint8Array.from(raw);
    throw bad(path, 'expected a 32-byte private key: 32 raw bytes or 64 hex characters');
  } finally {
    raw.fill(0);
  }
}
