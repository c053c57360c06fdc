// The apq dashboard: one page whose path picks the view. It reads only /api/v1/* and sends
// the token kept in this tab (from the URL fragment #token=... or the form) as a bearer
// header. Everything shown is built with DOM calls (textContent), never from HTML strings.
'use strict';

const TOKEN_KEY = 'apq_token';
const SVG_NS = 'http://www.w3.org/2000/svg';
const COSTS = {
  COST_METRIC_LATENCY: {field: 'latency_ms', budget: 'max_latency_ms', label: 'latency (ms)'},
  COST_METRIC_ENERGY: {field: 'energy_mj', budget: 'max_energy_mj', label: 'energy (mJ)'},
  COST_METRIC_SIZE: {field: 'size_mb', budget: 'max_size_mb', label: 'size (MB)'},
  COST_METRIC_BITOPS: {field: 'bitops', budget: 'max_bitops', label: 'BitOps'},
};
const ACTIVE_STATES = new Set(['JOB_STATE_QUEUED', 'JOB_STATE_RUNNING']);
const MAX_CANDIDATE_PAGES = 100;  // 100 pages of 1000: the most candidates one plot draws.
let refreshTimer = null;

(function takeTokenFromFragment() {
  const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
})();

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path) {
  const headers = {Accept: 'application/json'};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  const response = await fetch(path, {headers});
  let body = {};
  try {
    body = await response.json();
  } catch (ignored) {
    body = {};
  }
  if (!response.ok) {
    const error = body.error || {};
    throw new ApiError(response.status, error.code || String(response.status),
                       error.message || response.statusText);
  }
  return body;
}

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attributes) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  return node;
}

function shortEnum(name, prefix) {
  return (name || '').startsWith(prefix) ? name.slice(prefix.length).toLowerCase() : name;
}

function percent(fraction) {
  return fraction === undefined || fraction === null ? '-' : (100 * fraction).toFixed(2) + '%';
}

function number(value, digits) {
  if (value === undefined || value === null || value === '') return '-';
  const parsed = Number(value);
  if (!Number.isFinite(parsed)) return String(value);
  if (Math.abs(parsed) >= 1e6) return parsed.toExponential(3);
  return parsed.toFixed(digits === undefined ? 3 : digits);
}

function time(unixSeconds) {
  const seconds = Number(unixSeconds);
  return seconds > 0 ? new Date(seconds * 1000).toLocaleString() : '-';
}

function engineOf(job) {
  return job.engine || 'evolution';
}

function showError(view, error) {
  view.replaceChildren();
  const box = el('div', {class: 'error', role: 'alert'},
                 el('strong', {}, error.code || 'error'), ': ', error.message);
  if (error.status === 401) {
    box.append(el('p', {}, 'This server needs an API token: paste one above.'));
  }
  view.append(box);
}

function table(headers, rows) {
  const head = el('tr', {}, ...headers.map((h) => el('th', {}, h)));
  return el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows));
}

function progressBar(job) {
  const total = Number(job.total_generations) || 0;
  const done = Number(job.generations_done) || 0;
  const fraction = total > 0 ? Math.min(1, done / total) : (ACTIVE_STATES.has(job.state) ? 0 : 1);
  const bar = el('progress', {max: '1', value: String(fraction), class: 'progress'});
  return el('span', {}, bar, ` ${done}/${total || '?'}`);
}

// --- Jobs --------------------------------------------------------------------------------

