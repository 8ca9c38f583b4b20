/**
 * The sync workflow: the Standard state machine from
 * `statemachines/sync.asl.json` (rendered by `../asl.ts`) with its role, the
 * nightly EventBridge Scheduler schedule that starts it (during the
 * dual-read validation window of `dualRead` each nightly execution also runs
 * the DualRead state, docs/reconcile.md §10), and the rule that
 * sends executions ending FAILED, TIMED_OUT or ABORTED to a queue and to the
 * alarm topic. Both queues (scheduler, failed executions) are kept here.
 */
import { Duration, Stack, TimeZone } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct, IDependable } from 'constructs';
import { formatNumber, readSyncTemplate, unquoteNumericPlaceholders } from '../asl.ts';
import { EnvironmentConfig, FunctionName, dualReadWindow } from '../config.ts';
import { acknowledge, arnRef } from '../nag.ts';
import { Foundation, ThawConcern, deadLetterQueue, encryptedLogGroup, stackRoot } from './common.ts';

/** Functions the sync state machine invokes, with their ASL placeholder. */
export const WORKFLOW_FUNCTIONS: Record<string, FunctionName> = {
  PlanFunctionArn: 'plan',
  CopyChunkFunctionArn: 'copy-chunk',
  MergeFunctionArn: 'merge',
  ReconcileFunctionArn: 'reconcile',
  ConflictCreateFunctionArn: 'conflict-create',
  FailRunFunctionArn: 'fail-run',
};

/**
 * Input the nightly schedule starts every execution with: an incremental
 * run, allowed to replace the tables marked `truncate_onstart` when
 * `schedule.allowTruncate` says so (docs/operations.md, "Input").
 */
export const nightlyInput = (allowTruncate: boolean) => ({ mode: 'incremental', allow_truncate: allowTruncate }) as const;

/** The nightly input of the shipped environments (`schedule.allowTruncate: true`). */
export const NIGHTLY_INPUT = nightlyInput(true);

/** Inputs of {@link ThawWorkflow}. */
export interface ThawWorkflowProps {
  foundation: Foundation;
  workflow: EnvironmentConfig['workflow'];
  schedule: EnvironmentConfig['schedule'];
  /** The dual-read validation window and where the legacy conflict tables are in Snowflake. */
  dualRead: EnvironmentConfig['dualRead'];
  /** At least the {@link WORKFLOW_FUNCTIONS}. */
  functions: Record<FunctionName, lambda.IFunction>;
  /** manifests/ (read by the Map) and results/ (its ResultWriter). */
  dataBucket: s3.IBucket;
  /** Failures are published here (NotifyFailure state and the failed-executions rule). */
  alarmTopic: sns.ITopic;
  /** The state machine and the schedule are created only after this (the schema migration). */
  after: IDependable;
}

/** State machine, schedule, failed-execution routing; see the module comment. */
export class ThawWorkflow extends ThawConcern {
  readonly stateMachine: sfn.StateMachine;
  readonly deadLetterQueues: Record<'scheduler' | 'failedExecutions', sqs.Queue>;

