/**
 * The whole AWS estate of one thaw environment (dev, qa or prod), composed
 * from the typed config (`config.ts`):
 *
 * network (imported VPC, security groups and who may reach whom) and the KMS
 * key, built here and shared as the {@link Foundation} → monitoring topic →
 * storage (data bucket) → database (Aurora Serverless v2 writer + reader) →
 * secrets and rotation → RDS Proxy (prod) → functions (the seven Rust Lambdas,
 * RDS CA layer, DLQ, IAM) → staging (unload bucket, Snowflake's role, copy-chunk
 * read access) → schema migration on every deploy → workflow (sync
 * state machine from `statemachines/sync.asl.json`, nightly schedule,
 * failed-execution rule) → alarms. One construct per concern under
 * `constructs/`; each takes typed props, none reads context.
 *
 * Logical ids do not depend on that grouping: {@link ThawStack.allocateLogicalId}
 * leaves the concern constructs out (`constructs/common.ts`), so every resource
 * keeps the id it had before the split (a changed id replaces the resource —
 * for the cluster, a new empty database).
 */
import { CfnElement, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { acknowledge } from './nag.ts';
import { RdsCaBundleLayer } from './rds-ca.ts';
import { EnvironmentConfig, FUNCTION_NAMES, FunctionName, FunctionSettings, functionSettings } from './config.ts';
import { Foundation, isThawConcern } from './constructs/common.ts';
import { ThawDatabase } from './constructs/database.ts';
import { ThawFunctions } from './constructs/functions.ts';
import { ThawMonitoring } from './constructs/monitoring.ts';
import { ThawSchemaMigration } from './constructs/schema-migration.ts';
import { ThawSecrets } from './constructs/secrets.ts';
import { ThawStaging } from './constructs/staging.ts';
import { ThawStorage } from './constructs/storage.ts';
import { ThawWorkflow } from './constructs/workflow.ts';

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

/** The security groups of the estate (all at the stack root: rule ids embed the peer group's path). */
export interface ThawSecurityGroups {
  /** The six sync Lambdas. */
  lambda: ec2.SecurityGroup;
  /** schema-migrate. */
  migrator: ec2.SecurityGroup;
  /** Hosted secret rotation. */
  rotation: ec2.SecurityGroup;
  /** Aurora. */
  database: ec2.SecurityGroup;
  /** RDS Proxy, where there is one. */
  proxy?: ec2.SecurityGroup;
}

/** The concern constructs of a {@link ThawStack}. */
export interface ThawConcerns {
  monitoring: ThawMonitoring;
  storage: ThawStorage;
  staging: ThawStaging;
  database: ThawDatabase;
  secrets: ThawSecrets;
  functions: ThawFunctions;
  schemaMigration: ThawSchemaMigration;
  workflow: ThawWorkflow;
}

/** One environment's estate; see the module comment. */
export class ThawStack extends Stack {
  readonly config: EnvironmentConfig;
  readonly foundation: Foundation;
  readonly securityGroups: ThawSecurityGroups;
  readonly concerns: ThawConcerns;
  readonly functions: Record<FunctionName, lambda.Function>;
  /** Layer with the RDS CA bundle at `THAW_PG_CA_FILE`, attached to every function. */
  readonly rdsCaBundle: RdsCaBundleLayer;
  readonly stateMachine: sfn.StateMachine;
  readonly cluster: rds.DatabaseCluster;
  readonly proxy?: rds.DatabaseProxy;
  readonly alarmTopic: sns.Topic;
  readonly dataBucket: s3.Bucket;
  readonly deadLetterQueues: Record<'scheduler' | 'failedExecutions' | 'lambdaAsync', sqs.Queue>;
  /** Logical id → construct path, to refuse two resources that would share an id. */
  private logicalIdPaths?: Map<string, string>;

  constructor(scope: Construct, id: string, props: ThawStackProps) {
    super(scope, id, props);
    const cfg = props.config;
    this.config = cfg;
    const prefix = `thaw-${cfg.environment}`;
    const removalPolicy = cfg.database.deletionProtection ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    // ---------------------------------------------------------------- network
    const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
      vpcId: cfg.network.vpcId,
      availabilityZones: cfg.network.availabilityZones,
      privateSubnetIds: cfg.network.privateSubnetIds,
    });
    acknowledge(vpc, 'Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId',
      'Subnets are imported by id only (no lookups at synth); nothing in this stack reads their route tables.');
    this.securityGroups = this.securityGroupsFor(vpc, cfg, prefix);

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

    const base: Foundation = {
      environment: cfg.environment,
      prefix,
      vpc,
      subnets: { subnets: vpc.privateSubnets },
      subnetIds: cfg.network.privateSubnetIds,
      key,
      removalPolicy,
      logRetention: cfg.logs.retentionDays as logs.RetentionDays,
    };
    this.foundation = base;
    const sgs = this.securityGroups;

    // --------------------------------------------------------------- concerns
    const monitoring = new ThawMonitoring(this, 'Monitoring', { foundation: base, alarms: cfg.alarms });
    const storage = new ThawStorage(this, 'Storage', { foundation: base, storage: cfg.storage });
    const database = new ThawDatabase(this, 'Database', { foundation: base, database: cfg.database, securityGroup: sgs.database });
    const secrets = new ThawSecrets(this, 'Secrets', {
      foundation: base, database: cfg.database, cluster: database.cluster, rotationSecurityGroup: sgs.rotation,
    });
    if (cfg.proxy.enabled) {
      database.addProxy({ proxy: cfg.proxy, secrets: secrets.proxyUsers, securityGroup: sgs.proxy! });
    }
    const functions = new ThawFunctions(this, 'Functions', {
      foundation: base,
      architecture: props.architecture,
      repoRoot: props.repoRoot,
      settings: Object.fromEntries(FUNCTION_NAMES.map((n) => [n, functionSettings(cfg, n)])) as Record<FunctionName, FunctionSettings>,
      database,
      bulkLoadBypassesProxy: cfg.proxy.bulkLoadBypassesProxy,
      secrets,
      dataBucket: storage.dataBucket,
      securityGroups: { sync: sgs.lambda, migrator: sgs.migrator },
      datadog: cfg.datadog,
    });
    const staging = new ThawStaging(this, 'Staging', {
      foundation: base,
      staging: cfg.staging,
      accessLogsBucket: storage.accessLogsBucket,
      readers: [functions.functions['copy-chunk']],
    });
    const schemaMigration = new ThawSchemaMigration(this, 'Migration', {
      foundation: base,
      handler: functions.functions['schema-migrate'],
      cluster: database.cluster,
      databaseName: cfg.database.databaseName,
      repoRoot: props.repoRoot,
      deployId: props.deployId,
    });
    const workflow = new ThawWorkflow(this, 'Workflow', {
      foundation: base,
      workflow: cfg.workflow,
      schedule: cfg.schedule,
      dualRead: cfg.dualRead,
      functions: functions.functions,
      dataBucket: storage.dataBucket,
      alarmTopic: monitoring.topic,
      after: schemaMigration.resource,
    });
    this.deadLetterQueues = { ...workflow.deadLetterQueues, lambdaAsync: functions.deadLetterQueue };
    monitoring.addAlarms({
      config: cfg,
      stateMachine: workflow.stateMachine,
      functions: functions.functions,
      clusterIdentifier: database.clusterIdentifier,
      deadLetterQueues: this.deadLetterQueues,
    });

    this.concerns = { monitoring, storage, staging, database, secrets, functions, schemaMigration, workflow };
    this.functions = functions.functions;
    this.rdsCaBundle = functions.rdsCaBundle;
    this.stateMachine = workflow.stateMachine;
    this.cluster = database.cluster;
    this.proxy = database.proxy;
    this.alarmTopic = monitoring.topic;
    this.dataBucket = storage.dataBucket;
  }

  /**
   * The path hashed into a logical id, without the concern constructs: a
   * resource's id is the one it had when this stack was a single constructor.
   * Throws when two resources would end up with the same id.
   */
  protected allocateLogicalId(element: CfnElement): string {
    const scopes = element.node.scopes.filter((s) => !isThawConcern(s));
    const logicalId = super.allocateLogicalId({ node: { scopes }, stack: this } as unknown as CfnElement);
    this.logicalIdPaths ??= new Map();
    const taken = this.logicalIdPaths.get(logicalId);
    if (taken !== undefined && taken !== element.node.path) {
      throw new Error(`${element.node.path} and ${taken} would share the logical id ${logicalId}: `
        + 'construct ids must be unique across the concern constructs (lib/constructs/common.ts)');
    }
    this.logicalIdPaths.set(logicalId, element.node.path);
    return logicalId;
  }

  /** Security groups and the PostgreSQL paths between them (HTTPS 443 out for every client group). */
  private securityGroupsFor(vpc: ec2.IVpc, cfg: EnvironmentConfig, prefix: string): ThawSecurityGroups {
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
    let proxySg: ec2.SecurityGroup | undefined;
    if (cfg.proxy.enabled) {
      proxySg = securityGroup('ProxySecurityGroup', `${prefix} RDS Proxy: 5432 from the sync Lambdas, 5432 to Aurora`);
      lambdaSg.connections.allowTo(proxySg, pg, 'sync Lambdas to RDS Proxy');
      proxySg.connections.allowTo(databaseSg, pg, 'RDS Proxy to Aurora');
    }
    if (!cfg.proxy.enabled || cfg.proxy.bulkLoadBypassesProxy) {
      lambdaSg.connections.allowTo(databaseSg, pg, cfg.proxy.enabled ? 'copy-chunk bulk COPY straight to the writer' : 'sync Lambdas to Aurora (no proxy in this environment)');
    }
    return { lambda: lambdaSg, migrator: migratorSg, rotation: rotationSg, database: databaseSg, proxy: proxySg };
  }
}
