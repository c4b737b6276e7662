export * from './config';
export * from './spec';
export * from './model';
export * from './trainer';
export { Adam, type AdamOptions } from './adam';
export { labelCrossEntropy, leakyRelu, linear, softplus } from './layers';
export {
  clipFactors,
  DEFAULT_CLASSIFIER_CLIP_SHARE,
  discriminatorDeltas,
  discriminatorForwardWithMasks,
  dpDropoutMasks,
  dpDiscriminatorGradients,
  expectedPacks,
  nsLogitGradients,
  packSample,
  parseDpSgdOptions,
  perExampleSquaredNorms,
  poissonSample,
  recordSensitivity,
  weightedGradientSum,
  type DpGradientOptions,
  type DpGradientResult,
  type DpSgdOptions,
} from './dp-sgd';
