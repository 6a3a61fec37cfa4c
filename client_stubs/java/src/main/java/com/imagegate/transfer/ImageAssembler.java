package com.imagegate.transfer;

import com.google.protobuf.ByteString;
import com.imagegate.v1.GeneratedImage;
import com.imagegate.v1.ImageChunk;
import com.imagegate.v1.ImagesResult;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Turns ImageChunk slices, fed in arrival order, into whole images, and fills them into the
 * final ImagesResult so that a streamed answer reads exactly like a unary one. Not thread-safe:
 * feed it from one stream's callbacks.
 */
public final class ImageAssembler {
  private record Key(int image, int partial) {} // partial -1: the final image

  private final Map<Key, ByteString> open = new LinkedHashMap<>();
  private final Map<Integer, ByteString> finals = new HashMap<>();

  private static String describe(Key key) {
    return key.partial() < 0
        ? "image " + key.image()
        : "partial image " + key.partial() + " of image " + key.image();
  }

  /** Adds one slice; returns the image it completed (its last slice), else empty. */
  public Optional<AssembledImage> feed(ImageChunk chunk) {
    int partial = chunk.hasPartialImageIndex() ? chunk.getPartialImageIndex() : -1;
    Key key = new Key(chunk.getImageIndex(), partial);
    if (partial < 0 && finals.containsKey(key.image())) {
      throw new StreamProtocolException(describe(key) + " received again after it was complete");
    }
    ByteString buffer = open.getOrDefault(key, ByteString.EMPTY);
    if (chunk.getOffset() != buffer.size()) {
      throw new StreamProtocolException(
          describe(key) + ": slice at offset " + chunk.getOffset() + ", expected " + buffer.size());
    }
    // concat builds a rope: no copying of the slices already received.
    ByteString data = buffer.concat(chunk.getData());
    if (!chunk.getLast()) {
      open.put(key, data);
      return Optional.empty();
    }
    open.remove(key);
    if (partial < 0) {
      finals.put(key.image(), data);
      return Optional.of(new AssembledImage(key.image(), OptionalInt.empty(), data));
    }
    return Optional.of(new AssembledImage(key.image(), OptionalInt.of(partial), data));
  }

  /**
   * Checks that every image is complete and returns {@code result} with each final image's
   * bytes in GeneratedImage.data (left empty by the streaming RPCs). URL and stored images stay
   * as they are ({@link ResultImages} fetches them).
   */
  public ImagesResult finish(ImagesResult result) {
    for (Map.Entry<Key, ByteString> entry : open.entrySet()) {
      throw new StreamProtocolException(
          describe(entry.getKey())
              + " incomplete: the stream ended after "
              + entry.getValue().size()
              + " bytes without its last slice");
    }
    ImagesResult.Builder filled = result.toBuilder();
    for (int i = 0; i < filled.getImagesCount(); i++) {
      GeneratedImage image = filled.getImages(i);
      if (image.hasUrl() || image.hasStored() || !image.getData().isEmpty()) {
        continue; // a URL, a stored image (DELIVERY_STORED), or bytes already
      }
      ByteString data = finals.get(i);
      if (data == null) {
        throw new StreamProtocolException("image " + i + " is in the result but was never sent");
      }
      filled.setImages(i, image.toBuilder().setData(data));
    }
    for (int index : finals.keySet()) {
      if (index >= filled.getImagesCount()) {
        throw new StreamProtocolException(
            "image " + index + " was sent but is not in the result (" + filled.getImagesCount()
                + " images)");
      }
    }
    return filled.build();
  }
}
