/**
 * The staging construct (`lib/constructs/staging.ts`): the bucket Snowflake
 * unloads Parquet into, the role its storage integration assumes (only when
 * the config names the integration), and copy-chunk's read-only access.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import cdkNag from 'cdk-nag';
import { buildStack } from '../lib/app.ts';
import { ENVIRONMENTS, EnvironmentConfig, loadConfig } from '../lib/config.ts';
import { REPO_ROOT, resourcesOf, synth, testApp } from './support.ts';

const SNOWFLAKE_USER = 'arn:aws:iam::123456789012:user/abc0-s-p2ss1234';
const EXTERNAL_ID = 'THAW_SFCRole=2_abcdefg1234567890=';

/** `env`'s config with the storage integration's IAM user and external id filled in. */
function withIntegration(env: string): EnvironmentConfig {
  const cfg = loadConfig(env);
  return { ...cfg, staging: { ...cfg.staging, snowflakeIamUserArn: SNOWFLAKE_USER, snowflakeExternalId: EXTERNAL_ID } };
}

const statementsOf = (template: Template, roleLogicalIdPrefix: string) => resourcesOf(template, 'AWS::IAM::Policy')
  .filter((p) => JSON.stringify(p.Properties.Roles).includes(roleLogicalIdPrefix))
  .flatMap((p) => p.Properties.PolicyDocument.Statement as any[]);
const stagingArnIn = (value: unknown) => JSON.stringify(value).includes('StagingBucket');

