/**
 * The global rate limit (SPEC §12) on the other Redis set-ups the
 * `redis` block offers, each a real redis-server: a three-master Cluster
 * (made with `redis-cli --cluster create`; a limit's two keys share one
 * hash slot), TLS with a private CA (and a wrong CA, refused), and a master
 * found through a Sentinel. Two in-process proxies
 * share one bucket through each.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { freePort, sleep, waitFor } from '../helpers/wait.ts';
import { PEERS, requirePeers, run, skipUnless, which } from './lib.ts';

const children: ChildProcess[] = [];
let dir = '';

function redisServer(args: string[]): ChildProcess {
  const c = spawn(which('redis-server')!, args, { cwd: dir, stdio: 'ignore' });
  children.push(c);
  return c;
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const r = await run(which('redis-cli')!, ['-p', String(port), ...args], { timeoutMs: 30_000 });
  return r.stdout + r.stderr;
}

async function ready(port: number): Promise<void> {
  await waitFor(`redis on ${port}`, async () => (await cli(port, 'PING')).includes('PONG'), 15_000);
}

const config = (origin: string, redisBlock: string): string => `
version: 1
admin: { address: 127.0.0.1:0 }
redis: ${redisBlock}
listeners:
  - { name: main, address: 127.0.0.1:0, upstream: api }
upstreams:
  api:
    url: ${origin}
    retry: { maxRetries: 0 }
    rateLimit: { rate: 20/s, burst: 5, scope: global, key: topo }
`;

/** 80 requests 10 ms apart over two proxies: admitted ≈ burst + rate × time, never the offered 100/s. */
async function shared(a: TestProxy, b: TestProxy, up: Upstream): Promise<void> {
  const agent = new http.Agent({ keepAlive: true });
  try {
    const t0 = performance.now();
    const out: Promise<number>[] = [];
    for (let i = 0; i < 80; i++) {
      out.push(request(`${(i % 2 === 0 ? a : b).url('main')}/`, { agent }).then((r) => r.status));
      await sleep(10);
    }
    const statuses = await Promise.all(out);
    const seconds = (performance.now() - t0) / 1000;
    const ok = statuses.filter((s) => s === 200).length;
    assert.equal(ok + statuses.filter((s) => s === 429).length, 80);
    assert.equal(up.requests.length, ok);
    const allowed = 5 + 20 * seconds;
    assert.ok(ok <= allowed + 6 && ok >= allowed * 0.6, `admitted ${ok} in ${seconds.toFixed(2)} s; the limit allows ${allowed.toFixed(1)}`);
    for (const p of [a, b]) {
      assert.ok(!p.logs.some((l) => l.msg === 'global_rate_limit_fallback' && l['reason'] !== 'timeout'), JSON.stringify(p.logs.filter((l) => String(l.msg).includes('redis') || String(l.msg).startsWith('global'))));
      assert.match((await request(`${p.adminUrl}/metrics`)).body, /breakwater_global_rate_limit_tokens_total\{limit="topo",source="redis"\} [1-9]/);
    }
  } finally {
    agent.destroy();
  }
}

