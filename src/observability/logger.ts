/**
 * The process logger: pino, JSON lines on stdout, written asynchronously so a
 * burst of access-log lines never blocks the event loop on a slow pipe.
 * Operational events use the same logger, with `msg` naming the event
 * ("start", "reload", "circuit_transition", "drain", …).
 */
import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from '../config/types.ts';

export type { Logger };

export interface LoggerHandle {
  readonly logger: Logger;
  /**
   * Writes one ready-made JSON line (with its newline) to the logger's
   * destination, when `info` is enabled: the access log's path, which
   * builds its fixed-shape line itself instead of paying pino's generic
   * serializer (~5 µs a line under load).
   */
  writeInfoLine(line: string): void;
  /** Writes one ready-made JSON line whatever the level: audit lines (audit.ts), which `log.level` must not silence. */
  writeLine(line: string): void;
  /** The `"time":"…"` fragment of this millisecond, as every line carries it. */
  timeField(): string;
  /** Write out whatever is buffered (shutdown). */
  flush(): void;
}

/** A batch goes to sonic-boom once it holds this many characters… */
const BATCH_CHARS = 16 * 1024;
/** …or once its first line is this old: the longest a line waits on a quiet sidecar. */
const BATCH_MS = 50;

/**
 * Gathers lines and hands them to sonic-boom in batches. sonic-boom measures
 * the byte length of its whole pending buffer on every write, so many small
 * writes cost quadratic time in the lines per batch (~5 µs per access line
 * under load); one write per batch costs 1–3 µs per line. The timer also
 * bounds how long a line waits: sonic-boom's own `minLength` would hold a
 * line until 4 KiB had gathered, minutes on a sidecar that sees little traffic.
 */
class LineBatcher implements DestinationStream {
  readonly #out: DestinationStream;
  readonly #lines: string[] = [];
  #chars = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly #onTimer = (): void => {
    this.#timer = null;
    this.flush();
  };

  constructor(out: DestinationStream) {
    this.#out = out;
  }

  write(line: string): void {
    this.#lines.push(line);
    this.#chars += line.length;
    if (this.#chars >= BATCH_CHARS) {
      this.flush();
    } else if (this.#timer === null) {
      this.#timer = setTimeout(this.#onTimer, BATCH_MS);
      this.#timer.unref();
    }
  }

  /** Hand everything gathered to the stream below. */
  flush(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#lines.length === 0) return;
    const batch = this.#lines.length === 1 ? this.#lines[0]! : this.#lines.join('');
    this.#lines.length = 0;
    this.#chars = 0;
    this.#out.write(batch);
  }
}

let isoAt = 0;
let isoTime = '';
/**
 * pino's isoTime formats a new Date for every line; under load a dozen lines
 * share each millisecond, so the string is formatted once per millisecond.
 */
function cachedIsoTime(): string {
  const now = Date.now();
  if (now !== isoAt) {
    isoAt = now;
    isoTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return isoTime;
}

/**
 * `dest`: where lines go; stdout (fd 1, batched, written asynchronously)
 * unless a stream is given (tests capture lines in memory, unbatched).
 */
export function createLogger(level: LogLevel, dest?: DestinationStream): LoggerHandle {
  let batcher: LineBatcher | null = null;
  let sonic: ReturnType<typeof pino.destination> | null = null;
  if (dest === undefined) {
    // Registered before pino's own exit hook (which flushes sonic-boom
    // synchronously), so the last batch is in sonic-boom by then.
    process.once('exit', () => batcher?.flush());
    sonic = pino.destination({ dest: 1, sync: false, minLength: 0 });
    batcher = new LineBatcher(sonic);
  }
  const logger = pino(
    {
      level,
      base: null,
      messageKey: 'msg',
      timestamp: cachedIsoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    batcher ?? dest!,
  );
  const out: DestinationStream = batcher ?? dest!;
  return {
    logger,
    writeInfoLine(line: string): void {
      if (logger.isLevelEnabled('info')) out.write(line);
    },
    writeLine(line: string): void {
      out.write(line);
    },
    timeField: () => cachedIsoTime().slice(1),
    flush(): void {
      batcher?.flush();
      try {
        sonic?.flushSync();
      } catch {
        // stdout already gone (closed pipe): nothing left to save.
      }
    },
  };
}
