/**
 * `${NAME}` and `${NAME:-default}` in string values, replaced from the
 * environment before validation (SPEC §2). `${NAME:-default}` uses the default
 * when NAME is unset or empty, as a shell does; `$${` writes a literal `${`.
 * Mapping keys are never interpolated.
 *
 * The validator (walk.ts) substitutes each string scalar as it reaches it and
 * remembers the nodes that received a value: the redacted copy of the config
 * served by `GET /config` blanks them, and messages about them name the path
 * and the expectation, never the value (it may be a token).
 */

export type Env = Readonly<Record<string, string | undefined>>;

export interface Substitution {
  readonly value: string;
  /** At least one `${...}` was replaced. */
  readonly interpolated: boolean;
  /** Variables without a value and without a default, in order of appearance. */
  readonly missing: readonly string[];
  /** The first reference that is not `${NAME}` or `${NAME:-default}`, as written. */
  readonly malformed: string | null;
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function substitute(text: string, env: Env): Substitution {
  if (!text.includes('${')) return { value: text, interpolated: false, missing: [], malformed: null };
  let out = '';
  let interpolated = false;
  const missing: string[] = [];
  let malformed: string | null = null;
  let i = 0;
  while (i < text.length) {
    const start = text.indexOf('${', i);
    if (start < 0) {
      out += text.slice(i);
      break;
    }
    if (start > 0 && text[start - 1] === '$') {
      // `$${` is an escaped literal `${`.
      out += text.slice(i, start - 1) + '${';
      i = start + 2;
      continue;
    }
    out += text.slice(i, start);
    const end = text.indexOf('}', start + 2);
    if (end < 0) {
      malformed ??= text.slice(start);
      out += text.slice(start);
      break;
    }
    const body = text.slice(start + 2, end);
    const sep = body.indexOf(':-');
    const name = sep < 0 ? body : body.slice(0, sep);
    if (!NAME_RE.test(name)) {
      malformed ??= text.slice(start, end + 1);
      out += text.slice(start, end + 1);
    } else {
      const v = env[name];
      interpolated = true;
      if (sep >= 0) out += v === undefined || v === '' ? body.slice(sep + 2) : v;
      else if (v === undefined) missing.push(name);
      else out += v;
    }
    i = end + 1;
  }
  return { value: out, interpolated, missing, malformed };
}

/** What is wrong with a substitution, one message per problem; empty when it succeeded. */
export function substitutionProblems(s: Substitution): string[] {
  const out: string[] = [];
  if (s.malformed !== null) {
    out.push(`malformed reference ${s.malformed}: expected \${NAME} or \${NAME:-default}, NAME made of letters, digits and _ (write $\${ for a literal \${)`);
  }
  for (const name of s.missing) out.push(`environment variable ${name} is not set (give it a value, or a default with \${${name}:-default})`);
  return out;
}
