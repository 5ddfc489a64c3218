// The security and compliance view: the live security feed (every user's security
// events and the operators' actions, filtered here), the audit log with its chain
// verified, the master key's fingerprint, and the runtime deny-list of networks.

import * as api from '/admin/api.js';
import { $, text, fill, guarded, button, when, notice } from '/admin/ui.js';

const KEEP = 200;
let feed = null;
const frames = [];
let lockouts = 0;

export function enter() {
  start();
  audit();
  denied();
  guarded(() => api.get('/admin/master-key'), $('security-error')).then((k) => { if (k) text($('key-fingerprint'), k.fingerprint); });
}

export function leave() {
  if (feed) { const ws = feed; feed = null; ws.onclose = null; ws.close(); }
}

function start() {
  if (feed) return;
  const ws = api.socket('/admin/events');
  feed = ws;
  ws.onopen = () => text($('feed-status'), 'connected: events appear as they happen');
  ws.onmessage = (msg) => {
    let f;
    try { f = JSON.parse(msg.data); } catch { return; }
    if (f.type === 'lagged') { text($('feed-status'), `missed ${f.missed} events (the page fell behind)`); return; }
    if (f.type === 'security.lockout') text($('lockouts'), ++lockouts);
    frames.unshift(f);
    if (frames.length > KEEP) frames.length = KEEP;
    render();
  };
  ws.onclose = (ev) => {
    if (feed !== ws) return;
    feed = null;
    text($('feed-status'), `disconnected (${ev.code}); reconnecting`);
    setTimeout(() => { if (!$('security-view').hidden) start(); }, 2000);
  };
}

function render() {
  const kind = $('feed-kind').value;
  const user = $('feed-user').value.trim();
  const shown = frames.filter((f) => (!kind || f.type.startsWith(kind)) && (!user || (f.user_id || '').startsWith(user)));
  fill($('feed'), shown, (f) => [when(f.at), f.type, f.user_id || 'operator', summary(f)], 'no event since the page opened');
}

function summary(f) {
  const d = f.data || {};
  if (f.type.startsWith('operator.')) {
    if (d.result) return JSON.stringify(d.result);
    if (d.entry) return `${d.entry.network}: ${d.entry.reason}`;
    return JSON.stringify(d);
  }
  return Object.entries(d).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
}

$('feed-kind').addEventListener('change', render);
$('feed-user').addEventListener('input', render);

async function audit() {
  const verdict = await guarded(() => api.get('/admin/audit/verify'), $('security-error'));
  if (!verdict) return;
  text($('audit-status'), verdict.status === 'intact'
    ? `intact: ${verdict.records} records, every hash chained to the one before`
    : `BROKEN: ${JSON.stringify(verdict)}`);
  $('audit-status').dataset.status = verdict.status;
  const after = Math.max(0, (verdict.records || 0) - 50);
  const entries = await guarded(() => api.get(`/admin/audit?after=${after}&limit=50`), $('security-error'));
  fill($('audit'), (entries || []).reverse(), (e) => [e.seq, when(e.at), actor(e.actor), e.action.type,
    JSON.stringify(Object.fromEntries(Object.entries(e.action).filter(([k]) => k !== 'type')))]);
}

function actor(a) {
  if (!a) return '–';
  return a.kind + (a.id ? ` ${a.id.slice(0, 8)}` : '') + (a.job ? ` ${a.job}` : '');
}

$('verify-audit').addEventListener('click', audit);

async function denied() {
  const list = await guarded(() => api.get('/admin/deny-networks'), $('deny-error'));
  fill($('denied'), list || [], (d) => [d.network, d.reason, d.added_by, when(d.added_at), d.expires_at ? when(d.expires_at) : 'until removed',
    button('Allow again', async () => {
      const done = await guarded(() => api.del(`/admin/deny-networks?network=${encodeURIComponent(d.network)}`), $('deny-error'));
      if (done !== undefined) { notice(`${d.network} allowed again`); denied(); }
    })], 'no network denied at run time');
}

$('deny').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { network: $('deny-network').value.trim(), reason: $('deny-reason').value.trim() };
  const done = await guarded(() => api.post('/admin/deny-networks', body), $('deny-error'));
  if (done) { notice(`${done.entry ? done.entry.network : body.network} denied`); $('deny-network').value = ''; $('deny-reason').value = ''; denied(); }
});
