/**
 * Coordinator and node link over real sockets (random ports), per the wire contract in
 * contract/relay.ts. Every test closes what it opened in afterEach.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { Packr } from 'msgpackr';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { generateIdentity, identitySign, type IdentityKeyPair } from '../../core/identity.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { startCoordinator, type Coordinator, type CoordinatorOptions } from '../../coordinator/server.js';
import { authMessage, decodeCoordinatorFrame, type CoordinatorFrame } from '../../contract/relay.js';
import { ConfigError, loadConfigFile, loadConfigFromEnv } from '../../coordinator/config.js';
import { CoordinatorLink, SessionAbortedError, type LinkConnectOptions } from '../../node/sessions/link.js';

const packr = new Packr({ useRecords: false });
const NODES = [1, 2, 3, 4];
const ids = new Map<number, IdentityKeyPair>();
let membership: Map<number, Uint8Array>;

beforeAll(() => {
  for (const i of NODES) ids.set(i, generateIdentity());
  membership = new Map(NODES.map((i) => [i, ids.get(i)!.publicKey]));
});

const coordinators: Coordinator[] = [];
const links: CoordinatorLink[] = [];
const raws: WebSocket[] = [];
const tmpDirs: string[] = [];

afterEach(async () => {
  await Promise.all(links.splice(0).map((l) => l.close()));
  for (const ws of raws.splice(0)) ws.terminate();
  await Promise.all(coordinators.splice(0).map((c) => c.close()));
  for (const d of tmpDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function coordinator(extra: Partial<CoordinatorOptions> = {}): Promise<Coordinator> {
  const c = await startCoordinator({ port: 0, membership, ...extra });
  coordinators.push(c);
  return c;
}

async function link(c: { url: string }, index: number, extra: Partial<LinkConnectOptions> = {}): Promise<CoordinatorLink> {
  const l = new CoordinatorLink();
  links.push(l);
  await l.connect({
    url: c.url,
    index,
    identitySecretKey: ids.get(index)!.secretKey,
    reconnect: { minDelayMs: 20, maxDelayMs: 200 },
    connectTimeoutMs: 5000,
    ...extra,
  });
  return l;
}

async function links3(c: Coordinator, nodes = [1, 2, 3]): Promise<CoordinatorLink[]> {
  const ls = await Promise.all(nodes.map((i) => link(c, i)));
  await Promise.all(ls.map((l) => l.waitForOnline(nodes, 5000)));
  return ls;
}

const sid = () => new Uint8Array(randomBytes(16));
const dig = () => new Uint8Array(randomBytes(32));
/** Mark a promise as handled now (it may reject before the test awaits it); awaiting it still throws. */
const pending = <T,>(p: Promise<T>): Promise<T> => (p.catch(() => undefined), p);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Settles `p` and reports the outcome, so a test can assert on a rejection's fields. */
async function outcome<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: SessionAbortedError }> {
  try {
    return { ok: true, value: await p };
  } catch (e) {
    return { ok: false, error: e as SessionAbortedError };
  }
}

async function expectAbort(p: Promise<unknown>, reason: string, nodes?: number[]): Promise<SessionAbortedError> {
  const r = await outcome(p);
  expect(r.ok).toBe(false);
  if (r.ok) throw new Error('unreachable');
  expect(r.error).toBeInstanceOf(SessionAbortedError);
  expect(r.error).toBeInstanceOf(TesseraError);
  expect(r.error.code).toBe(ErrorCode.SessionAborted);
  expect(r.error.reason).toBe(reason);
  if (nodes) expect(r.error.nodes).toEqual(nodes);
  return r.error;
}

/** A hand-driven WebSocket client, for frames the link would never send. */
interface Raw {
  ws: WebSocket;
  next(): Promise<CoordinatorFrame>;
  frames: CoordinatorFrame[];
  send(frame: unknown): void;
  closed: Promise<{ code: number; reason: string }>;
}

function raw(url: string, opts: { ca?: string; autoPong?: boolean } = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ...(opts.ca ? { ca: opts.ca } : {}), autoPong: opts.autoPong ?? true });
    raws.push(ws);
    const frames: CoordinatorFrame[] = [];
    const waiters: ((f: CoordinatorFrame) => void)[] = [];
    ws.on('message', (data) => {
      const f = decodeCoordinatorFrame(data as Buffer);
      const w = waiters.shift();
      if (w) w(f);
      else frames.push(f);
    });
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.on('error', reject);
    ws.on('open', () =>
      resolve({
        ws,
        frames,
        closed,
        next: () => {
          const f = frames.shift();
          return f ? Promise.resolve(f) : new Promise((r) => waiters.push(r));
        },
        send: (frame) => ws.send(packr.pack(frame)),
      }),
    );
  });
}

