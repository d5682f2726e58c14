/** Small helpers for the config tests: load YAML text, get the config or the errors. */
import assert from 'node:assert/strict';
import { loadConfigText, type LoadResult } from '../../../src/config/load.ts';
import type { ConfigError } from '../../../src/config/errors.ts';
import type { BreakwaterConfig } from '../../../src/config/types.ts';

export const FILE = 'test.yaml';

/** Strips the common indentation of a template literal, and its first newline. */
export function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = strings.reduce((acc, s, i) => acc + s + (i < values.length ? String(values[i]) : ''), '').replace(/^\n/, '');
  const indent = Math.min(...text.split('\n').filter((l) => l.trim() !== '').map((l) => l.length - l.trimStart().length));
  return text
    .split('\n')
    .map((l) => l.slice(indent))
    .join('\n');
}

export function load(text: string, env: Record<string, string | undefined> = {}): LoadResult {
  return loadConfigText(text, FILE, env);
}

export function config(text: string, env: Record<string, string | undefined> = {}): BreakwaterConfig {
  const r = load(text, env);
  if (!r.ok) assert.fail(`expected a valid config, got:\n${r.errors.map(String).join('\n')}`);
  return r.config;
}

export function errors(text: string, env: Record<string, string | undefined> = {}): ConfigError[] {
  const r = load(text, env);
  if (r.ok) assert.fail('expected errors, the config loaded');
  return r.errors;
}

/** The one error at `path` (fails if there is none, or several). */
export function errorAt(text: string, path: string, env: Record<string, string | undefined> = {}): ConfigError {
  const all = errors(text, env);
  const at = all.filter((e) => e.path === path);
  assert.equal(at.length, 1, `one error at ${path}, got:\n${all.map(String).join('\n')}`);
  return at[0]!;
}

/** A valid config with one listener and one upstream, plus `extra` YAML appended under `upstreams.u`. */
export function withUpstream(extra: string, top = ''): string {
  const body = extra
    .split('\n')
    .map((l) => (l.trim() === '' ? l : `    ${l}`))
    .join('\n');
  return `version: 1\n${top}listeners:\n  - { name: l, address: 127.0.0.1:0, upstream: u }\nupstreams:\n  u:\n    url: http://127.0.0.1:8080\n${body}\n`;
}
