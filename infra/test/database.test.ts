/**
 * The database construct (`lib/constructs/database.ts`) in every environment:
 * Aurora PostgreSQL 16 Serverless v2 writer + reader in the imported VPC, and
 * the RDS Proxy where the config enables it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { ENVIRONMENTS, loadConfig } from '../lib/config.ts';
import { resourcesOf, synth } from './support.ts';

for (const env of ENVIRONMENTS) {
  const cfg = loadConfig(env);
  describe(`${env} environment: database`, () => {
    const { template } = synth(env);
    const resources = (type: string) => resourcesOf(template, type);

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
  });
}
