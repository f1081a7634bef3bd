// Numbers and times as people read them (the browser's locale and time zone).

export function ago(ms: number | null, now = Date.now()): string {
  if (ms === null) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.round(h / 24)} days ago`;
}

export function duration(seconds: number | null): string {
  if (seconds === null) return '—';
  if (seconds < 60) return `${seconds} s`;
  const m = Math.round(seconds / 60);
  if (m < 120) return `${m} min`;
  return `${(m / 60).toFixed(1)} h`;
}

export function unitLabel(unit: string): string {
  if (unit === 'Cel') return '°C';
  if (unit === '%RH') return '% RH';
  if (unit === '%EL') return '%';
  return unit;
}

export function value(v: number | null | undefined, unit = '', digits = 1): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return `${v.toFixed(digits)}${unit ? ' ' + unitLabel(unit) : ''}`;
}

export function dateTime(t: string | number | null): string {
  if (t === null || t === '') return '—';
  return new Date(t).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function actor(a: string): string {
  // "user:7 <ann@example.com>" -> "ann@example.com"
  const m = /<([^>]+)>/.exec(a);
  return m ? m[1] : a;
}
