/**
 * The Tessera SDK.
 *
 * `NodeClient` talks to one node with that node's API key. Before it asks its node to join a session,
 * it runs the operator's policy hook on the exact session request; if the hook refuses, the node is
 * never asked. `Cluster` holds every operator's NodeClient (development, tests, single-organisation
 * deployments) and runs them in parallel under one session id.
 */
import { randomBytes } from '@noble/hashes/utils.js';
import { fromHex, toHex } from '../core/bytes.js';
import { decapCombine } from '../core/decap.js';
import { getKemSuite, getSigningSuite, getSuite } from '../core/suites.js';
import type { PublicKeyPackage } from '../core/types.js';
import { decodeMessage } from '../core/wire.js';
import { decapPartialBinding } from '../core/session.js';
import { generateWrappingKeyPair, openFromSender } from '../core/wrap.js';
import type {
  DecapsulateResponse,
  KeyInfo,
  NodeInfo,
  PublicKeyPackageJson,
  RefreshResponse,
  SignResponse,
} from '../node/api-types.js';
import { requestJson, TesseraClientError, type HttpTarget } from './http.js';

export { TesseraClientError };

/** What an operator's policy hook sees: the whole session request, bytes in hex. */
export type SessionRequest =
  | { operation: 'keygen'; sessionId: string; keyId: string; suite: string; threshold: number; exportable: boolean }
  | { operation: 'sign'; sessionId: string; keyId: string; version?: number; message: string; players: number[] }
  | { operation: 'decapsulate'; sessionId: string; keyId: string; version?: number; enc: string; players: number[]; receiverPublicKey: string }
  | { operation: 'refresh'; sessionId: string; keyId: string; version?: number };

export type ApproveHook = (request: SessionRequest) => boolean | Promise<boolean>;

export interface NodeClientOptions {
  /** Base URL of the node's API, e.g. https://node1.example:7701. */
  url: string;
  apiKey: string;
  /** The operator's policy: runs before the node is asked to join any session. Default: approve. */
  approve?: ApproveHook;
  /** Pinned PEM certificate of the node (https). */
  ca?: string | Buffer;
  timeoutMs?: number;
  /** The node's index, when known (used in error messages). */
  index?: number;
}

export class NodeClient {
  private readonly target: HttpTarget;
  private readonly approve: ApproveHook;
  constructor(readonly options: NodeClientOptions) {
    this.target = { url: options.url, apiKey: options.apiKey, ca: options.ca, timeoutMs: options.timeoutMs, node: options.index };
    this.approve = options.approve ?? (() => true);
  }

  info(): Promise<NodeInfo> {
    return requestJson(this.target, 'GET', '/v1/node');
  }

  getKey(keyId: string, version?: number): Promise<KeyInfo> {
    return requestJson(this.target, 'GET', `/v1/keys/${encodeURIComponent(keyId)}${version ? `?version=${version}` : ''}`);
  }

  /** Run the policy hook; throws POLICY_DENIED if it refuses (or throws). */
  async authorize(request: SessionRequest): Promise<void> {
    let ok = false;
    try {
      ok = (await this.approve(request)) === true;
    } catch {
      ok = false;
    }
    if (!ok) {
      throw new TesseraClientError('POLICY_DENIED', `policy hook of node ${this.options.index ?? this.options.url} refused the ${request.operation} request`, {
        node: this.options.index,
      });
    }
  }

  /**
   * Tell the node its operator refused this session, so the coordinator aborts it for the other
   * nodes at once (they get DECLINED naming this node instead of waiting for the deadline).
   */
  async decline(sessionId: string): Promise<void> {
    await requestJson(this.target, 'POST', '/v1/sessions/decline', { sessionId });
  }

