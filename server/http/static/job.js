// job.js: the job page. Loads the job, its runs and latest fit, says which
// evidence the advice stands on, draws the stages of the advice set under
// both criteria and the set-aside stages (job_charts.js), answers the advice
// box from /advice (the same GetAdvice as `surge advise`, criterion and a
// tuned LR to move, `--from`, included: advice_transfer.js), and redraws
// when a new fit arrives on the server-sent event stream /fit/events.
import { api, watchFits } from './api.js';
import { h, fill, num, g4, interval, timeAgo, isoTime, unitText, verdictText, bNoiseText, stageEvidence,
  evidenceText, isRunEvidence, criterionName, CRITERION_TEXT } from './format.js';
import { stageCard, driftPlots, lossPlot, bSimplePlot } from './job_charts.js';
import { referenceParams, clearReference, transferOf, referenceSetsStage, transferBlock } from './advice_transfer.js';

const jobName = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
const state = { job: null, runs: [], fit: null, unit: 'examples', lossSeries: [] };
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

const count = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const byDescendingLoss = (a, b) => num(b.stageLoss) - num(a.stageLoss);

// The evidence kinds behind a set of stages, e.g. ['plain_runs'].
function evidenceKinds(stages) {
  return [...new Set(stages.flatMap((s) => stageEvidence(s).split('+')))];
}

function runsOf(protocol) {
  return state.runs.filter((r) => r.protocol === protocol).length;
}

// "25 plain runs", "1632 probe runs (1632 probe points)", ... for the kinds given.
function evidenceCounts(kinds, stages) {
  const inputs = state.fit.inputs || {};
  const runs = state.fit.runs;
  const points = stages.reduce((n, s) => n + num(s.probePoints), 0);
  return kinds.map((k) => {
    if (k === 'plain_runs') return count(runs ? num(runs.runsUsed) : num(inputs.plainRuns), 'plain run');
    if (k === 'full_runs') return count(runsOf('PROTOCOL_FULL_RUN'), 'full run');
    if (k === 'probes') return `${count(runsOf('PROTOCOL_PROBE'), 'probe run')}, ${count(points, 'probe point')}`;
    if (k === 'measured') return count(stages.reduce((n, s) => n + s.optima.length, 0), 'imported optimum', 'imported optima');
    return k;
  }).join(', ');
}

