/**
 * Declines at the coordinator (coordinator/server.ts), over real sockets with real node links: a
 * decline (a `fail` frame with DECLINE_CODE) counts only from a player of the session that has not
 * joined it, whether it comes while the session is live or before it exists. A non-player's decline
 * is ignored, so no node can block a session id it merely predicts.
 *
 * When the joins carry a scope (contract/relay.ts sessionScope: session, tenant, key), a decline
 * counts only with the same scope, so a node declining for one tenant's API key cannot abort a
 * session on another tenant's key.
 *
 * Ordering across sockets is not guaranteed, so a test that needs a decline processed before the next
 * join first runs a one-player session on the decliner's own connection: frames of one connection
 * are handled in order, so once that session starts the decline before it has been handled.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { generateIdentity, type IdentityKeyPair } from '../../core/identity.js';
import { ErrorCode } from '../../core/errors.js';
import { startCoordinator, type Coordinator } from '../../coordinator/server.js';
import { DECLINE_CODE, sessionScope } from '../../contract/relay.js';
import { CoordinatorLink, SessionAbortedError } from '../../node/sessions/link.js';

const NODES = [1, 2, 3];
const ids = new Map<number, IdentityKeyPair>();
let membership: Map<number, Uint8Array>;
beforeAll(() => {
  for (const i of NODES) ids.set(i, generateIdentity());
  membership = new Map(NODES.map((i) => [i, ids.get(i)!.publicKey]));
});

let coordinator: Coordinator | undefined;
const links: CoordinatorLink[] = [];
afterEach(async () => {
  await Promise.all(links.splice(0).map((l) => l.close()));
  await coordinator?.close();
  coordinator = undefined;
});

async function cluster(): Promise<Map<number, CoordinatorLink>> {
  coordinator = await startCoordinator({ port: 0, membership, sessionTimeoutMs: 20_000 });
  const ls = new Map<number, CoordinatorLink>();
  for (const index of NODES) {
    const l = new CoordinatorLink();
    links.push(l);
    await l.connect({ url: coordinator.url, index, identitySecretKey: ids.get(index)!.secretKey, connectTimeoutMs: 5000 });
    ls.set(index, l);
  }
  await Promise.all([...ls.values()].map((l) => l.waitForOnline(NODES, 5000)));
  return ls;
}

const sid = () => new Uint8Array(randomBytes(16));
const digest = new Uint8Array(32).fill(7);

/** Every frame `l` sent before this call has been handled by the coordinator once it resolves. */
async function handled(l: CoordinatorLink, index: number): Promise<void> {
  const s = sid();
  await l.join(s, digest, [index]);
  l.done(s);
}

async function abortOf(p: Promise<unknown>): Promise<SessionAbortedError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(SessionAbortedError);
    return e as SessionAbortedError;
  }
  throw new Error('expected the session to abort');
}

