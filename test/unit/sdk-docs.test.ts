/**
 * docs/sdk.md covers the SDK: every value the package entry (sdk/index.ts) exports, and every public
 * method of Cluster and NodeClient, is named in the guide.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as sdk from '../../sdk/index.js';

const doc = readFileSync(new URL('../../docs/sdk.md', import.meta.url), 'utf8');

/** TypeScript-private members are on the prototype at run time too: these are the ones the SDK keeps private. */
const PRIVATE = new Set([
  'liveNodes', 'keyAndPlayers', 'withLivePlayers', 'kemKey', 'nameSilentNodes', 'vetCulprits', 'versionsHeld', 'keyInfo', 'forgetKeyInfo',
  'forgetKey', 'presignOn', 'presignedFailed', 'signTwoRound', 'signWith', 'decapsulateSecret', 'decapsulateWith', 'decapsulateOnce',
  'catchUpEpoch', 'checkShareAnswer', 'node', 'run', 'refill', 'warmEcdsaPresignatures', 'ecdsaPresignedFailed', 'holdersOf',
]);

describe('docs/sdk.md', () => {
  it('names every value the package entry exports', () => {
    expect(Object.keys(sdk).filter((name) => !doc.includes(name))).toEqual([]);
  });

  it('names every public method of Cluster and NodeClient', () => {
    for (const C of [sdk.Cluster, sdk.NodeClient]) {
      const methods = Object.getOwnPropertyNames(C.prototype).filter((k) => k !== 'constructor' && !PRIVATE.has(k));
      expect(methods.filter((m) => !doc.includes(`.${m}`)), C.name).toEqual([]);
    }
  });
});
