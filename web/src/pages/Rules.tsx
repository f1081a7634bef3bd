import { useEffect, useState } from 'preact/hooks';
import { ApiError, atLeast, del, get, patch, post, type Device, type Role, type Rule, type Site } from '../api';
import { Loading, Notice } from '../components';
import { describeRule } from '../rules';

const days = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

interface Form {
  name: string;
  kind: Rule['kind'];
  scope: string; // "org", "device:3", "site:2"
  metric: string;
  above: string;
  below: string;
  hysteresis: string;
  delay: string;
  offline: string;
  severity: Rule['severity'];
  require_note: boolean;
  enabled: boolean;
  emails: string;
  scheduled: boolean;
  days: string[];
  from: string;
  to: string;
}

const empty: Form = {
  name: '', kind: 'threshold', scope: 'org', metric: 'temperature', above: '8', below: '', hysteresis: '0.5',
  delay: '10', offline: '30', severity: 'critical', require_note: false, enabled: true, emails: '',
  scheduled: false, days: days.slice(0, 5), from: '08:00', to: '18:00',
};

function toForm(r: Rule): Form {
  return {
    name: r.name, kind: r.kind, scope: r.device !== undefined ? `device:${r.device}` : r.site !== undefined ? `site:${r.site}` : 'org',
    metric: r.metric ?? 'temperature', above: r.above?.toString() ?? '', below: r.below?.toString() ?? '',
    hysteresis: r.hysteresis?.toString() ?? '', delay: String(r.delay_minutes ?? 0), offline: String(r.offline_after_minutes ?? 30),
    severity: r.severity, require_note: r.require_note, enabled: r.enabled,
    emails: r.notify.filter((n) => n.email).map((n) => n.email).join(', '),
    scheduled: !!r.schedule, days: r.schedule?.days ?? days.slice(0, 5), from: r.schedule?.from ?? '08:00', to: r.schedule?.to ?? '18:00',
  };
}

function toDefinition(f: Form, existing?: Rule): Record<string, unknown> {
  const num = (s: string) => (s.trim() === '' ? null : Number(s));
  const d: Record<string, unknown> = {
    name: f.name, kind: f.kind, severity: f.severity, delay_minutes: Number(f.delay || 0),
    require_note: f.require_note, enabled: f.enabled,
    notify: f.emails.split(',').map((e) => e.trim()).filter(Boolean).map((email) => ({ email })),
    device: null, site: null,
  };
  if (f.scope.startsWith('device:')) d.device = Number(f.scope.slice(7));
  if (f.scope.startsWith('site:')) d.site = Number(f.scope.slice(5));
  if (f.kind === 'offline') {
    d.offline_after_minutes = Number(f.offline || 30);
  } else {
    d.metric = f.kind === 'battery' ? 'battery' : f.metric;
    d.above = f.kind === 'battery' ? null : num(f.above);
    d.below = num(f.below);
    d.hysteresis = num(f.hysteresis) ?? 0;
  }
  d.schedule = f.scheduled ? { days: f.days, from: f.from, to: f.to } : null;
  if (!existing) {
    // A new rule: leave out what is null (a merge patch uses null to remove).
    for (const k of Object.keys(d)) if (d[k] === null) delete d[k];
  }
  return d;
}

