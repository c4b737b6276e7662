// The consortium's model configuration, from the operator's settings and the schema.
import type { ConsortiumSchema } from '../shared/data/schema';
import { DEFAULT_MODEL_CONFIG, defaultModelConfig, type ModelConfig } from '../shared/model';

/**
 * The settings over the architecture's defaults, plus an auxiliary classifier of the schema's target
 * (CTAB-GAN; see ModelConfig.classifierColumn) unless the settings give it weight 0.
 */
export function consortiumModelConfig(schema: ConsortiumSchema, model: Partial<ModelConfig>): ModelConfig {
  const weight = model.classifierWeight ?? DEFAULT_MODEL_CONFIG.classifierWeight;
  return defaultModelConfig({ ...(schema.target && weight > 0 ? { classifierColumn: schema.target } : {}), ...model });
}
