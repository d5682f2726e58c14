/**
 * breakwater's benchmark runner.
 *
 *   node bench/run.ts [passthrough | many-routes | grpc | dead-letter | global-rate-limit | tracing | all]     (default: passthrough)
 *   node bench/run.ts [passthrough | many-routes | grpc | tracing | all]     (default: passthrough)
 *
 * Knobs (env): DURATION=10 WARMUP=2 ROUNDS=3 CONNECTIONS=32 LATENCY_RATE=1000
 * TARGET=node|nginx PIN=1 ONLY=id,id TARGET_PORT=18080 PROXY_PORT=18081
 * ADMIN_PORT=19901 ROUTES=1000 BREAKWATER_CLI=dist/cli.js BENCH_INSTALL=0.
 * The report (Markdown) goes to stdout, progress to stderr. See bench/README.md.
 */
import { machineInfo, machineMarkdown, progress } from './lib/report.ts';
import { installCleanup, makeTempDir, setupPinning } from './lib/procs.ts';
import { readSettings } from './lib/settings.ts';
import { findReferences, SkipError, startTarget, type BenchContext } from './lib/subjects.ts';
import * as passthrough from './scenarios/passthrough.ts';
import * as manyRoutes from './scenarios/many-routes.ts';
import * as grpc from './scenarios/grpc.ts';
import * as deadLetter from './scenarios/dead-letter.ts';

import * as globalRateLimit from './scenarios/global-rate-limit.ts';

import * as tracing from './scenarios/tracing.ts';

const SCENARIOS = ['passthrough', 'many-routes', 'grpc', 'dead-letter', 'global-rate-limit', 'tracing'] as const;

async function main(): Promise<void> {
  const arg = process.argv[2] ?? 'passthrough';
  const chosen = arg === 'all' ? [...SCENARIOS] : SCENARIOS.filter((x) => x === arg);
  if (chosen.length === 0) {
    process.stderr.write(`unknown scenario "${arg}"; one of: ${SCENARIOS.join(', ')}, all\n`);
    process.exitCode = 2;
    return;
  }
  installCleanup();
  const settings = readSettings();
  const machine = machineInfo();
  const pinning = setupPinning(settings.pin, machine.cores);
  progress(`CPU pinning: ${pinning.note}`);
  const refs = findReferences(settings);
  for (const note of refs.notes) progress(note);

  const tmp = makeTempDir();
  const sections: string[] = [];
  const http = chosen.filter((x) => x !== 'grpc');
  // The HTTP/1.1 target serves the HTTP scenarios; grpc starts its own h2c target on the same port after it.
  let targetLabel = 'none';
  if (http.length > 0) {
    const target = await startTarget(settings, tmp, refs.nginx);
    targetLabel = target.label;
    const ctx: BenchContext = { settings, tmp, targetUrl: target.url };
    for (const name of http) {
      progress(`\n== ${name} ==`);
      const body =
        name === 'passthrough'
          ? await passthrough.run(ctx, refs)
          : name === 'dead-letter'
            ? await deadLetter.run(ctx)
            : name === 'global-rate-limit'
              ? await globalRateLimit.run(ctx)
              : name === 'tracing'
                ? await tracing.run(ctx)
                : await manyRoutes.run(ctx);
      sections.push(`### ${name}\n\n${body}`);
    }
    await target.stop();
  }
  if (chosen.includes('grpc')) {
    progress('\n== grpc ==');
    const body = await grpc.run({ settings, tmp, nginx: refs.nginx });
    sections.push(`### grpc\n\nunary calls over h2c, 128-byte messages, target bench/baselines/grpc-target.ts (node:http2); load: node:http2 client, ${process.env['GRPC_SESSIONS'] ?? 4} connections × ${process.env['GRPC_STREAMS'] ?? 8} calls in flight.\n\n${body}`);
  }

  const info = machineMarkdown(machine, [
    ...(http.length === 0
      ? [['runs', `${settings.durationS} s per run after ${settings.warmupS} s warm-up; latency at ${settings.latencyRate} calls/s for ${settings.durationS} s`] as [string, string]]
      : [
          ['target', `${targetLabel}, ${128}-byte bodies, keep-alive`] as [string, string],
          ['load', `autocannon, ${settings.connections} connections, pipelining 1, ${settings.durationS} s per run after ${settings.warmupS} s warm-up; latency at ${settings.latencyRate} req/s for ${settings.durationS} s`] as [string, string],
        ]),
    ['rounds', `${settings.rounds}, interleaved; medians shown`],
    ['CPU pinning', pinning.note],
  ]);
  process.stdout.write(`\n## breakwater bench\n\n${info}\n\n${sections.join('\n\n')}\n`);
}

try {
  await main();
} catch (err) {
  // A subject that could not start is a message, not a stack trace.
  if (!(err instanceof SkipError)) throw err;
  progress(err.message);
  process.exitCode = 1;
}
