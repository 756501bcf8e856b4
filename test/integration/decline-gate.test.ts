/**
 * Decline is an operation (issue 9, item 3), end to end over real components: node 1's real API
 * (test/helpers/api-node.ts) with a real CoordinatorLink to a real coordinator, and nodes 2 and 3 as
 * plain links that join sessions. A decline names the key: another tenant's key cannot decline a
 * session on a key it cannot see (NOT_FOUND exactly like a missing key, and nothing reaches the
 * coordinator); the policy decides on 'decline'; every decline is audited. When the joins carry
 * their scope (tenant and key, contract/relay.ts sessionScope), a decline for another tenant's API
 * key, even naming its own key, or a refused request of its, does not abort the session.
 *
 * "Nothing reached the coordinator" is shown without timing: node 1's link then runs a one-player
 * session, which the coordinator handles after anything node 1 sent before, and the peer's join is
 * still pending and no session was aborted.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { toHex } from '../../core/bytes.js';
import { generateIdentity, loadIdentityEngine, type IdentityKeyPair } from '../../core/identity.js';
import { startCoordinator, type Coordinator } from '../../coordinator/server.js';
import { sessionScope } from '../../contract/relay.js';
import { CoordinatorLink, SessionAbortedError } from '../../node/sessions/link.js';
import { startApiNode, type ApiNode } from '../helpers/api-node.js';
import { dealerKeys } from '../helpers/run-sign.js';

const NODES = [1, 2, 3];
const ids = new Map<number, IdentityKeyPair>();
let membership: Map<number, Uint8Array>;
beforeAll(async () => {
  await loadIdentityEngine();
  for (const i of NODES) ids.set(i, generateIdentity());
  membership = new Map(NODES.map((i) => [i, ids.get(i)!.publicKey]));
});

let dir: string | undefined;
let coordinator: Coordinator | undefined;
let node: ApiNode | undefined;
const links: CoordinatorLink[] = [];
afterEach(async () => {
  await node?.close();
  await Promise.all(links.splice(0).map((l) => l.close()));
  await coordinator?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  node = coordinator = dir = undefined;
});

interface Setup {
  node: ApiNode;
  link: Map<number, CoordinatorLink>;
}

async function setup(): Promise<Setup> {
  dir = await mkdtemp(join(tmpdir(), 'tessera-decline-gate-'));
  coordinator = await startCoordinator({ port: 0, membership, sessionTimeoutMs: 20_000 });
  const link = new Map<number, CoordinatorLink>();
  for (const index of NODES) {
    const l = new CoordinatorLink();
    links.push(l);
    await l.connect({ url: coordinator.url, index, identitySecretKey: ids.get(index)!.secretKey, connectTimeoutMs: 5000 });
    link.set(index, l);
  }
  await Promise.all([...link.values()].map((l) => l.waitForOnline(NODES, 5000)));
  node = await startApiNode({ dataDir: join(dir, 'data'), index: 1, parties: 3, identity: ids.get(1)!, membership, link: link.get(1)! });
  await node.store.put({ tenant: 'acme', keyId: 'k', version: 1, share: dealerKeys('ed25519', 2, 3)[0]!, exportable: false });
  return { node, link };
}

const sid = () => toHex(randomBytes(16));
const digest = new Uint8Array(32).fill(9);

async function decline(n: ApiNode, as: 'acme' | 'mallory', body: Record<string, unknown>) {
  const res = await n.app.inject({
    method: 'POST',
    url: '/v1/sessions/decline',
    headers: { authorization: `Bearer ${n.apiKeys[as]}`, 'content-type': 'application/json' },
    payload: JSON.stringify(body),
  });
  return { status: res.statusCode, json: res.json() as Record<string, unknown> };
}

/**
 * Node 2 joins `session` with players 1 and 2 (about `scope`'s tenant and key, if given); the returned
 * state says whether it has ended yet.
 */
function peerJoins(l: CoordinatorLink, session: string, scope?: { tenant: string; keyId: string }): { ended: Promise<unknown>; settled: () => boolean } {
  let settled = false;
  const id = Uint8Array.from(Buffer.from(session, 'hex'));
  const ended = l.join(id, digest, [1, 2], undefined, scope && sessionScope(id, scope.tenant, scope.keyId)).then(
    (v) => ((settled = true), v),
    (e: unknown) => ((settled = true), e),
  );
  return { ended, settled: () => settled };
}

/** Everything node 1's link sent before this call has been handled by the coordinator once it resolves. */
async function handled(l: CoordinatorLink): Promise<void> {
  const s = randomBytes(16);
  await l.join(s, digest, [1]);
  l.done(s);
}

async function declineEntries(n: ApiNode, sessionId: string) {
  return (await n.entries()).filter((e) => e.operation === 'decline' && e.sessionId === sessionId);
}

