/**
 * Every knob of the bench, read once from the environment. Defaults give the
 * published table; DURATION=3 ROUNDS=1 gives a smoke run.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

export interface Settings {
  /** Seconds per measurement (throughput run, then latency run). */
  readonly durationS: number;
  /** Seconds of unmeasured load before each throughput run (JIT, pools, caches). */
  readonly warmupS: number;
  readonly rounds: number;
  /** Concurrent client connections of the throughput run. */
  readonly connections: number;
  /** Requests per second of the fixed-rate latency run. */
  readonly latencyRate: number;
  readonly targetPort: number;
  readonly proxyPort: number;
  readonly adminPort: number;
  /** Pin load generator + target to core 0 and the proxy to core 1 when taskset exists. */
  readonly pin: boolean;
  /** The upstream: `node` (bench/target.ts, default) or `nginx` (faster, when installed). */
  readonly target: 'node' | 'nginx';
  /** Subject ids to run (direct always runs); null = all. */
  readonly only: ReadonlySet<string> | null;
  /** Try `apt-get install nginx-light haproxy` when missing (root only). */
  readonly install: boolean;
  readonly benchDir: string;
  readonly breakwaterCli: string;
}

function seconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw.replace(/s$/, ''));
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number of seconds, got "${raw}"`);
  return n;
}

function integer(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

export function readSettings(): Settings {
  const benchDir = dirname(dirname(fileURLToPath(import.meta.url)));
  const target = process.env['TARGET'] ?? 'node';
  if (target !== 'node' && target !== 'nginx') throw new Error(`TARGET must be node or nginx, got "${target}"`);
  const only = process.env['ONLY'];
  const cli = process.env['BREAKWATER_CLI'] ?? join(benchDir, '..', 'dist', 'cli.js');
  return {
    durationS: seconds('DURATION', 10),
    warmupS: seconds('WARMUP', 2),
    rounds: integer('ROUNDS', 3),
    connections: integer('CONNECTIONS', 32),
    latencyRate: integer('LATENCY_RATE', 1000),
    targetPort: integer('TARGET_PORT', 18080),
    proxyPort: integer('PROXY_PORT', 18081),
    adminPort: integer('ADMIN_PORT', 19901),
    pin: process.env['PIN'] !== '0',
    target,
    only: only === undefined || only === '' ? null : new Set(only.split(',').map((s) => s.trim())),
    install: process.env['BENCH_INSTALL'] === '1',
    benchDir,
    breakwaterCli: resolve(cli),
  };
}

export function breakwaterBuilt(s: Settings): boolean {
  return existsSync(s.breakwaterCli);
}
