import { useEffect, useState } from 'preact/hooks';
import { get, type Alert, type Device, type Latest, type Site, type Sparklines } from '../api';
import { Badge, Loading, Notice, Sparkline, StateBadge } from '../components';
import { ago, value } from '../format';
import { useLive } from '../live';
import { deviceStatus, metricOf } from '../status';

interface Data {
  devices: Device[];
  sites: Site[];
  latest: Map<number, Latest>;
  sparks: Map<number, [number, number][]>;
  open: Alert[];
}

async function load(): Promise<Data> {
  const [devices, sites, latest, sparks, open] = await Promise.all([
    get<Device[]>('/api/v1/devices'),
    get<Site[]>('/api/v1/sites'),
    get<{ devices: Latest[] }>('/api/v1/latest'),
    get<Sparklines>('/api/v1/sparklines?metric=temperature&hours=24'),
    get<Alert[]>('/api/v1/alerts?state=open&limit=200'),
  ]);
  return {
    devices: devices.filter((d) => !d.decommissioned),
    sites,
    latest: new Map(latest.devices.map((l) => [l.device, l])),
    sparks: new Map(sparks.devices.map((s) => [s.device, s.points])),
    open,
  };
}

export function Overview() {
  const [data, setData] = useState<Data | null>(null);
  const [error, setError] = useState('');
  const [now, setNow] = useState(Date.now());
  const reload = () =>
    load()
      .then((d) => {
        setData(d);
        setError('');
      })
      .catch((e) => setError(String(e.message ?? e)));
  useEffect(() => {
    reload();
    const timer = setInterval(() => setNow(Date.now()), 15_000);
    return () => clearInterval(timer);
  }, []);
  useLive(
    {
      readings: (readings) =>
        setData((d) => {
          if (!d) return d;
          const latest = new Map(d.latest);
          for (const r of readings) {
            const l = latest.get(r.device) ?? { device: r.device, metrics: [], last_seen: null };
            if (l.metrics.some((m) => m.metric === r.metric && m.t > r.t)) continue;  // a late reading
            const before = l.metrics.find((m) => m.metric === r.metric);
            const metrics = l.metrics.filter((m) => m.metric !== r.metric);
            // A reading posted without a unit is stored with the series' unit: keep the one known.
            metrics.push({ metric: r.metric, unit: r.unit || before?.unit || '', t: r.t, v: r.v });
            latest.set(r.device, { ...l, metrics, last_seen: Math.max(l.last_seen ?? 0, r.t) });
          }
          setNow(Date.now());
          return { ...d, latest };
        }),
      alert: () => {
        get<Alert[]>('/api/v1/alerts?state=open&limit=200').then((open) => setData((d) => (d ? { ...d, open } : d)));
      },
      reconnected: reload,
    },
    [],
  );
  if (error) return <Notice kind="error">Could not load the overview: {error}</Notice>;
  if (!data) return <Loading />;
  const names = new Map(data.devices.map((d) => [d.id, d.name]));
  const groups: { site: Site | null; devices: Device[] }[] = data.sites.map((s) => ({
    site: s,
    devices: data.devices.filter((d) => d.site === s.id),
  }));
  const unsited = data.devices.filter((d) => d.site === null || !data.sites.some((s) => s.id === d.site));
  if (unsited.length > 0) groups.push({ site: null, devices: unsited });
  const statuses = data.devices.map((d) => deviceStatus(d, data.latest.get(d.id), data.open, now).status);
  const notOk = statuses.filter((s) => s !== 'ok').length;
  return (
    <>
      <h1>Overview</h1>
      <p class={`summary ${notOk ? 'summary-bad' : 'summary-good'}`} role="status">
        {notOk === 0
          ? `All ${data.devices.length} devices are fine.`
          : `${notOk} of ${data.devices.length} devices need attention.`}
      </p>
      <section aria-labelledby="open-alerts" class="open-alerts">
        <h2 id="open-alerts">Open alerts ({data.open.length})</h2>
        {data.open.length === 0 ? (
          <p class="muted">No open alerts.</p>
        ) : (
          <ul class="alert-list" data-testid="open-alerts">
            {data.open.map((a) => (
              <li key={a.id} class={`alert-item alert-${a.state}`}>
                <StateBadge state={a.state} severity={a.severity} />{' '}
                <a href={`/alerts/${a.id}`}>
                  {names.get(a.device) ?? `Device ${a.device}`}: {a.rule_name}
                </a>{' '}
                <span class="muted">since {ago(Date.parse(a.started_at), now)}</span>
              </li>
            ))}
          </ul>
        )}
      </section>
      {groups.map((g) => (
        <section key={g.site?.id ?? 0} aria-label={g.site ? g.site.name : 'Devices without a site'}>
          <h2>{g.site ? g.site.name : 'No site'}</h2>
          <ul class="tiles">
            {g.devices.map((d) => {
              const l = data.latest.get(d.id);
              const t = metricOf(l, 'temperature');
              const h = metricOf(l, 'humidity');
              const b = metricOf(l, 'battery');
              const s = deviceStatus(d, l, data.open, now);
              return (
                <li key={d.id} class={`tile tile-${s.status}`} data-testid="device-tile" data-device={d.id}>
                  <a href={`/devices/${d.id}`} class="tile-link" aria-label={`${d.name}: ${s.status}, ${value(t?.v, t?.unit)}`}>
                    <div class="tile-head">
                      <span class="tile-name">{d.name}</span>
                      <Badge status={s.status} why={s.why} />
                    </div>
                    <div class="tile-value" data-testid="tile-value">
                      {value(t?.v, t?.unit || 'Cel')}
                    </div>
                    <div class="tile-meta">
                      {h && <span>{value(h.v, h.unit, 0)}</span>}
                      {b && b.v < 20 && <span>battery {value(b.v, '', 0)} %</span>}
                      <span>seen {ago(l?.last_seen ?? null, now)}</span>
                    </div>
                    <Sparkline points={data.sparks.get(d.id) ?? []} label={`${d.name}, temperature over the last 24 hours`} />
                  </a>
                </li>
              );
            })}
          </ul>
        </section>
      ))}
    </>
  );
}
