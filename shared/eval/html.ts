// Self-contained HTML rendering of a Report: inline SVG only (no scripts, fonts or CDN), so the
// file can be mailed or archived and opened offline.
import type { Report } from './report';

const REAL = '#1f77b4';
const SYN = '#ff7f0e';
const EXTRA = ['#2ca02c', '#d62728', '#9467bd', '#8c564b'];

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
function f3(x: number | null | undefined): string {
  return x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(3);
}
function pct(x: number): string {
  return Number.isNaN(x) ? 'n/a' : (x * 100).toFixed(2) + '%';
}

/** Verdict colour for a score where `good` and `bad` bound the range (either direction). */
function tone(x: number, good: number, bad: number): string {
  if (Number.isNaN(x)) return 'na';
  const t = (x - bad) / (good - bad);
  return t >= 0.75 ? 'good' : t >= 0.4 ? 'warn' : 'bad';
}

function card(title: string, value: string, cls: string, hint: string): string {
  return `<div class="card ${cls}"><div class="t">${esc(title)}</div><div class="v">${esc(value)}</div><div class="h">${esc(hint)}</div></div>`;
}

/** Grouped bars: real vs synthetic frequencies per bin/category. */
function barOverlay(title: string, labels: string[], a: number[], b: number[], w = 300, h = 150): string {
  const pad = { l: 34, r: 6, t: 18, b: 28 };
  const iw = w - pad.l - pad.r;
  const ih = h - pad.t - pad.b;
  const max = Math.max(1e-12, ...a, ...b);
  const n = labels.length;
  const bw = iw / Math.max(1, n);
  let bars = '';
  for (let i = 0; i < n; i++) {
    const x = pad.l + i * bw;
    const ha = (a[i]! / max) * ih;
    const hb = (b[i]! / max) * ih;
    bars += `<rect x="${(x + bw * 0.08).toFixed(1)}" y="${(pad.t + ih - ha).toFixed(1)}" width="${(bw * 0.42).toFixed(1)}" height="${ha.toFixed(1)}" fill="${REAL}"><title>${esc(labels[i]!)} real ${pct(a[i]!)}</title></rect>`;
    bars += `<rect x="${(x + bw * 0.5).toFixed(1)}" y="${(pad.t + ih - hb).toFixed(1)}" width="${(bw * 0.42).toFixed(1)}" height="${hb.toFixed(1)}" fill="${SYN}" opacity="0.85"><title>${esc(labels[i]!)} synthetic ${pct(b[i]!)}</title></rect>`;
  }
  const first = labels[0] ?? '';
  const last = labels[n - 1] ?? '';
  const axis = `<line x1="${pad.l}" y1="${pad.t + ih}" x2="${w - pad.r}" y2="${pad.t + ih}" stroke="#999"/>` +
    `<text x="${pad.l}" y="${h - 14}" font-size="9">${esc(first.slice(0, 14))}</text>` +
    `<text x="${w - pad.r}" y="${h - 14}" font-size="9" text-anchor="end">${esc(last.slice(0, 14))}</text>` +
    `<text x="${pad.l - 3}" y="${pad.t + 8}" font-size="9" text-anchor="end">${(max * 100).toFixed(0)}%</text>`;
  return `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img"><text x="${pad.l}" y="12" font-size="11" font-weight="600">${esc(title.slice(0, 40))}</text>${bars}${axis}</svg>`;
}

/** Lines in the unit square (ROC curves) with the chance diagonal. */
function curves(title: string, series: { name: string; fpr: number[]; tpr: number[]; auc?: number }[], size = 260): string {
  const pad = 30;
  const s = size - pad - 8;
  const X = (v: number): string => (pad + v * s).toFixed(1);
  const Y = (v: number): string => (8 + (1 - v) * s).toFixed(1);
  let body = `<rect x="${pad}" y="8" width="${s}" height="${s}" fill="none" stroke="#bbb"/>` +
    `<line x1="${X(0)}" y1="${Y(0)}" x2="${X(1)}" y2="${Y(1)}" stroke="#bbb" stroke-dasharray="4 3"/>` +
    `<text x="${pad + s / 2}" y="${size + 4}" font-size="10" text-anchor="middle">false-positive rate</text>` +
    `<text x="10" y="${8 + s / 2}" font-size="10" transform="rotate(-90 10 ${8 + s / 2})" text-anchor="middle">true-positive rate</text>`;
  series.forEach((c, i) => {
    const col = [REAL, SYN, ...EXTRA][i % 6]!;
    const pts = c.fpr.map((x, k) => `${X(x)},${Y(c.tpr[k]!)}`).join(' ');
    body += `<polyline points="${pts}" fill="none" stroke="${col}" stroke-width="2"/>`;
    body += `<rect x="${pad + s - 120}" y="${8 + s - 14 - 14 * (series.length - 1 - i)}" width="10" height="10" fill="${col}"/>` +
      `<text x="${pad + s - 106}" y="${8 + s - 5 - 14 * (series.length - 1 - i)}" font-size="10">${esc(c.name)}${c.auc !== undefined ? ' ' + f3(c.auc) : ''}</text>`;
  });
  return `<figure><svg width="${size}" height="${size + 10}" viewBox="0 0 ${size} ${size + 10}" role="img">${body}</svg><figcaption>${esc(title)}</figcaption></figure>`;
}

