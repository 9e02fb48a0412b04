// api.js: the dashboard's client of the JSON API (/api/v1). Errors come back
// as {"code", "message"} with an HTTP status; they are thrown as ApiError.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

export async function getJson(path) {
  const res = await fetch(path, { headers: { Accept: 'application/json' } });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch (e) {
    throw new ApiError(res.status, 'INTERNAL', `not JSON from ${path}: ${text.slice(0, 200)}`);
  }
  if (!res.ok) throw new ApiError(res.status, body.code || 'UNKNOWN', body.message || text);
  return body;
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
