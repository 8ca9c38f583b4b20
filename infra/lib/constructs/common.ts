/**
 * What the constructs of a thaw stack share: the {@link Foundation} the stack
 * builds first (network, KMS key, naming, retention) and small factories for
 * the encrypted log groups and dead-letter queues every concern creates.
 *
 * Logical ids: every construct of a concern extends {@link ThawConcern}, and
 * `ThawStack.allocateLogicalId` leaves those constructs out of the path it
 * hashes. A resource therefore keeps the logical id it had when the stack was
 * one constructor (the data bucket is `DataBucketE3889A50` at
 * `Thaw-qa/Storage/DataBucket` as it was at `Thaw-qa/DataBucket`): a changed
 * logical id makes CloudFormation replace the resource (for the database, a
 * new empty one). The construct ids inside a concern are the ones the single
 * constructor used; keep them, and keep them unique across concerns (the
 * stack refuses two resources with one id).
 *
 * A few values CDK derives from construct paths without going through
 * `allocateLogicalId`; those resources are created at {@link stackRoot}, each
 * with the reason next to it: the cluster (its generated admin secret's
 * logical id), the schema-migration provider (its framework function's
 * description) and the failed-executions rule (its dead-letter queue's policy
 * `Sid`). The security groups stay in the stack itself (rule ids embed the
 * peer group's path).
 */
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { EnvironmentName } from '../config.ts';
import { acknowledge } from '../nag.ts';

/**
 * A construct grouping one concern of the stack (database, secrets,
 * functions, ...). Transparent to logical ids: see the module comment.
 */
export abstract class ThawConcern extends Construct {}

/** Whether `scope` is a {@link ThawConcern} (left out of logical-id paths). */
export function isThawConcern(scope: unknown): scope is ThawConcern {
  return scope instanceof ThawConcern;
}

/**
 * The scope for resources whose synthesized template embeds their own
 * construct path outside `allocateLogicalId` (see the module comment): the
 * stack itself, so grouping the code by concern changes nothing in the
 * template.
 */
export function stackRoot(scope: Construct): Stack {
  return Stack.of(scope);
}

/** What the stack builds before any concern and hands to each of them. */
export interface Foundation {
  environment: EnvironmentName;
  /** `thaw-<env>`: prefix of every physical name. */
  prefix: string;
  /** The imported VPC (no lookups). */
  vpc: ec2.IVpc;
  /** Its private subnets, as a selection. */
  subnets: ec2.SubnetSelection;
  /** The same subnets by id (for L1 resources). */
  subnetIds: string[];
  /** The environment key: Aurora storage, secrets, logs, queues, topic, data bucket. */
  key: kms.IKey;
  /** RETAIN where the database is deletion-protected (prod), DESTROY otherwise. */
  removalPolicy: RemovalPolicy;
  logRetention: logs.RetentionDays;
}

/** A log group with the environment's retention, key and removal policy. */
export function encryptedLogGroup(scope: Construct, id: string, logGroupName: string, base: Foundation): logs.LogGroup {
  return new logs.LogGroup(scope, id, {
    logGroupName, retention: base.logRetention, encryptionKey: base.key, removalPolicy: base.removalPolicy,
  });
}

/** A KMS-encrypted, TLS-only dead-letter queue `thaw-<env>-<name>` keeping messages 14 days. */
export function deadLetterQueue(scope: Construct, id: string, name: string, base: Foundation): sqs.Queue {
  const q = new sqs.Queue(scope, id, {
    queueName: `${base.prefix}-${name}`,
    encryption: sqs.QueueEncryption.KMS,
    encryptionMasterKey: base.key,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
    removalPolicy: base.removalPolicy,
  });
  acknowledge(q, 'AwsSolutions-SQS3', 'This queue is itself a dead-letter queue; its depth alarm (ops/runbooks/dlq-*.md) is the escalation path.');
  return q;
}

/** PascalCase of a kebab-case function name: `copy-chunk` → `CopyChunk`. */
export function pascal(name: string): string {
  return name.split('-').map((p) => p[0].toUpperCase() + p.slice(1)).join('');
}
