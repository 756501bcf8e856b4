/**
 * A shamir-unseal node (issue 15): the node process starts SEALED, every time. The KEK exists only in
 * memory, rebuilt from K of the N operator shares it was split into (node/store/kek-unseal.ts).
 *
 *   uninitialized  no unseal.json in the data dir: POST /v1/unseal/init makes the KEK, the data dir and the
 *                  node's identity, and returns the shares once (plain, or sealed to operator keys). The node
 *                  keeps no share, and stays sealed.
 *   sealed         the sealed front end: the node's own API (node/http/api.ts buildApi) with no store behind
 *                  it. /health, GET /v1/unseal and the unseal routes answer; every other route answers 503
 *                  UNAVAILABLE "node I is sealed". API keys are the config file's only (the store's are
 *                  sealed with it); init, unseal and seal need an admin one. It does not connect to the
 *                  coordinator.
 *   unsealing      K valid shares are in: the KEK is rebuilt, checked against unseal.json's id, and the full
 *                  node (node/main.ts startNode) opens the store with it. Only when the store, identity and
 *                  audit log have opened does the front end close and the full node bind the same port: the
 *                  port is closed for that moment only (connections are refused, not answered wrongly).
 *                  If the store does not open, the node stays sealed and says why (lastError).
 *   unsealed       the full node serves; POST /v1/seal (admin) closes it, wipes the KEK and brings the
 *                  front end back on the same port (the same short gap). Its KEK rotates in place: new
 *                  shares first (prepareKekRotation below), then the rotate route; a node unsealed while a
 *                  rotation is unfinished also opens the next KEK, so its start finishes it
 *                  (node/store/kek-unseal.ts has the design).
 *
 * Audit: the audit log lives in the sealed store, so each attempt (init, every submitted share accepted
 * or refused with its reason) is first appended to <dataDir>/unseal-attempts.jsonl with fsync (no share
 * bytes), logged, and copied into the audit log when the store next opens; then the file is emptied. A
 * crash between the copy and the emptying copies those entries twice: at least once, never lost. Seal is
 * audited directly (the store is open then).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { fromHex, toHex, zeroize } from '../core/bytes.js';
import { ErrorCode, TesseraError, ensure } from '../core/errors.js';
import { loadIdentityEngine } from '../core/identity.js';
import { unsealShareAad } from '../core/unseal.js';
import { wrappingKeyFingerprint } from '../core/bundle.js';
import { sealToReceiver, wrapKemForPublicKey } from '../core/wrap.js';
import type { KekRotatePrepareRequest, KekRotatePrepareResponse, UnsealInitRequest, UnsealInitResponse, UnsealRequest, UnsealResponse, UnsealStatusResponse } from '../contract/http.js';
import type { NodeConfig } from './config.js';
import type { AuditLog } from './governance/audit.js';
import { TenantStore, type Principal } from './governance/tenants.js';
import { buildApi } from './http/api.js';
import type { UnsealApi } from './http/unseal.js';
import { loadOrCreateIdentity } from './store/identity-store.js';
import { RawKek, type Kek } from './store/kek.js';
import {
  UNSEAL_ATTEMPTS_FILE,
  UnsealShares,
  clearUnsealAttempts,
  makeUnsealKek,
  openBegunNextKek,
  prepareUnsealRotation,
  readUnsealAttempts,
  readUnsealMetadata,
  recordUnsealAttempt,
  writeUnsealMetadata,
  type UnsealAttempt,
  type UnsealMetadata,
} from './store/kek-unseal.js';
import { ShareStore, type RecordNamespace } from './store/storage.js';
import type { RunningNode, StartOptions } from './main.js';

type State = 'uninitialized' | 'sealed' | 'unsealing' | 'unsealed';

/** The full node's start (node/main.ts startNode), given to this module so it does not import main's startNode itself. */
export type StartFullNode = (config: NodeConfig, logger: Logger, o: StartOptions) => Promise<RunningNode>;

/** A namespace with no records that refuses writes: the sealed front end's API keys are the config's only. */
const NO_RECORDS: RecordNamespace = {
  prefix: 'sealed/',
  get: async () => undefined,
  put: async () => {
    throw new TesseraError(ErrorCode.Unavailable, 'the node is sealed');
  },
  del: async () => {
    throw new TesseraError(ErrorCode.Unavailable, 'the node is sealed');
  },
  batch: async () => {
    throw new TesseraError(ErrorCode.Unavailable, 'the node is sealed');
  },
  iterate: async function* () {},
  iterateMarked: async function* () {},
};

