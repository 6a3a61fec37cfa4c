package com.imagegate.transfer;

import com.imagegate.v1.ImageChunk;
import com.imagegate.v1.ImagesResult;
import java.util.function.Consumer;
import java.util.function.Function;

/** How a call's response messages become one ImagesResult. */
abstract class Answer<Resp> {
  abstract void accept(Resp response);

  /** At the end of the stream: the result, or a StreamProtocolException. */
  abstract ImagesResult result();

  /** A unary answer: one response carrying the whole result. */
  static <Resp> Answer<Resp> unary(Function<Resp, ImagesResult> resultOf) {
    return new Answer<>() {
      private ImagesResult result;

      @Override
      void accept(Resp response) {
        result = resultOf.apply(response);
      }

      @Override
      ImagesResult result() {
        if (result == null) {
          throw new StreamProtocolException("the call ended without a result");
        }
        return result;
      }
    };
  }

  /**
   * A streamed answer: image slices reassembled, partial images handed to {@code onPartial} as
   * each completes, and the final result filled with the images' bytes.
   */
  static <Resp> Answer<Resp> streamed(
      Function<Resp, ImageChunk> chunkOf,
      Function<Resp, ImagesResult> resultOf,
      Consumer<AssembledImage> onPartial) {
    return new Answer<>() {
      private final ImageAssembler assembler = new ImageAssembler();
      private ImagesResult result;

      @Override
      void accept(Resp response) {
        ImageChunk chunk = chunkOf.apply(response);
        ImagesResult got = resultOf.apply(response);
        if (chunk != null) {
          assembler
              .feed(chunk)
              .filter(AssembledImage::isPartial)
              .ifPresent(image -> {
                if (onPartial != null) {
                  onPartial.accept(image);
                }
              });
        } else if (got != null) {
          if (result != null) {
            throw new StreamProtocolException("the server sent two results");
          }
          result = got;
        } else {
          throw new StreamProtocolException("the server sent an empty stream message");
        }
      }

      @Override
      ImagesResult result() {
        if (result == null) {
          throw new StreamProtocolException("the stream ended without a result");
        }
        return assembler.finish(result);
      }
    };
  }
}
