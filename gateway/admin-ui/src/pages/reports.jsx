// Reports: volume, the bot's resolution and handoffs, service times and satisfaction over a
// period, filtered by channel, skill group and agent; every table downloads as CSV. The charts
// are plain SVG (no chart library: the console stays small). Definitions: docs/reports.md.
// Members who read conversations can export them from here too.
import { useState } from 'preact/hooks';
import { get, qs, tp } from '../api.js';
import { percent, useT } from '../i18n.js';
import { Empty, ErrorNote, Loading, useLoad } from '../ui.jsx';
import { ExportButton } from './export.jsx';

const DAY = 86_400_000;

function isoDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

/** A duration in ms as "42 s", "3.5 min", "1.2 h"; empty when unknown. */
export function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${Math.round(ms / 100) / 10} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 6000) / 10} min`;
  return `${Math.round(ms / 360_000) / 10} h`;
}

function rate(value) {
  return value === null || value === undefined ? '–' : percent(value);
}

function score(value) {
  return value === null || value === undefined ? '–' : value.toFixed(2);
}

const SERIES = [
  { key: 'bot_resolved', color: '#1a7f37' },
  { key: 'handed_off', color: '#1f6feb' },
  { key: 'unresolved', color: '#c9ced6' },
];

/** Stacked bars, one per row; `label(row)` under each bar (thinned when crowded). */
function StackedBars({ rows, label, id, height = 160 }) {
  const t = useT();
  const width = 640;
  const max = Math.max(1, ...rows.map((row) => SERIES.reduce((sum, s) => sum + row[s.key], 0)));
  const slot = width / Math.max(rows.length, 1);
  const bar = Math.max(2, Math.min(36, slot * 0.7));
  const every = Math.ceil(rows.length / 12);
  return (
    <figure class="chart" id={id}>
      <svg viewBox={`0 0 ${width} ${height + 22}`} role="img" aria-label={t('reports.chart_volume')}>
        <line x1="0" x2={width} y1={height} y2={height} class="chart-axis" />
        {rows.map((row, index) => {
          let y = height;
          const x = index * slot + (slot - bar) / 2;
          return (
            <g key={row.key} data-key={row.key}>
              <title>
                {`${row.key}: ${row.episodes} · ${SERIES.map((s) => `${t(`reports.${s.key}`)} ${row[s.key]}`).join(' · ')}`}
              </title>
              {SERIES.map((s) => {
                const h = (row[s.key] / max) * (height - 8);
                y -= h;
                return h > 0 ? <rect key={s.key} x={x} y={y} width={bar} height={h} fill={s.color} /> : null;
              })}
              {index % every === 0 && (
                <text x={x + bar / 2} y={height + 15} class="chart-label" text-anchor="middle">
                  {label(row)}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <figcaption class="chart-legend">
        {SERIES.map((s) => (
          <span key={s.key}>
            <i style={{ background: s.color }} />
            {t(`reports.${s.key}`)}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

/** The bot resolution rate per day as a line (0 to 100%). */
function RateLine({ rows, id, height = 120 }) {
  const t = useT();
  const width = 640;
  const points = rows
    .map((row, index) => ({ row, index }))
    .filter(({ row }) => row.bot_resolution_rate !== null && row.bot_resolution_rate !== undefined);
  const x = (index) => (rows.length <= 1 ? width / 2 : (index / (rows.length - 1)) * (width - 20) + 10);
  const y = (value) => height - value * (height - 10);
  return (
    <figure class="chart" id={id}>
      <svg viewBox={`0 0 ${width} ${height + 6}`} role="img" aria-label={t('reports.chart_rate')}>
        {[0, 0.5, 1].map((v) => (
          <g key={v}>
            <line x1="0" x2={width} y1={y(v)} y2={y(v)} class="chart-grid" />
            <text x="2" y={y(v) - 2} class="chart-label">
              {percent(v)}
            </text>
          </g>
        ))}
        {points.length > 1 && (
          <polyline
            fill="none"
            stroke="#1a7f37"
            stroke-width="2"
            points={points.map(({ row, index }) => `${x(index)},${y(row.bot_resolution_rate)}`).join(' ')}
          />
        )}
        {points.map(({ row, index }) => (
          <circle key={row.key} cx={x(index)} cy={y(row.bot_resolution_rate)} r="3" fill="#1a7f37">
            <title>{`${row.key}: ${percent(row.bot_resolution_rate)}`}</title>
          </circle>
        ))}
      </svg>
    </figure>
  );
}

function CsvLink({ table, query }) {
  const t = useT();
  return (
    <a class="button-ghost small" href={tp(`/reports/${table}.csv${qs(query)}`)} download data-csv={table}>
      {t('reports.csv')}
    </a>
  );
}

function Section({ title, table, query, children, id }) {
  return (
    <section class="card" id={id}>
      <div class="card-toolbar">
        <h3>{title}</h3>
        <div class="toolbar-spacer" />
        {table && <CsvLink table={table} query={query} />}
      </div>
      {children}
    </section>
  );
}

/** A breakdown table (channel, skill group or agent). */
function Breakdown({ rows, name, id }) {
  const t = useT();
  if (!rows.length) return <Empty>{t('reports.empty')}</Empty>;
  return (
    <table class="table table-compact" id={id}>
      <thead>
        <tr>
          <th />
          <th class="num">{t('reports.episodes')}</th>
          <th class="num">{t('reports.bot_resolution_rate')}</th>
          <th class="num">{t('reports.handoff_rate')}</th>
          <th class="num">{t('reports.first_response')} p50</th>
          <th class="num">{t('reports.handle')} p50</th>
          <th class="num">{t('reports.csat')}</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr key={row.key} data-key={row.key}>
            <td class="cell-strong">{name ? name(row.key) : row.key}</td>
            <td class="num">{row.episodes}</td>
            <td class="num">{rate(row.bot_resolution_rate)}</td>
            <td class="num">{rate(row.handoff_rate)}</td>
            <td class="num">{duration(row.first_response.p50_ms)}</td>
            <td class="num">{duration(row.handle.p50_ms)}</td>
            <td class="num">
              {score(row.csat_average)}
              {row.ratings > 0 && <span class="muted small"> ({row.ratings})</span>}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function ReportsPage({ permissions }) {
  const t = useT();
  const today = isoDay(Date.now());
  const [draft, setDraft] = useState({ from: isoDay(Date.now() - 6 * DAY), to: today, channel: '', skill_group: '', agent: '', tag: '' });
  const [query, setQuery] = useState(draft);
  const loaded = useLoad(() => get(tp(`/reports${qs(query)}`)), [JSON.stringify(query)]);
  const report = loaded.data && loaded.data.report;
  const agents = (loaded.data && loaded.data.agents) || {};
  const set = (key) => (event) => setDraft({ ...draft, [key]: event.currentTarget.value });
  const totals = report && report.totals;

  return (
    <div class="stack-lg" id="reports-page">
      <div class="report-bar">
        <form
          class="toolbar"
          id="report-filters"
          onSubmit={(event) => {
            event.preventDefault();
            setQuery({ ...draft });
          }}
        >
          <label class="inline-field">
            <span>{t('reports.from')}</span>
            <input type="date" id="report-from" value={draft.from} max={draft.to} onInput={set('from')} />
          </label>
          <label class="inline-field">
            <span>{t('reports.to')}</span>
            <input type="date" id="report-to" value={draft.to} min={draft.from} onInput={set('to')} />
          </label>
          <label class="inline-field">
            <span>{t('reports.channel')}</span>
            <select id="report-channel" value={draft.channel} onChange={set('channel')}>
              <option value="">{t('reports.all')}</option>
              {['web', 'mobile', 'wechat', 'douyin'].map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </select>
          </label>
          <label class="inline-field">
            <span>{t('reports.skill_group')}</span>
            <input id="report-skill" value={draft.skill_group} placeholder={t('reports.all')} onInput={set('skill_group')} size="10" />
          </label>
          <label class="inline-field">
            <span>{t('reports.tag')}</span>
            <input id="report-tag" value={draft.tag} placeholder={t('reports.all')} onInput={set('tag')} size="8" />
          </label>
          <label class="inline-field">
            <span>{t('reports.agent')}</span>
            <select id="report-agent" value={draft.agent} onChange={set('agent')}>
              <option value="">{t('reports.all')}</option>
              {Object.entries(agents).map(([id, name]) => (
                <option key={id} value={id}>
                  {name}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" class="button button-primary" id="report-apply">
            {t('reports.apply')}
          </button>
        </form>
        {/* Transcripts: for the roles that read conversations (not knowledge managers). */}
        {permissions && permissions.has('live') && <ExportButton />}
      </div>
      <ErrorNote error={loaded.error} id="report-error" />
      {loaded.loading && !report && <Loading />}
      {report && (
        <>
          <div class="stats stats-5" id="report-totals">
            <div class="stat" id="kpi-episodes">
              <div class="stat-value">{totals.episodes}</div>
              <div class="stat-label">{t('reports.episodes')}</div>
            </div>
            <div class="stat" id="kpi-bot-resolution">
              <div class="stat-value">{rate(totals.bot_resolution_rate)}</div>
              <div class="stat-label">{t('reports.bot_resolution_rate')}</div>
            </div>
            <div class="stat" id="kpi-handoff">
              <div class="stat-value">{rate(totals.handoff_rate)}</div>
              <div class="stat-label">{t('reports.handoff_rate')}</div>
            </div>
            <div class="stat" id="kpi-first-response">
              <div class="stat-value">{duration(totals.first_response.p50_ms)}</div>
              <div class="stat-label">{t('reports.first_response')} p50</div>
            </div>
            <div class="stat" id="kpi-csat">
              <div class="stat-value">{score(totals.csat_average)}</div>
              <div class="stat-label">
                {t('reports.csat')} · {t('reports.ratings', { count: totals.ratings })}
              </div>
            </div>
          </div>
          <div class="grid-2">
            <Section title={t('reports.by_day')} table="by_day" query={query} id="report-by-day">
              {report.by_day.length ? (
                <StackedBars rows={report.by_day} label={(row) => row.key.slice(5)} id="chart-by-day" />
              ) : (
                <Empty>{t('reports.empty')}</Empty>
              )}
            </Section>
            <Section title={t('reports.resolution_over_time')} query={query} id="report-rate">
              {report.by_day.length ? <RateLine rows={report.by_day} id="chart-rate" /> : <Empty>{t('reports.empty')}</Empty>}
            </Section>
          </div>
          <div class="grid-2">
            <Section title={t('reports.by_hour')} table="by_hour" query={query} id="report-by-hour">
              <StackedBars rows={report.by_hour} label={(row) => row.key} id="chart-by-hour" height={120} />
            </Section>
            <Section title={t('reports.bot_decisions')} table="handoff_reasons" query={query} id="report-decisions">
              <table class="table table-compact" id="decisions-table">
                <tbody>
                  <tr>
                    <td>{t('reports.bot_answers')}</td>
                    <td class="num">{totals.bot_answers}</td>
                  </tr>
                  <tr>
                    <td>{t('reports.bot_clarifies')}</td>
                    <td class="num">{totals.bot_clarifies}</td>
                  </tr>
                  <tr>
                    <td>{t('reports.bot_out_of_scope')}</td>
                    <td class="num">{totals.bot_out_of_scope}</td>
                  </tr>
                  {report.handoff_reasons.map((reason) => (
                    <tr key={reason.reason} data-reason={reason.reason}>
                      <td>
                        {t('reports.handoff')} · <span class="mono">{reason.reason}</span>
                      </td>
                      <td class="num">{reason.count}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </Section>
          </div>
          <Section title={t('reports.times')} table="totals" query={query} id="report-times">
            <table class="table table-compact" id="times-table">
              <thead>
                <tr>
                  <th />
                  <th class="num">n</th>
                  <th class="num">{t('reports.mean')}</th>
                  <th class="num">p50</th>
                  <th class="num">p90</th>
                  <th class="num">p99</th>
                </tr>
              </thead>
              <tbody>
                {['queue_wait', 'first_response', 'handle', 'resolution'].map((key) => (
                  <tr key={key} data-key={key}>
                    <td title={t(`reports.${key}_help`)}>{t(`reports.${key}`)}</td>
                    <td class="num">{totals[key].count}</td>
                    <td class="num">{duration(totals[key].mean_ms)}</td>
                    <td class="num">{duration(totals[key].p50_ms)}</td>
                    <td class="num">{duration(totals[key].p90_ms)}</td>
                    <td class="num">{duration(totals[key].p99_ms)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Section>
          <Section title={t('reports.satisfaction')} query={query} id="report-csat">
            <table class="table table-compact" id="csat-table">
              <thead>
                <tr>
                  <th />
                  <th class="num">{t('reports.episodes')}</th>
                  <th class="num">{t('reports.ratings_short')}</th>
                  <th class="num">{t('reports.csat')}</th>
                  <th class="num">{t('reports.satisfied')}</th>
                </tr>
              </thead>
              <tbody>
                {['bot', 'human'].map((key) => {
                  const row = report.satisfaction[key];
                  return (
                    <tr key={key} data-key={key}>
                      <td>{t(`reports.served_by_${key}`)}</td>
                      <td class="num">{row.episodes}</td>
                      <td class="num">{row.ratings}</td>
                      <td class="num">{score(row.csat_average)}</td>
                      <td class="num">{rate(row.csat_satisfied)}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
            <p class="muted small" id="csat-distribution">
              {report.satisfaction.distribution.map((n, i) => `${'★'.repeat(i + 1)} ${n}`).join('   ')}
            </p>
          </Section>
          <Section title={t('reports.by_agent')} table="by_agent" query={query} id="report-by-agent">
            <Breakdown rows={report.by_agent} name={(id) => agents[id] || id} id="agents-table" />
          </Section>
          <div class="grid-2">
            <Section title={t('reports.by_channel')} table="by_channel" query={query} id="report-by-channel">
              <Breakdown rows={report.by_channel} id="channels-table" />
            </Section>
            <Section title={t('reports.by_skill_group')} table="by_skill_group" query={query} id="report-by-skill">
              <Breakdown rows={report.by_skill_group} id="skills-table" />
            </Section>
          </div>
        </>
      )}
    </div>
  );
}
