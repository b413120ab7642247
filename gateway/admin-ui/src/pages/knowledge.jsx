// Knowledge: FAQs (paged by id, searched, filtered by tag), the FAQ editor, import with upload
// progress and the per-row error report, export, synonyms, and "try the bot".
import { useEffect, useState } from 'preact/hooks';
import { del, get, post, put, qs, tp, upload, api } from '../api.js';
import { errorText, formatBytes, formatTime, percent, useT } from '../i18n.js';
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
  useToast,
  FormFooter,
} from '../ui.jsx';
import { SelfCheck } from './selfcheck.jsx';

const PAGE_SIZE = 50;

/**
 * One page of FAQs after `after`. With a tag, pages of 500 are read until 50 match (or the end):
 * the API pages by id and has no tag filter of its own.
 */
async function scanFaqs(after, tag) {
  if (!tag) {
    const body = await get(tp(`/kb/faqs${qs({ after, limit: PAGE_SIZE })}`));
    return { rows: body.faqs || [], next: body.next || null };
  }
  const rows = [];
  let cursor = after;
  for (;;) {
    const body = await get(tp(`/kb/faqs${qs({ after: cursor, limit: 500 })}`));
    const faqs = body.faqs || [];
    for (const faq of faqs) {
      if ((faq.tags || []).includes(tag)) {
        rows.push(faq);
        if (rows.length === PAGE_SIZE) return { rows, next: faq.id };
      }
    }
    if (!body.next) return { rows, next: null };
    cursor = body.next;
  }
}

