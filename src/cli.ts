#!/usr/bin/env node
/**
 * breakwater's command line (SPEC §1).
 *
 *   breakwater [--config FILE]      run the proxy
 *   breakwater validate FILE        check a config, print the effective policies
 *   breakwater top | tap            live views of a running breakwater (cli/top.ts, cli/tap.ts)
 *   breakwater --version | --help
 *
 * Exit codes: 0 clean shutdown (or a valid config), 1 runtime failure (or an
 * invalid config under `validate`), 2 the start-up config is invalid or
 * unreadable, or a listener could not bind.
 */
import { readFileSync } from 'node:fs';
import { loadConfigFile } from './config/load.ts';
import { describeConfig } from './config/describe.ts';
import { BindError } from './http/server.ts';
import { AuditFileError } from './observability/audit-file.ts';
import { checkBuild } from './runtime/check.ts';
import { Proxy } from './runtime/proxy.ts';
import { watchConfig } from './config/watch.ts';
import { DEAD_LETTERS_HELP, deadLettersCli } from './cli/dead-letters.ts';
import { tapCommand } from './cli/tap.ts';
import { topCommand } from './cli/top.ts';

const HELP = `breakwater — a sidecar resilience proxy

Usage:
  breakwater [--config FILE]     run the proxy
                                 (config: --config, else $BREAKWATER_CONFIG, else config/breakwater.yaml)
  breakwater validate FILE       check FILE and print the effective policy of every route
  breakwater dead-letters list|show|replay|delete [--admin ADDR] [--route R] [--upstream U] [ID]
                                 the dead-letter spool of a running breakwater, through its admin API
  breakwater top [--admin HOST:PORT] [--interval 2s] [--once]
                                 live table of rates, errors, latency, breakers from a running breakwater
  breakwater tap [--admin HOST:PORT] [--route R] [--upstream U] [--status 5xx|503] [--flag F] [--json]
                                 follow its access log live (admin default 127.0.0.1:9901;
                                 $BREAKWATER_ADMIN_TOKEN is sent as a bearer token when set)
  breakwater --version           print the version
  breakwater --help              print this help

Signals: SIGHUP reloads the config; SIGTERM/SIGINT drain and exit (a second SIGTERM exits at once).
Exit codes: 0 clean shutdown; 1 runtime failure; 2 invalid or unreadable config, or a listener could not bind.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const args = argv.slice(2);
  if (args[0] === 'dead-letters') {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(DEAD_LETTERS_HELP);
      return 0;
    }
    return deadLettersCli(args.slice(1));
  }
  if (args[0] === 'top') return topCommand(args.slice(1));
  if (args[0] === 'tap') return tapCommand(args.slice(1));
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  if (args.includes('--version') || args.includes('-v')) {
    process.stdout.write(`breakwater ${version()}\n`);
    return 0;
  }
  if (args[0] === 'validate') {
    const file = args[1];
    if (file === undefined || args.length > 2) {
      process.stderr.write('usage: breakwater validate FILE\n');
      return 2;
    }
    const r = loadConfigFile(file);
    if (!r.ok) {
      for (const e of r.errors) process.stderr.write(`${e.toString()}\n`);
      const unreadable = r.errors.some((e) => e.kind === 'read');
      if (!unreadable) process.stderr.write(`${r.errors.length} error(s): ${file} is not a valid breakwater config\n`);
      return unreadable ? 2 : 1;
    }
    try {
      await checkBuild(r.config);
    } catch (err) {
      process.stderr.write(`${file}: the config is valid but does not build: ${(err as Error).message}\n`);
      return 1;
    }
    process.stdout.write(describeConfig(r.config));
    return 0;
  }
  let file = process.env['BREAKWATER_CONFIG'] ?? 'config/breakwater.yaml';
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--config' || a === '-c') {
      const v = args[++i];
      if (v === undefined) {
        process.stderr.write('--config needs a FILE\n');
        return 2;
      }
      file = v;
    } else if (a.startsWith('--config=')) {
      file = a.slice('--config='.length);
    } else {
      process.stderr.write(`unknown argument: ${a}\n\n${HELP}`);
      return 2;
    }
  }
  return run(file);
}

async function run(file: string): Promise<number> {
  const r = loadConfigFile(file);
  if (!r.ok) {
    for (const e of r.errors) process.stderr.write(`${e.toString()}\n`);
    process.stderr.write(`breakwater: not starting: ${file} is not a valid config\n`);
    return 2;
  }
  let proxy: Proxy;
  try {
    proxy = await Proxy.start(r.config);
  } catch (err) {
    if (err instanceof BindError || err instanceof AuditFileError) {
      process.stderr.write(`breakwater: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const watcher = watchConfig(proxy.config.source.file, () => void proxy.reload('watch'));
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        // A second SIGTERM: exit at once.
        proxy.logger.warn({ signal }, 'exit_now');
        process.exit(0);
      }
      stopping = true;
      watcher.close();
      proxy.logger.info({ signal }, 'drain');
      proxy.drain().then(
        () => resolve(0),
        (err: unknown) => {
          proxy.logger.error({ err }, 'drain_failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => void proxy.reload('SIGHUP'));
  });
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
    // Anything still holding the loop (a stuck socket) must not keep a drained process alive.
    setTimeout(() => process.exit(code), 2_000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`breakwater: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
