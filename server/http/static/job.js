// job.js: the job page. Loads the job, its runs and latest fit, draws the
// charts (job_charts.js), answers the advice box from /advice (the same
// GetAdvice as `surge advise`), and redraws when a new fit arrives on the
// server-sent event stream /fit/events.
import { api } from './api.js';
import { h, fill, num, g4, interval, timeAgo, isoTime, unitText, verdictText, bNoiseText } from './format.js';
import { stageCard, driftPlots, lossPlot, bSimplePlot } from './job_charts.js';

const jobName = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
const state = { job: null, runs: [], fit: null, unit: 'examples', lossSeries: [], adviceTouched: false };
const $ = (id) => document.getElementById(id);

function showError(text) {
  $('error').textContent = text;
  $('error').hidden = !text;
}

// At most `max` points per run, evenly spaced in index, keeping the last.
function thin(points, max) {
  if (points.length <= max) return points;
  const step = points.length / max;
  const out = [];
  for (let i = 0; i < max; i++) out.push(points[Math.floor(i * step)]);
  out.push(points[points.length - 1]);
  return out;
}

async function loadLossSeries() {
  // Plain runs first: they are the ones the loss plot's legend names.
  const plainFirst = (r) => (r.protocol === 'PROTOCOL_PLAIN' ? 0 : 1);
  const curveRuns = state.runs.filter((r) => r.protocol !== 'PROTOCOL_PROBE' && num(r.recordCount) > 0)
    .sort((a, b) => plainFirst(a) - plainFirst(b));
  state.lossSeries = await Promise.all(curveRuns.map(async (r) => {
    const records = await api.records(jobName, r.name);
    const points = records.map((x) => ({ x: num(x.step), y: num(x.loss) }));
    const evalPoints = records.filter((x) => x.evalLoss !== undefined)
      .map((x) => ({ x: num(x.step), y: num(x.evalLoss) }));
    return { run: r.name, batchSize: num(r.batchSize), points: thin(points, 600), evalPoints: thin(evalPoints, 100) };
  }));
}

function renderSummary() {
  const j = state.job;
  const byProtocol = {};
  for (const r of state.runs) byProtocol[r.protocol] = (byProtocol[r.protocol] || 0) + 1;
  const runText = Object.entries(byProtocol).map(([p, n]) =>
    `${n} ${p.replace('PROTOCOL_', '').toLowerCase().replace('_', ' ')}`).join(', ');
  fill($('summary'), 
    h('h1', {}, j.name), j.description ? h('p', { class: 'muted' }, j.description) : null,
    h('p', { class: 'facts' },
      h('span', {}, `batch unit: ${state.unit}`),
      h('span', {}, `${num(j.runCount)} runs (${runText || 'none'})`),
      h('span', {}, `${num(j.recordCount).toLocaleString('en-US')} records`),
      h('span', { title: isoTime(j.updateTimeUs) }, `last update ${timeAgo(j.updateTimeUs)}`)));
}

function renderFit() {
  const fit = state.fit;
  document.body.dataset.fitVersion = fit.version;
  const inputs = fit.inputs || {};
  fill($('fit-facts'),
    h('h2', {}, `Fit v${fit.version}`),
    h('p', { class: 'facts' },
      h('span', { title: isoTime(fit.createTimeUs) }, `computed ${timeAgo(fit.createTimeUs)} in ${g4(fit.fitMs)} ms`),
      h('span', {}, `${inputs.probePoints} probe points, ${inputs.measuredOptima} measured optima, ${inputs.stages} stages`),
      h('span', {}, `loss curve from run '${inputs.lossCurveRun || '-'}' (${inputs.lossPoints} points)`),
      h('span', {}, `${inputs.gradStatRecords} gradient-statistics records`)),
    fit.error ? h('p', { class: 'error' }, `No fit yet: ${fit.error}`) : null);
  // Training order: the earliest stage (highest loss) first.
  const stages = fit.stages.slice().sort((a, b) => num(b.stageLoss) - num(a.stageLoss));
  fill($('stages'), ...stages.map((s) => stageCard(s, state.unit)),
    ...(fit.skippedStages || []).map((s) => h('section', { class: 'card muted' },
      `Stage ${s.stageId} (loss ${g4(s.stageLoss)}) not fitted: ${s.reason}`)));
  if (fit.stages.length) {
    fill($('drift'), ...driftPlots(fit, state.unit));
  } else {
    fill($('drift'), h('p', { class: 'muted' }, 'No fitted stage.'));
  }
  fill($('loss'), state.lossSeries.length ? lossPlot(state.lossSeries, fit.stages)
    : h('p', { class: 'muted' }, 'No plain or full run has records (probe runs have no curve).'));
  fill($('bsimple'), (fit.noiseScale || []).length ? bSimplePlot(fit, state.unit)
    : h('p', { class: 'muted' }, 'No run has gradient statistics.'));
  const notes = [...(fit.notes || []), ...(fit.speedData || []).map((s) =>
    `speed/data at target loss ${g4(s.targetLoss)}: S_min ${g4(s.sMin)} \u00b1 ${g4(s.sMinSe)} steps, E_min ${g4(s.eMin)} \u00b1 ${g4(s.eMinSe)}, B_crit ${g4(s.bCrit)} (n=${s.n})`)];
  fill($('notes'), h('h2', {}, 'Notes'), notes.length
    ? h('ul', {}, notes.map((n) => h('li', {}, n))) : h('p', { class: 'muted' }, 'none'));
}

