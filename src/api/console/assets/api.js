// Calls of the public API from the pages: same origin; the operator console's are
// authenticated by its session cookie with the session's CSRF token on every call that
// changes something, the account page's by the user's session token as a bearer.

let csrf = null;
let bearer = null;

/** Authenticate with a user's session token from now on (`null`: stop). */
export function useToken(token) { bearer = token; }

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem && problem.detail ? problem.detail : `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function call(method, path, body) {
  return (await exchange(method, path, body)).body;
}

async function exchange(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  else if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const resp = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 204) return { status: 204, body: null };
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (resp.status === 401) window.dispatchEvent(new Event('roster:signed-out'));
  if (!resp.ok) throw new ApiError(resp.status, data);
  return { status: resp.status, body: data };
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body === undefined ? {} : body);
export const put = (path, body) => call('PUT', path, body);
export const del = (path) => call('DELETE', path);
/** A POST whose status matters (a login answers 200 or 202): `{status, body}`. */
export const postWithStatus = (path, body) => exchange('POST', path, body);

/** The console session this browser holds, or null. */
export async function resume() {
  try {
    const s = await get('/admin/console/session');
    csrf = s.csrf_token;
    return s;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

export async function signIn(key) {
  const s = await post('/admin/console/session', { key });
  csrf = s.csrf_token;
  return s;
}

export async function signOut() {
  try { await del('/admin/console/session'); } finally { csrf = null; }
}

/** A socket of the API on this server (the cookie authenticates it). */
export function socket(path) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return new WebSocket(`${scheme}://${location.host}/api/v1${path}`);
}
