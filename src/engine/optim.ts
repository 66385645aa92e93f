/** (Adam: in progress) */
export {};
