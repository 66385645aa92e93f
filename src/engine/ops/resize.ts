/** (resize ops: in progress) */
export {};
