/**
 * The seven Rust Lambdas (`RustFunction` per crate under `functions/<name>`),
 * each with its own log group, role (logs, VPC network interfaces and the
 * named resources only), the RDS CA bundle layer, the asynchronous-invocation
 * dead-letter queue and, when enabled, the Datadog extension and forwarder.
 *
 * The runtime contract (environment variables, database users) is documented
 * in `infra/README.md`; keep both in step.
 */
import { join } from 'node:path';
import { Duration, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import cargoLambdaCdk from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import { EnvironmentConfig, FUNCTION_NAMES, FunctionName, FunctionSettings } from '../config.ts';
import { acknowledge, arnRef } from '../nag.ts';
import { RDS_CA_BUNDLE_PATH, RdsCaBundleLayer } from '../rds-ca.ts';
import { Foundation, ThawConcern, deadLetterQueue, encryptedLogGroup, pascal } from './common.ts';
import { ThawDatabase } from './database.ts';
import { DATABASE_USERS, DatabaseUserKey, ThawSecrets } from './secrets.ts';

// CommonJS packages: named imports are not statically visible to ESM.
const { RustFunction } = cargoLambdaCdk;

/** CloudWatch namespace of thaw's own metrics (reconcile emits them as EMF). */
export const METRICS_NAMESPACE = 'Thaw';

/** Which database user each function connects as, and what else it touches. */
export const FUNCTION_ACCESS: Record<FunctionName, { user: DatabaseUserKey; snowflake: boolean; writesManifest: boolean; bulk: boolean }> = {
  plan: { user: 'loader', snowflake: true, writesManifest: true, bulk: false },
  // copy-chunk writes the staged path's file manifest (docs/sync.md §13.7).
  'copy-chunk': { user: 'loader', snowflake: true, writesManifest: true, bulk: true },
  merge: { user: 'loader', snowflake: false, writesManifest: false, bulk: false },
  reconcile: { user: 'loader', snowflake: true, writesManifest: false, bulk: false },
  'conflict-create': { user: 'conflictWriter', snowflake: false, writesManifest: false, bulk: false },
  'fail-run': { user: 'loader', snowflake: false, writesManifest: false, bulk: false },
  'schema-migrate': { user: 'migrator', snowflake: false, writesManifest: false, bulk: true },
};

/** Inputs of {@link ThawFunctions}. */
export interface ThawFunctionsProps {
  foundation: Foundation;
  /** Lambda architecture (already resolved against the installed toolchain). */
  architecture: lambda.Architecture;
  /** Repository root (holds Cargo.toml and functions/). */
  repoRoot: string;
  /** Memory, timeout and reserved concurrency per function (config defaults with overrides applied). */
  settings: Record<FunctionName, FunctionSettings>;
  /** Cluster endpoints, and the proxy when there is one. */
  database: ThawDatabase;
  /** With a proxy, copy-chunk (bulk COPY) still connects straight to the writer. */
  bulkLoadBypassesProxy: boolean;
  secrets: ThawSecrets;
  /** Holds `config/thaw.json` (read by every sync step) and `manifests/` (written by plan and, for staged tables, copy-chunk). */
  dataBucket: s3.IBucket;
  securityGroups: {
    /** plan, copy-chunk, merge, reconcile, conflict-create, fail-run. */
    sync: ec2.ISecurityGroup;
    /** schema-migrate. */
    migrator: ec2.ISecurityGroup;
  };
  datadog: EnvironmentConfig['datadog'];
}

/** The Lambdas; see the module comment. */
export class ThawFunctions extends ThawConcern {
  readonly functions: Record<FunctionName, lambda.Function>;
  /** Layer with the RDS CA bundle at `THAW_PG_CA_FILE`, attached to every function. */
  readonly rdsCaBundle: RdsCaBundleLayer;
  /** Dead-letter queue of every function's asynchronous invocations. */
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: ThawFunctionsProps) {
    super(scope, id);
    const { foundation: base, database, secrets, dataBucket: bucket } = props;
    const { environment: env, prefix, key } = base;
    const stack = Stack.of(this);
    const cluster = database.cluster;
    const proxy = database.proxy;
    this.deadLetterQueue = deadLetterQueue(this, 'LambdaAsyncDlq', 'lambda-async-dlq', base);

    const configUri = bucket.s3UrlForObject('config/thaw.json');
    // verify-full against the RDS CAs (Aurora) and Amazon roots (RDS Proxy), from a layer.
    this.rdsCaBundle = new RdsCaBundleLayer(this, 'RdsCaBundle', {
      layerVersionName: `${prefix}-rds-ca`,
      compatibleArchitectures: [props.architecture],
    });
    const functions = {} as Record<FunctionName, lambda.Function>;
    for (const name of FUNCTION_NAMES) {
      const settings = props.settings[name];
      const access = FUNCTION_ACCESS[name];
      const functionName = `${prefix}-${name}`;
      const lg = encryptedLogGroup(this, `${pascal(name)}Logs`, `/aws/lambda/${functionName}`, base);
      const role = new iam.Role(this, `${pascal(name)}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `${functionName}: logs, VPC network interfaces, and the named resources below only`,
      });
      role.addToPolicy(new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [lg.logGroupArn, `${lg.logGroupArn}:*`],
      }));
      role.addToPolicy(new iam.PolicyStatement({
        actions: ['ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses'],
        resources: ['*'],
      }));

      // Where and how this function reaches PostgreSQL.
      const direct = name === 'schema-migrate' || !proxy || (access.bulk && props.bulkLoadBypassesProxy);
      const user = DATABASE_USERS[access.user];
      const environment: Record<string, string> = {
        THAW_ENV: env,
        THAW_FUNCTION: name,
        THAW_CONFIG_URI: configUri,
        THAW_MANIFEST_BUCKET: bucket.bucketName,
        THAW_PG_HOST: direct ? cluster.clusterEndpoint.hostname : proxy!.endpoint,
        THAW_PG_READER_HOST: direct ? cluster.clusterReadEndpoint.hostname : database.proxyReadOnlyEndpoint!,
        THAW_PG_PORT: '5432',
        THAW_PG_DATABASE: database.databaseName,
        THAW_PG_USER: user,
        THAW_PG_AUTH: direct ? 'secret' : 'iam',
        THAW_PG_SSLMODE: 'verify-full',
        THAW_PG_CA_FILE: RDS_CA_BUNDLE_PATH,
        THAW_METRICS_NAMESPACE: METRICS_NAMESPACE,
        RUST_LOG: 'info',
      };
      const fn = new RustFunction(this, `${pascal(name)}Function`, {
        functionName,
        description: `thaw ${env}: ${name} step (Rust, functions/${name})`,
        manifestPath: join(props.repoRoot, 'Cargo.toml'),
        binaryName: name,
        architecture: props.architecture,
        bundling: { architecture: props.architecture },
        memorySize: settings.memoryMb,
        timeout: Duration.seconds(settings.timeoutSeconds),
        reservedConcurrentExecutions: settings.reservedConcurrency,
        role,
        vpc: base.vpc,
        vpcSubnets: base.subnets,
        securityGroups: [name === 'schema-migrate' ? props.securityGroups.migrator : props.securityGroups.sync],
        logGroup: lg,
        loggingFormat: lambda.LoggingFormat.JSON,
        applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
        systemLogLevelV2: lambda.SystemLogLevel.WARN,
        tracing: lambda.Tracing.ACTIVE,
        environment,
        environmentEncryption: key,
        layers: [this.rdsCaBundle.layer],
        deadLetterQueue: this.deadLetterQueue,
      });
      if (direct) {
        secrets.users[access.user].grantRead(fn);
      } else {
        proxy!.grantConnect(fn, user);
      }
      if (name !== 'schema-migrate') {
        role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [bucket.arnForObjects('config/thaw.json')] }));
      }
      if (access.snowflake) secrets.snowflake.grantRead(fn);
      if (access.writesManifest) {
        role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [bucket.arnForObjects('manifests/*')] }));
      }
      role.addToPolicy(new iam.PolicyStatement({
        actions: access.writesManifest ? ['kms:Decrypt', 'kms:GenerateDataKey'] : ['kms:Decrypt'], resources: [key.keyArn],
      }));
      if (name === 'schema-migrate') {
        secrets.admin.grantRead(fn);
        for (const secret of Object.values(secrets.users)) secret.grantRead(fn);
        fn.addEnvironment('THAW_PG_ADMIN_SECRET_ARN', secrets.admin.secretArn);
        fn.addEnvironment('THAW_PG_USER_SECRET_ARNS', stack.toJsonString(
          Object.fromEntries(Object.entries(DATABASE_USERS).map(([k, u]) => [u, secrets.users[k as DatabaseUserKey].secretArn]))));
      } else {
        fn.addEnvironment('THAW_PG_SECRET_ARN', direct ? secrets.users[access.user].secretArn : '');
      }
      if (access.snowflake) fn.addEnvironment('THAW_SNOWFLAKE_SECRET_ARN', secrets.snowflake.secretArn);
      const datadog = props.datadog;
      if (datadog.enabled) {
        const layerName = props.architecture === lambda.Architecture.ARM_64 ? 'Datadog-Extension-ARM' : 'Datadog-Extension';
        fn.addLayers(lambda.LayerVersion.fromLayerVersionArn(this, `${pascal(name)}DatadogExtension`,
          `arn:${stack.partition}:lambda:${stack.region}:464622532012:layer:${layerName}:${datadog.extensionLayerVersion}`));
        fn.addEnvironment('DD_SITE', datadog.site);
        fn.addEnvironment('DD_ENV', env);
        fn.addEnvironment('DD_SERVICE', 'thaw');
        fn.addEnvironment('DD_API_KEY_SECRET_ARN', datadog.apiKeySecretArn!);
        secretsmanager.Secret.fromSecretCompleteArn(this, `${pascal(name)}DatadogKey`, datadog.apiKeySecretArn!).grantRead(fn);
      }
      if (datadog.forwarderArn) {
        new logs.CfnSubscriptionFilter(this, `${pascal(name)}DatadogForwarder`, {
          logGroupName: lg.logGroupName, destinationArn: datadog.forwarderArn, filterPattern: '',
        });
      }
      acknowledge(role, 'AwsSolutions-IAM5',
        'ENI management (ec2:*NetworkInterface, DescribeSubnets) and X-Ray PutTraceSegments/PutTelemetryRecords have no resource-level permissions; log streams are created under this function\'s own log group only; plan (the chunk manifest) and copy-chunk (the staged file manifest) write only under manifests/ of the data bucket (one object each per run).',
        ['Resource::*', `Resource::${arnRef(lg)}:*`, ...(access.writesManifest ? [`Resource::${arnRef(bucket)}/manifests/*`] : [])]);
      functions[name] = fn;
    }
    this.functions = functions;
  }
}
