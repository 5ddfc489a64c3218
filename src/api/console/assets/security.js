// The security and compliance view: the live security feed (every user's security
// events and the operators' actions, filtered here), the audit log with its chain
// verified, second factors by tier and consents by purpose, the master key (fingerprint,
// since when, the key it replaced), and the runtime deny-list of networks.

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
  compliance();
  guarded(() => api.get('/admin/master-key'), $('security-error')).then((k) => {
    if (!k) return;
    text($('key-fingerprint'), k.fingerprint);
    text($('key-since'), k.in_use_since ? when(k.in_use_since) : 'not recorded');
    text($('key-replaced'), k.rotated_from ?? 'never rotated');
  });
}

// Counted over every stored user on the server (a full read of the store): on entering
// the view and when asked, never on a timer.
async function compliance() {
  text($('compliance-status'), 'counting every stored user…');
  const r = await guarded(() => api.get('/admin/analytics/compliance'), $('security-error'));
  if (!r) { text($('compliance-status'), ''); return; }
  const pct = (n, of) => (of ? `${(100 * n / of).toFixed(1)}%` : '–');
  fill($('mfa-adoption'), Object.entries(r.mfa_by_tier), ([tier, a]) => [tier, a.users, a.enrolled,
    pct(a.enrolled, a.users), a.required, a.authenticator, a.passkey, a.sms, a.recovery_codes]);
  fill($('consents-by-purpose'), Object.entries(r.consents), ([purpose, c]) => [purpose.replace('_', ' '),
    c.granted, c.withdrawn, c.not_answered, c.in_force]);
  const unreadable = r.unreadable ? `; ${r.unreadable} records could not be read (see the log)` : '';
  text($('compliance-status'), `${r.users} users counted at ${when(r.generated_at)}, ${pct(r.mfa_enrolled_share, 1)} with a second factor${unreadable}`);
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
$('count-compliance').addEventListener('click', compliance);

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
