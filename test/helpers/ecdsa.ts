/**
 * Helpers for threshold ECDSA tests (issue 12): independent verifiers of what a node or the core
 * returns (node:crypto, i.e. OpenSSL, and libsecp256k1 through tiny-secp256k1 with public-key
 * recovery), and an in-process harness for the core (core/ecdsa/setup.ts + core/ecdsa/session.ts):
 * the five pairwise-setup rounds among all parties, and the signing rounds among any signer set.
 */
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { recover as tinyRecover, verify as tinyVerify } from 'tiny-secp256k1';
import { expect } from 'vitest';
import { isTesseraError, type TesseraError } from '../../core/errors.js';
import {
  ecdsaCombine,
  ecdsaDiscard,
  ecdsaPresign,
  ecdsaRound1,
  ecdsaRound2,
  ecdsaRound3,
  ecdsaSessionId,
  type EcdsaSession1,
  type EcdsaSession2,
} from '../../core/ecdsa/session.js';
import {
  encodePairwiseSetup,
  setupBinding,
  setupFinish,
  setupRound1,
  setupRound2,
  setupRound3,
  setupRound4,
  setupRound5,
  ecdsaSigningKey,
  wipeEcdsaSigningKey,
  type SetupState,
} from '../../core/ecdsa/setup.js';
import type { EcdsaCurveName, FinalEcdsaSignature } from '../../core/ecdsa/signature.js';
import type { Presignature } from '../../core/ecdsa/dkls23.js';
import type { KeyShare } from '../../core/types.js';

export type EcdsaSuiteId = 'ecdsa-secp256k1' | 'ecdsa-p256';
export const ECDSA_SUITES: readonly EcdsaSuiteId[] = ['ecdsa-secp256k1', 'ecdsa-p256'];

export const curveOf = (suite: EcdsaSuiteId): EcdsaCurveName => (suite === 'ecdsa-p256' ? 'P-256' : 'secp256k1');
const hexToBytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
const bytesToHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** node:crypto's key object for a SEC 1 (compressed or not) public key of the suite's curve, through a JWK. */
export function nodePublicKey(suite: EcdsaSuiteId, sec1: Uint8Array): KeyObject {
  const point = suite === 'ecdsa-p256' ? p256.Point.fromBytes(sec1) : secp256k1.Point.fromBytes(sec1);
  const raw = point.toBytes(false);
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv: suite === 'ecdsa-p256' ? 'P-256' : 'secp256k1', x: b64(raw.subarray(1, 33)), y: b64(raw.subarray(33)) }, format: 'jwk' });
}

/** The SEC 1 compressed encoding of a node:crypto EC public key. */
export function compressedOf(suite: EcdsaSuiteId, key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  const raw = Uint8Array.of(4, ...Buffer.from(jwk.x!, 'base64url'), ...Buffer.from(jwk.y!, 'base64url'));
  const point = suite === 'ecdsa-p256' ? p256.Point.fromBytes(raw) : secp256k1.Point.fromBytes(raw);
  return bytesToHex(point.toBytes(true));
}

/**
 * Every check a standard verifier makes of a node's signature over SHA-256(message) under `publicKey`
 * (SEC 1 compressed hex): node:crypto with DER and with IEEE P1363 (compact r‖s), low s, a recovery id
 * in 0..3; for secp256k1 also libsecp256k1's verify, and its recovery with that id gives the key.
 */
export function expectStandardEcdsa(
  suite: EcdsaSuiteId,
  r: { signature: string; der?: string; recoveryId?: number },
  message: Uint8Array,
  publicKey: string,
  key: KeyObject = nodePublicKey(suite, hexToBytes(publicKey)),
): void {
  const compact = hexToBytes(r.signature);
  expect(compact.length).toBe(64);
  expect(nodeVerify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, compact), 'node:crypto, ieee-p1363').toBe(true);
  expect(typeof r.der).toBe('string');
  expect(nodeVerify('sha256', message, key, hexToBytes(r.der!)), 'node:crypto, DER').toBe(true);
  const n = suite === 'ecdsa-p256' ? p256.Point.CURVE().n : secp256k1.Point.CURVE().n;
  expect(BigInt('0x' + r.signature.slice(64)) <= n >> 1n, 'low s').toBe(true);
  expect(r.recoveryId).toBeGreaterThanOrEqual(0);
  expect(r.recoveryId).toBeLessThanOrEqual(3);
  if (suite === 'ecdsa-secp256k1') {
    const digest = sha256(message);
    expect(tinyVerify(digest, hexToBytes(publicKey), compact, true), 'tiny-secp256k1 verify').toBe(true);
    const recovered = tinyRecover(digest, compact, r.recoveryId as 0 | 1 | 2 | 3, true);
    expect(recovered && bytesToHex(recovered), 'tiny-secp256k1 recovery with the recovery id').toBe(publicKey);
  }
}

/** Every k-subset of 1..n, in lexicographic order. */
export function subsets(n: number, k: number): number[][] {
  const out: number[][] = [];
  const walk = (start: number, acc: number[]) => {
    if (acc.length === k) return void out.push([...acc]);
    for (let i = start; i <= n; i++) walk(i + 1, [...acc, i]);
  };
  walk(1, []);
  return out;
}

// ---------------------------------------------------------------------------------------------
// In-process core harness

type Inbox = Map<number, Map<number, Uint8Array>>; // to -> from -> bytes

