import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { ApiError, atLeast, get, post, type Alert, type Device, type Latest, type Role, type Rule, type Series, type Site } from '../api';
import { Badge, Loading, Notice, ShownOnce } from '../components';
import { ago, dateTime, unitLabel, value } from '../format';
import { useLive } from '../live';
import { describeRule } from '../rules';
import { navigate } from '../router';
import { deviceStatus } from '../status';

const ranges: { key: string; label: string; ms: number }[] = [
  { key: '6h', label: '6 h', ms: 6 * 3600_000 },
  { key: '24h', label: '24 h', ms: 24 * 3600_000 },
  { key: '7d', label: '7 d', ms: 7 * 86400_000 },
  { key: '30d', label: '30 d', ms: 30 * 86400_000 },
  { key: '1y', label: '1 y', ms: 365 * 86400_000 },
];

function toLocalInput(ms: number) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

interface ChartProps {
  series: Series;
  lines: { value: number; label: string }[];
  shaded: { from: number; to: number }[];
}

function Chart({ series, lines, shaded }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const xs = series.points.map((p) => p.t / 1000);
    const banded = series.resolution !== 'raw';
    const data: uPlot.AlignedData = [
      xs,
      series.points.map((p) => p.v),
      series.points.map((p) => (banded ? p.min ?? null : null)),
      series.points.map((p) => (banded ? p.max ?? null : null)),
    ];
    const unit = unitLabel(series.unit);
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height: 320,
      scales: {
        y: {
          range: (_u, lo, hi) => {
            const all = [lo, hi, ...lines.map((l) => l.value)].filter((v) => Number.isFinite(v));
            const a = Math.min(...all), b = Math.max(...all);
            const pad = Math.max(0.5, (b - a) * 0.08);
            return [a - pad, b + pad];
          },
        },
      },
      axes: [{}, { label: unit, size: 56 }],
      series: [
        {},
        { label: `${series.metric} (${series.resolution})`, stroke: '#0b5cad', width: 2, value: (_u, v) => (v == null ? '—' : `${v.toFixed(2)} ${unit}`) },
        { label: 'min', stroke: 'rgba(11,92,173,0.35)', width: 1, show: banded },
        { label: 'max', stroke: 'rgba(11,92,173,0.35)', width: 1, show: banded },
      ],
      bands: banded ? [{ series: [3, 2], fill: 'rgba(11,92,173,0.12)' }] : [],
      hooks: {
        drawClear: [
          (u) => {
            const ctx = u.ctx;
            ctx.save();
            ctx.fillStyle = 'rgba(200,30,30,0.10)';
            for (const s of shaded) {
              const x0 = u.valToPos(s.from / 1000, 'x', true);
              const x1 = u.valToPos(s.to / 1000, 'x', true);
              const left = Math.max(u.bbox.left, x0), right = Math.min(u.bbox.left + u.bbox.width, x1);
              if (right > left) ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height);
            }
            ctx.restore();
          },
        ],
        draw: [
          (u) => {
            const ctx = u.ctx;
            ctx.save();
            ctx.setLineDash([6, 4]);
            ctx.strokeStyle = '#b3261e';
            ctx.fillStyle = '#b3261e';
            ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
            for (const l of lines) {
              const y = u.valToPos(l.value, 'y', true);
              ctx.beginPath();
              ctx.moveTo(u.bbox.left, y);
              ctx.lineTo(u.bbox.left + u.bbox.width, y);
              ctx.stroke();
              ctx.fillText(l.label, u.bbox.left + 4, y - 4);
            }
            ctx.restore();
          },
        ],
      },
    };
    const plot = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height: 320 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [series, lines, shaded]);
  return <div ref={box} class="chart" role="img" aria-label={`Chart of ${series.metric}, ${series.points.length} points at ${series.resolution} resolution`} />;
}

