/**
 * One PairKeys (node/sessions/pair-keys.ts) per node index for the channel unit tests, shared by every
 * session of a test file as a node's would be (no sweep timer: the tests move no clock here).
 */
import { PairKeys } from '../../node/sessions/pair-keys.js';

const byNode = new Map<number, PairKeys>();

export function pairKeysOf(self: number): PairKeys {
  let keys = byNode.get(self);
  if (!keys) byNode.set(self, (keys = new PairKeys({ self, sweepIntervalMs: 0 })));
  return keys;
}
