// The packaging of SPEC §9, checked without a cluster or a container engine:
// the Kubernetes manifests in deploy/ (as written, and as kustomize renders
// them when kubectl or kustomize is installed), the config they ship, the
// Dockerfile and its build context. scripts/test-container.sh builds and runs
// the image for real.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join, relative, sep } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import { validate as lintDockerfile } from 'dockerfile-utils';
import type { BreakwaterConfig } from '../../src/config/types.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const deployDir = join(root, 'deploy');
const read = (rel: string): string => readFileSync(join(root, rel), 'utf8');

// ------------------------------------------------------------------ shapes
// Only what the assertions read; kubernetes-models checks the full schema.
interface Probe { httpGet?: { path?: string; port?: string | number } }
interface Container {
  name: string;
  image?: string;
  args?: string[];
  restartPolicy?: string;
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name?: string; key?: string } } }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    seccompProfile?: { type?: string };
  };
  volumeMounts?: { name: string; mountPath: string; subPath?: string; subPathExpr?: string; readOnly?: boolean }[];
}
interface PodSpec {
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type?: string } };
  initContainers?: Container[];
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string }; emptyDir?: object }[];
}
interface DeploymentDoc {
  kind: string;
  metadata: { name: string };
  spec: { template: { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec } };
}
interface K8sObject { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; data?: Record<string, string>; spec?: unknown }
interface Kustomization {
  resources?: string[];
  images?: { name: string }[];
  generatorOptions?: { disableNameSuffixHash?: boolean };
  configMapGenerator?: { name: string; files?: string[]; options?: { disableNameSuffixHash?: boolean; labels?: Record<string, string> } }[];
}

const SIDECAR = 'breakwater';
const CONFIG_CONFIGMAP = 'breakwater-config';
const CONFIG_DIR = '/etc/breakwater';
const CONFIG_FILE = `${CONFIG_DIR}/breakwater.yaml`;

const deployment = parse(read('deploy/deployment.yaml')) as DeploymentDoc;
const podSpec = deployment.spec.template.spec;
const kustomization = parse(read('deploy/kustomization.yaml')) as Kustomization;
/** deploy/breakwater.yaml as plain YAML: what the ConfigMap carries. */
const rawConfig = parse(read('deploy/breakwater.yaml')) as {
  admin: { address: string };
  listeners: { name: string; address: string; upstream?: string; routes?: { upstream: string }[] }[];
};

function sidecar(): Container {
  const found = podSpec.initContainers?.find((c) => c.name === SIDECAR);
  assert.ok(found, `no init container named ${SIDECAR}`);
  return found;
}
function appContainer(): Container {
  const app = podSpec.containers[0];
  assert.ok(app, 'the Deployment has no app container');
  return app;
}
function portOf(address: string): number {
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  assert.ok(Number.isInteger(port) && port > 0, `no port in address ${address}`);
  return port;
}
function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
}
/** Kubernetes quantities as the manifests use them: cpu in cores, memory in bytes. */
function quantity(q: string): number {
  const m = /^([0-9.]+)(m|k|Ki|M|Mi|G|Gi)?$/.exec(q);
  assert.ok(m, `unreadable quantity ${q}`);
  const units: Record<string, number> = { m: 1e-3, k: 1e3, Ki: 1024, M: 1e6, Mi: 1024 ** 2, G: 1e9, Gi: 1024 ** 3 };
  return Number(m[1]) * (m[2] ? (units[m[2]] ?? NaN) : 1);
}
function envOf(c: Container, name: string): string | undefined {
  return c.env?.find((e) => e.name === name)?.value;
}

