export * from './backend';
export * from './fast-gradients';
export * from './named';
export * from './random';
