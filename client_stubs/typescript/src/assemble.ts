/**
 * Image slices (ImageChunk) back into whole images, checking that nothing is lost.
 *
 * The contract sends each image's slices in order with explicit offsets; a slice
 * whose offset is not where the image currently ends (a gap, an overlap) means the
 * stream is broken, and writing the bytes anyway would make a file that looks fine
 * until it is opened. So any mismatch is a StreamProtocolError.
 */
import { create } from "@bufbuild/protobuf";
import {
  GeneratedImageSchema,
  ImagesResultSchema,
  type ImageChunk,
  type ImagesResult,
} from "./gen/imagegate/v1/results_pb.js";

/** The streamed answer broke the contract (gap, duplicate, missing image...). */
export class StreamProtocolError extends Error {
  override name = "StreamProtocolError";
}

/** One image put back together from its slices. */
export interface AssembledImage {
  /** Index of the final image in ImagesResult.images (partials: the image previewed, else 0). */
  imageIndex: number;
  /** Set for a partial (preview) image, undefined for a final one. */
  partialImageIndex: number | undefined;
  data: Uint8Array;
}

interface OpenImage {
  parts: Uint8Array[];
  length: number;
}

function describe(imageIndex: number, partial: number | undefined): string {
  return partial === undefined ? `image ${imageIndex}` : `partial image ${partial} of image ${imageIndex}`;
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  const data = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    data.set(part, at);
    at += part.length;
  }
  return data;
}

/** Feeds slices in arrival order; returns each image when its last slice arrives. */
export class ImageAssembler {
  private readonly open = new Map<string, OpenImage>();
  private readonly finals = new Map<number, Uint8Array>();

  feed(chunk: ImageChunk): AssembledImage | undefined {
    const partial = chunk.partialImageIndex;
    const key = `${chunk.imageIndex}/${partial ?? "final"}`;
    if (partial === undefined && this.finals.has(chunk.imageIndex)) {
      throw new StreamProtocolError(`${describe(chunk.imageIndex, partial)} received again after it was complete`);
    }
    const image = this.open.get(key) ?? { parts: [], length: 0 };
    if (chunk.offset !== BigInt(image.length)) {
      throw new StreamProtocolError(
        `${describe(chunk.imageIndex, partial)}: slice at offset ${chunk.offset}, expected ${image.length}`,
      );
    }
    image.parts.push(chunk.data);
    image.length += chunk.data.length;
    if (!chunk.last) {
      this.open.set(key, image);
      return undefined;
    }
    this.open.delete(key);
    const data = concat(image.parts, image.length);
    if (partial === undefined) {
      this.finals.set(chunk.imageIndex, data);
    }
    return { imageIndex: chunk.imageIndex, partialImageIndex: partial, data };
  }

  /**
   * At the result message: checks every image is complete and returns `result`
   * with each final image's bytes in `images[i].content` (the streaming RPCs leave
   * it empty), so a streamed result reads like a unary one. URL and stored images stay
   * as sent ({@link imageBytes} fetches them).
   */
  finish(result: ImagesResult): ImagesResult {
    for (const [key, image] of this.open) {
      throw new StreamProtocolError(
        `${key.replace("/final", "")} incomplete: the stream ended after ${image.length} bytes without its last slice`,
      );
    }
    const images = result.images.map((image, index) => {
      const kind = image.content.case;
      if (kind === "url" || kind === "stored" || (kind === "data" && image.content.value.length > 0)) {
        return image;
      }
      const data = this.finals.get(index);
      if (data === undefined) {
        throw new StreamProtocolError(`image ${index} is in the result but was never sent`);
      }
      return create(GeneratedImageSchema, { ...image, content: { case: "data", value: data } });
    });
    for (const index of this.finals.keys()) {
      if (index >= images.length) {
        throw new StreamProtocolError(`image ${index} was sent but is not in the result (${images.length} images)`);
      }
    }
    return create(ImagesResultSchema, { ...result, images });
  }
}

/** What the three streaming responses share: an image slice or the result. */
export interface StreamEvent {
  event:
    | { case: "imageChunk"; value: ImageChunk }
    | { case: "result"; value: ImagesResult }
    | { case: undefined; value?: undefined };
}

/**
 * Reads a streamed answer (CreateImageStream, CreateImageEditStream or
 * CreateImageVariationStream) to its end and returns its ImagesResult with every
 * final image's bytes in place. `onPartial` sees each partial image as it completes.
 * A gRPC error rejects with grpc-js's ServiceError unchanged.
 */
export async function collect(
  stream: AsyncIterable<StreamEvent>,
  onPartial?: (image: AssembledImage) => void,
): Promise<ImagesResult> {
  const assembler = new ImageAssembler();
  let result: ImagesResult | undefined;
  for await (const message of stream) {
    const { event } = message;
    if (event.case === "imageChunk") {
      const image = assembler.feed(event.value);
      if (image?.partialImageIndex !== undefined) {
        onPartial?.(image);
      }
    } else if (event.case === "result") {
      if (result !== undefined) {
        throw new StreamProtocolError("the server sent two results");
      }
      result = event.value;
    } else {
      throw new StreamProtocolError("the server sent an empty stream message");
    }
  }
  if (result === undefined) {
    throw new StreamProtocolError("the stream ended without a result");
  }
  return assembler.finish(result);
}
