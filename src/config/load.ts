/**
 * Loading a config: read → YAML (with positions) → schema walk (with
 * `${...}` interpolation) → cross-field rules → merge and compile → lint →
 * deep freeze. Duplicate keys are left to the walk (the yaml library's check
 * is quadratic in the size of a mapping; ours is not).
 * Every error of a file is collected and returned at once, in file order;
 * nothing here throws on bad input, and nothing but the file (and the TLS
 * files it names, config/tls.ts) is read.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument, type Scalar } from 'yaml';
import { checkAdminToken, tokenVariables } from './admin-token.ts';
import { compile } from './compile.ts';
import { ConfigError, sortErrors, type ConfigErrorKind } from './errors.ts';
import { deepFreeze } from './freeze.ts';
import type { Env } from './interpolate.ts';
import { lint } from './lint.ts';
import { redactedDocument } from './redact.ts';
import { configSchema, type RawConfig } from './schema.ts';
import type { BreakwaterConfig } from './types.ts';
import { validateTls } from './tls.ts';
import { validateRedis } from './redis.ts';
import { validateSemantics } from './validate.ts';
import { walk, INVALID } from './walk.ts';
import { AliasBudget, locate, type AnyNode } from './yaml-nodes.ts';

const MAX_SYNTAX_ERRORS = 5;
const MAX_ERRORS = 200;

/** `hash`, on failure: the sha256 of the rejected file's bytes, when they could be read (for the audit line). */
export type LoadResult = { ok: true; config: BreakwaterConfig } | { ok: false; errors: ConfigError[]; hash?: string };

/**
 * Reads `file` synchronously; an unreadable file gives one error of kind `read`.
 * With `unlessHash`, a file whose bytes hash to it is not parsed again: the
 * answer is `{ unchanged: true }` (a reload of an unchanged 1,000-upstream
 * file costs a read and a hash, not ~100 ms of YAML parsing).
 */
export function loadConfigFile(file: string, env?: Record<string, string | undefined>): LoadResult;
export function loadConfigFile(file: string, env: Record<string, string | undefined>, unlessHash: string): LoadResult | { unchanged: true };
export function loadConfigFile(file: string, env: Record<string, string | undefined> = process.env, unlessHash?: string): LoadResult | { unchanged: true } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : String((err as Error).message);
    return { ok: false, errors: [new ConfigError('read', file, 0, 0, '', `cannot read the config file: ${why}`)] };
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { ok: false, errors: [new ConfigError('syntax', file, 1, 1, '', 'the file is not valid UTF-8 text')], hash: sha256(bytes) };
  }
  const hash = sha256(bytes);
  if (hash === unlessHash) return { unchanged: true };
  const r = load(text, file, hash, env);
  return r.ok ? r : { ...r, hash };
}

/** `file` names the source in messages and in `config.source.file` (made absolute); nothing is read. */
export function loadConfigText(text: string, file: string, env: Record<string, string | undefined> = process.env): LoadResult {
  return load(text, file, sha256(Buffer.from(text, 'utf8')), env);
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function load(text: string, file: string, hash: string, env: Env): LoadResult {
  const source = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const lines = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lines, prettyErrors: true, uniqueKeys: false, version: '1.2', strict: true });
  const errors: ConfigError[] = [];
  const at = (kind: ConfigErrorKind, offset: number | null, p: string, message: string): void => {
    const pos = lines.linePos(offset ?? 0);
    errors.push(new ConfigError(kind, file, pos.line, pos.col, p, message));
  };

  if (doc.errors.length > 0) {
    // One error cascades into many on the following tokens: keep the first of each line, and the first few lines.
    const seenLines = new Set<number>();
    for (const e of doc.errors) {
      const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
      if (seenLines.has(pos.line) || seenLines.size >= MAX_SYNTAX_ERRORS) continue;
      seenLines.add(pos.line);
      errors.push(new ConfigError('syntax', file, pos.line, pos.col, '', yamlMessage(e.message)));
    }
    return { ok: false, errors: sortErrors(errors) };
  }

  const ctx = {
    doc,
    env,
    budget: new AliasBudget(),
    fromEnv: new Set<Scalar>(),
    interpolated: new Set<Scalar>(),
    broken: new Set<Scalar>(),
    report: (o: number | null, p: string, m: string, kind: ConfigErrorKind = 'schema') => at(kind, o, p, m),
  };
  const walked = walk(configSchema, doc.contents as AnyNode | null, '', ctx, 0);
  if (ctx.budget.exhausted) return { ok: false, errors: errors.filter((e) => e.message.startsWith('too many aliases')) };
  const raw: RawConfig = walked === INVALID ? {} : (walked as RawConfig);
  // Relative paths in the file (tls.ca, tls.cert, tls.key) are read from its directory.
  const baseDir = path.dirname(path.resolve(file));
  if (walked !== INVALID) {
    validateSemantics(raw, (p, m) => at('semantic', locate(doc, p), p, m));
    checkAdminToken(raw.admin, doc, (p, m) => at('semantic', locate(doc, p), p, m));
    validateTls(raw, baseDir, (p, m) => at('semantic', locate(doc, p), p, m));
    validateRedis(raw, baseDir, (p, m) => at('semantic', locate(doc, p), p, m));
  }
  if (errors.length > 0) return { ok: false, errors: capped(sortErrors(errors)) };

  let config: BreakwaterConfig;
  try {
    const compiled = compile(raw, baseDir);
    config = {
      ...compiled,
      admin: { ...compiled.admin, tokenFrom: compiled.admin.token === null ? [] : tokenVariables(doc) },
      warnings: lint(raw, compiled),
      source: { file: path.resolve(file), hash, redacted: redactedDocument(doc, ctx.fromEnv) },
    };
  } catch (err) {
    // A bug of this library must not take a running proxy down on reload: report it like a config error.
    return { ok: false, errors: [new ConfigError('semantic', file, 1, 1, '', `internal error while building the config: ${(err as Error).message}`)] };
  }
  return { ok: true, config: deepFreeze(config) };
}

/** Past a few hundred errors the file is not the one meant (or is generated wrong): the rest is noise. */
function capped(errors: ConfigError[]): ConfigError[] {
  if (errors.length <= MAX_ERRORS) return errors;
  const last = errors[MAX_ERRORS - 1]!;
  const more = new ConfigError(last.kind, last.file, last.line, last.column, '', `... and ${errors.length - MAX_ERRORS + 1} more errors not shown`);
  return [...errors.slice(0, MAX_ERRORS - 1), more];
}

/** The yaml library's message without the position and code excerpt it appends (we report those ourselves). */
function yamlMessage(m: string): string {
  const first = m.split('\n')[0] ?? m;
  return first.replace(/ at line \d+, column \d+:?$/, '');
}
