// Public API of the evaluation suite (see shared/eval/README.md for the report contract).
export * from './table';
export { aucRoc, prAuc, rocCurve, metricsAt, bestF1Threshold, type ThresholdMetrics } from './auc';
export { trainGbdt, trainGbdtBinned, fitBinner, applyBinner, predictRaw, type GbdtModel, type GbdtOptions, type Binned } from './gbdt';
export { trainLogistic, type LogisticModel, type LogisticOptions } from './logistic';
export {
  ksComplement, tvComplement, jsDistance, columnJsDistance, columnShape, pearson, correlationSimilarity,
  contingency, contingencySimilarity, cramersV, columnPairs, mmdRbf, type PairResult,
} from './fidelity';
export { privacyMetrics, exactCopyRate, type PrivacyReport, type PrivacyOptions } from './privacy';
export { utilityMetrics, fitAndScore, positiveClassOf, type UtilityReport, type ClassifierMetrics } from './utility';
export { knnDistances, fitDistanceEncoder, encodeForDistance } from './nn';
export {
  evaluate, detectionAuc, getPath, splitTable, REPORT_CONTRACT_KEYS, UTILITY_CONTRACT_KEYS, REPORT_VERSION,
  type Report, type EvaluateInput, type EvaluateOptions,
} from './report';
export { renderHtml } from './html';
export { loadEvaluationInput, readSchemaFile, type LoadOptions, type CsvOpener } from './load';
export { writeReport, evaluateFiles, type EvaluateFilesOptions } from './run';
