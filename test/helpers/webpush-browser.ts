import { createDecipheriv, createECDH, hkdfSync, randomBytes } from 'node:crypto';

/**
 * The browser's side of Web Push, as a test plays it: the subscription's P-256 key pair and
 * 16-byte auth secret are made here, handed to Herald as PushSubscription.toJSON(), and
 * used to decrypt what the push service received (RFC 8291 over RFC 8188 aes128gcm).
 */
export class TestBrowser {
  private readonly ecdh = createECDH('prime256v1');
  readonly authSecret = randomBytes(16);
  readonly publicKey: Buffer;

  constructor() {
    this.publicKey = this.ecdh.generateKeys();
  }

  /** What pushManager.subscribe() resolves to, after toJSON(). */
  subscription(endpoint: string) {
    return {
      endpoint,
      expirationTime: null,
      keys: { p256dh: this.publicKey.toString('base64url'), auth: this.authSecret.toString('base64url') },
    };
  }

  /** Decrypts a push message body and parses the JSON the service worker would get. */
  decrypt(body: Buffer): Record<string, unknown> {
    return JSON.parse(this.decryptToText(body)) as Record<string, unknown>;
  }

  decryptToText(body: Buffer): string {
    // RFC 8188 §2.1: salt(16) ‖ rs(4) ‖ idlen(1) ‖ keyid(idlen) ‖ records.
    const salt = body.subarray(0, 16);
    const recordSize = body.readUInt32BE(16);
    const idLength = body[20];
    // RFC 8291 §4: keyid is the application server's ephemeral public key.
    const serverPublicKey = body.subarray(21, 21 + idLength);
    const records = body.subarray(21 + idLength);

    // RFC 8291 §3.3 and §3.4.
    const ecdhSecret = this.ecdh.computeSecret(serverPublicKey);
    const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), this.publicKey, serverPublicKey]);
    const ikm = Buffer.from(hkdfSync('sha256', ecdhSecret, this.authSecret, keyInfo, 32));
    const contentKey = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
    const baseNonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));

    const plaintexts: Buffer[] = [];
    for (let offset = 0, sequence = 0; offset < records.length; offset += recordSize, sequence++) {
      const record = records.subarray(offset, Math.min(offset + recordSize, records.length));
      // RFC 8188 §2.3: the nonce of record SEQ is the base nonce XOR SEQ (96-bit big-endian).
      const nonce = Buffer.from(baseNonce);
      nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ sequence) >>> 0, 8);
      const decipher = createDecipheriv('aes-128-gcm', contentKey, nonce);
      decipher.setAuthTag(record.subarray(record.length - 16));
      const padded = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
      // RFC 8188 §2: content ‖ delimiter (0x02 in the last record, 0x01 before) ‖ zero padding.
      let end = padded.length - 1;
      while (end >= 0 && padded[end] === 0) end--;
      const isLast = offset + recordSize >= records.length;
      if (padded[end] !== (isLast ? 2 : 1)) throw new Error(`record ${sequence} has no valid padding delimiter`);
      plaintexts.push(padded.subarray(0, end));
    }
    return Buffer.concat(plaintexts).toString('utf8');
  }
}
