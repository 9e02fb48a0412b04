// job_charts.js: the job page's charts and tables, built from the Fit, runs
// and records messages of the JSON API: per stage eps_opt(B) under each
// criterion (optima with error bars, bounds, surge curve with its 95% band,
// comparison models, B_noise marker), the per-batch and model tables; the
// drift of B_noise and eps_max with stage loss; the runs' loss curves; the
// B_simple series.
import { Plot } from './plot.js';
import { h, num, g4, interval, verdictText, bNoiseText, stageEvidence, evidenceText, isRunEvidence,
  criterionName } from './format.js';

const Z95 = 1.959964;
export const MODEL_LABELS = {
  surge: 'surge law', sgd: 'SGD law', alpha_form: 'alpha form', power_law: 'power law',
  saturating_surge: 'saturating surge', smooth: 'smooth curve (no law)',
};

function curvePoints(model) {
  return (model.curve || []).map((c) => ({ x: num(c.batchSize), y: num(c.lr),
    lo: num(c.lrCi95 && c.lrCi95.lo), hi: num(c.lrCi95 && c.lrCi95.hi) }));
}

// How each criterion is drawn in a stage plot. The improvement criterion (and
// every probe or imported stage) keeps the plain series names; the fastest
// criterion's series are prefixed, its markers are squares nudged right by
// 8% so that both criteria's error bars stay visible at the same B.
const LOOKS = {
  improvement: { prefix: '', cls: '', shape: 'circle', dodge: 1, textAt: 'bottom', name: 'improvement' },
  fastest: { prefix: 'fastest-', cls: ' fastest', shape: 'square', size: 7, dodge: 1.08, textAt: 'top', name: 'fastest' },
};

function censorSign(o) {
  return o.censoring === 'CENSORING_UPPER_BOUND' ? '\u2264' : o.censoring === 'CENSORING_LOWER_BOUND' ? '\u2265' : '=';
}

function optimumTitle(o, stage, look) {
  const runs = num(stage.runs) > 0;
  const steps = num(o.stepsAtOpt);
  return `${runs ? `${look.name}: ` : ''}B=${g4(o.batchSize)}: \u03b5_opt ${censorSign(o)} ${g4(o.lrOpt)} ` +
    `(SE of ln ${g4(o.lnLrOptSe)}, ${o.seSource}, ` +
    (runs ? `${o.nLrs} LRs reached the target, ${num(o.nCensored)} runs never did`
      : `${o.nLrs} LRs \u00d7 ${o.nSeeds} seeds`) +
    (Number.isFinite(steps) ? `; ${g4(steps)} steps to the target at the optimum` : '') + ')';
}

