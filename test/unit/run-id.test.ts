import { describe, expect, it } from 'vitest';
import { randomBytes } from '@noble/hashes/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { ErrorCode } from '../../core/errors.js';
import { framed, i2osp, concatBytes, utf8ToBytes } from '../../core/bytes.js';
import { RUN_ID_LENGTH, checkRunId, deriveRunId } from '../../core/run-id.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const badInput = expect.objectContaining({ code: ErrorCode.BadInput });

describe('deriveRunId', () => {
  const digest = randomBytes(32);
  const contributions = new Map([
    [1, randomBytes(32)],
    [2, randomBytes(32)],
    [3, randomBytes(32)],
  ]);

  it('is SHA-256 over the label, the session digest and every contribution in index order', () => {
    const runId = deriveRunId(digest, contributions);
    expect(runId.length).toBe(RUN_ID_LENGTH);
    const expected = sha256(
      framed(utf8ToBytes('TESSERA-v1/run-id'), digest, ...[1, 2, 3].map((i) => concatBytes(i2osp(i, 2), contributions.get(i)!))),
    );
    expect(hex(runId)).toBe(hex(expected));
    // Insertion order does not matter; every input does.
    const reversed = new Map([...contributions].reverse());
    expect(hex(deriveRunId(digest, reversed))).toBe(hex(runId));
    expect(hex(deriveRunId(randomBytes(32), contributions))).not.toBe(hex(runId));
    const changed = new Map(contributions).set(2, randomBytes(32));
    expect(hex(deriveRunId(digest, changed))).not.toBe(hex(runId));
    // A contribution moved to another index gives another run id.
    const swapped = new Map([
      [1, contributions.get(2)!],
      [2, contributions.get(1)!],
      [3, contributions.get(3)!],
    ]);
    expect(hex(deriveRunId(digest, swapped))).not.toBe(hex(runId));
    checkRunId(runId);
  });

  it('with players: every player contributed, and only players', () => {
    expect(hex(deriveRunId(digest, contributions, [3, 1, 2]))).toBe(hex(deriveRunId(digest, contributions)));
    expect(() => deriveRunId(digest, contributions, [1, 2, 3, 4])).toThrow(badInput);
    expect(() => deriveRunId(digest, contributions, [1, 2])).toThrow(badInput);
    expect(() => deriveRunId(digest, contributions, [1, 2, 2, 3])).toThrow(badInput);
    expect(() => deriveRunId(digest, contributions, 'all' as never)).toThrow(badInput);
  });

  it('validates sizes, types and indexes before hashing', () => {
    expect(() => deriveRunId(new Uint8Array(31), contributions)).toThrow(badInput);
    expect(() => deriveRunId('00'.repeat(32) as never, contributions)).toThrow(badInput);
    expect(() => deriveRunId(digest, { 1: randomBytes(32), 2: randomBytes(32) } as never)).toThrow(badInput);
    expect(() => deriveRunId(digest, new Map([[1, randomBytes(32)]]))).toThrow(badInput);
    for (const bad of [new Uint8Array(31), new Uint8Array(33), 'ab'.repeat(32), null]) {
      expect(() => deriveRunId(digest, new Map([[1, randomBytes(32)], [2, bad as never]]))).toThrow(badInput);
    }
    for (const index of [0, 256, 1.5, -1, Number.NaN]) {
      expect(() => deriveRunId(digest, new Map([[1, randomBytes(32)], [index, randomBytes(32)]]))).toThrow(badInput);
    }
    expect(() => checkRunId(new Uint8Array(31))).toThrow(badInput);
    expect(() => checkRunId(undefined)).toThrow(badInput);
  });
});
