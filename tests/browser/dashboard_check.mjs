// Drives Debian's headless Chromium through puppeteer-core over the dashboard of a real apqd:
// the job page of a finished search must plot one point per stored candidate and draw its
// Pareto front through exactly the candidates the server marks on the front; the jobs, devices
// and predictors pages must list what the API lists. Screenshots go to OUT_DIR.
//
// env: DASHBOARD_URL, APQ_TOKEN, JOB_ID, OUT_DIR, CHROMIUM (default /usr/bin/chromium),
// HTML_JOB_ID and HTML_LABEL (a job whose label is HTML, which must show as text)
import {strict as assert} from 'node:assert';
import {mkdirSync} from 'node:fs';
import puppeteer from 'puppeteer-core';

const base = process.env.DASHBOARD_URL;
const token = process.env.APQ_TOKEN;
const jobId = process.env.JOB_ID;
const outDir = process.env.OUT_DIR;
for (const [name, value] of Object.entries({DASHBOARD_URL: base, APQ_TOKEN: token, JOB_ID: jobId,
                                            OUT_DIR: outDir,
                                            HTML_JOB_ID: process.env.HTML_JOB_ID,
                                            HTML_LABEL: process.env.HTML_LABEL})) {
  if (!value) throw new Error(`${name} is not set`);
}
mkdirSync(outDir, {recursive: true});

async function apiJson(path) {
  const response = await fetch(base + path, {headers: {Authorization: 'Bearer ' + token}});
  assert.equal(response.status, 200, `${path}: HTTP ${response.status}`);
  return response.json();
}

// What the server holds: every candidate of the job, and which are on its front.
async function storedCandidates() {
  const all = [];
  let pageToken = '';
  do {
    const query = new URLSearchParams({page_size: '1000'});
    if (pageToken) query.set('page_token', pageToken);
    const page = await apiJson(`/api/v1/jobs/${jobId}/candidates?${query}`);
    all.push(...page.candidates);
    pageToken = page.next_page_token;
  } while (pageToken);
  return all;
}

const unauthenticated = await fetch(`${base}/api/v1/jobs/${jobId}`);
assert.equal(unauthenticated.status, 401, 'the API must refuse a call without a token');

// The JSON API's filters and its refusals.
const labelled = await apiJson(`/api/v1/jobs?label=${encodeURIComponent(process.env.HTML_LABEL)}`);
assert.deepEqual(labelled.jobs.map((j) => j.id), [process.env.HTML_JOB_ID]);
const unlabelled = await apiJson('/api/v1/jobs?label=');
assert.deepEqual(unlabelled.jobs.map((j) => j.id), [jobId]);
assert.equal((await apiJson('/api/v1/jobs')).jobs.length, 2);
for (const [query, parameter] of [['state=bogus', 'state'], ['page_size=x', 'page_size'],
                                  ['colour=blue', 'colour']]) {
  const refused = await fetch(`${base}/api/v1/jobs?${query}`,
                              {headers: {Authorization: 'Bearer ' + token}});
  assert.equal(refused.status, 400, query);
  const body = await refused.json();
  assert.equal(body.error.code, 'INVALID_ARGUMENT');
  assert.ok(body.error.message.startsWith(parameter + ':'), body.error.message);
}
const missing = await fetch(`${base}/api/v1/jobs/job-999`,
                            {headers: {Authorization: 'Bearer ' + token}});
assert.equal(missing.status, 404);
const metrics = await fetch(`${base}/metrics`, {headers: {Authorization: 'Bearer ' + token}});
assert.equal(metrics.status, 200);
assert.match(await metrics.text(), /^apq_jobs\{state="succeeded"\} 2$/m);
assert.equal((await fetch(`${base}/metrics`)).status, 401, '/metrics needs a token');

const job = await apiJson(`/api/v1/jobs/${jobId}`);
assert.equal(job.state, 'JOB_STATE_SUCCEEDED');
const candidates = await storedCandidates();
const onFront = candidates.filter((c) => c.on_pareto_front).map((c) => Number(c.id)).sort(
    (a, b) => a - b);
