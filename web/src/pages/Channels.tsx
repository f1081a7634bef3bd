import { useEffect, useState } from 'preact/hooks';
import { atLeast, del, get, patch, post, type Channel, type Role } from '../api';
import { Loading, Notice, ShownOnce, actionRunner } from '../components';

export function Channels({ role }: { role: Role }) {
  const [channels, setChannels] = useState<Channel[] | null>(null);
  const [kind, setKind] = useState<Channel['kind']>('email');
  const [name, setName] = useState('');
  const [target, setTarget] = useState('');
  const [secret, setSecret] = useState('');
  const [editing, setEditing] = useState<Channel | null>(null);
  const [error, setError] = useState('');
  const [message, setMessage] = useState('');
  const reload = () => get<Channel[]>('/api/v1/channels').then(setChannels).catch((e) => setError(e.message));
  useEffect(() => {
    if (atLeast(role, 'admin')) reload();
  }, []);
  if (!atLeast(role, 'admin')) return <><h1>Notification channels</h1><p>Only admins manage channels.</p></>;
  const run = actionRunner(setError, setMessage, reload);
  const placeholder = kind === 'email' ? 'ann@example.com, ops@example.com' : kind === 'telegram' ? '-1001234567890 or @channel' : 'https://example.com/hook';
  return (
    <>
      <h1>Notification channels</h1>
      {message && <Notice kind="success">{message}</Notice>}
      {error && <Notice kind="error">{error}</Notice>}
      {secret && <ShownOnce label="Webhook signing secret" secret={secret} />}
      <form class="card" onSubmit={(e) => {
        e.preventDefault();
        if (editing) {
          run(async () => {
            await patch(`/api/v1/channels/${editing.id}`, { name, target });
            setEditing(null);
            setName('');
            setTarget('');
          }, 'Channel saved.');
          return;
        }
        run(async () => {
          const c = await post<Channel & { secret?: string }>('/api/v1/channels', { kind, name, target });
          setSecret(c.secret ?? '');
          setName('');
          setTarget('');
        }, 'Channel created.');
      }}>
        <h2>{editing ? `Edit ${editing.name}` : 'New channel'}</h2>
        <label>Kind
          <select value={kind} disabled={!!editing} onChange={(e) => setKind((e.target as HTMLSelectElement).value as Channel['kind'])}>
            <option value="email">E-mail</option>
            <option value="telegram">Telegram</option>
            <option value="webhook">Webhook</option>
          </select>
        </label>
        <label>Name <input required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} /></label>
        <label>Target <input required value={target} placeholder={placeholder} onInput={(e) => setTarget((e.target as HTMLInputElement).value)} /></label>
        <button type="submit">{editing ? 'Save channel' : 'Create channel'}</button>
        {editing && <button type="button" class="secondary" onClick={() => { setEditing(null); setName(''); setTarget(''); }}>Cancel</button>}
      </form>
      {!channels ? <Loading /> : channels.length === 0 ? <p class="muted">No channels yet.</p> : (
        <table class="list">
          <caption class="sr-only">Notification channels</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Target</th><th scope="col">State</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            {channels.map((c) => (
              <tr key={c.id}>
                <td>{c.name}</td>
                <td>{c.kind}</td>
                <td class="wrap">{c.target}</td>
                <td>{c.enabled ? 'enabled' : 'disabled'}</td>
                <td class="actions">
                  <button type="button" class="secondary" onClick={() => run(() => post(`/api/v1/channels/${c.id}/test`), `Test message queued for ${c.name}.`)}>Send test message</button>
                  <button type="button" class="secondary" aria-label={`Edit ${c.name}`} onClick={() => { setEditing(c); setKind(c.kind); setName(c.name); setTarget(c.target); }}>Edit</button>
                  <button type="button" class="secondary" onClick={() => run(() => patch(`/api/v1/channels/${c.id}`, { enabled: !c.enabled }), c.enabled ? 'Disabled.' : 'Enabled.')}>{c.enabled ? 'Disable' : 'Enable'}</button>
                  <button type="button" class="danger" onClick={() => confirm(`Delete ${c.name}?`) && run(() => del(`/api/v1/channels/${c.id}`), 'Deleted.')}>Delete</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