// One criterion's layers: surge band, comparison models (`models`), surge
// curve, optima with 95% error bars, censored optima as arrows, B_noise.
function drawCriterion(plot, stage, look, both, models) {
  const p = look.prefix;
  const tag = both ? ` (${look.name})` : '';
  const surge = stage.models.find((m) => m.model === 'surge');
  const curve = surge && surge.fitted && surge.curve.length ? curvePoints(surge) : null;
  const points = [];
  const bounds = [];
  for (const o of stage.optima) {
    const lr = num(o.lrOpt);
    const se = num(o.lnLrOptSe);
    const b = num(o.batchSize) * look.dodge;
    const title = optimumTitle(o, stage, look);
    if (o.censoring === 'CENSORING_UPPER_BOUND' || o.censoring === 'CENSORING_LOWER_BOUND') {
      bounds.push({ x: b, y: lr, dir: o.censoring === 'CENSORING_UPPER_BOUND' ? 'down' : 'up', title });
    } else {
      points.push({ x: b, y: lr, lo: lr * Math.exp(-Z95 * se), hi: lr * Math.exp(Z95 * se), title });
    }
  }
  if (curve) {
    // The band may span decades where the peak is not identified: it counts
    // for the axes only within a factor 3 of the optima's error bars.
    const ys = points.flatMap((q) => [q.lo, q.hi]).concat(bounds.map((q) => q.y)).filter((y) => y > 0);
    const band = curve.map((q) => ({ x: q.x, lo: q.lo, hi: q.hi }));
    plot.band(band, { series: p ? `${p}band` : 'surge-band', cls: `band surge-band${look.cls}`,
      label: `surge law 95% band${tag}`, fit: !ys.length });
    if (ys.length) {
      const lo = Math.min(...ys) / 3;
      const hi = Math.max(...ys) * 3;
      plot.extend([], band.flatMap((q) => [q.lo, q.hi]).map((y) => Math.min(hi, Math.max(lo, y))));
    }
  }
  if (models) {
    for (const m of stage.models) {
      if (m.model === 'surge' || !m.fitted || !m.curve.length) continue;
      plot.line(curvePoints(m), { series: `model-${m.model}`, cls: `model faint model-${m.model}`,
        label: `${MODEL_LABELS[m.model] || m.model} (w=${g4(m.weight)})`, fit: false });
    }
  }
  if (curve) {
    plot.line(curve, { series: p ? `${p}surge` : 'model-surge', cls: `model model-surge${look.cls}`,
      label: `surge law fit${tag} (w=${g4(surge.weight)})` });
  }
  plot.points(points, { series: `${p}optima`, cls: `optimum${look.cls}`, shape: look.shape, size: look.size,
    label: both ? `optimum \u00b1 95%${tag}` : 'measured optimum \u00b1 95%' });
  if (bounds.length) {
    plot.bounds(bounds, { series: `${p}bounds`, cls: `bound${look.cls}`, label: `censored optimum (bound)${tag}` });
  }
  const s = stage.surge || {};
  const bn = num(s.bNoise);
  const name = both ? `B_noise${p ? ' (fastest)' : ''}` : 'B_noise';
  if (s.bNoiseKind === 'B_NOISE_KIND_POINT') {
    plot.vline(bn, { series: `${p}b-noise`, cls: `bnoise${look.cls}`, lo: num(s.bNoiseCi95.lo), hi: num(s.bNoiseCi95.hi),
      label: `B_noise (peak) with 95% CI${tag}`, text: `${name} ${g4(bn)}`, textAt: look.textAt });
  } else if (s.bNoiseKind === 'B_NOISE_KIND_LOWER_BOUND' || s.bNoiseKind === 'B_NOISE_KIND_UPPER_BOUND') {
    const lower = s.bNoiseKind === 'B_NOISE_KIND_LOWER_BOUND';
    plot.vline(bn, { series: `${p}b-noise`, cls: `bnoise${look.cls}`, dir: lower ? 'right' : 'left',
      label: `B_noise ${lower ? 'lower' : 'upper'} bound${tag}`, text: `${name} ${lower ? '\u2265' : '\u2264'} ${g4(bn)}`,
      textAt: look.textAt });
  }
}

