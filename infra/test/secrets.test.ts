/**
 * The secrets construct (`lib/constructs/secrets.ts`) in every environment:
 * admin and role secrets with hosted rotation, and the Snowflake key pair.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ENVIRONMENTS, loadConfig } from '../lib/config.ts';
import { DATABASE_USERS } from '../lib/constructs/secrets.ts';
import { resourcesOf, synth } from './support.ts';

for (const env of ENVIRONMENTS) {
  const cfg = loadConfig(env);
  describe(`${env} environment: secrets`, () => {
    const { template } = synth(env);
    const resources = (type: string) => resourcesOf(template, type);

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
  });
}