describe('decline is an operation on a key', () => {
  it("another tenant's key cannot decline a session on a key it cannot see: 404 like a missing key, nothing sent, audited", async () => {
    const { node, link } = await setup();
    const session = sid();
    const peer = peerJoins(link.get(2)!, session);

    const foreign = await decline(node, 'mallory', { sessionId: session, keyId: 'k', operation: 'sign' });
    const missing = await decline(node, 'acme', { sessionId: session, keyId: 'no-such-key', operation: 'sign' });
    expect(foreign).toEqual({ status: 404, json: { code: 'NOT_FOUND', message: 'key k not found' } });
    expect(missing).toEqual({ status: 404, json: { code: 'NOT_FOUND', message: 'key no-such-key not found' } });
    // Naming a version of a key it cannot see is no different.
    expect(await decline(node, 'mallory', { sessionId: session, keyId: 'k', operation: 'rotate', version: 1 })).toMatchObject({ status: 404 });

    await handled(link.get(1)!);
    expect(peer.settled()).toBe(false);
    expect(coordinator!.stats().aborted).toMatchObject({ DECLINED: 0, FAILED: 0 });

    // Every attempt is audited, under the caller's tenant and API key.
    const refused = await declineEntries(node, session);
    expect(refused.map((e) => [e.tenant, e.keyId, e.outcome])).toEqual([
      ['mallory', 'k', 'failed'],
      ['acme', 'no-such-key', 'failed'],
      ['mallory', 'k', 'failed'],
    ]);
    for (const e of refused) expect(e.reason).toMatch(/NOT_FOUND/);

    // The owner's decline goes through: the peer gets DECLINED naming node 1, and it is audited.
    expect(await decline(node, 'acme', { sessionId: session, keyId: 'k', operation: 'sign' })).toEqual({ status: 200, json: { sessionId: session, declined: true } });
    const e = await peer.ended;
    expect(e).toBeInstanceOf(SessionAbortedError);
    expect((e as SessionAbortedError).reason).toBe('DECLINED');
    expect((e as SessionAbortedError).nodes).toEqual([1]);
    const owner = (await declineEntries(node, session)).filter((x) => x.tenant === 'acme' && x.keyId === 'k');
    expect(owner.map((x) => x.outcome)).toEqual(['started', 'ok']);
    expect(owner[0]!.actor).toBe(owner[1]!.actor);
  });

  it('the policy decides on decline: a denied decline is audited as denied and declines nothing', async () => {
    const { node, link } = await setup();
    const rules = await node.app.inject({
      method: 'POST',
      url: '/v1/admin/policy',
      headers: { authorization: `Bearer ${node.apiKeys.admin}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ rules: [{ id: 'no-declines', type: 'deny', scope: { tenant: 'acme' }, operations: ['decline'] }] }),
    });
    expect(rules.statusCode, rules.body).toBe(200);
    const session = sid();
    const peer = peerJoins(link.get(2)!, session);
    const r = await decline(node, 'acme', { sessionId: session, keyId: 'k', operation: 'sign' });
    expect(r.status).toBe(403);
    expect(r.json.code).toBe('POLICY_DENIED');
    await handled(link.get(1)!);
    expect(peer.settled()).toBe(false);
    expect(coordinator!.stats().aborted.DECLINED).toBe(0);
    expect((await declineEntries(node, session)).map((e) => e.outcome)).toEqual(['denied']);
  });

  it('a keygen or import names a key that does not exist yet, in the caller’s own namespace', async () => {
    const { node, link } = await setup();
    const session = sid();
    const peer = peerJoins(link.get(2)!, session);
    expect((await decline(node, 'acme', { sessionId: session, keyId: 'fresh', operation: 'keygen' })).status).toBe(200);
    expect(((await peer.ended) as SessionAbortedError).reason).toBe('DECLINED');
    expect((await declineEntries(node, session)).map((e) => [e.tenant, e.outcome])).toEqual([
      ['acme', 'started'],
      ['acme', 'ok'],
    ]);
  });

  it('the decline request is strict: key and operation are required, the operation is a session operation', async () => {
    const { node } = await setup();
    expect(await decline(node, 'acme', { sessionId: sid() })).toMatchObject({ status: 400, json: { message: expect.stringMatching(/^keyId: missing/) } });
    expect(await decline(node, 'acme', { sessionId: sid(), keyId: 'k' })).toMatchObject({ status: 400, json: { message: expect.stringMatching(/^operation: missing/) } });
    expect(await decline(node, 'acme', { sessionId: sid(), keyId: 'k', operation: 'verify' })).toMatchObject({ status: 400, json: { message: expect.stringMatching(/^operation: expected one of/) } });
  });

  it("with scoped joins, a tenant's decline on its own key, or its refused request, cannot abort a session on another tenant's key", async () => {
    const { node, link } = await setup();
    await node.store.put({ tenant: 'mallory', keyId: 'm', version: 1, share: dealerKeys('ed25519', 2, 3)[0]!, exportable: false });
    const session = sid();
    // Node 2 joined about acme's key k, as a node does (contract/relay.ts sessionScope).
    const peer = peerJoins(link.get(2)!, session, { tenant: 'acme', keyId: 'k' });

    // Mallory declines the same session id naming her own key, and for a keygen of a new key: allowed and audited ...
    expect((await decline(node, 'mallory', { sessionId: session, keyId: 'm', operation: 'sign' })).status).toBe(200);
    expect((await decline(node, 'mallory', { sessionId: session, keyId: 'k', operation: 'keygen' })).status).toBe(200);
    // ... and a request of hers that node 1 refuses declines that session id too.
    const refused = await node.app.inject({
      method: 'POST',
      url: '/v1/keys/nope/sign',
      headers: { authorization: `Bearer ${node.apiKeys.mallory}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ sessionId: session, message: '00', players: [1, 2] }),
    });
    expect(refused.statusCode).toBe(404);
    // None of it is about acme's key: the coordinator ignores all three.
    await handled(link.get(1)!);
    expect(peer.settled()).toBe(false);
    expect(coordinator!.stats().aborted).toMatchObject({ DECLINED: 0, FAILED: 0 });
    expect((await declineEntries(node, session)).map((e) => [e.tenant, e.keyId, e.outcome])).toEqual([
      ['mallory', 'm', 'started'],
      ['mallory', 'm', 'ok'],
      ['mallory', 'k', 'started'],
      ['mallory', 'k', 'ok'],
    ]);

    // acme's decline on k is about that session.
    expect((await decline(node, 'acme', { sessionId: session, keyId: 'k', operation: 'sign' })).status).toBe(200);
    expect(((await peer.ended) as SessionAbortedError).reason).toBe('DECLINED');
  });
});
