// The Grafana dashboard and the Prometheus rules, checked against the metrics
// breakwater really exports: every PromQL expression parses (the Prometheus
// project's own Lezer grammar), every metric it names exists in a fresh
// Metrics registry (or is a recording rule defined above it), and every label
// it selects, groups, matches or prints exists on what it is applied to.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { SyntaxNode } from '@lezer/common';
import { parser } from '@prometheus-io/lezer-promql';
import { parse as parseYaml } from 'yaml';
import { CATALOGUE, Metrics, PREFIX } from '../../../src/observability/metrics/index.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const read = (rel: string): string => readFileSync(root + rel, 'utf8');

// ================================================================ the metrics

interface MetricInfo {
  /** counter | gauge | histogram | summary, or "recorded" for a recording rule. */
  readonly kind: string;
  readonly labels: ReadonlySet<string>;
}

/** Labels Prometheus attaches to every scraped series. */
const TARGET_LABELS: ReadonlySet<string> = new Set(['job', 'instance']);
/** Series Prometheus makes itself for every target. */
const SYNTHETIC: ReadonlyMap<string, MetricInfo> = new Map([['up', { kind: 'gauge', labels: new Set<string>() }]]);

/** Every metric a running breakwater exports, default process metrics included. */
function exported(): Map<string, MetricInfo> {
  const m = new Metrics({ defaultMetrics: true });
  const out = new Map<string, MetricInfo>();
  for (const metric of m.registry.getMetricsAsArray() as unknown as { name: string; type: string; labelNames?: readonly string[] }[]) {
    out.set(metric.name, { kind: String(metric.type), labels: new Set(metric.labelNames ?? []) });
  }
  return out;
}

const EXPORTED = exported();

// ================================================================ the checker

const EXPR_NODES = new Set([
  'PromQL', 'ParenExpr', 'MatrixSelector', 'SubqueryExpr', 'OffsetExpr', 'StepInvariantExpr', 'UnaryExpr',
  'NumberDurationLiteral', 'StringLiteral', 'VectorSelector', 'FunctionCall', 'AggregateExpr', 'BinaryExpr',
]);
const COMPARISONS = new Set(['Eql', 'Neq', 'Gtr', 'Lss', 'Gte', 'Lte']);
const SET_OPS = new Set(['And', 'Or', 'Unless']);
const BINARY_OPS = new Set([...COMPARISONS, ...SET_OPS, 'Add', 'Sub', 'Mul', 'Div', 'Mod', 'Pow', 'Atan2']);
/** Functions that only make sense over counters. */
const COUNTER_FNS = new Set(['rate', 'irate', 'increase', 'resets']);

