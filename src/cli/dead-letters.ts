/**
 * `breakwater dead-letters list|show|replay|delete` (SPEC §11.1): a client
 * of a running breakwater's admin API, over HTTP. `--admin` takes host:port
 * or a URL (built-in 127.0.0.1:9901); `BREAKWATER_ADMIN_TOKEN`, when set,
 * is sent as a bearer token.
 *
 * Exit codes: 0 done; 1 the admin API answered with an error (nothing
 * found, a replay that did not deliver); 2 bad usage, or no admin API there.
 */
import { http } from '../http/node-http.ts';

export const DEAD_LETTERS_HELP = `Usage:
  breakwater dead-letters list   [--admin ADDR] [--route R] [--upstream U] [--json]
  breakwater dead-letters show   [--admin ADDR] ID
  breakwater dead-letters replay [--admin ADDR] [--route R] [--upstream U] [ID]
                                 (no ID: every entry, or those of the route/upstream, oldest first)
  breakwater dead-letters delete [--admin ADDR] ID

ADDR: host:port or http://host:port of the admin API (default 127.0.0.1:9901).
BREAKWATER_ADMIN_TOKEN, if set, is sent as "authorization: Bearer <token>".
`;

interface Args {
  command: string;
  admin: string;
  route?: string;
  upstream?: string;
  id?: string;
  json: boolean;
}

function parse(argv: readonly string[]): Args | string {
  const [command, ...rest] = argv;
  if (command === undefined || !['list', 'show', 'replay', 'delete'].includes(command)) return `unknown or missing command: ${command ?? ''}`;
  const a: Args = { command, admin: '127.0.0.1:9901', json: false };
  for (let i = 0; i < rest.length; i++) {
    const x = rest[i]!;
    const value = (): string | undefined => rest[++i];
    if (x === '--admin') a.admin = value() ?? '';
    else if (x === '--route') a.route = value();
    else if (x === '--upstream') a.upstream = value();
    else if (x === '--json') a.json = true;
    else if (x.startsWith('--')) return `unknown option: ${x}`;
    else if (a.id === undefined) a.id = x;
    else return `unexpected argument: ${x}`;
  }
  if (a.admin === '') return '--admin needs an address';
  if ((a.command === 'show' || a.command === 'delete') && a.id === undefined) return `${a.command} needs an ID`;
  return a;
}

interface Answer {
  status: number;
  body: any;
}

function call(admin: string, method: string, path: string): Promise<Answer> {
  const base = /^https?:\/\//.test(admin) ? admin.replace(/\/$/, '') : `http://${admin}`;
  const headers: Record<string, string> = {};
  const token = process.env['BREAKWATER_ADMIN_TOKEN'];
  if (token !== undefined && token !== '') headers['authorization'] = `Bearer ${token}`;
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method, headers, timeout: 120_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: shown as it came
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 120s')));
    req.on('error', reject);
    req.end();
  });
}

function query(a: Args): string {
  const q = new URLSearchParams();
  if (a.route !== undefined) q.set('route', a.route);
  if (a.upstream !== undefined) q.set('upstream', a.upstream);
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}

export async function deadLettersCli(argv: readonly string[], out: (s: string) => void = (s) => process.stdout.write(s), err: (s: string) => void = (s) => process.stderr.write(s)): Promise<number> {
  const a = parse(argv);
  if (typeof a === 'string') {
    err(`breakwater dead-letters: ${a}\n\n${DEAD_LETTERS_HELP}`);
    return 2;
  }
  let r: Answer;
  try {
    const id = a.id === undefined ? '' : `/${encodeURIComponent(a.id)}`;
    switch (a.command) {
      case 'list':
        r = await call(a.admin, 'GET', `/dead-letters${query(a)}`);
        break;
      case 'show':
        r = await call(a.admin, 'GET', `/dead-letters${id}`);
        break;
      case 'replay':
        r = await call(a.admin, 'POST', a.id === undefined ? `/dead-letters/replay${query(a)}` : `/dead-letters${id}/replay`);
        break;
      default:
        r = await call(a.admin, 'DELETE', `/dead-letters${id}`);
    }
  } catch (e) {
    err(`breakwater dead-letters: cannot reach the admin API at ${a.admin}: ${(e as Error).message}\n`);
    return 2;
  }
  if (r.status < 200 || r.status >= 300) {
    err(`breakwater dead-letters: ${r.status}: ${typeof r.body === 'string' ? r.body : JSON.stringify(r.body)}\n`);
    return 1;
  }
  if (a.command === 'list' && !a.json) out(table(r.body.entries));
  else out(`${JSON.stringify(r.body, null, 2)}\n`);
  return 0;
}

function table(entries: readonly Record<string, unknown>[]): string {
  if (entries.length === 0) return 'no dead letters\n';
  const rows = [['ID', 'ROUTE', 'REQUEST', 'REASON', 'SPOOLED', 'ATTEMPTS', 'LAST ERROR']];
  for (const e of entries) {
    rows.push([
      String(e['id']),
      String(e['route']),
      `${String(e['method'])} ${String(e['path'])}`,
      String(e['reason']),
      String(e['createdAt']),
      `${String(e['attempts'])}${e['parked'] === true ? ' (parked)' : ''}`,
      e['lastError'] === null ? '-' : String(e['lastError']),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')}\n${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}\n`;
}
