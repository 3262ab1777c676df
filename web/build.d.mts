export const GZIP_BUDGET: number;
/** Bundles the pages into web/dist and returns the manifest it wrote. */
export function build(): Promise<{
  pages: Record<string, { html: string; script: string; style: string; scriptGzipBytes: number }>;
  assets: Record<string, string>;
  serviceWorker: string;
}>;
