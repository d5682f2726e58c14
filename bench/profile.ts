/**
 * Where does breakwater's CPU go? Runs breakwater (or the minimal undici
 * proxy) under closed-loop load with node's `--cpu-prof`, then prints self
 * time by component and the functions that cost most, and writes the profile
 * in two forms to OUT (default bench/profiles/, not committed):
 *   - `<config>.cpuprofile`: Chrome DevTools (Performance → Load profile) or
 *     https://www.speedscope.app;
 *   - `<config>.folded`: folded stacks, one line per distinct stack with its
 *     sample count, for flamegraph.pl, inferno or speedscope.
 *
 *   node bench/profile.ts [plain | policies | policies-log | undici]   (default: policies-log)
 *   node bench/profile.ts compare [plain | policies | policies-log]    (default: policies-log)
 *
 * `compare` answers "what does breakwater spend that the minimal undici proxy
 * does not?": it profiles both under the same load, ROUNDS times interleaved,
 * and prints self time per request (µs) by component and by function for
 * each, with the difference — the costs both share (node's http server,
 * undici, socket writes) cancel out, and what is left is breakwater's own.
 * Only samples taken during the measured load count (not start-up or
 * warm-up), and the process's CPU time from /proc (all threads) is printed
 * beside the main thread's sampled busy time.
 *
 * Knobs: DURATION (default 10 s of load after WARMUP 2 s), ROUNDS (compare
 * only), CONNECTIONS, PIN, OUT, and the ports of bench/run.ts. RATE=1000
 * profiles a fixed request rate (the open-loop schedule of the latency run)
 * instead of load as fast as answers come back: where the CPU goes per
 * request when the process is mostly idle, as a sidecar usually is.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { allPoliciesConfig, plainConfig } from './lib/breakwater-config.ts';
import { difference, perRequest, summarizeProfile, type CpuProfile, type PerRequest, type ProfileSummary } from './lib/cpu-profile.ts';
import { fixedRateLatency, throughput } from './lib/load.ts';
import { cpuMicros } from './lib/proc-stats.ts';
import { installCleanup, makeTempDir, setupPinning } from './lib/procs.ts';
import { fmtInt, machineInfo, markdownTable, median, progress } from './lib/report.ts';
import { breakwaterBuilt, readSettings, type Settings } from './lib/settings.ts';
import { BREAKWATER_SKIP, breakwater, ports, startTarget, undiciBaseline, type BenchContext, type Subject } from './lib/subjects.ts';

export { summarizeProfile } from './lib/cpu-profile.ts';

const CONFIGS = ['plain', 'policies', 'policies-log', 'undici'] as const;
type ConfigName = (typeof CONFIGS)[number];

function subject(ctx: BenchContext, which: ConfigName, profDir: string): Subject {
  const env = { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profDir}` };
  if (which === 'undici') return undiciBaseline(ctx, env);
  const p = ports(ctx);
  const config = which === 'plain' ? plainConfig(p) : allPoliciesConfig(p, which === 'policies-log');
  return breakwater(ctx, which, `breakwater (${which})`, config, {
    ...(which === 'policies-log' && { accessLogFile: join(ctx.tmp, 'access.log') }),
    env,
  });
}

interface Run {
  readonly raw: string;
  readonly summary: ProfileSummary;
  readonly requests: number;
  readonly rps: number;
  /** The process's CPU time (all threads, /proc) over the measured load, per request. */
  readonly cpuUsPerReq: number;
}

/** Start one subject with the profiler on, load it, stop it, and read the samples of the measured load only. */
async function profileOnce(ctx: BenchContext, which: ConfigName, rate: number): Promise<Run> {
  const s = ctx.settings;
  const profDir = join(ctx.tmp, `cpu-prof-${which}-${Date.now()}`);
  mkdirSync(profDir);
  const running = await subject(ctx, which, profDir).start();
  progress(`profiling ${which}: ${s.warmupS} s warm-up, then ${s.durationS} s of load${rate > 0 ? ` at ${rate} req/s` : ''}`);
  await throughput(running.url, s.connections, s.warmupS);
  // process.hrtime and V8's profile timestamps read the same monotonic clock.
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const cpu0 = cpuMicros(running.pid!);
  let requests: number;
  if (rate > 0) {
    await fixedRateLatency(running.url, rate, s.durationS);
    requests = Math.round(rate / 2) + Math.max(1, Math.round(rate * s.durationS));
  } else {
    requests = (await throughput(running.url, s.connections, s.durationS)).requests;
  }
  const cpu1 = cpuMicros(running.pid!);
  const toUs = Number(process.hrtime.bigint() / 1000n);
  await running.stop(); // node writes the profile as the process exits
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`${which} exited without writing a CPU profile`);
  const raw = readFileSync(join(profDir, file), 'utf8');
  const summary = summarizeProfile(JSON.parse(raw) as CpuProfile, { fromUs, toUs });
  if (summary.total === 0) throw new Error(`${which}: no profile samples inside the measured window`);
  return { raw, summary, requests, rps: (requests * 1e6) / (toUs - fromUs), cpuUsPerReq: (cpu1 - cpu0) / requests };
}

function save(out: string, name: string, run: Run): void {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, `${name}.cpuprofile`), run.raw);
  writeFileSync(join(out, `${name}.folded`), run.summary.folded);
}