assert.ok(candidates.length > 10, `a real search stores many candidates, got ${candidates.length}`);
assert.ok(onFront.length >= 2, `the front has ${onFront.length} members`);

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const failures = [];
try {
  const page = await browser.newPage();
  page.on('pageerror', (error) => failures.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // The page's own calls answered 401 on purpose (the last check) are logged by Chromium.
    if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) {
      failures.push(`console error: ${message.text()}`);
    }
  });
  await page.setViewport({width: 1200, height: 1400});

  // The job page, with the token in the fragment as a user would paste the link.
  await page.goto(`${base}/jobs/${jobId}#token=${encodeURIComponent(token)}`);
  await page.waitForSelector(`body[data-loaded="/jobs/${jobId}"]`, {timeout: 30000});
  const drawn = await page.evaluate(() => ({
    candidates: document.querySelectorAll('#plot circle.candidate').length,
    ids: [...document.querySelectorAll('#plot circle.candidate')].map((c) => Number(c.dataset.id)),
    fronts: document.querySelectorAll('#plot polyline.front').length,
    frontPoints: (document.querySelector('#plot polyline.front')?.getAttribute('points') || '')
                     .trim().split(/\s+/).filter(Boolean).length,
    budgets: document.querySelectorAll('#plot line.budget').length,
    best: document.querySelectorAll('#plot circle.best').length,
    state: document.getElementById('job-state')?.textContent,
    config: document.getElementById('best-config')?.textContent || '',
    fragmentKept: location.hash,
  }));
  assert.equal(drawn.candidates, candidates.length, 'one point per stored candidate');
  assert.deepEqual([...new Set(drawn.ids)].sort((a, b) => a - b),
                   candidates.map((c) => Number(c.id)).sort((a, b) => a - b),
                   'the points are the stored candidates');
  assert.equal(drawn.fronts, 1, 'the front is drawn');
  assert.equal(drawn.frontPoints, onFront.length,
               'the drawn front passes through the candidates the server puts on the front');
  assert.equal(drawn.budgets, 1, 'the budget line is drawn');
  assert.equal(drawn.best, 1, 'the best is circled');
  assert.equal(drawn.state, 'succeeded');
  assert.deepEqual(JSON.parse(drawn.config), JSON.parse(job.best.config_json),
                   'the best config is shown');
  assert.equal(drawn.fragmentKept, '', 'the token is taken out of the address bar');
  await page.screenshot({path: `${outDir}/dashboard_job.png`, fullPage: true});

  // The jobs list (the token stays in the tab's session).
  await page.goto(`${base}/`);
  await page.waitForSelector('body[data-loaded="/"]', {timeout: 30000});
  const listed = await page.$$eval('tr.job', (rows) => rows.map((r) => r.dataset.job));
  assert.ok(listed.includes(jobId), `the jobs page lists ${jobId}: ${listed}`);
  // A stored label holding HTML is shown as its text: nothing of it is parsed or run.
  const htmlJob = process.env.HTML_JOB_ID;
  const shown = await page.$eval(`tr[data-job="${htmlJob}"] td:nth-child(6)`, (cell) => ({
    text: cell.textContent,
    elements: cell.querySelectorAll('*').length,
  }));
  assert.equal(shown.text, process.env.HTML_LABEL, 'the label is shown as text');
  assert.equal(shown.elements, 0, 'no element was made from the label');
  assert.equal(await page.evaluate(() => document.body.dataset.injected), undefined,
               'no script of the label ran');
  await page.screenshot({path: `${outDir}/dashboard_jobs.png`, fullPage: true});

  // Devices: one row per stored table version.
  const devices = await apiJson('/api/v1/devices');
  const versions = devices.devices.reduce((n, d) => n + d.versions.length, 0);
  await page.goto(`${base}/devices`);
  await page.waitForSelector('body[data-loaded="/devices"]', {timeout: 30000});
  assert.equal(await page.$$eval('main tbody tr', (rows) => rows.length), versions);
  // Each version says what the device executes, as the API's declaration words it.
  const deviceRows = await page.$$eval('main tbody tr', (rows) => rows.map((r) => r.textContent));
  const localCpu = devices.devices.find((d) => d.name === 'local-cpu');
  const executes = localCpu.versions[0].precisions.summary;
  assert.ok(executes.startsWith('W8A8 or float'), executes);
  assert.ok(deviceRows.some((row) => row.startsWith('local-cpu') && row.includes(executes)),
            deviceRows.join('\n'));

  // Predictors: one table per space.
  const spaces = await apiJson('/api/v1/spaces');
  await page.goto(`${base}/predictors`);
  await page.waitForSelector('body[data-loaded="/predictors"]', {timeout: 30000});
  assert.equal(await page.$$eval('main h2', (headings) => headings.length), spaces.spaces.length);
  await page.screenshot({path: `${outDir}/dashboard_predictors.png`, fullPage: true});

  // Measurement runs: one row per run, as the API lists them.
  const runs = await apiJson('/api/v1/measurement_runs');
  assert.ok(runs.runs.length >= 1, 'the test started a measurement run');
  await page.goto(`${base}/measurements`);
  await page.waitForSelector('body[data-loaded="/measurements"]', {timeout: 30000});
  assert.equal(await page.$$eval('main tbody tr', (rows) => rows.length), runs.runs.length);
  const runRow = await page.$eval(`tr[data-run="${runs.runs[0].id}"]`, (row) => row.textContent);
  assert.ok(runRow.includes('succeeded') && runRow.includes('1/1'), runRow);
  await page.screenshot({path: `${outDir}/dashboard_measurements.png`, fullPage: true});

  // Without a token the page says so instead of showing data.
  await page.evaluate(() => sessionStorage.clear());
  await page.goto(`${base}/jobs/${jobId}`);
  await page.waitForSelector('body[data-loaded="error"]', {timeout: 30000});
  const alert = await page.$eval('.error', (box) => box.textContent);
  assert.match(alert, /UNAUTHENTICATED/);
} finally {
  await browser.close();
}
assert.deepEqual(failures, [], 'the pages ran without script errors');
console.log(`dashboard: ${candidates.length} candidates plotted, front of ${onFront.length}`);
