/**
 * A real redis-server for the global rate limit's tests (SPEC §12): started
 * on a free loopback port, no persistence, killed when the test is over.
 * Never a fake Redis. Missing binary: the tests skip locally with a message
 * naming the Debian package, and fail in CI (CI=true), where
 * scripts/interop-deps.sh installs it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, sleep } from './wait.ts';

const BINARY = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p)) ?? null;
const IN_CI = process.env['CI'] === 'true';

/** The `skip` option of a describe() that needs redis-server: a reason locally when it is missing, never in CI. */
export function skipWithoutRedis(): string | false {
  if (BINARY !== null || IN_CI) return false;
  return 'redis-server not installed (Debian package redis-server); run: bash scripts/interop-deps.sh';
}

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** SIGKILL: Redis is gone, its connections reset. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: no persistence). */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: connections stay open, nothing is answered. */
  pause(): void;
  resume(): void;
  /** One command through redis-cli-free RESP, for assertions. */
  command(...args: string[]): Promise<string>;
  close(): Promise<void>;
}

/** `password`: started with --requirepass (then `command` cannot be used: it does not authenticate). */
export async function startRedis(opts: { password?: string } = {}): Promise<TestRedis> {
  if (BINARY === null) throw new Error('redis-server not installed (Debian package redis-server); run: bash scripts/interop-deps.sh');
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'bw-redis-'));
  let child: ChildProcess | null = null;
  const launch = async (): Promise<void> => {
    const c = spawn(
      BINARY,
      [
        ...['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes', '--loglevel', 'warning'],
        ...(opts.password !== undefined ? ['--requirepass', opts.password] : []),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    child = c;
    const end = Date.now() + 10_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`redis-server exited with ${c.exitCode}`);
      const pong = await ping(port);
      if (pong === 'PONG' || pong.startsWith('NOAUTH')) return;
      if (Date.now() > end) throw new Error('redis-server did not answer PING within 10 s');
      await sleep(20);
    }
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = null;
    if (c === null || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGCONT');
    c.kill('SIGKILL');
    await gone;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill: stop,
    restart: launch,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    command: (...args) => resp(port, args),
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function ping(port: number): Promise<string> {
  return resp(port, ['PING']).catch(() => '');
}

/** Sends one command and returns the first reply line without its type byte. */
function resp(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.setTimeout(2000, () => s.destroy(new Error('redis: no answer')));
    s.on('connect', () => s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    s.on('data', (d) => {
      buf += d.toString('utf8');
      const i = buf.indexOf('\r\n');
      if (i < 0) return;
      const first = buf.slice(0, i);
      if (first.startsWith('$') && first !== '$-1') {
        // A bulk string: wait for all of it.
        const n = Number(first.slice(1));
        if (Buffer.byteLength(buf.slice(i + 2)) < n) return;
        s.end();
        resolve(buf.slice(i + 2, i + 2 + n));
        return;
      }
      s.end();
      resolve(first === '$-1' ? '' : first.slice(1));
    });
    s.on('error', reject);
  });
}

/** redis-server --version, for the record. */
export function redisVersion(): string | null {
  if (BINARY === null) return null;
  return spawnSync(BINARY, ['--version'], { encoding: 'utf8' }).stdout.trim();
}
