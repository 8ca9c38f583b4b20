/**
 * Rendering of the state-machine templates in `statemachines/*.asl.json`.
 *
 * The files are valid JSON so editors, `asl-validator` and the contract test
 * can read them. Placeholders are `${Name}` inside JSON strings:
 *
 * - a **string** substitution replaces `${Name}` wherever it occurs inside a
 *   string (ARNs, bucket names, the environment name);
 * - a **numeric** substitution (`MaxConcurrency`, `ToleratedFailurePercentage`,
 *   `ExecutionTimeoutSeconds`) must be the whole string `"${Name}"`; the quotes
 *   are dropped so the field becomes a JSON number.
 *
 * In the cloud, CDK drops the quotes of numeric placeholders at synth and lets
 * CloudFormation's `DefinitionSubstitutions` fill every placeholder, so the
 * template shows the values per environment. The local runner (`make
 * sfn-local`) applies the same two rules with {@link renderDefinition}'s
 * semantics: unquote numeric placeholders, then replace text.
 * `ToleratedFailurePercentage` is always written with a decimal point (`5.0`)
 * because moto's interpreter only accepts a float there.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `statemachines/` at the repository root. */
export const STATEMACHINES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'statemachines');
/** The sync workflow template. */
export const SYNC_ASL_PATH = join(STATEMACHINES_DIR, 'sync.asl.json');

/** Placeholders of the sync workflow whose values are JSON numbers. */
export const NUMERIC_PLACEHOLDERS = ['MaxConcurrency', 'ToleratedFailurePercentage', 'ExecutionTimeoutSeconds'] as const;

/** Every `${Name}` placeholder in `text`, sorted, without duplicates. */
export function placeholders(text: string): string[] {
  return [...new Set([...text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]))].sort();
}

/** Format a number the way the state machine needs it: floats always carry a decimal point. */
export function formatNumber(name: string, value: number): string {
  if (name === 'ToleratedFailurePercentage') return Number.isInteger(value) ? value.toFixed(1) : String(value);
  return String(value);
}

/**
 * Drop the quotes around numeric placeholders: `"${MaxConcurrency}"` becomes
 * `${MaxConcurrency}`. The result is the text CloudFormation substitutes into.
 * Throws when a numeric placeholder is not a whole JSON string value.
 */
export function unquoteNumericPlaceholders(text: string, numeric: readonly string[] = NUMERIC_PLACEHOLDERS): string {
  let out = text;
  for (const name of numeric) {
    const quoted = `"\${${name}}"`;
    const total = out.split(`\${${name}}`).length - 1;
    const whole = out.split(quoted).length - 1;
    if (total !== whole) {
      throw new Error(`numeric placeholder \${${name}} must be a whole JSON string value ("\${${name}}"), found it inside a longer string`);
    }
    out = out.split(quoted).join(`\${${name}}`);
  }
  return out;
}

/**
 * Render a template completely: numeric values become JSON numbers, string
 * values are inserted as text (JSON-escaped). Throws naming any placeholder
 * without a value. Returns the parsed definition.
 */
export function renderDefinition(text: string, values: Record<string, string | number>): Record<string, unknown> {
  const missing = placeholders(text).filter((p) => !(p in values));
  if (missing.length > 0) throw new Error(`no value for placeholder(s) ${missing.join(', ')}`);
  const numeric = Object.entries(values).filter(([, v]) => typeof v === 'number').map(([k]) => k);
  let out = unquoteNumericPlaceholders(text, numeric);
  for (const [name, value] of Object.entries(values)) {
    const replacement = typeof value === 'number' ? formatNumber(name, value) : JSON.stringify(value).slice(1, -1);
    out = out.split(`\${${name}}`).join(replacement);
  }
  return JSON.parse(out) as Record<string, unknown>;
}

/** Read the sync workflow template. */
export function readSyncTemplate(): string {
  return readFileSync(SYNC_ASL_PATH, 'utf8');
}
