/**
 * The fallback layer (SPEC §4.6): when the reply is one of the configured
 * triggers, serve another upstream (with its own policies and its own
 * fallback, within what is left of `timeout.total`) or a static response.
 * The failed reply's body, if any, is dropped.
 */
import type { FallbackConfig, FallbackTrigger } from '../../config/types.ts';
import type { ErrorCode } from '../../errors.ts';
import type { Exchange } from '../../pipeline/exchange.ts';
import type { Handler, Layer, Reply, StaticReply } from '../../pipeline/handler.ts';
import { errorCodeFor } from '../../pipeline/classify.ts';

const BY_CODE: Partial<Record<ErrorCode, FallbackTrigger>> = {
  circuit_open: 'circuit-open',
  connect_failure: 'connect-failure',
  timeout: 'timeout',
  bulkhead_full: 'bulkhead-full',
  rate_limited: 'rate-limited',
};

/**
 * Does a reply meet one of the `on` triggers? A response keeps its status and
 * may also be `retries-exhausted`; an attempt that produced no response is the
 * kind of its failure (a bare reset is no trigger of its own).
 */
export function fires(on: ReadonlySet<FallbackTrigger>, reply: Reply): boolean {
  if (reply.type === 'static') return false;
  if (reply.type === 'failure') {
    const t = BY_CODE[reply.code];
    return t !== undefined && on.has(t);
  }
  if (reply.exhausted && on.has('retries-exhausted')) return true;
  if (reply.status === 0) {
    const t = BY_CODE[errorCodeFor(reply.kind)];
    return t !== undefined && on.has(t);
  }
  return reply.status >= 500 && on.has('5xx');
}

export interface FallbackParams {
  readonly config: FallbackConfig;
  /** The fallback upstream's own entry handler (its policies and its own fallback), or null. */
  readonly upstream: Handler | null;
  readonly upstreamName: string | null;
  readonly onFallback: (kind: 'upstream' | 'response') => void;
}

export function fallbackLayer(p: FallbackParams): Layer {
  const { config, upstream, upstreamName, onFallback } = p;
  const staticReply: StaticReply | null = config.response === null ? null : Object.freeze({ type: 'static', ...config.response });
  return (next: Handler): Handler =>
    async (ex: Exchange) => {
      const reply = await next(ex);
      if (ex.clientAborted || !fires(config.on, reply)) return reply;
      if (upstream !== null && ex.remaining() > 0) {
        if (reply.type === 'upstream') reply.discard();
        ex.flag('fallback');
        ex.flag(`fallback_upstream:${upstreamName}`);
        ex.fallback = 'upstream';
        onFallback('upstream');
        // The primary's breaker permit ends here: attempts of the fallback
        // upstream are that upstream's to record (under its own breaker, if
        // it has one), and an unused half-open probe gives its slot back.
        ex.breaker?.release();
        ex.breaker = null;
        const second = await upstream(ex);
        // A fallback upstream that failed too ends in its static response, if any.
        if (staticReply !== null && !ex.clientAborted && fires(config.on, second)) {
          if (second.type === 'upstream') second.discard();
          ex.fallback = 'response';
          onFallback('response');
          return staticReply;
        }
        return second;
      }
      if (staticReply !== null) {
        if (reply.type === 'upstream') reply.discard();
        ex.flag('fallback');
        ex.fallback = 'response';
        onFallback('response');
        return staticReply;
      }
      return reply;
    };
}