// ------------------------------------------------------------------ Deployment
describe('the example Deployment (deploy/deployment.yaml)', () => {
  it('passes the Kubernetes API schema, and so does the Service', () => {
    assert.doesNotThrow(() => new Deployment(deployment as never).validate());
    assert.doesNotThrow(() => new Service(parse(read('deploy/service.yaml')) as never).validate());
  });

  it('runs breakwater as a native sidecar: an init container with restartPolicy Always, not a regular container', () => {
    assert.equal(sidecar().restartPolicy, 'Always');
    assert.ok(!podSpec.containers.some((c) => c.name === SIDECAR), 'breakwater must not also be a regular container');
    assert.ok(podSpec.containers.length >= 1, 'an app container runs beside it');
  });

  it('probes liveness on /healthz and readiness and start-up on /readyz', () => {
    const c = sidecar();
    assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
    assert.equal(c.readinessProbe?.httpGet?.path, '/readyz');
    // The kubelet starts the app only after this passes: listeners are bound by then.
    assert.equal(c.startupProbe?.httpGet?.path, '/readyz');
  });

  it('points every probe at a named containerPort that exists and is the admin port of the config', () => {
    const c = sidecar();
    const adminPort = portOf(rawConfig.admin.address);
    for (const [kind, probe] of Object.entries({ liveness: c.livenessProbe, readiness: c.readinessProbe, startup: c.startupProbe })) {
      const port = probe?.httpGet?.port;
      assert.equal(typeof port, 'string', `${kind} probe should name its port, not number it`);
      const declared = c.ports?.find((p) => p.name === port);
      assert.ok(declared, `${kind} probe port ${String(port)} is not a containerPort of ${SIDECAR}`);
      assert.equal(declared.containerPort, adminPort, `${kind} probe reaches ${declared.containerPort}, admin listens on ${adminPort}`);
    }
    assert.equal(c.ports?.find((p) => p.name === 'admin')?.containerPort, adminPort);
  });

  it('names an existing volume in every volumeMount of every container', () => {
    const volumes = new Set((podSpec.volumes ?? []).map((v) => v.name));
    for (const c of [...(podSpec.initContainers ?? []), ...podSpec.containers]) {
      for (const m of c.volumeMounts ?? []) {
        assert.ok(volumes.has(m.name), `container ${c.name} mounts ${m.name}, which is not a volume of the pod`);
      }
    }
  });

  it('mounts the generated ConfigMap as a whole directory (no subPath), so live edits reach the pod', () => {
    const mount = sidecar().volumeMounts?.find((m) => m.mountPath === CONFIG_DIR);
    assert.ok(mount, `nothing is mounted at ${CONFIG_DIR}`);
    assert.equal(mount.subPath, undefined, 'a subPath mount never sees ConfigMap updates');
    assert.equal(mount.subPathExpr, undefined, 'a subPathExpr mount never sees ConfigMap updates');
    assert.equal(mount.readOnly, true);
    const volume = podSpec.volumes?.find((v) => v.name === mount.name);
    assert.equal(volume?.configMap?.name, CONFIG_CONFIGMAP);
    const generated = kustomization.configMapGenerator?.find((g) => g.name === CONFIG_CONFIGMAP);
    assert.ok(generated, `kustomization.yaml generates no ConfigMap ${CONFIG_CONFIGMAP}`);
    assert.deepEqual(generated.files, ['breakwater.yaml']);
  });

  it('starts breakwater on the config file inside the mounted directory', () => {
    const args = sidecar().args ?? [];
    const i = args.indexOf('--config');
    assert.ok(i >= 0, 'the sidecar passes --config');
    assert.equal(args[i + 1], CONFIG_FILE);
  });

  it('locks the sidecar down: non-root, read-only root filesystem, no privilege escalation, no capabilities, RuntimeDefault seccomp', () => {
    const sc = sidecar().securityContext;
    assert.equal(sc?.runAsNonRoot, true);
    assert.ok((sc?.runAsUser ?? podSpec.securityContext?.runAsUser ?? 0) > 0, 'a non-zero runAsUser');
    assert.equal(sc?.readOnlyRootFilesystem, true);
    assert.equal(sc?.allowPrivilegeEscalation, false);
    assert.deepEqual(sc?.capabilities?.drop, ['ALL']);
    assert.equal(sc?.capabilities?.add, undefined);
    assert.equal(sc?.seccompProfile?.type ?? podSpec.securityContext?.seccompProfile?.type, 'RuntimeDefault');
    assert.equal(podSpec.securityContext?.runAsNonRoot, true);
  });

  it('sets small resource requests and limits for the sidecar, requests within limits', () => {
    const r = sidecar().resources;
    for (const res of ['cpu', 'memory']) {
      const request = r?.requests?.[res];
      const limit = r?.limits?.[res];
      assert.ok(request && limit, `${res} request and limit are both set`);
      assert.ok(quantity(request) <= quantity(limit), `${res} request ${request} is above its limit ${limit}`);
    }
    assert.ok(quantity(r?.requests?.['cpu'] ?? '0') <= 0.1, 'a sidecar asks for at most 100m CPU');
    assert.ok(quantity(r?.requests?.['memory'] ?? '0') <= 128 * 1024 ** 2, 'a sidecar asks for at most 128Mi');
  });

  it('caps the V8 heap in the image below the sidecar memory limit', () => {
    const options = /ENV NODE_OPTIONS="([^"]*)"/.exec(read('Dockerfile'))?.[1] ?? '';
    const oldSpace = Number(/--max-old-space-size=(\d+)/.exec(options)?.[1]);
    const semiSpace = Number(/--max-semi-space-size=(\d+)/.exec(options)?.[1] ?? 16);
    assert.ok(oldSpace > 0, 'NODE_OPTIONS sets --max-old-space-size');
    const limitMiB = quantity(sidecar().resources?.limits?.['memory'] ?? '0') / 1024 ** 2;
    // Old space + from/to semi-spaces must leave headroom for code, stacks and buffers.
    assert.ok(oldSpace + 3 * semiSpace <= limitMiB * 0.85, `heap ${oldSpace}+3×${semiSpace} MiB leaves too little of ${limitMiB}Mi`);
  });

  it('annotates the pod for Prometheus to scrape /metrics on the admin port', () => {
    const a = deployment.spec.template.metadata.annotations ?? {};
    assert.equal(a['prometheus.io/scrape'], 'true');
    assert.equal(a['prometheus.io/path'], '/metrics');
    assert.equal(Number(a['prometheus.io/port']), portOf(rawConfig.admin.address));
  });

  it('points the app at breakwater on loopback: PAYMENTS_URL at the payments listener, HTTP_PROXY at the egress listener', () => {
    const app = appContainer();
    const byPort = new Map(rawConfig.listeners.map((l) => [portOf(l.address), l]));
    const payments = new URL(envOf(app, 'PAYMENTS_URL') ?? 'missing:');
    assert.equal(payments.hostname, '127.0.0.1');
    assert.equal(byPort.get(Number(payments.port))?.upstream, 'payments', 'PAYMENTS_URL reaches a listener for upstream payments');
    for (const name of ['HTTP_PROXY', 'http_proxy']) {
      const proxy = new URL(envOf(app, name) ?? 'missing:');
      assert.equal(proxy.hostname, '127.0.0.1', `${name} is loopback`);
      const listener = byPort.get(Number(proxy.port));
      assert.ok(listener?.routes && listener.routes.length > 0, `${name} reaches a listener with routes`);
    }
    for (const name of ['NO_PROXY', 'no_proxy']) {
      const direct = (envOf(app, name) ?? '').split(',');
      for (const host of ['localhost', '127.0.0.1']) assert.ok(direct.includes(host), `${name} keeps ${host} direct`);
    }
  });
});

