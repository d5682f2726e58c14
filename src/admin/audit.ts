/**
 * What the admin dispatcher (server.ts) records of a call for the audit log,
 * without the handlers doing anything: the query and the JSON body's fields
 * (bounded, secret-looking ones redacted), the answer's status and error code.
 *
 * Bodies are recorded as the shared `readSmall` helper (server.ts) reads them (the
 * dispatcher never reads a body itself: a handler that reads it after an
 * await would find it gone); answers as the shared `send` helper writes them.
 * A handler that uses neither is still audited, with what the dispatcher
 * sees: method, path, query, status.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { REDACTED } from '../config/redact.ts';

/** Keys whose values are never recorded, wherever they appear in the arguments. */
const SECRET_KEY = /token|secret|passw|authoriz|cookie|credential|api[-_]?key|private|signature|session/i;
const MAX_STRING = 200;
const MAX_KEYS = 20;
const MAX_ITEMS = 20;
const MAX_DEPTH = 3;
/** Past this (as JSON) the arguments are replaced by their size. */
const MAX_ARGS_CHARS = 4096;

const bodies = new WeakMap<IncomingMessage, { text: string; bytes: number }>();
const errors = new WeakMap<ServerResponse, string>();
const notes = new WeakMap<ServerResponse, Record<string, unknown>>();
const handled = new WeakSet<ServerResponse>();

/** Called by the body reader: what was read (up to its limit) and how many bytes came. */
export function recordBody(req: IncomingMessage, text: string, bytes: number): void {
  bodies.set(req, { text, bytes });
}

/** Called by `send`: the `error` code of an error answer. */
export function recordError(res: ServerResponse, code: string): void {
  errors.set(res, code);
}

/** A handler adds details to its audit line (a breaker's state before and after). */
export function auditDetails(res: ServerResponse, details: Record<string, unknown>): void {
  notes.set(res, { ...notes.get(res), ...details });
}

/** A handler whose call is audited by another line (POST /reload: its config_change line names the client). */
export function auditedElsewhere(res: ServerResponse): void {
  handled.add(res);
}

export function isAuditedElsewhere(res: ServerResponse): boolean {
  return handled.has(res);
}

export function detailsOf(res: ServerResponse): Record<string, unknown> | null {
  return notes.get(res) ?? null;
}

/** success for 2xx/3xx; the answer's error code, or `failed`; `aborted` when the answer never completed. */
export function outcomeOf(req: IncomingMessage, res: ServerResponse): string {
  // The caller left before its answer: 'aborted' when its request never
  // arrived whole (nothing was acted on), 'client_gone' when the call went
  // on and decided (a replay that ran on: its status is kept).
  if (!res.writableFinished) return res.headersSent && req.complete ? 'client_gone' : 'aborted';
  if (res.statusCode < 400) return 'success';
  return errors.get(res) ?? 'failed';
}

/** Query parameters and body fields, bounded and redacted; null when there are none. `hide`: values never recorded (the admin token). */
export function argumentsOf(req: IncomingMessage, query: string, hide: readonly string[]): Record<string, unknown> | null {
  const out: Record<string, unknown> = {};
  if (query !== '') {
    const q: Record<string, unknown> = {};
    let n = 0;
    for (const [k, v] of new URLSearchParams(query)) {
      if (n++ >= MAX_KEYS) break;
      put(q, k, SECRET_KEY.test(k) ? REDACTED : clean(v, hide, 0));
    }
    out['query'] = q;
  }
  const body = bodies.get(req);
  if (body !== undefined && body.bytes > 0) {
    let parsed: unknown;
    let json = true;
    try {
      parsed = JSON.parse(body.text);
    } catch {
      json = false;
    }
    // A body that is not JSON is only measured: its text may be anything.
    out['body'] = json && parsed !== undefined ? clean(parsed, hide, 0) : { bytes: body.bytes, json: false };
  }
  if (Object.keys(out).length === 0) return null;
  const size = JSON.stringify(out).length;
  return size > MAX_ARGS_CHARS ? { truncated: true, chars: size } : out;
}

function clean(v: unknown, hide: readonly string[], depth: number): unknown {
  if (typeof v === 'string') {
    if (hide.some((h) => h !== '' && v.includes(h))) return REDACTED;
    return v.length > MAX_STRING ? `${v.slice(0, MAX_STRING)}…` : v;
  }
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return v;
  if (depth >= MAX_DEPTH) return '…';
  if (Array.isArray(v)) {
    const items = v.slice(0, MAX_ITEMS).map((x) => clean(x, hide, depth + 1));
    if (v.length > MAX_ITEMS) items.push(`…and ${v.length - MAX_ITEMS} more`);
    return items;
  }
  if (typeof v === 'object') {
    const out: Record<string, unknown> = {};
    let n = 0;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (n++ >= MAX_KEYS) {
        out['…'] = 'more keys';
        break;
      }
      put(out, k.length > MAX_STRING ? k.slice(0, MAX_STRING) : k, SECRET_KEY.test(k) ? REDACTED : clean(x, hide, depth + 1));
    }
    return out;
  }
  return null;
}

function put(o: Record<string, unknown>, k: string, v: unknown): void {
  // defineProperty: a key named __proto__ must stay a key.
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}
