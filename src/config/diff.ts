/**
 * What a config change changed, for the audit log (SPEC §11.3): upstreams,
 * routes and listeners added, removed and changed, by name, and the other
 * top-level settings that changed.
 *
 * "Changed" means the compiled config differs (after defaults and overrides
 * are merged), so an edit of `defaults.retry` shows as a change of every
 * upstream it reaches, and reformatting the file changes nothing. Each part
 * is compared by the sha256 of a canonical string (sets sorted): values injected with `requestHeaders.set` and the admin token take
 * part in the comparison (a rotated credential is a change) but only names
 * ever leave this module.
 *
 * Cost: compiled configs are frozen, so an upstream's, route's or listener's
 * digest never changes and is kept (weakly, 64 characters each) with it: a
 * reload canonicalises only the new config, once.
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
  const same = (a: unknown, b: unknown): boolean => a === b || canonical(a) === canonical(b);
  const unit = (v: unknown, form: (v: unknown) => unknown = (x) => x): string => digestOf(v, form);
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

/** Digests of frozen config parts (upstreams, routes, listeners), kept as long as the part lives. */
const digests = new WeakMap<object, string>();

function digestOf(v: unknown, form: (v: unknown) => unknown): string {
  if (typeof v !== 'object' || v === null) return fingerprint(v);
  let d = digests.get(v);
  if (d === undefined) {
    d = fingerprint(form(v));
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

/**
 * A stable text form of compiled config values: JSON with maps as entry lists
 * in order and sets sorted. Object keys keep their order: compile.ts builds
 * every object with a fixed shape, whatever order the file wrote its keys in
 * (only user-keyed records, like a static response's headers, follow the file).
 * Native JSON.stringify: a 1,000-upstream config is a few megabytes of text.
 */
export function canonical(value: unknown): string {
  return value === undefined ? 'u' : (JSON.stringify(value, replacer) ?? 'u');
}

function replacer(_key: string, v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return typeof v === 'bigint' ? `${v}n` : typeof v === 'function' || typeof v === 'symbol' ? 'f' : v;
  if (v instanceof Map) return { '<map>': [...v] };
  if (v instanceof Set) return { '<set>': [...v].sort() };
  if (v instanceof RegExp) return { '<re>': `${v.source}/${v.flags}` };
  return v;
}
