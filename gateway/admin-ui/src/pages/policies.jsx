// Policies: the routing and quality WASM components (versions, upload with the validation
// outcome, activate any version = roll back) and the sensitive-word lists with a dry-run check.
import { useState } from 'preact/hooks';
import { api, del, get, post, tp, upload } from '../api.js';
import { formatBytes, formatTime, useT } from '../i18n.js';
import {
  Badge,
  ConfirmButton,
  Empty,
  ErrorNote,
  Field,
  Loading,
  Modal,
  Note,
  ProgressBar,
  Tabs,
  useLoad,
  useToast,
} from '../ui.jsx';

const KINDS = ['routing', 'quality'];
const ACTIONS = ['block', 'mask', 'flag', 'handoff'];

export function PoliciesPage({ permissions }) {
  const t = useT();
  const tabs = [];
  if (permissions.has('policies')) KINDS.forEach((kind) => tabs.push({ id: kind, label: t(`pol.kind_${kind}`) }));
  if (permissions.has('sensitive_words')) tabs.push({ id: 'words', label: t('pol.words') });
  const [tab, setTab] = useState(tabs[0] ? tabs[0].id : '');
  return (
    <div>
      <Tabs tabs={tabs} current={tab} onChange={setTab} />
      {tab === 'routing' && (
        <div class="split">
          <div class="split-main">
            <PolicyVersions kind="routing" key="routing" />
          </div>
          <aside class="split-side">
            <RoutingDryRun />
          </aside>
        </div>
      )}
      {tab === 'quality' && <PolicyVersions kind="quality" key="quality" />}
      {tab === 'words' && <WordLists />}
    </div>
  );
}

