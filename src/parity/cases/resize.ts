/** Parity runners for the resize family (work in progress: registers none yet). */
export {};
