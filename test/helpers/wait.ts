/**
 * Small waiting and socket helpers shared by the reload and drain tests.
 */
import { readFileSync } from 'node:fs';
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

/**
 * The first port of the kernel's ephemeral range: port-0 binds and outgoing
 * connections only ever get ports from there on.
 */
const EPHEMERAL_LOW = ((): number => {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : 32_768;
  } catch {
    return 32_768; // not Linux: the IANA range's start, close to what other kernels use
  }
})();

/**
 * A loopback port that was free a moment ago, for something that binds it
 * later (a child process, an upstream that comes and goes, a port that must
 * refuse). Taken at random from below the ephemeral range, never with a
 * port-0 bind: a port handed out by port 0 and closed again is soon handed
 * to the next server any concurrently running test file starts (on Linux
 * only ~7,000 odd ports are in play), which then answers where this test
 * expects nothing, or holds the port this test wants back. Only another
 * freePort() can now take the same port, one chance in ~10,000.
 */
export async function freePort(): Promise<number> {
  // A host whose ephemeral range starts low (1024 65535) leaves no range outside it: port 0 then.
  if (EPHEMERAL_LOW <= 11_000) return portZero();
  for (let i = 0; ; i++) {
    const port = 10_000 + Math.floor(Math.random() * (EPHEMERAL_LOW - 10_000));
    const s = net.createServer();
    const ok = await new Promise<boolean>((resolve, reject) => {
      s.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' && i < 100 ? resolve(false) : reject(err)));
      s.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!ok) continue;
    await new Promise((r) => s.close(r));
    return port;
  }
}

async function portZero(): Promise<number> {
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
