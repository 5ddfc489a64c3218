// The users view: find a user by email or id; its profile, insights, factors, sessions
// (revoke) and security events; change its tier.

import * as api from '/admin/api.js';
import { $, fill, pairs, guarded, button, when, notice, num } from '/admin/ui.js';

let shown = null;

export function enter() { $('find-email').focus(); }
export function leave() {}

$('find-user').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const q = $('find-email').value.trim();
  const profile = await guarded(() => (q.includes('@')
    ? api.get(`/admin/users/lookup?email=${encodeURIComponent(q)}`)
    : api.get(`/users/${encodeURIComponent(q)}`)), $('find-error'));
  $('user').hidden = !profile;
  if (profile) await open(profile);
});

async function open(profile) {
  shown = profile;
  render(profile);
  await Promise.all([sessions(), insights(), factors(), events()]);
}

function render(p) {
  pairs($('user-profile'), [['Id', p.id], ['Email', p.email], ['Name', p.display_name], ['Tier', p.tier],
    ['Created', when(p.created_at)], ['Language', p.language], ['Time zone', p.timezone]]);
  $('new-tier').value = p.tier;
}

$('change-tier').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const tier = $('new-tier').value;
  const p = await guarded(() => api.post(`/users/${shown.id}/upgrade`, { new_tier: tier }), $('find-error'));
  if (p) { notice(`${p.email} is now ${p.tier}`); shown = p; render(p); await insights(); }
});

async function insights() {
  const i = await guarded(() => api.get(`/users/${shown.id}/insights`), $('find-error'));
  if (!i) return;
  const churn = i.churn ? `${num(i.churn.probability * 100)}% (${i.churn.band})` : 'no model';
  pairs($('user-insights'), [['Logins', i.logins], ['Last login', when(i.last_login_at)],
    ['Active sessions', i.active_sessions], ['Engagement', i.engagement ? i.engagement.score : 'no activity'],
    ['Churn risk', churn], ['Features', (i.features || []).join(', ')]]);
}

async function factors() {
  const m = await guarded(() => api.get(`/users/${shown.id}/mfa`), $('find-error'));
  if (!m) return;
  pairs($('user-mfa'), [['Authenticator', m.authenticator ? `since ${when(m.authenticator_enrolled_at)}` : 'none'],
    ['Passkeys', (m.passkeys || []).length], ['Phone', m.phone || 'none'],
    ['Recovery codes left', m.recovery_codes_left], ['Login factors', (m.login_factors || []).join(', ') || 'none']]);
}

async function sessions() {
  const list = await guarded(() => api.get(`/users/${shown.id}/sessions`), $('find-error'));
  fill($('user-sessions'), list || [], (s, row) => {
    row.dataset.session = s.id;
    const revoke = button('Revoke', async () => {
      const done = await guarded(() => api.del(`/users/${shown.id}/sessions/${s.id}`), $('find-error'));
      if (done !== undefined) { notice(`session ${s.id.slice(0, 8)} revoked`); await Promise.all([sessions(), events()]); }
    });
    revoke.classList.add('revoke');
    return [s.id.slice(0, 8), when(s.created_at), when(s.last_seen_at), s.ip_address, s.device_id || s.user_agent, revoke];
  }, 'no live session');
}

async function events() {
  const list = await guarded(() => api.get(`/users/${shown.id}/security-events?limit=20`), $('find-error'));
  fill($('user-events'), list || [], (e) => [when(e.at), e.kind, e.ip_address,
    e.risk ? `${num(e.risk.score, 2)} ${e.risk.decision}` : '']);
}
