// Channels: the tenant's WeChat, Douyin and mobile apps. Configure (secrets are write-only: the
// server says which are set, a secret is sent only when typed), delete, copy the webhook URL,
// and each app's newest deliveries with the last day's counts.
import { useState } from 'preact/hooks';
import { del, get, put, qs, tp } from '../api.js';
import { formatTime, useT } from '../i18n.js';
import { Badge, ConfirmButton, Empty, ErrorNote, Field, Loading, Modal, useLoad, useToast, FormFooter } from '../ui.jsx';

/** The fields of each kind: public ones are shown back, secrets never. */
const KINDS = {
  wechat: [
    { name: 'appid', required: true },
    { name: 'token', secret: true, required: true },
    { name: 'encoding_aes_key', secret: true },
    { name: 'appsecret', secret: true, required: true },
  ],
  douyin: [
    { name: 'client_key', required: true },
    { name: 'client_secret', secret: true, required: true },
  ],
  mobile: [
    { name: 'jwt_secret', secret: true, required: true },
    { name: 'push_url', secret: true },
  ],
};
const DELIVERY_KIND = { sent: 'ok', failed: 'error', pending: 'warn' };

const appPath = (app) => `/channels/${encodeURIComponent(app.kind)}/${encodeURIComponent(app.app)}`;

