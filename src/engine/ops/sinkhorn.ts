/** (sinkhorn ops: in progress) */
export {};
