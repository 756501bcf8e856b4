/**
 * Sealed nodes (issue 15, the shamir-unseal KEK provider; node/sealed.ts): initialise a node, submit
 * operator shares until it unseals, seal it again, and read its seal state. One node at a time: unseal is
 * a per-node act of that node's operators.
 *
 * Share files (`tessera unseal init` writes one per operator, mode 0600; JSON, bytes lowercase hex):
 *   { "format": "tessera-unseal-share", "version": 1, "node": 3, "shareIndex": 2, "threshold": 2,
 *     "operators": 3, "keyCheckValue": "k-…", "checkValue": "…",
 *     "share": "…" }                                           a plain share (no operator keys given), or
 *     "wrapped": { "kem", "wrappingKeyFingerprint", "enc", "ciphertext" }   sealed to the operator's key
 * A wrapped share is opened here, by the operator's SDK with their wrapping key pair file
 * (sdk/keyfiles.ts, `tessera wrapping-key`): the node only ever sees the plain share, over its API.
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { fromHex, toHex, zeroize } from '../core/bytes.js';
import { wrappingKeyFingerprint } from '../core/bundle.js';
import { UNSEAL_SHARE_LENGTH, unsealShareAad } from '../core/unseal.js';
import { isWrapKem, openFromSender, wrapKemId, type WrappingKeyPair } from '../core/wrap.js';
import type { KekRotatePrepareRequest, KekRotatePrepareResponse, UnsealInitRequest, UnsealInitResponse, UnsealResponse, UnsealStatusResponse } from '../contract/http.js';
import { DEFAULT_TIMEOUT_MS, TesseraClientError, isUnreachable, requestJson, type HttpTarget } from './http.js';

export type { KekRotatePrepareRequest, KekRotatePrepareResponse, UnsealInitResponse, UnsealResponse, UnsealStatusResponse };

export const UNSEAL_SHARE_FORMAT = 'tessera-unseal-share';

/** One operator's share file, as written and read (see the header). */
export interface UnsealShareFile {
  format: typeof UNSEAL_SHARE_FORMAT;
  version: 1;
  node: number;
  shareIndex: number;
  threshold: number;
  operators: number;
  keyCheckValue: string;
  checkValue: string;
  share?: string;
  wrapped?: { kem: 'ml-kem-768' | 'x-wing'; wrappingKeyFingerprint: string; enc: string; ciphertext: string };
}

/** A node's unseal routes: contract/http.ts ROUTES.unsealStatus, unsealInit, unseal, seal. */
export class UnsealClient {
  private readonly target: HttpTarget;

  constructor(o: { url: string; apiKey: string; index: number; ca?: string | Buffer; timeoutMs?: number }) {
    this.target = { url: o.url, apiKey: o.apiKey, node: o.index, timeoutMs: o.timeoutMs ?? DEFAULT_TIMEOUT_MS, ...(o.ca !== undefined ? { ca: o.ca } : {}) };
  }

  /** Sealed or not, and how many shares are in (any API key of the node's config). */
  status(): Promise<UnsealStatusResponse> {
    return requestJson(this.target, 'GET', '/v1/unseal');
  }

  /**
   * Initialise a shamir-unseal node that has no data dir (admin): the answer holds the shares, once.
   * Write them with unsealShareFiles.
   */
  init(request: UnsealInitRequest): Promise<UnsealInitResponse> {
    return requestJson(this.target, 'POST', '/v1/unseal/init', request);
  }

  /**
   * Submit one share (admin): a share file's contents, opened with the operator's wrapping key pair when
   * it is wrapped. The K-th valid share answers state 'unsealing'; waitUnsealed then waits for the node.
   */
  async unseal(file: UnsealShareFile, wrappingKey?: WrappingKeyPair): Promise<UnsealResponse> {
    const share = await openUnsealShare(file, wrappingKey);
    try {
      return await requestJson<UnsealResponse>(this.target, 'POST', '/v1/unseal', { shareIndex: file.shareIndex, share: toHex(share) });
    } finally {
      zeroize(share);
    }
  }

