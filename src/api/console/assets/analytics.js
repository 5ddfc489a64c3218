// The tiers and analytics view: the overview's figures, tier distribution and migrations
// by week, retention cohorts, segments, the churn model's card and its highest-risk
// users, engagement and feature usage, and the recommendations' exposure report.

import * as api from '/admin/api.js';
import { lines } from '/admin/chart.js';
import { $, fill, pairs, guarded, when, pct, num } from '/admin/ui.js';

const TIERS = ['free', 'premium', 'enterprise', 'vip'];
const COLORS = { free: '#5b6570', premium: '#2757c9', enterprise: '#1f8a4c', vip: '#b5651d' };

export async function enter() {
  const err = $('analytics-error');
  const [overview, tiers, cohorts, segments, churn, usage, recs, forecast] = await Promise.all([
    guarded(() => api.get('/admin/analytics/overview'), err),
    guarded(() => api.get('/admin/analytics/tiers'), err),
    guarded(() => api.get('/admin/analytics/cohorts'), err),
    guarded(() => api.get('/admin/analytics/segments'), err),
    guarded(() => api.get('/admin/analytics/churn'), err),
    guarded(() => api.get('/admin/analytics/usage'), err),
    guarded(() => api.get('/admin/recommendations/report'), err),
    guarded(() => api.get('/admin/analytics/forecast?weeks=52&ahead=13'), err),
  ]);
  if (overview) showOverview(overview);
  if (tiers) showTiers(tiers);
  if (cohorts) showCohorts(cohorts);
  fill($('segments'), (segments && segments.segments) || [], (s) => [s.name, s.size],
    'no segment model: train one (POST /api/v1/admin/analytics/train)');
  showChurn(churn);
  if (usage) showUsage(usage);
  if (recs) showRecommendations(recs);
  if (forecast) showForecast(forecast);
}

function showForecast(f) {
  const by = Object.fromEntries(f.series.map((s) => [s.name, s]));
  const plot = (canvas, s, color) => {
    const labels = [...s.history.map((p) => p.at.slice(0, 10)), ...s.forecast.map((p) => p.at.slice(0, 10))];
    // The forecast lines start at the last point of the history.
    const gap = Array(Math.max(s.history.length - 1, 0)).fill(null);
    const last = s.history.length ? [s.history[s.history.length - 1].value] : [];
    const ahead = (f) => [...gap, ...last, ...s.forecast.map(f)];
    lines(canvas, labels, [
      { name: 'history', color, values: [...s.history.map((p) => p.value), ...s.forecast.map(() => null)] },
      { name: 'forecast', color: '#b5651d', values: ahead((p) => p.value) },
      { name: '95% interval', color: '#d6a77a', values: ahead((p) => p.low) },
      { name: '', color: '#d6a77a', values: ahead((p) => p.high) },
    ]);
  };
  if (by.users) plot($('chart-forecast-users'), by.users, '#2757c9');
  if (by.mau) plot($('chart-forecast-mau'), by.mau, '#1f8a4c');
  const ahead = (s) => (s && s.forecast.length ? s.forecast[s.forecast.length - 1] : null);
  const total = ahead(by.users);
  const rows = ['users', 'mau', ...TIERS].filter((n) => by[n]).map((n) => {
    const s = by[n];
    const a = ahead(s);
    const now = s.history.length ? s.history[s.history.length - 1].value : null;
    const share = TIERS.includes(n) && a && total && total.value ? pct(a.value / total.value) : '';
    const bt = s.backtest;
    return [n, num(now), a ? num(a.value) : 'too little history', a ? `${num(a.low)}–${num(a.high)}` : '', share,
      bt ? `${bt.mape == null ? '–' : pct(bt.mape)} over ${bt.weeks} weeks (${pct(bt.coverage)} inside)` : '–'];
  });
  fill($('forecast'), rows, (r) => r);
  const weeks = f.horizon_weeks;
  $('forecast-note').textContent = `${weeks} weeks ahead; ${f.method}. The back-test fits without the last weeks and forecasts them.`;
}

export function leave() {}

