/**
 * The functions construct (`lib/constructs/functions.ts`) and the schema
 * migration (`lib/constructs/schema-migration.ts`) in every environment: the
 * seven Rust Lambdas, how they reach PostgreSQL, and the migration custom
 * resource.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { ENVIRONMENTS, FUNCTION_NAMES, functionSettings, loadConfig } from '../lib/config.ts';
import { DATABASE_USERS } from '../lib/constructs/secrets.ts';
import { resourcesOf, synth } from './support.ts';

for (const env of ENVIRONMENTS) {
  const cfg = loadConfig(env);
  describe(`${env} environment: functions`, () => {
    const { template } = synth(env);
    const resources = (type: string) => resourcesOf(template, type);

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
  });
}
