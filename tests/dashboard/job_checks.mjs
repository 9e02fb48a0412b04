// The job page of the 2-stage probe sweep (scripts/gen_probe_sweep.py)
// against its fit read over gRPC (`surge fit --json`): per stage one circle
// and one error bar per measured optimum, one arrow per censored optimum, one
// curve per fitted model, the band and the B_noise marker, the model table and
// the axis labels; the drift, loss and B_simple plots; the advice box against
// `surge advise --json` for two inputs. Shared by dashboard_test.mjs (no
// tokens) and dashboard_tokens_test.mjs (the same page behind a token).
// `cli(...args)`: runs the surge CLI (with the token where there is one) and
// returns its stdout; `check(name, ok, detail)`: records one result.
export async function checkProbeJobPage(page, { fit, job, cli, check }) {
  check('page shows the settled fit version',
    await page.getAttribute('body', 'data-fit-version') === String(fit.version));

  for (const stage of fit.stages) {
    const plot = page.locator(`[data-plot="stage-${stage.stageId}"]`);
    const points = stage.optima.filter((o) => o.censoring === 'CENSORING_NONE').length;
    const bounds = stage.optima.length - points;
    const models = stage.models.filter((m) => m.fitted && m.curve.length > 0).length;
    const drawnPoints = await plot.locator('g[data-series="optima"] circle').count();
    const drawnBars = await plot.locator('g[data-series="optima"] line.err').count();
    const drawnBounds = await plot.locator('g[data-series="bounds"] path.bound-mark').count();
    const drawnCurves = await plot.locator('g[data-series^="model-"] path').count();
    const band = await plot.locator('g[data-series="surge-band"] path').count();
    const marker = await plot.locator('g[data-series="b-noise"] line').count();
    check(`stage ${stage.stageId}: one circle per measured optimum`, drawnPoints === points && points >= 3,
      `${drawnPoints} drawn, ${points} in the fit`);
    check(`stage ${stage.stageId}: error bars on every optimum`, drawnBars === 3 * points, `${drawnBars} bar lines`);
    check(`stage ${stage.stageId}: one arrow per censored optimum`, drawnBounds === bounds, `${drawnBounds} drawn, ${bounds} in the fit`);
    check(`stage ${stage.stageId}: one curve per fitted model`, drawnCurves === models && models >= 2,
      `${drawnCurves} drawn, ${models} fitted`);
    check(`stage ${stage.stageId}: surge 95% band and B_noise marker`, band === 1 && marker === 1);
    const rows = await page.locator(`[data-stage="${stage.stageId}"] table.models tbody tr`).count();
    check(`stage ${stage.stageId}: model table has every model`, rows === stage.models.length, `${rows}`);
    const smoothRow = page.locator(`[data-stage="${stage.stageId}"] table.models tbody tr[data-model="smooth"]`);
    check(`stage ${stage.stageId}: the smooth curve has a row and no law weight`,
      (await smoothRow.count()) === 1 && (await smoothRow.locator('td.law-weight').textContent()) === '-');
    const labels = await plot.locator('text.axis-label').allTextContents();
    check(`stage ${stage.stageId}: axes labelled with units`,
      labels.length === 2 && /batch size B \(examples/.test(labels[0]) && /learning rate/.test(labels[1]), labels.join(' / '));
  }
  const driftPoints = await page.locator('[data-plot="drift-bnoise"] g[data-series="stages"] circle').count();
  const identified = fit.stages.filter((s) => s.surge.bNoiseKind === 'B_NOISE_KIND_POINT').length;
  check('drift plot: one B_noise point per identified stage', driftPoints === identified, `${driftPoints}/${identified}`);
  check('drift plot: drift line when the drift is linear',
    (await page.locator('[data-plot="drift-bnoise"] g[data-series="drift"] path').count()) === (fit.drift.mode === 'linear' ? 1 : 0));
  check('loss plot: the base run\'s curve', (await page.locator('[data-plot="loss"] g[data-series="loss-base"] path').count()) === 1);
  check('B_simple plot: one line per series',
    (await page.locator('[data-plot="b-simple"] g[data-series^="b-simple-"] path').count()) === fit.noiseScale.length &&
    fit.noiseScale.length > 0);

  // --- the advice box against the CLI ---
  for (const [batch, step] of [['256', '1000'], ['48', '']]) {
    await page.fill('#advice-batch', batch);
    await page.fill('#advice-step', step);
    await page.click('#advice-go');
    await page.waitForSelector('#advice-result[data-state="ready"]');
    await page.waitForFunction((b) => document.querySelector('#advice-result').textContent.includes(`B = ${b} `), batch);
    const shown = await page.getAttribute('#advice-lr', 'data-lr');
    const text = await page.textContent('#advice-lr');
    const cliArgs = ['advise', '--job', job, '--batch', batch, '--json', ...(step ? ['--step', step] : [])];
    const fromCli = JSON.parse(cli(...cliArgs));
    check(`advice B=${batch} step=${step || 'latest'} equals surge advise`,
      Number(shown) === fromCli.lr && Number(text) === Number(fromCli.lr.toPrecision(4)),
      `page ${text} (${shown}), CLI ${fromCli.lr}`);
    const curveText = await page.textContent('#advice-curve-ci');
    check(`advice B=${batch}: prediction and curve-only intervals both shown`,
      /curve alone \[/.test(curveText) && fromCli.lrCurveCi95 &&
      fromCli.lrCi95.lo <= fromCli.lrCurveCi95.lo && fromCli.lrCurveCi95.hi <= fromCli.lrCi95.hi,
      curveText);
  }
}

// In the page (page.waitForFunction): a fit newer than version `v` is drawn
// and the live indicator names it (set once the redraw, advice included, is done).
export function newFitShown(v) {
  const now = Number(document.body.dataset.fitVersion);
  return now > v && document.getElementById('live').textContent.includes(`fit v${now}`);
}