// What the advice stands on: evidence kinds with counts, the RunEvidence
// summary (signal, targets, runs, censored), the criteria, what was set
// aside, the fit's notes and facts.
function renderEvidence() {
  const fit = state.fit;
  const inputs = fit.inputs || {};
  const stages = fit.stages.slice().sort(byDescendingLoss);
  const fastest = fit.fastestStages || [];
  const aside = fit.setAsideStages || [];
  const kinds = evidenceKinds(stages);
  const runBased = kinds.some(isRunEvidence);
  const evidence = kinds.join('+');
  const statement = stages.length
    ? h('p', { id: 'evidence-statement', class: `evidence-statement${runBased ? '' : ' short'}`, 'data-evidence': evidence },
      'Advice stands on ', h('strong', {}, evidenceText(evidence)), `: ${evidenceCounts(kinds, stages)}, ` +
      `${count(stages.length, runBased ? 'target loss' : 'stage', runBased ? 'target losses' : 'stages')}` +
      (runBased ? ' (training runs set the LR level)' : '.'),
      kinds.includes('probes') && !runBased ? h('span', { class: 'short-note' }, ' Short horizon: probes measure the best LR ' +
        'for the next k steps from a checkpoint, which can sit far below the LR that trains best.') : null)
    : h('p', { id: 'evidence-statement', class: 'evidence-statement', 'data-evidence': '' },
      'No advice yet: ', fit.error || 'no fitted stage.');
  const facts = [];
  const r = fit.runs;
  if (r && !(r.targetLosses || []).length) {
    facts.push(h('li', { id: 'evidence-runs' }, `plain runs: ${count(num(r.runsUsed), 'run')} read, but no target loss ` +
      'could be chosen or was declared, so they give no stages (see the notes); they still give the loss curve'));
  } else if (r) {
    facts.push(h('li', { id: 'evidence-signal', 'data-signal': r.signal }, 'loss signal: ', h('strong', {},
      r.signal === 'eval_loss' ? 'eval loss' : 'smoothed training loss'),
      r.signal === 'eval_loss' ? ' (every run reports it)' : ' (binned median; not every run reports an eval loss)'));
    facts.push(h('li', { id: 'evidence-targets' }, 'target losses: ',
      h('strong', {}, (r.targetLosses || []).map(g4).join(', ') || 'none'),
      ` (${r.targetsFromData ? 'chosen from the data' : 'declared'}); k = ${r.kSteps} steps for the improvement criterion`));
    facts.push(h('li', { id: 'evidence-runs' }, `plain runs: ${num(r.runsUsed)} used, ${num(r.runsScheduled)} with an LR ` +
      `schedule (read at their peak LR), ${num(r.runsLeftOut)} left out (other schedule shape or too few records)`));
  }
  const runStages = stages.filter((s) => num(s.runs) > 0);
  if (runStages.length) {
    facts.push(h('li', { id: 'evidence-censored' }, 'runs that never reached the target (censored: kept as bounds, not dropped): ',
      runStages.map((s) => `${num(s.censoredRuns)} of ${num(s.runs)} at ${g4(s.stageLoss)}`).join(', ')));
  }
  if (stages.length) {
    facts.push(h('li', { id: 'evidence-criteria' }, 'criteria: ',
      h('strong', {}, 'improvement'), ` (${count(stages.length, 'stage')} fitted; the advice default)`,
      fastest.length ? [', ', h('strong', {}, 'fastest'), ` (${count(fastest.length, 'stage')} fitted)`]
        : ' only (fastest needs training runs)'));
  }
  if (aside.length) {
    const asideKinds = evidenceKinds(aside);
    facts.push(h('li', { id: 'evidence-set-aside', class: 'set-aside-note', 'data-count': String(aside.length) },
      `set aside: ${count(aside.length, 'stage')} from ${evidenceText(asideKinds.join('+'))} ` +
      `(${evidenceCounts(asideKinds, aside)}), shown below but not used for advice: training-run evidence sets the LR level`));
  }
  const notes = fit.notes || [];
  fill($('evidence'),
    h('h2', {}, 'Evidence behind the advice'),
    statement,
    facts.length ? h('ul', { class: 'evidence-facts' }, facts) : null,
    notes.length ? h('details', { class: 'notes', id: 'fit-notes' }, h('summary', {}, `Notes from the fit (${notes.length})`),
      h('ul', {}, notes.map((n) => h('li', {}, n)))) : null,
    h('p', { class: 'facts small muted fit-meta' },
      h('span', { title: isoTime(fit.createTimeUs) }, `fit v${fit.version}, computed ${timeAgo(fit.createTimeUs)} in ${g4(fit.fitMs)} ms`),
      h('span', {}, `${num(inputs.recordsSeen).toLocaleString('en-US')} records seen`),
      h('span', {}, `loss curve from run '${inputs.lossCurveRun || '-'}' (${inputs.lossPoints} points)`),
      h('span', {}, `${inputs.gradStatRecords} gradient-statistics records`)));
}

