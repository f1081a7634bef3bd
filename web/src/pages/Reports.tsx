import { useEffect, useState } from 'preact/hooks';
import { atLeast, get, type Device, type Role } from '../api';
import { Loading } from '../components';

function isoDay(ms: number) {
  return new Date(ms).toISOString().slice(0, 10);
}

export function Reports({ role }: { role: Role }) {
  const [devices, setDevices] = useState<Device[] | null>(null);
  const [chosen, setChosen] = useState<number[]>([]);
  const [from, setFrom] = useState(isoDay(Date.now() - 30 * 86400_000));
  const [to, setTo] = useState(isoDay(Date.now() - 86400_000));
  useEffect(() => {
    get<Device[]>('/api/v1/devices').then((ds) => {
      const live = ds.filter((d) => !d.decommissioned);
      setDevices(live);
      setChosen(live.map((d) => d.id));
    });
  }, []);
  if (!atLeast(role, 'member')) return <><h1>Reports</h1><p>Reports are downloaded by members, admins and owners; ask one of them.</p></>;
  if (!devices) return <Loading />;
  const q = new URLSearchParams({ devices: chosen.join(','), from, to }).toString();
  const ok = chosen.length > 0 && chosen.length <= 50 && from <= to;
  return (
    <>
      <h1>Reports</h1>
      <p>Compliance reports for an inspection: per-day minimum, maximum and mean, excursions, gaps and alerts, in your organisation's time zone.</p>
      <form class="card" onSubmit={(e) => e.preventDefault()}>
        <fieldset>
          <legend>Devices</legend>
          {devices.map((d) => (
            <label key={d.id} class="check">
              <input type="checkbox" checked={chosen.includes(d.id)} onChange={(e) => setChosen((e.target as HTMLInputElement).checked ? [...chosen, d.id] : chosen.filter((x) => x !== d.id))} /> {d.name}
            </label>
          ))}
        </fieldset>
        <label>From (day) <input type="date" value={from} onInput={(e) => setFrom((e.target as HTMLInputElement).value)} /></label>
        <label>To (day, included) <input type="date" value={to} onInput={(e) => setTo((e.target as HTMLInputElement).value)} /></label>
        {ok ? (
          <ul class="downloads">
            <li><a href={`/api/v1/reports/compliance.pdf?${q}`} download>Compliance report (PDF)</a></li>
            <li><a href={`/api/v1/reports/daily.csv?${q}`} download>Daily table (CSV)</a></li>
            <li><a href={`/api/v1/reports/readings.csv?${q}`} download>Readings (CSV)</a></li>
          </ul>
        ) : (
          <p class="muted" role="status">Choose 1 to 50 devices and a period whose start is not after its end.</p>
        )}
      </form>
    </>
  );
}
