/**
 * The audit log (SPEC §11.3): one JSON line per config change and per admin
 * action, marked `audit: true`, with `msg` naming the event:
 *
 *   config_change    a load of the config: at start (source `start`), and each
 *                    reload request from the file watch (`watch`), SIGHUP
 *                    (`SIGHUP`) or the admin API (`api`, with `client`);
 *                    result success | failure | unchanged
 *   admin_action     a call to the admin API that can change something (any
 *                    method but GET and HEAD), after it is answered
 *   admin_unauthorized  a call refused with 401 (no, malformed or wrong token)
 *
 * The lines go on the process log's stream (stdout, beside the access log),
 * or to `audit.file` (audit-file.ts) when one is configured, whatever
 * `log.level` says: an operator who turns the log down to `warn` still has
 * the record of who changed what. A line the file refuses (disk full) goes
 * to the log stream instead of being lost. They are built here, with
 * JSON.stringify, from values the callers have already bounded and redacted;
 * nothing in this module ever sees the admin token.
 */
import type { ConfigDiff } from '../config/diff.ts';
import type { AuditFile } from './audit-file.ts';
import type { LoggerHandle } from './logger.ts';

/** Who asked for a config load. `client` only for the admin API. */
export interface Requester {
  readonly source: string;
  readonly client?: string | undefined;
}

export interface ConfigChange {
  /** Everyone whose request this load served: reload requests that arrive during a reload share the next one. */
  readonly requesters: readonly Requester[];
  /** The hash that ran before; null at start. It still runs after a failure. */
  readonly oldHash: string | null;
  /** The hash of the file this load read (rejected, on failure); null when it could not be read. */
  readonly newHash: string | null;
  readonly result: 'success' | 'failure' | 'unchanged';
  /** What the load changed; null when nothing was applied (failure, unchanged). */
  readonly changes: ConfigDiff | null;
  readonly errors: readonly string[];
}

export interface AdminAction {
  readonly method: string;
  readonly path: string;
  readonly args: Readonly<Record<string, unknown>> | null;
  /** null: the caller left before an answer was sent. */
  readonly status: number | null;
  readonly outcome: string;
  readonly client: string | undefined;
  /** What the handler adds (a breaker's state before and after, …). */
  readonly details: Readonly<Record<string, unknown>> | null;
}

export interface AdminRefusal {
  readonly method: string;
  readonly path: string;
  readonly client: string | undefined;
  /** missing | malformed | invalid: never the presented value. */
  readonly reason: string;
}

export class AuditLog {
  readonly #log: Pick<LoggerHandle, 'writeLine' | 'timeField'>;
  #file: AuditFile | null = null;

  constructor(log: Pick<LoggerHandle, 'writeLine' | 'timeField'>) {
    this.#log = log;
  }

  /** Where lines go from now on (null: the log stream); returns the file used until now, for the caller to close. */
  useFile(file: AuditFile | null): AuditFile | null {
    const old = this.#file;
    this.#file = file;
    return old;
  }

  get file(): AuditFile | null {
    return this.#file;
  }

  configChange(c: ConfigChange): void {
    const first = c.requesters[0] ?? { source: 'unknown' };
    const line: Record<string, unknown> = { source: first.source };
    if (first.client !== undefined) line['client'] = first.client;
    if (c.requesters.length > 1) line['alsoRequestedBy'] = c.requesters.slice(1).map((r) => (r.client === undefined ? { source: r.source } : { source: r.source, client: r.client }));
    line['oldHash'] = c.oldHash;
    line['newHash'] = c.newHash;
    line['result'] = c.result;
    if (c.changes !== null) line['changes'] = c.changes;
    if (c.errors.length > 0) line['errors'] = c.errors;
    this.#write(c.result === 'failure' ? 'warn' : 'info', 'config_change', line);
  }

  adminAction(a: AdminAction): void {
    const line: Record<string, unknown> = { method: a.method, path: a.path, args: a.args, status: a.status, outcome: a.outcome, client: a.client ?? null };
    if (a.details !== null) line['details'] = a.details;
    this.#write(a.status === null || a.status >= 400 ? 'warn' : 'info', 'admin_action', line);
  }

  adminUnauthorized(r: AdminRefusal): void {
    this.#write('warn', 'admin_unauthorized', { method: r.method, path: r.path, status: 401, reason: r.reason, client: r.client ?? null });
  }

  #write(level: 'info' | 'warn', msg: string, fields: Record<string, unknown>): void {
    const body = JSON.stringify(fields);
    // {"level":…,"time":…,"audit":true,<fields>,"msg":…}: the shape of every other line.
    const inner = body.length > 2 ? `,${body.slice(1, -1)}` : '';
    const line = `{"level":"${level}",${this.#log.timeField()},"audit":true${inner},"msg":${JSON.stringify(msg)}}\n`;
    if (this.#file === null || !this.#file.write(line)) this.#log.writeLine(line);
  }
}
