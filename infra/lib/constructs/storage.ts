/**
 * The data bucket (operator config, chunk manifests, Distributed Map
 * results) and the bucket holding its access logs.
 */
import { Duration } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { EnvironmentConfig } from '../config.ts';
import { acknowledge } from '../nag.ts';
import { Foundation, ThawConcern } from './common.ts';

/** Inputs of {@link ThawStorage}. */
export interface ThawStorageProps {
  foundation: Foundation;
  storage: EnvironmentConfig['storage'];
}

/** KMS-encrypted, TLS-only, versioned, access-logged data bucket with expiring manifests and results. */
export class ThawStorage extends ThawConcern {
  readonly dataBucket: s3.Bucket;
  readonly accessLogsBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: ThawStorageProps) {
    super(scope, id);
    const { foundation: base, storage } = props;
    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogsBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(storage.accessLogExpiryDays), noncurrentVersionExpiration: Duration.days(1) }],
      removalPolicy: base.removalPolicy,
    });
    acknowledge(this.accessLogsBucket, 'AwsSolutions-S1', 'This is the access-log bucket of the data bucket; logging it into itself would loop.');
    this.dataBucket = new s3.Bucket(this, 'DataBucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: base.key,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'data-bucket/',
      lifecycleRules: [
        { id: 'manifests', prefix: 'manifests/', expiration: Duration.days(storage.manifestExpiryDays) },
        { id: 'results', prefix: 'results/', expiration: Duration.days(storage.manifestExpiryDays) },
        { id: 'old-versions-and-uploads', noncurrentVersionExpiration: Duration.days(7), abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
      removalPolicy: base.removalPolicy,
    });
  }
}
