/**
 * Child processes of the bench: spawned (optionally pinned to a core), waited
 * for over HTTP, stopped — and all killed when the bench exits for any
 * reason: normal end, error, Ctrl-C, SIGTERM.
 */
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { request } from 'node:http';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  hasExited(): boolean;
  /** The last few KiB the child wrote to stderr, for error messages. */
  stderrTail(): string;
}

const live = new Map<number, ChildProcess>();
const tempDirs: string[] = [];
let pinned = false;
let cleanupInstalled = false;

function killAll(): void {
  for (const proc of live.values()) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.length = 0;
}

/** Kill every child and remove temp dirs on exit, error and signals. Idempotent. */
export function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: stopping the bench and its children\n`);
      killAll();
      process.exit(130);
    });
  }
  const fail = (err: unknown): void => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killAll();
    process.exit(1);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
}

/** A temp dir removed when the bench exits. */
export function makeTempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'breakwater-bench-'));
  tempDirs.push(dir);
  return dir;
}

export interface Pinning {
  readonly used: boolean;
  readonly note: string;
}

/**
 * Pin this process (the load generator, every thread) to core 0; children
 * spawned with a `core` are then started under `taskset -c CORE`.
 */
export function setupPinning(want: boolean, cores: number): Pinning {
  if (!want) return { used: false, note: 'not used (PIN=0)' };
  if (cores < 2) return { used: false, note: 'not used (fewer than 2 cores)' };
  const r = spawnSync('taskset', ['-a', '-cp', '0', String(process.pid)], { stdio: 'ignore' });
  if (r.error !== undefined || r.status !== 0) return { used: false, note: 'not used (taskset not available)' };
  pinned = true;
  return { used: true, note: 'load generator + target on core 0, proxy on core 1 (taskset)' };
}

export interface SpawnOptions {
  /** Core to pin to when pinning is in use. */
  readonly core?: 0 | 1;
  /** Where stdout goes: discarded (default) or an open file descriptor. */
  readonly stdout?: 'ignore' | number;
  readonly env?: Readonly<Record<string, string>>;
  /** Keep stdin open as a pipe: the bench's own scripts exit when it closes (child-guard.ts). */
  readonly guardStdin?: boolean;
}

export function spawnChild(name: string, command: string, args: readonly string[], opts: SpawnOptions = {}): Child {
  const [cmd, argv] =
    pinned && opts.core !== undefined ? ['taskset', ['-c', String(opts.core), command, ...args]] : [command, [...args]];
  const stdio: StdioOptions = [opts.guardStdin === true ? 'pipe' : 'ignore', opts.stdout ?? 'ignore', 'pipe'];
  // taskset execs the command, so the pid is the measured process itself.
  const proc = spawn(cmd, argv, { stdio, env: { ...process.env, ...opts.env } });
  if (proc.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const pid = proc.pid;
  live.set(pid, proc);
  let tail = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-4096);
  });
  let done = false;
  const exited = new Promise<number | null>((resolve) => {
    proc.on('exit', (code) => {
      done = true;
      live.delete(pid);
      resolve(code);
    });
    proc.on('error', (err) => {
      tail += `\n${err.message}`;
      done = true;
      live.delete(pid);
      resolve(null);
    });
  });
  return { name, pid, exited, hasExited: () => done, stderrTail: () => tail.trim() };
}

/** SIGTERM, then SIGKILL if the child is still there after `graceMs`. */
export async function stopChild(child: Child, graceMs = 2000): Promise<void> {
  if (child.hasExited()) return;
  const proc = live.get(child.pid);
  proc?.kill('SIGTERM');
  const timer = setTimeout(() => live.get(child.pid)?.kill('SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(timer);
}

export interface Probe {
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Body length the answer must have, so a proxy's own error page does not count as "ready". */
  readonly bodyBytes?: number;
}

/** One GET on a fresh connection: true for a 200 (with the expected body length). */
export function probeOnce(p: Probe, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(p.url, { headers: p.headers, agent: false, timeout: timeoutMs }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve(res.statusCode === 200 && (p.bodyBytes === undefined || bytes === p.bodyBytes)));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** Poll until the probe succeeds; false on timeout or when `child` exits first. */
export async function waitUntilServing(p: Probe, child: Child | null, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child?.hasExited() === true) return false;
    if (await probeOnce(p)) return true;
    await sleep(100);
  }
  return false;
}

/** The path of an executable on PATH or in the sbin dirs (nginx, haproxy live there), or null. */
export function findExecutable(name: string): string | null {
  const dirs = [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return null;
}
