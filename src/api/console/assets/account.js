// The account page: a user signs in (password, then a second factor if the account or
// the risk engine asks for one) and manages its own account through the public API,
// with its session token as a bearer, kept for this tab only (sessionStorage).

import * as api from '/account/api.js';
import { $, text, fill, pairs, guarded, button, when, notice } from '/account/ui.js';

const views = ['profile', 'sessions', 'security', 'integrations', 'privacy'];
const TOKEN = 'roster.account.token';
let me = null;
let session = null;
let challenge = null;

// Session ids with or without their dashes (a token carries them without).
const bare = (id) => id.replace(/-/g, '');

function show(name) {
  for (const v of ['sign-in', ...views]) $(`${v}-view`).hidden = v !== name;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.id === `nav-${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  $('nav').hidden = name === 'sign-in';
}

// --- signing in ----------------------------------------------------------------------

function signedOut() {
  sessionStorage.removeItem(TOKEN);
  api.useToken(null);
  me = null;
  challenge = null;
  $('second-factor').hidden = true;
  $('sign-in').hidden = false;
  show('sign-in');
  $('email').focus();
}

async function signedIn(success) {
  sessionStorage.setItem(TOKEN, success.token);
  api.useToken(success.token);
  session = success.token.split('.')[1] || null;
  await start();
}

async function start() {
  me = await guarded(() => api.get('/users/me'), $('sign-in-error'));
  if (!me) { signedOut(); return; }
  if (!session) {
    const token = sessionStorage.getItem(TOKEN) || '';
    session = token.split('.')[1] || null;
  }
  route();
}

$('sign-in').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  text($('sign-in-error'), '');
  try {
    const r = await api.postWithStatus('/auth/login', { email: $('email').value, password: $('password').value });
    $('password').value = '';
    if (r.status === 202) askFactor(r.body); else await signedIn(r.body);
  } catch (e) {
    $('sign-in-error').textContent = e.message;
  }
});

function askFactor(c) {
  challenge = c;
  const select = $('factor');
  select.replaceChildren();
  for (const m of c.methods) {
    const o = document.createElement('option');
    o.value = m;
    o.textContent = { authenticator: 'authenticator app', recovery_code: 'recovery code', email: 'code by email', sms: 'code by SMS', webauthn: 'passkey or security key' }[m] || m;
    select.appendChild(o);
  }
  $('sign-in').hidden = true;
  $('second-factor').hidden = false;
  $('factor-code').focus();
}

// --- passkeys (the browser's WebAuthn API; the options and answers are JSON) --------

async function signWith(options) {
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey);
  const credential = await navigator.credentials.get({ publicKey });
  return credential.toJSON();
}

$('passkey-sign-in').addEventListener('click', async () => {
  text($('sign-in-error'), '');
  try {
    const email = $('email').value.trim();
    if (!email) { $('sign-in-error').textContent = 'type your email first'; return; }
    const start = await api.post('/auth/passkey/start', { email });
    const credential = await signWith(start.options);
    const r = await api.post('/auth/passkey/finish', { challenge: start.challenge, credential });
    await signedIn(r);
  } catch (e) {
    $('sign-in-error').textContent = e.message;
  }
});

$('send-code').addEventListener('click', async () => {
  const m = $('factor').value;
  if (m !== 'email' && m !== 'sms') { notice('choose a code by email or SMS first'); return; }
  const r = await guarded(() => api.post(`/auth/login/mfa/${m}`, { challenge: challenge.challenge }), $('sign-in-error'));
  if (r) notice('a code is on its way');
});

$('second-factor').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  text($('sign-in-error'), '');
  try {
    const method = $('factor').value;
    const body = { challenge: challenge.challenge, method };
    if (method === 'webauthn') {
      const o = await api.post('/auth/login/mfa/webauthn', { challenge: challenge.challenge });
      body.credential = await signWith(o.options);
    } else {
      body.code = $('factor-code').value.trim();
    }
    const r = await api.post('/auth/login/mfa', body);
    $('factor-code').value = '';
    await signedIn(r);
  } catch (e) {
    $('sign-in-error').textContent = e.message;
  }
});

$('sign-out').addEventListener('click', async () => {
  try { await api.post('/auth/logout'); } catch (e) { notice(e.message); }
  signedOut();
});

window.addEventListener('roster:signed-out', () => { if (me) signedOut(); });

// --- profile -------------------------------------------------------------------------

async function profile() {
  me = await guarded(() => api.get('/users/me'), $('profile-error')) || me;
  pairs($('me'), [['Email', me.email], ['Tier', me.tier], ['Member since', when(me.created_at)]]);
  $('display-name').value = me.display_name;
  $('language').value = me.language;
  $('timezone').value = me.timezone;
  const ai = me.ai_preferences;
  $('personalization-level').value = ai.personalization_level;
  $('learning-rate').value = ai.learning_rate;
  $('bias-mitigation').checked = ai.bias_mitigation_enabled;
  $('mood-detection').checked = ai.mood_detection_enabled;
  $('explanations').checked = ai.explanations_enabled;
  $('custom-model').checked = ai.custom_model_training;
  $('federated').checked = ai.federated_learning_enabled;
}

$('profile').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = {
    display_name: $('display-name').value,
    language: $('language').value,
    timezone: $('timezone').value,
    ai_preferences: {
      personalization_level: $('personalization-level').value,
      learning_rate: Number($('learning-rate').value),
      bias_mitigation_enabled: $('bias-mitigation').checked,
      mood_detection_enabled: $('mood-detection').checked,
      explanations_enabled: $('explanations').checked,
      custom_model_training: $('custom-model').checked,
      federated_learning_enabled: $('federated').checked,
    },
  };
  const p = await guarded(() => api.put(`/users/${me.id}`, body), $('profile-error'));
  if (p) { me = p; notice('saved'); await profile(); }
});

// --- sessions ------------------------------------------------------------------------

async function sessions() {
  const list = await guarded(() => api.get(`/users/${me.id}/sessions`), $('sessions-error'));
  fill($('sessions'), list || [], (s, row) => {
    row.dataset.session = s.id;
    const here = bare(s.id) === bare(session || '');
    const place = s.location ? `${s.ip_address || ''} (${s.location.country || ''})` : s.ip_address;
    const end = here ? document.createTextNode('this browser') : button('End', async () => {
      const done = await guarded(() => api.del(`/users/${me.id}/sessions/${s.id}`), $('sessions-error'));
      if (done !== undefined) { notice('session ended'); await sessions(); }
    });
    return [s.device_id || s.user_agent || 'unknown device', place, when(s.created_at), when(s.last_seen_at), end];
  }, 'no live session');
}

$('end-others').addEventListener('click', async () => {
  const r = await guarded(() => api.post(`/users/${me.id}/sessions/revoke-others`), $('sessions-error'));
  if (r !== undefined) { notice('every other session ended'); await sessions(); }
});

// --- security ------------------------------------------------------------------------

async function security() {
  const m = await guarded(() => api.get(`/users/${me.id}/mfa`), $('security-error'));
  if (m) {
    pairs($('factors'), [['Authenticator', m.authenticator ? `since ${when(m.authenticator_enrolled_at)}` : 'none'],
      ['Passkeys', (m.passkeys || []).length], ['Recovery codes left', m.recovery_codes_left]]);
    $('totp-begin').hidden = m.authenticator;
    fill($('passkeys'), m.passkeys || [], (p, row) => {
      row.dataset.passkey = p.id;
      return [p.name, when(p.created_at), button('Remove', async () => {
        const done = await guarded(() => api.del(`/users/${me.id}/webauthn/${encodeURIComponent(p.id)}`), $('security-error'));
        if (done !== undefined) { notice('passkey removed'); await security(); }
      })];
    }, 'no passkey yet');
  }
  const events = await guarded(() => api.get(`/users/${me.id}/security-events?limit=20`), $('security-error'));
  fill($('events'), events || [], (e) => [when(e.at), e.kind, e.ip_address]);
}

$('totp-begin').addEventListener('click', async () => {
  const t = await guarded(() => api.post(`/users/${me.id}/mfa/totp`), $('security-error'));
  if (!t) return;
  $('totp-qr').src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(t.qr_svg)}`;
  text($('totp-secret'), t.secret);
  $('totp-setup').hidden = false;
  $('totp-code').focus();
});

