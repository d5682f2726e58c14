/**
 * A strict RFC 9112 reading of request bytes, for the corpus suite. It does
 * two jobs: the raw recording upstream frames what breakwater sends it with
 * it (anything it cannot read strictly is a violation: breakwater forwarded
 * bytes a strict server would refuse), and the reference model derives, from
 * the same reading of a case's bytes, what a correct proxy may answer.
 *
 * Bytes are handled as latin1 strings: one char per byte, so offsets are
 * byte offsets and obs-text (0x80-0xff) survives untouched.
 *
 * Strict means: CRLF only (a bare CR or LF anywhere in a head is invalid),
 * no obs-fold, no whitespace before a field name's colon, token names, field
 * values of HTAB/SP/VCHAR/obs-text only, exactly one Host in HTTP/1.1,
 * Content-Length of 1*DIGIT (a list of identical values is noted, RFC 9112
 * §6.3 lets a recipient accept or reject it), Transfer-Encoding whose final
 * coding is chunked (exactly once, no parameters; other codings are not
 * supported), chunk sizes of 1*HEXDIG (at most 16 digits), chunk extensions
 * of `BWS ";" BWS token [BWS "=" BWS (token / quoted-string)]`.
 */

export interface Field {
  readonly name: string;
  readonly value: string;
}

export interface StrictRequest {
  readonly method: string;
  readonly target: string;
  /** 0 or 1 (HTTP/1.x only). */
  readonly minor: number;
  readonly fields: readonly Field[];
  readonly body: string;
  readonly trailers: readonly Field[];
  /** Both Transfer-Encoding (chunked, which wins) and Content-Length were present. */
  readonly teAndCl: boolean;
  /** Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1: framing faulty, close after). */
  readonly http10Te: boolean;
  /** Content-Length was a list of identical values (or repeated identically). */
  readonly clList: boolean;
  /** The connection persists after this request (HTTP/1.1 without close, HTTP/1.0 with keep-alive). */
  readonly persistent: boolean;
}

export type ReadResult =
  | { readonly kind: 'request'; readonly req: StrictRequest; readonly used: number }
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly where: 'head' | 'body'; readonly reason: string };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;
const EXT = /^(?:[ \t]*;[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:[ \t]*=[ \t]*(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+|"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"))?)*$/;

export function isToken(s: string): boolean {
  return TOKEN.test(s);
}

/** Values of every field named `name` (case-insensitive), in order. */
export function fieldValues(fields: readonly Field[], name: string): string[] {
  const n = name.toLowerCase();
  return fields.filter((f) => f.name.toLowerCase() === n).map((f) => f.value);
}

/** Comma-separated list elements (RFC 9110 §5.6.1: empty elements are ignored), trimmed. */
export function listElements(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((e) => e.trim()).filter((e) => e !== '');
}

/** Field lines of a head or trailer section: `lines` excludes the final empty line. */
function readFields(lines: readonly string[]): Field[] | string {
  const out: Field[] = [];
  for (const line of lines) {
    if (line.startsWith(' ') || line.startsWith('\t')) return 'obs-fold (a line starting with whitespace)';
    const colon = line.indexOf(':');
    if (colon < 0) return `a field line without a colon: ${JSON.stringify(line.slice(0, 40))}`;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return `field name is not a token: ${JSON.stringify(name.slice(0, 40))}`;
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) return `field ${name} has a forbidden byte in its value`;
    out.push({ name, value });
  }
  return out;
}

/** Where the head starting at `from` ends (index of its CRLF CRLF), or an error/incomplete. */
function headEnd(s: string, from: number): number | 'incomplete' | string {
  const end = s.indexOf('\r\n\r\n', from);
  const limit = end < 0 ? s.length : end + 4;
  for (let i = from; i < limit; i++) {
    const c = s.charCodeAt(i);
    if (c === 10 && (i === from || s.charCodeAt(i - 1) !== 13)) return 'a bare LF in the head';
    if (c === 13 && i + 1 < s.length && s.charCodeAt(i + 1) !== 10) return 'a bare CR in the head';
  }
  return end < 0 ? 'incomplete' : end;
}

