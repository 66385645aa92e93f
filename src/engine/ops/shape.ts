/** (shape ops: in progress) */
export {};