export function KnowledgePage() {
  const t = useT();
  const [toast, setToast] = useToast();
  const [query, setQuery] = useState('');
  const [search, setSearch] = useState('');
  const [tag, setTag] = useState('');
  // Cursors of the pages before this one; '' is the first page.
  const [cursors, setCursors] = useState(['']);
  const [result, setResult] = useState({ rows: [], next: null, loading: true, error: null });
  const [knownTags, setKnownTags] = useState([]);
  const [editing, setEditing] = useState(null);
  const [importing, setImporting] = useState(false);
  const [synonyms, setSynonyms] = useState(false);
  const [version, setVersion] = useState(0);
  const after = cursors[cursors.length - 1];

  useEffect(() => {
    let live = true;
    setResult((old) => ({ ...old, loading: true, error: null }));
    const load = search
      ? get(tp(`/kb/search${qs({ q: search, k: 50 })}`)).then((hits) => ({ rows: hits, next: null }))
      : scanFaqs(after, tag);
    load.then(
      ({ rows, next }) => {
        if (!live) return;
        setResult({ rows, next, loading: false, error: null });
        const tags = new Set(knownTags);
        rows.forEach((row) => (row.tags || []).forEach((name) => tags.add(name)));
        if (tags.size !== knownTags.length) setKnownTags([...tags].sort());
      },
      (error) => live && setResult({ rows: [], next: null, loading: false, error }),
    );
    return () => {
      live = false;
    };
  }, [search, tag, after, version]);

  const refresh = () => setVersion((value) => value + 1);
  const restart = () => setCursors(['']);

  const openFaqById = async (id) => {
    try {
      setEditing(await get(tp(`/kb/faqs/${encodeURIComponent(id)}`)));
    } catch (error) {
      setResult((old) => ({ ...old, error }));
    }
  };
  const openFaq = (row) => (row.alternates || !search ? setEditing(row) : openFaqById(row.id));

  return (
    <div class="split">
      <section class="split-main">
        <div class="toolbar">
          <form
            class="search"
            onSubmit={(event) => {
              event.preventDefault();
              setSearch(query.trim());
              restart();
            }}
          >
            <input
              id="kb-search"
              type="search"
              placeholder={t('kb.search_placeholder')}
              value={query}
              onInput={(event) => {
                setQuery(event.currentTarget.value);
                if (!event.currentTarget.value) {
                  setSearch('');
                  restart();
                }
              }}
            />
            <button type="submit" class="button">{t('kb.search')}</button>
          </form>
          <label class="inline-field">
            <span>{t('kb.tag')}</span>
            <input
              id="kb-tag"
              list="kb-tags"
              value={tag}
              placeholder={t('kb.all_tags')}
              disabled={!!search}
              onChange={(event) => {
                setTag(event.currentTarget.value.trim());
                restart();
              }}
            />
            <datalist id="kb-tags">
              {knownTags.map((name) => (
                <option key={name} value={name} />
              ))}
            </datalist>
          </label>
          <div class="toolbar-spacer" />
          <button
            type="button"
            class="button-primary"
            id="kb-new"
            onClick={() =>
              setEditing({ id: '', question: '', answer: '', alternates: [], tags: [], locale: '', enabled: true })
            }
          >
            {t('kb.new')}
          </button>
        </div>
        <ErrorNote error={result.error} id="kb-error" />
        <div class="card">
          <table class="table" id="kb-table">
            <thead>
              <tr>
                <th class="col-id">{t('kb.id')}</th>
                <th class="col-question">{t('kb.question')}</th>
                <th>{t('kb.answer')}</th>
                {search ? <th class="col-num">{t('kb.score')}</th> : <th class="col-tags">{t('kb.tags')}</th>}
                {!search && <th class="col-date">{t('kb.updated')}</th>}
              </tr>
            </thead>
            <tbody>
              {result.rows.map((row) => (
                <tr
                  key={row.id}
                  class={`row-link${row.enabled === false ? ' row-muted' : ''}`}
                  data-faq-id={row.id}
                  onClick={() => openFaq(row)}
                >
                  <td class="col-id mono">{row.id}</td>
                  <td class="cell-strong col-question">
                    {row.question}
                    {row.alternates && row.alternates.length > 0 && (
                      <span class="count" title={row.alternates.join('\n')}>
                        +{row.alternates.length}
                      </span>
                    )}
                  </td>
                  <td class="cell-clip">{row.answer}</td>
                  {search ? (
                    <td class="col-num mono">{Number(row.score).toFixed(2)}</td>
                  ) : (
                    <td>
                      {(row.tags || []).map((name) => (
                        <Badge key={name}>{name}</Badge>
                      ))}
                      {row.enabled === false && <Badge kind="warn">{t('kb.disabled')}</Badge>}
                    </td>
                  )}
                  {!search && <td class="col-date">{formatTime(t, row.updated_at_ms, true)}</td>}
                </tr>
              ))}
            </tbody>
          </table>
          {result.loading && <Loading />}
          {!result.loading && !result.error && result.rows.length === 0 && (
            <Empty>{search ? t('kb.no_hits') : t('kb.empty')}</Empty>
          )}
        </div>
        {!search && (
          <div class="pager" id="kb-pager">
            <button
              type="button"
              class="button"
              disabled={cursors.length < 2}
              onClick={() => setCursors(cursors.slice(0, -1))}
            >
              ← {t('common.previous')}
            </button>
            <span class="muted">{t('common.page', { n: cursors.length })}</span>
            <button
              type="button"
              class="button"
              id="kb-next"
              disabled={!result.next}
              onClick={() => setCursors([...cursors, result.next])}
            >
              {t('common.next')} →
            </button>
          </div>
        )}
      </section>
      <aside class="split-side stack-lg">
        <div class="panel" id="kb-manage">
          <h2 class="panel-title">{t('kb.manage')}</h2>
          <div class="manage-buttons">
            <button type="button" class="button" id="kb-import" onClick={() => setImporting(true)}>
              {t('kb.import')}…
            </button>
            <button type="button" class="button" id="kb-synonyms" onClick={() => setSynonyms(true)}>
              {t('kb.synonyms')}…
            </button>
            <ExportMenu />
          </div>
        </div>
        <TryBot />
        <SelfCheck version={version} onOpenFaq={openFaqById} />
      </aside>
      {editing && (
        <FaqEditor
          faq={editing}
          onClose={() => setEditing(null)}
          onSaved={(message) => {
            setEditing(null);
            setToast(message);
            refresh();
          }}
        />
      )}
      {importing && (
        <ImportDialog
          onClose={() => setImporting(false)}
          onImported={() => {
            restart();
            refresh();
          }}
        />
      )}
      {synonyms && (
        <SynonymsDialog
          onClose={() => setSynonyms(false)}
          onSaved={() => {
            setSynonyms(false);
            setToast(t('kb.synonyms_saved'));
            refresh();
          }}
        />
      )}
      {toast}
    </div>
  );
}

