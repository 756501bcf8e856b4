/**
 * SoftHSM2 for the pkcs11 KEK provider's tests (node/store/kek-pkcs11.ts): a token directory and config
 * file of the test's own (SoftHSM reads SOFTHSM2_CONF at C_Initialize), tokens made with softhsm2-util,
 * and a look at a key object's attributes through a pkcs11js instance of the test's own, so that what
 * the test checks about the token does not come from the provider under test.
 *
 * .ci/run installs the Debian softhsm2 package; without it these tests fail at load, naming it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import type { KekSource } from '../../node/config.js';

/** Where Debian's softhsm2 package puts the PKCS#11 library. */
export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export function requireSoftHsm(): void {
  if (!existsSync(SOFTHSM_MODULE)) throw new Error(`SoftHSM2 is not installed (${SOFTHSM_MODULE} missing): apt-get install softhsm2 (.ci/run does)`);
}

/** A SoftHSM2 config file whose token directory is `<dir>/tokens`; returns the config file's path. */
export async function makeSoftHsmConf(dir: string): Promise<string> {
  const tokens = join(dir, 'tokens');
  await mkdir(tokens, { recursive: true, mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  await writeFile(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`, { mode: 0o600 });
  return conf;
}

/** Initialise a new token labelled `label` with user PIN `pin` in the token directory of `conf`. */
export function initToken(conf: string, label: string, pin: string): void {
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', `so-${pin}`, '--pin', pin], {
    env: { ...process.env, SOFTHSM2_CONF: conf },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

/** A pkcs11 KekSource as node/config.ts makes it: the PIN non-enumerable. */
export function pkcs11Source(tokenLabel: string, keyLabel: string, pin: string): Extract<KekSource, { kind: 'pkcs11' }> {
  return Object.defineProperty({ kind: 'pkcs11' as const, module: SOFTHSM_MODULE, tokenLabel, keyLabel }, 'pin', { value: pin, enumerable: false }) as Extract<KekSource, { kind: 'pkcs11' }>;
}

/** Write a PIN file (mode 0600) for a config's kekProvider.pinFile. */
export async function writePinFile(path: string, pin: string): Promise<void> {
  await writeFile(path, `${pin}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
}

export interface KeyObjectFacts {
  readonly sensitive: boolean;
  readonly extractable: boolean;
  readonly alwaysSensitive: boolean;
  readonly neverExtractable: boolean;
  readonly token: boolean;
  readonly private: boolean;
  /** The CKR_ code C_GetAttributeValue(CKA_VALUE) failed with, or 'READ' if the token handed the value out. */
  readonly valueRead: string;
  /** The CKR_ code C_WrapKey under a fresh session key failed with, or 'WRAPPED' if it succeeded. */
  readonly wrapRead: string;
}

/**
 * Run `fn` on a logged-in R/W session with the token labelled `tokenLabel`, through a pkcs11js instance of
 * the caller's own. When a provider Kek is open in this process, the library is initialised and the token
 * logged in already (both are process-wide): this then neither finalises the library nor logs out. When it
 * is the only user, it initialises, logs in, and finalises after.
 */
export function withTestSession<T>(tokenLabel: string, pin: string, fn: (lib: pkcs11js.PKCS11, session: Buffer) => T): T {
  const lib = new pkcs11js.PKCS11();
  lib.load(SOFTHSM_MODULE);
  let finalize = true;
  try {
    lib.C_Initialize();
  } catch (e) {
    if ((e as Error).message !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw e;
    finalize = false;
  }
  try {
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trimEnd() === tokenLabel);
    if (!slot) throw new Error(`no token ${tokenLabel}`);
    const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      try {
        lib.C_Login(session, pkcs11js.CKU_USER, pin);
      } catch (e) {
        if ((e as Error).message !== 'CKR_USER_ALREADY_LOGGED_IN') throw e;
      }
      return fn(lib, session);
    } finally {
      try {
        lib.C_CloseSession(session);
      } catch {
        // fn closed it (C_CloseAllSessions)
      }
    }
  } finally {
    if (finalize) lib.C_Finalize();
    lib.close();
  }
}

function findKey(lib: pkcs11js.PKCS11, session: Buffer, keyLabel: string): Buffer {
  lib.C_FindObjectsInit(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_LABEL, value: keyLabel },
  ]);
  const found = lib.C_FindObjects(session, 2);
  lib.C_FindObjectsFinal(session);
  if (found.length !== 1) throw new Error(`${found.length} keys labelled ${keyLabel}`);
  return found[0]!;
}

/** What the token says about the secret key labelled `keyLabel` (see withTestSession for when to call it). */
export function keyObjectFacts(tokenLabel: string, keyLabel: string, pin: string): KeyObjectFacts {
  return withTestSession(tokenLabel, pin, (lib, session) => {
    const key = findKey(lib, session, keyLabel);
    const [sensitive, extractable, alwaysSensitive, neverExtractable, token, priv] = lib
      .C_GetAttributeValue(session, key, [
        { type: pkcs11js.CKA_SENSITIVE },
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_ALWAYS_SENSITIVE },
        { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
        { type: pkcs11js.CKA_TOKEN },
        { type: pkcs11js.CKA_PRIVATE },
      ])
      .map((a) => (a.value as Buffer)[0] !== 0) as [boolean, boolean, boolean, boolean, boolean, boolean];
    let valueRead = 'READ';
    try {
      lib.C_GetAttributeValue(session, key, [{ type: pkcs11js.CKA_VALUE }]);
    } catch (e) {
      valueRead = (e as Error).message;
    }
    // Wrapping it out under a key the caller makes (a session key, gone with the session) must fail too.
    let wrapRead = 'WRAPPED';
    const wrapping = lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_WRAP, value: true },
    ]);
    try {
      lib.C_WrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }, wrapping, key, Buffer.alloc(64));
    } catch (e) {
      wrapRead = (e as Error).message;
    }
    lib.C_DestroyObject(session, wrapping);
    return { sensitive, extractable, alwaysSensitive, neverExtractable, token, private: priv, valueRead, wrapRead };
  });
}

/**
 * Close every session this process has with the token (C_CloseAllSessions), the provider's included, as a
 * token reset or a dropped HSM connection would; the token forgets the login too. Call it while a provider
 * Kek is open (see withTestSession).
 */
export function closeAllSessions(tokenLabel: string, pin: string): void {
  withTestSession(tokenLabel, pin, (lib, session) => {
    const slot = lib.C_GetSessionInfo(session).slotID;
    lib.C_CloseAllSessions(slot);
  });
}

/** Make a token AES-256 key with the given sensitivity and extractability (to test that unfit keys are refused). */
export function createTestKey(tokenLabel: string, pin: string, keyLabel: string, o: { sensitive: boolean; extractable: boolean; id?: Buffer }): void {
  withTestSession(tokenLabel, pin, (lib, session) => {
    lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: o.sensitive },
      { type: pkcs11js.CKA_EXTRACTABLE, value: o.extractable },
      { type: pkcs11js.CKA_ENCRYPT, value: true },
      { type: pkcs11js.CKA_DECRYPT, value: true },
      { type: pkcs11js.CKA_LABEL, value: keyLabel },
      { type: pkcs11js.CKA_ID, value: o.id ?? Buffer.from('0102030405060708', 'hex') },
    ]);
  });
}
