// Custom dashboards: compose one from the panels below (each a figure of the analytics
// API with its tier and time range), save it by name in the store, open it again, and
// export what it shows as CSV.

import * as api from '/admin/api.js';
import { $, text, fill, guarded, button, when, notice } from '/admin/ui.js';

const KINDS = {
  overview: 'Overview',
  tier_distribution: 'Users by tier',
  tiers_by_week: 'Users by tier, by week',
  cohorts: 'Retention cohorts',
  segments: 'Segments',
  churn_at_risk: 'Highest churn risk',
  daily_usage: 'Daily usage',
  engagement: 'Engagement',
  feature_usage: 'Feature usage',
};
const TIERS = ['free', 'premium', 'enterprise', 'vip'];
let panels = [];
let rendered = [];

export async function enter() {
  if ($('panel-kind').options.length === 0) {
    for (const [k, label] of Object.entries(KINDS)) {
      const o = document.createElement('option'); o.value = k; o.textContent = label; $('panel-kind').appendChild(o);
    }
  }
  await list();
}

export function leave() {}

async function list() {
  const all = await guarded(() => api.get('/admin/dashboards'), $('dashboards-error'));
  fill($('dashboard-list'), all || [], (d, row) => {
    row.dataset.dashboard = d.name;
    const open = button('Open', () => openDashboard(d));
    open.classList.add('open');
    const del = button('Delete', async () => {
      const done = await guarded(() => api.del(`/admin/dashboards/${encodeURIComponent(d.name)}`), $('dashboards-error'));
      if (done !== undefined) { notice(`${d.name} deleted`); await list(); }
    });
    const actions = document.createElement('span');
    actions.append(open, ' ', del);
    return [d.name, d.title, d.panels.length, when(d.updated_at), actions];
  }, 'no dashboard saved yet');
}

function showPanels() {
  const ol = $('panel-list');
  ol.replaceChildren();
  panels.forEach((p, i) => {
    const li = document.createElement('li');
    const parts = [KINDS[p.kind]];
    if (p.tier) parts.push(p.tier);
    if (p.days) parts.push(`${p.days} days`);
    li.textContent = `${parts.join(', ')} `;
    li.appendChild(button('Remove', () => { panels.splice(i, 1); showPanels(); }));
    ol.appendChild(li);
  });
}

$('panel-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const p = { kind: $('panel-kind').value };
  const tier = $('panel-tier').value;
  const days = $('panel-days').value;
  if (tier) p.tier = tier;
  if (days) p.days = Number(days);
  panels.push(p);
  showPanels();
});

$('save-dashboard').addEventListener('click', async () => {
  const name = $('dash-name').value.trim();
  const body = { title: $('dash-title').value.trim(), panels };
  const d = await guarded(() => api.put(`/admin/dashboards/${encodeURIComponent(name)}`, body), $('dashboards-error'));
  if (d) { notice(`${d.name} saved`); await list(); await render(d); }
});

async function openDashboard(d) {
  $('dash-name').value = d.name;
  $('dash-title').value = d.title;
  panels = d.panels.map((p) => ({ ...p }));
  showPanels();
  await render(d);
}

// --- rendering -----------------------------------------------------------------------

const day = (ts) => ts.slice(0, 10);
const weeksOf = (days, fallback) => (days ? Math.min(104, Math.max(1, Math.ceil(days / 7))) : fallback);
const fromOf = (days) => (days ? new Date(Date.now() - days * 86400000).toISOString().slice(0, 10) : null);
const share = (x) => (x == null ? '' : `${(x * 100).toFixed(1)}%`);