function ExportMenu() {
  const t = useT();
  return (
    <div class="button-group" id="kb-export">
      <span class="button-group-label">{t('kb.export')}</span>
      <a class="button" href={tp('/kb/export?format=csv')} download data-format="csv">
        CSV
      </a>
      <a class="button" href={tp('/kb/export?format=jsonl')} download data-format="jsonl">
        JSONL
      </a>
    </div>
  );
}

const lines = (text) =>
  text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);

function newFaqId() {
  const bytes = new Uint8Array(4);
  crypto.getRandomValues(bytes);
  return `faq-${Date.now().toString(36)}${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function FaqEditor({ faq, onClose, onSaved }) {
  const t = useT();
  // A draft (from a knowledge gap) comes with the id to publish it under.
  const isNew = !faq.id || !!faq.draft;
  const [form, setForm] = useState({
    id: faq.id,
    question: faq.question || '',
    alternates: (faq.alternates || []).join('\n'),
    answer: faq.answer || '',
    tags: (faq.tags || []).join(', '),
    locale: faq.locale || '',
    enabled: faq.enabled !== false,
  });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (name) => (event) => {
    const target = event.currentTarget;
    setForm({ ...form, [name]: target.type === 'checkbox' ? target.checked : target.value });
  };

  const save = async (event) => {
    event.preventDefault();
    if (!form.question.trim() || !form.answer.trim()) {
      setError({ code: 'faq_incomplete' });
      return;
    }
    setBusy(true);
    setError(null);
    const id = form.id.trim() || newFaqId();
    try {
      await put(tp(`/kb/faqs/${encodeURIComponent(id)}`), {
        question: form.question.trim(),
        answer: form.answer,
        alternates: lines(form.alternates),
        tags: form.tags
          .split(/[,，]/)
          .map((tag) => tag.trim())
          .filter(Boolean),
        locale: form.locale.trim(),
        enabled: form.enabled,
      });
      onSaved(t(isNew ? 'kb.created' : 'kb.saved', { id }));
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };

  const remove = async () => {
    setBusy(true);
    try {
      await del(tp(`/kb/faqs/${encodeURIComponent(faq.id)}`));
      onSaved(t('kb.deleted', { id: faq.id }));
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };

  return (
    <Modal
      title={isNew ? t('kb.new') : t('kb.edit')}
      onClose={onClose}
      wide
      id="faq-editor"
      footer={
        <FormFooter form="faq-form" submitId="faq-save" disabled={busy} label={t('common.save')} onClose={onClose}>
          {!isNew && (
            <ConfirmButton class="button" id="faq-delete" onConfirm={remove} disabled={busy}>
              {t('common.delete')}
            </ConfirmButton>
          )}
        </FormFooter>
      }
    >
      <form id="faq-form" class="form-grid" onSubmit={save}>
        <Field label={t('kb.id')} hint={isNew ? t('kb.id_hint') : null}>
          <input id="faq-id" value={form.id} disabled={!isNew} onInput={set('id')} class="mono" />
        </Field>
        <Field label={t('kb.locale')} hint={t('kb.locale_hint')}>
          <input id="faq-locale" value={form.locale} onInput={set('locale')} />
        </Field>
        <Field label={t('kb.question')} wide>
          <input id="faq-question" value={form.question} onInput={set('question')} />
        </Field>
        <Field label={t('kb.alternates')} hint={t('kb.alternates_hint')} wide>
          <textarea id="faq-alternates" rows={4} value={form.alternates} onInput={set('alternates')} />
        </Field>
        <Field label={t('kb.answer')} wide>
          <textarea id="faq-answer" rows={6} value={form.answer} onInput={set('answer')} />
        </Field>
        <Field label={t('kb.tags')} hint={t('kb.tags_hint')}>
          <input id="faq-tags" value={form.tags} onInput={set('tags')} />
        </Field>
        <label class="check">
          <input id="faq-enabled" type="checkbox" checked={form.enabled} onChange={set('enabled')} />
          {t('kb.enabled')}
        </label>
        {faq.updated_at_ms ? (
          <div class="muted field-wide">{t('kb.updated_at', { at: formatTime(t, faq.updated_at_ms) })}</div>
        ) : null}
      </form>
      <ErrorNote error={error} id="faq-error" />
    </Modal>
  );
}

const FORMATS = { csv: 'csv', jsonl: 'jsonl', json: 'jsonl', ndjson: 'jsonl', xlsx: 'xlsx' };

function ImportDialog({ onClose, onImported }) {
  const t = useT();
  const [file, setFile] = useState(null);
  const [phase, setPhase] = useState('idle'); // idle, uploading, processing, done, error
  const [sent, setSent] = useState(0);
  const [report, setReport] = useState(null);
  const [error, setError] = useState(null);
  // The job's progress: {phase: parsing|indexing, done, total}.
  const [stage, setStage] = useState(null);
  const extension = file ? file.name.split('.').pop().toLowerCase() : '';
  const format = FORMATS[extension];

  const start = async () => {
    if (!file) return;
    setPhase('uploading');
    setSent(0);
    setStage(null);
    setError(null);
    setReport(null);
    try {
      // The import runs as a background job: its parsing and indexing progress is shown.
      const body = await upload('POST', tp(`/kb/import${qs({ format, background: 'true' })}`), file, {
        type: 'application/octet-stream',
        onProgress: (loaded) => setSent(loaded),
        onSent: () => setPhase('processing'),
      });
      setPhase('processing');
      setReport(body && body.job ? await followJob(body.job, setStage) : body);
      setPhase('done');
      onImported();
    } catch (failure) {
      setError(failure);
      setPhase('error');
    }
  };

  const fraction = file && file.size ? sent / file.size : 0;
  const progressLabel = {
    uploading: t('kb.import_uploading', { sent: formatBytes(sent), total: formatBytes(file ? file.size : 0) }),
    processing:
      stage && stage.phase
        ? t(`kb.import_${stage.phase}`, { done: stage.done ?? 0, total: stage.total ?? '?' })
        : t('kb.import_processing'),
    done: t('kb.import_done'),
    error: t('kb.import_failed'),
  }[phase];

  return (
    <Modal
      title={t('kb.import_title')}
      onClose={onClose}
      wide
      id="import-dialog"
      footer={
        <>
          <div class="toolbar-spacer" />
          <button type="button" class="button" onClick={onClose}>
            {phase === 'done' ? t('common.close') : t('common.cancel')}
          </button>
          <button
            type="button"
            class="button-primary"
            id="import-start"
            disabled={!file || phase === 'uploading' || phase === 'processing'}
            onClick={start}
          >
            {t('kb.import_start')}
          </button>
        </>
      }
    >
      <p class="muted">{t('kb.import_help')}</p>
      <input
        type="file"
        id="import-file"
        accept=".csv,.jsonl,.json,.ndjson,.xlsx"
        onChange={(event) => {
          setFile(event.currentTarget.files[0] || null);
          setPhase('idle');
          setReport(null);
          setError(null);
        }}
      />
      {file && (
        <div class="muted file-line">
          {file.name} · {formatBytes(file.size)} · {format ? format.toUpperCase() : t('kb.format_guess')}
        </div>
      )}
      {phase !== 'idle' && (
        <ProgressBar
          id="import-progress"
          state={phase}
          value={
            phase === 'uploading' || phase === 'error'
              ? fraction * 100
              : phase === 'processing' && stage && stage.total
                ? (stage.done / stage.total) * 100
                : 100
          }
          label={progressLabel}
        />
      )}
      <ErrorNote error={error} id="import-error" />
      {report && (
        <div id="import-report">
          <div class="stats">
            <Stat label={t('kb.inserted')} value={report.inserted} id="import-inserted" />
            <Stat label={t('kb.updated_count')} value={report.updated} id="import-updated" />
            <Stat label={t('kb.unchanged')} value={report.unchanged} id="import-unchanged" />
            <Stat
              label={t('kb.row_errors')}
              value={(report.errors || []).length}
              id="import-errors"
              kind={(report.errors || []).length ? 'error' : ''}
            />
          </div>
          {(report.errors || []).length > 0 && (
            <div class="card scroll-box">
              <table class="table" id="import-error-rows">
                <thead>
                  <tr>
                    <th class="col-num">{t('kb.line')}</th>
                    <th>{t('kb.problem')}</th>
                  </tr>
                </thead>
                <tbody>
                  {report.errors.map((row, index) => (
                    <tr key={index}>
                      <td class="col-num mono">{row.line}</td>
                      <td>{row.message}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </div>
      )}
    </Modal>
  );
}

/** Polls a background job until it ends: its result, or its error as an ApiError-like value. */
async function followJob(job, onProgress) {
  let current = job;
  for (;;) {
    if (current.progress) onProgress(current.progress);
    if (current.state === 'done') return current.result;
    if (current.state === 'failed') {
      throw { code: current.error_code || 'job_failed', message: current.error_message || '' };
    }
    await new Promise((resolve) => setTimeout(resolve, 400));
    current = (await get(tp(`/jobs/${encodeURIComponent(current.id)}`))).job;
  }
}

function Stat({ label, value, id, kind = '' }) {
  return (
    <div class={`stat ${kind ? `stat-${kind}` : ''}`} id={id}>
      <div class="stat-value">{value ?? 0}</div>
      <div class="stat-label">{label}</div>
    </div>
  );
}

function SynonymsDialog({ onClose, onSaved }) {
  const t = useT();
  const [text, setText] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    get(tp('/kb/synonyms')).then(
      (body) => setText(typeof body === 'string' ? body : ''),
      (failure) => {
        setError(failure);
        setText('');
      },
    );
  }, []);
  const save = async () => {
    setBusy(true);
    setError(null);
    try {
      await api('PUT', tp('/kb/synonyms'), { body: text, type: 'text/plain; charset=utf-8' });
      onSaved();
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };
  return (
    <Modal
      title={t('kb.synonyms')}
      onClose={onClose}
      id="synonyms-dialog"
      footer={
        <>
          <div class="toolbar-spacer" />
          <button type="button" class="button" onClick={onClose}>
            {t('common.cancel')}
          </button>
          <button type="button" class="button-primary" id="synonyms-save" disabled={busy || text === null} onClick={save}>
            {t('common.save')}
          </button>
        </>
      }
    >
      <p class="muted">{t('kb.synonyms_help')}</p>
      {text === null ? (
        <Loading />
      ) : (
        <textarea
          id="synonyms-text"
          class="mono"
          rows={14}
          value={text}
          placeholder="快递=物流=包裹"
          onInput={(event) => setText(event.currentTarget.value)}
        />
      )}
      <ErrorNote error={error} id="synonyms-error" />
    </Modal>
  );
}

const DECISION_KIND = { answer: 'ok', clarify: 'warn', handoff: 'info', out_of_scope: 'neutral' };

function TryBot() {
  const t = useT();
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState(null);
  const [error, setError] = useState(null);

  const ask = async (event) => {
    event.preventDefault();
    const question = text.trim();
    if (!question) return;
    setBusy(true);
    setError(null);
    try {
      const [decision, candidates] = await Promise.all([
        post(tp('/bot/ask'), { text: question }),
        get(tp(`/kb/search${qs({ q: question, k: 5, mode: 'hybrid' })}`)).catch(() => []),
      ]);
      setOutcome({ question, decision, candidates: Array.isArray(candidates) ? candidates : [] });
    } catch (failure) {
      setError(failure);
      setOutcome(null);
    } finally {
      setBusy(false);
    }
  };

  const decision = outcome && outcome.decision;
  return (
    <div class="panel" id="try-bot">
      <h2 class="panel-title">{t('bot.try')}</h2>
      <p class="muted small">{t('bot.try_help')}</p>
      <form onSubmit={ask} class="stack">
        <textarea
          id="try-text"
          rows={3}
          value={text}
          placeholder={t('bot.try_placeholder')}
          onInput={(event) => setText(event.currentTarget.value)}
          onKeyDown={(event) => {
            if (event.key === 'Enter' && !event.shiftKey) ask(event);
          }}
        />
        <button type="submit" class="button-primary" id="try-ask" disabled={busy || !text.trim()}>
          {busy ? t('bot.asking') : t('bot.ask')}
        </button>
      </form>
      <ErrorNote error={error} id="try-error" />
      {decision && (
        <div class="try-result" id="try-result" data-decision={decision.decision} data-faq-id={decision.faq_id || ''}>
          <div class="try-head">
            <Badge kind={DECISION_KIND[decision.decision] || 'neutral'}>
              <span id="try-decision">{t(`bot.decision_${decision.decision}`)}</span>
            </Badge>
            <span class="try-confidence" id="try-confidence" title={t('bot.confidence')}>
              {t('bot.confidence')} {percent(decision.confidence)}
            </span>
          </div>
          <div class="meter" aria-hidden="true">
            <div class="meter-fill" style={{ width: `${Math.round((decision.confidence || 0) * 100)}%` }} />
          </div>
          <dl class="facts">
            <dt>{t('bot.reason')}</dt>
            <dd id="try-reason" data-reason={decision.reason}>
              {t.has(`reason.${decision.reason}`) ? t(`reason.${decision.reason}`) : decision.reason}
              <span class="mono muted"> ({decision.reason})</span>
            </dd>
            {decision.faq_id && (
              <>
                <dt>{t('bot.faq')}</dt>
                <dd class="mono">{decision.faq_id}</dd>
              </>
            )}
            {decision.intent && (
              <>
                <dt>{t('bot.intent')}</dt>
                <dd>
                  {decision.intent.label} <span class="muted">{percent(decision.intent.score)}</span>
                </dd>
              </>
            )}
            {decision.skill_hint && (
              <>
                <dt>{t('bot.skill')}</dt>
                <dd>{decision.skill_hint}</dd>
              </>
            )}
          </dl>
          {decision.answer && (
            <div class="bubble" id="try-answer">
              {decision.answer}
            </div>
          )}
          {decision.suggestions && decision.suggestions.length > 0 && (
            <div class="suggestions">
              <div class="muted small">{t('bot.suggestions')}</div>
              {decision.suggestions.map((suggestion) => (
                <button
                  type="button"
                  class="chip"
                  key={suggestion}
                  onClick={() => setText(suggestion)}
                >
                  {suggestion}
                </button>
              ))}
            </div>
          )}
          {outcome.candidates.length > 0 && (
            <table class="table table-compact" id="try-candidates">
              <thead>
                <tr>
                  <th>{t('bot.candidate')}</th>
                  <th class="col-num" title={t('bot.score_hint')}>{t('kb.score')}</th>
                  <th class="col-num">{t('bot.confidence_short')}</th>
                </tr>
              </thead>
              <tbody>
                {outcome.candidates.map((hit) => (
                  <tr key={hit.id} data-faq-id={hit.id} class={hit.id === decision.faq_id ? 'row-chosen' : ''}>
                    <td>
                      <div class="cell-strong">{hit.question}</div>
                      <div class="mono muted small">{hit.id}</div>
                    </td>
                    <td class="col-num mono">{Number(hit.score).toFixed(3)}</td>
                    <td class="col-num mono">{hit.confidence === undefined ? '' : percent(hit.confidence)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
      {!decision && !error && <div class="muted small try-empty">{t('bot.try_empty')}</div>}
      {error && <span class="sr-only">{errorText(t, error)}</span>}
    </div>
  );
}

export { Stat, FaqEditor };