describe('the coordinator accepts a decline only from a player of the session', () => {
  it("ignores a non-player's decline of a live session: the players start it", async () => {
    const l = await cluster();
    const s = sid();
    const first = l.get(1)!.join(s, digest, [1, 2]);
    l.get(3)!.fail(s, DECLINE_CODE, 'declined by the operator');
    await handled(l.get(3)!, 3);
    const second = l.get(2)!.join(s, digest, [1, 2]);
    await expect(Promise.all([first, second])).resolves.toEqual([{ players: [1, 2] }, { players: [1, 2] }]);
    expect(coordinator!.stats().aborted.DECLINED).toBe(0);
  });

  it("ignores a non-player's decline sent before the session exists (a predicted id)", async () => {
    const l = await cluster();
    const s = sid();
    l.get(3)!.fail(s, DECLINE_CODE, 'declined by the operator');
    await handled(l.get(3)!, 3);
    const joined = await Promise.all([l.get(1)!.join(s, digest, [1, 2]), l.get(2)!.join(s, digest, [1, 2])]);
    expect(joined).toEqual([{ players: [1, 2] }, { players: [1, 2] }]);
    expect(coordinator!.stats().aborted.DECLINED).toBe(0);
  });

  it("aborts with DECLINED naming the player when a player declines before the session exists", async () => {
    const l = await cluster();
    const s = sid();
    l.get(2)!.fail(s, DECLINE_CODE, 'declined by the operator');
    await handled(l.get(2)!, 2);
    const e1 = await abortOf(l.get(1)!.join(s, digest, [1, 2, 3]));
    expect(e1.reason).toBe('DECLINED');
    expect(e1.nodes).toEqual([2]);
    expect(e1.message).toMatch(/node 2 declined the session: declined by the operator/);
    // A later join gets the same answer at once.
    const e3 = await abortOf(l.get(3)!.join(s, digest, [1, 2, 3]));
    expect(e3.reason).toBe('DECLINED');
    expect(coordinator!.stats().aborted.DECLINED).toBe(1);
  });

  it('aborts with DECLINED naming the player when a player that has not joined declines a live session', async () => {
    const l = await cluster();
    const s = sid();
    const first = l.get(1)!.join(s, digest, [1, 2]);
    l.get(2)!.fail(s, DECLINE_CODE, 'declined by the operator');
    const e = await abortOf(first);
    expect(e.code).toBe(ErrorCode.SessionAborted);
    expect(e.reason).toBe('DECLINED');
    expect(e.nodes).toEqual([2]);
  });

  it('a player that already joined and then fails with the decline code has failed the session (FAILED, no decline)', async () => {
    const l = await cluster();
    const s = sid();
    const first = l.get(1)!.join(s, digest, [1, 2, 3]);
    const second = l.get(2)!.join(s, digest, [1, 2, 3]).catch((e: unknown) => e);
    await handled(l.get(2)!, 2);
    l.get(2)!.fail(s, DECLINE_CODE, 'changed its mind');
    const e = await abortOf(first);
    expect(e.reason).toBe('FAILED');
    expect(e.nodes).toEqual([]);
    expect(await second).toBeInstanceOf(SessionAbortedError);
    expect(coordinator!.stats().aborted.DECLINED).toBe(0);
  });

  it('with scoped joins, a decline about another tenant or key is ignored, live or early; the same scope declines', async () => {
    const l = await cluster();
    // Live: node 1 joined about acme/k; node 2 declines about mallory/m, then without a scope.
    const s1 = sid();
    const acme1 = sessionScope(s1, 'acme', 'k');
    const first = l.get(1)!.join(s1, digest, [1, 2], undefined, acme1);
    l.get(2)!.fail(s1, DECLINE_CODE, 'declined by the operator', [], sessionScope(s1, 'mallory', 'm'));
    l.get(2)!.fail(s1, DECLINE_CODE, 'declined by the operator', []);
    await handled(l.get(2)!, 2);
    const second = l.get(2)!.join(s1, digest, [1, 2], undefined, acme1);
    await expect(Promise.all([first, second])).resolves.toHaveLength(2);

    // Early: node 3 declines about mallory/k before anyone joined about acme/k.
    const s2 = sid();
    const acme2 = sessionScope(s2, 'acme', 'k');
    l.get(3)!.fail(s2, DECLINE_CODE, 'declined by the operator', [], sessionScope(s2, 'mallory', 'k'));
    await handled(l.get(3)!, 3);
    await expect(Promise.all([1, 2, 3].map((i) => l.get(i)!.join(s2, digest, [1, 2, 3], undefined, acme2)))).resolves.toHaveLength(3);
    expect(coordinator!.stats().aborted.DECLINED).toBe(0);

    // The same scope declines, live and early.
    const s3 = sid();
    const live = l.get(1)!.join(s3, digest, [1, 2], undefined, sessionScope(s3, 'acme', 'k'));
    l.get(2)!.fail(s3, DECLINE_CODE, 'declined by the operator', [], sessionScope(s3, 'acme', 'k'));
    expect((await abortOf(live)).reason).toBe('DECLINED');
    const s4 = sid();
    l.get(2)!.fail(s4, DECLINE_CODE, 'declined by the operator', [], sessionScope(s4, 'acme', 'k'));
    await handled(l.get(2)!, 2);
    const early = await abortOf(l.get(1)!.join(s4, digest, [1, 2], undefined, sessionScope(s4, 'acme', 'k')));
    expect([early.reason, early.nodes]).toEqual(['DECLINED', [2]]);
  });
});
