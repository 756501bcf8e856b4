/**
 * The pkcs11 KEK provider (issue 15 item 1): the node's KEK is a non-extractable AES-256 key in a PKCS#11
 * token, and every data key is wrapped and unwrapped by the token, so the KEK never enters this process.
 * The binding is pkcs11js (PKCS#11 v2.40 through node-gyp); it is tested with SoftHSM2.
 *
 * Wrapping a data key (Kek.wrapKey): CKM_AES_GCM (PKCS#11 v2.40 Current Mechanisms, "AES-GCM authenticated
 * Encryption / Decryption", parameters CK_GCM_PARAMS) with a fresh random 96-bit IV, the caller's AAD and a 128-bit tag, which is
 * AES-GCM of NIST SP 800-38D with the RBG-based IV construction of §8.2.2. The IV comes from this process's
 * CSPRNG, not the token's: some HSMs in FIPS mode insist on making the IV themselves (and return it beside
 * the ciphertext) and would refuse or replace a caller's IV: not supported yet; SoftHSM2 accepts it. SP 800-38D §8.3
 * limits one key to 2^32 random-IV encryptions; a node wraps one data key per sealed record (and per
 * re-seal), far below that over a KEK's life, and a KEK rotation starts a new count.
 * Wrapped form: iv (12) || ciphertext (32) || tag (16).
 *
 * The token's key object: CKO_SECRET_KEY, CKK_AES, 32 bytes, found by CKA_LABEL, with CKA_SENSITIVE true and
 * CKA_EXTRACTABLE false (checked at open: a key the token would hand out is refused). Its public id (Kek.id)
 * is `p11-` + hex of its CKA_ID, which createPkcs11Kek sets to 8 random bytes.
 *
 * Module life: C_Initialize is process-wide in PKCS#11, so each module path is loaded once and
 * reference-counted; several Keks (the nodes of a unit test, a rotation's two KEKs) share it, and the last
 * close() calls C_Finalize. The login state is per token and process too (PKCS#11 C_Login): each Kek has
 * its own session, the first session of a token logs in, the last one to close logs out. A Kek whose session
 * the token dropped (reset, removal, a network HSM's reconnect) opens a new one and retries once; a token
 * that stays away fails the store's call with the CKR_ code, and the node keeps running without it.
 *
 * Errors never contain the PIN. A missing module, token or key, a refused PIN or an unfit key object is a
 * ConfigError naming the field; a wrap or unwrap that fails is a plain Error (the store names the record).
 */
import { createHash } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { randomBytes } from '@noble/hashes/utils.js';
import { zeroize } from '../../core/bytes.js';
import { ConfigError, type KekSource } from '../config.js';
import { KEK_ID_PATTERN, type Kek, type KekProviderName } from './kek.js';
import type { NodeKeks } from './kek-provider.js';

export type Pkcs11KekSource = Extract<KekSource, { kind: 'pkcs11' }>;

/** The suffix of the next KEK's label while a rotation is unfinished (see openPkcs11Keks). */
export const PKCS11_NEXT_LABEL_SUFFIX = '.next';

const DATA_KEY_LENGTH = 32;
const AES_KEY_LENGTH = 32;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;
const WRAPPED_LENGTH = IV_LENGTH + DATA_KEY_LENGTH + TAG_LENGTH;
const KEY_ID_LENGTH = 8;

type Handle = Buffer;

interface LoadedModule {
  readonly path: string;
  readonly lib: pkcs11js.PKCS11;
  /** Open sessions (Keks and short admin sessions) using this module. */
  refs: number;
  /** Whether our C_Initialize is the one in force (false: something else in this process initialised it). */
  readonly finalize: boolean;
  /**
   * Our open sessions per slot (hex of the slot handle): the first logs in, the last logs out. The login
   * state is shared by every session of the token (PKCS#11 C_Login), so a later C_Login answers
   * CKR_USER_ALREADY_LOGGED_IN whatever PIN it is given; a SHA-256 of the PIN that logged in is kept so
   * that a second Kek opened with another PIN is refused as the token would have refused it.
   */
  readonly sessionsBySlot: Map<string, { count: number; readonly pinHash: string }>;
}

const loadedModules = new Map<string, LoadedModule>();

