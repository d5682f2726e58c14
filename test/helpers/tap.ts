/**
 * A `GET /tap` subscriber for integration tests: the NDJSON lines it has
 * received so far, parsed, and the heartbeats (blank lines) counted apart.
 */
import http from 'node:http';

export interface Tap {
  status: number;
  lines: Record<string, unknown>[];
  blank: number;
  ended: boolean;
  close(): void;
}

export function openTap(adminUrl: string, query = ''): Promise<Tap> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${adminUrl}/tap${query}`, { agent: false }, (res) => {
      const t: Tap = { status: res.statusCode ?? 0, lines: [], blank: 0, ended: false, close: () => req.destroy() };
      let rest = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        rest += c;
        let nl: number;
        while ((nl = rest.indexOf('\n')) >= 0) {
          const l = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          if (l === '') t.blank++;
          else t.lines.push(JSON.parse(l) as Record<string, unknown>);
        }
      });
      res.on('end', () => (t.ended = true));
      res.on('error', () => {});
      resolve(t);
    });
    req.on('error', reject);
  });
}
