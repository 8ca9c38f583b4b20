/**
 * Contract between `statemachines/sync.asl.json` and the engine, read from
 * `statemachines/contract.json` (generated from the Rust request/response
 * types with schemars: error names, retryable ones, step → request/response
 * type, one JSON Schema per type), so the cloud workflow, the local runner
 * and the Lambdas cannot drift. Also runs `asl-validator` on the rendered
 * definition of every environment.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NUMERIC_PLACEHOLDERS, placeholders, readSyncTemplate, renderDefinition, unquoteNumericPlaceholders } from '../lib/asl.ts';
import { ENVIRONMENTS, loadConfig } from '../lib/config.ts';
import { NIGHTLY_INPUT, WORKFLOW_FUNCTIONS } from '../lib/constructs/workflow.ts';
import { INFRA_DIR, renderedDefinition, synth } from './support.ts';
import { CONTRACT_PATH, Scenario, loadContract, propertyNames, simulate, validate } from './contract-support.ts';

const contract = loadContract();
const errors = contract.errors;
/** Property names of a type of contract.json (the serde field names of the Rust struct). */
const fields = (type: string) => propertyNames(contract, type);
const sampleValues: Record<string, string | number> = {
  Environment: 'qa',
  ManifestBucket: 'thaw-qa-data',
  AlarmTopicArn: 'arn:aws:sns:us-east-1:222222222222:thaw-qa-alarms',
  MaxConcurrency: 8,
  ToleratedFailurePercentage: 5,
  ExecutionTimeoutSeconds: 21600,
  DualReadWindowStart: '2027-01-04T00:00:00Z',
  DualReadWindowEnd: '2027-01-18T00:00:00Z',
  DualReadSnowflakeDatabase: 'CONFLICTREPORT',
  DualReadSnowflakeSchema: 'PUBLIC',
  ...Object.fromEntries(Object.entries(WORKFLOW_FUNCTIONS).map(([p, f]) => [p, `arn:aws:lambda:us-east-1:222222222222:function:thaw-qa-${f}`])),
};
/** Contract step of a rendered Lambda ARN: the function name, or `dual-read` for that operation of the reconcile Lambda. */
const stepOf = (functionArn: string, payload?: any) => {
  const entry = Object.entries(WORKFLOW_FUNCTIONS).find(([placeholder]) => sampleValues[placeholder] === functionArn);
  assert.ok(entry, `${functionArn} is none of the workflow functions`);
  if (entry[1] === 'reconcile' && payload?.operation === 'dual-read') return 'dual-read';
  return entry[1];
};
const asl = renderDefinition(readSyncTemplate(), sampleValues) as any;
const states = asl.States as Record<string, any>;
/** Keys of a Parameters/ItemSelector object with the `.$` suffix removed. */
const keys = (o: Record<string, unknown>) => Object.keys(o).map((k) => k.replace(/\.\$$/, '')).sort();
const functionOf = (state: any) => state.Parameters.FunctionName as string;
/** The Lambda Task states, Map children included. */
const lambdaTasks = () => [states.Plan, states.CopyChunks.ItemProcessor.States.CopyChunk, states.StagedFileManifest, states.LoadStagedFiles.ItemProcessor.States.LoadStagedFile, states.Merge, states.Reconcile, states.ConflictCreate, states.DualRead, states.RecordFailure];
const request = (step: string) => contract.steps[step].request;
const response = (step: string) => contract.steps[step].response;
/**
 * Executions the sample payloads are built for: started without input, by the
 * nightly schedule, by an operator (full run of one table with a full conflict
 * pass), and the nightly one failing at each state that catches errors.
 */
