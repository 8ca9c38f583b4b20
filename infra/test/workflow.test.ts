/**
 * The workflow construct (`lib/constructs/workflow.ts`) in every environment:
 * the sync state machine, its nightly schedule, and where failed executions
 * go. (The definition's contract with the engine is `asl-contract.test.ts`.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { Template } from 'aws-cdk-lib/assertions';
import { buildStack } from '../lib/app.ts';
import { ENVIRONMENTS, dualReadWindow, loadConfig } from '../lib/config.ts';
import { REPO_ROOT, renderedDefinition, resourcesOf, synth, testApp } from './support.ts';

for (const env of ENVIRONMENTS) {
  const cfg = loadConfig(env);
  describe(`${env} environment: workflow`, () => {
    const { template } = synth(env);
    const resources = (type: string) => resourcesOf(template, type);

    it('defines the Standard sync state machine with tracing, full logging and the configured Map settings', () => {
      template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
        StateMachineName: `thaw-${env}-sync`,
        StateMachineType: 'STANDARD',
        TracingConfiguration: { Enabled: true },
        LoggingConfiguration: Match.objectLike({ Level: 'ALL' }),
      });
      const definition = renderedDefinition(template) as any;
      const map = definition.States.CopyChunks;
      assert.equal(map.MaxConcurrency, cfg.workflow.maxConcurrency);
      assert.equal(map.ToleratedFailurePercentage, cfg.workflow.toleratedFailurePercentage);
      assert.equal(definition.TimeoutSeconds, cfg.workflow.executionTimeoutHours * 3600);
      const sm = resources('AWS::StepFunctions::StateMachine')[0].Properties;
      assert.match(sm.DefinitionString, /"ToleratedFailurePercentage": \$\{ToleratedFailurePercentage\}/);
      assert.match(String(sm.DefinitionSubstitutions.ToleratedFailurePercentage), /^\d+\.\d+$/, 'written as a float for moto');
    });

    it('triggers the sync nightly from EventBridge Scheduler with its own DLQ', () => {
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        ScheduleExpression: `cron(${cfg.schedule.cron})`,
        ScheduleExpressionTimezone: cfg.schedule.timeZone,
        State: cfg.schedule.enabled ? 'ENABLED' : 'DISABLED',
        Target: Match.objectLike({
          DeadLetterConfig: Match.objectLike({ Arn: Match.anyValue() }),
          RetryPolicy: Match.objectLike({ MaximumRetryAttempts: 3 }),
          Input: JSON.stringify({ mode: 'incremental', allow_truncate: cfg.schedule.allowTruncate }),
        }),
      });
    });

    it('keeps three KMS-encrypted dead-letter queues and routes failed executions to one of them and to the topic', () => {
      const queues = resources('AWS::SQS::Queue');
      assert.deepEqual(queues.map((q) => q.Properties.QueueName).sort(),
        [`thaw-${env}-failed-executions`, `thaw-${env}-lambda-async-dlq`, `thaw-${env}-scheduler-dlq`]);
      assert.ok(queues.every((q) => q.Properties.KmsMasterKeyId));
      template.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: Match.objectLike({
          source: ['aws.states'],
          detail: Match.objectLike({ status: ['FAILED', 'TIMED_OUT', 'ABORTED'] }),
        }),
        Targets: Match.arrayWith([Match.objectLike({ Arn: Match.objectLike({ 'Fn::GetAtt': Match.arrayWith([Match.stringLikeRegexp('^FailedExecutionsDlq')]) }) })]),
      });
      template.hasResourceProperties('AWS::SNS::Topic', { TopicName: `thaw-${env}-alarms`, KmsMasterKeyId: Match.anyValue() });
    });
  });
}

describe('dual-read validation window (docs/reconcile.md §10)', () => {
  it('is empty unless configured: no environment runs the DualRead state by schedule today', () => {
    for (const env of ENVIRONMENTS) {
      const sm = resourcesOf(synth(env).template, 'AWS::StepFunctions::StateMachine')[0].Properties;
      assert.equal(sm.DefinitionSubstitutions.DualReadWindowStart, '1970-01-01T00:00:00Z', env);
      assert.equal(sm.DefinitionSubstitutions.DualReadWindowEnd, '1970-01-01T00:00:00Z', env);
    }
  });

  it('runs DualRead after conflict-create in executions the daily schedule starts from firstDate through lastDate (UTC)', () => {
    const base = loadConfig('qa');
    const cfg = { ...base, dualRead: { firstDate: '2027-01-04', lastDate: '2027-01-17', snowflakeDatabase: 'LEGACY_CONFLICTS', snowflakeSchema: 'REPORT' } };
    assert.deepEqual(dualReadWindow(cfg.dualRead), { start: '2027-01-04T00:00:00Z', end: '2027-01-18T00:00:00Z' });
    const template = Template.fromStack(buildStack(testApp(), cfg, { repoRoot: REPO_ROOT, architectureOverride: 'x86_64' }));
    const definition = renderedDefinition(template) as any;
    const states = definition.States;
    assert.equal(states.ConflictCreate.Next, 'DualReadWindow');
    const [window] = states.DualReadWindow.Choices.filter((c: any) => c.Next === 'DualRead' && c.And);
    assert.deepEqual(window.And, [
      { Variable: '$$.Execution.StartTime', TimestampGreaterThanEquals: '2027-01-04T00:00:00Z' },
      { Variable: '$$.Execution.StartTime', TimestampLessThan: '2027-01-18T00:00:00Z' },
    ]);
    assert.equal(states.DualRead.Parameters.Payload.operation, 'dual-read');
    assert.equal(states.DualRead.Parameters.Payload.snowflake_database, 'LEGACY_CONFLICTS');
    assert.equal(states.DualRead.Parameters.Payload.snowflake_schema, 'REPORT');
    // The reconcile Lambda runs it: the state machine role already may invoke it, and nothing else is granted.
    const sm = resourcesOf(template, 'AWS::StepFunctions::StateMachine')[0].Properties;
    const reconcileArn = sm.DefinitionSubstitutions.ReconcileFunctionArn;
    assert.ok(reconcileArn['Fn::GetAtt'][0].startsWith('ReconcileFunction'), JSON.stringify(reconcileArn));
    // Daily: the nightly schedule (a cron with every day) starts the state machine with the nightly input.
    const schedule = resourcesOf(template, 'AWS::Scheduler::Schedule')[0].Properties;
    assert.equal(schedule.ScheduleExpression, `cron(${base.schedule.cron})`);
    assert.match(base.schedule.cron, /^\S+ \S+ \* \* \? \*$/, 'every day');
    assert.equal(schedule.Target.Input, JSON.stringify({ mode: 'incremental', allow_truncate: base.schedule.allowTruncate }));
    assert.match(schedule.Description, /with the dual-read 2027-01-04\.\.2027-01-17 \(UTC\)/);
  });
});
