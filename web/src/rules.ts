// How a rule reads in a list.
import type { Rule } from './api';

export function describeRule(r: Rule): string {
  const parts: string[] = [r.severity];
  if (r.kind === 'offline') parts.push(`no reading for ${r.offline_after_minutes} min`);
  else {
    if (r.above !== undefined) parts.push(`${r.metric} above ${r.above}`);
    if (r.below !== undefined) parts.push(`${r.metric} below ${r.below}`);
  }
  if (r.delay_minutes) parts.push(`after ${r.delay_minutes} min`);
  if (!r.enabled) parts.push('disabled');
  return parts.join(', ');
}