$('totp-confirm').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const r = await guarded(() => api.post(`/users/${me.id}/mfa/totp/confirm`, { code: $('totp-code').value.trim() }), $('security-error'));
  if (!r) return;
  $('totp-setup').hidden = true;
  showRecoveryCodes(r.recovery_codes);
  notice('the authenticator is set up');
  await security();
});

// Recovery codes come with a first second factor, once: shown until the page moves on.
function showRecoveryCodes(codes) {
  if (!codes || codes.length === 0) return;
  const list = $('recovery-codes');
  list.replaceChildren();
  for (const c of codes) { const li = document.createElement('li'); li.textContent = c; list.appendChild(li); }
  $('recovery').hidden = false;
}

$('passkey-add').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  text($('security-error'), '');
  try {
    const begun = await api.post(`/users/${me.id}/webauthn/register`);
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(begun.options.publicKey);
    const created = await navigator.credentials.create({ publicKey });
    const body = { name: $('passkey-name').value.trim(), credential: created.toJSON() };
    const done = await api.post(`/users/${me.id}/webauthn/register/finish`, body);
    showRecoveryCodes(done && done.recovery_codes);
    $('passkey-name').value = '';
    notice('passkey added');
    await security();
  } catch (e) {
    $('security-error').textContent = e.message;
  }
});

$('password-change').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { current_password: $('current-password').value, new_password: $('new-password').value };
  const r = await guarded(() => api.post(`/users/${me.id}/password`, body), $('security-error'));
  $('current-password').value = ''; $('new-password').value = '';
  if (r !== undefined) notice('password changed: every other session ended');
});

// --- linked accounts -----------------------------------------------------------------

