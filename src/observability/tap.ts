/**
 * The tap (SPEC §13): live access-log lines for whoever listens at the admin
 * API's `GET /tap`. The hub lives as long as the process (reloads keep the
 * listeners); the HTTP side is admin/tap.ts.
 *
 * Cost on the request path: with nobody listening, one boolean read per
 * finished request (`active`); the line is not built for the tap. With
 * listeners, the line the access log writes is built once and offered to
 * every subscriber whose filter (parsed once, when it subscribed) matches the
 * exchange's fields — never by parsing the line back.
 *
 * Tunnels (WebSocket and CONNECT) are on the tap too: their `tunnel` line,
 * the same fields the log line has, offered when the tunnel closes or is
 * refused, under the status `tunnelStatus` gives it.
 */
import { ERRORS, type ErrorCode } from '../errors.ts';
import type { AccessLog } from './access-log.ts';
import type { Logger } from './logger.ts';

/** What one subscriber asked for; null fields match everything. */
export interface TapFilter {
  readonly route: string | null;
  readonly upstream: string | null;
  /** Inclusive status range: `5xx` is 500–599, `503` is 503–503. */
  readonly statusMin: number;
  readonly statusMax: number;
  readonly flag: string | null;
}

export const MATCH_ALL: TapFilter = Object.freeze({ route: null, upstream: null, statusMin: 0, statusMax: 999, flag: null });

const FILTER_KEYS = new Set(['route', 'upstream', 'status', 'flag']);

/**
 * `route`, `upstream`, `status` (`5xx`, `4xx`, `503`) and `flag` from a query
 * string; each at most once. An unknown key or a malformed status is an error
 * (a typo must not silently show everything).
 */
export function parseTapFilter(query: URLSearchParams): TapFilter | { readonly error: string } {
  const seen = new Set<string>();
  for (const k of query.keys()) {
    if (!FILTER_KEYS.has(k)) return { error: `unknown filter "${k}" (filters: route, upstream, status, flag)` };
    if (seen.has(k)) return { error: `filter "${k}" given more than once` };
    seen.add(k);
  }
  const nonEmpty = (k: string): string | null => {
    const v = query.get(k);
    return v === null || v === '' ? null : v;
  };
  let statusMin = 0;
  let statusMax = 999;
  const status = nonEmpty('status');
  if (status !== null) {
    const m = /^([1-5])(xx|[0-9]{2})$/i.exec(status);
    if (m === null) return { error: `status "${status}" is neither a class (1xx … 5xx) nor a code (100 … 599)` };
    if (m[2]!.toLowerCase() === 'xx') {
      statusMin = Number(m[1]) * 100;
      statusMax = statusMin + 99;
    } else {
      statusMin = statusMax = Number(status);
    }
  }
  return { route: nonEmpty('route'), upstream: nonEmpty('upstream'), statusMin, statusMax, flag: nonEmpty('flag') };
}

/** The fields of a finished exchange a filter looks at. */
export interface TapFields {
  readonly route: string | null;
  readonly upstream: string | null;
  readonly flags: readonly string[] | null;
}

export function tapMatches(f: TapFilter, ex: TapFields, status: number): boolean {
  if (status < f.statusMin || status > f.statusMax) return false;
  if (f.route !== null && ex.route !== f.route) return false;
  if (f.upstream !== null && ex.upstream !== f.upstream) return false;
  if (f.flag !== null && (ex.flags === null || !ex.flags.includes(f.flag))) return false;
  return true;
}

/** The tap as the request path and the tunnels see it: the hub, and the line format it shares with the access log. */
export interface LiveTap {
  readonly hub: TapHub;
  readonly format: AccessLog;
}

/** The fields of a `tunnel` line that decide its status. */
export interface TunnelStatusFields {
  readonly protocol?: string;
  /** A WebSocket tunnel's: the handshake's answer, or the refusal's; null when none came. */
  readonly status?: number | null;
  readonly outcome?: string;
  /** A CONNECT tunnel's: set once the upstream's connection was up. */
  readonly connectMs?: number | null;
}

/**
 * The status a tunnel line is filtered by (and `breakwater tap` shows): the
 * line's own `status` when it has one (a WebSocket handshake's 101, the
 * upstream's answer, or breakwater's refusal); 200 for a CONNECT tunnel that
 * was open, however it ended (idle timeout, reset); otherwise the status
 * breakwater generates for the outcome (SPEC §4.7: rate_limited 429,
 * circuit_open 503, bulkhead_full 503, connect_failure 503, timeout 504,
 * reset 502), and 499 for a client gone before the tunnel was up.
 */
export function tunnelStatus(t: TunnelStatusFields): number {
  if (typeof t.status === 'number') return t.status;
  if (t.protocol === 'connect' && typeof t.connectMs === 'number') return 200;
  const outcome = t.outcome ?? '';
  if (outcome === 'client_abort') return 499;
  if (Object.hasOwn(ERRORS, outcome)) return ERRORS[outcome as ErrorCode].status;
  // `reset`, and (never seen) any outcome this does not know: the upstream failed the tunnel.
  return ERRORS.upstream_reset.status;
}