/** A raw client authenticated as `index` (signing with `signer`'s key). */
async function rawAuthed(url: string, index: number, signer = index): Promise<Raw> {
  const r = await raw(url);
  const ch = await r.next();
  if (ch.t !== 'challenge') throw new Error('expected challenge');
  r.send({ t: 'hello', index, signature: identitySign(ids.get(signer)!.secretKey, authMessage(ch.coordinator, ch.nonce, index)) });
  return r;
}

describe('authentication and presence', () => {
  it('a member authenticates, is reported online to everyone, and offline when it leaves', async () => {
    const c = await coordinator();
    const l1 = await link(c, 1);
    expect(l1.connected).toBe(true);
    expect(l1.online()).toEqual([1]);
    const l2 = await link(c, 2);
    expect(l2.online()).toEqual([1, 2]);
    await l1.waitForOnline([1, 2], 2000);
    expect(c.stats().online).toEqual([1, 2]);
    const offline = new Promise<number[]>((r) => l1.on('online', (o) => o.length === 1 && r(o)));
    await l2.close();
    expect(await offline).toEqual([1]);
  });

  it('refuses a bad signature and an unknown index with close 4001', async () => {
    const c = await coordinator();
    // index 1 answering with node 2's key
    const bad = await rawAuthed(c.url, 1, 2);
    expect((await bad.closed).code).toBe(4001);
    // a well-formed signature by a key that is not a member, for an index that is not a member
    const unknown = await raw(c.url);
    const ch = await unknown.next();
    if (ch.t !== 'challenge') throw new Error('expected challenge');
    unknown.send({ t: 'hello', index: 9, signature: identitySign(ids.get(1)!.secretKey, authMessage(ch.coordinator, ch.nonce, 9)) });
    expect((await unknown.closed).code).toBe(4001);
    // a signature over another coordinator id does not verify either
    const other = await raw(c.url);
    const ch2 = await other.next();
    if (ch2.t !== 'challenge') throw new Error('expected challenge');
    other.send({ t: 'hello', index: 1, signature: identitySign(ids.get(1)!.secretKey, authMessage('someone-else', ch2.nonce, 1)) });
    expect((await other.closed).code).toBe(4001);
    expect(c.stats().online).toEqual([]);
    expect(c.stats().rejectedConnections).toBe(3);

    // The link gives up at once when its first authentication is refused.
    const l = new CoordinatorLink();
    links.push(l);
    const err = await l.connect({ url: c.url, index: 1, identitySecretKey: ids.get(2)!.secretKey, connectTimeoutMs: 5000 }).catch((e) => e);
    expect(err).toBeInstanceOf(TesseraError);
    expect(err.code).toBe(ErrorCode.Unavailable);
    expect(err.message).toMatch(/refused authentication: bad signature/);
  });

  it('closes an unauthenticated connection after the auth timeout', async () => {
    const c = await coordinator({ authTimeoutMs: 150 });
    const r = await raw(c.url);
    expect((await r.next()).t).toBe('challenge');
    expect((await r.closed).code).toBe(4001);
  });

  it('a second authenticated connection for an index replaces the first', async () => {
    const c = await coordinator();
    const first = await rawAuthed(c.url, 1);
    expect((await first.next()).t).toBe('welcome');
    const l = await link(c, 1);
    expect((await first.closed).code).toBe(4003);
    expect(l.online()).toEqual([1]);
    expect(c.stats().online).toEqual([1]);
  });
});

