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
  timeoutMs?: number;
  node?: number;
  /** Called once for every request sent to this node, before it is sent (metrics; tests count round trips). */
  onRequest?: (request: { method: 'GET' | 'POST'; path: string; node?: number }) => void;
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

/** Async so that a refused URL (assertSafeTransport) is a rejection, like every other failure. */
export async function requestJson<T>(target: HttpTarget, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const base = assertSafeTransport(target.url);
  const url = new URL(path, base);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  target.onRequest?.({ method, path, ...(target.node !== undefined ? { node: target.node } : {}) });
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise<T>((resolve, reject) => {
    const req = lib.request(
      url,
      {
        method,
        headers: {
          authorization: `Bearer ${target.apiKey}`,
          accept: 'application/json',
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
        },
        ...(url.protocol === 'https:' && target.ca ? { ca: target.ca } : {}),
        timeout: target.timeoutMs ?? 120_000,
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
            reject(new TesseraClientError('BAD_RESPONSE', `node answered ${res.statusCode} with non-JSON`, { status: res.statusCode, node: target.node }));
            return;
          }
          if ((res.statusCode ?? 500) >= 400) {
            reject(
              new TesseraClientError(String(json.code ?? 'HTTP_' + res.statusCode), String(json.message ?? 'request failed'), {
                status: res.statusCode,
                node: target.node,
                culprits: Array.isArray(json.culprits) ? json.culprits : [],
                ...(typeof json.evidence === 'string' ? { evidence: json.evidence } : {}),
              }),
            );
          } else resolve(json as T);
        });
        res.on('error', (e) => reject(new TesseraClientError('UNAVAILABLE', e.message, { node: target.node })));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url.host} in time`)));
    req.on('error', (e) =>
      reject(e instanceof TesseraClientError ? e : new TesseraClientError('UNAVAILABLE', `node ${target.node ?? url.host}: ${e.message}`, { node: target.node })),
    );
    if (payload) req.write(payload);
    req.end();
  });
}