export class SealedNode implements UnsealApi {
  private state: State;
  private metadata: UnsealMetadata | undefined;
  private shares: UnsealShares | undefined;
  private frontEnd: FastifyInstance | undefined;
  private full: RunningNode | undefined;
  private audit: AuditLog | undefined;
  private lastError: string | undefined;
  private sealing = false;
  private port: number;
  private url = '';
  private queue: Promise<unknown> = Promise.resolve();
  private readonly logger: Logger;

  private constructor(
    private readonly config: NodeConfig,
    /** The node's logger, for the full node; `logger` is its child for this module. */
    private readonly nodeLogger: Logger,
    private readonly tenants: TenantStore,
    private readonly startFull: StartFullNode,
    private readonly onFatal: (e: Error) => void,
  ) {
    this.logger = nodeLogger.child({ component: 'seal' });
    this.port = config.api.port;
    this.metadata = readUnsealMetadata(config.dataDir);
    if (this.metadata && this.metadata.node !== config.index) {
      throw new TesseraError(ErrorCode.BadState, `${config.dataDir}/unseal.json belongs to node ${this.metadata.node}, not node ${config.index}`);
    }
    this.state = this.metadata ? 'sealed' : 'uninitialized';
    this.shares = this.metadata ? new UnsealShares(this.metadata) : undefined;
  }

  /** Start sealed: the front end listens on the node's port. */
  static async start(config: NodeConfig, logger: Logger, o: { startFull: StartFullNode; onFatal: (e: Error) => void }): Promise<RunningNode & { node: SealedNode }> {
    ensure(config.kek.kind === 'shamir-unseal', ErrorCode.BadState, 'a sealed start is for the shamir-unseal KEK provider only');
    const tenants = await TenantStore.open({
      records: NO_RECORDS,
      configKeys: config.apiKeys.map((k) => ({ id: k.id, tenant: k.tenant, keyHash: k.keyHash, ...(k.role ? { role: k.role } : {}) })),
    });
    const node = new SealedNode(config, logger, tenants, o.startFull, o.onFatal);
    await node.openFrontEnd();
    node.logger.warn({ index: config.index, state: node.state, api: node.url }, `node ${config.index} is sealed: it serves nothing until ${node.metadata ? `${node.metadata.threshold} operator shares are submitted (tessera unseal)` : 'it is initialised (tessera unseal init)'}`);
    return {
      node,
      get url() {
        return node.url;
      },
      close: () => node.close(),
    };
  }

  status(): UnsealStatusResponse {
    if (this.state === 'unsealed') this.refreshMetadata(); // a KEK rotation of the full node replaces unseal.json
    const m = this.metadata;
    return {
      node: this.config.index,
      provider: 'shamir-unseal',
      state: this.state,
      sealed: this.state !== 'unsealed',
      progress: this.state === 'unsealed' ? 0 : this.state === 'unsealing' ? (m?.threshold ?? 0) : (this.shares?.progress ?? 0),
      ...(m ? { threshold: m.threshold, operators: m.shares, keyCheckValue: m.keyCheckValue } : {}),
      ...(this.lastError !== undefined && this.state !== 'unsealed' ? { lastError: this.lastError } : {}),
    };
  }

  init(who: Principal & { role: 'admin' }, body: UnsealInitRequest): Promise<UnsealInitResponse> {
    return this.serialize(async () => {
      ensure(this.state === 'uninitialized', ErrorCode.AlreadyExists, `node ${this.config.index} is already initialised (${this.config.dataDir}/unseal.json)`);
      const dataDir = this.config.dataDir;
      const { threshold, operators } = body;
      ensure(threshold <= operators, ErrorCode.BadInput, `threshold ${threshold} is more than the ${operators} operators`);
      const keys = operatorKeysOf(body.operatorKeys, operators);
      // Only a node with no store yet: a store made under another KEK would be unreadable under the new one.
      if (existsSync(dataDir)) {
        const present = readdirSync(dataDir).filter((f) => f !== UNSEAL_ATTEMPTS_FILE);
        ensure(
          present.length === 0,
          ErrorCode.BadState,
          `${dataDir} already holds ${present.slice(0, 3).join(', ')} but no unseal.json: made under another KEK provider, or an initialisation that did not finish; move it away to initialise this node`,
        );
      }
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      await loadIdentityEngine();
      const made = await makeUnsealKek(this.config.index, threshold, operators);
      let identityPublicKey: string;
      try {
        const kek = new RawKek(made.kek, 'shamir-unseal');
        try {
          const store = await ShareStore.open({ dataDir, kek, nodeIndex: this.config.index, minRotationPeriodMs: this.config.rotation.minPeriodMs });
          try {
            const ids = await loadOrCreateIdentity(store);
            identityPublicKey = toHex(ids.identity.publicKey);
            zeroize(ids.identity.secretKey, ids.kem.privateKey);
          } finally {
            await store.close();
          }
        } finally {
          kek.close();
        }
        writeUnsealMetadata(dataDir, made.metadata);
        const shares = await handOutShares(made.shares, made.metadata, keys);
        this.metadata = made.metadata;
        this.shares = new UnsealShares(made.metadata);
        this.state = 'sealed';
        this.attempt(who, 'node.unseal-init', 'ok', `initialised: ${threshold} of ${operators} operator shares${keys ? ' sealed to operator keys' : ' in plain'}, KEK ${made.metadata.keyCheckValue}`);
        return { node: this.config.index, threshold, operators, keyCheckValue: made.metadata.keyCheckValue, identityPublicKey, shares };
      } catch (e) {
        this.attempt(who, 'node.unseal-init', 'failed', `initialisation failed: ${(e as Error).message}`);
        throw e;
      } finally {
        zeroize(made.kek, ...made.shares);
      }
    });
  }