export function ChannelsPage() {
  const t = useT();
  const [toast, setToast] = useToast();
  const list = useLoad(() => get(tp('/channels')), []);
  const [editing, setEditing] = useState(null);
  const [open, setOpen] = useState(null);
  const [error, setError] = useState(null);
  const apps = (list.data && list.data.apps) || [];

  const remove = async (app) => {
    setError(null);
    try {
      await del(tp(appPath(app)));
      if (open && open.kind === app.kind && open.app === app.app) setOpen(null);
      setToast(t('ch.deleted', { app: app.app }));
      list.reload();
    } catch (failure) {
      setError(failure);
    }
  };

  return (
    <div class="stack-lg" id="channels">
      <div class="toolbar">
        <p class="muted">{t('ch.intro')}</p>
        <div class="toolbar-spacer" />
        <button type="button" class="button-primary" id="channel-add" onClick={() => setEditing({})}>
          + {t('ch.add')}
        </button>
      </div>
      <ErrorNote error={list.error || error} />
      <div class="card">
        <table class="table" id="channels-table">
          <thead>
            <tr>
              <th>{t('ch.kind')}</th>
              <th>{t('ch.app')}</th>
              <th>{t('ch.id')}</th>
              <th>{t('ch.secrets')}</th>
              <th>{t('ch.webhook')}</th>
              <th class="col-date">{t('kb.updated')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {apps.map((app) => {
              const selected = open && open.kind === app.kind && open.app === app.app;
              return (
                <tr
                  key={`${app.kind}/${app.app}`}
                  data-app={`${app.kind}/${app.app}`}
                  class={`row-link${selected ? ' row-selected' : ''}`}
                  onClick={() => setOpen(app)}
                >
                  <td>
                    <Badge kind="info">{t(`ch.kind_${app.kind}`)}</Badge>
                  </td>
                  <td class="mono">{app.app}</td>
                  <td class="mono small">{app.appid || app.client_key || <span class="muted">—</span>}</td>
                  <td>
                    {(app.secrets_set || []).map((name) => (
                      <Badge key={name} kind="ok">
                        ✓ {t(`ch.field.${name}`)}
                      </Badge>
                    ))}
                  </td>
                  <td onClick={(event) => event.stopPropagation()}>
                    {app.webhook_path ? <WebhookUrl path={app.webhook_path} /> : <span class="muted small">{t('ch.no_webhook')}</span>}
                  </td>
                  <td class="col-date">{formatTime(t, app.updated_at, true)}</td>
                  <td class="nowrap" onClick={(event) => event.stopPropagation()}>
                    <button type="button" class="button-small" data-edit={`${app.kind}/${app.app}`} onClick={() => setEditing(app)}>
                      {t('common.edit')}
                    </button>{' '}
                    <ConfirmButton class="button-small" data-delete={`${app.kind}/${app.app}`} onConfirm={() => remove(app)}>
                      {t('common.delete')}
                    </ConfirmButton>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {list.loading && !list.data && <Loading />}
        {!list.loading && !list.error && apps.length === 0 && <Empty>{t('ch.empty')}</Empty>}
      </div>
      {open && <Deliveries app={open} key={`${open.kind}/${open.app}`} />}
      {editing && (
        <AppEditor
          app={editing.kind ? editing : null}
          onClose={() => setEditing(null)}
          onSaved={(saved) => {
            setEditing(null);
            setToast(t('ch.saved', { app: saved.app }));
            setOpen(saved);
            list.reload();
          }}
        />
      )}
      {toast}
    </div>
  );
}

function WebhookUrl({ path }) {
  const t = useT();
  const [copied, setCopied] = useState(false);
  const url = `${location.origin}${path}`;
  return (
    <span class="webhook">
      <code class="small webhook-url" title={url}>
        {url}
      </code>
      <button
        type="button"
        class="button-small"
        data-copy={url}
        onClick={() => navigator.clipboard?.writeText(url).then(() => setCopied(true), () => {})}
      >
        {copied ? t('common.copied') : t('common.copy')}
      </button>
    </span>
  );
}

function AppEditor({ app, onClose, onSaved }) {
  const t = useT();
  const [kind, setKind] = useState(app ? app.kind : 'wechat');
  const [name, setName] = useState(app ? app.app : '');
  const [values, setValues] = useState(() => {
    const start = {};
    for (const field of KINDS[app ? app.kind : 'wechat']) {
      if (!field.secret && app && app[field.name]) start[field.name] = app[field.name];
    }
    return start;
  });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const isSet = (field) => !!app && (app.secrets_set || []).includes(field);
  const fields = KINDS[kind];
  // The server replaces an app's whole configuration: a secret that is set but not typed again
  // would be dropped, so typed values are all that is sent and the rest is said plainly.
  const dropped = fields.filter((field) => field.secret && !field.required && isSet(field.name) && !values[field.name]);

  const save = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const body = {};
    for (const field of fields) {
      const value = (values[field.name] || '').trim();
      if (value) body[field.name] = value;
    }
    try {
      const saved = await put(tp(`/channels/${encodeURIComponent(kind)}/${encodeURIComponent(name.trim())}`), body);
      onSaved(saved);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal
      title={app ? t('ch.edit_title', { app: app.app }) : t('ch.add')}
      onClose={onClose}
      id="channel-editor"
      footer={
        <FormFooter form="channel-form" submitId="channel-save" disabled={busy || !name.trim()} label={t('common.save')} onClose={onClose} />
      }
    >
      <form id="channel-form" class="form-grid" onSubmit={save} autocomplete="off">
        <Field label={t('ch.kind')}>
          <select
            id="channel-kind"
            value={kind}
            disabled={!!app}
            onChange={(event) => {
              setKind(event.currentTarget.value);
              setValues({});
            }}
          >
            {Object.keys(KINDS).map((value) => (
              <option key={value} value={value}>
                {t(`ch.kind_${value}`)}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t('ch.app')} hint={t('ch.app_hint')}>
          <input
            id="channel-app"
            value={name}
            disabled={!!app}
            pattern="[A-Za-z0-9_\-]{1,64}"
            maxLength={64}
            onInput={(event) => setName(event.currentTarget.value)}
          />
        </Field>
        {fields.map((field) => (
          <Field
            key={`${kind}-${field.name}`}
            wide
            label={`${t(`ch.field.${field.name}`)}${field.required ? ' *' : ''}`}
            hint={t.has(`ch.hint.${field.name}`) ? t(`ch.hint.${field.name}`) : undefined}
          >
            <input
              id={`channel-${field.name}`}
              type={field.secret && field.name !== 'push_url' ? 'password' : 'text'}
              autocomplete={field.secret ? 'new-password' : 'off'}
              value={values[field.name] || ''}
              placeholder={field.secret ? (isSet(field.name) ? t('ch.secret_set') : t('ch.secret_unset')) : ''}
              onInput={(event) => setValues({ ...values, [field.name]: event.currentTarget.value })}
            />
            {field.secret && isSet(field.name) && (
              <span class="field-hint" data-secret-set={field.name}>
                ✓ {t('ch.secret_is_set')}
              </span>
            )}
          </Field>
        ))}
        {app && (
          <div class="field-wide note note-warn" id="channel-replace-note">
            {t('ch.replace_note')}
            {dropped.length > 0 && (
              <div class="note-detail">
                {t('ch.will_drop', { fields: dropped.map((field) => t(`ch.field.${field.name}`)).join(', ') })}
              </div>
            )}
          </div>
        )}
        <div class="field-wide">
          <ErrorNote error={error} id="channel-error" />
        </div>
      </form>
    </Modal>
  );
}

function Deliveries({ app }) {
  const t = useT();
  const loaded = useLoad(() => get(tp(`${appPath(app)}/deliveries${qs({ limit: 20 })}`)), [app.kind, app.app]);
  const rows = (loaded.data && loaded.data.deliveries) || [];
  const day = (loaded.data && loaded.data.last_day) || {};
  return (
    <section class="card card-pad" id="deliveries" data-app={`${app.kind}/${app.app}`}>
      <div class="toolbar">
        <h2 class="section-title">{t('ch.deliveries_of', { app: app.app })}</h2>
        <div class="toolbar-spacer" />
        <button type="button" class="button" id="deliveries-refresh" onClick={() => loaded.reload()}>
          {t('audit.refresh')}
        </button>
      </div>
      <ErrorNote error={loaded.error} />
      <div class="stats stats-3" id="deliveries-day">
        {['sent', 'failed', 'pending'].map((state) => (
          <div class={`stat${state === 'failed' && day.failed ? ' stat-error' : ''}`} key={state} data-state={state}>
            <div class="stat-value">{day[state] || 0}</div>
            <div class="stat-label">{t(`ch.day_${state}`)}</div>
          </div>
        ))}
      </div>
      <table class="table table-compact" id="deliveries-table">
        <thead>
          <tr>
            <th>{t('ch.d_conversation')}</th>
            <th class="col-num">{t('ch.d_seq')}</th>
            <th>{t('ch.d_kind')}</th>
            <th>{t('ch.d_state')}</th>
            <th class="col-num">{t('ch.d_attempts')}</th>
            <th>{t('ch.d_error')}</th>
            <th class="col-date">{t('kb.updated')}</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.id} data-delivery={row.id} data-state={row.state}>
              <td class="mono small">{row.conversation_id}</td>
              <td class="col-num">{row.seq}</td>
              <td>{row.kind}</td>
              <td>
                <Badge kind={DELIVERY_KIND[row.state] || 'neutral'}>{t.has(`ch.state_${row.state}`) ? t(`ch.state_${row.state}`) : row.state}</Badge>
              </td>
              <td class="col-num">{row.attempts}</td>
              <td class="small">
                {row.code && <span class="mono">{row.code}</span>}
                {row.error && <div class="muted">{row.error}</div>}
              </td>
              <td class="col-date">{formatTime(t, row.updated_at, true)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {loaded.loading && !loaded.data && <Loading />}
      {!loaded.loading && !loaded.error && rows.length === 0 && <Empty>{t('ch.no_deliveries')}</Empty>}
    </section>
  );
}
