/**
 * CDK app entry: `cdk synth -c env=<dev|qa|prod>` builds one environment's
 * stack (`Thaw-<env>`) from `infra/config/<env>.json`, checked by cdk-nag's
 * AwsSolutions rules. `make synth ENV=qa` (infra/infra.mk) is the way in.
 *
 * Context keys: `env` (required), `thaw:deployId` (set by make synth so the
 * schema migration runs on every deploy), `thaw:architecture` (override of
 * functions.architecture). Environment: THAW_SKIP_BUNDLING=1 skips the
 * Rust build (cfn-lint/checkov only need the template).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Validations } from 'aws-cdk-lib';
import cdkNag from 'cdk-nag';
import { loadConfig } from '../lib/config.ts';
import { buildStack } from '../lib/app.ts';

// THAW_SKIP_BUNDLING=1 synthesizes without building the Lambdas (lint of the
// template only; the CLI does not accept aws:* context keys on the command line).
const app = new App(process.env.THAW_SKIP_BUNDLING === '1' ? { postCliContext: { 'aws:cdk:bundling-stacks': [] } } : {});
const env = app.node.tryGetContext('env');
if (!env) {
  throw new Error('no environment given: run `make synth ENV=qa` (or cdk synth -c env=qa)');
}
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
buildStack(app, loadConfig(String(env)), {
  repoRoot,
  deployId: app.node.tryGetContext('thaw:deployId'),
  architectureOverride: app.node.tryGetContext('thaw:architecture'),
});
Validations.of(app).addPlugins(new cdkNag.AwsSolutionsChecks(app, { verbose: true }));
app.synth();
