/**
 * The staged-Parquet path (docs/sync.md §13): the bucket Snowflake unloads
 * chunks into (`COPY INTO @stage … FILE_FORMAT = (TYPE = PARQUET)`), the IAM
 * role Snowflake's storage integration assumes to write there, and read
 * access for copy-chunk, which loads the files into PostgreSQL.
 *
 * The role exists only once the environment config names the integration's
 * IAM user and external id (`staging.snowflakeIamUserArn`,
 * `staging.snowflakeExternalId`, read from `DESC INTEGRATION`); its name is
 * fixed (`thaw-<env>-snowflake-unload`) because the integration must be
 * created with the role's ARN before the role can trust it
 * (ops/snowflake-storage-integration.md).
 *
 * Encryption is S3-managed (SSE-S3), not the environment key: Snowflake
 * writes with its own principal, and giving it the key that also encrypts
 * Aurora, the secrets and the logs would widen what an integration can reach.
 */
import { CfnOutput, Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { EnvironmentConfig } from '../config.ts';
import { acknowledge, arnRef } from '../nag.ts';
import { Foundation, ThawConcern } from './common.ts';

/** Inputs of {@link ThawStaging}. */
export interface ThawStagingProps {
  foundation: Foundation;
  staging: EnvironmentConfig['staging'];
  /** Where the staging bucket writes its server access logs (the data bucket's log bucket). */
  accessLogsBucket: s3.IBucket;
  /** Functions that read the unloaded files (copy-chunk): read-only grant and `THAW_STAGING_URI`. */
  readers: lambda.Function[];
}

/** Staging bucket, Snowflake's unload role (when configured) and reader grants; see the module comment. */
export class ThawStaging extends ThawConcern {
  readonly bucket: s3.Bucket;
  /** Assumed by Snowflake's storage integration; undefined until the config names the integration. */
  readonly snowflakeRole?: iam.Role;
  /** `thaw-<env>-snowflake-unload`: the ARN the storage integration is created with. */
  readonly snowflakeRoleName: string;
  /** Key prefix of the unloads (`unload/`). */
  readonly prefix: string;

  constructor(scope: Construct, id: string, props: ThawStagingProps) {
    super(scope, id);
    const { foundation: base, staging } = props;
    const stack = Stack.of(this);
    this.prefix = staging.prefix;
    this.snowflakeRoleName = `${base.prefix}-snowflake-unload`;
    this.bucket = new s3.Bucket(this, 'StagingBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      serverAccessLogsBucket: props.accessLogsBucket,
      serverAccessLogsPrefix: 'staging-bucket/',
      lifecycleRules: [
        { id: 'unloads', prefix: staging.prefix, expiration: Duration.days(staging.expiryDays), noncurrentVersionExpiration: Duration.days(1) },
        { id: 'incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
      removalPolicy: base.removalPolicy,
      autoDeleteObjects: false,
    });
    const objects = this.bucket.arnForObjects(`${staging.prefix}*`);
    const listUnderPrefix = (actions: string[]) => new iam.PolicyStatement({
      actions,
      resources: [this.bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': [`${staging.prefix}*`] } },
    });

    for (const reader of props.readers) {
      const role = reader.role!;
      role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [objects] }));
      role.addToPrincipalPolicy(listUnderPrefix(['s3:ListBucket']));
      reader.addEnvironment('THAW_STAGING_URI', this.bucket.s3UrlForObject(staging.prefix));
      acknowledge(role, 'AwsSolutions-IAM5',
        `Reads (GetObject only) the Parquet files Snowflake unloaded under ${staging.prefix} of the staging bucket; their names are Snowflake's.`,
        [`Resource::${arnRef(this.bucket)}/${staging.prefix}*`]);
    }

    if (staging.snowflakeIamUserArn !== null && staging.snowflakeExternalId !== null) {
      const role = new iam.Role(this, 'SnowflakeUnloadRole', {
        roleName: this.snowflakeRoleName,
        description: `${base.prefix}: assumed by Snowflake's storage integration to unload Parquet under s3://<staging bucket>/${staging.prefix}`,
        assumedBy: new iam.ArnPrincipal(staging.snowflakeIamUserArn),
        externalIds: [staging.snowflakeExternalId],
        maxSessionDuration: Duration.hours(1),
      });
      // What Snowflake needs to unload (OVERWRITE deletes first) and to LIST the stage, under the prefix only.
      role.addToPolicy(new iam.PolicyStatement({
        actions: ['s3:PutObject', 's3:GetObject', 's3:GetObjectVersion', 's3:DeleteObject', 's3:DeleteObjectVersion'],
        resources: [objects],
      }));
      role.addToPolicy(listUnderPrefix(['s3:ListBucket']));
      role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetBucketLocation'], resources: [this.bucket.bucketArn] }));
      acknowledge(role, 'AwsSolutions-IAM5',
        `Snowflake writes one object per unloaded file, with names it chooses, under ${staging.prefix} of the staging bucket only.`,
        [`Resource::${arnRef(this.bucket)}/${staging.prefix}*`]);
      this.snowflakeRole = role;
    }

    new CfnOutput(stack, 'StagingBucketName', {
      value: this.bucket.bucketName,
      description: 'Bucket of the Snowflake storage integration (STORAGE_ALLOWED_LOCATIONS = s3://<this>/<staging.prefix>)',
    });
    new CfnOutput(stack, 'SnowflakeUnloadRoleArn', {
      value: `arn:${stack.partition}:iam::${stack.account}:role/${this.snowflakeRoleName}`,
      description: 'STORAGE_AWS_ROLE_ARN of the Snowflake storage integration (the role exists once staging.snowflake* are set)',
    });
  }
}
