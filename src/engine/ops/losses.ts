/** (losses ops: in progress) */
export {};
