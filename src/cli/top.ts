/**
 * `breakwater top [--admin ADDR] [--interval 2s] [--once]` (SPEC §13): RED
 * per route and upstream, breaker states, bulkhead use, retries and
 * rejections, from the admin API's /metrics (see top-stats.ts).
 *
 * On a terminal: a full-screen table (alternate screen, cursor hidden),
 * redrawn every interval and on resize; `q` or Ctrl-C quits and gives the
 * terminal back as it was. Not on a terminal (a pipe, a file, CI): one block
 * of plain lines per interval, headed by a timestamp. `--once` prints one
 * block after one interval and exits.
 */
import { DEFAULT_ADMIN, adminBase, adminText, parseOptions } from './admin-client.ts';
import { computeView, parseMetrics, type Scrape, type TopView } from './top-stats.ts';

export const TOP_USAGE = 'usage: breakwater top [--admin HOST:PORT] [--interval 2s] [--once]\n';

/** `2`, `2s`, `500ms` → milliseconds (at least 200). */
export function parseInterval(v: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(v.trim());
  if (m === null) return null;
  const ms = m[2] === 'ms' ? Number(m[1]) : Number(m[1]) * 1000;
  return ms >= 200 ? ms : null;
}

const fmtRate = (r: number): string => (r === 0 ? '0' : r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2));
const fmtPct = (p: number | null): string => (p === null ? '-' : p === 1 ? '100%' : `${(p * 100).toFixed(1)}%`);
function fmtSec(s: number | null): string {
  if (s === null) return '-';
  const ms = s * 1000;
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)}s` : ms >= 10 ? `${ms.toFixed(0)}ms` : `${ms.toFixed(1)}ms`;
}

/** Columns from `rightFrom` up to `rightTo` (exclusive) are numbers: right-aligned. */
function table(head: string[], rows: string[][], rightFrom: number, rightTo = head.length): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i >= rightFrom && i < rightTo ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)];
}

/** The view as lines of text (no colour, no escapes); cut to `width` columns when given. */
export function renderView(view: TopView, title: string, width: number | null): string[] {
  const out: string[] = [title, ''];
  if (view.routes.length === 0) out.push('no requests yet');
  else
    out.push(
      ...table(
        ['ROUTE', 'UPSTREAM', 'REQ/S', 'OK%', 'P50', 'P99', 'RETRY/S', 'REJECT/S'],
        view.routes.map((r) => [r.route, r.upstream, fmtRate(r.rps), fmtPct(r.success), fmtSec(r.p50), fmtSec(r.p99), fmtRate(r.retriesPerSec), fmtRate(r.rejectedPerSec)]),
        2,
      ),
    );
  if (view.upstreams.length > 0) {
    out.push('');
    out.push(
      ...table(
        ['UPSTREAM', 'CIRCUIT', 'ATTEMPT/S', 'OK%', 'P99', 'BULKHEAD', 'RETRY/S', 'REJECTED/S'],
        view.upstreams.map((u) => [
          u.upstream,
          u.circuit ?? '-',
          fmtRate(u.attemptsPerSec),
          fmtPct(u.attemptSuccess),
          fmtSec(u.p99),
          u.bulkheadActive === null ? '-' : `${u.bulkheadActive} +${u.bulkheadQueued ?? 0}q`,
          fmtRate(u.retriesPerSec),
          u.rejected.length === 0 ? '-' : u.rejected.map(([reason, r]) => `${reason} ${fmtRate(r)}`).join(', '),
        ]),
        2,
        7,
      ),
    );
  }
  return width === null ? out : out.map((l) => (l.length > width ? l.slice(0, width) : l));
}

const ALT_ON = '\x1b[?1049h\x1b[?25l';
const ALT_OFF = '\x1b[?25h\x1b[?1049l';

export async function topCommand(args: readonly string[]): Promise<number> {
  const opts = parseOptions(args, ['admin', 'interval'], ['once', 'help']);
  if (typeof opts === 'string') {
    process.stderr.write(`breakwater top: ${opts}\n${TOP_USAGE}`);
    return 2;
  }
  if (opts.has('help')) {
    process.stdout.write(TOP_USAGE);
    return 0;
  }
  let base: URL;
  try {
    base = adminBase(opts.get('admin') ?? DEFAULT_ADMIN);
  } catch (err) {
    process.stderr.write(`breakwater top: ${(err as Error).message}\n`);
    return 2;
  }
  const intervalMs = parseInterval(opts.get('interval') ?? '2s');
  if (intervalMs === null) {
    process.stderr.write(`breakwater top: --interval "${opts.get('interval')}" is not a duration of at least 200ms (e.g. 2s, 500ms)\n`);
    return 2;
  }
  const once = opts.has('once');
  const tty = process.stdout.isTTY === true && !once;

  // The first scrape must work: a wrong address is said at once, not drawn forever.
  let prev: { scrape: Scrape; at: number };
  try {
    prev = { scrape: parseMetrics(await adminText(base, '/metrics')), at: performance.now() };
  } catch (err) {
    process.stderr.write(`breakwater top: ${(err as Error).message}\n`);
    return 1;
  }

  return new Promise<number>((resolve) => {
    let last: string[] = [`breakwater top — ${base.host} — every ${intervalMs / 1000}s — waiting for the first interval…`];
    let error: string | null = null;
    let timer: NodeJS.Timeout | null = null;
    let done = false;
    const stdin = process.stdin;

    const draw = (): void => {
      const width = process.stdout.columns ?? 120;
      const height = process.stdout.rows ?? 40;
      let lines = last.map((l) => (l.length > width ? l.slice(0, width) : l));
      if (error !== null) lines = [lines[0]!, `! ${error}`.slice(0, width), ...lines.slice(1)];
      lines = lines.slice(0, height - 1);
      process.stdout.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\n')}\n\x1b[J`);
    };
    const quit = (code: number): void => {
      if (done) return;
      done = true;
      if (timer !== null) clearTimeout(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.stdout.off('resize', draw);
      if (tty) {
        process.off('exit', giveBack);
        giveBack();
        stdin.off('data', onKey);
        stdin.pause();
      }
      resolve(code);
    };
    /** The terminal as it was: main screen, cursor shown, cooked input. Also on an unexpected exit. */
    const giveBack = (): void => {
      process.stdout.write(ALT_OFF);
      if (stdin.isTTY) stdin.setRawMode(false);
    };
    const onSignal = (): void => quit(0);
    const onKey = (k: Buffer): void => {
      const c = k.toString('utf8');
      if (c === 'q' || c === 'Q' || c === '\x03' || c === '\x1b') quit(0);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.stdout.on('error', () => quit(0));
    if (tty) {
      process.once('exit', giveBack);
      process.stdout.write(ALT_ON);
      if (stdin.isTTY) {
        stdin.setRawMode(true);
        stdin.on('data', onKey);
        stdin.resume();
      }
      process.stdout.on('resize', draw);
      draw();
    }

    const tick = async (): Promise<void> => {
      timer = null;
      try {
        const text = await adminText(base, '/metrics');
        const now = { scrape: parseMetrics(text), at: performance.now() };
        const view = computeView(now.scrape, prev.scrape, (now.at - prev.at) / 1000);
        prev = now;
        error = null;
        const stamp = new Date().toISOString().slice(0, 19).replace('T', ' ');
        last = renderView(view, `breakwater top — ${base.host} — ${stamp} UTC — every ${intervalMs / 1000}s${tty ? ' — q to quit' : ''}`, null);
        if (!tty) process.stdout.write(`${last.join('\n')}\n\n`);
      } catch (err) {
        error = (err as Error).message;
        if (!tty) process.stderr.write(`breakwater top: ${error}\n`);
      }
      if (done) return;
      if (once) return quit(error === null ? 0 : 1);
      if (tty) draw();
      timer = setTimeout(() => void tick(), intervalMs);
    };
    timer = setTimeout(() => void tick(), intervalMs);
  });
}
