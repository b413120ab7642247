// Visitor identity (Settings → Visitor identity): the secret the tenant's site signs its signed-in
// users' ids with, so one person's chat follows them across browsers and the app. The secret is
// shown once when it is made or rotated; the options are saved as they are switched.
import { useState } from 'preact/hooks';
import { del, get, patch, post, tp } from '../api.js';
import { useT } from '../i18n.js';
import { ConfirmButton, ErrorNote, Loading, SecretBox, useLoad } from '../ui.jsx';

export function VisitorIdentity() {
  const t = useT();
  const loaded = useLoad(() => get(tp('/identity')), []);
  const [identity, setIdentity] = useState(null);
  const [secret, setSecret] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [revoke, setRevoke] = useState(false);
  const current = identity || (loaded.data && loaded.data.identity);

  const run = async (work) => {
    setBusy(true);
    setError(null);
    try {
      await work();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const rotate = () =>
    run(async () => {
      const body = await post(tp('/identity/secret'), { revoke_tokens: revoke });
      setSecret(body.secret);
      setRevoke(false);
      setIdentity(body.identity);
    });
  const remove = () =>
    run(async () => {
      const body = await del(tp('/identity/secret'));
      setSecret(null);
      setIdentity(body.identity);
    });
  const option = (name) => (event) => {
    const value = event.currentTarget.checked;
    run(async () => {
      const body = await patch(tp('/identity'), { [name]: value });
      setIdentity(body.identity);
    });
  };

  if (!current) return loaded.error ? <ErrorNote error={loaded.error} /> : <Loading />;
  return (
    <section class="card card-pad stack" id="identity">
      <h2 class="section-title">{t('id.title')}</h2>
      <p class="muted small p-0">{t('id.help')}</p>
      <p class="small p-0" id="identity-state">
        {current.secret_set
          ? t('id.secret_set', { at: new Date(current.secret_created_at).toLocaleString(t.lang) })
          : t('id.no_secret')}
      </p>
      {current.secret_set && <div class="note note-warn">{t('id.rotate_warning')}</div>}
      {current.secret_set && (
        <label class="switch">
          <input id="identity-revoke" type="checkbox" checked={revoke} disabled={busy} onChange={(event) => setRevoke(event.currentTarget.checked)} />
          <span class="switch-track" aria-hidden="true" />
          <span>{t('id.revoke_tokens')}</span>
        </label>
      )}
      <div class="row-tight">
        <ConfirmButton
          class="button"
          id="identity-rotate"
          disabled={busy}
          confirmText={current.secret_set ? t('id.rotate_confirm') : t('id.make_confirm')}
          onConfirm={rotate}
        >
          {current.secret_set ? t('id.rotate') : t('id.make')}
        </ConfirmButton>
        {current.secret_set && (
          <ConfirmButton class="button-ghost" id="identity-remove" disabled={busy} confirmText={t('id.remove_confirm')} onConfirm={remove}>
            {t('id.remove')}
          </ConfirmButton>
        )}
      </div>
      {secret && <SecretBox id="identity-secret" label={t('id.new_secret')} value={secret} hint={t('ak.shown_once')} />}
      <label class="switch">
        <input id="identity-required" type="checkbox" checked={current.required} disabled={busy || !current.secret_set} onChange={option('required')} />
        <span class="switch-track" aria-hidden="true" />
        <span>{t('id.required')}</span>
      </label>
      <label class="switch">
        <input id="identity-link-mobile" type="checkbox" checked={current.link_mobile} disabled={busy} onChange={option('link_mobile')} />
        <span class="switch-track" aria-hidden="true" />
        <span>{t('id.link_mobile')}</span>
      </label>
      <ErrorNote error={error} id="identity-error" />
    </section>
  );
}
