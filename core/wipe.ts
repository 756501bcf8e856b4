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
