// format.js: number and text formatting shared by the dashboard pages. The
// JSON API uses protobuf's JSON mapping: int64 values and NaN/Infinity come
// as strings, so every number goes through num().
export function num(v) {
  if (v === undefined || v === null || v === '') return NaN;
  return typeof v === 'number' ? v : Number(v);
}

// Four significant digits, as `surge advise` prints them (%.4g); '-' if not finite.
export function g4(v) {
  v = num(v);
  if (!Number.isFinite(v)) return Number.isNaN(v) ? '-' : (v > 0 ? '\u221e' : '-\u221e');
  if (v === 0) return '0';
  const e = Math.floor(Math.log10(Math.abs(v)));
  if (e < -4 || e >= 4) {
    const [m, x] = v.toExponential(3).split('e');
    return `${String(Number(m))}e${x[0] === '-' ? '-' : '+'}${x.slice(1).padStart(2, '0')}`;
  }
  return String(Number(v.toPrecision(4)));
}

export function interval(ci) {
  if (!ci) return '';
  return `[${g4(ci.lo)}, ${g4(ci.hi)}]`;
}

export function timeAgo(us) {
  const t = num(us) / 1000;
  if (!Number.isFinite(t) || t <= 0) return '-';
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86400).toFixed(1)} d ago`;
}

export function isoTime(us) {
  const t = num(us) / 1000;
  return Number.isFinite(t) && t > 0 ? new Date(t).toISOString().replace('.000Z', 'Z') : '';
}

export function verdictText(v) {
  return { VERDICT_YES: 'yes', VERDICT_NO: 'no', VERDICT_UNDECIDED: 'undecided' }[v] || 'undecided';
}

export function unitText(unit) {
  return unit === 'BATCH_UNIT_TOKENS' ? 'tokens' : 'examples';
}

// "B_noise = 40.1 [32, 50] examples", or the bound, or "unknown".
export function bNoiseText(kind, value, ci, unit) {
  switch (kind) {
    case 'B_NOISE_KIND_POINT': return `${g4(value)} ${interval(ci)} ${unit}`;
    case 'B_NOISE_KIND_LOWER_BOUND': return `\u2265 ${g4(value)} ${unit} (bound only)`;
    case 'B_NOISE_KIND_UPPER_BOUND': return `\u2264 ${g4(value)} ${unit} (bound only)`;
    default: return 'unknown';
  }
}

// The evidence kinds of StageFit.evidence / Advice.evidence ("+"-joined).
const EVIDENCE_LABELS = { plain_runs: 'plain runs', full_runs: 'full runs', probes: 'probes',
  measured: 'imported optima' };

// A stage's evidence; fits from before StageFit.evidence existed: probes or imported optima.
export function stageEvidence(stage) {
  return stage.evidence || (num(stage.probePoints) > 0 ? 'probes' : 'measured');
}

export function evidenceText(evidence) {
  if (!evidence) return 'none';
  return evidence.split('+').map((e) => EVIDENCE_LABELS[e] || e).join(' + ');
}

// Training runs (plain, full) rather than short-horizon probes or imported optima.
export function isRunEvidence(evidence) {
  return /plain_runs|full_runs/.test(evidence || '');
}

// StageFit.criterion ('improvement', 'fastest', '' = improvement) or Advice.criterion (enum).
export function criterionName(c) {
  return c === 'fastest' || c === 'CRITERION_FASTEST' ? 'fastest' : 'improvement';
}

export const CRITERION_TEXT = {
  improvement: 'improvement: the paper\'s, the largest loss fall over the k steps after the target',
  fastest: 'fastest: the fewest steps to the target loss',
};

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return node;
}

// Replaces a node's children, skipping null/undefined/false (conditional parts).
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}
