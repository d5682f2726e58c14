/**
 * `breakwater tap [--admin ADDR] [--route R] [--upstream U] [--status 5xx|503] [--flag F] [--json]`
 * (SPEC §13): follows `GET /tap`. On a terminal, one readable line per
 * request or tunnel; otherwise (or with --json) the NDJSON lines as the server sent
 * them. Ctrl-C stops it (exit 0); the server ending the stream is said on
 * stderr (exit 0 on shutdown, 1 when this reader was dropped as too slow or
 * the connection broke).
 */
import { tunnelStatus } from '../observability/tap.ts';
import { DEFAULT_ADMIN, adminBase, adminGet, errorMessage, parseOptions, readAll } from './admin-client.ts';

export const TAP_USAGE = 'usage: breakwater tap [--admin HOST:PORT] [--route R] [--upstream U] [--status 5xx|503] [--flag F] [--json]\n';

/** A `request` line, or a `tunnel` line (WebSocket or CONNECT), as the tap sends it. */
interface AccessLine {
  msg?: string;
  time?: string;
  method?: string;
  path?: string;
  status?: number | null;
  /** Tunnel lines: `websocket` or `connect`, the CONNECT target, how it ended, the bytes each way. */
  protocol?: string;
  authority?: string;
  outcome?: string;
  connectMs?: number | null;
  bytesIn?: number;
  bytesOut?: number;
  durationMs?: number;
  route?: string | null;
  upstream?: string | null;
  endpoint?: string | null;
  attempts?: number;
  flags?: string[];
  error?: string | null;
  tap?: string;
  reason?: string;
}

const C = { red: '\x1b[31m', green: '\x1b[32m', yellow: '\x1b[33m', cyan: '\x1b[36m', dim: '\x1b[2m', reset: '\x1b[0m' };

/**
 * One line as a person reads it: time, method, path, status, duration,
 * route → upstream endpoint, tries, flags, error. A tunnel line shows `WS`
 * or `CONNECT` as its method, the path or the CONNECT authority, the status
 * the tap filters it by (observability/tap.ts tunnelStatus), how it ended
 * when that was not a success, and the bytes each way.
 */
export function prettyLine(l: AccessLine, color: boolean): string {
  const paint = (c: string, s: string): string => (color ? `${c}${s}${C.reset}` : s);
  const tunnel = l.msg === 'tunnel';
  const status = tunnel ? tunnelStatus(l) : (l.status ?? 0);
  const sc = status >= 500 ? C.red : status >= 400 ? C.yellow : status >= 300 ? C.cyan : C.green;
  const time = typeof l.time === 'string' ? l.time.slice(11, 23) : '--:--:--.---';
  const method = tunnel ? (l.protocol === 'connect' ? 'CONNECT' : 'WS') : (l.method ?? '');
  let path = (tunnel && l.protocol === 'connect' ? l.authority : l.path) ?? '';
  if (path.length > 40) path = `${path.slice(0, 39)}…`;
  const ms = l.durationMs === undefined ? '' : l.durationMs >= 100 ? `${Math.round(l.durationMs)}ms` : `${l.durationMs.toFixed(1)}ms`;
  let out = `${paint(C.dim, time)} ${method.padEnd(6)} ${paint(sc, String(status))} ${ms.padStart(8)} ${path.padEnd(20)}`;
  out += ` ${l.route ?? '-'} → ${l.upstream ?? '-'}`;
  if (l.endpoint) out += ` ${paint(C.dim, l.endpoint)}`;
  if ((l.attempts ?? 0) > 1) out += ` tries=${l.attempts}`;
  if (tunnel) {
    if (l.outcome !== undefined && l.outcome !== 'success') out += ` ${paint(status >= 400 ? C.red : C.yellow, l.outcome)}`;
    out += ` in=${bytes(l.bytesIn ?? 0)} out=${bytes(l.bytesOut ?? 0)}`;
  }
  if (l.flags !== undefined && l.flags.length > 0) out += ` ${paint(C.yellow, `[${l.flags.join(',')}]`)}`;
  if (l.error) out += ` ${paint(C.red, l.error)}`;
  return out;
}