/** The CKR_ name of a pkcs11js error, or a short description of another error (never any argument). */
function reason(e: unknown): string {
  const m = (e as { message?: unknown })?.message;
  if (typeof m === 'string' && /^CKR_[A-Z0-9_]+$/.test(m)) return m;
  return typeof m === 'string' ? m.split('\n')[0]!.slice(0, 200) : 'unknown error';
}

function ckr(e: unknown): string | undefined {
  const m = (e as { message?: unknown })?.message;
  return typeof m === 'string' && /^CKR_[A-Z0-9_]+$/.test(m) ? m : undefined;
}

function acquireModule(path: string): LoadedModule {
  const existing = loadedModules.get(path);
  if (existing) {
    existing.refs++;
    return existing;
  }
  const lib = new pkcs11js.PKCS11();
  try {
    lib.load(path);
  } catch (e) {
    throw new ConfigError('kekProvider.module', `cannot load the PKCS#11 library ${path} (${reason(e)})`);
  }
  let finalize = true;
  try {
    lib.C_Initialize();
  } catch (e) {
    if (ckr(e) === 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
      finalize = false;
    } else {
      try {
        lib.close();
      } catch {
        // unloading a library that failed to initialise: nothing more to do
      }
      throw new ConfigError('kekProvider.module', `${path}: C_Initialize failed (${reason(e)})`);
    }
  }
  const m: LoadedModule = { path, lib, refs: 1, finalize, sessionsBySlot: new Map() };
  loadedModules.set(path, m);
  return m;
}

function releaseModule(m: LoadedModule): void {
  m.refs--;
  if (m.refs > 0) return;
  loadedModules.delete(m.path);
  try {
    if (m.finalize) m.lib.C_Finalize();
  } finally {
    m.lib.close();
  }
}

/** The token's label as set at initialisation (CK_TOKEN_INFO pads it with blanks to 32 bytes). */
function tokenLabelOf(info: pkcs11js.TokenInfo): string {
  return info.label.replace(/[ \0]+$/, '');
}

/** One logged-in session on the configured token. */
class TokenSession {
  private open = true;
  private constructor(
    readonly module: LoadedModule,
    readonly slotKey: string,
    readonly handle: Handle,
    readonly tokenLabel: string,
  ) {}

  get lib(): pkcs11js.PKCS11 {
    if (!this.open) throw new Error(`the session with token "${this.tokenLabel}" is closed`);
    return this.module.lib;
  }

  static start(source: Pkcs11KekSource, readWrite: boolean): TokenSession {
    validateSource(source);
    const m = acquireModule(source.module);
    let session: Handle | undefined;
    let slotKey: string | undefined;
    try {
      const slot = findSlot(m, source);
      slotKey = slot.toString('hex');
      try {
        session = m.lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | (readWrite ? pkcs11js.CKF_RW_SESSION : 0));
      } catch (e) {
        throw new ConfigError('kekProvider.tokenLabel', `cannot open a session with token "${source.tokenLabel}" (${reason(e)})`);
      }
      const pinHash = createHash('sha256').update(source.pin, 'latin1').digest('hex');
      const ours = m.sessionsBySlot.get(slotKey);
      const refused = (what: string) => new ConfigError('kekProvider', `token "${source.tokenLabel}" ${what}; check TESSERA_PKCS11_PIN or kekProvider.pinFile`);
      if (ours && ours.pinHash !== pinHash) throw refused('refused the PIN');
      // Logged in already (another session of ours, or another user of the library in this process) is
      // fine; logging in again matters when the token lost the login state with its sessions (reconnect).
      try {
        m.lib.C_Login(session, pkcs11js.CKU_USER, source.pin);
      } catch (e) {
        const code = ckr(e);
        if (code !== 'CKR_USER_ALREADY_LOGGED_IN') {
          throw refused(code === 'CKR_PIN_INCORRECT' ? 'refused the PIN' : code === 'CKR_PIN_LOCKED' ? 'has locked the user PIN (too many wrong PINs)' : `refused the login (${reason(e)})`);
        }
      }
      if (ours) ours.count++;
      else m.sessionsBySlot.set(slotKey, { count: 1, pinHash });
      return new TokenSession(m, slotKey, session, source.tokenLabel);
    } catch (e) {
      if (session !== undefined) closeQuietly(m, session);
      releaseModule(m);
      throw e;
    }
  }

  /** Idempotent. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    try {
      endSession(this.module, this.slotKey, this.handle);
    } finally {
      releaseModule(this.module);
    }
  }

  /** Every object of `class` labelled `label` (the search sees private objects: the session is logged in). */
  find(label: string, objectClass: number = pkcs11js.CKO_SECRET_KEY): Handle[] {
    const lib = this.lib;
    lib.C_FindObjectsInit(this.handle, [
      { type: pkcs11js.CKA_CLASS, value: objectClass },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]);
    try {
      return lib.C_FindObjects(this.handle, 16);
    } finally {
      lib.C_FindObjectsFinal(this.handle);
    }
  }

  /** Every secret key whose CKA_ID is `id`. */
  findById(id: Buffer): Handle[] {
    const lib = this.lib;
    lib.C_FindObjectsInit(this.handle, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_ID, value: id },
    ]);
    try {
      return lib.C_FindObjects(this.handle, 16);
    } finally {
      lib.C_FindObjectsFinal(this.handle);
    }
  }

  /** The one secret key labelled `label`, or undefined; two or more is a ConfigError (ambiguous). */
  findOne(label: string): Handle | undefined {
    const found = this.find(label);
    if (found.length > 1) throw new ConfigError('kekProvider.keyLabel', `token "${this.tokenLabel}" holds ${found.length} secret keys labelled "${label}"; keep one`);
    return found[0];
  }
}