// One card per stage of the advice set (both criteria for run-based stages),
// then the set-aside stages in their own section.
function renderStages() {
  const fit = state.fit;
  const fastestById = new Map((fit.fastestStages || []).map((s) => [String(s.stageId), s]));
  const fastestSkipped = new Map((fit.fastestSkippedStages || []).map((s) => [String(s.stageId), s.reason]));
  const skipped = new Map((fit.skippedStages || []).map((s) => [String(s.stageId), s]));
  const cards = fit.stages.map((s) => ({ loss: num(s.stageLoss), node: stageCard(s, state.unit, {
    fastest: fastestById.get(String(s.stageId)) || null, fastestSkipped: fastestSkipped.get(String(s.stageId)) || '' }) }));
  // A target where only the fastest criterion has a fit: its card, with the improvement criterion's reason.
  for (const [id, f] of fastestById) {
    if (fit.stages.some((s) => String(s.stageId) === id)) continue;
    cards.push({ loss: num(f.stageLoss), node: stageCard(null, state.unit, { fastest: f,
      skippedWhy: skipped.has(id) ? skipped.get(id).reason : '' }) });
  }
  for (const s of fit.skippedStages || []) {
    if (fastestById.has(String(s.stageId))) continue;
    cards.push({ loss: num(s.stageLoss), node: h('section', { class: 'card muted skipped-stage', 'data-skipped-stage': s.stageId },
      `Stage ${s.stageId} (loss ${g4(s.stageLoss)}) not fitted: ${s.reason}` +
      (fastestSkipped.has(String(s.stageId)) ? `; fastest criterion: ${fastestSkipped.get(String(s.stageId))}` : '')) });
  }
  // Training order: the earliest stage (highest loss) first.
  cards.sort((a, b) => b.loss - a.loss);
  fill($('stages'), cards.map((c) => c.node));
  const runBased = fit.stages.some((s) => isRunEvidence(stageEvidence(s)));
  const k = fit.runs ? fit.runs.kSteps : 'k';
  fill($('stages-lede'), runBased
    ? [`Each card is one target loss of the training runs. Both criteria are drawn: `,
      h('span', { class: 'key-improvement' }, '\u25cf improvement'), ` (red fit; the paper's: the largest loss fall over the ` +
      `${k} steps after the target; the advice default) and `, h('span', { class: 'key-fastest' }, '\u25a0 fastest'),
      ' (green fit; the fewest steps to the target). Runs that never reach a target are censored: they bound the optimum.']
    : fit.stages.length ? 'Each card is one stage (a checkpoint of the base run, or an imported stage).' : null);
  const aside = (fit.setAsideStages || []).slice().sort(byDescendingLoss);
  $('set-aside').hidden = !aside.length;
  fill($('set-aside-lede'), aside.length
    ? `These ${count(aside.length, 'stage')} from ${evidenceText(evidenceKinds(aside).join('+'))} ` +
      'were fitted but are not used for advice: the job has training runs, and training-run evidence sets the LR level ' +
      '(probes measure the best LR for the next k steps from a checkpoint, which can sit far below the LR that trains best).' : null);
  fill($('set-aside-stages'), aside.map((s) => stageCard(s, state.unit, { setAside: true, idPrefix: 'set-aside-' })));
}

function renderSpeedData() {
  const rows = state.fit.speedData || [];
  fill($('speed-data'), h('h2', {}, 'Speed/data trade-off per target loss: S(B) = S_min + E_min / B'), rows.length
    ? h('table', { class: 'grid-table speed' },
      h('thead', {}, h('tr', {}, h('th', { class: 'n' }, 'target loss'), h('th', { class: 'n' }, 'S_min (steps) \u00b1 SE'),
        h('th', { class: 'n' }, `E_min (${state.unit}) \u00b1 SE`), h('th', { class: 'n' }, 'B_crit = E_min / S_min'),
        h('th', { class: 'n' }, 'batch sizes'))),
      h('tbody', {}, rows.map((s) => h('tr', {}, h('td', { class: 'n' }, g4(s.targetLoss)),
        h('td', { class: 'n' }, `${g4(s.sMin)} \u00b1 ${g4(s.sMinSe)}`), h('td', { class: 'n' }, `${g4(s.eMin)} \u00b1 ${g4(s.eMinSe)}`),
        h('td', { class: 'n' }, g4(s.bCrit)), h('td', { class: 'n' }, String(s.n))))),
      h('caption', {}, 'From the fastest runs at each batch size; maps an advice step to the loss a run at that batch size reaches.'))
    : h('p', { class: 'muted' }, 'None: needs training runs at >= 2 batch sizes that reach a target.'));
}

function renderFit() {
  const fit = state.fit;
  document.body.dataset.fitVersion = fit.version;
  renderEvidence();
  renderStages();
  if (fit.stages.length) {
    fill($('drift'), ...driftPlots(fit, state.unit));
  } else {
    fill($('drift'), h('p', { class: 'muted' }, 'No fitted stage.'));
  }
  fill($('loss'), state.lossSeries.length ? lossPlot(state.lossSeries, fit.stages, fit.runs ? fit.runs.signal : '')
    : h('p', { class: 'muted' }, 'No plain or full run has records (probe runs have no curve).'));
  fill($('bsimple'), (fit.noiseScale || []).length ? bSimplePlot(fit, state.unit)
    : h('p', { class: 'muted' }, 'No run has gradient statistics.'));
  renderSpeedData();
  // The fastest criterion needs training runs: offered when the fit has its stages.
  const fastestOption = $('advice-criterion').querySelector('option[value="CRITERION_FASTEST"]');
  fastestOption.disabled = !(fit.fastestStages || []).length;
  fastestOption.title = fastestOption.disabled ? 'needs training runs (plain or full) reaching the target losses' : '';
  if (fastestOption.disabled) $('advice-criterion').value = 'CRITERION_IMPROVEMENT';
}

