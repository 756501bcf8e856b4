/**
 * Node identity signatures: ML-DSA-65 (FIPS 204), pure mode with an empty context.
 *
 * Node identities sign coordinator challenges, end-to-end channel envelopes, DKG broadcasts and audit
 * checkpoints. Key generation (from a 32-byte seed, FIPS 204 ML-DSA.KeyGen_internal) uses
 * @noble/post-quantum. Signing and verification use liboqs (@oqs/liboqs-js, the Open Quantum Safe
 * project's WASM build) once `loadIdentityEngine()` has run — about 8x faster to sign and 10x to verify
 * here — and @noble/post-quantum until then. The two interoperate in pure mode with an empty context
 * (test/unit/identity.test.ts checks both directions).
 */
import { createMLDSA65, type MLDSA65 } from '@oqs/liboqs-js';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCode, TesseraError } from './errors.js';

export const IDENTITY_PUBLIC_KEY_LENGTH = 1952;
export const IDENTITY_SECRET_KEY_LENGTH = 4032;
export const IDENTITY_SIGNATURE_LENGTH = 3309;

export interface IdentityKeyPair {
  readonly publicKey: Uint8Array;
  /** Secret: stored only encrypted under the node KEK. */
  readonly secretKey: Uint8Array;
}

export function generateIdentity(seed: Uint8Array = randomBytes(32)): IdentityKeyPair {
  if (seed.length !== 32) throw new TesseraError(ErrorCode.BadInput, 'identity seed: expected 32 bytes');
  const kp = ml_dsa65.keygen(seed);
  return { publicKey: kp.publicKey, secretKey: kp.secretKey };
}

/*
 * The liboqs engine is loaded once and shared: like core/pq.ts's ML-KEM engine it holds no keys or
 * per-call state, so it is an immutable engine as far as callers can tell.
 *
 * Scrubbing the secret key. Signing copies the secret key into the WASM heap. liboqs-js's MLDSA65 class
 * frees that copy without cleansing it, so its engine here signs once more with a public throwaway key
 * to make the allocator hand out the same chunks and overwrite them (best effort, and a whole second
 * signature). So this module calls liboqs' C API on the same WASM build that class wraps
 * (@oqs/liboqs-js dist/ml-dsa-65.min.js, which exports OQS_SIG_sign and OQS_MEM_cleanse) and wipes the
 * heap copy with liboqs' own OQS_MEM_cleanse before freeing it, on every path: deterministic, and
 * about half the cost. liboqs' ML-DSA leaves none of the key on its stack either: after signatures,
 * no 16-byte window of the key's secret parts (K, s1, s2, t0 encoded, or s1/s2 unpacked) is left
 * anywhere in the module's memory (test/unit/identity-scrub.test.ts searches it; without the cleanse
 * it finds dozens). A build that lacks those exports gets the MLDSA65 class with the throwaway-key
 * scrub.
 */
