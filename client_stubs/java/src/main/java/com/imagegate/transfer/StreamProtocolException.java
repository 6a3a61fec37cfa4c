package com.imagegate.transfer;

/**
 * A streamed answer broke the contract (a gap or overlap in an image's slices, a slice after
 * the image was complete, an image missing from the result...). Writing the bytes anyway would
 * make a file that looks fine until it is opened.
 */
public final class StreamProtocolException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public StreamProtocolException(String message) {
    super(message);
  }
}
