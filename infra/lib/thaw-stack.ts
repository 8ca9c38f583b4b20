/**
 * The whole AWS estate of one thaw environment (dev, qa or prod).
 *
 * Network (imported) → security groups → KMS key → Aurora PostgreSQL
 * Serverless v2 (writer + reader) with secrets and rotation → optional RDS
 * Proxy → the RDS CA bundle layer → the seven Rust Lambdas → schema migration on every deploy → the
 * sync state machine from `statemachines/sync.asl.json` → nightly schedule →
 * failed-execution rule → alarms (see `alarms.ts`).
 *
 * The Lambdas' runtime contract (environment variables, database users) is
 * documented in `infra/README.md`; keep both in step.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  CustomResource, Duration, RemovalPolicy, Stack, StackProps, TimeZone,
} from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as snsSubscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as cr from 'aws-cdk-lib/custom-resources';
import cargoLambdaCdk from 'cargo-lambda-cdk';
import { Construct } from 'constructs';

// CommonJS packages: named imports are not statically visible to ESM.
const { RustFunction } = cargoLambdaCdk;
import { acknowledge, arnRef } from './nag.ts';
import { formatNumber, readSyncTemplate, unquoteNumericPlaceholders } from './asl.ts';
import { ThawAlarms } from './alarms.ts';
import { RDS_CA_BUNDLE_PATH, RdsCaBundleLayer } from './rds-ca.ts';
import { EnvironmentConfig, FUNCTION_NAMES, FunctionName, functionSettings } from './config.ts';

/** PostgreSQL login roles the estate keeps secrets for; `schema/` creates them. */
export const DATABASE_USERS = {
  /** DDL: schema-migrate only, straight to the writer. */
  migrator: 'thaw_migrator',
  /** Sync steps: plan, copy-chunk, merge, reconcile, fail-run. */
  loader: 'thaw_loader',
  /** conflict-create: writes the conflict schema's detection columns. */
  conflictWriter: 'thaw_conflict_writer',
  /** The web application: reads everything, writes only the conflict schema. */
  application: 'thaw_app',
} as const;
type DatabaseUserKey = keyof typeof DATABASE_USERS;

/** Which database user each function connects as, and what else it touches. */
const FUNCTION_ACCESS: Record<FunctionName, { user: DatabaseUserKey; snowflake: boolean; writesManifest: boolean; bulk: boolean }> = {
  plan: { user: 'loader', snowflake: true, writesManifest: true, bulk: false },
  'copy-chunk': { user: 'loader', snowflake: true, writesManifest: false, bulk: true },
  merge: { user: 'loader', snowflake: false, writesManifest: false, bulk: false },
  reconcile: { user: 'loader', snowflake: true, writesManifest: false, bulk: false },
  'conflict-create': { user: 'conflictWriter', snowflake: false, writesManifest: false, bulk: false },
  'fail-run': { user: 'loader', snowflake: false, writesManifest: false, bulk: false },
  'schema-migrate': { user: 'migrator', snowflake: false, writesManifest: false, bulk: true },
};

/** Functions the sync state machine invokes, with their ASL placeholder. */
export const WORKFLOW_FUNCTIONS: Record<string, FunctionName> = {
  PlanFunctionArn: 'plan',
  CopyChunkFunctionArn: 'copy-chunk',
  MergeFunctionArn: 'merge',
  ReconcileFunctionArn: 'reconcile',
  ConflictCreateFunctionArn: 'conflict-create',
  FailRunFunctionArn: 'fail-run',
};

/** CloudWatch namespace of thaw's own metrics (reconcile emits them as EMF). */
export const METRICS_NAMESPACE = 'Thaw';

/** Inputs of {@link ThawStack}. */
export interface ThawStackProps extends StackProps {
  config: EnvironmentConfig;
  /** Lambda architecture (already resolved against the installed toolchain). */
  architecture: lambda.Architecture;
  /** Repository root (holds Cargo.toml, functions/, schema/, statemachines/). */
  repoRoot: string;
  /**
   * Changes on every `make synth`, so the schema-migrate custom resource runs
   * on every deploy. Tests leave it unset for a deterministic template.
   */
  deployId?: string;
}

/** PascalCase of a kebab-case function name: `copy-chunk` → `CopyChunk`. */
export function pascal(name: string): string {
  return name.split('-').map((p) => p[0].toUpperCase() + p.slice(1)).join('');
}

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

