/**
 * The shamir-unseal KEK provider's pure part (node/store/kek-unseal.ts): split K-of-N with the audited
 * library, check values that name a wrong share, the combine back to the KEK that unseal.json names,
 * unseal.json itself, the attempts file, and that K-1 shares are consistent with every KEK.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { combine } from 'shamir-secret-sharing';
import { toHex } from '../../core/bytes.js';
import { UNSEAL_SHARE_LENGTH } from '../../core/unseal.js';
import { KEK_LENGTH, RawKek } from '../../node/store/kek.js';
import {
  UNSEAL_ATTEMPTS_FILE,
  UNSEAL_FILE,
  UnsealShares,
  clearUnsealAttempts,
  makeUnsealKek,
  readUnsealAttempts,
  readUnsealMetadata,
  recordUnsealAttempt,
  shareCheckValue,
  writeUnsealMetadata,
} from '../../node/store/kek-unseal.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'tessera-unseal-unit-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function message(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

describe('split, check, combine', () => {
  it('a share is the KEK length plus its x coordinate', () => {
    expect(UNSEAL_SHARE_LENGTH).toBe(KEK_LENGTH + 1);
  });

  it('makes a 3-of-5 split whose metadata is public and whose shares combine to the KEK it names', async () => {
    const made = await makeUnsealKek(4, 3, 5, 1234);
    expect(made.shares).toHaveLength(5);
    expect(made.metadata).toMatchObject({ format: 1, node: 4, threshold: 3, shares: 5, createdAt: 1234 });
    const raw = new RawKek(made.kek, 'shamir-unseal');
    expect(made.metadata.keyCheckValue).toBe(raw.id);
    raw.close();
    made.shares.forEach((s, i) => expect(made.metadata.checkValues[i]).toBe(shareCheckValue(4, i + 1, s)));
    // Nothing secret in the metadata: neither the KEK nor any share, in any encoding.
    const text = JSON.stringify(made.metadata);
    for (const secret of [made.kek, ...made.shares]) expect(text).not.toContain(toHex(secret));
    expect(toHex(await combine([made.shares[4]!, made.shares[0]!, made.shares[2]!]))).toBe(toHex(made.kek));
  });

  it('K-1 shares do not unseal, the K-th does; duplicates, tampered shares and shares of another init are named', async () => {
    const made = await makeUnsealKek(2, 3, 4);
    const other = await makeUnsealKek(2, 3, 4);
    const u = new UnsealShares(made.metadata);
    expect(await u.submit(1, toHex(made.shares[0]!))).toBeUndefined();
    expect(await message(u.submit(1, toHex(made.shares[0]!)))).toMatch(/^share 1 was already submitted/);
    const tampered = Uint8Array.from(made.shares[2]!);
    tampered[5]! ^= 0x01;
    expect(await message(u.submit(3, toHex(tampered)))).toMatch(/^share 3 does not match its check value/);
    expect(await message(u.submit(3, toHex(other.shares[2]!)))).toMatch(/^share 3 does not match its check value/);
    // A valid share under the wrong index is named too.
    expect(await message(u.submit(4, toHex(made.shares[1]!)))).toMatch(/^share 4 does not match its check value/);
    expect(await message(u.submit(5, toHex(made.shares[1]!)))).toMatch(/shareIndex: expected an integer from 1 to 4/);
    expect(await message(u.submit(2, 'zz'))).toMatch(/share 2: expected 33 bytes as hex/);
    expect(await message(u.submit('2' as never, toHex(made.shares[1]!)))).toMatch(/shareIndex/);
    expect(u.progress).toBe(1);
    expect(await u.submit(4, toHex(made.shares[3]!))).toBeUndefined();
    expect(u.progress).toBe(2);
    const kek = await u.submit(2, toHex(made.shares[1]!));
    expect(kek && toHex(kek)).toBe(toHex(made.kek));
    expect(u.progress).toBe(0);
  });

  it('shares that pass their check values but belong to another unseal.json are refused at the combine', async () => {
    const made = await makeUnsealKek(1, 2, 2);
    const forged = { ...made.metadata, keyCheckValue: 'k-0000000000000000' };
    const u = new UnsealShares(forged);
    await u.submit(1, toHex(made.shares[0]!));
    expect(await message(u.submit(2, toHex(made.shares[1]!)))).toMatch(/combine to KEK k-[0-9a-f]{16}, not k-0000000000000000/);
  });

  it('K-1 shares reveal nothing: with a K-th share of a free x coordinate, every value of every KEK byte is reachable', async () => {
    const made = await makeUnsealKek(1, 3, 3);
    const given = made.shares.slice(0, 2); // K-1 = 2 shares
    const usedX = new Set(given.map((s) => s[KEK_LENGTH]!));
    const x = [...Array(255).keys()].map((i) => i + 1).find((v) => !usedX.has(v))!;
    for (const byte of [0, 17, 31]) {
      const reached = new Set<number>();
      for (let y = 0; y < 256; y++) {
        const third = new Uint8Array(UNSEAL_SHARE_LENGTH);
        third[byte] = y;
        third[KEK_LENGTH] = x;
        reached.add((await combine([...given, third]))[byte]!);
      }
      // Lagrange over GF(256): y -> secret byte is a bijection, so the 2 shares fit any KEK equally.
      expect(reached.size).toBe(256);
    }
  });
});

describe('unseal.json and the attempts file', () => {
  it('is written once, mode 0600, read back field by field, and refused when malformed', async () => {
    const dir = tempDir();
    expect(readUnsealMetadata(dir)).toBeUndefined();
    const made = await makeUnsealKek(3, 2, 3);
    writeUnsealMetadata(dir, made.metadata);
    expect(statSync(join(dir, UNSEAL_FILE)).mode & 0o777).toBe(0o600);
    expect(readUnsealMetadata(dir)).toEqual(made.metadata);
    const again = await makeUnsealKek(3, 2, 3);
    expect(() => writeUnsealMetadata(dir, again.metadata)).toThrow(/already exists: this node is initialised/);
    expect(readUnsealMetadata(dir)).toEqual(made.metadata);

    const bad = tempDir();
    for (const [doc, why] of [
      ['{', /not valid JSON/],
      [JSON.stringify({ ...made.metadata, extra: 1 }), /unknown field "extra"/],
      [JSON.stringify({ ...made.metadata, threshold: 4 }), /threshold 4 is more than the 3 shares/],
      [JSON.stringify({ ...made.metadata, checkValues: made.metadata.checkValues.slice(1) }), /one 32-byte lowercase hex value per share/],
      [JSON.stringify({ ...made.metadata, keyCheckValue: 'nope' }), /keyCheckValue/],
    ] as const) {
      writeFileSync(join(bad, UNSEAL_FILE), doc);
      expect(() => readUnsealMetadata(bad)).toThrow(why);
    }
  });

  it('records attempts durably without share bytes, skips a torn line, and empties', () => {
    const dir = tempDir();
    expect(readUnsealAttempts(dir)).toEqual([]);
    recordUnsealAttempt(dir, { time: 1, actor: 'ops-1', operation: 'node.unseal', outcome: 'denied', reason: 'refused: share 3 does not match its check value' });
    recordUnsealAttempt(dir, { time: 2, actor: 'ops-2', operation: 'node.unseal', outcome: 'ok', reason: 'share 1 accepted (1 of 2)' });
    writeFileSync(join(dir, UNSEAL_ATTEMPTS_FILE), readFileSync(join(dir, UNSEAL_ATTEMPTS_FILE), 'utf8') + '{"time":3,"act');
    expect(statSync(join(dir, UNSEAL_ATTEMPTS_FILE)).mode & 0o777).toBe(0o600);
    expect(readUnsealAttempts(dir).map((a) => [a.actor, a.outcome])).toEqual([
      ['ops-1', 'denied'],
      ['ops-2', 'ok'],
    ]);
    clearUnsealAttempts(dir);
    expect(readUnsealAttempts(dir)).toEqual([]);
  });
});
