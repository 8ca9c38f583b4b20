/**
 * Contract between `statemachines/sync.asl.json` and the engine's typed
 * requests in `functions/engine/src/handlers.rs` (and the error names of
 * `functions/engine/src/error.rs`), so the cloud workflow and the local runner
 * cannot drift. Also runs `asl-validator` on the rendered definition of every
 * environment.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NUMERIC_PLACEHOLDERS, placeholders, readSyncTemplate, renderDefinition, unquoteNumericPlaceholders } from '../lib/asl.ts';
import { ENVIRONMENTS, loadConfig } from '../lib/config.ts';
import { WORKFLOW_FUNCTIONS } from '../lib/constructs/workflow.ts';
import { INFRA_DIR, REPO_ROOT, renderedDefinition, synth } from './support.ts';

/** `pub <field>:` names of `pub struct <name>` in a Rust source file. */
function rustStructFields(source: string, name: string): string[] {
  const start = source.search(new RegExp(`pub struct ${name}\\s*\\{`));
  assert.ok(start >= 0, `struct ${name} not found in handlers.rs`);
  const body = source.slice(source.indexOf('{', start) + 1, source.indexOf('\n}', start));
  return [...body.matchAll(/^\s*pub\s+([a-z_][a-z0-9_]*)\s*:/gm)].map((m) => m[1]);
}
/** Names returned by `ErrorKind::name` in error.rs. */
function errorNames(source: string): string[] {
  return [...source.matchAll(/ErrorKind::\w+ => "(\w+)"/g)].map((m) => m[1]);
}

const handlers = readFileSync(join(REPO_ROOT, 'functions/engine/src/handlers.rs'), 'utf8');
const errors = errorNames(readFileSync(join(REPO_ROOT, 'functions/engine/src/error.rs'), 'utf8'));
const fields = (name: string) => rustStructFields(handlers, name);
const sampleValues: Record<string, string | number> = {
  Environment: 'qa',
  ManifestBucket: 'thaw-qa-data',
  AlarmTopicArn: 'arn:aws:sns:us-east-1:222222222222:thaw-qa-alarms',
  MaxConcurrency: 8,
  ToleratedFailurePercentage: 5,
  ExecutionTimeoutSeconds: 21600,
  ...Object.fromEntries(Object.entries(WORKFLOW_FUNCTIONS).map(([p, f]) => [p, `arn:aws:lambda:us-east-1:222222222222:function:thaw-qa-${f}`])),
};
const asl = renderDefinition(readSyncTemplate(), sampleValues) as any;
const states = asl.States as Record<string, any>;
/** Keys of a Parameters/ItemSelector object with the `.$` suffix removed. */
const keys = (o: Record<string, unknown>) => Object.keys(o).map((k) => k.replace(/\.\$$/, '')).sort();
const functionOf = (state: any) => state.Parameters.FunctionName as string;

