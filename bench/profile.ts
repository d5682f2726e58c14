/**
 * Where does breakwater's CPU go? Runs breakwater under closed-loop load with
 * node's `--cpu-prof`, then prints self time by component and the functions
 * that cost most, and writes the profile in two forms to OUT (default
 * bench/profiles/, not committed):
 *   - `<config>.cpuprofile`: Chrome DevTools (Performance → Load profile) or
 *     https://www.speedscope.app;
 *   - `<config>.folded`: folded stacks, one line per distinct stack with its
 *     sample count, for flamegraph.pl, inferno or speedscope.
 *
 *   node bench/profile.ts [plain | policies | policies-log]   (default: policies-log)
 *
 * Knobs: DURATION (default 10 s of load after WARMUP 2 s), CONNECTIONS, PIN,
 * OUT, and the ports of bench/run.ts. RATE=1000 profiles a fixed request rate
 * (the open-loop schedule of the latency run) instead of load as fast as
 * answers come back: where the CPU goes per request when the process is
 * mostly idle, as a sidecar usually is. The profile covers the process's whole
 * life (start-up and warm-up are a few percent of it).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { allPoliciesConfig, plainConfig } from './lib/breakwater-config.ts';
import { fixedRateLatency, throughput } from './lib/load.ts';
import { installCleanup, makeTempDir, setupPinning } from './lib/procs.ts';
import { fmtInt, machineInfo, markdownTable, progress } from './lib/report.ts';
import { breakwaterBuilt, readSettings } from './lib/settings.ts';
import { BREAKWATER_SKIP, breakwater, ports, startTarget, type BenchContext } from './lib/subjects.ts';

const CONFIGS = ['plain', 'policies', 'policies-log'] as const;
type ConfigName = (typeof CONFIGS)[number];

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
}

/** Which part of the process a frame belongs to, from its script URL (native frames have none). */
function component(f: ProfileNode['callFrame']): string {
  const { url, functionName: fn } = f;
  if (fn === '(idle)') return 'idle (waiting for the network)';
  if (fn === '(garbage collector)') return 'garbage collector';
  if (fn === '(program)') return 'V8/native, not attributed';
  if (url === '') {
    if (/^(writev|writeBuffer|writeLatin1String|writeUtf8String|writeString|writeAsciiString)$/.test(fn)) return 'socket writes (syscalls)';
    return 'native bindings (other)';
  }
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (m !== null) {
    const pkg = m[1]!;
    if (pkg === 'pino' || pkg === 'sonic-boom' || pkg === 'thread-stream' || pkg === 'pino-std-serializers' || pkg === 'fast-redact' || pkg === 'quick-format-unescaped' || pkg === 'atomic-sleep' || pkg === 'on-exit-leak-free') return 'pino (access log)';
    return pkg;
  }
  if (url.startsWith('node:')) {
    if (/node:_http_|node:http$/.test(url)) return "node's http server";
    if (/node:net|node:stream|node:internal\/streams|stream_base_commons/.test(url)) return "node's net/streams";
    if (/timers/.test(url)) return "node's timers";
    return 'node (other internals)';
  }
  if (/\/dist\/|\/src\//.test(url)) return 'breakwater';
  return 'other';
}

function frameName(f: ProfileNode['callFrame']): string {
  const file = f.url === '' ? '' : ` ${f.url.replace(/^file:\/\//, '').split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
  return `${f.functionName === '' ? '(anonymous)' : f.functionName}${file}`;
}

export function summarizeProfile(p: CpuProfile): { byComponent: [string, number][]; top: [string, string, number][]; folded: string; total: number } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const hits = new Map<number, number>();
  for (const s of p.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
  const comp = new Map<string, number>();
  const fns = new Map<string, { comp: string; n: number }>();
  const folded = new Map<string, number>();
  for (const [id, n] of hits) {
    const node = byId.get(id)!;
    const c = component(node.callFrame);
    comp.set(c, (comp.get(c) ?? 0) + n);
    const name = frameName(node.callFrame);
    const e = fns.get(name) ?? { comp: c, n: 0 };
    e.n += n;
    fns.set(name, e);
    const stack: string[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (f.functionName !== '(root)') stack.push(frameName(f).replaceAll(';', ','));
    }
    const key = stack.reverse().join(';');
    folded.set(key, (folded.get(key) ?? 0) + n);
  }
  const total = p.samples.length;
  return {
    byComponent: [...comp].sort((a, b) => b[1] - a[1]),
    top: [...fns].filter(([, e]) => !e.comp.startsWith('idle')).sort((a, b) => b[1].n - a[1].n).slice(0, 25).map(([k, e]) => [k, e.comp, e.n]),
    folded: [...folded].map(([k, n]) => `${k} ${n}`).join('\n') + '\n',
    total,
  };
}

async function main(): Promise<void> {
  const which = (process.argv[2] ?? 'policies-log') as ConfigName;
  if (!CONFIGS.includes(which)) {
    process.stderr.write(`unknown config "${which}"; one of: ${CONFIGS.join(', ')}\n`);
    process.exitCode = 2;
    return;
  }
  installCleanup();
  const settings = readSettings();
  if (!breakwaterBuilt(settings)) {
    progress(BREAKWATER_SKIP);
    process.exitCode = 1;
    return;
  }
  const pinning = setupPinning(settings.pin, machineInfo().cores);
  progress(`CPU pinning: ${pinning.note}`);
  const out = resolve(process.env['OUT'] ?? join(settings.benchDir, 'profiles'));
  const tmp = makeTempDir();
  const profDir = join(tmp, 'cpu-prof');
  mkdirSync(profDir);
  const target = await startTarget(settings, tmp, null);
  const ctx: BenchContext = { settings, tmp, targetUrl: target.url };
  const p = ports(ctx);
  const config = which === 'plain' ? plainConfig(p) : allPoliciesConfig(p, which === 'policies-log');
  const subject = breakwater(ctx, which, `breakwater (${which})`, config, {
    ...(which === 'policies-log' && { accessLogFile: join(tmp, 'access.log') }),
    env: { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profDir}` },
  });
  const running = await subject.start();
  progress(`profiling breakwater (${which}): ${settings.warmupS} s warm-up, then ${settings.durationS} s of load`);
  await throughput(running.url, settings.connections, settings.warmupS);
  const rate = Number(process.env['RATE'] ?? 0);
  const rps = rate > 0 ? (await fixedRateLatency(running.url, rate, settings.durationS), rate) : (await throughput(running.url, settings.connections, settings.durationS)).rps;
  await running.stop(); // node writes the profile as the process exits
  await target.stop();
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error('breakwater exited without writing a CPU profile');
  const raw = readFileSync(join(profDir, file), 'utf8');
  const s = summarizeProfile(JSON.parse(raw) as CpuProfile);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, `${which}.cpuprofile`), raw);
  writeFileSync(join(out, `${which}.folded`), s.folded);

  const pct = (n: number): string => `${((100 * n) / s.total).toFixed(1)} %`;
  const busy = s.total - (s.byComponent.find(([c]) => c.startsWith('idle'))?.[1] ?? 0);
  const pctBusy = (n: number): string => `${((100 * n) / busy).toFixed(1)} %`;
  const report = [
    `## CPU profile: breakwater (${which}), ${fmtInt(rps)} req/s${rate > 0 ? ' (fixed rate)' : ''} over ${settings.durationS} s, ${fmtInt(s.total)} samples`,
    '',
    markdownTable(
      ['component', 'self time', 'of busy time'],
      s.byComponent.map(([c, n]) => [c, pct(n), c.startsWith('idle') ? '—' : pctBusy(n)]),
    ),
    '',
    markdownTable(
      ['function (self time)', 'component', 'self time'],
      s.top.map(([f, c, n]) => [`\`${f}\``, c, pct(n)]),
    ),
    '',
    `Written: ${join(out, `${which}.cpuprofile`)} and ${join(out, `${which}.folded`)}`,
  ].join('\n');
  process.stdout.write(`${report}\n`);
}

if (import.meta.main) await main();