// eps_opt against B for one stage: the improvement criterion's (or the only)
// stage fit and, when given, the fastest criterion's over it.
export function stagePlot(stage, unit, { fastest = null, idPrefix = '' } = {}) {
  const any = stage || fastest;
  const runBased = isRunEvidence(stageEvidence(any));
  const plot = new Plot({ id: `${idPrefix}stage-${any.stageId}`, width: 620, height: 380,
    title: runBased ? `Target loss ${g4(any.stageLoss)}: optimal LR vs batch size (log-log)`
      : `Stage ${any.stageId}: optimal LR vs batch size (log-log)`,
    xLabel: `batch size B (${unit}, log scale)`,
    yLabel: 'optimal learning rate \u03b5_opt (log scale)' });
  const both = Boolean(stage && fastest);
  if (stage) drawCriterion(plot, stage, both ? LOOKS.improvement : LOOKS[criterionName(stage.criterion)], both, true);
  if (fastest) drawCriterion(plot, fastest, LOOKS.fastest, both, !stage);
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
      h('td', { class: 'n law-weight' }, m.model === 'smooth' ? '-' : g4(num(m.lawWeight))),
      h('td', { class: 'n scatter' }, m.fitted ? g4(num(m.scatterSd)) : '-'),
      h('td', { class: 'n' }, `${m.n}/${m.k}`),
      h('td', { class: 'params' }, m.fitted ? params : ''),
      h('td', { class: 'muted' }, m.note || (m.fitted ? '' : 'not fitted')));
  });
  return h('table', { class: 'grid-table models', 'data-criterion': criterionName(stage.criterion) },
    h('thead', {}, h('tr', {}, h('th', {}, 'model'), h('th', { class: 'n' }, 'AICc'),
      h('th', { class: 'n' }, '\u0394AICc'), h('th', { class: 'n' }, 'Akaike weight'),
      h('th', { class: 'n', title: 'Akaike weight among the five laws: what the verdict uses' }, 'law weight'),
      h('th', { class: 'n', title: 'sd of ln optima around the curve beyond their own SEs (Paule-Mandel)' }, 'scatter'),
      h('th', { class: 'n', title: 'uncensored optima / parameters incl. \u03c3' }, 'n/k'),
      h('th', {}, 'parameters (log parametrization) \u00b1 SE'), h('th', {}, 'note'))),
    h('tbody', {}, rows),
    h('caption', {}, `Verdict (is the surge supported?): ${verdictText(stage.verdict)} \u2014 ${stage.verdictReason}. ` +
      `surge family weight ${g4(stage.surgeFamilyWeight)}, monotone weight ${g4(stage.monotoneWeight)} (among the laws); ` +
      `the smooth curve holds ${g4(num(stage.smoothWeight))} of the average and no part of the verdict.`));
}

// A value with its interval below it (narrow table cells).
function twoLines(value, ci) {
  return [String(value), ci ? h('span', { class: 'ci-below' }, ci) : null];
}

// An optimum with its 95% interval below it, or the bound.
function optimumCell(o) {
  if (!o) return '-';
  if (o.censoring !== 'CENSORING_NONE') return `${censorSign(o)} ${g4(o.lrOpt)} (bound)`;
  const lr = num(o.lrOpt);
  const se = num(o.lnLrOptSe);
  return twoLines(g4(lr), `[${g4(lr * Math.exp(-Z95 * se))}, ${g4(lr * Math.exp(Z95 * se))}]`);
}

function epsMaxText(s) {
  return Number.isFinite(num(s.epsMax)) ? `${g4(s.epsMax)} ${interval(s.epsMaxCi95)}` : '-';
}


// The two criteria side by side: optima, the surge-law fit, the verdict.
function criteriaTable(stage, fastest, skippedWhy, fastestSkipped, unit) {
  const row = (name, st, why) => {
    if (!st) {
      return h('tr', { 'data-criterion': name }, h('td', {}, name),
        h('td', { colSpan: 5, class: 'muted' }, `not fitted: ${why || 'no stage'}`));
    }
    const s = st.surge || {};
    const censored = st.optima.filter((o) => o.censoring !== 'CENSORING_NONE').length;
    return h('tr', { 'data-criterion': name },
      h('td', {}, name, name === 'improvement' ? h('span', { class: 'muted' }, ' (advice default)') : null),
      h('td', { class: 'n' }, `${st.optima.length - censored}${censored ? ` + ${censored} bounds` : ''}`),
      h('td', { class: 'b-noise' }, s.bNoiseKind === 'B_NOISE_KIND_POINT' ? twoLines(g4(s.bNoise), interval(s.bNoiseCi95))
        : bNoiseText(s.bNoiseKind, s.bNoise, s.bNoiseCi95, '').replace(/ +/g, ' ').trim()),
      h('td', { class: 'eps-max' }, Number.isFinite(num(s.epsMax)) ? twoLines(g4(s.epsMax), interval(s.epsMaxCi95)) : '-'),
      h('td', {}, s.identification || '-'),
      h('td', {}, h('span', { class: `verdict ${verdictText(st.verdict)}`, title: st.verdictReason }, verdictText(st.verdict))));
  };
  return h('table', { class: 'grid-table criteria' },
    h('thead', {}, h('tr', {}, h('th', {}, 'criterion'), h('th', { class: 'n' }, 'optima'),
      h('th', {}, `surge law: B_noise (${unit}, 95%)`), h('th', {}, 'surge law: \u03b5_max (95%)'), h('th', {}, 'peak'),
      h('th', {}, 'surge supported'))),
    h('tbody', {}, row('improvement', stage, skippedWhy), row('fastest', fastest, fastestSkipped)));
}

