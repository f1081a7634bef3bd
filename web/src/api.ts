// The HTTP API as the dashboard uses it: same-origin fetch with the session cookie; writes carry
// the session's CSRF token (docs/api.md, "Signing in, sessions and permissions").

export type Role = 'viewer' | 'member' | 'admin' | 'owner';

export interface Session {
  email: string;
  org: number;
  role: Role;
  user: number;
  csrf_token: string | null;
  organisations: { org: number; name: string; role: Role }[];
}

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

let csrf: string | null = null;
export function setCsrf(token: string | null) {
  csrf = token;
}

// Called when the server says the session is gone (401): the app shows the sign-in page.
let onSignedOut: () => void = () => {};
export function setSignedOutHandler(fn: () => void) {
  onSignedOut = fn;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
    if (res.status === 401 && path !== '/api/v1/auth/session') onSignedOut();
    throw new ApiError(res.status, err?.code ?? 'error', err?.message ?? `${res.status} ${res.statusText}`);
  }
  return data as T;
}

export const get = <T>(path: string) => api<T>('GET', path);
export const post = <T>(path: string, body: unknown = {}) => api<T>('POST', path, body);
export const patch = <T>(path: string, body: unknown) => api<T>('PATCH', path, body);
export const del = <T>(path: string) => api<T>('DELETE', path);

const rank: Record<Role, number> = { viewer: 0, member: 1, admin: 2, owner: 3 };
// Whether `role` reaches `min` (the permission table, src/people/permissions.cpp).
export function atLeast(role: Role, min: Role): boolean {
  return rank[role] >= rank[min];
}

// ---- shapes of the answers ----------------------------------------------------------------

export interface Device {
  id: number;
  name: string;
  site: number | null;
  serial: string | null;
  decommissioned: boolean;
  target_min: number | null;
  target_max: number | null;
  expected_interval_s: number | null;
}
export interface Site {
  id: number;
  name: string;
  auto_register: boolean;
}
export interface LatestMetric {
  metric: string;
  unit: string;
  t: number;
  v: number;
}
export interface Latest {
  device: number;
  name?: string;
  metrics: LatestMetric[];
  last_seen: number | null;
}
export interface Alert {
  id: number;
  rule: number;
  rule_name: string;
  device: number;
  kind: string;
  metric: string;
  severity: 'warning' | 'critical';
  state: 'firing' | 'acknowledged' | 'resolved';
  late: boolean;
  started_at: string;
  fired_at: string;
  value: number;
  peak: number | null;
  out_of_range_seconds: number;
  duration_seconds: number | null;
  acknowledged_at: string | null;
  acknowledged_by: string;
  ack_note: string;
  resolved_at: string | null;
  resolved_by: string;
  resolve_note: string;
  unacknowledged: boolean;
  events?: AlertEvent[];
}
export interface AlertEvent {
  id: number;
  kind: string;
  at: string;
  actor: string;
  note: string;
  details: Record<string, unknown>;
}
export interface SeriesPoint {
  t: number;
  v: number;
  min?: number;
  max?: number;
  count?: number;
}
export interface Series {
  device: number;
  metric: string;
  unit: string;
  resolution: string;
  points: SeriesPoint[];
}
export interface Sparklines {
  metric: string;
  from: number;
  to: number;
  devices: { device: number; unit: string; points: [number, number][] }[];
}
export interface Rule {
  id: number;
  name: string;
  enabled: boolean;
  kind: 'threshold' | 'offline' | 'battery';
  severity: 'warning' | 'critical';
  device?: number;
  site?: number;
  metric?: string;
  above?: number;
  below?: number;
  hysteresis?: number;
  delay_minutes: number;
  offline_after_minutes?: number;
  require_note: boolean;
  notify: { email?: string; channel?: number }[];
  schedule?: { days: string[]; from: string; to: string };
}
export interface Channel {
  id: number;
  kind: 'email' | 'telegram' | 'webhook';
  name: string;
  target: string;
  enabled: boolean;
  created_at: string;
}
