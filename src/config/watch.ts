/**
 * Watches the config file's directory, not the file (SPEC §7): a Kubernetes
 * ConfigMap volume swaps a `..data` symlink to a new timestamped folder, and
 * editors write a temp file and rename it over the original; both replace
 * the inode a file watch would be holding, so only the directory sees them.
 * The reload itself skips content whose hash is unchanged, so a spurious
 * call costs one file read.
 *
 * Three things beyond a bare `fs.watch(dir)`:
 * - Debounce with a ceiling: events are coalesced until `debounceMs` of quiet,
 *   but never held back longer than `maxWaitMs` after the first one, so a
 *   neighbour that writes into the same directory all the time (a log, a
 *   rotating secret) cannot postpone a reload forever.
 * - A slow stat poll of the file (through its symlinks) beside the directory
 *   watch: directory events do not arrive on every filesystem (NFS, some
 *   container bind mounts), and a file that is a symlink into another
 *   directory changes where the watch cannot see it.
 * - A directory that goes away (volume remounted) is watched again once it is
 *   back, instead of never again (the poll re-arms the watch on each change
 *   it sees, since a deleted directory silently ends an inotify watch).
 * Every handle is unref'd: the watcher never keeps the process alive.
 */
import { watch, watchFile, unwatchFile, type FSWatcher, type Stats } from 'node:fs';
import path from 'node:path';

export interface ConfigWatcher {
  close(): void;
}

export interface WatchOptions {
  /** Quiet time after the last event before `onChange` runs (default 250 ms). */
  readonly debounceMs?: number;
  /** Longest a steady stream of events may hold `onChange` back (default 1000 ms). */
  readonly maxWaitMs?: number;
  /** Interval of the stat poll of the file; 0 turns it off (default 2000 ms). */
  readonly pollMs?: number;
}

/** How often a vanished directory is looked for again. */
const REWATCH_MS = 1000;

/**
 * Calls `onChange` (debounced) whenever the config file may have changed.
 * `opts` may be a number: the debounce in ms (the other options keep their defaults).
 */
export function watchConfig(file: string, onChange: () => void, opts: number | WatchOptions = {}): ConfigWatcher {
  const o: WatchOptions = typeof opts === 'number' ? { debounceMs: opts } : opts;
  const debounceMs = o.debounceMs ?? 250;
  const maxWaitMs = Math.max(debounceMs, o.maxWaitMs ?? 1000);
  const pollMs = o.pollMs ?? 2000;
  const abs = path.resolve(file);
  const dir = path.dirname(abs);

  let closed = false;
  let timer: NodeJS.Timeout | null = null;
  /** When the first event of the current burst arrived. */
  let burstStart = 0;
  let w: FSWatcher | null = null;
  let rewatch: NodeJS.Timeout | null = null;

  const fire = (): void => {
    timer = null;
    if (closed) return;
    onChange();
  };

  const changed = (): void => {
    if (closed) return;
    const now = Date.now();
    if (timer === null) burstStart = now;
    else clearTimeout(timer);
    const wait = Math.max(0, Math.min(debounceMs, burstStart + maxWaitMs - now));
    timer = setTimeout(fire, wait);
    timer.unref();
  };

  /** Watches the directory; false if it cannot (it does not exist right now). */
  const startWatch = (): boolean => {
    let fw: FSWatcher;
    try {
      fw = watch(dir, { persistent: false }, changed);
    } catch {
      return false;
    }
    fw.on('error', () => {
      // The directory went away (volume unmounted): look for it again, and
      // reload once it is back. SIGHUP and POST /reload work meanwhile.
      fw.close();
      if (w === fw) w = null;
      scheduleRewatch();
    });
    w = fw;
    return true;
  };

  const stopRewatch = (): void => {
    if (rewatch !== null) clearInterval(rewatch);
    rewatch = null;
  };

  const scheduleRewatch = (): void => {
    if (closed || rewatch !== null) return;
    rewatch = setInterval(() => {
      if (closed || w !== null || !startWatch()) return;
      stopRewatch();
      changed();
    }, REWATCH_MS);
    rewatch.unref();
  };

  /** (Re)starts the directory watch, or keeps looking for the directory. */
  const arm = (): void => {
    w?.close();
    w = null;
    if (startWatch()) stopRewatch();
    else scheduleRewatch();
  };

  const onStat = (curr: Stats, prev: Stats): void => {
    if (curr.mtimeMs === prev.mtimeMs && curr.ino === prev.ino && curr.size === prev.size && curr.ctimeMs === prev.ctimeMs) return;
    changed();
    // On Linux a deleted directory ends its watch without an 'error'; the
    // poll is what notices. Re-arming is cheap and changes happen rarely.
    if (!closed) arm();
  };

  arm();
  // stat, not lstat: follows the `breakwater.yaml → ..data/…` symlinks, so a
  // swapped target shows up as a new inode.
  if (pollMs > 0) watchFile(abs, { persistent: false, interval: pollMs }, onStat);

  return {
    close(): void {
      if (closed) return;
      closed = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      stopRewatch();
      w?.close();
      w = null;
      if (pollMs > 0) unwatchFile(abs, onStat);
    },
  };
}
