/**
 * Shared test fixtures: synthesize an environment's stack in-process without
 * building the Lambdas (`aws:cdk:bundling-stacks` = []), with the feature
 * flags of cdk.json, and cache the result per environment.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildStack } from '../lib/app.ts';
import { EnvironmentName, loadConfig } from '../lib/config.ts';
import { ThawStack } from '../lib/thaw-stack.ts';

export const INFRA_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = join(INFRA_DIR, '..');

const cdkContext = JSON.parse(readFileSync(join(INFRA_DIR, 'cdk.json'), 'utf8')).context as Record<string, unknown>;

/** A resource of a synthesized template. */
export type Resource = { Type: string; Properties: Record<string, any>; DeletionPolicy?: string };

/** The resources of `type` in `template`. */
export function resourcesOf(template: Template, type: string): Resource[] {
  return Object.values(template.findResources(type)) as Resource[];
}

/** A synthesized environment. */
export interface Synthesized { app: App; stack: ThawStack; template: Template }

const cache = new Map<string, Synthesized>();

/** A fresh App with cdk.json's context that bundles nothing (how every test synthesizes). */
export function testApp(): App {
  return new App({ context: { ...cdkContext, 'aws:cdk:bundling-stacks': [] } });
}

/** Synthesize `env` (x86_64 unless `arch` says otherwise), cached. */
export function synth(env: EnvironmentName, arch = 'x86_64'): Synthesized {
  const cacheKey = `${env}/${arch}`;
  const hit = cache.get(cacheKey);
  if (hit) return hit;
  const app = testApp();
  const stack = buildStack(app, loadConfig(env), { repoRoot: REPO_ROOT, architectureOverride: arch });
  const result = { app, stack, template: Template.fromStack(stack) };
  cache.set(cacheKey, result);
  return result;
}

/** The state-machine definition after CloudFormation's substitutions, with ARNs as `${Placeholder}` values resolved to readable markers. */
export function renderedDefinition(template: Template): Record<string, unknown> {
  const sm = Object.values(template.findResources('AWS::StepFunctions::StateMachine'))[0] as {
    Properties: { DefinitionString: string; DefinitionSubstitutions: Record<string, unknown> };
  };
  let text = sm.Properties.DefinitionString;
  for (const [name, value] of Object.entries(sm.Properties.DefinitionSubstitutions)) {
    const literal = typeof value === 'string' ? value : `arn:aws:lambda:us-east-1:111111111111:function:token-${name}`;
    text = text.split(`\${${name}}`).join(literal);
  }
  return JSON.parse(text) as Record<string, unknown>;
}
