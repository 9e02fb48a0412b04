// End-to-end test of the dashboard in headless Chromium (Debian's chromium,
// driven by playwright-core): a real surge-server (gRPC and HTTP on port 0, a
// real SQLite file) gets a 2-stage probe sweep through the real `surge` CLI;
// the job page must draw as many points, bounds and curves as the fit (read
// independently over gRPC with `surge fit --json`) has, its advice box must
// give the same LR as `surge advise --json`, and it must redraw when a new
// fit lands. A sweep of plain runs (scripts/gen_records.py) must show its
// run-based stages under both criteria, the evidence statement and an advice
// box that answers with the fastest criterion as `surge advise --criterion
// fastest` does; with probes added, the probe stages appear set aside. On the
// plain sweep the advice box's reference fields ("my tuned LR at batch B0")
// must give the transfer of `surge advise --from B0:LR0 --json`.
// Screenshots are saved in --out.
// Usage: node dashboard_test.mjs --server BIN --cli BIN --source DIR --out DIR
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checker, launchBrowser, parseArgs, sleep, waitForFile } from './harness.mjs';
import { checkProbeJobPage, newFitShown } from './job_checks.mjs';

const args = parseArgs(process.argv.slice(2));
const JOB = 'probe-sweep';
const tally = checker();
const { check } = tally;

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'surge-dashboard-'));
fs.mkdirSync(args.out, { recursive: true });
const log = fs.openSync(path.join(work, 'server.log'), 'w');
// SURGE_TEST_DB=postgresql://...: the same checks on a PostgreSQL database (a fresh one).
const db = process.env.SURGE_TEST_DB || `${work}/dash.db`;
const server = spawn(args.server, [`--db=${db}`, '--listen=127.0.0.1:0', '--http=127.0.0.1:0',
  `--port_file=${work}/grpc.port`, `--http_port_file=${work}/http.port`, '--shutdown_grace_s=1'],
{ stdio: ['ignore', log, log] });
let browser = null;

function cli(...a) {
  return execFileSync(args.cli, ['--server', `127.0.0.1:${grpcPort}`, ...a], { encoding: 'utf8' });
}
let grpcPort = 0;

// As the page formats numbers (format.js g4, `%.4g`), for the values compared here.
function g4(v) {
  v = Number(v);
  const e = Math.floor(Math.log10(Math.abs(v)));
  if (e < -4 || e >= 4) {
    const [m, x] = v.toExponential(3).split('e');
    return `${String(Number(m))}e${x[0] === '-' ? '-' : '+'}${x.slice(1).padStart(2, '0')}`;
  }
  return String(Number(v.toPrecision(4)));
}

// The job's fit once it covers every stored record (read over gRPC), and `ready(fit)`.
async function settledFit(job, ready = () => true) {
  let fit = null;
  const end = Date.now() + 20000;
  while (Date.now() < end) {
    const shown = JSON.parse(cli('job', 'show', job, '--json'));
    fit = JSON.parse(cli('fit', '--job', job, '--json'));
    if (fit.inputs.recordsSeen === shown.recordCount && !fit.error && ready(fit)) break;
    await sleep(200);
  }
  return fit;
}

const uncensored = (stage) => stage.optima.filter((o) => o.censoring === 'CENSORING_NONE').length;

