/**
 * Acknowledging cdk-nag (v3) findings next to the resource they concern.
 *
 * cdk-nag 3 reads CDK's native `Validations.of(construct).acknowledge()`
 * metadata; an acknowledgement on a construct covers its children. Rules with
 * several findings per resource (IAM4, IAM5) are acknowledged one finding at a
 * time as `RuleId[finding]`, so a new wildcard never slips in unreviewed.
 */
import { CfnElement, Stack, Validations } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/** Acknowledge `rule` (or each of its `findings`) on `scope` with a written `reason`. */
export function acknowledge(scope: IConstruct, rule: string, reason: string, findings: string[] = []): void {
  if (reason.trim().length < 20) throw new Error(`acknowledgement of ${rule} on ${scope.node.path} needs a real reason`);
  const ids = findings.length > 0 ? findings.map((f) => `${rule}[${f}]`) : [rule];
  for (const id of ids) Validations.of(scope).acknowledge({ id, reason });
}

/** `<LogicalId.Arn>` as cdk-nag prints a `Fn::GetAtt [id, Arn]` in a finding. */
export function arnRef(resource: IConstruct): string {
  const cfn = (resource.node.defaultChild ?? resource) as CfnElement;
  return `<${Stack.of(resource).getLogicalId(cfn)}.Arn>`;
}
