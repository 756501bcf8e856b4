/**
 * DKLs23 two-party multiplication (F_RVOLE with ℓ = 2). SKELETON: bodies land in the next commit.
 */
import { ErrorCode, TesseraError } from '../errors.js';

export type CurveName = 'secp256k1' | 'P-256';

export interface MulAliceSetup {
  readonly curve: CurveName;
  readonly kind: 'mul-alice-setup';
}
export interface MulBobSetup {
  readonly curve: CurveName;
  readonly kind: 'mul-bob-setup';
}
export interface SetupBobState {
  readonly kind: 'setup-bob-state';
}
export interface SetupAliceState {
  readonly kind: 'setup-alice-state';
}
export interface MulBobState {
  readonly kind: 'mul-bob-state';
}

function todo(): never {
  throw new TesseraError(ErrorCode.BadState, 'mul: not implemented yet');
}

export function encodeMulAliceSetup(_s: MulAliceSetup): Uint8Array { return todo(); }
export function decodeMulAliceSetup(_b: Uint8Array): MulAliceSetup { return todo(); }
export function encodeMulBobSetup(_s: MulBobSetup): Uint8Array { return todo(); }
export function decodeMulBobSetup(_b: Uint8Array): MulBobSetup { return todo(); }
export function wipeMulAliceSetup(_s: MulAliceSetup): void { todo(); }
export function wipeMulBobSetup(_s: MulBobSetup): void { todo(); }

/** Setup message 1, Bob → Alice. */
export function setupBobStart(_curve: CurveName, _sid: Uint8Array): { state: SetupBobState; msg: Uint8Array } { return todo(); }
/** Setup message 2, Alice → Bob. */
export function setupAliceRespond(_curve: CurveName, _sid: Uint8Array, _msg: Uint8Array): { state: SetupAliceState; msg: Uint8Array } { return todo(); }
/** Setup message 3, Bob → Alice. */
export function setupBobChallenge(_state: SetupBobState, _msg: Uint8Array): { msg: Uint8Array } { return todo(); }
/** Setup message 4, Alice → Bob. */
export function setupAliceProve(_state: SetupAliceState, _msg: Uint8Array): { msg: Uint8Array } { return todo(); }
/** Setup message 5, Bob → Alice; Bob's setup is complete. */
export function setupBobFinish(_state: SetupBobState, _msg: Uint8Array): { setup: MulBobSetup; msg: Uint8Array } { return todo(); }
/** Alice's setup is complete. */
export function setupAliceFinish(_state: SetupAliceState, _msg: Uint8Array): MulAliceSetup { return todo(); }
/** Runs all five setup messages in one process (tests, local simulation). */
export function mulSetupLocal(_curve: CurveName, _sid: Uint8Array): { alice: MulAliceSetup; bob: MulBobSetup } { return todo(); }

export function mulBobStart(_setup: MulBobSetup, _sid: Uint8Array): { state: MulBobState; b: bigint; msg: Uint8Array } { return todo(); }
export function mulAliceRespond(
  _setup: MulAliceSetup,
  _sid: Uint8Array,
  _a: readonly [bigint, bigint],
  _msg: Uint8Array,
): { cA: [bigint, bigint]; msg: Uint8Array } { return todo(); }
export function mulBobFinish(_state: MulBobState, _msg: Uint8Array): [bigint, bigint] { return todo(); }