/** A panel's figures as a table: `{columns, rows}`. */
async function figures(p) {
  switch (p.kind) {
    case 'overview': {
      const o = await api.get('/admin/analytics/overview');
      return { columns: ['figure', 'value'], rows: [['users', o.users], ['consenting', o.consenting], ['dau', o.dau],
        ['wau', o.wau], ['mau', o.mau], ['stickiness', share(o.stickiness)], ['events, 7 days', o.events.last_7_days],
        ['events, 30 days', o.events.last_30_days], ['listening minutes, 30 days', o.listening_minutes_30_days]] };
    }
    case 'tier_distribution': {
      const o = await api.get('/admin/analytics/overview');
      return { columns: ['tier', 'users'], rows: TIERS.map((t) => [t, o.users_by_tier[t] ?? 0]) };
    }
    case 'tiers_by_week': {
      const r = await api.get(`/admin/analytics/tiers?weeks=${weeksOf(p.days, 12)}`);
      return { columns: ['week', ...TIERS], rows: r.weeks.map((w) => [day(w.start), ...TIERS.map((t) => w.users_by_tier[t] ?? 0)]) };
    }
    case 'cohorts': {
      const q = [`unit=week`, `periods=${weeksOf(p.days, 12)}`];
      if (p.tier) q.push(`tier=${p.tier}`);
      const c = await api.get(`/admin/analytics/cohorts?${q.join('&')}`);
      const columns = ['week of sign-up', 'users', ...Array.from({ length: c.periods }, (_, i) => `+${i}`)];
      return { columns, rows: c.cohorts.map((x) => [day(x.start), x.size, ...x.retention.map(share)]) };
    }
    case 'segments': {
      const s = await api.get('/admin/analytics/segments');
      return { columns: ['segment', 'users'], rows: ((s && s.segments) || []).map((x) => [x.name, x.size]) };
    }
    case 'churn_at_risk': {
      const r = await api.get('/admin/analytics/churn?limit=20');
      return { columns: ['user', 'tier', 'probability', 'band'],
        rows: (r.at_risk || []).map((u) => [u.user_id, u.tier, share(u.prediction.probability), u.prediction.band]) };
    }
    case 'daily_usage':
    case 'engagement':
    case 'feature_usage': {
      const from = fromOf(p.days);
      const u = await api.get(`/admin/analytics/usage${from ? `?from=${from}` : ''}`);
      if (p.kind === 'engagement') return { columns: ['score', 'users'], rows: u.engagement.bins.map((b) => [`${b.from}–${b.to}`, b.users]) };
      if (p.kind === 'feature_usage') return { columns: ['feature', 'users in period', 'users', 'uses'], rows: u.features.map((f) => [f.feature, f.users_in_period, f.users, f.uses]) };
      const sum = (m) => Object.values(m || {}).reduce((a, b) => a + b, 0);
      return { columns: ['day', 'sign-ups', 'active users', 'security events'],
        rows: u.days.map((d) => [day(d.day), sum(d.signups), d.active_users ?? '', sum(d.security_events)]) };
    }
    default:
      return { columns: ['?'], rows: [] };
  }
}

function titleOf(p) {
  if (p.title) return p.title;
  const extra = [p.tier, p.days ? `${p.days} days` : null].filter(Boolean).join(', ');
  return extra ? `${KINDS[p.kind]} (${extra})` : KINDS[p.kind];
}

async function render(d) {
  const root = $('dashboard-render');
  root.replaceChildren();
  const h = document.createElement('h3');
  h.textContent = d.title;
  h.id = 'dashboard-title';
  root.appendChild(h);
  rendered = [];
  for (const p of d.panels) {
    const section = document.createElement('section');
    section.className = 'panel';
    section.dataset.kind = p.kind;
    const heading = document.createElement('h4');
    heading.textContent = titleOf(p);
    section.appendChild(heading);
    root.appendChild(section);
    const t = await guarded(() => figures(p), $('dashboards-error'));
    if (!t) continue;
    rendered.push({ title: titleOf(p), ...t });
    const table = document.createElement('table');
    const head = document.createElement('thead');
    const hr = document.createElement('tr');
    for (const c of t.columns) { const th = document.createElement('th'); th.textContent = c; hr.appendChild(th); }
    head.appendChild(hr);
    table.append(head, document.createElement('tbody'));
    section.appendChild(table);
    fill(table, t.rows, (r) => r, 'nothing in this range');
  }
  text($('csv-status'), '');
}

// --- CSV -----------------------------------------------------------------------------

function csvCell(v) {
  const s = v == null ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

$('export-csv').addEventListener('click', () => {
  if (rendered.length === 0) { notice('open or save a dashboard first'); return; }
  const lines = [];
  for (const t of rendered) {
    lines.push(csvCell(t.title), t.columns.map(csvCell).join(','));
    for (const r of t.rows) lines.push(r.map(csvCell).join(','));
    lines.push('');
  }
  const blob = new Blob([lines.join('\n')], { type: 'text/csv' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `${$('dash-name').value || 'dashboard'}.csv`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  $('csv-status').dataset.csv = lines.join('\n');
  text($('csv-status'), `${blob.size} bytes exported`);
});