/** Log out with the slot's last session of ours (closing the last session would too; saying it is clearer), then close it. */
function endSession(m: LoadedModule, slotKey: string, session: Handle): void {
  const ours = m.sessionsBySlot.get(slotKey);
  if (ours && --ours.count <= 0) {
    m.sessionsBySlot.delete(slotKey);
    try {
      m.lib.C_Logout(session);
    } catch {
      // the token went away or logged out already: closing is all there is to do
    }
  }
  closeQuietly(m, session);
}

/** A session that was never counted as logged in (its login failed), or whose token went away. */
function closeQuietly(m: LoadedModule, session: Handle): void {
  try {
    m.lib.C_CloseSession(session);
  } catch {
    // the token went away: the session is gone with it
  }
}

function findSlot(m: LoadedModule, source: Pkcs11KekSource): Handle {
  let slots: Handle[];
  try {
    slots = m.lib.C_GetSlotList(true);
  } catch (e) {
    throw new ConfigError('kekProvider.module', `${source.module}: C_GetSlotList failed (${reason(e)})`);
  }
  const matching = slots.filter((slot) => {
    try {
      return tokenLabelOf(m.lib.C_GetTokenInfo(slot)) === source.tokenLabel;
    } catch {
      return false; // a slot whose token went away meanwhile
    }
  });
  if (matching.length === 0) throw new ConfigError('kekProvider.tokenLabel', `no token labelled "${source.tokenLabel}" in ${source.module}`);
  if (matching.length > 1) throw new ConfigError('kekProvider.tokenLabel', `${matching.length} tokens are labelled "${source.tokenLabel}" in ${source.module}; labels must be unique`);
  return matching[0]!;
}

function validateSource(source: Pkcs11KekSource): void {
  if (typeof source !== 'object' || source === null || source.kind !== 'pkcs11') throw new ConfigError('kekProvider', 'is not a pkcs11 KEK source');
  if (typeof source.module !== 'string' || source.module === '') throw new ConfigError('kekProvider.module', 'must be the path of a PKCS#11 library');
  if (typeof source.tokenLabel !== 'string' || !/^[\x20-\x7e]{1,32}$/.test(source.tokenLabel)) throw new ConfigError('kekProvider.tokenLabel', 'must be 1..32 printable ASCII characters');
  if (typeof source.pin !== 'string' || !/^[\x20-\x7e]{4,255}$/.test(source.pin)) throw new ConfigError('kekProvider', 'the PKCS#11 PIN must be 4..255 printable ASCII characters');
}

function validateLabel(label: unknown): string {
  // 32 as in the config, plus room for the rotation's '.next'.
  if (typeof label !== 'string' || !/^[\x20-\x7e]{1,40}$/.test(label)) throw new ConfigError('kekProvider.keyLabel', 'must be 1..40 printable ASCII characters');
  return label;
}

