export * from './config';
export * from './spec';
export * from './model';
export * from './trainer';
export { Adam, type AdamOptions } from './adam';
export { leakyRelu, linear, softplus } from './layers';
