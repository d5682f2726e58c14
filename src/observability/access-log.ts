/**
 * One access-log line per finished request (SPEC §5). The line explains the
 * request on its own: every attempt in `tries`, and every policy decision in
 * `flags`. `grpcStatus` is the gRPC status a gRPC client got (SPEC §10.2),
 * null for plain HTTP.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { LogConfig } from '../config/types.ts';
import type { Try } from '../pipeline/exchange.ts';
import type { LoggerHandle } from './logger.ts';
import { NEVER_LOGGED } from './never-logged.ts';

/**
 * What one access line reads: an Exchange, or a request answered on the raw
 * socket before it had one (http/refused.ts).
 */
export interface AccessFields {
  readonly req: { readonly headers: IncomingHttpHeaders };
  readonly trace: { readonly traceId: string } | null;
  readonly requestId: string;
  readonly listener: string;
  readonly route: string | null;
  readonly upstream: string | null;
  readonly endpoint: string | null;
  /** null when the request line could not be parsed. */
  readonly method: string | null;
  /** The path with its query, as received; null when the request line could not be parsed. */
  readonly target: string | null;
  readonly grpcStatus: number | null;
  readonly upstreamMs: number | null;
  readonly attempts: number;
  readonly tries: readonly Try[] | null;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly client: string | null;
  readonly flags: readonly string[] | null;
  readonly error: string | null;
}

export class AccessLog {
  readonly #log: LoggerHandle;
  readonly #includeQuery: boolean;
  readonly #headers: readonly string[];

  constructor(log: LoggerHandle, cfg: LogConfig) {
    this.#log = log;
    this.#includeQuery = cfg.includeQuery;
    this.#headers = cfg.headers.filter((h) => !NEVER_LOGGED.has(h));
  }

  /**
   * One line, built here with its keys in a fixed order: the shape never
   * changes, so pino's generic serializer (which walks and checks every key
   * of every line) is not needed. Every string goes through JSON.stringify:
   * request ids, paths and header values are the client's bytes.
   */
  write(ex: AccessFields, status: number, durationMs: number): void {
    this.#log.writeInfoLine(this.line(ex, status, durationMs));
  }

  /** Writes a line `line()` built (the tap built it first and shares it). */
  writeLine(line: string): void {
    this.#log.writeInfoLine(line);
  }

  /** The access line of a finished request, with its newline (the access log and the tap share it). */
  line(ex: AccessFields, status: number, durationMs: number): string {
    const req = ex.req;
    let path = ex.target;
    if (path !== null && !this.#includeQuery) {
      const q = path.indexOf('?');
      if (q >= 0) path = path.slice(0, q);
    }
    let headers = '{}';
    if (this.#headers.length > 0) {
      const h: Record<string, string> = {};
      for (const name of this.#headers) {
        const v = req.headers[name];
        if (v !== undefined) h[name] = Array.isArray(v) ? v.join(', ') : v;
      }
      headers = JSON.stringify(h);
    }
    // With tracing on, the trace the request is part of (continued or started here); else the client's.
    const traceId = ex.trace !== null ? ex.trace.traceId : traceIdOf(req.headers.traceparent);
    return (
      `{"level":"info",${this.#log.timeField()},"requestId":${JSON.stringify(ex.requestId)},"traceId":${traceId === null ? 'null' : `"${traceId}"`}` +
        `,"listener":${JSON.stringify(ex.listener)},"route":${str(ex.route)},"upstream":${str(ex.upstream)},"endpoint":${str(ex.endpoint)}` +
        `,"method":${str(ex.method)},"path":${str(path)},"status":${status},"grpcStatus":${ex.grpcStatus === null ? 'null' : ex.grpcStatus}` +
        `,"durationMs":${round(durationMs)}` +
        `,"upstreamMs":${ex.upstreamMs === null ? 'null' : round(ex.upstreamMs)},"attempts":${ex.attempts},"tries":${ex.tries === null ? '[]' : JSON.stringify(ex.tries)}` +
        `,"bytesIn":${ex.bytesIn},"bytesOut":${ex.bytesOut},"client":${str(ex.client)},"flags":${ex.flags === null ? '[]' : JSON.stringify(ex.flags)}` +
        `,"error":${str(ex.error)},"headers":${headers},"msg":"request"}\n`
    );
  }

  /**
   * A tunnel's line for the tap (http/upgrade.ts, http/connect-tunnel.ts):
   * the same JSON pino writes for the `tunnel` log line from these fields.
   */
  tunnelLine(fields: object): string {
    return `{"level":"info",${this.#log.timeField()},${JSON.stringify(fields).slice(1, -1)},"msg":"tunnel"}\n`;
  }
}

function str(v: string | null): string {
  return v === null ? 'null' : JSON.stringify(v);
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