/** One environment's estate; see the module comment. */
export class ThawStack extends Stack {
  readonly config: EnvironmentConfig;
  readonly functions: Record<FunctionName, lambda.Function>;
  /** Layer with the RDS CA bundle at `THAW_PG_CA_FILE`, attached to every function. */
  readonly rdsCaBundle: RdsCaBundleLayer;
  readonly stateMachine: sfn.StateMachine;
  readonly cluster: rds.DatabaseCluster;
  readonly proxy?: rds.DatabaseProxy;
  readonly alarmTopic: sns.Topic;
  readonly dataBucket: s3.Bucket;
  readonly deadLetterQueues: Record<'scheduler' | 'failedExecutions' | 'lambdaAsync', sqs.Queue>;

  constructor(scope: Construct, id: string, props: ThawStackProps) {
    super(scope, id, props);
    const cfg = props.config;
    this.config = cfg;
    const env = cfg.environment;
    const prefix = `thaw-${env}`;
    const removalPolicy = cfg.database.deletionProtection ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    const logRetention = cfg.logs.retentionDays as logs.RetentionDays;

    // ---------------------------------------------------------------- network
    const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
      vpcId: cfg.network.vpcId,
      availabilityZones: cfg.network.availabilityZones,
      privateSubnetIds: cfg.network.privateSubnetIds,
    });
    const subnets: ec2.SubnetSelection = { subnets: vpc.privateSubnets };
    acknowledge(vpc, 'Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId',
      'Subnets are imported by id only (no lookups at synth); nothing in this stack reads their route tables.');
    const securityGroup = (sgId: string, description: string) =>
      new ec2.SecurityGroup(this, sgId, { vpc, description, allowAllOutbound: false });
    const lambdaSg = securityGroup('LambdaSecurityGroup', `${prefix} sync Lambdas: PostgreSQL 5432, HTTPS 443 to Snowflake and AWS APIs`);
    const migratorSg = securityGroup('MigratorSecurityGroup', `${prefix} schema-migrate: PostgreSQL 5432 to the writer, HTTPS 443 to AWS APIs`);
    const rotationSg = securityGroup('RotationSecurityGroup', `${prefix} secret rotation: PostgreSQL 5432 to the writer, HTTPS 443 to Secrets Manager`);
    const databaseSg = securityGroup('DatabaseSecurityGroup', `${prefix} Aurora: PostgreSQL 5432 from the proxy, migrator and rotation only`);
    for (const sg of [lambdaSg, migratorSg, rotationSg]) {
      sg.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS to AWS APIs (and Snowflake for the sync Lambdas)');
    }
    const pg = ec2.Port.tcp(5432);
    migratorSg.connections.allowTo(databaseSg, pg, 'schema-migrate to the writer');
    rotationSg.connections.allowTo(databaseSg, pg, 'secret rotation to the writer');

    // -------------------------------------------------------------------- KMS
    const key = new kms.Key(this, 'DataKey', {
      alias: `alias/${prefix}`,
      description: `${prefix}: encrypts Aurora storage, secrets, logs, queues, topic and the data bucket`,
      enableKeyRotation: true,
      removalPolicy,
    });
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudWatchLogsOfThisAccount',
      principals: [new iam.ServicePrincipal(`logs.${this.region}.amazonaws.com`)],
      actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
      resources: ['*'],
      conditions: { ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:${this.partition}:logs:${this.region}:${this.account}:log-group:*` } },
    }));
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'AlarmsAndEventsPublishToEncryptedTopicAndQueues',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com'), new iam.ServicePrincipal('events.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      resources: ['*'],
      conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
    }));
    const logGroup = (lgId: string, name: string) => new logs.LogGroup(this, lgId, {
      logGroupName: name, retention: logRetention, encryptionKey: key, removalPolicy,
    });

    // ------------------------------------------------------ queues and topic
    const queue = (qId: string, name: string) => {
      const q = new sqs.Queue(this, qId, {
        queueName: `${prefix}-${name}`,
        encryption: sqs.QueueEncryption.KMS,
        encryptionMasterKey: key,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
        removalPolicy,
      });
      acknowledge(q, 'AwsSolutions-SQS3', 'This queue is itself a dead-letter queue; its depth alarm (ops/runbooks/dlq-*.md) is the escalation path.');
      return q;
    };
    this.deadLetterQueues = {
      scheduler: queue('SchedulerDlq', 'scheduler-dlq'),
      failedExecutions: queue('FailedExecutionsDlq', 'failed-executions'),
      lambdaAsync: queue('LambdaAsyncDlq', 'lambda-async-dlq'),
    };
    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', {
      topicName: `${prefix}-alarms`, displayName: `thaw ${env} alarms`, masterKey: key, enforceSSL: true,
    });
    if (cfg.alarms.email) this.alarmTopic.addSubscription(new snsSubscriptions.EmailSubscription(cfg.alarms.email));

    // --------------------------------------------------------------- buckets
    const accessLogs = new s3.Bucket(this, 'AccessLogsBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(cfg.storage.accessLogExpiryDays), noncurrentVersionExpiration: Duration.days(1) }],
      removalPolicy,
    });
    acknowledge(accessLogs, 'AwsSolutions-S1', 'This is the access-log bucket of the data bucket; logging it into itself would loop.');
    this.dataBucket = new s3.Bucket(this, 'DataBucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: key,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'data-bucket/',
      lifecycleRules: [
        { id: 'manifests', prefix: 'manifests/', expiration: Duration.days(cfg.storage.manifestExpiryDays) },
        { id: 'results', prefix: 'results/', expiration: Duration.days(cfg.storage.manifestExpiryDays) },
        { id: 'old-versions-and-uploads', noncurrentVersionExpiration: Duration.days(7), abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
      removalPolicy,
    });
    const bucket = this.dataBucket;

    // -------------------------------------------------------------- database
    const engine = rds.DatabaseClusterEngine.auroraPostgres({
      version: rds.AuroraPostgresEngineVersion.of(cfg.database.engineVersion, '16'),
    });
    const parameterGroup = new rds.ParameterGroup(this, 'ClusterParameters', {
      engine,
      description: `${prefix}: TLS only, slow-statement and DDL logging`,
      parameters: {
        'rds.force_ssl': '1',
        log_min_duration_statement: '5000',
        log_statement: 'ddl',
        log_connections: '1',
        log_disconnections: '1',
      },
    });
    const clusterIdentifier = prefix;
    const postgresLogs = logGroup('PostgresLogs', `/aws/rds/cluster/${clusterIdentifier}/postgresql`);
    this.cluster = new rds.DatabaseCluster(this, 'Cluster', {
      engine,
      clusterIdentifier,
      defaultDatabaseName: cfg.database.databaseName,
      credentials: rds.Credentials.fromGeneratedSecret('thaw_admin', {
        secretName: `${prefix}/db/admin`, encryptionKey: key,
      }),
      writer: rds.ClusterInstance.serverlessV2('Writer', {
        instanceIdentifier: `${prefix}-writer`, publiclyAccessible: false, autoMinorVersionUpgrade: true,
      }),
      readers: [rds.ClusterInstance.serverlessV2('Reader', {
        instanceIdentifier: `${prefix}-reader`, scaleWithWriter: true, publiclyAccessible: false, autoMinorVersionUpgrade: true,
      })],
      serverlessV2MinCapacity: cfg.database.minAcu,
      serverlessV2MaxCapacity: cfg.database.maxAcu,
      serverlessV2AutoPauseDuration: cfg.database.autoPauseMinutes ? Duration.minutes(cfg.database.autoPauseMinutes) : undefined,
      vpc,
      vpcSubnets: subnets,
      securityGroups: [databaseSg],
      parameterGroup,
      storageEncrypted: true,
      storageEncryptionKey: key,
      iamAuthentication: true,
      deletionProtection: cfg.database.deletionProtection,
      removalPolicy: cfg.database.snapshotOnDelete ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
      backup: { retention: Duration.days(cfg.database.backupRetentionDays), preferredWindow: '07:00-07:30' },
      preferredMaintenanceWindow: 'sun:08:00-sun:08:30',
      copyTagsToSnapshot: true,
      cloudwatchLogsExports: ['postgresql'],
      enablePerformanceInsights: true,
      performanceInsightEncryptionKey: key,
      monitoringInterval: Duration.seconds(60),
    });
    this.cluster.node.addDependency(postgresLogs);
    const cluster = this.cluster;
    acknowledge(cluster, 'Annotation::@aws-cdk/aws-rds:instancePerformanceInsightsOverridden',
      'Performance Insights is enabled at cluster level on purpose; both instances inherit it.');
    acknowledge(cluster, 'AwsSolutions-RDS11', 'Port 5432 is kept so standard PostgreSQL tooling works; only the proxy, migrator and rotation security groups may reach it.');
    acknowledge(cluster, 'AwsSolutions-IAM4', 'The enhanced-monitoring role needs the AWS-maintained AmazonRDSEnhancedMonitoringRole policy (no customer-managed equivalent is supported).',
      ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole']);
    if (!cfg.database.deletionProtection) {
      acknowledge(cluster, 'AwsSolutions-RDS10', `Deletion protection is off in ${env} on purpose (disposable test data); prod has it on (infra/config/prod.json).`);
    }

    const rotationSchedule = (secret: secretsmanager.ISecret, days: number, immediately: boolean) =>
      secret.addRotationSchedule('Rotation', {
        hostedRotation: secretsmanager.HostedRotation.postgreSqlSingleUser({
          vpc, vpcSubnets: subnets, securityGroups: [rotationSg],
        }),
        automaticallyAfter: Duration.days(days),
        rotateImmediatelyOnUpdate: immediately,
      });
    rotationSchedule(cluster.secret!, cfg.database.adminRotationDays, true);

    // One secret per database user, attached to the cluster (host, port, dbname filled in).
    // Rotation does not start on create: schema-migrate creates the roles and sets these passwords first.
    const userSecrets = {} as Record<DatabaseUserKey, secretsmanager.ISecret>;
    for (const [userKey, username] of Object.entries(DATABASE_USERS) as [DatabaseUserKey, string][]) {
      const secret = new rds.DatabaseSecret(this, `${pascal(userKey.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`))}Secret`, {
        username, secretName: `${prefix}/db/${username}`, encryptionKey: key, dbname: cfg.database.databaseName,
      });
      const attached = secret.attach(cluster);
      rotationSchedule(attached, cfg.database.roleRotationDays, false);
      userSecrets[userKey] = attached;
    }

    const snowflakeSecret = new secretsmanager.Secret(this, 'SnowflakeKeyPair', {
      secretName: `${prefix}/snowflake/key-pair`,
      description: 'Snowflake key-pair login of thaw. Created with empty fields; an operator fills it (ops/deploy.md step 5).',
      encryptionKey: key,
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ account: '', user: '', role: '', warehouse: '', private_key_pem: '' }),
        generateStringKey: 'placeholder_to_overwrite',
      },
      removalPolicy,
    });
    acknowledge(snowflakeSecret, 'AwsSolutions-SMG4', 'A Snowflake key pair is rotated on the Snowflake side (ALTER USER ... SET RSA_PUBLIC_KEY_2) by an operator; ops/runbooks/secret-rotation.md has the procedure. Secrets Manager has no rotation function for it.');

    // ------------------------------------------------------------ RDS Proxy
    let proxyReadOnlyEndpoint: string | undefined;
    if (cfg.proxy.enabled) {
      const proxySg = securityGroup('ProxySecurityGroup', `${prefix} RDS Proxy: 5432 from the sync Lambdas, 5432 to Aurora`);
      lambdaSg.connections.allowTo(proxySg, pg, 'sync Lambdas to RDS Proxy');
      proxySg.connections.allowTo(databaseSg, pg, 'RDS Proxy to Aurora');
      this.proxy = new rds.DatabaseProxy(this, 'Proxy', {
        dbProxyName: prefix,
        proxyTarget: rds.ProxyTarget.fromCluster(cluster),
        secrets: [userSecrets.loader, userSecrets.conflictWriter, userSecrets.application],
        vpc,
        vpcSubnets: subnets,
        securityGroups: [proxySg],
        requireTLS: true,
        iamAuth: true,
        maxConnectionsPercent: cfg.proxy.maxConnectionsPercent,
        maxIdleConnectionsPercent: cfg.proxy.maxIdleConnectionsPercent,
        borrowTimeout: Duration.seconds(cfg.proxy.borrowTimeoutSeconds),
        idleClientTimeout: Duration.minutes(cfg.proxy.idleClientTimeoutMinutes),
        debugLogging: false,
      });
      const readOnly = new rds.CfnDBProxyEndpoint(this, 'ProxyReadOnlyEndpoint', {
        dbProxyName: this.proxy.dbProxyName,
        dbProxyEndpointName: `${prefix}-read-only`,
        targetRole: 'READ_ONLY',
        vpcSubnetIds: cfg.network.privateSubnetIds,
        vpcSecurityGroupIds: [proxySg.securityGroupId],
      });
      proxyReadOnlyEndpoint = readOnly.attrEndpoint;
    }
    if (!cfg.proxy.enabled || cfg.proxy.bulkLoadBypassesProxy) {
      lambdaSg.connections.allowTo(databaseSg, pg, cfg.proxy.enabled ? 'copy-chunk bulk COPY straight to the writer' : 'sync Lambdas to Aurora (no proxy in this environment)');
    }

    // --------------------------------------------------------------- Lambdas
    const configUri = bucket.s3UrlForObject('config/thaw.json');
    // verify-full against the RDS CAs (Aurora) and Amazon roots (RDS Proxy), from a layer.
    this.rdsCaBundle = new RdsCaBundleLayer(this, 'RdsCaBundle', {
      layerVersionName: `${prefix}-rds-ca`,
      compatibleArchitectures: [props.architecture],
    });
    const functions = {} as Record<FunctionName, lambda.Function>;
    for (const name of FUNCTION_NAMES) {
      const settings = functionSettings(cfg, name);
      const access = FUNCTION_ACCESS[name];
      const functionName = `${prefix}-${name}`;
      const lg = logGroup(`${pascal(name)}Logs`, `/aws/lambda/${functionName}`);
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
      const direct = name === 'schema-migrate' || !this.proxy || (access.bulk && cfg.proxy.bulkLoadBypassesProxy);
      const user = DATABASE_USERS[access.user];
      const environment: Record<string, string> = {
        THAW_ENV: env,
        THAW_FUNCTION: name,
        THAW_CONFIG_URI: configUri,
        THAW_MANIFEST_BUCKET: bucket.bucketName,
        THAW_PG_HOST: direct ? cluster.clusterEndpoint.hostname : this.proxy!.endpoint,
        THAW_PG_READER_HOST: direct ? cluster.clusterReadEndpoint.hostname : proxyReadOnlyEndpoint!,
        THAW_PG_PORT: '5432',
        THAW_PG_DATABASE: cfg.database.databaseName,
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
        vpc,
        vpcSubnets: subnets,
        securityGroups: [name === 'schema-migrate' ? migratorSg : lambdaSg],
        logGroup: lg,
        loggingFormat: lambda.LoggingFormat.JSON,
        applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
        systemLogLevelV2: lambda.SystemLogLevel.WARN,
        tracing: lambda.Tracing.ACTIVE,
        environment,
        environmentEncryption: key,
        layers: [this.rdsCaBundle.layer],
        deadLetterQueue: this.deadLetterQueues.lambdaAsync,
      });
      if (direct) {
        userSecrets[access.user].grantRead(fn);
      } else {
        this.proxy!.grantConnect(fn, user);
      }
      if (name !== 'schema-migrate') {
        role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [bucket.arnForObjects('config/thaw.json')] }));
      }
      if (access.snowflake) snowflakeSecret.grantRead(fn);
      if (access.writesManifest) {
        role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [bucket.arnForObjects('manifests/*')] }));
      }
      role.addToPolicy(new iam.PolicyStatement({
        actions: access.writesManifest ? ['kms:Decrypt', 'kms:GenerateDataKey'] : ['kms:Decrypt'], resources: [key.keyArn],
      }));
      if (name === 'schema-migrate') {
        cluster.secret!.grantRead(fn);
        for (const secret of Object.values(userSecrets)) secret.grantRead(fn);
        fn.addEnvironment('THAW_PG_ADMIN_SECRET_ARN', cluster.secret!.secretArn);
        fn.addEnvironment('THAW_PG_USER_SECRET_ARNS', Stack.of(this).toJsonString(
          Object.fromEntries(Object.entries(DATABASE_USERS).map(([k, u]) => [u, userSecrets[k as DatabaseUserKey].secretArn]))));
      } else {
        fn.addEnvironment('THAW_PG_SECRET_ARN', direct ? userSecrets[access.user].secretArn : '');
      }
      if (access.snowflake) fn.addEnvironment('THAW_SNOWFLAKE_SECRET_ARN', snowflakeSecret.secretArn);
      if (cfg.datadog.enabled) {
        const layerName = props.architecture === lambda.Architecture.ARM_64 ? 'Datadog-Extension-ARM' : 'Datadog-Extension';
        fn.addLayers(lambda.LayerVersion.fromLayerVersionArn(this, `${pascal(name)}DatadogExtension`,
          `arn:${this.partition}:lambda:${this.region}:464622532012:layer:${layerName}:${cfg.datadog.extensionLayerVersion}`));
        fn.addEnvironment('DD_SITE', cfg.datadog.site);
        fn.addEnvironment('DD_ENV', env);
        fn.addEnvironment('DD_SERVICE', 'thaw');
        fn.addEnvironment('DD_API_KEY_SECRET_ARN', cfg.datadog.apiKeySecretArn!);
        secretsmanager.Secret.fromSecretCompleteArn(this, `${pascal(name)}DatadogKey`, cfg.datadog.apiKeySecretArn!).grantRead(fn);
      }
      if (cfg.datadog.forwarderArn) {
        new logs.CfnSubscriptionFilter(this, `${pascal(name)}DatadogForwarder`, {
          logGroupName: lg.logGroupName, destinationArn: cfg.datadog.forwarderArn, filterPattern: '',
        });
      }
      acknowledge(role, 'AwsSolutions-IAM5',
        'ENI management (ec2:*NetworkInterface, DescribeSubnets) and X-Ray PutTraceSegments/PutTelemetryRecords have no resource-level permissions; log streams are created under this function\'s own log group only; plan writes only under manifests/ of the data bucket (one object per run).',
        ['Resource::*', `Resource::${arnRef(lg)}:*`, ...(access.writesManifest ? [`Resource::${arnRef(bucket)}/manifests/*`] : [])]);
      functions[name] = fn;
    }
    this.functions = functions;

    // ----------------------------------------- schema migration on every deploy
    const migrationProvider = new cr.Provider(this, 'SchemaMigrateProvider', {
      onEventHandler: functions['schema-migrate'],
      logGroup: logGroup('SchemaMigrateProviderLogs', `/aws/lambda/${prefix}-schema-migrate-provider`),
      providerFunctionEnvEncryption: key,
    });
    acknowledge(migrationProvider, 'AwsSolutions-IAM4', 'The CDK custom-resource framework function uses AWSLambdaBasicExecutionRole for its own logs; it handles no data.',
      ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole']);
    acknowledge(migrationProvider, 'AwsSolutions-IAM5', 'The framework may invoke only the schema-migrate function and its versions (<arn>:*).',
      [`Resource::${arnRef(functions['schema-migrate'])}:*`]);
    acknowledge(migrationProvider, 'AwsSolutions-L1', 'The custom-resource framework runtime is chosen and kept current by aws-cdk-lib; upgrading aws-cdk-lib upgrades it.');
    const migration = new CustomResource(this, 'SchemaMigration', {
      serviceToken: migrationProvider.serviceToken,
      resourceType: 'Custom::ThawSchemaMigration',
      properties: { SchemaHash: schemaHash(props.repoRoot), DeployId: props.deployId ?? 'unset', Database: cfg.database.databaseName },
    });
    migration.node.addDependency(cluster);

    // --------------------------------------------------------- state machine
    const stateMachineName = `${prefix}-sync`;
    const smRole = new iam.Role(this, 'SyncRole', {
      assumedBy: new iam.ServicePrincipal('states.amazonaws.com'),
      description: `${stateMachineName}: invoke the thaw Lambdas, read manifests, write Map results, run its own Map children, publish failures`,
    });
    for (const fnName of Object.values(WORKFLOW_FUNCTIONS)) functions[fnName].grantInvoke(smRole);
    smRole.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [bucket.arnForObjects('manifests/*')] }));
    smRole.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:PutObject', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload'],
      resources: [bucket.arnForObjects('results/*')],
    }));
    smRole.addToPolicy(new iam.PolicyStatement({ actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resources: [key.keyArn] }));
    this.alarmTopic.grantPublish(smRole);
    smRole.addToPolicy(new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [`arn:${this.partition}:states:${this.region}:${this.account}:stateMachine:${stateMachineName}`] }));
    smRole.addToPolicy(new iam.PolicyStatement({
      actions: ['states:DescribeExecution', 'states:StopExecution', 'states:RedriveExecution'],
      resources: [`arn:${this.partition}:states:${this.region}:${this.account}:execution:${stateMachineName}/*`],
    }));
    smRole.addToPolicy(new iam.PolicyStatement({
      actions: ['states:DescribeMapRun', 'states:UpdateMapRun'],
      resources: [`arn:${this.partition}:states:${this.region}:${this.account}:mapRun:${stateMachineName}/*`],
    }));
    const substitutions: Record<string, string> = {
      Environment: env,
      ManifestBucket: bucket.bucketName,
      AlarmTopicArn: this.alarmTopic.topicArn,
      MaxConcurrency: formatNumber('MaxConcurrency', cfg.workflow.maxConcurrency),
      ToleratedFailurePercentage: formatNumber('ToleratedFailurePercentage', cfg.workflow.toleratedFailurePercentage),
      ExecutionTimeoutSeconds: formatNumber('ExecutionTimeoutSeconds', cfg.workflow.executionTimeoutHours * 3600),
    };
    for (const [placeholder, fnName] of Object.entries(WORKFLOW_FUNCTIONS)) substitutions[placeholder] = functions[fnName].functionArn;
    this.stateMachine = new sfn.StateMachine(this, 'Sync', {
      stateMachineName,
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromString(unquoteNumericPlaceholders(readSyncTemplate())),
      definitionSubstitutions: substitutions,
      role: smRole,
      tracingEnabled: true,
      logs: {
        destination: logGroup('SyncLogs', `/aws/vendedlogs/states/${stateMachineName}`),
        level: sfn.LogLevel.ALL,
        includeExecutionData: true,
      },
    });
    this.stateMachine.node.addDependency(migration);
    acknowledge(smRole, 'AwsSolutions-IAM5',
      'Scoped wildcards only: versions of the six workflow Lambdas (<arn>:*), this state machine\'s own child executions and map runs (<name>/*, required by the Distributed Map), the manifests/ and results/ prefixes of the data bucket, kms:GenerateDataKey* on the environment key for the encrypted topic, and log delivery / X-Ray which have no resource-level permissions.',
      [
        'Resource::*',
        'Action::kms:GenerateDataKey*',
        ...Object.values(WORKFLOW_FUNCTIONS).map((f) => `Resource::${arnRef(functions[f])}:*`),
        `Resource::arn:<AWS::Partition>:states:${this.region}:${this.account}:execution:${stateMachineName}/*`,
        `Resource::arn:<AWS::Partition>:states:${this.region}:${this.account}:mapRun:${stateMachineName}/*`,
        `Resource::${arnRef(bucket)}/manifests/*`,
        `Resource::${arnRef(bucket)}/results/*`,
      ]);

    // ------------------------------------------------------ nightly schedule
    const schedule = new scheduler.Schedule(this, 'NightlySync', {
      scheduleName: `${prefix}-nightly-sync`,
      description: `thaw ${env}: nightly incremental sync (${cfg.schedule.cron} ${cfg.schedule.timeZone})`,
      schedule: scheduler.ScheduleExpression.expression(`cron(${cfg.schedule.cron})`, TimeZone.of(cfg.schedule.timeZone)),
      target: new schedulerTargets.StepFunctionsStartExecution(this.stateMachine, {
        input: scheduler.ScheduleTargetInput.fromObject({ mode: 'incremental' }),
        deadLetterQueue: this.deadLetterQueues.scheduler,
        retryAttempts: 3,
        maxEventAge: Duration.hours(2),
      }),
      enabled: cfg.schedule.enabled,
    });
    schedule.node.addDependency(migration);

    // --------------------------------- failed executions → queue + topic
    new events.Rule(this, 'FailedExecutionsRule', {
      ruleName: `${prefix}-sync-failed`,
      description: `thaw ${env}: sync executions that end FAILED, TIMED_OUT or ABORTED (runbook ops/runbooks/dlq-failed-executions.md)`,
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED'], stateMachineArn: [this.stateMachine.stateMachineArn] },
      },
      targets: [
        new eventsTargets.SqsQueue(this.deadLetterQueues.failedExecutions, { retryAttempts: 8 }),
        new eventsTargets.SnsTopic(this.alarmTopic, { deadLetterQueue: this.deadLetterQueues.failedExecutions, retryAttempts: 8 }),
      ],
    });

    new ThawAlarms(this, 'Alarms', {
      config: cfg,
      topic: this.alarmTopic,
      stateMachine: this.stateMachine,
      functions,
      clusterIdentifier,
      deadLetterQueues: this.deadLetterQueues,
    });
  }
}
