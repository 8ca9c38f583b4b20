/**
 * Assertion tests of the synthesized template of every environment: each
 * resource INFRA.md lists and its key properties, as the config says.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { ALARM_RUNBOOKS } from '../lib/alarms.ts';
import { ENVIRONMENTS, FUNCTION_NAMES, functionSettings, loadConfig } from '../lib/config.ts';
import { DATABASE_USERS } from '../lib/constructs/secrets.ts';
import { renderedDefinition, synth } from './support.ts';

type Resource = { Type: string; Properties: Record<string, any>; DeletionPolicy?: string };

for (const env of ENVIRONMENTS) {
  const cfg = loadConfig(env);
  describe(`${env} environment`, () => {
    const { template } = synth(env);
    const resources = (type: string) => Object.values(template.findResources(type)) as Resource[];

    it('imports the VPC by id and creates no network of its own', () => {
      template.resourceCountIs('AWS::EC2::VPC', 0);
      template.resourceCountIs('AWS::EC2::Subnet', 0);
      template.hasResourceProperties('AWS::RDS::DBSubnetGroup', { SubnetIds: cfg.network.privateSubnetIds });
    });

    it('runs Aurora PostgreSQL 16.x Serverless v2 with the configured capacity, encryption, TLS and backups', () => {
      const [cluster] = resources('AWS::RDS::DBCluster');
      const p = cluster.Properties;
      assert.equal(p.Engine, 'aurora-postgresql');
      assert.equal(p.EngineVersion, cfg.database.engineVersion);
      assert.match(p.EngineVersion, /^16\./);
      assert.equal(p.ServerlessV2ScalingConfiguration.MinCapacity, cfg.database.minAcu);
      assert.equal(p.ServerlessV2ScalingConfiguration.MaxCapacity, cfg.database.maxAcu);
      assert.equal(p.ServerlessV2ScalingConfiguration.SecondsUntilAutoPause,
        cfg.database.autoPauseMinutes ? cfg.database.autoPauseMinutes * 60 : undefined);
      assert.equal(p.StorageEncrypted, true);
      assert.equal(p.EnableIAMDatabaseAuthentication, true);
      assert.equal(p.DeletionProtection, cfg.database.deletionProtection);
      assert.equal(p.BackupRetentionPeriod, cfg.database.backupRetentionDays);
      assert.deepEqual(p.EnableCloudwatchLogsExports, ['postgresql']);
      assert.equal(p.PerformanceInsightsEnabled, true);
      assert.equal(cluster.DeletionPolicy, cfg.database.snapshotOnDelete ? 'Snapshot' : 'Delete');
      template.hasResourceProperties('AWS::RDS::DBClusterParameterGroup', { Parameters: Match.objectLike({ 'rds.force_ssl': '1' }) });
    });

    it('has one serverless writer (promotion tier 0) and one reader (tier 1)', () => {
      const instances = resources('AWS::RDS::DBInstance').map((r) => r.Properties);
      assert.equal(instances.length, 2);
      assert.ok(instances.every((i) => i.DBInstanceClass === 'db.serverless' && i.PubliclyAccessible === false));
      assert.deepEqual(instances.map((i) => i.PromotionTier ?? 0).sort(), [0, 1]);
    });

    it(cfg.proxy.enabled ? 'fronts the writer with an RDS Proxy requiring TLS and IAM, plus a read-only endpoint' : 'has no RDS Proxy (scale-to-zero environment)', () => {
      if (!cfg.proxy.enabled) {
        template.resourceCountIs('AWS::RDS::DBProxy', 0);
        return;
      }
      template.hasResourceProperties('AWS::RDS::DBProxy', {
        RequireTLS: true,
        EngineFamily: 'POSTGRESQL',
        Auth: Match.arrayWith([Match.objectLike({ IAMAuth: 'REQUIRED' })]),
      });
      template.hasResourceProperties('AWS::RDS::DBProxyTargetGroup', {
        ConnectionPoolConfigurationInfo: Match.objectLike({ MaxConnectionsPercent: cfg.proxy.maxConnectionsPercent }),
      });
      template.hasResourceProperties('AWS::RDS::DBProxyEndpoint', { TargetRole: 'READ_ONLY' });
    });

    it('rotates the admin secret and every role secret on the configured schedule', () => {
      const schedules = resources('AWS::SecretsManager::RotationSchedule');
      assert.equal(schedules.length, 1 + Object.keys(DATABASE_USERS).length);
      const days = schedules.map((s) => s.Properties.RotationRules.ScheduleExpression).sort();
      assert.equal(days.filter((d) => d === `rate(${cfg.database.adminRotationDays} days)`).length >= 1, true);
      assert.ok(schedules.every((s) => s.Properties.HostedRotationLambda?.RotationType === 'PostgreSQLSingleUser'));
      const names = resources('AWS::SecretsManager::Secret').map((s) => s.Properties.Name);
      for (const user of Object.values(DATABASE_USERS)) assert.ok(names.includes(`thaw-${env}/db/${user}`), user);
      assert.ok(names.includes(`thaw-${env}/snowflake/key-pair`));
    });

    it('builds the seven Rust Lambdas with the configured size, JSON logs, X-Ray, VPC, DLQ and encryption', () => {
      const fns = resources('AWS::Lambda::Function').filter((f) => String(f.Properties.FunctionName ?? '').startsWith(`thaw-${env}-`));
      assert.deepEqual(fns.map((f) => f.Properties.FunctionName).sort(), FUNCTION_NAMES.map((n) => `thaw-${env}-${n}`).sort());
      for (const name of FUNCTION_NAMES) {
        const s = functionSettings(cfg, name);
        const fn = fns.find((f) => f.Properties.FunctionName === `thaw-${env}-${name}`)!.Properties;
        assert.equal(fn.Runtime, 'provided.al2023', name);
        assert.equal(fn.Handler, 'bootstrap', name);
        assert.deepEqual(fn.Architectures, ['x86_64'], name);
        assert.equal(fn.MemorySize, s.memoryMb, name);
        assert.equal(fn.Timeout, s.timeoutSeconds, name);
        assert.equal(fn.ReservedConcurrentExecutions, s.reservedConcurrency, name);
        assert.deepEqual(fn.TracingConfig, { Mode: 'Active' }, name);
        assert.equal(fn.LoggingConfig.LogFormat, 'JSON', name);
        assert.ok(fn.DeadLetterConfig?.TargetArn, name);
        assert.ok(fn.KmsKeyArn, name);
        assert.equal(fn.VpcConfig.SubnetIds.length, cfg.network.privateSubnetIds.length, name);
        assert.equal(fn.Environment.Variables.THAW_ENV, env, name);
      }
    });

    it('connects through the proxy with IAM where there is one, and with the role secret straight to Aurora otherwise', () => {
      const vars = (name: string) => (resources('AWS::Lambda::Function')
        .find((f) => f.Properties.FunctionName === `thaw-${env}-${name}`)!.Properties.Environment.Variables as Record<string, unknown>);
      assert.equal(vars('plan').THAW_PG_AUTH, cfg.proxy.enabled ? 'iam' : 'secret');
      assert.equal(vars('copy-chunk').THAW_PG_AUTH, cfg.proxy.enabled && !cfg.proxy.bulkLoadBypassesProxy ? 'iam' : 'secret');
      assert.equal(vars('schema-migrate').THAW_PG_AUTH, 'secret');
      assert.equal(vars('conflict-create').THAW_PG_USER, DATABASE_USERS.conflictWriter);
      assert.equal(vars('plan').THAW_PG_SSLMODE, 'verify-full');
    });

    it('runs schema-migrate from a custom resource that changes with the schema', () => {
      template.hasResourceProperties('Custom::ThawSchemaMigration', { SchemaHash: Match.stringLikeRegexp('^[0-9a-f]{64}$') });
    });

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

    it('alarms on every INFRA.md signal, each notifying the topic and linking its runbook', () => {
      const alarms = resources('AWS::CloudWatch::Alarm').map((a) => a.Properties);
      assert.equal(alarms.length, 2 + 3 + 3 * FUNCTION_NAMES.length + 5 + 2);
      const runbooksUsed = new Set<string>();
      for (const a of alarms) {
        const link = /Runbook: (\S+)\/([a-z-]+)\.md$/.exec(a.AlarmDescription);
        assert.ok(link, `${a.AlarmName} has no runbook link`);
        assert.equal(`${link[1]}/`, cfg.alarms.runbookBaseUrl);
        runbooksUsed.add(link[2]);
        assert.equal(a.AlarmActions.length, 1, a.AlarmName);
      }
      assert.deepEqual([...runbooksUsed].sort(), [...ALARM_RUNBOOKS].sort());
      const byName = (n: string) => alarms.find((a) => a.AlarmName === `thaw-${env}-${n}`)!;
      // Nightly heartbeat: ALARM only after freshnessHours consecutive hours without a datapoint.
      const freshness = byName('data-freshness');
      assert.deepEqual(
        [freshness.MetricName, freshness.Namespace, freshness.Statistic, freshness.Period, freshness.ComparisonOperator, freshness.Threshold],
        ['HoursSinceLastVerifiedSync', 'Thaw', 'SampleCount', 3600, 'LessThanThreshold', 1]);
      assert.deepEqual(freshness.Dimensions, [{ Name: 'Environment', Value: env }]);
      assert.equal(freshness.EvaluationPeriods, cfg.alarms.freshnessHours);
      assert.equal(freshness.DatapointsToAlarm, cfg.alarms.freshnessHours);
      assert.ok(freshness.Period * freshness.EvaluationPeriods <= 7 * 86400, 'CloudWatch evaluates at most 7 days');
      assert.equal(freshness.TreatMissingData, 'breaching');
      assert.equal(byName('conflict-create-not-run').EvaluationPeriods, cfg.alarms.conflictCreateMaxGapHours);
      assert.equal(byName('conflict-create-not-run').Period, 3600);
      assert.equal(byName('aurora-cpu').Threshold, cfg.alarms.auroraCpuPercent);
      assert.equal(byName('aurora-replica-lag').Threshold, cfg.alarms.replicaLagMilliseconds);
      assert.equal(byName('copy-chunk-duration-near-timeout').Threshold,
        Math.round(functionSettings(cfg, 'copy-chunk').timeoutSeconds * 1000 * cfg.alarms.durationFractionOfTimeout));
      assert.equal(byName('scheduler-dlq-not-empty').Threshold, 0);
    });

    it('keeps manifests in an encrypted, TLS-only, access-logged bucket that expires them', () => {
      const buckets = resources('AWS::S3::Bucket').map((b) => b.Properties);
      assert.equal(buckets.length, 2);
      const data = buckets.find((b) => b.LoggingConfiguration)!;
      assert.equal(data.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm, 'aws:kms');
      assert.deepEqual(data.PublicAccessBlockConfiguration, { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
      const expiries = data.LifecycleConfiguration.Rules.filter((r: any) => r.Prefix).map((r: any) => [r.Prefix, r.ExpirationInDays]);
      assert.deepEqual(expiries, [['manifests/', cfg.storage.manifestExpiryDays], ['results/', cfg.storage.manifestExpiryDays]]);
      const policies = resources('AWS::S3::BucketPolicy');
      assert.equal(policies.length, 2);
      for (const p of policies) {
        assert.ok(p.Properties.PolicyDocument.Statement.some((s: any) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false'));
      }
    });

    it('scopes IAM to named resources: no admin actions, invoke only the workflow functions', () => {
      for (const policy of resources('AWS::IAM::Policy')) {
        for (const st of policy.Properties.PolicyDocument.Statement) {
          const actions = [st.Action].flat();
          assert.ok(!actions.includes('*') && !actions.some((a: string) => /^[a-z0-9-]+:\*$/.test(a)), `service-wide action in ${JSON.stringify(st)}`);
          if ([st.Resource].flat().includes('*')) {
            assert.ok(actions.every((a: string) => /^(ec2:(Create|Describe|Delete|Assign|Unassign)\w*|xray:\w+|logs:(CreateLogDelivery|GetLogDelivery|UpdateLogDelivery|DeleteLogDelivery|ListLogDeliveries|PutResourcePolicy|DescribeResourcePolicies|DescribeLogGroups))$/.test(a)),
              `only actions without resource-level permissions may use "*": ${actions}`);
          }
        }
      }
      const syncPolicy = resources('AWS::IAM::Policy').find((p) => JSON.stringify(p.Properties.Roles).includes('SyncRole'))!;
      const invoke = syncPolicy.Properties.PolicyDocument.Statement.filter((s: any) => [s.Action].flat().includes('lambda:InvokeFunction'));
      const targets = invoke.flatMap((s: any) => [s.Resource].flat()).map((r: any) => JSON.stringify(r));
      assert.ok(targets.length > 0 && targets.every((t: string) => /(Plan|CopyChunk|Merge|Reconcile|ConflictCreate|FailRun)Function/.test(t)), targets.join(' '));
    });
  });
}
