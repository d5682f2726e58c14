/**
 * Reading a V8 `.cpuprofile` (what `node --cpu-prof` writes): self time by
 * component and by function, folded stacks, and the per-request difference
 * between two profiles. Pure functions, so they are unit-tested without a
 * process to profile.
 */

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  /** Microseconds on the system's monotonic clock (the clock of `process.hrtime`). */
  startTime?: number;
  /** Microseconds since the previous sample (the first: since startTime). */
  timeDeltas?: number[];
}

/** A span of the monotonic clock, in microseconds: only samples inside it count. */
export interface Window {
  readonly fromUs: number;
  readonly toUs: number;
}

export interface ProfileSummary {
  byComponent: [string, number][];
  /** The 25 costliest functions by self samples: [name, component, samples]. */
  top: [string, string, number][];
  /** Every function's self samples, idle excluded. */
  functions: Map<string, { comp: string; n: number }>;
  folded: string;
  /** Samples counted (inside the window, if one was given). */
  total: number;
  /** Wall time the counted samples cover, in microseconds (NaN without timestamps). */
  spanUs: number;
}

export const IDLE = 'idle (waiting for the network)';

const PINO = new Set(['pino', 'sonic-boom', 'thread-stream', 'pino-std-serializers', 'fast-redact', 'quick-format-unescaped', 'atomic-sleep', 'on-exit-leak-free']);

/** Which part of the process a frame belongs to, from its script URL (native frames have none). */
export function component(f: ProfileNode['callFrame']): string {
  const { url, functionName: fn } = f;
  if (fn === '(idle)') return IDLE;
  if (fn === '(garbage collector)') return 'garbage collector';
  if (fn === '(program)') return 'V8/native, not attributed';
  if (url === '') {
    if (/^(writev|writeBuffer|writeLatin1String|writeUtf8String|writeString|writeAsciiString)$/.test(fn)) return 'socket writes (syscalls)';
    return 'native bindings (other)';
  }
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (m !== null) return PINO.has(m[1]!) ? 'pino (access log)' : m[1]!;
  if (url.startsWith('node:')) {
    if (/node:_http_|node:http$/.test(url)) return "node's http server";
    if (/node:net|node:stream|node:internal\/streams|stream_base_commons/.test(url)) return "node's net/streams";
    if (/timers/.test(url)) return "node's timers";
    return 'node (other internals)';
  }
  if (/\/bench\/baselines\//.test(url)) return 'baseline proxy';
  if (/\/dist\/|\/src\//.test(url)) return 'breakwater';
  return 'other';
}

export function frameName(f: ProfileNode['callFrame']): string {
  const file = f.url === '' ? '' : ` ${f.url.replace(/^file:\/\//, '').split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
  return `${f.functionName === '' ? '(anonymous)' : f.functionName}${file}`;
}

export function summarizeProfile(p: CpuProfile, window?: Window): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const hits = new Map<number, number>();
  let total = 0;
  let first = Infinity;
  let last = -Infinity;
  let t = p.startTime ?? NaN;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas?.[i] ?? NaN;
    if (window !== undefined && !(t >= window.fromUs && t <= window.toUs)) continue;
    const s = p.samples[i]!;
    hits.set(s, (hits.get(s) ?? 0) + 1);
    total++;
    first = Math.min(first, t);
    last = Math.max(last, t);
  }
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
  const functions = new Map([...fns].filter(([, e]) => e.comp !== IDLE));
  return {
    byComponent: [...comp].sort((a, b) => b[1] - a[1]),
    top: [...functions].sort((a, b) => b[1].n - a[1].n).slice(0, 25).map(([k, e]) => [k, e.comp, e.n]),
    functions,
    folded: [...folded].map(([k, n]) => `${k} ${n}`).join('\n') + '\n',
    total,
    spanUs: total > 1 ? ((last - first) * total) / (total - 1) : NaN,
  };
}

/** Self time per request, in µs, of every component and function of one profiled run. */
export interface PerRequest {
  readonly byComponent: ReadonlyMap<string, number>;
  readonly byFunction: ReadonlyMap<string, { comp: string; us: number }>;
  /** Main-thread busy time (everything but idle) per request. */
  readonly busyUs: number;
}

/** Spread the counted samples' wall time evenly over them, and divide by the requests answered in the window. */
export function perRequest(s: ProfileSummary, requests: number): PerRequest {
  const usPerSample = s.spanUs / s.total;
  const k = usPerSample / requests;
  const idle = s.byComponent.find(([c]) => c === IDLE)?.[1] ?? 0;
  return {
    byComponent: new Map(s.byComponent.map(([c, n]) => [c, n * k])),
    byFunction: new Map([...s.functions].map(([f, e]) => [f, { comp: e.comp, us: e.n * k }])),
    busyUs: (s.total - idle) * k,
  };
}

export interface Difference {
  readonly key: string;
  readonly comp: string;
  readonly a: number;
  readonly b: number;
}

/**
 * Per-request self time of `a` minus `b`, by component and by function,
 * each the median over the rounds (a round missing a key counts 0 for it),
 * sorted by how much more `a` spends. Functions both sides share (node's
 * http server, undici) line up by name and script position.
 */
export function difference(a: readonly PerRequest[], b: readonly PerRequest[]): { components: Difference[]; functions: Difference[] } {
  const med = (xs: number[]): number => {
    const v = [...xs].sort((x, y) => x - y);
    const mid = v.length >> 1;
    return v.length === 0 ? 0 : v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  };
  const diff = (pick: (r: PerRequest) => ReadonlyMap<string, number>, compOf: (key: string) => string): Difference[] => {
    const keys = new Set([...a, ...b].flatMap((r) => [...pick(r).keys()]));
    keys.delete(IDLE);
    return [...keys]
      .map((key) => ({ key, comp: compOf(key), a: med(a.map((r) => pick(r).get(key) ?? 0)), b: med(b.map((r) => pick(r).get(key) ?? 0)) }))
      .sort((x, y) => y.a - y.b - (x.a - x.b));
  };
  const compOf = new Map<string, string>();
  for (const r of [...a, ...b]) for (const [f, e] of r.byFunction) compOf.set(f, e.comp);
  const fnUs = (r: PerRequest): ReadonlyMap<string, number> => new Map([...r.byFunction].map(([f, e]) => [f, e.us]));
  return {
    components: diff((r) => r.byComponent, (k) => k),
    functions: diff(fnUs, (k) => compOf.get(k) ?? ''),
  };
}
