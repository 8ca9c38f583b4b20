/**
 * cdk-nag AwsSolutions over every environment: zero unacknowledged findings,
 * and every acknowledgement carries a written reason.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Validations } from 'aws-cdk-lib';
import cdkNag from 'cdk-nag';
import { IConstruct } from 'constructs';
import { ENVIRONMENTS } from '../lib/config.ts';
import { synth } from './support.ts';

function acknowledgements(root: IConstruct): { path: string; id: string; reason: string }[] {
  return root.node.findAll().flatMap((c) => c.node.metadata
    .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
    .flatMap((m) => Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({ path: c.node.path, id, reason }))));
}

describe('cdk-nag AwsSolutions', () => {
  for (const env of ENVIRONMENTS) {
    it(`finds nothing unacknowledged in ${env}`, () => {
      const { app } = synth(env);
      const result = new cdkNag.AwsSolutionsChecks().validateScope(app);
      const open = result.violations.flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}`));
      assert.deepEqual(open, []);
    });
    it(`gives a reason for every acknowledgement in ${env}`, () => {
      const acks = acknowledgements(synth(env).app);
      assert.ok(acks.length > 0);
      for (const a of acks) assert.ok(typeof a.reason === 'string' && a.reason.length >= 20, `${a.id} at ${a.path}: ${JSON.stringify(a.reason)}`);
    });
  }
});
