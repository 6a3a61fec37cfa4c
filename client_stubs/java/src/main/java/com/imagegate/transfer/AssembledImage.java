package com.imagegate.transfer;

import com.google.protobuf.ByteString;
import java.util.OptionalInt;

/**
 * One image put back together from its slices.
 *
 * @param imageIndex the final image's index in ImagesResult.images (for a partial image: the
 *     image it previews when the gateway knows it, else 0)
 * @param partialImageIndex set for a partial (preview) image, empty for a final one
 * @param data the image's bytes
 */
public record AssembledImage(int imageIndex, OptionalInt partialImageIndex, ByteString data) {
  public boolean isPartial() {
    return partialImageIndex.isPresent();
  }
}
