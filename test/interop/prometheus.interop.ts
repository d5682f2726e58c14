/**
 * A real Prometheus scraping the built CLI's admin /metrics every second,
 * with deploy/prometheus/breakwater-rules.yaml loaded (group intervals cut to
 * 1s so the recording rules have run by the time we look). Traffic exercises
 * every metric family: retries, 5xx, a breaker opening, bulkhead queueing and
 * rejections, rate limiting, both fallback kinds, no_route, retry budget
 * exhaustion, a good and a bad reload. Then every PromQL query of the Grafana
 * dashboard (deploy/grafana/breakwater-dashboard.json) and every rule
 * expression is evaluated through Prometheus' HTTP API: each must evaluate
 * without error and return data. One test per panel query and per rule, named
 * after it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parser } from '@prometheus-io/lezer-promql';
import * as grpc from '@grpc/grpc-js';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { CertFactory } from '../helpers/certs.ts';
import { request } from '../helpers/http.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { refusedPort, startUpstream, type Upstream } from '../helpers/upstream.ts';
import { freePort, sleep, waitFor } from '../helpers/wait.ts';
import { PEERS, ROOT, requirePeers, run, skipUnless, spawnPeer, startCli, waitHttp, type Cli, type Peerproc } from './lib.ts';

// ================================================================ the queries

interface Panel {
  title?: string;
  targets?: { expr?: string; refId?: string }[];
  panels?: Panel[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
}
interface Rule {
  record?: string;
  alert?: string;
  expr: string;
}
interface RuleFile {
  groups: { name: string; interval?: string; rules: Rule[] }[];
}

const DASHBOARD = JSON.parse(readFileSync(path.join(ROOT, 'deploy', 'grafana', 'breakwater-dashboard.json'), 'utf8')) as Dashboard;
const RULES_TEXT = readFileSync(path.join(ROOT, 'deploy', 'prometheus', 'breakwater-rules.yaml'), 'utf8');
const RULES = parseYaml(RULES_TEXT) as RuleFile;

const allPanels = (ps: readonly Panel[]): Panel[] => ps.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);

/**
 * Grafana's variables as the dashboard opens by default: every query variable
 * is multi-value with "All" = `.*` (the dashboard's allValue), and the interval
 * variables become a window that covers the whole run (it lasts well under a
 * minute, scraped every second).
 */
const VALUES: Record<string, string> = { __rate_interval: '1m', __interval: '15s', __range: '1m', __range_s: '60', __range_ms: '60000' };
function substitute(expr: string): string {
  return expr.replace(/\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)\]\]/g, (_m, a?: string, b?: string, c?: string) => {
    const name = (a ?? b ?? c)!;
    return VALUES[name] ?? '.*';
  });
}

const PANEL_QUERIES = allPanels(DASHBOARD.panels).flatMap((p) =>
  (p.targets ?? []).filter((t) => t.expr !== undefined && t.expr.trim() !== '').map((t) => ({ title: p.title ?? '(untitled)', refId: t.refId ?? '?', expr: t.expr! })),
);
const VARIABLES = DASHBOARD.templating.list
  .filter((v) => v.type === 'query')
  .map((v) => ({ name: v.name, query: typeof v.query === 'string' ? v.query : (v.query?.query ?? '') }));

const COMPARISONS = new Set(['Eql', 'Neq', 'Gtr', 'Lss', 'Gte', 'Lte']);

/**
 * An alert's expression with its thresholds taken out: every comparison of a
 * vector with a number (`x > 0.05`, `up == 0`) becomes its vector side, and
 * `absent(x)` becomes `x`. A healthy run legitimately fires no alert, so the
 * alert's own expression may be empty; what it compares must still exist, or
 * the alert could never fire (a renamed metric, a wrong label).
 */
