/**
 * One config problem, located in the file: what `breakwater validate` lists
 * and what a failed reload reports. Every check of the config library emits
 * these, so an operator always gets the file, the 1-based line and column of
 * the offending node, the config path (`upstreams.payments.retry.backoff.base`)
 * and a message saying what was expected and what was found.
 */

export type ConfigErrorKind = 'read' | 'syntax' | 'schema' | 'semantic';

export class ConfigError {
  /** read: the file could not be read; syntax: not YAML; schema: shape or type; semantic: cross-field rule. */
  readonly kind: ConfigErrorKind;
  readonly file: string;
  /** 1-based; 0 when the error is about the whole file (kind `read`). */
  readonly line: number;
  /** 1-based; 0 when the error is about the whole file (kind `read`). */
  readonly column: number;
  /** Config path such as `listeners[0].routes[1].upstream`; '' for the document itself. */
  readonly path: string;
  readonly message: string;

  constructor(kind: ConfigErrorKind, file: string, line: number, column: number, path: string, message: string) {
    this.kind = kind;
    this.file = file;
    this.line = line;
    this.column = column;
    this.path = path;
    this.message = message;
    Object.freeze(this);
  }

  /** `file:line:column: path: message`; the location parts are left out where they mean nothing. */
  toString(): string {
    const where = this.line > 0 ? `${this.file}:${this.line}:${this.column}` : this.file;
    return this.path === '' ? `${where}: ${this.message}` : `${where}: ${this.path}: ${this.message}`;
  }
}

/** File order, so a long list reads top to bottom like the file. */
export function sortErrors(errors: readonly ConfigError[]): ConfigError[] {
  return [...errors].sort((a, b) => a.line - b.line || a.column - b.column || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
