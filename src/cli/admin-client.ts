/**
 * The admin API as the `top` and `tap` commands reach it: an address
 * (`--admin HOST:PORT`, default 127.0.0.1:9901, the built-in admin address;
 * `http://…` accepted, so a `kubectl port-forward` URL pastes in), and the
 * bearer token from $BREAKWATER_ADMIN_TOKEN when it is set.
 */
import type { IncomingMessage } from 'node:http';
import { http } from '../http/node-http.ts';

export const DEFAULT_ADMIN = '127.0.0.1:9901';

/** `HOST:PORT`, `:PORT`, `PORT` or `http://HOST:PORT` → a base URL; throws with a clear message otherwise. */
export function adminBase(addr: string): URL {
  let a = addr.trim();
  if (/^\d+$/.test(a)) a = `127.0.0.1:${a}`;
  if (a.startsWith(':')) a = `127.0.0.1${a}`;
  if (!/^https?:\/\//.test(a)) a = `http://${a}`;
  let u: URL;
  try {
    u = new URL(a);
  } catch {
    throw new Error(`--admin "${addr}" is not HOST:PORT`);
  }
  if (u.protocol !== 'http:') throw new Error(`--admin "${addr}": the admin API speaks plain http`);
  if (u.port === '') throw new Error(`--admin "${addr}" has no port`);
  return new URL(`http://${u.host}`);
}

function headers(): Record<string, string> {
  const token = process.env['BREAKWATER_ADMIN_TOKEN'];
  return token !== undefined && token !== '' ? { authorization: `Bearer ${token}` } : {};
}

/** GET a path; resolves with the response (body unread). */
export function adminGet(base: URL, path: string, timeoutMs: number | null): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.get(new URL(path, base), { headers: headers(), agent: false }, resolve);
    req.on('error', (err) => reject(new Error(`admin API at ${base.host}: ${err.message}`)));
    if (timeoutMs !== null) req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
  });
}

export function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

/** GET a path and read its body; a non-2xx answer is an error naming the status and the server's message. */
export async function adminText(base: URL, path: string, timeoutMs = 5_000): Promise<string> {
  const res = await adminGet(base, path, timeoutMs);
  const body = await readAll(res);
  if ((res.statusCode ?? 0) >= 300) throw new Error(`admin API at ${base.host}${path}: ${res.statusCode} ${errorMessage(body)}`);
  return body;
}

/** The `message` (or `error`) of a JSON error body, else the body itself, short. */
export function errorMessage(body: string): string {
  try {
    const j = JSON.parse(body) as { message?: unknown; error?: unknown };
    if (typeof j.message === 'string') return j.message;
    if (typeof j.error === 'string') return j.error;
  } catch {
    // not JSON
  }
  return body.trim().slice(0, 200);
}

/** Reads `--name VALUE` / `--name=VALUE` options; flags listed in `booleans` take no value. */
export function parseOptions(args: readonly string[], names: readonly string[], booleans: readonly string[]): Map<string, string> | string {
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf('=');
    const name = a.startsWith('--') ? (eq > 0 ? a.slice(2, eq) : a.slice(2)) : null;
    if (name !== null && booleans.includes(name) && eq < 0) {
      out.set(name, 'true');
    } else if (name !== null && names.includes(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : args[++i];
      if (v === undefined) return `--${name} needs a value`;
      out.set(name, v);
    } else {
      return `unknown argument: ${a}`;
    }
  }
  return out;
}
