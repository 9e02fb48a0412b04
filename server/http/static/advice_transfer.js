// advice_transfer.js: the advice box's optional reference, "my tuned LR at
// batch B0" (optionally the step it was tuned at). Reads the three fields into
// the /advice query parameters ref_lr, ref_batch_size, ref_step (the server
// checks them and names the field in its 400), and renders Advice.transfer:
// the user's LR moved to B by the job's fitted curve,
// lr0 · eps_opt(B, L) / eps_opt(B0, L0) (docs/fitting.md section 7b), beside
// the linear and square-root rules and the job's own optimum at B0.
import { h, num, g4, interval } from './format.js';

const $ = (id) => document.getElementById(id);
const FIELDS = ['advice-ref-lr', 'advice-ref-batch', 'advice-ref-step'];

// The filled reference fields as query parameters ({} when all are empty).
// A lone LR or batch size is sent as it is: the server's answer says to give
// both. A lone step would be ignored by the server, so it is refused here.
export function referenceParams() {
  const [lr, batch, step] = FIELDS.map((id) => $(id).value.trim());
  if (step && !lr && !batch) {
    throw new Error('tuned at step: give my tuned LR and the batch size it was tuned at too (ref_step needs ref_lr and ref_batch_size)');
  }
  const params = {};
  if (lr) params.ref_lr = lr;
  if (batch) params.ref_batch_size = batch;
  if (step) params.ref_step = step;
  return params;
}

export function clearReference() {
  for (const id of FIELDS) $(id).value = '';
}

// Advice.transfer when the answer has one, else null.
export function transferOf(advice) {
  return advice.transfer && advice.transfer.reference ? advice.transfer : null;
}

// True when the reference chose the stage (a step or loss of its own and no
// step in the request): the advice is then asked at the reference's loss.
export function referenceSetsStage(advice) {
  const t = transferOf(advice);
  return Boolean(t && advice.step === undefined && (t.reference.step !== undefined || t.reference.loss !== undefined));
}

function flagTexts(t, a, unit) {
  const out = [];
  if (t.referenceOutsideData) {
    out.push(['referenceOutsideData', `B0 = ${g4(t.reference.batchSize)} ${unit} lies outside the batch sizes the job measured ` +
      'at that stage: the curve is extrapolated there']);
  }
  if (t.referenceExtrapolatedInLoss) {
    out.push(['referenceExtrapolatedInLoss', `the reference's loss ${g4(t.referenceLoss)} lies outside the fitted stages`]);
  }
  if (t.referenceOtherStage) {
    out.push(['referenceOtherStage', `tuned at another loss (${g4(t.referenceLoss)}) than the advice (${g4(a.loss)}): ` +
      'the two stages\' errors add, so the interval is wider']);
  }
  return out;
}

// The transfer's answer: the moved LR with its interval and ratio, the two
// rules of thumb beside it, the job's own level at B0, and the flags.
export function transferBlock(a, unit) {
  const t = transferOf(a);
  const r = t.reference;
  const lr0 = num(r.lr);
  const b0 = num(r.batchSize);
  const b = num(a.batchSize);
  const fitted = num(t.fittedLrAtReference);
  const tuned = r.step !== undefined ? ` at step ${r.step}` : r.loss !== undefined ? ` at loss ${g4(r.loss)}` : '';
  const flags = flagTexts(t, a, unit);
  const row = (id, name, lr, factor, extra = null) => h('tr', { id, 'data-lr': String(lr) },
    h('th', {}, name), h('td', { class: 'n' }, h('span', { class: 'v' }, g4(lr)), extra), h('td', { class: 'n' }, `\u00d7${g4(factor)}`));
  return h('div', { id: 'advice-transfer', class: 'transfer' },
    h('div', { class: 'lr' }, 'your \u03b5 = ', h('output', { id: 'transfer-lr', 'data-lr': String(t.lr) }, g4(t.lr)),
      h('span', { class: 'ci', id: 'transfer-ci', 'data-lo': String(t.lrCi95.lo), 'data-hi': String(t.lrCi95.hi) },
        ` 95% ${interval(t.lrCi95)}`),
      h('span', { class: 'ratio', id: 'transfer-ratio', 'data-ratio': String(t.ratio) }, ` \u00d7${g4(t.ratio)} your LR`)),
    h('p', { class: 'small' }, `Your LR ${g4(lr0)}, tuned at B0 = ${g4(b0)} ${unit}${tuned}, moved to B = ${g4(b)} ${unit} ` +
      `by the job's fitted curve: \u00d7${g4(t.ratio)} = \u03b5_opt(B) / \u03b5_opt(B0) at loss ${g4(t.referenceLoss)}` +
      (t.referenceOtherStage ? ` \u2192 ${g4(a.loss)}` : '') + '. It keeps your level and takes only the shape from the fit; ' +
      'the interval is the ratio\'s own (errors common to both batch sizes cancel).'),
    h('table', { class: 'grid-table transfer-rules' },
      h('thead', {}, h('tr', {}, h('th', {}, 'from your LR'), h('th', { class: 'n' }, `LR at B = ${g4(b)}`),
        h('th', { class: 'n' }, '\u00d7 your LR'))),
      h('tbody', {},
        row('transfer-fitted', 'the job\'s fitted curve', t.lr, t.ratio, h('span', { class: 'ci' }, ` ${interval(t.lrCi95)}`)),
        row('transfer-linear', 'linear rule, lr0 \u00b7 B/B0', t.linearRuleLr, b / b0),
        row('transfer-sqrt', 'square-root rule, lr0 \u00b7 \u221a(B/B0)', t.sqrtRuleLr, Math.sqrt(b / b0)))),
    h('p', { class: 'small', id: 'transfer-fitted-at-ref', 'data-lr': String(fitted) },
      `The job's own optimum at B0 = ${g4(b0)}: ${g4(fitted)}; your LR is \u00d7${g4(lr0 / fitted)} the job's level there.`),
    flags.length
      ? h('ul', { id: 'transfer-flags', class: 'flags transfer-flags', 'data-flags': flags.map(([k]) => k).join(',') },
        flags.map(([k, text]) => h('li', { 'data-flag': k }, text)))
      : h('p', { id: 'transfer-flags', class: 'small muted', 'data-flags': '' },
        'reference within the job\'s batch sizes, at the advice\'s stage: no flags'));
}
