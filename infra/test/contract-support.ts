/**
 * Test helpers for the ASL contract (`asl-contract.test.ts`):
 *
 * - `statemachines/contract.json`, generated from the engine's Rust types
 *   (schemars): error names, retryable ones, step → request/response type,
 *   and one JSON Schema (draft 2020-12) per type;
 * - {@link sampleOf} and {@link validate}: the small part of JSON Schema those
 *   schemas use (`type`, `properties`, `required`, `items`, `$ref` into
 *   `$defs`, `oneOf`/`anyOf`/`allOf`, `const`, `enum`, `format: uuid`,
 *   `additionalProperties: false`); other keywords are ignored;
 * - {@link simulate}: walks the rendered state machine like Step Functions
 *   would for the subset `sync.asl.json` uses (Pass, Task, Distributed Map,
 *   Choice with `IsPresent`/`BooleanEquals`/`StringEquals`/`Timestamp*`
 *   and `And`/`Or`/`Not`, Succeed/Fail; `Parameters`, `ItemSelector`, `ResultSelector`,
 *   `ResultPath`, `Catch`; paths `$...` and `$$...`; the intrinsics
 *   `States.Format`, `States.JsonMerge`, `States.ArrayLength`), answering every
 *   Lambda with a sample of its response schema. A path that does not resolve
 *   throws, as it fails an execution (`States.Runtime`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { REPO_ROOT } from './support.ts';

/** A JSON value. */
export type Json = any;
/** A JSON Schema object (or boolean schema). */
export type JsonSchema = boolean | Record<string, any>;

/** The content of `statemachines/contract.json`. */
export interface Contract {
  /** Every error name the engine raises (`ErrorKind::name`). */
  errors: string[];
  /** The error names Step Functions should retry. */
  retryable: string[];
  /** Step (= Lambda function name) → request and response type names. */
  steps: Record<string, { request: string; response: string }>;
  /** One JSON Schema per type name used in `steps`. */
  types: Record<string, Record<string, any>>;
}

/** Where the engine writes the contract. */
export const CONTRACT_PATH = join(REPO_ROOT, 'statemachines', 'contract.json');

/** Read {@link CONTRACT_PATH}, checking its shape (every type of `steps` has a schema). */
export function loadContract(path = CONTRACT_PATH): Contract {
  const contract = JSON.parse(readFileSync(path, 'utf8')) as Contract;
  for (const key of ['errors', 'retryable', 'steps', 'types'] as const) {
    if (!contract[key]) throw new Error(`${path} has no "${key}"`);
  }
  for (const [step, { request, response }] of Object.entries(contract.steps)) {
    for (const type of [request, response]) {
      if (!contract.types[type]) throw new Error(`${path}: step ${step} names type ${type}, which has no schema in "types"`);
    }
  }
  return contract;
}

/** Property names of a type's schema (`[]` for a schema without properties). */
export function propertyNames(contract: Contract, type: string): string[] {
  const schema = contract.types[type];
  if (!schema) throw new Error(`contract.json has no schema for ${type}`);
  return Object.keys(schema.properties ?? {});
}

// ------------------------------------------------------------- JSON Schema

/** The schema a local `$ref` (`#/$defs/Name`, any JSON pointer into `root`) points to. */
function resolveRef(ref: string, root: JsonSchema): JsonSchema {
  if (!ref.startsWith('#')) throw new Error(`only local $ref is supported, got ${ref}`);
  let node: Json = root;
  for (const raw of ref.slice(1).split('/').filter((p) => p !== '')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    node = node?.[part];
    if (node === undefined) throw new Error(`$ref ${ref} does not resolve`);
  }
  return node as JsonSchema;
}

/** A value of the schema, with every property present (as serde serializes a struct). */
export function sampleOf(schema: JsonSchema, root: JsonSchema = schema): Json {
  if (typeof schema === 'boolean') return schema ? {} : undefined;
  if (schema.$ref) return sampleOf(resolveRef(schema.$ref, root), root);
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum)) return schema.enum[0];
  for (const key of ['oneOf', 'anyOf'] as const) {
    if (Array.isArray(schema[key])) {
      const alternatives = (schema[key] as JsonSchema[]).map((s) => sampleOf(s, root));
      return alternatives.find((v) => v !== null) ?? null;
    }
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length === 1) return sampleOf(schema.allOf[0], root);
  const types = [schema.type ?? (schema.properties ? 'object' : undefined)].flat().filter((t) => t && t !== 'null');
  switch (types[0]) {
    case 'object':
      return Object.fromEntries(Object.entries(schema.properties ?? {}).map(([k, s]) => [k, sampleOf(s as JsonSchema, root)]));
    case 'array':
      return schema.items === undefined ? [] : [sampleOf(schema.items, root)];
    case 'string':
      return schema.format === 'uuid' ? '123e4567-e89b-42d3-a456-426614174000' : 'sample';
    case 'integer':
      return 1;
    case 'number':
      return 1.5;
    case 'boolean':
      return true;
    default:
      return [schema.type].flat().includes('null') ? null : {};
  }
}

