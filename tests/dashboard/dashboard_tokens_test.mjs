// The dashboard on a server with tokens (--tokens_file), in headless Chromium
// (Debian's chromium driven by playwright-core), against a real surge-server
// and the real CLI. Tokens are made with `surge token new`. The job page must
// first show the sign-in form and no data (its API calls answered 401, sent
// without a token); a refused token keeps the form with the server's message;
// with a reader token of the job's tenant the page draws exactly what
// dashboard_test.mjs checks without tokens (job_checks.mjs), every API call
// carries `Authorization: Bearer <token>` and no URL holds the token; the
// live fit stream (fetch() with the header) goes live, delivers a new fit
// after an import with the writer token, and reconnects after the server
// restarts; "sign out" forgets the token; a reader of another tenant sees the
// job as not found, with the message of a missing job. The stream parser of
// api.js is checked first on every split of a sample stream.
// Screenshots in --out: dashboard-signin.png, dashboard-signed-in.png, dashboard-jobs-signed-in.png.
// Usage: node dashboard_tokens_test.mjs --server BIN --cli BIN --source DIR --out DIR
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { checker, launchBrowser, parseArgs, sleep, waitForFile } from './harness.mjs';
import { checkProbeJobPage, newFitShown } from './job_checks.mjs';

const args = parseArgs(process.argv.slice(2));
const JOB = 'probe-sweep';
const tally = checker();
const { check } = tally;

// `surge token new`: the token (to its user) and the line (to the token file).
function newToken(tenant, role) {
  const out = execFileSync(args.cli, ['token', 'new', '--tenant', tenant, '--role', role], { encoding: 'utf8' });
  const token = (out.match(/^token:\s*(\S+)/m) || [])[1];
  const line = (out.match(/^line:\s*(.+)$/m) || [])[1];
  if (!token || !line) throw new Error(`unexpected output of surge token new: ${out}`);
  return { token, line };
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'surge-dashboard-tokens-'));
fs.mkdirSync(args.out, { recursive: true });
const log = fs.openSync(path.join(work, 'server.log'), 'w');
let server = null;
let grpcPort = 0;
let browser = null;

// The server on the token file; `http`: the HTTP address (port 0 at first,
// the same port again on a restart).
async function startServer(http) {
  for (const f of ['grpc.port', 'http.port']) fs.rmSync(`${work}/${f}`, { force: true });
  server = spawn(args.server, [`--db=${work}/dash.db`, '--listen=127.0.0.1:0', `--http=${http}`,
    `--tokens_file=${work}/tokens.txt`, `--port_file=${work}/grpc.port`, `--http_port_file=${work}/http.port`,
    '--shutdown_grace_s=1'], { stdio: ['ignore', log, log] });
  grpcPort = await waitForFile(`${work}/grpc.port`, server, 30000);
  return waitForFile(`${work}/http.port`, server, 5000);
}

async function stopServer() {
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((r) => server.on('exit', r));
  server.kill('SIGTERM');
  await exited;
}

// The CLI with a token.
function cliAs(token) {
  return (...a) => execFileSync(args.cli, ['--server', `127.0.0.1:${grpcPort}`, '--token', token, ...a], { encoding: 'utf8' });
}

// The job's fit once it covers every stored record (read over gRPC).
async function settledFit(cli, job) {
  let fit = null;
  const end = Date.now() + 20000;
  while (Date.now() < end) {
    const shown = JSON.parse(cli('job', 'show', job, '--json'));
    fit = JSON.parse(cli('fit', '--job', job, '--json'));
    if (fit.inputs.recordsSeen === shown.recordCount && !fit.error) break;
    await sleep(200);
  }
  return fit;
}

// api.js's text/event-stream parser on every split of one sample stream
// (CRLF split across pieces, comments, multi-line data, ids, no data).
async function parserChecks() {
  const { eventStreamParser } = await import(pathToFileURL(`${args.source}/server/http/static/api.js`).href);
  const text = ': keepalive\r\n\r\nid: 3\r\nevent: fit\r\ndata: {"version":"3"}\r\n\r\nevent: shutdown\ndata: {}\n\n' +
    'data: x\ndata:y\r\rid\nevent: fit\n\n: c\nevent: fit\ndata: unterminated';
  const want = JSON.stringify([{ type: 'fit', data: '{"version":"3"}', id: '3' }, { type: 'shutdown', data: '{}', id: '3' },
    { type: 'message', data: 'x\ny', id: '3' }]);
  const bad = [];
  for (let n = 1; n <= text.length; n++) {
    const got = [];
    const parser = eventStreamParser((e) => got.push(e));
    for (let i = 0; i < text.length; i += n) parser.push(text.slice(i, i + n));
    parser.end();
    if (JSON.stringify(got) !== want) bad.push(`pieces of ${n}: ${JSON.stringify(got)}`);
  }
  check('api.js event-stream parser: the same events for every split of the stream', bad.length === 0, bad.slice(0, 2).join('; '));
}