async function showJobs(view) {
  const params = new URLSearchParams(location.search);
  const filters = el('form', {class: 'filters', id: 'job-filters'});
  for (const name of ['state', 'space', 'device', 'label']) {
    const input = name === 'state'
        ? el('select', {name},
             ...['', 'queued', 'running', 'succeeded', 'failed', 'cancelled'].map(
                 (s) => el('option', s === (params.get('state') || '') ? {value: s, selected: ''}
                                                                        : {value: s},
                           s || 'any state')))
        : el('input', {name, placeholder: name, value: params.get(name) || ''});
    filters.append(input);
  }
  filters.append(el('button', {type: 'submit'}, 'Filter'));
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [name, value] of new FormData(filters)) if (value) query.set(name, value);
    history.pushState(null, '', '/?' + query.toString());
    route();
  });
  const query = new URLSearchParams({page_size: '100'});
  for (const name of ['state', 'space', 'device', 'label']) {
    if (params.get(name)) query.set(name, params.get(name));
  }
  if (params.get('page_token')) query.set('page_token', params.get('page_token'));
  const listing = await api('/api/v1/jobs?' + query.toString());
  const jobs = listing.jobs || [];
  const rows = jobs.map((job) => el('tr', {class: 'job', 'data-job': job.id},
      el('td', {}, el('a', {href: '/jobs/' + encodeURIComponent(job.id)}, job.id)),
      el('td', {class: 'state ' + shortEnum(job.state, 'JOB_STATE_')},
         shortEnum(job.state, 'JOB_STATE_')),
      el('td', {}, engineOf(job)),
      el('td', {}, job.request ? job.request.space : ''),
      el('td', {}, job.request ? job.request.device : ''),
      el('td', {}, job.request ? job.request.label : ''),
      el('td', {}, progressBar(job)),
      el('td', {}, number(job.candidates_evaluated, 0)),
      el('td', {}, job.best && job.best.metrics ? percent(job.best.metrics.accuracy) : '-'),
      el('td', {}, time(job.created_unix_s))));
  view.replaceChildren(el('h1', {}, 'Jobs'), filters,
      jobs.length ? table(['job', 'state', 'engine', 'space', 'device', 'label', 'progress',
                           'candidates', 'best (predicted)', 'created'], rows)
                  : el('p', {class: 'empty'}, 'No jobs match.'));
  if (listing.next_page_token) {
    const next = new URLSearchParams(params);
    next.set('page_token', listing.next_page_token);
    view.append(el('p', {}, el('a', {href: '/?' + next.toString()}, 'Older jobs')));
  }
  if (jobs.some((job) => ACTIVE_STATES.has(job.state))) schedule(3000);
}

// --- One job -----------------------------------------------------------------------------

