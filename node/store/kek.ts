/**
 * The node's key-encryption key (KEK): 32 bytes that encrypt every share and identity secret at rest
 * (node/store/storage.ts). It comes from TESSERA_KEK (hex) or a key file readable by its owner only.
 *
 * Key file format: 64 hex characters (a trailing newline is fine), as `openssl rand -hex 32` writes,
 * or exactly 32 raw bytes.
 */
import { open } from 'node:fs/promises';
import { constants } from 'node:fs';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { concatBytes, utf8ToBytes, zeroize } from '../../core/bytes.js';
import { ConfigError, type KekSource } from '../config.js';

export const KEK_LENGTH = 32;

/**
 * The uses of the KEK. The KEK itself never keys anything: each use gets its own key derived with
 * HKDF-SHA256 (RFC 5869) under its own info label, so no two uses share a key.
 *   sealing     AES-256-GCM of shares and named secrets (node/store/storage.ts)
 *   recordMac   HMAC-SHA256 over every stored record (node/store/record-auth.ts), per node: context = the
 *               node index as one byte (recordMacKey)
 */
export const KEK_USES = {
  sealing: 'tessera/node-storage/v1',
  recordMac: 'tessera/node-storage/record-mac/v1',
} as const;
export type KekUse = keyof typeof KEK_USES;

/**
 * The 32-byte key for one use of the KEK, optionally narrowed to a context (appended to the info label,
 * e.g. the node index, so two nodes sharing a KEK still get different keys). The caller owns (and
 * zeroizes) the result.
 */
export function deriveKekKey(kek: Uint8Array, use: KekUse, context: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (!(kek instanceof Uint8Array) || kek.length !== KEK_LENGTH) throw new ConfigError('kek', `must be ${KEK_LENGTH} bytes`);
  return hkdf(sha256, kek, undefined, concatBytes(utf8ToBytes(KEK_USES[use]), context), 32);
}

/** Load the KEK. The caller owns the returned bytes and should zeroize them when done. */
export async function loadKek(source: KekSource): Promise<Uint8Array> {
  if (source.kind === 'env') {
    const key = (source as { key?: unknown }).key;
    if (!(key instanceof Uint8Array) || key.length !== KEK_LENGTH) throw new ConfigError('kek', `(TESSERA_KEK) must be ${KEK_LENGTH} bytes`);
    return Uint8Array.from(key);
  }
  return readKekFile(source.path);
}

/**
 * Read a KEK file, refusing one that group or others may read or write: such a key is not secret any
 * more. The mode is checked on the opened descriptor, so the file checked is the file read.
 */
export async function readKekFile(path: string): Promise<Uint8Array> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new ConfigError('kekFile', `${path} is a symbolic link; point kekFile at the file itself`);
    throw new ConfigError('kekFile', `cannot open ${path} (${code ?? 'error'})`);
  }
  let raw: Buffer | undefined;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new ConfigError('kekFile', `${path} is not a regular file`);
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new ConfigError(
        'kekFile',
        `${path} has mode 0${mode.toString(8)}: group/others may access it; run chmod 600 on it`,
      );
    }
    if (st.size > 1024) throw new ConfigError('kekFile', `${path} is too large to be a key file`);
    raw = await fh.readFile();
    if (raw.length === KEK_LENGTH) return Uint8Array.from(raw);
    const text = raw.toString('latin1').trim();
    if (!/^[0-9a-fA-F]{64}$/.test(text)) {
      throw new ConfigError('kekFile', `${path} must hold 64 hex characters or ${KEK_LENGTH} raw bytes`);
    }
    return Uint8Array.from(Buffer.from(text, 'hex'));
  } finally {
    zeroize(raw);
    await fh.close();
  }
}

/**
 * Create a new random KEK file with mode 0600 (for `tessera dev`). Refuses to overwrite an existing
 * file: replacing a KEK makes every share encrypted under the old one unreadable.
 */
export async function createKekFile(path: string): Promise<void> {
  const key = randomBytes(KEK_LENGTH);
  const text = Buffer.from(Buffer.from(key).toString('hex') + '\n', 'latin1');
  let fh;
  try {
    fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    zeroize(key, text);
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError('kekFile', code === 'EEXIST' ? `${path} already exists; refusing to overwrite a KEK` : `cannot create ${path} (${code ?? 'error'})`);
  }
  try {
    await fh.chmod(0o600); // the umask may have removed bits; set exactly owner read/write
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    zeroize(key, text);
    await fh.close();
  }
}

/** The record MAC key of one node's data dir (node/store/record-auth.ts): the KEK's 'recordMac' key for that node index. */
export function recordMacKey(kek: Uint8Array, nodeIndex: number): Uint8Array {
  if (!Number.isSafeInteger(nodeIndex) || nodeIndex < 1 || nodeIndex > 255) throw new ConfigError('index', 'must be 1..255');
  return deriveKekKey(kek, 'recordMac', Uint8Array.of(nodeIndex));
}

/**
 * What this node's at-rest protection is, as GET /v1/node `atRest` reports it (`tessera keys report`):
 * the KEK's provider (today the KekSource kind: 'env' or 'file'), its length, and the algorithms of
 * KEK_USES (AES-256-GCM sealing and HMAC-SHA-256 record MACs under HKDF-SHA256 keys, node/store/aead.ts).
 * A later KEK provider reports its own name here. Never any key bytes.
 */
export function atRestProtection(source: KekSource): { provider: string; keyBits: number; recordAead: string; keyDerivation: string; recordMac: string } {
  return { provider: source.kind, keyBits: KEK_LENGTH * 8, recordAead: 'AES-256-GCM', keyDerivation: 'HKDF-SHA256', recordMac: 'HMAC-SHA-256' };
}
