// job_charts.js: the job page's charts and tables, built from the Fit, runs
// and records messages of the JSON API: per stage eps_opt(B) (optima with
// error bars, bounds, surge curve with its 95% band, comparison models,
// B_noise marker) and the model table; the drift of B_noise and eps_max with
// stage loss; the runs' loss curves; the B_simple series.
import { Plot } from './plot.js';
import { h, num, g4, interval, verdictText, bNoiseText } from './format.js';

const Z95 = 1.959964;
export const MODEL_LABELS = {
  surge: 'surge law', sgd: 'SGD law', alpha_form: 'alpha form', power_law: 'power law',
  saturating_surge: 'saturating surge',
};

function curvePoints(model) {
  return (model.curve || []).map((c) => ({ x: num(c.batchSize), y: num(c.lr),
    lo: num(c.lrCi95 && c.lrCi95.lo), hi: num(c.lrCi95 && c.lrCi95.hi) }));
}

// eps_opt against B for one stage.
export function stagePlot(stage, unit) {
  const id = `stage-${stage.stageId}`;
  const plot = new Plot({ id, width: 620, height: 380,
    title: `Stage ${stage.stageId}: optimal LR vs batch size (log-log)`,
    xLabel: `batch size B (${unit}, log scale)`,
    yLabel: 'optimal learning rate \u03b5_opt (log scale)' });
  const surge = stage.models.find((m) => m.model === 'surge');
  if (surge && surge.fitted && surge.curve.length) {
    plot.band(curvePoints(surge).map((p) => ({ x: p.x, lo: p.lo, hi: p.hi })),
      { series: 'surge-band', cls: 'band surge-band', label: 'surge law 95% band' });
  }
  for (const m of stage.models) {
    if (m.model === 'surge' || !m.fitted || !m.curve.length) continue;
    plot.line(curvePoints(m), { series: `model-${m.model}`, cls: `model faint model-${m.model}`,
      label: `${MODEL_LABELS[m.model] || m.model} (w=${g4(m.weight)})`, fit: false });
  }
  if (surge && surge.fitted && surge.curve.length) {
    plot.line(curvePoints(surge), { series: 'model-surge', cls: 'model model-surge',
      label: `surge law fit (w=${g4(surge.weight)})` });
  }
  const points = [];
  const bounds = [];
  for (const o of stage.optima) {
    const lr = num(o.lrOpt);
    const se = num(o.lnLrOptSe);
    const b = num(o.batchSize);
    const title = `B=${g4(b)}: \u03b5_opt ${o.censoring === 'CENSORING_UPPER_BOUND' ? '\u2264' :
      o.censoring === 'CENSORING_LOWER_BOUND' ? '\u2265' : '='} ${g4(lr)} (SE of ln ${g4(se)}, ${o.seSource}, ${o.nLrs} LRs \u00d7 ${o.nSeeds} seeds)`;
    if (o.censoring === 'CENSORING_UPPER_BOUND' || o.censoring === 'CENSORING_LOWER_BOUND') {
      bounds.push({ x: b, y: lr, dir: o.censoring === 'CENSORING_UPPER_BOUND' ? 'down' : 'up', title });
    } else {
      points.push({ x: b, y: lr, lo: lr * Math.exp(-Z95 * se), hi: lr * Math.exp(Z95 * se), title });
    }
  }
  plot.points(points, { series: 'optima', cls: 'optimum', label: 'measured optimum \u00b1 95%' });
  if (bounds.length) {
    plot.bounds(bounds, { series: 'bounds', cls: 'bound', label: 'censored optimum (bound)' });
  }
  const s = stage.surge || {};
  const bn = num(s.bNoise);
  if (s.bNoiseKind === 'B_NOISE_KIND_POINT') {
    plot.vline(bn, { series: 'b-noise', cls: 'bnoise', lo: num(s.bNoiseCi95.lo), hi: num(s.bNoiseCi95.hi),
      label: 'B_noise (peak) with 95% CI', text: `B_noise ${g4(bn)}` });
  } else if (s.bNoiseKind === 'B_NOISE_KIND_LOWER_BOUND' || s.bNoiseKind === 'B_NOISE_KIND_UPPER_BOUND') {
    const lower = s.bNoiseKind === 'B_NOISE_KIND_LOWER_BOUND';
    plot.vline(bn, { series: 'b-noise', cls: 'bnoise', dir: lower ? 'right' : 'left',
      label: `B_noise ${lower ? 'lower' : 'upper'} bound`, text: `B_noise ${lower ? '\u2265' : '\u2264'} ${g4(bn)}` });
  }
  return plot.render();
}