async function main() {
  grpcPort = await waitForFile(`${work}/grpc.port`, server, 30000);
  const httpPort = Number(fs.readFileSync(`${work}/http.port`, 'utf8'));
  const base = `http://127.0.0.1:${httpPort}`;
  execFileSync('/usr/bin/python3', [`${args.source}/scripts/gen_probe_sweep.py`, '--out-dir', work],
    { stdio: ['ignore', 'ignore', 'ignore'] });
  cli('import', '--job', JOB, `${work}/base.csv`);
  cli('import', '--job', JOB, `${work}/probes.csv`);

  // The settled fit, read over gRPC: its inputs cover every stored record.
  const fit = await settledFit(JOB);
  check('fit settled with 2 stages', fit && !fit.error && fit.stages.length === 2, `version ${fit && fit.version}`);

  browser = await launchBrowser(path.join(work, 'profile'));
  const page = browser.pages()[0] || await browser.newPage();
  const problems = [];
  const foreign = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('request', (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()); });

  // --- the job list ---
  await page.goto(`${base}/`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 15000 });
  const row = await page.locator(`tr[data-job="${JOB}"] td`).allInnerTexts();
  check('job list shows the job with its run and record counts',
    row[0].startsWith(JOB) && row[2].replace(/,/g, '') === '1633' && row[3].replace(/,/g, '') === '3632' &&
    /2 stages/.test(row[5]), row.join(' | '));
  await page.screenshot({ path: path.join(args.out, 'dashboard-jobs.png') });

  // --- the job page ---
  const t0 = Date.now();
  await page.goto(`${base}/jobs/${JOB}`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 20000 });
  const loadMs = Date.now() - t0;
  console.log(`job page ready in ${loadMs} ms (in-page render ${await page.getAttribute('body', 'data-render-ms')} ms)`);
  await checkProbeJobPage(page, { fit, job: JOB, cli, check });

  // Probes only: the answer is flagged short-horizon and the fastest criterion is not offered.
  const probeAdvice = JSON.parse(cli('advise', '--job', JOB, '--batch', '48', '--json'));
  check('probe job: advice shows the short-horizon flag and evidence probes',
    probeAdvice.flags.shortHorizon === true &&
    await page.getAttribute('#advice-short-horizon', 'data-short-horizon') === 'true' &&
    await page.getAttribute('#advice-evidence', 'data-evidence') === probeAdvice.evidence &&
    await page.getAttribute('#evidence-statement', 'data-evidence') === 'probes',
    `CLI ${probeAdvice.evidence} short=${probeAdvice.flags.shortHorizon}, page ${await page.textContent('#advice-short-horizon')}`);
  check('probe job: the fastest criterion is not offered',
    await page.locator('#advice-criterion option[value="CRITERION_FASTEST"]').evaluate((n) => n.disabled) &&
    fit.fastestStages.length === 0);
  const before400 = problems.length;
  await page.fill('#advice-batch', '-5');
  await page.click('#advice-go');
  await page.waitForSelector('#advice-result[data-state="error"]');
  check('advice box shows the API error for a bad batch size',
    /INVALID_ARGUMENT: .*batch_size/.test(await page.textContent('#advice-error')));
  // The browser logs the deliberate 400 as a console error; only that one is expected.
  const logged = problems.splice(before400);
  check('the bad request logged only its 400', logged.every((m) => /status of 400/.test(m)), logged.join('; '));
  await page.fill('#advice-batch', '256');
  await page.fill('#advice-step', '1000');
  await page.click('#advice-go');
  await page.waitForSelector('#advice-result[data-state="ready"]');
  await page.screenshot({ path: path.join(args.out, 'dashboard-job.png'), fullPage: true });

  // --- live update: a new fit lands while the page is open ---
  fs.writeFileSync(`${work}/extra.csv`, 'run,step,examples,batch_size,lr,loss\nextra,0,64,64,0.001,2.2\nextra,1,128,64,0.001,2.1\n');
  const before = Number(await page.getAttribute('body', 'data-fit-version'));
  const t1 = Date.now();
  cli('import', '--job', JOB, `${work}/extra.csv`);
  await page.waitForFunction(newFitShown, before, { timeout: 15000 })
    .catch(() => {});
  const after = Number(await page.getAttribute('body', 'data-fit-version'));
  const liveText = await page.textContent('#live');
  check('page redraws when a new fit lands (server-sent events read with fetch), the indicator live', after > before &&
    liveText.includes(`fit v${after}`) && await page.getAttribute('#live', 'class') === 'live on',
    `v${before} -> v${after} in ${Date.now() - t1} ms, indicator '${liveText}'`);
  check('no tokens: no sign-in form, no "sign out", no token kept',
    await page.locator('#signin').count() === 0 && await page.locator('#signout').count() === 0 &&
    await page.evaluate(() => sessionStorage.getItem('surge.token')) === null);

  // --- censored optima are drawn as bounds ---
  // A probe grid too narrow for the smallest and largest batch sizes: their
  // best LR is the grid's lowest, so the fit reports upper bounds there.
  const rows = ['stage,stage_loss,batch_size,lr,seed,improvement'];
  for (const b of [2, 8, 32, 128, 512, 2048]) {
    const epsOpt = 1e-3 / Math.cosh(Math.log(b / 64) / 2);
    for (let i = 0; i <= 6; i++) {
      const lr = Math.pow(10, -3.3 + 0.1 * i);
      const z = Math.log(lr / epsOpt);
      for (const seed of [0, 1]) rows.push(`100,2,${b},${lr.toPrecision(6)},${seed},${(0.1 * (1 - 0.5 * z * z) + (seed ? 1e-4 : -1e-4)).toPrecision(6)}`);
    }
  }
  fs.writeFileSync(`${work}/narrow.csv`, rows.join('\n') + '\n');
  cli('import', '--job', 'narrow-grid', `${work}/narrow.csv`);
  // And 12 plain runs: the loss plot draws all 12 but names only 8 in its legend.
  const plain = ['run,step,examples,batch_size,lr,loss'];
  for (let r = 0; r < 12; r++) {
    for (let t = 1; t <= 3; t++) plain.push(`plain-${String(r).padStart(2, '0')},${t},${t * 32},32,0.001,${(2 - 0.1 * t - 0.01 * r).toFixed(3)}`);
  }
  fs.writeFileSync(`${work}/plain.csv`, plain.join('\n') + '\n');
  cli('import', '--job', 'narrow-grid', `${work}/plain.csv`);
  const narrow = JSON.parse(cli('fit', '--job', 'narrow-grid', '--json'));
  await page.goto(`${base}/jobs/narrow-grid`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 20000 });
  const stage = narrow.stages[0];
  const censored = stage ? stage.optima.filter((o) => o.censoring !== 'CENSORING_NONE') : [];
  const arrows = await page.locator(`[data-plot="stage-${stage && stage.stageId}"] g[data-series="bounds"] path.bound-mark`);
  const dirs = await arrows.evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-dir')));
  check('censored optima drawn as bound arrows pointing the right way',
    censored.length >= 2 && dirs.length === censored.length &&
    censored.every((o, i) => dirs[i] === (o.censoring === 'CENSORING_UPPER_BOUND' ? 'down' : 'up')),
    `${dirs.length} arrows (${dirs.join(',')}), ${censored.length} censored in the fit`);
  const lossPaths = await page.locator('[data-plot="loss"] g[data-series^="loss-plain-"] path').count();
  const titled = await page.locator('[data-plot="loss"] g[data-series="loss-plain-11"] path title').count();
  const named = await page.locator('[data-plot="loss"] .legend-item', { hasText: 'training loss' }).count();
  const more = await page.locator('[data-plot="loss"] .legend-item', { hasText: '+ 4 more runs' }).count();
  check('loss plot with 12 runs: 12 curves, 8 named in the legend, "+ 4 more", hover titles',
    lossPaths === 12 && named === 8 && more === 1 && titled === 1,
    `${lossPaths} curves, ${named} named, ${more} note, ${titled} title`);
  await page.screenshot({ path: path.join(args.out, 'dashboard-narrow-grid.png'), fullPage: true });

  await plainRunJobs(page, base, work, problems);

  check('no page errors', problems.length === 0, problems.join('; '));
  check('nothing fetched from outside this server', foreign.length === 0, foreign.join(', '));
}