  unseal(who: Principal & { role: 'admin' }, body: UnsealRequest): Promise<UnsealResponse> {
    return this.serialize(async () => {
      let kek: Uint8Array | undefined;
      const shares = this.shares;
      try {
        ensure(this.state !== 'uninitialized', ErrorCode.BadState, `node ${this.config.index} is not initialised: run tessera unseal init first`);
        ensure(this.state === 'sealed' && shares, ErrorCode.BadState, `node ${this.config.index} is ${this.state}: it takes no shares now`);
        kek = await shares.submit(body.shareIndex, body.share);
      } catch (e) {
        this.attempt(who, 'node.unseal', 'denied', `refused: ${(e as Error).message}`);
        throw e;
      }
      const m = this.metadata!;
      if (!kek) {
        this.attempt(who, 'node.unseal', 'ok', `share ${body.shareIndex} accepted (${shares!.progress} of ${m.threshold})`);
        return { ...this.status(), accepted: body.shareIndex };
      }
      this.attempt(who, 'node.unseal', 'ok', `share ${body.shareIndex} accepted (${m.threshold} of ${m.threshold}): KEK ${m.keyCheckValue} rebuilt, unsealing`);
      this.state = 'unsealing';
      this.lastError = undefined;
      // After this answer: the front end closes inside startNode, which waits for in-flight requests.
      setImmediate(() => void this.unsealWith(kek!, who));
      return { ...this.status(), accepted: body.shareIndex };
    });
  }

  seal(who: Principal & { role: 'admin' }): { status: UnsealStatusResponse; afterReply: () => void } {
    ensure(this.state === 'unsealed' && !this.sealing, ErrorCode.BadState, `node ${this.config.index} is ${this.sealing ? 'sealing' : this.state}, not unsealed`);
    // The state says 'unsealed' until the front end is back: a status read meanwhile comes from the full node.
    this.sealing = true;
    const reason = `sealed by ${who.apiKeyId}: the KEK is wiped; ${this.metadata!.threshold} operator shares unseal it again`;
    return {
      status: { ...this.status(), state: 'sealed', sealed: true, progress: 0 },
      afterReply: () => {
        void this.serialize(async () => {
          this.logger.warn({ actor: who.apiKeyId, operation: 'node.seal' }, reason);
          await this.audit?.append({ actor: who.apiKeyId, operation: 'node.seal', outcome: 'ok', reason }).catch((e: Error) => {
            // Not lost: recorded for the next unseal to copy in.
            this.logger.error({ err: { message: e.message } }, 'cannot audit the seal now; recorded for the next unseal');
            recordUnsealAttempt(this.config.dataDir, { time: Date.now(), actor: who.apiKeyId, operation: 'node.seal', outcome: 'ok', reason });
          });
          const full = this.full;
          this.full = undefined;
          this.audit = undefined;
          await full?.close(); // closes the store and wipes the KEK (startNode's close)
          this.refreshMetadata(); // a KEK rotation may have replaced unseal.json: only the new shares match
          this.shares = new UnsealShares(this.metadata!);
          this.state = 'sealed';
          this.sealing = false;
          try {
            await this.openFrontEnd();
          } catch (e) {
            this.onFatal(e as Error);
          }
        });
      },
    };
  }