function flagList(flags) {
  const names = { extrapolatedInBatch: 'batch size outside the data (\u00d710)', extrapolatedInStep: 'step beyond the loss curve',
    extrapolatedInLoss: 'loss outside the fitted stages', bNoiseBoundOnly: 'B_noise is a bound only',
    surgeNotSupported: 'surge not supported by the verdict' };
  return Object.entries(flags || {}).filter(([, v]) => v).map(([k]) => names[k] || k);
}

async function advise() {
  const out = $('advice-result');
  const batch = $('advice-batch').value.trim();
  const step = $('advice-step').value.trim();
  out.dataset.state = 'loading';
  try {
    const a = await api.advice(jobName, batch, step);
    const flags = flagList(a.flags);
    fill(out, 
      h('div', { class: 'lr' }, '\u03b5 = ', h('output', { id: 'advice-lr', 'data-lr': String(a.lr) }, g4(a.lr)),
        h('span', { class: 'ci' }, ` 95% ${interval(a.lrCi95)}`)),
      h('p', { class: 'small' }, `for B = ${g4(a.batchSize)} ${state.unit}` +
        (a.step !== undefined ? ` at step ${a.step}` : ' at the latest stage') + `, loss ${g4(a.loss)} (fit v${a.fitVersion})`),
      h('p', { class: 'small' }, `B_noise ${bNoiseText(a.bNoiseKind, a.bNoise, a.bNoiseCi95, state.unit)}; recommended batch size ${g4(a.recommendedBatchSize)}; ` +
        `S/S_min ${g4(a.stepsRatio)}, E/E_min ${g4(a.examplesRatio)}`),
      h('p', { class: 'small muted' }, `model: ${a.model}; surge supported: ${verdictText(a.verdict)}`),
      flags.length ? h('p', { class: 'flags' }, `flags: ${flags.join('; ')}`) : null);
    out.dataset.state = 'ready';
  } catch (e) {
    fill(out, h('p', { class: 'error', id: 'advice-error' }, e.message));
    out.dataset.state = 'error';
  }
}

function defaultAdviceInputs() {
  const plain = state.runs.find((r) => r.name === (state.fit.inputs || {}).lossCurveRun) ||
    state.runs.find((r) => r.protocol === 'PROTOCOL_PLAIN');
  if (!$('advice-batch').value) $('advice-batch').value = plain ? num(plain.batchSize) : 256;
  if (!$('advice-step').value && plain && num(plain.lastStep) >= 0) $('advice-step').value = num(plain.lastStep);
}

function listen() {
  const live = $('live');
  const source = new EventSource(api.fitEventsUrl(jobName));
  source.addEventListener('open', () => { live.textContent = 'live'; live.className = 'live on'; });
  source.addEventListener('error', () => { live.textContent = 'reconnecting'; live.className = 'live off'; });
  source.addEventListener('fit', async (event) => {
    const fit = JSON.parse(event.data);
    if (state.fit && num(fit.version) <= num(state.fit.version)) return;
    state.fit = fit;
    [state.job, { runs: state.runs }] = await Promise.all([api.job(jobName), api.runs(jobName)]);
    await loadLossSeries();
    renderSummary();
    renderFit();
    await advise();
    live.textContent = `live \u00b7 fit v${fit.version} ${new Date().toLocaleTimeString()}`;
  });
}

async function main() {
  $('job-name').textContent = jobName;
  document.title = `surge \u00b7 ${jobName}`;
  try {
    const t0 = performance.now();
    [state.job, { runs: state.runs }, state.fit] = await Promise.all([api.job(jobName), api.runs(jobName), api.fit(jobName)]);
    state.unit = unitText(state.job.batchUnit);
    document.querySelectorAll('.unit').forEach((n) => { n.textContent = state.unit; });
    await loadLossSeries();
    renderSummary();
    renderFit();
    defaultAdviceInputs();
    await advise();
    document.body.dataset.renderMs = String(Math.round(performance.now() - t0));
    document.body.dataset.state = 'ready';
    listen();
  } catch (e) {
    showError(`cannot load job '${jobName}': ${e.message}`);
    document.body.dataset.state = 'error';
  }
}

$('advice-form').addEventListener('submit', (e) => { e.preventDefault(); advise(); });
main();