/** A byte count the way a person reads it: 512B, 1.5KiB, 20MiB. */
function bytes(n: number): string {
  if (n < 1024) return `${n}B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 ? Math.round(v) : v.toFixed(1)}${units[i]}`;
}

export async function tapCommand(args: readonly string[]): Promise<number> {
  const opts = parseOptions(args, ['admin', 'route', 'upstream', 'status', 'flag'], ['json', 'help']);
  if (typeof opts === 'string') {
    process.stderr.write(`breakwater tap: ${opts}\n${TAP_USAGE}`);
    return 2;
  }
  if (opts.has('help')) {
    process.stdout.write(TAP_USAGE);
    return 0;
  }
  let base: URL;
  try {
    base = adminBase(opts.get('admin') ?? DEFAULT_ADMIN);
  } catch (err) {
    process.stderr.write(`breakwater tap: ${(err as Error).message}\n`);
    return 2;
  }
  const q = new URLSearchParams();
  for (const k of ['route', 'upstream', 'status', 'flag']) if (opts.has(k)) q.set(k, opts.get(k)!);
  const path = `/tap${q.size > 0 ? `?${q}` : ''}`;
  const pretty = process.stdout.isTTY === true && !opts.has('json');

  let res;
  try {
    res = await adminGet(base, path, 10_000);
  } catch (err) {
    process.stderr.write(`breakwater tap: ${(err as Error).message}\n`);
    return 1;
  }
  if (res.statusCode !== 200) {
    const body = await readAll(res).catch(() => '');
    process.stderr.write(`breakwater tap: ${res.statusCode}: ${errorMessage(body)}\n`);
    return 1;
  }
  res.socket.setTimeout(0);
  if (pretty) process.stderr.write(`tapping ${base.host}${q.size > 0 ? ` (${[...q].map(([k, v]) => `${k}=${v}`).join(' ')})` : ''} — Ctrl-C to stop\n`);

  return new Promise<number>((resolve) => {
    let done = false;
    const finish = (code: number, message: string | null): void => {
      if (done) return;
      done = true;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (message !== null) process.stderr.write(`breakwater tap: ${message}\n`);
      res.destroy();
      resolve(code);
    };
    const onSignal = (): void => finish(0, null);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // `tap | head`: the reader went away, so do we.
    process.stdout.on('error', () => finish(0, null));

    let ended: { code: number; message: string } | null = null;
    let rest = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      rest += chunk;
      let out = '';
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (line.trim() === '') continue; // heartbeat
        let parsed: AccessLine | null = null;
        try {
          parsed = JSON.parse(line) as AccessLine;
        } catch {
          parsed = null;
        }
        if (parsed !== null && typeof parsed.tap === 'string') {
          ended =
            parsed.tap === 'dropped'
              ? { code: 1, message: `the server dropped this stream: reading too slowly (${parsed.reason ?? 'slow'})` }
              : { code: 0, message: `the server ended the stream (${parsed.reason ?? parsed.tap})` };
          continue;
        }
        out += pretty && parsed !== null ? `${prettyLine(parsed, true)}\n` : `${line}\n`;
      }
      // Backpressure: a stdout that cannot keep up pauses the stream, so
      // lines wait in the server (which drops a reader too far behind),
      // never without bound in this process.
      if (out !== '' && !process.stdout.write(out)) {
        res.pause();
        process.stdout.once('drain', () => res.resume());
      }
      out = '';
    });
    res.on('end', () => finish(ended?.code ?? 1, ended?.message ?? 'the server closed the stream'));
    res.on('error', () => finish(ended?.code ?? 1, ended?.message ?? 'the connection to the admin API broke'));
    res.on('close', () => finish(ended?.code ?? 1, ended?.message ?? 'the connection to the admin API closed'));
  });
}