export function DevicePage({ id, role, search }: { id: number; role: Role; search: URLSearchParams }) {
  const [device, setDevice] = useState<Device | null>(null);
  const [site, setSite] = useState<Site | null>(null);
  const [latest, setLatest] = useState<Latest | null>(null);
  const [rules, setRules] = useState<Rule[]>([]);
  const [alerts, setAlerts] = useState<Alert[]>([]);
  const [open, setOpen] = useState<Alert[]>([]);
  const [series, setSeries] = useState<Series | null>(null);
  const [error, setError] = useState('');
  const [token, setToken] = useState('');
  const rangeKey = search.get('range') ?? '24h';
  const metric = search.get('metric') ?? 'temperature';
  const now = Date.now();
  const [customFrom, setCustomFrom] = useState(toLocalInput(now - 3 * 86400_000));
  const [customTo, setCustomTo] = useState(toLocalInput(now));
  const range = ranges.find((r) => r.key === rangeKey);
  const from = range ? now - range.ms : Date.parse(search.get('from') ?? '') || now - 86400_000;
  const to = range ? now : Date.parse(search.get('to') ?? '') || now;

  useEffect(() => {
    Promise.all([
      get<Device>(`/api/v1/devices/${id}`),
      get<Latest>(`/api/v1/devices/${id}/latest`),
      get<Rule[]>('/api/v1/alert-rules'),
      get<Alert[]>(`/api/v1/alerts?state=open&device=${id}`),
    ])
      .then(async ([d, l, rs, op]) => {
        setDevice(d);
        setLatest(l);
        setOpen(op);
        setRules(rs.filter((r) => r.device === d.id || (r.site !== undefined && r.site === d.site) || (r.device === undefined && r.site === undefined)));
        if (d.site !== null) setSite(await get<Site>(`/api/v1/sites/${d.site}`));
      })
      .catch((e) => setError(e.message));
  }, [id]);
  useEffect(() => {
    setSeries(null);
    const q = `metric=${encodeURIComponent(metric)}&from=${Math.floor(from)}&to=${Math.floor(to)}&resolution=auto`;
    get<Series>(`/api/v1/devices/${id}/series?${q}`)
      .then(setSeries)
      .catch((e) => (e instanceof ApiError && e.status === 404 ? setSeries({ device: id, metric, unit: '', resolution: 'raw', points: [] }) : setError(e.message)));
    get<Alert[]>(`/api/v1/alerts?device=${id}&from=${Math.floor(from)}&limit=500`).then(setAlerts).catch(() => setAlerts([]));
  }, [id, rangeKey, metric, search.get('from'), search.get('to')]);
  useLive(
    {
      readings: (rs) => {
        const mine = rs.filter((r) => r.device === id);
        if (mine.length === 0) return;
        setLatest((l) => {
          const metrics = (l?.metrics ?? []).filter((m) => !mine.some((r) => r.metric === m.metric));
          for (const r of mine) {
            const before = l?.metrics.find((m) => m.metric === r.metric);
            metrics.push({ metric: r.metric, unit: r.unit || before?.unit || '', t: r.t, v: r.v });
          }
          return { device: id, metrics, last_seen: Math.max(l?.last_seen ?? 0, ...mine.map((r) => r.t)) };
        });
      },
      alert: (a) => {
        if (a.device === id) get<Alert[]>(`/api/v1/alerts?state=open&device=${id}`).then(setOpen);
      },
    },
    [id],
  );

  if (error) return <Notice kind="error">{error}</Notice>;
  if (!device) return <Loading />;
  const status = deviceStatus(device, latest ?? undefined, open, Date.now());
  const lines: { value: number; label: string }[] = [];
  if (metric === 'temperature') {
    if (device.target_max !== null) lines.push({ value: device.target_max, label: `target max ${device.target_max}` });
    if (device.target_min !== null) lines.push({ value: device.target_min, label: `target min ${device.target_min}` });
  }
  for (const r of rules) {
    if (r.kind === 'offline' || (r.metric ?? 'temperature') !== metric) continue;
    if (r.above !== undefined) lines.push({ value: r.above, label: `${r.name}: above ${r.above}` });
    if (r.below !== undefined) lines.push({ value: r.below, label: `${r.name}: below ${r.below}` });
  }
  const shaded = alerts
    .filter((a) => a.kind !== 'offline')
    .map((a) => ({ from: Date.parse(a.started_at), to: a.resolved_at ? Date.parse(a.resolved_at) : Date.now() }));
  const link = (params: Record<string, string>) => {
    const p = new URLSearchParams({ metric, ...params });
    return `/devices/${id}?${p}`;
  };
  const rotate = async () => {
    if (!confirm(`Issue a new token for ${device.name}? The current token stops working now.`)) return;
    try {
      const r = await post<{ token: string }>(`/api/v1/devices/${id}/token`, {});
      setToken(r.token);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };
  return (
    <>
      <p><a href="/">← Overview</a></p>
      <h1>{device.name}</h1>
      <p>
        <Badge status={status.status} why={status.why} /> <span class="muted">{status.why}</span>
        {site && <span class="muted"> · {site.name}</span>}
        {device.serial && <span class="muted"> · serial {device.serial}</span>}
      </p>
      <section aria-labelledby="latest-h">
        <h2 id="latest-h">Latest values</h2>
        <ul class="latest" data-testid="latest-values">
          {(latest?.metrics ?? []).map((m) => (
            <li key={m.metric}>
              <span class="muted">{m.metric}</span> <strong>{value(m.v, m.unit, m.metric === 'door' ? 0 : 1)}</strong>{' '}
              <span class="muted">{ago(m.t)}</span>
            </li>
          ))}
        </ul>
      </section>
      <section aria-labelledby="chart-h">
        <h2 id="chart-h">History</h2>
        <div class="toolbar">
          <nav aria-label="Metric" class="tabs">
            {['temperature', 'humidity', 'battery'].map((m) => (
              <a key={m} href={`/devices/${id}?${new URLSearchParams({ metric: m, range: rangeKey })}`} aria-current={m === metric ? 'page' : undefined}>
                {m}
              </a>
            ))}
          </nav>
          <nav aria-label="Time range" class="tabs" data-testid="range-picker">
            {ranges.map((r) => (
              <a key={r.key} href={link({ range: r.key })} aria-current={r.key === rangeKey ? 'page' : undefined}>
                {r.label}
              </a>
            ))}
          </nav>
        </div>
        <form
          class="custom-range"
          onSubmit={(e) => {
            e.preventDefault();
            const f = new Date(customFrom).getTime(), t = new Date(customTo).getTime();
            if (f < t) navigate(link({ range: 'custom', from: new Date(f).toISOString(), to: new Date(t).toISOString() }));
          }}
        >
          <label>From <input type="datetime-local" value={customFrom} onInput={(e) => setCustomFrom((e.target as HTMLInputElement).value)} /></label>
          <label>To <input type="datetime-local" value={customTo} onInput={(e) => setCustomTo((e.target as HTMLInputElement).value)} /></label>
          <button type="submit" class="secondary">Show custom range</button>
        </form>
        {!series ? (
          <Loading />
        ) : series.points.length === 0 ? (
          <p class="muted">No {metric} readings in this period.</p>
        ) : (
          <>
            <p class="muted" data-testid="chart-caption">
              {dateTime(from)} – {dateTime(to)} · {series.points.length} points · resolution {series.resolution}
              {series.resolution !== 'raw' && ' (line: mean; band: min to max)'}
              {shaded.length > 0 && ' · alert periods shaded'}
            </p>
            <Chart series={series} lines={lines} shaded={shaded} />
          </>
        )}
      </section>
      <section aria-labelledby="rules-h">
        <h2 id="rules-h">Rules watching this device</h2>
        {rules.length === 0 ? (
          <p class="muted">No rule watches this device. {atLeast(role, 'admin') && <a href="/rules">Add one</a>}</p>
        ) : (
          <ul>
            {rules.map((r) => (
              <li key={r.id}>
                <a href={`/rules?edit=${r.id}`}>{r.name}</a> <span class="muted">({describeRule(r)})</span>
              </li>
            ))}
          </ul>
        )}
      </section>
      {atLeast(role, 'admin') && (
        <section aria-labelledby="token-h">
          <h2 id="token-h">Ingest token</h2>
          <p class="muted">The device posts readings with its token. A new token replaces the old one at once.</p>
          <button type="button" class="secondary" onClick={rotate}>Rotate token</button>
          {token && <ShownOnce label="New device token" secret={token} />}
        </section>
      )}
    </>
  );
}
