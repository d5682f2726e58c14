/**
 * node:http is required through src/http/node-http.ts, never imported as a
 * value: an ESM import loads node's bundled undici (+6 MiB in every sidecar,
 * bench/README.md step 9). A CLI module once brought it back into the proxy
 * process, which loads the CLI commands at start.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

describe('node:http is never imported as a value', () => {
  it('no module of src imports node:http (or node:https) but for types', () => {
    const offenders = sources(path.join(root, 'src')).filter((f) => /^import (?!type )[^;]*from 'node:https?';/m.test(readFileSync(f, 'utf8')));
    assert.deepEqual(offenders.map((f) => path.relative(root, f)), []);
  });

  it('loading the CLI entry loads no bundled undici', () => {
    // src/cli.ts with its commands, as the sidecar process loads them (`run` is not called: only the module graph).
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(path.join(root, 'src', 'cli', 'admin-client.ts'))}); await import(${JSON.stringify(path.join(root, 'src', 'runtime', 'proxy.ts'))}); console.log(process.moduleLoadList.some((m) => /undici/.test(m)) ? 'LOADED' : 'none');`], { encoding: 'utf8' });
    assert.equal(r.stdout.trim(), 'none', r.stderr);
  });
});