describe('frame validation', () => {
  it('closes with 4002 on unknown frames, extra or missing fields, text frames and frames before hello', async () => {
    const c = await coordinator();
    const cases: unknown[] = [
      { t: 'bogus' },
      { t: 'join', session: sid(), digest: dig(), players: [1, 2], extra: 1 },
      { t: 'join', session: sid(), digest: dig() },
      { t: 'join', session: new Uint8Array(15), digest: dig(), players: [1, 2] },
      { t: 'join', session: sid(), digest: dig(), players: [1, 1] },
      { t: 'join', session: sid(), digest: dig(), players: [1, 256] },
      { t: 'join', session: sid(), digest: dig(), players: [1, 2], timeoutMs: -5 },
      { t: 'relay', session: sid(), to: 2, payload: new Uint8Array(0) },
      { t: 'relay', session: sid(), to: 2, payload: 'text' },
      { t: 'fail', session: sid(), code: 'X', message: 'm', culprits: [0] },
      { t: 'hello', index: 1, signature: new Uint8Array(10) }, // hello after authentication
      [1, 2, 3],
      'just a string',
    ];
    for (const frame of cases) {
      const r = await rawAuthed(c.url, 1);
      expect((await r.next()).t).toBe('welcome');
      r.send(frame);
      expect((await r.closed).code, JSON.stringify(frame)).toBe(4002);
    }
    const text = await rawAuthed(c.url, 1);
    expect((await text.next()).t).toBe('welcome');
    text.ws.send('{"t":"done"}');
    expect((await text.closed).code).toBe(4002);

    const early = await raw(c.url);
    await early.next();
    early.send({ t: 'join', session: sid(), digest: dig(), players: [1, 2] });
    expect((await early.closed).code).toBe(4002);

    const garbage = await raw(c.url);
    await garbage.next();
    garbage.ws.send(Buffer.from([0xc1, 0xff, 0x00]));
    expect((await garbage.closed).code).toBe(4002);
  });

  it('enforces the frame size cap', async () => {
    const c = await coordinator();
    const r = await rawAuthed(c.url, 1);
    expect((await r.next()).t).toBe('welcome');
    r.send({ t: 'relay', session: sid(), to: 2, payload: new Uint8Array(5 * 1024 * 1024) });
    expect((await r.closed).code).toBe(1009);
  });
});

