/**
 * The hostile-input corpus: byte-level request streams taken from public
 * request-smuggling and desync corpora, each with the corpus it came from.
 *
 * Sources (read from their repositories):
 *   smuggler        defparam/smuggler configs/{default,doubles,exhaustive}.py (Transfer-Encoding mutations)
 *   desyncbox       PortSwigger/http-request-smuggler src/burp/DesyncBox.java (named permutations, CL-* permutations)
 *   http-garden     narfindustries/http-garden TROPHIES.md payloads, tools/mutations.py ideas
 *   http11probe     MDA2AV/Http11Probe src/Http11Probe/TestCases/Suites/*.cs (test ids)
 *   h2csmuggler     BishopFox/h2csmuggler h2csmuggler.py (send_initial_request)
 *   websocket-smuggle  0ang3el/websocket-smuggle Challenge{1,2}/challenge.py
 *   breakwater      SPEC §3/§10.3 and the issue's list (shapes the corpora do not carry)
 *
 * Every case is a latin1 string (one char per byte). Placeholders filled in
 * at run time: @CANARY@ (a loopback port nobody configured), @CANARY6@ (the
 * same on ::1), @RAW@ (the raw upstream's port). Unless `sentinel: false`,
 * the harness appends NEXT, a well-formed `GET /next` with
 * `Connection: close`: it is forwarded only when a correct proxy would still
 * be reading requests on that connection, and it closes the exchange quickly.
 *
 * `expect: 'model'` derives the allowed outcomes from a strict RFC 9112
 * reading of the bytes (see corpus.chaos.ts `model`); otherwise the case
 * lists them.
 */

/** One thing the client reads, in order. */
export type Item =
  /** The upstream's answer to this request ("METHOD target" as the upstream saw it); it also says the upstream saw it. */
  | { readonly up: string; readonly status?: number; readonly body?: string }
  /** A SPEC §4.7 answer breakwater generated, with one of these statuses. */
  | { readonly err: number | readonly number[] }
  /** A 2xx to CONNECT (the tunnel is open; what follows is HTTP inside it). */
  | { readonly connect: 200 };

export interface Outcome {
  readonly name: string;
  readonly items: readonly Item[];
  /** The connection is closed at the end (true), still open (false), or either. */
  readonly closed: boolean | 'any';
  /** What the upstream saw, when it is not exactly the `up` items (a request forwarded but its answer cut). */
  readonly upstream?: readonly string[];
}

export type Family =
  | 'te-clte'
  | 'te-tecl'
  | 'content-length'
  | 'chunked'
  | 'field-syntax'
  | 'underscore'
  | 'http10'
  | 'host'
  | 'ssrf'
  | 'refused-pipeline'
  | 'connect'
  | 'upgrade';

export interface Case {
  readonly family: Family;
  readonly name: string;
  readonly source: string;
  readonly bytes: string;
  readonly sentinel?: boolean;
  readonly expect: 'model' | readonly Outcome[];
  /** With 'model': a correct proxy may also refuse the first request with 400 (RFC leaves room, or it is a needless oddity). */
  readonly mayReject?: boolean;
  /** 0-based indexes of final responses that answer CONNECT / HEAD (framing of the answer). */
  readonly connectAt?: readonly number[];
  readonly headAt?: readonly number[];
}

export const NEXT = 'GET /next HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n';
const H = 'Host: api.test\r\n';
const N: Item = { up: 'GET /next' };

// --- outcome builders --------------------------------------------------------------

const reject = (status: number | number[] = 400): Outcome => ({ name: `refused ${String(status)}, then closed`, items: [{ err: status }], closed: true });
const forwarded = (req: string, body?: string): Outcome => ({ name: `${req} forwarded, then the next request`, items: [{ up: req, ...(body === undefined ? {} : { body }) }, N], closed: true });
/** A bad Host: 400 (closing, or carrying on with the next request). */
const BAD_HOST: readonly Outcome[] = [reject(400), { name: '400, then the next request', items: [{ err: 400 }, N], closed: true }];
/** Unrouted: 404 no_route and the connection carries on. */
const NO_ROUTE: Outcome = { name: '404 no_route, then the next request', items: [{ err: 404 }, N], closed: true };
const NO_ROUTE_OR_BAD: readonly Outcome[] = [NO_ROUTE, ...BAD_HOST];
const FWD_T: Outcome = forwarded('GET /t');

// --- Transfer-Encoding obfuscations ----------------------------------------------------

/** CL.TE shape: Content-Length covers the whole body; read as chunked it ends early and a GET /smuggled follows. */
const SMUGGLED = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
const CLTE_BODY = `0\r\n\r\n${SMUGGLED}`;
function clte(gadget: string, version = '1.1'): string {
  // smuggler's template: the gadget right after the request line, then Host, then Content-Length.
  return `POST /t HTTP/${version}\r\n${gadget}\r\n${H}Content-Length: ${CLTE_BODY.length}\r\n\r\n${CLTE_BODY}`;
}
/** TE.CL shape: a short Content-Length; read by length, the chunk's data (GET /smuggled) is a second request. */
const TECL_BODY = `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`;
function tecl(gadget: string, version = '1.1'): string {
  return `POST /t HTTP/${version}\r\n${gadget}\r\n${H}Content-Length: 4\r\n\r\n${TECL_BODY}`;
}

const hex2 = (i: number): string => i.toString(16).padStart(2, '0');
const ch = (i: number): string => String.fromCharCode(i);