// A job of plain runs only: run-based stages under both criteria, the
// evidence statement, the advice box with criterion fastest against the CLI;
// then the same runs with probes: the probe stages are set aside.
async function plainRunJobs(page, base, work, problems) {
  const PLAIN = 'plain-sweep';
  const csv = execFileSync('/usr/bin/python3', [`${args.source}/scripts/gen_records.py`, '--runs', '5', '--lrs', '5',
    '--steps', '300', '--eval-every', '5'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  fs.writeFileSync(`${work}/plain-sweep.csv`, csv);
  cli('import', '--job', PLAIN, `${work}/plain-sweep.csv`);
  const fit = await settledFit(PLAIN, (f) => f.stages.length > 0 && f.fastestStages.length > 0);
  check('plain sweep: fit with run-based stages under both criteria',
    fit.stages.length >= 2 && fit.fastestStages.length >= 2 && fit.runs && fit.runs.runsUsed === 25 &&
    fit.stages.every((st) => st.evidence === 'plain_runs' && st.criterion === 'improvement') &&
    fit.fastestStages.every((st) => st.criterion === 'fastest') && fit.setAsideStages.length === 0,
    `${fit.stages.length} + ${fit.fastestStages.length} stages`);
  await page.goto(`${base}/jobs/${PLAIN}`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 20000 });

  // The evidence statement and the RunEvidence summary.
  const statement = await page.textContent('#evidence-statement');
  check('plain sweep: evidence statement names plain runs with their count and the targets',
    await page.getAttribute('#evidence-statement', 'data-evidence') === 'plain_runs' &&
    statement.includes(`Advice stands on plain runs: ${fit.runs.runsUsed} plain runs, ${fit.stages.length} target losses`),
    statement);
  const targets = await page.textContent('#evidence-targets');
  check('plain sweep: target losses and k as the fit has them',
    fit.runs.targetLosses.length === fit.stages.length && fit.runs.targetLosses.every((t) => targets.includes(g4(t))) &&
    targets.includes(fit.runs.targetsFromData ? 'chosen from the data' : 'declared') && targets.includes(`k = ${fit.runs.kSteps}`),
    targets);
  check('plain sweep: loss signal', await page.getAttribute('#evidence-signal', 'data-signal') === fit.runs.signal);
  const censoredText = await page.textContent('#evidence-censored');
  check('plain sweep: censored runs per target',
    fit.stages.some((st) => st.censoredRuns > 0) &&
    fit.stages.every((st) => censoredText.includes(`${st.censoredRuns} of ${st.runs} at ${g4(st.stageLoss)}`)), censoredText);
  check('plain sweep: both criteria named in the evidence',
    /improvement \(\d+ stages fitted; the advice default\), fastest \(\d+ stages fitted\)/.test(await page.textContent('#evidence-criteria')));
  check('plain sweep: no set-aside section', await page.locator('#set-aside').isHidden());

  // One card per target: both criteria's optima, fits and numbers.
  for (const st of fit.stages) {
    const fast = fit.fastestStages.find((f) => f.stageId === st.stageId);
    const card = page.locator(`#stages [data-stage="${st.stageId}"]`);
    const plot = page.locator(`[data-plot="stage-${st.stageId}"]`);
    const circles = await plot.locator('g[data-series="optima"] circle').count();
    const squares = await plot.locator('g[data-series="fastest-optima"] rect').count();
    const fits = await plot.locator('g[data-series="model-surge"] path').count() +
      await plot.locator('g[data-series="fastest-surge"] path').count();
    const surgeFitted = (x) => x.models.some((m) => m.model === 'surge' && m.fitted && m.curve.length > 0) ? 1 : 0;
    check(`target ${g4(st.stageLoss)}: both criteria's optima and surge fits drawn`,
      fast && circles === uncensored(st) && squares === uncensored(fast) && fits === surgeFitted(st) + surgeFitted(fast) && fits >= 1,
      `${circles}/${uncensored(st)} circles, ${squares}/${fast && uncensored(fast)} squares, ${fits} fits`);
    const rowText = async (c) => card.locator(`table.criteria tr[data-criterion="${c}"]`).innerText();
    const bn = (x) => ({ B_NOISE_KIND_POINT: '', B_NOISE_KIND_LOWER_BOUND: '\u2265 ', B_NOISE_KIND_UPPER_BOUND: '\u2264 ' }[x.surge.bNoiseKind] ?? 'unknown') +
      (x.surge.bNoiseKind === 'B_NOISE_KIND_UNKNOWN' ? '' : g4(x.surge.bNoise));
    const imp = await rowText('improvement');
    const fas = await rowText('fastest');
    check(`target ${g4(st.stageLoss)}: criteria table (optima, B_noise per criterion)`,
      imp.includes(bn(st)) && fas.includes(bn(fast)) && imp.split('\t')[1].startsWith(String(uncensored(st))) &&
      fas.split('\t')[1].startsWith(String(uncensored(fast))), `${imp} | ${fas}`);
    const runs = await card.locator('.facts .runs').textContent();
    check(`target ${g4(st.stageLoss)}: runs and censored runs`,
      runs.startsWith(`${st.runs} runs at this target, ${st.censoredRuns} never reached it`), runs);
    const steps = [];
    for (const o of fast.optima) {
      const row = card.locator(`table.per-batch tr[data-batch="${o.batchSize}"]`);
      steps.push([await row.locator('td.steps').textContent(), g4(o.stepsAtOpt),
        await row.locator('td.censored').textContent(), String(o.nCensored)]);
    }
    check(`target ${g4(st.stageLoss)}: steps at the fastest optimum and censored runs per batch size`,
      steps.length >= 3 && steps.every(([a, b, c, d]) => a === b && c === d), JSON.stringify(steps));
  }

  // The advice box, criterion fastest then improvement, against the CLI.
  for (const [criterion, name, step] of [['CRITERION_FASTEST', 'fastest', '100'], ['CRITERION_IMPROVEMENT', 'improvement', '']]) {
    await page.fill('#advice-batch', '64');
    await page.fill('#advice-step', step);
    await page.selectOption('#advice-criterion', criterion);
    await page.click('#advice-go');
    await page.waitForFunction((n) => document.querySelector('#advice-result').dataset.state === 'ready' &&
      document.querySelector('#advice-criterion-out') && document.querySelector('#advice-criterion-out').dataset.criterion === n,
    name, { timeout: 10000 }).catch(() => {});
    const a = JSON.parse(cli('advise', '--job', PLAIN, '--batch', '64', '--criterion', name, '--json', ...(step ? ['--step', step] : [])));
    const got = {
      criterion: await page.getAttribute('#advice-criterion-out', 'data-criterion'),
      lr: Number(await page.getAttribute('#advice-lr', 'data-lr')),
      evidence: await page.getAttribute('#advice-evidence', 'data-evidence'),
      runsUsed: Number(await page.getAttribute('#advice-evidence', 'data-runs-used')),
      mapping: await page.getAttribute('#advice-step-mapping', 'data-step-mapping'),
      short: await page.getAttribute('#advice-short-horizon', 'data-short-horizon'),
    };
    check(`plain sweep: advice with criterion ${name} equals surge advise --criterion ${name}`,
      a.criterion === criterion && got.criterion === name && got.lr === a.lr && got.evidence === a.evidence && a.evidence === 'plain_runs' &&
      got.runsUsed === a.runsUsed && a.runsUsed > 0 && got.mapping === (a.stepMapping || '') &&
      (step === '' || a.stepMapping === 'speed_data') && got.short === String(a.flags.shortHorizon) && !a.flags.shortHorizon,
      `page ${JSON.stringify(got)}, CLI lr ${a.lr} ${a.criterion} ${a.evidence} runs ${a.runsUsed} ${a.stepMapping}`);
  }
  await transferChecks(page, PLAIN, problems);
  await page.selectOption('#advice-criterion', 'CRITERION_FASTEST');
  await page.waitForFunction(() => document.querySelector('#advice-criterion-out').dataset.criterion === 'fastest',
    null, { timeout: 10000 }).catch(() => {});
  await page.screenshot({ path: path.join(args.out, 'dashboard-plain-runs.png'), fullPage: true });

  // The same runs with probes: run evidence wins, the probe stages are set aside.
  const MIXED = 'runs-and-probes';
  cli('import', '--job', MIXED, `${work}/plain-sweep.csv`);
  cli('import', '--job', MIXED, `${work}/probes.csv`);
  const mixed = await settledFit(MIXED, (f) => f.setAsideStages.length > 0);
  await page.goto(`${base}/jobs/${MIXED}`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 20000 });
  const aside = page.locator('#set-aside-stages [data-stage]');
  const asideIds = await aside.evaluateAll((nodes) => nodes.map((n) => n.dataset.stage));
  const badges = await page.locator('#set-aside-stages .set-aside-badge').allTextContents();
  const mainIds = await page.locator('#stages [data-stage]').evaluateAll((nodes) => nodes.map((n) => n.dataset.stage));
  check('probes + plain runs: the probe stages are shown set aside, labelled not used for advice',
    mixed.setAsideStages.length === 2 && await page.locator('#set-aside').isVisible() &&
    mixed.setAsideStages.every((st) => asideIds.includes(String(st.stageId)) && !mainIds.includes(String(st.stageId))) &&
    asideIds.length === mixed.setAsideStages.length && badges.length === asideIds.length &&
    badges.every((b) => /not used for advice/.test(b)) &&
    mainIds.length === mixed.stages.length && mixed.stages.every((st) => st.evidence === 'plain_runs'),
    `set aside ${asideIds.join(',')} (fit: ${mixed.setAsideStages.map((st) => st.stageId).join(',')}), advice stages ${mainIds.join(',')}`);
  for (const st of mixed.setAsideStages) {
    const drawn = await page.locator(`[data-plot="set-aside-stage-${st.stageId}"] g[data-series="optima"] circle`).count();
    check(`set-aside stage ${st.stageId}: its optima drawn`, drawn === uncensored(st) && drawn >= 3, `${drawn}/${uncensored(st)}`);
  }
  check('probes + plain runs: evidence says plain runs and counts the set-aside stages',
    await page.getAttribute('#evidence-statement', 'data-evidence') === 'plain_runs' &&
    await page.getAttribute('#evidence-set-aside', 'data-count') === String(mixed.setAsideStages.length));
  const mixedAdvice = JSON.parse(cli('advise', '--job', MIXED, '--batch', await page.inputValue('#advice-batch'), '--json'));
  check('probes + plain runs: advice stands on the plain runs, not short-horizon',
    await page.getAttribute('#advice-evidence', 'data-evidence') === mixedAdvice.evidence && mixedAdvice.evidence === 'plain_runs' &&
    await page.getAttribute('#advice-short-horizon', 'data-short-horizon') === 'false' &&
    Number(await page.getAttribute('#advice-lr', 'data-lr')) === mixedAdvice.lr, `${mixedAdvice.evidence} ${mixedAdvice.lr}`);
  await page.screenshot({ path: path.join(args.out, 'dashboard-set-aside.png'), fullPage: true });
}

