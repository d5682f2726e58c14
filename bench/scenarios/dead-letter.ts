/**
 * dead-letter: what a route's `deadLetter` block costs (SPEC §11.1).
 *
 * 1. Not triggered: POSTs with a 1 KiB body through two otherwise identical
 *    breakwater configs, one whose route has `deadLetter` (the upstream is
 *    healthy, so nothing is ever spooled), in the same interleaved rounds.
 *    The difference is the step in the route stack and the body step
 *    buffering the body whole (up to `maxBodySize`) instead of up to the
 *    retry buffer — which a 1 KiB body is below either way.
 * 2. One spooled write: `SpoolStore.insert` of a 1 KiB body into a fresh
 *    file on this machine's temp directory (WAL, synchronous=FULL: one
 *    fsync per insert), timed one by one. It runs on the event loop: this
 *    is how long a spooling request blocks every other request.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import { SpoolStore } from '../../src/dead-letter/store.ts';
import { plainConfig } from '../lib/breakwater-config.ts';
import { fmtInt, fmtPct, fmtRatio, fmtUsPair, markdownTable, median, progress } from '../lib/report.ts';
import { runRounds, summarize } from '../lib/rounds.ts';
import { breakwaterBuilt } from '../lib/settings.ts';
import { BREAKWATER_SKIP, breakwater, directSubject, ports, type BenchContext, type Subject } from '../lib/subjects.ts';

const BODY = 'x'.repeat(1024);

function spoolingConfig(ctx: BenchContext): string {
  const plain = plainConfig(ports(ctx));
  // The same listener as a one-route list, the route with a dead-letter spool.
  return plain.replace(
    /    upstream: target\n/,
    `    routes:\n      - name: bench\n        upstream: target\n        deadLetter: { path: ${join(ctx.tmp, 'bench-spool.db')} }\n`,
  );
}

function plainRouteConfig(ctx: BenchContext): string {
  return plainConfig(ports(ctx)).replace(/    upstream: target\n/, '    routes:\n      - name: bench\n        upstream: target\n');
}

export async function run(ctx: BenchContext): Promise<string> {
  const parts: string[] = [];
  if (!breakwaterBuilt(ctx.settings)) progress(BREAKWATER_SKIP);
  else {
    const subjects: Subject[] = [
      directSubject(ctx),
      breakwater(ctx, 'breakwater-route', 'breakwater, POST route without deadLetter', plainRouteConfig(ctx)),
      breakwater(ctx, 'breakwater-deadletter', 'breakwater, POST route with deadLetter (never triggered)', spoolingConfig(ctx)),
    ];
    const results = await runRounds(subjects, ctx.settings, { shape: { method: 'POST', body: BODY } });
    const base = summarize(results, 'breakwater-route')?.rps ?? null;
    const rows: string[][] = [];
    for (const x of subjects) {
      const m = summarize(results, x.id);
      if (m === null) continue;
      rows.push([x.label, fmtInt(m.rps), fmtPct(m.rpsSpread), x.id === 'direct' ? '—' : fmtRatio(base === null ? null : m.rps / base), fmtInt(m.cpuUsPerReq), fmtUsPair(m.p50Us, m.p99Us), x.id === 'direct' ? '—' : fmtUsPair(m.addedP50Us, m.addedP99Us, true)]);
    }
    parts.push(
      `POST, 1 KiB bodies, ${ctx.settings.connections} connections.\n\n` +
        markdownTable(['target', `req/s @${ctx.settings.connections} conns`, 'rounds spread', 'vs without deadLetter', 'CPU µs/req', `p50 / p99 @${ctx.settings.latencyRate} req/s`, 'added p50 / p99'], rows),
    );
  }
  parts.push(writeCost(ctx));
  return parts.join('\n\n');
}

/** Microseconds per call of `write`, sorted. */
function timed(n: number, write: () => void): number[] {
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    write();
    us.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return us.sort((a, b) => a - b);
}

const p99 = (us: readonly number[]): number => us[Math.floor(us.length * 0.99)]!;

/**
 * Microseconds per spooled write (fsync included), per round: median and
 * p99; beside it, on the same disk, what SQLite costs without the fsync per
 * commit (synchronous=NORMAL) and the floor (a bare append + fsync).
 */
function writeCost(ctx: BenchContext): string {
  const n = Number(process.env['SPOOL_WRITES'] ?? 300);
  const rows: string[][] = [];
  const medians: number[] = [];
  const body = Buffer.from(BODY);
  for (let round = 0; round < ctx.settings.rounds; round++) {
    const dir = join(ctx.tmp, `spool-write-${round}`);
    mkdirSync(dir, { recursive: true });
    const store = new SpoolStore(join(dir, 'spool.db'));
    const bounds = { maxEntries: 1_000_000, maxBytes: 1 << 40, maxAge: 86_400_000 };
    const entry = { route: 'bench', upstream: 'target', method: 'POST', path: '/orders?x=1', headers: ['content-type', 'application/json', 'x-request-id', 'r', 'idempotency-key', 'k', 'host', 'target'], body, reason: 'connect_failure', idempotencyKey: 'k' };
    store.insert(entry, bounds); // opens the file: not part of the cost of a write
    const spool = timed(n, () => store.insert(entry, bounds));
    // A group commit of 32 (a burst of failures in one event-loop turn): per entry.
    const batch = Array.from({ length: 32 }, () => ({ entry, bounds }));
    const grouped = timed(Math.max(1, Math.floor(n / 32)), () => store.insertBatch(batch)).map((us) => us / 32);
    store.close();
    const db = new DatabaseSync(join(dir, 'normal.db'));
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = NORMAL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)');
    const ins = db.prepare('INSERT INTO t (b) VALUES (?)');
    const normal = timed(n, () => ins.run(body));
    db.close();
    const fd = openSync(join(dir, 'append.log'), 'a');
    const append = timed(n, () => {
      writeSync(fd, body);
      fsyncSync(fd);
    });
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
    const med = median(spool);
    medians.push(med);
    rows.push([String(round + 1), `${fmtInt(med)} / ${fmtInt(p99(spool))}`, fmtInt(median(grouped)), `${fmtInt(median(normal))} / ${fmtInt(p99(normal))}`, `${fmtInt(median(append))} / ${fmtInt(p99(append))}`]);
    progress(`spool write round ${round + 1}: median ${med.toFixed(0)} µs`);
  }
  rows.push(['median of rounds', fmtInt(median(medians)), '', '', '']);
  return (
    `One spooled write: \`SpoolStore.insert\` of a 1 KiB body, ${n} per round into a fresh file under ${ctx.tmp}, timed one by one (median / p99 µs). ` +
    'Beside it on the same disk: SQLite WAL without an fsync per commit (synchronous=NORMAL), and the floor, a bare append + fsync.\n\n' +
    markdownTable(['round', 'spool write (WAL, synchronous=FULL)', 'per entry, 32 in one commit', 'SQLite WAL, synchronous=NORMAL', 'append + fsync'], rows)
  );
}
