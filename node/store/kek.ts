/**
 * The node's key-encryption key (KEK): it wraps the data keys that encrypt every share and identity
 * secret at rest, and the record-MAC key (node/store/storage.ts). Kek is the interface every KEK provider
 * implements; this file holds the in-memory one (RawKek) and the file and env sources: TESSERA_KEK (hex)
 * or a key file readable by its owner only.
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
import { gcmOpen, gcmSeal } from './aead.js';

export const KEK_LENGTH = 32;

/** The KEK providers a node can be configured with (issue 15): where its KEK lives. */
export type KekProviderName = 'file' | 'env' | 'shamir-unseal' | 'pkcs11';

/**
 * A key-encryption key as the store uses it: it wraps and unwraps the store's data keys (a fresh 32-byte
 * key per sealed record, and the record-MAC key; node/store/storage.ts) and nothing else. A provider
 * whose KEK stays in hardware (pkcs11) does both inside the token, so the KEK never enters the process;
 * the others hold it in memory (file, env, and shamir-unseal once unsealed).
 *
 * Both calls are synchronous: the store seals and opens inside its write and read paths.
 */
export interface Kek {
  readonly provider: KekProviderName;
  /**
   * This KEK's public name: stored beside every key it wraps, so the store knows which KEK opens a record
   * and a KEK rotation knows which records have moved. 1..64 characters [A-Za-z0-9._:-]; never secret.
   */
  readonly id: string;
  /** Authenticated wrapping of `key` (a data key) bound to `aad`; the result is opaque to the caller. */
  wrapKey(key: Uint8Array, aad: Uint8Array): Uint8Array;
  /** The key `wrapKey` wrapped under this KEK with this `aad`; throws if it was not (a plain Error). */
  unwrapKey(wrapped: Uint8Array, aad: Uint8Array): Uint8Array;
  /** Forget the KEK (wipe it from memory, or end the token session). Further calls throw. */
  close(): void;
}

export const KEK_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * The uses of an in-memory KEK. The KEK itself never keys anything: each use gets its own key derived
 * with HKDF-SHA256 (RFC 5869) under its own info label, so no two uses share a key.
 *   wrap   AES-256-GCM wrapping of the store's data keys (RawKek.wrapKey)
 *   id     the KEK's public identifier (RawKek.id): 8 bytes of HKDF output, a key check value
 */
export const KEK_USES = {
  wrap: 'tessera/kek/wrap/v1',
  id: 'tessera/kek/id/v1',
} as const;
export type KekUse = keyof typeof KEK_USES;

/**
 * The 32-byte key for one use of the KEK, optionally narrowed to a context (appended to the info label).
 * The caller owns (and zeroizes) the result.
 */
export function deriveKekKey(kek: Uint8Array, use: KekUse, context: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (!(kek instanceof Uint8Array) || kek.length !== KEK_LENGTH) throw new ConfigError('kek', `must be ${KEK_LENGTH} bytes`);
  return hkdf(sha256, kek, undefined, concatBytes(utf8ToBytes(KEK_USES[use]), context), 32);
}

const WRAP_NONCE_LENGTH = 12;

/**
 * A KEK held in process memory (providers file, env and shamir-unseal): wrapping is AES-256-GCM
 * (NIST SP 800-38D) under the KEK's 'wrap' key with a fresh random 96-bit nonce (§8.2.2); the wrapped
 * form is nonce || ciphertext || tag. The object keeps only the derived wrap key, and wipes it on close().
 */
export class RawKek implements Kek {
  readonly provider: KekProviderName;
  readonly id: string;
  private wrapKeyBytes: Uint8Array | undefined;

  /** `kek` stays the caller's (and is not kept): wipe it when done. */
  constructor(kek: Uint8Array, provider: KekProviderName) {
    this.provider = provider;
    this.wrapKeyBytes = deriveKekKey(kek, 'wrap');
    const idKey = deriveKekKey(kek, 'id');
    this.id = `k-${Buffer.from(idKey.subarray(0, 8)).toString('hex')}`;
    zeroize(idKey);
  }

  wrapKey(key: Uint8Array, aad: Uint8Array): Uint8Array {
    const nonce = randomBytes(WRAP_NONCE_LENGTH);
    return concatBytes(nonce, gcmSeal(this.live(), nonce, aad, key));
  }

  unwrapKey(wrapped: Uint8Array, aad: Uint8Array): Uint8Array {
    if (!(wrapped instanceof Uint8Array) || wrapped.length < WRAP_NONCE_LENGTH + 16) throw new Error('wrapped key too short');
    return gcmOpen(this.live(), wrapped.subarray(0, WRAP_NONCE_LENGTH), aad, wrapped.subarray(WRAP_NONCE_LENGTH));
  }

  close(): void {
    zeroize(this.wrapKeyBytes);
    this.wrapKeyBytes = undefined;
  }

  private live(): Uint8Array {
    if (!this.wrapKeyBytes) throw new Error(`KEK ${this.id} is closed`);
    return this.wrapKeyBytes;
  }
}

/** Load the KEK. The caller owns the returned bytes and should zeroize them when done. */
export async function loadKek(source: Extract<KekSource, { kind: 'env' | 'file' }>): Promise<Uint8Array> {
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

/**
 * What this node's at-rest protection is, as GET /v1/node `atRest` reports it (`tessera keys report`):
 * the KEK's provider (today the KekSource kind: 'env' or 'file'), its length, and the algorithms of
 * KEK_USES (AES-256-GCM sealing and HMAC-SHA-256 record MACs under HKDF-SHA256 keys, node/store/aead.ts).
 * A later KEK provider reports its own name here. Never any key bytes.
 */
export function atRestProtection(source: KekSource): { provider: string; keyBits: number; recordAead: string; keyDerivation: string; recordMac: string } {
  return { provider: source.kind, keyBits: KEK_LENGTH * 8, recordAead: 'AES-256-GCM', keyDerivation: 'HKDF-SHA256', recordMac: 'HMAC-SHA-256' };
}