  async close(): Promise<void> {
    this.shares?.wipe();
    const full = this.full;
    this.full = undefined;
    await full?.close();
    const front = this.frontEnd;
    this.frontEnd = undefined;
    await front?.close();
  }

  private async unsealWith(kekBytes: Uint8Array, who: Principal): Promise<void> {
    const kek = new RawKek(kekBytes, 'shamir-unseal');
    zeroize(kekBytes);
    let frontClosed = false;
    let next: RawKek | undefined;
    try {
      // A KEK rotation that a crash interrupted (node/store/kek-unseal.ts): the old shares rebuilt the old
      // KEK, which opens the next one; the full node finishes the rotation before it serves.
      next = openBegunNextKek(this.config.dataDir, kek);
      if (next) this.logger.warn({ from: kek.id, to: next.id }, 'a KEK rotation is unfinished: the node finishes it as it starts');
      // The port the front end had (the OS's pick when the config says 0): the node keeps one port.
      const config: NodeConfig = { ...this.config, api: { ...this.config.api, port: this.port } };
      this.full = await this.startFull(config, this.nodeLogger, {
        keks: { current: kek, others: next ? [next] : [] },
        unseal: this,
        onAuditOpen: async (audit) => {
          this.audit = audit;
          // A failed copy keeps the file for the next unseal: it never stops the node from unsealing.
          await this.copyAttempts(audit, who).catch((e: Error) => this.logger.error({ err: { message: e.message } }, `cannot copy ${UNSEAL_ATTEMPTS_FILE} into the audit log now; kept for the next unseal`));
        },
        beforeListen: async () => {
          frontClosed = true;
          const front = this.frontEnd;
          this.frontEnd = undefined;
          await front?.close();
        },
      });
      this.state = 'unsealed';
      this.url = this.full.url;
      this.refreshMetadata(); // a finished rotation replaced unseal.json
      this.logger.info({ index: this.config.index, keyCheckValue: kek.id }, `node ${this.config.index} is unsealed`);
    } catch (e) {
      kek.close();
      next?.close();
      this.audit = undefined;
      const message = (e as Error).message.split('\n')[0]!;
      if (frontClosed) {
        this.onFatal(new Error(`node ${this.config.index}: unsealed, but the full node could not start: ${message}`));
        return;
      }
      this.lastError = `the node did not start with the rebuilt KEK: ${message}`;
      this.state = 'sealed';
      this.shares = new UnsealShares(this.metadata!);
      this.attempt(who, 'node.unseal', 'failed', this.lastError);
    }
  }

  /** Copy the recorded attempts into the audit log, then the unseal itself; then empty the file. */
  private async copyAttempts(audit: AuditLog, who: Principal): Promise<void> {
    for (const a of readUnsealAttempts(this.config.dataDir)) {
      await audit.append({
        actor: /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(a.actor) ? a.actor : 'unknown',
        operation: a.operation,
        outcome: a.outcome,
        ...(a.outcome === 'denied' ? { severity: 'warning' as const } : {}),
        reason: auditReason(`${new Date(a.time).toISOString()} ${a.reason}`),
      });
    }
    clearUnsealAttempts(this.config.dataDir);
    await audit.append({ actor: who.apiKeyId, operation: 'node.unseal', outcome: 'ok', reason: auditReason(`unsealed: KEK ${this.metadata!.keyCheckValue} opened the store`) });
  }

  private async openFrontEnd(): Promise<void> {
    const tls = this.config.api.tls && { cert: readFileSync(this.config.api.tls.certFile), key: readFileSync(this.config.api.tls.keyFile) };
    const sealedError = () => new TesseraError(ErrorCode.Unavailable, `node ${this.config.index} is sealed: ${this.state === 'uninitialized' ? 'initialise it (tessera unseal init)' : 'submit operator shares (tessera unseal)'}`);
    const app = await buildApi({
      // Never reached: every route but health, metrics and the unseal routes answers `unavailable` first.
      service: {} as never,
      admin: { hasTenant: async () => false } as never,
      authenticate: (presented) => this.tenants.authenticate(presented),
      unavailable: sealedError,
      logger: this.logger,
      ...(tls ? { tls } : {}),
      unseal: this,
    });
    const address = await app.listen({ host: this.config.api.host, port: this.port });
    // A port the OS picked (port 0) stays this node's port across seal and unseal.
    const bound = app.server.address();
    if (bound && typeof bound === 'object') this.port = bound.port;
    this.url = address;
    this.frontEnd = app;
  }

