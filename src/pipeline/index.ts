/**
 * The platform-neutral pipeline of RD++: what `rdpp train`, `rdpp test`, `rdpp predict`, `rdpp export`
 * and the browser app do, as functions over data (image sources, teacher, checkpoint bytes) that report
 * through callbacks. Nothing here imports `node:*` modules, so that it bundles for the browser; files,
 * paths and PNG writing come in from src/platform (Node) or the app (browser) as functions and objects.
 */
export * from './calibrate.js';
export * from './checkpoint.js';
export * from './errors.js';
export * from './evaluate.js';
export * from './events.js';
export * from './images.js';
export * from './model.js';
export * from './teacher.js';
export * from './test-report.js';
export * from './test-run.js';
export * from './train-images.js';
export * from './train-setup.js';
