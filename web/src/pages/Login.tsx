import { useState } from 'preact/hooks';
import { ApiError, post } from '../api';
import { Notice } from '../components';

// Magic-link sign-in: the address gets a link; the link's page (served by the API, /auth/magic)
// signs in with its button and comes back here with the session cookie.
export function Login() {
  const [email, setEmail] = useState('');
  const [sent, setSent] = useState(false);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await post('/api/v1/auth/magic-link', { email });
      setSent(true);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'the request failed; try again');
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="login">
      <h1>Sign in to OpenSense</h1>
      {sent ? (
        <Notice kind="success">
          <strong>Check your mail.</strong> If {email} may sign in, a link is on its way. It works once, within 15
          minutes.{' '}
          <button type="button" class="link" onClick={() => setSent(false)}>
            Use another address
          </button>
        </Notice>
      ) : (
        <form onSubmit={submit}>
          <label for="email">E-mail address</label>
          <input id="email" type="email" autoComplete="email" required value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} />
          <button type="submit" disabled={busy}>
            Send me a sign-in link
          </button>
          {error && <Notice kind="error">{error}</Notice>}
          <p class="muted">No password: we e-mail you a link that signs you in.</p>
        </form>
      )}
    </main>
  );
}
