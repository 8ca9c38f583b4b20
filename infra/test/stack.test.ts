/**
 * What the stack itself owns or guarantees across its constructs: IAM scoped
 * to named resources in every construct, and logical ids that do not depend
 * on how the code is grouped into constructs (a changed logical id replaces
 * the resource; for the cluster, a new empty database). The per-construct
 * assertions are in database, secrets, functions, workflow, monitoring and
 * storage `.test.ts`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CfnElement, CfnResource } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { buildStack } from '../lib/app.ts';
import { ENVIRONMENTS, loadConfig } from '../lib/config.ts';
import { ThawConcern } from '../lib/constructs/common.ts';
import { REPO_ROOT, resourcesOf, synth, testApp } from './support.ts';

/**
 * Logical ids of the stateful (or replace-sensitive) resources, as they were
 * before the stack was split into constructs. `<env>` is the stack name
 * without the dash (`Thawqa`): the admin secret's id derives from its path.
 */
const PINNED_LOGICAL_IDS: Record<string, string[]> = {
  'AWS::RDS::DBCluster': ['ClusterEB0386A7'],
  'AWS::RDS::DBInstance': ['ClusterReaderA09A3718', 'ClusterWriterA91BB273'],
  'AWS::KMS::Key': ['DataKey17AFBB84'],
  'AWS::S3::Bucket': ['AccessLogsBucket83982689', 'DataBucketE3889A50', 'StagingBucket9644C37C'],
  'AWS::SecretsManager::Secret': ['ApplicationSecret25AD4F13', 'ConflictWriterSecret2A6450E2', 'LoaderSecret2AAE5480',
    'MigratorSecretA3345C6F', 'SnowflakeKeyPairDC7BBBD7', '<env>ClusterSecret'],
  'AWS::SQS::Queue': ['FailedExecutionsDlqC864FEBE', 'LambdaAsyncDlq1763F7D0', 'SchedulerDlqBE0A9ADA'],
  'AWS::SNS::Topic': ['AlarmTopicD01E77F9'],
  'AWS::Logs::LogGroup': ['ConflictCreateLogsE6369884', 'CopyChunkLogsB7D22C09', 'FailRunLogsF9D84230', 'MergeLogs48E50530',
    'PlanLogs46AFE57B', 'PostgresLogs6ACF17F4', 'ReconcileLogs36C88C19', 'SchemaMigrateLogsE6AFABD8',
    'SchemaMigrateProviderLogsFDD61013', 'SyncLogs82B3FA1D'],
  'AWS::StepFunctions::StateMachine': ['SyncEC3EAE86'],
  'AWS::Lambda::LayerVersion': ['RdsCaBundleLayerC78FBD93'],
  'AWS::EC2::SecurityGroup': ['DatabaseSecurityGroup7319C0F6', 'LambdaSecurityGroup0BD9FC99', 'MigratorSecurityGroup5C00B103', 'RotationSecurityGroup8276CF62'],
};
/** The admin secret's id ends in the hash of its password criteria; the middle is the path hash per stack name. */
const ADMIN_SECRET_IDS: Record<string, string> = {
  dev: 'ThawdevClusterSecret9D3FF0A93fdaad7efa858a3daf9490cf0a702aeb',
  qa: 'ThawqaClusterSecret91F8F4DE3fdaad7efa858a3daf9490cf0a702aeb',
  prod: 'ThawprodClusterSecretFC4437703fdaad7efa858a3daf9490cf0a702aeb',
};

for (const env of ENVIRONMENTS) {
  const cfg = loadConfig(env);
  describe(`${env} environment: stack`, () => {
    const { template } = synth(env);
    const resources = (type: string) => resourcesOf(template, type);

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

    it('keeps the logical ids the resources had before the split into constructs (no replacement on deploy)', () => {
      const pinned: Record<string, string[]> = {
        ...PINNED_LOGICAL_IDS,
        'AWS::RDS::DBProxy': cfg.proxy.enabled ? ['ProxyCB0DFB71'] : [],
      };
      if (cfg.proxy.enabled) pinned['AWS::EC2::SecurityGroup'] = [...pinned['AWS::EC2::SecurityGroup'], 'ProxySecurityGroup6DC814C1'].sort();
      for (const [type, ids] of Object.entries(pinned)) {
        const expected = ids.map((id) => (id === '<env>ClusterSecret' ? ADMIN_SECRET_IDS[env] : id)).sort();
        assert.deepEqual(Object.keys(template.findResources(type)).sort(), expected, type);
      }
    });
  });
}

describe('logical ids of the concern constructs', () => {
  const stack = buildStack(testApp(), loadConfig('dev'), { repoRoot: REPO_ROOT, architectureOverride: 'x86_64' });
  class Probe extends ThawConcern {}
  const probe = new Probe(stack, 'Probe');
  const logicalId = (element: CfnElement) => stack.getLogicalId(element);

  it('leaves a concern construct out of the path: a resource gets the id it would have at the stack root', () => {
    const inConcern = new CfnResource(probe, 'Extra', { type: 'AWS::SQS::Queue' });
    const nested = new CfnResource(new Construct(probe, 'Group'), 'Resource', { type: 'AWS::SQS::Queue' });
    assert.equal(logicalId(inConcern), 'Extra');
    assert.equal(logicalId(stack.concerns.storage.dataBucket.node.defaultChild as CfnElement), 'DataBucketE3889A50');
    assert.match(logicalId(nested), /^Group[0-9A-F]{8}$/);
  });

  it('refuses two resources that would share a logical id across concerns', () => {
    const key = stack.node.findChild('DataKey').node.defaultChild as CfnElement;
    const twin = new CfnResource(new Construct(probe, 'DataKey'), 'Resource', { type: 'AWS::SQS::Queue' });
    assert.equal(logicalId(key), 'DataKey17AFBB84');
    assert.throws(() => logicalId(twin), /Thaw-dev\/Probe\/DataKey\/Resource and Thaw-dev\/DataKey\/Resource would share the logical id DataKey17AFBB84/);
  });
});
