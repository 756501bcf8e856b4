/**
 * The shamir-unseal KEK provider's pure part (node/store/kek-unseal.ts): split K-of-N with the audited
 * library, check values that name a wrong share, the combine back to the KEK that unseal.json names,
 * unseal.json itself, the attempts file, and that K-1 shares are consistent with every KEK; and the
 * KEK rotation's unseal-next.json (prepare, the provider's rotation steps, a sealed node's view of it).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { combine } from 'shamir-secret-sharing';
import { toHex } from '../../core/bytes.js';
import { TesseraError } from '../../core/errors.js';
import { UNSEAL_SHARE_LENGTH } from '../../core/unseal.js';
import { KEK_LENGTH, RawKek } from '../../node/store/kek.js';
import {
  UNSEAL_ATTEMPTS_FILE,
  UNSEAL_FILE,
  UNSEAL_NEXT_FILE,
  UnsealShares,
  clearUnsealAttempts,
  makeUnsealKek,
  openBegunNextKek,
  prepareUnsealRotation,
  readUnsealAttempts,
  readUnsealMetadata,
  readUnsealNext,
  shamirRotationSteps,
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

describe('KEK rotation: unseal-next.json', () => {
  /** An initialised node's data dir (unseal.json) and its current KEK. */
  async function initialised(node = 2): Promise<{ dir: string; made: Awaited<ReturnType<typeof makeUnsealKek>>; current: RawKek }> {
    const dir = tempDir();
    const made = await makeUnsealKek(node, 2, 3);
    writeUnsealMetadata(dir, made.metadata);
    return { dir, made, current: new RawKek(made.kek, 'shamir-unseal') };
  }

  async function codeAndMessage(p: Promise<unknown> | (() => unknown)): Promise<string> {
    try {
      await (typeof p === 'function' ? p() : p);
    } catch (e) {
      expect(e).toBeInstanceOf(TesseraError);
      return `${(e as TesseraError).code}: ${(e as Error).message}`;
    }
    return 'no error';
  }

  it('prepare writes the new metadata and the next KEK wrapped under the current one (never in plain); unseal.json is untouched; again, the same KEK in fresh shares', async () => {
    const { dir, made, current } = await initialised();
    const before = readFileSync(join(dir, UNSEAL_FILE), 'utf8');
    const p = await prepareUnsealRotation(dir, current, { threshold: 3, shares: 4, now: 99 });
    expect(p.resplit).toBe(false);
    expect(p.metadata).toMatchObject({ node: 2, threshold: 3, shares: 4, createdAt: 99 });
    expect(p.metadata.keyCheckValue).not.toBe(made.metadata.keyCheckValue);
    expect(statSync(join(dir, UNSEAL_NEXT_FILE)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, UNSEAL_FILE), 'utf8')).toBe(before);
    const next = readUnsealNext(dir)!;
    expect(next).toMatchObject({ ...p.metadata, wrappedUnder: current.id, rotationBegun: false });
    // The new shares rebuild the KEK the metadata names, and that KEK is nowhere in the file in plain.
    const nextKek = await combine(p.shares.slice(1, 4));
    const nextRaw = new RawKek(nextKek, 'shamir-unseal');
    expect(nextRaw.id).toBe(p.metadata.keyCheckValue);
    nextRaw.close();
    const text = readFileSync(join(dir, UNSEAL_NEXT_FILE), 'utf8');
    for (const secret of [nextKek, made.kek, ...p.shares]) {
      expect(text).not.toContain(toHex(secret));
      expect(text).not.toContain(Buffer.from(secret).toString('base64'));
    }
    // Prepared again (a lost answer): the same next KEK, K and N defaulting to unseal.json's, fresh shares.
    const again = await prepareUnsealRotation(dir, current);
    expect(again.resplit).toBe(true);
    expect(again.metadata).toMatchObject({ keyCheckValue: p.metadata.keyCheckValue, threshold: 2, shares: 3 });
    expect(toHex(await combine(again.shares.slice(0, 2)))).toBe(toHex(nextKek));
    expect(again.metadata.checkValues).not.toEqual(p.metadata.checkValues.slice(0, 3));
    // The first prepare's shares no longer match what unseal-next.json (and so, later, unseal.json) says.
    const collect = new UnsealShares(readUnsealNext(dir)!);
    expect(await message(collect.submit(1, toHex(p.shares[0]!)))).toMatch(/share 1 does not match its check value/);
    // A KEK that did not wrap it cannot open it, and no other KEK can prepare on this node.
    const other = new RawKek(new Uint8Array(32).fill(1), 'shamir-unseal');
    expect(await codeAndMessage(prepareUnsealRotation(dir, other))).toMatch(/^BAD_STATE: .*not .*as unseal.json names/);
    expect(await codeAndMessage(shamirRotationSteps(dir, other).prepareNext())).toMatch(/^BAD_STATE: .*wrapped under KEK k-/);
    expect(await codeAndMessage(prepareUnsealRotation(dir, current, { threshold: 4, shares: 3 }))).toMatch(/^BAD_INPUT: threshold 4 is more than the 3 shares/);
    other.close();
    current.close();
  });

  it('phase 2: prepareNext marks the rotation begun (then prepare is refused, and a sealed node opens the next KEK); retire makes the new metadata unseal.json, idempotently', async () => {
    const { dir, made, current } = await initialised(5);
    // Without a prepare, and prepared but not begun: a sealed node opens no next KEK.
    expect(await codeAndMessage(shamirRotationSteps(dir, current).prepareNext())).toMatch(/^BAD_STATE: .*run prepare first/);
    const p = await prepareUnsealRotation(dir, current);
    expect(openBegunNextKek(dir, current)).toBeUndefined();
    const steps = shamirRotationSteps(dir, current);
    const next = await steps.prepareNext();
    expect(next.id).toBe(p.metadata.keyCheckValue);
    expect(readUnsealNext(dir)!.rotationBegun).toBe(true);
    expect((await steps.prepareNext()).id).toBe(next.id); // a resumed step 1
    expect(await codeAndMessage(prepareUnsealRotation(dir, current))).toMatch(/^BAD_STATE: the rotation to KEK .* has begun/);
    // A sealed node unsealed with the OLD shares opens the next KEK beside the old one.
    const opened = openBegunNextKek(dir, current)!;
    expect(opened.id).toBe(next.id);
    const box = next.wrapKey(new Uint8Array(32).fill(3), new Uint8Array(0));
    expect(toHex(opened.unwrapKey(box, new Uint8Array(0)))).toBe(toHex(new Uint8Array(32).fill(3)));
    opened.close();
    // An altered wrapped KEK is refused, not opened.
    const good = readFileSync(join(dir, UNSEAL_NEXT_FILE), 'utf8');
    const doc = JSON.parse(good) as Record<string, string>;
    const flipped = (doc.wrappedKek!.slice(0, 40) + (doc.wrappedKek![40] === '0' ? '1' : '0') + doc.wrappedKek!.slice(41));
    writeFileSync(join(dir, UNSEAL_NEXT_FILE), JSON.stringify({ ...doc, wrappedKek: flipped }));
    expect(await codeAndMessage(() => openBegunNextKek(dir, current))).toMatch(/^BAD_STATE: .*does not unwrap under KEK/);
    writeFileSync(join(dir, UNSEAL_NEXT_FILE), good);

    await steps.retire(current.id);
    expect(existsSync(join(dir, UNSEAL_NEXT_FILE))).toBe(false);
    const now = readUnsealMetadata(dir)!;
    expect(now).toEqual(p.metadata);
    expect(statSync(join(dir, UNSEAL_FILE)).mode & 0o777).toBe(0o600);
    await steps.retire(current.id); // a crash after it repeats it harmlessly
    expect(readUnsealMetadata(dir)).toEqual(p.metadata);
    // Only the new shares unseal now: the old KEK's share 1 does not match, the new ones combine.
    const collect = new UnsealShares(now);
    expect(await message(collect.submit(1, toHex(made.shares[0]!)))).toMatch(/share 1 does not match its check value/);
    expect(await collect.submit(2, toHex(p.shares[1]!))).toBeUndefined();
    const rebuilt = (await collect.submit(3, toHex(p.shares[2]!)))!;
    const raw = new RawKek(rebuilt, 'shamir-unseal');
    expect(raw.id).toBe(next.id);
    raw.close();
    expect(openBegunNextKek(dir, next)).toBeUndefined();
    next.close();
    current.close();
  });

  it('a retire that crashed before removing unseal-next.json: the new KEK opens no "next" (it is current)', async () => {
    const { dir, current } = await initialised(6);
    await prepareUnsealRotation(dir, current);
    const next = await shamirRotationSteps(dir, current).prepareNext();
    const keep = readFileSync(join(dir, UNSEAL_NEXT_FILE), 'utf8');
    await shamirRotationSteps(dir, current).retire(current.id);
    writeFileSync(join(dir, UNSEAL_NEXT_FILE), keep, { mode: 0o600 });
    expect(openBegunNextKek(dir, next)).toBeUndefined();
    await shamirRotationSteps(dir, next).retire(current.id);
    expect(existsSync(join(dir, UNSEAL_NEXT_FILE))).toBe(false);
    expect(readUnsealMetadata(dir)!.keyCheckValue).toBe(next.id);
    next.close();
    current.close();
  });

  it('a malformed unseal-next.json is refused field by field', async () => {
    const { dir, current } = await initialised(7);
    await prepareUnsealRotation(dir, current);
    const good = JSON.parse(readFileSync(join(dir, UNSEAL_NEXT_FILE), 'utf8')) as Record<string, unknown>;
    for (const [doc, why] of [
      [{ ...good, rotationBegun: 'yes' }, /rotationBegun must be true or false/],
      [{ ...good, wrappedKek: 'ab' }, /wrappedKek must be 60 bytes/],
      [{ ...good, wrappedUnder: 'x' }, /wrappedUnder must be a KEK id/],
      [{ ...good, wrappedUnder: good.keyCheckValue }, /wrapped under itself/],
      [{ ...good, kek: '00' }, /unknown field "kek"/],
    ] as const) {
      writeFileSync(join(dir, UNSEAL_NEXT_FILE), JSON.stringify(doc));
      expect(() => readUnsealNext(dir)).toThrow(why);
    }
    current.close();
  });
});