// Per batch size: both criteria's optima, steps at the fastest optimum, runs
// that never reached the target, and why a batch size has no optimum.
function perBatchTable(stage, fastest) {
  const rows = new Map();
  const at = (b) => { if (!rows.has(b)) rows.set(b, {}); return rows.get(b); };
  for (const [key, st] of [['imp', stage], ['fast', fastest]]) {
    if (!st) continue;
    for (const o of st.optima) at(num(o.batchSize))[key] = o;
    for (const text of st.skipped || []) {
      const m = /^batch size ([0-9.e+-]+): (.*)$/.exec(text);
      if (m) { const r = at(Number(m[1])); r.skip = r.skip || m[2]; }
    }
  }
  const body = [...rows.entries()].sort((a, b) => a[0] - b[0]).map(([b, r]) => {
    const any = r.imp || r.fast;
    if (!any) {
      return h('tr', { 'data-batch': String(b), class: 'skipped' }, h('td', { class: 'n' }, g4(b)),
        h('td', { colSpan: 6, class: 'muted' }, `no optimum: ${r.skip || 'skipped'}`));
    }
    return h('tr', { 'data-batch': String(b) },
      h('td', { class: 'n' }, g4(b)),
      h('td', { class: 'n opt-improvement' }, optimumCell(r.imp)),
      h('td', { class: 'n opt-fastest' }, optimumCell(r.fast)),
      h('td', { class: 'n steps' }, r.fast && Number.isFinite(num(r.fast.stepsAtOpt)) ? g4(r.fast.stepsAtOpt) : '-'),
      h('td', { class: 'n' }, String(any.nLrs)),
      h('td', { class: 'n censored' }, String(num(any.nCensored))));
  });
  return h('table', { class: 'grid-table per-batch' },
    h('thead', {}, h('tr', {}, h('th', { class: 'n' }, 'B'), h('th', { class: 'n' }, '\u03b5_opt improvement (95%)'),
      h('th', { class: 'n' }, '\u03b5_opt fastest (95%)'),
      h('th', { class: 'n', title: 'fitted steps to the target at the fastest optimum' }, 'steps at opt.'),
      h('th', { class: 'n', title: 'learning rates whose runs reached the target' }, 'LRs'),
      h('th', { class: 'n', title: 'runs at this batch size that never reached the target (censored: they bound the optimum)' }, 'never reached'))),
    h('tbody', {}, body));
}

function details(summary, open, ...content) {
  const d = h('details', { class: 'models-details' }, h('summary', {}, summary), ...content);
  d.open = open;
  return d;
}

