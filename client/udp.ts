/** `@herald/client/udp`: the UDP receiver and the datagram format it speaks. */
export * from './udp-receiver.ts';
export * as udpProtocol from './udp-protocol.ts';