const scenarios: [string, Scenario][] = [
  ['started without input', { input: {} }],
  ['nightly schedule', { input: NIGHTLY_INPUT }],
  ['operator full run', { input: { mode: 'full', tables: ['public.visits'], conflict_full: true } }],
  ...['Plan', 'CopyChunks', 'StagedFileManifest', 'LoadStagedFiles', 'Merge', 'Reconcile', 'ConflictCreate'].map((state): [string, Scenario] => [`${state} fails`, { input: NIGHTLY_INPUT, failAt: state }]),
];
/** Executions that run the DualRead state: in the window, or asked for by the input. */
const dualReadScenarios: [string, Scenario][] = [
  ['nightly schedule on the first day of the dual-read window', { input: NIGHTLY_INPUT, startTime: '2027-01-04T07:00:00Z' }],
  ['nightly schedule on the last day of the dual-read window', { input: NIGHTLY_INPUT, startTime: '2027-01-17T23:59:59Z' }],
  ['operator asks for the dual-read outside the window', { input: { dual_read: true }, startTime: '2026-06-01T07:00:00Z' }],
  ['dual-read step fails', { input: NIGHTLY_INPUT, startTime: '2027-01-10T07:00:00Z', failAt: 'DualRead' }],
];
/** Executions in or near the window that must not run it. */
const noDualReadScenarios: [string, Scenario][] = [
  ['nightly schedule the day before the window', { input: NIGHTLY_INPUT, startTime: '2027-01-03T23:59:59Z' }],
  ['nightly schedule the day after the window', { input: NIGHTLY_INPUT, startTime: '2027-01-18T00:00:00Z' }],
  ['operator turns it off inside the window', { input: { dual_read: false }, startTime: '2027-01-10T07:00:00Z' }],
];

