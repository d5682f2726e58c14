/**
 * What a process cost, read from Linux /proc: CPU time (all threads: the
 * event loop, GC helpers, libuv's pool), peak resident memory, and peaks of
 * private (anonymous) and proportional (PSS) memory.
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

/** A `kB` field ("Name:   123 kB") of a /proc status or smaps_rollup text, in bytes; null if absent. */
export function kbField(text: string, field: string): number | null {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
  return m?.[1] === undefined ? null : Number(m[1]) * 1024;
}

/** A `kB` field of a file under /proc/PID, in bytes; null if unreadable (the process is gone). */
function procBytes(pid: number, file: 'status' | 'smaps_rollup', field: string): number | null {
  try {
    return kbField(readFileSync(`/proc/${pid}/${file}`, 'utf8'), field);
  } catch {
    return null;
  }
}

/** VmHWM: the peak resident set since the process started, in bytes; null if unreadable. */
export function peakRssBytes(pid: number): number | null {
  return procBytes(pid, 'status', 'VmHWM');
}

/** RssAnon: resident memory that is the process's own (heap, stacks, malloc), not file pages shared with other processes; bytes, or null. */
export function privateRssBytes(pid: number): number | null {
  return procBytes(pid, 'status', 'RssAnon');
}

/**
 * Pss (smaps_rollup): the resident set with every shared page divided among
 * the processes that map it — what the process adds to the machine's memory
 * when the others are counted the same way. For node it is RssAnon plus the
 * binary's pages split among every running node process, so it falls as more
 * node processes run (the bench's own load generator and target are two).
 */
export function pssBytes(pid: number): number | null {
  return procBytes(pid, 'smaps_rollup', 'Pss');
}

export interface MemoryPeaks {
  /** Largest RssAnon sampled. */
  readonly privateBytes: number | null;
  /** Largest Pss sampled. */
  readonly pssBytes: number | null;
}

/**
 * Linux keeps a peak for the whole resident set (VmHWM) but not for its
 * private part or its proportional share, so those are sampled every
 * `everyMs`: peaks() takes one more sample and returns the largest of each
 * seen (null if nothing could be read); stop() ends the sampling. Reading
 * smaps_rollup walks the process's mappings in the kernel: the reader pays
 * for it (a fraction of a millisecond), not the process measured.
 */
export function watchMemoryPeaks(pid: number, everyMs = 100): { peaks(): MemoryPeaks; stop(): void } {
  let priv: number | null = null;
  let pss: number | null = null;
  const max = (a: number | null, b: number | null): number | null => (b === null || (a !== null && a >= b) ? a : b);
  const sample = (): void => {
    priv = max(priv, privateRssBytes(pid));
    pss = max(pss, pssBytes(pid));
  };
  sample();
  const timer = setInterval(sample, everyMs);
  timer.unref();
  return {
    peaks() {
      sample();
      return { privateBytes: priv, pssBytes: pss };
    },
    stop() {
      clearInterval(timer);
    },
  };
}