describe('sessions', () => {
  it('starts only when every player has joined with the same digest, then relays with the authenticated sender', async () => {
    const c = await coordinator();
    const [l1, l2, l3] = await links3(c);
    const s = sid();
    const d = dig();
    let started = 0;
    const j1 = l1!.join(s, d, [3, 1, 2]).then((r) => (started++, r));
    const j2 = l2!.join(s, d, [1, 2, 3]).then((r) => (started++, r));
    await sleep(100);
    expect(started).toBe(0);
    expect(c.stats().sessions).toBe(1);
    const j3 = l3!.join(s, d, [1, 2, 3]);
    for (const r of await Promise.all([j1, j2, j3])) expect(r.players).toEqual([1, 2, 3]);

    l1!.send(s, 2, new Uint8Array([1, 2, 3]));
    l3!.send(s, 2, new Uint8Array([3]));
    const m1 = await l2!.receive(s, 1);
    expect(m1.from).toBe(1);
    expect(m1.payload).toEqual(new Uint8Array([1, 2, 3]));
    expect(await l2!.receive(s)).toEqual({ from: 3, payload: new Uint8Array([3]) });

    // The link refuses to address a non-player or itself.
    expect(() => l1!.send(s, 4, new Uint8Array([1]))).toThrow(/not another player/);
    expect(() => l1!.send(s, 1, new Uint8Array([1]))).toThrow(/not another player/);

    for (const l of [l1, l2, l3]) l!.done(s);
    await sleep(50);
    expect(c.stats().sessions).toBe(0);
    expect(c.stats().completed).toBe(1);
    expect(c.stats().relayed).toBe(2);
    await expectAbort(l2!.receive(s), 'SESSION_DONE');
  });

  it('a node cannot spoof `from`, and relaying to a non-player is refused', async () => {
    const c = await coordinator();
    const [l2, l3, l4] = await Promise.all([link(c, 2), link(c, 3), link(c, 4)]);
    const r1 = await rawAuthed(c.url, 1);
    expect((await r1.next()).t).toBe('welcome');
    await l2.waitForOnline([1, 2, 3, 4], 2000);
    const s = sid();
    const d = dig();
    r1.send({ t: 'join', session: s, digest: d, players: [1, 2, 3] });
    const started = await Promise.all([l2.join(s, d, [1, 2, 3]), l3.join(s, d, [1, 2, 3])]);
    expect(started[0].players).toEqual([1, 2, 3]);
    expect(await r1.next()).toMatchObject({ t: 'start', players: [1, 2, 3] });

    // Node 1 relays to 2: the coordinator stamps from = 1.
    r1.send({ t: 'relay', session: s, to: 2, payload: new Uint8Array([7]) });
    expect(await l2.receive(s)).toEqual({ from: 1, payload: new Uint8Array([7]) });
    // A `from` field claiming to be node 3 is not part of a node's relay frame: the socket is dropped.
    r1.send({ t: 'relay', session: s, to: 2, from: 3, payload: new Uint8Array([8]) });
    expect((await r1.closed).code).toBe(4002);
    // ... and node 1's departure aborts the session for the others.
    await expectAbort(l2.receive(s), 'NODE_OFFLINE', [1]);
    await expectAbort(l3.receive(s), 'NODE_OFFLINE', [1]);

    // Relay to a node outside the session (4 is online but not a player): refused, nothing delivered.
    const r1b = await rawAuthed(c.url, 1);
    expect((await r1b.next()).t).toBe('welcome');
    const s2 = sid();
    r1b.send({ t: 'join', session: s2, digest: d, players: [1, 2] });
    await l2.join(s2, d, [1, 2]);
    expect((await r1b.next()).t).toBe('start');
    r1b.send({ t: 'relay', session: s2, to: 4, payload: new Uint8Array([9]) });
    expect((await r1b.closed).code).toBe(4002);
    await expectAbort(l2.receive(s2), 'NODE_OFFLINE', [1]);
    expect(c.stats().relayed).toBe(1);
  });

  it('a joined player may relay before the start: held, then delivered after every start, in order; an abort drops it; before joining is refused 4002', async () => {
    const c = await coordinator();
    const [l1, l2, l3] = await links3(c);
    const s = sid();
    const d = dig();
    const j1 = pending(l1!.join(s, d, [1, 2, 3]));
    const j2 = pending(l2!.join(s, d, [1, 2, 3]));
    // Node 1 joined: its messages wait at the coordinator until node 3 joins.
    l1!.send(s, 2, new Uint8Array([1]));
    l1!.send(s, 3, new Uint8Array([2]));
    l1!.send(s, 2, new Uint8Array([3]));
    const got2 = l2!.receive(s, 1);
    await sleep(100);
    expect(c.stats().relayed).toBe(0);
    const j3 = l3!.join(s, d, [1, 2, 3]);
    await Promise.all([j1, j2, j3]);
    expect(await got2).toEqual({ from: 1, payload: new Uint8Array([1]) });
    expect(await l2!.receive(s, 1)).toEqual({ from: 1, payload: new Uint8Array([3]) });
    expect(await l3!.receive(s, 1)).toEqual({ from: 1, payload: new Uint8Array([2]) });
    expect(c.stats().relayed).toBe(3);

    // Held messages of a session that never starts are dropped with it.
    const s2 = sid();
    const a1 = pending(l1!.join(s2, d, [1, 2]));
    l1!.send(s2, 2, new Uint8Array([4]));
    l2!.fail(s2, 'X', 'refused', []);
    await expectAbort(a1, 'FAILED');
    expect(c.stats().relayed).toBe(3);

    // A player relaying for a session it has not joined breaks the relay rules.
    const r1 = await rawAuthed(c.url, 4);
    expect((await r1.next()).t).toBe('welcome');
    const s3 = sid();
    pending(l2!.join(s3, d, [2, 4]));
    await sleep(50);
    r1.send({ t: 'relay', session: s3, to: 2, payload: new Uint8Array([5]) });
    expect((await r1.closed).code).toBe(4002);
  });

  it('DIGEST_MISMATCH names the nodes whose digest differs from the majority (all of them on a tie)', async () => {
    const c = await coordinator();
    const [l1, l2, l3] = await links3(c);
    const s = sid();
    const d = dig();
    const results = [l1!.join(s, d, [1, 2, 3]), l2!.join(s, d, [1, 2, 3]), l3!.join(s, dig(), [1, 2, 3])].map(pending);
    for (const p of results) await expectAbort(p, 'DIGEST_MISMATCH', [3]);

    const t = sid();
    const tie = [l1!.join(t, dig(), [1, 2]), l2!.join(t, dig(), [1, 2])].map(pending);
    for (const p of tie) await expectAbort(p, 'DIGEST_MISMATCH', [1, 2]);
    expect(c.stats().aborted.DIGEST_MISMATCH).toBe(2);
  });

  it('PLAYERS_MISMATCH when joins disagree on the player list', async () => {
    const c = await coordinator();
    const [l1, l2, l3] = await links3(c);
    const s = sid();
    const d = dig();
    const a = pending(l1!.join(s, d, [1, 2, 3]));
    const b = pending(l2!.join(s, d, [1, 2, 3]));
    const x = pending(l3!.join(s, d, [2, 3]));
    await expectAbort(a, 'PLAYERS_MISMATCH', [3]);
    await expectAbort(b, 'PLAYERS_MISMATCH', [3]);
    await expectAbort(x, 'PLAYERS_MISMATCH', [3]);
  });

  it('NODE_OFFLINE fails fast when a player is not connected, and when a player drops mid-session', async () => {
    const c = await coordinator();
    const [l1, l2] = await links3(c, [1, 2]);
    const t0 = Date.now();
    await expectAbort(l1!.join(sid(), dig(), [1, 2, 3]), 'NODE_OFFLINE', [3]);
    expect(Date.now() - t0).toBeLessThan(1000);

    const l3 = await link(c, 3);
    await l1!.waitForOnline([1, 2, 3], 2000);
    const s = sid();
    const d = dig();
    await Promise.all([l1!.join(s, d, [1, 2, 3]), l2!.join(s, d, [1, 2, 3]), l3.join(s, d, [1, 2, 3])]);
    const waits = [l1!.receive(s), l2!.receive(s, 3)].map(pending);
    await l3.close();
    for (const p of waits) await expectAbort(p, 'NODE_OFFLINE', [3]);
  });

  it('a late joiner of an aborted session gets the abort at once', async () => {
    const c = await coordinator();
    const [l1, l2] = await links3(c, [1, 2]);
    const s = sid();
    await expectAbort(l1!.join(s, dig(), [1, 2, 3]), 'NODE_OFFLINE', [3]);
    const l3 = await link(c, 3);
    await l2!.waitForOnline([1, 2, 3], 2000);
    await expectAbort(l2!.join(s, dig(), [1, 2, 3]), 'NODE_OFFLINE', [3]);
    await expectAbort(l3.join(s, dig(), [1, 2, 3]), 'NODE_OFFLINE', [3]);
  });

  it('EXPIRED: a session that does not start or finish by its deadline, with a timer that is cleared', async () => {
    const c = await coordinator({ sessionTimeoutMs: 600 });
    const [l1, l2] = await links3(c, [1, 2, 3]);
    // A join asks for less than the coordinator's default; node 3 never joins.
    const t0 = Date.now();
    await expectAbort(l1!.join(sid(), dig(), [1, 2, 3], 150), 'EXPIRED', [2, 3]);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(140);
    expect(took).toBeLessThan(550);

    // Started but not finished within the coordinator's 600 ms: names the node that is not done.
    const s = sid();
    const d = dig();
    await Promise.all([l1!.join(s, d, [1, 2]), l2!.join(s, d, [1, 2])]);
    l1!.done(s);
    await expectAbort(l2!.receive(s), 'EXPIRED', [2]);

    // Finished and aborted sessions leave no timer behind: nothing fires later.
    const f = sid();
    await Promise.all([l1!.join(f, d, [1, 2]), l2!.join(f, d, [1, 2])]);
    l1!.done(f);
    l2!.done(f);
    const g = sid();
    await Promise.all([l1!.join(g, d, [1, 2]), l2!.join(g, d, [1, 2])]);
    l1!.fail(g, 'TEST', 'give up', []);
    await expectAbort(l2!.receive(g), 'FAILED', []);
    await sleep(700);
    expect(c.stats().aborted.EXPIRED).toBe(2);
    expect(c.stats().aborted.FAILED).toBe(1);
    expect(c.stats().completed).toBe(1);
  });

  it('a repeated identical join is harmless; a node changing its digest aborts the session naming it', async () => {
    const c = await coordinator();
    const [l1, l2, l3] = await links3(c);
    const r3 = await rawAuthed(c.url, 4);
    expect((await r3.next()).t).toBe('welcome');
    const s = sid();
    const d = dig();
    const j1 = pending(l1!.join(s, d, [1, 2, 4]));
    const j2 = pending(l2!.join(s, d, [1, 2, 4]));
    r3.send({ t: 'join', session: s, digest: dig(), players: [1, 2, 4] });
    // 4 differs from the 2-node majority: decided as soon as all three joined
    await expectAbort(j1, 'DIGEST_MISMATCH', [4]);
    await expectAbort(j2, 'DIGEST_MISMATCH', [4]);
    expect(await r3.next()).toMatchObject({ t: 'abort', code: 'DIGEST_MISMATCH', nodes: [4] });

    const t = sid();
    r3.send({ t: 'join', session: t, digest: d, players: [3, 4] });
    r3.send({ t: 'join', session: t, digest: d, players: [3, 4] });
    await sleep(50);
    expect(c.stats().sessions).toBe(1);
    r3.send({ t: 'join', session: t, digest: dig(), players: [3, 4] });
    expect(await r3.next()).toMatchObject({ t: 'abort', code: 'DIGEST_MISMATCH', nodes: [4] });
    // and the other player, joining late, learns the outcome at once
    await expectAbort(l3!.join(t, d, [3, 4]), 'DIGEST_MISMATCH', [4]);
  });

  it('FAILED propagates the reporting node\'s claim and reason to every player, as nodes, never as culprits', async () => {
    const c = await coordinator();
    const [l1, l2, l3] = await links3(c);
    const s = sid();
    const d = dig();
    await Promise.all([l1!.join(s, d, [1, 2, 3]), l2!.join(s, d, [1, 2, 3]), l3!.join(s, d, [1, 2, 3])]);
    const p1 = pending(l1!.receive(s));
    const p3 = pending(l3!.receive(s, 2));
    const p2 = pending(l2!.receive(s));
    l2!.fail(s, 'BAD_SHARE', 'share from node 3 does not verify', [3]);
    for (const p of [p1, p3, p2]) {
      const e = await expectAbort(p, 'FAILED', [3]);
      // An unsigned fail frame from one node is a claim, not evidence: it blames no one.
      expect(e.culprits).toEqual([]);
      expect(e.message).toMatch(/share from node 3 does not verify/);
    }
    expect(c.stats().aborted.FAILED).toBe(1);
  });

  it('buffers messages that arrive before the driver asks, and hands them to a relay handler', async () => {
    const c = await coordinator();
    const [l1, l2] = await links3(c, [1, 2]);
    const s = sid();
    const d = dig();
    await Promise.all([l1!.join(s, d, [1, 2]), l2!.join(s, d, [1, 2])]);
    for (let i = 1; i <= 5; i++) l1!.send(s, 2, new Uint8Array([i]));
    await sleep(100);
    expect((await l2!.receive(s)).payload).toEqual(new Uint8Array([1]));
    const got: number[] = [];
    const off = l2!.onRelay(s, (m) => got.push(m.payload[0]!));
    expect(got).toEqual([2, 3, 4, 5]);
    l1!.send(s, 2, new Uint8Array([6]));
    await sleep(50);
    expect(got).toEqual([2, 3, 4, 5, 6]);
    off();
    l1!.send(s, 2, new Uint8Array([7]));
    expect((await l2!.receive(s)).payload).toEqual(new Uint8Array([7]));
    await expectAbort(l2!.receive(s, 1, { timeoutMs: 50 }), 'RECEIVE_TIMEOUT', [1]);
  });

  it('a relay queue overflow fails the session instead of dropping messages', async () => {
    const c = await coordinator();
    const l1 = await link(c, 1);
    const l2 = await link(c, 2, { maxQueuedPerSession: 10 });
    await l1.waitForOnline([1, 2], 2000);
    const s = sid();
    const d = dig();
    await Promise.all([l1.join(s, d, [1, 2]), l2.join(s, d, [1, 2])]);
    const p1 = pending(l1.receive(s));
    for (let i = 0; i < 11; i++) l1.send(s, 2, new Uint8Array([i]));
    await expectAbort(p1, 'FAILED');
    await expectAbort(l2.receive(s), 'RELAY_OVERFLOW');
  });

  it('runs 20 sessions concurrently to completion', async () => {
    const c = await coordinator();
    const ls = await links3(c);
    const players = [1, 2, 3];
    const run = async (l: CoordinatorLink, s: Uint8Array, d: Uint8Array) => {
      await l.join(s, d, players);
      const me = l.index;
      for (const to of players) if (to !== me) l.send(s, to, new Uint8Array([me, ...s.subarray(0, 4)]));
      const got = await Promise.all(players.filter((p) => p !== me).map((p) => l.receive(s, p)));
      for (const m of got) expect(m.payload).toEqual(new Uint8Array([m.from, ...s.subarray(0, 4)]));
      l.done(s);
    };
    const sessions = Array.from({ length: 20 }, () => ({ s: sid(), d: dig() }));
    await Promise.all(sessions.flatMap(({ s, d }) => ls.map((l) => run(l, s, d))));
    await sleep(50);
    expect(c.stats().completed).toBe(20);
    expect(c.stats().sessions).toBe(0);
    expect(c.stats().relayed).toBe(20 * 6);
  });
});

