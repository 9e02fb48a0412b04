// jobs.js: fills the job list (index.html) from /api/v1/jobs and each job's
// latest fit; refreshes every 10 s. With tokens, the list is the jobs of the
// token's tenant (api.js asks for the token).
import { api } from './api.js';
import { h, num, timeAgo, isoTime, verdictText, stageEvidence, evidenceText } from './format.js';

function fitStatus(fit) {
  if (fit.error) return h('span', { class: 'status bad', title: fit.error }, `no fit: ${fit.error}`);
  const verdicts = fit.stages.map((s) => verdictText(s.verdict));
  const evidence = [...new Set(fit.stages.flatMap((s) => stageEvidence(s).split('+')))].join('+');
  const aside = (fit.setAsideStages || []).length;
  return h('span', { class: 'status ok', 'data-evidence': evidence },
    `v${fit.version} · ${fit.stages.length} stage${fit.stages.length === 1 ? '' : 's'} from ${evidenceText(evidence)}` +
    `${(fit.fastestStages || []).length ? ' (both criteria)' : ''}${aside ? ` · ${aside} set aside` : ''}` +
    ` · surge supported: ${verdicts.join(' / ')}`);
}

async function load() {
  const tbody = document.querySelector('#jobs tbody');
  const error = document.getElementById('error');
  try {
    const { jobs } = await api.jobs();
    const fits = await Promise.all(jobs.map((j) => api.fit(j.name).catch((e) => ({ error: e.message, stages: [] }))));
    tbody.replaceChildren(...jobs.map((j, i) => h('tr', { 'data-job': j.name },
      h('td', {}, h('a', { href: `/jobs/${encodeURIComponent(j.name)}` }, j.name),
        j.description ? h('div', { class: 'muted' }, j.description) : null),
      h('td', {}, j.batchUnit === 'BATCH_UNIT_TOKENS' ? 'tokens' : 'examples'),
      h('td', { class: 'n' }, num(j.runCount).toLocaleString('en-US')),
      h('td', { class: 'n' }, num(j.recordCount).toLocaleString('en-US')),
      h('td', { title: isoTime(j.updateTimeUs) }, timeAgo(j.updateTimeUs)),
      h('td', {}, fitStatus(fits[i])))));
    if (!jobs.length) {
      tbody.replaceChildren(h('tr', {}, h('td', { colSpan: 6, class: 'muted' },
        'No jobs yet: stream records with the client or `surge import --job NAME file.csv`.')));
    }
    error.hidden = true;
    document.body.dataset.state = 'ready';
  } catch (e) {
    error.textContent = `cannot load jobs: ${e.message}`;
    error.hidden = false;
    document.body.dataset.state = 'error';
  }
}

// One load at a time: a load waiting for the sign-in form is not stacked.
let loading = null;
function refresh() {
  if (!loading) loading = load().finally(() => { loading = null; });
}

refresh();
setInterval(refresh, 10000);