describe(`sync.asl.json contract with ${CONTRACT_PATH.slice(CONTRACT_PATH.indexOf('statemachines/'))}`, () => {
  it('uses exactly the placeholders CDK substitutes', () => {
    assert.deepEqual(placeholders(readSyncTemplate()), Object.keys(sampleValues).sort());
    for (const n of NUMERIC_PLACEHOLDERS) assert.ok(unquoteNumericPlaceholders(readSyncTemplate()).includes(`: \${${n}}`), n);
  });

  it('runs plan → map(copy-chunk) → staged file manifest → map(one staged file) → merge → reconcile → conflict-create → success', () => {
    const order: string[] = [];
    for (let name: string | undefined = asl.StartAt; name; name = states[name].Next) {
      order.push(name);
      if (states[name].Type === 'Succeed') break;
    }
    assert.deepEqual(order, ['Defaults', 'BuildRequest', 'Plan', 'CopyChunks', 'StagedFileManifest', 'LoadStagedFiles', 'Merge', 'Reconcile', 'ConflictCreate', 'DualReadWindow']);
    assert.equal(functionOf(states.Plan), sampleValues.PlanFunctionArn);
    assert.equal(states.CopyChunks.Type, 'Map');
    assert.equal(functionOf(states.CopyChunks.ItemProcessor.States.CopyChunk), sampleValues.CopyChunkFunctionArn);
    assert.equal(functionOf(states.StagedFileManifest), sampleValues.CopyChunkFunctionArn);
    assert.equal(states.LoadStagedFiles.Type, 'Map');
    assert.equal(functionOf(states.LoadStagedFiles.ItemProcessor.States.LoadStagedFile), sampleValues.CopyChunkFunctionArn);
    assert.equal(functionOf(states.Merge), sampleValues.MergeFunctionArn);
    assert.equal(functionOf(states.Reconcile), sampleValues.ReconcileFunctionArn);
    assert.equal(functionOf(states.ConflictCreate), sampleValues.ConflictCreateFunctionArn);
  });

  it('runs the dual-read (an operation of the reconcile Lambda) after conflict-create only in the window or when the input asks', () => {
    assert.equal(states.DualReadWindow.Type, 'Choice');
    assert.equal(states.DualReadWindow.Default, 'Succeeded');
    assert.deepEqual(states.DualReadWindow.Choices[1].And.map((r: any) => [r.Variable, r.TimestampGreaterThanEquals ?? r.TimestampLessThan]),
      [['$$.Execution.StartTime', sampleValues.DualReadWindowStart], ['$$.Execution.StartTime', sampleValues.DualReadWindowEnd]]);
    assert.equal(functionOf(states.DualRead), sampleValues.ReconcileFunctionArn);
    assert.equal(states.DualRead.Parameters.Payload.operation, 'dual-read');
    for (const [label, scenario] of dualReadScenarios) {
      const calls = simulate(asl, contract, stepOf, scenario);
      assert.deepEqual(calls.map((c) => c.step), ['plan', 'copy-chunk', 'copy-chunk', 'copy-chunk', 'merge', 'reconcile', 'conflict-create', 'dual-read'], label);
      assert.deepEqual(calls[7].payload, { operation: 'dual-read', run_id: calls[4].payload.run_id, snowflake_database: 'CONFLICTREPORT', snowflake_schema: 'PUBLIC' }, label);
    }
    for (const [label, scenario] of noDualReadScenarios) {
      assert.deepEqual(simulate(asl, contract, stepOf, scenario).map((c) => c.step).slice(-1), ['conflict-create'], label);
    }
  });

  it('publishes a differing or failed dual-read to the alarm topic and still succeeds, never touching the run (no fail-run)', () => {
    assert.deepEqual(states.DualRead.Catch, [{ ErrorEquals: ['States.ALL'], ResultPath: '$.dual_read', Next: 'NotifyDualReadProblem' }]);
    assert.equal(states.DualRead.Next, 'DualReadClean');
    assert.deepEqual(states.DualReadClean.Choices, [{ Variable: '$.dual_read.status', StringEquals: 'ok', Next: 'Succeeded' }]);
    assert.equal(states.DualReadClean.Default, 'NotifyDualReadProblem');
    const notify = states.NotifyDualReadProblem;
    assert.equal(notify.Resource, 'arn:aws:states:::sns:publish');
    assert.equal(notify.Parameters.TopicArn, sampleValues.AlarmTopicArn);
    assert.equal(notify.Parameters.Message['dual_read.$'], '$.dual_read');
    assert.equal(notify.Parameters.Message.runbook, 'ops/runbooks/dual-read.md');
    assert.equal(notify.Next, 'Succeeded');
    assert.equal(notify.Catch[0].Next, 'Succeeded');
    const failed = simulate(asl, contract, stepOf, dualReadScenarios[3][1]);
    assert.ok(!failed.some((c) => c.step === 'fail-run'), 'a failed dual-read does not mark the run failed');
  });

  it('sends every error to fail-run, then the alarm topic, then Fail', () => {
    for (const name of ['Plan', 'CopyChunks', 'StagedFileManifest', 'LoadStagedFiles', 'Merge', 'Reconcile', 'ConflictCreate']) {
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
    for (const t of lambdaTasks()) {
      const [typed, service] = t.Retry;
      assert.deepEqual([...typed.ErrorEquals].sort(), [...contract.retryable].sort(), 'retries exactly the retryable errors of contract.json');
      assert.ok(typed.ErrorEquals.every((e: string) => errors.includes(e)), 'names come from contract.json errors (ErrorKind::name)');
      assert.ok(service.ErrorEquals.every((e: string) => e.startsWith('Lambda.')));
      for (const r of t.Retry) {
        assert.equal(r.JitterStrategy, 'FULL');
        assert.ok(r.BackoffRate > 1 && r.MaxDelaySeconds > 0);
      }
    }
    assert.deepEqual([...contract.retryable].sort(), ['Locked', 'Transient', 'Unreachable']);
    assert.deepEqual([...errors].sort(), ['AuthFailed', 'ChunkFailed', 'ConfigInvalid', 'Internal', 'Locked', 'ReconcileMismatch', 'SchemaMismatch', 'Transient', 'TypeUnsupported', 'Unreachable']);
  });

  it('builds payloads with the field names of the request types (properties of their schemas)', () => {
    // plan receives the execution input merged over defaults: only PlanRequest fields plus conflict_full.
    const defaults = keys(states.Defaults.Parameters.defaults).concat(keys(states.Defaults.Parameters.manifest));
    assert.ok(defaults.filter((k) => k !== 'conflict_full').every((k) => fields(request('plan')).includes(k)), defaults.join());
    assert.deepEqual(keys(states.Plan.ResultSelector), fields(response('plan')).sort());
    assert.deepEqual(keys(states.CopyChunks.ItemSelector), fields(request('copy-chunk')).sort());
    const copy = states.CopyChunks.ItemProcessor.States.CopyChunk;
    assert.deepEqual(keys(copy.Parameters.Payload), fields(request('copy-chunk')).sort());
    assert.deepEqual(keys(copy.ResultSelector), fields(response('copy-chunk')).sort());
    // The staged path (docs/sync.md §13.7): the unload pass, the file manifest and the per-file items.
    assert.equal(states.CopyChunks.ItemSelector.staged, 'unload');
    assert.deepEqual(keys(states.StagedFileManifest.Parameters.Payload), fields(request('copy-chunk')).sort());
    assert.deepEqual(Object.keys(states.StagedFileManifest.Parameters.Payload.staged), ['file_manifest']);
    const file = states.LoadStagedFiles.ItemProcessor.States.LoadStagedFile;
    assert.deepEqual(keys(states.LoadStagedFiles.ItemSelector), fields(request('copy-chunk')).sort());
    assert.equal(states.LoadStagedFiles.ItemSelector['file_key.$'], '$$.Map.Item.Value.file_key');
    assert.deepEqual(keys(file.Parameters.Payload), fields(request('copy-chunk')).sort());
    assert.deepEqual(keys(file.ResultSelector), fields(response('copy-chunk')).sort());
    assert.deepEqual(keys(states.Merge.Parameters.Payload), fields(request('merge')).sort());
    assert.deepEqual(keys(states.Reconcile.Parameters.Payload), fields(request('reconcile')).sort());
    assert.ok(fields(response('reconcile')).includes('mismatches') && fields(response('merge')).includes('tables'));
    assert.deepEqual(keys(states.ConflictCreate.Parameters.Payload), fields(request('conflict-create')).sort());
    assert.deepEqual(keys(states.DualRead.Parameters.Payload), fields(request('dual-read')).sort());
    assert.deepEqual(keys(states.DualRead.ResultSelector), fields(response('dual-read')).sort());
    assert.deepEqual(keys(states.RecordFailure.Parameters.Payload), fields(request('fail-run')).sort());
    // The steps name the engine's types as the workflow's comments do.
    assert.deepEqual(
      Object.fromEntries(Object.entries(contract.steps).map(([step, t]) => [step, t.request])),
      { plan: 'PlanRequest', 'copy-chunk': 'ChunkItem', merge: 'RunRequest', reconcile: 'RunRequest', 'conflict-create': 'ConflictCreateRequest', 'dual-read': 'DualReadRequest', 'fail-run': 'FailRunRequest' });
  });

  it('invokes a step of contract.json from every Lambda task, and every step from some task', () => {
    assert.deepEqual([...new Set(lambdaTasks().map((t) => stepOf(functionOf(t), t.Parameters.Payload)))].sort(), Object.keys(contract.steps).sort());
  });

  it('supplies every required property of the request schema in the sample payload of each Task state', () => {
    const seen = new Set<string>();
    for (const [label, scenario] of [...scenarios, ...dualReadScenarios]) {
      const calls = simulate(asl, contract, stepOf, scenario);
      if (dualReadScenarios.some(([l]) => l === label)) assert.equal(calls[calls.length - 1].step, 'dual-read', label);
      else if (scenario.failAt) assert.equal(calls[calls.length - 1].step, 'fail-run', `${label}: ends in fail-run`);
      else assert.deepEqual(calls.map((c) => c.step), ['plan', 'copy-chunk', 'copy-chunk', 'copy-chunk', 'merge', 'reconcile', 'conflict-create'], label);
      for (const call of calls) {
        const type = request(call.step);
        const schema = contract.types[type];
        for (const name of (schema.required ?? []) as string[]) {
          assert.ok(call.payload?.[name] !== undefined, `${label}: ${call.state} does not supply ${name}, required by ${type}`);
        }
        assert.deepEqual(validate(call.payload, schema), [], `${label}: ${call.state} payload ${JSON.stringify(call.payload)} against ${type}`);
        seen.add(call.step);
      }
    }
    assert.deepEqual([...seen].sort(), Object.keys(contract.steps).sort(), 'every step was invoked in some scenario');
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
