/**
 * The workflow construct (`lib/constructs/workflow.ts`) in every environment:
 * the sync state machine, its nightly schedule, and where failed executions
 * go. (The definition's contract with the engine is `asl-contract.test.ts`.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { ENVIRONMENTS, loadConfig } from '../lib/config.ts';
import { renderedDefinition, resourcesOf, synth } from './support.ts';

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
          Input: JSON.stringify({ mode: 'incremental' }),
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
