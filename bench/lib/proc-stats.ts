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

/** A `kB` field of /proc/PID/status, in bytes; null if unreadable (the process is gone). */
function statusBytes(pid: number, field: 'VmHWM' | 'RssAnon'): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] === undefined ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

/** VmHWM: the peak resident set since the process started, in bytes; null if unreadable. */
export function peakRssBytes(pid: number): number | null {
  return statusBytes(pid, 'VmHWM');
}

/** RssAnon: resident memory that is the process's own (heap, stacks, malloc), not file pages shared with other processes; bytes, or null. */
export function privateRssBytes(pid: number): number | null {
  return statusBytes(pid, 'RssAnon');
}

/**
 * Linux keeps a peak for the whole resident set (VmHWM) but not for its
 * private part, so that one is sampled every `everyMs`: peak() takes one more
 * sample and returns the largest seen (null if nothing could be read);
 * stop() ends the sampling.
 */
export function watchPrivatePeak(pid: number, everyMs = 100): { peak(): number | null; stop(): void } {
  let peak: number | null = null;
  const sample = (): void => {
    const v = privateRssBytes(pid);
    if (v !== null && (peak === null || v > peak)) peak = v;
  };
  sample();
  const timer = setInterval(sample, everyMs);
  timer.unref();
  return {
    peak() {
      sample();
      return peak;
    },
    stop() {
      clearInterval(timer);
    },
  };
}
