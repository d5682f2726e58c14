/**
 * Printing: machine info, progress (stderr), and Markdown tables (stdout), so
 * `npm run bench > results.md` captures just the report.
 */
import { cpus, loadavg, release, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';

export function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

function osName(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (m?.[1] !== undefined) return `${m[1]}, Linux ${release()}`;
  } catch {
    // not Linux, or no os-release
  }
  return `${process.platform} ${release()}`;
}

export interface MachineInfo {
  readonly cpu: string;
  readonly cores: number;
  readonly node: string;
  readonly os: string;
  readonly memory: string;
  readonly date: string;
  readonly load: string;
}

/** Read before pinning: pinning shrinks what this process sees as available. */
export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    node: process.version,
    os: osName(),
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    load: loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
  };
}

export function machineMarkdown(m: MachineInfo, extra: readonly [string, string][]): string {
  const rows: [string, string][] = [
    ['date', m.date],
    ['CPU', `${m.cpu}, ${m.cores} cores`],
    ['memory', m.memory],
    ['OS', m.os],
    ['Node', m.node],
    ['load average at start', `${m.load} (other work on the machine makes numbers noisy)`],
    ...extra,
  ];
  return rows.map(([k, v]) => `- **${k}**: ${v}`).join('\n');
}

export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** (max − min) / median, as a percentage: how much the rounds disagreed. */
export function spread(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x));
  if (v.length < 2) return NaN;
  return ((Math.max(...v) - Math.min(...v)) / median(v)) * 100;
}

const DASH = '—';

export function fmtInt(x: number | null): string {
  return x === null || !Number.isFinite(x) ? DASH : Math.round(x).toLocaleString('en-US');
}

export function fmtRatio(x: number | null): string {
  return x === null || !Number.isFinite(x) ? DASH : `${x.toFixed(2)}×`;
}

export function fmtPct(x: number): string {
  return Number.isFinite(x) ? `±${(x / 2).toFixed(1)} %` : DASH;
}

export function fmtMiB(bytes: number | null): string {
  return bytes === null || !Number.isFinite(bytes) ? DASH : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

export function fmtCores(x: number | null): string {
  return x === null || !Number.isFinite(x) ? DASH : x.toFixed(3);
}

export function fmtUsPair(a: number, b: number, signed = false): string {
  if (!Number.isFinite(a) || !Number.isFinite(b)) return DASH;
  const f = (x: number): string => (signed && x > 0 ? '+' : '') + Math.round(x).toLocaleString('en-US');
  return `${f(a)} / ${f(b)} µs`;
}

export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}