async function main() {
  await parserChecks();

  const writer = newToken('team-a', 'writer');
  const reader = newToken('team-a', 'reader');
  const other = newToken('team-b', 'reader');
  fs.writeFileSync(`${work}/tokens.txt`, `# dashboard_tokens_test\n${writer.line}\n${reader.line}\n${other.line}\n`);
  const httpPort = await startServer('127.0.0.1:0');
  const base = `http://127.0.0.1:${httpPort}`;
  const bare = await fetch(`${base}/api/v1/jobs/${JOB}`);
  check('the server wants a token: 401 UNAUTHENTICATED with WWW-Authenticate: Bearer',
    bare.status === 401 && /^Bearer realm="surge"/.test(bare.headers.get('www-authenticate') || '') &&
    (await bare.json()).code === 'UNAUTHENTICATED', `${bare.status} ${bare.headers.get('www-authenticate')}`);

  const asWriter = cliAs(writer.token);
  const asReader = cliAs(reader.token);
  execFileSync('/usr/bin/python3', [`${args.source}/scripts/gen_probe_sweep.py`, '--out-dir', work],
    { stdio: ['ignore', 'ignore', 'ignore'] });
  asWriter('import', '--job', JOB, `${work}/base.csv`);
  asWriter('import', '--job', JOB, `${work}/probes.csv`);
  const fit = await settledFit(asReader, JOB);
  check('fit settled with 2 stages', fit && !fit.error && fit.stages.length === 2, `version ${fit && fit.version}`);

  browser = await launchBrowser(path.join(work, 'profile'));
  const page = browser.pages()[0] || await browser.newPage();
  const problems = [];
  const foreign = [];
  const requests = [];  // every request: its URL, the Authorization header sent and the status
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('request', (r) => {
    if (!r.url().startsWith(base)) foreign.push(r.url());
    const entry = { url: r.url(), auth: r.allHeaders().then((hs) => hs.authorization || '').catch(() => '?'), status: null };
    requests.push(entry);
    r.response().then((res) => { entry.status = res ? res.status() : null; }).catch(() => {});
  });
  const api = (from = 0) => requests.slice(from).filter((r) => new URL(r.url).pathname.startsWith('/api/'));
  const tokenInStorage = () => page.evaluate(() => sessionStorage.getItem('surge.token'));

  // --- no token: the sign-in form, no data ---
  await page.goto(`${base}/jobs/${JOB}`);
  await page.waitForSelector('#signin', { state: 'visible', timeout: 15000 });
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'signin-token', null,
    { timeout: 2000 }).catch(() => {});
  const first = api();
  await sleep(100);
  check('no token: the job page shows the sign-in form (a password input, the explanation) and no data',
    await page.getAttribute('body', 'data-state') === 'loading' && await page.getAttribute('body', 'data-auth') === 'required' &&
    await page.getAttribute('#signin-token', 'type') === 'password' &&
    await page.evaluate(() => document.activeElement.id) === 'signin-token' &&
    (await page.textContent('#signin label')).trim() === 'access token' &&
    (await page.textContent('#signin-why')) === 'This server needs a token (surge token new); it is kept in this tab only.' &&
    await page.locator('#signin-error').isHidden() &&
    (await page.textContent('#summary')) === '' && await page.locator('[data-stage]').count() === 0 &&
    await page.locator('#advice').isHidden() && await page.locator('#live').isHidden() &&
    await page.locator('#signout').count() === 0 && await tokenInStorage() === null,
    `state ${await page.getAttribute('body', 'data-state')}, focus ${await page.evaluate(() => document.activeElement.id)}`);
  const firstAuth = await Promise.all(first.map((r) => r.auth));
  check('no token: the page\'s API calls went without a token and were answered 401',
    first.length >= 1 && first.every((r) => r.status === 401) && firstAuth.every((a) => a === ''),
    first.map((r) => `${new URL(r.url).pathname} ${r.status}`).join(', '));
  await page.screenshot({ path: path.join(args.out, 'dashboard-signin.png') });

  // --- a token the server does not know: the form stays, with the server's message ---
  await page.fill('#signin-token', 'surge_notAToken0000000000000000000000000000000');
  await page.click('#signin-go');
  await page.waitForSelector('#signin-error', { state: 'visible', timeout: 10000 }).catch(() => {});
  const refusal = await page.textContent('#signin-error').catch(() => '');
  check('a refused token: the form again with the server\'s message, nothing shown, nothing kept',
    /^That token was refused: unknown or revoked token/.test(refusal) && await page.locator('#signin').isVisible() &&
    await page.locator('[data-stage]').count() === 0 && await page.getAttribute('body', 'data-state') === 'loading' &&
    await page.inputValue('#signin-token') === '' && await tokenInStorage() === null, refusal);

  // --- a reader of team-a: the page as without tokens ---
  const signedIn = requests.length;
  const t0 = Date.now();
  await page.fill('#signin-token', reader.token);
  await page.click('#signin-go');
  await page.waitForSelector('body[data-state="ready"]', { timeout: 20000 });
  console.log(`job page ready ${Date.now() - t0} ms after signing in`);
  check('signed in: the form is gone, the token is in this tab\'s sessionStorage, "sign out" in the header',
    await page.locator('#signin').count() === 0 && await page.getAttribute('body', 'data-auth') === null &&
    await tokenInStorage() === reader.token && await page.locator('header #signout').isVisible());
  await checkProbeJobPage(page, { fit, job: JOB, cli: asReader, check });

  // --- live fits over fetch() with the token ---
  await page.waitForSelector('#live.on', { timeout: 10000 }).catch(() => {});
  check('the live fit indicator goes live', (await page.textContent('#live')).startsWith('live') &&
    await page.getAttribute('#live', 'class') === 'live on', await page.textContent('#live'));
  fs.writeFileSync(`${work}/extra.csv`, 'run,step,examples,batch_size,lr,loss\nextra,0,64,64,0.001,2.2\nextra,1,128,64,0.001,2.1\n');
  const before = Number(await page.getAttribute('body', 'data-fit-version'));
  const t1 = Date.now();
  asWriter('import', '--job', JOB, `${work}/extra.csv`);
  await page.waitForFunction(newFitShown, before, { timeout: 15000 }).catch(() => {});
  const after = Number(await page.getAttribute('body', 'data-fit-version'));
  const liveText = await page.textContent('#live');
  check('a new fit arrives on the live stream after an import with the writer token', after > before &&
    liveText.includes(`fit v${after}`) && await page.getAttribute('#live', 'class') === 'live on',
    `v${before} -> v${after} in ${Date.now() - t1} ms, indicator '${liveText}'`);
  await page.screenshot({ path: path.join(args.out, 'dashboard-signed-in.png'), fullPage: true });

  // Every API call after signing in carried the token; no URL ever held it.
  const signedCalls = api(signedIn);
  const auths = await Promise.all(signedCalls.map((r) => r.auth));
  const paths = [...new Set(signedCalls.map((r) => new URL(r.url).pathname.replace(/^\/api\/v1\/jobs\/[^/]+/, '/api/v1/jobs/J')))];
  check('signed in: every API call, the fit stream included, sent Authorization: Bearer <token>',
    signedCalls.length > 5 && auths.every((a) => a === `Bearer ${reader.token}`) && paths.includes('/api/v1/jobs/J/fit/events'),
    `${signedCalls.length} calls: ${paths.join(', ')}`);
  check('no URL holds a token', [...requests.map((r) => r.url), page.url()]
    .every((u) => ![writer, reader, other].some((t) => u.includes(t.token) || u.includes(encodeURIComponent(t.token)))));

  // --- the server restarts: the stream says so, reconnects and gets the next fit ---
  const beforeRestart = problems.length;
  await stopServer();
  await page.waitForSelector('#live.off', { timeout: 10000 }).catch(() => {});
  const down = await page.textContent('#live');
  await startServer(`127.0.0.1:${httpPort}`);
  await page.waitForSelector('#live.on', { timeout: 20000 }).catch(() => {});
  const up = await page.textContent('#live');
  fs.writeFileSync(`${work}/extra2.csv`, 'run,step,examples,batch_size,lr,loss\nextra2,0,64,64,0.002,2.2\nextra2,1,128,64,0.002,2.0\n');
  cliAs(writer.token)('import', '--job', JOB, `${work}/extra2.csv`);
  await page.waitForFunction(newFitShown, after, { timeout: 15000 }).catch(() => {});
  const afterRestart = Number(await page.getAttribute('body', 'data-fit-version'));
  check('server restart: the indicator says reconnecting, goes live again and the next fit arrives',
    down === 'reconnecting' && up.startsWith('live') && afterRestart > after &&
    (await page.textContent('#live')).includes(`fit v${afterRestart}`), `'${down}' -> '${up}', v${after} -> v${afterRestart}`);
  // While the server was down the browser logs the failed connections.
  const restartLogs = problems.splice(beforeRestart);
  check('server restart: only failed connections logged', restartLogs.every((m) => /net::ERR_|status of 401/.test(m)),
    restartLogs.join('; '));

  // --- the job list with the token ---
  await page.goto(`${base}/`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 15000 });
  const row = await page.locator(`tr[data-job="${JOB}"] td`).allInnerTexts();
  check('job list with the token: the job and its fit, "sign out" in the header',
    row.length === 6 && row[0].startsWith(JOB) && /stages/.test(row[5]) && await page.locator('header #signout').isVisible() &&
    await page.locator('#signin').count() === 0, row.join(' | '));
  await page.screenshot({ path: path.join(args.out, 'dashboard-jobs-signed-in.png') });

  // --- sign out: the token is forgotten, the form comes back ---
  await page.click('#signout');
  await page.waitForSelector('#signin', { state: 'visible', timeout: 10000 }).catch(() => {});
  check('sign out: the token is forgotten and the page asks for one, showing no jobs',
    await tokenInStorage() === null && await page.locator('#signin').isVisible() &&
    await page.locator('#jobs').isHidden() && await page.locator('#signout').count() === 0);

  // --- a reader of team-b: team-a's job does not exist for them ---
  await page.fill('#signin-token', other.token);
  await page.click('#signin-go');
  await page.waitForSelector('body[data-state="ready"]', { timeout: 15000 });
  const otherRows = await page.locator('#jobs tbody tr[data-job]').count();
  const emptyText = await page.textContent('#jobs tbody');
  check('another tenant: the job list leaves the job out', otherRows === 0 && /No jobs yet/.test(emptyText), emptyText);
  await page.goto(`${base}/jobs/${JOB}`);
  await page.waitForSelector('body[data-state="error"]', { timeout: 15000 }).catch(() => {});
  const notFound = await page.textContent('#error');
  await page.goto(`${base}/jobs/no-such-job`);
  await page.waitForSelector('body[data-state="error"]', { timeout: 15000 }).catch(() => {});
  const missing = await page.textContent('#error');
  check('another tenant: the job page says not found, as for a job that does not exist, and shows no data',
    notFound === `cannot load job '${JOB}': NOT_FOUND: job '${JOB}' not found` &&
    missing === notFound.replaceAll(JOB, 'no-such-job') && await page.locator('#signin').count() === 0,
    `'${notFound}' / '${missing}'`);

  // 401s (no token, the refused one) and the other tenant's 404s are logged by the browser; nothing else.
  check('no page errors (the browser logs only the 401s and 404s)',
    problems.every((m) => /^console: Failed to load resource: the server responded with a status of (401|404)/.test(m)),
    problems.filter((m) => !/status of (401|404)/.test(m)).join('; '));
  check('nothing fetched from outside this server', foreign.length === 0, foreign.join(', '));
}

try {
  await main();
} catch (e) {
  check('test ran to the end', false, e.stack || String(e));
} finally {
  if (browser) await browser.close().catch(() => {});
  await stopServer().catch(() => {});
  if (tally.failed) console.log(fs.readFileSync(path.join(work, 'server.log'), 'utf8').slice(-2000));
  fs.rmSync(work, { recursive: true, force: true });
  console.log(`screenshots in ${args.out}: dashboard-signin.png, dashboard-signed-in.png, dashboard-jobs-signed-in.png`);
  console.log(`${tally.count - tally.failed} passed, ${tally.failed} failed`);
  process.exit(tally.failed ? 1 : 0);
}
