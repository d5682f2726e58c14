/**
 * What a config change changed, for the audit log (SPEC §11.3): upstreams,
 * routes and listeners added, removed and changed, by name, and the other
 * top-level settings that changed.
 *
 * "Changed" means the compiled config differs (after defaults and overrides
 * are merged), so an edit of `defaults.retry` shows as a change of every
 * upstream it reaches, and reformatting the file changes nothing. Each part
 * is compared by the sha256 of a canonical string (object keys sorted, sets
 * sorted): values injected with `requestHeaders.set` and the admin token take
 * part in the comparison (a rotated credential is a change) but only names
 * ever leave this module.
 *
 * Cost: compiled configs are frozen, so an upstream's, route's or listener's
 * digest never changes and is kept (weakly, 64 characters each) with it: a
 * reload canonicalises only the new config, once. Nested blocks shared within
 * one config (policy sets, condition sets) are canonicalised once per diff.
 *
 * Top-level blocks are compared generically, so a block another feature adds
 * to BreakwaterConfig is covered without a line here; `admin` is split into
 * `admin.address` and `admin.token` so a rotation is visible as such.
 */
import { createHash } from 'node:crypto';
import type { BreakwaterConfig, ListenerConfig } from './types.ts';

export interface NameChanges {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly string[];
}

export interface ConfigDiff {
  readonly upstreams: NameChanges;
  readonly routes: NameChanges;
  readonly listeners: NameChanges;
  /** Other settings that changed: `admin.address`, `admin.token`, `log`, `drain`, … */
  readonly settings: readonly string[];
}

/** Names listed per kind before the rest are only counted: a line stays readable with 1,000 upstreams. */
export const MAX_NAMES = 50;

/** Keys of BreakwaterConfig that are not settings (or are compared by name above). */
const NOT_SETTINGS = new Set(['version', 'listeners', 'upstreams', 'warnings', 'source', 'admin']);

/** `before` null: the first load, everything is added. */
export function diffConfigs(before: BreakwaterConfig | null, after: BreakwaterConfig): ConfigDiff {
  const memo = new WeakMap<object, string>();
  const same: Same = (a, b) => a === b || canonical(a, memo) === canonical(b, memo);
  const unit = (v: unknown, form: (v: unknown) => unknown = (x) => x): string => digestOf(v, memo, form);
  const upstreams = (c: BreakwaterConfig | null): Map<string, string> => new Map([...(c?.upstreams ?? [])].map(([name, u]) => [name, unit(u)]));
  const routes = (c: BreakwaterConfig | null): Map<string, string> => {
    const m = new Map<string, string>();
    for (const l of c?.listeners ?? []) for (const r of l.routes) m.set(m.has(r.name) ? `${l.name}:${r.name}` : r.name, unit(r));
    return m;
  };
  // A listener's routes are reported as routes; here only its own settings and route order count.
  const ownSettings = (l: unknown): unknown => {
    const x = l as ListenerConfig;
    return { ...x, routes: x.routes.map((r) => r.name) };
  };
  const listeners = (c: BreakwaterConfig | null): Map<string, string> => new Map((c?.listeners ?? []).map((l) => [l.name, unit(l, ownSettings)]));
  const settings: string[] = [];
  if (before !== null) {
    if (before.admin.address.text !== after.admin.address.text) settings.push('admin.address');
    if (before.admin.token !== after.admin.token) settings.push('admin.token');
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    for (const k of keys) {
      if (NOT_SETTINGS.has(k)) continue;
      const a = (before as unknown as Record<string, unknown>)[k];
      const b = (after as unknown as Record<string, unknown>)[k];
      if (!same(a, b)) settings.push(k);
    }
  }
  return {
    upstreams: compare(upstreams(before), upstreams(after)),
    routes: compare(routes(before), routes(after)),
    listeners: compare(listeners(before), listeners(after)),
    settings,
  };
}

/** True when nothing at all differs. */
export function isEmptyDiff(d: ConfigDiff): boolean {
  const none = (c: NameChanges): boolean => c.added.length === 0 && c.removed.length === 0 && c.changed.length === 0;
  return none(d.upstreams) && none(d.routes) && none(d.listeners) && d.settings.length === 0;
}

type Same = (a: unknown, b: unknown) => boolean;

/** Digests of frozen config parts (upstreams, routes, listeners), kept as long as the part lives. */
const digests = new WeakMap<object, string>();

function digestOf(v: unknown, memo: WeakMap<object, string>, form: (v: unknown) => unknown): string {
  if (typeof v !== 'object' || v === null) return fingerprint(v);
  let d = digests.get(v);
  if (d === undefined) {
    d = createHash('sha256').update(canonical(form(v), memo)).digest('hex');
    digests.set(v, d);
  }
  return d;
}

/** By name: digests differ = changed. */
function compare(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): NameChanges {
  const added: string[] = [];
  const removed: string[] = [];
  const changed: string[] = [];
  for (const [name, v] of after) {
    if (!before.has(name)) added.push(name);
    else if (before.get(name) !== v) changed.push(name);
  }
  for (const name of before.keys()) if (!after.has(name)) removed.push(name);
  return { added: capped(added), removed: capped(removed), changed: capped(changed) };
}

function capped(names: string[]): string[] {
  if (names.length <= MAX_NAMES) return names;
  return [...names.slice(0, MAX_NAMES), `…and ${names.length - MAX_NAMES} more`];
}

/** sha256 of the canonical form: equal for equal configs, and never the secret itself. */
export function fingerprint(value: unknown): string {
  return createHash('sha256').update(canonical(value)).digest('hex');
}

/** A stable text form of compiled config values: sorted object keys, sorted sets, maps in order. */
export function canonical(value: unknown, memo?: WeakMap<object, string>): string {
  if (value === undefined) return 'u';
  if (value === null || typeof value === 'boolean' || typeof value === 'number' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function' || typeof value === 'symbol') return 'f';
  const known = memo?.get(value);
  if (known !== undefined) return known;
  const c = (v: unknown): string => canonical(v, memo);
  let out: string;
  if (Array.isArray(value)) out = `[${value.map(c).join(',')}]`;
  else if (value instanceof Map) out = `M[${[...value].map(([k, v]) => `${c(k)}:${c(v)}`).join(',')}]`;
  else if (value instanceof Set) out = `S[${[...value].map(c).sort().join(',')}]`;
  else if (value instanceof RegExp) out = `R${JSON.stringify(value.source)}${value.flags}`;
  else {
    const o = value as Record<string, unknown>;
    out = `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${c(o[k])}`)
      .join(',')}}`;
  }
  memo?.set(value, out);
  return out;
}