/** A CK_ULONG attribute value (native byte order and width; little-endian on every platform Node runs on here). */
function ulongOf(b: Buffer): number {
  if (b.length === 8) return Number(b.readBigUInt64LE(0));
  if (b.length === 4) return b.readUInt32LE(0);
  throw new Error('unexpected CK_ULONG width');
}

function boolOf(b: Buffer): boolean {
  return b.length >= 1 && b[0] !== 0;
}

/** The checked attributes of a key object, its public id and CKA_ID; a ConfigError names what makes it unfit. */
function checkKeyObject(s: TokenSession, handle: Handle, label: string): { kid: string; keyId: Buffer } {
  const [keyType, valueLen, sensitive, extractable, encrypt, decrypt, id] = s.lib
    .C_GetAttributeValue(s.handle, handle, [
      { type: pkcs11js.CKA_KEY_TYPE },
      { type: pkcs11js.CKA_VALUE_LEN },
      { type: pkcs11js.CKA_SENSITIVE },
      { type: pkcs11js.CKA_EXTRACTABLE },
      { type: pkcs11js.CKA_ENCRYPT },
      { type: pkcs11js.CKA_DECRYPT },
      { type: pkcs11js.CKA_ID },
    ])
    .map((a) => a.value as Buffer);
  const unfit = (why: string) => new ConfigError('kekProvider.keyLabel', `the key "${label}" in token "${s.tokenLabel}" ${why}`);
  if (ulongOf(keyType!) !== pkcs11js.CKK_AES) throw unfit('is not an AES key');
  if (ulongOf(valueLen!) !== AES_KEY_LENGTH) throw unfit(`is not AES-256 (${ulongOf(valueLen!) * 8} bits)`);
  if (!boolOf(sensitive!)) throw unfit('is not sensitive (CKA_SENSITIVE false): the token would reveal it; make a new key with tessera kek init-pkcs11');
  if (boolOf(extractable!)) throw unfit('is extractable (CKA_EXTRACTABLE true): it could leave the token; make a new key with tessera kek init-pkcs11');
  if (!boolOf(encrypt!) || !boolOf(decrypt!)) throw unfit('may not encrypt and decrypt (CKA_ENCRYPT / CKA_DECRYPT)');
  const kid = `p11-${id!.toString('hex')}`;
  if (id!.length === 0 || !KEK_ID_PATTERN.test(kid)) throw unfit(`has no usable CKA_ID (1..30 bytes; it has ${id!.length})`);
  return { kid, keyId: Buffer.from(id!) };
}

/**
 * Errors that mean the session (not the key or the data) is gone: the token was removed or reset, a network
 * HSM dropped the connection, or something in this process closed every session of the slot. The Kek then
 * opens a new session, logs in, finds its key again by CKA_ID (not by label: a rotation relabels keys)
 * and retries the call once.
 */
const SESSION_LOST = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_OBJECT_HANDLE_INVALID',
  'CKR_KEY_HANDLE_INVALID',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
]);

/** The Kek whose key lives in the token: every wrap and unwrap is a token operation. */
class Pkcs11Kek implements Kek {
  readonly provider: KekProviderName = 'pkcs11';
  readonly id: string;
  /** The key object's CKA_LABEL when it was opened (public; a rotation may relabel it since). */
  readonly label: string;
  private session: TokenSession | undefined;
  private key: Handle;
  /** Kept to open a new session when the token drops this one (the PIN is in the config object anyway). */
  private readonly source: Pkcs11KekSource;
  private readonly keyId: Buffer;

  constructor(source: Pkcs11KekSource, session: TokenSession, key: Handle, id: string, keyId: Buffer, label: string) {
    this.source = source;
    this.session = session;
    this.key = key;
    this.id = id;
    this.keyId = keyId;
    this.label = label;
  }