/** A message in flight from `from` to `to` after setup round `round` (1..5); returns what is delivered. */
export type SetupTamper = (round: number, from: number, to: number, b: Uint8Array) => Uint8Array;

function route(outs: Map<number, Map<number, Uint8Array>>, round: number, tamper?: SetupTamper): Inbox {
  const inbox: Inbox = new Map();
  for (const [from, out] of outs) {
    for (const [to, b] of out) {
      if (!inbox.has(to)) inbox.set(to, new Map());
      inbox.get(to)!.set(from, tamper ? tamper(round, from, to, b) : b);
    }
  }
  return inbox;
}

/**
 * The five pairwise-setup rounds among parties 1..n (or among the given committee, a key's node
 * indices), as the node runs them after a DKG or refresh; party i's encoded setup at key i. `tamper`
 * may change any message in flight.
 */
export function runPairwiseSetup(curve: EcdsaCurveName, n: number | readonly number[], tamper?: SetupTamper): Map<number, Uint8Array> {
  const binding = setupBinding(curve, randomBytes(16), randomBytes(32));
  const parties = typeof n === 'number' ? Array.from({ length: n }, (_, k) => k + 1) : [...n];
  const states = new Map<number, SetupState>();
  let outs = new Map<number, Map<number, Uint8Array>>();
  for (const i of parties) {
    const r = setupRound1(curve, binding, i, parties.filter((j) => j !== i));
    states.set(i, r.state);
    outs.set(i, r.out);
  }
  for (const [k, step] of [setupRound2, setupRound3, setupRound4, setupRound5].entries()) {
    const inbox = route(outs, k + 1, tamper);
    outs = new Map();
    for (const i of parties) outs.set(i, step(states.get(i)!, inbox.get(i)!).out);
  }
  const inbox = route(outs, 5, tamper);
  return new Map(parties.map((i) => [i, encodePairwiseSetup(setupFinish(states.get(i)!, inbox.get(i)!))]));
}

/** `keys` (every holder's, in any order) with a fresh pairwise setup each among their holders, as the node stores them. */
export function withPairwiseSetup(suite: EcdsaSuiteId, keys: readonly KeyShare[]): KeyShare[] {
  const pairwise = runPairwiseSetup(curveOf(suite), keys.map((k) => k.secret.index).sort((a, b) => a - b));
  return keys.map((k) => ({ publicKey: k.publicKey, secret: { ...k.secret, pairwise: pairwise.get(k.secret.index)! } }));
}

/** What one signing run ended in: the signature of every signer that finished, and the errors of those that aborted. */
export interface EcdsaSignOutcome {
  readonly sigs: Map<number, FinalEcdsaSignature>;
  readonly errors: Map<number, TesseraError>;
}

/**
 * Sign `digest` in process with the given key shares (one per signer, each with its own package), the
 * rounds of core/ecdsa/session.ts with every message delivered as sent. A TesseraError of a signer in
 * any step is collected and the run stops after that step (the others would miss its next message on
 * a real channel); any other error is rethrown. Every state left over is wiped.
 */
export function signInProcess(curve: EcdsaCurveName, keys: readonly KeyShare[], digest: Uint8Array): EcdsaSignOutcome {
  const signers = keys.map((k) => k.secret.index);
  const sid = ecdsaSessionId(randomBytes(16), randomBytes(32));
  const errors = new Map<number, TesseraError>();
  const sigs = new Map<number, FinalEcdsaSignature>();
  const each = <T>(f: (i: number) => T): Map<number, T> => {
    const out = new Map<number, T>();
    for (const i of signers) {
      try {
        out.set(i, f(i));
      } catch (e) {
        if (!isTesseraError(e)) throw e;
        errors.set(i, e);
      }
    }
    return out;
  };
  const toMe = <M>(i: number, outs: Map<number, { out: Map<number, M> }>) => new Map(signers.filter((j) => j !== i).map((j) => [j, outs.get(j)!.out.get(i)!]));
  const sk = each((i) => ecdsaSigningKey(curve, keys[signers.indexOf(i)]!));
  const leftover: (EcdsaSession1 | EcdsaSession2 | Presignature)[] = [];
  try {
    if (errors.size) return { sigs, errors };
    const r1 = each((i) => ecdsaRound1(sk.get(i)!, sid, signers));
    if (errors.size) return (leftover.push(...[...r1.values()].map((r) => r.state)), { sigs, errors });
    const r2 = each((i) => ecdsaRound2(r1.get(i)!.state, toMe(i, r1)));
    if (errors.size) return (leftover.push(...[...r2.values()].map((r) => r.state)), { sigs, errors });
    const presigs = each((i) => ecdsaPresign(r2.get(i)!.state, toMe(i, r2)));
    if (errors.size) return (leftover.push(...presigs.values()), { sigs, errors });
    const r3 = each((i) => ecdsaRound3(presigs.get(i)!, digest));
    if (errors.size) return { sigs, errors };
    for (const [i, s] of each((i) => ecdsaCombine(r3.get(i)!.state, new Map(signers.filter((j) => j !== i).map((j) => [j, r3.get(j)!.broadcast])), r3.get(i)!.broadcast))) sigs.set(i, s);
    return { sigs, errors };
  } finally {
    for (const s of leftover) ecdsaDiscard(s);
    for (const k of sk.values()) wipeEcdsaSigningKey(k);
  }
}
