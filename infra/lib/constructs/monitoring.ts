/**
 * Monitoring of one environment: the encrypted alarm topic (with the
 * optional e-mail subscription) that the workflow also publishes failures
 * to, and — once the resources to watch exist — the alarm set of
 * `../alarms.ts` (every alarm notifies the topic and links its runbook under
 * `ops/runbooks/`).
 */
import * as sns from 'aws-cdk-lib/aws-sns';
import * as snsSubscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { ThawAlarms, ThawAlarmsProps } from '../alarms.ts';
import { EnvironmentConfig } from '../config.ts';
import { Foundation, ThawConcern } from './common.ts';

/** Inputs of {@link ThawMonitoring}. */
export interface ThawMonitoringProps {
  foundation: Foundation;
  alarms: EnvironmentConfig['alarms'];
}

/** The topic now, the alarms with {@link addAlarms}. */
export class ThawMonitoring extends ThawConcern {
  readonly topic: sns.Topic;
  private alarmSet?: ThawAlarms;

  constructor(scope: Construct, id: string, props: ThawMonitoringProps) {
    super(scope, id);
    const base = props.foundation;
    this.topic = new sns.Topic(this, 'AlarmTopic', {
      topicName: `${base.prefix}-alarms`, displayName: `thaw ${base.environment} alarms`, masterKey: base.key, enforceSSL: true,
    });
    if (props.alarms.email) this.topic.addSubscription(new snsSubscriptions.EmailSubscription(props.alarms.email));
  }

  /** The alarms, once {@link addAlarms} ran. */
  get alarms(): ThawAlarms | undefined {
    return this.alarmSet;
  }

  /** Create the alarm set (construct id `Alarms`) for the given resources, notifying {@link topic}. */
  addAlarms(props: Omit<ThawAlarmsProps, 'topic'>): ThawAlarms {
    if (this.alarmSet) throw new Error(`${this.node.path} already has its alarms`);
    this.alarmSet = new ThawAlarms(this, 'Alarms', { ...props, topic: this.topic });
    return this.alarmSet;
  }
}