// One stage card. Run-based stages of the advice set show both criteria
// (`fastest`: the fastest criterion's StageFit at the same target, or
// `fastestSkipped`: why it has none; `stage` null with `skippedWhy`: only the
// fastest criterion was fitted); probe and imported stages show one.
// `setAside`: a short-horizon stage shown but not used for advice.
export function stageCard(stage, unit, { fastest = null, skippedWhy = '', fastestSkipped = '', setAside = false,
  idPrefix = '' } = {}) {
  const any = stage || fastest;
  const evidence = stageEvidence(any);
  const runBased = isRunEvidence(evidence);
  const tag = h('span', { class: 'evidence-tag', 'data-evidence': evidence }, evidenceText(evidence));
  const badge = setAside ? h('span', { class: 'badge set-aside-badge' }, 'set aside \u00b7 not used for advice') : null;
  const attrs = { class: `card stage${setAside ? ' set-aside' : ''}`, 'data-stage': any.stageId, 'data-evidence': evidence };
  if (runBased) {
    const skipped = [...new Set([...(stage ? stage.skipped : []), ...(fastest ? fastest.skipped : [])]
      .filter((t) => !/^batch size /.test(t)))];
    return h('section', attrs,
      h('h3', {}, `Target loss ${g4(any.stageLoss)} `, tag, badge, h('span', { class: 'sub' }, ` stage ${any.stageId}`)),
      h('p', { class: 'facts' },
        h('span', { class: 'runs' }, `${num(any.runs)} runs at this target, ${num(any.censoredRuns)} never reached it ` +
          '(censored: they bound the optimum)')),
      criteriaTable(stage, fastest, skippedWhy, fastestSkipped, unit),
      stagePlot(stage, unit, { fastest, idPrefix }),
      perBatchTable(stage, fastest),
      stage ? details('Model comparison, improvement criterion', false, modelTable(stage)) : null,
      fastest ? details('Model comparison, fastest criterion', false, modelTable(fastest)) : null,
      skipped.length ? h('p', { class: 'muted small' }, `skipped: ${skipped.join('; ')}`) : null);
  }
  const s = stage.surge || {};
  const censored = stage.optima.filter((o) => o.censoring !== 'CENSORING_NONE').length;
  return h('section', attrs,
    h('h3', {}, `Stage ${stage.stageId} \u00b7 stage loss ${g4(stage.stageLoss)} `, tag, badge,
      h('span', { class: 'nowrap' }, h('span', { class: 'sub' }, ' \u00b7 surge supported: '),
        h('span', { class: `verdict ${verdictText(stage.verdict)}` }, verdictText(stage.verdict)))),
    h('p', { class: 'facts' },
      h('span', {}, `B_noise: ${bNoiseText(s.bNoiseKind, s.bNoise, s.bNoiseCi95, unit)}`),
      h('span', {}, `\u03b5_max: ${epsMaxText(s)}`),
      h('span', {}, `${stage.optima.length - censored} optima + ${censored} bounds, ${stage.probePoints} probe points`),
      h('span', {}, `identification: ${s.identification}, scale ${g4(s.scale)}`)),
    stagePlot(stage, unit, { idPrefix }),
    modelTable(stage),
    stage.skipped.length ? h('p', { class: 'muted small' }, `skipped: ${stage.skipped.join('; ')}`) : null);
}