function withoutThresholds(expr: string): string {
  for (let round = 0; round < 50; round++) {
    const tree = parser.parse(expr);
    let edit: { from: number; to: number; text: string } | null = null;
    tree.iterate({
      enter: (n) => {
        if (edit !== null) return false;
        const node = n.node;
        if (n.name === 'BinaryExpr') {
          const op = node.firstChild?.nextSibling;
          const first = node.firstChild;
          const last = node.lastChild;
          if (op && first && last && COMPARISONS.has(op.name) && node.getChild('BoolModifier') === null) {
            const keep = last.name === 'NumberDurationLiteral' ? first : first.name === 'NumberDurationLiteral' ? last : null;
            if (keep !== null) edit = { from: n.from, to: n.to, text: `(${expr.slice(keep.from, keep.to)})` };
          }
        } else if (n.name === 'FunctionCall' && node.getChild('FunctionIdentifier') !== null) {
          const fid = node.getChild('FunctionIdentifier')!;
          const body = node.getChild('FunctionCallBody');
          if (expr.slice(fid.from, fid.to) === 'absent' && body !== null) edit = { from: n.from, to: n.to, text: expr.slice(body.from, body.to) };
        }
        return edit === null ? undefined : false;
      },
    });
    if (edit === null) return expr;
    const e: { from: number; to: number; text: string } = edit;
    expr = expr.slice(0, e.from) + e.text + expr.slice(e.to);
  }
  return expr;
}

// ================================================================ Prometheus

interface QueryResult {
  status: 'success' | 'error';
  error?: string;
  data?: { resultType: string; result: unknown };
}