function flagList(flags) {
  const names = { extrapolatedInBatch: 'batch size outside the data (\u00d710)', extrapolatedInStep: 'step beyond the loss curve',
    extrapolatedInLoss: 'loss outside the fitted stages', bNoiseBoundOnly: 'B_noise is a bound only',
    surgeNotSupported: 'surge not supported by the verdict' };
  return Object.entries(flags || {}).filter(([k, v]) => v && k !== 'shortHorizon').map(([k]) => names[k] || k);
}

function stepMappingText(a) {
  if (referenceSetsStage(a)) return `no step given: the stage your LR was tuned at (loss ${g4(a.loss)})`;
  if (a.step === undefined) return 'no step given: the latest (lowest-loss) stage';
  const to = `step ${a.step} \u2192 loss ${g4(a.loss)}`;
  if (a.stepMapping === 'speed_data') {
    return `${to} (speed/data: the loss a run at B = ${g4(a.batchSize)} reaches at this step, S(B) = S_min + E_min/B per target)`;
  }
  if (a.stepMapping === 'loss_curve') return `${to} (read off the loss curve of run '${(state.fit.inputs || {}).lossCurveRun || '?'}')`;
  return `${to} (${a.stepMapping || 'no mapping given'})`;
}

async function advise() {
  const out = $('advice-result');
  const batch = $('advice-batch').value.trim();
  const step = $('advice-step').value.trim();
  const criterion = $('advice-criterion').value;
  out.dataset.state = 'loading';
  try {
    const a = await api.advice(jobName, batch, step, criterion, referenceParams());
    const transfer = transferOf(a);
    const flags = flagList(a.flags);
    const name = criterionName(a.criterion);
    const short = Boolean(a.flags && a.flags.shortHorizon);
    const stagesUsed = (a.stagesUsed || []).length;
    fill(out,
      transfer ? transferBlock(a, state.unit) : null,
      h('div', { class: transfer ? 'lr own' : 'lr' }, transfer ? 'the job\'s own optimum at B, \u03b5 = ' : '\u03b5 = ',
        h('output', { id: 'advice-lr', 'data-lr': String(a.lr) }, g4(a.lr)),
        h('span', { class: 'ci', id: 'advice-ci', title: 'where the optimum at this batch size lies: the curve, the spread between models and the scatter of real optima around the curves' }, ` 95% ${interval(a.lrCi95)}`),
        h('span', { class: 'ci curve-ci', id: 'advice-curve-ci', title: 'where the fitted curve lies' }, ` (curve alone ${interval(a.lrCurveCi95)})`)),
      h('p', { class: 'small' }, `for B = ${g4(a.batchSize)} ${state.unit}` + (a.step !== undefined ? ` at step ${a.step}`
        : referenceSetsStage(a) ? ' at the stage your LR was tuned at' : ' at the latest stage') +
        `, loss ${g4(a.loss)} (fit v${a.fitVersion})`),
      h('dl', { class: 'advice-facts small' },
        h('dt', {}, 'criterion'), h('dd', { id: 'advice-criterion-out', 'data-criterion': name }, CRITERION_TEXT[name]),
        h('dt', {}, 'evidence'), h('dd', { id: 'advice-evidence', 'data-evidence': a.evidence || '', 'data-runs-used': String(num(a.runsUsed)) },
          h('strong', {}, evidenceText(a.evidence || 'probes')), num(a.runsUsed) > 0
            ? `: ${num(a.runsUsed)} runs behind ${count(stagesUsed, 'stage')}, ${a.optimaUsed} optima`
            : `: ${a.optimaUsed} optima from ${count(num(a.probePointsUsed), 'probe point')}, ${count(stagesUsed, 'stage')}`),
        h('dt', {}, 'step \u2192 loss'), h('dd', { id: 'advice-step-mapping', 'data-step-mapping': a.stepMapping || '' }, stepMappingText(a)),
        h('dt', {}, 'horizon'), h('dd', { id: 'advice-short-horizon', 'data-short-horizon': String(short), class: short ? 'short-horizon' : '' },
          short ? 'short horizon: this answer stands on probes only, the best LR for the next k steps from a checkpoint, ' +
            'which can sit far below the LR that trains best' : 'not short-horizon')),
      h('p', { class: 'small' }, `B_noise ${bNoiseText(a.bNoiseKind, a.bNoise, a.bNoiseCi95, state.unit)}; recommended batch size ${g4(a.recommendedBatchSize)}; ` +
        `S/S_min ${g4(a.stepsRatio)}, E/E_min ${g4(a.examplesRatio)}`),
      h('p', { class: 'small muted' }, `model: ${a.model}; surge supported: ${verdictText(a.verdict)}`),
      flags.length ? h('p', { class: 'flags' }, `flags: ${flags.join('; ')}`) : null);
    out.dataset.transfer = String(Boolean(transfer));
    out.dataset.fitVersion = String(a.fitVersion);
    out.dataset.state = 'ready';
  } catch (e) {
    fill(out, h('p', { class: 'error', id: 'advice-error' }, e.message));
    out.dataset.transfer = 'false';
    out.dataset.state = 'error';
  }
}

