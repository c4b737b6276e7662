// Deterministic parameter layout. The order and names here ARE the wire layout of weights and
// updates: coordinator and banks agree on it by construction from (config, spans).
import { classifierSpan, conditionalSpans, validateSpans, type ModelConfig, type OutputSpan } from './config';

export type InitKind = 'he' | 'glorot' | 'zeros' | 'ones';

export interface ParamSpec {
  name: string;
  shape: number[];
  /** false for batch-norm running statistics: weights that travel with the model but get no gradient. */
  trainable: boolean;
  init: InitKind;
}

export interface ModelDims {
  outputDim: number;
  condDim: number;
  /** Generator input width: noise + conditional vector. */
  genInputDim: number;
  /** Discriminator input width after packing: pac · (outputDim + condDim). */
  discInputDim: number;
}

export function modelDims(config: ModelConfig, spans: readonly OutputSpan[]): ModelDims {
  const outputDim = validateSpans(spans);
  const condDim = conditionalSpans(config, spans).reduce((s, c) => s + c.dim, 0);
  return { outputDim, condDim, genInputDim: config.noiseDim + condDim, discInputDim: config.pac * (outputDim + condDim) };
}

function dense(prefix: string, fanIn: number, fanOut: number, init: InitKind): ParamSpec[] {
  return [
    { name: `${prefix}/kernel`, shape: [fanIn, fanOut], trainable: true, init },
    { name: `${prefix}/bias`, shape: [fanOut], trainable: true, init: 'zeros' },
  ];
}

/**
 * All parameters, generator first (`G/…`) then discriminator (`D/…`).
 *  mlp   G: G/i = Linear → ReLU;  G/out = Linear
 *  ctgan G: G/i = Linear → BatchNorm (G/i/bn/{gamma,beta,movingMean,movingVar}) → ReLU, output
 *           concatenated with the block input (residual, as CTGAN); G/out = Linear
 *  D (both): D/i = Linear → LeakyReLU → Dropout;  D/out = Linear to 1 logit (no batch norm: it
 *           would mix examples, breaking PacGAN and per-example DP clipping)
 *  C (only with config.classifierColumn): C/i = Linear → LeakyReLU; C/out = Linear to the label's
 *           categories. Input: one row without the label's span (no cond vector: it can name the label).
 */
export function modelSpec(config: ModelConfig, spans: readonly OutputSpan[]): ParamSpec[] {
  const d = modelDims(config, spans);
  const out: ParamSpec[] = [];
  let width = d.genInputDim;
  config.generatorDims.forEach((h, i) => {
    out.push(...dense(`G/${i}`, width, h, 'he'));
    if (config.architecture === 'ctgan') {
      out.push(
        { name: `G/${i}/bn/gamma`, shape: [h], trainable: true, init: 'ones' },
        { name: `G/${i}/bn/beta`, shape: [h], trainable: true, init: 'zeros' },
        { name: `G/${i}/bn/movingMean`, shape: [h], trainable: false, init: 'zeros' },
        { name: `G/${i}/bn/movingVar`, shape: [h], trainable: false, init: 'ones' },
      );
      width += h;
    } else {
      width = h;
    }
  });
  out.push(...dense('G/out', width, d.outputDim, 'glorot'));
  width = d.discInputDim;
  config.discriminatorDims.forEach((h, i) => {
    out.push(...dense(`D/${i}`, width, h, 'he'));
    width = h;
  });
  out.push(...dense('D/out', width, 1, 'glorot'));
  const label = classifierSpan(config, spans);
  if (label) {
    width = d.outputDim - label.dim;
    config.classifierDims.forEach((h, i) => {
      out.push(...dense(`C/${i}`, width, h, 'he'));
      width = h;
    });
    out.push(...dense('C/out', width, label.dim, 'glorot'));
  }
  return out;
}