describe('resilience and transport', () => {
  it('the link reconnects after the coordinator restarts on the same port', async () => {
    const c1 = await coordinator();
    const [l1, l2] = await links3(c1, [1, 2]);
    const s = sid();
    const d = dig();
    await Promise.all([l1!.join(s, d, [1, 2]), l2!.join(s, d, [1, 2])]);
    const wait = pending(l1!.receive(s));
    const down = new Promise((r) => l1!.once('disconnected', r));
    await c1.close();
    coordinators.splice(coordinators.indexOf(c1), 1);
    await down;
    await expectAbort(wait, 'NODE_OFFLINE', [1]);
    expect(l1!.connected).toBe(false);
    const offline = await l1!.join(sid(), dig(), [1, 2]).catch((e) => e);
    expect(offline.code).toBe(ErrorCode.Unavailable);

    const back = Promise.all([l1, l2].map((l) => new Promise((r) => l!.once('connected', r))));
    await coordinator({ port: c1.port });
    await back;
    await l1!.waitForOnline([1, 2], 5000);
    const t = sid();
    await Promise.all([l1!.join(t, d, [1, 2]), l2!.join(t, d, [1, 2])]);
    l2!.send(t, 1, new Uint8Array([42]));
    expect(await l1!.receive(t)).toEqual({ from: 2, payload: new Uint8Array([42]) });
  });

  it('terminates a connection that stops answering pings, and reports it offline', async () => {
    const c = await coordinator({ heartbeatMs: 100 });
    const l2 = await link(c, 2);
    const r = await raw(c.url, { autoPong: false });
    const ch = await r.next();
    if (ch.t !== 'challenge') throw new Error('expected challenge');
    r.send({ t: 'hello', index: 1, signature: identitySign(ids.get(1)!.secretKey, authMessage(ch.coordinator, ch.nonce, 1)) });
    await l2.waitForOnline([1, 2], 2000);
    const gone = new Promise<number[]>((res) => l2.on('online', (o) => o.length === 1 && res(o)));
    expect((await r.closed).code).toBe(1006);
    expect(await gone).toEqual([2]);
    // the link answers pings, so it stays
    await sleep(250);
    expect(l2.connected).toBe(true);
  });

  it('logs session ids and node indexes, never payloads', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const c = await coordinator({ logger });
    const l1 = await link(c, 1, { logger });
    const l2 = await link(c, 2, { logger });
    await l1.waitForOnline([1, 2], 2000);
    const s = sid();
    const d = dig();
    await Promise.all([l1.join(s, d, [1, 2]), l2.join(s, d, [1, 2])]);
    const payload = new Uint8Array(randomBytes(48));
    l1.send(s, 2, payload);
    await l2.receive(s);
    l2.fail(s, 'BAD_SHARE', 'secret-looking reason', [1]);
    await sleep(50);
    const all = lines.join('\n');
    expect(all).toContain(Buffer.from(s).toString('hex'));
    expect(all).toContain('session started');
    expect(all).not.toContain(Buffer.from(payload).toString('hex'));
    expect(all).not.toContain(Buffer.from(payload).toString('base64'));
    expect(all).not.toContain(Buffer.from(d).toString('hex'));
    expect(all).not.toContain('secret-looking reason');
  });

  it('serves GET /health and /ready', async () => {
    const c = await coordinator();
    await link(c, 1);
    expect(await (await fetch(`${c.httpUrl}/health`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`${c.httpUrl}/ready`)).json()).toEqual({ ready: true, online: [1] });
  });

  const haveOpenssl = spawnSync('openssl', ['version']).status === 0;
  it.skipIf(!haveOpenssl)(`TLS: wss works with the pinned certificate; plain ws and unpinned clients are refused${haveOpenssl ? '' : ' (skipped: no openssl binary to make the test certificate)'}`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-tls-'));
    tmpDirs.push(dir);
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    const key = readFileSync(join(dir, 'key.pem'), 'utf8');
    const c = await coordinator({ tls: { cert, key } });
    expect(c.url.startsWith('wss://')).toBe(true);

    const [l1, l2] = await Promise.all([link(c, 1, { ca: cert }), link(c, 2, { ca: cert })]);
    await l1.waitForOnline([1, 2], 2000);
    const s = sid();
    const d = dig();
    await Promise.all([l1.join(s, d, [1, 2]), l2.join(s, d, [1, 2])]);
    l1.send(s, 2, new Uint8Array([5]));
    expect(await l2.receive(s)).toEqual({ from: 1, payload: new Uint8Array([5]) });

    const health = await new Promise<string>((resolve, reject) => {
      https.get(`${c.httpUrl}/health`, { ca: cert }, (res) => {
        let body = '';
        res.on('data', (x) => (body += x));
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
    expect(JSON.parse(health)).toEqual({ status: 'ok' });

    // Plain ws:// to the TLS port never opens.
    const plainUrl = c.url.replace('wss://', 'ws://');
    const plain = await raw(plainUrl).then(
      () => 'opened',
      (e: Error) => e.message,
    );
    expect(plain).not.toBe('opened');
    // A client that does not trust the coordinator's certificate cannot connect.
    const untrusting = new CoordinatorLink();
    links.push(untrusting);
    const err = await untrusting
      .connect({ url: c.url, index: 3, identitySecretKey: ids.get(3)!.secretKey, connectTimeoutMs: 400, reconnect: { minDelayMs: 20, maxDelayMs: 50 } })
      .catch((e) => e);
    expect(err).toBeInstanceOf(TesseraError);
    expect(err.message).toMatch(/could not connect/);
    expect(c.stats().online).toEqual([1, 2]);
  });
});

describe('coordinator process (coordinator/main.ts)', () => {
  function writeFiles(files: Record<string, string>): string {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-coord-'));
    tmpDirs.push(dir);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return dir;
  }
  const membershipJson = () =>
    JSON.stringify({ nodes: NODES.map((index) => ({ index, identityPublicKey: Buffer.from(ids.get(index)!.publicKey).toString('hex') })) });

  it('refuses a bad config with one line naming the field', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ port: 'x', membershipFile: 'm.json' }, /^tessera-coordinator: config error: port: /],
      [{ port: 0 }, /membershipFile: expected a file path/],
      [{ port: 0, membershipFile: 'missing.json' }, /membershipFile: cannot read/],
      [{ port: 0, membershipFile: 'bad.json' }, /membershipFile\.nodes\[0\]\.identityPublicKey: expected hex of 1952 bytes/],
      [{ port: 0, membershipFile: 'm.json', tls: { certFile: 'nope.pem', keyFile: 'nope.pem' } }, /tls\.certFile: cannot read/],
      [{ port: 0, membershipFile: 'm.json', colour: 'blue' }, /colour: unknown field/],
    ];
    const dir = writeFiles({ 'm.json': membershipJson(), 'bad.json': JSON.stringify({ nodes: [{ index: 1, identityPublicKey: 'abcd' }] }) });
    // Every case through the loader; two of them through the process (each spawn costs ~1 s of tsx start-up).
    cases.forEach(([config, pattern], i) => {
      writeFileSync(join(dir, 'c.json'), JSON.stringify(config));
      const err = (() => {
        try {
          loadConfigFile(join(dir, 'c.json'));
        } catch (e) {
          return e as Error;
        }
        throw new Error('config accepted');
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect(`tessera-coordinator: config error: ${err.message}`).toMatch(pattern);
      if (i > 1) return;
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'coordinator/main.ts', '--config', join(dir, 'c.json')], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, r.stderr).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(pattern);
    });
    expect(() => loadConfigFromEnv({ TESSERA_COORDINATOR_MEMBERSHIP: join(dir, 'm.json') })).toThrow(/^port: /);
    const fromEnv = loadConfigFromEnv({ TESSERA_COORDINATOR_PORT: '7400', TESSERA_COORDINATOR_MEMBERSHIP: join(dir, 'm.json') });
    expect(fromEnv.options.port).toBe(7400);
    expect([...fromEnv.options.membership.keys()]).toEqual(NODES);
  });

  it('starts from a config file, serves nodes and /health, and exits cleanly on SIGTERM', async () => {
    const dir = writeFiles({ 'm.json': membershipJson() });
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ port: 0, host: '127.0.0.1', membershipFile: 'm.json', coordinatorId: 'cli-test' }));
    const child = spawn(process.execPath, ['--import', 'tsx', 'coordinator/main.ts', '--config', join(dir, 'c.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let buf = '';
        child.stdout.on('data', (chunk) => {
          buf += chunk;
          for (const line of buf.split('\n')) {
            try {
              const rec = JSON.parse(line);
              if (rec.msg === 'ready') resolve(rec.url);
            } catch {
              /* partial line */
            }
          }
        });
        child.on('exit', (code) => reject(new Error(`exited ${code}`)));
      });
      const l = await link({ url }, 1, { coordinatorId: 'cli-test' });
      expect(l.online()).toEqual([1]);
      const health = await fetch(url.replace('ws://', 'http://').replace('/nodes', '/health'));
      expect(health.status).toBe(200);
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('the link refuses a challenge from an unexpected coordinator id', async () => {
    const c = await coordinator({ coordinatorId: 'real' });
    const l = new CoordinatorLink();
    links.push(l);
    const err = await l
      .connect({ url: c.url, index: 1, identitySecretKey: ids.get(1)!.secretKey, coordinatorId: 'expected', connectTimeoutMs: 300, reconnect: { minDelayMs: 20, maxDelayMs: 50 } })
      .catch((e) => e);
    expect(err.code).toBe(ErrorCode.Unavailable);
    expect(c.stats().online).toEqual([]);
  });
});
