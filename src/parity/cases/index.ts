/**
 * Registers every op family's parity runners. Each family keeps its runners in its own file here.
 */
import './conv.js';
import './norm.js';
import './cosine.js';
import './sinkhorn.js';
import './resize.js';
import './optim.js';
import './metrics.js';
