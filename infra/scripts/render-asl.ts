/**
 * Write each environment's sync definition as CloudFormation will substitute
 * it (`<out>/sync.<env>.asl.json`), read from `<out>/cdk.out.<env>`, for
 * asl-validator. Usage: node --import tsx scripts/render-asl.ts <out> <env>...
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { renderedDefinition } from '../test/support.ts';

const [out, ...envs] = process.argv.slice(2);
for (const env of envs) {
  const template = Template.fromJSON(JSON.parse(readFileSync(join(out, `cdk.out.${env}`, `Thaw-${env}.template.json`), 'utf8')));
  writeFileSync(join(out, `sync.${env}.asl.json`), `${JSON.stringify(renderedDefinition(template), null, 2)}\n`);
}
