/**
 * Small waiting and socket helpers shared by the reload and drain tests.
 */
import http from 'node:http';
import net from 'node:net';
import type { Reply } from './http.ts';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it holds; resolves with the ms it took, or throws naming `what`. */
export async function waitFor(what: string, fn: () => boolean | Promise<boolean>, ms = 10_000): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await Promise.resolve().then(fn).catch(() => false)) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms}ms waiting for: ${what}`);
    await sleep(10);
  }
}

/** A loopback port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Resolves with the connect error's code, or 'connected'. */
export function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** A GET through `agent` that also says whether it went out on a reused (kept-alive) socket. */
export function getVia(agent: http.Agent, url: string, timeoutMs = 15_000): Promise<Reply & { reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString('utf8'), reused: req.reusedSocket }),
      );
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}
