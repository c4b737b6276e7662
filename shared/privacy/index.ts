export * from './rdp';
export * from './calibrate';
export * from './secure-noise';
export * from './clip';
export * from './skellam';
export * from './summary-noise';
