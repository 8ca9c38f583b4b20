/**
 * CloudWatch alarms of one environment, all notifying the environment's SNS
 * topic (on ALARM and on OK). Every alarm's description ends with the link to
 * its runbook, `<alarms.runbookBaseUrl><runbook>.md`, and {@link ALARM_RUNBOOKS}
 * lists the runbooks that must exist under `ops/runbooks/`.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { EnvironmentConfig, FUNCTION_NAMES, FunctionName, functionSettings } from './config.ts';

/** Runbook file names (without `.md`) under `ops/runbooks/`, one per kind of alarm. */
export const ALARM_RUNBOOKS = [
  'execution-failed',
  'execution-timed-out',
  'dlq-scheduler',
  'dlq-failed-executions',
  'dlq-lambda-async',
  'lambda-errors',
  'lambda-throttles',
  'lambda-duration',
  'aurora-cpu',
  'aurora-acu',
  'aurora-connections',
  'aurora-replica-lag',
  'aurora-free-local-storage',
  'data-freshness',
  'conflict-create-not-run',
  'reconcile-freshness',
  'dual-read',
] as const;
type Runbook = (typeof ALARM_RUNBOOKS)[number];

/** Custom metric reconcile emits (EMF) after a verified sync: hours since the last one. */
export const FRESHNESS_METRIC = 'HoursSinceLastVerifiedSync';

/** Custom metric reconcile emits (EMF) after every reconcile: hours since the least recently verified slice was verified. */
export const RECONCILE_FRESHNESS_METRIC = 'ReconcileFreshnessHours';

/** Custom metric the dual-read operation of the reconcile Lambda emits (EMF): 0 clean, 1 differs or failed. */
export const DUAL_READ_METRIC = 'DualReadProblems';

/** Inputs of {@link ThawAlarms}. */
export interface ThawAlarmsProps {
  config: EnvironmentConfig;
  topic: sns.ITopic;
  stateMachine: sfn.StateMachine;
  functions: Record<FunctionName, lambda.IFunction>;
  clusterIdentifier: string;
  deadLetterQueues: Record<'scheduler' | 'failedExecutions' | 'lambdaAsync', sqs.IQueue>;
}

/** The alarm set; see the module comment. */
export class ThawAlarms extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: ThawAlarmsProps) {
    super(scope, id);
    const { config: cfg, topic } = props;
    const env = cfg.environment;
    const fiveMinutes = Duration.minutes(5);
    const action = new cloudwatchActions.SnsAction(topic);

    const alarm = (alarmId: string, runbook: Runbook, what: string, opts: Omit<cloudwatch.AlarmProps, 'alarmName' | 'alarmDescription'>) => {
      const a = new cloudwatch.Alarm(this, alarmId, {
        alarmName: `thaw-${env}-${alarmId.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase()}`,
        alarmDescription: `${what} Runbook: ${cfg.alarms.runbookBaseUrl}${runbook}.md`,
        ...opts,
      });
      a.addAlarmAction(action);
      a.addOkAction(action);
      this.alarms.push(a);
      return a;
    };
    const sm = props.stateMachine;