/** Reads one request starting at `from`. */
export function readRequest(s: string, from = 0): ReadResult {
  const end = headEnd(s, from);
  if (end === 'incomplete') return { kind: 'incomplete' };
  if (typeof end === 'string') return { kind: 'invalid', where: 'head', reason: end };
  const lines = s.slice(from, end).split('\r\n');
  const m = REQUEST_LINE.exec(lines[0] ?? '');
  if (m === null) return { kind: 'invalid', where: 'head', reason: `bad request line ${JSON.stringify((lines[0] ?? '').slice(0, 60))}` };
  const fields = readFields(lines.slice(1));
  if (typeof fields === 'string') return { kind: 'invalid', where: 'head', reason: fields };
  const minor = Number(m[3]);
  const hosts = fieldValues(fields, 'host');
  if (minor === 1 && hosts.length !== 1) return { kind: 'invalid', where: 'head', reason: `${hosts.length} Host fields` };
  if (minor === 0 && hosts.length > 1) return { kind: 'invalid', where: 'head', reason: `${hosts.length} Host fields` };

  const te = fieldValues(fields, 'transfer-encoding');
  const cl = fieldValues(fields, 'content-length');
  let length = 0;
  let clList = false;
  if (cl.length > 0) {
    const parts = cl.flatMap((v) => v.split(',')).map((e) => e.trim());
    if (parts.some((p) => !/^\d{1,15}$/.test(p))) return { kind: 'invalid', where: 'head', reason: `Content-Length ${JSON.stringify(cl.join(', '))}` };
    if (new Set(parts.map(Number)).size !== 1) return { kind: 'invalid', where: 'head', reason: `differing Content-Length values ${JSON.stringify(cl.join(', '))}` };
    length = Number(parts[0]);
    clList = parts.length > 1;
  }
  let chunked = false;
  if (te.length > 0) {
    const codings = listElements(te).map((c) => c.toLowerCase());
    if (codings.length === 0) return { kind: 'invalid', where: 'head', reason: 'an empty Transfer-Encoding' };
    if (codings[codings.length - 1] !== 'chunked') return { kind: 'invalid', where: 'head', reason: `Transfer-Encoding ${JSON.stringify(te.join(', '))} does not end in chunked` };
    if (codings.length > 1) return { kind: 'invalid', where: 'head', reason: `Transfer-Encoding ${JSON.stringify(te.join(', '))}: codings other than one chunked` };
    chunked = true;
  }
  const conn = listElements(fieldValues(fields, 'connection')).map((c) => c.toLowerCase());
  const persistent = minor === 1 ? !conn.includes('close') : conn.includes('keep-alive') && !conn.includes('close');
  let pos = end + 4;
  let body = '';
  let trailers: Field[] = [];
  if (chunked) {
    const r = readChunked(s, pos);
    if (r === 'incomplete') return { kind: 'incomplete' };
    if (typeof r === 'string') return { kind: 'invalid', where: 'body', reason: r };
    body = r.body;
    trailers = r.trailers;
    pos = r.used;
  } else if (length > 0) {
    if (s.length < pos + length) return { kind: 'incomplete' };
    body = s.slice(pos, pos + length);
    pos += length;
  }
  const req: StrictRequest = {
    method: m[1]!,
    target: m[2]!,
    minor,
    fields,
    body,
    trailers,
    teAndCl: chunked && cl.length > 0,
    http10Te: chunked && minor === 0,
    clList,
    persistent,
  };
  return { kind: 'request', req, used: pos - from };
}

/** A chunked body from `from`: its decoded bytes, trailers, and where it ended. */
export function readChunked(s: string, from: number): { body: string; trailers: Field[]; used: number } | 'incomplete' | string {
  let pos = from;
  let body = '';
  for (let n = 0; n < 100_000; n++) {
    const eol = s.indexOf('\r\n', pos);
    // A bare CR or LF before the line's CRLF is invalid.
    const lineEnd = eol < 0 ? s.length : eol;
    for (let i = pos; i < lineEnd; i++) {
      const c = s.charCodeAt(i);
      if (c === 10 || c === 13) {
        if (c === 13 && i + 1 >= s.length) break;
        return `a bare ${c === 10 ? 'LF' : 'CR'} in a chunk-size line`;
      }
    }
    if (eol < 0) return 'incomplete';
    const line = s.slice(pos, eol);
    const m = /^([0-9A-Fa-f]+)(.*)$/.exec(line);
    if (m === null) return `bad chunk-size line ${JSON.stringify(line.slice(0, 40))}`;
    if (m[1]!.length > 16) return `chunk size ${m[1]!.slice(0, 24)} overflows`;
    if (!EXT.test(m[2]!)) return `bad chunk extension ${JSON.stringify(m[2]!.slice(0, 40))}`;
    const size = Number.parseInt(m[1]!, 16);
    pos = eol + 2;
    if (size === 0) {
      // Trailer section: field lines up to an empty line.
      const fieldsEnd = s.startsWith('\r\n', pos) ? pos : (() => {
        const e = headEnd(s, pos);
        return e;
      })();
      if (fieldsEnd === 'incomplete') return 'incomplete';
      if (typeof fieldsEnd === 'string') return `trailer section: ${fieldsEnd}`;
      if (fieldsEnd === pos) return { body, trailers: [], used: pos + 2 };
      const trailers = readFields(s.slice(pos, fieldsEnd).split('\r\n'));
      if (typeof trailers === 'string') return `trailer section: ${trailers}`;
      return { body, trailers, used: fieldsEnd + 4 };
    }
    if (!Number.isSafeInteger(size)) return `chunk size ${m[1]} overflows`;
    if (s.length < pos + size + 2) {
      // Data not all here yet, unless what is here already breaks the framing.
      return 'incomplete';
    }
    body += s.slice(pos, pos + size);
    pos += size;
    if (!s.startsWith('\r\n', pos)) return 'chunk data is not followed by CRLF';
    pos += 2;
  }
  return 'too many chunks';
}