function showOverview(o) {
  pairs($('overview'), [['Users', o.users], ['Consenting to analytics', o.consenting],
    ['DAU', o.dau], ['WAU', o.wau], ['MAU', o.mau], ['Stickiness (DAU/MAU)', pct(o.stickiness)],
    ['Events, 7 days', o.events.last_7_days], ['Events, 30 days', o.events.last_30_days],
    ['Listening minutes, 30 days', o.listening_minutes_30_days], ['Computed', when(o.generated_at)]]);
  fill($('tier-now'), TIERS, (t) => [t, o.users_by_tier[t] ?? 0, pct(o.users ? (o.users_by_tier[t] ?? 0) / o.users : 0)]);
}

function showTiers(r) {
  const weeks = r.weeks || [];
  lines($('chart-tiers'), weeks.map((w) => w.start.slice(0, 10)),
    TIERS.map((t) => ({ name: t, color: COLORS[t], values: weeks.map((w) => w.users_by_tier[t] ?? 0) })));
  const moves = [];
  for (const w of weeks) for (const m of w.migrations || []) moves.push([w.start.slice(0, 10), m]);
  fill($('migrations'), moves.reverse(), ([week, m]) => [week, `${m.from || 'new'} → ${m.to}`, m.count], 'no tier change in these weeks');
}

function showCohorts(c) {
  const table = $('cohorts');
  const head = table.querySelector('thead tr');
  head.replaceChildren();
  const th = (t) => { const e = document.createElement('th'); e.textContent = t; head.appendChild(e); };
  th(`${c.unit} of sign-up`); th('users');
  for (let i = 0; i < c.periods; i++) th(`+${i}`);
  fill(table, c.cohorts || [], (row) => [row.start.slice(0, 10), row.size, ...row.retention.map((r) => (r == null ? '' : pct(r)))]);
  // Shade each retention cell by its value (set through the style object: allowed by the
  // page's policy, unlike a style attribute).
  for (const td of table.querySelectorAll('tbody td:nth-child(n+3)')) {
    const v = parseFloat(td.textContent);
    if (!Number.isNaN(v)) td.style.backgroundColor = `rgba(39, 87, 201, ${(v / 100) * 0.45})`;
  }
}

function showChurn(r) {
  if (!r || !r.model) {
    pairs($('churn-card'), [['Model', 'none trained yet (POST /api/v1/admin/analytics/train)']]);
    fill($('at-risk'), [], () => []);
    return;
  }
  const m = r.model;
  const ev = m.evaluation || {};
  pairs($('churn-card'), [['Version', m.version], ['Trained', when(m.trained_at)], ['Horizon', `${m.horizon_days} days`],
    ['Training rows', m.training_rows], ['Base rate', pct(m.base_rate)], ['AUC (hold-out)', num(ev.auc, 3)],
    ['Log loss (hold-out)', num(ev.log_loss, 3)], ['Usable', m.usable ? 'yes' : 'no'], ['Users scored', r.scored]]);
  fill($('at-risk'), (r.at_risk || []).slice(0, 20), (u) => [u.user_id, u.tier, pct(u.prediction.probability),
    u.prediction.band, (u.prediction.reasons || []).slice(0, 2).map((x) => x.feature).join(', ')], 'no user scored');
}

function showUsage(u) {
  const e = u.engagement || {};
  pairs($('usage'), [['Period', `${u.from.slice(0, 10)} – ${u.to.slice(0, 10)}`], ['Sign-ups', u.signups], ['Logins', u.logins],
    ['Engagement, mean', num(e.mean, 1)], ['Engagement, median', e.median]]);
  fill($('engagement'), e.bins || [], (b) => [`${b.from}–${b.to}`, b.users]);
  fill($('features'), u.features || [], (f) => [f.feature, f.users_in_period, f.users, f.uses], 'no feature use recorded');
}

function showRecommendations(r) {
  const x = r.exposure;
  const row = (name, m) => [name, m.lists, num(m.hit_rate, 3), num(m.ndcg, 3), pct(m.coverage), num(m.gini, 3), pct(m.head_share), num(m.intra_list_diversity, 3)];
  fill($('exposure'), [['without mitigation', x.without_mitigation], ['with mitigation', x.with_mitigation]], ([n, m]) => row(n, m));
  fill($('click-through'), r.click_through_by_level || [], (c) => [c.level, c.shown, c.clicked, c.click_through == null ? '–' : pct(c.click_through)]);
}