async function query(base: string, expr: string): Promise<QueryResult> {
  const r = await request(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`, { timeoutMs: 15_000 });
  try {
    return JSON.parse(r.body) as QueryResult;
  } catch {
    return { status: 'error', error: `HTTP ${r.status}: ${r.body.slice(0, 300)}` };
  }
}

const hasData = (q: QueryResult): boolean =>
  q.status === 'success' && (q.data!.resultType === 'scalar' || q.data!.resultType === 'string' || (q.data!.result as unknown[]).length > 0);

async function mustHaveData(base: string, expr: string, what: string): Promise<void> {
  const q = await query(base, expr);
  if (q.status !== 'success') assert.fail(`${what}: Prometheus could not evaluate it: ${q.error}\n  ${expr}`);
  if (!hasData(q)) assert.fail(`${what}: no data\n  ${expr}`);
}

// ================================================================ the run

const BREAKWATER = (o: Record<string, string>, limitedRate: string): string => `
version: 1
admin: { address: 127.0.0.1:0 }
log: { access: false }
redis: { url: "${o['redis']}", timeout: 50ms }
# A collector that is not there: spans are dropped and counted (trace_spans_dropped_total),
# and Prometheus scrapes OpenMetrics (tracing on), exemplars included.
tracing: { endpoint: "${o['refused']}/v1/traces", queueSize: 4 }
listeners:
  - { name: secure, address: 127.0.0.1:0, upstream: secure }
  - { name: ok, address: 127.0.0.1:0, upstream: ok }
  - { name: flaky, address: 127.0.0.1:0, upstream: flaky }
  - { name: stingy, address: 127.0.0.1:0, upstream: stingy }
  - { name: broken, address: 127.0.0.1:0, upstream: broken }
  - { name: slow, address: 127.0.0.1:0, upstream: slow }
  - { name: limited, address: 127.0.0.1:0, upstream: limited }
  - { name: degraded, address: 127.0.0.1:0, upstream: degraded }
  - { name: rerouted, address: 127.0.0.1:0, upstream: rerouted }
  - { name: grpc, address: 127.0.0.1:0, upstream: grpc }
  - name: spooled
    address: 127.0.0.1:0
    routes:
      - { name: spooled, upstream: gone, deadLetter: { path: "${o['spool']}", maxBodySize: 16 } }
  - { name: cached, address: 127.0.0.1:0, routes: [{ name: cached, upstream: cachy, cache: { maxEntries: 1 } }] }
  - { name: shared, address: 127.0.0.1:0, upstream: shared }
  - name: egress
    address: 127.0.0.1:0
    routes:
      - match: { host: ok.test }
        upstream: ok
      - match: { host: localhost }
        upstream: secure
        allowConnect: true
upstreams:
  secure:
    url: "${o['secure']}"
    tls: { ca: "${o['ca']}", cert: "${o['clientCert']}", key: "${o['clientKey']}" }
  ok: { url: "${o['ok']}" }
  flaky:
    url: "${o['flaky']}"
    retry: { maxRetries: 2, on: [503], backoff: { base: 1ms, max: 5ms } }
  stingy:
    url: "${o['unavailable']}"
    retry: { maxRetries: 2, on: [503], backoff: { base: 1ms, max: 2ms }, budget: { ratio: 0.01, minPerSecond: 0.1, window: 10s } }
  broken:
    url: "${o['failing']}"
    retry: { maxRetries: 0 }
    circuitBreaker: { consecutiveFailures: 3, openDuration: 5m }
  slow:
    url: "${o['slow']}"
    bulkhead: { maxConcurrent: 1, maxQueue: 1, queueTimeout: 100ms }
  limited:
    url: "${o['ok']}"
    rateLimit: { rate: ${limitedRate}, burst: 1 }
  degraded:
    url: "${o['refused']}"
    retry: { maxRetries: 0 }
    fallback: { response: { status: 200, body: degraded }, on: [connect-failure] }
  rerouted:
    url: "${o['refused']}"
    retry: { maxRetries: 0 }
    fallback: { upstream: ok, on: [connect-failure] }
  gone:
    url: "${o['refused']}"
    retry: { maxRetries: 0 }
  shared:
    url: "${o['ok']}"
    rateLimit: { rate: 100/s, scope: global, key: interop-shared }
  grpc:
    url: "${o['grpc']}"
    protocol: h2c
    retry: { maxRetries: 0 }
  cachy:
    url: "${o['onceOnly']}"
    retry: { backoff: { base: 1ms, max: 2ms } }
`;

/** One unary method on raw bytes: a gRPC call whose messages are opaque. */
const ECHO: grpc.ServiceDefinition = {
  Call: {
    path: '/interop.Echo/Call',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

describe('a real Prometheus scraping breakwater', { skip: skipUnless(PEERS.prometheus, PEERS.curl, PEERS.redis) }, () => {
  const ups: Upstream[] = [];
  let cli: Cli | undefined;
  let prom: Peerproc | undefined;
  let promUrl = '';
  let dir = '';
  let certs: CertFactory | undefined;
  let secure: https.Server | undefined;
  let origins: Record<string, string> = {};
  let grpcServer: grpc.Server | undefined;
  let grpcClient: grpc.Client | undefined;
  let redis: TestRedis | undefined;

  /** One round of traffic that touches every metric family. */
  async function traffic(): Promise<void> {
    const get = (l: string, p = '/', headers?: Record<string, string>) => request(`${cli!.url(l)}${p}`, { headers });
    for (let i = 0; i < 5; i++) assert.equal((await get('ok', `/r${i}`)).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await get('flaky')).status, 200, 'a retried 503 ends in a 200');
    for (let i = 0; i < 4; i++) assert.equal((await get('stingy')).status, 503);
    for (let i = 0; i < 5; i++) assert.ok([500, 503].includes((await get('broken')).status), 'failing, then circuit_open');
    const slow = await Promise.all([0, 1, 2, 3].map(() => get('slow')));
    assert.ok(slow.some((r) => r.status === 503 && r.headers['x-breakwater-error'] === 'bulkhead_full'), 'the bulkhead rejected one');
    const limited = [await get('limited'), await get('limited'), await get('limited')];
    assert.ok(limited.some((r) => r.status === 429), 'the rate limit refused one');
    assert.equal((await get('degraded')).body, 'degraded');
    assert.equal((await get('rerouted')).status, 200);
    assert.equal((await get('egress', '/', { host: 'nowhere.test' })).status, 404);
    // TLS to an upstream with a private CA and a client certificate…
    assert.equal((await get('secure')).body, 'secure');
    // …and an HTTPS_PROXY tunnel to it (CONNECT localhost:PORT, TLS end to end).
    const tunnelled = await run('curl', ['-sS', '-x', cli!.url('egress'), '--cacert', origins['ca']!, `${origins['secure']}/via-tunnel`]);
    assert.equal(tunnelled.stdout, 'secure', tunnelled.stderr);
    // gRPC through an h2c listener to an h2c upstream: an ok call and a failed one (grpc_responses_total).
    const call = (body: string): Promise<grpc.ServiceError | null> =>
      new Promise((resolve) => {
        const c = grpcClient as grpc.Client & { Call: (b: Buffer, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void };
        c.Call(Buffer.from(body), { deadline: Date.now() + 10_000 }, (err) => resolve(err));
      });
    for (let i = 0; i < 3; i++) assert.equal(await call('ok'), null);
    assert.equal((await call('fail'))?.code, grpc.status.UNAVAILABLE);
    // Dead letters (SPEC §11.1): POSTs to a dead upstream are spooled, a
    // replay fails (it is still dead), a body over maxBodySize is dropped.
    for (let i = 0; i < 2; i++) {
      const r = await request(`${cli!.url('spooled')}/orders`, { method: 'POST', body: `order ${i}` });
      assert.equal(typeof r.headers['x-breakwater-dead-letter'], 'string', 'spooled');
    }
    await request(`${cli!.url('spooled')}/orders`, { method: 'POST', body: 'x'.repeat(64) });
    assert.equal((await request(`${cli!.adminUrl}/dead-letters/replay`, { method: 'POST' })).status, 200);
    // The stale-if-error cache (maxEntries 1): b evicts a, then b's failure is answered from the cache.
    cacheRound++;
    assert.equal((await get('cached', `/${cacheRound}/a`)).status, 200);
    assert.equal((await get('cached', `/${cacheRound}/b`)).status, 200);
    assert.equal((await get('cached', `/${cacheRound}/b`)).headers['x-breakwater-fallback'], 'cache');
    // A global rate limit on a real Redis (SPEC §12): tokens leased from it, or, once it is gone, the local share.
    for (let i = 0; i < 3; i++) assert.equal((await get('shared')).status, 200);
  }
  let cacheRound = 0;

  before(async () => {
    requirePeers(PEERS.prometheus, PEERS.curl, PEERS.redis);
    redis = await startRedis();
    dir = mkdtempSync(path.join(tmpdir(), 'bw-interop-prom-'));
    const start = async (s: Parameters<typeof startUpstream>[0]) => {
      const u = await startUpstream(s);
      ups.push(u);
      return u.origin;
    };
    // An https upstream behind a private CA, reached with a client
    // certificate whose files are rotated between the two rounds.
    certs = new CertFactory();
    const ca = certs.ca('interop-ca');
    const server = certs.leaf('localhost', ca, ['DNS:localhost', 'IP:127.0.0.1']);
    const client = certs.leaf('interop-client', ca);
    writeFileSync(path.join(dir, 'client.crt'), client.cert);
    writeFileSync(path.join(dir, 'client.key'), client.key);
    secure = https.createServer({ key: server.key, cert: server.cert }, (req, res) => {
      req.resume();
      res.end('secure');
    });
    secure.listen(0, '127.0.0.1');
    await once(secure, 'listening');
    grpcServer = new grpc.Server();
    grpcServer.addService(ECHO, {
      Call(c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) {
        if (c.request.toString() === 'fail') cb({ code: grpc.status.UNAVAILABLE, details: 'asked to fail' });
        else cb(null, c.request);
      },
    });
    const grpcPort = await new Promise<number>((resolve, reject) =>
      grpcServer!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    let flakyN = 0;
    const seen = new Set<string>();
    origins = {
      // Each URL answers once (a storable 200), then 503 for good.
      onceOnly: await start((req) => (seen.has(req.url) ? { status: 503 } : (seen.add(req.url), { status: 200, body: 'once', headers: { 'cache-control': 'max-age=0' } }))),
      grpc: `http://127.0.0.1:${grpcPort}`,
      secure: `https://localhost:${(secure.address() as { port: number }).port}`,
      ca: ca.certFile,
      clientCert: path.join(dir, 'client.crt'),
      clientKey: path.join(dir, 'client.key'),
      ok: await start({ status: 200, body: 'ok' }),
      flaky: await start(() => (flakyN++ % 2 === 0 ? { status: 503 } : { status: 200, body: 'ok' })),
      unavailable: await start({ status: 503 }),
      failing: await start({ status: 500 }),
      slow: await start({ status: 200, body: 'slow', delayMs: 300 }),
      refused: `http://127.0.0.1:${await refusedPort()}`,
      spool: path.join(dir, 'spool.db'),
      redis: redis.url,
    };
    cli = await startCli(BREAKWATER(origins, '1/s'));
    const Echo = grpc.makeGenericClientConstructor(ECHO, 'Echo');
    grpcClient = new Echo(new URL(cli.url('grpc')).host, grpc.credentials.createInsecure(), { 'grpc.enable_retries': 0 });

    const rules = parseYaml(RULES_TEXT) as RuleFile;
    for (const g of rules.groups) g.interval = '1s';
    writeFileSync(path.join(dir, 'rules.yaml'), stringifyYaml(rules));
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      stringifyYaml({
        global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
        rule_files: [path.join(dir, 'rules.yaml')],
        scrape_configs: [{ job_name: 'breakwater', static_configs: [{ targets: [new URL(cli.adminUrl).host] }] }],
      }),
    );
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawnPeer('prometheus', [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // Keeps the exemplars breakwater sends in OpenMetrics scrapes (tracing is on).
      '--enable-feature=exemplar-storage',
      '--log.level=warn',
    ]);
    await waitHttp(`${promUrl}/-/ready`, 'prometheus', prom, 30_000, 200);
    await waitFor('Prometheus to scrape breakwater', async () => hasData(await query(promUrl, 'up{job="breakwater"} == 1')), 20_000);

    // Two rounds a few scrapes apart, so rates see increases, with reloads in between.
    await traffic();
    await sleep(2500);
    // Redis goes away: the second round runs the global limit on its fallback (errors, fallback tokens, the gauge at 1).
    await redis.kill();
    cli.proc.child.stdout!.resume();
    // Rotate the client certificate on disk, as a Secret update would (new files renamed over the old).
    const next = certs.leaf('interop-client-2', ca);
    writeFileSync(path.join(dir, 'client.key.new'), next.key);
    writeFileSync(path.join(dir, 'client.crt.new'), next.cert);
    renameSync(path.join(dir, 'client.key.new'), path.join(dir, 'client.key'));
    renameSync(path.join(dir, 'client.crt.new'), path.join(dir, 'client.crt'));
    await waitFor(
      'breakwater to pick up the rotated client certificate',
      async () => /breakwater_tls_reloads_total\{[^}]*result="success"/.test((await request(`${cli!.adminUrl}/metrics`)).body),
      15_000,
    );
    writeFileSync(cli.file, BREAKWATER(origins, '2/s'));
    const good = await request(`${cli.adminUrl}/reload`, { method: 'POST' });
    assert.equal(good.status, 200, `a valid reload: ${good.body}`);
    writeFileSync(cli.file, `${BREAKWATER(origins, '2/s')}\nunknownKey: true\n`);
    const bad = await request(`${cli.adminUrl}/reload`, { method: 'POST' });
    assert.equal(bad.status, 400, `an invalid reload: ${bad.body}`);
    await traffic();
    const done = Date.now() / 1000;
    // A few scrapes and rule evaluations after the last request.
    await waitFor(
      'three more scrapes and rule evaluations',
      async () => {
        const q = await query(promUrl, 'timestamp(up{job="breakwater"})');
        const scraped = hasData(q) && Number((q.data!.result as { value: [number, string] }[])[0]!.value[1]) > done + 3;
        const r = JSON.parse((await request(`${promUrl}/api/v1/rules`)).body) as { data: { groups: { lastEvaluation: string }[] } };
        return scraped && r.data.groups.every((g) => Date.parse(g.lastEvaluation) / 1000 > done + 3);
      },
      20_000,
    );
  });

  after(async () => {
    await prom?.stop('SIGTERM');
    grpcClient?.close();
    await cli?.close();
    grpcServer?.forceShutdown();
    for (const u of ups) await u.close();
    secure?.closeAllConnections();
    secure?.close();
    certs?.close();
    await redis?.close();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('scrapes breakwater: the target is up and its last scrape had no error', async () => {
    const r = JSON.parse((await request(`${promUrl}/api/v1/targets`)).body) as { data: { activeTargets: { health: string; lastError: string }[] } };
    const t = r.data.activeTargets;
    assert.equal(t.length, 1);
    assert.equal(t[0]!.health, 'up', t[0]!.lastError);
  });

  it('stores exemplars: trace ids on request_duration_seconds buckets, from breakwater’s OpenMetrics scrape', async () => {
    const end = Date.now() / 1000;
    const r = await request(
      `${promUrl}/api/v1/query_exemplars?query=${encodeURIComponent('breakwater_request_duration_seconds_bucket')}&start=${end - 600}&end=${end + 60}`,
    );
    const body = JSON.parse(r.body) as { status: string; data: { seriesLabels: Record<string, string>; exemplars: { labels: Record<string, string> }[] }[] };
    assert.equal(body.status, 'success', r.body);
    const exemplars = body.data.flatMap((d) => d.exemplars);
    assert.ok(exemplars.length > 0, `no exemplars stored: ${r.body.slice(0, 300)}`);
    for (const e of exemplars) assert.match(e.labels['trace_id'] ?? '', /^[0-9a-f]{32}$/);
  });

  it('loads every rule of deploy/prometheus/breakwater-rules.yaml and evaluates each without error', async () => {
    const r = JSON.parse((await request(`${promUrl}/api/v1/rules`)).body) as {
      data: { groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] };
    };
    const loaded = r.data.groups.flatMap((g) => g.rules);
    const expected = RULES.groups.flatMap((g) => g.rules.map((x) => x.record ?? x.alert));
    // Prometheus lists the groups in its own order.
    assert.deepEqual(loaded.map((x) => x.name).sort(), [...expected].sort());
    const unhealthy = loaded.filter((x) => x.health !== 'ok');
    assert.deepEqual(unhealthy.map((x) => `${x.name}: ${x.health} ${x.lastError ?? ''}`), []);
  });

  for (const v of VARIABLES) {
    it(`dashboard variable $${v.name} lists values: ${v.query}`, async () => {
      const m = /^label_values\((.+),\s*([A-Za-z_]\w*)\s*\)$/s.exec(v.query.trim());
      assert.ok(m !== null, `expected label_values(selector, label), got ${v.query}`);
      // What Grafana asks: the label's values over the series the selector matches.
      await mustHaveData(promUrl, `group by (${m[2]}) (${substitute(m[1]!)})`, `variable $${v.name}`);
    });
  }

  for (const p of PANEL_QUERIES) {
    it(`dashboard panel "${p.title}" query ${p.refId} returns data`, async () => {
      await mustHaveData(promUrl, substitute(p.expr), `panel "${p.title}" ${p.refId}`);
    });
  }

  for (const g of RULES.groups) {
    for (const rule of g.rules) {
      if (rule.record !== undefined) {
        it(`recording rule ${rule.record} returns data, and so does the series it records`, async () => {
          await mustHaveData(promUrl, rule.expr, `rule ${rule.record}`);
          await mustHaveData(promUrl, rule.record!, `recorded series ${rule.record}`);
        });
      } else {
        it(`alert ${rule.alert} evaluates, and what it compares returns data`, async () => {
          const q = await query(promUrl, rule.expr);
          assert.equal(q.status, 'success', `alert ${rule.alert}: ${q.error}\n  ${rule.expr}`);
          // A healthy run need not fire the alert; then its thresholds come off (see withoutThresholds).
          if (!hasData(q)) await mustHaveData(promUrl, withoutThresholds(rule.expr), `alert ${rule.alert} without its thresholds`);
        });
      }
    }
  }
});