function isType(value: Json, type: string): boolean {
  switch (type) {
    case 'null': return value === null;
    case 'boolean': return typeof value === 'boolean';
    case 'string': return typeof value === 'string';
    case 'integer': return Number.isInteger(value);
    case 'number': return typeof value === 'number';
    case 'array': return Array.isArray(value);
    case 'object': return value !== null && typeof value === 'object' && !Array.isArray(value);
    default: return true;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Problems of `value` against `schema` (empty when valid), each naming where (`at`). */
export function validate(value: Json, schema: JsonSchema, root: JsonSchema = schema, at = '$'): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${at}: no value is allowed here`];
  const problems: string[] = [];
  if (schema.$ref) problems.push(...validate(value, resolveRef(schema.$ref, root), root, at));
  if ('const' in schema && !isDeepStrictEqual(value, schema.const)) problems.push(`${at}: must be ${JSON.stringify(schema.const)}, is ${JSON.stringify(value)}`);
  if (Array.isArray(schema.enum) && !schema.enum.some((e: Json) => isDeepStrictEqual(e, value))) {
    problems.push(`${at}: must be one of ${JSON.stringify(schema.enum)}, is ${JSON.stringify(value)}`);
  }
  if (Array.isArray(schema.oneOf)) {
    const matches = schema.oneOf.filter((s: JsonSchema) => validate(value, s, root, at).length === 0).length;
    if (matches !== 1) problems.push(`${at}: must match exactly one alternative of oneOf, matches ${matches} (${JSON.stringify(value)})`);
  }
  if (Array.isArray(schema.anyOf) && !schema.anyOf.some((s: JsonSchema) => validate(value, s, root, at).length === 0)) {
    problems.push(`${at}: matches no alternative of anyOf (${JSON.stringify(value)})`);
  }
  for (const s of (schema.allOf ?? []) as JsonSchema[]) problems.push(...validate(value, s, root, at));
  if (schema.type !== undefined) {
    const types = [schema.type].flat() as string[];
    if (!types.some((t) => isType(value, t))) return [...problems, `${at}: must be ${types.join(' or ')}, is ${JSON.stringify(value)}`];
  }
  if (typeof value === 'string' && schema.format === 'uuid' && !UUID.test(value)) problems.push(`${at}: must be a UUID, is ${JSON.stringify(value)}`);
  if (isType(value, 'object')) {
    for (const name of (schema.required ?? []) as string[]) {
      if (value[name] === undefined) problems.push(`${at}: required property ${name} is missing`);
    }
    const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
    for (const [name, v] of Object.entries(value)) {
      if (name in properties) problems.push(...validate(v, properties[name], root, `${at}.${name}`));
      else if (schema.additionalProperties === false) problems.push(`${at}: property ${name} is not allowed`);
    }
  }
  if (Array.isArray(value) && schema.items !== undefined) {
    value.forEach((v, i) => problems.push(...validate(v, schema.items, root, `${at}[${i}]`)));
  }
  return problems;
}

// ------------------------------------------------------- state machine walk

/** `$.a.b` against the state's data, `$$.a.b` against the context object. */
function readPath(path: string, data: Json, context: Json, where: string): Json {
  const [rootValue, rest] = path.startsWith('$$') ? [context, path.slice(2)] : [data, path.slice(1)];
  if (rest !== '' && !/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(rest)) throw new Error(`${where}: unsupported path ${path}`);
  let value = rootValue;
  for (const part of rest.split('.').slice(1)) {
    if (value === null || typeof value !== 'object' || !(part in value)) {
      throw new Error(`${where}: path ${path} does not resolve (States.Runtime) in ${JSON.stringify(rootValue)}`);
    }
    value = value[part];
  }
  return value;
}

/** Evaluate a `.$` value: a path or an intrinsic function call. */
function evaluate(expression: string, data: Json, context: Json, where: string): Json {
  let pos = 0;
  const src = expression.trim();
  const skip = () => { while (src[pos] === ' ') pos += 1; };
  const parse = (): Json => {
    skip();
    if (src.startsWith('States.', pos)) {
      const open = src.indexOf('(', pos);
      const name = src.slice(pos, open);
      pos = open + 1;
      const args: Json[] = [];
      skip();
      if (src[pos] === ')') pos += 1;
      else {
        for (;;) {
          args.push(parse());
          skip();
          if (src[pos] === ',') { pos += 1; continue; }
          if (src[pos] === ')') { pos += 1; break; }
          throw new Error(`${where}: cannot parse ${expression}`);
        }
      }
      return intrinsic(name, args, where);
    }
    if (src[pos] === "'") {
      let out = '';
      for (pos += 1; src[pos] !== "'"; pos += 1) {
        if (pos >= src.length) throw new Error(`${where}: unterminated string in ${expression}`);
        if (src[pos] === '\\') pos += 1;
        out += src[pos];
      }
      pos += 1;
      return out;
    }
    const token = /^[^,)\s]+/.exec(src.slice(pos))![0];
    pos += token.length;
    if (token.startsWith('$')) return readPath(token, data, context, where);
    return JSON.parse(token);
  };
  const value = parse();
  skip();
  if (pos !== src.length) throw new Error(`${where}: unexpected text after ${src.slice(0, pos)} in ${expression}`);
  return value;
}

function intrinsic(name: string, args: Json[], where: string): Json {
  switch (name) {
    case 'States.Format': {
      const [template, ...values] = args as [string, ...Json[]];
      let i = 0;
      return template.replace(/\{\}/g, () => {
        const v = values[i++];
        return typeof v === 'string' ? v : JSON.stringify(v);
      });
    }
    case 'States.JsonMerge': {
      const [a, b, deep] = args;
      if (deep !== false) throw new Error(`${where}: only shallow States.JsonMerge is modelled`);
      return { ...a, ...b };
    }
    case 'States.ArrayLength':
      if (!Array.isArray(args[0])) throw new Error(`${where}: States.ArrayLength of a non-array ${JSON.stringify(args[0])}`);
      return args[0].length;
    default:
      throw new Error(`${where}: intrinsic ${name} is not modelled`);
  }
}

/** A `Parameters` / `ItemSelector` / `ResultSelector` template applied to `data`. */
export function render(template: Json, data: Json, context: Json, where: string): Json {
  if (Array.isArray(template)) return template.map((t) => render(t, data, context, where));
  if (template === null || typeof template !== 'object') return template;
  const out: Record<string, Json> = {};
  for (const [key, value] of Object.entries(template)) {
    if (key.endsWith('.$')) out[key.slice(0, -2)] = evaluate(String(value), data, context, `${where}.${key}`);
    else out[key] = render(value, data, context, `${where}.${key}`);
  }
  return out;
}

/** `ResultPath`: absent = replace, null = discard, `$.a.b` = set there. */
function applyResultPath(data: Json, result: Json, resultPath: string | null | undefined): Json {
  if (resultPath === null) return data;
  if (resultPath === undefined || resultPath === '$') return result;
  const parts = resultPath.replace(/^\$\./, '').split('.');
  const out = structuredClone(data ?? {});
  let node = out;
  for (const part of parts.slice(0, -1)) node = node[part] ??= {};
  node[parts[parts.length - 1]] = result;
  return out;
}

/** One Lambda invocation of a simulated execution. */
export interface Invocation {
  /** State name (`Plan`, `CopyChunk`, ...). */
  state: string;
  /** Step of contract.json (= function name). */
  step: string;
  payload: Json;
}

/** How one simulated execution goes. */
export interface Scenario {
  /** Execution input (what the schedule or an operator passes). */
  input: Json;
  /** Name of a state that fails (its Catch is followed); none = the happy path. */
  failAt?: string;
  /** `$$.Execution.StartTime` (ISO 8601 UTC; default `2026-01-01T07:00:00Z`). */
  startTime?: string;
}

/** One Choice rule (`Variable` with one comparison, or `And`/`Or`/`Not`) against the state's data. */
function choiceMatches(rule: Json, data: Json, context: Json, where: string): boolean {
  if (rule.And) return (rule.And as Json[]).every((r) => choiceMatches(r, data, context, where));
  if (rule.Or) return (rule.Or as Json[]).some((r) => choiceMatches(r, data, context, where));
  if (rule.Not) return !choiceMatches(rule.Not, data, context, where);
  const present = (() => {
    try { readPath(rule.Variable, data, context, where); return true; } catch { return false; }
  })();
  if ('IsPresent' in rule) return present === rule.IsPresent;
  // Step Functions fails the execution (States.Runtime) when a compared variable is missing.
  const value = readPath(rule.Variable, data, context, where);
  const time = (v: Json) => {
    const t = Date.parse(String(v));
    if (Number.isNaN(t)) throw new Error(`${where}: ${JSON.stringify(v)} is not a timestamp`);
    return t;
  };
  if ('BooleanEquals' in rule) return value === rule.BooleanEquals;
  if ('StringEquals' in rule) return value === rule.StringEquals;
  if ('TimestampGreaterThanEquals' in rule) return time(value) >= time(rule.TimestampGreaterThanEquals);
  if ('TimestampLessThan' in rule) return time(value) < time(rule.TimestampLessThan);
  throw new Error(`${where}: Choice rule ${JSON.stringify(rule)} is not modelled`);
}

/**
 * Walk `definition` (rendered, ARNs substituted) for `scenario`. `stepOf`
 * maps a Task's `FunctionName` (and payload: the reconcile Lambda's
 * `operation`) to its contract step; each Lambda answers with
 * a sample of the step's response schema; the Distributed Map reads one
 * manifest item, a sample of the request type of the step its child runs
 * (plan writes the manifest as a JSON array of `ChunkItem`). Returns the
 * Lambda invocations in order.
 */
export function simulate(definition: Json, contract: Contract, stepOf: (functionName: string, payload?: Json) => string, scenario: Scenario): Invocation[] {
  const invocations: Invocation[] = [];
  const context: Json = {
    Execution: {
      Id: 'arn:aws:states:us-east-1:222222222222:execution:thaw-qa-sync:sample', Name: 'sample', Input: scenario.input,
      StartTime: scenario.startTime ?? '2026-01-01T07:00:00Z',
    },
  };
  const responseOf = (step: string) => {
    const schema = contract.types[contract.steps[step].response];
    return sampleOf(schema, schema);
  };
  const run = (machine: Json, input: Json, ctx: Json): Json => {
    let data = input;
    for (let name: string | undefined = machine.StartAt; name;) {
      const state = machine.States[name];
      if (!state) throw new Error(`no state ${name}`);
      const where = `${name}`;
      let result: Json;
      switch (state.Type) {
        case 'Succeed':
        case 'Fail':
          return data;
        case 'Pass':
          result = state.Parameters ? render(state.Parameters, data, ctx, `${where}.Parameters`) : data;
          break;
        case 'Choice': {
          const rule = (state.Choices as Json[]).find((r) => choiceMatches(r, data, ctx, where));
          name = rule ? rule.Next : state.Default;
          if (!name) throw new Error(`${where}: no Choice matched and there is no Default (States.NoChoiceMatched)`);
          continue;
        }
        case 'Task': {
          const parameters = render(state.Parameters ?? {}, data, ctx, `${where}.Parameters`);
          if (state.Resource === 'arn:aws:states:::lambda:invoke') {
            const step = stepOf(parameters.FunctionName, parameters.Payload);
            if (!contract.steps[step]) throw new Error(`${where} invokes ${parameters.FunctionName}, which is no step of contract.json`);
            invocations.push({ state: name, step, payload: parameters.Payload });
            result = { Payload: responseOf(step), StatusCode: 200 };
          } else {
            result = { MessageId: 'sample' };
          }
          break;
        }
        case 'Map': {
          // One manifest item: the request of the step the Map's first child state invokes.
          const first = state.ItemProcessor.States[state.ItemProcessor.StartAt];
          const itemStep = stepOf(first.Parameters.FunctionName);
          if (!contract.steps[itemStep]) throw new Error(`${where} runs ${first.Parameters.FunctionName}, which is no step of contract.json`);
          const itemSchema = contract.types[contract.steps[itemStep].request];
          const item = sampleOf(itemSchema, itemSchema);
          const childContext = { ...ctx, Map: { Item: { Index: 0, Value: item } } };
          const childInput = state.ItemSelector ? render(state.ItemSelector, data, childContext, `${where}.ItemSelector`) : item;
          if (name !== scenario.failAt) run(state.ItemProcessor, childInput, ctx);
          result = { MapRunArn: 'arn:aws:states:us-east-1:222222222222:mapRun:thaw-qa-sync/sample:map', ResultWriterDetails: { Bucket: 'b', Key: 'k' } };
          break;
        }
        default:
          throw new Error(`${where}: state type ${state.Type} is not modelled`);
      }
      if (name === scenario.failAt) {
        const handler = state.Catch?.[0];
        if (!handler) throw new Error(`${where} has no Catch to fail into`);
        data = applyResultPath(data, { Error: 'Transient', Cause: 'sample failure' }, handler.ResultPath);
        name = handler.Next;
        continue;
      }
      if (state.ResultSelector) result = render(state.ResultSelector, result, ctx, `${where}.ResultSelector`);
      data = applyResultPath(data, result, state.ResultPath);
      if (state.End) return data;
      name = state.Next;
    }
    return data;
  };
  run(definition, scenario.input, context);
  return invocations;
}