  /** Run the policy hook, then ask the node to join. A refusal declines the session at the node. */
  async join<T>(request: SessionRequest, skipApproval = false): Promise<T> {
    if (!skipApproval) {
      try {
        await this.authorize(request);
      } catch (e) {
        await this.decline(request.sessionId).catch(() => undefined);
        throw e;
      }
    }
    const { operation, keyId, ...rest } = request as SessionRequest & { keyId: string };
    switch (operation) {
      case 'keygen':
        return requestJson(this.target, 'POST', '/v1/keys', { keyId, ...rest });
      case 'sign':
      case 'decapsulate':
      case 'refresh':
        return requestJson(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/${operation}`, rest);
    }
  }
}

export function newSessionId(): string {
  return toHex(randomBytes(16));
}

export function packageFromJson(j: PublicKeyPackageJson): PublicKeyPackage {
  return {
    suite: getSuite(j.suite).id,
    threshold: j.threshold,
    parties: j.parties,
    epoch: j.epoch,
    commitments: j.commitments.map((c, i) => fromHex(c, `commitments[${i}]`)),
    verifyingShares: j.verifyingShares.map((c, i) => fromHex(c, `verifyingShares[${i}]`)),
  };
}

export interface KeygenOptions {
  suite: string;
  keyId?: string;
  threshold?: number;
  exportable?: boolean;
}

/** One operator holding every node's credentials. Node i is `nodes[i - 1]`. */
export class Cluster {
  readonly nodes: readonly NodeClient[];
  constructor(nodes: readonly NodeClient[], private readonly defaults: { threshold?: number } = {}) {
    if (nodes.length < 2) throw new TesseraClientError('BAD_INPUT', 'a cluster needs at least 2 nodes');
    this.nodes = nodes;
  }

  get size(): number {
    return this.nodes.length;
  }

  private node(i: number): NodeClient {
    const n = this.nodes[i - 1];
    if (!n) throw new TesseraClientError('BAD_INPUT', `no node ${i} in this cluster (1..${this.size})`);
    return n;
  }

  /**
   * Every involved operator's hook runs first; only if all approve is any node asked. So a refusal
   * gives a clear error and no node is left waiting for a session that will never start.
   */
  private async run<T>(players: readonly number[], request: SessionRequest): Promise<T[]> {
    await Promise.all(players.map((i) => this.node(i).authorize(request)));
    const settled = await Promise.allSettled(players.map((i) => this.node(i).join<T>(request, true)));
    const failures = settled.flatMap((r, k) => (r.status === 'rejected' ? [[players[k]!, r.reason] as const] : []));
    if (failures.length) {
      // Prefer the error that names culprits or a cause over the "aborted" echoes of the others.
      const errs = failures.map(([, e]) => e as TesseraClientError);
      const best = errs.find((e) => e.culprits?.length) ?? errs.find((e) => e.code !== 'SESSION_ABORTED') ?? errs[0]!;
      throw best;
    }
    return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
  }

  async keygen(o: KeygenOptions): Promise<KeyInfo> {
    const threshold = o.threshold ?? this.defaults.threshold ?? Math.floor(this.size / 2) + 1;
    if (threshold > this.size) throw new TesseraClientError('BAD_PARAMETERS', `threshold ${threshold} is above the node count ${this.size}`);
    getSuite(o.suite);
    const request: SessionRequest = {
      operation: 'keygen',
      sessionId: newSessionId(),
      keyId: o.keyId ?? `key-${toHex(randomBytes(8))}`,
      suite: o.suite,
      threshold,
      exportable: o.exportable ?? false,
    };
    const results = await this.run<KeyInfo>(allPlayers(this.size), request);
    assertSame(results.map((r) => r.publicKey), 'public key');
    return results[0]!;
  }

  getKey(keyId: string, version?: number, node = 1): Promise<KeyInfo> {
    return this.node(node).getKey(keyId, version);
  }

  async publicKey(keyId: string, version?: number): Promise<string> {
    return (await this.getKey(keyId, version)).publicKey;
  }

  async sign(o: { keyId: string; message: Uint8Array | string; players?: number[]; version?: number }): Promise<SignResponse> {
    const key = await this.getKey(o.keyId, o.version, o.players?.[0] ?? 1);
    const players = o.players ?? allPlayers(key.threshold);
    const message = typeof o.message === 'string' ? o.message : toHex(o.message);
    const request: SessionRequest = { operation: 'sign', sessionId: newSessionId(), keyId: o.keyId, message, players, ...(o.version ? { version: o.version } : {}) };
    const results = await this.run<SignResponse>(players, request);
    assertSame(results.map((r) => r.signature), 'signature');
    const suite = getSigningSuite(key.suite);
    if (!suite.verify(fromHex(results[0]!.signature, 'signature'), fromHex(message, 'message'), fromHex(key.publicKey, 'publicKey'))) {
      throw new TesseraClientError('VERIFICATION_FAILED', 'the aggregated signature does not verify');
    }
    return results[0]!;
  }

  /** Threshold decapsulation: the nodes wrap their partial results to a fresh receiver key only this call holds. */
  async decapsulate(o: { keyId: string; enc: Uint8Array | string; players?: number[]; version?: number }): Promise<{ sharedSecret: string; version: number }> {
    const key = await this.getKey(o.keyId, o.version, o.players?.[0] ?? 1);
    const suite = getKemSuite(key.suite);
    const players = o.players ?? allPlayers(key.threshold);
    const receiver = await generateWrappingKeyPair('ml-kem-768');
    try {
      const enc = typeof o.enc === 'string' ? o.enc : toHex(o.enc);
      const sessionId = newSessionId();
      const request: SessionRequest = {
        operation: 'decapsulate',
        sessionId,
        keyId: o.keyId,
        enc,
        players,
        receiverPublicKey: toHex(receiver.publicKey),
        ...(o.version ? { version: o.version } : {}),
      };
      const results = await this.run<DecapsulateResponse>(players, request);
      const session = fromHex(sessionId, 'sessionId');
      const pkgs = results.map((r) => r.publicPackage);
      assertSame(pkgs.map((p) => JSON.stringify(p)), 'public package');
      const pkg = packageFromJson(pkgs[0]!);
      const partials = new Map<number, ReturnType<typeof decodeMessage<'decap/partial'>>>();
      for (const r of results) {
        const plaintext = await openFromSender(
          receiver,
          { kem: r.wrappedPartial.kem, enc: fromHex(r.wrappedPartial.enc, 'enc'), ciphertext: fromHex(r.wrappedPartial.ciphertext, 'ciphertext') },
          decapPartialBinding(session, o.keyId, r.version, r.index),
        );
        partials.set(r.index, decodeMessage(plaintext, 'decap/partial', suite.id));
      }
      const secret = decapCombine(suite, pkg, fromHex(enc, 'enc'), partials, session);
      return { sharedSecret: toHex(secret), version: results[0]!.version };
    } finally {
      receiver.privateKey.fill(0);
    }
  }

  async refresh(o: { keyId: string; version?: number }): Promise<RefreshResponse> {
    const request: SessionRequest = { operation: 'refresh', sessionId: newSessionId(), keyId: o.keyId, ...(o.version ? { version: o.version } : {}) };
    const results = await this.run<RefreshResponse>(allPlayers(this.size), request);
    assertSame(results.map((r) => String(r.epoch)), 'epoch');
    return results[0]!;
  }
}

function allPlayers(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

function assertSame(values: string[], what: string): void {
  if (new Set(values).size !== 1) throw new TesseraClientError('VERIFICATION_FAILED', `nodes returned different ${what}s`);
}
