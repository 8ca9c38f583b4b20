/** The storage construct (`lib/constructs/storage.ts`) in every environment: data and access-log buckets (the staging bucket: `staging.test.ts`). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ENVIRONMENTS, loadConfig } from '../lib/config.ts';
import { resourcesOf, synth } from './support.ts';

for (const env of ENVIRONMENTS) {
  const cfg = loadConfig(env);
  describe(`${env} environment: storage`, () => {
    const { template } = synth(env);
    const resources = (type: string) => resourcesOf(template, type);

    it('keeps manifests in an encrypted, TLS-only, access-logged bucket that expires them', () => {
      // The staging bucket (lib/constructs/staging.ts, test/staging.test.ts) is not this construct's.
      const own = Object.entries(template.findResources('AWS::S3::Bucket')).filter(([id]) => !id.startsWith('StagingBucket'));
      const buckets = own.map(([, b]) => b.Properties);
      assert.equal(buckets.length, 2);
      const data = buckets.find((b) => b.LoggingConfiguration)!;
      assert.equal(data.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm, 'aws:kms');
      assert.deepEqual(data.PublicAccessBlockConfiguration, { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
      const expiries = data.LifecycleConfiguration.Rules.filter((r: any) => r.Prefix).map((r: any) => [r.Prefix, r.ExpirationInDays]);
      assert.deepEqual(expiries, [['manifests/', cfg.storage.manifestExpiryDays], ['results/', cfg.storage.manifestExpiryDays]]);
      const policies = resources('AWS::S3::BucketPolicy').filter((p) => !JSON.stringify(p.Properties.Bucket).includes('StagingBucket'));
      assert.equal(policies.length, 2);
      for (const p of policies) {
        assert.ok(p.Properties.PolicyDocument.Statement.some((s: any) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false'));
      }
    });
  });
}
