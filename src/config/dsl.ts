/**
 * A small declarative schema language: the config format is written once in
 * it (schema.ts), and three readers share that one description:
 *  - walk.ts validates the YAML nodes against it, with positions;
 *  - merge.ts merges blocks key by key and fills in the built-in defaults it
 *    declares (`default` is written the way a user would write it: '1s');
 *  - json-schema.ts publishes it as JSON Schema, descriptions and defaults included.
 * A rule that lives here cannot drift between the validator and the published schema.
 *
 * Each builder returns a `Schema<T>`, T being the value the validator produces
 * (durations as milliseconds, rates as `Rate`, ...), so `TypeOf<typeof x>` types the
 * validated tree without a second hand-written declaration.
 */

export interface Meta {
  readonly description?: string;
  /** The built-in value, as it would be written in YAML ('1s', not 1000). */
  readonly default?: unknown;
  /** As an object field: must be present. */
  readonly required?: boolean;
  /** Object blocks only: absent means off, not "every built-in" (circuitBreaker, bulkhead, ...). */
  readonly offUnlessPresent?: boolean;
  /** The value is a secret: messages never echo it. */
  readonly sensitive?: boolean;
  /** Name under JSON Schema `$defs`, for blocks used in several places. */
  readonly ref?: string;
}

export type Parse = (value: string | number | boolean, fromEnv: boolean) => { ok: true; value: unknown } | { ok: false; expected: string; secret?: boolean };

export type Node =
  | {
      readonly kind: 'object';
      readonly fields: Readonly<Record<string, AnySchema>>;
      /** Groups of keys of which exactly one must be present (`url` | `endpoints`). */
      readonly exactlyOne: readonly (readonly string[])[];
      /** Accept and ignore `x-` keys: a home for YAML anchors (`x-common: &common {...}`). */
      readonly extensions: boolean;
    }
  | {
      readonly kind: 'map';
      readonly value: AnySchema;
      readonly keyPattern: RegExp | null;
      readonly keyExpected: string;
      readonly lowerCaseKeys: boolean;
    }
  | { readonly kind: 'list'; readonly item: AnySchema; readonly minItems: number }
  | {
      readonly kind: 'string';
      readonly pattern: RegExp | null;
      readonly expected: string;
      readonly lowerCase: boolean;
      readonly minLength: number;
      readonly singleLine: boolean;
    }
  | { readonly kind: 'enum'; readonly values: readonly string[]; readonly caseInsensitive: boolean }
  | { readonly kind: 'integer'; readonly min: number | null; readonly max: number | null }
  | { readonly kind: 'number'; readonly min: number | null; readonly exclusiveMin: boolean; readonly max: number | null }
  | { readonly kind: 'boolean' }
  | { readonly kind: 'literal'; readonly value: number }
  | { readonly kind: 'nullable'; readonly inner: AnySchema }
  | { readonly kind: 'union'; readonly options: readonly AnySchema[]; readonly expected: string }
  | { readonly kind: 'forbidden'; readonly message: string }
  | { readonly kind: 'custom'; readonly expected: string; readonly parse: Parse; readonly json: object };

export interface Schema<T> {
  readonly node: Node;
  readonly meta: Meta;
  /** Phantom: the validated value's type. Never set. */
  readonly __type?: T;
}

/** A schema of any value type (object fields, list items). */
export type AnySchema = Schema<any>;
export type TypeOf<S> = S extends Schema<infer T> ? T : never;
type Fields = Record<string, AnySchema>;
/** Every key optional: a block holds only what the file wrote (merge.ts adds the built-ins). */
export type ObjectOf<F extends Fields> = { -readonly [K in keyof F]?: TypeOf<F[K]> };

const make = <T>(node: Node, meta: Meta = {}): Schema<T> => ({ node, meta });

export function object<F extends Fields>(
  fields: F,
  meta: Meta & { exactlyOne?: readonly (readonly (keyof F & string)[])[]; extensions?: boolean } = {},
): Schema<ObjectOf<F>> {
  const { exactlyOne = [], extensions = false, ...rest } = meta;
  return make({ kind: 'object', fields, exactlyOne, extensions }, rest);
}

/**
 * A mapping with free keys (upstream names, header names), validated into a
 * `Map` so file order survives even for keys that look like integers. Values
 * of invalid entries are left undefined (the name still counts as declared).
 */
export function map<V extends AnySchema>(
  value: V,
  opts: { keyPattern?: RegExp; keyExpected?: string; lowerCaseKeys?: boolean } = {},
  meta: Meta = {},
): Schema<Map<string, TypeOf<V> | undefined>> {
  return make(
    { kind: 'map', value, keyPattern: opts.keyPattern ?? null, keyExpected: opts.keyExpected ?? 'a key', lowerCaseKeys: opts.lowerCaseKeys ?? false },
    meta,
  );
}

