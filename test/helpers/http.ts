// Client helpers for tests. They use node:http and node:net, never undici,
// so a test's client shares no dispatcher, pool or global state with the
// breakwater instance under test.
import http from 'node:http';
import net from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  rawHeaders: string[];
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Default: none (agent: false), one connection per request, so no keep-alive socket outlives the test. */
  agent?: http.Agent;
  /** Whole-exchange limit; the request is destroyed and the promise rejects after it. Default 10000. */
  timeoutMs?: number;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/**
 * One HTTP/1.1 request; resolves with the whole response (body as UTF-8).
 * Rejects on any socket error, including a response cut off mid-body.
 */
export function request(url: string, opts: RequestOptions = {}): Promise<Reply> {
  const { method = 'GET', body, agent, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS } = opts;
  const headers: Record<string, string> = { ...opts.headers };
  const hasLength = Object.keys(headers).some((h) => h.toLowerCase() === 'content-length' || h.toLowerCase() === 'transfer-encoding');
  if (body !== undefined && !hasLength) headers['content-length'] = String(Buffer.byteLength(body));

  return new Promise<Reply>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(err);
    };
    const req = http.request(url, { method, headers, agent: agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', fail);
      res.on('aborted', () => fail(new Error(`response to ${method} ${url} aborted mid-body`)));
      res.on('end', () => {
        if (settled) return;
        // 'end' after an abort is not a complete response.
        if (!res.complete) return fail(new Error(`response to ${method} ${url} ended incomplete`));
        settled = true;
        clearTimeout(timer);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          rawHeaders: res.rawHeaders,
        });
      });
    });
    const timer = setTimeout(
      () => fail(new Error(`request ${method} ${url} timed out after ${timeoutMs}ms`)),
      timeoutMs,
    );
    req.on('error', fail);
    req.end(body);
  });
}

/**
 * Writes raw bytes on a fresh TCP connection and collects whatever comes back
 * until the server closes the connection (closed: true; a reset counts) or
 * timeoutMs (default 2000) passes (closed: false); then destroys the socket.
 * Our side is never half-closed, so a server waiting for more bytes keeps
 * waiting. Rejects only if the connection cannot be made.
 */
export function rawRequest(
  port: number,
  bytes: string | Buffer,
  opts: { timeoutMs?: number; host?: string } = {},
): Promise<{ raw: string; closed: boolean }> {
  const { timeoutMs = 2000, host = '127.0.0.1' } = opts;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let connected = false;
    let settled = false;
    const socket = net.connect({ port, host });
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ raw: Buffer.concat(chunks).toString('utf8'), closed });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('connect', () => {
      connected = true;
      socket.write(bytes);
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', (err) => {
      if (connected) return finish(true);
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

/** Parses the reply body as JSON; the error names the status and the start of the body. */
export function json(reply: Reply): any {
  try {
    return JSON.parse(reply.body);
  } catch {
    throw new Error(`expected a JSON body, got status ${reply.status}: ${reply.body.slice(0, 200)}`);
  }
}
