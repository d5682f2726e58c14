/**
 * Writes config/breakwater.schema.json from the config schema declared in
 * src/config/schema.ts: `node scripts/gen-schema.ts`. With `--check` it only
 * compares, and exits 1 if the committed file is stale (test/unit/config
 * checks the same thing).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsonSchema } from '../src/config/schema.ts';

export const SCHEMA_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'config', 'breakwater.schema.json');

/** The exact text of the schema file: two-space JSON and a final newline. */
export function schemaText(): string {
  return `${JSON.stringify(jsonSchema(), null, 2)}\n`;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = schemaText();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(SCHEMA_FILE, 'utf8');
    } catch {
      // missing counts as stale
    }
    if (current !== text) {
      process.stderr.write(`${path.relative(process.cwd(), SCHEMA_FILE)} is stale: run node scripts/gen-schema.ts\n`);
      process.exit(1);
    }
    process.stdout.write('schema up to date\n');
  } else {
    writeFileSync(SCHEMA_FILE, text);
    process.stdout.write(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}\n`);
  }
}
