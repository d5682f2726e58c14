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
  /** Write out whatever is buffered (shutdown). */
  flush(): void;
}

/**
 * `dest`: where lines go; stdout (fd 1, async with a small buffer) unless a
 * stream is given (tests capture lines in memory).
 */
export function createLogger(level: LogLevel, dest?: DestinationStream): LoggerHandle {
  const sonic = dest === undefined ? pino.destination({ dest: 1, sync: false, minLength: 4096 }) : null;
  const logger = pino(
    {
      level,
      base: null,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    sonic ?? dest!,
  );
  return {
    logger,
    flush(): void {
      try {
        sonic?.flushSync();
      } catch {
        // stdout already gone (closed pipe): nothing left to save.
      }
    },
  };
}