for (const env of ENVIRONMENTS) {
  const cfg = loadConfig(env);
  describe(`${env} environment: staging`, () => {
    const { template } = synth(env);

    it('keeps unloads in a private, TLS-only, access-logged bucket that expires them', () => {
      const buckets = template.findResources('AWS::S3::Bucket');
      const [id, bucket] = Object.entries(buckets).find(([logicalId]) => logicalId.startsWith('StagingBucket'))!;
      const p = bucket.Properties;
      assert.equal(p.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm, 'AES256');
      assert.deepEqual(p.PublicAccessBlockConfiguration, { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
      assert.equal(p.LoggingConfiguration.LogFilePrefix, 'staging-bucket/');
      assert.ok(JSON.stringify(p.LoggingConfiguration.DestinationBucketName).includes('AccessLogsBucket'));
      const unloads = p.LifecycleConfiguration.Rules.find((r: any) => r.Id === 'unloads');
      assert.deepEqual([unloads.Prefix, unloads.ExpirationInDays], [cfg.staging.prefix, cfg.staging.expiryDays]);
      const policy = resourcesOf(template, 'AWS::S3::BucketPolicy').find((bp) => JSON.stringify(bp.Properties.Bucket).includes(id))!;
      assert.ok(policy.Properties.PolicyDocument.Statement.some((s: any) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false'));
      assert.equal(bucket.DeletionPolicy, cfg.database.deletionProtection ? 'Retain' : 'Delete');
    });

    it('creates no Snowflake role while the config does not name the storage integration', () => {
      assert.equal(cfg.staging.snowflakeIamUserArn, null);
      const roles = resourcesOf(template, 'AWS::IAM::Role').filter((r) => r.Properties.RoleName === `thaw-${env}-snowflake-unload`);
      assert.deepEqual(roles, []);
    });

    it('lets copy-chunk read (never write) the unload prefix, and tells it where', () => {
      const statements = statementsOf(template, 'CopyChunkRole').filter((s) => stagingArnIn(s.Resource));
      assert.deepEqual(statements.map((s) => [s.Action].flat()).sort(), [['s3:GetObject'], ['s3:ListBucket']]);
      const list = statements.find((s) => s.Action === 's3:ListBucket');
      assert.deepEqual(list.Condition, { StringLike: { 's3:prefix': [`${cfg.staging.prefix}*`] } });
      const get = statements.find((s) => s.Action === 's3:GetObject');
      assert.ok(JSON.stringify(get.Resource).endsWith(`/${cfg.staging.prefix}*"]]}`), JSON.stringify(get.Resource));
      // No other function touches the staging bucket.
      for (const other of ['PlanRole', 'MergeRole', 'ReconcileRole', 'ConflictCreateRole', 'FailRunRole', 'SchemaMigrateRole']) {
        assert.deepEqual(statementsOf(template, other).filter((s) => stagingArnIn(s.Resource)), [], other);
      }
      const fn = resourcesOf(template, 'AWS::Lambda::Function').find((f) => f.Properties.FunctionName === `thaw-${env}-copy-chunk`)!;
      assert.ok(JSON.stringify(fn.Properties.Environment.Variables.THAW_STAGING_URI).includes('StagingBucket'));
    });
  });

  describe(`${env} environment: staging with the storage integration configured`, () => {
    const stack = buildStack(testApp(), withIntegration(env), { repoRoot: REPO_ROOT, architectureOverride: 'x86_64' });
    const template = Template.fromStack(stack);

    it('creates the role Snowflake assumes: its IAM user, with the external id, under a fixed name', () => {
      const [role] = resourcesOf(template, 'AWS::IAM::Role').filter((r) => r.Properties.RoleName === `thaw-${env}-snowflake-unload`);
      assert.ok(role);
      assert.deepEqual(role.Properties.AssumeRolePolicyDocument.Statement, [{
        Action: 'sts:AssumeRole',
        Effect: 'Allow',
        Principal: { AWS: SNOWFLAKE_USER },
        Condition: { StringEquals: { 'sts:ExternalId': EXTERNAL_ID } },
      }]);
    });

    it('lets that role write, read and delete under the unload prefix only', () => {
      const statements = statementsOf(template, 'SnowflakeUnloadRole');
      const actions = statements.flatMap((s) => [s.Action].flat()).sort();
      assert.deepEqual(actions, ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:GetBucketLocation', 's3:GetObject',
        's3:GetObjectVersion', 's3:ListBucket', 's3:PutObject']);
      for (const s of statements) {
        assert.ok(stagingArnIn(s.Resource), JSON.stringify(s));
        if ([s.Action].flat().includes('s3:PutObject')) assert.ok(JSON.stringify(s.Resource).endsWith(`/${cfg.staging.prefix}*"]]}`));
        if (s.Action === 's3:ListBucket') assert.deepEqual(s.Condition, { StringLike: { 's3:prefix': [`${cfg.staging.prefix}*`] } });
      }
    });

    it('stays cdk-nag clean', () => {
      const open = new cdkNag.AwsSolutionsChecks().validateScope(stack).violations
        .flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}`));
      assert.deepEqual(open, []);
    });
  });
}

describe('staging config validation', () => {
  it('needs the integration user ARN and external id together, in their DESC INTEGRATION forms', async () => {
    const { validateConfig } = await import('../lib/config.ts');
    const base = loadConfig('qa');
    const check = (staging: Partial<EnvironmentConfig['staging']>) => () =>
      validateConfig({ ...base, staging: { ...base.staging, ...staging } }, 'qa', 'qa.json');
    assert.doesNotThrow(check({ snowflakeIamUserArn: SNOWFLAKE_USER, snowflakeExternalId: EXTERNAL_ID }));
    assert.throws(check({ snowflakeIamUserArn: SNOWFLAKE_USER }), /staging\.snowflakeExternalId: set both/);
    assert.throws(check({ snowflakeIamUserArn: 'arn:aws:iam::123:role/x', snowflakeExternalId: EXTERNAL_ID }), /staging\.snowflakeIamUserArn/);
    assert.throws(check({ prefix: 'unload' }), /staging\.prefix: must be a key prefix/);
    assert.throws(check({ expiryDays: 0 }), /staging\.expiryDays: must be 1\.\.3650/);
  });
});