  wrapKey(key: Uint8Array, aad: Uint8Array): Uint8Array {
    if (!(key instanceof Uint8Array) || key.length !== DATA_KEY_LENGTH) throw new Error(`the pkcs11 KEK wraps ${DATA_KEY_LENGTH}-byte keys only`);
    if (!(aad instanceof Uint8Array)) throw new Error('aad must be bytes');
    const iv = Buffer.from(randomBytes(IV_LENGTH));
    const input = Buffer.alloc(DATA_KEY_LENGTH);
    input.set(key);
    try {
      const ct = this.call('wrap', (s) => {
        s.lib.C_EncryptInit(s.handle, this.mechanism(iv, aad), this.key);
        return s.lib.C_Encrypt(s.handle, input, Buffer.alloc(DATA_KEY_LENGTH + TAG_LENGTH));
      });
      if (ct.length !== DATA_KEY_LENGTH + TAG_LENGTH) throw new Error(`KEK ${this.id}: the token returned ${ct.length} bytes for a wrapped key`);
      const wrapped = new Uint8Array(WRAPPED_LENGTH);
      wrapped.set(iv, 0);
      wrapped.set(ct, IV_LENGTH);
      return wrapped;
    } finally {
      zeroize(input);
    }
  }

  unwrapKey(wrapped: Uint8Array, aad: Uint8Array): Uint8Array {
    if (!(wrapped instanceof Uint8Array) || wrapped.length !== WRAPPED_LENGTH) throw new Error(`a key wrapped by a pkcs11 KEK is ${WRAPPED_LENGTH} bytes`);
    if (!(aad instanceof Uint8Array)) throw new Error('aad must be bytes');
    const iv = Buffer.from(wrapped.subarray(0, IV_LENGTH));
    const body = Buffer.from(wrapped.subarray(IV_LENGTH));
    let out: Buffer | undefined;
    try {
      const plain = this.call('unwrap', (s) => {
        out = Buffer.alloc(WRAPPED_LENGTH - IV_LENGTH);
        s.lib.C_DecryptInit(s.handle, this.mechanism(iv, aad), this.key);
        // A C_Decrypt that fails (other than CKR_BUFFER_TOO_SMALL) ends the operation, so the next unwrap starts clean.
        return s.lib.C_Decrypt(s.handle, body, out);
      });
      if (plain.length !== DATA_KEY_LENGTH) throw new Error(`KEK ${this.id}: the wrapped key does not authenticate`);
      return Uint8Array.from(plain);
    } finally {
      zeroize(out);
    }
  }

  close(): void {
    const s = this.session;
    this.session = undefined;
    s?.close();
  }

  /**
   * Run one token operation; if the session was lost (SESSION_LOST), open a new one and run it once more.
   * Errors are plain Errors naming the KEK and the CKR_ code; a wrapped key that does not authenticate
   * says so.
   */
  private call<T>(what: 'wrap' | 'unwrap', op: (s: TokenSession) => T): T {
    const fail = (e: unknown): Error => {
      const code = ckr(e);
      if (what === 'unwrap' && (code === 'CKR_ENCRYPTED_DATA_INVALID' || code === 'CKR_GENERAL_ERROR' || code === 'CKR_FUNCTION_FAILED')) {
        return new Error(`KEK ${this.id}: the wrapped key does not authenticate`);
      }
      return new Error(`KEK ${this.id}: the token did not ${what} the key (${reason(e)})`);
    };
    try {
      return op(this.live());
    } catch (e) {
      if (!SESSION_LOST.has(ckr(e) ?? '')) throw fail(e);
    }
    try {
      this.reconnect();
      return op(this.live());
    } catch (e) {
      throw fail(e);
    }
  }

  /** A new logged-in session, and this key's handle in it (found by CKA_ID and checked again). */
  private reconnect(): void {
    const old = this.live();
    this.session = undefined;
    old.close();
    const s = TokenSession.start(this.source, false);
    try {
      const found = s.findById(this.keyId);
      if (found.length !== 1) throw new Error(`token "${this.source.tokenLabel}" holds ${found.length} keys with the id of KEK ${this.id}`);
      if (checkKeyObject(s, found[0]!, this.label).kid !== this.id) throw new Error(`the key found again is not KEK ${this.id}`);
      this.key = found[0]!;
      this.session = s;
    } catch (e) {
      s.close();
      throw e;
    }
  }

  private mechanism(iv: Buffer, aad: Uint8Array): pkcs11js.Mechanism {
    return {
      mechanism: pkcs11js.CKM_AES_GCM,
      parameter: { type: pkcs11js.CK_PARAMS_AES_GCM, iv, ivBits: IV_LENGTH * 8, aad: Buffer.from(aad), tagBits: TAG_LENGTH * 8 } as pkcs11js.GcmParams,
    };
  }

