// The operator console: one page, a view per hash (#live, #users, #jobs), every figure
// and action through the public API with the console session.

import * as api from '/admin/api.js';
import { LineChart } from '/admin/chart.js';

const $ = (id) => document.getElementById(id);
const views = ['sign-in', 'live', 'users', 'jobs'];
let live = null;

function show(name) {
  for (const v of views) $(`${v}-view`).hidden = v !== name;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.id === `nav-${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  $('nav').hidden = name === 'sign-in';
}

function notice(text) { $('notice').textContent = text || ''; }

function text(el, value) { el.textContent = value; }

function when(ts) { return ts ? new Date(ts).toLocaleString() : '–'; }

function cell(row, value) {
  const td = document.createElement('td');
  td.textContent = value == null ? '–' : String(value);
  row.appendChild(td);
  return td;
}

// --- sign-in -------------------------------------------------------------------------

async function signedIn(session) {
  if (!session) { stopLive(); show('sign-in'); $('key').focus(); return; }
  route();
}

$('sign-in').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  text($('sign-in-error'), '');
  try {
    const s = await api.signIn($('key').value);
    $('key').value = '';
    if (!location.hash || location.hash === '#sign-in') location.hash = '#live';
    await signedIn(s);
  } catch (e) {
    text($('sign-in-error'), e.message);
  }
});

$('sign-out').addEventListener('click', async () => {
  try { await api.signOut(); } catch (e) { notice(e.message); }
  signedIn(null);
});

// An API call refused for want of a session sends the operator back to sign in.
async function guarded(fn, errorEl) {
  try {
    text(errorEl, '');
    return await fn();
  } catch (e) {
    if (e.status === 401) { signedIn(null); return undefined; }
    text(errorEl, e.message);
    return undefined;
  }
}

// --- live ----------------------------------------------------------------------------

const charts = {};

function startLive() {
  if (live) return;
  charts.active = charts.active || new LineChart($('chart-active'));
  charts.logins = charts.logins || new LineChart($('chart-logins'), { color: '#1f8a4c' });
  const ws = api.socket('/admin/live');
  live = ws;
  ws.onopen = () => text($('live-status'), 'connected: one frame a second');
  ws.onmessage = (msg) => {
    let frame;
    try { frame = JSON.parse(msg.data); } catch { return; }
    if (frame.type !== 'live') return;
    const f = frame.figures;
    // Plotted at the time each frame arrives: the browser's clock, not the server's.
    const at = Date.now();
    text($('active-total'), f.active_total);
    for (const t of ['free', 'premium', 'enterprise', 'vip']) text($(`active-${t}`), f.active_users[t] ?? 0);
    text($('logins'), f.logins_per_sec.toFixed(1));
    text($('refused'), f.refused_logins_per_sec.toFixed(1));
    text($('events'), f.events_per_sec.toFixed(1));
    text($('signups'), f.signups_today);
    text($('actors'), f.live_actors);
    measureRoundTrip();
    charts.active.push(at, f.active_total);
    charts.logins.push(at, f.logins_per_sec);
  };
  ws.onclose = (ev) => {
    live = null;
    text($('live-status'), `disconnected (${ev.code}); reconnecting`);
    if (!$('live-view').hidden) setTimeout(startLive, 2000);
  };
}

// The time a request to the server takes there and back, measured every 5 seconds.
let lastProbe = 0;
async function measureRoundTrip() {
  if (performance.now() - lastProbe < 5000) return;
  lastProbe = performance.now();
  const t0 = performance.now();
  try {
    await fetch('/healthz', { cache: 'no-store' });
    text($('round-trip'), `${(performance.now() - t0).toFixed(1)} ms`);
  } catch { text($('round-trip'), 'unreachable'); }
}

function stopLive() {
  if (live) { const ws = live; live = null; ws.onclose = null; ws.close(); }
}

// --- users ---------------------------------------------------------------------------

let shown = null;

$('find-user').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const q = $('find-email').value.trim();
  const profile = await guarded(() => (q.includes('@')
    ? api.get(`/admin/users/lookup?email=${encodeURIComponent(q)}`)
    : api.get(`/users/${encodeURIComponent(q)}`)), $('find-error'));
  $('user').hidden = !profile;
  if (profile) await openUser(profile);
});

async function openUser(profile) {
  shown = profile;
  renderUser(profile);
  await Promise.all([loadSessions(), loadInsights(), loadMfa(), loadEvents()]);
}

function pairs(dl, rows) {
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v == null ? '–' : String(v);
    dd.dataset.field = k.toLowerCase().replace(/[^a-z]+/g, '-');
    dl.append(dt, dd);
  }
}

function renderUser(p) {
  pairs($('user-profile'), [['Id', p.id], ['Email', p.email], ['Name', p.display_name], ['Tier', p.tier],
    ['Created', when(p.created_at)], ['Language', p.language], ['Time zone', p.timezone]]);
  $('new-tier').value = p.tier;
}

$('change-tier').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const tier = $('new-tier').value;
  const p = await guarded(() => api.post(`/users/${shown.id}/upgrade`, { new_tier: tier }), $('find-error'));
  if (p) { notice(`${p.email} is now ${p.tier}`); shown = p; renderUser(p); await loadInsights(); }
});

async function loadInsights() {
  const i = await guarded(() => api.get(`/users/${shown.id}/insights`), $('find-error'));
  if (!i) return;
  const churn = i.churn ? `${(i.churn.probability * 100).toFixed(0)}% (${i.churn.band})` : 'no model';
  pairs($('user-insights'), [['Logins', i.logins], ['Last login', when(i.last_login_at)],
    ['Active sessions', i.active_sessions], ['Engagement', i.engagement ? i.engagement.score : 'no activity'],
    ['Churn risk', churn], ['Features', (i.features || []).join(', ')]]);
}

async function loadMfa() {
  const m = await guarded(() => api.get(`/users/${shown.id}/mfa`), $('find-error'));
  if (!m) return;
  pairs($('user-mfa'), [['Authenticator', m.authenticator ? `since ${when(m.authenticator_enrolled_at)}` : 'none'],
    ['Passkeys', (m.passkeys || []).length], ['Phone', m.phone || 'none'],
    ['Recovery codes left', m.recovery_codes_left], ['Login factors', (m.login_factors || []).join(', ') || 'none']]);
}

async function loadEvents() {
  const events = await guarded(() => api.get(`/users/${shown.id}/security-events?limit=20`), $('find-error'));
  const body = $('user-events').querySelector('tbody');
  body.replaceChildren();
  for (const e of events || []) {
    const row = document.createElement('tr');
    cell(row, when(e.at));
    cell(row, e.kind);
    cell(row, e.ip_address);
    cell(row, e.risk ? `${e.risk.score.toFixed(2)} ${e.risk.decision}` : '');
    body.appendChild(row);
  }
}

async function loadSessions() {
  const sessions = await guarded(() => api.get(`/users/${shown.id}/sessions`), $('find-error'));
  const body = $('user-sessions').querySelector('tbody');
  body.replaceChildren();
  for (const s of sessions || []) {
    const row = document.createElement('tr');
    row.dataset.session = s.id;
    cell(row, s.id.slice(0, 8));
    cell(row, when(s.created_at));
    cell(row, when(s.last_seen_at));
    cell(row, s.ip_address);
    cell(row, s.device_id || s.user_agent);
    const td = cell(row, '');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'quiet revoke';
    b.textContent = 'Revoke';
    b.addEventListener('click', async () => {
      const done = await guarded(() => api.del(`/users/${shown.id}/sessions/${s.id}`), $('find-error'));
      if (done !== undefined) { notice(`session ${s.id.slice(0, 8)} revoked`); await Promise.all([loadSessions(), loadEvents()]); }
    });
    td.appendChild(b);
    body.appendChild(row);
  }
  if (!sessions || sessions.length === 0) {
    const row = document.createElement('tr');
    cell(row, 'no live session').colSpan = 6;
    body.appendChild(row);
  }
}

// --- jobs ----------------------------------------------------------------------------

async function loadJobs() {
  const view = await guarded(() => api.get('/admin/jobs'), $('jobs-error'));
  const body = $('jobs').querySelector('tbody');
  body.replaceChildren();
  for (const j of (view && view.jobs) || []) {
    const row = document.createElement('tr');
    cell(row, j.name);
    cell(row, `${j.schedule} (${j.timezone})${j.enabled ? '' : ', off'}`);
    cell(row, when(j.next_run));
    cell(row, j.running ? 'running' : j.last_run ? `${j.last_run.outcome}: ${j.last_run.message}` : 'never ran');
    const td = cell(row, '');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'quiet';
    b.textContent = 'Run now';
    b.addEventListener('click', async () => {
      const done = await guarded(() => api.post(`/admin/jobs/${encodeURIComponent(j.name)}/run`), $('jobs-error'));
      if (done !== undefined) { notice(`${j.name} asked to run`); setTimeout(loadJobs, 1000); }
    });
    td.appendChild(b);
    body.appendChild(row);
  }
  if (view && !view.scheduler_running) text($('jobs-error'), 'the scheduler is off on this server (automation.enabled)');
}

// --- routing -------------------------------------------------------------------------

function route() {
  const name = (location.hash || '#live').slice(1);
  const view = views.includes(name) && name !== 'sign-in' ? name : 'live';
  show(view);
  if (view === 'live') startLive(); else stopLive();
  if (view === 'jobs') loadJobs();
  if (view === 'users') $('find-email').focus();
}

window.addEventListener('hashchange', () => { if (!$('nav').hidden) route(); });

api.resume().then(signedIn, (e) => { notice(e.message); signedIn(null); });