  constructor(scope: Construct, id: string, props: ThawWorkflowProps) {
    super(scope, id);
    const { foundation: base, functions, dataBucket: bucket, alarmTopic, workflow: wf, schedule: sch } = props;
    const { environment: env, prefix, key } = base;
    const stack = Stack.of(this);
    this.deadLetterQueues = {
      scheduler: deadLetterQueue(this, 'SchedulerDlq', 'scheduler-dlq', base),
      failedExecutions: deadLetterQueue(this, 'FailedExecutionsDlq', 'failed-executions', base),
    };

    // --------------------------------------------------------- state machine
    const stateMachineName = `${prefix}-sync`;
    const smRole = new iam.Role(this, 'SyncRole', {
      assumedBy: new iam.ServicePrincipal('states.amazonaws.com'),
      description: `${stateMachineName}: invoke the thaw Lambdas, read manifests, write Map results, run its own Map children, publish failures`,
    });
    for (const fnName of Object.values(WORKFLOW_FUNCTIONS)) functions[fnName].grantInvoke(smRole);
    smRole.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [bucket.arnForObjects('manifests/*')] }));
    smRole.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:PutObject', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload'],
      resources: [bucket.arnForObjects('results/*')],
    }));
    smRole.addToPolicy(new iam.PolicyStatement({ actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resources: [key.keyArn] }));
    alarmTopic.grantPublish(smRole);
    smRole.addToPolicy(new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [`arn:${stack.partition}:states:${stack.region}:${stack.account}:stateMachine:${stateMachineName}`] }));
    smRole.addToPolicy(new iam.PolicyStatement({
      actions: ['states:DescribeExecution', 'states:StopExecution', 'states:RedriveExecution'],
      resources: [`arn:${stack.partition}:states:${stack.region}:${stack.account}:execution:${stateMachineName}/*`],
    }));
    smRole.addToPolicy(new iam.PolicyStatement({
      actions: ['states:DescribeMapRun', 'states:UpdateMapRun'],
      resources: [`arn:${stack.partition}:states:${stack.region}:${stack.account}:mapRun:${stateMachineName}/*`],
    }));
    const substitutions: Record<string, string> = {
      Environment: env,
      ManifestBucket: bucket.bucketName,
      AlarmTopicArn: alarmTopic.topicArn,
      MaxConcurrency: formatNumber('MaxConcurrency', wf.maxConcurrency),
      ToleratedFailurePercentage: formatNumber('ToleratedFailurePercentage', wf.toleratedFailurePercentage),
      ExecutionTimeoutSeconds: formatNumber('ExecutionTimeoutSeconds', wf.executionTimeoutHours * 3600),
      DualReadWindowStart: dualReadWindow(props.dualRead).start,
      DualReadWindowEnd: dualReadWindow(props.dualRead).end,
      DualReadSnowflakeDatabase: props.dualRead.snowflakeDatabase,
      DualReadSnowflakeSchema: props.dualRead.snowflakeSchema,
    };
    for (const [placeholder, fnName] of Object.entries(WORKFLOW_FUNCTIONS)) substitutions[placeholder] = functions[fnName].functionArn;
    this.stateMachine = new sfn.StateMachine(this, 'Sync', {
      stateMachineName,
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromString(unquoteNumericPlaceholders(readSyncTemplate())),
      definitionSubstitutions: substitutions,
      role: smRole,
      tracingEnabled: true,
      logs: {
        destination: encryptedLogGroup(this, 'SyncLogs', `/aws/vendedlogs/states/${stateMachineName}`, base),
        level: sfn.LogLevel.ALL,
        includeExecutionData: true,
      },
    });
    this.stateMachine.node.addDependency(props.after);
    acknowledge(smRole, 'AwsSolutions-IAM5',
      'Scoped wildcards only: versions of the six workflow Lambdas (<arn>:*), this state machine\'s own child executions and map runs (<name>/*, required by the Distributed Map), the manifests/ and results/ prefixes of the data bucket, kms:GenerateDataKey* on the environment key for the encrypted topic, and log delivery / X-Ray which have no resource-level permissions.',
      [
        'Resource::*',
        'Action::kms:GenerateDataKey*',
        ...Object.values(WORKFLOW_FUNCTIONS).map((f) => `Resource::${arnRef(functions[f])}:*`),
        `Resource::arn:<AWS::Partition>:states:${stack.region}:${stack.account}:execution:${stateMachineName}/*`,
        `Resource::arn:<AWS::Partition>:states:${stack.region}:${stack.account}:mapRun:${stateMachineName}/*`,
        `Resource::${arnRef(bucket)}/manifests/*`,
        `Resource::${arnRef(bucket)}/results/*`,
      ]);

    // ------------------------------------------------------ nightly schedule
    const schedule = new scheduler.Schedule(this, 'NightlySync', {
      scheduleName: `${prefix}-nightly-sync`,
      description: `thaw ${env}: nightly incremental sync (${sch.cron} ${sch.timeZone})${props.dualRead.firstDate === null ? '' : `, with the dual-read ${props.dualRead.firstDate}..${props.dualRead.lastDate} (UTC)`}`,
      schedule: scheduler.ScheduleExpression.expression(`cron(${sch.cron})`, TimeZone.of(sch.timeZone)),
      target: new schedulerTargets.StepFunctionsStartExecution(this.stateMachine, {
        input: scheduler.ScheduleTargetInput.fromObject(nightlyInput(sch.allowTruncate)),
        deadLetterQueue: this.deadLetterQueues.scheduler,
        retryAttempts: 3,
        maxEventAge: Duration.hours(2),
      }),
      enabled: sch.enabled,
    });
    schedule.node.addDependency(props.after);

    // --------------------------------- failed executions → queue + topic
    // At the stack root: the dead-letter queue's policy names the rule by its construct path (Sid AllowEventRule<path id>).
    new events.Rule(stackRoot(this), 'FailedExecutionsRule', {
      ruleName: `${prefix}-sync-failed`,
      description: `thaw ${env}: sync executions that end FAILED, TIMED_OUT or ABORTED (runbook ops/runbooks/dlq-failed-executions.md)`,
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED'], stateMachineArn: [this.stateMachine.stateMachineArn] },
      },
      targets: [
        new eventsTargets.SqsQueue(this.deadLetterQueues.failedExecutions, { retryAttempts: 8 }),
        new eventsTargets.SnsTopic(alarmTopic, { deadLetterQueue: this.deadLetterQueues.failedExecutions, retryAttempts: 8 }),
      ],
    });
  }
}