/** Items that fail validation are left undefined, so the indices in later messages stay those of the file. */
export function list<I extends AnySchema>(item: I, meta: Meta & { minItems?: number } = {}): Schema<(TypeOf<I> | undefined)[]> {
  const { minItems = 0, ...rest } = meta;
  return make({ kind: 'list', item, minItems }, rest);
}

export function string(
  opts: { pattern?: RegExp; expected?: string; lowerCase?: boolean; minLength?: number; singleLine?: boolean } = {},
  meta: Meta = {},
): Schema<string> {
  return make(
    {
      kind: 'string',
      pattern: opts.pattern ?? null,
      expected: opts.expected ?? 'a string',
      lowerCase: opts.lowerCase ?? false,
      minLength: opts.minLength ?? 0,
      singleLine: opts.singleLine ?? false,
    },
    meta,
  );
}

/** One of fixed words. Case-insensitive ones are stored as listed (methods: upper-case). */
export function oneOf<const V extends readonly string[]>(values: V, meta: Meta & { caseInsensitive?: boolean } = {}): Schema<V[number]> {
  const { caseInsensitive = false, ...rest } = meta;
  return make({ kind: 'enum', values, caseInsensitive }, rest);
}

export function integer(range: { min?: number; max?: number } = {}, meta: Meta = {}): Schema<number> {
  return make({ kind: 'integer', min: range.min ?? null, max: range.max ?? null }, meta);
}

export function number(range: { min?: number; exclusiveMin?: boolean; max?: number } = {}, meta: Meta = {}): Schema<number> {
  return make({ kind: 'number', min: range.min ?? null, exclusiveMin: range.exclusiveMin ?? false, max: range.max ?? null }, meta);
}

export function boolean(meta: Meta = {}): Schema<boolean> {
  return make({ kind: 'boolean' }, meta);
}

export function literal<const V extends number>(value: V, meta: Meta = {}): Schema<V> {
  return make({ kind: 'literal', value }, meta);
}

export function nullable<S extends AnySchema>(inner: S, meta: Meta = {}): Schema<TypeOf<S> | null> {
  return make({ kind: 'nullable', inner }, meta);
}

/** The first option that accepts a scalar wins; `expected` describes them all in one message. */
export function union<S extends AnySchema>(options: readonly S[], expected: string, meta: Meta = {}): Schema<TypeOf<S>> {
  return make({ kind: 'union', options, expected }, meta);
}

/** A key that must not appear here, with the message that says where it belongs. */
export function forbidden(message: string, meta: Meta = {}): Schema<never> {
  return make({ kind: 'forbidden', message }, { description: message, ...meta });
}

/** A scalar read by a parser of its own (durations, sizes, rates, addresses, URLs); `json` is its JSON Schema. */
export function custom<T>(spec: { expected: string; parse: Parse; json: object }, meta: Meta = {}): Schema<T> {
  return make({ kind: 'custom', ...spec }, meta);
}

/** The same schema with other documentation (a shared block described for one place). */
export function withMeta<T>(schema: Schema<T>, meta: Meta): Schema<T> {
  return { node: schema.node, meta: { ...schema.meta, ...meta } };
}

/** The object schema inside an object or nullable-object field, if that is what it is. */
export function objectNode(schema: AnySchema): (Node & { kind: 'object' }) | null {
  const n = schema.node.kind === 'nullable' ? schema.node.inner.node : schema.node;
  return n.kind === 'object' ? n : null;
}

/** "what a value here should look like", for messages. */
export function expectedOf(schema: AnySchema): string {
  const n = schema.node;
  switch (n.kind) {
    case 'object':
    case 'map':
      return 'a mapping';
    case 'list':
      return n.minItems > 0 ? 'a non-empty list' : 'a list';
    case 'string':
      return n.expected;
    case 'enum':
      return `one of ${n.values.join(', ')}`;
    case 'integer':
      return rangeText('an integer', n.min, false, n.max);
    case 'number':
      return rangeText('a number', n.min, n.exclusiveMin, n.max);
    case 'boolean':
      return 'true or false';
    case 'literal':
      return String(n.value);
    case 'nullable':
      return `${expectedOf(n.inner)}, or null`;
    case 'union':
    case 'custom':
      return n.expected;
    case 'forbidden':
      return n.message;
  }
}

function rangeText(what: string, min: number | null, exclusiveMin: boolean, max: number | null): string {
  if (min !== null && max !== null) return exclusiveMin ? `${what} above ${min} and at most ${max}` : `${what} from ${min} to ${max}`;
  if (min !== null) return exclusiveMin ? `${what} above ${min}` : `${what} ≥ ${min}`;
  if (max !== null) return `${what} ≤ ${max}`;
  return what;
}

/** The schema of one key of an object schema (for reading its built-in). */
export function fieldOf(schema: AnySchema, key: string): AnySchema {
  const n = objectNode(schema);
  const f = n?.fields[key];
  if (f === undefined) throw new Error(`breakwater bug: no field ${key} in schema`);
  return f;
}
