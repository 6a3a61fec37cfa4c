/**
 * Every image of a result as bytes, whatever its delivery: inline data as it is,
 * stored images (DELIVERY_STORED) and URL images downloaded with a plain HTTP GET
 * (Node's fetch), bounded in bytes and time. A stored image's bytes are checked
 * against the size its result states. Errors never show a link's query: its
 * signature is the credential.
 */
import type { ImagesResult, StoredImage } from "./gen/imagegate/v1/results_pb.js";

/** One image at most (an image model's largest is tens of MiB). */
export const MAX_IMAGE_BYTES = 64 * 1024 * 1024;
/** One download at most, first byte to last. */
export const FETCH_TIMEOUT_MS = 60_000;

/** A stored or URL image that could not be downloaded (an expired link is HTTP 403). */
export class FetchError extends Error {
  override name = "FetchError";
}

export interface FetchOptions {
  maxBytes?: number;
  timeoutMs?: number;
}

/**
 * Each image of `result` as bytes, in order. A streaming RPC's result after
 * {@link collect} (or generateStream...) has its bytes inline too; one straight
 * off a stream's last message has none, and this throws.
 */
export async function imageBytes(result: ImagesResult, options: FetchOptions = {}): Promise<Uint8Array[]> {
  const images: Uint8Array[] = [];
  for (const [index, image] of result.images.entries()) {
    switch (image.content.case) {
      case "data":
        images.push(image.content.value);
        break;
      case "stored":
        images.push(await storedBytes(image.content.value, options));
        break;
      case "url":
        images.push(await download(image.content.value, options.maxBytes ?? MAX_IMAGE_BYTES, options));
        break;
      default:
        throw new FetchError(`image ${index} has no bytes: on a streaming RPC they come in ImageChunk slices`);
    }
  }
  return images;
}

/** One stored image by its link. */
export async function storedBytes(stored: StoredImage, options: FetchOptions = {}): Promise<Uint8Array> {
  const size = Number(stored.sizeBytes);
  const limit = options.maxBytes ?? MAX_IMAGE_BYTES;
  if (size > limit) {
    throw new FetchError(`cannot download ${stored.object}: ${size} bytes, over ${limit}`);
  }
  const data = await download(stored.url, size, options);
  if (data.length !== size) {
    throw new FetchError(`cannot download ${stored.object}: ${data.length} bytes arrived of ${size}`);
  }
  return data;
}

async function download(url: string, limit: number, options: FetchOptions): Promise<Uint8Array> {
  const shown = url.split("?", 1)[0];
  if (!/^https?:\/\//.test(url)) {
    throw new FetchError(`cannot download ${shown}: not an http(s) URL`);
  }
  const signal = AbortSignal.timeout(options.timeoutMs ?? FETCH_TIMEOUT_MS);
  try {
    const response = await fetch(url, { signal });
    if (response.status !== 200) {
      await response.body?.cancel();
      const hint = response.status === 403 ? " (an expired or altered link?)" : "";
      throw new FetchError(`cannot download ${shown}: HTTP ${response.status}${hint}`);
    }
    const declared = Number(response.headers.get("content-length") ?? "NaN");
    if (declared > limit) {
      await response.body?.cancel();
      throw new FetchError(`cannot download ${shown}: larger than ${limit} bytes`);
    }
    const pieces: Uint8Array[] = [];
    let received = 0;
    for await (const piece of response.body ?? []) {
      received += piece.length;
      if (received > limit) {
        throw new FetchError(`cannot download ${shown}: larger than ${limit} bytes`);
      }
      pieces.push(piece);
    }
    const data = new Uint8Array(received);
    let at = 0;
    for (const piece of pieces) {
      data.set(piece, at);
      at += piece.length;
    }
    return data;
  } catch (error) {
    if (error instanceof FetchError) throw error;
    const reason = signal.aborted ? "timed out" : "the request failed";
    throw new FetchError(`cannot download ${shown}: ${reason}`);
  }
}