const LINK_STATUS = { active: 'active', reauth_required: 'link it again', suspended: 'suspended: not in your tier' };

async function integrations() {
  const [links, providers] = await Promise.all([
    guarded(() => api.get(`/users/${me.id}/integrations`), $('integrations-error')),
    guarded(() => api.get('/integrations'), $('integrations-error')),
  ]);
  const known = new Map((providers || []).map((p) => [p.id, p]));
  fill($('links'), links || [], (l, row) => {
    row.dataset.provider = l.provider;
    row.dataset.status = l.status;
    const p = known.get(l.provider);
    const actions = document.createElement('span');
    if (p && l.status === 'reauth_required') actions.appendChild(button('Link again', () => link(p)));
    if (p && p.syncs_history && l.status === 'active') actions.appendChild(button('Sync now', () => sync(l.provider)));
    actions.appendChild(button('Unlink', () => unlink(l.provider)));
    return [p ? p.name : l.provider, l.account, LINK_STATUS[l.status] || l.status, when(l.synced_at), actions];
  }, 'no linked account yet');
  const linked = new Set((links || []).map((l) => l.provider));
  const open = (providers || []).filter((p) => !linked.has(p.id) && p.availability === 'available' && p.tier_allows);
  fill($('providers'), open, (p, row) => {
    row.dataset.provider = p.id;
    return [p.name, p.category, button('Link', () => link(p))];
  }, 'nothing more to link on your tier');
}

async function link(p) {
  if (p.auth === 'apple_music') {
    notice('Apple Music is linked from the Roster app, which asks Apple for your permission');
    return;
  }
  const r = await guarded(() => api.post(`/users/${me.id}/integrations/${p.id}/link`), $('integrations-error'));
  if (!r) return;
  // To the provider, which sends the browser back here through the server's callback.
  if (r.authorization_url) { location.assign(r.authorization_url); return; }
  if (r.api_key) {
    text($('companion-key'), r.api_key);
    text($('companion-url'), r.events_url);
    $('companion').hidden = false;
  }
  notice(`${p.name} linked`);
  await integrations();
}

async function sync(provider) {
  const r = await guarded(() => api.post(`/users/${me.id}/integrations/${provider}/sync`), $('integrations-error'));
  if (r) { notice(`${r.imported} new plays from ${provider}`); await integrations(); }
}

async function unlink(provider) {
  const r = await guarded(() => api.del(`/users/${me.id}/integrations/${provider}`), $('integrations-error'));
  if (r !== undefined) { notice(`${provider} unlinked`); await integrations(); }
}

// What the provider's callback sent the browser back with, said once.
function linkOutcome() {
  const q = new URLSearchParams(location.search);
  const linked = q.get('linked');
  const failed = q.get('link_failed');
  if (!linked && !failed) return;
  history.replaceState(null, '', `${location.pathname}${location.hash}`);
  notice(linked ? `${linked} linked` : `${failed} was not linked (${q.get('reason') || 'no reason given'}); try again`);
}

// --- privacy -------------------------------------------------------------------------

async function privacy() {
  const c = await guarded(() => api.get(`/users/${me.id}/consents`), $('privacy-error'));
  for (const p of (c && c.purposes) || []) {
    const box = $(`consent-${p.purpose}`);
    if (box) box.checked = p.granted;
  }
}

$('consents').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = {};
  for (const p of ['analytics', 'personalisation', 'marketing', 'federated_learning']) body[p] = $(`consent-${p}`).checked;
  const r = await guarded(() => api.put(`/users/${me.id}/consents`, body), $('privacy-error'));
  if (r) { notice('consents saved'); await privacy(); }
});

$('export').addEventListener('click', async () => {
  const doc = await guarded(() => api.get(`/users/${me.id}/export`), $('privacy-error'));
  if (!doc) return;
  const blob = new Blob([JSON.stringify(doc, null, 2)], { type: 'application/json' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `roster-export-${me.id}.json`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  $('export-status').dataset.bytes = String(blob.size);
  text($('export-status'), `${blob.size} bytes downloaded`);
});

$('delete-account').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const password = $('delete-password').value;
  const code = $('delete-code').value.trim();
  $('delete-password').value = ''; $('delete-code').value = '';
  // Deleting needs a fresh proof: the password, and the authenticator when there is one.
  const proof = code ? { password, method: 'authenticator', code } : { password };
  const up = await guarded(() => api.post('/auth/step-up', proof), $('privacy-error'));
  if (!up) return;
  const done = await guarded(() => api.del(`/users/${me.id}`), $('privacy-error'));
  if (done !== undefined) { signedOut(); notice('your account is deleted'); }
});

// --- routing -------------------------------------------------------------------------

const loaders = { profile, sessions, security, integrations, privacy };

function route() {
  const name = (location.hash || '#profile').slice(1);
  const view = views.includes(name) ? name : 'profile';
  show(view);
  loaders[view]();
}

window.addEventListener('hashchange', () => { if (me) route(); });

linkOutcome();
const saved = sessionStorage.getItem(TOKEN);
if (saved) { api.useToken(saved); start(); } else signedOut();