/** A `tunnel` line's fields (those the tap filters by, and the rest of the line). */
export interface TunnelFields extends TapFields, TunnelStatusFields {
  readonly protocol: 'websocket' | 'connect';
  readonly outcome: string;
  readonly [field: string]: unknown;
}

/** The tap while someone listens, else null: a tunnel's line is built only for a log that is on or a listening tap. */
function listening(tap: LiveTap | null): LiveTap | null {
  return tap !== null && tap.hub.active ? tap : null;
}

/** Offers a tunnel's line (the log line's fields) to the tap; only called while `hub.active`. */
function publishTunnel(tap: LiveTap, fields: TunnelFields): void {
  tap.hub.publish(tap.format.tunnelLine(fields), fields, tunnelStatus(fields));
}

/**
 * A tunnel's `tunnel` line (http/upgrade.ts, http/connect-tunnel.ts): to the
 * log when it is on, and to the tap while someone listens. `fields` is
 * called only when one of them takes the line.
 */
export function emitTunnel(logger: Logger | null, tap: LiveTap | null, fields: () => TunnelFields): void {
  const live = listening(tap);
  if (logger === null && live === null) return;
  const f = fields();
  logger?.info(f, 'tunnel');
  if (live !== null) publishTunnel(live, f);
}

/** One listener: the HTTP side decides how a line is written and when the listener is too slow. */
export interface TapSubscriber {
  readonly filter: TapFilter;
  /** One line (with its newline). */
  send(line: string): void;
  /** The hub is closing (shutdown): end the stream with this reason. */
  end(reason: string): void;
  /** Nothing was sent for a while: keep idle connections (port-forwards) alive. */
  heartbeat(): void;
}

/** Default subscriber limit. */
export const TAP_MAX_SUBSCRIBERS = 8;
/** An empty line this often while a subscriber is connected (NDJSON readers skip blank lines). */
export const TAP_HEARTBEAT_MS = 15_000;

export class TapHub {
  readonly maxSubscribers: number;
  readonly #subs: TapSubscriber[] = [];
  readonly #heartbeatMs: number;
  #heartbeat: NodeJS.Timeout | null = null;
  #closed = false;
  /** True while anyone listens: the one thing a finished request checks. */
  active = false;
  /** Lines offered to the tap (built for it); a test reads this to see that nothing is built while nobody listens. */
  offered = 0;
  /** Subscribers dropped for reading too slowly, since start. */
  dropped = 0;

  constructor(maxSubscribers = TAP_MAX_SUBSCRIBERS, heartbeatMs = TAP_HEARTBEAT_MS) {
    this.maxSubscribers = maxSubscribers;
    this.#heartbeatMs = heartbeatMs;
  }

  /** True once close() ran (shutdown): no new subscribers. */
  get closed(): boolean {
    return this.#closed;
  }

  get subscribers(): number {
    return this.#subs.length;
  }

  /** Adds a subscriber; false when the hub is full or closed. */
  add(sub: TapSubscriber): boolean {
    if (this.#closed || this.#subs.length >= this.maxSubscribers) return false;
    this.#subs.push(sub);
    this.active = true;
    if (this.#heartbeat === null) {
      this.#heartbeat = setInterval(() => {
        for (const s of [...this.#subs]) s.heartbeat();
      }, this.#heartbeatMs);
      this.#heartbeat.unref();
    }
    return true;
  }

  remove(sub: TapSubscriber): void {
    const i = this.#subs.indexOf(sub);
    if (i < 0) return;
    this.#subs.splice(i, 1);
    if (this.#subs.length === 0) {
      this.active = false;
      if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
      this.#heartbeat = null;
    }
  }

  /** Offers one finished request's (or tunnel's) line; only called while `active`. */
  publish(line: string, ex: TapFields, status: number): void {
    this.offered++;
    // A copy: a subscriber may be dropped (removed) while we go.
    const subs = this.#subs.length === 1 ? this.#subs : [...this.#subs];
    for (const s of subs) {
      if (!tapMatches(s.filter, ex, status)) continue;
      try {
        s.send(line);
      } catch {
        // A broken subscriber must never fail the request it watches: it goes.
        this.remove(s);
      }
    }
  }

  /** Ends every stream (shutdown) and accepts no more. */
  close(reason = 'shutdown'): void {
    this.#closed = true;
    this.endAll(reason);
  }

  /** Ends every stream (`{"tap":"end","reason":…}`) and goes on taking new ones: a rotated admin token cuts off streams opened with the old one. */
  endAll(reason: string): void {
    for (const s of [...this.#subs]) {
      this.remove(s);
      s.end(reason);
    }
  }
}
