import { CLOSE, Refusal } from './refusal.ts';

/** How many sockets an endpoint takes; a socket beyond a limit is closed with 4429. */
export interface Limits {
  /** Sockets one station may hold open on this endpoint. */
  perStation?: number;
  /** Sockets one user may hold open on this endpoint. */
  perUser?: number;
  /**
   * Live connections one user may hold on this node over every channel (WebSocket, UDP,
   * Web3MQ: the hub's count). A user can log in any number of stations, so a station limit
   * alone does not bound one user's connections.
   */
  perUserAllChannels?: number;
}

/** Open sockets by key (a station or a user). */
export class Tally {
  private readonly counts = new Map<string, number>();

  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  add(key: string): void {
    this.counts.set(key, this.count(key) + 1);
  }

  remove(key: string): void {
    const left = this.count(key) - 1;
    if (left > 0) this.counts.set(key, left);
    else this.counts.delete(key);
  }
}

/** The sockets one endpoint holds open, counted as its limits need. */
export class EndpointTally {
  private readonly stations: Tally | undefined;
  private readonly users: Tally | undefined;

  constructor(
    private readonly limits: Limits,
    /** The live connections of a user on this node, all channels. */
    private readonly allChannelsOf: (userId: string) => number,
  ) {
    this.stations = limits.perStation === undefined ? undefined : new Tally();
    this.users = limits.perUser === undefined ? undefined : new Tally();
  }

  /** Why one more socket of this station and user is refused, if it is. */
  refusal(userId: string, station: string): Refusal | undefined {
    const { perStation, perUser, perUserAllChannels } = this.limits;
    if (this.stations && this.stations.count(station) >= perStation!) {
      return new Refusal(CLOSE.tooManyConnections, `at most ${perStation} connections per station`);
    }
    if (this.users && this.users.count(userId) >= perUser!) {
      return new Refusal(CLOSE.tooManyConnections, `at most ${perUser} connections per user`);
    }
    if (perUserAllChannels !== undefined && this.allChannelsOf(userId) >= perUserAllChannels) {
      return new Refusal(CLOSE.tooManyConnections, `at most ${perUserAllChannels} live connections per user`);
    }
    return undefined;
  }

  add(userId: string, station: string): void {
    this.stations?.add(station);
    this.users?.add(userId);
  }

  remove(userId: string, station: string): void {
    this.stations?.remove(station);
    this.users?.remove(userId);
  }
}
