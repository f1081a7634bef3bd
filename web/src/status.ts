// A device's status as a tile shows it: never by colour alone (each has an icon and a word).
import type { Alert, Device, Latest } from './api';

export type Status = 'ok' | 'warning' | 'alert' | 'offline' | 'battery';

export const statusText: Record<Status, string> = {
  ok: 'OK',
  warning: 'Warning',
  alert: 'Alert',
  offline: 'Offline',
  battery: 'Low battery',
};
export const statusIcon: Record<Status, string> = {
  ok: '✓',
  warning: '!',
  alert: '✖',
  offline: '⏸',
  battery: '▮',
};

export const kLowBattery = 20;

export function metricOf(latest: Latest | undefined, metric: string) {
  return latest?.metrics.find((m) => m.metric === metric);
}

export function deviceStatus(d: Device, latest: Latest | undefined, open: Alert[], now: number): { status: Status; why: string } {
  const mine = open.filter((a) => a.device === d.id);
  const critical = mine.find((a) => a.severity === 'critical' && a.kind !== 'offline');
  if (critical) return { status: 'alert', why: critical.rule_name };
  const offline = mine.find((a) => a.kind === 'offline');
  const silentFor = Math.max(15 * 60_000, 3 * (d.expected_interval_s ?? 60) * 1000);
  if (offline) return { status: 'offline', why: offline.rule_name };
  if (!latest || latest.last_seen === null) return { status: 'offline', why: 'no reading yet' };
  if (now - latest.last_seen > silentFor) return { status: 'offline', why: 'no recent reading' };
  const warning = mine.find((a) => a.kind !== 'battery');
  if (warning) return { status: 'warning', why: warning.rule_name };
  const t = metricOf(latest, 'temperature');
  if (t && d.target_max !== null && t.v > d.target_max) return { status: 'warning', why: `above ${d.target_max} °C` };
  if (t && d.target_min !== null && t.v < d.target_min) return { status: 'warning', why: `below ${d.target_min} °C` };
  const battery = metricOf(latest, 'battery');
  if (mine.length > 0 || (battery && battery.v < kLowBattery)) return { status: 'battery', why: 'replace the battery soon' };
  return { status: 'ok', why: 'within range' };
}