const kids = (n: SyntaxNode): SyntaxNode[] => {
  const out: SyntaxNode[] = [];
  for (let c = n.firstChild; c !== null; c = c.nextSibling) out.push(c);
  return out;
};
const exprKids = (n: SyntaxNode): SyntaxNode[] => kids(n).filter((c) => EXPR_NODES.has(c.name));
const fmt = (s: ReadonlySet<string>): string => `{${[...s].sort().join(', ')}}`;
const sameSet = (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean => a.size === b.size && [...a].every((x) => b.has(x));

function stringValue(literal: string): string {
  return literal.startsWith('"') ? (JSON.parse(literal) as string) : literal.slice(1, -1);
}

interface Analysis {
  readonly problems: string[];
  /** The label names of the result; null for a scalar. */
  readonly labels: ReadonlySet<string> | null;
  readonly metrics: ReadonlySet<string>;
}

/**
 * Parses one PromQL expression and infers the labels of what each
 * sub-expression returns, reporting every name that does not exist where it
 * is used. `recorded` maps recording-rule names to their output labels.
 */
function analyse(expr: string, recorded: ReadonlyMap<string, ReadonlySet<string>> = new Map()): Analysis {
  const problems: string[] = [];
  const metrics = new Set<string>();
  const tree = parser.parse(expr);
  tree.iterate({
    enter: (n) => {
      if (n.type.isError) problems.push(`syntax error at ${n.from}: …${expr.slice(Math.max(0, n.from - 20), n.from + 20)}…`);
    },
  });
  if (problems.length > 0) return { problems, labels: null, metrics };
  const text = (n: SyntaxNode): string => expr.slice(n.from, n.to);

  const lookup = (name: string): MetricInfo | null => {
    const r = recorded.get(name);
    if (r !== undefined) return { kind: 'recorded', labels: r };
    const synthetic = SYNTHETIC.get(name);
    if (synthetic !== undefined) return synthetic;
    const direct = EXPORTED.get(name);
    if (direct !== undefined) {
      if (direct.kind === 'histogram') {
        problems.push(`${name} is a histogram: select ${name}_bucket, _sum or _count`);
        return null;
      }
      return direct;
    }
    const m = /^(.*)_(bucket|sum|count)$/.exec(name);
    const base = m === null ? undefined : EXPORTED.get(m[1]!);
    if (base !== undefined && (base.kind === 'histogram' || (base.kind === 'summary' && m![2] !== 'bucket'))) {
      return { kind: 'counter', labels: m![2] === 'bucket' ? new Set([...base.labels, 'le']) : base.labels };
    }
    problems.push(`unknown metric ${name}`);
    return null;
  };

  const selectorMetric = (n: SyntaxNode): { name: string; info: MetricInfo | null } | null => {
    const id = n.getChild('Identifier');
    let name = id === null ? null : text(id);
    const matchers = n.getChild('LabelMatchers');
    const labelMatchers = matchers === null ? [] : kids(matchers).filter((k) => k.name.endsWith('LabelMatcher'));
    if (name === null) {
      const byName = labelMatchers.find((k) => k.name === 'UnquotedLabelMatcher' && text(k.getChild('LabelName')!) === '__name__');
      if (byName !== undefined) name = stringValue(text(byName.getChild('StringLiteral')!));
    }
    if (name === null) {
      problems.push(`selector without a metric name: ${text(n)}`);
      return null;
    }
    metrics.add(name);
    return { name, info: lookup(name) };
  };

  const selector = (n: SyntaxNode): Set<string> => {
    const found = selectorMetric(n);
    if (found === null || found.info === null) return new Set(TARGET_LABELS);
    const { name, info } = found;
    // A scraped series carries the target's labels; a recorded one only what its rule kept.
    const target = info.kind === 'recorded' ? new Set<string>() : TARGET_LABELS;
    const matchers = n.getChild('LabelMatchers');
    for (const m of matchers === null ? [] : kids(matchers)) {
      let label: string | null = null;
      if (m.name === 'UnquotedLabelMatcher') label = text(m.getChild('LabelName')!);
      else if (m.name === 'QuotedLabelMatcher') label = stringValue(text(m.getChild('QuotedLabelName')!));
      if (label === null || label === '__name__') continue;
      if (!info.labels.has(label) && !target.has(label)) problems.push(`${name} has no label "${label}" (has ${fmt(info.labels)})`);
    }
    return new Set([...info.labels, ...target]);
  };

  const grouping = (n: SyntaxNode | null): string[] => {
    if (n === null) return [];
    return kids(n).map((k) => (k.name === 'QuotedLabelName' ? stringValue(text(k)) : text(k)));
  };

  const need = (labels: readonly string[], on: ReadonlySet<string> | null, what: string): void => {
    if (on === null) return;
    for (const l of labels) if (!on.has(l)) problems.push(`${what}: label "${l}" is not on the operand (has ${fmt(on)})`);
  };

  const call = (n: SyntaxNode): Set<string> | null => {
    const fname = text(n.getChild('FunctionIdentifier')!);
    const body = n.getChild('FunctionCallBody');
    const args = body === null ? [] : exprKids(body);
    if (COUNTER_FNS.has(fname)) {
      const range = args[0];
      const sel = range?.name === 'MatrixSelector' ? range.getChild('VectorSelector') : null;
      if (sel !== null) {
        const found = selectorMetric(sel);
        if (found?.info && found.info.kind !== 'counter') problems.push(`${fname}() over ${found.name}, a ${found.info.kind}, not a counter`);
      }
    }
    const argLabels = args.map(walk);
    switch (fname) {
      case 'vector':
        return new Set();
      case 'time':
      case 'scalar':
      case 'pi':
        return null;
      case 'histogram_quantile': {
        const v = argLabels[1] ?? null;
        if (v !== null && !v.has('le')) problems.push(`histogram_quantile() over an operand without "le" (has ${fmt(v)})`);
        return v === null ? null : new Set([...v].filter((l) => l !== 'le'));
      }
      case 'label_replace':
      case 'label_join': {
        const v = argLabels[0] ?? null;
        const dst = args[1]?.name === 'StringLiteral' ? stringValue(text(args[1])) : null;
        return v === null ? null : new Set([...v, ...(dst === null ? [] : [dst])]);
      }
      case 'absent':
      case 'absent_over_time':
        return new Set();
      default:
        return (argLabels.find((l) => l !== null) as Set<string> | undefined) ?? null;
    }
  };

  const aggregate = (n: SyntaxNode): Set<string> => {
    const op = text(n.getChild('AggregateOp')!);
    const args = exprKids(n.getChild('FunctionCallBody')!);
    const labels = args.map(walk);
    const vec = labels.at(-1) ?? null;
    const modifier = n.getChild('AggregateModifier');
    const by = modifier?.getChild('By') != null;
    const names = grouping(modifier?.getChild('GroupingLabels') ?? null);
    need(names, vec, `${op} ${by ? 'by' : 'without'}`);
    if (['topk', 'bottomk', 'limitk', 'limit_ratio'].includes(op)) return new Set(vec ?? []);
    const extra = op === 'count_values' && args[0]?.name === 'StringLiteral' ? [stringValue(text(args[0]))] : [];
    if (modifier === null) return new Set(extra);
    return by ? new Set([...names, ...extra]) : new Set([...(vec ?? [])].filter((l) => !names.includes(l)).concat(extra));
  };

  const binary = (n: SyntaxNode): Set<string> | null => {
    const [l, r] = exprKids(n);
    const lhs = walk(l!);
    const rhs = walk(r!);
    const op = kids(n).find((k) => BINARY_OPS.has(k.name))!.name;
    const isBool = n.getChild('BoolModifier') !== null;
    const mm = n.getChild('MatchingModifierClause');
    if (lhs === null || rhs === null) return lhs ?? rhs;
    const mk = mm === null ? [] : kids(mm);
    const on = mk.some((k) => k.name === 'On');
    const ignoring = mk.some((k) => k.name === 'Ignoring');
    const groups = mk.filter((k) => k.name === 'GroupingLabels');
    const matchLabels = on || ignoring ? grouping(groups[0] ?? null) : [];
    const groupLeft = mk.some((k) => k.name === 'GroupLeft');
    const groupRight = mk.some((k) => k.name === 'GroupRight');
    const extra = grouping((on || ignoring ? groups[1] : groups[0]) ?? null);
    if (on) {
      need(matchLabels, lhs, 'on() left side');
      need(matchLabels, rhs, 'on() right side');
    }
    if (ignoring) need(matchLabels, new Set([...lhs, ...rhs]), 'ignoring()');
    if (SET_OPS.has(op)) return op === 'Or' ? new Set([...lhs, ...rhs]) : new Set(lhs);
    if (groupLeft) {
      need(extra, rhs, 'group_left() right side');
      return new Set([...lhs, ...extra]);
    }
    if (groupRight) {
      need(extra, lhs, 'group_right() left side');
      return new Set([...rhs, ...extra]);
    }
    // One-to-one: without on()/ignoring() both sides must carry the same label
    // names, or no series would ever match.
    if (!on) {
      const strip = (s: ReadonlySet<string>) => new Set([...s].filter((x) => !matchLabels.includes(x)));
      if (!sameSet(strip(lhs), strip(rhs))) problems.push(`${op}: operands have different labels ${fmt(lhs)} and ${fmt(rhs)}; nothing would match`);
    }
    if (COMPARISONS.has(op) && !isBool) return new Set(lhs);
    if (on) return new Set(matchLabels);
    return new Set([...lhs].filter((x) => !matchLabels.includes(x)));
  };

  function walk(n: SyntaxNode): Set<string> | null {
    switch (n.name) {
      case 'PromQL':
      case 'ParenExpr':
      case 'MatrixSelector':
      case 'SubqueryExpr':
      case 'OffsetExpr':
      case 'StepInvariantExpr':
      case 'UnaryExpr': {
        const inner = exprKids(n)[0];
        return inner === undefined ? null : walk(inner);
      }
      case 'NumberDurationLiteral':
      case 'StringLiteral':
        return null;
      case 'VectorSelector':
        return selector(n);
      case 'FunctionCall':
        return call(n);
      case 'AggregateExpr':
        return aggregate(n);
      case 'BinaryExpr':
        return binary(n);
      default:
        problems.push(`unsupported PromQL node ${n.name}`);
        return new Set();
    }
  }

  const labels = walk(tree.topNode);
  return { problems, labels, metrics };
}

/** `{{label}}` in a legend, `{{ $labels.label }}` in an alert annotation. */
function placeholders(template: string): string[] {
  return [...template.matchAll(/\{\{\s*(?:\$labels\.)?([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)].map((m) => m[1]!);
}

function checkPlaceholders(template: string | undefined, labels: ReadonlySet<string> | null, where: string, problems: string[]): void {
  if (template === undefined) return;
  for (const p of placeholders(template)) {
    if (labels === null || !labels.has(p)) problems.push(`${where}: {{${p}}} is not a label of the result (${labels === null ? 'scalar' : fmt(labels)})`);
  }
}

// ================================================================ the rules file

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RulesFile {
  groups: { name: string; rules: Rule[] }[];
}

function checkRules(doc: RulesFile): { problems: string[]; recorded: Map<string, ReadonlySet<string>>; metrics: Set<string>; alerts: Rule[] } {
  const problems: string[] = [];
  const recorded = new Map<string, ReadonlySet<string>>();
  const metrics = new Set<string>();
  const alerts: Rule[] = [];
  for (const g of doc.groups) {
    for (const rule of g.rules) {
      const where = `${g.name}/${rule.record ?? rule.alert}`;
      const a = analyse(rule.expr, recorded);
      problems.push(...a.problems.map((p) => `${where}: ${p}`));
      for (const m of a.metrics) metrics.add(m);
      if (rule.record !== undefined) {
        if (!/^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/.test(rule.record)) problems.push(`${where}: recording rule names read level:metric:operations`);
        if (a.labels === null) problems.push(`${where}: records a scalar`);
        recorded.set(rule.record, a.labels ?? new Set());
      } else {
        alerts.push(rule);
        for (const [k, v] of Object.entries(rule.annotations ?? {})) checkPlaceholders(v, a.labels, `${where} annotation ${k}`, problems);
      }
    }
  }
  return { problems, recorded, metrics, alerts };
}

// ================================================================ the dashboard

/** Grafana's interval variables become a duration, every other variable a harmless word. */
const BUILTIN_VARS = new Set(['__rate_interval', '__interval', '__range']);
const VAR = /\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)\]\]/g;

function variablesIn(s: string): string[] {
  return [...s.matchAll(VAR)].map((m) => (m[1] ?? m[2] ?? m[3])!);
}

function substitute(s: string): string {
  return s.replace(VAR, (_all, a?: string, b?: string, c?: string) => (BUILTIN_VARS.has((a ?? b ?? c)!) ? '5m' : 'x'));
}

interface Dashboard {
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
  annotations: { list: { expr?: string; titleFormat?: string; textFormat?: string; datasource?: { uid?: string } }[] };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: { refId: string; expr: string; legendFormat?: string; datasource?: { uid?: string } }[];
  panels?: Panel[];
}

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

function checkDashboard(d: Dashboard, recorded: ReadonlyMap<string, ReadonlySet<string>>): { problems: string[]; metrics: Set<string> } {
  const problems: string[] = [];
  const metrics = new Set<string>();
  const defined = new Set(d.templating.list.map((v) => v.name));
  const exprCheck = (raw: string, where: string, templates: Record<string, string | undefined>): void => {
    for (const v of variablesIn(raw)) if (!BUILTIN_VARS.has(v) && !defined.has(v)) problems.push(`${where}: $${v} is not a dashboard variable`);
    const a = analyse(substitute(raw), recorded);
    problems.push(...a.problems.map((p) => `${where}: ${p}`));
    for (const m of a.metrics) metrics.add(m);
    for (const [k, t] of Object.entries(templates)) checkPlaceholders(t, a.labels, `${where} ${k}`, problems);
  };

  for (const p of allPanels(d.panels)) {
    for (const t of p.targets ?? []) {
      exprCheck(t.expr, `panel "${p.title}" ${t.refId}`, { legendFormat: t.legendFormat === '__auto' ? undefined : t.legendFormat });
    }
  }
  for (const a of d.annotations.list) {
    if (a.expr !== undefined) exprCheck(a.expr, 'annotation', { titleFormat: a.titleFormat, textFormat: a.textFormat });
  }
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
    const m = /^label_values\((.+),\s*([A-Za-z_]\w*)\s*\)$/s.exec(q.trim());
    if (m === null) {
      problems.push(`variable ${v.name}: expected label_values(selector, label), got ${q}`);
      continue;
    }
    const where = `variable ${v.name}`;
    for (const name of variablesIn(m[1]!)) if (!defined.has(name)) problems.push(`${where}: $${name} is not a dashboard variable`);
    const a = analyse(substitute(m[1]!), recorded);
    problems.push(...a.problems.map((p) => `${where}: ${p}`));
    for (const x of a.metrics) metrics.add(x);
    if (a.labels !== null && !a.labels.has(m[2]!)) problems.push(`${where}: label "${m[2]}" is not on ${m[1]}`);
  }
  return { problems, metrics };
}

const dashboard = JSON.parse(read('deploy/grafana/breakwater-dashboard.json')) as Dashboard;
const rulesDoc = parseYaml(read('deploy/prometheus/breakwater-rules.yaml')) as RulesFile;

// ================================================================ the tests

describe('the PromQL checker', () => {
  it('accepts expressions over real metrics and labels', () => {
    for (const expr of [
      'sum by (listener, route, upstream) (rate(breakwater_requests_total{code=~"5.."}[5m]))',
      'histogram_quantile(0.99, sum by (le, upstream) (rate(breakwater_upstream_attempt_duration_seconds_bucket[5m])))',
      'up == 0 and on (job, instance) max_over_time(breakwater_config_info[1h])',
      'max by (upstream) (2 * (breakwater_circuit_state{state="open"} == 1) or 0 * (breakwater_circuit_state{state="closed"} == 1))',
      'rate(breakwater_process_cpu_seconds_total[5m])',
    ]) {
      assert.deepEqual(analyse(expr).problems, [], expr);
    }
  });

  it('reports each kind of mistake it exists to catch', () => {
    const cases: [string, RegExp][] = [
      ['sum(rate(breakwater_request_total[5m]))', /unknown metric breakwater_request_total/],
      ['sum by (route) (rate(breakwater_upstream_attempts_total[5m]))', /sum by: label "route" is not on the operand/],
      ['rate(breakwater_requests_total{path="/x"}[5m])', /breakwater_requests_total has no label "path"/],
      ['histogram_quantile(0.99, sum by (route) (rate(breakwater_request_duration_seconds_bucket[5m])))', /without "le"/],
      ['rate(breakwater_request_duration_seconds[5m])', /is a histogram/],
      ['rate(breakwater_bulkhead_active[5m])', /a gauge, not a counter/],
      ['sum(rate(breakwater_requests_total[5m]', /syntax error/],
      ['sum by (route) (rate(breakwater_requests_total[5m])) / sum by (upstream) (rate(breakwater_requests_total[5m]))', /different labels/],
      ['breakwater_config_info * on (upstream) breakwater_circuit_state', /on\(\) left side: label "upstream"/],
      ['breakwater_circuit_state * on (upstream) group_left (hash) breakwater_bulkhead_active', /group_left\(\) right side: label "hash"/],
      ['route:breakwater_requests:rate5m', /unknown metric route:breakwater_requests:rate5m/],
    ];
    for (const [expr, problem] of cases) {
      const { problems } = analyse(expr);
      assert.ok(problems.some((p) => problem.test(p)), `${expr}\n  expected ${problem}, got ${JSON.stringify(problems)}`);
    }
  });

  it('knows recording rules by name and by the labels they keep', () => {
    const recorded = new Map([['route:breakwater_requests:rate5m', new Set(['job', 'route'])]]);
    assert.deepEqual(analyse('sum by (route) (route:breakwater_requests:rate5m)', recorded).problems, []);
    assert.match(analyse('sum by (upstream) (route:breakwater_requests:rate5m)', recorded).problems.join('\n'), /label "upstream"/);
    // The rule aggregated `instance` away: it is not there to select or group by.
    assert.match(analyse('route:breakwater_requests:rate5m{instance="a"}', recorded).problems.join('\n'), /has no label "instance"/);
    assert.match(analyse('sum by (instance) (route:breakwater_requests:rate5m)', recorded).problems.join('\n'), /label "instance"/);
  });

  it('catches a wrong metric, label or variable once it is inside a dashboard, and a legend naming a lost label', () => {
    const broken = structuredClone(dashboard);
    const panels = allPanels(broken.panels).filter((p) => (p.targets ?? []).length > 0);
    panels[0]!.targets![0]!.expr = 'sum(rate(breakwater_request_totl[$__rate_interval]))';
    panels[1]!.targets![0]!.expr = 'sum by (path) (rate(breakwater_requests_total{upstream=~"$upstrem"}[$__rate_interval]))';
    panels[2]!.targets![0]!.legendFormat = '{{client}}';
    const { problems } = checkDashboard(broken, new Map());
    const text = problems.join('\n');
    assert.match(text, /unknown metric breakwater_request_totl/);
    assert.match(text, /label "path" is not on the operand/);
    assert.match(text, /\$upstrem is not a dashboard variable/);
    assert.match(text, /\{\{client\}\} is not a label of the result/);
  });
});

describe('deploy/prometheus/breakwater-rules.yaml', () => {
  const checked = checkRules(rulesDoc);

  it('parses, and names only exported metrics and their labels', () => {
    assert.deepEqual(checked.problems, []);
    assert.ok(checked.recorded.size >= 3, 'a few recording rules for the RED queries');
  });

  it('gives every alert a duration, a severity, a summary, a description and a runbook hint', () => {
    for (const a of checked.alerts) {
      assert.match(a.for ?? '', /^\d+[smh]$/, `${a.alert}: for`);
      assert.ok(['critical', 'warning', 'info'].includes(a.labels?.severity ?? ''), `${a.alert}: severity`);
      for (const k of ['summary', 'description', 'runbook']) assert.ok((a.annotations?.[k] ?? '').length > 10, `${a.alert}: ${k}`);
    }
  });

  it('alerts on open breakers, route errors, retry budgets, reloads, stale config, lost scrapes and full bulkheads', () => {
    assert.deepEqual(checked.alerts.map((a) => a.alert).sort(), [
      'BreakwaterBulkheadSaturated',
      'BreakwaterCircuitOpen',
      'BreakwaterConfigReloadFailed',
      'BreakwaterConfigStale',
      'BreakwaterDeadLettersDropped',
      'BreakwaterDeadLettersGrowing',
      'BreakwaterGlobalRateLimitRedisErrors',
      'BreakwaterMetricsAbsent',
      'BreakwaterRetryBudgetExhausted',
      'BreakwaterRouteErrorRatioHigh',
      'BreakwaterServingStale',
      'BreakwaterTargetDown',
    ]);
    const uses = (alert: string, what: RegExp) =>
      assert.match(checked.alerts.find((a) => a.alert === alert)!.expr, what, alert);
    uses('BreakwaterCircuitOpen', /breakwater_circuit_state/);
    uses('BreakwaterRouteErrorRatioHigh', /error_ratio/);
    uses('BreakwaterRetryBudgetExhausted', /breakwater_retry_budget_exhausted_total/);
    uses('BreakwaterConfigReloadFailed', /breakwater_config_reloads_total\{result="failure"\}/);
    uses('BreakwaterTargetDown', /\bup == 0/);
    uses('BreakwaterMetricsAbsent', /absent\(/);
    uses('BreakwaterBulkheadSaturated', /bulkhead/);
    uses('BreakwaterDeadLettersGrowing', /delta\(breakwater_dead_letters\[/);
    uses('BreakwaterDeadLettersDropped', /breakwater_dead_letters_dropped_total/);
    uses('BreakwaterServingStale', /breakwater_cache_hits_total\{result="stale"\}/);
    uses('BreakwaterGlobalRateLimitRedisErrors', /breakwater_global_rate_limit_errors_total/);
    assert.equal(checked.alerts.find((a) => a.alert === 'BreakwaterCircuitOpen')!.for, '5m');
  });
});

describe('deploy/grafana/breakwater-dashboard.json', () => {
  const recorded = checkRules(rulesDoc).recorded;
  const checked = checkDashboard(dashboard, recorded);
  const panels = allPanels(dashboard.panels);

  it('parses every query, and names only exported metrics, their labels and defined variables', () => {
    assert.deepEqual(checked.problems, []);
  });

  it('shows every metric of SPEC §8 and the process CPU, memory and event-loop lag', () => {
    const shown = [...checked.metrics].map((m) => m.replace(/_(bucket|sum|count)$/, ''));
    for (const s of CATALOGUE) assert.ok(shown.includes(PREFIX + s.name), `no panel shows ${PREFIX}${s.name}`);
    for (const m of ['breakwater_process_cpu_seconds_total', 'breakwater_process_resident_memory_bytes', 'breakwater_nodejs_eventloop_lag_p99_seconds']) {
      assert.ok(shown.includes(m), `no panel shows ${m}`);
    }
  });

  it('draws the breaker state as a state timeline with a name for every state', () => {
    const timeline = panels.find((p) => p.type === 'state-timeline') as (Panel & { fieldConfig: { defaults: { mappings: { options: Record<string, { text: string }> }[] } } }) | undefined;
    assert.ok(timeline, 'a state-timeline panel');
    assert.match(timeline.targets![0]!.expr, /breakwater_circuit_state/);
    const texts = timeline.fieldConfig.defaults.mappings.flatMap((m) => Object.values(m.options).map((o) => o.text));
    assert.deepEqual(texts.sort(), ['closed', 'half-open', 'open']);
  });

  it('takes its data source from a variable and offers listener, route and upstream filters', () => {
    assert.ok(dashboard.schemaVersion >= 39);
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v.type]));
    assert.equal(vars.get('DS_PROMETHEUS'), 'datasource');
    for (const v of ['listener', 'route', 'upstream']) assert.equal(vars.get(v), 'query', v);
    for (const p of panels.filter((x) => x.type !== 'row')) {
      assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}', `panel "${p.title}"`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, '${DS_PROMETHEUS}', `panel "${p.title}" ${t.refId}`);
    }
  });

  it('lays its panels out on the 24-column grid with unique ids', () => {
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const p of panels) assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits`);
    // No two panels overlap.
    for (const a of panels) {
      for (const b of panels) {
        if (a === b) continue;
        const overlap = a.gridPos.x < b.gridPos.x + b.gridPos.w && b.gridPos.x < a.gridPos.x + a.gridPos.w
          && a.gridPos.y < b.gridPos.y + b.gridPos.h && b.gridPos.y < a.gridPos.y + a.gridPos.h;
        assert.ok(!overlap, `"${a.title}" overlaps "${b.title}"`);
      }
    }
  });
});
