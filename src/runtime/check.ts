/**
 * `breakwater validate` runs the very build a start or a reload runs — every
 * route's stack, guard and pool — against empty state, then discards it: what
 * would fail a reload fails validation. Nothing binds and no connection is
 * made.
 */
import { Writable } from 'node:stream';
import type { BreakwaterConfig } from '../config/types.ts';
import { createLogger } from '../observability/logger.ts';
import { Metrics } from '../observability/metrics/index.ts';
import { buildRuntime } from './build.ts';
import { StateRegistry } from './state.ts';

/** Resolves when the config builds; rejects with the build's error otherwise. */
export async function checkBuild(config: BreakwaterConfig): Promise<void> {
  const registry = new StateRegistry();
  const metrics = new Metrics({ defaultMetrics: false });
  const sink = new Writable({ write: (_chunk, _enc, cb) => cb() });
  const log = createLogger('error', sink);
  try {
    await buildRuntime(config, { registry, metrics, logger: log.logger, accessLog: null }).discard();
  } finally {
    await registry.close();
    metrics.registry.clear();
  }
}