async function allCandidates(jobId) {
  const candidates = [];
  let token = '';
  for (let page = 0; page < MAX_CANDIDATE_PAGES; ++page) {
    const query = new URLSearchParams({page_size: '1000'});
    if (token) query.set('page_token', token);
    const listing = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}/candidates?${query}`);
    candidates.push(...(listing.candidates || []));
    token = listing.next_page_token;
    if (!token) return {candidates, complete: true};
  }
  return {candidates, complete: false};
}

// The Pareto front by ascending cost: every feasible point whose accuracy beats every cheaper
// one's (ties in cost: the more accurate first), as the server's search::ParetoFront.
function paretoFront(points) {
  const sorted = points.filter((p) => p.feasible)
                     .sort((a, b) => a.cost - b.cost || b.accuracy - a.accuracy || a.id - b.id);
  const front = [];
  let bestAccuracy = -Infinity;
  for (const point of sorted) {
    if (point.accuracy > bestAccuracy) {
      front.push(point);
      bestAccuracy = point.accuracy;
    }
  }
  return front;
}

function drawPlot(job, candidates, costKey) {
  const cost = COSTS[costKey];
  const budgets = (job.request && job.request.budgets) || {};
  const budget = budgets[cost.budget];
  const points = [];
  let unpriced = 0;
  for (const candidate of candidates) {
    const metrics = candidate.metrics || {};
    const x = Number(metrics[cost.field]);
    const y = Number(metrics.accuracy);
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      ++unpriced;
      continue;
    }
    points.push({id: Number(candidate.id), cost: x, accuracy: y, feasible: candidate.feasible,
                 measured: metrics.measured_accuracy});
  }
  const width = 760, height = 440, left = 70, right = 20, top = 20, bottom = 50;
  const plot = svg('svg', {id: 'plot', viewBox: `0 0 ${width} ${height}`, role: 'img',
                           'data-points': String(points.length),
                           'aria-label': `accuracy against ${cost.label}`});
  const xs = points.map((p) => p.cost).concat(budget !== undefined ? [Number(budget)] : []);
  const ys = points.map((p) => p.accuracy);
  if (!points.length) {
    const text = svg('text', {x: width / 2, y: height / 2, 'text-anchor': 'middle'});
    text.textContent = 'No candidate has this cost yet.';
    plot.append(text);
    return {plot, points, unpriced, front: []};
  }
  let [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
  let [yMin, yMax] = [Math.min(...ys), Math.max(...ys)];
  if (xMax === xMin) [xMin, xMax] = [xMin * 0.95, xMax * 1.05 + 1e-9];
  if (yMax === yMin) [yMin, yMax] = [yMin - 0.005, yMax + 0.005];
  const xPad = (xMax - xMin) * 0.04, yPad = (yMax - yMin) * 0.06;
  [xMin, xMax, yMin, yMax] = [xMin - xPad, xMax + xPad, yMin - yPad, yMax + yPad];
  const sx = (v) => left + (v - xMin) / (xMax - xMin) * (width - left - right);
  const sy = (v) => height - bottom - (v - yMin) / (yMax - yMin) * (height - top - bottom);
  plot.append(svg('rect', {x: left, y: top, width: width - left - right,
                           height: height - top - bottom, class: 'frame'}));
  for (let i = 0; i <= 5; ++i) {
    const xv = xMin + (xMax - xMin) * i / 5, yv = yMin + (yMax - yMin) * i / 5;
    const xt = svg('text', {x: sx(xv), y: height - bottom + 18, 'text-anchor': 'middle',
                            class: 'tick'});
    xt.textContent = number(xv, 3);
    const yt = svg('text', {x: left - 6, y: sy(yv) + 4, 'text-anchor': 'end', class: 'tick'});
    yt.textContent = (100 * yv).toFixed(1);
    plot.append(xt, yt);
  }
  const xLabel = svg('text', {x: (left + width - right) / 2, y: height - 10,
                              'text-anchor': 'middle'});
  xLabel.textContent = cost.label;
  const yLabel = svg('text', {x: 16, y: (top + height - bottom) / 2, 'text-anchor': 'middle',
                              transform: `rotate(-90 16 ${(top + height - bottom) / 2})`});
  yLabel.textContent = 'predicted accuracy (%)';
  plot.append(xLabel, yLabel);
  if (budget !== undefined) {
    const bx = sx(Number(budget));
    plot.append(svg('line', {x1: bx, x2: bx, y1: top, y2: height - bottom, class: 'budget',
                             'data-budget': String(budget)}));
  }
  for (const point of points) {
    const circle = svg('circle', {cx: sx(point.cost), cy: sy(point.accuracy), r: 3,
                                  class: 'candidate' + (point.feasible ? '' : ' infeasible'),
                                  'data-id': String(point.id)});
    const title = svg('title', {});
    title.textContent = `#${point.id}: ${percent(point.accuracy)} at ${number(point.cost)}` +
                        (point.measured !== undefined ? `, measured ${percent(point.measured)}`
                                                      : '');
    circle.append(title);
    plot.append(circle);
  }
  const front = paretoFront(points);
  if (front.length) {
    plot.append(svg('polyline', {
      class: 'front', 'data-points': String(front.length),
      points: front.map((p) => `${sx(p.cost).toFixed(2)},${sy(p.accuracy).toFixed(2)}`).join(' '),
    }));
  }
  const best = job.best;
  if (best && best.metrics && Number.isFinite(Number(best.metrics[cost.field]))) {
    plot.append(svg('circle', {cx: sx(Number(best.metrics[cost.field])),
                               cy: sy(Number(best.metrics.accuracy)), r: 8, class: 'best'}));
  }
  return {plot, points, unpriced, front};
}

function metricsTable(metrics) {
  const rows = [];
  const names = {accuracy: 'predicted accuracy', measured_accuracy: 'measured accuracy',
                 latency_ms: 'latency (ms)', energy_mj: 'energy (mJ)', size_mb: 'size (MB)',
                 bitops: 'BitOps'};
  for (const [field, label] of Object.entries(names)) {
    if (metrics[field] === undefined) continue;
    const value = field.endsWith('accuracy') ? percent(metrics[field]) : number(metrics[field]);
    rows.push(el('tr', {}, el('th', {}, label), el('td', {}, value)));
  }
  if ((metrics.modelled || []).length) {
    rows.push(el('tr', {}, el('th', {}, 'modelled'), el('td', {}, metrics.modelled.join(', '))));
  }
  return el('table', {class: 'metrics'}, el('tbody', {}, ...rows));
}

