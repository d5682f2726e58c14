/**
 * `admin.token` (SPEC §11.3): the bearer token the admin API may require, and
 * must require when it listens on anything but loopback.
 *
 * The token only ever comes from the environment: `token: ${BREAKWATER_ADMIN_TOKEN}`.
 * A token written in the file itself is refused: the file is a ConfigMap or a
 * checked-in YAML that many more people and tools read than the Secret the
 * variable comes from, and `GET /config` serves the file's shape. With the
 * token interpolated, the loader's redaction already blanks it everywhere the
 * document is shown (redact.ts also blanks `admin.token` by path, whatever
 * produced it), and the walk never echoes a value marked `sensitive`.
 */
import { isScalar, type Document } from 'yaml';
import { custom, type Meta, type Schema } from './dsl.ts';
import { isLoopback } from './net.ts';
import { AliasBudget, entriesOf, resolve, type AnyNode } from './yaml-nodes.ts';

/** Short tokens are guessable over a network; `openssl rand -hex 32` gives 64 characters. */
export const MIN_TOKEN_LENGTH = 16;

const EXPECTED_REF = `a \${NAME} reference to an environment variable holding the token (a token written in the file is refused: put it in the environment, e.g. a Kubernetes Secret)`;

export const adminToken = (meta: Meta = {}): Schema<string> =>
  custom<string>(
    {
      expected: EXPECTED_REF,
      parse: (v, fromEnv) => {
        if (!fromEnv) return { ok: false, expected: EXPECTED_REF, secret: true };
        if (typeof v !== 'string' || v.length < MIN_TOKEN_LENGTH || /\s/.test(v)) {
          return { ok: false, expected: `a token of at least ${MIN_TOKEN_LENGTH} characters without spaces, from the environment`, secret: true };
        }
        return { ok: true, value: v };
      },
      json: { type: 'string', pattern: '\\$\\{' },
    },
    { sensitive: true, ...meta },
  );

/**
 * The rule SPEC §11.3 makes: a non-loopback admin API needs a token. Reported
 * at `admin.address`, unless a token is written but invalid (its own error says why).
 */
export function checkAdminToken(admin: { address?: { host: string; text: string }; token?: string } | undefined, doc: Document, report: (path: string, message: string) => void): void {
  const address = admin?.address;
  if (address === undefined || isLoopback(address.host) || admin?.token !== undefined || tokenNode(doc) !== undefined) return;
  report(
    'admin.address',
    `the admin API listens on ${address.text}, not a loopback address, so it needs admin.token (e.g. token: \${BREAKWATER_ADMIN_TOKEN}): without it whoever reaches the port could read the config, reload it and force breakers`,
  );
}

/**
 * The environment variables the token was read from, for `breakwater
 * validate` ("set (from $BREAKWATER_ADMIN_TOKEN)"): the names in the
 * scalar's source text, which interpolation leaves alone.
 */
export function tokenVariables(doc: Document): string[] {
  const token = tokenNode(doc);
  if (token === undefined || token === null || !isScalar(token) || typeof token.source !== 'string') return [];
  return [...token.source.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}/g)].map((m) => m[1]!);
}

/** The node written at admin.token (aliases followed); undefined when the key is absent. */
function tokenNode(doc: Document): AnyNode | null | undefined {
  const budget = new AliasBudget();
  const root = resolve(doc.contents as AnyNode | null, doc, budget);
  if (root === null) return undefined;
  const adminNode = resolve(entriesOf(root, doc, budget).find((e) => e.name === 'admin')?.value ?? null, doc, budget);
  if (adminNode === null) return undefined;
  const entry = entriesOf(adminNode, doc, budget).find((e) => e.name === 'token');
  return entry === undefined ? undefined : resolve(entry.value, doc, budget);
}
