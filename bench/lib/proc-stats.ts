/**
 * What a process cost, read from Linux /proc: CPU time (all threads: the
 * event loop, GC helpers, libuv's pool), peak resident memory, and peak
 * private (anonymous) memory.
 */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

function clockTicksPerSecond(): number {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
}

const CLK_TCK = clockTicksPerSecond();

/** utime + stime of the whole process, in microseconds. */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which may itself contain spaces and ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Field 14 (utime) and 15 (stime) of proc(5); fields[0] here is field 3.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / CLK_TCK;
}

/** VmHWM: the peak resident set since the process started, in bytes; null if unreadable. */
export function peakRssBytes(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] === undefined ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

/** RssAnon: resident memory that is the process's own (heap, stacks, malloc), not file pages shared with other processes; bytes, or null. */
export function privateRssBytes(pid: number): number | null {
  try {
    const m = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] === undefined ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

/**
 * Linux keeps a peak for the whole resident set (VmHWM) but not for its
 * private part, so that one is sampled: every `everyMs` until stop(), which
 * returns the largest value seen (null if nothing could be read).
 */
export function watchPrivatePeak(pid: number, everyMs = 100): { stop(): number | null } {
  let peak: number | null = privateRssBytes(pid);
  const timer = setInterval(() => {
    const v = privateRssBytes(pid);
    if (v !== null && (peak === null || v > peak)) peak = v;
  }, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      const v = privateRssBytes(pid);
      if (v !== null && (peak === null || v > peak)) peak = v;
      return peak;
    },
  };
}