// B_noise and eps_max against stage loss, with the drift fit when linear; the
// fastest criterion's stages and drift beside the improvement criterion's.
export function driftPlots(fit, unit) {
  const sets = [{ stages: fit.stages, drift: fit.drift || { mode: 'none' }, p: '', cls: '', shape: 'circle', tag: '' }];
  if ((fit.fastestStages || []).length) {
    sets[0].tag = ' (improvement)';
    sets.push({ stages: fit.fastestStages, drift: fit.fastestDrift || { mode: 'none' }, p: 'fastest-',
      cls: ' fastest', shape: 'square', size: 7, tag: ' (fastest)' });
  }
  const losses = sets.flatMap((set) => set.stages.map((s) => num(s.stageLoss)));
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
  const signal = fit.runs && fit.runs.signal === 'eval_loss' ? 'eval loss' : 'training loss';
  const runBased = fit.stages.some((s) => isRunEvidence(stageEvidence(s)));
  const make = (id, yLabel, title, pick, coef) => {
    const plot = new Plot({ id, width: 460, height: 300, title, yLabel,
      xLabel: runBased ? `target loss L (${signal}, log scale)` : 'stage loss L (training loss, log scale)' });
    for (const set of sets) {
      const d = set.drift;
      const dodge = set.p ? 1.015 : 1;
      const pts = [];
      const bounds = [];
      for (const s of set.stages) {
        const r = pick(s);
        const x = num(s.stageLoss) * dodge;
        if (r.kind === 'point') pts.push({ x, y: r.v, lo: r.lo, hi: r.hi, title: `stage ${s.stageId}${set.tag}` });
        if (r.kind === 'up' || r.kind === 'down') bounds.push({ x, y: r.v, dir: r.kind });
      }
      if (d.mode === 'linear') {
        const [c0, c1] = coef(d);
        plot.line(line(c0, c1), { series: `${set.p}drift`, cls: `model model-surge${set.cls}`,
          label: (id === 'drift-bnoise' ? `drift fit: B_noise \u221d L^(-1/\u03b1), \u03b1 = ${g4(d.alpha)} \u00b1 ${g4(d.alphaSe)}`
            : 'drift fit: ln \u03b5_max linear in ln L') + set.tag });
      }
      plot.points(pts, { series: `${set.p}stages`, cls: `optimum${set.cls}`, shape: set.shape, size: set.size,
        label: `stage fit \u00b1 95%${set.tag}` });
      if (bounds.length) plot.bounds(bounds, { series: `${set.p}bounds`, cls: `bound${set.cls}`, label: `bound only${set.tag}` });
    }
    return plot.render();
  };
  const bnoise = make('drift-bnoise', `B_noise (${unit}, log scale)`, 'B_noise vs stage loss', (s) => {
    const v = num(s.surge.bNoise);
    if (s.surge.bNoiseKind === 'B_NOISE_KIND_POINT') return { kind: 'point', v, lo: num(s.surge.bNoiseCi95.lo), hi: num(s.surge.bNoiseCi95.hi) };
    if (s.surge.bNoiseKind === 'B_NOISE_KIND_LOWER_BOUND') return { kind: 'up', v };
    if (s.surge.bNoiseKind === 'B_NOISE_KIND_UPPER_BOUND') return { kind: 'down', v };
    return { kind: 'none' };
  }, (d) => [d.c0, d.c1]);
  const epsmax = make('drift-epsmax', '\u03b5_max (peak LR, log scale)', '\u03b5_max vs stage loss', (s) => {
    const v = num(s.surge.epsMax);
    return Number.isFinite(v) ? { kind: 'point', v, lo: num(s.surge.epsMaxCi95.lo), hi: num(s.surge.epsMaxCi95.hi) } : { kind: 'none' };
  }, (d) => [d.d0, d.d1]);
  const plus = (c) => `${num(c) < 0 ? '\u2212' : '+'} ${g4(Math.abs(num(c)))}`;
  const text = sets.map((set) => {
    const d = set.drift;
    const over = runBased
      ? `target losses ${d.stageIds.map((id) => g4(num((set.stages.find((s) => s.stageId === id) || {}).stageLoss))).join(', ')}`
      : `stages ${d.stageIds.join(', ')}`;
    return d.mode === 'linear'
      ? `Drift${set.tag} over ${over}: ln B_noise = ${g4(d.c0)} ${plus(d.c1)} ln L (\u03b1 = ${g4(d.alpha)} \u00b1 ${g4(d.alphaSe)}); ln \u03b5_max = ${g4(d.d0)} ${plus(d.d1)} ln L.`
      : `Drift mode${set.tag}: ${d.mode} (a linear drift needs two or more stages with an identified peak).`;
  });
  return [...text.map((t) => h('p', { class: 'small' }, t)), h('div', { class: 'row' }, bnoise, epsmax)];
}

// Loss against step for each run with records (plain and full runs), with the
// stage losses as horizontal references.
// Runs named in the loss plot's legend; the others are drawn with a hover
// title only (a full-run grid has 100+ runs).
const kLossLegendRuns = 8;

// `signal`: the loss signal of run-based targets (eval_loss or smoothed_training_loss).
export function lossPlot(series, stages, signal = '') {
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
        { series: `stage-loss-${st.stageId}`, cls: 'ref',
          label: isRunEvidence(stageEvidence(st))
            ? `target loss ${g4(st.stageLoss)}${signal === 'eval_loss' ? ' (eval loss)' : ''}`
            : `stage ${st.stageId} loss ${g4(st.stageLoss)}` });
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
