/**
 * For the bench's own Node children (target, baselines): exit when the
 * harness goes away, even if it was killed with SIGKILL and could not clean
 * up. The harness sets BENCH_CHILD=1 and keeps our stdin open as a pipe; its
 * end means the parent is gone. Run by hand, the scripts ignore stdin.
 */
export function exitWhenParentGoes(close: () => void): void {
  const stop = (): void => {
    close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (process.env['BENCH_CHILD'] === '1') {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }
}