  private live(): TokenSession {
    if (!this.session) throw new Error(`KEK ${this.id} is closed`);
    return this.session;
  }
}

/** Open the key labelled `label` as a Kek (its own session), or undefined when the token has no such key. */
function openKek(source: Pkcs11KekSource, label: string): Pkcs11Kek | undefined {
  const s = TokenSession.start(source, false);
  try {
    const handle = s.findOne(label);
    if (handle === undefined) {
      s.close();
      return undefined;
    }
    const { kid, keyId } = checkKeyObject(s, handle, label);
    return new Pkcs11Kek(source, s, handle, kid, keyId, label);
  } catch (e) {
    s.close();
    throw e;
  }
}

/**
 * The node's KEKs in the token: `current` is the key labelled keyLabel; while a rotation is unfinished the
 * key labelled keyLabel + '.next' is in `others` (it can unwrap what the rotation already moved). When only
 * the '.next' key is left (the rotation destroyed the old key but did not relabel the new one yet), it is
 * current. Neither: a ConfigError saying how to create it.
 */
export async function openPkcs11Keks(source: Pkcs11KekSource, _nodeIndex: number): Promise<NodeKeks> {
  const label = validateLabel(source.keyLabel);
  const main = openKek(source, label);
  let next: Pkcs11Kek | undefined;
  try {
    next = openKek(source, label + PKCS11_NEXT_LABEL_SUFFIX);
  } catch (e) {
    main?.close();
    throw e;
  }
  if (main) return { current: main, others: next ? [next] : [] };
  if (next) return { current: next, others: [] };
  throw new ConfigError(
    'kekProvider.keyLabel',
    `token "${source.tokenLabel}" holds no AES key labelled "${label}"; create it with tessera kek init-pkcs11 (docs/operations.md, "KEK in a PKCS#11 token")`,
  );
}

/** Open one key of the token as a Kek by its label (a rotation opens the new key this way). */
export async function openPkcs11Kek(source: Pkcs11KekSource, label: string): Promise<Kek> {
  const kek = openKek(source, validateLabel(label));
  if (!kek) throw new ConfigError('kekProvider.keyLabel', `token "${source.tokenLabel}" holds no AES key labelled "${label}"`);
  return kek;
}

/**
 * Generate a new KEK in the token: AES-256 by CKM_AES_KEY_GEN, a token object (CKA_TOKEN) that is private,
 * sensitive and not extractable, usable to encrypt and decrypt only, with CKA_ID 8 random bytes (its public
 * id is p11-<hex>). Refuses when any object already has the label. Returns the new KEK's public id.
 */
export async function createPkcs11Kek(source: Pkcs11KekSource, label: string): Promise<string> {
  validateLabel(label);
  const s = TokenSession.start(source, true);
  try {
    if (s.find(label).length > 0) throw new ConfigError('kekProvider.keyLabel', `token "${source.tokenLabel}" already holds a key labelled "${label}"; refusing to make another`);
    const id = Buffer.from(randomBytes(KEY_ID_LENGTH));
    let handle: Handle;
    try {
      handle = s.lib.C_GenerateKey(s.handle, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_VALUE_LEN, value: AES_KEY_LENGTH },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_ENCRYPT, value: true },
        { type: pkcs11js.CKA_DECRYPT, value: true },
        { type: pkcs11js.CKA_WRAP, value: false },
        { type: pkcs11js.CKA_UNWRAP, value: false },
        { type: pkcs11js.CKA_SIGN, value: false },
        { type: pkcs11js.CKA_VERIFY, value: false },
        { type: pkcs11js.CKA_DERIVE, value: false },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_ID, value: id },
      ]);
    } catch (e) {
      throw new ConfigError('kekProvider', `token "${source.tokenLabel}" did not generate the AES-256 key (${reason(e)})`);
    }
    return checkKeyObject(s, handle, label).kid;
  } finally {
    s.close();
  }
}

/** Destroy the key labelled `label` (C_DestroyObject): whatever it wrapped can no longer be opened. */
export async function destroyPkcs11Kek(source: Pkcs11KekSource, label: string): Promise<void> {
  validateLabel(label);
  const s = TokenSession.start(source, true);
  try {
    const handle = s.findOne(label);
    if (handle === undefined) throw new ConfigError('kekProvider.keyLabel', `token "${source.tokenLabel}" holds no AES key labelled "${label}"`);
    try {
      s.lib.C_DestroyObject(s.handle, handle);
    } catch (e) {
      throw new ConfigError('kekProvider.keyLabel', `token "${source.tokenLabel}" did not destroy the key "${label}" (${reason(e)})`);
    }
  } finally {
    s.close();
  }
}

