/**
 * Secrets of the estate and their rotation: the cluster's admin secret
 * (created by the cluster, rotated here), one secret per database user in
 * {@link DATABASE_USERS} attached to the cluster, and the Snowflake key pair
 * an operator fills in. Rotation is Secrets Manager's hosted single-user
 * PostgreSQL rotation, running in the rotation security group.
 */
import { Duration } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { EnvironmentConfig } from '../config.ts';
import { acknowledge } from '../nag.ts';
import { Foundation, ThawConcern, pascal } from './common.ts';

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
/** A key of {@link DATABASE_USERS}. */
export type DatabaseUserKey = keyof typeof DATABASE_USERS;

/** Inputs of {@link ThawSecrets}. */
export interface ThawSecretsProps {
  foundation: Foundation;
  /** Rotation periods and database name. */
  database: EnvironmentConfig['database'];
  /** The cluster whose admin secret is rotated and to which the user secrets are attached. */
  cluster: rds.DatabaseCluster;
  /** Group of the rotation functions (may reach the writer on 5432 and Secrets Manager on 443). */
  rotationSecurityGroup: ec2.ISecurityGroup;
}

/** Admin, user and Snowflake secrets; see the module comment. */
export class ThawSecrets extends ThawConcern {
  /** The cluster's generated admin secret (`thaw-<env>/db/admin`). */
  readonly admin: secretsmanager.ISecret;
  /** One secret per database user, attached to the cluster (host, port, dbname filled in). */
  readonly users: Record<DatabaseUserKey, secretsmanager.ISecret>;
  /** `{account,user,role,warehouse,private_key_pem}`, filled by an operator. */
  readonly snowflake: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: ThawSecretsProps) {
    super(scope, id);
    const { foundation: base, database: db, cluster } = props;
    const prefix = base.prefix;
    const rotationSchedule = (secret: secretsmanager.ISecret, days: number, immediately: boolean) =>
      secret.addRotationSchedule('Rotation', {
        hostedRotation: secretsmanager.HostedRotation.postgreSqlSingleUser({
          vpc: base.vpc, vpcSubnets: base.subnets, securityGroups: [props.rotationSecurityGroup],
        }),
        automaticallyAfter: Duration.days(days),
        rotateImmediatelyOnUpdate: immediately,
      });
    this.admin = cluster.secret!;
    rotationSchedule(this.admin, db.adminRotationDays, true);

    // One secret per database user, attached to the cluster (host, port, dbname filled in).
    // Rotation does not start on create: schema-migrate creates the roles and sets these passwords first.
    const users = {} as Record<DatabaseUserKey, secretsmanager.ISecret>;
    for (const [userKey, username] of Object.entries(DATABASE_USERS) as [DatabaseUserKey, string][]) {
      const secret = new rds.DatabaseSecret(this, `${pascal(userKey.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`))}Secret`, {
        username, secretName: `${prefix}/db/${username}`, encryptionKey: base.key, dbname: db.databaseName,
      });
      const attached = secret.attach(cluster);
      rotationSchedule(attached, db.roleRotationDays, false);
      users[userKey] = attached;
    }
    this.users = users;

    this.snowflake = new secretsmanager.Secret(this, 'SnowflakeKeyPair', {
      secretName: `${prefix}/snowflake/key-pair`,
      description: 'Snowflake key-pair login of thaw. Created with empty fields; an operator fills it (ops/deploy.md step 5).',
      encryptionKey: base.key,
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ account: '', user: '', role: '', warehouse: '', private_key_pem: '' }),
        generateStringKey: 'placeholder_to_overwrite',
      },
      removalPolicy: base.removalPolicy,
    });
    acknowledge(this.snowflake, 'AwsSolutions-SMG4', 'A Snowflake key pair is rotated on the Snowflake side (ALTER USER ... SET RSA_PUBLIC_KEY_2) by an operator; ops/runbooks/secret-rotation.md has the procedure. Secrets Manager has no rotation function for it.');
  }

  /** The user secrets the RDS Proxy logs in with (everyone but the migrator, who goes straight to the writer). */
  get proxyUsers(): secretsmanager.ISecret[] {
    return [this.users.loader, this.users.conflictWriter, this.users.application];
  }
}
