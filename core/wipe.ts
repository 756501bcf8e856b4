/**
 * Wipe probes: a way to check that a one-use round state wiped its secret bytes, without handing
 * anyone the bytes themselves.
 *
 * A round state (core/jointfeldman.ts, core/sign.ts) keeps its secrets in a private field. Its probe
 * captures references to the secret byte arrays the state holds at the moment the probe is made and
 * answers only two questions about them: how many there are and whether they are all zeros now. The
 * wipe test takes a probe before it makes a round fail, then checks `allZero()` (issue 9 item 11:
 * "secret round state is wiped on every exit path, and a test shows it").
 *
 * Only byte arrays can be wiped. Secret scalars that exist as bigints (inside a round function, while
 * it computes) cannot be overwritten in JavaScript; the states therefore keep secrets between rounds
 * as bytes, and bigints live only for the duration of one round function call.
 */

import { ErrorCode, TesseraError } from './errors.js';

export interface WipeProbe {
  /** How many secret byte arrays the state held when the probe was made. */
  readonly count: number;
  /** True when every one of those arrays is all zeros (or empty). */
  allZero(): boolean;
}

/** A probe over `arrays` (references, not copies: the point is to see them wiped in place). */
export function wipeProbe(arrays: readonly Uint8Array[]): WipeProbe {
  const held = [...arrays];
  return Object.freeze({
    count: held.length,
    allZero: () => held.every((a) => a.every((b) => b === 0)),
  });
}

/**
 * Wipe point-to-point share messages ({ share }: DKG / refresh round 2, reshare sub-shares) once sent
 * or used: they are secret in transit. Round functions never wipe the caller's maps; each driver calls
 * this in its `finally` for the shares it dealt and the shares it received. Tolerates anything.
 */
export function wipeShareMessages(shares: ReadonlyMap<number, { readonly share: Uint8Array }> | undefined): void {
  if (!(shares instanceof Map)) return;
  for (const m of shares.values()) {
    const v = typeof m === 'object' && m !== null ? (m as { share?: unknown }).share : undefined;
    if (v instanceof Uint8Array) v.fill(0);
  }
}

/**
 * The one-use round state every multi-round protocol of core/ keeps between rounds (joint-Feldman DKG
 * and refresh, resharing, FROST signing sessions). Its contents live in a private field, so logging or
 * serialising a state shows only what its subclass's toJSON says; taking it (which every round
 * function does first) empties it, so a state is used exactly once and reuse throws BAD_STATE.
 */
export abstract class OneUseState<Inner> {
  #inner: Inner | undefined;

  protected constructor(inner: Inner) {
    this.#inner = inner;
  }

  /** True once a round function has used this state (whether it succeeded or threw). */
  get consumed(): boolean {
    return this.#inner === undefined;
  }

  /** Empty `state` and return what it held: undefined once used. */
  protected static empty<I>(state: OneUseState<I>): I | undefined {
    const inner = state.#inner;
    state.#inner = undefined;
    return inner;
  }

  /** What `state` holds now, without using it (the wipe probes only). */
  protected static contents<I>(state: OneUseState<I>): I | undefined {
    return state.#inner;
  }

  /** Empty `state` for round function `fn`: BAD_STATE if it was used already. */
  protected static use<I>(state: OneUseState<I>, fn: string): I {
    const inner = OneUseState.empty(state);
    if (inner === undefined) throw new TesseraError(ErrorCode.BadState, `${fn}: state already used`);
    return inner;
  }
}
