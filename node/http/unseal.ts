/**
 * The unseal routes (contract/http.ts ROUTES.unsealStatus, unsealInit, unseal, seal), served by every
 * node's API (node/http/api.ts): by the sealed front end of a shamir-unseal node (node/sealed.ts), by the
 * full node it starts once unsealed, and by nodes with another KEK provider (status only; the others
 * answer BAD_STATE). The node's state machine is node/sealed.ts; this file only maps routes to it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { ROUTES, type UnsealInitRequest, type UnsealInitResponse, type UnsealRequest, type UnsealResponse, type UnsealStatusResponse } from '../../contract/http.js';
import { requireAdmin, type Principal } from '../governance/tenants.js';

/** What the unseal routes ask of the node (node/sealed.ts SealedNode, or notSealable for other providers). */
export interface UnsealApi {
  status(): UnsealStatusResponse;
  init(who: Principal & { role: 'admin' }, body: UnsealInitRequest): Promise<UnsealInitResponse>;
  unseal(who: Principal & { role: 'admin' }, body: UnsealRequest): Promise<UnsealResponse>;
  /** Answer first, then seal: `afterReply` runs once the answer is sent (the full node's server closes). */
  seal(who: Principal & { role: 'admin' }): { status: UnsealStatusResponse; afterReply: () => void };
}

/** The URLs of the unseal routes: answered while the node is sealed (node/http/api.ts exempts them). */
export const UNSEAL_URLS: ReadonlySet<string> = new Set([ROUTES.unsealStatus.url, ROUTES.unsealInit.url, ROUTES.unseal.url, ROUTES.seal.url]);

/** The unseal API of a node whose KEK is not shamir-unseal: never sealed; init, unseal and seal are refused. */
export function notSealable(node: number, provider: string): UnsealApi {
  const refuse = (): never => {
    throw new TesseraError(ErrorCode.BadState, `node ${node}'s KEK provider is ${provider}, not shamir-unseal: it has no seal`);
  };
  return {
    status: () => ({ node, provider, state: 'unsealed', sealed: false, progress: 0 }),
    init: async () => refuse(),
    unseal: async () => refuse(),
    seal: () => refuse(),
  };
}

/** Any fastify instance (the API's has the TypeBox type provider): as node/http/console.ts takes it. */
type AnyFastify = FastifyInstance<any, any, any, any, any>;

export function registerUnsealRoutes(app: AnyFastify, api: UnsealApi | undefined, who: (req: FastifyRequest) => Principal): void {
  const live = (): UnsealApi => {
    if (!api) throw new TesseraError(ErrorCode.Unavailable, 'this server has no seal');
    return api;
  };
  const admin = (req: FastifyRequest): Principal & { role: 'admin' } => {
    const p = who(req);
    requireAdmin(p);
    return p;
  };
  app.route({ ...ROUTES.unsealStatus, handler: async () => live().status() });
  app.route({ ...ROUTES.unsealInit, handler: async (req: FastifyRequest<{ Body: UnsealInitRequest }>) => live().init(admin(req), req.body) });
  app.route({ ...ROUTES.unseal, handler: async (req: FastifyRequest<{ Body: UnsealRequest }>) => live().unseal(admin(req), req.body) });
  app.route({
    ...ROUTES.seal,
    handler: async (req, reply) => {
      const { status, afterReply } = live().seal(admin(req));
      // The full node's server closes as the node seals: only after this answer has gone out.
      reply.raw.once('finish', afterReply);
      return status;
    },
  });
}
