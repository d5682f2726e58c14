/**
 * breakwater's metrics (SPEC §8), by concern:
 * - catalogue.ts: every metric with its help text and labels, declared once;
 * - families.ts: the series engine prom-client's Registry formats;
 * - handles.ts: the bound handles layers hold (no label lookups per request);
 * - registry.ts: `Metrics`, which hands out handles, retains series across
 *   reloads and formats a scrape.
 * Importers use this file only.
 */
export { CATALOGUE, DURATION_BUCKETS, METHODS, PREFIX } from './catalogue.ts';
export type { MetricSpec, MetricType } from './catalogue.ts';
export type { AttemptResult, CircuitStateName, ListenerMetrics, RejectReason, RouteMetrics, TunnelResult, UpstreamMetrics } from './handles.ts';
export { Metrics } from './registry.ts';
export type { RetainSet } from './registry.ts';
