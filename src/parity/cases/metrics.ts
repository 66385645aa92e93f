/** Parity runners for the metrics family (work in progress: registers none yet). */
export {};