    alarm('ExecutionFailed', 'execution-failed', `A thaw ${env} sync execution failed or was aborted.`, {
      metric: new cloudwatch.MathExpression({
        expression: 'FILL(failed, 0) + FILL(aborted, 0)',
        usingMetrics: { failed: sm.metricFailed({ period: fiveMinutes }), aborted: sm.metricAborted({ period: fiveMinutes }) },
        period: fiveMinutes,
        label: 'failed + aborted executions',
      }),
      threshold: 1, evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm('ExecutionTimedOut', 'execution-timed-out', `A thaw ${env} sync execution exceeded ${cfg.workflow.executionTimeoutHours} h.`, {
      metric: sm.metricTimedOut({ period: fiveMinutes, statistic: 'Sum' }),
      threshold: 1, evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const dlqs: [string, Runbook, sqs.IQueue, string][] = [
      ['SchedulerDlqNotEmpty', 'dlq-scheduler', props.deadLetterQueues.scheduler, 'The nightly schedule could not start the sync.'],
      ['FailedExecutionsDlqNotEmpty', 'dlq-failed-executions', props.deadLetterQueues.failedExecutions, 'A sync execution ended FAILED, TIMED_OUT or ABORTED (queue holds the events).'],
      ['LambdaAsyncDlqNotEmpty', 'dlq-lambda-async', props.deadLetterQueues.lambdaAsync, 'An asynchronous invocation of a thaw Lambda failed all retries.'],
    ];
    for (const [alarmId, runbook, queue, what] of dlqs) {
      alarm(alarmId, runbook, `${what} Dead-letter queue depth > 0.`, {
        metric: queue.metricApproximateNumberOfMessagesVisible({ period: fiveMinutes, statistic: 'Maximum' }),
        threshold: 0, evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    for (const name of FUNCTION_NAMES) {
      const fn = props.functions[name];
      const id = name.split('-').map((p) => p[0].toUpperCase() + p.slice(1)).join('');
      const timeoutMs = functionSettings(cfg, name).timeoutSeconds * 1000;
      alarm(`${id}Errors`, 'lambda-errors', `${fn.node.id}: ${cfg.alarms.lambdaErrorsThreshold}+ errors in 5 minutes (function thaw-${env}-${name}).`, {
        metric: fn.metricErrors({ period: fiveMinutes, statistic: 'Sum' }),
        threshold: cfg.alarms.lambdaErrorsThreshold, evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      alarm(`${id}Throttles`, 'lambda-throttles', `thaw-${env}-${name} was throttled (reserved concurrency ${functionSettings(cfg, name).reservedConcurrency}).`, {
        metric: fn.metricThrottles({ period: fiveMinutes, statistic: 'Sum' }),
        threshold: 1, evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      alarm(`${id}DurationNearTimeout`, 'lambda-duration', `thaw-${env}-${name} p99 duration above ${Math.round(cfg.alarms.durationFractionOfTimeout * 100)}% of its ${timeoutMs / 1000} s timeout.`, {
        metric: fn.metricDuration({ period: fiveMinutes, statistic: 'p99' }),
        threshold: Math.round(timeoutMs * cfg.alarms.durationFractionOfTimeout), evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    const rds = (metricName: string, statistic: string, extra: Record<string, string> = {}) => new cloudwatch.Metric({
      namespace: 'AWS/RDS', metricName, statistic, period: fiveMinutes,
      dimensionsMap: { DBClusterIdentifier: props.clusterIdentifier, ...extra },
    });
    // Auto-paused clusters publish nothing: missing data is not a breach for these.
    alarm('AuroraCpu', 'aurora-cpu', `Aurora ${props.clusterIdentifier} CPU above ${cfg.alarms.auroraCpuPercent}% for 15 minutes.`, {
      metric: rds('CPUUtilization', 'Maximum'), threshold: cfg.alarms.auroraCpuPercent, evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD, treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm('AuroraAcuUtilization', 'aurora-acu', `Aurora ${props.clusterIdentifier} uses more than ${cfg.alarms.acuUtilizationPercent}% of its ${cfg.database.maxAcu} ACU maximum for 15 minutes.`, {
      metric: rds('ACUUtilization', 'Maximum'), threshold: cfg.alarms.acuUtilizationPercent, evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD, treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm('AuroraConnections', 'aurora-connections', `Aurora ${props.clusterIdentifier} has more than ${cfg.alarms.maxConnections} connections.`, {
      metric: rds('DatabaseConnections', 'Maximum'), threshold: cfg.alarms.maxConnections, evaluationPeriods: 2,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD, treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm('AuroraReplicaLag', 'aurora-replica-lag', `Aurora ${props.clusterIdentifier} reader lags the writer by more than ${cfg.alarms.replicaLagMilliseconds} ms.`, {
      metric: rds('AuroraReplicaLagMaximum', 'Maximum'), threshold: cfg.alarms.replicaLagMilliseconds, evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD, treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm('AuroraFreeLocalStorage', 'aurora-free-local-storage', `Aurora ${props.clusterIdentifier} writer has less than ${cfg.alarms.freeLocalStorageBytes} bytes of local (temporary) storage.`, {
      metric: rds('FreeLocalStorage', 'Minimum', { Role: 'WRITER' }), threshold: cfg.alarms.freeLocalStorageBytes, evaluationPeriods: 2,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD, treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    // reconcile emits FRESHNESS_METRIC = 0 once per clean reconcile (nightly), so the signal is whether a
    // datapoint arrived in the window, not its value: hourly periods, ALARM only when all freshnessHours of
    // them are empty (missing = breaching, deliberately: no verified sync is exactly what this alarm is for).
    // A 1-period alarm on the value would sit in ALARM (missing data) most of every day between syncs.
    const fresh = cfg.alarms.freshnessHours;
    alarm('DataFreshness', 'data-freshness', `No verified sync of thaw ${env} for ${fresh} h (no ${FRESHNESS_METRIC} datapoint from a clean reconcile in ${fresh} consecutive hours).`, {
      metric: new cloudwatch.Metric({
        namespace: 'Thaw', metricName: FRESHNESS_METRIC, dimensionsMap: { Environment: env }, statistic: 'SampleCount', period: Duration.hours(1),
      }),
      threshold: 1, evaluationPeriods: fresh, datapointsToAlarm: fresh,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    // Both metrics arrive once per night: hourly Maximum, and missing data keeps the state, so the alarm
    // reflects the newest datapoint (ALARM until a later reconcile or dual-read is back under the line).
    const thaw = (metricName: string) => new cloudwatch.Metric({
      namespace: 'Thaw', metricName, dimensionsMap: { Environment: env }, statistic: 'Maximum', period: Duration.hours(1),
    });
    const stale = cfg.alarms.reconcileFreshnessHours;
    alarm('ReconcileFreshness', 'reconcile-freshness', `A table of thaw ${env} has rows not verified by reconcile for more than ${stale} h (${RECONCILE_FRESHNESS_METRIC}, the age of the least recently verified slice; docs/reconcile.md 5.4).`, {
      metric: thaw(RECONCILE_FRESHNESS_METRIC),
      threshold: stale, evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.IGNORE,
    });
    alarm('DualReadProblem', 'dual-read', `The dual-read of thaw ${env} found Snowflake's and PostgreSQL's conflicts differ, or could not compare them (${DUAL_READ_METRIC}).`, {
      metric: thaw(DUAL_READ_METRIC),
      threshold: 1, evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.IGNORE,
    });
    const gap = cfg.alarms.conflictCreateMaxGapHours;
    alarm('ConflictCreateNotRun', 'conflict-create-not-run', `conflict-create has not been invoked for ${gap} h in thaw ${env}.`, {
      metric: props.functions['conflict-create'].metricInvocations({ period: Duration.hours(1), statistic: 'Sum' }),
      threshold: 1, evaluationPeriods: gap, datapointsToAlarm: gap,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
  }
}
