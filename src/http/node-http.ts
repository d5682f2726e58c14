/**
 * node:http, required rather than imported. An ESM `import … from
 * 'node:http'` makes node build the module's namespace by reading every
 * export, and its lazy WebSocket/EventSource getters then load node's own
 * bundled undici: +6 MiB private memory in every sidecar of the fleet for
 * code breakwater never runs (bench/README.md, step 9). Type-only imports
 * of node:http are free and stay as they are.
 */
import { createRequire } from 'node:module';

export const http = createRequire(import.meta.url)('node:http') as typeof import('node:http');
