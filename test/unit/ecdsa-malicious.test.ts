/**
 * The threshold ECDSA parts of the malicious-node harness and the burned-setup rule, without a cluster
 * (the cluster runs: test/integration/ecdsa-malicious.test.ts):
 * - TESSERA_TEST_DEVIATIONS parses the ECDSA deviations and refuses a setup round outside 1..5;
 * - each message tampering changes exactly what it says, and nothing without the deviation;
 * - node/sessions/ecdsa-burn.ts: a burned pair is refused (BAD_STATE, naming the peer and the failed
 *   session) at that key version and epoch only; the next epoch (a refresh) clears it; the marker
 *   survives reopening the store.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import type { EcdsaRound2Msg } from '../../core/messages.js';
import { ecdsaRound2For, ecdsaRound3For, ecdsaSignCheat, parseDeviations, setupMessageFor } from '../../node/sessions/deviations.js';
import { BurnedSetups, ECDSA_BURN_NAMESPACE, burnedSetups } from '../../node/sessions/ecdsa-burn.js';
import { useTempStores } from '../helpers/temp-store.js';

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe('TESSERA_TEST_DEVIATIONS: threshold ECDSA', () => {
  it('parses every ECDSA deviation', () => {
    expect(
      parseDeviations(
        'ecdsa-setup-tamper-to:1+2,ecdsa-setup-round:4,ecdsa-mul-cheat-to:1,ecdsa-mul-probe-to:2,ecdsa-kos-cheat-to:3,ecdsa-bad-gamma-u-to:1,ecdsa-bad-gamma-v-to:2,ecdsa-bad-psi-to:1,ecdsa-bad-decommit-to:2,ecdsa-bad-share-to:1+3',
      ),
    ).toEqual({
      ecdsaSetupTamperTo: [1, 2],
      ecdsaSetupRound: 4,
      ecdsaMulCheatTo: [1],
      ecdsaMulProbeTo: [2],
      ecdsaKosCheatTo: [3],
      ecdsaBadGammaUTo: [1],
      ecdsaBadGammaVTo: [2],
      ecdsaBadPsiTo: [1],
      ecdsaBadDecommitTo: [2],
      ecdsaBadShareTo: [1, 3],
    });
  });

  it.each(['ecdsa-setup-round:0', 'ecdsa-setup-round:6', 'ecdsa-setup-round:x', 'ecdsa-setup-round', 'ecdsa-mul-cheat-to', 'ecdsa-bad-share-to:0'])('refuses %j with a clear error', (env) => {
    expect(() => parseDeviations(env)).toThrow(/TESSERA_TEST_DEVIATIONS/);
  });

  it('the setup tampering flips one bit, in the named round and to the named peers only', () => {
    const msg = bytes(9, 0x40);
    const d = parseDeviations('ecdsa-setup-tamper-to:2,ecdsa-setup-round:3');
    expect(setupMessageFor(d, 3, 1, msg)).toBe(msg);
    expect(setupMessageFor(d, 2, 2, msg)).toBe(msg);
    const changed = setupMessageFor(d, 3, 2, msg);
    expect([...changed].filter((b, k) => b !== msg[k])).toEqual([0x41]);
    expect(msg).toEqual(bytes(9, 0x40)); // the original is not changed in place
    // Round 1 unless named.
    expect(setupMessageFor(parseDeviations('ecdsa-setup-tamper-to:2'), 1, 2, msg)).not.toEqual(msg);
    expect(setupMessageFor(undefined, 1, 2, msg)).toBe(msg);
  });

  it('round 2 and 3 tampering change the named field for the named peers only', () => {
    const m: EcdsaRound2Msg = { echo: bytes(32, 1), R: bytes(33, 2), salt: bytes(32, 3), gammaU: bytes(33, 2), gammaV: bytes(33, 3), psi: bytes(32, 4), mul: bytes(8, 5) };
    expect(ecdsaRound2For(undefined, 1, m)).toBe(m);
    expect(ecdsaRound2For(parseDeviations('ecdsa-bad-psi-to:2'), 1, m)).toBe(m);
    expect(ecdsaRound2For(parseDeviations('ecdsa-bad-gamma-u-to:1'), 1, m)).toEqual({ ...m, gammaU: Uint8Array.of(3, ...bytes(32, 2)) }); // the negated point
    expect(ecdsaRound2For(parseDeviations('ecdsa-bad-gamma-v-to:1'), 1, m)).toEqual({ ...m, gammaV: Uint8Array.of(2, ...bytes(32, 3)) });
    expect(ecdsaRound2For(parseDeviations('ecdsa-bad-psi-to:1'), 1, m)).toEqual({ ...m, psi: Uint8Array.of(...bytes(31, 4), 5) });
    expect(ecdsaRound2For(parseDeviations('ecdsa-bad-decommit-to:1'), 1, m)).toEqual({ ...m, salt: Uint8Array.of(2, ...bytes(31, 3)) });
    const r3 = { u: bytes(32, 6), w: bytes(32, 7) };
    expect(ecdsaRound3For(parseDeviations('ecdsa-bad-share-to:2'), 1, r3)).toBe(r3);
    expect(ecdsaRound3For(parseDeviations('ecdsa-bad-share-to:1'), 1, r3)).toEqual({ u: Uint8Array.of(...bytes(31, 6), 7), w: r3.w });
  });

  it('F_RVOLE cheats only for the named peers, and none without the deviation', () => {
    expect(ecdsaSignCheat(undefined)).toBeUndefined();
    expect(ecdsaSignCheat(parseDeviations('ecdsa-bad-psi-to:1'))).toBeUndefined();
    const cheat = ecdsaSignCheat(parseDeviations('ecdsa-mul-cheat-to:1,ecdsa-mul-probe-to:2,ecdsa-kos-cheat-to:3'))!;
    expect(cheat.mulAlice!(1)!.correlation!(5, 0, 10n)).toBe(11n); // every OT
    expect(cheat.mulAlice!(1)!.correlation!(5, 1, 10n)).toBe(10n);
    expect(cheat.mulAlice!(2)!.correlation!(0, 0, 10n)).toBe(11n); // OT 0 only
    expect(cheat.mulAlice!(2)!.correlation!(1, 0, 10n)).toBe(10n);
    expect(cheat.mulAlice!(3)).toBeUndefined();
    expect(cheat.mulBob!(1)).toBeUndefined();
    const columns = new Uint8Array(128 * 4);
    cheat.mulBob!(3)!.corruptColumns!(columns);
    expect(columns.reduce((a, b) => a + b, 0)).toBe(128); // one bit in each of the κ columns
  });
});

describe('burned pairwise setups (node/sessions/ecdsa-burn.ts)', () => {
  const stores = useTempStores('tessera-ecdsa-burn-');
  const scope = { tenant: 't1', keyId: 'k', version: 2, epoch: 3 };

  it('a burned pair is refused at that version and epoch only; the next epoch clears it; it survives a reopen', async () => {
    const dataDir = join(stores.dir(), 'data');
    const store = await stores.open(dataDir);
    const burns = burnedSetups(store);
    expect(burnedSetups(store)).toBe(burns);
    await burns.refuse(scope, [1, 3], 1); // nothing burned yet
    await burns.burn(scope, [3], 'ab'.repeat(16));
    const e = await burns.refuse(scope, [1, 3], 1).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TesseraError);
    expect((e as TesseraError).code).toBe(ErrorCode.BadState);
    expect((e as TesseraError).culprits).toEqual([]);
    expect((e as TesseraError).message).toMatch(`the pairwise setup with node 3 was burned by a failed check in session ${'ab'.repeat(16)}; refresh the key`);
    // Other signers, another version, another tenant, the next epoch: not refused.
    await burns.refuse(scope, [1, 2], 1);
    await burns.refuse({ ...scope, version: 1 }, [1, 3], 1);
    await burns.refuse({ ...scope, tenant: 't2' }, [1, 3], 1);
    await burns.refuse({ ...scope, epoch: 4 }, [1, 3], 1);
    // The marker names the peer, not this node: as seen by a node 3, only a burned peer 1 would count.
    expect(await burns.burned(scope, [1, 3], 3)).toEqual([]);
    await store.close();

    const reopened = await stores.open(dataDir);
    expect(await burnedSetups(reopened).burned(scope, [1, 2, 3], 1)).toEqual([{ peer: 3, session: 'ab'.repeat(16) }]);
    expect(() => new BurnedSetups(undefined as never)).toThrow(/records namespace required/);
    expect(ECDSA_BURN_NAMESPACE).toBe('ecdsa-burn');
  });
});
