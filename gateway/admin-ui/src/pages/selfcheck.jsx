// How well the bot knows this knowledge base (GET bot/selfcheck): every question and alternate
// held out and asked against the rest, plus generic off-topic questions, at the tenant's
// current settings. Shown beside the FAQs; checked again a moment after every change.
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, tp } from '../api.js';
import { percent, useT } from '../i18n.js';
import { Badge, ErrorNote, Loading } from '../ui.jsx';

const ABSTAINED = ['clarify', 'out_of_scope', 'handoff'];
// The bot indexes a change a moment after the store has it.
const SETTLE_MS = 2500;

function Share({ id, label, count, rate, kind }) {
  return (
    <div class={`stat stat-${kind}`} id={id} data-count={count}>
      <div class="stat-value">{percent(rate)}</div>
      <div class="stat-label">
        {label} <span class="mono">({count})</span>
      </div>
    </div>
  );
}

function MissOutcome({ outcome }) {
  const t = useT();
  if (ABSTAINED.includes(outcome)) {
    return <Badge kind="warn">{t(`bot.decision_${outcome}`)}</Badge>;
  }
  return (
    <Badge kind="error" title={t('selfcheck.answered_with_hint')}>
      {t('selfcheck.answered_with', { id: outcome })}
    </Badge>
  );
}

/** `version` changes after every FAQ write of the page; `onOpenFaq(id)` opens the editor. */
export function SelfCheck({ version, onOpenFaq }) {
  const t = useT();
  const [run, setRun] = useState(0);
  const [state, setState] = useState({ report: null, loading: true, error: null });
  const seenVersion = useRef(version);

  useEffect(() => {
    let live = true;
    // After a change the bot needs a moment to index it; a click checks at once.
    const settle = seenVersion.current !== version ? SETTLE_MS : 0;
    seenVersion.current = version;
    setState((old) => ({ ...old, loading: true, error: null }));
    const started = setTimeout(
      () =>
        get(tp('/bot/selfcheck')).then(
          (report) => live && setState({ report, loading: false, error: null }),
          (error) => live && setState({ report: null, loading: false, error }),
        ),
      settle,
    );
    return () => {
      live = false;
      clearTimeout(started);
    };
  }, [version, run]);

  const { report, loading, error } = state;
  const checked = report && report.queries > 0;
  return (
    <div class="panel" id="kb-selfcheck" data-state={loading ? 'loading' : error ? 'error' : 'done'}>
      <h2 class="panel-title">{t('selfcheck.title')}</h2>
      <p class="muted small">{t('selfcheck.help')}</p>
      <ErrorNote error={error} id="selfcheck-error" />
      {loading && !report && <Loading />}
      {report && !checked && (
        <p class="muted small" id="selfcheck-too-few">
          {t('selfcheck.too_few', { faqs: report.faqs })}
        </p>
      )}
      {checked && (
        <>
          <div class="stats stats-3" id="selfcheck-shares">
            <Share id="selfcheck-right" label={t('selfcheck.right')} count={report.right} rate={report.accuracy} kind="ok" />
            <Share
              id="selfcheck-abstained"
              label={t('selfcheck.abstained')}
              count={report.abstained}
              rate={report.abstain_rate}
              kind="warn"
            />
            <Share id="selfcheck-wrong" label={t('selfcheck.wrong')} count={report.wrong} rate={report.wrong_rate} kind="error" />
          </div>
          <dl class="facts small">
            <dt>{t('selfcheck.asked')}</dt>
            <dd id="selfcheck-queries">
              {t('selfcheck.asked_value', {
                queries: report.queries,
                faqs: report.faqs_with_alternates,
                all: report.faqs,
              })}
            </dd>
            <dt>{t('selfcheck.off_topic')}</dt>
            <dd id="selfcheck-negatives" data-answered={report.negatives_answered}>
              {t('selfcheck.off_topic_value', { answered: report.negatives_answered, asked: report.negatives })}
            </dd>
            <dt>{t('selfcheck.clarified')}</dt>
            <dd>
              {t('selfcheck.clarified_value', { clarified: report.clarified, right: report.clarified_with_right })}
            </dd>
            <dt>{t('selfcheck.calibration')}</dt>
            <dd id="selfcheck-source" data-source={report.calibration_source}>
              {t(`selfcheck.source_${report.calibration_source}`)}
              <span class="muted">
                {' · '}
                {t('selfcheck.threshold', { value: report.answer_threshold })}
              </span>
            </dd>
            {report.self_fitted && (
              <>
                <dt>{t('selfcheck.self_fitted')}</dt>
                <dd id="selfcheck-self-fitted">
                  {t('selfcheck.self_fitted_value', {
                    right: percent(report.self_fitted.accuracy),
                    abstained: percent(report.self_fitted.abstain_rate),
                    wrong: percent(report.self_fitted.wrong_rate),
                  })}
                </dd>
              </>
            )}
          </dl>
          {report.misses.length > 0 && (
            <>
              <h3 class="section-title">{t('selfcheck.misses')}</h3>
              <table class="table table-compact" id="selfcheck-misses">
                <thead>
                  <tr>
                    <th>{t('selfcheck.asked_text')}</th>
                    <th>{t('selfcheck.outcome')}</th>
                  </tr>
                </thead>
                <tbody>
                  {report.misses.map((miss, index) => {
                    const faq = miss.expected !== 'none';
                    return (
                      <tr
                        key={`${index}-${miss.text}`}
                        class={faq ? 'row-link' : ''}
                        data-expected={miss.expected}
                        data-outcome={miss.outcome}
                        title={faq ? t('selfcheck.open_hint') : undefined}
                        onClick={faq ? () => onOpenFaq(miss.expected) : undefined}
                      >
                        <td>
                          <div>{miss.text}</div>
                          <div class="mono muted small">
                            {faq ? t('selfcheck.expected', { id: miss.expected }) : t('selfcheck.expected_none')}
                          </div>
                        </td>
                        <td>
                          <MissOutcome outcome={miss.outcome} />
                          <div class="mono muted small">{percent(miss.confidence)}</div>
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </>
          )}
        </>
      )}
      <div class="panel-foot">
        {report && (
          <span class="muted small" id="selfcheck-took">
            {t('selfcheck.took', { ms: report.duration_ms })}
          </span>
        )}
        <div class="toolbar-spacer" />
        <button type="button" class="button" id="selfcheck-run" disabled={loading} onClick={() => setRun(run + 1)}>
          {loading ? t('selfcheck.running') : t('selfcheck.run')}
        </button>
      </div>
    </div>
  );
}
