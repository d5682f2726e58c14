/**
 * tracing: what OpenTelemetry traces (SPEC §13) cost per request. The same
 * GET path as passthrough, through breakwater's plain config with tracing
 * off, and with a `tracing` block at 10 % and 100 % sampling exporting to an
 * OTLP sink in the bench process (it reads each export and answers 200, like
 * a collector that keeps up). With BASELINE_CLI=path/to/dist/cli.js (a build
 * of breakwater before tracing existed), a row for it too, measured in the
 * same rounds: "tracing off costs nothing" is that row against the
 * tracing-off row.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { writeFileSync, existsSync } from 'node:fs';
import { plainConfig } from '../lib/breakwater-config.ts';
import { fmtInt, fmtPct, fmtUsPair, fmtRatio, markdownTable, progress } from '../lib/report.ts';
import { runRounds, summarize } from '../lib/rounds.ts';
import { breakwaterBuilt } from '../lib/settings.ts';
import { BODY_BYTES, BREAKWATER_SKIP, breakwater, directSubject, ports, startServing, type BenchContext, type Subject } from '../lib/subjects.ts';
import { stopChild } from '../lib/procs.ts';

interface Sink {
  readonly url: string;
  exports: number;
  bytes: number;
  close(): Promise<void>;
}

async function startSink(): Promise<Sink> {
  const sink = { url: '', exports: 0, bytes: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => {
      sink.bytes += c.length;
    });
    req.on('end', () => {
      sink.exports++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  sink.close = () => {
    server.closeAllConnections();
    return new Promise((r) => server.close(() => r()));
  };
  return sink;
}

function withTracing(config: string, endpoint: string, ratio: number): string {
  return config.replace(/^listeners:/m, `tracing: { endpoint: ${endpoint}, sampleRatio: ${ratio} }\nlisteners:`);
}

/** breakwater from another build (BASELINE_CLI), with the same plain config. */
function baselineBuild(ctx: BenchContext, cli: string, config: string): Subject {
  const s = ctx.settings;
  const url = `http://127.0.0.1:${s.proxyPort}/`;
  return {
    id: 'breakwater-baseline',
    label: `breakwater, plain, BASELINE_CLI build`,
    async start() {
      const file = join(ctx.tmp, 'baseline.yaml');
      writeFileSync(file, config);
      const child = await startServing({
        name: 'breakwater-baseline',
        command: process.execPath,
        args: [cli, '--config', file],
        core: 1,
        probe: { url, bodyBytes: BODY_BYTES },
        skipNote: `BASELINE_CLI ${cli}: did not start — skipped`,
      });
      return { url, pid: child.pid, stop: () => stopChild(child) };
    },
  };
}

export async function run(ctx: BenchContext): Promise<string> {
  if (!breakwaterBuilt(ctx.settings)) {
    progress(BREAKWATER_SKIP);
    return BREAKWATER_SKIP;
  }
  const sink = await startSink();
  try {
    const p = ports(ctx);
    const plain = plainConfig(p);
    const subjects: Subject[] = [directSubject(ctx)];
    const base = process.env['BASELINE_CLI'];
    if (base !== undefined && base !== '') {
      if (existsSync(resolve(base))) subjects.push(baselineBuild(ctx, resolve(base), plain));
      else progress(`BASELINE_CLI ${base} not found: no baseline row`);
    }
    subjects.push(
      breakwater(ctx, 'breakwater', 'breakwater, plain, tracing off', plain),
      breakwater(ctx, 'breakwater-trace-10', 'breakwater, plain, tracing 10 %', withTracing(plain, sink.url, 0.1)),
      breakwater(ctx, 'breakwater-trace-100', 'breakwater, plain, tracing 100 %', withTracing(plain, sink.url, 1)),
    );
    const results = await runRounds(subjects, ctx.settings);
    const rows: string[][] = [];
    const off = summarize(results, 'breakwater');
    for (const x of subjects) {
      const m = summarize(results, x.id);
      if (m === null) continue;
      const cpu = (results.get(x.id) ?? []).map((r) => r?.cpuUsPerReq).filter((v): v is number => typeof v === 'number');
      rows.push([
        x.label,
        fmtInt(m.rps),
        fmtPct(m.rpsSpread),
        x.id === 'direct' ? '—' : `${fmtInt(m.cpuUsPerReq)} [${fmtInt(Math.min(...cpu))}–${fmtInt(Math.max(...cpu))}]`,
        x.id === 'direct' || off === null ? '—' : fmtRatio(m.cpuUsPerReq / off.cpuUsPerReq),
        fmtUsPair(m.p50Us, m.p99Us),
        x.id === 'direct' ? '—' : fmtUsPair(m.addedP50Us, m.addedP99Us, true),
      ]);
    }
    const s = ctx.settings;
    return `${markdownTable(
      ['target', `req/s @${s.connections} conns`, 'rounds spread', 'CPU µs/req [min–max]', 'CPU vs tracing off', `p50 / p99 @${s.latencyRate} req/s`, 'added p50 / p99'],
      rows,
    )}\n\nOTLP sink (in the bench process): ${sink.exports} exports, ${fmtInt(sink.bytes / 1024)} KiB received.`;
  } finally {
    await sink.close();
  }
}
