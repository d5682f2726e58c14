/**
 * The bench's own parsing: the "as shipped" row must run with exactly the
 * image's memory settings, and the profile summary must attribute samples to
 * the right component and keep every sample in the folded stacks.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { shippedEnv } from '../../../bench/lib/subjects.ts';
import { summarizeProfile } from '../../../bench/profile.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe('bench: shippedEnv', () => {
  it('reads NODE_OPTIONS and MALLOC_* from the Dockerfile that builds the image', () => {
    const env = shippedEnv(path.join(root, 'Dockerfile'));
    assert.match(env['NODE_OPTIONS'] ?? '', /--max-semi-space-size=\d+/);
    assert.equal(env['MALLOC_ARENA_MAX'], '1');
    assert.equal(env['BREAKWATER_CONFIG'], undefined, 'only memory settings are taken');
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
