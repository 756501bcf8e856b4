/**
 * Minimal JSON-over-HTTP(S) client for the node API, with certificate pinning.
 *
 * node:https takes the pinned certificate as `ca`, so the SDK trusts exactly its node's certificate.
 * An API key is never sent over plain HTTP to a non-loopback host.
 */
import http from 'node:http';
import https from 'node:https';

export class TesseraClientError extends Error {
  readonly code: string;
  readonly status?: number;
  /** The node (1-based index) whose answer this is, when known. */
  readonly node?: number;
  readonly culprits: readonly number[];
  /** Hex evidence against the culprits, as the node sent it (sdk/client.ts re-checks it before reporting). */
  readonly evidence?: string;
  constructor(code: string, message: string, extra: { status?: number; node?: number; culprits?: readonly number[]; evidence?: string } = {}) {
    super(message);
    this.name = 'TesseraClientError';
    this.code = code;
    this.status = extra.status;
    this.node = extra.node;
    this.culprits = extra.culprits ?? [];
    if (extra.evidence !== undefined) this.evidence = extra.evidence;
  }
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export interface HttpTarget {
  url: string;
  apiKey: string;
  /** PEM certificate(s) to trust for this node (pinning). */
  ca?: string | Buffer;
  /** The whole request's deadline, from sending to the last byte of the answer (default DEFAULT_TIMEOUT_MS). */
  timeoutMs?: number;
  node?: number;
  /** Called once for every request sent to this node, before it is sent (metrics; tests count round trips). */
  onRequest?: (request: { method: 'GET' | 'POST'; path: string; node?: number }) => void;
  /**
   * Called once per request when it ends: answered (any HTTP status) or not (refused connection,
   * reset, timeout), with the reason. What the SDK's live-player selection learns from (sdk/client.ts).
   */
  onOutcome?: (outcome: { answered: boolean; reason?: string }) => void;
  /** Extra request headers (e.g. the acting-tenant header of an admin key, sdk/client.ts NodeClient.forTenant). */
  headers?: Readonly<Record<string, string>>;
}

/** Default deadline of one SDK request to one node. */
export const DEFAULT_TIMEOUT_MS = 15_000;

/** A request timeout: a positive whole number of milliseconds that a timer can hold. */
export function checkTimeoutMs(timeoutMs: unknown, what = 'timeoutMs'): number {
  if (typeof timeoutMs !== 'number' || !Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 2 ** 31 - 1) {
    throw new TesseraClientError('BAD_INPUT', `${what}: expected a whole number of milliseconds from 1 to ${2 ** 31 - 1}`);
  }
  return timeoutMs;
}

/** "node 2 (https://host:7702)": how errors name a node. */
export function nodeLabel(target: Pick<HttpTarget, 'url' | 'node'>): string {
  return target.node !== undefined ? `node ${target.node} (${target.url})` : `node ${target.url}`;
}

/** Whether an error says the node did not answer at all (as opposed to answering with an error). */
export function isUnreachable(e: unknown): boolean {
  return e instanceof TesseraClientError && e.status === undefined && (e.code === 'NODE_TIMEOUT' || e.code === 'UNAVAILABLE');
}

export function assertSafeTransport(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TesseraClientError('BAD_INPUT', `not a URL: ${url}`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new TesseraClientError('BAD_INPUT', `unsupported scheme ${u.protocol}`);
  if (u.protocol === 'http:' && !LOOPBACK.has(u.hostname)) {
    throw new TesseraClientError('BAD_INPUT', `refusing to send an API key over plain HTTP to ${u.hostname}; use https`);
  }
  return u;
}

/**
 * Async so that a refused URL (assertSafeTransport) is a rejection, like every other failure.
 * Errors: the node's own { code, message } for an HTTP error status; BAD_RESPONSE (not JSON);
 * UNAVAILABLE (no connection, reset); NODE_TIMEOUT naming the node when the whole exchange takes
 * longer than timeoutMs.
 */
export async function requestJson<T>(target: HttpTarget, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const base = assertSafeTransport(target.url);
  const url = new URL(path, base);
  const timeoutMs = target.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  target.onRequest?.({ method, path, ...(target.node !== undefined ? { node: target.node } : {}) });
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const finish = (answered: boolean, outcome: () => void, reason?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      target.onOutcome?.({ answered, ...(reason !== undefined ? { reason } : {}) });
      outcome();
    };
    const fail = (answered: boolean, e: TesseraClientError) => finish(answered, () => reject(e), answered ? undefined : e.message);
    const req = lib.request(
      url,
      {
        method,
        headers: {
          ...target.headers,
          authorization: `Bearer ${target.apiKey}`,
          accept: 'application/json',
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
        },
        ...(url.protocol === 'https:' && target.ca ? { ca: target.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: any;
          try {
            json = text ? JSON.parse(text) : {};
          } catch {
            fail(true, new TesseraClientError('BAD_RESPONSE', `node answered ${res.statusCode} with non-JSON`, { status: res.statusCode, node: target.node }));
            return;
          }
          if ((res.statusCode ?? 500) >= 400) {
            fail(
              true,
              new TesseraClientError(String(json.code ?? 'HTTP_' + res.statusCode), String(json.message ?? 'request failed'), {
                status: res.statusCode,
                node: target.node,
                culprits: Array.isArray(json.culprits) ? json.culprits : [],
                ...(typeof json.evidence === 'string' ? { evidence: json.evidence } : {}),
              }),
            );
          } else finish(true, () => resolve(json as T));
        });
        res.on('error', (e) => fail(false, new TesseraClientError('UNAVAILABLE', `${nodeLabel(target)}: ${e.message}`, { node: target.node })));
      },
    );
    // One deadline for the whole exchange (a socket idle timeout would let a node that trickles bytes hold the call forever).
    const timer = setTimeout(() => {
      fail(false, new TesseraClientError('NODE_TIMEOUT', `${nodeLabel(target)} did not answer within ${timeoutMs} ms`, { node: target.node }));
      req.destroy();
    }, timeoutMs);
    req.on('error', (e) => fail(false, e instanceof TesseraClientError ? e : new TesseraClientError('UNAVAILABLE', `${nodeLabel(target)}: ${e.message}`, { node: target.node })));
    if (payload) req.write(payload);
    req.end();
  });
}
