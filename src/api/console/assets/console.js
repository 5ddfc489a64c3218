// The operator console: one page, a view per hash (#live, #users, #security,
// #analytics, #dashboards, #jobs), every figure and action through the public API with the console
// session. This module signs in and out and switches views; each view is a module.

import * as api from '/admin/api.js';
import { $, text, notice } from '/admin/ui.js';
import * as live from '/admin/live.js';
import * as users from '/admin/users.js';
import * as security from '/admin/security.js';
import * as analytics from '/admin/analytics.js';
import * as dashboards from '/admin/dashboards.js';
import * as jobs from '/admin/jobs.js';

const views = { live, users, security, analytics, dashboards, jobs };
let current = null;

function show(name) {
  for (const v of ['sign-in', ...Object.keys(views)]) $(`${v}-view`).hidden = v !== name;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.id === `nav-${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  $('nav').hidden = name === 'sign-in';
}

function leave() {
  if (current) { views[current].leave(); current = null; }
}

function route() {
  const name = (location.hash || '#live').slice(1);
  const next = views[name] ? name : 'live';
  if (next === current) return;
  leave();
  show(next);
  current = next;
  views[next].enter();
}

function signedOut() {
  leave();
  show('sign-in');
  $('key').focus();
}

$('sign-in').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  text($('sign-in-error'), '');
  try {
    await api.signIn($('key').value);
    $('key').value = '';
    route();
  } catch (e) {
    $('sign-in-error').textContent = e.message;
  }
});

$('sign-out').addEventListener('click', async () => {
  try { await api.signOut(); } catch (e) { notice(e.message); }
  signedOut();
});

// Any call refused for want of a session (it expired, or the server restarted).
window.addEventListener('roster:signed-out', () => { if (!$('nav').hidden) signedOut(); });
window.addEventListener('hashchange', () => { if (!$('nav').hidden) route(); });

api.resume().then((s) => (s ? route() : signedOut()), (e) => { notice(e.message); signedOut(); });
