import { importPKCS8, SignJWT, type CryptoKey } from 'jose';

// APNs: re-sign no more often than every 20 minutes and at least every 60; an iat older
// than an hour is rejected with ExpiredProviderToken.
const PROVIDER_TOKEN_LIFETIME_MS = 50 * 60 * 1000;
/** A token refused as expired is signed again only when it is older than this (concurrent refusals sign once). */
const RESIGN_AFTER_REFUSAL_MS = 60_000;

/**
 * The APNs provider token: the ES256 JWT {alg, kid}{iss, iat} signed with the .p8 key,
 * sent as `authorization: bearer …` on every request. One signing serves every waiting
 * push: APNs answers TooManyProviderTokenUpdates when the token changes too often.
 */
export class ProviderToken {
  /** The imported signing key; rejects when the PEM is not a PKCS#8 P-256 key. */
  readonly key: Promise<CryptoKey>;
  /** `header` (the authorization header's value) is set once the signing has finished. */
  private current?: { signedAt: number; header?: string };

  constructor(
    keyPem: string,
    private readonly keyId: string,
    private readonly teamId: string,
  ) {
    this.key = importPKCS8(keyPem, 'ES256');
    // An unusable key is reported by whoever awaits `key` (at start), not as an unhandled rejection.
    this.key.catch(() => {});
  }

  /** The authorization header's value when the token is signed and still fresh. */
  header(): string | undefined {
    const current = this.current;
    if (current?.header !== undefined && Date.now() - current.signedAt < PROVIDER_TOKEN_LIFETIME_MS) return current.header;
    return undefined;
  }

  /**
   * Signs a new token, re-signed every 50 minutes, unless a signing is already under way or
   * the token is fresh. `signed` is called once it can be used, `failed` when it cannot be made.
   */
  sign(signed: () => void, failed: (error: Error) => void): void {
    const now = Date.now();
    if (this.current && now - this.current.signedAt < PROVIDER_TOKEN_LIFETIME_MS) return;
    const signing: { signedAt: number; header?: string } = { signedAt: now };
    this.current = signing;
    this.key
      .then((key) =>
        new SignJWT({})
          .setProtectedHeader({ alg: 'ES256', kid: this.keyId })
          .setIssuer(this.teamId)
          .setIssuedAt(Math.floor(now / 1000))
          .sign(key),
      )
      .then(
        (jwt) => {
          signing.header = `bearer ${jwt}`;
          signed();
        },
        (error: Error) => {
          if (this.current === signing) this.current = undefined;
          failed(error);
        },
      );
  }

  /** APNs refused the token as expired (ExpiredProviderToken): the next push signs a new one. */
  refused(): void {
    if (this.current && Date.now() - this.current.signedAt > RESIGN_AFTER_REFUSAL_MS) this.current = undefined;
  }
}