function PolicyVersions({ kind }) {
  const t = useT();
  const [toast, setToast] = useToast();
  const versions = useLoad(() => get(tp(`/policies/${kind}`)), [kind]);
  const [file, setFile] = useState(null);
  const [phase, setPhase] = useState('idle');
  const [sent, setSent] = useState(0);
  const [outcome, setOutcome] = useState(null);
  const [error, setError] = useState(null);
  const [activating, setActivating] = useState(null);
  const [inputKey, setInputKey] = useState(0);

  const send = async () => {
    if (!file) return;
    setPhase('uploading');
    setOutcome(null);
    setError(null);
    try {
      const body = await upload('PUT', tp(`/policies/${kind}`), file, {
        type: 'application/wasm',
        onProgress: (loaded) => setSent(loaded),
        onSent: () => setPhase('processing'),
      });
      setPhase('done');
      setOutcome(body);
      setFile(null);
      setInputKey((key) => key + 1);
      versions.reload();
    } catch (failure) {
      setPhase('error');
      setError(failure);
    }
  };

  const activate = async (version) => {
    setActivating(version);
    setError(null);
    try {
      await post(tp(`/policies/${kind}/activate`), { version });
      setToast(t('pol.activated', { version }));
      versions.reload();
    } catch (failure) {
      setError(failure);
    } finally {
      setActivating(null);
    }
  };

  const list = (versions.data && versions.data.versions) || [];
  const active = list.find((version) => version.active);
  const sorted = [...list].sort((a, b) => b.version - a.version);
  return (
    <div class="stack-lg" id={`policy-${kind}`}>
      <div class="card card-pad">
        <div class="row-between">
          <div>
            <h2 class="section-title">{t(`pol.kind_${kind}`)}</h2>
            <p class="muted small">{t(`pol.kind_${kind}_help`)}</p>
          </div>
          <div class="active-summary" id="policy-active">
            {active ? (
              <Badge kind="ok">{t('pol.active_version', { version: active.version })}</Badge>
            ) : (
              <Badge>{t('pol.builtin')}</Badge>
            )}
          </div>
        </div>
        <div class="upload-row">
          <input
            key={inputKey}
            type="file"
            id="policy-file"
            accept=".wasm,application/wasm"
            onChange={(event) => {
              setFile(event.currentTarget.files[0] || null);
              setPhase('idle');
              setOutcome(null);
              setError(null);
            }}
          />
          <button
            type="button"
            class="button-primary"
            id="policy-upload"
            disabled={!file || phase === 'uploading' || phase === 'processing'}
            onClick={send}
          >
            {t('pol.upload')}
          </button>
        </div>
        <p class="muted small">{t('pol.upload_help')}</p>
        {phase === 'uploading' || phase === 'processing' ? (
          <ProgressBar
            id="policy-progress"
            state={phase}
            value={phase === 'uploading' && file ? (sent / (file.size || 1)) * 100 : 100}
            label={phase === 'uploading' ? t('pol.uploading') : t('pol.validating')}
          />
        ) : null}
        {outcome && (
          <Note kind="ok" id="policy-outcome">
            {t('pol.accepted', { version: outcome.version })}
          </Note>
        )}
        {error && (
          <div class="note note-error" role="alert" id="policy-error" data-code={error.code}>
            <strong>{t.has(`pol.err_${error.code}`) ? t(`pol.err_${error.code}`) : t('pol.refused')}</strong>
            <span class="note-code">{error.code}</span>
            {error.message && <div class="note-detail">{error.message}</div>}
          </div>
        )}
      </div>
      <div class="card">
        <table class="table" id="policy-versions">
          <thead>
            <tr>
              <th class="col-version">{t('pol.version')}</th>
              <th>{t('pol.sha')}</th>
              <th class="col-num">{t('pol.size')}</th>
              <th class="col-date">{t('pol.uploaded')}</th>
              <th>{t('pol.uploaded_by')}</th>
              <th>{t('pol.state')}</th>
              <th class="col-actions" />
            </tr>
          </thead>
          <tbody>
            {sorted.map((version) => (
              <tr key={version.version} data-version={version.version} data-active={version.active ? 'true' : 'false'}>
                <td class="col-version mono">v{version.version}</td>
                <td class="mono" title={version.sha256}>
                  {(version.sha256 || '').slice(0, 12)}
                </td>
                <td class="col-num">{formatBytes(version.size || 0)}</td>
                <td class="col-date">{formatTime(t, version.created_at)}</td>
                <td>{version.uploaded_by || <span class="muted">—</span>}</td>
                <td>{version.active ? <Badge kind="ok">{t('pol.active')}</Badge> : <span class="muted">{t('pol.inactive')}</span>}</td>
                <td class="col-actions">
                  {!version.active && (
                    <ConfirmButton
                      class="button-small"
                      data-activate={version.version}
                      disabled={activating !== null}
                      onConfirm={() => activate(version.version)}
                      confirmText={t('pol.confirm_activate', { version: version.version })}
                    >
                      {active && version.version < active.version ? t('pol.rollback') : t('pol.activate')}
                    </ConfirmButton>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {versions.loading && <Loading />}
        <ErrorNote error={versions.error} />
        {!versions.loading && !versions.error && list.length === 0 && <Empty>{t('pol.none')}</Empty>}
      </div>
      {toast}
    </div>
  );
}

function WordLists() {
  const t = useT();
  const [toast, setToast] = useToast();
  const lists = useLoad(() => get(tp('/policies/sensitive-words')), []);
  const [editing, setEditing] = useState(null);
  const [error, setError] = useState(null);

  const remove = async (name) => {
    setError(null);
    try {
      await del(tp(`/policies/sensitive-words/${encodeURIComponent(name)}`));
      setToast(t('words.deleted', { name }));
      lists.reload();
    } catch (failure) {
      setError(failure);
    }
  };

  const rows = (lists.data && lists.data.lists) || [];
  return (
    <div class="split">
      <section class="split-main stack-lg">
        <div class="toolbar">
          <p class="muted small">{t('words.help')}</p>
          <div class="toolbar-spacer" />
          <button type="button" class="button-primary" id="words-new" onClick={() => setEditing({ name: '', action: 'block', isNew: true })}>
            {t('words.new')}
          </button>
        </div>
        <ErrorNote error={error || lists.error} />
        <div class="card">
          <table class="table" id="word-lists">
            <thead>
              <tr>
                <th>{t('words.name')}</th>
                <th>{t('words.action')}</th>
                <th class="col-num">{t('words.count')}</th>
                <th class="col-date">{t('words.updated')}</th>
                <th class="col-actions" />
              </tr>
            </thead>
            <tbody>
              {rows.map((list) => (
                <tr key={list.name} data-list={list.name}>
                  <td class="cell-strong">{list.name}</td>
                  <td>
                    <Badge kind={list.action === 'block' ? 'error' : list.action === 'handoff' ? 'info' : 'warn'}>
                      {t(`words.action_${list.action}`)}
                    </Badge>
                  </td>
                  <td class="col-num">{list.words}</td>
                  <td class="col-date">{formatTime(t, list.updated_at)}</td>
                  <td class="col-actions">
                    <button type="button" class="button-small" onClick={() => setEditing(list)}>
                      {t('common.edit')}
                    </button>
                    <ConfirmButton class="button-small" onConfirm={() => remove(list.name)}>
                      {t('common.delete')}
                    </ConfirmButton>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {lists.loading && <Loading />}
          {!lists.loading && !lists.error && rows.length === 0 && <Empty>{t('words.none')}</Empty>}
        </div>
      </section>
      <aside class="split-side">
        <WordCheck />
      </aside>
      {editing && (
        <WordListEditor
          list={editing}
          onClose={() => setEditing(null)}
          onSaved={(name) => {
            setEditing(null);
            setToast(t('words.saved', { name }));
            lists.reload();
          }}
        />
      )}
      {toast}
    </div>
  );
}

function WordListEditor({ list, onClose, onSaved }) {
  const t = useT();
  const [name, setName] = useState(list.name);
  const [action, setAction] = useState(list.action || 'block');
  // The words of a stored list, when the server lets them be read back.
  const existing = useLoad(
    () =>
      list.isNew
        ? Promise.resolve('')
        : get(tp(`/policies/sensitive-words/${encodeURIComponent(list.name)}`), { quiet: true }).then(
            (body) => (body && Array.isArray(body.words) ? body.words.join('\n') : typeof body === 'string' ? body : null),
            () => null,
          ),
    [list.name],
  );
  const [words, setWords] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const shownWords = words !== null ? words : existing.data || '';
  const unreadable = !list.isNew && !existing.loading && existing.data === null;

  const save = async () => {
    const listName = name.trim();
    if (!listName) {
      setError({ code: 'name_required' });
      return;
    }
    if (unreadable && !shownWords.trim()) {
      // Saving would replace the stored words with none.
      setError({ code: 'words_required' });
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api('PUT', tp(`/policies/sensitive-words/${encodeURIComponent(listName)}`), {
        json: {
          action,
          words: shownWords
            .split('\n')
            .map((word) => word.trim())
            .filter(Boolean),
        },
      });
      onSaved(listName);
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };

  return (
    <Modal
      title={list.isNew ? t('words.new') : t('words.edit', { name: list.name })}
      onClose={onClose}
      id="words-editor"
      footer={
        <>
          <div class="toolbar-spacer" />
          <button type="button" class="button" onClick={onClose}>
            {t('common.cancel')}
          </button>
          <button type="button" class="button-primary" id="words-save" disabled={busy || existing.loading} onClick={save}>
            {t('common.save')}
          </button>
        </>
      }
    >
      <div class="form-grid">
        <Field label={t('words.name')}>
          <input id="words-name" value={name} disabled={!list.isNew} onInput={(event) => setName(event.currentTarget.value)} />
        </Field>
        <Field label={t('words.action')}>
          <select id="words-action" value={action} onChange={(event) => setAction(event.currentTarget.value)}>
            {ACTIONS.map((value) => (
              <option key={value} value={value}>
                {t(`words.action_${value}`)}
              </option>
            ))}
          </select>
        </Field>
        <Field
          label={t('words.words')}
          hint={unreadable ? t('words.replace_hint', { count: list.words }) : t('words.words_hint')}
          wide
        >
          <textarea
            id="words-text"
            rows={12}
            value={shownWords}
            onInput={(event) => setWords(event.currentTarget.value)}
          />
        </Field>
        <p class="muted small field-wide">{t(`words.action_${action}_help`)}</p>
      </div>
      <ErrorNote error={error} id="words-error" />
    </Modal>
  );
}

function WordCheck() {
  const t = useT();
  const [text, setText] = useState('');
  const [verdict, setVerdict] = useState(null);
  const [error, setError] = useState(null);
  const check = async (event) => {
    event.preventDefault();
    if (!text.trim()) return;
    setError(null);
    try {
      setVerdict(await post(tp('/policies/sensitive-words/check'), { text }));
    } catch (failure) {
      setError(failure);
      setVerdict(null);
    }
  };
  return (
    <div class="panel" id="words-check">
      <h2 class="panel-title">{t('words.check')}</h2>
      <p class="muted small">{t('words.check_help')}</p>
      <form onSubmit={check} class="stack">
        <textarea id="check-text" rows={3} value={text} onInput={(event) => setText(event.currentTarget.value)} />
        <button type="submit" class="button-primary" id="check-submit" disabled={!text.trim()}>
          {t('words.check_button')}
        </button>
      </form>
      <ErrorNote error={error} />
      {verdict && (
        <div class="try-result" id="check-result" data-action={verdict.action}>
          <div class="try-head">
            <Badge kind={verdict.action === 'allow' ? 'ok' : verdict.action === 'block' ? 'error' : 'warn'}>
              {t(`words.verdict_${verdict.action}`)}
            </Badge>
          </div>
          {verdict.masked && verdict.action !== 'allow' && <div class="bubble mono">{verdict.masked}</div>}
          {verdict.matches && verdict.matches.length > 0 && (
            <table class="table table-compact">
              <thead>
                <tr>
                  <th>{t('words.word')}</th>
                  <th>{t('words.list')}</th>
                  <th class="col-num">{t('words.at')}</th>
                </tr>
              </thead>
              <tbody>
                {verdict.matches.map((match, index) => (
                  <tr key={index}>
                    <td>{match.word}</td>
                    <td>{match.list}</td>
                    <td class="col-num mono">
                      {match.start}–{match.end}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {verdict.matches_dropped ? <div class="muted small">{t('words.dropped', { n: verdict.matches_dropped })}</div> : null}
        </div>
      )}
    </div>
  );
}

const CHANNELS = ['web', 'mobile', 'wechat', 'douyin'];
const REASONS = ['explicit_request', 'handoff_intent', 'complaint', 'unsure_twice', 'sensitive_word', 'human_first'];

/** What the active routing (policy or built-in) decides for a sample handoff; nothing is queued. */
function RoutingDryRun() {
  const t = useT();
  const [form, setForm] = useState({
    channel: 'web',
    language: 'zh-CN',
    vip_level: '0',
    crm_tags: '',
    handoff_reason: 'explicit_request',
    skill_hint: '',
    message: '',
    at: '',
  });
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (name) => (event) => setForm({ ...form, [name]: event.currentTarget.value });
  const run = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const sample = {
      channel: form.channel,
      language: form.language.trim(),
      vip_level: Number(form.vip_level) || 0,
      crm_tags: form.crm_tags
        .split(/[,，]/)
        .map((tag) => tag.trim())
        .filter(Boolean),
      handoff_reason: form.handoff_reason,
      messages: form.message.trim() ? [form.message.trim()] : [],
    };
    if (form.skill_hint.trim()) sample.skill_hint = form.skill_hint.trim();
    if (form.at) sample.now_unix_ms = new Date(form.at).getTime();
    try {
      setResult(await post(tp('/policies/routing/dry-run'), sample));
    } catch (failure) {
      setError(failure);
      setResult(null);
    } finally {
      setBusy(false);
    }
  };
  const decision = result && result.decision;
  return (
    <div class="panel" id="routing-dry-run">
      <h2 class="panel-title">{t('dry.title')}</h2>
      <p class="muted small">{t('dry.help')}</p>
      <form class="form-grid" onSubmit={run}>
        <Field label={t('live.channel')}>
          <select id="dry-channel" value={form.channel} onChange={set('channel')}>
            {CHANNELS.map((channel) => (
              <option key={channel} value={channel}>
                {channel}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t('dry.language')}>
          <input id="dry-language" value={form.language} onInput={set('language')} />
        </Field>
        <Field label={t('dry.vip')}>
          <input id="dry-vip" type="number" min="0" max="9" value={form.vip_level} onInput={set('vip_level')} />
        </Field>
        <Field label={t('dry.reason')}>
          <select id="dry-reason" value={form.handoff_reason} onChange={set('handoff_reason')}>
            {REASONS.map((reason) => (
              <option key={reason} value={reason}>
                {t.has(`reason.${reason}`) ? t(`reason.${reason}`) : reason}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t('dry.tags')}>
          <input id="dry-tags" value={form.crm_tags} onInput={set('crm_tags')} />
        </Field>
        <Field label={t('dry.skill_hint')}>
          <input id="dry-skill" value={form.skill_hint} onInput={set('skill_hint')} />
        </Field>
        <Field label={t('dry.message')} wide>
          <input id="dry-message" value={form.message} onInput={set('message')} />
        </Field>
        <Field label={t('dry.at')} hint={t('dry.at_hint')} wide>
          <input id="dry-at" type="datetime-local" value={form.at} onInput={set('at')} />
        </Field>
        <button type="submit" class="button-primary field-wide" id="dry-run" disabled={busy}>
          {t('dry.run')}
        </button>
      </form>
      <ErrorNote error={error} />
      {decision && (
        <div class="try-result" id="dry-result" data-decision={decision.decision}>
          <div class="try-head">
            <Badge kind={decision.decision === 'route' ? 'ok' : 'warn'}>{t(`dry.decision_${decision.decision}`)}</Badge>
            <span class="muted small">{result.elapsed_us} µs</span>
          </div>
          <dl class="facts">
            {decision.decision === 'route' ? (
              <>
                <dt>{t('live.skill')}</dt>
                <dd id="dry-skill-group">{decision.skill_group}</dd>
                <dt>{t('live.priority')}</dt>
                <dd>{decision.priority}</dd>
                {decision.preferred_agent && (
                  <>
                    <dt>{t('dry.preferred_agent')}</dt>
                    <dd class="mono">{decision.preferred_agent}</dd>
                  </>
                )}
              </>
            ) : (
              <>
                <dt>{t('dry.told')}</dt>
                <dd>{decision.message}</dd>
              </>
            )}
            <dt>{t('dry.decided_by')}</dt>
            <dd id="dry-decided-by">{result.decided_by}</dd>
            {result.failure && (
              <>
                <dt>{t('dry.failure')}</dt>
                <dd class="mono">{result.failure}</dd>
              </>
            )}
            {result.out_of_hours && (
              <>
                <dt>{t('dry.out_of_hours')}</dt>
                <dd>{result.out_of_hours}</dd>
              </>
            )}
          </dl>
        </div>
      )}
    </div>
  );
}
