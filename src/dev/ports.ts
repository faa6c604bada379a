// Free loopback ports for servers the demo and the tests start (one function with the worker's scratch servers).
export { freePort, isPortFree } from '../drivers/freePort';
