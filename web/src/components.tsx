// Small shared pieces: status badges, the sparkline, notices, a copy button.
import { useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { statusIcon, statusText, type Status } from './status';
import { ApiError } from './api';

export function Badge({ status, why }: { status: Status; why?: string }) {
  return (
    <span class={`badge badge-${status}`} title={why}>
      <span aria-hidden="true" class="badge-icon">{statusIcon[status]}</span> {statusText[status]}
    </span>
  );
}

export function StateBadge({ state, severity }: { state: string; severity?: string }) {
  const s: Status = state === 'resolved' ? 'ok' : state === 'acknowledged' ? 'warning' : severity === 'critical' ? 'alert' : 'warning';
  const text = state === 'firing' ? `Firing${severity ? ' · ' + severity : ''}` : state === 'acknowledged' ? 'Acknowledged' : 'Resolved';
  return (
    <span class={`badge badge-${s}`}>
      <span aria-hidden="true" class="badge-icon">{statusIcon[s]}</span> {text}
    </span>
  );
}

// A 24-hour line as inline SVG (no chart library on the overview).
export function Sparkline({ points, label }: { points: [number, number][]; label: string }) {
  if (points.length < 2) return <div class="spark spark-empty">no history</div>;
  const w = 160;
  const h = 36;
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 0.5) { y0 -= 0.25; y1 += 0.25; }
  const d = points
    .map((p, i) => `${i ? 'L' : 'M'}${(((p[0] - x0) / (x1 - x0 || 1)) * w).toFixed(1)},${(h - 2 - ((p[1] - y0) / (y1 - y0)) * (h - 4)).toFixed(1)}`)
    .join('');
  return (
    <svg class="spark" viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" role="img" aria-label={label}>
      <path d={d} fill="none" stroke="currentColor" stroke-width="1.5" vector-effect="non-scaling-stroke" />
    </svg>
  );
}

export function Notice({ kind = 'info', children }: { kind?: 'info' | 'error' | 'success'; children: ComponentChildren }) {
  return (
    <div class={`notice notice-${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
      {children}
    </div>
  );
}

// A secret shown once: read-only field and a copy button.
export function ShownOnce({ label, secret }: { label: string; secret: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div class="shown-once" role="status">
      <label>
        {label} (shown once: copy it now)
        <input readOnly value={secret} class="secret" onFocus={(e) => (e.target as HTMLInputElement).select()} />
      </label>
      <button
        type="button"
        onClick={async () => {
          try {
            await navigator.clipboard.writeText(secret);
            setCopied(true);
          } catch {
            setCopied(false);
          }
        }}
      >
        {copied ? 'Copied' : 'Copy'}
      </button>
    </div>
  );
}

export function Loading() {
  return <p class="muted" role="status">Loading…</p>;
}

// An action of a settings form: clears the notices, runs `fn`, then shows `done` and reloads,
// or shows the API's error message.
export function actionRunner(setError: (m: string) => void, setMessage: (m: string) => void, reload: () => void) {
  return async (fn: () => Promise<unknown>, done: string) => {
    setError('');
    setMessage('');
    try {
      await fn();
      setMessage(done);
      reload();
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };
}