/** Rename a key (C_SetAttributeValue CKA_LABEL): a rotation makes keyLabel.next the keyLabel. Refuses if `to` is taken. */
export async function relabelPkcs11Kek(source: Pkcs11KekSource, from: string, to: string): Promise<void> {
  validateLabel(from);
  validateLabel(to);
  const s = TokenSession.start(source, true);
  try {
    const handle = s.findOne(from);
    if (handle === undefined) throw new ConfigError('kekProvider.keyLabel', `token "${source.tokenLabel}" holds no AES key labelled "${from}"`);
    if (s.find(to).length > 0) throw new ConfigError('kekProvider.keyLabel', `token "${source.tokenLabel}" already holds a key labelled "${to}"`);
    try {
      s.lib.C_SetAttributeValue(s.handle, handle, [{ type: pkcs11js.CKA_LABEL, value: to }]);
    } catch (e) {
      throw new ConfigError('kekProvider.keyLabel', `token "${source.tokenLabel}" did not relabel "${from}" as "${to}" (${reason(e)})`);
    }
  } finally {
    s.close();
  }
}

/**
 * The pkcs11 half of a KEK rotation (node/store/kek-rotation.ts KekRotationSteps, typed here by shape so this
 * file does not depend on the rotation's): the next KEK is the token key <keyLabel>.next until retire()
 * destroys the old key and relabels the next one as keyLabel. Both steps are idempotent, so a rotation
 * killed between any two token calls resumes: a .next key made by a crashed run is reused, and retire()
 * looks at what is there (old and next; next only; or already done) instead of assuming.
 */
export function pkcs11RotationSteps(source: Pkcs11KekSource): { prepareNext(): Promise<Kek>; retire(oldId: string): Promise<void> } {
  const label = validateLabel(source.keyLabel);
  const nextLabel = label + PKCS11_NEXT_LABEL_SUFFIX;
  return {
    async prepareNext() {
      const s = TokenSession.start(source, true);
      try {
        if (s.findOne(nextLabel) === undefined) await createPkcs11Kek(source, nextLabel);
      } finally {
        s.close();
      }
      return openPkcs11Kek(source, nextLabel);
    },
    async retire(oldId) {
      const s = TokenSession.start(source, true);
      try {
        const current = s.findOne(label);
        const next = s.findOne(nextLabel);
        if (current !== undefined) {
          const currentId = checkKeyObject(s, current, label).kid;
          if (currentId !== oldId) {
            if (next === undefined) return; // done before a crash: keyLabel is already the new key
            throw new ConfigError('kekProvider.keyLabel', `token "${source.tokenLabel}": "${label}" is KEK ${currentId}, not the ${oldId} being retired, and "${nextLabel}" exists too; resolve by hand`);
          }
          if (next === undefined) throw new ConfigError('kekProvider.keyLabel', `token "${source.tokenLabel}" holds no "${nextLabel}": refusing to destroy the only KEK ${oldId}`);
          try {
            s.lib.C_DestroyObject(s.handle, current);
          } catch (e) {
            throw new ConfigError('kekProvider.keyLabel', `token "${source.tokenLabel}" did not destroy the old KEK ${oldId} (${reason(e)})`);
          }
        }
        if (next === undefined) throw new ConfigError('kekProvider.keyLabel', `token "${source.tokenLabel}" holds neither "${label}" nor "${nextLabel}"`);
        try {
          s.lib.C_SetAttributeValue(s.handle, next, [{ type: pkcs11js.CKA_LABEL, value: label }]);
        } catch (e) {
          throw new ConfigError('kekProvider.keyLabel', `token "${source.tokenLabel}" did not relabel "${nextLabel}" as "${label}" (${reason(e)})`);
        }
      } finally {
        s.close();
      }
    },
  };
}

/** How many sessions of this process use the module at `path` (0 once every Kek and call closed): for tests. */
export function pkcs11ModuleRefs(path: string): number {
  return loadedModules.get(path)?.refs ?? 0;
}
