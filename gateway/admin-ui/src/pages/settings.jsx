// Bot and tenant settings: every field of the settings object (GET) as an input of its kind,
// saved as a JSON merge patch of the changed fields only (PATCH). Secret fields (API keys) are
// never shown back: they are sent only when typed. Members with the `settings` area also get
// the business hours editor, the admin key rotation and the visitor identity secret; members with the `bot` area the tenant's
// own LLM endpoint (llm.jsx), after the bot's settings.
import { useMemo, useState } from 'preact/hooks';
import { get, patch, post, tp } from '../api.js';
import { useT } from '../i18n.js';
import { ConfirmButton, ErrorNote, Loading, SecretBox, Tabs, useLoad, useToast } from '../ui.jsx';
import { BusinessHours } from './hours.jsx';
import { VisitorIdentity } from './identity.jsx';
import { LlmEndpoint } from './llm.jsx';

/** Fields with an editor of their own (the business hours tab). */
const OWN_EDITOR = new Set(['business_hours', 'utc_offset_minutes']);

const SECRET = /(api_key|secret|password|token)$/i;
const ENUMS = { work_mode: ['bot_first', 'human_first'] };

const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** The merge patch turning `before` into `after` (RFC 7386: only what changed). */
function mergePatch(before, after) {
  const out = {};
  for (const key of Object.keys(after)) {
    if (isObject(after[key]) && isObject(before[key])) {
      const inner = mergePatch(before[key], after[key]);
      if (Object.keys(inner).length) out[key] = inner;
    } else if (!same(before[key], after[key])) {
      out[key] = after[key];
    }
  }
  return out;
}

function setIn(object, path, value) {
  const [head, ...rest] = path;
  const copy = { ...object };
  copy[head] = rest.length ? setIn(object[head] || {}, rest, value) : value;
  return copy;
}