  /** Read unseal.json again (a KEK rotation replaces it when it ends); keep what is known if it cannot be read. */
  private refreshMetadata(): void {
    try {
      const m = readUnsealMetadata(this.config.dataDir);
      if (m && m.node === this.config.index) this.metadata = m;
    } catch (e) {
      this.logger.error({ err: { message: (e as Error).message } }, 'cannot read unseal.json again');
    }
  }

  /** Record one attempt durably (before answering) and log it; never share bytes. */
  private attempt(who: Principal, operation: UnsealAttempt['operation'], outcome: UnsealAttempt['outcome'], reason: string): void {
    const entry = { time: Date.now(), actor: who.apiKeyId, operation, outcome, reason };
    (outcome === 'ok' ? this.logger.info.bind(this.logger) : this.logger.warn.bind(this.logger))({ actor: who.apiKeyId, operation, outcome }, reason);
    mkdirSync(this.config.dataDir, { recursive: true, mode: 0o700 });
    recordUnsealAttempt(this.config.dataDir, entry);
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** An audit reason: printable ASCII, at most 200 characters (core/audit-verify.ts). */
function auditReason(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 200 ? `${clean.slice(0, 197)}...` : clean;
}

/** The operators' public keys of an init or prepare request, checked: one per operator, each a known KEM's, no two alike. */
function operatorKeysOf(hexKeys: readonly string[] | undefined, operators: number): Uint8Array[] | undefined {
  const keys = hexKeys?.map((h, i) => {
    const key = fromHex(h, `operatorKeys[${i}]`);
    wrapKemForPublicKey(key);
    return key;
  });
  if (keys) {
    ensure(keys.length === operators, ErrorCode.BadInput, `operatorKeys: expected one key per operator (${operators}), got ${keys.length}`);
    const seen = new Set(keys.map((k) => toHex(k)));
    ensure(seen.size === keys.length, ErrorCode.BadInput, 'operatorKeys: a key appears twice (each operator needs their own)');
  }
  return keys;
}

/** The shares as answered once: share i sealed to operator i's key (core/wrap.ts sealToReceiver), or plain without keys. */
async function handOutShares(shares: readonly Uint8Array[], metadata: UnsealMetadata, keys: readonly Uint8Array[] | undefined): Promise<UnsealInitResponse['shares']> {
  return Promise.all(
    shares.map(async (share, k) => {
      const index = k + 1;
      const checkValue = metadata.checkValues[k]!;
      const key = keys?.[k];
      if (!key) return { index, checkValue, share: toHex(share) };
      const sealed = await sealToReceiver(key, share, unsealShareAad(metadata.node, index, metadata.keyCheckValue));
      return {
        index,
        checkValue,
        wrapped: { kem: wrapKemForPublicKey(key), wrappingKeyFingerprint: toHex(wrappingKeyFingerprint(key)), enc: toHex(sealed.enc), ciphertext: toHex(sealed.ciphertext) },
      };
    }),
  );
}

/**
 * Phase 1 of rotating an unsealed shamir-unseal node's KEK (POST /v1/admin/kek/rotate/prepare; the design
 * is in node/store/kek-unseal.ts): new operator shares of the next KEK, answered once as init answers
 * them. `current` is the store's KEK now. The caller (node/governance/admin.ts) authorises and audits it.
 */
export async function prepareKekRotation(config: NodeConfig, current: Kek, body: KekRotatePrepareRequest): Promise<KekRotatePrepareResponse> {
  ensure(config.kek.kind === 'shamir-unseal', ErrorCode.BadState, `node ${config.index}'s KEK provider is ${config.kek.kind}, not shamir-unseal: it has no operator shares to prepare (\`tessera kek rotate\` alone rotates it)`);
  const meta = readUnsealMetadata(config.dataDir);
  ensure(meta !== undefined, ErrorCode.BadState, `node ${config.index} has no unseal.json`);
  const threshold = body.threshold ?? meta.threshold;
  const operators = body.operators ?? (body.operatorKeys?.length ?? meta.shares);
  ensure(threshold <= operators, ErrorCode.BadInput, `threshold ${threshold} is more than the ${operators} operators`);
  const keys = operatorKeysOf(body.operatorKeys, operators);
  const made = await prepareUnsealRotation(config.dataDir, current, { threshold, shares: operators });
  try {
    const shares = await handOutShares(made.shares, made.metadata, keys);
    return { node: config.index, threshold, operators, keyCheckValue: made.metadata.keyCheckValue, from: current.id, resplit: made.resplit, shares };
  } finally {
    zeroize(...made.shares);
  }
}
