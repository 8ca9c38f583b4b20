/**
 * Aurora PostgreSQL 16 Serverless v2 (one writer, one reader scaling with
 * it), its parameter group and log group, and the optional RDS Proxy with a
 * read-only endpoint. The cluster's secrets and their rotation are in
 * `secrets.ts`; the security groups and who may reach the database are the
 * stack's (`thaw-stack.ts`). The cluster itself is created at the stack root
 * (construct path `Thaw-<env>/Cluster`, as before the split into constructs).
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { EnvironmentConfig } from '../config.ts';
import { acknowledge } from '../nag.ts';
import { Foundation, ThawConcern, encryptedLogGroup, stackRoot } from './common.ts';

/** Inputs of {@link ThawDatabase}. */
export interface ThawDatabaseProps {
  foundation: Foundation;
  database: EnvironmentConfig['database'];
  /** Attached to the cluster; only the proxy, migrator and rotation groups may reach it. */
  securityGroup: ec2.ISecurityGroup;
}

/** Inputs of {@link ThawDatabase.addProxy}. */
export interface ThawProxyProps {
  proxy: EnvironmentConfig['proxy'];
  /** Secrets of the users that connect through the proxy (the proxy logs in with their passwords). */
  secrets: secretsmanager.ISecret[];
  securityGroup: ec2.ISecurityGroup;
}

/** The cluster, and the proxy once {@link addProxy} ran. */
export class ThawDatabase extends ThawConcern {
  readonly cluster: rds.DatabaseCluster;
  /** `thaw-<env>`: the cluster identifier (and the CloudWatch dimension of its metrics). */
  readonly clusterIdentifier: string;
  /** Name of the database the stack creates in the cluster. */
  readonly databaseName: string;
  private readonly foundation: Foundation;
  private proxyResource?: rds.DatabaseProxy;
  private proxyReadOnly?: string;

  constructor(scope: Construct, id: string, props: ThawDatabaseProps) {
    super(scope, id);
    const { foundation: base, database: db } = props;
    this.foundation = base;
    this.databaseName = db.databaseName;
    const prefix = base.prefix;
    const engine = rds.DatabaseClusterEngine.auroraPostgres({
      version: rds.AuroraPostgresEngineVersion.of(db.engineVersion, '16'),
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
    this.clusterIdentifier = prefix;
    const postgresLogs = encryptedLogGroup(this, 'PostgresLogs', `/aws/rds/cluster/${this.clusterIdentifier}/postgresql`, base);
    // At the stack root: the generated admin secret takes its logical id from the cluster's construct path
    // (Names.uniqueId, not allocateLogicalId); under this construct CloudFormation would replace the secret.
    this.cluster = new rds.DatabaseCluster(stackRoot(this), 'Cluster', {
      engine,
      clusterIdentifier: this.clusterIdentifier,
      defaultDatabaseName: db.databaseName,
      credentials: rds.Credentials.fromGeneratedSecret('thaw_admin', {
        secretName: `${prefix}/db/admin`, encryptionKey: base.key,
      }),
      writer: rds.ClusterInstance.serverlessV2('Writer', {
        instanceIdentifier: `${prefix}-writer`, publiclyAccessible: false, autoMinorVersionUpgrade: true,
      }),
      readers: [rds.ClusterInstance.serverlessV2('Reader', {
        instanceIdentifier: `${prefix}-reader`, scaleWithWriter: true, publiclyAccessible: false, autoMinorVersionUpgrade: true,
      })],
      serverlessV2MinCapacity: db.minAcu,
      serverlessV2MaxCapacity: db.maxAcu,
      serverlessV2AutoPauseDuration: db.autoPauseMinutes ? Duration.minutes(db.autoPauseMinutes) : undefined,
      vpc: base.vpc,
      vpcSubnets: base.subnets,
      securityGroups: [props.securityGroup],
      parameterGroup,
      storageEncrypted: true,
      storageEncryptionKey: base.key,
      iamAuthentication: true,
      deletionProtection: db.deletionProtection,
      removalPolicy: db.snapshotOnDelete ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
      backup: { retention: Duration.days(db.backupRetentionDays), preferredWindow: '07:00-07:30' },
      preferredMaintenanceWindow: 'sun:08:00-sun:08:30',
      copyTagsToSnapshot: true,
      cloudwatchLogsExports: ['postgresql'],
      enablePerformanceInsights: true,
      performanceInsightEncryptionKey: base.key,
      monitoringInterval: Duration.seconds(60),
    });
    this.cluster.node.addDependency(postgresLogs);
    const cluster = this.cluster;
    acknowledge(cluster, 'Annotation::@aws-cdk/aws-rds:instancePerformanceInsightsOverridden',
      'Performance Insights is enabled at cluster level on purpose; both instances inherit it.');
    acknowledge(cluster, 'AwsSolutions-RDS11', 'Port 5432 is kept so standard PostgreSQL tooling works; only the proxy, migrator and rotation security groups may reach it.');
    acknowledge(cluster, 'AwsSolutions-IAM4', 'The enhanced-monitoring role needs the AWS-maintained AmazonRDSEnhancedMonitoringRole policy (no customer-managed equivalent is supported).',
      ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole']);
    if (!db.deletionProtection) {
      acknowledge(cluster, 'AwsSolutions-RDS10', `Deletion protection is off in ${base.environment} on purpose (disposable test data); prod has it on (infra/config/prod.json).`);
    }
  }

  /** The RDS Proxy in front of the cluster, when {@link addProxy} was called. */
  get proxy(): rds.DatabaseProxy | undefined {
    return this.proxyResource;
  }

  /** Host name of the proxy's read-only endpoint, when there is a proxy. */
  get proxyReadOnlyEndpoint(): string | undefined {
    return this.proxyReadOnly;
  }

  /**
   * Front the cluster with an RDS Proxy (TLS and IAM required) and a
   * read-only endpoint. The proxy needs the user secrets attached to the
   * cluster first, hence a second step after `ThawSecrets`.
   */
  addProxy(props: ThawProxyProps): rds.DatabaseProxy {
    if (this.proxyResource) throw new Error(`${this.node.path} already has a proxy`);
    const base = this.foundation;
    const cfg = props.proxy;
    const proxy = new rds.DatabaseProxy(this, 'Proxy', {
      dbProxyName: base.prefix,
      proxyTarget: rds.ProxyTarget.fromCluster(this.cluster),
      secrets: props.secrets,
      vpc: base.vpc,
      vpcSubnets: base.subnets,
      securityGroups: [props.securityGroup],
      requireTLS: true,
      iamAuth: true,
      maxConnectionsPercent: cfg.maxConnectionsPercent,
      maxIdleConnectionsPercent: cfg.maxIdleConnectionsPercent,
      borrowTimeout: Duration.seconds(cfg.borrowTimeoutSeconds),
      idleClientTimeout: Duration.minutes(cfg.idleClientTimeoutMinutes),
      debugLogging: false,
    });
    const readOnly = new rds.CfnDBProxyEndpoint(this, 'ProxyReadOnlyEndpoint', {
      dbProxyName: proxy.dbProxyName,
      dbProxyEndpointName: `${base.prefix}-read-only`,
      targetRole: 'READ_ONLY',
      vpcSubnetIds: base.subnetIds,
      vpcSecurityGroupIds: [props.securityGroup.securityGroupId],
    });
    this.proxyResource = proxy;
    this.proxyReadOnly = readOnly.attrEndpoint;
    return proxy;
  }
}
