/**
 * Starts breakwater in-process from YAML text, for integration tests: the
 * config is written to a temp file (so reloads can rewrite it), log lines are
 * captured in memory, and close() releases every socket and timer.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadConfigText } from '../../src/config/load.ts';
import { Proxy } from '../../src/runtime/proxy.ts';

export interface LogLine {
  msg: string;
  [key: string]: unknown;
}

export interface TestProxy {
  proxy: Proxy;
  /** Base URL of a listener, by name: http://127.0.0.1:PORT */
  url(listener: string): string;
  port(listener: string): number;
  adminUrl: string;
  file: string;
  logs: LogLine[];
  /** Access-log lines only. */
  requests(): LogLine[];
  /** Resolves when `n` access-log lines were written (they are written when the response is over). */
  waitForRequests(n: number, timeoutMs?: number): Promise<LogLine[]>;
  /** Rewrite the config file (for reload tests). */
  write(yaml: string): void;
  close(): Promise<void>;
}

export async function startProxy(yaml: string, env: Record<string, string | undefined> = {}): Promise<TestProxy> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bw-test-'));
  const file = path.join(dir, 'breakwater.yaml');
  writeFileSync(file, yaml);
  const loaded = loadConfigText(yaml, file, env);
  if (!loaded.ok) throw new Error(`test config is invalid:\n${loaded.errors.map(String).join('\n')}`);
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const proxy = await Proxy.start(loaded.config, { logDestination: sink, defaultMetrics: false, env });
  const t: TestProxy = {
    proxy,
    file,
    logs,
    url: (l) => `http://127.0.0.1:${proxy.port(l)}`,
    port: (l) => proxy.port(l),
    adminUrl: `http://127.0.0.1:${proxy.admin!.port}`,
    requests: () => logs.filter((l) => l.msg === 'request'),
    async waitForRequests(n, timeoutMs = 3000) {
      const end = Date.now() + timeoutMs;
      while (t.requests().length < n) {
        if (Date.now() > end) throw new Error(`expected ${n} access-log lines, got ${t.requests().length}`);
        await new Promise((r) => setTimeout(r, 5));
      }
      return t.requests();
    },
    write: (y) => writeFileSync(file, y),
    async close() {
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return t;
}
