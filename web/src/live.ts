// The live-update stream (GET /api/v1/events, Server-Sent Events). One EventSource for the
// whole app; pages subscribe to the events they show. After a reconnect (the server ends a
// stream every few minutes; a network change) subscribers are told to reload, since events may
// have been missed meanwhile.
import { useEffect } from 'preact/hooks';

export interface ReadingEvent {
  device: number;
  metric: string;
  unit: string;
  t: number;
  v: number;
}
export interface AlertChange {
  id: number;
  event: string;
  state: string;
  device: number;
  rule_name: string;
  severity: string;
}
type Handlers = {
  readings?: (r: ReadingEvent[]) => void;
  alert?: (a: AlertChange) => void;
  reconnected?: () => void;
};

const subscribers = new Set<Handlers>();
let source: EventSource | null = null;
let opened = false;
let status: 'connecting' | 'live' | 'offline' = 'connecting';
const statusListeners = new Set<(s: typeof status) => void>();

function setStatus(s: typeof status) {
  status = s;
  statusListeners.forEach((l) => l(s));
}

export function startLive() {
  if (source) return;
  source = new EventSource('/api/v1/events');
  source.addEventListener('hello', () => {
    if (opened) subscribers.forEach((s) => s.reconnected?.());
    opened = true;
    setStatus('live');
  });
  source.addEventListener('readings', (e) => {
    const data = JSON.parse((e as MessageEvent).data) as { readings: ReadingEvent[] };
    subscribers.forEach((s) => s.readings?.(data.readings));
  });
  source.addEventListener('alert', (e) => {
    const data = JSON.parse((e as MessageEvent).data) as AlertChange;
    subscribers.forEach((s) => s.alert?.(data));
  });
  source.onerror = () => setStatus(source?.readyState === EventSource.CLOSED ? 'offline' : 'connecting');
}

export function stopLive() {
  source?.close();
  source = null;
  opened = false;
}

export function useLive(handlers: Handlers, deps: unknown[]) {
  useEffect(() => {
    subscribers.add(handlers);
    return () => {
      subscribers.delete(handlers);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
}

export function liveStatus() {
  return status;
}
export function onLiveStatus(fn: (s: typeof status) => void) {
  statusListeners.add(fn);
  return () => statusListeners.delete(fn);
}
