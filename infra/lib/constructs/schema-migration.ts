/**
 * Schema migration on every deploy: a CloudFormation custom resource whose
 * `onEvent` handler is the schema-migrate Lambda (through the CDK
 * custom-resource Provider framework). Its properties change with `schema/`
 * (a hash) and with every `make synth` (the deploy id), so CloudFormation
 * sends an Update each deploy; the workflow waits for it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CustomResource } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { acknowledge, arnRef } from '../nag.ts';
import { Foundation, ThawConcern, encryptedLogGroup, stackRoot } from './common.ts';

/** SHA-256 over `schema/*.sql` (names and contents), or of nothing when absent. */
export function schemaHash(repoRoot: string): string {
  const dir = join(repoRoot, 'schema');
  const hash = createHash('sha256');
  if (existsSync(dir)) {
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.sql')).sort()) {
      hash.update(file).update('\0').update(readFileSync(join(dir, file))).update('\0');
    }
  }
  return hash.digest('hex');
}

/** Inputs of {@link ThawSchemaMigration}. */
export interface ThawSchemaMigrationProps {
  foundation: Foundation;
  /** The schema-migrate function. */
  handler: lambda.IFunction;
  /** Migrated only once it exists. */
  cluster: rds.IDatabaseCluster;
  databaseName: string;
  /** Repository root (holds schema/). */
  repoRoot: string;
  /** Changes on every `make synth`; tests leave it unset for a deterministic template. */
  deployId?: string;
}

/** The provider and the custom resource; depend on {@link resource} to run after the migration. */
export class ThawSchemaMigration extends ThawConcern {
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: ThawSchemaMigrationProps) {
    super(scope, id);
    const base = props.foundation;
    // At the stack root: the framework function's description embeds the provider's construct path.
    const migrationProvider = new cr.Provider(stackRoot(this), 'SchemaMigrateProvider', {
      onEventHandler: props.handler,
      logGroup: encryptedLogGroup(this, 'SchemaMigrateProviderLogs', `/aws/lambda/${base.prefix}-schema-migrate-provider`, base),
      providerFunctionEnvEncryption: base.key,
    });
    acknowledge(migrationProvider, 'AwsSolutions-IAM4', 'The CDK custom-resource framework function uses AWSLambdaBasicExecutionRole for its own logs; it handles no data.',
      ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole']);
    acknowledge(migrationProvider, 'AwsSolutions-IAM5', 'The framework may invoke only the schema-migrate function and its versions (<arn>:*).',
      [`Resource::${arnRef(props.handler)}:*`]);
    acknowledge(migrationProvider, 'AwsSolutions-L1', 'The custom-resource framework runtime is chosen and kept current by aws-cdk-lib; upgrading aws-cdk-lib upgrades it.');
    this.resource = new CustomResource(this, 'SchemaMigration', {
      serviceToken: migrationProvider.serviceToken,
      resourceType: 'Custom::ThawSchemaMigration',
      properties: { SchemaHash: schemaHash(props.repoRoot), DeployId: props.deployId ?? 'unset', Database: props.databaseName },
    });
    this.resource.node.addDependency(props.cluster);
  }
}
