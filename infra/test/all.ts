/**
 * Runs every `test/*.test.ts` in this one process (`make infra-test`): aws-cdk-lib is loaded and
 * each environment's stack synthesized (support.ts's cache) once for all files, instead of once per
 * file as `node --test test/*.test.ts` does (a process per file). The files' tests and assertions
 * are the same; node:test reports them and exits non-zero if any fails.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dir = dirname(fileURLToPath(import.meta.url));
for (const file of readdirSync(dir).filter((name) => name.endsWith('.test.ts')).sort()) {
  await import(pathToFileURL(join(dir, file)).href);
}
