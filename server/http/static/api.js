// api.js: the dashboard's client of the JSON API (/api/v1). Errors come back
// as {"code", "message"} with an HTTP status; they are thrown as ApiError.
//
// Tokens: a server started with --tokens_file answers every /api/v1 route 401
// UNAUTHENTICATED without `Authorization: Bearer <token>`. The token is kept
// in this tab's sessionStorage (never in a URL, a cookie or localStorage) and
// sent on every call; on a 401 the page shows a sign-in form and the call is
// retried once a token is entered. The live fit stream is read with fetch()
// (watchFits) rather than EventSource, which cannot send headers.
import { h } from './format.js';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
    this.detail = message;
  }
}

// --- the token, kept in this tab only ---

const TOKEN_KEY = 'surge.token';

export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
}

function setToken(token) {
  try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* storage off: the call fails again */ }
}

function clearToken() {
  try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing kept */ }
}

function headers(token, accept) {
  return token ? { Accept: accept, Authorization: `Bearer ${token}` } : { Accept: accept };
}

// Forgets the token and reloads the page, which then asks for one (and
// drops everything the old token showed).
export function signOut() {
  clearToken();
  location.reload();
}

// The sign-in form: one pending promise for every call that got a 401, so
// the form shows once and all of them retry with the token entered.
let signingIn = null;

function signInForm() {
  const input = h('input', { id: 'signin-token', type: 'password', autocomplete: 'off', spellcheck: false,
    required: true, placeholder: 'surge_…' });
  input.setAttribute('aria-describedby', 'signin-why');
  const error = h('p', { id: 'signin-error', class: 'error', role: 'alert' });
  error.hidden = true;
  // No `name` on the input and no action: even a submit the script does not
  // catch sends no token anywhere.
  const form = h('form', { id: 'signin-form', method: 'post' },
    h('label', {}, 'access token ', input),
    h('button', { type: 'submit', id: 'signin-go' }, 'Sign in'));
  const section = h('section', { id: 'signin', class: 'card signin' },
    h('h2', {}, 'Sign in'),
    h('p', { id: 'signin-why', class: 'small' }, 'This server needs a token (', h('code', {}, 'surge token new'),
      '); it is kept in this tab only.'),
    form, error);
  return { section, form, input, error };
}

function showRefusal(error, reason) {
  error.textContent = reason;
  error.hidden = !reason;
}

// Shows the form (once) and resolves when a token is entered. `reason`: why
// (the server's message when a token was refused), shown under the form.
function signIn(reason) {
  if (signingIn) {
    if (reason) showRefusal(signingIn.error, reason);
    return signingIn.promise;
  }
  const ui = signInForm();
  showRefusal(ui.error, reason);
  const main = document.querySelector('main') || document.body;
  main.prepend(ui.section);
  document.body.dataset.auth = 'required';
  signOutButton();
  const promise = new Promise((resolve) => {
    ui.form.addEventListener('submit', (e) => {
      e.preventDefault();
      let token = ui.input.value.trim().replace(/^bearer\s+/i, '');
      if (!/^[\x21-\x7e]+$/.test(token)) {
        showRefusal(ui.error, 'not a token: paste the `token:` value printed by surge token new');
        return;
      }
      setToken(token);
      token = '';
      ui.input.value = '';
      ui.section.remove();
      delete document.body.dataset.auth;
      signingIn = null;
      signOutButton();
      resolve();
    });
  });
  signingIn = { promise, error: ui.error };
  ui.input.focus();
  return promise;
}

// A 401 for a call sent with `sent` (the token, or ''): waits until there is
// another token to try. A refused token is forgotten.
async function unauthorized(sent, message) {
  const now = getToken();
  if (now && now !== sent) return;  // signed in meanwhile: retry with the new one
  if (sent) clearToken();
  await signIn(sent ? `That token was refused: ${message}` : '');
}

// "sign out" in the header while a token is kept.
function signOutButton() {
  const header = document.querySelector('header');
  if (!header) return;
  let button = document.getElementById('signout');
  if (!getToken() || document.body.dataset.auth === 'required') {
    if (button) button.remove();
    return;
  }
  if (button) return;
  button = h('button', { type: 'button', id: 'signout', class: 'signout',
    title: 'forget the access token kept in this tab' }, 'sign out');
  button.addEventListener('click', signOut);
  header.append(button);
}

if (typeof document !== 'undefined') {
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', signOutButton);
  else signOutButton();
}

async function errorOf(res, path) {
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch (e) {
    return new ApiError(res.status, 'INTERNAL', `not JSON from ${path}: ${text.slice(0, 200)}`);
  }
  return new ApiError(res.status, body.code || 'UNKNOWN', body.message || text);
}

export async function getJson(path) {
  for (;;) {
    const token = getToken();
    const res = await fetch(path, { headers: headers(token, 'application/json') });
    if (res.status === 401) {
      const error = await errorOf(res, path);
      await unauthorized(token, error.detail);
      continue;
    }
    const text = await res.text();
    let body;
    try { body = JSON.parse(text); } catch (e) {
      throw new ApiError(res.status, 'INTERNAL', `not JSON from ${path}: ${text.slice(0, 200)}`);
    }
    if (!res.ok) throw new ApiError(res.status, body.code || 'UNKNOWN', body.message || text);
    return body;
  }
}

const enc = encodeURIComponent;

// Every page of a list call (follows next_page_token); `key`: the list field.
async function allPages(url, key) {
  const out = [];
  let token = '';
  do {
    const page = await getJson(url + (token ? `?page_token=${enc(token)}` : ''));
    out.push(...(page[key] || []));
    token = page.nextPageToken;
  } while (token);
  return { [key]: out };
}

