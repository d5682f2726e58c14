/**
 * passthrough: one GET path, 128-byte answers, every subject forwarding to
 * the same target. The headline table: what breakwater costs per request
 * next to the target alone, two small Node proxies and nginx / haproxy.
 */
import { fmtCores, fmtInt, fmtMiB, fmtPct, fmtRatio, fmtUsPair, markdownTable, progress } from '../lib/report.ts';
import { runRounds, summarize, type Results } from '../lib/rounds.ts';
import { breakwaterBuilt } from '../lib/settings.ts';
import { BREAKWATER_SKIP, passthroughSubjects, type BenchContext, type References, type Subject } from '../lib/subjects.ts';

export async function run(ctx: BenchContext, refs: References): Promise<string> {
  const built = breakwaterBuilt(ctx.settings);
  if (!built) progress(BREAKWATER_SKIP);
  const subjects = passthroughSubjects(ctx, refs, built);
  const results = await runRounds(subjects, ctx.settings);
  return table(subjects, results, ctx.settings.connections, ctx.settings.latencyRate);
}

function table(subjects: readonly Subject[], results: Results, connections: number, rate: number): string {
  const rows: string[][] = [];
  const rpsOf = (id: string): number | null => summarize(results, id)?.rps ?? null;
  const ratio = (a: number, base: number | null): number | null => (base === null ? null : a / base);
  for (const x of subjects) {
    const m = summarize(results, x.id);
    if (m === null) continue;
    const isDirect = x.id === 'direct';
    rows.push([
      x.label,
      fmtInt(m.rps),
      fmtPct(m.rpsSpread),
      fmtRatio(ratio(m.rps, rpsOf('direct'))),
      fmtRatio(ratio(m.rps, rpsOf('nginx'))),
      fmtRatio(ratio(m.rps, rpsOf('undici'))),
      fmtInt(m.cpuUsPerReq),
      fmtUsPair(m.p50Us, m.p99Us),
      isDirect ? '—' : fmtUsPair(m.addedP50Us, m.addedP99Us, true),
      isDirect ? '—' : fmtCores(m.coresAtRate),
      fmtMiB(m.peakRssBytes),
      fmtMiB(m.peakPrivateBytes),
      fmtMiB(m.peakPssBytes),
    ]);
  }
  return markdownTable(
    [
      'target',
      `req/s @${connections} conns`,
      'rounds spread',
      'vs direct',
      'vs nginx',
      'vs undici',
      'CPU µs/req',
      `p50 / p99 @${rate} req/s`,
      'added p50 / p99',
      `CPU cores @${rate} req/s`,
      'peak RSS',
      'peak private',
      'peak PSS',
    ],
    rows,
  );
}