async function showJob(view, jobId) {
  const job = await api('/api/v1/jobs/' + encodeURIComponent(jobId));
  const {candidates, complete} = await allCandidates(jobId);
  const request = job.request || {};
  const costKey = sessionStorage.getItem('apq_cost_' + jobId) ||
      (COSTS[request.pareto_cost] ? request.pareto_cost : 'COST_METRIC_LATENCY');
  const picker = el('select', {id: 'cost-picker', 'aria-label': 'cost axis'},
      ...Object.entries(COSTS).map(([key, cost]) =>
          el('option', key === costKey ? {value: key, selected: ''} : {value: key}, cost.label)));
  picker.addEventListener('change', () => {
    sessionStorage.setItem('apq_cost_' + jobId, picker.value);
    route();
  });
  const {plot, points, unpriced, front} = drawPlot(job, candidates, costKey);
  const budgets = request.budgets || {};
  const summary = table(['state', 'engine', 'space', 'device', 'progress', 'candidates',
                         'rejected draws', 'elapsed (s)', 'table', 'predictor'], [el('tr', {},
      el('td', {class: 'state ' + shortEnum(job.state, 'JOB_STATE_'), id: 'job-state'},
         shortEnum(job.state, 'JOB_STATE_')),
      el('td', {}, engineOf(job)), el('td', {}, request.space), el('td', {}, request.device),
      el('td', {}, progressBar(job)), el('td', {}, number(job.candidates_evaluated, 0)),
      el('td', {}, number(job.rejected_draws, 0)), el('td', {}, number(job.elapsed_s, 1)),
      el('td', {}, job.table_version), el('td', {}, job.predictor_version))]);
  const budgetList = el('ul', {class: 'budgets'}, ...Object.entries(budgets).map(
      ([name, value]) => el('li', {}, `${name} = ${number(value)}`)));
  const plotNote = el('p', {class: 'note', id: 'plot-note'},
      `${points.length} of ${candidates.length} stored candidates plotted` +
      (unpriced ? ` (${unpriced} lack this cost)` : '') +
      (complete ? '' : ' (the first 100,000 only)') +
      `; the front holds ${front.length}.`);
  const parts = [el('h1', {}, 'Job ', el('span', {id: 'job-id'}, job.id)), summary,
                 el('h2', {}, 'Budgets'),
                 Object.keys(budgets).length ? budgetList : el('p', {}, 'None.'),
                 el('h2', {}, 'Candidates'), el('label', {}, 'Cost axis ', picker), plot,
                 plotNote];
  if (job.error) parts.splice(1, 0, el('div', {class: 'error', role: 'alert'}, job.error));
  const metrics = Object.entries(job.engine_metrics || {});
  if (metrics.length) {
    parts.push(el('h2', {}, 'Engine figures'),
               table(['figure', 'value'], metrics.map(([name, value]) =>
                   el('tr', {}, el('td', {}, name), el('td', {}, number(value, 4))))));
  }
  if (job.best) {
    let config = job.best.config_json;
    try {
      config = JSON.stringify(JSON.parse(config), null, 1);
    } catch (ignored) {
      // Shown as stored.
    }
    parts.push(el('h2', {}, 'Best configuration'), metricsTable(job.best.metrics || {}),
               el('pre', {id: 'best-config'}, config));
  }
  view.replaceChildren(...parts);
  if (ACTIVE_STATES.has(job.state)) schedule(2000);
}

// --- Devices and predictors --------------------------------------------------------------

async function showDevices(view) {
  const listing = await api('/api/v1/devices');
  const rows = [];
  for (const device of listing.devices || []) {
    for (const version of device.versions || []) {
      rows.push(el('tr', {},
          el('td', {}, device.name), el('td', {}, version.version),
          el('td', {}, shortEnum(version.format, 'TABLE_FORMAT_')),
          el('td', {}, number(version.entries, 0)), el('td', {}, time(version.uploaded_unix_s)),
          el('td', {}, (version.covered_spaces || []).join(', ') || '-'),
          el('td', {}, (version.modelled_spaces || []).join(', ') || '-'),
          el('td', {}, (version.precisions && version.precisions.summary) || '-'),
          el('td', {}, version.description)));
    }
  }
  view.replaceChildren(el('h1', {}, 'Devices'),
      table(['device', 'table version', 'format', 'entries', 'uploaded', 'covers',
             'prices with a model', 'runs', 'description'], rows));
}

