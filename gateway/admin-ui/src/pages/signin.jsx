// Sign-in: tenant, email and password → POST auth/login (sets the session cookie).
import { useState } from 'preact/hooks';
import { post, setSession } from '../api.js';
import { errorText, useT } from '../i18n.js';
import { LangToggle } from '../ui.jsx';

export function SignIn({ tenant: initialTenant, notice, onSignedIn, onLang }) {
  const t = useT();
  const [tenant, setTenant] = useState(initialTenant);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);

  const submit = async (event) => {
    event.preventDefault();
    const name = tenant.trim();
    if (!name || !email.trim() || !password) {
      setError({ code: 'missing_fields' });
      return;
    }
    setBusy(true);
    setError(null);
    try {
      setSession({ tenant: name, csrf: '' });
      const body = await post(
        `/v1/tenants/${encodeURIComponent(name)}/auth/login`,
        { email: email.trim(), password },
        { quiet: true },
      );
      setPassword('');
      onSignedIn(body, name);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="signin-page">
      <div class="signin-lang">
        <LangToggle onLang={onLang} />
      </div>
      <form class="signin-card" id="signin" onSubmit={submit} noValidate>
        <div class="brand signin-brand">
          <span class="brand-mark" aria-hidden="true">◧</span>
          <span class="brand-name">Switchboard</span>
        </div>
        <h1>{t('signin.title')}</h1>
        <p class="muted">{t('signin.subtitle')}</p>
        {notice && (
          <div class="note note-info" id="signin-notice">
            {t(`signin.notice_${notice}`)}
          </div>
        )}
        <label class="field">
          <span class="field-label">{t('signin.tenant')}</span>
          <input
            id="signin-tenant"
            value={tenant}
            autocomplete="organization"
            onInput={(event) => setTenant(event.currentTarget.value)}
          />
        </label>
        <label class="field">
          <span class="field-label">{t('signin.email')}</span>
          <input
            id="signin-email"
            type="email"
            value={email}
            autocomplete="username"
            autofocus
            onInput={(event) => setEmail(event.currentTarget.value)}
          />
        </label>
        <label class="field">
          <span class="field-label">{t('signin.password')}</span>
          <input
            id="signin-password"
            type="password"
            value={password}
            autocomplete="current-password"
            onInput={(event) => setPassword(event.currentTarget.value)}
          />
        </label>
        {error && (
          <div class="note note-error" role="alert" id="signin-error" data-code={error.code}>
            {errorText(t, error)}
          </div>
        )}
        <button type="submit" class="button-primary button-block" id="signin-submit" disabled={busy}>
          {busy ? t('signin.signing_in') : t('signin.submit')}
        </button>
        <p class="signin-foot muted">
          {t('signin.agents')} <a href="/console">{t('signin.agent_console')}</a>
        </p>
      </form>
    </div>
  );
}
