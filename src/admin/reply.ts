/**
 * The admin API's JSON answer, shared by every endpoint module: the body's
 * `error` code, if any, is recorded for the call's audit line (audit.ts).
 */
import type { ServerResponse } from 'node:http';
import { recordError } from './audit.ts';

/** `headers`: more of them, beside content-type and content-length (Retry-After, WWW-Authenticate). */
export function send(res: ServerResponse, status: number, body: unknown, headers?: Readonly<Record<string, string | number>>): void {
  const error = (body as { error?: unknown } | null)?.error;
  if (typeof error === 'string') recordError(res, error);
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s), ...headers });
  res.end(s);
}
