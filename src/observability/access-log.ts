/**
 * One access-log line per finished request (SPEC §5). The line explains the
 * request on its own: every attempt in `tries`, and every policy decision in
 * `flags`.
 */
import type { LogConfig } from '../config/types.ts';
import type { Exchange } from '../pipeline/exchange.ts';
import type { Logger } from './logger.ts';
import { NEVER_LOGGED } from './never-logged.ts';

const EMPTY: readonly string[] = Object.freeze([]);

export class AccessLog {
  readonly #logger: Logger;
  readonly #includeQuery: boolean;
  readonly #headers: readonly string[];

  constructor(logger: Logger, cfg: LogConfig) {
    this.#logger = logger;
    this.#includeQuery = cfg.includeQuery;
    this.#headers = cfg.headers.filter((h) => !NEVER_LOGGED.has(h));
  }

  write(ex: Exchange, status: number, durationMs: number): void {
    const req = ex.req;
    let path = ex.target;
    if (!this.#includeQuery) {
      const q = path.indexOf('?');
      if (q >= 0) path = path.slice(0, q);
    }
    let headers: Record<string, string> | undefined;
    if (this.#headers.length > 0) {
      headers = {};
      for (const name of this.#headers) {
        const v = req.headers[name];
        if (v !== undefined) headers[name] = Array.isArray(v) ? v.join(', ') : v;
      }
    }
    this.#logger.info(
      {
        requestId: ex.requestId,
        traceId: traceIdOf(req.headers.traceparent),
        listener: ex.listener,
        route: ex.route,
        upstream: ex.upstream,
        endpoint: ex.endpoint,
        method: ex.method,
        path,
        status,
        durationMs: round(durationMs),
        upstreamMs: ex.upstreamMs === null ? null : round(ex.upstreamMs),
        attempts: ex.attempts,
        tries: ex.tries ?? EMPTY,
        bytesIn: ex.bytesIn,
        bytesOut: ex.bytesOut,
        client: ex.client,
        flags: ex.flags ?? EMPTY,
        error: ex.error,
        headers: headers ?? {},
      },
      'request',
    );
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** The trace id of a W3C `traceparent` ("00-<32 hex>-<16 hex>-<2 hex>"), or null. */
export function traceIdOf(tp: string | string[] | undefined): string | null {
  if (typeof tp !== 'string' || tp.length < 55 || tp.charCodeAt(2) !== 45 /* - */ || tp.charCodeAt(35) !== 45) return null;
  const id = tp.slice(3, 35);
  return /^[0-9a-f]{32}$/.test(id) && id !== '00000000000000000000000000000000' ? id : null;
}
