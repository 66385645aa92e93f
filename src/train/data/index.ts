/** The data side of training and evaluation: dataset discovery, decoding, reference-exact resizing, masks. */

export {
  type LoadBatchOptions,
  LoadError,
  type LoadedBatch,
  type LoadedSample,
  type LoadFailure,
  loadBatch,
  loadMask,
  loadSample,
  maskGray,
  prepareImage,
  prepareSample,
} from './dataset.js';
export {
  applyOrientation,
  decodeImage,
  decodeImage8,
  exifOrientation,
  type Image8,
  ImageError,
  type ImageFormat,
  type PilMode,
  sniffFormat,
} from './decode.js';
export {
  baseName,
  compareNames,
  type Dataset,
  DatasetError,
  type DiscoverOptions,
  discoverDataset,
  type FileSystem,
  IMAGE_EXTENSIONS,
  isImageName,
  joinPath,
  type Layout,
  type Sample,
  stemOf,
  unreadableImageExtension,
  unreadableReason,
} from './layouts.js';
export {
  type BadFile,
  type CheckedSplit,
  checkData,
  type DataCheck,
  DataCheckError,
  listBadFiles,
  type SplitToCheck,
  smallImagesWarning,
} from './precheck.js';
export { pilBilinearCoeffs, pilResizeBilinear8, pilResizeNearest8, resizeLinear } from './resize.js';