// Asks the advice box with the given inputs and waits for its answer or error.
async function askAdvice(page, { batch, step = '', refLr = '', refBatch = '', refStep = '' }) {
  await page.fill('#advice-batch', batch);
  await page.fill('#advice-step', step);
  await page.fill('#advice-ref-lr', refLr);
  await page.fill('#advice-ref-batch', refBatch);
  await page.fill('#advice-ref-step', refStep);
  await page.evaluate(() => { document.querySelector('#advice-result').dataset.state = 'stale'; });
  await page.click('#advice-go');
  await page.waitForSelector('#advice-result[data-state="ready"], #advice-result[data-state="error"]', { timeout: 10000 });
}

const TRANSFER_FLAGS = ['referenceOutsideData', 'referenceExtrapolatedInLoss', 'referenceOtherStage'];

// The advice box's reference fields on the plain sweep: the transferred LR,
// its interval, ratio, the two rules and the job's own LR at B0 equal
// `surge advise --from B0:LR0 [--from-step T] --json` for the same fit; a bad
// reference shows the server's message naming the field; emptied or cleared
// fields give the plain answer again.
async function transferChecks(page, job, problems) {
  await page.selectOption('#advice-criterion', 'CRITERION_IMPROVEMENT');
  // Within the data; B0 outside the latest stage's batch sizes; tuned at another step than the advice's.
  const cases = [{ batch: '256', refLr: '3e-4', refBatch: '64' }, { batch: '64', refLr: '3e-3', refBatch: '16' },
    { batch: '64', step: '100', refLr: '3e-3', refBatch: '16', refStep: '280' }];
  const flagged = [];
  for (const c of cases) {
    await askAdvice(page, c);
    const a = JSON.parse(cli('advise', '--job', job, '--batch', c.batch, '--from', `${c.refBatch}:${c.refLr}`, '--json',
      ...(c.step ? ['--step', c.step] : []), ...(c.refStep ? ['--from-step', c.refStep] : [])));
    const t = a.transfer;
    // Read at once (null when absent): a missing element must fail the check, not wait.
    const attr = async (sel, name) => ((await page.locator(sel).count()) ? page.getAttribute(sel, name) : null);
    const text = async (sel) => ((await page.locator(sel).count()) ? page.textContent(sel) : null);
    const got = {
      version: await attr('#advice-result', 'data-fit-version'), transfer: await attr('#advice-result', 'data-transfer'),
      lr: Number(await attr('#transfer-lr', 'data-lr')), lrText: await text('#transfer-lr'),
      lo: Number(await attr('#transfer-ci', 'data-lo')), hi: Number(await attr('#transfer-ci', 'data-hi')),
      ciText: await text('#transfer-ci'), ratio: Number(await attr('#transfer-ratio', 'data-ratio')),
      linear: Number(await attr('#transfer-linear', 'data-lr')), linearText: await text('#transfer-linear .v'),
      sqrt: Number(await attr('#transfer-sqrt', 'data-lr')), sqrtText: await text('#transfer-sqrt .v'),
      atRef: Number(await attr('#transfer-fitted-at-ref', 'data-lr')), flags: await attr('#transfer-flags', 'data-flags'),
      own: Number(await attr('#advice-lr', 'data-lr')),
    };
    const name = `transfer ${c.refBatch}:${c.refLr}${c.refStep ? ` tuned at step ${c.refStep}` : ''} to B=${c.batch}` +
      (c.step ? ` at step ${c.step}` : '');
    if (t) flagged.push(...TRANSFER_FLAGS.filter((f) => t[f]));
    check(`plain sweep: ${name} equals surge advise --from (lr, 95% interval, ratio, fit version)`,
      Boolean(t) && got.transfer === 'true' && got.version === a.fitVersion && got.lr === t.lr && got.lrText === g4(t.lr) &&
      got.lo === t.lrCi95.lo && got.hi === t.lrCi95.hi && (got.ciText || '').includes(`[${g4(t.lrCi95.lo)}, ${g4(t.lrCi95.hi)}]`) &&
      got.ratio === t.ratio && t.lrCi95.lo < t.lr && t.lr < t.lrCi95.hi,
      `page ${JSON.stringify(got)}, CLI v${a.fitVersion} ${JSON.stringify(t)}`);
    check(`plain sweep: ${name}: linear and sqrt rules, the job's LR at B0, flags and the job's own LR at B as the CLI`,
      Boolean(t) && got.linear === t.linearRuleLr && got.linearText === g4(t.linearRuleLr) && got.sqrt === t.sqrtRuleLr &&
      got.sqrtText === g4(t.sqrtRuleLr) && got.atRef === t.fittedLrAtReference && got.own === a.lr &&
      got.flags === TRANSFER_FLAGS.filter((f) => t[f]).join(','),
      `linear ${got.linearText}/${t && t.linearRuleLr}, sqrt ${got.sqrtText}/${t && t.sqrtRuleLr}, ` +
      `at B0 ${got.atRef}/${t && t.fittedLrAtReference}, flags '${got.flags}', own ${got.own}/${a.lr}`);
    if (c === cases[0]) await page.locator('.top').screenshot({ path: path.join(args.out, 'dashboard-transfer.png') });
  }
  check('plain sweep: the transfer cases between them raise every reference flag',
    TRANSFER_FLAGS.every((f) => flagged.includes(f)), flagged.join(','));

  // The fields emptied by hand: the plain answer, no transfer.
  await askAdvice(page, { batch: '256' });
  const plain = JSON.parse(cli('advise', '--job', job, '--batch', '256', '--json'));
  check('plain sweep: emptied reference fields give the plain answer without a transfer',
    plain.transfer === undefined && await page.getAttribute('#advice-result', 'data-transfer') === 'false' &&
    await page.locator('#advice-transfer').count() === 0 && Number(await page.getAttribute('#advice-lr', 'data-lr')) === plain.lr,
    `page ${await page.getAttribute('#advice-lr', 'data-lr')}, CLI ${plain.lr}`);

  // Bad references: the server's 400 names the field (the browser logs each 400).
  const before = problems.length;
  await askAdvice(page, { batch: '256', refLr: '0', refBatch: '64' });
  const lrError = await page.textContent('#advice-result[data-state="error"] #advice-error', { timeout: 1000 }).catch(() => '');
  check('plain sweep: a reference LR of 0 shows the server\'s message naming reference.lr',
    /^INVALID_ARGUMENT: reference\.lr: must be finite and > 0/.test(lrError), lrError);
  await askAdvice(page, { batch: '256', refLr: '3e-4' });
  const loneError = await page.textContent('#advice-result[data-state="error"] #advice-error', { timeout: 1000 }).catch(() => '');
  check('plain sweep: a tuned LR without its batch size shows the server\'s message naming ref_batch_size',
    /^INVALID_ARGUMENT: ref_batch_size, ref_lr: give both/.test(loneError), loneError);
  const logged = problems.splice(before);
  check('plain sweep: the bad references logged only their two 400s',
    logged.length === 2 && logged.every((m) => /status of 400/.test(m)), logged.join('; '));

  // The clear button empties the three fields and asks again: the plain answer.
  await page.fill('#advice-ref-batch', '64');
  await page.fill('#advice-ref-step', '100');
  await page.evaluate(() => { document.querySelector('#advice-result').dataset.state = 'stale'; });
  await page.click('#advice-ref-clear');
  await page.waitForSelector('#advice-result[data-state="ready"], #advice-result[data-state="error"]', { timeout: 10000 });
  const fields = await Promise.all(['#advice-ref-lr', '#advice-ref-batch', '#advice-ref-step'].map((s) => page.inputValue(s)));
  check('plain sweep: "clear" empties the reference fields and gives the plain answer',
    fields.every((v) => v === '') && await page.getAttribute('#advice-result', 'data-transfer') === 'false' &&
    Number(await page.getAttribute('#advice-lr', 'data-lr')) === plain.lr, `fields ${JSON.stringify(fields)}`);
}

try {
  await main();
} catch (e) {
  check('test ran to the end', false, e.stack || String(e));
} finally {
  if (browser) await browser.close().catch(() => {});
  server.kill('SIGTERM');
  await new Promise((r) => (server.exitCode !== null ? r() : server.on('exit', r)));
  if (tally.failed) console.log(fs.readFileSync(path.join(work, 'server.log'), 'utf8').slice(-2000));
  fs.rmSync(work, { recursive: true, force: true });
  console.log(`screenshots in ${args.out}: dashboard-job.png, dashboard-jobs.png, dashboard-narrow-grid.png, ` +
    'dashboard-plain-runs.png, dashboard-transfer.png, dashboard-set-aside.png');
  console.log(`${tally.count - tally.failed} passed, ${tally.failed} failed`);
  process.exit(tally.failed ? 1 : 0);
}