  /**
   * Phase 1 of rotating an unsealed node's KEK (admin): the node splits its next KEK into new operator
   * shares and answers them once (write them with unsealShareFiles, as init's). K and N default to the
   * node's current ones. Then NodeClient.rotateKek (phase 2) moves every record; the old shares unseal
   * the node until it ends, the new ones after. Asked again before phase 2, the same next KEK is split
   * into fresh shares (the earlier ones stop matching).
   */
  prepareKekRotation(request: KekRotatePrepareRequest = {}): Promise<KekRotatePrepareResponse> {
    return requestJson(this.target, 'POST', '/v1/admin/kek/rotate/prepare', request);
  }

  /** Seal a running node again (admin): it stops serving and wipes its KEK. */
  seal(): Promise<UnsealStatusResponse> {
    return requestJson(this.target, 'POST', '/v1/seal', {});
  }

  /**
   * Poll the status until the node reports `state` (default 'unsealed'); while it rebinds its port between
   * the sealed front end and the full node a refused connection is expected and retried. Throws the
   * node's lastError when an unseal fell back to sealed, or on the deadline.
   */
  async waitFor(state: UnsealStatusResponse['state'] = 'unsealed', timeoutMs = 60_000): Promise<UnsealStatusResponse> {
    const deadline = Date.now() + timeoutMs;
    let last: string | undefined;
    for (;;) {
      let s: UnsealStatusResponse | undefined;
      try {
        s = await requestJson<UnsealStatusResponse>({ ...this.target, timeoutMs: Math.min(5000, this.target.timeoutMs ?? DEFAULT_TIMEOUT_MS) }, 'GET', '/v1/unseal');
      } catch (e) {
        // The port is closed for a moment while the node changes servers, and a closing server answers
        // 503: both are retried.
        if (!isUnreachable(e) && !(e instanceof TesseraClientError && (e.code === 'UNAVAILABLE' || e.status === 503))) throw e;
        last = (e as Error).message;
      }
      if (s?.state === state) return s;
      if (s && state === 'unsealed' && s.state === 'sealed' && s.lastError !== undefined) {
        throw new TesseraClientError('UNAVAILABLE', `node ${s.node} stayed sealed: ${s.lastError}`, { node: s.node });
      }
      if (s) last = `state ${s.state}`;
      if (Date.now() > deadline) throw new TesseraClientError('UNAVAILABLE', `node ${this.target.node}: not ${state} after ${timeoutMs} ms (${last ?? 'no answer'})`, { ...(this.target.node !== undefined ? { node: this.target.node } : {}) });
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** The share files of an init or prepareKekRotation answer, operator i's at [i - 1] (write each mode 0600: writeUnsealShareFile). */
export function unsealShareFiles(init: Pick<UnsealInitResponse, 'node' | 'threshold' | 'operators' | 'keyCheckValue' | 'shares'>): UnsealShareFile[] {
  return init.shares.map((s) => ({
    format: UNSEAL_SHARE_FORMAT,
    version: 1,
    node: init.node,
    shareIndex: s.index,
    threshold: init.threshold,
    operators: init.operators,
    keyCheckValue: init.keyCheckValue,
    checkValue: s.checkValue,
    ...(s.share !== undefined ? { share: s.share } : {}),
    ...(s.wrapped !== undefined ? { wrapped: s.wrapped } : {}),
  }));
}

/** Write a share file, mode 0600, never over an existing file. */
export function writeUnsealShareFile(path: string, file: UnsealShareFile): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (e) {
    throw new TesseraClientError('BAD_INPUT', `${path}: ${(e as NodeJS.ErrnoException).code === 'EEXIST' ? 'already exists (refusing to overwrite a share)' : 'cannot be created'}`);
  }
  try {
    writeSync(fd, JSON.stringify(file, null, 2) + '\n');
  } finally {
    closeSync(fd);
  }
}

/** Read and check a share file; each problem is one BAD_INPUT naming the file. */
export function readUnsealShareFile(path: string): UnsealShareFile {
  const bad = (why: string) => new TesseraClientError('BAD_INPUT', `${path}: ${why}`);
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw bad((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'is not a JSON share file');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw bad('expected a JSON object');
  const known = ['format', 'version', 'node', 'shareIndex', 'threshold', 'operators', 'keyCheckValue', 'checkValue', 'share', 'wrapped'];
  for (const k of Object.keys(o)) if (!known.includes(k)) throw bad(`unknown field ${JSON.stringify(k.slice(0, 40))}`);
  if (o.format !== UNSEAL_SHARE_FORMAT || o.version !== 1) throw bad(`not a ${UNSEAL_SHARE_FORMAT} version 1 file`);
  for (const f of ['node', 'shareIndex', 'threshold', 'operators'] as const) {
    if (!Number.isSafeInteger(o[f]) || (o[f] as number) < 1 || (o[f] as number) > 255) throw bad(`${f} must be an integer from 1 to 255`);
  }
  if ((o.shareIndex as number) > (o.operators as number)) throw bad('shareIndex is above operators');
  if (typeof o.keyCheckValue !== 'string' || !/^k-[0-9a-f]{16}$/.test(o.keyCheckValue)) throw bad('keyCheckValue must be a KEK id');
  if (typeof o.checkValue !== 'string' || !/^[0-9a-f]{64}$/.test(o.checkValue)) throw bad('checkValue must be 32 bytes of hex');
  if ((o.share === undefined) === (o.wrapped === undefined)) throw bad('needs exactly one of share and wrapped');
  if (o.share !== undefined && (typeof o.share !== 'string' || !/^[0-9a-fA-F]*$/.test(o.share) || o.share.length !== 2 * UNSEAL_SHARE_LENGTH)) throw bad(`share must be ${UNSEAL_SHARE_LENGTH} bytes of hex`);
  if (o.wrapped !== undefined) {
    const w = o.wrapped as Record<string, unknown>;
    if (typeof w !== 'object' || w === null || !isWrapKem(w.kem) || ![w.wrappingKeyFingerprint, w.enc, w.ciphertext].every((x) => typeof x === 'string' && /^([0-9a-f]{2})+$/.test(x))) {
      throw bad('wrapped must be { kem, wrappingKeyFingerprint, enc, ciphertext } (hex)');
    }
  }
  return o as unknown as UnsealShareFile;
}

/** The plain share of a share file (the caller's, to wipe); a wrapped one needs its operator's key pair. */
export async function openUnsealShare(file: UnsealShareFile, wrappingKey?: WrappingKeyPair): Promise<Uint8Array> {
  if (file.share !== undefined) return fromHex(file.share, `share ${file.shareIndex}`, UNSEAL_SHARE_LENGTH);
  const w = file.wrapped!;
  if (!wrappingKey) throw new TesseraClientError('BAD_INPUT', `share ${file.shareIndex} is sealed to an operator key (fingerprint ${w.wrappingKeyFingerprint.slice(0, 16)}…): give that key pair`);
  if (toHex(wrappingKeyFingerprint(wrappingKey.publicKey)) !== w.wrappingKeyFingerprint) {
    throw new TesseraClientError('BAD_INPUT', `share ${file.shareIndex} is sealed to another key (fingerprint ${w.wrappingKeyFingerprint.slice(0, 16)}…), not this key pair`);
  }
  const share = await openFromSender(
    wrappingKey,
    { kem: wrapKemId(w.kem), enc: fromHex(w.enc, 'wrapped.enc'), ciphertext: fromHex(w.ciphertext, 'wrapped.ciphertext') },
    unsealShareAad(file.node, file.shareIndex, file.keyCheckValue),
  );
  if (share.length !== UNSEAL_SHARE_LENGTH) {
    zeroize(share);
    throw new TesseraClientError('DECRYPTION_FAILED', `share ${file.shareIndex}: the opened share is not ${UNSEAL_SHARE_LENGTH} bytes`);
  }
  return share;
}