async function showPredictors(view) {
  const spaces = await api('/api/v1/spaces');
  const parts = [el('h1', {}, 'Predictors')];
  for (const space of spaces.spaces || []) {
    const listing = await api('/api/v1/predictors?space=' + encodeURIComponent(space.name));
    const rows = (listing.predictors || []).map((p) => {
      const m = p.metrics || {};
      return el('tr', {},
          el('td', {}, p.version + (p.is_default ? ' (default)' : '')), el('td', {}, p.kind),
          el('td', {}, p.shipped ? 'shipped' : p.dataset), el('td', {}, m.heldout_records),
          el('td', {}, m.heldout_records ? number(100 * m.rmse, 2) : '-'),
          el('td', {}, m.heldout_records ? number(m.kendall_tau, 3) : '-'),
          el('td', {}, m.heldout_records ? number(m.pairwise_accuracy, 3) : '-'),
          el('td', {}, time(p.created_unix_s)));
    });
    parts.push(el('h2', {}, space.name),
               rows.length ? table(['version', 'kind', 'trained on', 'held-out records',
                                    'RMSE (points)', 'Kendall tau', 'pairwise accuracy',
                                    'created'], rows)
                           : el('p', {class: 'empty'}, 'No predictor.'));
  }
  view.replaceChildren(...parts);
}

// --- Measurement runs --------------------------------------------------------------------

async function showMeasurements(view) {
  const listing = await api('/api/v1/measurement_runs?page_size=200');
  const runs = listing.runs || [];
  const rows = runs.map((run) => {
    const total = Number(run.tasks_total) || 0;
    const done = Number(run.tasks_done) || 0;
    const bar = el('progress', {max: '1', value: String(total > 0 ? done / total : 0),
                                class: 'progress'});
    return el('tr', {'data-run': run.id},
        el('td', {}, run.id), el('td', {}, shortEnum(run.state, 'JOB_STATE_')),
        el('td', {}, bar, ` ${done}/${total}`), el('td', {}, number(run.tasks_failed, 0)),
        el('td', {}, number(run.tasks_held, 0)), el('td', {}, run.dataset),
        el('td', {}, run.space), el('td', {}, run.method), el('td', {}, run.split),
        el('td', {}, run.launcher || '-'), el('td', {}, time(run.created_unix_s)),
        el('td', {}, run.error || ''));
  });
  view.replaceChildren(el('h1', {}, 'Measurement runs'),
      rows.length ? table(['run', 'state', 'measured', 'failed', 'in hand', 'dataset', 'space',
                           'method', 'split', 'workers', 'created', 'error'], rows)
                  : el('p', {class: 'empty'}, 'No measurement run.'));
  if (runs.some((run) => ACTIVE_STATES.has(run.state))) schedule(2000);
}

// --- Routing -----------------------------------------------------------------------------

function schedule(milliseconds) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => route(true), milliseconds);
}

async function route(refresh) {
  clearTimeout(refreshTimer);
  const view = document.getElementById('view');
  const path = location.pathname;
  try {
    if (path === '/' || path === '/jobs') {
      await showJobs(view);
    } else if (path.startsWith('/jobs/')) {
      await showJob(view, decodeURIComponent(path.slice('/jobs/'.length)));
    } else if (path === '/devices') {
      await showDevices(view);
    } else if (path === '/predictors') {
      await showPredictors(view);
    } else if (path === '/measurements') {
      await showMeasurements(view);
    } else {
      view.replaceChildren(el('p', {}, 'No such page.'));
    }
    document.body.dataset.loaded = path;
  } catch (error) {
    showError(view, error);
    document.body.dataset.loaded = 'error';
    if (refresh && error.status >= 500) schedule(5000);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  const form = document.getElementById('token-form');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const input = document.getElementById('token-input');
    if (input.value.trim()) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = '';
    route();
  });
  document.getElementById('token-clear').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    route();
  });
  window.addEventListener('popstate', () => route());
  route();
});
