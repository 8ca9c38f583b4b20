/**
 * The monitoring construct (`lib/constructs/monitoring.ts`, alarms from
 * `lib/alarms.ts`) in every environment: every signal alarms, notifies the
 * topic and links its runbook.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALARM_RUNBOOKS } from '../lib/alarms.ts';
import { ENVIRONMENTS, FUNCTION_NAMES, functionSettings, loadConfig } from '../lib/config.ts';
import { resourcesOf, synth } from './support.ts';

for (const env of ENVIRONMENTS) {
  const cfg = loadConfig(env);
  describe(`${env} environment: monitoring`, () => {
    const { template } = synth(env);
    const resources = (type: string) => resourcesOf(template, type);

    it('alarms on every docs/operations.md §5 signal, each notifying the topic and linking its runbook', () => {
      const alarms = resources('AWS::CloudWatch::Alarm').map((a) => a.Properties);
      assert.equal(alarms.length, 2 + 3 + 3 * FUNCTION_NAMES.length + 5 + 4);
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
      // Reconcile freshness (docs/reconcile.md §5.4): the newest ReconcileFreshnessHours above the configured hours.
      const coverage = byName('reconcile-freshness');
      assert.deepEqual(
        [coverage.MetricName, coverage.Namespace, coverage.Statistic, coverage.Period, coverage.ComparisonOperator, coverage.Threshold, coverage.EvaluationPeriods],
        ['ReconcileFreshnessHours', 'Thaw', 'Maximum', 3600, 'GreaterThanThreshold', cfg.alarms.reconcileFreshnessHours, 1]);
      assert.equal(cfg.alarms.reconcileFreshnessHours, 8 * 24, 'default: the 7-day rolling period plus a day');
      assert.deepEqual(coverage.Dimensions, [{ Name: 'Environment', Value: env }]);
      assert.equal(coverage.TreatMissingData, 'ignore', 'one datapoint a night: the state follows the newest reconcile');
      assert.match(coverage.AlarmDescription, new RegExp(`more than ${cfg.alarms.reconcileFreshnessHours} h`));
      // Dual-read (docs/reconcile.md §10): the newest DualReadProblems = 1 (a difference or a failed comparison).
      const dualRead = byName('dual-read-problem');
      assert.deepEqual(
        [dualRead.MetricName, dualRead.Namespace, dualRead.Statistic, dualRead.Period, dualRead.ComparisonOperator, dualRead.Threshold, dualRead.TreatMissingData],
        ['DualReadProblems', 'Thaw', 'Maximum', 3600, 'GreaterThanOrEqualToThreshold', 1, 'ignore']);
      assert.deepEqual(dualRead.Dimensions, [{ Name: 'Environment', Value: env }]);
      assert.equal(byName('conflict-create-not-run').EvaluationPeriods, cfg.alarms.conflictCreateMaxGapHours);
      assert.equal(byName('conflict-create-not-run').Period, 3600);
      assert.equal(byName('aurora-cpu').Threshold, cfg.alarms.auroraCpuPercent);
      assert.equal(byName('aurora-replica-lag').Threshold, cfg.alarms.replicaLagMilliseconds);
      assert.equal(byName('copy-chunk-duration-near-timeout').Threshold,
        Math.round(functionSettings(cfg, 'copy-chunk').timeoutSeconds * 1000 * cfg.alarms.durationFractionOfTimeout));
      assert.equal(byName('scheduler-dlq-not-empty').Threshold, 0);
    });
  });
}
