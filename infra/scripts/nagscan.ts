import { App } from 'aws-cdk-lib';
import cdkNag from 'cdk-nag';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../lib/config.ts';
import { buildStack } from '../lib/app.ts';
const ctx = JSON.parse(readFileSync(new URL('../cdk.json', import.meta.url),'utf8')).context;
for (const env of process.argv.slice(2)) {
  const app = new App({ context: { ...ctx, 'aws:cdk:bundling-stacks': [] } });
  buildStack(app, loadConfig(env), { repoRoot: '/work/main' });
  const r = new cdkNag.AwsSolutionsChecks().validateScope(app);
  for (const v of r.violations) for (const res of v.violatingResources) console.log(env, v.ruleName, res.constructPath);
}
