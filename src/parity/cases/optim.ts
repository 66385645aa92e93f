/** Parity runners for the optim family (work in progress: registers none yet). */
export {};