/** [technique name, gadget line(s), source]. */
const TE_GADGETS: (readonly [string, string, string])[] = [
  // DesyncBox.java named permutations (applyDesync), in its order.
  ['vanilla', 'Transfer-Encoding: chunked', 'desyncbox'],
  ['underjoin1', 'Transfer_Encoding: chunked', 'desyncbox; smuggler exhaustive.py'],
  ['spacejoin1', 'Transfer Encoding: chunked', 'desyncbox; smuggler exhaustive.py'],
  ['space1', 'Transfer-Encoding : chunked', 'desyncbox; smuggler default.py; http11probe SMUG-TE-SP-BEFORE-COLON'],
  ['nameprefix1', 'Foo: bar\r\n Transfer-Encoding: chunked', 'desyncbox'],
  ['nameprefix2', 'Foo: bar\r\n\tTransfer-Encoding: chunked', 'desyncbox'],
  ['valueprefix1', 'Transfer-Encoding:  chunked', 'desyncbox; smuggler exhaustive.py'],
  ['nospace1', 'Transfer-Encoding:chunked', 'desyncbox'],
  ['linewrapped1', 'Transfer-Encoding:\n chunked', 'desyncbox; smuggler exhaustive.py'],
  ['doublewrapped', 'Transfer-Encoding:\r\n \r\n chunked', 'desyncbox'],
  ['gareth1', 'Transfer-Encoding\n : chunked', 'desyncbox'],
  ['badsetupCR', 'Foo: bar\rTransfer-Encoding: chunked', 'desyncbox; smuggler exhaustive.py (x-rout)'],
  ['badsetupLF', 'Foo: bar\nTransfer-Encoding: chunked', 'desyncbox; smuggler exhaustive.py (x-nout)'],
  ['vertwrap', 'Transfer-Encoding: \n\x0bchunked', 'desyncbox'],
  ['tabwrap', 'Transfer-Encoding: \r\n\tchunked', 'desyncbox'],
  ['multiCase', 'tRANSFER-ENCODING: chunked', 'desyncbox'],
  ['UPPERCASE', 'TRANSFER-ENCODING: chunked', 'desyncbox; smuggler exhaustive.py (yelling, value upper-cased there)'],
  ['0dwrap', 'Foo: bar\r\n\rTransfer-Encoding: chunked', 'desyncbox'],
  ['0dspam', 'Tra\rnsfer-Encoding: chunked', 'desyncbox; smuggler exhaustive.py'],
  ['connection', 'Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked', 'desyncbox'],
  ['spjunk', 'Transfer-Encoding x: chunked', 'desyncbox (Amit Klein, HTTP Request Smuggling in 2020)'],
  ['backslash', 'Transfer\\Encoding: chunked', 'desyncbox (Amit Klein, HTTP Request Smuggling in 2020)'],
  ['nel', 'Transfer-Encoding\x85: chunked', 'desyncbox'],
  ['nbsp', 'Transfer-Encoding\xa0: chunked', 'desyncbox'],
  ['shy2', 'Transfer-Encoding\xad: chunked', 'desyncbox'],
  ['shy', 'Transfer\xadEncoding: chunked', 'desyncbox'],
  ['spaceFF', 'Transfer-Encoding:\xffchunked', 'desyncbox; smuggler exhaustive.py'],
  ['unispace', 'Transfer-Encoding:\xa0chunked', 'desyncbox'],
  ['commaCow', 'Transfer-Encoding: chunked, identity', 'desyncbox (smuggler: chunked, cow)'],
  ['cowComma', 'Transfer-Encoding: identity, chunked', 'desyncbox (smuggler: cow, chunked)'],
  ['contentEnc', 'Content-Encoding: chunked', 'desyncbox; smuggler exhaustive.py'],
  ['quoted', 'Transfer-Encoding: "chunked"', 'desyncbox; smuggler exhaustive.py'],
  ['aposed', "Transfer-Encoding: 'chunked'", 'desyncbox; smuggler exhaustive.py'],
  ['dualchunk', 'Transfer-Encoding: chunked\r\nTransfer-encoding: identity', 'desyncbox; http11probe SMUG-TE-DUPLICATE-HEADERS'],
  ['lazygrep', 'Transfer-Encoding: chunk', 'desyncbox; smuggler exhaustive.py'],
  ['0dsuffix', 'Transfer-Encoding: chunked\r', 'desyncbox; smuggler exhaustive.py'],
  ['tabsuffix', 'Transfer-Encoding: chunked\t', 'desyncbox; smuggler exhaustive.py'],
  ['revdualchunk', 'Transfer-Encoding: identity\r\nTransfer-Encoding: chunked', 'desyncbox (smuggler: cow then chunked)'],
  ['nested', 'Transfer-Encoding: identity, chunked, identity', 'desyncbox (smuggler: cow chunked bar)'],
  ['encode', 'Transfer-%45ncoding: chunked', 'desyncbox'],
  ['accentTE', 'Transf\x82r-Encoding: chunked', 'desyncbox; smuggler exhaustive.py'],
  ['accentCH', 'Transfer-Encoding: ch\x96nked', 'desyncbox; smuggler exhaustive.py'],
  ['qencode', 'Transfer-Encoding: =?iso-8859-1?B?Y2h1bmtlZA==?=', 'desyncbox'],
  ['qencodeutf', 'Transfer-Encoding: =?UTF-8?B?Y2h1bmtlZA==?=', 'desyncbox'],
  ['bodysplit', 'X: y\r\nFoo: barn\n\nTransfer-Encoding: chunked', 'desyncbox'],
  ['badwrap', 'X-Blah-Ignore: chunked\r\n Transfer-Encoding: chunked', 'desyncbox'],
  ['nested (smuggler)', 'Transfer-Encoding: cow chunked bar', 'smuggler exhaustive.py'],
  // Http11Probe SmugglingSuite values.
  ['xchunked', 'Transfer-Encoding: xchunked', 'http11probe SMUG-TE-XCHUNKED'],
  ['trailing space', 'Transfer-Encoding: chunked ', 'http11probe SMUG-TE-TRAILING-SPACE'],
  ['chunked, chunked', 'Transfer-Encoding: chunked, chunked', 'http11probe SMUG-TE-DOUBLE-CHUNKED'],
  ['Chunked', 'Transfer-Encoding: Chunked', 'http11probe SMUG-TE-CASE-MISMATCH'],
  ['empty value', 'Transfer-Encoding: ', 'http11probe SMUG-TE-EMPTY-VALUE'],
  ['leading comma', 'Transfer-Encoding: , chunked', 'http11probe SMUG-TE-LEADING-COMMA'],
  ['trailing comma', 'Transfer-Encoding: chunked,', 'http11probe SMUG-TE-TRAILING-COMMA'],
  ['identity', 'Transfer-Encoding: identity', 'http11probe SMUG-TE-IDENTITY'],
  ['chunked;ext=val', 'Transfer-Encoding: chunked;ext=val', 'http11probe SMUG-CHUNKED-WITH-PARAMS'],
  ['chunked, gzip', 'Transfer-Encoding: chunked, gzip', 'http11probe SMUG-TE-NOT-FINAL-CHUNKED'],
  ['obs-fold', 'Transfer-Encoding:\r\n chunked', 'http11probe SMUG-TE-OBS-FOLD'],
  ['vertical tab', 'Transfer-Encoding: \x0bchunked', 'http11probe SMUG-TE-VTAB'],
  ['form feed', 'Transfer-Encoding: \x0cchunked', 'http11probe SMUG-TE-FORMFEED'],
  ['NUL after value', 'Transfer-Encoding: chunked\x00', 'http11probe SMUG-TE-NULL'],
  // http-garden trophies.
  [',chunked', 'Transfer-Encoding: ,chunked', 'http-garden TROPHIES (,chunked)'],
  ['two chunked fields', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked', 'http-garden TROPHIES (multiple Transfer-Encoding: chunked)'],
  ['\\xa0chunked\\xa0', 'Transfer-Encoding: \xa0chunked\xa0', 'http-garden TROPHIES (\\xa0 stripped)'],
  ['\\xffchunked\\xff', 'Transfer-Encoding: \xffchunked\xff', 'http-garden TROPHIES (bytes > 0x80 stripped)'],
  ['blegh', 'Transfer-Encoding: blegh', 'http-garden TROPHIES (unknown codings as chunked)'],
  ['Transfer-\\r\\nEncoding', 'Transfer-\r\nEncoding: chunked', 'http-garden TROPHIES (field line without a colon)'],
];

// DesyncBox.getSpecialChars() (0, 9, 11, 12, 13, 127) at its four positions.
for (const i of [0x00, 0x09, 0x0b, 0x0c, 0x0d, 0x7f]) {
  TE_GADGETS.push([`spacefix1:${i}`, `Transfer-Encoding:${ch(i)}chunked`, 'desyncbox (spacefix1)']);
  TE_GADGETS.push([`prefix1:${i}`, `Transfer-Encoding: ${ch(i)}chunked`, 'desyncbox (prefix1)']);
  TE_GADGETS.push([`suffix1:${i}`, `Transfer-Encoding: chunked${ch(i)}`, 'desyncbox (suffix1)']);
  TE_GADGETS.push([`namesuffix1:${i}`, `Transfer-Encoding${ch(i)}: chunked`, 'desyncbox (namesuffix1)']);
}
// smuggler default.py: its bytes (less 0x04) at four positions...
for (const i of [0x01, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1f, 0x20, 0x7f, 0xa0, 0xff]) {
  TE_GADGETS.push([`midspace-${hex2(i)}`, `Transfer-Encoding:${ch(i)}chunked`, 'smuggler default.py']);
  TE_GADGETS.push([`postspace-${hex2(i)}`, `Transfer-Encoding${ch(i)}: chunked`, 'smuggler default.py']);
  TE_GADGETS.push([`prespace-${hex2(i)}`, `${ch(i)}Transfer-Encoding: chunked`, 'smuggler default.py']);
  TE_GADGETS.push([`endspace-${hex2(i)}`, `Transfer-Encoding: chunked${ch(i)}`, 'smuggler default.py']);
}
// ...and its line-splicing positions for CR and SP.
for (const i of [0x0d, 0x20]) {
  TE_GADGETS.push([`xprespace-${hex2(i)}`, `X: X${ch(i)}Transfer-Encoding: chunked`, 'smuggler default.py']);
  TE_GADGETS.push([`endspacex-${hex2(i)}`, `Transfer-Encoding: chunked${ch(i)}X: X`, 'smuggler default.py']);
  TE_GADGETS.push([`rxprespace-${hex2(i)}`, `X: X\r${ch(i)}Transfer-Encoding: chunked`, 'smuggler default.py']);
  TE_GADGETS.push([`xnprespace-${hex2(i)}`, `X: X${ch(i)}\nTransfer-Encoding: chunked`, 'smuggler default.py']);
  TE_GADGETS.push([`endspacerx-${hex2(i)}`, `Transfer-Encoding: chunked\r${ch(i)}X: X`, 'smuggler default.py']);
  TE_GADGETS.push([`endspacexn-${hex2(i)}`, `Transfer-Encoding: chunked${ch(i)}\nX: X`, 'smuggler default.py']);
}

/** A readable rendering of a gadget for test names. */
export function show(s: string): string {
  return JSON.stringify(s)
    .slice(1, -1)
    .replace(/[\x80-\xff]/g, (c) => `\\x${hex2(c.charCodeAt(0))}`);
}

function dedupe(cases: Case[]): Case[] {
  const seen = new Set<string>();
  return cases.filter((c) => {
    if (seen.has(c.bytes)) return false;
    seen.add(c.bytes);
    return true;
  });
}

const TE_CLTE: Case[] = dedupe(
  TE_GADGETS.map(([tech, gadget, source]) => ({
    family: 'te-clte' as const,
    name: `TE: "${show(gadget)}" + CL (${tech})`,
    source,
    bytes: clte(gadget),
    expect: 'model' as const,
    // A proxy may refuse any Transfer-Encoding look-alike next to a Content-Length.
    mayReject: true,
  })),
).concat([
  { family: 'te-clte', name: 'TE: "Transfer-Encoding: chunked" + CL in HTTP/1.0 (http1.0)', source: 'desyncbox (http1.0)', bytes: clte('Transfer-Encoding: chunked', '1.0'), expect: 'model' },
  {
    family: 'te-clte',
    name: 'TE: CL.TE with a poison byte after the last chunk (CL 6, body "0\\r\\n\\r\\nX")',
    source: 'http11probe SMUG-CLTE-DESYNC; smuggler _check_tecl',
    bytes: `POST /t HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX`,
    expect: 'model',
  },
  {
    family: 'te-clte',
    name: 'TE: CL.TE with a smuggled HEAD',
    source: 'http11probe SMUG-CLTE-SMUGGLED-HEAD',
    bytes: (() => {
      const body = `0\r\n\r\nHEAD /smuggled HTTP/1.1\r\n${H}\r\n`;
      return `POST /t HTTP/1.1\r\n${H}Content-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`;
    })(),
    expect: 'model',
  },
  {
    family: 'te-clte',
    name: 'TE: CL.TE with "Content-Length: +N"',
    source: 'http11probe SMUG-CLTE-SMUGGLED-GET-CL-PLUS',
    bytes: `POST /t HTTP/1.1\r\n${H}Content-Length: +${CLTE_BODY.length}\r\nTransfer-Encoding: chunked\r\n\r\n${CLTE_BODY}`,
    expect: 'model',
  },
  {
    family: 'te-clte',
    name: 'TE: CL.TE with "Content-Length: Nx"',
    source: 'http11probe SMUG-CLTE-SMUGGLED-GET-CL-NON-NUMERIC',
    bytes: `POST /t HTTP/1.1\r\n${H}Content-Length: ${CLTE_BODY.length}x\r\nTransfer-Encoding: chunked\r\n\r\n${CLTE_BODY}`,
    expect: 'model',
  },
  {
    family: 'te-clte',
    name: 'TE: ",chunked" + "Content-Length: 5" with a bare "0r\\n" body',
    source: 'http-garden TROPHIES (,chunked forwarded with CL)',
    bytes: `GET /t HTTP/1.1\r\n${H}Transfer-Encoding: ,chunked\r\nContent-Length: 5\r\n\r\n0r\n\r\n`,
    expect: 'model',
  },
]);

/** Genuine Transfer-Encoding variants (RFC 9112 reads them as chunked): with a short CL, only TE framing is safe. */
const GENUINE_TE: (readonly [string, string, string])[] = [
  ['vanilla', 'Transfer-Encoding: chunked', 'http11probe SMUG-TECL-SMUGGLED-GET; desyncbox vanilla'],
  ['nospace1', 'Transfer-Encoding:chunked', 'desyncbox'],
  ['valueprefix1', 'Transfer-Encoding:  chunked', 'desyncbox'],
  ['tab before value', 'Transfer-Encoding:\tchunked', 'http11probe SMUG-TE-TAB-BEFORE-VALUE; smuggler tabprefix1'],
  ['tabsuffix', 'Transfer-Encoding: chunked\t', 'desyncbox'],
  ['trailing space', 'Transfer-Encoding: chunked ', 'http11probe SMUG-CLTE-SMUGGLED-GET-TE-TRAILING-SPACE'],
  ['multiCase', 'tRANSFER-ENCODING: chunked', 'desyncbox'],
  ['Chunked', 'Transfer-Encoding: Chunked', 'http11probe SMUG-CLTE-SMUGGLED-GET-TE-CASE-MISMATCH'],
  ['CHUNKED', 'TRANSFER-ENCODING: CHUNKED', 'smuggler exhaustive.py (yelling)'],
  ['leading comma', 'Transfer-Encoding: , chunked', 'http11probe SMUG-CLTE-SMUGGLED-GET-TE-LEADING-COMMA'],
  [',chunked', 'Transfer-Encoding: ,chunked', 'http-garden TROPHIES'],
  ['trailing comma', 'Transfer-Encoding: chunked,', 'http11probe SMUG-TE-TRAILING-COMMA'],
  ['connection', 'Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked', 'desyncbox'],
  ['xnprespace-0d', 'X: X\r\nTransfer-Encoding: chunked', 'smuggler default.py'],
];
const TE_TECL: Case[] = GENUINE_TE.map(([tech, gadget, source]) => ({
  family: 'te-tecl' as const,
  name: `TE.CL: "${show(gadget)}" + "Content-Length: 4" (${tech})`,
  source,
  bytes: tecl(gadget),
  expect: 'model' as const,
}));
TE_TECL.push({ family: 'te-tecl', name: 'TE.CL: "Transfer-Encoding: chunked" + "Content-Length: 4" in HTTP/1.0', source: 'desyncbox (http1.0)', bytes: tecl('Transfer-Encoding: chunked', '1.0'), expect: 'model' });
TE_TECL.push({
  family: 'te-tecl',
  name: 'TE.CL: duplicate Transfer-Encoding (chunked, identity) + short CL',
  source: 'http11probe SMUG-TE-DUPLICATE-HEADERS-SMUGGLED-GET',
  bytes: tecl('Transfer-Encoding: chunked\r\nTransfer-Encoding: identity'),
  expect: 'model',
});

// --- Content-Length ------------------------------------------------------------------------

function clCase(value: string, body: string, source: string, extra = ''): Case {
  return {
    family: 'content-length',
    name: `CL: "Content-Length: ${show(value)}"${extra === '' ? '' : ` + ${show(extra.trim())}`} with a ${body.length}-byte body`,
    source,
    bytes: `POST /t HTTP/1.1\r\n${H}${extra}Content-Length: ${value}\r\n\r\n${body}`,
    expect: 'model',
  };
}
const CL: Case[] = [
  clCase('+5', 'hello', 'desyncbox CL-plus; http11probe RFC9112-6.1-CL-PLUS-SIGN'),
  clCase('-5', 'hello', 'desyncbox CL-minus'),
  clCase('05', 'hello', 'desyncbox CL-pad'),
  clCase('000000000005', 'hello', 'desyncbox CL-bigpad'),
  clCase('0 5', 'hello', 'desyncbox CL-spacepad'),
  clCase('5e0', 'hello', 'desyncbox CL-e'),
  clCase('5.0', 'hello', 'desyncbox CL-dec'),
  clCase('0, 5', 'hello', 'desyncbox CL-commaprefix'),
  clCase('5, 0', 'hello', 'desyncbox CL-commasuffix'),
  clCase('5', 'hello', 'desyncbox CL-error', 'X-Invalid Y: \r\n'),
  clCase('005', 'hello', 'http11probe SMUG-CL-LEADING-ZEROS'),
  clCase('0x5', 'hello', 'http11probe SMUG-CL-HEX-PREFIX'),
  clCase('0o5', 'hello', 'http11probe SMUG-CL-OCTAL'),
  clCase('1_0', 'helloworld', 'http11probe SMUG-CL-UNDERSCORE'),
  clCase('-0', '', 'http11probe SMUG-CL-NEGATIVE-ZERO'),
  clCase('00', '', 'http11probe SMUG-CL-DOUBLE-ZERO'),
  clCase('0200', 'z'.repeat(200), 'http11probe SMUG-CL-LEADING-ZEROS-OCTAL'),
  clCase('5 ', 'hello', 'http11probe SMUG-CL-TRAILING-SPACE'),
  clCase(' 5', 'hello', 'http11probe SMUG-CL-EXTRA-LEADING-SP'),
  clCase('\t5', 'hello', 'http11probe MAL-CL-TAB-BEFORE-VALUE'),
  clCase('1 0', 'hello12345', 'http11probe SMUG-CL-INTERNAL-SPACE'),
  clCase('5, 5', 'hello', 'http11probe SMUG-CL-COMMA-SAME'),
  clCase('5, 5, 5', 'hello', 'http11probe SMUG-CL-COMMA-TRIPLE'),
  clCase('5, 10', 'hello', 'http11probe SMUG-CL-COMMA-DIFFERENT'),
  clCase('', '', 'http11probe MAL-CL-EMPTY; http-garden TROPHIES (empty Content-Length)'),
  clCase('1Z', 'Z', 'http-garden TROPHIES (longest valid prefix)'),
  clCase('+1_0', '0123456789', 'http-garden TROPHIES (Python int())'),
  clCase('-1', '', 'http11probe SMUG-CL-NEGATIVE'),
  clCase('-48', '', 'http-garden TROPHIES (negative Content-Length)'),
  clCase('010', '01234567', 'http-garden TROPHIES (strtoll base 0)'),
  clCase('0x10', 'Z', 'http-garden TROPHIES (0x-prefixed Content-Length)'),
  {
    family: 'content-length',
    name: 'CL: two Content-Length fields, 5 then 10',
    source: 'http11probe SMUG-DUPLICATE-CL',
    bytes: `POST /t HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 10\r\n\r\nhelloworld`,
    expect: 'model',
  },
  {
    family: 'content-length',
    name: 'CL: two Content-Length fields, 5 and 5',
    source: 'http-garden TROPHIES (multiple Content-Length)',
    bytes: `POST /t HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`,
    expect: 'model',
  },
  {
    family: 'content-length',
    name: 'CL: "Content-Length: 0" then "Content-Length: 31" with a smuggled GET as the body',
    source: 'http-garden TROPHIES (multiple Content-Length, prioritising the last)',
    bytes: `POST /t HTTP/1.1\r\n${H}Content-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    expect: 'model',
  },
  {
    family: 'content-length',
    name: 'CL: an empty Content-Length before a real one, smuggling a POST',
    source: 'http-garden TROPHIES (empty Content-Length prioritised)',
    bytes: (() => {
      const smug = `POST /smuggled HTTP/1.1\r\n${H}Content-Length: 18\r\n\r\n`;
      return `GET /t HTTP/1.1\r\n${H}Content-Length: \r\nContent-Length: ${smug.length}\r\n\r\n${smug}`;
    })(),
    expect: 'model',
  },
  {
    family: 'content-length',
    name: 'CL: "Content-Length : 34" (space before the colon) hiding a second request',
    source: 'http-garden TROPHIES (whitespace before the colon)',
    bytes: `GET /t HTTP/1.1\r\n${H}Content-Length : ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    expect: 'model',
  },
  {
    family: 'content-length',
    name: 'CL: "Content-Length\\x85: 10"',
    source: 'http-garden TROPHIES (\\x85 stripped from names)',
    bytes: `GET /t HTTP/1.1\r\n${H}Content-Length\x85: 10\r\n\r\n0123456789`,
    expect: 'model',
  },
  {
    family: 'content-length',
    name: 'CL: "Content-Length 10" (no colon)',
    source: 'http-garden TROPHIES (header lines without a colon)',
    bytes: `GET /t HTTP/1.1\r\n${H}Content-Length 10\r\n\r\n0123456789`,
    expect: 'model',
  },
  {
    family: 'content-length',
    name: 'CL: "\\tContent-Length: 1" as the first field line (obs-fold onto the request line)',
    source: 'http-garden TROPHIES (leading whitespace on the first field line)',
    bytes: `GET /t HTTP/1.1\r\n\tContent-Length: 1\r\n${H}\r\nX`,
    expect: 'model',
  },
  {
    family: 'content-length',
    name: 'CL: Content-Length 0 with the next request in the same packet',
    source: 'http-garden TROPHIES (pipelined requests read as the body)',
    bytes: `POST /t HTTP/1.1\r\nContent-Length: 0\r\nConnection:keep-alive\r\n${H}id: 0\r\n\r\nGET /t2 HTTP/1.1\r\n${H}id: 1\r\n\r\n`,
    expect: 'model',
  },
  { family: 'content-length', name: 'CL: GET with a Content-Length body', source: 'http11probe COMP-GET-WITH-CL-BODY; http-garden TROPHIES (GET bodies stripped)', bytes: `GET /t HTTP/1.1\r\n${H}Content-Length: 10\r\n\r\n1234567890`, expect: 'model' },
  { family: 'content-length', name: 'CL: OPTIONS with a Content-Length body', source: 'http11probe SMUG-OPTIONS-CL-BODY', bytes: `OPTIONS /t HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`, expect: 'model' },
  { family: 'content-length', name: 'CL: HEAD with a Content-Length body', source: 'http11probe SMUG-HEAD-CL-BODY', bytes: `HEAD /t HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`, expect: 'model', headAt: [0] },
  {
    family: 'content-length',
    name: 'CL: "Expect: 100-continue" with the body sent at once',
    source: 'desyncbox CL-expect; http11probe SMUG-EXPECT-100-CL',
    bytes: `POST /t HTTP/1.1\r\n${H}Content-Length: 5\r\nExpect: 100-continue\r\n\r\nhello`,
    expect: 'model',
  },
  {
    family: 'content-length',
    name: 'CL: "Content-Length: 99999999999999999999" (overflow)',
    source: 'http11probe MAL-CL-OVERFLOW',
    bytes: `POST /t HTTP/1.1\r\n${H}Content-Length: 99999999999999999999\r\n\r\nhello`,
    expect: [reject([400, 413])],
  },
];

// --- chunked framing ("funky chunks") ----------------------------------------------------

function chunkCase(chunks: string, source: string, label: string, opts: { mayReject?: boolean; expect?: readonly Outcome[] } = {}): Case {
  return {
    family: 'chunked',
    name: `chunked: ${label}`,
    source,
    bytes: `POST /t HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${chunks}`,
    expect: opts.expect ?? 'model',
    ...(opts.mayReject === true ? { mayReject: true } : {}),
  };
}
const CHUNKED: Case[] = [
  chunkCase('5\r\nhello\r\n0\r\n\r\n', 'http11probe COMP-CHUNKED-BODY', 'a well-formed body (control)'),
  chunkCase('5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n', 'http11probe COMP-CHUNKED-MULTI', 'two chunks (control)'),
  chunkCase('0\r\n\r\n', 'http11probe COMP-CHUNKED-EMPTY', 'an empty body'),
  chunkCase('A\r\n0123456789\r\n0\r\n\r\n', 'http11probe COMP-CHUNKED-HEX-UPPERCASE', 'an upper-case hex size'),
  chunkCase('5;a=b\r\nhello\r\n0\r\n\r\n', 'http11probe COMP-CHUNKED-EXTENSION; http-garden mutations.py (;abc=123)', '"5;a=b" (an extension)'),
  chunkCase('5;abc=123\r\nhello\r\n0;abc=123\r\n\r\n', 'http-garden mutations.py (_randomly_chunk)', 'extensions on every chunk, the last one too'),
  chunkCase('5 ;a=b\r\nhello\r\n0\r\n\r\n', 'breakwater (RFC 9112 §7.1.1 BWS before ";")', '"5 ;a=b" (whitespace before the extension)', { mayReject: true }),
  chunkCase('5;a="b c"\r\nhello\r\n0\r\n\r\n', 'breakwater (RFC 9112 §7.1.1 quoted extension value)', '"5;a=\\"b c\\"" (a quoted extension value)', { mayReject: true }),
  chunkCase('0000000005\r\nhello\r\n0\r\n\r\n', 'breakwater (RFC 9112 §7.1 1*HEXDIG)', 'leading zeros in the size', { mayReject: true }),
  chunkCase('5;\r\nhello\r\n0\r\n\r\n', 'http11probe SMUG-CHUNK-BARE-SEMICOLON', '"5;" (a bare semicolon)'),
  chunkCase('5;bad[=x\r\nhello\r\n0\r\n\r\n', 'http11probe SMUG-CHUNK-EXT-INVALID-TOKEN', '"5;bad[=x" (an invalid extension name)'),
  chunkCase('5;\nhello\r\n0\r\n\r\n', 'http11probe SMUG-CHUNK-EXT-LF', '"5;\\n" (LF ending the size line)'),
  chunkCase('5;a\rX\r\nhello\r\n0\r\n\r\n', 'http11probe SMUG-CHUNK-EXT-CR', '"5;a\\rX" (a bare CR in an extension)'),
  chunkCase('5;\x01ext\r\nhello\r\n0\r\n\r\n', 'http11probe SMUG-CHUNK-EXT-CTRL', 'a control byte in an extension'),
  chunkCase('0x5\r\nhello\r\n0\r\n\r\n', 'http11probe SMUG-CHUNK-HEX-PREFIX', '"0x5"'),
  chunkCase('+5\r\nhello\r\n0\r\n\r\n', 'http11probe SMUG-CHUNK-SIZE-PLUS', '"+5"'),
  chunkCase('-1\r\nhello\r\n0\r\n\r\n', 'http11probe SMUG-CHUNK-NEGATIVE', '"-1"'),
  chunkCase('1_0\r\nhello world!!!!!\r\n0\r\n\r\n', 'http11probe SMUG-CHUNK-UNDERSCORE', '"1_0"'),
  chunkCase(' 5\r\nhello\r\n0\r\n\r\n', 'http11probe SMUG-CHUNK-LEADING-SP', '" 5" (leading space)'),
  chunkCase('5 \r\nhello\r\n0\r\n\r\n', 'http11probe SMUG-CHUNK-SIZE-TRAILING-OWS', '"5 " (trailing space, no extension)'),
  chunkCase('5\r\nhello0\r\n\r\n', 'http11probe SMUG-CHUNK-MISSING-TRAILING-CRLF', 'chunk data without its CRLF'),
  chunkCase('5\r\nhello\n0\r\n\r\n', 'http11probe SMUG-CHUNK-LF-TERM', 'chunk data ended by a bare LF'),
  chunkCase('5\nhello\r\n0\r\n\r\n', 'breakwater (funky chunks: LF-only size line)', 'a size line ended by a bare LF'),
  chunkCase('5\rhello\r\n0\r\n\r\n', 'http11probe SMUG-CHUNK-BARE-CR-TERM', 'a size line ended by a bare CR'),
  chunkCase('5\r\nhello!!\r\n0\r\n\r\n', 'http11probe SMUG-CHUNK-SPILL', 'chunk data longer than its size'),
  chunkCase('3\r\nhello\r\n0\r\n\r\n', 'breakwater hostile.chaos.ts (chunk data longer than its size)', '"3" with five bytes of data'),
  chunkCase('5\r\nhello\r\n0\r\n\n', 'http11probe SMUG-CHUNK-LF-TRAILER', 'the last chunk ended by a bare LF'),
  chunkCase('fffffffffffffffffff\r\nhello\r\n0\r\n\r\n', 'http11probe MAL-CHUNK-SIZE-OVERFLOW', 'a size that overflows 64 bits', { expect: [reject([400, 413]), { name: 'closed without an answer', items: [], closed: true }] }),
  chunkCase(`5;${'x'.repeat(65_536)}\r\nhello\r\n0\r\n\r\n`, 'http11probe MAL-CHUNK-EXT-64K', 'a 64 KiB extension', { expect: [reject([400, 413, 431]), { name: 'closed without an answer', items: [], closed: true }] }),
  chunkCase('5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n', 'http11probe SMUG-TRAILER-CL', 'a Content-Length trailer', { mayReject: true }),
  chunkCase('5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n', 'http11probe SMUG-TRAILER-TE', 'a Transfer-Encoding trailer', { mayReject: true }),
  chunkCase('5\r\nhello\r\n0\r\nHost: evil.example\r\n\r\n', 'http11probe SMUG-TRAILER-HOST', 'a Host trailer', { mayReject: true }),
  chunkCase('5\r\nhello\r\n0\r\nAuthorization: Bearer evil\r\n\r\n', 'http11probe SMUG-TRAILER-AUTH', 'an Authorization trailer', { mayReject: true }),
  chunkCase('5\r\nhello\r\n0\r\nContent-Type: text/evil\r\n\r\n', 'http11probe SMUG-TRAILER-CONTENT-TYPE', 'a Content-Type trailer', { mayReject: true }),
  chunkCase('0\r\nX:POST /smuggled HTTP/1.1\r\n\r\n', 'http-garden TROPHIES (trailers kept verbatim)', 'a trailer that reads like a request line', { mayReject: true }),
  chunkCase('\r\n\r\n', 'http-garden TROPHIES (empty chunk-size read as 0)', 'an empty size line'),
  chunkCase(`0_2e\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\n0\r\n\r\n`, 'http-garden TROPHIES (Python int() chunk sizes)', '"0_2e" hiding a second request'),
  chunkCase(`5\r\r;ABCD\r\n34\r\nE\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\n0\r\n\r\n`, 'http-garden TROPHIES (\\rX ends a chunk line)', '"5\\r\\r;ABCD"'),
  chunkCase(`41;a=b\r\r${'X'.repeat(65)}\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: api.test\r\nContent-Length: 412\r\n\r\n0\r\n\r\n`, 'http-garden TROPHIES (h2o: \\r\\r as \\r\\n)', '"41;a=b\\r\\r"'),
  chunkCase('1these-bytes-never-get-validated\r\nZ\r\n0\r\n\r\n', 'http-garden TROPHIES (unvalidated chunk-size suffix)', 'junk after the size'),
  chunkCase(`INVALID!!!\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`, 'http-garden TROPHIES (invalid chunk, parsing resumes after it)', 'a junk size line followed by a request'),
  chunkCase('           0\r\n\r\n', 'http-garden TROPHIES (leading whitespace in chunk-size)', 'eleven spaces before the size'),
  chunkCase('-0x0\r\n\r\n', 'http-garden TROPHIES (+, -, 0x prefixes)', '"-0x0"'),
  chunkCase('Z\r\nZZ\r\nZZZ\r\n\r\n', 'http-garden TROPHIES (Akamai: invalid chunk sizes)', '"Z" as a size'),
  chunkCase(`2\r\r;a\r\n02\r\n41\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}Content-Length: 430\r\n\r\n0\r\n\r\n`, 'http-garden TROPHIES (\\r before ";")', '"2\\r\\r;a"'),
  chunkCase('1\r0\n', 'http-garden TROPHIES (bare CR in a size line)', '"1\\r0\\n"'),
  chunkCase('a\r\n0123456789\n0\r\n\r\n', 'http-garden TROPHIES (bare LF as chunk terminator)', 'a 10-byte chunk ended by a bare LF'),
  chunkCase('17\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n\r\n0\r\n\r\n', 'http-garden TROPHIES (extra CRLF before the last chunk)', 'a chunk whose data reads like a last chunk and a request'),
  chunkCase(`5\r\nhello\r\n0\r\n\r\n${SMUGGLED.slice(0, 10)}`, 'http-garden mutations.py (_split_random_request)', 'a complete body followed by half a request', { expect: [{ name: 'forwarded, the half request waits or is refused', items: [{ up: 'POST /t', body: 'hello' }, { err: 400 }], closed: 'any' }, { name: 'forwarded, then closed on the broken request', items: [{ up: 'POST /t', body: 'hello' }], closed: 'any' }] }),
];

// --- field-line syntax ----------------------------------------------------------------------

function fieldCase(name: string, bytes: string, source: string, expect: 'model' | readonly Outcome[] = 'model'): Case {
  return { family: 'field-syntax', name: `field syntax: ${name}`, source, bytes, expect };
}
const FIELDS: Case[] = [
  fieldCase('obs-fold on an ordinary field', `GET /t HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n`, 'http11probe RFC9112-5.1-OBS-FOLD', [reject(400), FWD_T]),
  fieldCase('an empty field name (": ignored")', `GET /t HTTP/1.1\r\n: ignored\r\n${H}\r\n`, 'http-garden TROPHIES (\\r\\n:\\r\\n ends the head)'),
  fieldCase('a lone colon line before a field', `GET /t HTTP/1.1\r\n${H}:\r\nI: am chopped off\r\n\r\n`, 'http-garden TROPHIES (":" chops the head)'),
  fieldCase('a bare CR splitting one field into two', `GET /t HTTP/1.1\r\n${H}Visible: :/\rSmuggled: :)\r\n\r\n`, 'http-garden TROPHIES (\\r as a line terminator)'),
  fieldCase('a bare CR inside a value', `GET /t HTTP/1.1\r\n${H}Header: va\rlue\r\n\r\n`, 'http-garden TROPHIES (\\r permitted in values); http11probe SMUG-BARE-CR-HEADER-VALUE'),
  fieldCase('a NUL inside a value', `GET /t HTTP/1.1\r\n${H}Test: test\x00THESE BYTES GET DROPPED\r\n\r\n`, 'http-garden TROPHIES (values truncated at \\x00); http11probe MAL-NUL-IN-HEADER-VALUE'),
  fieldCase('a NUL ending a value', `GET /t HTTP/1.1\r\n${H}Evil: evil\x00\r\n\r\n`, 'http-garden TROPHIES (\\x00 stripped from ends)'),
  fieldCase('a bare LF inside a field name', `GET /t HTTP/1.1\r\n${H}Te\nst: test\r\n\r\n`, 'http-garden TROPHIES (field lines with no colon forwarded)'),
  fieldCase('a field line without a colon', `GET /t HTTP/1.1\r\n${H}X-No-Colon\r\n\r\n`, 'http11probe RFC9112-5-HEADER-NO-COLON'),
  fieldCase('"\\r\\n\\rZ" ending the head early', `GET /t HTTP/1.1\r\n${H}\rZGET /smuggled: HTTP/1.1\r\n${H}\r\n`, 'http-garden TROPHIES (\\r\\n\\rX ends the head)'),
  fieldCase('a non-ASCII byte starting a field name', `GET /t HTTP/1.1\r\n${H}\xefoo: bar\r\n\r\n`, 'http-garden TROPHIES (\\xef in names); http11probe MAL-NON-ASCII-HEADER-NAME'),
  fieldCase('every forbidden byte in a field name', `GET /t HTTP/1.1\r\n${H}\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\x0b\x0c\x0e\x0f\x10 "(),/;<=>?@[/]{}: whatever\r\n\r\n`, 'http-garden TROPHIES (forbidden name bytes)'),
  fieldCase('obs-text at both ends of a value', `GET /t HTTP/1.1\r\n${H}User: \x85admin\xa0\r\n\r\n`, 'http-garden TROPHIES (\\xa0 and \\x85 stripped from values)', [FWD_T, reject(400)]),
  fieldCase('a DEL byte in a value', `GET /t HTTP/1.1\r\n${H}X-A: a\x7fb\r\n\r\n`, 'http11probe MAL-CONTROL-CHARS-HEADER'),
  fieldCase('a vertical tab in a value', `GET /t HTTP/1.1\r\n${H}X-A:\x0bb\r\n\r\n`, 'http11probe MAL-CONTROL-CHARS-HEADER'),
  fieldCase('whitespace before the first field line', `GET /t HTTP/1.1\r\n ${H}\r\n`, 'http11probe COMP-WHITESPACE-BEFORE-HEADERS'),
  fieldCase('a tab inside a field name', `GET /t HTTP/1.1\r\n${H}X\tA: b\r\n\r\n`, 'http11probe NORM-TAB-IN-NAME'),
  fieldCase('an empty line before the request line', `\r\nGET /t HTTP/1.1\r\n${H}\r\n`, 'http11probe COMP-LEADING-CRLF', [FWD_T, reject(400)]),
  fieldCase('junk after a request that asked to close', `GET /t HTTP/1.1\r\n${H}Connection: close\r\n\r\nInvalid\r\n\r\n`, 'http-garden TROPHIES (data after Connection: close)', [{ name: 'answered, then closed', items: [{ up: 'GET /t' }], closed: true }]),
  fieldCase('"GET /\\nHTTP/1.1" (LF as a request-line separator)', `GET /\nHTTP/1.1\r\n${H}\r\n`, 'http-garden TROPHIES (\\n separating the request line)'),
  fieldCase('"HTTP/\\r\\r1.1"', `GET /t HTTP/\r\r1.1\r\n${H}\r\n`, 'http-garden TROPHIES (\\r in the version)'),
  fieldCase('version HTTP/1.32', `GET /t HTTP/1.32\r\n${H}\r\n`, 'http-garden TROPHIES (multi-digit minor)'),
  fieldCase('version HTTP/4294967295.255', `GET /t HTTP/4294967295.255\r\n${H}\r\n`, 'http-garden TROPHIES (overflowing version)'),
  fieldCase('a lower-case version', `GET /t http/1.1\r\n${H}\r\n`, 'http11probe COMP-VERSION-CASE'),
  fieldCase('a tab in the request line', `GET\t/t HTTP/1.1\r\n${H}\r\n`, 'http11probe COMP-REQUEST-LINE-TAB'),
  // http11probe MAL-H2-PREFACE (the HTTP/2 preface as an HTTP/1.1 request line) is no
  // longer malformed here: every listener speaks h2c with prior knowledge, so the
  // preface opens an HTTP/2 connection. Hostile HTTP/2 input is test/chaos/h2.chaos.ts.
];

// --- underscore field names ---------------------------------------------------------------

const UNDERSCORE: Case[] = [
  {
    family: 'underscore',
    name: 'underscore: "Transfer_Encoding: chunked" + CL is framed by CL and the field is dropped',
    source: 'http11probe NORM-UNDERSCORE-TE, SMUG-TRANSFER_ENCODING; desyncbox underjoin1',
    bytes: `POST /t HTTP/1.1\r\n${H}Transfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello`,
    expect: [forwarded('POST /t', 'hello')],
  },
  {
    family: 'underscore',
    name: 'underscore: "Content_Length: 5" is not a length, and the field is dropped',
    source: 'http11probe NORM-UNDERSCORE-CL',
    // The five body bytes are not a request: a proxy that ignored the field answers 400 to them.
    bytes: `POST /t HTTP/1.1\r\n${H}Content_Length: 5\r\n\r\n[[[[[`,
    expect: [{ name: 'POST forwarded with no body, then 400 for the stray bytes', items: [{ up: 'POST /t', body: '' }, { err: 400 }], closed: true }, reject(400)],
  },
  { family: 'underscore', name: 'underscore: "X_Forwarded_For" is dropped', source: 'breakwater (issue: underscore names forwarded); nginx underscores_in_headers', bytes: `GET /t HTTP/1.1\r\n${H}X_Forwarded_For: 10.0.0.1\r\n\r\n`, expect: [FWD_T] },
  { family: 'underscore', name: 'underscore: "X_Real_IP" is dropped', source: 'breakwater (issue: underscore names forwarded)', bytes: `GET /t HTTP/1.1\r\n${H}X_Real_IP: 10.0.0.1\r\n\r\n`, expect: [FWD_T] },
  { family: 'underscore', name: 'underscore: "Proxy_Authorization" is dropped', source: 'breakwater (issue: underscore names forwarded)', bytes: `GET /t HTTP/1.1\r\n${H}Proxy_Authorization: Basic ZXZpbDpldmls\r\n\r\n`, expect: [FWD_T] },
  { family: 'underscore', name: 'underscore: "Connection_" and "_Upgrade" are dropped', source: 'breakwater (issue: underscore names forwarded)', bytes: `GET /t HTTP/1.1\r\n${H}Connection_: close\r\n_Upgrade: websocket\r\n\r\n`, expect: [FWD_T] },
];

// --- HTTP/1.0 with Transfer-Encoding --------------------------------------------------------

const HTTP10: Case[] = [
  { family: 'http10', name: 'HTTP/1.0: Transfer-Encoding: chunked', source: 'http11probe SMUG-TE-HTTP10; RFC 9112 §6.1', bytes: `POST /t HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, expect: 'model' },
  { family: 'http10', name: 'HTTP/1.0: Transfer-Encoding: chunked + Connection: keep-alive', source: 'breakwater (issue: HTTP/1.0 + chunked keeps the connection open)', bytes: `POST /t HTTP/1.0\r\n${H}Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, expect: 'model' },
  { family: 'http10', name: 'HTTP/1.0: Transfer-Encoding: chunked + Content-Length + keep-alive', source: 'http11probe SMUG-TE-HTTP10', bytes: `POST /t HTTP/1.0\r\n${H}Connection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello`, expect: 'model' },
  {
    family: 'http10',
    name: 'HTTP/1.0: keep-alive + chunked, with a GET after the last chunk',
    source: 'desyncbox http1.0',
    bytes: `POST /t HTTP/1.0\r\n${H}Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    expect: 'model',
  },
  { family: 'http10', name: 'HTTP/1.0: keep-alive GET, then the next request (control)', source: 'http11probe COMP-HTTP10-DEFAULT-CLOSE', bytes: `GET /t HTTP/1.0\r\n${H}Connection: keep-alive\r\n\r\n`, expect: 'model' },
  { family: 'http10', name: 'HTTP/1.0: GET without keep-alive closes after its answer (control)', source: 'http11probe COMP-HTTP10-DEFAULT-CLOSE', bytes: `GET /t HTTP/1.0\r\n${H}\r\n`, expect: 'model' },
];

// --- Host values ---------------------------------------------------------------------------------

function hostCase(value: string, expect: readonly Outcome[], source: string): Case {
  return { family: 'host', name: `Host: "${show(value)}"`, source, bytes: `GET /t HTTP/1.1\r\nHost: ${value}\r\n\r\n`, expect };
}
const HOST: Case[] = [
  hostCase('evil.example@api.test', BAD_HOST, 'breakwater (issue: userinfo in Host); http11probe COMP-HOST-WITH-USERINFO'),
  hostCase('user@api.test', BAD_HOST, 'http11probe COMP-HOST-WITH-USERINFO'),
  hostCase('user:pass@api.test', BAD_HOST, 'http11probe COMP-HOST-WITH-USERINFO'),
  hostCase('api.test@evil.example', BAD_HOST, 'breakwater (issue: userinfo in Host)'),
  hostCase('api.test,evil.example', BAD_HOST, 'breakwater (issue: comma lists); http11probe SMUG-MULTIPLE-HOST-COMMA'),
  hostCase('api.test, api.test', BAD_HOST, 'http11probe SMUG-MULTIPLE-HOST-COMMA'),
  hostCase('evil.example,api.test', BAD_HOST, 'breakwater (issue: comma lists)'),
  hostCase('api.test/x', BAD_HOST, 'breakwater (issue: paths); http11probe COMP-HOST-WITH-PATH'),
  hostCase('api.test/', BAD_HOST, 'http11probe COMP-HOST-WITH-PATH'),
  hostCase('api.test?x=1', BAD_HOST, 'breakwater (RFC 9110 §7.2 Host = uri-host [ ":" port ])'),
  hostCase('api.test#frag', BAD_HOST, 'breakwater (RFC 9110 §7.2)'),
  hostCase('api.test\\evil.example', BAD_HOST, 'http11probe MAL-URL-BACKSLASH (in Host)'),
  hostCase('api.test:junk', BAD_HOST, 'breakwater (issue: junk ports)'),
  hostCase('api.test:99999', BAD_HOST, 'breakwater (issue: junk ports)'),
  hostCase('api.test:-1', BAD_HOST, 'breakwater (issue: junk ports)'),
  hostCase('api.test:80:80', BAD_HOST, 'breakwater (issue: junk ports)'),
  hostCase('api.test:8 0', BAD_HOST, 'breakwater (issue: junk ports)'),
  hostCase('api.test\xff', BAD_HOST, 'breakwater (issue: obs-text); http-garden TROPHIES (Host: \\xffa\\xff)'),
  hostCase('\xffapi.test\xff', BAD_HOST, 'http-garden TROPHIES (bytes > 0x80 stripped from values)'),
  hostCase('\xc3\xa1pi.test', BAD_HOST, 'breakwater (issue: obs-text; UTF-8 bytes)'),
  hostCase('api test', BAD_HOST, 'breakwater (RFC 9110 §7.2)'),
  hostCase('[::1', BAD_HOST, 'breakwater (RFC 3986 IP-literal)'),
  hostCase('[api.test]', BAD_HOST, 'breakwater (RFC 3986 IP-literal)'),
  hostCase('"api.test"', BAD_HOST, 'breakwater (RFC 9110 §7.2)'),
  hostCase('', [NO_ROUTE, ...BAD_HOST], 'http11probe COMP-HOST-EMPTY-VALUE'),
  hostCase('API.TEST', [FWD_T], 'breakwater (SPEC §3: host match is case-insensitive)'),
  hostCase('api.test:80', [FWD_T], 'breakwater (SPEC §3: the port is ignored)'),
  hostCase('api.test:', [FWD_T, ...BAD_HOST], 'breakwater (RFC 3986 port = *DIGIT)'),
  hostCase('api.test.', [FWD_T, NO_ROUTE, ...BAD_HOST], 'breakwater (trailing dot)'),
  hostCase('api.test ', [FWD_T], 'breakwater (trailing OWS is not part of the value)'),
  {
    family: 'host',
    name: 'Host: two identical Host fields',
    source: 'http11probe COMP-DUPLICATE-HOST-SAME',
    bytes: `GET /t HTTP/1.1\r\n${H}${H}\r\n`,
    expect: BAD_HOST,
  },
  {
    family: 'host',
    name: 'Host: two different Host fields, the routed one second',
    source: 'http11probe RFC9110-5.4-DUPLICATE-HOST',
    bytes: `GET /t HTTP/1.1\r\nHost: evil.example\r\n${H}\r\n`,
    expect: BAD_HOST,
  },
  {
    family: 'host',
    name: 'Host: "Host : api.test" (space before the colon)',
    source: 'http11probe RFC9110-5.6.2-SP-BEFORE-COLON',
    bytes: `GET /t HTTP/1.1\r\nHost : api.test\r\n\r\n`,
    expect: [reject(400)],
  },
  {
    family: 'host',
    name: 'Host: HTTP/1.0 with a userinfo Host',
    source: 'breakwater (issue: userinfo in Host)',
    bytes: `GET /t HTTP/1.0\r\nHost: evil.example@api.test\r\nConnection: keep-alive\r\n\r\n`,
    expect: BAD_HOST,
  },
  {
    family: 'host',
    name: 'Host: absolute-form "http://api.test/t" with Host evil.example (the authority wins)',
    source: 'http11probe SMUG-ABSOLUTE-URI-HOST-MISMATCH',
    bytes: `GET http://api.test/t HTTP/1.1\r\nHost: evil.example\r\n\r\n`,
    expect: [FWD_T],
  },
  {
    family: 'host',
    name: 'Host: absolute-form "http://evil.example/t" with Host api.test',
    source: 'http11probe SMUG-ABSOLUTE-URI-HOST-MISMATCH',
    bytes: `GET http://evil.example/t HTTP/1.1\r\n${H}\r\n`,
    expect: [NO_ROUTE],
  },
  ...(
    [
      ['http://user@api.test/t', 'breakwater (absolute-form with userinfo)'],
      ['http://user:pass@api.test/t', 'breakwater (absolute-form with userinfo)'],
      ['http://api.test@evil.example/t', 'breakwater (absolute-form with userinfo)'],
      ['http://evil.example@api.test/t', 'breakwater (absolute-form with userinfo)'],
      ['http://api.test:80@evil.example/t', 'breakwater hostile.chaos.ts (userinfo naming the routed host)'],
      ['http://api.test:junk/t', 'breakwater (issue: junk ports)'],
      ['http://api.test:99999/t', 'breakwater (issue: junk ports)'],
      ['http://api.test,evil.example/t', 'breakwater (issue: comma lists)'],
      ['http://api.test\\@evil.example/t', 'breakwater (backslash authority confusion)'],
    ] as const
  ).map(([target, source]): Case => ({ family: 'host', name: `Host: absolute-form "${target}"`, source, bytes: `GET ${target} HTTP/1.1\r\n${H}\r\n`, expect: BAD_HOST })),
];

// --- SSRF-ish targets to unrouted hosts ---------------------------------------------------

function ssrfTarget(target: string, source: string, expect: readonly Outcome[] = NO_ROUTE_OR_BAD): Case {
  return { family: 'ssrf', name: `SSRF: absolute-form "${show(target)}"`, source, bytes: `GET ${target} HTTP/1.1\r\n${H}\r\n`, expect };
}
function ssrfHost(host: string, source: string, expect: readonly Outcome[] = NO_ROUTE_OR_BAD): Case {
  return { family: 'ssrf', name: `SSRF: Host "${show(host)}"`, source, bytes: `GET /t HTTP/1.1\r\nHost: ${host}\r\n\r\n`, expect };
}
const SSRF_SRC = 'breakwater (SPEC §3: never an open proxy); PayloadsAllTheThings-style loopback spellings';
const SSRF: Case[] = [
  ssrfTarget('http://127.0.0.1:@CANARY@/', SSRF_SRC, [NO_ROUTE]),
  ssrfTarget('http://127.0.0.1:@RAW@/t', 'breakwater (the upstream endpoint\'s own authority is not a route)', [NO_ROUTE]),
  ssrfTarget('http://[::1]:@CANARY6@/', SSRF_SRC),
  ssrfTarget('http://[::ffff:127.0.0.1]:@CANARY@/', SSRF_SRC),
  ssrfTarget('http://[0:0:0:0:0:0:0:1]:@CANARY6@/', SSRF_SRC),
  ssrfTarget('http://0x7f000001:@CANARY@/', SSRF_SRC),
  ssrfTarget('http://2130706433:@CANARY@/', SSRF_SRC),
  ssrfTarget('http://017700000001:@CANARY@/', SSRF_SRC),
  ssrfTarget('http://0177.0.0.1:@CANARY@/', SSRF_SRC),
  ssrfTarget('http://127.1:@CANARY@/', SSRF_SRC),
  ssrfTarget('http://0:@CANARY@/', SSRF_SRC),
  ssrfTarget('http://0.0.0.0:@CANARY@/', SSRF_SRC),
  ssrfTarget('http://localhost:@CANARY@/', SSRF_SRC),
  ssrfTarget('http://localhost.:@CANARY@/', SSRF_SRC),
  ssrfTarget('http://LOCALHOST:@CANARY@/', SSRF_SRC),
  ssrfTarget('http://127.0.0.1.nip.io:@CANARY@/', SSRF_SRC),
  ssrfTarget('https://127.0.0.1:@CANARY@/', SSRF_SRC),
  ssrfTarget('ftp://127.0.0.1:@CANARY@/', SSRF_SRC, BAD_HOST),
  ssrfTarget('http://127.0.0.1:@CANARY@#@api.test/', SSRF_SRC, BAD_HOST),
  ssrfTarget('http://api.test.evil.example/', SSRF_SRC),
  ssrfTarget('http://evil.example/api.test', SSRF_SRC),
  ssrfTarget('http://xn--pi-7kc.test/', SSRF_SRC),
  ssrfTarget('http://\xd0\xb0pi.test/', 'breakwater (unicode homoglyph, raw UTF-8 bytes)'),
  ssrfTarget('http://api.test%00.evil.example/', SSRF_SRC),
  ssrfTarget('http://API.TEST/t', 'breakwater (SPEC §3: case-insensitive host; control)', [FWD_T]),
  ssrfTarget('http://api.test.:@CANARY@/t', 'breakwater (trailing dot, a canary port)', [FWD_T, ...NO_ROUTE_OR_BAD]),
  {
    family: 'ssrf',
    name: 'SSRF: origin-form "//127.0.0.1:@CANARY@/x" stays a path on the routed host',
    source: SSRF_SRC,
    bytes: `GET //127.0.0.1:@CANARY@/x HTTP/1.1\r\n${H}\r\n`,
    expect: [forwarded('GET //127.0.0.1:@CANARY@/x'), ...BAD_HOST],
  },
  ssrfHost('127.0.0.1:@CANARY@', SSRF_SRC, [NO_ROUTE]),
  ssrfHost('127.0.0.1:@RAW@', 'breakwater (the upstream endpoint\'s own authority is not a route)', [NO_ROUTE]),
  ssrfHost('[::1]:@CANARY6@', SSRF_SRC),
  ssrfHost('localhost:@CANARY@', SSRF_SRC),
  ssrfHost('0x7f000001:@CANARY@', SSRF_SRC),
  ssrfHost('2130706433:@CANARY@', SSRF_SRC),
  ssrfHost('127.1:@CANARY@', SSRF_SRC),
];

// --- requests pipelined after a refusal ------------------------------------------------

const BIG_HEAD = `X-Big: ${'a'.repeat(5000)}\r\n`;
const BIG_CHUNKS = `${'400\r\n' + 'c'.repeat(1024) + '\r\n'}${'400\r\n' + 'c'.repeat(1024) + '\r\n'}0\r\n\r\n`;
const GET_A = `GET /a HTTP/1.1\r\n${H}\r\n`;
const refusedAfterA = (status: number): readonly Outcome[] => [
  { name: `GET /a answered, then ${status}, then closed`, items: [{ up: 'GET /a' }, { err: status }], closed: true },
  { name: 'GET /a answered, then closed without the error', items: [{ up: 'GET /a' }], closed: true },
  { name: 'closed before GET /a was forwarded', items: [], closed: true },
];
const REFUSED: Case[] = [
  { family: 'refused-pipeline', name: 'after 413: a declared body over bodySize, then a request', source: 'breakwater (issue: requests after 413 still executed)', bytes: `POST /t HTTP/1.1\r\n${H}Content-Length: 2048\r\n\r\n${'b'.repeat(2048)}`, expect: [reject(413)] },
  { family: 'refused-pipeline', name: 'after 413: a chunked body over bodySize, then a request', source: 'breakwater (issue: requests after 413 still executed)', bytes: `POST /t HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${BIG_CHUNKS}`, expect: [reject(413)] },
  { family: 'refused-pipeline', name: 'after 413: "Expect: 100-continue" over bodySize, the next request sent as if it were the body', source: 'desyncbox CL-expect; http11probe MAL-POST-CL-HUGE-NO-BODY', bytes: `POST /t HTTP/1.1\r\n${H}Content-Length: 999999999\r\nExpect: 100-continue\r\n\r\n`, expect: [reject(413)] },
  { family: 'refused-pipeline', name: 'after 431: a head over headerSize, then a request', source: 'breakwater (issue: requests after 431 still executed); http11probe MAL-LONG-HEADER-VALUE', bytes: `GET /t HTTP/1.1\r\n${H}${BIG_HEAD}\r\n`, expect: [reject(431)] },
  { family: 'refused-pipeline', name: 'after 400: a malformed request line, then a request', source: 'breakwater (issue: requests after 400 still executed)', bytes: `GET /t HTTP/1.1 junk\r\n${H}\r\n`, expect: [reject(400)] },
  { family: 'refused-pipeline', name: 'after 400: TE + CL, then a request', source: 'http11probe SMUG-CLTE-CONN-CLOSE', bytes: `POST /t HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, expect: [reject(400)] },
  { family: 'refused-pipeline', name: 'after 400: a userinfo Host, then a request', source: 'breakwater (issue: invalid Host routed)', bytes: `GET /t HTTP/1.1\r\nHost: evil.example@api.test\r\n\r\n`, expect: BAD_HOST },
  { family: 'refused-pipeline', name: 'pipelined: GET /a, then a head over headerSize, then a request', source: 'breakwater (issue: requests after 431 still executed)', bytes: `${GET_A}GET /t HTTP/1.1\r\n${H}${BIG_HEAD}\r\n`, expect: refusedAfterA(431) },
  { family: 'refused-pipeline', name: 'pipelined: GET /a, then a body over bodySize, then a request', source: 'breakwater (issue: requests after 413 still executed)', bytes: `${GET_A}POST /t HTTP/1.1\r\n${H}Content-Length: 2048\r\n\r\n${'b'.repeat(2048)}`, expect: refusedAfterA(413) },
  { family: 'refused-pipeline', name: 'pipelined: GET /a, then TE + CL smuggling a GET, then a request', source: 'breakwater hostile.chaos.ts; http11probe SMUG-CLTE-PIPELINE', bytes: `${GET_A}${clte('Transfer-Encoding: chunked')}`, expect: refusedAfterA(400) },
  { family: 'refused-pipeline', name: 'pipelined: GET /a, then a bad request line, then a request', source: 'http-garden mutations.py (_concat_random_requests)', bytes: `${GET_A}G@T /t HTTP/1.1\r\n${H}\r\n`, expect: refusedAfterA(400) },
  {
    family: 'refused-pipeline',
    name: 'pipelined: GET /a/slow, then a bad Host, then a request',
    source: 'breakwater (SPEC §3: responses in request order)',
    bytes: `GET /a/slow HTTP/1.1\r\n${H}\r\nGET /t HTTP/1.1\r\nHost: api.test/x\r\n\r\n`,
    expect: [
      { name: 'slow answered, then 400, then closed', items: [{ up: 'GET /a/slow' }, { err: 400 }], closed: true },
      { name: 'slow answered, then 400, then the next request', items: [{ up: 'GET /a/slow' }, { err: 400 }, N], closed: true },
    ],
  },
];

// --- CONNECT ---------------------------------------------------------------------------------------

const CONNECT405: readonly Outcome[] = [reject(405)];
function connectCase(authority: string, source: string, extra = ''): Case {
  return { family: 'connect', name: `CONNECT ${authority}${extra === '' ? '' : ' (with a body)'} is refused 405 and nothing is dialled`, source, bytes: `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${extra}\r\n`, expect: CONNECT405 };
}
const CONNECT: Case[] = [
  connectCase('api.test:443', 'breakwater (SPEC §10.3: no allowConnect); http11probe COMP-METHOD-CONNECT'),
  connectCase('evil.example:443', 'breakwater hostile.chaos.ts'),
  connectCase('evil.example:80', 'breakwater (SPEC §10.3: CONNECT :80 to an unrouted host)'),
  connectCase('127.0.0.1:@CANARY@', SSRF_SRC),
  connectCase('127.0.0.1:@RAW@', 'breakwater (the upstream endpoint itself is not a CONNECT route)'),
  connectCase('[::1]:@CANARY6@', SSRF_SRC),
  connectCase('localhost:@CANARY@', SSRF_SRC),
  connectCase('api.test:443', 'breakwater (CONNECT with a body)', 'Content-Length: 5\r\n\r\nhello'),
  { family: 'connect', name: 'CONNECT in origin-form ("CONNECT / HTTP/1.1")', source: 'breakwater (RFC 9112 §3.2.3 authority-form only)', bytes: `CONNECT / HTTP/1.1\r\n${H}\r\n`, expect: [reject([400, 405])] },
  {
    family: 'connect',
    name: 'CONNECT api.test:80 is tunnelled, and the request inside it is served',
    source: 'breakwater (SPEC §10.3; Node fetch NODE_USE_ENV_PROXY=1 / undici ProxyAgent for http:// URLs)',
    bytes: `CONNECT api.test:80 HTTP/1.1\r\nHost: api.test:80\r\n\r\nGET /in HTTP/1.1\r\n${H}\r\n`,
    connectAt: [0],
    expect: [{ name: '200, then the tunnelled GET, then the next request', items: [{ connect: 200 }, { up: 'GET /in' }, N], closed: true }],
  },
  {
    family: 'connect',
    name: 'pipelined: GET /slow, then CONNECT evil.example:443',
    source: 'breakwater (issue: responses out of order after pipelined CONNECT)',
    bytes: `GET /slow HTTP/1.1\r\n${H}\r\nCONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n`,
    connectAt: [1],
    expect: [{ name: 'the GET answered first, then 405, then closed', items: [{ up: 'GET /slow' }, { err: 405 }], closed: true }],
  },
  {
    family: 'connect',
    name: 'pipelined: GET /slow, then CONNECT api.test:443',
    source: 'breakwater (issue: responses out of order after pipelined CONNECT)',
    bytes: `GET /slow HTTP/1.1\r\n${H}\r\nCONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n`,
    connectAt: [1],
    expect: [{ name: 'the GET answered first, then 405, then closed', items: [{ up: 'GET /slow' }, { err: 405 }], closed: true }],
  },
  {
    family: 'connect',
    name: 'pipelined: GET /slow, then CONNECT 127.0.0.1:@CANARY@',
    source: SSRF_SRC,
    bytes: `GET /slow HTTP/1.1\r\n${H}\r\nCONNECT 127.0.0.1:@CANARY@ HTTP/1.1\r\nHost: 127.0.0.1:@CANARY@\r\n\r\n`,
    connectAt: [1],
    expect: [{ name: 'the GET answered first, then 405, then closed', items: [{ up: 'GET /slow' }, { err: 405 }], closed: true }],
  },
];

// --- Upgrade, h2c, WebSocket smuggling ------------------------------------------------------

const WS = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
const WS_SMUGGLED = 'GET /ws-smuggled HTTP/1.1\r\nHost: evil.example\r\n\r\n';
/** After the upstream refuses an upgrade (426), the connection is plain HTTP or closed: never a raw tunnel. */
const REFUSED_UPGRADE: readonly Outcome[] = [
  { name: '426 relayed, then closed', items: [{ up: 'GET /ws', status: 426 }], closed: true },
  { name: '426 relayed, the smuggled request refused 404, then the next request', items: [{ up: 'GET /ws', status: 426 }, { err: 404 }, N], closed: true },
];
const H2C = 'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';
/** A declined upgrade is plain HTTP/1.1: the connection goes on, or closes after the answer. */
const PLAIN_T: readonly Outcome[] = [FWD_T, { name: 'GET /t forwarded as plain HTTP/1.1, then closed', items: [{ up: 'GET /t' }], closed: true }];
const UPGRADE: Case[] = [
  {
    family: 'upgrade',
    name: 'upgrade: pipelined GET /a, then a WebSocket upgrade',
    source: 'breakwater (issue: responses out of order after pipelined Upgrade)',
    bytes: `${GET_A}GET /ws HTTP/1.1\r\n${H}${WS}Sec-WebSocket-Version: 13\r\n\r\n`,
    sentinel: false,
    expect: [{ name: 'GET /a answered, then 101', items: [{ up: 'GET /a' }, { up: 'GET /ws', status: 101 }], closed: true }],
  },
  {
    family: 'upgrade',
    name: 'upgrade: pipelined GET /slow, then a WebSocket upgrade',
    source: 'breakwater (issue: responses out of order after pipelined Upgrade)',
    bytes: `GET /slow HTTP/1.1\r\n${H}\r\nGET /ws HTTP/1.1\r\n${H}${WS}Sec-WebSocket-Version: 13\r\n\r\n`,
    sentinel: false,
    expect: [{ name: 'GET /slow answered, then 101', items: [{ up: 'GET /slow' }, { up: 'GET /ws', status: 101 }], closed: true }],
  },
  {
    family: 'upgrade',
    name: 'upgrade: a WebSocket upgrade with a Content-Length body',
    source: 'websocket-smuggle Challenge2 (POST + Upgrade + body); http11probe COMP-UPGRADE-POST',
    bytes: `POST /ws HTTP/1.1\r\n${H}${WS}Sec-WebSocket-Version: 13\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 32\r\n\r\nurl=http://127.0.0.1:@CANARY@/r.ph`,
    expect: [reject(400)],
  },
  {
    family: 'upgrade',
    name: 'upgrade: a GET WebSocket upgrade with a Content-Length body',
    source: 'breakwater (issue: Upgrade accepted with a body)',
    bytes: `GET /ws HTTP/1.1\r\n${H}${WS}Sec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\nhello`,
    expect: [reject(400)],
  },
  {
    family: 'upgrade',
    name: 'upgrade: a WebSocket upgrade with a chunked body',
    source: 'breakwater (issue: Upgrade accepted with a body)',
    bytes: `GET /ws HTTP/1.1\r\n${H}${WS}Sec-WebSocket-Version: 13\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    expect: [reject(400)],
  },
  {
    family: 'upgrade',
    name: 'upgrade: h2c smuggling (Upgrade: h2c + HTTP2-Settings + Connection: Upgrade, HTTP2-Settings) is served as HTTP/1.1',
    source: 'h2csmuggler send_initial_request',
    bytes: `GET /t HTTP/1.1\r\n${H}Accept: */*\r\nAccept-Language: en\r\n${H2C}Connection: Upgrade, HTTP2-Settings\r\n\r\n`,
    expect: PLAIN_T,
  },
  {
    family: 'upgrade',
    name: 'upgrade: h2c smuggling, upgrade-only variant (Connection: Upgrade) is served as HTTP/1.1',
    source: 'h2csmuggler send_initial_request (UPGRADE_ONLY)',
    bytes: `GET /t HTTP/1.1\r\n${H}${H2C}Connection: Upgrade\r\n\r\n`,
    expect: PLAIN_T,
  },
  {
    family: 'upgrade',
    name: 'upgrade: h2c, then the HTTP/2 preface sent at once',
    source: 'h2csmuggler (the h2 connection that follows the upgrade)',
    bytes: `GET /t HTTP/1.1\r\n${H}${H2C}Connection: Upgrade, HTTP2-Settings\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00`,
    sentinel: false,
    expect: [{ name: 'served as HTTP/1.1, then 400 for the preface', items: [{ up: 'GET /t' }, { err: 400 }], closed: true }, { name: 'served as HTTP/1.1, then closed', items: [{ up: 'GET /t' }], closed: true }],
  },
  {
    family: 'upgrade',
    name: 'upgrade: websocket-smuggle, bad Sec-WebSocket-Version without Connection: Upgrade, then a smuggled request',
    source: 'websocket-smuggle Challenge1',
    bytes: `GET /ws HTTP/1.1\r\n${H}Sec-WebSocket-Version: 1337\r\nUpgrade: websocket\r\n\r\n${WS_SMUGGLED}`,
    expect: [
      { name: 'a plain GET, then 404 for the smuggled request, then the next request', items: [{ up: 'GET /ws' }, { err: 404 }, N], closed: true },
      { name: 'a plain GET, then closed', items: [{ up: 'GET /ws' }], closed: true },
    ],
  },
  {
    family: 'upgrade',
    name: 'upgrade: websocket-smuggle, bad Sec-WebSocket-Version refused 426, then a smuggled request',
    source: 'websocket-smuggle Challenge1 (with Connection: Upgrade); http11probe COMP-UPGRADE-INVALID-VER',
    bytes: `GET /ws HTTP/1.1\r\n${H}${WS}Sec-WebSocket-Version: 1337\r\n\r\n${WS_SMUGGLED}`,
    expect: REFUSED_UPGRADE,
  },
  {
    family: 'upgrade',
    name: 'upgrade: websocket-smuggle, no Sec-WebSocket-Version refused 426, then a smuggled request to the routed host',
    source: 'websocket-smuggle Challenge1 (variant)',
    bytes: `GET /ws HTTP/1.1\r\n${H}${WS}\r\nGET /ws-smuggled HTTP/1.1\r\nHost: 127.0.0.1:@CANARY@\r\n\r\n`,
    expect: REFUSED_UPGRADE,
  },
  {
    family: 'upgrade',
    name: 'upgrade: hop-by-hop fields on a WebSocket upgrade are not forwarded',
    source: 'breakwater (issue: the Upgrade path forwards hop-by-hop headers)',
    bytes: `GET /ws HTTP/1.1\r\n${H}Connection: Upgrade, X-Hop-Secret\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Hop-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic ZXZpbDpldmls\r\nTE: trailers\r\nX_Forwarded_For: 10.0.0.1\r\n\r\n`,
    sentinel: false,
    expect: [{ name: '101', items: [{ up: 'GET /ws', status: 101 }], closed: true }],
  },
  {
    family: 'upgrade',
    name: 'upgrade: a WebSocket upgrade over headerSize is refused 431',
    source: 'breakwater (issue: the Upgrade path ignores headerSize)',
    bytes: `GET /ws HTTP/1.1\r\n${H}${WS}Sec-WebSocket-Version: 13\r\n${BIG_HEAD}\r\n`,
    expect: [reject(431)],
  },
  {
    family: 'upgrade',
    name: 'upgrade: a WebSocket upgrade with a userinfo Host is refused 400',
    source: 'breakwater (issue: invalid Host values routed)',
    bytes: `GET /ws HTTP/1.1\r\nHost: evil.example@api.test\r\n${WS}Sec-WebSocket-Version: 13\r\n\r\n`,
    expect: [reject(400)],
  },
  {
    family: 'upgrade',
    name: 'upgrade: Upgrade without Connection: Upgrade is a plain request',
    source: 'http11probe COMP-UPGRADE-MISSING-CONN',
    bytes: `GET /t HTTP/1.1\r\n${H}Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    expect: PLAIN_T,
  },
  {
    family: 'upgrade',
    name: 'upgrade: HTTP/1.0 with Upgrade is never switched',
    source: 'http11probe COMP-UPGRADE-HTTP10',
    bytes: `GET /t HTTP/1.0\r\n${H}${WS}Sec-WebSocket-Version: 13\r\n\r\n`,
    sentinel: false,
    expect: [{ name: 'a plain answer, then closed', items: [{ up: 'GET /t' }], closed: true }, reject(400)],
  },
  {
    family: 'upgrade',
    name: 'upgrade: an unknown protocol is never switched',
    source: 'http11probe COMP-UPGRADE-UNKNOWN',
    bytes: `GET /t HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: totally-made-up/1.0\r\n\r\n`,
    expect: [...PLAIN_T, reject(400)],
  },
];

export const CASES: readonly Case[] = [
  ...TE_CLTE,
  ...TE_TECL,
  ...CL,
  ...CHUNKED,
  ...FIELDS,
  ...UNDERSCORE,
  ...HTTP10,
  ...HOST,
  ...SSRF,
  ...REFUSED,
  ...CONNECT,
  ...UPGRADE,
];

export const FAMILY_TITLES: Readonly<Record<Family, string>> = {
  'te-clte': 'Transfer-Encoding obfuscations next to a Content-Length that covers a smuggled GET (CL.TE)',
  'te-tecl': 'genuine Transfer-Encoding next to a short Content-Length (TE.CL)',
  'content-length': 'Content-Length spellings',
  chunked: 'chunked framing ("funky chunks")',
  'field-syntax': 'field-line and request-line syntax',
  underscore: 'field names with underscores',
  http10: 'HTTP/1.0 with Transfer-Encoding',
  host: 'Host values and absolute-form authorities',
  ssrf: 'absolute-form and Host targets to hosts no route names (SSRF)',
  'refused-pipeline': 'requests pipelined after a refusal',
  connect: 'CONNECT',
  upgrade: 'Upgrade, h2c and WebSocket smuggling',
};