// ------------------------------------------------------------------ kustomization
describe('the kustomization (deploy/kustomization.yaml)', () => {
  it('names only files that exist under deploy/ (kustomize reads nothing outside its root)', () => {
    const files = [...(kustomization.resources ?? []), ...(kustomization.configMapGenerator ?? []).flatMap((g) => g.files ?? [])];
    assert.ok(files.length > 0);
    for (const f of files) {
      assert.ok(!f.startsWith('..') && !f.startsWith('/'), `${f} lies outside deploy/`);
      assert.ok(existsSync(join(deployDir, f)), `deploy/${f} is missing`);
    }
  });

  it('keeps generated ConfigMap names fixed, so an edited config reaches running pods instead of rolling them', () => {
    const global = kustomization.generatorOptions?.disableNameSuffixHash === true;
    const generator = kustomization.configMapGenerator?.find((g) => g.name === CONFIG_CONFIGMAP);
    assert.ok(global || generator?.options?.disableNameSuffixHash === true);
  });

  it('generates the Grafana dashboard and the Prometheus rules as ConfigMaps', () => {
    const all = (kustomization.configMapGenerator ?? []).flatMap((g) => g.files ?? []);
    assert.ok(all.includes('grafana/breakwater-dashboard.json'));
    assert.ok(all.includes('prometheus/breakwater-rules.yaml'));
    const dashboard = kustomization.configMapGenerator?.find((g) => g.files?.includes('grafana/breakwater-dashboard.json'));
    assert.equal(dashboard?.options?.labels?.['grafana_dashboard'], '1', 'the label Grafana\'s dashboard sidecar looks for');
  });

  it('sets the breakwater image through kustomize images, matching the sidecar image name', () => {
    const image = sidecar().image ?? '';
    assert.ok(kustomization.images?.some((i) => image.startsWith(`${i.name}:`) || image === i.name));
  });
});

// ------------------------------------------------------------------ rendered
/** kubectl kustomize, or a standalone kustomize; null when neither is installed. */
function kustomizeCommand(): { cmd: string; args: (dir: string) => string[] } | null {
  if (spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0) {
    return { cmd: 'kubectl', args: (dir) => ['kustomize', dir] };
  }
  if (spawnSync('kustomize', ['version'], { stdio: 'ignore' }).status === 0) {
    return { cmd: 'kustomize', args: (dir) => ['build', dir] };
  }
  return null;
}
function render(tool: NonNullable<ReturnType<typeof kustomizeCommand>>, dir: string): K8sObject[] {
  const out = spawnSync(tool.cmd, tool.args(dir), { encoding: 'utf8', timeout: 60_000 });
  assert.equal(out.status, 0, `${tool.cmd} ${tool.args(dir).join(' ')} failed:\n${out.stderr}`);
  return parseAllDocuments(out.stdout).map((d) => d.toJS() as K8sObject).filter(Boolean);
}

