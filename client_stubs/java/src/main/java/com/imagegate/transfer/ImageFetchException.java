package com.imagegate.transfer;

import java.io.IOException;

/**
 * A stored or URL image that could not be downloaded: an expired or altered link (HTTP 403: ask
 * StoredImagesService.GetStoredImage for a fresh one), a deleted object (404), a body larger
 * than allowed or than its result says, a timeout. The message never shows a link's query.
 */
public final class ImageFetchException extends IOException {
  private static final long serialVersionUID = 1L;

  public ImageFetchException(String message) {
    super(message);
  }
}