interface IdentityEngine {
  sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array;
  verify(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean;
  /** For tests: the module memory signing used (undefined for the MLDSA65 class, which hides it). */
  memory(): Uint8Array | undefined;
}
let engine: IdentityEngine | undefined;
let loading: Promise<void> | undefined;

/** The few exports of the liboqs WASM module (Emscripten) this engine calls. */
interface OqsModule {
  HEAPU8: Uint8Array;
  _OQS_init(): void;
  _OQS_SIG_new(namePtr: number): number;
  _OQS_SIG_sign(sig: number, sigPtr: number, sigLenPtr: number, msgPtr: number, msgLen: number, skPtr: number): number;
  _OQS_SIG_verify(sig: number, msgPtr: number, msgLen: number, sigPtr: number, sigLen: number, pkPtr: number): number;
  _OQS_MEM_cleanse(ptr: number, len: number): void;
  _malloc(n: number): number;
  _free(ptr: number): void;
  setValue(ptr: number, value: number, type: string): void;
  getValue(ptr: number, type: string): number;
}

/** The liboqs-js WASM build of ML-DSA-65, found where Node resolves @oqs/liboqs-js from here. */
async function loadOqsModule(): Promise<OqsModule | undefined> {
  const require = createRequire(import.meta.url);
  for (const dir of require.resolve.paths('@oqs/liboqs-js') ?? []) {
    const file = join(dir, '@oqs', 'liboqs-js', 'dist', 'ml-dsa-65.min.js');
    if (!existsSync(file)) continue;
    const factory = (await import(pathToFileURL(file).href)).default as () => Promise<OqsModule>;
    const m = await factory();
    const needs = ['_OQS_init', '_OQS_SIG_new', '_OQS_SIG_sign', '_OQS_SIG_verify', '_OQS_MEM_cleanse', '_malloc', '_free', 'setValue', 'getValue'] as const;
    return needs.every((f) => typeof m[f] === 'function') && m.HEAPU8 instanceof Uint8Array ? m : undefined;
  }
  return undefined;
}

function alloc(m: OqsModule, n: number): number {
  const p = m._malloc(Math.max(1, n));
  if (!p) throw new TesseraError(ErrorCode.BadState, 'identity: liboqs is out of memory');
  return p;
}

function oqsEngine(m: OqsModule): IdentityEngine {
  m._OQS_init();
  const name = new TextEncoder().encode('ML-DSA-65\0');
  const namePtr = alloc(m, name.length);
  m.HEAPU8.set(name, namePtr);
  const sig = m._OQS_SIG_new(namePtr);
  m._free(namePtr);
  if (!sig) throw new TesseraError(ErrorCode.BadState, 'identity: liboqs has no ML-DSA-65');
  return {
    sign(message, secretKey) {
      const ptrs: number[] = [];
      let skPtr = 0;
      try {
        const sigPtr = alloc(m, IDENTITY_SIGNATURE_LENGTH);
        ptrs.push(sigPtr);
        const lenPtr = alloc(m, 8); // size_t, written as 64 bits as liboqs-js does
        ptrs.push(lenPtr);
        const msgPtr = alloc(m, message.length);
        ptrs.push(msgPtr);
        skPtr = alloc(m, secretKey.length);
        m.HEAPU8.set(message, msgPtr);
        m.HEAPU8.set(secretKey, skPtr);
        m.setValue(lenPtr, IDENTITY_SIGNATURE_LENGTH, 'i64');
        if (m._OQS_SIG_sign(sig, sigPtr, lenPtr, msgPtr, message.length, skPtr) !== 0) throw new Error('OQS_SIG_sign failed');
        const len = m.getValue(lenPtr, 'i32');
        if (len !== IDENTITY_SIGNATURE_LENGTH) throw new Error('unexpected signature length');
        return m.HEAPU8.slice(sigPtr, sigPtr + len);
      } finally {
        if (skPtr) {
          m._OQS_MEM_cleanse(skPtr, secretKey.length);
          m._free(skPtr);
        }
        for (const p of ptrs) m._free(p);
      }
    },
    verify(message, signature, publicKey) {
      const ptrs: number[] = [];
      try {
        const msgPtr = alloc(m, message.length);
        ptrs.push(msgPtr);
        const sigPtr = alloc(m, signature.length);
        ptrs.push(sigPtr);
        const pkPtr = alloc(m, publicKey.length);
        ptrs.push(pkPtr);
        m.HEAPU8.set(message, msgPtr);
        m.HEAPU8.set(signature, sigPtr);
        m.HEAPU8.set(publicKey, pkPtr);
        return m._OQS_SIG_verify(sig, msgPtr, message.length, sigPtr, signature.length, pkPtr) === 0;
      } finally {
        for (const p of ptrs) m._free(p);
      }
    },
    memory: () => m.HEAPU8,
  };
}

const SCRUB_MESSAGE = new Uint8Array(32);

/** liboqs-js accepts only plain Uint8Arrays (not Buffer or other subclasses): copy those. */
function plain(b: Uint8Array): Uint8Array {
  return b.constructor === Uint8Array ? b : new Uint8Array(b);
}

/** The MLDSA65 class of liboqs-js, with the throwaway-key scrub after every signature. */
function classEngine(oqs: MLDSA65): IdentityEngine {
  const scrubSecretKey = ml_dsa65.keygen(new Uint8Array(32)).secretKey;
  return {
    sign(message, secretKey) {
      try {
        return oqs.sign(plain(message), plain(secretKey));
      } finally {
        try {
          oqs.sign(SCRUB_MESSAGE, scrubSecretKey);
        } catch {
          // best effort
        }
      }
    },
    verify: (message, signature, publicKey) => oqs.verify(plain(message), plain(signature), plain(publicKey)),
    memory: () => undefined,
  };
}

/** Load the liboqs ML-DSA-65 engine (idempotent). Until it is loaded, noble signs and verifies. */
export function loadIdentityEngine(): Promise<void> {
  loading ??= (async () => {
    const m = await loadOqsModule().catch(() => undefined);
    engine = Object.freeze(m ? oqsEngine(m) : classEngine(await createMLDSA65()));
  })().catch(() => {
    loading = undefined; // stay on noble; a later call may retry
  });
  return loading;
}

export function identityEngineName(): 'liboqs' | 'noble' {
  return engine ? 'liboqs' : 'noble';
}

/** For tests: the WASM memory the liboqs engine signs in (to check no key is left in it), if it is visible. */
export function identityEngineMemory(): Uint8Array | undefined {
  return engine?.memory();
}

export function identitySign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== IDENTITY_SECRET_KEY_LENGTH) {
    throw new TesseraError(ErrorCode.BadInput, 'identity secret key: wrong length');
  }
  const e = engine;
  if (!e) return ml_dsa65.sign(message, secretKey);
  try {
    return e.sign(message, secretKey);
  } catch (err) {
    if (err instanceof TesseraError && err.code === ErrorCode.BadState) throw err;
    throw new TesseraError(ErrorCode.BadInput, 'identity secret key: signing failed');
  }
}

/** Never throws: a malformed key or signature is simply not valid. */
export function identityVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== IDENTITY_PUBLIC_KEY_LENGTH) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== IDENTITY_SIGNATURE_LENGTH) return false;
  try {
    return engine ? engine.verify(message, signature, publicKey) : ml_dsa65.verify(signature, message, publicKey);
  } catch {
    return false;
  }
}