/** Overlaid histograms of two samples on shared bins. */
function histograms(title: string, a: number[], b: number[], names: [string, string]): string {
  const all = [...a, ...b].filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (all.length === 0) return '';
  const lo = all[0]!;
  const hi = all[Math.floor(all.length * 0.99)] ?? all[all.length - 1]!;
  const bins = 30;
  const w = (hi - lo) / bins || 1;
  const hist = (v: number[]): number[] => {
    const h = new Array<number>(bins).fill(0);
    for (const x of v) if (Number.isFinite(x)) h[Math.min(bins - 1, Math.max(0, Math.floor((x - lo) / w)))]!++;
    return h.map((c) => c / (v.length || 1));
  };
  const labels = Array.from({ length: bins }, (_, i) => (lo + i * w).toPrecision(3));
  return `<figure>${barOverlay(title, labels, hist(a), hist(b), 420, 190)}<figcaption><span style="color:${REAL}">■</span> ${esc(names[0])} &nbsp; <span style="color:${SYN}">■</span> ${esc(names[1])}</figcaption></figure>`;
}

/** Heatmap of |association_real - association_synthetic| for every column pair. */
function pairHeatmap(r: Report): string {
  const names = r.fidelity.columns.map((c) => c.name);
  const n = names.length;
  if (n < 2) return '<p>Only one column: no pairs.</p>';
  const idx = new Map(names.map((x, i) => [x, i]));
  const cell = Math.max(6, Math.min(22, Math.floor(520 / n)));
  const lab = 90;
  const size = lab + n * cell;
  let body = '';
  for (const p of r.fidelity.pairs) {
    const i = idx.get(p.a)!;
    const j = idx.get(p.b)!;
    const diff = Math.abs(p.real - p.synthetic);
    const v = Math.min(1, diff / 0.5); // saturate at 0.5 difference
    const col = `rgb(255,${Math.round(255 * (1 - v))},${Math.round(255 * (1 - v))})`;
    const tip = `${p.a} × ${p.b}: ${p.method} real ${f3(p.real)} synthetic ${f3(p.synthetic)} (score ${f3(p.score)})`;
    for (const [a, b] of [[i, j], [j, i]] as const) {
      body += `<rect x="${lab + b * cell}" y="${lab + a * cell}" width="${cell - 1}" height="${cell - 1}" fill="${col}"><title>${esc(tip)}</title></rect>`;
    }
  }
  for (let i = 0; i < n; i++) {
    body += `<rect x="${lab + i * cell}" y="${lab + i * cell}" width="${cell - 1}" height="${cell - 1}" fill="#ddd"/>`;
    if (cell >= 8) {
      const fs = Math.min(10, cell - 1);
      body += `<text x="${lab - 3}" y="${lab + i * cell + cell * 0.75}" font-size="${fs}" text-anchor="end">${esc(names[i]!.slice(0, 14))}</text>`;
      body += `<text x="${lab + i * cell + cell * 0.75}" y="${lab - 3}" font-size="${fs}" transform="rotate(-90 ${lab + i * cell + cell * 0.75} ${lab - 3})">${esc(names[i]!.slice(0, 14))}</text>`;
    }
  }
  return `<figure><svg width="${size}" height="${size}" viewBox="0 0 ${size} ${size}" role="img">${body}</svg><figcaption>|association(real) − association(synthetic)| per pair (Pearson ρ for numeric pairs, Cramér's V otherwise); white = equal, red ≥ 0.5 apart. Hover a cell for values.</figcaption></figure>`;
}