describe('sync.asl.json contract with handlers.rs', () => {
  it('uses exactly the placeholders CDK substitutes', () => {
    assert.deepEqual(placeholders(readSyncTemplate()), Object.keys(sampleValues).sort());
    for (const n of NUMERIC_PLACEHOLDERS) assert.ok(unquoteNumericPlaceholders(readSyncTemplate()).includes(`: \${${n}}`), n);
  });

  it('runs plan → map(copy-chunk) → merge → reconcile → conflict-create → success', () => {
    const order: string[] = [];
    for (let name: string | undefined = asl.StartAt; name; name = states[name].Next) {
      order.push(name);
      if (states[name].Type === 'Succeed') break;
    }
    assert.deepEqual(order, ['Defaults', 'BuildRequest', 'Plan', 'CopyChunks', 'Merge', 'Reconcile', 'ConflictCreate', 'Succeeded']);
    assert.equal(functionOf(states.Plan), sampleValues.PlanFunctionArn);
    assert.equal(states.CopyChunks.Type, 'Map');
    assert.equal(functionOf(states.CopyChunks.ItemProcessor.States.CopyChunk), sampleValues.CopyChunkFunctionArn);
    assert.equal(functionOf(states.Merge), sampleValues.MergeFunctionArn);
    assert.equal(functionOf(states.Reconcile), sampleValues.ReconcileFunctionArn);
    assert.equal(functionOf(states.ConflictCreate), sampleValues.ConflictCreateFunctionArn);
  });

  it('sends every error to fail-run, then the alarm topic, then Fail', () => {
    for (const name of ['Plan', 'CopyChunks', 'Merge', 'Reconcile', 'ConflictCreate']) {
      assert.deepEqual(states[name].Catch, [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RecordFailure' }], name);
    }
    assert.equal(functionOf(states.RecordFailure), sampleValues.FailRunFunctionArn);
    assert.equal(states.RecordFailure.Next, 'NotifyFailure');
    assert.equal(states.RecordFailure.Catch[0].Next, 'NotifyFailure');
    assert.equal(states.NotifyFailure.Resource, 'arn:aws:states:::sns:publish');
    assert.equal(states.NotifyFailure.Parameters.TopicArn, sampleValues.AlarmTopicArn);
    assert.equal(states.NotifyFailure.Next, 'Failed');
    assert.equal(states.Failed.Type, 'Fail');
  });

  it('retries only retryable engine errors and Lambda service errors, with backoff and jitter', () => {
    const tasks = [states.Plan, states.CopyChunks.ItemProcessor.States.CopyChunk, states.Merge, states.Reconcile, states.ConflictCreate, states.RecordFailure];
    for (const t of tasks) {
      const [typed, service] = t.Retry;
      assert.deepEqual(typed.ErrorEquals, ['Transient', 'Unreachable', 'Locked']);
      assert.ok(typed.ErrorEquals.every((e: string) => errors.includes(e)), 'names come from ErrorKind::name');
      assert.ok(service.ErrorEquals.every((e: string) => e.startsWith('Lambda.')));
      for (const r of t.Retry) {
        assert.equal(r.JitterStrategy, 'FULL');
        assert.ok(r.BackoffRate > 1 && r.MaxDelaySeconds > 0);
      }
    }
    assert.deepEqual(errors.sort(), ['AuthFailed', 'ChunkFailed', 'ConfigInvalid', 'Internal', 'Locked', 'ReconcileMismatch', 'SchemaMismatch', 'Transient', 'TypeUnsupported', 'Unreachable']);
  });

  it('builds payloads with the field names of the Rust request structs', () => {
    // plan receives the execution input merged over defaults: only PlanRequest fields plus conflict_full.
    const defaults = keys(states.Defaults.Parameters.defaults).concat(keys(states.Defaults.Parameters.manifest));
    assert.ok(defaults.filter((k) => k !== 'conflict_full').every((k) => fields('PlanRequest').includes(k)), defaults.join());
    assert.deepEqual(keys(states.Plan.ResultSelector), fields('PlanResponse').sort());
    assert.deepEqual(keys(states.CopyChunks.ItemSelector), fields('ChunkItem').sort());
    const copy = states.CopyChunks.ItemProcessor.States.CopyChunk;
    assert.deepEqual(keys(copy.Parameters.Payload), fields('ChunkItem').sort());
    assert.deepEqual(keys(copy.ResultSelector), fields('CopyChunkResponse').sort());
    assert.deepEqual(keys(states.Merge.Parameters.Payload), fields('RunRequest').sort());
    assert.deepEqual(keys(states.Reconcile.Parameters.Payload), fields('RunRequest').sort());
    assert.ok(fields('ReconcileResponse').includes('mismatches') && fields('MergeResponse').includes('tables'));
    assert.deepEqual(keys(states.ConflictCreate.Parameters.Payload), fields('ConflictCreateRequest').sort());
    assert.deepEqual(keys(states.RecordFailure.Parameters.Payload), fields('FailRunRequest').sort());
  });

  it('reads the manifest with ItemReader from where plan was told to write it, one chunk per child', () => {
    const map = states.CopyChunks;
    assert.equal(map.ItemReader.Resource, 'arn:aws:states:::s3:getObject');
    assert.deepEqual(map.ItemReader.ReaderConfig, { InputType: 'JSON' });
    assert.equal(map.ItemBatcher, undefined);
    assert.equal(map.ItemProcessor.ProcessorConfig.Mode, 'DISTRIBUTED');
    assert.equal(map.ResultWriter.Resource, 'arn:aws:states:::s3:putObject');
    assert.equal(map.ToleratedFailurePercentage, 5);
    const uri = states.Defaults.Parameters.manifest['manifest_uri.$'];
    const key = states.Defaults.Parameters.reader['key.$'];
    assert.equal(uri, `States.Format('s3://${sampleValues.ManifestBucket}/${key.slice("States.Format('".length)}`);
  });

  it('keeps only ids and small summaries in state', () => {
    for (const name of ['Plan', 'Merge', 'Reconcile']) assert.ok(states[name].ResultSelector, `${name} needs a ResultSelector`);
    assert.ok(!JSON.stringify(states.Merge.ResultSelector).includes('"$.Payload.tables"'), 'merge keeps a table count, not the list');
    assert.equal(states.ConflictCreate.ResultPath, null);
    assert.equal(states.RecordFailure.ResultPath, null);
  });
});

describe('asl-validator', () => {
  const validator = join(INFRA_DIR, 'node_modules', 'asl-validator', 'dist', 'bin', 'asl-validator.js');
  const dir = mkdtempSync(join(tmpdir(), 'thaw-asl-'));
  for (const env of ENVIRONMENTS) {
    it(`accepts the ${env} definition after substitution`, () => {
      const file = join(dir, `sync.${env}.asl.json`);
      writeFileSync(file, JSON.stringify(renderedDefinition(synth(env).template), null, 2));
      const run = spawnSync(process.execPath, [validator, '--json-path', file], { encoding: 'utf8' });
      assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
      assert.equal(loadConfig(env).workflow.maxConcurrency, (renderedDefinition(synth(env).template) as any).States.CopyChunks.MaxConcurrency);
    });
  }
});
