// The tenant's own LLM endpoint (bot/llm) on the settings page: an OpenAI-compatible base URL,
// a model and a timeout, used for the bot's LLM step instead of the server's when the bot's
// `llm_enabled` setting is on. The API key is write-only: never shown back or prefilled, sent
// only when typed; "remove key" sends `"api_key": ""`.
import { useState } from 'preact/hooks';
import { del, get, put, tp } from '../api.js';
import { formatTime, useT } from '../i18n.js';
import { Badge, ConfirmButton, ErrorNote, Field, Loading, useLoad } from '../ui.jsx';

const DEFAULT_TIMEOUT_MS = 3000;

const formOf = (llm) => ({
  base_url: llm ? llm.base_url : '',
  model: llm ? llm.model : '',
  timeout_ms: String(llm ? llm.timeout_ms : DEFAULT_TIMEOUT_MS),
  api_key: '',
});

export function LlmEndpoint({ llmEnabled, setToast }) {
  const t = useT();
  const loaded = useLoad(() => get(tp('/bot/llm')), []);
  const [form, setForm] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  if (loaded.loading && !loaded.data) return <Loading />;
  if (loaded.error) return <ErrorNote error={loaded.error} id="llm-error" />;
  if (!loaded.data) return null;

  const { llm, node_llm: nodeLlm } = loaded.data;
  const values = form || formOf(llm);
  const edit = (name) => (event) => setForm({ ...values, [name]: event.currentTarget.value });

  // Saves `body` and shows the stored endpoint; the form starts again from it when `reset`.
  const send = async (body, done, reset = true) => {
    setBusy(true);
    setError(null);
    try {
      const saved = await put(tp('/bot/llm'), body);
      loaded.setData({ ...loaded.data, llm: saved.llm });
      setForm(reset || !form ? null : { ...form, api_key: '' });
      setToast(t(done));
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const save = () => {
    const body = { base_url: values.base_url.trim(), model: values.model.trim() };
    const timeout = values.timeout_ms.trim();
    if (timeout) body.timeout_ms = Number(timeout);
    // Left out, the stored key stays.
    if (values.api_key) body.api_key = values.api_key;
    send(body, 'llm.saved');
  };
  // Only the key changes: the stored endpoint is sent as it is; what is typed in the form stays.
  const removeKey = () =>
    send({ base_url: llm.base_url, model: llm.model, timeout_ms: llm.timeout_ms, api_key: '' }, 'llm.key_removed', false);
  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await del(tp('/bot/llm'));
      loaded.setData({ ...loaded.data, llm: null });
      setForm(null);
      setToast(t('llm.deleted'));
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  const incomplete = !values.base_url.trim() || !values.model.trim();
  return (
    <section class="card card-pad stack" id="llm" data-group="llm">
      <div class="row-between">
        <h2 class="section-title">{t('llm.title')}</h2>
        <span id="llm-enabled" data-enabled={llmEnabled ? 'true' : 'false'}>
          <Badge kind={llmEnabled ? 'ok' : 'neutral'}>{llmEnabled ? t('llm.enabled_on') : t('llm.enabled_off')}</Badge>
        </span>
      </div>
      <p class="muted small p-0">{t('llm.help')}</p>
      <div class={`note ${llmEnabled ? 'note-info' : 'note-warn'}`} id="llm-needs-enabled">
        {t('llm.needs_enabled')}
      </div>

      {llm ? (
        <div class="llm-current" id="llm-current" data-state="own">
          <span class="muted">{t('llm.current')}</span>
          <code class="mono">{llm.base_url}</code>
          <span>
            {t('llm.model_label')} <strong>{llm.model}</strong>
          </span>
          <span>{t('llm.timeout_value', { ms: llm.timeout_ms })}</span>
          {llm.api_key_set ? (
            <Badge kind="ok">{t('llm.key_set_badge')}</Badge>
          ) : (
            <Badge kind="neutral">{t('llm.no_key_badge')}</Badge>
          )}
          <span class="muted small">{t('llm.updated', { at: formatTime(t, llm.updated_at) })}</span>
        </div>
      ) : (
        <div class="llm-current" id="llm-current" data-state={nodeLlm ? 'node' : 'none'}>
          <span class="muted">{t('llm.current')}</span>
          <span>{nodeLlm ? t('llm.none_node') : t('llm.none_no_llm')}</span>
        </div>
      )}

      <div class="form-grid">
        <Field label={t('llm.base_url')} hint={t('llm.base_url_hint')} wide>
          <input
            id="llm-base_url"
            type="url"
            autocomplete="off"
            spellcheck={false}
            placeholder="https://api.example.com/v1"
            value={values.base_url}
            onInput={edit('base_url')}
          />
        </Field>
        <Field label={t('llm.model')}>
          <input id="llm-model" autocomplete="off" spellcheck={false} placeholder="qwen-plus" value={values.model} onInput={edit('model')} />
        </Field>
        <Field label={t('llm.timeout_ms')} hint={t('llm.timeout_hint')}>
          <input
            id="llm-timeout_ms"
            type="number"
            class="num"
            min="100"
            max="60000"
            step="100"
            value={values.timeout_ms}
            onInput={edit('timeout_ms')}
          />
        </Field>
        <Field label={t('llm.api_key')} hint={t('llm.api_key_hint')} wide>
          <input
            id="llm-api_key"
            type="password"
            autocomplete="new-password"
            spellcheck={false}
            placeholder={llm && llm.api_key_set ? t('llm.key_placeholder_set') : t('llm.key_placeholder_unset')}
            value={values.api_key}
            onInput={edit('api_key')}
          />
          {llm && llm.api_key_set && (
            <span class="field-hint" id="llm-key-set">
              ✓ {t('llm.key_is_set')}
            </span>
          )}
        </Field>
      </div>

      <ErrorNote error={error} id="llm-error" />
      <div class="toolbar">
        <button type="button" class="button-primary" id="llm-save" disabled={busy || incomplete} onClick={save}>
          {llm ? t('common.save') : t('llm.add')}
        </button>
        {llm && llm.api_key_set && (
          <ConfirmButton class="button" id="llm-remove-key" disabled={busy} confirmText={t('llm.remove_key_confirm')} onConfirm={removeKey}>
            {t('llm.remove_key')}
          </ConfirmButton>
        )}
        {form && (
          <button type="button" class="button" disabled={busy} onClick={() => setForm(null)}>
            {t('set.discard')}
          </button>
        )}
        <div class="toolbar-spacer" />
        {llm && (
          <ConfirmButton class="button" id="llm-delete" disabled={busy} confirmText={t('llm.delete_confirm')} onConfirm={remove}>
            {t('llm.delete')}
          </ConfirmButton>
        )}
      </div>
    </section>
  );
}
