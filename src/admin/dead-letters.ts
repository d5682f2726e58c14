/**
 * The dead-letter admin endpoints (SPEC §11.1):
 *
 *   GET    /dead-letters[?route=R&upstream=U&limit=N]   list, oldest first (no bodies)
 *   GET    /dead-letters/ID                             one entry, its body as text or base64
 *   POST   /dead-letters/ID/replay                      replay one (a parked one too)
 *   POST   /dead-letters/replay[?route=R&upstream=U]    replay all, or those filtered
 *   DELETE /dead-letters/ID                             delete one
 *
 * Answers JSON. A spool that cannot be opened answers 503 with the reason.
 * Stored headers hold no credentials (they were never stored), so an entry
 * is shown whole.
 */
import { send } from './reply.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DeadLetters, ReplayOutcome } from '../dead-letter/hub.ts';
import type { Entry, EntryWithBody } from '../dead-letter/store.ts';
import { SpoolError } from '../dead-letter/store.ts';

const ONE = /^\/dead-letters\/([^/]+)$/;
const ONE_REPLAY = /^\/dead-letters\/([^/]+)\/replay$/;

/** True when the request was a dead-letter call (answered here). */
export async function deadLetterAdmin(hub: DeadLetters, req: IncomingMessage, res: ServerResponse, url: string, query: URLSearchParams): Promise<boolean> {
  if (url !== '/dead-letters' && !url.startsWith('/dead-letters/')) return false;
  const method = req.method ?? 'GET';
  try {
    await dispatch(hub, method, url, query, res);
  } catch (err) {
    if (!(err instanceof SpoolError)) throw err;
    send(res, 503, { error: 'spool_unavailable', message: err.message });
  }
  return true;
}

async function dispatch(hub: DeadLetters, method: string, url: string, q: URLSearchParams, res: ServerResponse): Promise<void> {
  const filter = { route: q.get('route') ?? undefined, upstream: q.get('upstream') ?? undefined };
  if (url === '/dead-letters') {
    if (method !== 'GET' && method !== 'HEAD') return send(res, 405, { error: 'method_not_allowed' });
    const limit = Number(q.get('limit') ?? 1000);
    const entries = hub.list(filter, Number.isFinite(limit) && limit > 0 ? Math.min(limit, 10_000) : 1000);
    return send(res, 200, { count: entries.length, entries: entries.map(summary) });
  }
  if (url === '/dead-letters/replay') {
    if (method !== 'POST') return send(res, 405, { error: 'method_not_allowed' });
    const routes = await hub.replayAll(filter);
    return send(res, 200, { routes });
  }
  let m = ONE_REPLAY.exec(url);
  if (m !== null) {
    if (method !== 'POST') return send(res, 405, { error: 'method_not_allowed' });
    const one = decodeSegment(m[1]!);
    if (one === null) return send(res, 400, { error: 'bad_id', message: 'the id is not valid percent-encoding' });
    const r = await hub.replayOne(one);
    return send(res, replayStatus(r), r);
  }
  m = ONE.exec(url);
  if (m === null) return send(res, 404, { error: 'not_found' });
  const id = decodeSegment(m[1]!);
  if (id === null) return send(res, 400, { error: 'bad_id', message: 'the id is not valid percent-encoding' });
  if (method === 'GET' || method === 'HEAD') {
    const found = hub.get(id);
    return found === null ? send(res, 404, { error: 'not_found', id }) : send(res, 200, detail(found.entry));
  }
  if (method === 'DELETE') {
    const ok = hub.delete(id);
    return ok ? send(res, 200, { id, deleted: true }) : send(res, 404, { error: 'not_found', id, message: 'no such entry, or it is being replayed' });
  }
  return send(res, 405, { error: 'method_not_allowed' });
}

function replayStatus(r: ReplayOutcome): number {
  switch (r.result) {
    case 'success':
      return 200;
    case 'not_found':
      return 404;
    case 'busy':
      return 409; // another replay holds it
    case 'no_route':
      return 409; // its route is no longer configured: nothing to replay to
    default:
      return 502; // sent (or refused by the breaker) and not delivered: kept
  }
}

function summary(e: Entry): Record<string, unknown> {
  return {
    id: e.id,
    route: e.route,
    upstream: e.upstream,
    method: e.method,
    path: e.path,
    reason: e.reason,
    createdAt: new Date(e.createdAt).toISOString(),
    attempts: e.attempts,
    lastError: e.lastError,
    parked: e.parked,
    idempotencyKey: e.idempotencyKey,
    bodySize: e.bodySize,
  };
}

/** One entry with its headers and body: text when it is printable UTF-8, base64 otherwise. */
function detail(e: EntryWithBody): Record<string, unknown> {
  const text = e.body.toString('utf8');
  const printable = Buffer.from(text, 'utf8').equals(e.body) && !/[\u0000-\u0008\u000e-\u001f\u007f]/.test(text);
  const headers: [string, string][] = [];
  for (let i = 0; i < e.headers.length; i += 2) headers.push([e.headers[i]!, e.headers[i + 1]!]);
  return { ...summary(e), headers, body: printable ? text : e.body.toString('base64'), bodyEncoding: printable ? 'utf8' : 'base64' };
}

/** A path segment decoded, or null when its percent-encoding is broken (`%E0`): a 400, not a thrown error. */
export function decodeSegment(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