export function modelTable(stage) {
  const aiccs = stage.models.map((m) => num(m.aicc)).filter(Number.isFinite);
  const best = aiccs.length ? Math.min(...aiccs) : NaN;
  const rows = stage.models.map((m) => {
    const aicc = num(m.aicc);
    const params = (m.params || []).map((p, i) => `${g4(p)} \u00b1 ${g4((m.paramSe || [])[i])}`).join(', ');
    return h('tr', { 'data-model': m.model, class: m.fitted ? '' : 'muted' },
      h('td', {}, MODEL_LABELS[m.model] || m.model),
      h('td', { class: 'n' }, Number.isFinite(aicc) ? g4(aicc) : '-'),
      h('td', { class: 'n' }, Number.isFinite(aicc) && Number.isFinite(best) ? g4(aicc - best) : '-'),
      h('td', { class: 'n weight' }, g4(m.weight),
        h('span', { class: 'wbar', style: `width:${Math.round(60 * Math.max(0, num(m.weight)))}px` })),
      h('td', { class: 'n' }, `${m.n}/${m.k}`),
      h('td', { class: 'params' }, m.fitted ? params : ''),
      h('td', { class: 'muted' }, m.note || (m.fitted ? '' : 'not fitted')));
  });
  return h('table', { class: 'grid-table models' },
    h('thead', {}, h('tr', {}, h('th', {}, 'model'), h('th', { class: 'n' }, 'AICc'),
      h('th', { class: 'n' }, '\u0394AICc'), h('th', { class: 'n' }, 'Akaike weight'),
      h('th', { class: 'n', title: 'uncensored optima / parameters incl. \u03c3' }, 'n/k'),
      h('th', {}, 'parameters (log parametrization) \u00b1 SE'), h('th', {}, 'note'))),
    h('tbody', {}, rows),
    h('caption', {}, `Verdict (is the surge supported?): ${verdictText(stage.verdict)} \u2014 ${stage.verdictReason}. ` +
      `surge family weight ${g4(stage.surgeFamilyWeight)}, monotone weight ${g4(stage.monotoneWeight)}.`));
}

export function stageCard(stage, unit) {
  const s = stage.surge || {};
  const censored = stage.optima.filter((o) => o.censoring !== 'CENSORING_NONE').length;
  return h('section', { class: 'card stage', 'data-stage': stage.stageId },
    h('h3', {}, `Stage ${stage.stageId} \u00b7 stage loss ${g4(stage.stageLoss)} \u00b7 surge supported: `,
      h('span', { class: `verdict ${verdictText(stage.verdict)}` }, verdictText(stage.verdict))),
    h('p', { class: 'facts' },
      h('span', {}, `B_noise: ${bNoiseText(s.bNoiseKind, s.bNoise, s.bNoiseCi95, unit)}`),
      h('span', {}, `\u03b5_max: ${Number.isFinite(num(s.epsMax)) ? `${g4(s.epsMax)} ${interval(s.epsMaxCi95)}` : '-'}`),
      h('span', {}, `${stage.optima.length - censored} optima + ${censored} bounds, ${stage.probePoints} probe points`),
      h('span', {}, `identification: ${s.identification}, scale ${g4(s.scale)}`)),
    stagePlot(stage, unit),
    modelTable(stage),
    stage.skipped.length ? h('p', { class: 'muted small' }, `skipped: ${stage.skipped.join('; ')}`) : null);
}

