// The read-only page of a dashboard link: the token travels in the address's fragment
// (`/shared#t=…`), which the browser never sends to a server; the page hands it to the
// API in the `X-Dashboard-Share` header and draws what it answers. No operator key, no
// cookie, nothing that changes anything.

import { draw, csv, download } from '/shared/report.js';

const $ = (id) => document.getElementById(id);
// Once read, the token leaves the address bar (and so screenshots, shoulders and the
// history list); the tab keeps it for a reload, and forgets it when it closes.
const fromLink = new URLSearchParams(location.hash.slice(1)).get('t');
if (fromLink) {
  sessionStorage.setItem('roster-share', fromLink);
  history.replaceState(null, '', location.pathname);
}
const token = fromLink || sessionStorage.getItem('roster-share');
let report = null;

async function load() {
  $('shared-error').textContent = '';
  if (!token) { $('shared-error').textContent = 'This address holds no dashboard link.'; return; }
  const resp = await fetch('/api/v1/shared/dashboard', { headers: { 'X-Dashboard-Share': token }, credentials: 'omit', cache: 'no-store' });
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    // A link that opens nothing is forgotten; a busy server's refusal is not.
    if (resp.status === 401) sessionStorage.removeItem('roster-share');
    report = null;
    $('shared-render').replaceChildren();
    $('shared-error').textContent = (body && (body.detail || body.title)) || `the server answered ${resp.status}`;
    return;
  }
  report = body.report;
  document.title = `${report.title} — Roster`;
  draw($('shared-render'), report);
  $('shared-generated').textContent = new Date(report.generated_at).toLocaleString();
  $('shared-expires').textContent = new Date(body.link_expires_at).toLocaleString();
  $('shared-meta').hidden = false;
}

$('shared-refresh').addEventListener('click', load);
$('shared-csv').addEventListener('click', () => {
  if (!report) return;
  const text = csv(report);
  const size = download(text, `${report.name}.csv`);
  $('shared-csv-status').dataset.csv = text;
  $('shared-csv-status').textContent = `${size} bytes exported`;
});
load();
