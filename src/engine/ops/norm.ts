/** (norm ops: in progress) */
export {};