function humanize(key) {
  const text = key.replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function SettingsPage({ permissions }) {
  const t = useT();
  const [tab, setTab] = useState('general');
  const llm = !!permissions && permissions.has('bot');
  if (!permissions || !permissions.has('settings')) return <GeneralSettings llm={llm} />;
  return (
    <div>
      <Tabs
        tabs={[
          { id: 'general', label: t('set.tab_general') },
          { id: 'hours', label: t('set.tab_hours') },
          { id: 'adminkey', label: t('set.tab_adminkey') },
          { id: 'identity', label: t('set.tab_identity') },
        ]}
        current={tab}
        onChange={setTab}
      />
      {tab === 'general' && <GeneralSettings hideOwn llm={llm} />}
      {tab === 'hours' && <BusinessHours />}
      {tab === 'adminkey' && <AdminKey />}
      {tab === 'identity' && <VisitorIdentity />}
    </div>
  );
}

function AdminKey() {
  const t = useT();
  const [key, setKey] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const rotate = async () => {
    setBusy(true);
    setError(null);
    try {
      const body = await post(tp('/admin-key'));
      setKey(body.admin_key);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card card-pad stack" id="adminkey">
      <h2 class="section-title">{t('ak.title')}</h2>
      <p class="muted small p-0">{t('ak.help')}</p>
      <div class="note note-warn">{t('ak.warning')}</div>
      <div>
        <ConfirmButton class="button" id="adminkey-rotate" disabled={busy} confirmText={t('ak.confirm')} onConfirm={rotate}>
          {t('ak.rotate')}
        </ConfirmButton>
      </div>
      <ErrorNote error={error} id="adminkey-error" />
      {key && <SecretBox id="adminkey-secret" label={t('ak.new_key')} value={key} hint={t('ak.shown_once')} />}
    </section>
  );
}

function GeneralSettings({ hideOwn, llm }) {
  const t = useT();
  const [toast, setToast] = useToast();
  const loaded = useLoad(() => get(tp('/settings')), []);
  const [draft, setDraft] = useState(null);
  const [secrets, setSecrets] = useState({});
  const [jsonErrors, setJsonErrors] = useState({});
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  // Bumped on save and discard: inputs that keep text of their own start again (the LLM card,
  // saved on its own, keeps what is typed in it).
  const [generation, setGeneration] = useState(0);

  const original = loaded.data;
  const current = draft || original;
  const changes = useMemo(() => {
    if (!original || !current) return {};
    let out = mergePatch(original, current);
    for (const [path, value] of Object.entries(secrets)) {
      if (value) out = setIn(out, path.split('.'), value);
    }
    return out;
  }, [original, current, secrets]);
  const changeCount = countLeaves(changes);
  const invalid = Object.values(jsonErrors).some(Boolean);

  if (loaded.loading && !original) return <Loading />;
  if (loaded.error) return <ErrorNote error={loaded.error} />;
  if (!original) return null;

  const update = (path, value) => setDraft(setIn(current, path, value));
  const save = async () => {
    setBusy(true);
    setError(null);
    try {
      const saved = await patch(tp('/settings'), changes);
      loaded.setData(saved);
      setDraft(null);
      setSecrets({});
      setGeneration((value) => value + 1);
      setToast(t('set.saved'));
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  const shown = Object.keys(current).filter((key) => !(hideOwn && OWN_EDITOR.has(key)));
  const scalars = shown.filter((key) => !isObject(current[key]));
  const groups = shown.filter((key) => isObject(current[key]));
  const context = { t, original, update, secrets, setSecrets, setJsonErrors, jsonErrors };
  const llmCard = llm && <LlmEndpoint key="llm" llmEnabled={!!(original.bot && original.bot.llm_enabled)} setToast={setToast} />;
  return (
    <div class="settings" id="settings">
      {scalars.length > 0 && (
        <section class="card card-pad settings-group" data-group="general" key={`general-${generation}`}>
          <h2 class="section-title">{t('set.group.general')}</h2>
          <div class="settings-fields">
            {scalars.map((key) => (
              <SettingField key={key} path={[key]} value={current[key]} {...context} />
            ))}
          </div>
        </section>
      )}
      {groups.map((group) => [
        <section class="card card-pad settings-group" data-group={group} key={`${group}-${generation}`}>
          <h2 class="section-title">{t.has(`set.group.${group}`) ? t(`set.group.${group}`) : humanize(group)}</h2>
          {t.has(`set.group.${group}.help`) && <p class="muted small">{t(`set.group.${group}.help`)}</p>}
          <Fields path={[group]} value={current[group]} {...context} />
        </section>,
        group === 'bot' && llmCard,
      ])}
      {!groups.includes('bot') && llmCard}
      <div class={`savebar${changeCount ? ' savebar-dirty' : ''}`} id="settings-savebar">
        <ErrorNote error={error} id="settings-error" />
        <span class="muted" id="settings-changes">
          {changeCount ? t('set.changes', { n: changeCount }) : t('set.no_changes')}
        </span>
        <div class="toolbar-spacer" />
        <button
          type="button"
          class="button"
          disabled={!changeCount || busy}
          onClick={() => {
            setDraft(null);
            setSecrets({});
            setJsonErrors({});
            setError(null);
            setGeneration((value) => value + 1);
          }}
        >
          {t('set.discard')}
        </button>
        <button type="button" class="button-primary" id="settings-save" disabled={!changeCount || busy || invalid} onClick={save}>
          {t('common.save')}
        </button>
      </div>
      {toast}
    </div>
  );
}

function countLeaves(value) {
  if (!isObject(value)) return 1;
  return Object.values(value).reduce((sum, inner) => sum + countLeaves(inner), 0);
}

function Fields({ path, value, ...context }) {
  const keys = Object.keys(value);
  const scalars = keys.filter((key) => !isObject(value[key]));
  const nested = keys.filter((key) => isObject(value[key]));
  return (
    <>
      {scalars.length > 0 && (
        <div class="settings-fields">
          {scalars.map((key) => (
            <SettingField key={key} path={[...path, key]} value={value[key]} {...context} />
          ))}
        </div>
      )}
      {nested.map((key) => (
        <fieldset class="settings-sub" key={key} data-group={[...path, key].join('.')}>
          <legend>{label(context.t, [...path, key])}</legend>
          <Fields path={[...path, key]} value={value[key]} {...context} />
        </fieldset>
      ))}
    </>
  );
}

function label(t, path) {
  const key = `set.${path.join('.')}`;
  return t.has(key) ? t(key) : humanize(path[path.length - 1]);
}

function valueAt(object, path) {
  return path.reduce((inner, key) => (inner === undefined || inner === null ? undefined : inner[key]), object);
}

function SettingField({ path, value, t, original, update, secrets, setSecrets, setJsonErrors, jsonErrors }) {
  const name = path[path.length - 1];
  const id = `set-${path.join('-')}`;
  const dotted = path.join('.');
  const hintKey = `set.${dotted}.hint`;
  const hint = t.has(hintKey) ? t(hintKey) : null;
  const changed = !same(valueAt(original, path), value) || !!secrets[dotted];
  let input;

  if (SECRET.test(name)) {
    const isSet = value !== null && value !== undefined && value !== '';
    input = (
      <input
        id={id}
        type="password"
        autocomplete="off"
        value={secrets[dotted] || ''}
        placeholder={isSet ? t('set.secret_kept') : t('set.secret_unset')}
        onInput={(event) => setSecrets({ ...secrets, [dotted]: event.currentTarget.value })}
      />
    );
  } else if (ENUMS[name] && typeof value === 'string') {
    input = (
      <div class="segmented" id={id} role="radiogroup">
        {ENUMS[name].map((option) => (
          <button
            type="button"
            key={option}
            role="radio"
            data-value={option}
            aria-checked={value === option ? 'true' : 'false'}
            class={value === option ? 'segment segment-on' : 'segment'}
            onClick={() => update(path, option)}
          >
            {t.has(`set.enum.${option}`) ? t(`set.enum.${option}`) : option}
          </button>
        ))}
      </div>
    );
  } else if (typeof value === 'boolean') {
    input = (
      <label class="switch">
        <input id={id} type="checkbox" checked={value} onChange={(event) => update(path, event.currentTarget.checked)} />
        <span class="switch-track" aria-hidden="true" />
        <span>{value ? t('common.on') : t('common.off')}</span>
      </label>
    );
  } else if (typeof value === 'number') {
    const fraction = /threshold/.test(name) && value >= 0 && value <= 1;
    const integer = Number.isInteger(valueAt(original, path)) && !fraction;
    const onNumber = (event) => {
      const parsed = Number(event.currentTarget.value);
      if (event.currentTarget.value !== '' && Number.isFinite(parsed)) update(path, parsed);
    };
    input = fraction ? (
      <div class="range-row">
        <input type="range" min="0" max="1" step="0.01" value={value} onInput={onNumber} aria-label={label(t, path)} />
        <input id={id} type="number" min="0" max="1" step="0.01" class="num" value={value} onInput={onNumber} />
      </div>
    ) : (
      <input id={id} type="number" class="num" step={integer ? 1 : 'any'} value={value} onInput={onNumber} />
    );
  } else if (typeof value === 'string') {
    input = <input id={id} value={value} onInput={(event) => update(path, event.currentTarget.value)} />;
  } else {
    // null, lists and anything else: edited as JSON (empty = null, the built-in default).
    input = (
      <JsonInput
        id={id}
        value={value}
        placeholder={t('set.json_default')}
        onValid={(parsed) => {
          setJsonErrors((errors) => ({ ...errors, [dotted]: false }));
          update(path, parsed);
        }}
        onInvalid={() => setJsonErrors((errors) => ({ ...errors, [dotted]: true }))}
        invalid={jsonErrors[dotted]}
        invalidText={t('set.bad_json')}
      />
    );
  }

  return (
    <div class={`setting${changed ? ' setting-changed' : ''}`} data-path={dotted}>
      <label class="setting-label" for={id}>
        {label(t, path)}
        <span class="setting-key mono">{dotted}</span>
      </label>
      <div class="setting-input">{input}</div>
      {hint && <div class="setting-hint">{hint}</div>}
    </div>
  );
}

function JsonInput({ id, value, placeholder, onValid, onInvalid, invalid, invalidText }) {
  const [text, setText] = useState(value === null || value === undefined ? '' : JSON.stringify(value, null, 2));
  return (
    <div>
      <textarea
        id={id}
        class="mono"
        rows={value === null ? 2 : 5}
        placeholder={placeholder}
        value={text}
        onInput={(event) => {
          const next = event.currentTarget.value;
          setText(next);
          if (!next.trim()) {
            onValid(null);
            return;
          }
          try {
            onValid(JSON.parse(next));
          } catch {
            onInvalid();
          }
        }}
      />
      {invalid && <div class="field-error">{invalidText}</div>}
    </div>
  );
}