// B_noise and eps_max against stage loss, with the drift fit when linear.
export function driftPlots(fit, unit) {
  const d = fit.drift || { mode: 'none' };
  const losses = fit.stages.map((s) => num(s.stageLoss));
  const lo = Math.min(...losses) / 1.15;
  const hi = Math.max(...losses) * 1.15;
  const line = (c0, c1) => {
    const out = [];
    for (let i = 0; i <= 40; i++) {
      const L = lo * Math.pow(hi / lo, i / 40);
      out.push({ x: L, y: Math.exp(num(c0) + num(c1) * Math.log(L)) });
    }
    return out;
  };
  const make = (id, yLabel, title, pick, c0, c1) => {
    const plot = new Plot({ id, width: 460, height: 300, title, yLabel,
      xLabel: 'stage loss L (training loss, log scale)' });
    const pts = [];
    const bounds = [];
    for (const s of fit.stages) {
      const r = pick(s);
      if (r.kind === 'point') pts.push({ x: num(s.stageLoss), y: r.v, lo: r.lo, hi: r.hi, title: `stage ${s.stageId}` });
      if (r.kind === 'up' || r.kind === 'down') bounds.push({ x: num(s.stageLoss), y: r.v, dir: r.kind });
    }
    if (d.mode === 'linear') {
      plot.line(line(c0, c1), { series: 'drift', cls: 'model model-surge',
        label: id === 'drift-bnoise' ? `drift fit: B_noise \u221d L^(-1/\u03b1), \u03b1 = ${g4(d.alpha)} \u00b1 ${g4(d.alphaSe)}` : 'drift fit: ln \u03b5_max linear in ln L' });
    }
    plot.points(pts, { series: 'stages', cls: 'optimum', label: 'stage fit \u00b1 95%' });
    if (bounds.length) plot.bounds(bounds, { series: 'bounds', cls: 'bound', label: 'bound only' });
    return plot.render();
  };
  const bnoise = make('drift-bnoise', `B_noise (${unit}, log scale)`, 'B_noise vs stage loss', (s) => {
    const v = num(s.surge.bNoise);
    if (s.surge.bNoiseKind === 'B_NOISE_KIND_POINT') return { kind: 'point', v, lo: num(s.surge.bNoiseCi95.lo), hi: num(s.surge.bNoiseCi95.hi) };
    if (s.surge.bNoiseKind === 'B_NOISE_KIND_LOWER_BOUND') return { kind: 'up', v };
    if (s.surge.bNoiseKind === 'B_NOISE_KIND_UPPER_BOUND') return { kind: 'down', v };
    return { kind: 'none' };
  }, d.c0, d.c1);
  const epsmax = make('drift-epsmax', '\u03b5_max (peak LR, log scale)', '\u03b5_max vs stage loss', (s) => {
    const v = num(s.surge.epsMax);
    return Number.isFinite(v) ? { kind: 'point', v, lo: num(s.surge.epsMaxCi95.lo), hi: num(s.surge.epsMaxCi95.hi) } : { kind: 'none' };
  }, d.d0, d.d1);
  const text = d.mode === 'linear'
    ? `Drift over stages ${d.stageIds.join(', ')}: ln B_noise = ${g4(d.c0)} + ${g4(d.c1)} ln L (\u03b1 = ${g4(d.alpha)} \u00b1 ${g4(d.alphaSe)}); ln \u03b5_max = ${g4(d.d0)} + ${g4(d.d1)} ln L.`
    : `Drift mode: ${d.mode} (a linear drift needs two or more stages with an identified peak).`;
  return [h('p', { class: 'small' }, text), h('div', { class: 'row' }, bnoise, epsmax)];
}

// Loss against step for each run with records (plain and full runs), with the
// stage losses as horizontal references.
// Runs named in the loss plot's legend; the others are drawn with a hover
// title only (a full-run grid has 100+ runs).
const kLossLegendRuns = 8;

export function lossPlot(series, stages) {
  const plot = new Plot({ id: 'loss', width: 620, height: 320, title: 'Loss curves of the runs',
    xLabel: 'step (log scale)', yLabel: 'training loss (log scale)' });
  series.forEach((s, i) => {
    const named = i < kLossLegendRuns;
    const title = `${s.run} (B=${s.batchSize}) training loss`;
    plot.line(s.points, { series: `loss-${s.run}`, cls: `run run-${i % 6}`, label: named ? title : null, title });
    if (s.evalPoints.length) {
      plot.points(s.evalPoints, { series: `eval-${s.run}`, cls: `evalpt run-${i % 6}`,
        label: named ? `${s.run} eval loss` : null, shape: 'square' });
    }
  });
  if (series.length > kLossLegendRuns) {
    plot.note(`+ ${series.length - kLossLegendRuns} more runs (hover a curve for its name)`);
  }
  const steps = series.flatMap((s) => s.points.map((p) => p.x)).filter((x) => x > 0);
  if (steps.length) {
    const x0 = Math.min(...steps);
    const x1 = Math.max(...steps);
    for (const st of stages) {
      plot.line([{ x: x0, y: num(st.stageLoss) }, { x: x1, y: num(st.stageLoss) }],
        { series: `stage-loss-${st.stageId}`, cls: 'ref', label: `stage ${st.stageId} loss ${g4(st.stageLoss)}` });
    }
  }
  return plot.render();
}

export function bSimplePlot(fit, unit) {
  const plot = new Plot({ id: 'b-simple', width: 620, height: 320,
    title: 'B_simple (two-batch gradient-noise estimate)', xLabel: 'step (log scale)',
    yLabel: `B_simple (${unit}, log scale)` });
  (fit.noiseScale || []).forEach((s, i) => {
    const pts = s.steps.map((t, j) => ({ x: num(t), y: num(s.bSimple[j]) }));
    plot.line(pts, { series: `b-simple-${s.run}`, cls: `run run-${i % 6}`,
      label: `${s.run}: B_simple (last ${g4(s.lastBSimple)})` });
  });
  return plot.render();
}