function single(which: ConfigName, run: Run, rate: number, s: Settings, out: string): string {
  const sum = run.summary;
  const pct = (n: number): string => `${((100 * n) / sum.total).toFixed(1)} %`;
  const busy = sum.total - (sum.byComponent.find(([c]) => c.startsWith('idle'))?.[1] ?? 0);
  const pctBusy = (n: number): string => `${((100 * n) / busy).toFixed(1)} %`;
  return [
    `## CPU profile: ${which}, ${fmtInt(run.rps)} req/s${rate > 0 ? ' (fixed rate)' : ''} over ${s.durationS} s, ${fmtInt(sum.total)} samples, ${run.cpuUsPerReq.toFixed(1)} µs CPU/request (all threads)`,
    '',
    markdownTable(
      ['component', 'self time', 'of busy time'],
      sum.byComponent.map(([c, n]) => [c, pct(n), c.startsWith('idle') ? '—' : pctBusy(n)]),
    ),
    '',
    markdownTable(
      ['function (self time)', 'component', 'self time'],
      sum.top.map(([f, c, n]) => [`\`${f}\``, c, pct(n)]),
    ),
    '',
    `Written: ${join(out, `${which}.cpuprofile`)} and ${join(out, `${which}.folded`)}`,
  ].join('\n');
}

function compared(which: ConfigName, runs: Run[], base: Run[], rate: number, s: Settings, out: string): string {
  const a = runs.map((r) => perRequest(r.summary, r.requests));
  const b = base.map((r) => perRequest(r.summary, r.requests));
  const d = difference(a, b);
  const us = (x: number): string => x.toFixed(2);
  const signed = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(2)}`;
  const range = (xs: number[]): string => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;
  const busy = (rs: PerRequest[]): number[] => rs.map((r) => r.busyUs);
  const shown = d.functions.filter((x) => Math.abs(x.a - x.b) >= 0.05);
  return [
    `## CPU per request: breakwater (${which}) vs the minimal undici proxy, ${runs.length} interleaved rounds × ${s.durationS} s${rate > 0 ? ` at ${rate} req/s` : `, ${s.connections} connections`}`,
    '',
    markdownTable(
      ['', `breakwater (${which})`, 'undici baseline', 'ratio'],
      [
        ['req/s', range(runs.map((r) => r.rps)), range(base.map((r) => r.rps)), `${(median(runs.map((r) => r.rps)) / median(base.map((r) => r.rps))).toFixed(2)}×`],
        ['CPU µs/request, all threads (/proc)', range(runs.map((r) => r.cpuUsPerReq)), range(base.map((r) => r.cpuUsPerReq)), `${(median(runs.map((r) => r.cpuUsPerReq)) / median(base.map((r) => r.cpuUsPerReq))).toFixed(2)}×`],
        ['main thread busy µs/request (samples)', range(busy(a)), range(busy(b)), `${(median(busy(a)) / median(busy(b))).toFixed(2)}×`],
      ],
    ),
    '',
    'Self time per request by component (µs, medians over the rounds):',
    '',
    markdownTable(
      ['component', 'breakwater', 'undici baseline', 'difference'],
      d.components.map((x) => [x.key, us(x.a), us(x.b), signed(x.a - x.b)]),
    ),
    '',
    'Functions whose self time per request differs most (µs; ≥ 0.05):',
    '',
    markdownTable(
      ['function (self time)', 'component', 'breakwater', 'undici baseline', 'difference'],
      [...shown.slice(0, 30), ...shown.slice(30).slice(-5)].map((x) => [`\`${x.key}\``, x.comp, us(x.a), us(x.b), signed(x.a - x.b)]),
    ),
    '',
    `Written (last round): ${join(out, `${which}.folded`)} and ${join(out, 'undici.folded')}; a differential flame graph: difffolded.pl undici.folded ${which}.folded | flamegraph.pl`,
  ].join('\n');
}

async function main(): Promise<void> {
  const compare = process.argv[2] === 'compare';
  const which = (process.argv[compare ? 3 : 2] ?? 'policies-log') as ConfigName;
  if (!CONFIGS.includes(which) || (compare && which === 'undici')) {
    process.stderr.write(`unknown config "${which}"; one of: ${CONFIGS.join(', ')} (compare: not undici)\n`);
    process.exitCode = 2;
    return;
  }
  installCleanup();
  const settings = readSettings();
  if (which !== 'undici' && !breakwaterBuilt(settings)) {
    progress(BREAKWATER_SKIP);
    process.exitCode = 1;
    return;
  }
  const pinning = setupPinning(settings.pin, machineInfo().cores);
  progress(`CPU pinning: ${pinning.note}`);
  const out = resolve(process.env['OUT'] ?? join(settings.benchDir, 'profiles'));
  const tmp = makeTempDir();
  const target = await startTarget(settings, tmp, null);
  const ctx: BenchContext = { settings, tmp, targetUrl: target.url };
  const rate = Number(process.env['RATE'] ?? 0);
  let report: string;
  if (compare) {
    const runs: Run[] = [];
    const base: Run[] = [];
    for (let round = 0; round < settings.rounds; round++) {
      progress(`round ${round + 1}/${settings.rounds}`);
      // Alternate which goes first, so drift on the machine lands on both.
      for (const id of round % 2 === 0 ? [which, 'undici' as const] : ['undici' as const, which]) {
        (id === 'undici' ? base : runs).push(await profileOnce(ctx, id, rate));
      }
    }
    save(out, which, runs[runs.length - 1]!);
    save(out, 'undici', base[base.length - 1]!);
    report = compared(which, runs, base, rate, settings, out);
  } else {
    const run = await profileOnce(ctx, which, rate);
    save(out, which, run);
    report = single(which, run, rate, settings, out);
  }
  await target.stop();
  process.stdout.write(`${report}\n`);
}

if (import.meta.main) await main();
