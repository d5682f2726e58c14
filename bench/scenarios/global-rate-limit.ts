/**
 * global-rate-limit: what a rate limit shared through Redis (SPEC §12) costs
 * per request next to the same limit kept locally, in the same run. Three
 * rows: direct, a local upstream rate limit, and the same limit with
 * `scope: global` on a redis-server this scenario starts (loopback, no
 * persistence, pinned beside the load generator). Both limits are sized
 * never to refuse: the point is the machinery's cost, the leases' Redis
 * round trips included. After each global run, Redis's own count of script
 * calls over breakwater's count of requests says how many requests share
 * one round trip.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { get } from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fmtInt, fmtMiB, fmtPct, fmtUsPair, markdownTable, median, progress } from '../lib/report.ts';
import { runRounds, summarize } from '../lib/rounds.ts';
import { breakwaterBuilt } from '../lib/settings.ts';
import { BREAKWATER_SKIP, breakwater, directSubject, ports, type BenchContext, type Subject } from '../lib/subjects.ts';
import type { Ports } from '../lib/breakwater-config.ts';

const REDIS = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p)) ?? null;

function limitConfig(p: Ports, redisPort: number | null): string {
  const global = redisPort !== null;
  return `version: 1
admin: { address: 127.0.0.1:${p.adminPort} }
log: { level: info, access: false }
drain: { delay: 0s, timeout: 1s }
${global ? `redis: { url: redis://127.0.0.1:${redisPort}, timeout: 20ms }\n` : ''}listeners:
  - name: bench
    address: 127.0.0.1:${p.proxyPort}
    upstream: target
upstreams:
  target:
    url: ${p.targetUrl}
    pool: { connections: ${p.connections}, keepAlive: 30s }
    rateLimit: { rate: 10000000/s, burst: 1000000${global ? ', scope: global, key: bench' : ''} }
`;
}

export async function run(ctx: BenchContext): Promise<string> {
  if (!breakwaterBuilt(ctx.settings)) {
    progress(BREAKWATER_SKIP);
    return `_${BREAKWATER_SKIP}: nothing to measure in this scenario._`;
  }
  if (REDIS === null) {
    progress('global-rate-limit: redis-server not installed (apt-get install redis-server) — skipped');
    return '_redis-server not installed (apt-get install redis-server): nothing to measure in this scenario._';
  }
  const redisPort = ctx.settings.targetPort + 100;
  const redis = await startRedis(REDIS, redisPort, ctx.settings.pin);
  try {
    const p = ports(ctx);
    const subjects: Subject[] = [
      directSubject(ctx),
      breakwater(ctx, 'local', 'breakwater, local rate limit', limitConfig(p, null)),
      breakwater(ctx, 'global', 'breakwater, global rate limit (Redis)', limitConfig(p, redisPort)),
    ];
    const perCall: number[] = [];
    let calls0 = 0;
    const results = await runRounds(subjects, ctx.settings, {
      after: async (x) => {
        if (x.id !== 'global') return;
        const calls = (await scriptCalls(redisPort)) - calls0;
        calls0 += calls;
        const requests = await requestsServed(ctx.settings.adminPort);
        if (calls > 0 && requests > 0) perCall.push(requests / calls);
        const errors = await globalErrors(ctx.settings.adminPort);
        progress(`  ${fmtInt(requests)} requests, ${fmtInt(calls)} Redis script calls (${(requests / Math.max(1, calls)).toFixed(0)} requests per call), ${errors} Redis errors`);
      },
    });
    const rows: string[][] = [];
    for (const x of subjects) {
      const m = summarize(results, x.id);
      if (m === null) continue;
      const isDirect = x.id === 'direct';
      rows.push([
        x.label,
        fmtInt(m.rps),
        fmtPct(m.rpsSpread),
        isDirect ? '—' : fmtInt(m.cpuUsPerReq),
        fmtUsPair(m.p50Us, m.p99Us),
        isDirect ? '—' : fmtUsPair(m.addedP50Us, m.addedP99Us, true),
        fmtMiB(m.peakRssBytes),
        x.id === 'global' && perCall.length > 0 ? fmtInt(median(perCall)) : '—',
      ]);
    }
    const r = ctx.settings.latencyRate;
    return markdownTable(
      ['subject', `req/s @${ctx.settings.connections} conns`, 'rounds spread', 'CPU µs/req', `p50 / p99 @${r} req/s`, 'added p50 / p99', 'peak RSS', 'requests per Redis call'],
      rows,
    );
  } finally {
    await redis.stop();
  }
}

async function startRedis(bin: string, port: number, pin: boolean): Promise<{ stop(): Promise<void> }> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'];
  const useTaskset = pin && spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  const child: ChildProcess = useTaskset ? spawn('taskset', ['-c', '0', bin, ...args], { stdio: 'ignore' }) : spawn(bin, args, { stdio: 'ignore' });
  const end = Date.now() + 10_000;
  while ((await resp(port, ['PING']).catch(() => '')) !== '+PONG') {
    if (Date.now() > end || child.exitCode !== null) throw new Error(`redis-server did not start on port ${port}`);
    await sleep(50);
  }
  progress(`redis-server on 127.0.0.1:${port}${useTaskset ? ', pinned to core 0' : ''}`);
  return {
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    },
  };
}

/** EVALSHA + EVAL calls Redis has run since it started. */
async function scriptCalls(port: number): Promise<number> {
  const info = await resp(port, ['INFO', 'commandstats']);
  let n = 0;
  for (const m of info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) n += Number(m[1]);
  return n;
}

/** One command; the whole raw reply as text. */
function resp(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.setTimeout(2000, () => s.destroy(new Error('no answer')));
    s.on('connect', () => s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    s.on('data', (d) => {
      buf += d.toString('utf8');
      const m = /^\$(\d+)\r\n/.exec(buf);
      if (buf.startsWith('+') || buf.startsWith('-') ? buf.includes('\r\n') : m !== null && buf.length >= m[0].length + Number(m[1])) {
        s.end();
        resolve(buf.trim());
      }
    });
    s.on('error', reject);
  });
}

function metricsText(adminPort: number): Promise<string> {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port: adminPort, path: '/metrics', agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(''));
  });
}

async function requestsServed(adminPort: number): Promise<number> {
  let n = 0;
  for (const m of (await metricsText(adminPort)).matchAll(/^breakwater_requests_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

async function globalErrors(adminPort: number): Promise<number> {
  let n = 0;
  for (const m of (await metricsText(adminPort)).matchAll(/^breakwater_global_rate_limit_errors_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}


