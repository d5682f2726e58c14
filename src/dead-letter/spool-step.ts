/**
 * The dead-letter step (SPEC §11.1): between the body step and the fallback
 * layer. A request whose reply is one of the route's `on` failures, with a
 * body-bearing method, is written to the spool — durably, before the
 * client is answered — and the answer carries `x-breakwater-dead-letter: ID`
 * (or is a `202 {"deadLetter": ID}` with `respond: accepted`).
 *
 * Outside the fallback on purpose: a request a fallback rescued is not a
 * failure and is not spooled; one the fallback could not rescue is.
 *
 * A spool that cannot be written (disk full, unwritable path) changes
 * nothing for the client: the failure goes out exactly as without a spool
 * (no header), and the error is logged and counted (`write_error`).
 */
import type { DeadLetterConfig } from '../config/types.ts';
import { errorCodeFor } from '../pipeline/classify.ts';
import type { Exchange } from '../pipeline/exchange.ts';
import type { Layer, Reply, StaticReply } from '../pipeline/handler.ts';
import type { DeadLetters } from './hub.ts';
import type { SpoolStore } from './store.ts';

/** Methods whose requests change state and may carry a body: what is spooled (README: Dead letters). */
export const SPOOLED_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export const DEAD_LETTER_HEADER = 'x-breakwater-dead-letter';

export interface SpoolStepParams {
  readonly route: string;
  readonly upstream: string;
  readonly config: DeadLetterConfig;
  readonly store: SpoolStore;
  readonly hub: DeadLetters;
  /** Header names never stored: credentials, and what the upstream's requestHeaders set (re-applied at replay). */
  readonly secret: ReadonlySet<string>;
  /** The route's `retry.idempotencyKeyHeader`: carried, or generated at spool time. */
  readonly idempotencyHeader: string;
}

/**
 * Which `on` trigger a reply meets, as the metric's reason; null when it is
 * no spooled failure. A response keeps its status and may also be
 * `retries-exhausted`; an attempt without a response is its failure's kind.
 */
export function spoolReason(cfg: DeadLetterConfig, reply: Reply): string | null {
  if (reply.type === 'static') return null;
  if (reply.type === 'failure') {
    switch (reply.code) {
      case 'circuit_open':
        return cfg.on.has('circuit-open') ? 'circuit_open' : null;
      case 'bulkhead_full':
        return cfg.on.has('bulkhead-full') ? 'bulkhead_full' : null;
      case 'rate_limited':
        return cfg.on.has('rate-limited') ? 'rate_limited' : null;
      case 'timeout':
        return cfg.on.has('timeout') ? 'timeout' : null;
      case 'connect_failure':
        return cfg.on.has('connect-failure') ? 'connect_failure' : null;
      case 'upstream_reset':
        return cfg.on.has('reset') ? 'reset' : null;
      default:
        return null; // request_too_large, bad_request...: the client's own fault
    }
  }
  if (reply.status === 0) {
    const code = errorCodeFor(reply.kind);
    if (reply.exhausted && cfg.on.has('retries-exhausted')) return 'retries_exhausted';
    if (code === 'timeout') return cfg.on.has('timeout') ? 'timeout' : null;
    if (code === 'connect_failure') return cfg.on.has('connect-failure') ? 'connect_failure' : null;
    if (code === 'upstream_reset') return cfg.on.has('reset') ? 'reset' : null;
    return null;
  }
  if (reply.exhausted && cfg.on.has('retries-exhausted')) return 'retries_exhausted';
  if (cfg.statuses.has(reply.status) || (reply.status >= 500 && cfg.on.has('5xx'))) return 'status';
  return null;
}

export function deadLetterStep(p: SpoolStepParams): Layer {
  const { config, hub } = p;
  return (next) => async (ex: Exchange) => {
    const reply = await next(ex);
    // A client that went away sees no id: spooling its request would make a
    // replay the client cannot know about (it may well retry itself). A gRPC
    // call is not spooled: its outcome is in trailers a replay does not read,
    // and a streaming call has no one body to keep.
    if (ex.clientAborted || ex.grpc || !SPOOLED_METHODS.has(ex.method)) return reply;
    const reason = spoolReason(config, reply);
    if (reason === null) return reply;
    return spool(p, ex, reply, reason, hub);
  };
}

async function spool(p: SpoolStepParams, ex: Exchange, reply: Reply, reason: string, hub: DeadLetters): Promise<Reply> {
  const body = ex.body;
  // A body that streamed (over the replay buffer) is gone: never store a truncated one.
  if (body !== null && (!Buffer.isBuffer(body) || body.length > p.config.maxBodySize)) {
    hub.dropped(p.route, 'too_large', 1, { upstream: p.upstream, requestId: ex.requestId });
    return reply;
  }
  const { headers, key } = storedHeaders(ex, p.secret, p.idempotencyHeader);
  const id = await hub.write(p.route, p.config, p.store, {
    route: p.route,
    upstream: p.upstream,
    method: ex.method,
    path: ex.target,
    headers,
    body: body ?? EMPTY,
    reason,
    idempotencyKey: key,
  }, ex.requestId);
  if (id === null) return reply; // not written: answered as without a spool
  // The client may have gone while the write waited for its group commit:
  // the entry stays (it is durable, and replay will deliver it once).
  ex.flag('dead_letter');
  if (p.config.respond === 'accepted') {
    if (reply.type === 'upstream') reply.discard();
    const accepted: StaticReply = {
      type: 'static',
      status: 202,
      headers: { 'content-type': 'application/json', [DEAD_LETTER_HEADER]: id },
      body: JSON.stringify({ deadLetter: id }),
      fallback: null,
    };
    return accepted;
  }
  if (!ex.res.headersSent) ex.res.setHeader(DEAD_LETTER_HEADER, id);
  return reply;
}

const EMPTY = Buffer.alloc(0);

/**
 * The request's headers as stored: what went upstream before the upstream's
 * rewrite (hop-by-hop gone, x-forwarded-* and x-request-id added, Host
 * last), minus credentials and minus every name the upstream's
 * `requestHeaders` sets — those are applied again at replay, from the
 * config then current, so a rotated token is used and none is stored. The
 * idempotency key is the client's, or one generated now.
 */
function storedHeaders(ex: Exchange, secret: ReadonlySet<string>, keyHeader: string): { headers: string[]; key: string } {
  const base = ex.baseHeaders;
  const out: string[] = [];
  let key: string | null = null;
  for (let i = 0; i < base.length; i += 2) {
    const name = base[i]!;
    if (secret.has(name) || name === 'content-length') continue;
    if (name === keyHeader) key = base[i + 1]!;
    out.push(name, base[i + 1]!);
  }
  if (key === null) {
    key = crypto.randomUUID();
    out.splice(Math.max(0, out.length - 2), 0, keyHeader, key); // before the host pair, which stays last
  }
  return { headers: out, key };
}
