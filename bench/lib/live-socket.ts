import WebSocket from 'ws';

/**
 * Opens a device's live WebSocket and resolves once the server said "synced" (its empty
 * replay done: live from then on). Every frame, "synced" included, goes to `onFrame`.
 */
export function openLiveSocket(url: string, localAddress: string, onFrame: (data: Buffer) => void): Promise<WebSocket> {
  return new Promise<WebSocket>((resolve, reject) => {
    const socket = new WebSocket(url, { localAddress, perMessageDeflate: false });
    socket.once('error', reject);
    socket.on('message', onFrame);
    socket.on('message', function synced(data: Buffer) {
      if (data.indexOf('"type":"synced"') !== -1) {
        socket.off('message', synced);
        resolve(socket);
      }
    });
  });
}
