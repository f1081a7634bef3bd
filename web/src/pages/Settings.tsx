import { useEffect, useState } from 'preact/hooks';
import { atLeast, del, get, patch, post, type Role, type Session } from '../api';
import { Loading, Notice, ShownOnce, actionRunner } from '../components';
import { actor, dateTime } from '../format';

interface Org {
  id: number;
  name: string;
  time_zone: string;
  tier: string;
  limits: { max_devices: number | null; max_members: number | null; retention_extension: boolean; api_rate_per_second: number };
  usage: { devices: number; members: number };
  retention: Record<string, { effective: string; default: string; extended: boolean }>;
}
interface Member { id: number; email: string; role: Role; created_at: string }
interface Token { id: number; label: string; role?: Role; kind?: string; created_at: string; expires_at: string | null; last_used_at: string | null; active: boolean; device?: number | null; site?: number | null }
interface AuditEvent { id: number; at: string; actor: string; via: string; action: string; target: string }

const roles: Role[] = ['viewer', 'member', 'admin', 'owner'];

export function Settings({ session }: { session: Session }) {
  const role = session.role;
  const admin = atLeast(role, 'admin');
  const [org, setOrg] = useState<Org | null>(null);
  const [members, setMembers] = useState<Member[]>([]);
  const [mine, setMine] = useState<Token[]>([]);
  const [all, setAll] = useState<Token[]>([]);
  const [audit, setAudit] = useState<AuditEvent[]>([]);
  const [error, setError] = useState('');
  const [message, setMessage] = useState('');
  const [secret, setSecret] = useState('');
  const [inviteEmail, setInviteEmail] = useState('');
  const [inviteRole, setInviteRole] = useState<Role>('viewer');
  const [label, setLabel] = useState('');
  const [retention, setRetention] = useState<Record<string, string>>({});
  const reload = () => {
    get<Org>('/api/v1/org').then(setOrg).catch((e) => setError(e.message));
    get<Member[]>('/api/v1/members').then(setMembers).catch(() => {});
    get<Token[]>('/api/v1/auth/tokens').then(setMine).catch(() => {});
    if (admin) {
      get<Token[]>('/api/v1/tokens').then(setAll).catch(() => {});
      get<{ events: AuditEvent[] }>('/api/v1/audit?limit=50').then((a) => setAudit(a.events)).catch(() => {});
    }
  };
  useEffect(reload, []);
  const run = actionRunner(setError, setMessage, reload);
  if (!org) return error ? <Notice kind="error">{error}</Notice> : <Loading />;
  return (
    <>
      <h1>Settings</h1>
      {message && <Notice kind="success">{message}</Notice>}
      {error && <Notice kind="error">{error}</Notice>}
      {secret && <ShownOnce label="New API token" secret={secret} />}
      <section aria-labelledby="org-h">
        <h2 id="org-h">Organisation</h2>
        <dl class="facts">
          <dt>Name</dt><dd>{org.name}</dd>
          <dt>Time zone</dt><dd>{org.time_zone}</dd>
          <dt>Tier</dt><dd>{org.tier}</dd>
          <dt>Devices</dt><dd>{org.usage.devices} of {org.limits.max_devices ?? 'unlimited'}</dd>
          <dt>Members</dt><dd>{org.usage.members} of {org.limits.max_members ?? 'unlimited'}</dd>
          <dt>API rate</dt><dd>{org.limits.api_rate_per_second} requests/s</dd>
        </dl>
        <h3>Retention</h3>
        <table class="list">
          <caption class="sr-only">Retention per data class</caption>
          <thead><tr><th scope="col">Data</th><th scope="col">Kept</th><th scope="col">Default</th>{role === 'owner' && org.limits.retention_extension && <th scope="col">Extend to</th>}</tr></thead>
          <tbody>
            {Object.entries(org.retention).map(([k, r]) => (
              <tr key={k}>
                <td>{k.replace(/_/g, ' ')}</td>
                <td>{r.effective}{r.extended ? ' (extended)' : ''}</td>
                <td>{r.default}</td>
                {role === 'owner' && org.limits.retention_extension && (
                  <td>
                    <label class="sr-only" for={`ret-${k}`}>Extend {k}</label>
                    <input id={`ret-${k}`} placeholder="e.g. 5 years" value={retention[k] ?? ''} onInput={(e) => setRetention({ ...retention, [k]: (e.target as HTMLInputElement).value })} />
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {role === 'owner' && org.limits.retention_extension && (
          <button type="button" class="secondary" onClick={() => {
            const body = Object.fromEntries(Object.entries(retention).filter(([, v]) => v.trim()));
            run(() => patch('/api/v1/org/retention', body), 'Retention changed.');
          }}>Save retention</button>
        )}
      </section>
      <section aria-labelledby="members-h">
        <h2 id="members-h">Members</h2>
        <table class="list">
          <caption class="sr-only">Members and roles</caption>
          <thead><tr><th scope="col">E-mail</th><th scope="col">Role</th>{admin && <th scope="col">Actions</th>}</tr></thead>
          <tbody>
            {members.map((m) => (
              <tr key={m.id}>
                <td>{m.email}</td>
                <td>
                  {admin && m.email !== session.email ? (
                    <>
                      <label class="sr-only" for={`role-${m.id}`}>Role of {m.email}</label>
                      <select id={`role-${m.id}`} value={m.role} onChange={(e) => run(() => patch(`/api/v1/members/${m.id}`, { role: (e.target as HTMLSelectElement).value }), `Role of ${m.email} changed.`)}>
                        {roles.filter((r) => atLeast(role, r)).map((r) => <option key={r} value={r}>{r}</option>)}
                      </select>
                    </>
                  ) : m.role}
                </td>
                {admin && (
                  <td>{m.email !== session.email && (
                    <button type="button" class="danger" onClick={() => confirm(`Remove ${m.email}? Their API tokens stop.`) && run(() => del(`/api/v1/members/${m.id}`), `${m.email} removed.`)}>Remove</button>
                  )}</td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {admin && (
          <form class="inline-form" onSubmit={(e) => { e.preventDefault(); run(() => post('/api/v1/members', { email: inviteEmail, role: inviteRole }), `Invitation sent to ${inviteEmail}.`); }}>
            <label>Invite (e-mail) <input type="email" required value={inviteEmail} onInput={(e) => setInviteEmail((e.target as HTMLInputElement).value)} /></label>
            <label>Role
              <select value={inviteRole} onChange={(e) => setInviteRole((e.target as HTMLSelectElement).value as Role)}>
                {roles.filter((r) => atLeast(role, r)).map((r) => <option key={r} value={r}>{r}</option>)}
              </select>
            </label>
            <button type="submit">Invite</button>
          </form>
        )}
      </section>
      <section aria-labelledby="tokens-h">
        <h2 id="tokens-h">Your API tokens</h2>
        <TokenTable tokens={mine} onRevoke={(t) => run(() => del(`/api/v1/auth/tokens/${t.id}`), 'Token revoked.')} />
        <form class="inline-form" onSubmit={(e) => {
          e.preventDefault();
          run(async () => {
            const t = await post<{ token: string }>('/api/v1/auth/tokens', { label });
            setSecret(t.token);
            setLabel('');
          }, 'Token created.');
        }}>
          <label>Label <input value={label} onInput={(e) => setLabel((e.target as HTMLInputElement).value)} /></label>
          <button type="submit">Create API token</button>
        </form>
      </section>
      {admin && (
        <section aria-labelledby="alltokens-h">
          <h2 id="alltokens-h">All tokens of the organisation</h2>
          <TokenTable tokens={all} onRevoke={(t) => run(() => del(`/api/v1/tokens/${t.id}`), 'Token revoked.')} />
        </section>
      )}
      {admin && (
        <section aria-labelledby="audit-h">
          <h2 id="audit-h">Audit trail</h2>
          <p><a href="/api/v1/audit.csv" download>Download the audit trail (CSV)</a></p>
          <table class="list">
            <caption class="sr-only">The 50 newest audit events</caption>
            <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">What</th><th scope="col">Target</th></tr></thead>
            <tbody>
              {audit.map((a) => (
                <tr key={a.id}><td>{dateTime(a.at)}</td><td>{actor(a.actor)} <span class="muted">({a.via})</span></td><td>{a.action}</td><td>{a.target}</td></tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </>
  );
}

function TokenTable({ tokens, onRevoke }: { tokens: Token[]; onRevoke: (t: Token) => void }) {
  if (tokens.length === 0) return <p class="muted">None.</p>;
  return (
    <table class="list">
      <caption class="sr-only">Tokens</caption>
      <thead><tr><th scope="col">Label</th><th scope="col">Kind / role</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col">State</th><th scope="col">Actions</th></tr></thead>
      <tbody>
        {tokens.map((t) => (
          <tr key={t.id}>
            <td>{t.label || `#${t.id}`}</td>
            <td>{t.kind ?? 'user'}{t.role ? ` / ${t.role}` : ''}{t.device ? ` (device ${t.device})` : ''}</td>
            <td>{dateTime(t.created_at)}</td>
            <td>{t.last_used_at ? dateTime(t.last_used_at) : 'never'}</td>
            <td>{t.active ? 'active' : 'revoked or expired'}</td>
            <td>{t.active && <button type="button" class="danger" onClick={() => confirm('Revoke this token? It stops working now.') && onRevoke(t)}>Revoke</button>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
