// Custom dashboards: compose one from the panels below (each a figure of the analytics
// API with its tier and time range), save it by name in the store, open it again,
// export what it shows as CSV, and hand out read-only links to it. The server computes
// a dashboard's report (`GET /admin/dashboards/{name}/report`), the same one its links
// show.

import * as api from '/admin/api.js';
import { $, text, fill, guarded, button, when, notice } from '/admin/ui.js';
import { draw, csv, download } from '/admin/report.js';

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
let panels = [];
let report = null;
let opened = null;

export async function enter() {
  if ($('panel-kind').options.length === 0) {
    for (const [k, label] of Object.entries(KINDS)) {
      const o = document.createElement('option'); o.value = k; o.textContent = label; $('panel-kind').appendChild(o);
    }
  }
  await list();
}

export function leave() {}

const path = (name) => `/admin/dashboards/${encodeURIComponent(name)}`;

async function list() {
  const all = await guarded(() => api.get('/admin/dashboards'), $('dashboards-error'));
  fill($('dashboard-list'), all || [], (d, row) => {
    row.dataset.dashboard = d.name;
    const open = button('Open', () => openDashboard(d));
    open.classList.add('open');
    const del = button('Delete', async () => {
      const done = await guarded(() => api.del(path(d.name)), $('dashboards-error'));
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
  const d = await guarded(() => api.put(path(name), body), $('dashboards-error'));
  if (d) { notice(`${d.name} saved`); await list(); await show(d); }
});

async function openDashboard(d) {
  $('dash-name').value = d.name;
  $('dash-title').value = d.title;
  panels = d.panels.map((p) => ({ ...p }));
  showPanels();
  await show(d);
}

async function show(d) {
  opened = d;
  text($('csv-status'), '');
  text($('share-link'), '');
  showShares(d);
  const r = await guarded(() => api.get(`${path(d.name)}/report`), $('dashboards-error'));
  if (!r) return;
  report = r;
  draw($('dashboard-render'), r);
}

// --- read-only links -------------------------------------------------------------------

function showShares(d) {
  $('shares').hidden = false;
  fill($('share-list'), d.shares || [], (s, row) => {
    row.dataset.share = s.id;
    const revoke = button('Revoke', async () => {
      const done = await guarded(() => api.del(`${path(d.name)}/shares/${s.id}`), $('dashboards-error'));
      if (done === undefined) return;
      notice('link revoked');
      const fresh = await guarded(() => api.get(path(d.name)), $('dashboards-error'));
      if (fresh) { opened = fresh; showShares(fresh); }
    });
    revoke.classList.add('revoke');
    return [s.label || '–', when(s.created_at), when(s.expires_at), revoke];
  }, 'no link yet');
}

$('share-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!opened) { notice('open or save a dashboard first'); return; }
  const body = {};
  if ($('share-label').value.trim()) body.label = $('share-label').value.trim();
  if ($('share-days').value) body.expires_in_days = Number($('share-days').value);
  const made = await guarded(() => api.post(`${path(opened.name)}/shares`, body), $('dashboards-error'));
  if (!made) return;
  // The token is shown this once: the server keeps only its digest.
  const link = new URL(made.path, location.origin).href;
  text($('share-link'), link);
  $('share-link').dataset.link = link;
  const fresh = await guarded(() => api.get(path(opened.name)), $('dashboards-error'));
  if (fresh) { opened = fresh; showShares(fresh); }
});

// --- CSV -------------------------------------------------------------------------------

$('export-csv').addEventListener('click', () => {
  if (!report) { notice('open or save a dashboard first'); return; }
  const body = csv(report);
  const size = download(body, `${report.name}.csv`);
  $('csv-status').dataset.csv = body;
  text($('csv-status'), `${size} bytes exported`);
});
