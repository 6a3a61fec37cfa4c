package com.imagegate.transfer;

import com.google.protobuf.ByteString;
import com.imagegate.v1.GeneratedImage;
import com.imagegate.v1.ImagesResult;
import com.imagegate.v1.StoredImage;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Every image of a result as bytes, whatever its delivery: inline data as it is, stored images
 * (DELIVERY_STORED) and URL images downloaded with a plain HTTP GET, bounded in bytes and time.
 * A stored image's bytes are checked against the size its result states. Messages never show a
 * link's query: its signature is the credential.
 *
 * <pre>{@code
 * ImagesResult result = stub.createImage(request).getResult(); // delivery inline or stored
 * List<ByteString> images = ResultImages.bytes(result);
 * }</pre>
 */
public final class ResultImages {
  /** One image at most (an image model's largest is tens of MiB). */
  public static final long MAX_IMAGE_BYTES = 64L << 20;

  /** One download at most, first byte to last. */
  public static final Duration TIMEOUT = Duration.ofMinutes(1);

  private static final HttpClient HTTP =
      HttpClient.newBuilder()
          .connectTimeout(Duration.ofSeconds(10))
          .followRedirects(HttpClient.Redirect.NORMAL)
          .build();

  private ResultImages() {}

  /** Each image of {@code result}, with the default client, size cap and timeout. */
  public static List<ByteString> bytes(ImagesResult result)
      throws ImageFetchException, InterruptedException {
    return bytes(result, HTTP, MAX_IMAGE_BYTES, TIMEOUT);
  }

  /**
   * Each image of {@code result}, in order. A streaming RPC's result from this package's helpers
   * has its bytes inline too; one straight off a stream's last message has none, and this throws.
   */
  public static List<ByteString> bytes(
      ImagesResult result, HttpClient http, long maxBytes, Duration timeout)
      throws ImageFetchException, InterruptedException {
    List<ByteString> images = new ArrayList<>(result.getImagesCount());
    for (int index = 0; index < result.getImagesCount(); index++) {
      GeneratedImage image = result.getImages(index);
      switch (image.getContentCase()) {
        case DATA -> images.add(image.getData());
        case STORED -> images.add(stored(image.getStored(), http, maxBytes, timeout));
        case URL -> images.add(download(image.getUrl(), http, maxBytes, timeout));
        default ->
            throw new ImageFetchException(
                "image "
                    + index
                    + " has no bytes: on a streaming RPC they come in ImageChunk slices");
      }
    }
    return images;
  }

  /** One stored image by its link. */
  public static ByteString stored(
      StoredImage stored, HttpClient http, long maxBytes, Duration timeout)
      throws ImageFetchException, InterruptedException {
    long size = stored.getSizeBytes();
    if (size > maxBytes) {
      throw new ImageFetchException(
          "cannot download " + stored.getObject() + ": " + size + " bytes, over " + maxBytes);
    }
    ByteString data = download(stored.getUrl(), http, size, timeout);
    if (data.size() != size) {
      throw new ImageFetchException(
          "cannot download "
              + stored.getObject()
              + ": "
              + data.size()
              + " bytes arrived of "
              + size);
    }
    return data;
  }

  private static ByteString download(String url, HttpClient http, long limit, Duration timeout)
      throws ImageFetchException, InterruptedException {
    String shown = url.split("\\?", 2)[0];
    if (!url.startsWith("http://") && !url.startsWith("https://")) {
      throw new ImageFetchException("cannot download " + shown + ": not an http(s) URL");
    }
    HttpRequest request;
    try {
      request = HttpRequest.newBuilder(URI.create(url)).timeout(timeout).GET().build();
    } catch (IllegalArgumentException e) {
      throw new ImageFetchException("cannot download " + shown + ": not a valid URL");
    }
    var pending =
        http.sendAsync(request, HttpResponse.BodyHandlers.ofInputStream())
            .thenApply(response -> read(response, shown, limit));
    try {
      return pending.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      pending.cancel(true);
      throw new ImageFetchException("cannot download " + shown + ": timed out");
    } catch (ExecutionException e) {
      Throwable cause = e.getCause();
      if (cause instanceof Failure failure) {
        throw new ImageFetchException(failure.getMessage());
      }
      throw new ImageFetchException("cannot download " + shown + ": the request failed");
    }
  }

  private static ByteString read(HttpResponse<InputStream> response, String shown, long limit) {
    try (InputStream body = response.body()) {
      int status = response.statusCode();
      if (status != 200) {
        String hint = status == 403 ? " (an expired or altered link?)" : "";
        throw new Failure("cannot download " + shown + ": HTTP " + status + hint);
      }
      long declared = response.headers().firstValueAsLong("content-length").orElse(-1);
      if (declared > limit) {
        throw new Failure("cannot download " + shown + ": larger than " + limit + " bytes");
      }
      ByteString data = ByteString.readFrom(new BoundedStream(body, limit + 1));
      if (data.size() > limit) {
        throw new Failure("cannot download " + shown + ": larger than " + limit + " bytes");
      }
      return data;
    } catch (IOException e) {
      throw new Failure("cannot download " + shown + ": the body broke off");
    }
  }

  /** A download that failed, carried out of the HTTP client's future. */
  private static final class Failure extends RuntimeException {
    Failure(String message) {
      super(message, null, false, false);
    }
  }

  /** Reads at most {@code left} bytes of {@code in}, then reports its end. */
  private static final class BoundedStream extends InputStream {
    private final InputStream in;
    private long left;

    BoundedStream(InputStream in, long left) {
      this.in = in;
      this.left = left;
    }

    @Override
    public int read() throws IOException {
      if (left <= 0) {
        return -1;
      }
      int value = in.read();
      if (value >= 0) {
        left--;
      }
      return value;
    }

    @Override
    public int read(byte[] buffer, int offset, int length) throws IOException {
      if (left <= 0) {
        return -1;
      }
      int read = in.read(buffer, offset, (int) Math.min(length, left));
      if (read > 0) {
        left -= read;
      }
      return read;
    }
  }
}