// Defaults: a sweep of training runs asks at its median batch size for the
// latest stage; a probe job at its base run's batch size and last step.
function defaultAdviceInputs() {
  if (state.fit.stages.some((s) => isRunEvidence(stageEvidence(s)))) {
    const sizes = state.runs.filter((r) => r.protocol === 'PROTOCOL_PLAIN' || r.protocol === 'PROTOCOL_FULL_RUN')
      .map((r) => num(r.batchSize)).sort((a, b) => a - b);
    if (!$('advice-batch').value && sizes.length) $('advice-batch').value = sizes[Math.floor(sizes.length / 2)];
    return;
  }
  const plain = state.runs.find((r) => r.name === (state.fit.inputs || {}).lossCurveRun) ||
    state.runs.find((r) => r.protocol === 'PROTOCOL_PLAIN');
  if (!$('advice-batch').value) $('advice-batch').value = plain ? num(plain.batchSize) : 256;
  if (!$('advice-step').value && plain && num(plain.lastStep) >= 0) $('advice-step').value = num(plain.lastStep);
}

// Live fits from /fit/events, read with fetch() so that the token goes in a
// header (api.watchFits; EventSource cannot send one). Fits are drawn one at
// a time, and only when newer than the one shown.
function listen() {
  const live = $('live');
  const show = (text, on, title = 'live fit updates (server-sent events)') => {
    live.textContent = text;
    live.className = on ? 'live on' : 'live off';
    live.title = title;
  };
  let drawing = Promise.resolve();
  async function draw(fit) {
    if (state.fit && num(fit.version) <= num(state.fit.version)) return;
    state.fit = fit;
    [state.job, { runs: state.runs }] = await Promise.all([api.job(jobName), api.runs(jobName)]);
    await loadLossSeries();
    renderSummary();
    renderFit();
    await advise();
    showError('');
    show(`live \u00b7 fit v${fit.version} ${new Date().toLocaleTimeString()}`, true);
  }
  watchFits(jobName, {
    open: () => show('live', true),
    down: (why) => show('reconnecting', false, `live fit updates: reconnecting (${why})`),
    shutdown: () => show('reconnecting', false, 'live fit updates: the server is shutting down; reconnecting'),
    stop: (e) => show('not live', false, `live fit updates stopped: ${e.message}`),
    fit: (fit) => {
      drawing = drawing.then(() => draw(fit)).catch((e) => showError(`cannot redraw fit v${fit.version}: ${e.message}`));
    },
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
$('advice-criterion').addEventListener('change', () => { if (state.fit) advise(); });
$('advice-ref-clear').addEventListener('click', () => { clearReference(); if (state.fit) advise(); });
main();
