/**
 * The membership relay frame's strict codec (contract/relay.ts), the link's frame splitting
 * (node/sessions/link.ts membershipFrames), the membership file's `epoch` (coordinator/config.ts) and
 * the coordinator's chain walk and state file (coordinator/membership-state.ts), in process.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { toHex } from '../../core/bytes.js';
import { encodeCertificate, voteBytes, type CommitStatement } from '../../core/commit.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { generateIdentity, identitySign, type IdentityKeyPair } from '../../core/identity.js';
import { MEMBERSHIP_KEY_ID, MEMBERSHIP_TENANT, encodeMembership, membershipDigest, membershipVoters, type Membership } from '../../core/membership.js';
import {
  MAX_CERTIFICATE_BYTES,
  MAX_MEMBERSHIP_BYTES,
  MAX_MEMBERSHIP_CHANGES_PER_FRAME,
  decodeNodeFrame,
  encodeFrame,
  type MembershipChangeBytes,
} from '../../contract/relay.js';
import { membershipFrames } from '../../node/sessions/link.js';
import { ConfigError, loadConfig } from '../../coordinator/config.js';
import {
  configMembership,
  followMembershipChain,
  loadMembershipState,
  membershipStateText,
  writeFileDurably,
} from '../../coordinator/membership-state.js';

const packr = new Packr({ useRecords: false });
const ids = new Map<number, IdentityKeyPair>();
beforeAll(() => {
  for (const i of [1, 2, 3, 4, 5]) ids.set(i, generateIdentity());
});
const m = (epoch: number, nodes: number[]): Membership => ({ epoch, members: nodes.map((index) => ({ index, identityPublicKey: ids.get(index)!.publicKey })) });
const secretOf = (pk: Uint8Array) => [...ids.values()].find((x) => toHex(x.publicKey) === toHex(pk))!.secretKey;

function change(from: Membership, to: Membership): MembershipChangeBytes {
  const statement: CommitStatement = {
    session: new Uint8Array(randomBytes(16)),
    operation: 'membership',
    tenant: MEMBERSHIP_TENANT,
    keyId: MEMBERSHIP_KEY_ID,
    version: to.epoch,
    resultDigest: membershipDigest(to),
  };
  const keys = new Map(from.members.map((x) => [x.index, x.identityPublicKey]));
  const votes = new Map(membershipVoters(from, to).map((v) => [v, identitySign(secretOf(keys.get(v)!), voteBytes(statement))] as const));
  return { membership: encodeMembership(to), certificate: encodeCertificate({ ...statement, votes }) };
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tessera-membership-unit-'));
  dirs.push(d);
  return d;
}

function badFrame(frame: unknown): string {
  try {
    decodeNodeFrame(packr.pack(frame));
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError);
    expect((e as TesseraError).code).toBe(ErrorCode.BadMessage);
    return (e as Error).message;
  }
  throw new Error('frame accepted');
}

describe('relay: the membership frame', () => {
  it('round-trips through encodeFrame and the strict decoder', () => {
    const changes = [
      { membership: new Uint8Array([1, 2, 3]), certificate: new Uint8Array([4, 5]) },
      { membership: new Uint8Array(MAX_MEMBERSHIP_BYTES), certificate: new Uint8Array(MAX_CERTIFICATE_BYTES) },
    ];
    const f = decodeNodeFrame(encodeFrame({ t: 'membership', changes }));
    expect(f.t).toBe('membership');
    if (f.t !== 'membership') throw new Error('unreachable');
    expect(f.changes).toHaveLength(2);
    expect(f.changes[0]).toEqual(changes[0]);
    expect(f.changes[1]!.certificate.length).toBe(MAX_CERTIFICATE_BYTES);
    expect(Buffer.isBuffer(f.changes[0]!.membership)).toBe(false);
  });

  it('refuses every malformed shape before anything looks inside', () => {
    const ok = { membership: new Uint8Array([1]), certificate: new Uint8Array([2]) };
    expect(badFrame({ t: 'membership' })).toMatch(/missing field changes/);
    expect(badFrame({ t: 'membership', changes: [ok], extra: 1 })).toMatch(/unknown field extra/);
    expect(badFrame({ t: 'membership', changes: [] })).toMatch(/changes: expected 1\.\.64 entries/);
    expect(badFrame({ t: 'membership', changes: Array(MAX_MEMBERSHIP_CHANGES_PER_FRAME + 1).fill(ok) })).toMatch(/expected 1\.\.64/);
    expect(badFrame({ t: 'membership', changes: ok })).toMatch(/changes: expected/);
    expect(badFrame({ t: 'membership', changes: [[1, 2]] })).toMatch(/changes: expected maps/);
    expect(badFrame({ t: 'membership', changes: [new Uint8Array(4)] })).toMatch(/changes: expected maps/);
    expect(badFrame({ t: 'membership', changes: [{ membership: ok.membership }] })).toMatch(/membership change: missing field certificate/);
    expect(badFrame({ t: 'membership', changes: [{ ...ok, t: 'x' }] })).toMatch(/membership change: unknown field t/);
    expect(badFrame({ t: 'membership', changes: [{ ...ok, membership: 'abcd' }] })).toMatch(/membership: expected bytes/);
    expect(badFrame({ t: 'membership', changes: [{ ...ok, certificate: new Uint8Array(0) }] })).toMatch(/certificate: expected 1\.\./);
    expect(badFrame({ t: 'membership', changes: [{ ...ok, membership: new Uint8Array(MAX_MEMBERSHIP_BYTES + 1) }] })).toMatch(/membership: expected 1\.\./);
    expect(badFrame({ t: 'membership', changes: [{ ...ok, certificate: new Uint8Array(MAX_CERTIFICATE_BYTES + 1) }] })).toMatch(/certificate: expected 1\.\./);
  });

  it('the link splits a long chain into frames in order, each within the limits', () => {
    const small = (i: number) => ({ membership: Uint8Array.of(i & 255, i >> 8), certificate: Uint8Array.of(1) });
    const chain = Array.from({ length: 150 }, (_, i) => small(i));
    const frames = membershipFrames(chain);
    expect(frames.map((f) => f.length)).toEqual([64, 64, 22]);
    expect(frames.flat()).toEqual(chain);
    // Large changes: the byte budget splits sooner; every frame decodes.
    const big = Array.from({ length: 6 }, () => ({ membership: new Uint8Array(MAX_MEMBERSHIP_BYTES), certificate: new Uint8Array(MAX_CERTIFICATE_BYTES) }));
    const bigFrames = membershipFrames(big);
    expect(bigFrames.length).toBeGreaterThan(1);
    expect(bigFrames.flat()).toHaveLength(6);
    for (const f of bigFrames) expect(decodeNodeFrame(encodeFrame({ t: 'membership', changes: f })).t).toBe('membership');
    expect(membershipFrames([])).toEqual([]);
  });
});

describe('coordinator config: the membership file epoch and the state file field', () => {
  function config(membershipDoc: unknown, extra: Record<string, unknown> = {}) {
    const dir = tmp();
    writeFileSync(join(dir, 'm.json'), JSON.stringify(membershipDoc));
    return loadConfig({ port: 0, membershipFile: 'm.json', ...extra }, dir);
  }
  const nodes = () => [1, 2, 3].map((index) => ({ index, identityPublicKey: toHex(ids.get(index)!.publicKey) }));

  it('epoch defaults to 0 and may be given; the state file path resolves against the config', () => {
    expect(config({ nodes: nodes() }).options.membershipEpoch).toBe(0);
    const c = config({ nodes: nodes(), epoch: 7 }, { membershipStateFile: 'state/membership.json' });
    expect(c.options.membershipEpoch).toBe(7);
    expect(c.options.membershipStateFile).toMatch(/tessera-membership-unit-.*\/state\/membership\.json$/);
    expect(config({ nodes: nodes() }).options.membershipStateFile).toBeUndefined();
  });

  it('refuses a bad epoch or state file field by name', () => {
    for (const epoch of [-1, 1.5, '3', 2 ** 32]) {
      expect(() => config({ nodes: nodes(), epoch })).toThrow(ConfigError);
      expect(() => config({ nodes: nodes(), epoch })).toThrow(/^membershipFile\.epoch: expected an integer/);
    }
    expect(() => config({ nodes: nodes() }, { membershipStateFile: '' })).toThrow(/^membershipStateFile: expected a file path/);
    expect(() => config({ nodes: nodes() }, { membershipStateFile: 3 })).toThrow(/^membershipStateFile: expected a file path/);
  });
});

describe('coordinator: the membership chain and its state file', () => {
  it('follows a chain: ignores what it holds, adopts the next epochs, stops at the first bad link', () => {
    const e0 = m(0, [1, 2, 3, 4]);
    const e1 = m(1, [1, 2, 3, 4, 5]);
    const e2 = m(2, [1, 2, 3, 5]);
    const c1 = change(e0, e1);
    const c2 = change(e1, e2);
    const all = followMembershipChain(e0, [c1, c2]);
    expect(all.problem).toBeUndefined();
    expect(all.membership.epoch).toBe(2);
    expect(all.adopted.map((a) => [a.change.added, a.change.removed])).toEqual([
      [[5], []],
      [[], [4]],
    ]);
    const fromE1 = followMembershipChain(e1, [c1, c2]);
    expect(fromE1.ignored).toBe(1);
    expect(fromE1.adopted).toHaveLength(1);
    // A bad second link keeps the first; a bad first link adopts nothing.
    const bad = { ...c2, certificate: c1.certificate };
    const partial = followMembershipChain(e0, [c1, bad]);
    expect(partial.adopted).toHaveLength(1);
    expect(partial.membership.epoch).toBe(1);
    expect(partial.problem).toMatch(/^change 2 of 2 \(epoch 2\): membership certificate: it is for epoch 1/);
    expect(followMembershipChain(e0, [c2]).problem).toMatch(/epoch 2 does not follow the held epoch 0/);
    expect(followMembershipChain(e0, [{ membership: Uint8Array.of(0xc1), certificate: c1.certificate }]).problem).toMatch(/^change 1 of 1: membership: /);
    // A configured single-node membership admits no change (a change keeps at least two voters).
    const single = configMembership(0, new Map([[1, ids.get(1)!.publicKey]]));
    expect(followMembershipChain(single, [c1]).adopted).toHaveLength(0);
  });

  it('writes the state file durably (no temporary left) and replays it', () => {
    const dir = tmp();
    const file = join(dir, 'state.json');
    const e0 = m(0, [1, 2, 3, 4]);
    const e1 = m(1, [1, 2, 3, 4, 5]);
    expect(loadMembershipState(file, e0)).toEqual({ membership: e0, chain: [] }); // a first start
    const chain = [change(e0, e1)];
    writeFileDurably(file, membershipStateText(chain));
    writeFileDurably(file, membershipStateText(chain)); // replacing works too
    expect(readdirSync(dir)).toEqual(['state.json']);
    const loaded = loadMembershipState(file, e0);
    expect(loaded.membership.epoch).toBe(1);
    const hex = (c: MembershipChangeBytes[]) => c.map((x) => [toHex(x.membership), toHex(x.certificate)]);
    expect(hex(loaded.chain)).toEqual(hex(chain));
    // Replayed from a config already at epoch 1, the link is ignored (the operator moved the config on).
    expect(loadMembershipState(file, e1)).toMatchObject({ membership: { epoch: 1 }, chain: [] });
    // Nothing secret and nothing but the chain in it.
    expect(Object.keys(JSON.parse(readFileSync(file, 'utf8')))).toEqual(['format', 'changes']);
    // A link that does not verify against another configured membership refuses the start.
    const other = { epoch: 0, members: e0.members.map((x, i) => ({ index: x.index, identityPublicKey: ids.get(i === 0 ? 5 : x.index)!.publicKey })) };
    expect(() => loadMembershipState(file, other)).toThrow(ConfigError);
    expect(() => loadMembershipState(file, other)).toThrow(/^membershipStateFile: .*state\.json: change 1 \(epoch 1\)/);
    writeFileSync(file, JSON.stringify({ format: 'tessera/coordinator-membership/v1', changes: [{ membership: 'zz', certificate: '00' }] }));
    expect(() => loadMembershipState(file, e0)).toThrow(/changes\[0\]: /);
  });
});
