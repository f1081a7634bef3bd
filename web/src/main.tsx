// The dashboard's shell: the session, the navigation and the pages.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ComponentProps, FunctionComponent } from 'preact';
// uPlot's styles load with the page; uPlot itself only with the device page (a separate chunk).
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { ApiError, atLeast, get, post, setCsrf, setSignedOutHandler, type Session } from './api';
import { Loading, Notice } from './components';
import { onLiveStatus, startLive, stopLive, liveStatus } from './live';
import { useLocation } from './router';
import { AlertDetail, AlertList } from './pages/Alerts';
import { Login } from './pages/Login';
import { Overview } from './pages/Overview';
import { Rules } from './pages/Rules';
import { Channels } from './pages/Channels';
import { Reports } from './pages/Reports';
import { Settings } from './pages/Settings';

type DeviceProps = ComponentProps<typeof import('./pages/Device').DevicePage>;
// The device page (and uPlot with it) is loaded when first opened, so the overview loads less.
function LazyDevicePage(props: DeviceProps) {
  const [Page, setPage] = useState<FunctionComponent<DeviceProps> | null>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    import('./pages/Device').then((m) => setPage(() => m.DevicePage)).catch(() => setFailed(true));
  }, []);
  if (failed) return <Notice kind="error">The device page could not be loaded; reload the page.</Notice>;
  return Page ? <Page {...props} /> : <Loading />;
}

function LiveIndicator() {
  const [s, setS] = useState(liveStatus());
  useEffect(() => {
    const off = onLiveStatus(setS);
    return () => {
      off();
    };
  }, []);
  const text = s === 'live' ? 'Live' : s === 'connecting' ? 'Connecting…' : 'Offline';
  return (
    <span class={`live live-${s}`} role="status" aria-live="polite">
      <span aria-hidden="true">{s === 'live' ? '●' : '○'}</span> {text}
    </span>
  );
}

function Nav({ session, path }: { session: Session; path: string }) {
  const items: [string, string][] = [
    ['/', 'Overview'],
    ['/alerts', 'Alerts'],
    ['/rules', 'Rules'],
    ...(atLeast(session.role, 'admin') ? ([['/channels', 'Channels']] as [string, string][]) : []),
    ['/reports', 'Reports'],
    ['/settings', 'Settings'],
  ];
  const current = (href: string) => (href === '/' ? path === '/' || path.startsWith('/devices') : path.startsWith(href));
  return (
    <nav aria-label="Main" class="main-nav">
      <ul>
        {items.map(([href, label]) => (
          <li key={href}>
            <a href={href} aria-current={current(href) ? 'page' : undefined}>
              {label}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState('');
  const loc = useLocation();
  const loadSession = () =>
    get<Session>('/api/v1/auth/session')
      .then((s) => {
        setCsrf(s.csrf_token);
        setSession(s);
        startLive();
      })
      .catch((e) => {
        if (e instanceof ApiError && e.status === 401) setSession(null);
        else setError(String(e.message ?? e));
      });
  useEffect(() => {
    setSignedOutHandler(() => {
      stopLive();
      setSession(null);
    });
    loadSession();
  }, []);
  if (error) return <main id="main"><Notice kind="error">OpenSense is not reachable: {error}</Notice></main>;
  if (session === undefined) return <main id="main"><Loading /></main>;
  if (session === null) return <Login />;
  const path = loc.pathname;
  const search = loc.searchParams;
  let page;
  let m: RegExpMatchArray | null;
  if (path === '/' || path === '/index.html') page = <Overview />;
  else if ((m = path.match(/^\/alerts\/(\d+)$/))) page = <AlertDetail id={Number(m[1])} role={session.role} />;
  else if (path === '/alerts') page = <AlertList search={search} />;
  else if ((m = path.match(/^\/devices\/(\d+)$/))) page = <LazyDevicePage id={Number(m[1])} role={session.role} search={search} />;
  else if (path === '/rules') page = <Rules role={session.role} search={search} />;
  else if (path === '/channels') page = <Channels role={session.role} />;
  else if (path === '/reports') page = <Reports role={session.role} />;
  else if (path === '/settings') page = <Settings session={session} />;
  else page = <><h1>Not found</h1><p>There is no page at {path}. <a href="/">Go to the overview</a>.</p></>;
  const org = session.organisations.find((o) => o.org === session.org);
  const signOut = async () => {
    try {
      await post('/api/v1/auth/logout');
    } finally {
      stopLive();
      setSession(null);
    }
  };
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a href="/" class="brand">OpenSense</a>
        <span class="org" title={`signed in as ${session.email} (${session.role})`}>
          {org?.name ?? `Organisation ${session.org}`} · {session.role}
        </span>
        <LiveIndicator />
        <button type="button" class="link signout" onClick={signOut}>
          Sign out
        </button>
      </header>
      <Nav session={session} path={path} />
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