export function Rules({ role, search }: { role: Role; search: URLSearchParams }) {
  const [rules, setRules] = useState<Rule[] | null>(null);
  const [devices, setDevices] = useState<Device[]>([]);
  const [sites, setSites] = useState<Site[]>([]);
  const [editing, setEditing] = useState<Rule | 'new' | null>(null);
  const [form, setForm] = useState<Form>(empty);
  const [error, setError] = useState('');
  const [message, setMessage] = useState('');
  const admin = atLeast(role, 'admin');
  const reload = () => get<Rule[]>('/api/v1/alert-rules').then(setRules).catch((e) => setError(e.message));
  useEffect(() => {
    reload();
    get<Device[]>('/api/v1/devices').then(setDevices);
    get<Site[]>('/api/v1/sites').then(setSites);
  }, []);
  useEffect(() => {
    const id = Number(search.get('edit'));
    const r = rules?.find((x) => x.id === id);
    if (r && admin) {
      setEditing(r);
      setForm(toForm(r));
    }
  }, [rules, search.get('edit')]);
  const set = (k: keyof Form) => (e: Event) => {
    const t = e.target as HTMLInputElement;
    setForm({ ...form, [k]: t.type === 'checkbox' ? t.checked : t.value });
  };
  const save = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      if (editing === 'new') await post('/api/v1/alert-rules', toDefinition(form));
      else if (editing) await patch(`/api/v1/alert-rules/${editing.id}`, toDefinition(form, editing));
      setMessage(editing === 'new' ? `Rule "${form.name}" created.` : `Rule "${form.name}" saved.`);
      setEditing(null);
      reload();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  const remove = async (r: Rule) => {
    if (!confirm(`Delete the rule "${r.name}"? Its open alerts are resolved; their history stays.`)) return;
    try {
      await del(`/api/v1/alert-rules/${r.id}`);
      reload();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  const scopeName = (r: Rule) =>
    r.device !== undefined ? devices.find((d) => d.id === r.device)?.name ?? `device ${r.device}`
      : r.site !== undefined ? `site ${sites.find((s) => s.id === r.site)?.name ?? r.site}` : 'every device';
  return (
    <>
      <h1>Alert rules</h1>
      {message && <Notice kind="success">{message}</Notice>}
      {error && <Notice kind="error">{error}</Notice>}
      {admin && editing === null && (
        <button type="button" onClick={() => { setEditing('new'); setForm(empty); setMessage(''); }}>New rule</button>
      )}
      {editing !== null && (
        <form class="card rule-form" onSubmit={save} aria-labelledby="rule-form-h">
          <h2 id="rule-form-h">{editing === 'new' ? 'New rule' : `Edit "${editing.name}"`}</h2>
          <label>Name <input required value={form.name} onInput={set('name')} /></label>
          <label>Kind
            <select value={form.kind} onChange={set('kind')}>
              <option value="threshold">Threshold (a value out of range)</option>
              <option value="offline">Offline (no readings)</option>
              <option value="battery">Battery low</option>
            </select>
          </label>
          <label>Watches
            <select value={form.scope} onChange={set('scope')}>
              <option value="org">Every device</option>
              {sites.map((s) => <option key={s.id} value={`site:${s.id}`}>Site: {s.name}</option>)}
              {devices.map((d) => <option key={d.id} value={`device:${d.id}`}>Device: {d.name}</option>)}
            </select>
          </label>
          {form.kind === 'threshold' && (
            <>
              <label>Metric
                <select value={form.metric} onChange={set('metric')}>
                  <option value="temperature">temperature (°C)</option>
                  <option value="humidity">humidity (% RH)</option>
                </select>
              </label>
              <label>Above <input type="number" step="any" value={form.above} onInput={set('above')} /></label>
              <label>Below <input type="number" step="any" value={form.below} onInput={set('below')} /></label>
              <label>Hysteresis <input type="number" step="any" min="0" value={form.hysteresis} onInput={set('hysteresis')} /></label>
            </>
          )}
          {form.kind === 'battery' && <label>Below (%) <input type="number" step="any" value={form.below} onInput={set('below')} /></label>}
          {form.kind === 'offline' && <label>No reading for (minutes) <input type="number" min="1" value={form.offline} onInput={set('offline')} /></label>}
          <label>Delay (minutes out of range before it fires) <input type="number" min="0" value={form.delay} onInput={set('delay')} /></label>
          <label>Severity
            <select value={form.severity} onChange={set('severity')}>
              <option value="warning">warning</option>
              <option value="critical">critical</option>
            </select>
          </label>
          <label>Notify (e-mail addresses, comma-separated) <input value={form.emails} onInput={set('emails')} /></label>
          <label class="check"><input type="checkbox" checked={form.require_note} onChange={set('require_note')} /> Acknowledging needs a corrective-action note</label>
          <label class="check"><input type="checkbox" checked={form.enabled} onChange={set('enabled')} /> Enabled</label>
          <fieldset>
            <legend>Schedule</legend>
            <label class="check"><input type="checkbox" checked={form.scheduled} onChange={set('scheduled')} /> Only during opening hours</label>
            {form.scheduled && (
              <>
                <div class="days">
                  {days.map((d) => (
                    <label key={d} class="check">
                      <input type="checkbox" checked={form.days.includes(d)} onChange={(e) => setForm({ ...form, days: (e.target as HTMLInputElement).checked ? [...form.days, d] : form.days.filter((x) => x !== d) })} /> {d}
                    </label>
                  ))}
                </div>
                <label>From <input type="time" value={form.from} onInput={set('from')} /></label>
                <label>To <input type="time" value={form.to} onInput={set('to')} /></label>
              </>
            )}
          </fieldset>
          <div class="actions">
            <button type="submit">Save rule</button>
            <button type="button" class="secondary" onClick={() => setEditing(null)}>Cancel</button>
          </div>
        </form>
      )}
      {!rules ? <Loading /> : rules.length === 0 ? <p class="muted">No rules yet.</p> : (
        <table class="list">
          <caption class="sr-only">Alert rules</caption>
          <thead><tr><th scope="col">Rule</th><th scope="col">Watches</th><th scope="col">Condition</th>{admin && <th scope="col">Actions</th>}</tr></thead>
          <tbody>
            {rules.map((r) => (
              <tr key={r.id}>
                <td>{r.name}</td>
                <td>{scopeName(r)}</td>
                <td>{describeRule(r)}</td>
                {admin && (
                  <td class="actions">
                    <button type="button" class="secondary" onClick={() => { setEditing(r); setForm(toForm(r)); setMessage(''); }}>Edit</button>
                    <button type="button" class="danger" onClick={() => remove(r)}>Delete</button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
