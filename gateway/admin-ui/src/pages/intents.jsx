// Intents: train the tenant's intent head from a file (a background job, watched to its report),
// the recent training jobs, bring your own ONNX classifier, and a classify box to try it.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, del, get, post, qs, tp, upload } from '../api.js';
import { formatBytes, formatTime, percent, useT } from '../i18n.js';
import { Badge, ConfirmButton, Empty, ErrorNote, Loading, ProgressBar, useLoad } from '../ui.jsx';

const POLL_MS = 500;
const JOB_KIND = { running: 'info', done: 'ok', failed: 'error' };

export function IntentsPage() {
  const t = useT();
  const model = useLoad(() => get(tp('/intents/model')), []);
  const jobs = useLoad(() => get(tp(`/jobs${qs({ kind: 'intents_train', limit: 20 })}`)), []);
  const [shownJob, setShownJob] = useState(null);
  const changed = () => {
    model.reload();
    jobs.reload();
  };
  return (
    <div class="stack-lg" id="intents">
      <div class="split">
        <div class="stack-lg">
          <Train
            onDone={(job) => {
              setShownJob(job);
              changed();
            }}
          />
          <section class="card">
            <div class="toolbar card-toolbar">
              <h2 class="section-title">{t('in.jobs')}</h2>
              <div class="toolbar-spacer" />
              <button type="button" class="button-small" onClick={() => jobs.reload()}>
                {t('audit.refresh')}
              </button>
            </div>
            <ErrorNote error={jobs.error} />
            <table class="table" id="jobs-table">
              <thead>
                <tr>
                  <th class="col-date">{t('in.job_started')}</th>
                  <th>{t('in.job_state')}</th>
                  <th>{t('in.job_by')}</th>
                  <th class="col-num">{t('in.examples')}</th>
                  <th class="col-num">{t('in.accuracy')}</th>
                </tr>
              </thead>
              <tbody>
                {((jobs.data && jobs.data.jobs) || []).map((job) => (
                  <tr
                    key={job.id}
                    data-job={job.id}
                    data-state={job.state}
                    class={`row-link${shownJob && shownJob.id === job.id ? ' row-selected' : ''}`}
                    onClick={() => setShownJob(job)}
                  >
                    <td class="col-date">{formatTime(t, job.created_at, true)}</td>
                    <td>
                      <Badge kind={JOB_KIND[job.state] || 'neutral'}>{t(`in.state_${job.state}`)}</Badge>
                      {job.error_code && <span class="mono small"> {job.error_code}</span>}
                    </td>
                    <td>{job.started_by}</td>
                    <td class="col-num">{job.result ? job.result.tenant_examples : (job.progress && job.progress.examples) || ''}</td>
                    <td class="col-num">
                      {job.result && job.result.held_out_accuracy !== null && job.result.held_out_accuracy !== undefined
                        ? percent(job.result.held_out_accuracy)
                        : ''}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {jobs.loading && !jobs.data && <Loading />}
            {jobs.data && (jobs.data.jobs || []).length === 0 && <Empty>{t('in.no_jobs')}</Empty>}
          </section>
          {shownJob && <JobReport job={shownJob} />}
        </div>
        <div class="stack-lg">
          <Classify />
          <Model model={model} onChanged={changed} />
        </div>
      </div>
    </div>
  );
}

function formatOf(file) {
  const name = (file && file.name.toLowerCase()) || '';
  if (name.endsWith('.csv')) return 'csv';
  if (name.endsWith('.jsonl') || name.endsWith('.json') || name.endsWith('.ndjson')) return 'jsonl';
  return '';
}

function Train({ onDone }) {
  const t = useT();
  const [file, setFile] = useState(null);
  const [format, setFormat] = useState('');
  const [phase, setPhase] = useState(null); // uploading | running | done | error
  const [value, setValue] = useState(0);
  const [job, setJob] = useState(null);
  const [error, setError] = useState(null);
  const alive = useRef(true);
  useEffect(() => () => (alive.current = false), []);

  const watch = async (id) => {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      if (!alive.current) return;
      const { job: current } = await get(tp(`/jobs/${encodeURIComponent(id)}`));
      setJob(current);
      if (current.state !== 'running') return current;
    }
  };

  const start = async () => {
    if (!file) return;
    setError(null);
    setJob(null);
    setPhase('uploading');
    setValue(0);
    try {
      const chosen = format || formatOf(file);
      const accepted = await upload('POST', tp(`/intents/train${qs({ format: chosen })}`), file, {
        type: chosen === 'csv' ? 'text/csv' : 'application/x-ndjson',
        onProgress: (sent, total) => setValue(total ? (100 * sent) / total : 0),
      });
      setJob(accepted.job);
      setPhase('running');
      const ended = accepted.job.state === 'running' ? await watch(accepted.job.id) : accepted.job;
      if (!ended) return;
      if (ended.state === 'done') {
        setPhase('done');
        setValue(100);
      } else {
        setPhase('error');
        setError({ code: ended.error_code || 'failed', message: ended.error_message || '' });
      }
      onDone(ended);
    } catch (failure) {
      setPhase('error');
      setError(failure);
    }
  };

  const progress = job && job.progress;
  let label = '';
  if (phase === 'uploading') label = t('in.uploading', { n: Math.round(value) });
  else if (phase === 'running') label = progress && progress.examples ? t('in.training_n', { n: progress.examples }) : t('in.training');
  else if (phase === 'done') label = t('in.trained');
  else if (phase === 'error') label = t('in.failed');
  return (
    <section class="card card-pad" id="train">
      <h2 class="section-title">{t('in.train')}</h2>
      <p class="muted small">{t('in.train_help')}</p>
      <pre class="sample mono small">{'{"text":"where is my order","label":"order_status"}\n{"text":"怎么开发票","label":"invoice"}'}</pre>
      <div class="toolbar">
        <input
          type="file"
          id="train-file"
          accept=".jsonl,.json,.ndjson,.csv,text/csv,application/json"
          onChange={(event) => {
            const chosen = event.currentTarget.files[0] || null;
            setFile(chosen);
            setPhase(null);
            setError(null);
          }}
        />
        <select id="train-format" value={format} onChange={(event) => setFormat(event.currentTarget.value)} aria-label={t('in.format')}>
          <option value="">{t('in.format_auto')}</option>
          <option value="jsonl">JSON Lines</option>
          <option value="csv">CSV (text,label)</option>
        </select>
        <div class="toolbar-spacer" />
        <button
          type="button"
          class="button-primary"
          id="train-start"
          disabled={!file || phase === 'uploading' || phase === 'running'}
          onClick={start}
        >
          {t('in.train_start')}
        </button>
      </div>
      {file && <div class="muted small">{file.name} · {formatBytes(file.size)}</div>}
      {phase && (
        <ProgressBar
          id="train-progress"
          state={phase === 'running' ? 'processing' : phase}
          value={phase === 'running' ? 100 : value}
          label={label}
        />
      )}
      <ErrorNote error={error} id="train-error" />
    </section>
  );
}

function JobReport({ job }) {
  const t = useT();
  const report = job.result;
  if (job.state !== 'done' || !report) {
    return (
      <section class="card card-pad" id="train-report" data-job={job.id} data-state={job.state}>
        <h2 class="section-title">{t('in.report')}</h2>
        {job.state === 'running' ? (
          <p class="muted">{t('in.training')}</p>
        ) : (
          <ErrorNote error={{ code: job.error_code || 'failed', message: job.error_message || '' }} />
        )}
      </section>
    );
  }
  const labels = report.labels || [];
  const most = Math.max(1, ...labels.map((label) => label.count));
  const stats = [
    ['examples', report.examples],
    ['tenant_examples', report.tenant_examples],
    ['held_out', report.held_out],
    [
      'held_out_accuracy',
      report.held_out_accuracy === null || report.held_out_accuracy === undefined ? '—' : percent(report.held_out_accuracy),
    ],
    ['threshold', report.threshold === undefined ? '—' : Number(report.threshold).toFixed(2)],
    ['epochs', report.epochs],
    ['hidden', report.hidden],
    ['duration_ms', report.duration_ms === undefined ? '—' : `${(report.duration_ms / 1000).toFixed(1)} s`],
  ].filter(([, value]) => value !== undefined);
  return (
    <section class="card card-pad" id="train-report" data-job={job.id} data-state={job.state}>
      <h2 class="section-title">{t('in.report')}</h2>
      <p class="muted small">{t('in.report_of', { at: formatTime(t, job.updated_at), by: job.started_by })}</p>
      <div class="stats">
        {stats.map(([key, value]) => (
          <div class="stat" key={key} id={`report-${key}`}>
            <div class="stat-value">{value}</div>
            <div class="stat-label">{t(`in.r.${key}`)}</div>
          </div>
        ))}
      </div>
      <p class="muted small">{t('in.threshold_help')}</p>
      <div class="bars" id="train-labels">
        {labels.map((label) => (
          <div class="bar-row" key={label.label} data-label={label.label} data-count={label.count}>
            <div class="bar-label mono">{label.label}</div>
            <div class="bar-track">
              <div class="bar-fill" style={{ width: `${(100 * label.count) / most}%` }} />
            </div>
            <div class="bar-value">{label.count}</div>
          </div>
        ))}
      </div>
    </section>
  );
}

function Classify() {
  const t = useT();
  const [text, setText] = useState('');
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    if (!text.trim()) return;
    setBusy(true);
    setError(null);
    try {
      setResult(await post(tp('/intents/classify'), { text }));
    } catch (failure) {
      setResult(null);
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card card-pad" id="classify">
      <h2 class="section-title">{t('in.classify')}</h2>
      <p class="muted small">{t('in.classify_help')}</p>
      <form class="row-tight" onSubmit={submit}>
        <input id="classify-text" value={text} placeholder={t('in.classify_placeholder')} onInput={(event) => setText(event.currentTarget.value)} />
        <button type="submit" class="button-primary" id="classify-submit" disabled={busy || !text.trim()}>
          {t('in.classify_go')}
        </button>
      </form>
      <ErrorNote error={error} />
      {result && (
        <div
          class="try-result"
          id="classify-result"
          data-label={result.label}
          data-model={result.model}
          data-out-of-scope={result.out_of_scope ? 'true' : 'false'}
        >
          <div class="try-head">
            <strong class="mono" id="classify-label">
              {result.label}
            </strong>
            {result.out_of_scope ? <Badge kind="warn">{t('in.out_of_scope')}</Badge> : <Badge kind="ok">{t('in.in_scope')}</Badge>}
          </div>
          <div class="bar-track">
            <div class="bar-fill" style={{ width: `${Math.round(100 * (Number(result.score) || 0))}%` }} />
          </div>
          <div class="muted small">
            {t('in.score')}: {percent(result.score)} · {t('in.model')}: {t(`in.model_${result.model}`)}
          </div>
        </div>
      )}
    </section>
  );
}

function Model({ model, onChanged }) {
  const t = useT();
  const [files, setFiles] = useState({});
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [form, setForm] = useState(0);
  const current = model.data;
  const ready = files.model && files.tokenizer && files.labels;

  const send = async () => {
    setBusy(true);
    setError(null);
    const body = new FormData();
    body.append('model', files.model);
    body.append('tokenizer', files.tokenizer);
    body.append('labels', files.labels);
    try {
      await api('PUT', tp('/intents/model'), { body });
      setFiles({});
      setForm((value) => value + 1);
      onChanged();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const remove = async () => {
    setError(null);
    try {
      await del(tp('/intents/model'));
      onChanged();
    } catch (failure) {
      setError(failure);
    }
  };
  const report = current && current.report;
  // `GET intents/model` names a trained head `head`; classify answers `trained` for it.
  const kind = current ? (current.kind === 'head' ? 'trained' : current.kind) : '';
  return (
    <section class="card card-pad" id="model">
      <h2 class="section-title">{t('in.current_model')}</h2>
      <ErrorNote error={model.error} />
      {model.loading && !current && <Loading />}
      {current && (
        <div class="stack" id="model-current" data-kind={kind}>
          <div>
            <Badge kind={kind === 'builtin' ? 'neutral' : 'ok'}>{t.has(`in.model_${kind}`) ? t(`in.model_${kind}`) : kind}</Badge>
            {current.updated_at && <span class="muted small"> · {formatTime(t, current.updated_at)}</span>}
          </div>
          {t.has(`in.model_${kind}_help`) && <p class="muted small p-0">{t(`in.model_${kind}_help`)}</p>}
          {report && report.labels && (
            <div class="small">
              {t('in.labels')}:{' '}
              <span class="mono">
                {report.labels.map((label) => (typeof label === 'string' ? label : label.label)).join(', ')}
              </span>
            </div>
          )}
          {report && report.model_bytes && <div class="muted small">{formatBytes(report.model_bytes)}</div>}
          {kind !== 'builtin' && (
            <ConfirmButton class="button" id="model-remove" onConfirm={remove}>
              {t('in.remove_model')}
            </ConfirmButton>
          )}
        </div>
      )}
      <h3 class="sub-title">{t('in.byo')}</h3>
      <p class="muted small">{t('in.byo_help')}</p>
      <div class="stack" key={form}>
        {[
          ['model', '.onnx'],
          ['tokenizer', '.json'],
          ['labels', '.txt,.json'],
        ].map(([name, accept]) => (
          <label class="field" key={name}>
            <span class="field-label">{t(`in.file_${name}`)}</span>
            <input
              type="file"
              id={`onnx-${name}`}
              accept={accept}
              onChange={(event) => setFiles({ ...files, [name]: event.currentTarget.files[0] || null })}
            />
          </label>
        ))}
        <button type="button" class="button" id="onnx-upload" disabled={!ready || busy} onClick={send}>
          {busy ? t('in.validating') : t('in.upload_model')}
        </button>
        <ErrorNote error={error} id="model-error" />
      </div>
    </section>
  );
}
