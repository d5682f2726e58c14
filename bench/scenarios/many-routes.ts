/**
 * many-routes: does the size of the config cost anything per request?
 * One listener, host-routed, with 1 route/upstream vs ROUTES (default 1,000)
 * routes each to its own upstream. The load is sent with the Host of the
 * *last* route, the worst case for a router that walks the list. The target
 * is throughput within 5 % of the 1-route config. With the large config
 * running, it also times `POST /reload` on the admin API (a real reload
 * each time: the config alternates between two contents).
 */
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { manyRoutesConfig, routeHost } from '../lib/breakwater-config.ts';
import { fmtInt, fmtMiB, fmtPct, fmtRatio, fmtUsPair, markdownTable, median, progress } from '../lib/report.ts';
import { runRounds, summarize } from '../lib/rounds.ts';
import { breakwaterBuilt } from '../lib/settings.ts';
import { BREAKWATER_SKIP, breakwater, directSubject, ports, type BenchContext, type Subject } from '../lib/subjects.ts';

const RELOADS_PER_ROUND = 5;

export async function run(ctx: BenchContext): Promise<string> {
  if (!breakwaterBuilt(ctx.settings)) {
    progress(BREAKWATER_SKIP);
    return `_${BREAKWATER_SKIP}: nothing to measure in this scenario._`;
  }
  const count = Number(process.env['ROUTES'] ?? 1000);
  const p = ports(ctx);
  const hostOf = new Map<string, string>([
    ['routes-1', routeHost(0)],
    ['routes-n', routeHost(count - 1)],
  ]);
  const probe = (id: string): { probeHeaders: Record<string, string>; readyTimeoutMs: number } => ({
    probeHeaders: { host: hostOf.get(id)! },
    readyTimeoutMs: 60_000,
  });
  const subjects: Subject[] = [
    directSubject(ctx),
    breakwater(ctx, 'routes-1', 'breakwater, 1 route / upstream', manyRoutesConfig(p, 1), probe('routes-1')),
    breakwater(ctx, 'routes-n', `breakwater, ${fmtInt(count)} routes / upstreams`, manyRoutesConfig(p, count), probe('routes-n')),
  ];

  const reloads: number[] = [];
  let reloadNote: string | null = null;
  const results = await runRounds(subjects, ctx.settings, {
    headers: (x) => (hostOf.has(x.id) ? { host: hostOf.get(x.id)! } : undefined),
    after: async (x) => {
      if (x.id !== 'routes-n' || reloadNote !== null) return;
      const file = join(ctx.tmp, `${x.id}.yaml`);
      for (let i = 0; i < RELOADS_PER_ROUND; i++) {
        // Alternate the content (mark 1, 0, 1, …) so no reload is an unchanged-hash no-op.
        writeFileSync(file, manyRoutesConfig(p, count, (i + 1) % 2));
        const r = await timedReload(ctx.settings.adminPort);
        if (r.status === 200) {
          reloads.push(r.ms);
        } else {
          reloadNote = r.status === 0 ? 'n/a (admin not reachable)' : r.status === 400 ? `failed: ${r.body.slice(0, 200)}` : `n/a (HTTP ${r.status})`;
          progress(`  POST /reload: ${reloadNote}`);
          return;
        }
        // Let the file watcher's debounce pass: its reload of the same content is a no-op.
        await sleep(500);
      }
      // Leave the file as the process started with it, for the next round's fresh start.
      writeFileSync(file, manyRoutesConfig(p, count));
    },
  });

  const one = summarize(results, 'routes-1');
  const rows: string[][] = [];
  for (const x of subjects) {
    const m = summarize(results, x.id);
    if (m === null) continue;
    const isDirect = x.id === 'direct';
    rows.push([
      x.label,
      fmtInt(m.rps),
      fmtPct(m.rpsSpread),
      isDirect || one === null ? '—' : fmtRatio(m.rps / one.rps),
      fmtInt(m.cpuUsPerReq),
      isDirect ? '—' : fmtUsPair(m.addedP50Us, m.addedP99Us, true),
      fmtMiB(m.peakRssBytes),
      isDirect ? '—' : `${fmtInt(m.startMs)} ms`,
      x.id !== 'routes-n' ? '—' : (reloadNote ?? (reloads.length > 0 ? `${fmtInt(median(reloads))} ms` : 'n/a')),
    ]);
  }
  const table = markdownTable(
    ['config', 'req/s', 'rounds spread', 'vs 1 route', 'CPU µs/req', 'added p50 / p99', 'peak RSS', 'start-up', 'POST /reload (median)'],
    rows,
  );
  const n = summarize(results, 'routes-n');
  const verdict =
    one === null || n === null
      ? ''
      : `\n\n${fmtInt(count)} routes vs 1: ${(((n.rps - one.rps) / one.rps) * 100).toFixed(1)} % req/s (target: within 5 %)` +
        (reloads.length > 0 ? `; POST /reload of the ${fmtInt(count)}-upstream config: median ${fmtInt(median(reloads))} ms over ${reloads.length} reloads` : '');
  return table + verdict;
}

interface ReloadResult {
  readonly status: number;
  readonly ms: number;
  readonly body: string;
}

/** POST /reload on the admin API; status 0 when it cannot be reached. */
function timedReload(adminPort: number): Promise<ReloadResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = request(
      { host: '127.0.0.1', port: adminPort, path: '/reload', method: 'POST', agent: false, timeout: 60_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, body }));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, ms: NaN, body: '' }));
    req.end();
  });
}
