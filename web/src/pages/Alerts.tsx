import { useEffect, useState } from 'preact/hooks';
import { ApiError, atLeast, get, post, type Alert, type Device, type Role } from '../api';
import { Loading, Notice, StateBadge } from '../components';
import { actor, ago, dateTime, duration, value } from '../format';
import { useLive } from '../live';

function useDeviceNames() {
  const [names, setNames] = useState(new Map<number, string>());
  useEffect(() => {
    get<Device[]>('/api/v1/devices').then((ds) => setNames(new Map(ds.map((d) => [d.id, d.name]))));
  }, []);
  return names;
}

export function AlertList({ search }: { search: URLSearchParams }) {
  const tab = search.get('tab') === 'past' ? 'past' : 'open';
  const [alerts, setAlerts] = useState<Alert[] | null>(null);
  const [error, setError] = useState('');
  const names = useDeviceNames();
  const reload = () =>
    get<Alert[]>(`/api/v1/alerts?state=${tab === 'open' ? 'open' : 'resolved'}&limit=200`)
      .then(setAlerts)
      .catch((e) => setError(e.message));
  useEffect(() => {
    setAlerts(null);
    reload();
  }, [tab]);
  useLive({ alert: reload, reconnected: reload }, [tab]);
  return (
    <>
      <h1>Alerts</h1>
      <nav class="tabs" aria-label="Alert lists">
        <a href="/alerts" aria-current={tab === 'open' ? 'page' : undefined}>Open</a>
        <a href="/alerts?tab=past" aria-current={tab === 'past' ? 'page' : undefined}>Past</a>
      </nav>
      {error && <Notice kind="error">{error}</Notice>}
      {!alerts ? (
        <Loading />
      ) : alerts.length === 0 ? (
        <p class="muted">{tab === 'open' ? 'No open alerts: everything is within its limits.' : 'No past alerts.'}</p>
      ) : (
        <table class="list" data-testid="alerts-table">
          <caption class="sr-only">{tab === 'open' ? 'Open alerts' : 'Past alerts'}</caption>
          <thead>
            <tr>
              <th scope="col">State</th>
              <th scope="col">Device and rule</th>
              <th scope="col">Started</th>
              <th scope="col">Peak</th>
              <th scope="col">{tab === 'open' ? 'Acknowledged' : 'Resolved'}</th>
            </tr>
          </thead>
          <tbody>
            {alerts.map((a) => (
              <tr key={a.id}>
                <td><StateBadge state={a.state} severity={a.severity} /></td>
                <td>
                  <a href={`/alerts/${a.id}`}>{names.get(a.device) ?? `Device ${a.device}`}: {a.rule_name}</a>
                  {a.late && <span class="tag">late</span>}
                  {a.unacknowledged && <span class="tag">never acknowledged</span>}
                </td>
                <td>{dateTime(a.started_at)}</td>
                <td>{value(a.peak, a.kind === 'threshold' ? 'Cel' : '')}</td>
                <td>{tab === 'open' ? (a.acknowledged_at ? actor(a.acknowledged_by) : 'not yet') : dateTime(a.resolved_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

export function AlertDetail({ id, role }: { id: number; role: Role }) {
  const [alert, setAlert] = useState<Alert | null>(null);
  const [error, setError] = useState('');
  const [note, setNote] = useState('');
  const [resolveNote, setResolveNote] = useState('');
  const [message, setMessage] = useState('');
  const names = useDeviceNames();
  const reload = () => get<Alert>(`/api/v1/alerts/${id}`).then(setAlert).catch((e) => setError(e.message));
  useEffect(() => {
    reload();
  }, [id]);
  useLive({ alert: (a) => a.id === id && reload(), reconnected: reload }, [id]);
  const act = async (what: 'ack' | 'resolve', text: string) => {
    setError('');
    setMessage('');
    try {
      const updated = await post<Alert>(`/api/v1/alerts/${id}/${what}`, { note: text });
      setMessage(what === 'ack' ? 'Acknowledged.' : 'Resolved.');
      setAlert({ ...updated, events: alert?.events });
      reload();
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };
  if (!alert) return error ? <Notice kind="error">{error}</Notice> : <Loading />;
  return (
    <>
      <p><a href="/alerts">← All alerts</a></p>
      <h1>
        {names.get(alert.device) ?? `Device ${alert.device}`}: {alert.rule_name}
      </h1>
      <p><StateBadge state={alert.state} severity={alert.severity} /> {alert.late && <span class="tag">late</span>}</p>
      <dl class="facts">
        <dt>Started</dt><dd>{dateTime(alert.started_at)} ({ago(Date.parse(alert.started_at))})</dd>
        <dt>Fired</dt><dd>{dateTime(alert.fired_at)}</dd>
        <dt>Value when it fired</dt><dd>{value(alert.value)}</dd>
        <dt>Worst value</dt><dd>{value(alert.peak)}</dd>
        <dt>Time out of range</dt><dd>{duration(alert.out_of_range_seconds)}</dd>
        <dt>Device</dt><dd><a href={`/devices/${alert.device}`}>{names.get(alert.device) ?? alert.device}</a></dd>
        {alert.acknowledged_at && (<><dt>Acknowledged</dt><dd>{dateTime(alert.acknowledged_at)} by {actor(alert.acknowledged_by)}: {alert.ack_note || '(no note)'}</dd></>)}
        {alert.resolved_at && (<><dt>Resolved</dt><dd>{dateTime(alert.resolved_at)} by {actor(alert.resolved_by)}{alert.resolve_note ? ': ' + alert.resolve_note : ''}</dd></>)}
      </dl>
      {message && <Notice kind="success">{message}</Notice>}
      {error && <Notice kind="error">{error}</Notice>}
      {alert.state === 'firing' && atLeast(role, 'member') && (
        <form class="card" onSubmit={(e) => { e.preventDefault(); act('ack', note); }}>
          <h2>Acknowledge</h2>
          <label for="ack-note">Corrective action (what did you do?)</label>
          <textarea id="ack-note" rows={3} value={note} onInput={(e) => setNote((e.target as HTMLTextAreaElement).value)} />
          <button type="submit">Acknowledge</button>
        </form>
      )}
      {alert.state !== 'resolved' && atLeast(role, 'admin') && (
        <form class="card" onSubmit={(e) => { e.preventDefault(); act('resolve', resolveNote); }}>
          <h2>Resolve by hand</h2>
          <label for="resolve-note">Why is it resolved?</label>
          <textarea id="resolve-note" rows={2} required value={resolveNote} onInput={(e) => setResolveNote((e.target as HTMLTextAreaElement).value)} />
          <button type="submit" class="secondary">Resolve</button>
        </form>
      )}
      <section aria-labelledby="history">
        <h2 id="history">History</h2>
        <ol class="events" data-testid="alert-events">
          {(alert.events ?? []).map((e) => (
            <li key={e.id}>
              <strong>{e.kind}</strong> <time dateTime={e.at}>{dateTime(e.at)}</time> · {actor(e.actor)}
              {e.note && <blockquote>{e.note}</blockquote>}
            </li>
          ))}
        </ol>
      </section>
    </>
  );
}