describe('global rate limit on Redis Cluster, over TLS and through Sentinel (SPEC §12)', { skip: skipUnless(PEERS.redis) }, () => {
  let up: Upstream;
  const proxies: TestProxy[] = [];

  before(async () => {
    requirePeers(PEERS.redis);
    dir = mkdtempSync(path.join(tmpdir(), 'bw-redis-topo-'));
    up = await startUpstream();
  });

  after(async () => {
    for (const p of proxies) await p.close();
    await up?.close();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await sleep(100);
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('Cluster: three masters, two processes share one bucket', async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    for (const p of ports) {
      redisServer([
        ...['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        ...['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${p}.conf`, '--cluster-node-timeout', '2000'],
      ]);
    }
    for (const p of ports) await ready(p);
    const made = await cli(ports[0]!, '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes');
    assert.match(made, /All 16384 slots covered/, made);
    await waitFor('cluster_state:ok', async () => (await cli(ports[0]!, 'CLUSTER', 'INFO')).includes('cluster_state:ok'), 20_000);
    up.reset();
    const block = `{ cluster: { nodes: [${ports.map((p) => `"redis://127.0.0.1:${p}"`).join(', ')}] } }`;
    const a = await startProxy(config(up.origin, block));
    const b = await startProxy(config(up.origin, block));
    proxies.push(a, b);
    await waitFor('both connected', () => [a, b].every((p) => p.logs.some((l) => l.msg === 'redis_connected')), 15_000);
    await shared(a, b, up);
  });

  it('TLS: rediss:// with a private CA (certificates verified), two processes share one bucket', async () => {
    const { CertFactory, opensslMissing } = await import('../helpers/certs.ts');
    const missing = opensslMissing();
    if (missing !== null) assert.fail(missing);
    const certs = new CertFactory();
    try {
      const ca = certs.ca('redis-ca');
      const server = certs.leaf('localhost', ca, ['DNS:localhost', 'IP:127.0.0.1']);
      const port = await freePort();
      redisServer([
        ...['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        ...['--tls-cert-file', server.certFile, '--tls-key-file', server.keyFile, '--tls-ca-cert-file', ca.certFile, '--tls-auth-clients', 'no'],
      ]);
      await waitFor(
        'redis over TLS',
        async () => (await run(which('redis-cli')!, ['--tls', '--cacert', ca.certFile, '-h', 'localhost', '-p', String(port), 'PING'])).stdout.includes('PONG'),
        15_000,
      );
      up.reset();
      const block = `{ url: "rediss://localhost:${port}", tls: { ca: "${ca.certFile}" } }`;
      const a = await startProxy(config(up.origin, block));
      const b = await startProxy(config(up.origin, block));
      proxies.push(a, b);
      await waitFor('both connected', () => [a, b].every((p) => p.logs.some((l) => l.msg === 'redis_connected')), 15_000);
      await shared(a, b, up);
      // A CA that did not sign the server's certificate: never connected, the limit runs on its fallback.
      const other = certs.ca('other-ca');
      const c = await startProxy(config(up.origin, `{ url: "rediss://localhost:${port}", tls: { ca: "${other.certFile}" } }`));
      proxies.push(c);
      await request(`${c.url('main')}/`);
      await waitFor('fallback on an unverified server', () => c.logs.some((l) => l.msg === 'global_rate_limit_fallback'), 15_000);
      assert.ok(!c.logs.some((l) => l.msg === 'redis_connected'));
    } finally {
      certs.close();
    }
  });

  it('Sentinel: the master is asked of a Sentinel; two processes share one bucket', async () => {
    const master = await freePort();
    const sentinel = await freePort();
    redisServer(['--port', String(master), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
    await ready(master);
    const conf = path.join(dir, 'sentinel.conf');
    writeFileSync(conf, `port ${sentinel}\nbind 127.0.0.1\nsentinel monitor bwmaster 127.0.0.1 ${master} 1\nsentinel down-after-milliseconds bwmaster 2000\n`);
    redisServer([conf, '--sentinel']);
    await ready(sentinel);
    await waitFor('the sentinel knows the master', async () => (await cli(sentinel, 'SENTINEL', 'get-master-addr-by-name', 'bwmaster')).includes(String(master)), 15_000);
    up.reset();
    const block = `{ sentinel: { name: bwmaster, sentinels: ["127.0.0.1:${sentinel}"] } }`;
    const a = await startProxy(config(up.origin, block));
    const b = await startProxy(config(up.origin, block));
    proxies.push(a, b);
    await waitFor('both connected', () => [a, b].every((p) => p.logs.some((l) => l.msg === 'redis_connected')), 15_000);
    await shared(a, b, up);
    // The bucket lives on the master the Sentinel named.
    assert.match(await cli(master, 'EXISTS', 'breakwater:{topo}:bucket'), /1/);
  });
});
