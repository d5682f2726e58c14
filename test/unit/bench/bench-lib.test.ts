/**
 * The bench's own parsing: the "as shipped" row must run with exactly the
 * image's memory settings, the memory columns must read the right /proc
 * fields, and the profile summary must attribute samples to the right
 * component and keep every sample in the folded stacks.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onThisMachine, shippedEnv } from '../../../bench/lib/subjects.ts';
import { kbField, pssBytes, watchMemoryPeaks } from '../../../bench/lib/proc-stats.ts';
import { difference, perRequest, summarizeProfile } from '../../../bench/lib/cpu-profile.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe('bench: shippedEnv', () => {
  it('reads NODE_OPTIONS and MALLOC_* from the Dockerfile that builds the image', () => {
    const env = shippedEnv(path.join(root, 'Dockerfile'));
    assert.match(env['NODE_OPTIONS'] ?? '', /--max-semi-space-size=\d+/);
    assert.equal(env['MALLOC_ARENA_MAX'], '1');
    assert.match(env['LD_PRELOAD'] ?? '', /\/libjemalloc\.so\.2$/);
    assert.match(env['MALLOC_CONF'] ?? '', /\bnarenas:1\b/);
    assert.equal(env['BREAKWATER_CONFIG'], undefined, 'only memory settings are taken');
  });

  it("runs the image's preloaded allocator from this machine's library directory, or without it and says so", () => {
    const image = { NODE_OPTIONS: '--a', LD_PRELOAD: '/usr/local/lib/libjemalloc.so.2', MALLOC_CONF: 'narenas:1' };
    const local = process.arch === 'arm64' ? '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2' : '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
    assert.deepEqual(onThisMachine(image, (f) => f === image.LD_PRELOAD), { env: image, note: null });
    assert.deepEqual(onThisMachine(image, (f) => f === local), { env: { ...image, LD_PRELOAD: local }, note: null });
    const missing = onThisMachine(image, () => false);
    assert.deepEqual(missing.env, { NODE_OPTIONS: '--a', MALLOC_CONF: 'narenas:1' });
    assert.match(missing.note ?? '', /libjemalloc2/);
    assert.deepEqual(onThisMachine({ NODE_OPTIONS: '--a' }, () => false), { env: { NODE_OPTIONS: '--a' }, note: null });
  });

  it('joins continuation lines, skips comments and unquotes values', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bw-bench-'));
    try {
      const file = path.join(dir, 'Dockerfile');
      writeFileSync(file, 'FROM x\n# ENV NODE_OPTIONS="--commented"\nENV A=1 \\\n    NODE_OPTIONS="--a --b" \\\n    MALLOC_TRIM_THRESHOLD_=131072\n');
      assert.deepEqual(shippedEnv(file), { NODE_OPTIONS: '--a --b', MALLOC_TRIM_THRESHOLD_: '131072' });
      assert.deepEqual(shippedEnv(path.join(dir, 'missing')), {});
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bench: memory from /proc', () => {
  const rollup = [
    '55d0c0a1e000-7ffd5e1f3000 ---p 00000000 00:00 0                          [rollup]',
    'Rss:              112640 kB',
    'Pss:               71234 kB',
    'Pss_Dirty:         55000 kB',
    'Pss_Anon:          54321 kB',
    'Pss_File:          16913 kB',
    'Shared_Clean:      52000 kB',
  ].join('\n');

  it('reads Pss from smaps_rollup in bytes, not one of the Pss_* fields after it', () => {
    assert.equal(kbField(rollup, 'Pss'), 71234 * 1024);
    assert.equal(kbField(rollup, 'Pss_Anon'), 54321 * 1024);
    assert.equal(kbField(rollup, 'Rss'), 112640 * 1024);
  });

  it('reads RssAnon and VmHWM from a status text, and null for a field that is not there', () => {
    const status = 'Name:\tnode\nVmHWM:\t  118212 kB\nVmRSS:\t  101000 kB\nRssAnon:\t   55120 kB\nRssFile:\t   45880 kB\n';
    assert.equal(kbField(status, 'RssAnon'), 55120 * 1024);
    assert.equal(kbField(status, 'VmHWM'), 118212 * 1024);
    assert.equal(kbField(status, 'Pss'), null);
  });

  it('samples a live process: PSS is positive and at most its resident set; a gone process reads as null', () => {
    const pss = pssBytes(process.pid);
    assert.ok(pss !== null && pss > 0);
    assert.ok(pss <= process.memoryUsage().rss + 4 * 2 ** 20);
    const watch = watchMemoryPeaks(process.pid, 10_000);
    try {
      const peaks = watch.peaks();
      assert.ok(peaks.privateBytes !== null && peaks.privateBytes > 0);
      assert.ok(peaks.pssBytes !== null && peaks.pssBytes >= peaks.privateBytes / 2);
    } finally {
      watch.stop();
    }
    assert.equal(pssBytes(2 ** 22 + 1), null, 'no such pid (above pid_max\'s default)');
  });
});

describe('bench: summarizeProfile', () => {
  it('attributes self time by component and folds every sample into a root-to-leaf stack', () => {
    const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber });
    const profile = {
      nodes: [
        { id: 1, callFrame: frame('(root)'), children: [2, 3, 6] },
        { id: 2, callFrame: frame('(idle)') },
        { id: 3, callFrame: frame('handle', 'file:///app/dist/http/server.js', 9), children: [4, 5] },
        { id: 4, callFrame: frame('dispatch', 'file:///app/node_modules/undici/lib/dispatcher/client.js', 99) },
        { id: 5, callFrame: frame('writev') },
        { id: 6, callFrame: frame('asJson', 'file:///app/node_modules/pino/lib/tools.js', 1) },
      ],
      samples: [2, 2, 2, 2, 3, 4, 4, 5, 5, 6],
    };
    const s = summarizeProfile(profile);
    assert.equal(s.total, 10);
    assert.deepEqual(Object.fromEntries(s.byComponent), {
      'idle (waiting for the network)': 4,
      undici: 2,
      'socket writes (syscalls)': 2,
      breakwater: 1,
      'pino (access log)': 1,
    });
    assert.ok(!s.top.some(([, c]) => c.startsWith('idle')), 'idle is not a function to optimise');
    const folded = s.folded.trim().split('\n');
    assert.equal(folded.reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0), 10);
    assert.ok(folded.includes('handle http/server.js:10;writev 2'));
  });
});

describe('bench: comparing two profiles per request', () => {
  const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber });
  // One sample every 100 µs from t = 1,000,000 µs: ids 2 idle, 3 node's http
  // server (shared), 4 a function of the proxy's own.
  const profile = (samples: number[], own: string) => ({
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 3, 4] },
      { id: 2, callFrame: frame('(idle)') },
      { id: 3, callFrame: frame('parserOnHeadersComplete', 'node:_http_common', 70) },
      { id: 4, callFrame: frame(own, own === 'handle' ? 'file:///app/dist/http/server.js' : 'file:///app/bench/baselines/undici-proxy.ts', 9) },
    ],
    samples,
    startTime: 1_000_000,
    timeDeltas: samples.map(() => 100),
  });

  it('counts only the samples inside the measured window', () => {
    const s = summarizeProfile(profile([4, 4, 2, 3, 3, 2, 4, 4], 'handle'), { fromUs: 1_000_250, toUs: 1_000_650 });
    assert.equal(s.total, 4, 'samples at 300, 400, 500 and 600 µs');
    assert.deepEqual(Object.fromEntries(s.byComponent), { 'idle (waiting for the network)': 2, "node's http server": 2 });
    assert.equal(s.spanUs, 400);
  });

  it('turns samples into µs per request and lines up the functions both sides share', () => {
    // 10 samples of 100 µs for 10 requests: each sample is 10 µs per request.
    const bw = perRequest(summarizeProfile(profile([2, 2, 2, 2, 3, 3, 4, 4, 4, 4], 'handle')), 10);
    const base = perRequest(summarizeProfile(profile([2, 2, 2, 2, 2, 2, 3, 3, 4, 2], 'intoResponse')), 10);
    assert.equal(bw.busyUs, 6 * 10);
    assert.equal(base.busyUs, 3 * 10);
    const d = difference([bw], [base]);
    assert.deepEqual(d.components.map((x) => [x.key, x.a, x.b]), [
      ['breakwater', 40, 0],
      ["node's http server", 20, 20],
      ['baseline proxy', 0, 10],
    ]);
    assert.equal(d.functions[0]!.key, 'handle http/server.js:10');
    assert.equal(d.functions.find((x) => x.key.startsWith('parserOnHeadersComplete'))!.a, 20);
    assert.ok(!d.components.some((x) => x.key.startsWith('idle')), 'idle is not a cost');
  });
});