describe('deploy/ as kustomize renders it', () => {
  const tool = kustomizeCommand();
  const skip = tool ? false : 'kubectl not installed (nor kustomize): the rendered manifests are not checked; the raw YAML checks above still ran';
  let objects: K8sObject[] = [];
  before(() => {
    if (tool) objects = render(tool, deployDir);
  });
  const find = (kind: string, name: string): K8sObject => {
    const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
    assert.ok(o, `no ${kind} ${name} in the rendered output (got ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')})`);
    return o;
  };

  it('renders objects that pass the Kubernetes API schema', { skip }, () => {
    const models: Record<string, new (o: never) => { validate(): void }> = { Deployment, ConfigMap, Service };
    assert.ok(objects.length >= 4);
    for (const o of objects) {
      const Model = models[o.kind];
      assert.ok(Model, `unexpected kind ${o.kind}: add it to this test's models`);
      assert.doesNotThrow(() => new Model(o as never).validate(), `${o.kind}/${o.metadata.name}`);
    }
  });

  it('renders the config ConfigMap under the fixed name the Deployment mounts, holding deploy/breakwater.yaml unchanged', { skip }, () => {
    const cm = find('ConfigMap', CONFIG_CONFIGMAP);
    assert.equal(cm.data?.['breakwater.yaml'], read('deploy/breakwater.yaml'));
    const d = find('Deployment', deployment.metadata.name) as unknown as DeploymentDoc;
    const names = (d.spec.template.spec.volumes ?? []).map((v) => v.configMap?.name).filter(Boolean);
    assert.ok(names.includes(CONFIG_CONFIGMAP), `the rendered Deployment mounts ${names.join(', ')}`);
  });

  it('renders the dashboard ConfigMap with a dashboard that parses as JSON, labelled for Grafana', { skip }, () => {
    const cm = find('ConfigMap', 'breakwater-grafana-dashboard');
    assert.equal(cm.metadata.labels?.['grafana_dashboard'], '1');
    assert.doesNotThrow(() => JSON.parse(cm.data?.['breakwater-dashboard.json'] ?? ''));
  });

  it('renders the rules ConfigMap with rule groups that parse as YAML', { skip }, () => {
    const cm = find('ConfigMap', 'breakwater-prometheus-rules');
    const rules = parse(cm.data?.['breakwater-rules.yaml'] ?? '') as { groups?: unknown[] } | null;
    assert.ok(Array.isArray(rules?.groups) && rules.groups.length > 0);
  });

  it('renders with the prometheus-operator component: a PodMonitor scraping the admin port by name, and no scrape annotations', { skip }, () => {
    // Composed the way a user turns it on, from a scratch kustomization beside
    // deploy/ (kustomize refuses absolute paths and roots nested in each other).
    const scratch = mkdtempSync(join(tmpdir(), 'breakwater-kustomize-'));
    try {
      const rel = relative(scratch, deployDir).split(sep).join('/');
      writeFileSync(join(scratch, 'kustomization.yaml'),
        `resources:\n  - ${rel}\ncomponents:\n  - ${rel}/components/prometheus-operator\n`);
      const withOperator = render(tool!, scratch);
      const monitor = withOperator.find((o) => o.kind === 'PodMonitor');
      assert.ok(monitor, 'no PodMonitor');
      assert.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
      const spec = monitor.spec as { selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: { port: string; path?: string }[] };
      assert.equal(spec.podMetricsEndpoints[0]?.port, 'admin');
      assert.equal(spec.podMetricsEndpoints[0]?.path ?? '/metrics', '/metrics');
      const podLabels = deployment.spec.template.metadata.labels ?? {};
      for (const [k, v] of Object.entries(spec.selector.matchLabels)) assert.equal(podLabels[k], v, `selector ${k}=${v} matches the pod`);
      for (const o of objects) {
        assert.ok(withOperator.some((x) => x.kind === o.kind && x.metadata.name === o.metadata.name), `still renders ${o.kind}/${o.metadata.name}`);
      }
      const d = withOperator.find((o) => o.kind === 'Deployment') as unknown as DeploymentDoc;
      const annotations = Object.keys(d.spec.template.metadata.annotations ?? {});
      assert.deepEqual(annotations.filter((a) => a.startsWith('prometheus.io/')), [], 'scraped once, by the PodMonitor');
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  it('renders with the upstream-tls component: the Secret mounted read-only where the shipped config reads it', { skip }, () => {
    const scratch = mkdtempSync(join(tmpdir(), 'breakwater-kustomize-'));
    try {
      const rel = relative(scratch, deployDir).split(sep).join('/');
      writeFileSync(join(scratch, 'kustomization.yaml'), `resources:\n  - ${rel}\ncomponents:\n  - ${rel}/components/upstream-tls\n`);
      const withTls = render(tool!, scratch);
      const cm = withTls.find((o) => o.kind === 'ConfigMap' && o.metadata.name === CONFIG_CONFIGMAP);
      assert.equal(cm?.data?.['breakwater.yaml'], read('deploy/components/upstream-tls/breakwater.yaml'));
      const d = withTls.find((o) => o.kind === 'Deployment') as unknown as DeploymentDoc;
      const spec = d.spec.template.spec;
      const mount = spec.initContainers?.find((c) => c.name === SIDECAR)?.volumeMounts?.find((m) => m.mountPath === '/etc/breakwater-tls/ledger');
      assert.equal(mount?.readOnly, true);
      const volume = spec.volumes?.find((v) => v.name === mount?.name) as { secret?: { secretName?: string } } | undefined;
      assert.equal(volume?.secret?.secretName, 'ledger-client-tls');
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  it('renders with the tracing component: its config, and the sidecar’s OTEL_* environment from the downward API', { skip }, () => {
    const scratch = mkdtempSync(join(tmpdir(), 'breakwater-kustomize-'));
    try {
      const rel = relative(scratch, deployDir).split(sep).join('/');
      writeFileSync(join(scratch, 'kustomization.yaml'), `resources:\n  - ${rel}\ncomponents:\n  - ${rel}/components/tracing\n`);
      const objects = render(tool!, scratch);
      const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === CONFIG_CONFIGMAP);
      assert.equal(cm?.data?.['breakwater.yaml'], read('deploy/components/tracing/breakwater.yaml'));
      const d = objects.find((o) => o.kind === 'Deployment') as unknown as DeploymentDoc;
      assert.doesNotThrow(() => new Deployment(d as never).validate());
      const env = (d.spec.template.spec.initContainers?.find((c) => c.name === SIDECAR) as unknown as { env?: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[] }).env ?? [];
      assert.ok(env.some((e) => e.name === 'OTEL_RESOURCE_ATTRIBUTES'));
      assert.deepEqual(env.filter((e) => e.valueFrom?.fieldRef).map((e) => e.valueFrom!.fieldRef!.fieldPath), ['metadata.name', 'metadata.namespace', 'spec.nodeName']);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

// ------------------------------------------------------------------ upstream TLS component
// deploy/components/upstream-tls: a Secret with an upstream's CA, client
// certificate and key, mounted into the sidecar where the component's config
// points (SPEC §10.4). Checked by applying its JSON patch to the Deployment
// here, so no kustomize is needed.
describe('the upstream-tls component (deploy/components/upstream-tls)', () => {
  const dir = 'deploy/components/upstream-tls';
  const component = parse(read(`${dir}/kustomization.yaml`)) as {
    kind: string;
    configMapGenerator?: { name: string; behavior?: string; files?: string[] }[];
    patches?: { target: { kind: string; name: string }; patch: string }[];
  };
  type Op = { op: string; path: string; value: unknown };
  const ops = (): Op[] => {
    const p = component.patches?.find((x) => x.target.kind === 'Deployment' && x.target.name === deployment.metadata.name);
    assert.ok(p, 'the component patches the example Deployment');
    return parse(p.patch) as Op[];
  };
  /** JSON Patch `add` (all the component uses), on a copy. */
  const patched = (): DeploymentDoc => {
    const doc = structuredClone(deployment) as unknown as Record<string, unknown>;
    for (const o of ops()) {
      assert.equal(o.op, 'add');
      const keys = o.path.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
      const last = keys.pop()!;
      let at: any = doc;
      for (const k of keys) at = at[k];
      assert.ok(at !== undefined, `${o.path}: the parent exists in deployment.yaml`);
      if (Array.isArray(at)) at.splice(last === '-' ? at.length : Number(last), 0, o.value);
      else at[last] = o.value;
    }
    return doc as unknown as DeploymentDoc;
  };
  const tlsConfig = parse(read(`${dir}/breakwater.yaml`)) as {
    listeners: { name: string }[];
    upstreams: Record<string, { tls?: { ca?: string; cert?: string; key?: string } }>;
  };

  it('is a kustomize Component that replaces the config ConfigMap with its own breakwater.yaml', () => {
    assert.equal(component.kind, 'Component');
    const g = component.configMapGenerator?.find((x) => x.name === CONFIG_CONFIGMAP);
    assert.equal(g?.behavior, 'replace');
    assert.deepEqual(g?.files, ['breakwater.yaml']);
  });

  it('mounts the Secret read-only, as a directory (no subPath), into the breakwater sidecar, readable by its non-root user', () => {
    const d = patched();
    assert.doesNotThrow(() => new Deployment(d as never).validate());
    const spec = d.spec.template.spec;
    const secretVolumes = (spec.volumes ?? []).filter((v) => (v as { secret?: unknown }).secret !== undefined);
    assert.equal(secretVolumes.length, 1);
    const volume = secretVolumes[0] as { name: string; secret: { secretName: string; defaultMode?: number } };
    const sc = spec.initContainers?.find((c) => c.name === SIDECAR);
    const mount = sc?.volumeMounts?.find((m) => m.name === volume.name);
    assert.ok(mount, 'the breakwater sidecar mounts the Secret');
    assert.equal(mount.readOnly, true);
    assert.equal(mount.subPath, undefined, 'a subPath mount never sees a renewed Secret');
    assert.ok(!spec.containers.some((c) => c.volumeMounts?.some((m) => m.name === volume.name)), 'only breakwater sees the key');
    // 0440 owned by the pod's fsGroup: the sidecar's group can read it, others cannot.
    assert.equal(volume.secret.defaultMode, 0o440);
    assert.equal((spec.securityContext as { fsGroup?: number }).fsGroup, sc?.securityContext?.runAsUser === 1000 ? 1000 : undefined);
  });

  it('points every tls file of its config into the mounted Secret, by the keys cert-manager writes', () => {
    const sc = patched().spec.template.spec.initContainers?.find((c) => c.name === SIDECAR);
    const mount = sc?.volumeMounts?.find((m) => m.mountPath.startsWith('/etc/breakwater-tls/'));
    assert.ok(mount);
    const files = Object.values(tlsConfig.upstreams).flatMap((u) => (u.tls ? [u.tls.ca, u.tls.cert, u.tls.key] : [])).filter((f) => f !== undefined);
    assert.deepEqual(files, [`${mount.mountPath}/ca.crt`, `${mount.mountPath}/tls.crt`, `${mount.mountPath}/tls.key`]);
  });

  it('ships deploy/breakwater.yaml unchanged but for the ledger listener and upstream', () => {
    const base = parse(read('deploy/breakwater.yaml')) as typeof tlsConfig;
    const mine = structuredClone(tlsConfig);
    mine.listeners = mine.listeners.filter((l) => l.name !== 'ledger');
    delete mine.upstreams['ledger'];
    assert.deepEqual(mine, base);
  });

  it('ships a valid config once the Secret’s files are there', async (t) => {
    const { CertFactory, opensslMissing } = await import('../helpers/certs.ts');
    const missing = opensslMissing();
    if (missing !== null) {
      if (process.env['CI'] === 'true') assert.fail(missing);
      t.skip(missing);
      return;
    }
    const certs = new CertFactory();
    try {
      const ca = certs.ca('ledger-ca');
      const client = certs.leaf('checkout', ca);
      writeFileSync(join(certs.dir, 'ca.crt'), ca.cert);
      writeFileSync(join(certs.dir, 'tls.crt'), client.cert);
      writeFileSync(join(certs.dir, 'tls.key'), client.key);
      const { loadConfigText } = await import('../../src/config/load.ts');
      const text = read(`${dir}/breakwater.yaml`).replaceAll('/etc/breakwater-tls/ledger', certs.dir);
      const r = loadConfigText(text, join(certs.dir, 'breakwater.yaml'), { BREAKWATER_ADMIN_TOKEN: 'deploy-test-token-0123456789abcdef' });
      assert.ok(r.ok, r.ok ? '' : r.errors.map(String).join('\n'));
    } finally {
      certs.close();
    }
  });
});

// ------------------------------------------------------------------ global rate limit component
// deploy/components/global-rate-limit: a Redis and the config whose
// inventory rate limit is shared through it (SPEC §12).
describe('the global-rate-limit component (deploy/components/global-rate-limit)', () => {
  const dir = 'deploy/components/global-rate-limit';
  const component = parse(read(`${dir}/kustomization.yaml`)) as {
    kind: string;
    resources?: string[];
    configMapGenerator?: { name: string; behavior?: string; files?: string[] }[];
    patches?: { target: { kind: string; name: string }; patch: string }[];
  };
  const redisObjects = parseAllDocuments(read(`${dir}/redis.yaml`)).map((d) => d.toJS() as K8sObject);
  const componentConfig = parse(read(`${dir}/breakwater.yaml`)) as Record<string, any>;

  it('is a Component that adds a Redis Deployment and Service and replaces the config ConfigMap', () => {
    assert.equal(component.kind, 'Component');
    assert.deepEqual(component.resources, ['redis.yaml']);
    const g = component.configMapGenerator?.find((x) => x.name === CONFIG_CONFIGMAP);
    assert.equal(g?.behavior, 'replace');
    assert.deepEqual(redisObjects.map((o) => o.kind).sort(), ['Deployment', 'Service']);
    for (const o of redisObjects) {
      const Model = ({ Deployment, Service } as Record<string, new (o: never) => { validate(): void }>)[o.kind]!;
      assert.doesNotThrow(() => new Model(o as never).validate(), `${o.kind}/${o.metadata.name}`);
    }
  });

  it('gives the sidecar REDIS_URL (the Service) and REDIS_PASSWORD (a Secret), which the config reads', () => {
    const p = component.patches?.find((x) => x.target.kind === 'Deployment' && x.target.name === deployment.metadata.name);
    assert.ok(p);
    const ops = parse(p.patch) as { op: string; path: string; value: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string } } } }[];
    // Appended, one entry per op: the base's own env (the admin token) stays.
    const env = { value: ops.filter((o) => o.op === 'add' && o.path === '/spec/template/spec/initContainers/0/env/-').map((o) => o.value) };
    assert.equal(env.value.length, ops.length, 'every op appends to the first init container’s env');
    assert.equal(podSpec.initContainers?.[0]?.name, SIDECAR, 'which is the breakwater sidecar');
    const svc = redisObjects.find((o) => o.kind === 'Service')!;
    const port = (svc.spec as { ports: { port: number }[] }).ports[0]!.port;
    assert.equal(env.value.find((e) => e.name === 'REDIS_URL')?.value, `redis://${svc.metadata.name}:${port}`);
    assert.equal(env.value.find((e) => e.name === 'REDIS_PASSWORD')?.valueFrom?.secretKeyRef?.name, 'breakwater-redis');
    assert.equal(componentConfig['redis'].url, '${REDIS_URL}');
    assert.equal(componentConfig['redis'].password, '${REDIS_PASSWORD}');
  });

  it('ships deploy/breakwater.yaml unchanged but for the redis block and scope global on inventory', () => {
    const base = parse(read('deploy/breakwater.yaml')) as Record<string, any>;
    const mine = structuredClone(componentConfig);
    delete mine['redis'];
    assert.equal(mine['upstreams'].inventory.rateLimit.scope, 'global');
    delete mine['upstreams'].inventory.rateLimit.scope;
    delete mine['upstreams'].inventory.rateLimit.key;
    assert.deepEqual(mine, base);
  });

  it('ships a valid config, whose credentials stay out of GET /config', async () => {
    const { loadConfigText } = await import('../../src/config/load.ts');
    const r = loadConfigText(read(`${dir}/breakwater.yaml`), join(root, dir, 'breakwater.yaml'), { REDIS_URL: 'redis://breakwater-redis:6379', REDIS_PASSWORD: 'pw-from-secret', BREAKWATER_ADMIN_TOKEN: 'x'.repeat(32) });
    assert.ok(r.ok, r.ok ? '' : r.errors.map(String).join('\n'));
    assert.equal(r.config.upstreams.get('inventory')?.rateLimit?.scope, 'global');
    assert.ok(!JSON.stringify(r.config.source.redacted).includes('pw-from-secret'));
  });

  it('renders with kustomize: the Redis objects and the sidecar env', { skip: kustomizeCommand() ? false : 'kubectl not installed (nor kustomize)' }, () => {
    const scratch = mkdtempSync(join(tmpdir(), 'breakwater-kustomize-'));
    try {
      const rel = relative(scratch, deployDir).split(sep).join('/');
      writeFileSync(join(scratch, 'kustomization.yaml'), `resources:\n  - ${rel}\ncomponents:\n  - ${rel}/components/global-rate-limit\n`);
      const out = render(kustomizeCommand()!, scratch);
      assert.ok(out.some((o) => o.kind === 'Deployment' && o.metadata.name === 'breakwater-redis'));
      assert.ok(out.some((o) => o.kind === 'Service' && o.metadata.name === 'breakwater-redis'));
      const cm = out.find((o) => o.kind === 'ConfigMap' && o.metadata.name === CONFIG_CONFIGMAP);
      assert.equal(cm?.data?.['breakwater.yaml'], read(`${dir}/breakwater.yaml`));
      const d = out.find((o) => o.kind === 'Deployment' && o.metadata.name === deployment.metadata.name) as unknown as DeploymentDoc;
      const sc = d.spec.template.spec.initContainers?.find((c) => c.name === SIDECAR);
      assert.ok(sc?.env?.some((e) => e.name === 'REDIS_URL'));
      // The component appends: the base's admin token (required off loopback) is still there.
      assert.ok(sc?.env?.some((e) => e.name === 'BREAKWATER_ADMIN_TOKEN'));
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

// ------------------------------------------------------------------ config
type LoadResult = { ok: true; config: BreakwaterConfig } | { ok: false; errors: readonly unknown[] };
async function loadDeployConfig(): Promise<BreakwaterConfig> {
  // Resolved at run time so this file type-checks before the loader lands.
  const loader = new URL('../../src/config/load.ts', import.meta.url).href;
  const { loadConfigFile } = (await import(loader)) as { loadConfigFile: (file: string, env: Record<string, string>) => LoadResult | Promise<LoadResult> };
  // admin.token comes from the Secret in the pod; any value of the right shape here.
  const result = await loadConfigFile(join(deployDir, 'breakwater.yaml'), { BREAKWATER_ADMIN_TOKEN: 'deploy-test-token-0123456789abcdef' });
  if (!result.ok) {
    const lines = result.errors.map((e) => (typeof e === 'object' && e && 'message' in e ? String((e as { message: unknown }).message) : String(e)));
    assert.fail(`deploy/breakwater.yaml is invalid:\n${lines.join('\n')}`);
  }
  return result.config;
}

describe('the config the ConfigMap ships (deploy/breakwater.yaml)', () => {
  let config: BreakwaterConfig;
  before(async () => {
    config = await loadDeployConfig();
  });

  it('passes breakwater\'s own validator', () => {
    assert.ok(config, 'loaded');
    assert.equal(config.version, 1);
  });

  it('binds the admin API on every interface, where the kubelet\'s probes and Prometheus reach it', () => {
    assert.equal(config.admin.address.host, '0.0.0.0');
    assert.equal(config.admin.address.port, portOf(rawConfig.admin.address));
  });

  it('protects that admin API with a token the sidecar reads from a Secret, never from the file (SPEC §11.3)', () => {
    assert.deepEqual(config.admin.tokenFrom, ['BREAKWATER_ADMIN_TOKEN']);
    const sidecar = podSpec.initContainers?.find((c) => c.name === 'breakwater');
    const env = sidecar?.env?.find((e) => e.name === 'BREAKWATER_ADMIN_TOKEN');
    assert.equal(env?.value, undefined, 'not a literal in the manifest');
    assert.equal(env?.valueFrom?.secretKeyRef?.name, 'breakwater-admin');
    assert.equal(env?.valueFrom?.secretKeyRef?.key, 'token');
  });

  it('binds every listener to loopback, reachable only from inside the pod', () => {
    for (const l of config.listeners) {
      assert.ok(['127.0.0.1', '::1', 'localhost'].includes(l.address.host), `listener ${l.name} binds ${l.address.text}`);
    }
    for (const l of rawConfig.listeners) assert.equal(hostOf(l.address), '127.0.0.1');
  });

  it('fits its drain into the pod\'s terminationGracePeriodSeconds', () => {
    const grace = (podSpec.terminationGracePeriodSeconds ?? 30) * 1000;
    const drain = config.drain.delay + config.drain.timeout;
    assert.ok(drain + 5_000 <= grace, `drain ${drain}ms + 5s margin exceeds the grace period of ${grace}ms`);
  });
});

// ------------------------------------------------------------------ Dockerfile
interface Instruction { keyword: string; args: string; line: number }
/** Dockerfile instructions with continuation lines joined and comments dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let buffer = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (buffer === '' && (/^\s*#/.test(line) || line.trim() === '')) return;
    if (buffer !== '' && /^\s*#/.test(line)) return;
    if (buffer === '') start = i + 1;
    if (line.endsWith('\\')) {
      buffer += line.slice(0, -1) + ' ';
      return;
    }
    buffer += line;
    const m = /^\s*(\w+)\s*(.*)$/s.exec(buffer);
    if (m) out.push({ keyword: (m[1] ?? '').toUpperCase(), args: (m[2] ?? '').trim(), line: start });
    buffer = '';
  });
  return out;
}

describe('the Dockerfile', () => {
  const text = read('Dockerfile');
  const all = instructions(text);
  const froms = all.filter((i) => i.keyword === 'FROM');
  const finalStage = all.slice(all.lastIndexOf(froms[froms.length - 1]!));

  it('has no lint errors or warnings (dockerfile-utils)', () => {
    const diagnostics = lintDockerfile(text);
    assert.deepEqual(diagnostics.map((d) => `line ${d.range.start.line + 1}: ${d.message}`), []);
  });

  it('is multi-stage, both stages on Node 24 bookworm-slim through ARG BASE', () => {
    assert.ok(froms.length >= 2, 'a build stage and a runtime stage');
    const arg = all.find((i) => i.keyword === 'ARG' && i.args.startsWith('BASE='));
    assert.ok(arg && arg.line < froms[0]!.line, 'ARG BASE comes before the first FROM');
    assert.equal(arg.args, 'BASE=node:24-bookworm-slim');
    for (const f of froms) assert.match(f.args, /^\$\{BASE\}\s+AS\s+\w+$/i);
  });

  it('ships production dependencies only, and the compiled dist/ from the build stage', () => {
    const runs = finalStage.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    assert.ok(runs.some((r) => /npm ci\b.*--omit=dev/.test(r) && /--ignore-scripts/.test(r)), 'npm ci --omit=dev --ignore-scripts in the final stage');
    const buildStage = /^\$\{BASE\}\s+AS\s+(\w+)$/i.exec(froms[0]!.args)?.[1];
    assert.ok(finalStage.some((i) => i.keyword === 'COPY' && i.args.includes(`--from=${buildStage}`) && /\bdist\b/.test(i.args)));
    assert.ok(!finalStage.some((i) => i.keyword === 'COPY' && /^\s*src\b/.test(i.args)), 'no sources in the final image');
    assert.ok(finalStage.some((i) => i.keyword === 'ENV' && /NODE_ENV=production/.test(i.args)));
  });

  it('runs as a non-root numeric user in the final stage', () => {
    const users = finalStage.filter((i) => i.keyword === 'USER');
    const user = users[users.length - 1]?.args ?? '';
    assert.match(user, /^[1-9]\d*(:\d+)?$/, `USER ${user} must be numeric and non-zero so runAsNonRoot can verify it`);
  });

  it('starts node on dist/cli.js directly, in exec form, so breakwater is PID 1 and gets SIGTERM', () => {
    const entry = finalStage.filter((i) => i.keyword === 'ENTRYPOINT');
    assert.equal(entry.length, 1);
    const argv = JSON.parse(entry[0]!.args) as unknown;
    assert.deepEqual(argv, ['node', '/app/dist/cli.js']);
  });

  it('exposes the admin port of the shipped config and the example listener ports', () => {
    const exposed = finalStage.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((p) => Number(p.split('/')[0]));
    assert.ok(exposed.includes(portOf(rawConfig.admin.address)));
    for (const l of rawConfig.listeners) assert.ok(exposed.includes(portOf(l.address)), `EXPOSE ${portOf(l.address)}`);
  });

  it('reads its config from /etc/breakwater/breakwater.yaml, where it puts a default', () => {
    assert.ok(finalStage.some((i) => i.keyword === 'ENV' && i.args.includes(`BREAKWATER_CONFIG=${CONFIG_FILE}`)));
    assert.ok(finalStage.some((i) => i.keyword === 'COPY' && i.args.trim().endsWith(` ${CONFIG_FILE}`)));
  });
});

// ------------------------------------------------------------------ build context
/** Is `path` (relative, forward slashes) in the build context under these .dockerignore rules? */
function inContext(rules: string[], path: string): boolean {
  const toRegex = (pattern: string): RegExp => {
    let re = '';
    for (let i = 0; i < pattern.length; i++) {
      const ch = pattern[i]!;
      if (ch === '*' && pattern[i + 1] === '*') {
        re += '.*';
        i++;
        if (pattern[i + 1] === '/') i++;
      } else if (ch === '*') re += '[^/]*';
      else if (ch === '?') re += '[^/]';
      else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    return new RegExp(`^${re}$`);
  };
  // A path is excluded when it or one of its parent directories matches.
  const prefixes = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
  let included = true;
  for (const rule of rules) {
    const negate = rule.startsWith('!');
    const pattern = (negate ? rule.slice(1) : rule).replace(/^\/+|\/+$/g, '');
    const re = toRegex(pattern);
    if (prefixes.some((p) => re.test(p))) included = negate;
  }
  return included;
}

describe('the build context (.dockerignore)', () => {
  const rules = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

  it('lets in every file the Dockerfile copies from the context', () => {
    const copies = instructions(read('Dockerfile')).filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='));
    assert.ok(copies.length > 0);
    for (const c of copies) {
      const sources = c.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1);
      for (const s of sources) {
        // A directory is let in when a file inside it is.
        const probe = existsSync(join(root, s)) && statSync(join(root, s)).isDirectory() ? `${s}/cli.ts` : s;
        assert.ok(inContext(rules, probe), `COPY ${s} (line ${c.line}) is excluded by .dockerignore`);
      }
    }
  });

  it('keeps out dependencies, build output, VCS data, tests and anything secret-looking', () => {
    for (const p of ['node_modules/undici/index.js', 'dist/cli.js', '.git/config', 'test/unit/x.test.ts', 'bench/run.ts',
      'README.md', '.env', '.env.local', 'src/.env', 'server.pem', 'deploy/tls.key', 'src/node_modules/x.js', 'deploy/deployment.yaml']) {
      assert.ok(!inContext(rules, p), `${p} would be sent to the build`);
    }
    for (const p of ['package.json', 'package-lock.json', 'src/cli.ts', 'src/config/load.ts', 'deploy/breakwater.yaml']) {
      assert.ok(inContext(rules, p), `${p} would be missing from the build`);
    }
  });
});

// ------------------------------------------------------------------ container test script
describe('scripts/test-container.sh', () => {
  it('is valid bash', () => {
    const out = spawnSync('bash', ['-n', join(root, 'scripts/test-container.sh')], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
  });

  it('assembles its stand-in base image under the name the Dockerfile\'s FROM resolves to', () => {
    const base = /^ARG BASE=(\S+)$/m.exec(read('Dockerfile'))?.[1];
    const standIn = /^BASE_IMAGE=(\S+)$/m.exec(read('scripts/test-container.sh'))?.[1];
    assert.equal(standIn, `docker.io/library/${base}`);
  });
});

// deploy/components/tracing: the config with a `tracing` block, and the
// sidecar's OTEL_* environment with the pod's identity from the downward API
// (SPEC §13). Checked by applying its JSON patch here, as for upstream-tls.
describe('the tracing component (deploy/components/tracing)', () => {
  const dir = 'deploy/components/tracing';
  const component = parse(read(`${dir}/kustomization.yaml`)) as {
    kind: string;
    configMapGenerator?: { name: string; behavior?: string; files?: string[] }[];
    patches?: { target: { kind: string; name: string }; patch: string }[];
  };
  type Op = { op: string; path: string; value: unknown };
  type Env = { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } };
  const patched = (): DeploymentDoc => {
    const p = component.patches?.find((x) => x.target.kind === 'Deployment' && x.target.name === deployment.metadata.name);
    assert.ok(p, 'the component patches the example Deployment');
    const doc = structuredClone(deployment) as unknown as Record<string, unknown>;
    for (const o of parse(p.patch) as Op[]) {
      assert.equal(o.op, 'add');
      const keys = o.path.split('/').slice(1);
      const last = keys.pop()!;
      let at: any = doc;
      for (const k of keys) at = at[k];
      if (last === '-') {
        // Appended to a list deployment.yaml has (the sidecar's env with its admin token).
        assert.ok(Array.isArray(at), `${o.path}: the list exists in deployment.yaml`);
        at.push(o.value);
        continue;
      }
      assert.ok(at !== undefined && !Array.isArray(at), `${o.path}: the parent exists in deployment.yaml`);
      assert.equal(at[last], undefined, `${o.path}: nothing there to overwrite`);
      at[last] = o.value;
    }
    return doc as unknown as DeploymentDoc;
  };
  const sidecarEnv = (): Env[] => ((patched().spec.template.spec.initContainers?.find((c) => c.name === SIDECAR) as unknown as { env?: Env[] })?.env ?? []);

  it('is a kustomize Component that replaces the config ConfigMap with its own breakwater.yaml', () => {
    assert.equal(component.kind, 'Component');
    const g = component.configMapGenerator?.find((x) => x.name === CONFIG_CONFIGMAP);
    assert.equal(g?.behavior, 'replace');
    assert.deepEqual(g?.files, ['breakwater.yaml']);
  });

  it('gives the sidecar OTEL_RESOURCE_ATTRIBUTES naming its pod, namespace and node from the downward API, and a service name', () => {
    const d = patched();
    assert.doesNotThrow(() => new Deployment(d as never).validate());
    const env = sidecarEnv();
    const byName = new Map(env.map((e) => [e.name, e]));
    const attrs = byName.get('OTEL_RESOURCE_ATTRIBUTES')?.value ?? '';
    const fields: Record<string, string> = { 'k8s.pod.name': 'metadata.name', 'k8s.namespace.name': 'metadata.namespace', 'k8s.node.name': 'spec.nodeName' };
    for (const [attr, fieldPath] of Object.entries(fields)) {
      const m = new RegExp(`(?:^|,)${attr.replace(/\./g, '\\.')}=\\$\\(([A-Z0-9_]+)\\)`).exec(attrs);
      assert.ok(m, `${attr} in ${attrs}`);
      const i = env.findIndex((e) => e.name === m[1]);
      assert.ok(i >= 0 && i < env.findIndex((e) => e.name === 'OTEL_RESOURCE_ATTRIBUTES'), `$(${m[1]}) is defined before it is used (the kubelet expands only earlier variables)`);
      assert.equal(env[i]!.valueFrom?.fieldRef?.fieldPath, fieldPath);
    }
    assert.ok(byName.get('OTEL_SERVICE_NAME')?.value);
    assert.match(byName.get('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT')?.value ?? '', /^http:\/\/.+\/v1\/traces$/);
  });

  it('ships deploy/breakwater.yaml unchanged but for the tracing block', () => {
    const base = parse(read('deploy/breakwater.yaml')) as Record<string, unknown>;
    const mine = parse(read(`${dir}/breakwater.yaml`)) as Record<string, unknown>;
    assert.ok(mine['tracing']);
    delete mine['tracing'];
    assert.deepEqual(mine, base);
  });

  it('ships a valid config whose endpoint comes from the sidecar’s environment', async () => {
    const { loadConfigText } = await import('../../src/config/load.ts');
    // The admin token comes from a Secret (valueFrom): any 16+ characters stand in for it here.
    const env: Record<string, string | undefined> = { ...Object.fromEntries(sidecarEnv().filter((e) => e.value !== undefined).map((e) => [e.name, e.value])), BREAKWATER_ADMIN_TOKEN: 'x'.repeat(32) };
    assert.ok(sidecarEnv().some((e) => e.name === 'BREAKWATER_ADMIN_TOKEN'), 'the base’s admin token is still in the sidecar’s env');
    const r = loadConfigText(read(`${dir}/breakwater.yaml`), 'breakwater.yaml', env);
    assert.ok(r.ok, r.ok ? '' : r.errors.map(String).join('\n'));
    assert.equal(r.config.tracing?.endpoint, env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
    assert.equal(r.config.tracing?.sampleRatio, 0.1);
  });
});
