/**
 * Deep freezing for the loaded config. `Object.freeze` does not stop
 * `set.add()` or `map.set()`, so the config's sets and maps are FrozenSet and
 * FrozenMap: real Set/Map instances (instanceof, iteration and `has` as usual)
 * whose mutators throw.
 */

export class FrozenSet<T> extends Set<T> {
  constructor(items: Iterable<T> = []) {
    super();
    for (const x of items) Set.prototype.add.call(this, x);
    Object.freeze(this);
  }
  override add(_value: T): this {
    throw new TypeError('the config is frozen: this set cannot be changed');
  }
  override delete(_value: T): boolean {
    throw new TypeError('the config is frozen: this set cannot be changed');
  }
  override clear(): void {
    throw new TypeError('the config is frozen: this set cannot be changed');
  }
}

export class FrozenMap<K, V> extends Map<K, V> {
  constructor(entries: Iterable<readonly [K, V]> = []) {
    super();
    for (const [k, v] of entries) Map.prototype.set.call(this, k, v);
    Object.freeze(this);
  }
  override set(_key: K, _value: V): this {
    throw new TypeError('the config is frozen: this map cannot be changed');
  }
  override delete(_key: K): boolean {
    throw new TypeError('the config is frozen: this map cannot be changed');
  }
  override clear(): void {
    throw new TypeError('the config is frozen: this map cannot be changed');
  }
}

/**
 * Freezes `value` and everything reachable from it. An object already frozen
 * is taken as done (shared sub-objects are visited once); FrozenSet and
 * FrozenMap are frozen from birth, so their contents are visited by identity.
 */
export function deepFreeze<T>(value: T): T {
  const collections = new Set<object>();
  const visit = (v: unknown): void => {
    if (typeof v !== 'object' || v === null) return;
    if (v instanceof Map || v instanceof Set) {
      if (!(v instanceof FrozenMap) && !(v instanceof FrozenSet)) throw new TypeError('breakwater bug: a plain Map or Set in the config');
      if (collections.has(v)) return;
      collections.add(v);
      if (v instanceof FrozenMap) for (const [k, x] of v) (visit(k), visit(x));
      else for (const x of v) visit(x);
      return;
    }
    if (Object.isFrozen(v)) return;
    Object.freeze(v);
    if (Array.isArray(v)) for (const x of v) visit(x);
    else for (const k of Object.keys(v)) visit((v as Record<string, unknown>)[k]);
  };
  visit(value);
  return value;
}