export const api = {
  jobs: () => allPages('/api/v1/jobs', 'jobs'),
  job: (job) => getJson(`/api/v1/jobs/${enc(job)}`),
  runs: (job) => allPages(`/api/v1/jobs/${enc(job)}/runs`, 'runs'),
  fit: (job) => getJson(`/api/v1/jobs/${enc(job)}/fit`),
  // `more`: further query parameters, e.g. the reference {ref_batch_size, ref_lr, ref_step}.
  advice: (job, batchSize, step, criterion, more = {}) => getJson(`/api/v1/jobs/${enc(job)}/advice?batch_size=${enc(batchSize)}` +
    (step === '' || step === undefined || step === null ? '' : `&step=${enc(step)}`) +
    (criterion ? `&criterion=${enc(criterion)}` : '') +
    Object.entries(more).map(([k, v]) => `&${enc(k)}=${enc(v)}`).join('')),
  // Every record of one run (follows next_page_token).
  async records(job, run) {
    const out = [];
    let token = '';
    do {
      const page = await getJson(`/api/v1/jobs/${enc(job)}/records?run=${enc(run)}&page_size=100000` +
        (token ? `&page_token=${enc(token)}` : ''));
      out.push(...page.records);
      token = page.nextPageToken;
    } while (token);
    return out;
  },
  fitEventsUrl: (job) => `/api/v1/jobs/${enc(job)}/fit/events`,
};

// --- server-sent events over fetch() ---

// A parser of a text/event-stream body (the WHATWG rules): feed it decoded
// text in any pieces; it calls onEvent({type, data, id}) per event. Lines end
// in CRLF, LF or CR; `:` lines are comments; `data:` lines are joined by \n;
// an event without data is dropped; one space after the colon is not part of
// the value. `end()` flushes a trailing CR (never an unterminated event).
export function eventStreamParser(onEvent) {
  let buffer = '';
  let data = [];
  let type = '';
  let lastId = '';
  function line(text) {
    if (text === '') {
      if (data.length) onEvent({ type: type || 'message', data: data.join('\n'), id: lastId });
      data = [];
      type = '';
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') type = value;
    else if (field === 'id' && !value.includes('\0')) lastId = value;
  }
  function scan(final) {
    const re = /\r\n|\r|\n/g;
    let start = 0;
    let m;
    while ((m = re.exec(buffer))) {
      // A CR that ends this piece may be the first half of a CRLF.
      if (m[0] === '\r' && m.index === buffer.length - 1 && !final) break;
      line(buffer.slice(start, m.index));
      start = re.lastIndex;
    }
    buffer = buffer.slice(start);
  }
  return {
    push(text) { buffer += text; scan(false); },
    end() { scan(true); buffer = ''; data = []; type = ''; },
    get lastEventId() { return lastId; },
  };
}

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;
// The server writes a keepalive comment every 5 s while idle: a stream quiet
// for this long is dead (a half-open connection) and is opened again.
const STALL_MS = 30000;

// Follows a job's fits on /fit/events with the token, reconnecting with
// backoff (1 s doubling to 30 s, reset once a stream opens) when a stream
// ends, fails or stalls. Handlers: open(), fit(fitJson, id), shutdown(),
// down(reason) (the stream is gone; a retry is scheduled), stop(error) (a
// 4xx other than 401/429: no retry). A 401 waits for the sign-in form.
// Returns a function that closes the stream for good.
export function watchFits(job, on = {}) {
  const url = api.fitEventsUrl(job);
  let closed = false;
  let controller = null;
  let delay = RETRY_MIN_MS;
  let timer = null;
  const call = (name, ...a) => { if (!closed && on[name]) on[name](...a); };

  async function once() {
    controller = new AbortController();
    const abort = controller;
    let lastData = Date.now();
    const watchdog = setInterval(() => { if (Date.now() - lastData > STALL_MS) abort.abort(); }, 5000);
    try {
      const token = getToken();
      const res = await fetch(url, { headers: headers(token, 'text/event-stream'), cache: 'no-store', signal: abort.signal });
      if (res.status === 401) {
        const error = await errorOf(res, url);
        call('down', error.message);
        await unauthorized(token, error.detail);
        return 'now';
      }
      if (!res.ok) {
        const error = await errorOf(res, url);
        if (res.status >= 400 && res.status < 500 && res.status !== 429) {
          call('stop', error);
          return 'never';
        }
        call('down', error.message);
        return 'later';
      }
      const parser = eventStreamParser((event) => {
        if (event.type === 'fit') call('fit', JSON.parse(event.data), event.id);
        else if (event.type === 'shutdown') call('shutdown');
      });
      delay = RETRY_MIN_MS;
      call('open');
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        lastData = Date.now();
        parser.push(decoder.decode(value, { stream: true }));
      }
      parser.push(decoder.decode());
      parser.end();
      call('down', 'the stream ended');
      return 'later';
    } catch (e) {
      if (!closed) call('down', abort.signal.aborted ? 'no data for 30 s' : String(e.message || e));
      return 'later';
    } finally {
      clearInterval(watchdog);
    }
  }

  async function loop() {
    while (!closed) {
      const next = await once();
      if (next === 'never' || closed) return;
      if (next === 'now') continue;
      const wait = delay * (0.8 + 0.4 * Math.random());
      delay = Math.min(RETRY_MAX_MS, delay * 2);
      await new Promise((resolve) => { timer = setTimeout(resolve, wait); });
    }
  }

  loop();
  return () => {
    closed = true;
    clearTimeout(timer);
    if (controller) controller.abort();
  };
}