export function renderHtml(r: Report): string {
  const u = r.utility;
  const p = r.privacy;
  const fid = r.fidelity;
  const cards = [
    card('Column shapes', f3(fid.columnShapes), tone(fid.columnShapes, 0.95, 0.7), 'KS/TV complement, 1 = identical marginals'),
    card('Column pairs', f3(fid.columnPairs), tone(fid.columnPairs, 0.95, 0.7), 'correlation / contingency similarity'),
    card('Detection AUC', f3(fid.detectionAuc), tone(fid.detectionAuc, 0.55, 0.9), '0.5 = real and synthetic indistinguishable'),
    ...(u
      ? [
          card('TSTR AUC (GBDT)', f3(u.gbdt.tstr.auc), tone(u.gbdt.trtr.auc - u.gbdt.tstr.auc, 0.01, 0.1), `TRTR ${f3(u.gbdt.trtr.auc)}`),
          card('TSTR AUC (logistic)', f3(u.logistic.tstr.auc), tone(u.logistic.trtr.auc - u.logistic.tstr.auc, 0.01, 0.1), `TRTR ${f3(u.logistic.trtr.auc)}`),
        ]
      : []),
    card('Exact copies', pct(p.exactCopyRate), tone(p.exactCopyRate - p.holdoutExactCopyRate, 0, 0.01), `holdout baseline ${pct(p.holdoutExactCopyRate)}`),
    card('DCR 5th percentile', f3(p.dcr.synToTrainP5), tone(p.dcr.holdoutToTrainP5 > 0 ? p.dcr.synToTrainP5 / p.dcr.holdoutToTrainP5 : 1, 0.9, 0.4), `holdout baseline ${f3(p.dcr.holdoutToTrainP5)}; far below it = near-copies`),
    card('Closer to train', f3(p.dcr.shareCloserToTrain), tone(p.dcr.shareCloserToTrain, 0.52, 0.7), '0.5 ideal: no closer to train than to unseen data'),
    card('MIA AUC (distance)', f3(p.mia.distanceAuc), tone(p.mia.distanceAuc, 0.52, 0.65), '0.5 = attacker cannot tell members'),
    card('MIA AUC (density)', f3(p.mia.densityAuc), tone(p.mia.densityAuc, 0.52, 0.65), 'DOMIAS-style density ratio'),
  ].join('');

  const colRows = fid.columns
    .map((c) => `<tr><td>${esc(c.name)}</td><td>${c.kind}</td><td>${c.metric}</td><td class="${tone(c.shape, 0.95, 0.7)}">${f3(c.shape)}</td><td>${f3(c.jsDistance)}</td></tr>`)
    .join('');
  const overlays = r.plots.columns.map((c) => barOverlay(c.name, c.labels, c.real, c.synthetic)).join('');

  const metricRow = (name: string, m: { auc: number; prAuc: number; precision: number; recall: number; f1: number; threshold: number }): string =>
    `<tr><td>${esc(name)}</td><td>${f3(m.auc)}</td><td>${f3(m.prAuc)}</td><td>${f3(m.precision)}</td><td>${f3(m.recall)}</td><td>${f3(m.f1)}</td><td>${f3(m.threshold)}</td></tr>`;
  const roc = r.plots.utilityRoc;
  const utilHtml = u
    ? `<p>Target <b>${esc(u.target)}</b>, positive class <b>${esc(u.positiveClass)}</b> (${u.holdoutPositives} of ${u.holdoutRows} holdout rows). Thresholds maximise F1 on a validation split of each model's training data; the holdout is only scored.</p>
<table><tr><th>model / setting</th><th>AUC-ROC</th><th>PR-AUC</th><th>precision</th><th>recall</th><th>F1</th><th>threshold</th></tr>
${metricRow('GBDT train-real test-real (TRTR)', u.gbdt.trtr)}${metricRow('GBDT train-synthetic test-real (TSTR)', u.gbdt.tstr)}${metricRow(`GBDT real + ${u.augmentation.addedSyntheticPositives} synthetic positives`, u.gbdt.augmented)}
${metricRow('logistic TRTR', u.logistic.trtr)}${metricRow('logistic TSTR', u.logistic.tstr)}</table>
<p>Augmentation vs real alone (GBDT): ΔAUC ${f3(u.augmentation.deltaAuc)}, ΔPR-AUC ${f3(u.augmentation.deltaPrAuc)}, ΔF1 ${f3(u.augmentation.deltaF1)}.</p>
<div class="row">${curves('GBDT on the holdout', [
        { name: 'TRTR', ...roc['gbdt.trtr']!, auc: u.gbdt.trtr.auc },
        { name: 'TSTR', ...roc['gbdt.tstr']!, auc: u.gbdt.tstr.auc },
        { name: 'augmented', ...roc['gbdt.augmented']!, auc: u.gbdt.augmented.auc },
      ])}${curves('Logistic regression on the holdout', [
        { name: 'TRTR', ...roc['logistic.trtr']!, auc: u.logistic.trtr.auc },
        { name: 'TSTR', ...roc['logistic.tstr']!, auc: u.logistic.tstr.auc },
      ])}${curves('Detection (real vs synthetic, 3-fold CV)', [{ name: 'detector', ...r.plots.detectionRoc, auc: fid.detectionAuc }])}</div>`
    : `<p>No target given (<code>--target</code>): utility not evaluated.</p><div class="row">${curves('Detection (real vs synthetic, 3-fold CV)', [{ name: 'detector', ...r.plots.detectionRoc, auc: fid.detectionAuc }])}</div>`;

  const warn = r.warnings.length ? `<div class="warnbox"><b>Warnings</b><ul>${r.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul></div>` : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>fedsynth evaluation report</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
.meta{color:#666;font-size:12px}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border-radius:8px;padding:10px 12px;min-width:150px;border:1px solid #ddd;border-left-width:6px}
.card .t{font-size:12px;color:#555}.card .v{font-size:24px;font-weight:700}.card .h{font-size:11px;color:#777}
.card.good{border-left-color:#2ca02c}.card.warn{border-left-color:#f0ad4e}.card.bad{border-left-color:#d62728}.card.na{border-left-color:#aaa}
td.good{color:#1a7f1a}td.warn{color:#b5770b}td.bad{color:#c21f1f;font-weight:600}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:6px}.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
figure{margin:0}figcaption{font-size:12px;color:#555;max-width:520px}.warnbox{background:#fff6e0;border:1px solid #f0ad4e;padding:6px 12px;border-radius:6px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
</style></head><body>
<h1>Synthetic data evaluation</h1>
<div class="meta">generated ${esc(r.generatedAt)} · real (train) ${r.inputs.realRows} rows · holdout ${r.inputs.holdoutRows} · synthetic ${r.inputs.syntheticRows} · ${r.inputs.columns.length} columns evaluated${r.inputs.excluded.length ? ` · excluded (id/pii): ${esc(r.inputs.excluded.join(', '))}` : ''}</div>
<div class="cards">${cards}</div>${warn}
<h2>Fidelity</h2>
<p>Column shapes ${f3(fid.columnShapes)} · column pairs ${f3(fid.columnPairs)} · mean Jensen-Shannon distance ${f3(fid.meanJsDistance)} · MMD² (RBF) ${fid.mmdRbf.toExponential(2)} · detection AUC ${f3(fid.detectionAuc)} (score ${f3(fid.detectionScore)}).</p>
<div class="legend"><span style="background:${REAL}"></span>real (train)<span style="background:${SYN}"></span>synthetic</div>
<div class="grid">${overlays}</div>
<div class="row">${pairHeatmap(r)}<div><table><tr><th>column</th><th>kind</th><th>metric</th><th>shape</th><th>JS dist.</th></tr>${colRows}</table></div></div>
<h2>Utility</h2>${utilHtml}
<h2>Privacy</h2>
<table><tr><th>metric</th><th>synthetic</th><th>holdout baseline</th></tr>
<tr><td>exact copies of a train row</td><td>${pct(p.exactCopyRate)}</td><td>${pct(p.holdoutExactCopyRate)}</td></tr>
<tr><td>DCR to train, 5th percentile</td><td>${f3(p.dcr.synToTrainP5)}</td><td>${f3(p.dcr.holdoutToTrainP5)}</td></tr>
<tr><td>DCR to train, median</td><td>${f3(p.dcr.synToTrainMedian)}</td><td>${f3(p.dcr.holdoutToTrainMedian)}</td></tr>
<tr><td>NNDR median (nearest / 2nd nearest)</td><td>${f3(p.nndr.syntheticMedian)}</td><td>${f3(p.nndr.holdoutMedian)}</td></tr>
<tr><td>share closer to train than to holdout (0.5 ideal)</td><td>${f3(p.dcr.shareCloserToTrain)}</td><td>—</td></tr>
<tr><td>membership inference AUC, distance attack</td><td>${f3(p.mia.distanceAuc)}</td><td>0.5</td></tr>
<tr><td>membership inference AUC, density-ratio attack</td><td>${f3(p.mia.densityAuc)}</td><td>0.5</td></tr></table>
<p class="meta">${esc(p.sampling.note)}</p>
<div class="row">${histograms('Distance to closest train record', r.plots.dcrSynthetic, r.plots.dcrHoldout, ['synthetic → train', 'holdout → train'])}
${curves('Membership inference (train members vs holdout non-members)', [
    { name: 'distance', ...r.plots.miaDistanceRoc, auc: p.mia.distanceAuc },
    { name: 'density ratio', ...r.plots.miaDensityRoc, auc: p.mia.densityAuc },
  ])}</div>
<h2>Run</h2><p class="meta">timings (s): ${esc(Object.entries(r.timings).map(([k, v]) => `${k} ${v}`).join(' · '))}</p>
</body></html>
`;
}
